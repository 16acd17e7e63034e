//! Login sessions and API tokens, stored by the hash of their secret (never the secret).

use sqlx::Row;
use warden_policy::{Timestamp, UserId};

use crate::{Result, Store, Tx};

/// A stored session or token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub user: UserId,
    pub kind: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_used_at: Timestamp,
}

impl Store {
    /// Looks a session up together with the current permission epoch, in one query: the
    /// request path reads both on every call.
    pub async fn session_and_epoch(&self, token_hash: &str) -> Result<(Option<SessionRow>, i64)> {
        let row = sqlx::query(
            "SELECT e.epoch, s.user_id, s.kind, s.created_at, s.expires_at, s.last_used_at \
             FROM permission_epoch e LEFT JOIN sessions s ON s.token_hash = $1 WHERE e.id = 1",
        )
        .bind(token_hash)
        .fetch_one(&self.pool)
        .await?;
        let epoch: i64 = row.try_get(0)?;
        let session = match row.try_get::<Option<i64>, _>(1)? {
            None => None,
            Some(user) => Some(SessionRow {
                user: UserId(user),
                kind: row.try_get(2)?,
                created_at: row.try_get(3)?,
                expires_at: row.try_get(4)?,
                last_used_at: row.try_get(5)?,
            }),
        };
        Ok((session, epoch))
    }

    /// Looks a session up by the hash of its token.
    pub async fn session(&self, token_hash: &str) -> Result<Option<SessionRow>> {
        let row = sqlx::query("SELECT user_id, kind, created_at, expires_at, last_used_at FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| {
            Ok(SessionRow {
                user: UserId(row.try_get(0)?),
                kind: row.try_get(1)?,
                created_at: row.try_get(2)?,
                expires_at: row.try_get(3)?,
                last_used_at: row.try_get(4)?,
            })
        })
        .transpose()
    }
}

impl Tx {
    /// Stores a new session.
    pub async fn insert_session(
        &mut self,
        token_hash: &str,
        user: UserId,
        kind: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, kind, created_at, expires_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $4)")
            .bind(token_hash)
            .bind(user.0)
            .bind(kind)
            .bind(now)
            .bind(expires_at)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Ends one session.
    pub async fn delete_session(&mut self, token_hash: &str) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(token_hash)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Ends every session of a user.
    pub async fn delete_sessions_of(&mut self, user: UserId) -> Result<()> {
        sqlx::query("DELETE FROM sessions WHERE user_id = $1")
            .bind(user.0)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }
}
