//! Access-control state: second factors and recovery codes, login throttling, access rules
//! (stored as JSON), API tokens, and session activity.

use std::net::IpAddr;

use serde_json::{json, Value as Json};
use sqlx::Row;
use warden_policy::access::{AccessRules, LoginHours};
use warden_policy::{AccessOwner, RoleId, Timestamp, UserId};

use crate::crypto::FieldRef;
use crate::{Result, Store, StoreError, Tx};

/// Where a user's TOTP secret is stored (encrypted, bound to the user's row).
fn totp_field(user: UserId) -> FieldRef {
    FieldRef {
        table: "users",
        id: user.0,
        column: "totp_secret",
    }
}

/// A user's second-factor state.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpState {
    /// Base32 secret (pending until `enabled`).
    pub secret: Option<String>,
    pub enabled: bool,
    /// The last time step whose code was accepted.
    pub last_step: i64,
}

impl std::fmt::Debug for TotpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpState")
            .field("secret", &self.secret.as_ref().map(|_| "<hidden>"))
            .field("enabled", &self.enabled)
            .field("last_step", &self.last_step)
            .finish()
    }
}

/// Failures and lock of one throttle key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThrottleState {
    pub failures: i64,
    pub last_failure_at: Timestamp,
    pub locked_until: Timestamp,
}

/// An API token as listed (never its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiTokenRow {
    /// A public identifier: the first 16 hex digits of the token's hash.
    pub id: String,
    pub name: String,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_used_at: Timestamp,
}

/// The stored (JSON) form of access rules.
pub fn rules_to_json(rules: &AccessRules) -> Json {
    json!({
        "ip_allow": rules.ip_allow.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
        "login_hours": rules.login_hours.as_ref().map(|h| json!({
            "time_zone": h.time_zone.iana_name().unwrap_or("UTC"),
            "days": h.days,
            "from": h.from,
            "to": h.to,
        })),
        "mfa_required": rules.mfa_required,
    })
}

/// Reads access rules from their stored (JSON) form.
pub fn rules_from_json(text: &str) -> std::result::Result<AccessRules, String> {
    let value: Json = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let ip_allow = value["ip_allow"]
        .as_array()
        .map(|nets| {
            nets.iter()
                .map(|n| {
                    n.as_str()
                        .unwrap_or_default()
                        .parse::<ipnet::IpNet>()
                        .map_err(|e| e.to_string())
                })
                .collect::<std::result::Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let login_hours = match &value["login_hours"] {
        Json::Null => None,
        hours => {
            let zone = hours["time_zone"].as_str().unwrap_or("UTC");
            let number = |key: &str| {
                hours[key]
                    .as_u64()
                    .ok_or_else(|| format!("login_hours.{key} is missing"))
            };
            Some(LoginHours {
                time_zone: jiff::tz::db().get(zone).map_err(|e| e.to_string())?,
                days: u8::try_from(number("days")?).map_err(|e| e.to_string())?,
                from: u16::try_from(number("from")?).map_err(|e| e.to_string())?,
                to: u16::try_from(number("to")?).map_err(|e| e.to_string())?,
            })
        }
    };
    Ok(AccessRules {
        ip_allow,
        login_hours,
        mfa_required: value["mfa_required"].as_bool().unwrap_or(false),
    })
}

fn owner_key(owner: AccessOwner) -> (&'static str, i64) {
    match owner {
        AccessOwner::Role(RoleId(id)) => ("role", id),
        AccessOwner::User(UserId(id)) => ("user", id),
    }
}

impl Store {
    /// The access rules of one role or user (empty rules when none are set).
    pub async fn access_rules(&self, owner: AccessOwner) -> Result<AccessRules> {
        let (kind, id) = owner_key(owner);
        let text: Option<String> = sqlx::query_scalar(
            "SELECT rules FROM access_rules WHERE owner_kind = $1 AND owner_id = $2",
        )
        .bind(kind)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        match text {
            None => Ok(AccessRules::default()),
            Some(text) => rules_from_json(&text).map_err(|message| StoreError::Corrupt {
                table: "access_rules",
                column: "rules",
                message,
            }),
        }
    }

    /// A user's second-factor state.
    pub async fn totp_state(&self, user: UserId) -> Result<TotpState> {
        let row = sqlx::query(
            "SELECT totp_secret, totp_enabled, totp_last_step FROM users WHERE id = $1",
        )
        .bind(user.0)
        .fetch_one(&self.pool)
        .await?;
        let secret: Option<String> = row.try_get(0)?;
        Ok(TotpState {
            secret: secret
                .map(|text| self.keys.decrypt(totp_field(user), &text))
                .transpose()?,
            enabled: row.try_get::<i64, _>(1)? != 0,
            last_step: row.try_get(2)?,
        })
    }

    /// The throttle state of a key.
    pub async fn throttle(&self, key: &str) -> Result<ThrottleState> {
        let row = sqlx::query(
            "SELECT failures, last_failure_at, locked_until FROM login_throttle WHERE key = $1",
        )
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        Ok(match row {
            None => ThrottleState::default(),
            Some(row) => ThrottleState {
                failures: row.try_get(0)?,
                last_failure_at: row.try_get(1)?,
                locked_until: row.try_get(2)?,
            },
        })
    }

    /// A user's API tokens.
    pub async fn api_tokens(&self, user: UserId) -> Result<Vec<ApiTokenRow>> {
        let rows = sqlx::query(
            "SELECT token_hash, name, created_at, expires_at, last_used_at FROM sessions WHERE user_id = $1 AND kind = 'api' ORDER BY created_at, token_hash",
        )
        .bind(user.0)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let hash: String = row.try_get(0)?;
                Ok(ApiTokenRow {
                    id: hash.chars().take(16).collect(),
                    name: row.try_get::<Option<String>, _>(1)?.unwrap_or_default(),
                    created_at: row.try_get(2)?,
                    expires_at: row.try_get(3)?,
                    last_used_at: row.try_get(4)?,
                })
            })
            .collect()
    }

    /// Records that a session was used at `now` (callers do this at most once a minute).
    pub async fn touch_session(&self, token_hash: &str, now: Timestamp) -> Result<()> {
        // Through a `Tx`, like every write: on SQLite an autocommit write beside the writer
        // lock made other writers' transactions fail with SQLITE_BUSY (500s under load; found
        // by the crash rounds, `docs/reliability.md`).
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET last_used_at = $1 WHERE token_hash = $2")
            .bind(now)
            .bind(token_hash)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }

    /// Counts a failed login for every key; locks a key for `lock_ms` once it reaches
    /// `threshold` consecutive failures (failures older than `window_ms` start over).
    ///
    /// Each count is one atomic upsert, so concurrent failures are all counted on PostgreSQL
    /// too (a read-then-write would lose updates between transactions).
    pub async fn record_login_failure(
        &self,
        keys: &[String],
        now: Timestamp,
        window_ms: i64,
        threshold: i64,
        lock_ms: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for key in keys {
            let failures: i64 = sqlx::query_scalar(
                "INSERT INTO login_throttle (key, failures, last_failure_at, locked_until) VALUES ($1, 1, $2, 0) \
                 ON CONFLICT (key) DO UPDATE SET \
                   failures = CASE WHEN $2 - login_throttle.last_failure_at > $3 THEN 1 ELSE login_throttle.failures + 1 END, \
                   last_failure_at = $2 \
                 RETURNING failures",
            )
            .bind(key)
            .bind(now)
            .bind(window_ms)
            .fetch_one(&mut *tx.tx)
            .await?;
            if failures >= threshold {
                // Each further failure at the threshold doubles the lock, up to a day.
                let extra = (failures - threshold).min(6);
                let until = now + (lock_ms << extra).min(24 * 60 * 60 * 1000);
                sqlx::query("UPDATE login_throttle SET locked_until = CASE WHEN locked_until < $2 THEN $2 ELSE locked_until END WHERE key = $1")
                    .bind(key)
                    .bind(until)
                    .execute(&mut *tx.tx)
                    .await?;
            }
        }
        tx.commit().await
    }

    /// Forgets the failures of a key (after a successful login, or an administrator's unlock).
    pub async fn clear_throttle(&self, key: &str) -> Result<()> {
        // Through a `Tx`: see `touch_session`.
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM login_throttle WHERE key = $1")
            .bind(key)
            .execute(&mut *tx.tx)
            .await?;
        tx.commit().await
    }
}

/// The throttle key of a username (whether or not it exists).
pub fn user_key(username: &str) -> String {
    format!("user:{username}")
}

/// The throttle key of a client address (IPv6 by its /64, one subscriber's usual prefix).
pub fn address_key(client: IpAddr) -> String {
    match client {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            format!("ip:{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
    }
}

impl Tx {
    /// Sets (or clears) the access rules of a role or user.
    pub async fn set_access_rules(
        &mut self,
        owner: AccessOwner,
        rules: Option<&AccessRules>,
    ) -> Result<()> {
        let (kind, id) = owner_key(owner);
        sqlx::query("DELETE FROM access_rules WHERE owner_kind = $1 AND owner_id = $2")
            .bind(kind)
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        if let Some(rules) = rules {
            sqlx::query(
                "INSERT INTO access_rules (owner_kind, owner_id, rules) VALUES ($1, $2, $3)",
            )
            .bind(kind)
            .bind(id)
            .bind(rules_to_json(rules).to_string())
            .execute(&mut *self.tx)
            .await?;
        }
        Ok(())
    }

    /// Starts a TOTP enrolment (the secret counts once confirmed).
    pub async fn set_totp_pending(&mut self, user: UserId, secret: &str) -> Result<()> {
        let sealed = self.keys.encrypt(totp_field(user), secret)?;
        sqlx::query(
            "UPDATE users SET totp_secret = $1, totp_enabled = 0, totp_last_step = 0 WHERE id = $2",
        )
        .bind(sealed)
        .bind(user.0)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Turns the enrolled TOTP on and replaces the recovery codes.
    pub async fn enable_totp(
        &mut self,
        user: UserId,
        step: i64,
        recovery_hashes: &[String],
    ) -> Result<()> {
        sqlx::query("UPDATE users SET totp_enabled = 1, totp_last_step = $1 WHERE id = $2")
            .bind(step)
            .bind(user.0)
            .execute(&mut *self.tx)
            .await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user.0)
            .execute(&mut *self.tx)
            .await?;
        for hash in recovery_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES ($1, $2)")
                .bind(user.0)
                .bind(hash)
                .execute(&mut *self.tx)
                .await?;
        }
        Ok(())
    }

    /// Accepts a TOTP time step if it is newer than the last accepted one (no replay);
    /// returns whether it was accepted.
    pub async fn accept_totp_step(&mut self, user: UserId, step: i64) -> Result<bool> {
        let n = sqlx::query("UPDATE users SET totp_last_step = $1 WHERE id = $2 AND totp_enabled = 1 AND totp_last_step < $1")
            .bind(step)
            .bind(user.0)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Marks a recovery code used; returns whether it existed unused.
    pub async fn use_recovery_code(
        &mut self,
        user: UserId,
        code_hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let n = sqlx::query("UPDATE recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL")
            .bind(now)
            .bind(user.0)
            .bind(code_hash)
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        Ok(n == 1)
    }

    /// Stores a named API token.
    pub async fn insert_api_token(
        &mut self,
        token_hash: &str,
        user: UserId,
        name: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<()> {
        sqlx::query("INSERT INTO sessions (token_hash, user_id, kind, created_at, expires_at, last_used_at, name) VALUES ($1, $2, 'api', $3, $4, $3, $5)")
            .bind(token_hash)
            .bind(user.0)
            .bind(now)
            .bind(expires_at)
            .bind(name)
            .execute(&mut *self.tx)
            .await?;
        Ok(())
    }

    /// Revokes one of a user's API tokens by its public id; returns whether one was revoked.
    pub async fn revoke_api_token(&mut self, user: UserId, id: &str) -> Result<bool> {
        if id.len() != 16 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(false);
        }
        let n = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND kind = 'api' AND substr(token_hash, 1, 16) = $2")
            .bind(user.0)
            .bind(id.to_ascii_lowercase())
            .execute(&mut *self.tx)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Ends every session of a user but one (after a password change).
    pub async fn delete_other_sessions(&mut self, user: UserId, keep_hash: &str) -> Result<()> {
        sqlx::query(
            "DELETE FROM sessions WHERE user_id = $1 AND kind = 'login' AND token_hash <> $2",
        )
        .bind(user.0)
        .bind(keep_hash)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }
}
