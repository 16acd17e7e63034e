//! The organisation: units, users, roles with their grants and permissions, and loading all of
//! it as the engine's [`Model`].

use sqlx::Row;
use warden_policy::{
    AccessOwner, Action, Control, FieldAccess, FieldRule, Grant, Model, ObjectType, Permission,
    RoleAssignment, RoleDef, RoleId, Scope, Timestamp, UnitDef, UnitId, UserDef, UserId,
};

use crate::{bulk, Backend, Result, Store, StoreError, Tx};

/// A unit as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitRow {
    pub id: UnitId,
    pub name: String,
    pub parent: Option<UnitId>,
}

/// A role as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleRow {
    pub id: RoleId,
    pub name: String,
    pub description: String,
    pub version: i64,
    pub grants: Vec<Grant>,
    pub permissions: Vec<Permission>,
    /// Field rules that differ from the schema's defaults.
    pub fields: Vec<FieldRule>,
}

/// What a role holds: grants, functional permissions and field rules.
#[derive(Debug, Clone, Copy)]
pub struct RoleContents<'a> {
    pub grants: &'a [Grant],
    pub permissions: &'a [Permission],
    pub fields: &'a [FieldRule],
}

/// A user as listed by the admin API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub unit: UnitId,
    pub manager: Option<UserId>,
    pub disabled: bool,
    /// The natural person behind the account (accounts with the same value are one person).
    pub person: Option<String>,
    /// For a portal user, the customer account they belong to.
    pub portal_account: Option<i64>,
}

/// A user to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub unit: UnitId,
    pub manager: Option<UserId>,
    pub password_hash: String,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub unit: Option<UnitId>,
    /// `Some(None)` removes the manager.
    pub manager: Option<Option<UserId>>,
    pub disabled: Option<bool>,
}

fn corrupt(table: &'static str, column: &'static str, message: impl ToString) -> StoreError {
    StoreError::Corrupt {
        table,
        column,
        message: message.to_string(),
    }
}

fn decode_grant(object: &str, action: &str, scope: &str, depth: Option<i64>) -> Result<Grant> {
    let depth = depth
        .map(u32::try_from)
        .transpose()
        .map_err(|e| corrupt("role_grants", "depth", e))?;
    Ok(Grant {
        object: ObjectType::parse(object).map_err(|e| corrupt("role_grants", "object", e))?,
        action: Action::parse(action).map_err(|e| corrupt("role_grants", "action", e))?,
        scope: Scope::parse(scope, depth).map_err(|e| corrupt("role_grants", "scope", e))?,
    })
}

/// Reads the whole organisation through one executor (a consistent read transaction).
async fn read_roles(conn: &mut sqlx::AnyConnection) -> Result<Vec<RoleRow>> {
    let mut roles: Vec<RoleRow> =
        sqlx::query("SELECT id, name, description, version FROM roles ORDER BY id")
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|row| {
                Ok(RoleRow {
                    id: RoleId(row.try_get(0)?),
                    name: row.try_get(1)?,
                    description: row.try_get(2)?,
                    version: row.try_get(3)?,
                    grants: Vec::new(),
                    permissions: Vec::new(),
                    fields: Vec::new(),
                })
            })
            .collect::<Result<_>>()?;
    let index: std::collections::HashMap<RoleId, usize> =
        roles.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
    for row in sqlx::query("SELECT role_id, object, action, scope, depth FROM role_grants ORDER BY role_id, object, action, scope")
        .fetch_all(&mut *conn)
        .await?
    {
        let role = RoleId(row.try_get(0)?);
        let grant = decode_grant(&row.try_get::<String, _>(1)?, &row.try_get::<String, _>(2)?, &row.try_get::<String, _>(3)?, row.try_get(4)?)?;
        if let Some(&i) = index.get(&role) {
            roles[i].grants.push(grant);
        }
    }
    for row in
        sqlx::query("SELECT role_id, permission FROM role_permissions ORDER BY role_id, permission")
            .fetch_all(&mut *conn)
            .await?
    {
        let role = RoleId(row.try_get(0)?);
        let permission = Permission::parse(&row.try_get::<String, _>(1)?)
            .map_err(|e| corrupt("role_permissions", "permission", e))?;
        if let Some(&i) = index.get(&role) {
            roles[i].permissions.push(permission);
        }
    }
    for row in sqlx::query(
        "SELECT role_id, object, field, access FROM role_field_rules ORDER BY role_id, object, field",
    )
    .fetch_all(&mut *conn)
    .await?
    {
        let role = RoleId(row.try_get(0)?);
        let rule = FieldRule {
            object: ObjectType::parse(&row.try_get::<String, _>(1)?)
                .map_err(|e| corrupt("role_field_rules", "object", e))?,
            field: row.try_get(2)?,
            access: FieldAccess::parse(&row.try_get::<String, _>(3)?)
                .map_err(|e| corrupt("role_field_rules", "access", e))?,
        };
        if let Some(&i) = index.get(&role) {
            roles[i].fields.push(rule);
        }
    }
    Ok(roles)
}

fn decode_user(row: &sqlx::any::AnyRow) -> Result<UserRow> {
    Ok(UserRow {
        id: UserId(row.try_get(0)?),
        username: row.try_get(1)?,
        display_name: row.try_get(2)?,
        unit: UnitId(row.try_get(3)?),
        manager: row.try_get::<Option<i64>, _>(4)?.map(UserId),
        disabled: row.try_get::<i64, _>(5)? != 0,
        person: row.try_get(6)?,
        portal_account: row.try_get(7)?,
    })
}

impl Store {
    /// Loads the organisation as one consistent model, with the epoch it was read at.
    pub async fn load_model(&self) -> Result<Model> {
        let mut tx = self.pool.begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                .execute(&mut *tx)
                .await?;
        }
        let epoch: i64 = sqlx::query_scalar("SELECT epoch FROM permission_epoch WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?;
        let units = sqlx::query("SELECT id, name, parent_id FROM units ORDER BY id")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                Ok(UnitDef {
                    id: UnitId(row.try_get(0)?),
                    name: row.try_get(1)?,
                    parent: row.try_get::<Option<i64>, _>(2)?.map(UnitId),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let roles = read_roles(&mut tx).await?;
        // Users and their roles are the bulk of the organisation: each is read as one JSON
        // value (see `bulk.rs`), not row by row.
        const USER_COLUMNS: &[&str] = &[
            "id",
            "username",
            "unit_id",
            "manager_id",
            "disabled",
            "portal_account",
        ];
        let rows = bulk::fetch_table(&mut tx, self.backend(), "users", USER_COLUMNS, "id").await?;
        let mut users = bulk::decode_rows(&rows, "users", USER_COLUMNS, |row| {
            Ok(UserDef {
                id: UserId(row.int(0)?),
                username: row.text(1)?,
                unit: UnitId(row.int(2)?),
                manager: row.opt_int(3)?.map(UserId),
                disabled: row.int(4)? != 0,
                roles: Vec::new(),
                portal_account: row.opt_int(5)?,
            })
        })?;
        let user_index: std::collections::HashMap<UserId, usize> =
            users.iter().enumerate().map(|(i, u)| (u.id, i)).collect();
        const ROLE_COLUMNS: &[&str] = &["user_id", "role_id", "expires_at"];
        let rows = bulk::fetch_table(
            &mut tx,
            self.backend(),
            "user_roles",
            ROLE_COLUMNS,
            "user_id, role_id",
        )
        .await?;
        let assignments = bulk::decode_rows(&rows, "user_roles", ROLE_COLUMNS, |row| {
            Ok((
                UserId(row.int(0)?),
                RoleAssignment {
                    role: RoleId(row.int(1)?),
                    expires_at: row.opt_int(2)?,
                },
            ))
        })?;
        for (user, assignment) in assignments {
            if let Some(&i) = user_index.get(&user) {
                users[i].roles.push(assignment);
            }
        }
        let controls = sqlx::query("SELECT object, control FROM object_controls ORDER BY object")
            .fetch_all(&mut *tx)
            .await?
            .iter()
            .map(|row| {
                let object = ObjectType::parse(&row.try_get::<String, _>(0)?)
                    .map_err(|e| corrupt("object_controls", "object", e))?;
                let control = match row.try_get::<String, _>(1)?.as_str() {
                    "own_grants" => Control::OwnGrants,
                    "by_customer" => Control::ByCustomer,
                    other => return Err(corrupt("object_controls", "control", other)),
                };
                Ok((object, control))
            })
            .collect::<Result<Vec<_>>>()?;
        let mfa_enrolled =
            sqlx::query_scalar::<_, i64>("SELECT id FROM users WHERE totp_enabled = 1 ORDER BY id")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(UserId)
                .collect();
        let access_rules = sqlx::query(
            "SELECT owner_kind, owner_id, rules FROM access_rules ORDER BY owner_kind, owner_id",
        )
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            let kind: String = row.try_get(0)?;
            let id: i64 = row.try_get(1)?;
            let rules = crate::security::rules_from_json(&row.try_get::<String, _>(2)?)
                .map_err(|message| corrupt("access_rules", "rules", message))?;
            let owner = if kind == "role" {
                AccessOwner::Role(RoleId(id))
            } else {
                AccessOwner::User(UserId(id))
            };
            Ok((owner, rules))
        })
        .collect::<Result<Vec<_>>>()?;
        let approval_policies = crate::approvals::read_policies(&mut tx)
            .await?
            .into_iter()
            .map(|row| row.policy)
            .collect();
        let four_eyes = crate::approvals::read_setting(&mut tx, crate::approvals::FOUR_EYES)
            .await?
            .is_some_and(|v| v == "on");
        let persons =
            sqlx::query("SELECT id, person FROM users WHERE person IS NOT NULL ORDER BY id")
                .fetch_all(&mut *tx)
                .await?
                .iter()
                .map(|row| Ok((UserId(row.try_get(0)?), row.try_get::<String, _>(1)?)))
                .collect::<Result<Vec<_>>>()?;
        let sharing_rules = crate::sharing::read_sharing_rules(&mut tx).await?;
        let restriction_rules = crate::sharing::read_restriction_rules(&mut tx).await?;
        tx.commit().await?;
        Ok(Model {
            sharing_rules,
            restriction_rules,
            approval_policies,
            four_eyes,
            persons,
            epoch,
            access_rules,
            mfa_enrolled,
            units,
            users,
            roles: roles
                .into_iter()
                .map(|r| RoleDef {
                    id: r.id,
                    name: r.name,
                    grants: r.grants,
                    permissions: r.permissions,
                    fields: r.fields,
                })
                .collect(),
            controls,
        })
    }

    /// Every unit.
    pub async fn units(&self) -> Result<Vec<UnitRow>> {
        sqlx::query("SELECT id, name, parent_id FROM units ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(UnitRow {
                    id: UnitId(row.try_get(0)?),
                    name: row.try_get(1)?,
                    parent: row.try_get::<Option<i64>, _>(2)?.map(UnitId),
                })
            })
            .collect()
    }

    /// Every role with its grants and permissions.
    pub async fn roles(&self) -> Result<Vec<RoleRow>> {
        let mut conn = self.pool.acquire().await?;
        read_roles(&mut conn).await
    }

    /// Every user.
    pub async fn users(&self) -> Result<Vec<UserRow>> {
        sqlx::query("SELECT id, username, display_name, unit_id, manager_id, disabled, person, portal_account FROM users ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(decode_user)
            .collect()
    }

    /// One user by username.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        sqlx::query("SELECT id, username, display_name, unit_id, manager_id, disabled, person, portal_account FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(decode_user)
            .transpose()
    }

    /// A user's id, password hash and disabled flag, for login.
    pub async fn credentials(&self, username: &str) -> Result<Option<(UserId, String, bool)>> {
        let row = sqlx::query("SELECT id, password_hash, disabled FROM users WHERE username = $1")
            .bind(username)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok((
                UserId(row.try_get(0)?),
                row.try_get(1)?,
                row.try_get::<i64, _>(2)? != 0,
            ))
        })
        .transpose()
    }

    /// Whether any user exists (a fresh database has none).
    pub async fn is_empty(&self) -> Result<bool> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        Ok(n == 0)
    }
}

impl Tx {
    /// Creates a unit.
    pub async fn insert_unit(
        &mut self,
        name: &str,
        parent: Option<UnitId>,
        now: Timestamp,
    ) -> Result<UnitId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO units (name, parent_id, created_at) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(parent.map(|p| p.0))
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(UnitId(id))
    }

    /// Renames or moves a unit.
    pub async fn update_unit(
        &mut self,
        id: UnitId,
        name: Option<&str>,
        parent: Option<Option<UnitId>>,
    ) -> Result<()> {
        if let Some(name) = name {
            let n = sqlx::query("UPDATE units SET name = $1 WHERE id = $2")
                .bind(name)
                .bind(id.0)
                .execute(&mut *self.tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
        }
        if let Some(parent) = parent {
            let n = sqlx::query("UPDATE units SET parent_id = $1 WHERE id = $2")
                .bind(parent.map(|p| p.0))
                .bind(id.0)
                .execute(&mut *self.tx)
                .await?
                .rows_affected();
            if n == 0 {
                return Err(StoreError::NotFound);
            }
        }
        Ok(())
    }

    /// Creates a user.
    pub async fn insert_user(&mut self, user: &NewUser, now: Timestamp) -> Result<UserId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO users (username, display_name, unit_id, manager_id, disabled, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, 0, $5, $6, $6) RETURNING id",
        )
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(user.unit.0)
        .bind(user.manager.map(|m| m.0))
        .bind(&user.password_hash)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(UserId(id))
    }

    /// Changes a user's profile, unit, manager or disabled flag.
    pub async fn update_user(
        &mut self,
        id: UserId,
        changes: &UserChanges,
        now: Timestamp,
    ) -> Result<()> {
        let n = sqlx::query(
            "UPDATE users SET \
               display_name = COALESCE($1, display_name), \
               unit_id = COALESCE($2, unit_id), \
               manager_id = CASE WHEN $3 = 1 THEN $4 ELSE manager_id END, \
               disabled = COALESCE($5, disabled), \
               updated_at = $6 \
             WHERE id = $7",
        )
        .bind(changes.display_name.clone())
        .bind(changes.unit.map(|u| u.0))
        .bind(i64::from(changes.manager.is_some()))
        .bind(changes.manager.flatten().map(|m| m.0))
        .bind(changes.disabled.map(i64::from))
        .bind(now)
        .bind(id.0)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Replaces a user's password hash.
    pub async fn set_password_hash(
        &mut self,
        id: UserId,
        hash: &str,
        now: Timestamp,
    ) -> Result<()> {
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(hash)
            .bind(now)
            .bind(id.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Replaces a user's role assignments.
    pub async fn set_user_roles(&mut self, id: UserId, roles: &[RoleAssignment]) -> Result<()> {
        sqlx::query("DELETE FROM user_roles WHERE user_id = $1")
            .bind(id.0)
            .execute(&mut *self.tx)
            .await?;
        for assignment in roles {
            sqlx::query(
                "INSERT INTO user_roles (user_id, role_id, expires_at) VALUES ($1, $2, $3)",
            )
            .bind(id.0)
            .bind(assignment.role.0)
            .bind(assignment.expires_at)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Creates a role with its grants, permissions and field rules.
    pub async fn insert_role(
        &mut self,
        name: &str,
        description: &str,
        contents: RoleContents<'_>,
        now: Timestamp,
    ) -> Result<RoleId> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO roles (name, description, version, created_at, updated_at) VALUES ($1, $2, 1, $3, $3) RETURNING id",
        )
        .bind(name)
        .bind(description)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        let id = RoleId(id);
        self.write_role_contents(id, contents).await?;
        Ok(id)
    }

    /// A role's version, read inside this transaction (none when the role is gone).
    pub async fn role_version(&mut self, id: RoleId) -> Result<Option<i64>> {
        Ok(
            sqlx::query_scalar("SELECT version FROM roles WHERE id = $1")
                .bind(id.0)
                .fetch_optional(&mut *self.tx)
                .await?,
        )
    }

    /// Replaces a role's name, description, grants, permissions and field rules, and bumps its
    /// version.
    pub async fn update_role(
        &mut self,
        id: RoleId,
        name: &str,
        description: &str,
        contents: RoleContents<'_>,
        now: Timestamp,
    ) -> Result<()> {
        let n = sqlx::query("UPDATE roles SET name = $1, description = $2, version = version + 1, updated_at = $3 WHERE id = $4")
            .bind(name)
            .bind(description)
            .bind(now)
            .bind(id.0)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Err(StoreError::NotFound);
        }
        sqlx::query("DELETE FROM role_grants WHERE role_id = $1")
            .bind(id.0)
            .execute(&mut *self.tx)
            .await?;
        for table in ["role_permissions", "role_field_rules"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE role_id = $1"))
                .bind(id.0)
                .execute(&mut *self.tx)
                .await?;
        }
        self.write_role_contents(id, contents).await
    }

    async fn write_role_contents(&mut self, id: RoleId, contents: RoleContents<'_>) -> Result<()> {
        for rule in contents.fields {
            sqlx::query(
                "INSERT INTO role_field_rules (role_id, object, field, access) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (role_id, object, field) DO UPDATE SET access = excluded.access",
            )
            .bind(id.0)
            .bind(rule.object.as_str())
            .bind(rule.field.as_str())
            .bind(rule.access.as_str())
            .execute(&mut *self.tx)
            .await?;
        }
        let (grants, permissions) = (contents.grants, contents.permissions);
        for grant in grants {
            sqlx::query(
                "INSERT INTO role_grants (role_id, object, action, scope, depth) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (role_id, object, action, scope) DO UPDATE SET depth = excluded.depth",
            )
            .bind(id.0)
            .bind(grant.object.as_str())
            .bind(grant.action.as_str())
            .bind(grant.scope.name())
            .bind(grant.scope.depth().map(i64::from))
            .execute(&mut *self.tx)
            .await?;
        }
        for permission in permissions {
            sqlx::query("INSERT INTO role_permissions (role_id, permission) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(id.0)
                .bind(permission.as_str())
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Sets how an object's records are controlled.
    pub async fn set_control(&mut self, object: ObjectType, control: Control) -> Result<()> {
        let name = match control {
            Control::OwnGrants => "own_grants",
            Control::ByCustomer => "by_customer",
        };
        sqlx::query("INSERT INTO object_controls (object, control) VALUES ($1, $2) ON CONFLICT (object) DO UPDATE SET control = excluded.control")
            .bind(object.as_str())
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
