//! Shares and record teams (rows of `record_shares`), sharing and restriction rules (JSON
//! definitions with ids), and portal users' accounts.
//!
//! Shares are record data: they are read with the record (`records.rs`) and tested in SQL by
//! the list filter, so adding one does not bump the permission epoch. Rules are part of the
//! organisation's model: changing one does (the caller bumps it in the same transaction).

use serde_json::{json, Value as Json};
use sqlx::Row;
use warden_policy::{
    Action, Audience, ObjectType, Principal, RestrictionRule, RoleId, RuleSource, Share,
    ShareAccess, ShareKind, SharingRule, Timestamp, UnitId, UserId,
};

use crate::approvals::{criteria_from_json, criteria_to_json};
use crate::{Result, Store, StoreError, Tx};

/// One share or team place as listed, with who gave it and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareRow {
    pub id: i64,
    pub object: ObjectType,
    pub record_id: i64,
    pub share: Share,
    pub created_by: Option<UserId>,
    pub created_at: Timestamp,
}

/// A principal as JSON: `{"user": ID}`, `{"unit": ID}` or `{"role": ID}`.
pub fn principal_to_json(principal: Principal) -> Json {
    json!({ principal.kind(): principal.id() })
}

pub fn principal_from_json(value: &Json) -> std::result::Result<Principal, String> {
    let object = value
        .as_object()
        .filter(|m| m.len() == 1)
        .ok_or("a principal is {\"user\"|\"unit\"|\"role\": id}")?;
    let (kind, id) = object.iter().next().ok_or("an empty principal")?;
    let id = id.as_i64().ok_or("a principal's id is a number")?;
    Principal::from_parts(kind, id).ok_or_else(|| format!("unknown principal kind `{kind}`"))
}

/// A sharing rule's stored definition (its id, name and object are columns).
pub fn sharing_rule_to_json(rule: &SharingRule) -> Json {
    let source = match &rule.source {
        RuleSource::Criteria(criteria) => json!({ "when": criteria_to_json(criteria) }),
        RuleSource::OwnedByUnit(unit) => json!({ "owned_by_unit": unit.0 }),
    };
    json!({
        "source": source,
        "share_with": principal_to_json(rule.share_with),
        "access": rule.access.as_str(),
    })
}

pub fn sharing_rule_from_json(
    id: i64,
    name: String,
    object: ObjectType,
    value: &Json,
) -> std::result::Result<SharingRule, String> {
    let source = value.get("source").ok_or("no source")?;
    let source = if let Some(when) = source.get("when") {
        RuleSource::Criteria(criteria_from_json(when)?)
    } else if let Some(unit) = source.get("owned_by_unit").and_then(Json::as_i64) {
        RuleSource::OwnedByUnit(UnitId(unit))
    } else {
        return Err("a source is {\"when\": …} or {\"owned_by_unit\": id}".into());
    };
    Ok(SharingRule {
        id,
        name,
        object,
        source,
        share_with: principal_from_json(value.get("share_with").ok_or("no share_with")?)?,
        access: value
            .get("access")
            .and_then(Json::as_str)
            .and_then(ShareAccess::parse)
            .ok_or("access is read or edit")?,
    })
}

/// A restriction rule's stored definition.
pub fn restriction_rule_to_json(rule: &RestrictionRule) -> Json {
    let applies_to = match rule.applies_to {
        Audience::Everyone => json!({ "everyone": true }),
        Audience::Role(role) => json!({ "role": role.0 }),
        Audience::Unit(unit) => json!({ "unit": unit.0 }),
        Audience::ExceptRole(role) => json!({ "except_role": role.0 }),
    };
    json!({
        "applies_to": applies_to,
        "actions": rule.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "only": criteria_to_json(&rule.only),
    })
}

pub fn restriction_rule_from_json(
    id: i64,
    name: String,
    object: ObjectType,
    value: &Json,
) -> std::result::Result<RestrictionRule, String> {
    let applies_to = value.get("applies_to").ok_or("no applies_to")?;
    let id_of = |key: &str| applies_to.get(key).and_then(Json::as_i64);
    let applies_to = if let Some(role) = id_of("role") {
        Audience::Role(RoleId(role))
    } else if let Some(unit) = id_of("unit") {
        Audience::Unit(UnitId(unit))
    } else if let Some(role) = id_of("except_role") {
        Audience::ExceptRole(RoleId(role))
    } else if applies_to.get("everyone").and_then(Json::as_bool) == Some(true) {
        Audience::Everyone
    } else {
        return Err("unknown applies_to".into());
    };
    let actions = value
        .get("actions")
        .and_then(Json::as_array)
        .map(|items| {
            items
                .iter()
                .map(|a| {
                    a.as_str()
                        .and_then(|a| Action::parse(a).ok())
                        .ok_or_else(|| format!("unknown action {a}"))
                })
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    Ok(RestrictionRule {
        id,
        name,
        object,
        applies_to,
        actions,
        only: criteria_from_json(value.get("only").ok_or("no only")?)?,
    })
}

fn corrupt(table: &'static str, message: String) -> StoreError {
    StoreError::Corrupt {
        table,
        column: "definition",
        message,
    }
}

/// Reads a rules table in id order, decoding each definition.
async fn read_rules<T>(
    conn: &mut sqlx::AnyConnection,
    table: &'static str,
    decode: impl Fn(i64, String, ObjectType, &Json) -> std::result::Result<T, String>,
) -> Result<Vec<T>> {
    let rows = sqlx::query(&format!(
        "SELECT id, name, object, definition FROM {table} ORDER BY id"
    ))
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| {
            let object = ObjectType::parse(&row.try_get::<String, _>(2)?)
                .map_err(|e| corrupt(table, e.to_string()))?;
            let definition: Json = serde_json::from_str(&row.try_get::<String, _>(3)?)
                .map_err(|e| corrupt(table, e.to_string()))?;
            decode(row.try_get(0)?, row.try_get(1)?, object, &definition)
                .map_err(|message| corrupt(table, message))
        })
        .collect()
}

pub(crate) async fn read_sharing_rules(conn: &mut sqlx::AnyConnection) -> Result<Vec<SharingRule>> {
    read_rules(conn, "sharing_rules", sharing_rule_from_json).await
}

pub(crate) async fn read_restriction_rules(
    conn: &mut sqlx::AnyConnection,
) -> Result<Vec<RestrictionRule>> {
    read_rules(conn, "restriction_rules", restriction_rule_from_json).await
}

fn decode_share_row(row: &sqlx::any::AnyRow) -> Result<ShareRow> {
    let bad = |m: String| StoreError::Corrupt {
        table: "record_shares",
        column: "*",
        message: m,
    };
    let kind: String = row.try_get(3)?;
    let principal_kind: String = row.try_get(4)?;
    let access: String = row.try_get(6)?;
    Ok(ShareRow {
        id: row.try_get(0)?,
        object: ObjectType::parse(&row.try_get::<String, _>(1)?).map_err(|e| bad(e.to_string()))?,
        record_id: row.try_get(2)?,
        share: Share {
            kind: ShareKind::parse(&kind).ok_or_else(|| bad(kind.clone()))?,
            principal: Principal::from_parts(&principal_kind, row.try_get(5)?)
                .ok_or_else(|| bad(principal_kind.clone()))?,
            access: ShareAccess::parse(&access).ok_or_else(|| bad(access.clone()))?,
        },
        created_by: row.try_get::<Option<i64>, _>(7)?.map(UserId),
        created_at: row.try_get(8)?,
    })
}

const SHARE_COLUMNS: &str = "id, object, record_id, kind, principal_kind, principal_id, access, \
                             created_by, created_at";

impl Store {
    /// The shares and team places of one record, oldest first.
    pub async fn shares_of(&self, object: ObjectType, record_id: i64) -> Result<Vec<ShareRow>> {
        sqlx::query(&format!(
            "SELECT {SHARE_COLUMNS} FROM record_shares WHERE object = $1 AND record_id = $2 \
             ORDER BY id"
        ))
        .bind(object.as_str())
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(decode_share_row)
        .collect()
    }

    /// The sharing rules with their ids.
    pub async fn sharing_rules(&self) -> Result<Vec<SharingRule>> {
        let mut conn = self.pool.acquire().await?;
        read_sharing_rules(&mut conn).await
    }

    /// The restriction rules with their ids.
    pub async fn restriction_rules(&self) -> Result<Vec<RestrictionRule>> {
        let mut conn = self.pool.acquire().await?;
        read_restriction_rules(&mut conn).await
    }

    /// How many shares and team places exist (for the benchmark and reports).
    pub async fn share_count(&self) -> Result<i64> {
        Ok(
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM record_shares")
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

impl Tx {
    /// Gives `share` on a record, or changes the access of the same kind of entry for the same
    /// principal. Returns the entry's id.
    pub async fn put_share(
        &mut self,
        object: ObjectType,
        record_id: i64,
        share: Share,
        by: UserId,
        now: Timestamp,
    ) -> Result<i64> {
        sqlx::query(
            "UPDATE record_shares SET access = $1, created_by = $2, created_at = $3 \
             WHERE object = $4 AND record_id = $5 AND kind = $6 AND principal_kind = $7 \
             AND principal_id = $8",
        )
        .bind(share.access.as_str())
        .bind(by.0)
        .bind(now)
        .bind(object.as_str())
        .bind(record_id)
        .bind(share.kind.as_str())
        .bind(share.principal.kind())
        .bind(share.principal.id())
        .execute(&mut *self.tx)
        .await?;
        let existing: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM record_shares WHERE object = $1 AND record_id = $2 AND kind = $3 \
             AND principal_kind = $4 AND principal_id = $5",
        )
        .bind(object.as_str())
        .bind(record_id)
        .bind(share.kind.as_str())
        .bind(share.principal.kind())
        .bind(share.principal.id())
        .fetch_optional(&mut *self.tx)
        .await?;
        if let Some(id) = existing {
            return Ok(id);
        }
        let id = self.allocate_id_in("record_shares").await?;
        Ok(sqlx::query_scalar(
            "INSERT INTO record_shares (id, object, record_id, kind, principal_kind, \
             principal_id, access, created_by, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(id)
        .bind(object.as_str())
        .bind(record_id)
        .bind(share.kind.as_str())
        .bind(share.principal.kind())
        .bind(share.principal.id())
        .bind(share.access.as_str())
        .bind(by.0)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    /// Many shares at once (seeding and benchmarks): one statement per thousand.
    pub async fn insert_shares(
        &mut self,
        object: ObjectType,
        shares: &[(i64, Share)],
        now: Timestamp,
    ) -> Result<()> {
        for chunk in shares.chunks(1_000) {
            let ids = self.allocate_ids_in("record_shares", chunk.len()).await?;
            let mut sql = crate::sql::SqlBuilder::positional(
                "INSERT INTO record_shares (id, object, record_id, kind, principal_kind, \
                 principal_id, access, created_at) VALUES ",
                self.backend(),
            );
            for (i, ((record, share), id)) in chunk.iter().zip(ids).enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind_int(id)
                    .push(", ")
                    .bind(crate::sql::Param::Text(Some(object.as_str().to_owned())))
                    .push(", ")
                    .bind_int(*record)
                    .push(", ")
                    .bind(crate::sql::Param::Text(Some(
                        share.kind.as_str().to_owned(),
                    )))
                    .push(", ")
                    .bind(crate::sql::Param::Text(Some(
                        share.principal.kind().to_owned(),
                    )))
                    .push(", ")
                    .bind_int(share.principal.id())
                    .push(", ")
                    .bind(crate::sql::Param::Text(Some(
                        share.access.as_str().to_owned(),
                    )))
                    .push(", ")
                    .bind_int(now)
                    .push(")");
            }
            sql.push(" ON CONFLICT DO NOTHING");
            sql.query().execute(&mut *self.tx).await?;
        }
        Ok(())
    }

    /// One share or team place by id, if it is on the record.
    pub async fn share_on(
        &mut self,
        object: ObjectType,
        record_id: i64,
        id: i64,
    ) -> Result<Option<ShareRow>> {
        sqlx::query(&format!(
            "SELECT {SHARE_COLUMNS} FROM record_shares WHERE id = $1 AND object = $2 \
             AND record_id = $3"
        ))
        .bind(id)
        .bind(object.as_str())
        .bind(record_id)
        .fetch_optional(&mut *self.tx)
        .await?
        .as_ref()
        .map(decode_share_row)
        .transpose()
    }

    /// Removes a share or team place by id.
    pub async fn delete_share(&mut self, id: i64) -> Result<()> {
        let done = sqlx::query("DELETE FROM record_shares WHERE id = $1")
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Stores a new sharing rule (its `id` is ignored); returns the id.
    pub async fn insert_sharing_rule(&mut self, rule: &SharingRule, now: Timestamp) -> Result<i64> {
        self.insert_rule(
            "sharing_rules",
            &rule.name,
            rule.object,
            &sharing_rule_to_json(rule),
            now,
        )
        .await
    }

    /// Replaces a sharing rule.
    pub async fn update_sharing_rule(&mut self, rule: &SharingRule, now: Timestamp) -> Result<()> {
        self.update_rule(
            "sharing_rules",
            rule.id,
            &rule.name,
            rule.object,
            &sharing_rule_to_json(rule),
            now,
        )
        .await
    }

    /// Stores a new restriction rule (its `id` is ignored); returns the id.
    pub async fn insert_restriction_rule(
        &mut self,
        rule: &RestrictionRule,
        now: Timestamp,
    ) -> Result<i64> {
        self.insert_rule(
            "restriction_rules",
            &rule.name,
            rule.object,
            &restriction_rule_to_json(rule),
            now,
        )
        .await
    }

    /// Replaces a restriction rule.
    pub async fn update_restriction_rule(
        &mut self,
        rule: &RestrictionRule,
        now: Timestamp,
    ) -> Result<()> {
        self.update_rule(
            "restriction_rules",
            rule.id,
            &rule.name,
            rule.object,
            &restriction_rule_to_json(rule),
            now,
        )
        .await
    }

    /// Deletes a sharing rule (`restriction: false`) or a restriction rule.
    pub async fn delete_rule(&mut self, restriction: bool, id: i64) -> Result<()> {
        let table = if restriction {
            "restriction_rules"
        } else {
            "sharing_rules"
        };
        let done = sqlx::query(&format!("DELETE FROM {table} WHERE id = $1"))
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn insert_rule(
        &mut self,
        table: &'static str,
        name: &str,
        object: ObjectType,
        definition: &Json,
        now: Timestamp,
    ) -> Result<i64> {
        Ok(sqlx::query_scalar(&format!(
            "INSERT INTO {table} (name, object, definition, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $4) RETURNING id"
        ))
        .bind(name)
        .bind(object.as_str())
        .bind(definition.to_string())
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?)
    }

    async fn update_rule(
        &mut self,
        table: &'static str,
        id: i64,
        name: &str,
        object: ObjectType,
        definition: &Json,
        now: Timestamp,
    ) -> Result<()> {
        let done = sqlx::query(&format!(
            "UPDATE {table} SET name = $1, object = $2, definition = $3, updated_at = $4 \
             WHERE id = $5"
        ))
        .bind(name)
        .bind(object.as_str())
        .bind(definition.to_string())
        .bind(now)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    /// Makes a user a portal user of a customer account (`None`: an internal user again).
    pub async fn set_portal_account(&mut self, user: UserId, account: Option<i64>) -> Result<()> {
        sqlx::query("UPDATE users SET portal_account = $1 WHERE id = $2")
            .bind(account)
            .bind(user.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
