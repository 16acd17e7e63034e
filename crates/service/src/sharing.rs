//! Shares and record teams: giving, listing and taking back access to one record.
//!
//! - A **share** is given by someone allowed `share` on the record, to a user, a unit (and the
//!   units below it) or a role, for `read` or `edit`; `edit` only by someone who may update
//!   the record themselves (nobody shares more than they have). It is taken back by anyone
//!   allowed `share` on the record, or by the person who gave it.
//! - A **team place** (相关团队) is given to one user by the record's owner or anyone above the
//!   owner in the reporting line, and taken back by the same.
//!
//! On an object controlled by its customer, access to a contact, deal, … is decided on the
//! customer, so a customer's shares and team reach its records: the cascade the brief asks
//! for, with no copy to keep in step. Shares are record data, read with the record: giving one
//! takes effect on the next request without a reload.
//!
//! INVARIANT: a portal user is never given a share or team place on a record of another
//! customer account (and the engine's account bound would refuse it anyway).

use warden_policy::{Action, ObjectType, Principal, Share, ShareAccess, ShareKind};
use warden_store::{Record, ShareRow};

use crate::explain::principal_name;
use crate::logging::entry;
use crate::{Result, ServiceError, Subject, Warden};

/// A principal named as in the API: `{"user": "rep3"}`, `{"unit": "Support East"}`,
/// `{"role": "Finance"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrincipalName {
    User(String),
    Unit(String),
    Role(String),
}

/// One share or team place, in names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareView {
    pub id: i64,
    pub object: ObjectType,
    pub record_id: i64,
    pub kind: ShareKind,
    /// `user`, `unit` or `role`.
    pub principal_kind: &'static str,
    /// The username, unit name or role name.
    pub principal: String,
    pub access: ShareAccess,
    pub created_by: Option<String>,
    pub created_at: i64,
}

/// What a subject may do with one record's shares and team: the very decisions
/// [`Warden::share_record`], [`Warden::put_team_member`] and [`Warden::revoke_share`] make,
/// so that a page offers only what those calls will accept (they still decide on their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharingRights {
    /// May share the record (for reading).
    pub share: bool,
    /// May share it for editing too (needs `update` on it as well).
    pub share_edit: bool,
    /// May add and remove team members: the owner and the owner's superiors.
    pub team: bool,
}

impl SharingRights {
    /// Whether an entry of `kind` may be taken back: a share by anyone allowed `share` or by
    /// who gave it (`given_by_subject`), a team place by whoever manages the team.
    pub fn may_revoke(&self, kind: ShareKind, given_by_subject: bool) -> bool {
        match kind {
            ShareKind::Share => self.share || given_by_subject,
            ShareKind::Team => self.team,
        }
    }
}

impl Warden {
    /// Resolves a principal by name on the subject's snapshot (422 when unknown).
    pub(crate) fn resolve_principal(
        &self,
        subject: &Subject,
        name: &PrincipalName,
    ) -> Result<Principal> {
        let snapshot = &subject.snapshot;
        match name {
            PrincipalName::User(username) => snapshot
                .user_by_name(username)
                .map(|u| Principal::User(u.id()))
                .ok_or_else(|| ServiceError::invalid("with.user", format!("no user `{username}`"))),
            PrincipalName::Unit(unit) => snapshot
                .unit_by_name(unit)
                .map(Principal::Unit)
                .ok_or_else(|| ServiceError::invalid("with.unit", format!("no unit `{unit}`"))),
            PrincipalName::Role(role) => snapshot
                .role_by_name(role)
                .map(Principal::Role)
                .ok_or_else(|| ServiceError::invalid("with.role", format!("no role `{role}`"))),
        }
    }

    fn share_view(&self, subject: &Subject, row: &ShareRow) -> ShareView {
        let snapshot = &subject.snapshot;
        let described = principal_name(snapshot, row.share.principal);
        ShareView {
            id: row.id,
            object: row.object,
            record_id: row.record_id,
            kind: row.share.kind,
            principal_kind: row.share.principal.kind(),
            principal: described
                .split_once(' ')
                .map_or(described.clone(), |(_, name)| name.to_owned()),
            access: row.share.access,
            created_by: row
                .created_by
                .and_then(|id| snapshot.user(id))
                .map(|u| u.username().to_owned()),
            created_at: row.created_at,
        }
    }

    /// The record, if the subject may read it (404 otherwise, logged).
    pub(crate) async fn record_for_sharing(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
    ) -> Result<Record> {
        let record = self.store.get_record(object, id).await?;
        let readable = record.as_ref().is_some_and(|r| {
            subject
                .snapshot
                .check(
                    subject.user,
                    Action::Read,
                    object,
                    &r.record_ref(),
                    subject.now,
                )
                .is_allowed()
        });
        match record {
            Some(record) if readable => Ok(record),
            _ => Err(self
                .log_denied(
                    subject,
                    Action::Share,
                    object,
                    Some(id),
                    ServiceError::NotFound,
                )
                .await),
        }
    }

    pub(crate) fn allows(
        &self,
        subject: &Subject,
        action: Action,
        object: ObjectType,
        record: &Record,
    ) -> bool {
        subject
            .snapshot
            .check(
                subject.user,
                action,
                object,
                &record.record_ref(),
                subject.now,
            )
            .is_allowed()
    }

    fn rights_on(&self, subject: &Subject, object: ObjectType, record: &Record) -> SharingRights {
        let share = self.allows(subject, Action::Share, object, record);
        SharingRights {
            share,
            share_edit: share && self.allows(subject, Action::Update, object, record),
            team: subject.snapshot.is_at_or_above(subject.user, record.owner),
        }
    }

    /// What the subject may do with the shares and team of a record they may read (404
    /// otherwise).
    pub async fn sharing_rights(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
    ) -> Result<SharingRights> {
        let record = self.record_for_sharing(subject, object, id).await?;
        Ok(self.rights_on(subject, object, &record))
    }

    /// Refuses a portal user of another account as the receiver of access to `record`.
    pub(crate) fn check_portal_receiver(
        &self,
        subject: &Subject,
        principal: Principal,
        object: ObjectType,
        record: &Record,
    ) -> Result<()> {
        if let Principal::User(user) = principal {
            let account = subject.snapshot.user(user).and_then(|u| u.portal_account());
            if account.is_some() && account != record.record_ref().account(object) {
                return Err(ServiceError::invalid(
                    "with.user",
                    "a portal user sees only their own customer account's records",
                ));
            }
        }
        Ok(())
    }

    /// The shares and team places of a record the subject may read.
    pub async fn list_shares(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
    ) -> Result<Vec<ShareView>> {
        self.record_for_sharing(subject, object, id).await?;
        Ok(self
            .store
            .shares_of(object, id)
            .await?
            .iter()
            .map(|row| self.share_view(subject, row))
            .collect())
    }

    /// Shares a record (or changes the access of an existing share with the same principal).
    pub async fn share_record(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        with: &PrincipalName,
        access: ShareAccess,
    ) -> Result<ShareView> {
        let record = self.record_for_sharing(subject, object, id).await?;
        if !self.allows(subject, Action::Share, object, &record) {
            return Err(self
                .log_denied(
                    subject,
                    Action::Share,
                    object,
                    Some(id),
                    ServiceError::Forbidden("you may not share this record".into()),
                )
                .await);
        }
        if access == ShareAccess::Edit && !self.allows(subject, Action::Update, object, &record) {
            return Err(ServiceError::Forbidden(
                "you may share this record for reading only: you may not change it yourself".into(),
            ));
        }
        let principal = self.resolve_principal(subject, with)?;
        self.check_portal_receiver(subject, principal, object, &record)?;
        self.put_entry(subject, object, id, ShareKind::Share, principal, access)
            .await
    }

    /// Adds a user to a record's team, or changes their team access. By the owner or anyone
    /// above them in the reporting line.
    pub async fn put_team_member(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        username: &str,
        access: ShareAccess,
    ) -> Result<ShareView> {
        let record = self.record_for_sharing(subject, object, id).await?;
        self.require_team_manager(subject, object, &record).await?;
        let principal =
            self.resolve_principal(subject, &PrincipalName::User(username.to_owned()))?;
        self.check_portal_receiver(subject, principal, object, &record)?;
        self.put_entry(subject, object, id, ShareKind::Team, principal, access)
            .await
    }

    async fn require_team_manager(
        &self,
        subject: &Subject,
        object: ObjectType,
        record: &Record,
    ) -> Result<()> {
        if self.rights_on(subject, object, record).team {
            return Ok(());
        }
        Err(self
            .log_denied(
                subject,
                Action::Share,
                object,
                Some(record.id),
                ServiceError::Forbidden(
                    "a record's team is managed by its owner and the owner's superiors".into(),
                ),
            )
            .await)
    }

    async fn put_entry(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        kind: ShareKind,
        principal: Principal,
        access: ShareAccess,
    ) -> Result<ShareView> {
        let share = Share {
            kind,
            principal,
            access,
        };
        let mut tx = self.store.begin().await?;
        let entry_id = tx
            .put_share(object, id, share, subject.user, subject.now)
            .await?;
        let mut e = entry(subject, &format!("{}.give", kind.as_str()));
        e.object = Some(object);
        e.record_id = Some(id);
        e.detail = format!(
            "{} for {}",
            principal_name(&subject.snapshot, principal),
            access.as_str()
        );
        tx.append_access(&e).await?;
        let row = tx
            .share_on(object, id, entry_id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        tx.commit().await?;
        Ok(self.share_view(subject, &row))
    }

    /// Takes a share or team place back. A share: by anyone allowed `share` on the record, or
    /// by who gave it; a team place: by the owner or their superiors.
    pub async fn revoke_share(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
        share_id: i64,
    ) -> Result<()> {
        let record = self.record_for_sharing(subject, object, id).await?;
        let mut tx = self.store.begin().await?;
        let Some(row) = tx.share_on(object, id, share_id).await? else {
            return Err(ServiceError::NotFound);
        };
        let allowed = self
            .rights_on(subject, object, &record)
            .may_revoke(row.share.kind, row.created_by == Some(subject.user));
        if !allowed {
            drop(tx);
            return Err(self
                .log_denied(
                    subject,
                    Action::Share,
                    object,
                    Some(id),
                    ServiceError::Forbidden("you may not take this access back".into()),
                )
                .await);
        }
        tx.delete_share(share_id).await?;
        let mut e = entry(subject, &format!("{}.revoke", row.share.kind.as_str()));
        e.object = Some(object);
        e.record_id = Some(id);
        e.detail = principal_name(&subject.snapshot, row.share.principal);
        tx.append_access(&e).await?;
        tx.commit().await?;
        Ok(())
    }
}
