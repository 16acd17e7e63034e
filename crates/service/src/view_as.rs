//! View as: a short-lived, read-only token with which an administrator sees exactly what a
//! given user sees — the same engine decisions on the same snapshot, because the token's
//! subject *is* that user — while the access log names the administrator.
//!
//! The token is a session of kind `view_as:<administrator id>`. It is honoured only while the
//! administrator still exists, is enabled and holds both `manage_users` and `manage_roles`
//! (someone who could grant themselves any access anyway: viewing as someone else gives them
//! nothing new). The server refuses every request but reads with such a token.

use warden_policy::{Permission, Snapshot, Timestamp, UserId};

use crate::auth::{new_token, token_hash, Viewer};
use crate::logging::entry;
use crate::{Result, ServiceError, Subject, Warden};

const KIND_PREFIX: &str = "view_as:";
/// The longest a view-as token lives.
pub const MAX_VIEW_AS_MINUTES: u32 = 60;

/// A token issued by [`Warden::view_as`]. No `Debug`: it holds the secret.
pub struct ViewAsToken {
    pub token: String,
    pub user: String,
    pub expires_at: Timestamp,
}

fn may_view_as(snapshot: &Snapshot, user: UserId, now: Timestamp) -> bool {
    snapshot.has_permission(user, Permission::ManageUsers, now)
        && snapshot.has_permission(user, Permission::ManageRoles, now)
}

/// The administrator behind a session of kind `view_as:<id>`; `None` for any other session.
/// A view-as session whose administrator may no longer view as anyone is refused.
pub(crate) fn viewer_of(snapshot: &Snapshot, kind: &str, now: Timestamp) -> Result<Option<Viewer>> {
    let Some(id) = kind.strip_prefix(KIND_PREFIX) else {
        return Ok(None);
    };
    let id = UserId(id.parse().map_err(|_| ServiceError::Unauthenticated)?);
    let admin = snapshot.user(id).ok_or(ServiceError::Unauthenticated)?;
    if admin.disabled() || !may_view_as(snapshot, id, now) {
        return Err(ServiceError::Unauthenticated);
    }
    Ok(Some(Viewer {
        user: id,
        username: admin.username().to_owned(),
    }))
}

impl Warden {
    /// Issues a read-only token that sees what `username` sees, for `minutes` (1 to 60).
    pub async fn view_as(
        &self,
        subject: &Subject,
        username: &str,
        minutes: u32,
    ) -> Result<ViewAsToken> {
        if subject.viewer.is_some() || !may_view_as(&subject.snapshot, subject.user, subject.now) {
            return Err(ServiceError::Forbidden(
                "viewing as another user needs manage_users and manage_roles".into(),
            ));
        }
        if minutes == 0 || minutes > MAX_VIEW_AS_MINUTES {
            return Err(ServiceError::invalid(
                "minutes",
                format!("from 1 to {MAX_VIEW_AS_MINUTES}"),
            ));
        }
        let target = subject
            .snapshot
            .user_by_name(username)
            .filter(|u| !u.disabled())
            .ok_or_else(|| ServiceError::invalid("user", format!("no active user `{username}`")))?;
        let token = new_token();
        let expires_at = subject.now + i64::from(minutes) * 60_000;
        let mut tx = self.store.begin().await?;
        tx.insert_session(
            &token_hash(&token),
            target.id(),
            &format!("{KIND_PREFIX}{}", subject.user.0),
            subject.now,
            expires_at,
        )
        .await?;
        let mut e = entry(subject, "view_as.issue");
        e.detail = format!("as {username} for {minutes} min, read-only");
        tx.append_access(&e).await?;
        tx.commit().await?;
        Ok(ViewAsToken {
            token,
            user: username.to_owned(),
            expires_at,
        })
    }
}
