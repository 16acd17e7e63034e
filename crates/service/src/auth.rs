//! Login, sessions and the authenticated [`Subject`] of every request.

use std::sync::{Arc, OnceLock};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use warden_policy::{Permission, Snapshot, Timestamp, UserId};

use crate::{Result, ServiceError, Warden};

/// Who is making a request, with the snapshot every decision of the request uses.
#[derive(Debug, Clone)]
pub struct Subject {
    pub user: UserId,
    pub username: String,
    pub snapshot: Arc<Snapshot>,
    /// The time of the request.
    pub now: Timestamp,
}

impl Subject {
    /// Whether the subject holds a functional permission.
    pub fn can(&self, permission: Permission) -> bool {
        self.snapshot
            .has_permission(self.user, permission, self.now)
    }

    /// Refuses with 403 unless the subject holds `permission`.
    pub fn require(&self, permission: Permission) -> Result<()> {
        if self.can(permission) {
            Ok(())
        } else {
            Err(ServiceError::Forbidden(format!(
                "this needs the {permission} permission"
            )))
        }
    }
}

/// A successful login.
#[derive(Debug, Clone)]
pub struct LoginOutcome {
    /// The bearer token (shown once; only its hash is stored).
    pub token: String,
    pub user: UserId,
    pub expires_at: Timestamp,
}

/// Hashes a password with argon2id and the crate's defaults (the OWASP minimum: 19 MiB,
/// 2 passes, 1 lane).
pub fn hash_password(password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ServiceError::Internal(format!("password hashing failed: {e}")))
}

fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// A hash that no password matches, verified for unknown users so that a login takes the
/// same time whether or not the user exists.
fn decoy_hash() -> &'static str {
    static DECOY: OnceLock<String> = OnceLock::new();
    DECOY.get_or_init(|| {
        let mut secret = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut secret);
        hash_password(&hex_string(&secret)).unwrap_or_default()
    })
}

fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a token: its SHA-256. Tokens carry 256 random bits, so a fast hash is
/// enough; a stolen database yields no usable token.
pub(crate) fn token_hash(token: &str) -> String {
    hex_string(&Sha256::digest(token.as_bytes()))
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Warden {
    /// Checks a username and password; on success opens a session.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        now: Timestamp,
    ) -> Result<LoginOutcome> {
        let credentials = self.store.credentials(username).await?;
        let (user, stored, disabled) = match credentials {
            Some((user, hash, disabled)) => (Some(user), hash, disabled),
            None => (None, decoy_hash().to_owned(), true),
        };
        let password = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &stored))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))?;
        let user = match user {
            Some(user) if matches && !disabled => user,
            _ => return Err(ServiceError::Unauthenticated),
        };
        let token = new_token();
        let expires_at = now + self.config.session_lifetime_ms;
        let mut tx = self.store.begin().await?;
        tx.insert_session(&token_hash(&token), user, "login", now, expires_at)
            .await?;
        tx.commit().await?;
        Ok(LoginOutcome {
            token,
            user,
            expires_at,
        })
    }

    /// Resolves a bearer token to its subject, on a snapshot no older than the database's
    /// epoch. Expired sessions, disabled and deleted users are all 401.
    pub async fn authenticate(&self, token: &str, now: Timestamp) -> Result<Subject> {
        let (session, epoch) = self.store.session_and_epoch(&token_hash(token)).await?;
        let session = session.ok_or(ServiceError::Unauthenticated)?;
        if now >= session.expires_at {
            return Err(ServiceError::Unauthenticated);
        }
        let snapshot = self.snapshot_at_least(epoch).await?;
        let view = snapshot
            .user(session.user)
            .ok_or(ServiceError::Unauthenticated)?;
        if view.disabled() {
            return Err(ServiceError::Unauthenticated);
        }
        let username = view.username().to_owned();
        Ok(Subject {
            user: session.user,
            username,
            snapshot,
            now,
        })
    }

    /// Ends the session of `token`.
    pub async fn logout(&self, token: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        tx.delete_session(&token_hash(token)).await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse batterY", &hash));
        assert!(!verify_password("anything", decoy_hash()));
        assert!(!verify_password("anything", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_stored_hashed() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert_eq!(a.len(), 43);
        assert_eq!(token_hash(&a).len(), 64);
        assert_ne!(token_hash(&a), token_hash(&b));
    }
}
