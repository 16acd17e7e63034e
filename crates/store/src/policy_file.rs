//! What applying a policy file needs beyond the admin use cases: removing a unit or a role
//! the file no longer names (refused while anything still points at it), and taking the
//! permission epoch's row first so that a plan made at one epoch is written only at that epoch.

use warden_policy::{RoleId, UnitId};

use crate::{Result, StoreError, Tx};

/// The tables whose rows belong to a unit (`unit_id`), named in refusals.
const UNIT_TABLES: &[&str] = &[
    "users",
    "customers",
    "contacts",
    "deals",
    "contracts",
    "activities",
];

impl Tx {
    /// Locks the permission epoch's row and returns the epoch: no other permission change can
    /// commit until this transaction ends, so a plan made at this epoch is still current.
    pub async fn lock_epoch(&mut self) -> Result<i64> {
        // An UPDATE that changes nothing still takes the row lock on PostgreSQL (SQLite has one
        // writer anyway), which a SELECT under READ COMMITTED would not.
        let epoch: i64 = sqlx::query_scalar(
            "UPDATE permission_epoch SET epoch = epoch WHERE id = 1 RETURNING epoch",
        )
        .fetch_one(&mut *self.tx)
        .await?;
        Ok(epoch)
    }

    /// Removes a unit that nothing refers to: no user, record, child unit or share.
    pub async fn delete_unit(&mut self, id: UnitId, name: &str) -> Result<()> {
        let mut uses = Vec::new();
        for table in UNIT_TABLES {
            // The table names are constants above, never input.
            let n: i64 = sqlx::query_scalar(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE unit_id = $1"
            ))
            .bind(id.0)
            .fetch_one(&mut *self.tx)
            .await?;
            if n > 0 {
                uses.push(format!("{n} {table}"));
            }
        }
        let children: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM units WHERE parent_id = $1")
                .bind(id.0)
                .fetch_one(&mut *self.tx)
                .await?;
        if children > 0 {
            uses.push(format!("{children} units below it"));
        }
        let shares = self.shares_naming("unit", id.0).await?;
        if shares > 0 {
            uses.push(format!("{shares} shares"));
        }
        if !uses.is_empty() {
            return Err(StoreError::Reference(format!(
                "unit `{name}` still has {}",
                uses.join(", ")
            )));
        }
        sqlx::query("DELETE FROM units WHERE id = $1")
            .bind(id.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Removes a role nobody holds and no share names, with its access rules (grants,
    /// permissions and field rules go with it by cascade).
    pub async fn delete_role(&mut self, id: RoleId, name: &str) -> Result<()> {
        let holders: i64 = sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM user_roles WHERE role_id = $1",
        )
        .bind(id.0)
        .fetch_one(&mut *self.tx)
        .await?;
        let shares = self.shares_naming("role", id.0).await?;
        if holders > 0 || shares > 0 {
            return Err(StoreError::Reference(format!(
                "role `{name}` is still held by {holders} users and named by {shares} shares"
            )));
        }
        sqlx::query("DELETE FROM access_rules WHERE owner_kind = 'role' AND owner_id = $1")
            .bind(id.0)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM roles WHERE id = $1")
            .bind(id.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    async fn shares_naming(&mut self, kind: &str, id: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM record_shares \
             WHERE principal_kind = $1 AND principal_id = $2",
        )
        .bind(kind)
        .bind(id)
        .fetch_one(&mut *self.tx)
        .await?)
    }
}
