//! Access-review campaigns and their items: stored as opened, decided item by item, and
//! closed once, the revocations applied in the closing transaction.

use sqlx::any::AnyRow;
use sqlx::Row;
use warden_policy::{RoleId, Timestamp, UserId};

use crate::{Result, Store, StoreError, Tx};

/// A campaign as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    /// The scope as given (JSON text).
    pub scope: String,
    pub due_at: Timestamp,
    /// `keep` or `revoke`: what happens to items undecided at close.
    pub undecided: String,
    /// `open` or `closed`.
    pub state: String,
    pub created_by: UserId,
    pub created_at: Timestamp,
    pub closed_at: Option<Timestamp>,
}

/// One role assignment under review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewItemRow {
    pub id: i64,
    pub campaign_id: i64,
    pub user: UserId,
    pub role: RoleId,
    pub reviewer: UserId,
    /// `keep` or `revoke`, once decided.
    pub decision: Option<String>,
    pub comment: String,
    pub decided_at: Option<Timestamp>,
    /// Set at close: `kept` or `revoked`.
    pub outcome: Option<String>,
}

const ITEM_COLUMNS: &str =
    "id, campaign_id, user_id, role_id, reviewer_id, decision, comment, decided_at, outcome";

fn item_from_row(row: &AnyRow) -> Result<ReviewItemRow> {
    Ok(ReviewItemRow {
        id: row.try_get(0)?,
        campaign_id: row.try_get(1)?,
        user: UserId(row.try_get(2)?),
        role: RoleId(row.try_get(3)?),
        reviewer: UserId(row.try_get(4)?),
        decision: row.try_get(5)?,
        comment: row.try_get(6)?,
        decided_at: row.try_get(7)?,
        outcome: row.try_get(8)?,
    })
}

impl Tx {
    /// Opens a campaign with its items `(user, role, reviewer)`; returns its id.
    #[allow(clippy::too_many_arguments, reason = "one row's columns")]
    pub async fn insert_campaign(
        &mut self,
        name: &str,
        scope: &str,
        due_at: Timestamp,
        undecided: &str,
        created_by: UserId,
        now: Timestamp,
        items: &[(UserId, RoleId, UserId)],
    ) -> Result<i64> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO review_campaigns (name, scope, due_at, undecided, state, created_by, created_at) \
             VALUES ($1, $2, $3, $4, 'open', $5, $6) RETURNING id",
        )
        .bind(name)
        .bind(scope)
        .bind(due_at)
        .bind(undecided)
        .bind(created_by.0)
        .bind(now)
        .fetch_one(&mut *self.tx)
        .await?;
        for (user, role, reviewer) in items {
            sqlx::query(
                "INSERT INTO review_items (campaign_id, user_id, role_id, reviewer_id) \
                 VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(user.0)
            .bind(role.0)
            .bind(reviewer.0)
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(id)
    }

    /// Records a reviewer's decision on an item of an open campaign; `false` when there is no
    /// such item for this reviewer (or the campaign is closed).
    pub async fn decide_review_item(
        &mut self,
        campaign: i64,
        item: i64,
        reviewer: UserId,
        decision: &str,
        comment: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE review_items SET decision = $1, comment = $2, decided_at = $3 \
             WHERE id = $4 AND campaign_id = $5 AND reviewer_id = $6 AND outcome IS NULL \
             AND EXISTS (SELECT 1 FROM review_campaigns c WHERE c.id = $5 AND c.state = 'open')",
        )
        .bind(decision)
        .bind(comment)
        .bind(now)
        .bind(item)
        .bind(campaign)
        .bind(reviewer.0)
        .execute(&mut *self.tx)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Closes an open campaign: every item gets its outcome (its decision, or the campaign's
    /// rule when undecided) and every revoked assignment is removed. Returns the items.
    /// The caller bumps the permission epoch in the same transaction.
    pub async fn close_campaign(
        &mut self,
        campaign: i64,
        now: Timestamp,
    ) -> Result<Vec<ReviewItemRow>> {
        let undecided: Option<String> = sqlx::query_scalar(
            "UPDATE review_campaigns SET state = 'closed', closed_at = $1 \
             WHERE id = $2 AND state = 'open' RETURNING undecided",
        )
        .bind(now)
        .bind(campaign)
        .fetch_optional(&mut *self.tx)
        .await?;
        let undecided = undecided.ok_or(StoreError::Conflict)?;
        sqlx::query(
            "UPDATE review_items SET outcome = CASE \
             WHEN decision = 'revoke' OR (decision IS NULL AND $1 = 'revoke') THEN 'revoked' \
             ELSE 'kept' END WHERE campaign_id = $2",
        )
        .bind(undecided.as_str())
        .bind(campaign)
        .execute(&mut *self.tx)
        .await?;
        let items = sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM review_items WHERE campaign_id = $1 ORDER BY id"
        ))
        .bind(campaign)
        .fetch_all(&mut *self.tx)
        .await?
        .iter()
        .map(item_from_row)
        .collect::<Result<Vec<_>>>()?;
        for item in items
            .iter()
            .filter(|i| i.outcome.as_deref() == Some("revoked"))
        {
            sqlx::query("DELETE FROM user_roles WHERE user_id = $1 AND role_id = $2")
                .bind(item.user.0)
                .bind(item.role.0)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(items)
    }
}

impl Store {
    /// Open campaigns whose due date has passed at `now`.
    pub async fn due_campaigns(&self, now: Timestamp) -> Result<Vec<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM review_campaigns WHERE state = 'open' AND due_at <= $1 ORDER BY id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// One campaign.
    pub async fn campaign(&self, id: i64) -> Result<Option<CampaignRow>> {
        let row = sqlx::query(
            "SELECT id, name, scope, due_at, undecided, state, created_by, created_at, closed_at \
             FROM review_campaigns WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CampaignRow {
                id: row.try_get(0)?,
                name: row.try_get(1)?,
                scope: row.try_get(2)?,
                due_at: row.try_get(3)?,
                undecided: row.try_get(4)?,
                state: row.try_get(5)?,
                created_by: UserId(row.try_get(6)?),
                created_at: row.try_get(7)?,
                closed_at: row.try_get(8)?,
            })
        })
        .transpose()
    }

    /// A campaign's items, all or only one reviewer's, in id order.
    pub async fn review_items(
        &self,
        campaign: i64,
        reviewer: Option<UserId>,
    ) -> Result<Vec<ReviewItemRow>> {
        sqlx::query(&format!(
            "SELECT {ITEM_COLUMNS} FROM review_items WHERE campaign_id = $1 \
             AND ($2 IS NULL OR reviewer_id = $2) ORDER BY id"
        ))
        .bind(campaign)
        .bind(reviewer.map(|r| r.0))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(item_from_row)
        .collect()
    }
}
