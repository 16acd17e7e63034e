//! Self-service and administration of access control: the password policy and password
//! change, TOTP enrolment and recovery codes, API tokens, unlocking, and access rules.

use std::collections::HashSet;
use std::sync::OnceLock;

use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Secret, TOTP};
use warden_policy::access::AccessRules;
use warden_policy::{AccessOwner, Permission, RoleId, Timestamp, UserId};
use warden_store::{user_key, ApiTokenRow, TotpState};

use crate::auth::{hash_password, hex_string, new_token, token_hash, verify_password_blocking};
use crate::logging::log_change;
use crate::{Result, ServiceError, Subject, Warden};

/// The shortest password accepted.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The TOTP period, in seconds (RFC 6238's default).
const TOTP_STEP_S: i64 = 30;
/// How many recovery codes a confirmed enrolment yields.
const RECOVERY_CODES: usize = 10;

fn common_passwords() -> &'static HashSet<&'static str> {
    static LIST: OnceLock<HashSet<&'static str>> = OnceLock::new();
    LIST.get_or_init(|| {
        include_str!("../data/common-passwords.txt")
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .collect()
    })
}

/// The password policy: at least 12 characters, not the username, not a common password
/// (nor one with digits or symbols merely appended), not one character repeated.
pub fn check_password_policy(username: &str, password: &str) -> Result<()> {
    let invalid = |message: &str| Err(ServiceError::invalid("password", message));
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return invalid(&format!("must be at least {MIN_PASSWORD_CHARS} characters"));
    }
    if password.chars().count() > 1024 {
        return invalid("must be at most 1024 characters");
    }
    let lower = password.to_lowercase();
    if !username.is_empty() && lower.contains(&username.to_lowercase()) {
        return invalid("must not contain the username");
    }
    let stem = lower.trim_end_matches(|c: char| c.is_ascii_digit() || c.is_ascii_punctuation());
    let list = common_passwords();
    if list.contains(lower.as_str()) || (stem.chars().count() >= 4 && list.contains(stem)) {
        return invalid("is too common: it is on the list of the most used passwords");
    }
    let mut chars = lower.chars();
    if let Some(first) = chars.next() {
        if chars.all(|c| c == first) {
            return invalid("must not be one character repeated");
        }
    }
    Ok(())
}

fn totp(secret_base32: &str, username: &str) -> Result<TOTP> {
    let bytes = Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .map_err(|e| ServiceError::Internal(format!("stored TOTP secret unreadable: {e:?}")))?;
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        TOTP_STEP_S as u64,
        bytes,
        Some("Warden".to_owned()),
        username.to_owned(),
    )
    .map_err(|e| ServiceError::Internal(format!("TOTP: {e:?}")))
}

/// The time step of `now` and the codes of the neighbouring steps, for clock drift.
fn candidate_steps(now: Timestamp) -> [i64; 3] {
    let step = now.div_euclid(1000) / TOTP_STEP_S;
    [step - 1, step, step + 1]
}

/// The step whose code matches, compared in constant time.
fn matching_step(totp: &TOTP, code: &str, now: Timestamp) -> Option<i64> {
    let code = code.trim();
    candidate_steps(now).into_iter().find(|step| {
        let expected = totp.generate((*step * TOTP_STEP_S) as u64);
        expected.as_bytes().ct_eq(code.as_bytes()).into()
    })
}

/// Recovery codes carry 80 random bits (`xxxx-xxxx-xxxx-xxxx`, base32), so a plain SHA-256
/// of the normalised code is safe to store.
fn recovery_hash(user: UserId, code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    hex_string(&Sha256::digest(
        format!("{}:{normalised}", user.0).as_bytes(),
    ))
}

fn new_recovery_code() -> String {
    const ALPHABET: &[u8] = b"abcdefghijkmnpqrstuvwxyz23456789";
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect();
    chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-")
}

/// A started TOTP enrolment.
#[derive(Clone)]
pub struct TotpEnrolment {
    /// Base32, for manual entry.
    pub secret: String,
    /// `otpauth://` URI, for a QR code.
    pub otpauth_uri: String,
}

/// A new API token (its secret is shown once).
#[derive(Clone)]
pub struct NewApiToken {
    pub token: String,
    pub row: ApiTokenRow,
}

impl Warden {
    /// Accepts a TOTP code for `user` if it matches a current step newer than the last used.
    pub(crate) async fn accept_totp(
        &self,
        user: UserId,
        state: &TotpState,
        code: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let Some(secret) = &state.secret else {
            return Ok(false);
        };
        let username = self
            .cached_snapshot()
            .user(user)
            .map(|u| u.username().to_owned())
            .unwrap_or_default();
        let Some(step) = matching_step(&totp(secret, &username)?, code, now) else {
            return Ok(false);
        };
        let mut tx = self.store.begin().await?;
        let accepted = tx.accept_totp_step(user, step).await?;
        tx.commit().await?;
        Ok(accepted)
    }

    /// Spends a recovery code.
    pub(crate) async fn accept_recovery_code(
        &self,
        user: UserId,
        code: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let mut tx = self.store.begin().await?;
        let accepted = tx
            .use_recovery_code(user, &recovery_hash(user, code), now)
            .await?;
        tx.commit().await?;
        Ok(accepted)
    }

    /// Changes the subject's password (the current one is required) and ends their other
    /// login sessions.
    pub async fn change_password(&self, subject: &Subject, current: &str, new: &str) -> Result<()> {
        let (_, stored, _) = self
            .store
            .credentials(&subject.username)
            .await?
            .ok_or(ServiceError::Unauthenticated)?;
        if !verify_password_blocking(current, stored).await? {
            return Err(ServiceError::invalid(
                "current_password",
                "is not your current password",
            ));
        }
        check_password_policy(&subject.username, new)?;
        let new = new.to_owned();
        let hash = tokio::task::spawn_blocking(move || hash_password(&new))
            .await
            .map_err(|e| ServiceError::Internal(e.to_string()))??;
        let mut tx = self.store.begin().await?;
        tx.set_password_hash(subject.user, &hash, subject.now)
            .await?;
        tx.delete_other_sessions(subject.user, &subject.session_hash)
            .await?;
        let detail = format!("user {}", subject.username);
        log_change(&mut tx, subject, "password.change", &["password"], detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Starts (or restarts) TOTP enrolment: a new secret that counts once confirmed.
    pub async fn start_totp(&self, subject: &Subject) -> Result<TotpEnrolment> {
        let state = self.store.totp_state(subject.user).await?;
        if state.enabled {
            return Err(ServiceError::Conflict(
                "a second factor is already enrolled".into(),
            ));
        }
        let mut bytes = [0u8; 20];
        rand::thread_rng().fill_bytes(&mut bytes);
        let secret = Secret::Raw(bytes.to_vec()).to_encoded().to_string();
        let uri = totp(&secret, &subject.username)?.get_url();
        let mut tx = self.store.begin().await?;
        tx.set_totp_pending(subject.user, &secret).await?;
        let detail = format!("user {}", subject.username);
        log_change(&mut tx, subject, "mfa.enrol", &["totp"], detail).await?;
        tx.commit().await?;
        Ok(TotpEnrolment {
            secret,
            otpauth_uri: uri,
        })
    }

    /// Confirms enrolment with a current code; returns the recovery codes (shown once).
    pub async fn confirm_totp(&self, subject: &Subject, code: &str) -> Result<Vec<String>> {
        let state = self.store.totp_state(subject.user).await?;
        if state.enabled {
            return Err(ServiceError::Conflict(
                "a second factor is already enrolled".into(),
            ));
        }
        let secret = state
            .secret
            .ok_or_else(|| ServiceError::invalid("code", "start the enrolment first"))?;
        let step = matching_step(&totp(&secret, &subject.username)?, code, subject.now)
            .ok_or_else(|| {
                ServiceError::invalid("code", "does not match; check the device's clock")
            })?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let hashes: Vec<String> = codes
            .iter()
            .map(|c| recovery_hash(subject.user, c))
            .collect();
        let mut tx = self.store.begin().await?;
        tx.enable_totp(subject.user, step, &hashes).await?;
        let detail = format!("user {}", subject.username);
        log_change(&mut tx, subject, "mfa.confirm", &["totp"], detail).await?;
        // The snapshot knows who has a second factor (roles may require one).
        tx.bump_epoch().await?;
        tx.commit().await?;
        Ok(codes)
    }

    /// Issues a named API token for the subject.
    pub async fn create_api_token(
        &self,
        subject: &Subject,
        name: &str,
        expires_at: Option<Timestamp>,
    ) -> Result<NewApiToken> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 {
            return Err(ServiceError::invalid("name", "must be 1 to 100 characters"));
        }
        let latest = subject.now + self.config.api_token_max_lifetime_ms;
        let expires_at = expires_at.unwrap_or(subject.now + 90 * 24 * 60 * 60 * 1000);
        if expires_at <= subject.now || expires_at > latest {
            return Err(ServiceError::invalid(
                "expires_at",
                "must be in the future and within a year",
            ));
        }
        let token = new_token();
        let hash = token_hash(&token);
        let mut tx = self.store.begin().await?;
        tx.insert_api_token(&hash, subject.user, name, subject.now, expires_at)
            .await?;
        let detail = format!("token {} ({name})", &hash[..16.min(hash.len())]);
        log_change(&mut tx, subject, "token.create", &["token"], detail).await?;
        tx.commit().await?;
        Ok(NewApiToken {
            token,
            row: ApiTokenRow {
                id: hash.chars().take(16).collect(),
                name: name.to_owned(),
                created_at: subject.now,
                expires_at,
                last_used_at: subject.now,
            },
        })
    }

    /// The subject's API tokens.
    pub async fn api_tokens(&self, subject: &Subject) -> Result<Vec<ApiTokenRow>> {
        Ok(self.store.api_tokens(subject.user).await?)
    }

    /// Revokes one of the subject's API tokens.
    pub async fn revoke_api_token(&self, subject: &Subject, id: &str) -> Result<()> {
        let mut tx = self.store.begin().await?;
        let revoked = tx.revoke_api_token(subject.user, id).await?;
        if revoked {
            let detail = format!("token {id}");
            log_change(&mut tx, subject, "token.revoke", &["token"], detail).await?;
        }
        tx.commit().await?;
        if revoked {
            Ok(())
        } else {
            Err(ServiceError::NotFound)
        }
    }

    /// Lifts the lock of a username (needs `manage_users`).
    pub async fn unlock_user(&self, subject: &Subject, username: &str) -> Result<()> {
        subject.require(Permission::ManageUsers)?;
        subject
            .snapshot
            .user_by_name(username)
            .ok_or(ServiceError::NotFound)?;
        // The unlock is recorded before it is done: if the log cannot be written, it is not.
        let mut tx = self.store.begin().await?;
        let detail = format!("user {username}");
        log_change(&mut tx, subject, "user.unlock", &["lock"], detail).await?;
        tx.commit().await?;
        self.store.clear_throttle(&user_key(username)).await?;
        Ok(())
    }

    fn access_owner(&self, subject: &Subject, owner: AccessTarget<'_>) -> Result<AccessOwner> {
        match owner {
            AccessTarget::Role(id) => {
                subject
                    .snapshot
                    .role_name(id)
                    .ok_or(ServiceError::NotFound)?;
                Ok(AccessOwner::Role(id))
            }
            AccessTarget::User(name) => {
                let user = subject
                    .snapshot
                    .user_by_name(name)
                    .ok_or(ServiceError::NotFound)?;
                Ok(AccessOwner::User(user.id()))
            }
        }
    }

    /// The access rules of a role (needs `manage_roles`) or a user (needs `manage_users`,
    /// or being that user).
    pub async fn access_rules(
        &self,
        subject: &Subject,
        target: AccessTarget<'_>,
    ) -> Result<AccessRules> {
        match target {
            AccessTarget::Role(_) => subject.require(Permission::ManageRoles)?,
            AccessTarget::User(name) if name != subject.username => {
                subject.require(Permission::ManageUsers)?
            }
            AccessTarget::User(_) => {}
        }
        let owner = self.access_owner(subject, target)?;
        Ok(self.store.access_rules(owner).await?)
    }

    /// Replaces the access rules of a role (needs `manage_roles`) or a user (needs
    /// `manage_users`). Holds from the next request, on every node.
    pub async fn set_access_rules(
        &self,
        subject: &Subject,
        target: AccessTarget<'_>,
        rules: AccessRules,
    ) -> Result<crate::Outcome<AccessRules>> {
        match target {
            AccessTarget::Role(_) => subject.require(Permission::ManageRoles)?,
            AccessTarget::User(_) => subject.require(Permission::ManageUsers)?,
        }
        let owner = self.access_owner(subject, target)?;
        let change = crate::four_eyes::OrgChange::SetAccessRules {
            owner,
            rules: rules.clone(),
            before: self.store.access_rules(owner).await?,
        };
        Ok(match self.submit_org_change(subject, change).await? {
            crate::Outcome::Done(_) => crate::Outcome::Done(rules),
            crate::Outcome::Pending(view) => crate::Outcome::Pending(view),
        })
    }
}

/// Whose access rules.
#[derive(Debug, Clone, Copy)]
pub enum AccessTarget<'a> {
    Role(RoleId),
    User(&'a str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_password_policy_names_each_rule() {
        let message = |u: &str, p: &str| match check_password_policy(u, p) {
            Err(ServiceError::Invalid { field, message }) => {
                assert_eq!(field, "password");
                message
            }
            other => panic!("{p}: {other:?}"),
        };
        assert!(message("rep1", "short").contains("at least 12"));
        assert!(message("rep1", "my-rep1-password").contains("username"));
        assert!(message("rep1", "password12345678").contains("common"));
        assert!(message("rep1", "Sunshine!!!!2024").contains("common"));
        assert!(message("rep1", "aaaaaaaaaaaaaaaa").contains("repeated"));
        assert!(check_password_policy("rep1", "blue tractors at dawn").is_ok());
    }

    #[test]
    fn totp_codes_match_their_step_and_neighbours_only() {
        let secret = Secret::Raw(vec![7u8; 20]).to_encoded().to_string();
        let totp = totp(&secret, "rep1").unwrap();
        let now: Timestamp = 1_764_000_000_000;
        let step = now / 1000 / 30;
        let code = totp.generate((step * 30) as u64);
        assert_eq!(matching_step(&totp, &code, now), Some(step));
        assert_eq!(
            matching_step(&totp, &code, now + 30_000),
            Some(step),
            "one step of drift"
        );
        assert_eq!(
            matching_step(&totp, &code, now + 90_000),
            None,
            "three steps later"
        );
        assert_eq!(matching_step(&totp, "000000x", now), None);
        assert!(totp.get_url().starts_with("otpauth://totp/Warden:rep1?"));
    }

    #[test]
    fn recovery_codes_are_long_and_normalised() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 19);
        assert_eq!(
            recovery_hash(UserId(1), &code),
            recovery_hash(UserId(1), &code.to_uppercase().replace('-', " "))
        );
        assert_ne!(
            recovery_hash(UserId(1), &code),
            recovery_hash(UserId(2), &code)
        );
    }
}
