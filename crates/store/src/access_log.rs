//! The access log: one row per recorded access (a reveal of a masked field, and — as the log
//! grows — every read and write of customer data, login and permission change), appended in
//! the transaction of the access it records, so that nothing is done unrecorded.

use sqlx::Row;
use warden_policy::{ObjectType, Timestamp, UserId};

use crate::{Result, Store, Tx};

/// One entry of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    pub id: i64,
    pub at: Timestamp,
    pub actor_id: Option<UserId>,
    /// The actor's username when the entry was written (it survives renames and deletions).
    pub actor: String,
    /// What was done: `reveal`, …
    pub action: String,
    pub object: Option<ObjectType>,
    pub record_id: Option<i64>,
    /// The fields concerned (for a reveal, the field revealed).
    pub fields: Vec<String>,
    /// The client's address.
    pub client: Option<String>,
    pub detail: String,
}

impl Tx {
    /// Appends an entry (its `id` is assigned by the database and returned).
    pub async fn append_access(&mut self, entry: &AccessEntry) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO access_log (at, actor_id, actor, action, object, record_id, fields, client, detail) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(entry.at)
        .bind(entry.actor_id.map(|u| u.0))
        .bind(entry.actor.as_str())
        .bind(entry.action.as_str())
        .bind(entry.object.map(|o| o.as_str()))
        .bind(entry.record_id)
        .bind(entry.fields.join(","))
        .bind(entry.client.as_deref())
        .bind(entry.detail.as_str())
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(id)
    }
}

impl Store {
    /// The entries about one record, oldest first.
    pub async fn access_entries_for(
        &self,
        object: ObjectType,
        record_id: i64,
    ) -> Result<Vec<AccessEntry>> {
        sqlx::query(
            "SELECT id, at, actor_id, actor, action, object, record_id, fields, client, detail \
             FROM access_log WHERE object = $1 AND record_id = $2 ORDER BY id",
        )
        .bind(object.as_str())
        .bind(record_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            let fields: String = row.try_get(7)?;
            Ok(AccessEntry {
                id: row.try_get(0)?,
                at: row.try_get(1)?,
                actor_id: row.try_get::<Option<i64>, _>(2)?.map(UserId),
                actor: row.try_get(3)?,
                action: row.try_get(4)?,
                object: row
                    .try_get::<Option<String>, _>(5)?
                    .and_then(|o| ObjectType::parse(&o).ok()),
                record_id: row.try_get(6)?,
                fields: fields
                    .split(',')
                    .filter(|f| !f.is_empty())
                    .map(str::to_owned)
                    .collect(),
                client: row.try_get(8)?,
                detail: row.try_get(9)?,
            })
        })
        .collect()
    }
}
