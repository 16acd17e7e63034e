//! Administration of the organisation: users, units and roles. Every change bumps the
//! permission epoch in the same transaction, so it holds on every node from the next request.

use warden_policy::{
    Control, FieldRule, Grant, ObjectType, Permission, RoleAssignment, RoleId, Snapshot, Timestamp,
    UnitId, UserId,
};
use warden_store::{NewUser, RoleRow, UserChanges, UserRow};

use crate::approvals::Outcome;
use crate::auth::hash_password;
use crate::four_eyes::{Created, OrgChange};
use crate::logging::log_change;
use crate::{Result, ServiceError, Subject, Warden};

/// A user as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserView {
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub unit: String,
    pub manager: Option<String>,
    pub disabled: bool,
    /// Role names with their expiry.
    pub roles: Vec<(String, Option<Timestamp>)>,
    /// The natural person behind the account, when linked.
    pub person: Option<String>,
    /// For a portal user, the customer account they belong to.
    pub portal_account: Option<i64>,
}

/// A user to create. Its `Debug` hides the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserInput {
    pub username: String,
    pub display_name: Option<String>,
    pub password: String,
    pub unit: String,
    pub manager: Option<String>,
    pub roles: Vec<(String, Option<Timestamp>)>,
    /// The natural person behind the account (an employee number, say).
    pub person: Option<String>,
    /// Makes the user a portal user of this customer (set at creation only: turning a portal
    /// user into an internal one would widen their reach without anyone approving it).
    pub portal_account: Option<i64>,
}

/// Changes to a user; `None` leaves a field as it is. Its `Debug` hides the password.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub display_name: Option<String>,
    pub unit: Option<String>,
    /// `Some(None)` removes the manager.
    pub manager: Option<Option<String>>,
    pub roles: Option<Vec<(String, Option<Timestamp>)>>,
    pub disabled: Option<bool>,
    pub password: Option<String>,
    /// `Some(None)` unlinks the account from a person.
    pub person: Option<Option<String>>,
}

impl std::fmt::Debug for UserInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserInput")
            .field("username", &self.username)
            .field("unit", &self.unit)
            .field("manager", &self.manager)
            .field("roles", &self.roles)
            .field("password", &"<hidden>")
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserUpdate")
            .field("unit", &self.unit)
            .field("manager", &self.manager)
            .field("roles", &self.roles)
            .field("disabled", &self.disabled)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish_non_exhaustive()
    }
}

/// A unit as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitView {
    pub id: UnitId,
    pub name: String,
    pub parent: Option<String>,
}

/// A role as the admin API shows it.
pub type RoleView = RoleRow;

/// A role to create, or the whole new content of a role.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleInput {
    pub name: String,
    pub description: String,
    pub grants: Vec<Grant>,
    pub permissions: Vec<Permission>,
    /// Field rules that differ from the schema's defaults.
    pub fields: Vec<FieldRule>,
}

/// Checks that every field rule names a field of its object, once.
fn validate_field_rules(rules: &[FieldRule]) -> Result<()> {
    for (i, rule) in rules.iter().enumerate() {
        if warden_policy::schema::schema(rule.object)
            .field(&rule.field)
            .is_none()
        {
            return Err(ServiceError::invalid(
                format!("fields[{i}].field"),
                format!("`{}` is not a field of {}", rule.field, rule.object),
            ));
        }
        if rules[..i]
            .iter()
            .any(|r| r.object == rule.object && r.field == rule.field)
        {
            return Err(ServiceError::invalid(
                format!("fields[{i}]"),
                format!("{}.{} has two rules", rule.object, rule.field),
            ));
        }
    }
    Ok(())
}

impl RoleInput {
    pub(crate) fn contents(&self) -> warden_store::RoleContents<'_> {
        warden_store::RoleContents {
            grants: &self.grants,
            permissions: &self.permissions,
            fields: &self.fields,
        }
    }
}

/// Maps a unique-constraint violation to a 409 saying what is taken; other errors pass on.
fn taken(message: String) -> impl FnOnce(warden_store::StoreError) -> ServiceError {
    move |error| match error {
        warden_store::StoreError::Duplicate(_) => ServiceError::Conflict(message),
        other => other.into(),
    }
}

fn validate_name(field: &str, name: &str, max: usize) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > max {
        return Err(ServiceError::invalid(
            field,
            format!("must be 1 to {max} characters"),
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(ServiceError::invalid(
            field,
            "must not contain control characters",
        ));
    }
    Ok(name.to_owned())
}

fn validate_username(username: &str) -> Result<String> {
    let valid = !username.is_empty()
        && username.len() <= 64
        && username
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(username.to_owned())
    } else {
        Err(ServiceError::invalid(
            "username",
            "must be 1 to 64 characters of a-z, 0-9, '.', '_' or '-'",
        ))
    }
}

fn validate_password(username: &str, password: &str) -> Result<()> {
    crate::security::check_password_policy(username, password)
}

fn user_view(snapshot: &Snapshot, row: &UserRow) -> UserView {
    let in_snapshot = snapshot.user(row.id);
    UserView {
        id: row.id,
        username: row.username.clone(),
        display_name: row.display_name.clone(),
        unit: snapshot.unit_name(row.unit).unwrap_or_default().to_owned(),
        manager: row
            .manager
            .and_then(|m| snapshot.user(m))
            .map(|m| m.username().to_owned()),
        disabled: row.disabled,
        person: row.person.clone(),
        portal_account: row.portal_account,
        roles: in_snapshot
            .map(|u| {
                u.roles()
                    .map(|(_, name, a)| (name.to_owned(), a.expires_at))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn unit_by_name(units: &[UnitView], name: &str, field: &str) -> Result<UnitId> {
    units
        .iter()
        .find(|u| u.name == name)
        .map(|u| u.id)
        .ok_or_else(|| ServiceError::invalid(field, format!("no unit named `{name}`")))
}

impl Warden {
    /// Resolves role names, refusing roles that would give the subject's grantee a functional
    /// permission the subject does not hold (no escalation through user management).
    pub(crate) async fn resolve_roles(
        &self,
        subject: &Subject,
        roles: &[(String, Option<Timestamp>)],
    ) -> Result<Vec<RoleAssignment>> {
        let all = self.store.roles().await?;
        let mut out: Vec<RoleAssignment> = Vec::with_capacity(roles.len());
        for (name, expires_at) in roles {
            let role = all
                .iter()
                .find(|r| &r.name == name)
                .ok_or_else(|| ServiceError::invalid("roles", format!("no role named `{name}`")))?;
            if let Some(missing) = role.permissions.iter().find(|p| !subject.can(**p)) {
                return Err(ServiceError::Forbidden(format!(
                    "you cannot assign `{name}`: it carries the {missing} permission, which you do not hold"
                )));
            }
            if expires_at.is_some_and(|e| e <= subject.now) {
                return Err(ServiceError::invalid(
                    "roles",
                    format!("the assignment of `{name}` would already have expired"),
                ));
            }
            if out.iter().any(|a| a.role == role.id) {
                return Err(ServiceError::invalid(
                    "roles",
                    format!("`{name}` is given twice"),
                ));
            }
            out.push(RoleAssignment {
                role: role.id,
                expires_at: *expires_at,
            });
        }
        Ok(out)
    }

    fn resolve_manager(
        &self,
        subject: &Subject,
        user: Option<UserId>,
        manager: &str,
    ) -> Result<UserId> {
        let snapshot = &subject.snapshot;
        let manager = snapshot.user_by_name(manager).ok_or_else(|| {
            ServiceError::invalid("manager", format!("no user named `{manager}`"))
        })?;
        if let Some(user) = user {
            if snapshot.is_at_or_above(user, manager.id()) {
                return Err(ServiceError::invalid(
                    "manager",
                    format!(
                        "`{}` reports to this user: the reporting line would become a cycle",
                        manager.username()
                    ),
                ));
            }
        }
        Ok(manager.id())
    }

    /// A user as it is now, read after a change (on the snapshot of the new epoch).
    async fn fresh_user_view(&self, username: &str) -> Result<UserView> {
        let snapshot = self.current_snapshot().await?;
        let row = self
            .store
            .user_by_name(username)
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(user_view(&snapshot, &row))
    }

    /// Every user (needs `manage_users`).
    pub async fn list_users(&self, subject: &Subject) -> Result<Vec<UserView>> {
        subject.require(Permission::ManageUsers)?;
        let rows = self.store.users().await?;
        Ok(rows
            .iter()
            .map(|row| user_view(&subject.snapshot, row))
            .collect())
    }

    /// One user: any user for `manage_users` holders, oneself for everyone.
    pub async fn get_user(&self, subject: &Subject, username: &str) -> Result<UserView> {
        if username != subject.username {
            subject.require(Permission::ManageUsers)?;
        }
        let row = self
            .store
            .user_by_name(username)
            .await?
            .ok_or(ServiceError::NotFound)?;
        Ok(user_view(&subject.snapshot, &row))
    }

    /// Creates a user (needs `manage_users`).
    pub async fn create_user(&self, subject: &Subject, input: UserInput) -> Result<UserView> {
        subject.require(Permission::ManageUsers)?;
        if subject.snapshot.four_eyes() && !input.roles.is_empty() {
            return Err(ServiceError::invalid(
                "roles",
                "four eyes is on: create the user without roles, then assign them (the \
                 assignment waits for a second administrator)",
            ));
        }
        let username = validate_username(&input.username)?;
        let display_name = validate_name(
            "display_name",
            input.display_name.as_deref().unwrap_or(&username),
            200,
        )?;
        validate_password(&username, &input.password)?;
        let units = self.list_units(subject).await?;
        let unit = unit_by_name(&units, &input.unit, "unit")?;
        let manager = input
            .manager
            .as_deref()
            .map(|m| self.resolve_manager(subject, None, m))
            .transpose()?;
        let roles = self.resolve_roles(subject, &input.roles).await?;
        if let Some(account) = input.portal_account {
            if manager.is_some() {
                return Err(ServiceError::invalid(
                    "manager",
                    "a portal user is outside the organisation: no manager",
                ));
            }
            if self
                .store
                .get_record(ObjectType::Customers, account)
                .await?
                .is_none()
            {
                return Err(ServiceError::invalid("portal_account", "no such customer"));
            }
        }
        let password = input.password;
        let hash = tokio::task::spawn_blocking(move || hash_password(&password))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        let mut tx = self.store.begin().await?;
        let id = tx
            .insert_user(
                &NewUser {
                    username: username.clone(),
                    display_name,
                    unit,
                    manager,
                    password_hash: hash,
                },
                subject.now,
            )
            .await
            .map_err(taken(format!("the username `{username}` is taken")))?;
        tx.set_user_roles(id, &roles).await?;
        if input.portal_account.is_some() {
            tx.set_portal_account(id, input.portal_account).await?;
        }
        if let Some(person) = &input.person {
            tx.set_person(id, Some(&validate_name("person", person, 100)?))
                .await?;
        }
        let role_names: Vec<&str> = input.roles.iter().map(|(r, _)| r.as_str()).collect();
        log_change(
            &mut tx,
            subject,
            "user.create",
            &["unit", "manager", "roles", "password"],
            format!("user {username}; roles: {}", role_names.join(", ")),
        )
        .await?;
        tx.bump_epoch().await?;
        tx.commit().await?;
        self.fresh_user_view(&username).await
    }

    /// Changes a user's manager, unit, roles, disabled flag, name or password (needs
    /// `manage_users`). Holds from the very next request, on every node.
    pub async fn update_user(
        &self,
        subject: &Subject,
        username: &str,
        update: UserUpdate,
    ) -> Result<Outcome<UserView>> {
        subject.require(Permission::ManageUsers)?;
        let held = update.roles.is_some() || update.person.is_some() || update.password.is_some();
        if subject.snapshot.four_eyes() && held {
            let change = self.held_user_change(subject, username, &update).await?;
            return Ok(match self.submit_org_change(subject, change).await? {
                Outcome::Done(_) => Outcome::Done(self.fresh_user_view(username).await?),
                Outcome::Pending(view) => Outcome::Pending(view),
            });
        }
        let target = subject
            .snapshot
            .user_by_name(username)
            .ok_or(ServiceError::NotFound)?
            .id();
        if target == subject.user && update.disabled == Some(true) {
            return Err(ServiceError::invalid(
                "disabled",
                "you cannot disable yourself",
            ));
        }
        if let Some(Some(person)) = &update.person {
            validate_name("person", person, 100)?;
        }
        let mut changes = UserChanges::default();
        if let Some(name) = &update.display_name {
            changes.display_name = Some(validate_name("display_name", name, 200)?);
        }
        if let Some(unit) = &update.unit {
            let units = self.list_units(subject).await?;
            changes.unit = Some(unit_by_name(&units, unit, "unit")?);
        }
        if let Some(manager) = &update.manager {
            changes.manager = Some(
                manager
                    .as_deref()
                    .map(|m| self.resolve_manager(subject, Some(target), m))
                    .transpose()?,
            );
        }
        changes.disabled = update.disabled;
        let roles = match &update.roles {
            Some(roles) => Some(self.resolve_roles(subject, roles).await?),
            None => None,
        };
        let hash = match update.password {
            Some(password) => {
                validate_password(username, &password)?;
                Some(
                    tokio::task::spawn_blocking(move || hash_password(&password))
                        .await
                        .map_err(|e| ServiceError::Internal(e.to_string()))??,
                )
            }
            None => None,
        };
        let mut tx = self.store.begin().await?;
        tx.update_user(target, &changes, subject.now).await?;
        if let Some(roles) = &roles {
            tx.set_user_roles(target, roles).await?;
        }
        if let Some(hash) = &hash {
            tx.set_password_hash(target, hash, subject.now).await?;
        }
        if update.disabled == Some(true) || hash.is_some() {
            tx.delete_sessions_of(target).await?;
        }
        if let Some(person) = &update.person {
            tx.set_person(target, person.as_deref()).await?;
        }
        let changed: Vec<&str> = [
            ("display_name", update.display_name.is_some()),
            ("unit", update.unit.is_some()),
            ("manager", update.manager.is_some()),
            ("roles", roles.is_some()),
            ("disabled", update.disabled.is_some()),
            ("password", hash.is_some()),
            ("person", update.person.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, changed)| changed.then_some(name))
        .collect();
        let mut detail = format!("user {username}");
        if let Some(roles) = &update.roles {
            let names: Vec<&str> = roles.iter().map(|(r, _)| r.as_str()).collect();
            detail.push_str(&format!("; roles: {}", names.join(", ")));
        }
        if let Some(disabled) = update.disabled {
            detail.push_str(&format!("; disabled: {disabled}"));
        }
        log_change(&mut tx, subject, "user.update", &changed, detail).await?;
        tx.bump_epoch().await?;
        tx.commit().await?;
        Ok(Outcome::Done(self.fresh_user_view(username).await?))
    }

    /// Under four eyes, a change of a user's roles, person or password waits for a second
    /// administrator; each must come in a request of its own.
    async fn held_user_change(
        &self,
        subject: &Subject,
        username: &str,
        update: &UserUpdate,
    ) -> Result<OrgChange> {
        let alone = |field: &str| {
            ServiceError::invalid(
                field,
                "four eyes is on: change roles, the person and the password each in a request \
                 of its own (it waits for a second administrator)",
            )
        };
        let target = subject
            .snapshot
            .user_by_name(username)
            .ok_or(ServiceError::NotFound)?;
        let (user, username) = (target.id(), username.to_owned());
        if let Some(roles) = &update.roles {
            if *update
                != (UserUpdate {
                    roles: Some(roles.clone()),
                    ..UserUpdate::default()
                })
            {
                return Err(alone("roles"));
            }
            let before = target.roles().map(|(_, _, a)| a).collect();
            let roles = self.resolve_roles(subject, roles).await?;
            return Ok(OrgChange::SetUserRoles {
                user,
                username,
                roles,
                before,
            });
        }
        if let Some(person) = &update.person {
            if *update
                != (UserUpdate {
                    person: Some(person.clone()),
                    ..UserUpdate::default()
                })
            {
                return Err(alone("person"));
            }
            let person = person
                .as_deref()
                .map(|p| validate_name("person", p, 100))
                .transpose()?;
            return Ok(OrgChange::SetPerson {
                user,
                username,
                person,
            });
        }
        match &update.password {
            Some(password)
                if *update
                    == (UserUpdate {
                        password: Some(password.clone()),
                        ..UserUpdate::default()
                    }) =>
            {
                validate_password(&username, password)?;
                let password = password.clone();
                let hash = tokio::task::spawn_blocking(move || hash_password(&password))
                    .await
                    .map_err(|e| ServiceError::Internal(e.to_string()))??;
                Ok(OrgChange::SetPassword {
                    user,
                    username,
                    hash,
                })
            }
            _ => Err(alone("password")),
        }
    }

    /// Every unit (any authenticated user: the organisation chart is not secret).
    pub async fn list_units(&self, subject: &Subject) -> Result<Vec<UnitView>> {
        let _ = subject;
        let rows = self.store.units().await?;
        let name_of = |id: UnitId| rows.iter().find(|r| r.id == id).map(|r| r.name.clone());
        Ok(rows
            .iter()
            .map(|r| UnitView {
                id: r.id,
                name: r.name.clone(),
                parent: r.parent.and_then(name_of),
            })
            .collect())
    }

    /// Creates a unit (needs `manage_users`).
    pub async fn create_unit(
        &self,
        subject: &Subject,
        name: &str,
        parent: Option<&str>,
    ) -> Result<UnitView> {
        subject.require(Permission::ManageUsers)?;
        let name = validate_name("name", name, 200)?;
        let units = self.list_units(subject).await?;
        let parent_id = parent
            .map(|p| unit_by_name(&units, p, "parent"))
            .transpose()?;
        let mut tx = self.store.begin().await?;
        let id = tx
            .insert_unit(&name, parent_id, subject.now)
            .await
            .map_err(taken(format!("a unit named `{name}` exists")))?;
        let detail = format!("unit {name}; parent: {}", parent.unwrap_or(""));
        log_change(&mut tx, subject, "unit.create", &["name", "parent"], detail).await?;
        tx.bump_epoch().await?;
        tx.commit().await?;
        Ok(UnitView {
            id,
            name,
            parent: parent.map(str::to_owned),
        })
    }

    /// Renames a unit or moves it under another (needs `manage_users`). Moving a unit
    /// renumbers units only; no record is rewritten.
    pub async fn update_unit(
        &self,
        subject: &Subject,
        name: &str,
        new_name: Option<&str>,
        parent: Option<Option<&str>>,
    ) -> Result<UnitView> {
        subject.require(Permission::ManageUsers)?;
        let units = self.list_units(subject).await?;
        let id = units
            .iter()
            .find(|u| u.name == name)
            .map(|u| u.id)
            .ok_or(ServiceError::NotFound)?;
        let new_name = new_name
            .map(|n| validate_name("name", n, 200))
            .transpose()?;
        let parent_id = match parent {
            None => None,
            Some(None) => Some(None),
            Some(Some(p)) => {
                let parent_id = unit_by_name(&units, p, "parent")?;
                // Walk up from the new parent: meeting the unit itself means a cycle.
                let mut current = Some(parent_id);
                while let Some(c) = current {
                    if c == id {
                        return Err(ServiceError::invalid(
                            "parent",
                            "the unit tree would become a cycle",
                        ));
                    }
                    current = subject.snapshot.unit_parent(c);
                }
                Some(Some(parent_id))
            }
        };
        let mut tx = self.store.begin().await?;
        tx.update_unit(id, new_name.as_deref(), parent_id).await?;
        let changed: Vec<&str> = [("name", new_name.is_some()), ("parent", parent.is_some())]
            .into_iter()
            .filter_map(|(field, changed)| changed.then_some(field))
            .collect();
        log_change(
            &mut tx,
            subject,
            "unit.update",
            &changed,
            format!("unit {name}"),
        )
        .await?;
        tx.bump_epoch().await?;
        tx.commit().await?;
        let units = self.list_units(subject).await?;
        units
            .into_iter()
            .find(|u| u.id == id)
            .ok_or(ServiceError::NotFound)
    }

    /// Every role. Anyone may see names; grants and permissions need `manage_roles` or
    /// `manage_users`.
    pub async fn list_roles(&self, subject: &Subject) -> Result<Vec<RoleView>> {
        let mut roles = self.store.roles().await?;
        if !subject.can(Permission::ManageRoles) && !subject.can(Permission::ManageUsers) {
            for role in &mut roles {
                role.grants.clear();
                role.permissions.clear();
                role.fields.clear();
            }
        }
        Ok(roles)
    }

    /// Creates a role (needs `manage_roles`; waits for a second administrator under four eyes).
    pub async fn create_role(
        &self,
        subject: &Subject,
        input: RoleInput,
    ) -> Result<Outcome<RoleView>> {
        subject.require(Permission::ManageRoles)?;
        let name = validate_name("name", &input.name, 100)?;
        validate_field_rules(&input.fields)?;
        let input = RoleInput { name, ..input };
        match self
            .submit_org_change(subject, OrgChange::CreateRole(input))
            .await?
        {
            Outcome::Done(Created::Role(id)) => Ok(Outcome::Done(self.role(id).await?)),
            Outcome::Done(_) => Err(ServiceError::Internal("no role created".into())),
            Outcome::Pending(view) => Ok(Outcome::Pending(view)),
        }
    }

    /// Replaces a role's content (needs `manage_roles`); with `version`, only if unchanged. A
    /// change held under four eyes is applied only if the role is still at the version read.
    pub async fn update_role(
        &self,
        subject: &Subject,
        id: RoleId,
        version: Option<i64>,
        input: RoleInput,
    ) -> Result<Outcome<RoleView>> {
        subject.require(Permission::ManageRoles)?;
        let current = self.role(id).await?;
        if version.is_some_and(|v| v != current.version) {
            return Err(ServiceError::Conflict(
                "the role was changed by someone else; read it again".into(),
            ));
        }
        let name = validate_name("name", &input.name, 100)?;
        validate_field_rules(&input.fields)?;
        let change = OrgChange::UpdateRole {
            id,
            version: Some(current.version),
            input: RoleInput { name, ..input },
        };
        match self.submit_org_change(subject, change).await? {
            Outcome::Done(_) => Ok(Outcome::Done(self.role(id).await?)),
            Outcome::Pending(view) => Ok(Outcome::Pending(view)),
        }
    }

    /// Sets whether an object's records are decided by their own grants or by their customer
    /// (needs `manage_roles`; waits under four eyes). Customers are always decided by their own
    /// grants.
    pub async fn set_object_control(
        &self,
        subject: &Subject,
        object: ObjectType,
        control: Control,
    ) -> Result<Outcome<()>> {
        subject.require(Permission::ManageRoles)?;
        if object == ObjectType::Customers {
            return Err(ServiceError::invalid(
                "object",
                "customers are always decided by their own grants",
            ));
        }
        Ok(
            match self
                .submit_org_change(subject, OrgChange::SetControl { object, control })
                .await?
            {
                Outcome::Done(_) => Outcome::Done(()),
                Outcome::Pending(view) => Outcome::Pending(view),
            },
        )
    }

    async fn role(&self, id: RoleId) -> Result<RoleView> {
        self.store
            .roles()
            .await?
            .into_iter()
            .find(|r| r.id == id)
            .ok_or(ServiceError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords_are_checked() {
        assert!(validate_username("rep1").is_ok());
        assert!(validate_username("portal-acme").is_ok());
        for bad in ["", "Rep1", "a b", "x'--", &"a".repeat(65)] {
            assert!(validate_username(bad).is_err(), "{bad}");
        }
        assert!(validate_password("rep1", "short").is_err());
        assert!(validate_password("rep1", "twelve chars").is_ok());
    }
}
