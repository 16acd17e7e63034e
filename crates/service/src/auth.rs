//! Login, sessions and the authenticated [`Subject`] of every request: passwords, second
//! factors, throttling of guesses, and the access rules checked on every request.

use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

use argon2::password_hash::{
    rand_core::OsRng, PasswordHash, PasswordHasher, PasswordVerifier, SaltString,
};
use argon2::Argon2;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use warden_policy::access::AccessDenial;
use warden_policy::{Permission, Snapshot, Timestamp, UserId};
use warden_store::{address_key, user_key, AccessEntry};

use crate::{Result, ServiceError, Warden};

/// Who is making a request, with the snapshot every decision of the request uses.
#[derive(Debug, Clone)]
pub struct Subject {
    pub user: UserId,
    pub username: String,
    pub snapshot: Arc<Snapshot>,
    /// The time of the request.
    pub now: Timestamp,
    /// The client's address (after trusted proxies).
    pub client: IpAddr,
    /// The hash of the session's token (to end the other sessions, to log out).
    pub session_hash: String,
    /// A role requires a second factor the user does not have yet: only enrolment is allowed.
    pub mfa_pending: bool,
    /// For a view-as token: the administrator looking through `user`'s eyes. Such a subject is
    /// read-only (the server refuses every request that could change anything) and every
    /// entry it causes in the access log names the administrator.
    pub viewer: Option<Viewer>,
}

/// The administrator behind a view-as token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    pub user: UserId,
    pub username: String,
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

/// What a login presents. No `Debug`: it holds secrets.
#[derive(Clone, Default)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    pub totp: Option<String>,
    pub recovery_code: Option<String>,
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

pub(crate) fn verify_password(password: &str, stored: &str) -> bool {
    match PasswordHash::new(stored) {
        Ok(hash) => Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok(),
        Err(_) => false,
    }
}

/// Verifies off the async threads (argon2 takes tens of milliseconds by design).
pub(crate) async fn verify_password_blocking(password: &str, stored: String) -> Result<bool> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))
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

pub(crate) fn hex_string(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stored form of a token: its SHA-256. Tokens carry 256 random bits, so a fast hash is
/// enough; a stolen database yields no usable token.
pub(crate) fn token_hash(token: &str) -> String {
    hex_string(&Sha256::digest(token.as_bytes()))
}

pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Warden {
    /// Refuses while any of `keys` is locked.
    async fn check_throttle(&self, keys: &[String], now: Timestamp) -> Result<()> {
        for key in keys {
            let state = self.store.throttle(key).await?;
            if state.locked_until > now {
                let retry_after_s = (state.locked_until - now + 999) / 1000;
                return Err(ServiceError::Throttled { retry_after_s });
            }
        }
        Ok(())
    }

    async fn login_failed(&self, keys: &[String], now: Timestamp) -> Result<ServiceError> {
        let c = &self.config;
        // The address key gets a higher threshold: many users may share one address.
        self.store
            .record_login_failure(
                &keys[..1],
                now,
                c.failure_window_ms,
                c.user_lock_threshold,
                c.lock_ms,
            )
            .await?;
        self.store
            .record_login_failure(
                &keys[1..],
                now,
                c.failure_window_ms,
                c.address_lock_threshold,
                c.lock_ms,
            )
            .await?;
        Ok(ServiceError::Unauthenticated)
    }

    /// Checks the credentials (and the second factor, and the access rules); on success
    /// opens a session. Every failure of an unknown user, a wrong password, a wrong code
    /// counts against the username and the client address alike, and a locked key refuses
    /// even the right password: nothing here tells whether a user exists.
    ///
    /// Every login is written to the access log with the client's address: a success in the
    /// transaction that opens the session, a refusal before it is answered.
    pub async fn login(
        &self,
        request: &LoginRequest,
        client: IpAddr,
        now: Timestamp,
    ) -> Result<LoginOutcome> {
        match self.try_login(request, client, now).await {
            Ok(outcome) => Ok(outcome),
            // A failure inside is not a refusal of the user: it is answered as it is.
            Err(error @ ServiceError::Internal(_)) => Err(error),
            Err(refusal) => {
                let mut entry = login_entry(&request.username, None, client, now);
                entry.outcome = "denied".to_owned();
                entry.detail = match &refusal {
                    ServiceError::AccessDenied(denial) => denial.code().to_owned(),
                    other => other.to_string(),
                };
                match self.log_now(vec![entry]).await {
                    Ok(()) => Err(refusal),
                    Err(failure) => Err(failure),
                }
            }
        }
    }

    async fn try_login(
        &self,
        request: &LoginRequest,
        client: IpAddr,
        now: Timestamp,
    ) -> Result<LoginOutcome> {
        let keys = [user_key(&request.username), address_key(client)];
        self.check_throttle(&keys, now).await?;
        let credentials = self.store.credentials(&request.username).await?;
        let (user, stored, disabled) = match credentials {
            Some((user, hash, disabled)) => (Some(user), hash, disabled),
            None => (None, decoy_hash().to_owned(), true),
        };
        let matches = verify_password_blocking(&request.password, stored).await?;
        let user = match user {
            Some(user) if matches && !disabled => user,
            _ => return Err(self.login_failed(&keys, now).await?),
        };
        let totp = self.store.totp_state(user).await?;
        if totp.enabled {
            let passed = match (&request.totp, &request.recovery_code) {
                (Some(code), _) => self.accept_totp(user, &totp, code, now).await?,
                (None, Some(code)) => self.accept_recovery_code(user, code, now).await?,
                (None, None) => return Err(ServiceError::MfaRequired { enrolled: true }),
            };
            if !passed {
                return Err(self.login_failed(&keys, now).await?);
            }
        }
        let snapshot = self.current_snapshot().await?;
        match snapshot.access_check(user, client, now) {
            Ok(()) | Err(AccessDenial::MfaRequired) => {}
            Err(denial) => return Err(ServiceError::AccessDenied(denial)),
        }
        // Only the username's count starts over: an address's count decays with time, so one
        // valid account cannot be used to reset a spray across many usernames.
        self.store.clear_throttle(&keys[0]).await?;
        let token = new_token();
        let expires_at = now + self.config.session_lifetime_ms;
        let mut tx = self.store.begin().await?;
        tx.insert_session(&token_hash(&token), user, "login", now, expires_at)
            .await?;
        tx.append_access(&login_entry(&request.username, Some(user), client, now))
            .await?;
        tx.commit().await?;
        Ok(LoginOutcome {
            token,
            user,
            expires_at,
        })
    }

    /// Resolves a bearer token to its subject, on a snapshot no older than the database's
    /// epoch. Expired or idle sessions, disabled and deleted users are all 401; an access rule
    /// that refuses this address or time is 403 — on every request, not only at login.
    pub async fn authenticate(
        &self,
        token: &str,
        client: IpAddr,
        now: Timestamp,
    ) -> Result<Subject> {
        let hash = token_hash(token);
        let (session, epoch) = self.store.session_and_epoch(&hash).await?;
        let session = session.ok_or(ServiceError::Unauthenticated)?;
        if now >= session.expires_at {
            return Err(ServiceError::Unauthenticated);
        }
        if session.kind == "login" && now - session.last_used_at > self.config.session_idle_ms {
            return Err(ServiceError::Unauthenticated);
        }
        let snapshot = self.snapshot_at_least(epoch).await?;
        let view = snapshot
            .user(session.user)
            .ok_or(ServiceError::Unauthenticated)?;
        if view.disabled() {
            return Err(ServiceError::Unauthenticated);
        }
        let viewer = crate::view_as::viewer_of(&snapshot, &session.kind, now)?;
        // The person at the keyboard is the one whose address, hours and second factor count.
        let at_keyboard = viewer.as_ref().map_or(session.user, |v| v.user);
        let mfa_pending = match snapshot.access_check(at_keyboard, client, now) {
            Ok(()) => false,
            Err(AccessDenial::MfaRequired) => true,
            Err(denial) => return Err(ServiceError::AccessDenied(denial)),
        };
        // Activity is written at most once a minute per session: idle expiry needs no finer
        // grain, and a write per request would halve the read throughput.
        if now - session.last_used_at > 60_000 {
            self.store.touch_session(&hash, now).await?;
        }
        let username = view.username().to_owned();
        Ok(Subject {
            user: session.user,
            username,
            snapshot,
            now,
            client,
            session_hash: hash,
            mfa_pending,
            viewer,
        })
    }

    /// Ends the subject's session.
    pub async fn logout(&self, subject: &Subject) -> Result<()> {
        let mut tx = self.store.begin().await?;
        tx.delete_session(&subject.session_hash).await?;
        tx.append_access(&crate::logging::entry(subject, "logout"))
            .await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The log entry of a login attempt (for a refusal, the username as given).
fn login_entry(
    username: &str,
    user: Option<UserId>,
    client: IpAddr,
    now: Timestamp,
) -> AccessEntry {
    AccessEntry {
        id: 0,
        at: now,
        actor_id: user,
        actor: username.chars().take(200).collect(),
        action: "login".to_owned(),
        object: None,
        record_id: None,
        fields: Vec::new(),
        client: Some(client.to_string()),
        outcome: "ok".to_owned(),
        detail: String::new(),
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
