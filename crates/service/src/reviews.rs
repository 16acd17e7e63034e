//! Access reviews: campaigns that put each user's role assignments before their manager, who
//! keeps or revokes each; closing applies the revocations at once (through the permission
//! epoch) and records everything in the access log.

use warden_policy::{Permission, Timestamp, UserId};
use warden_store::{CampaignRow, ReviewItemRow};

use crate::logging::{entry, log_change};
use crate::{Result, ServiceError, Subject, Warden};

/// Whose assignments a campaign reviews.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewScope {
    All,
    Unit(String),
    Role(String),
}

/// A campaign to open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignInput {
    pub name: String,
    pub scope: ReviewScope,
    pub due_at: Timestamp,
    /// What happens to items undecided at close: revoke (`true`) or keep.
    pub revoke_undecided: bool,
}

/// A campaign and its items (all of them, or one reviewer's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CampaignView {
    pub campaign: CampaignRow,
    pub items: Vec<ReviewItemRow>,
}

impl Warden {
    /// Opens a campaign (needs `manage_users`): one item per role assignment of each user in
    /// scope, assigned to the user's manager (the opener for users without one).
    pub async fn open_campaign(
        &self,
        subject: &Subject,
        input: CampaignInput,
    ) -> Result<CampaignView> {
        subject.require(Permission::ManageUsers)?;
        let name = input.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ServiceError::invalid("name", "must be 1 to 200 characters"));
        }
        let snapshot = &subject.snapshot;
        let scope_json = match &input.scope {
            ReviewScope::All => serde_json::json!({"all": true}),
            ReviewScope::Unit(unit) => serde_json::json!({"unit": unit}),
            ReviewScope::Role(role) => serde_json::json!({"role": role}),
        };
        if let ReviewScope::Unit(unit) = &input.scope {
            if !snapshot.users().any(|u| u.unit_name() == unit) {
                return Err(ServiceError::invalid(
                    "scope.unit",
                    format!("no user in a unit named `{unit}`"),
                ));
            }
        }
        let mut items: Vec<(UserId, warden_policy::RoleId, UserId)> = Vec::new();
        for user in snapshot.users() {
            if let ReviewScope::Unit(unit) = &input.scope {
                if user.unit_name() != unit {
                    continue;
                }
            }
            let reviewer = user.manager().map_or(subject.user, |m| m.id());
            for (role, role_name, _) in user.roles() {
                if matches!(&input.scope, ReviewScope::Role(r) if r != role_name) {
                    continue;
                }
                items.push((user.id(), role, reviewer));
            }
        }
        if let ReviewScope::Role(role) = &input.scope {
            if items.is_empty()
                && !snapshot
                    .users()
                    .any(|u| u.roles().any(|(_, n, _)| n == role))
            {
                return Err(ServiceError::invalid(
                    "scope.role",
                    format!("nobody holds a role named `{role}`"),
                ));
            }
        }
        let mut tx = self.store.begin().await?;
        let id = tx
            .insert_campaign(
                name,
                &scope_json.to_string(),
                input.due_at,
                if input.revoke_undecided {
                    "revoke"
                } else {
                    "keep"
                },
                subject.user,
                subject.now,
                &items,
            )
            .await?;
        let detail = format!(
            "campaign {id} ({name}): {} items, scope {scope_json}",
            items.len()
        );
        log_change(&mut tx, subject, "review.open", &[], detail).await?;
        tx.commit().await?;
        self.campaign_view(id, None).await
    }

    async fn campaign_view(&self, id: i64, reviewer: Option<UserId>) -> Result<CampaignView> {
        let campaign = self
            .store
            .campaign(id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let items = self.store.review_items(id, reviewer).await?;
        Ok(CampaignView { campaign, items })
    }

    /// The items the subject must decide in a campaign.
    pub async fn my_review_items(&self, subject: &Subject, id: i64) -> Result<CampaignView> {
        self.campaign_view(id, Some(subject.user)).await
    }

    /// The reviewer keeps or revokes one item of an open campaign.
    pub async fn decide_review_item(
        &self,
        subject: &Subject,
        campaign: i64,
        item: i64,
        revoke: bool,
        comment: &str,
    ) -> Result<()> {
        if comment.chars().count() > 2000 {
            return Err(ServiceError::invalid(
                "comment",
                "must be at most 2000 characters",
            ));
        }
        let decision = if revoke { "revoke" } else { "keep" };
        let mut tx = self.store.begin().await?;
        if !tx
            .decide_review_item(campaign, item, subject.user, decision, comment, subject.now)
            .await?
        {
            // Not the caller's item, no such item, or the campaign is closed: the same answer.
            return Err(ServiceError::NotFound);
        }
        let detail = format!("campaign {campaign}, item {item}: {decision}");
        log_change(&mut tx, subject, "review.decide", &[], detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Closes a campaign (needs `manage_users`): decisions apply, undecided items follow the
    /// campaign's rule, revoked assignments are removed and the epoch bumped — in one
    /// transaction, so a revoked user loses access on their next request.
    pub async fn close_campaign(&self, subject: &Subject, campaign: i64) -> Result<CampaignView> {
        subject.require(Permission::ManageUsers)?;
        self.store
            .campaign(campaign)
            .await?
            .ok_or(ServiceError::NotFound)?;
        let closed = self
            .close_and_log(
                campaign,
                subject.now,
                &subject.snapshot,
                entry(subject, ""),
                "undecided at close",
            )
            .await?;
        if !closed {
            return Err(ServiceError::Conflict(
                "the campaign is closed already".into(),
            ));
        }
        self.campaign_view(campaign, None).await
    }

    /// Closes every open campaign whose due date has passed at `now`, as the system: undecided
    /// items follow each campaign's rule, revocations hold from the next request. Run by the
    /// server's background sweep. Returns how many campaigns it closed.
    pub async fn close_due_campaigns(&self, now: Timestamp) -> Result<usize> {
        let mut closed = 0;
        for campaign in self.store.due_campaigns(now).await? {
            let snapshot = self.current_snapshot().await?;
            let system = warden_store::AccessEntry {
                id: 0,
                at: now,
                actor_id: None,
                actor: "warden".to_owned(),
                action: String::new(),
                object: None,
                record_id: None,
                fields: Vec::new(),
                client: None,
                outcome: "ok".to_owned(),
                detail: String::new(),
            };
            // Closed by someone else meanwhile: nothing to count.
            if self
                .close_and_log(
                    campaign,
                    now,
                    &snapshot,
                    system,
                    "undecided at the due date",
                )
                .await?
            {
                closed += 1;
            }
        }
        Ok(closed)
    }

    /// Closes an open campaign in one transaction: outcomes, removal of revoked assignments,
    /// one log entry per revocation and one for the closing (as `actor`, an entry whose action,
    /// fields and detail are filled in here), and the epoch bump. False when it was not open.
    async fn close_and_log(
        &self,
        campaign: i64,
        now: Timestamp,
        snapshot: &warden_policy::Snapshot,
        actor: warden_store::AccessEntry,
        undecided: &str,
    ) -> Result<bool> {
        let mut tx = self.store.begin().await?;
        let items = match tx.close_campaign(campaign, now).await {
            Ok(items) => items,
            Err(warden_store::StoreError::Conflict) => return Ok(false),
            Err(other) => return Err(other.into()),
        };
        let logged = |action: &str, fields: &[&str], detail: String| warden_store::AccessEntry {
            action: action.to_owned(),
            fields: fields.iter().map(|f| (*f).to_owned()).collect(),
            detail,
            ..actor.clone()
        };
        let revoked: Vec<_> = items
            .iter()
            .filter(|i| i.outcome.as_deref() == Some("revoked"))
            .collect();
        for item in &revoked {
            let user = snapshot
                .user(item.user)
                .map(|u| u.username().to_owned())
                .unwrap_or_default();
            let role = snapshot.role_name(item.role).unwrap_or_default();
            let how = if item.decision.is_some() {
                "decided"
            } else {
                undecided
            };
            let detail = format!("campaign {campaign}: user {user}; role {role} revoked ({how})");
            tx.append_access(&logged("review.revoke", &["roles"], detail))
                .await?;
        }
        let detail = format!(
            "campaign {campaign}: {} items, {} revoked",
            items.len(),
            revoked.len()
        );
        tx.append_access(&logged("review.close", &[], detail))
            .await?;
        tx.bump_epoch().await?;
        tx.commit().await?;
        Ok(true)
    }

    /// A campaign with every item and decision: the evidence for auditors (needs
    /// `view_audit` or `manage_users`).
    pub async fn campaign_evidence(
        &self,
        subject: &Subject,
        campaign: i64,
    ) -> Result<CampaignView> {
        if !subject.can(Permission::ViewAudit) {
            subject.require(Permission::ManageUsers)?;
        }
        self.campaign_view(campaign, None).await
    }
}

/// A user holding functional permissions (user, role, audit or settings management).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivilegedAccount {
    pub username: String,
    pub disabled: bool,
    /// The roles that carry the permissions.
    pub roles: Vec<String>,
    pub permissions: Vec<Permission>,
}

/// A role assignment not used within the report's window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DormantGrant {
    pub username: String,
    pub role: String,
}

/// Users holding both roles of a separation-of-duty rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SodConflict {
    pub username: String,
    pub roles: (String, String),
}

/// The separation-of-duty rule applied when none is given: who changes financial fields must
/// not also sell.
pub const DEFAULT_SOD_RULES: &[(&str, &str)] = &[("Finance", "Sales Rep")];

impl Warden {
    fn require_reports(subject: &Subject) -> Result<()> {
        if subject.can(Permission::ViewAudit) {
            Ok(())
        } else {
            subject.require(Permission::ManageUsers)
        }
    }

    /// Every user whose active roles carry a functional permission (needs `view_audit` or
    /// `manage_users`).
    pub async fn privileged_accounts(&self, subject: &Subject) -> Result<Vec<PrivilegedAccount>> {
        Self::require_reports(subject)?;
        let roles = self.store.roles().await?;
        let mut out = Vec::new();
        for user in subject.snapshot.users() {
            let mut account = PrivilegedAccount {
                username: user.username().to_owned(),
                disabled: user.disabled(),
                roles: Vec::new(),
                permissions: Vec::new(),
            };
            for (role_id, name, assignment) in user.roles() {
                if !assignment.is_active(subject.now) {
                    continue;
                }
                let Some(role) = roles.iter().find(|r| r.id == role_id) else {
                    continue;
                };
                if !role.permissions.is_empty() {
                    account.roles.push(name.to_owned());
                    for p in &role.permissions {
                        if !account.permissions.contains(p) {
                            account.permissions.push(*p);
                        }
                    }
                }
            }
            if !account.roles.is_empty() {
                out.push(account);
            }
        }
        Ok(out)
    }

    /// Role assignments not used for `days` days, from the access log (needs `view_audit` or
    /// `manage_users`). A role with record grants counts as used when its holder successfully
    /// acted on one of those objects; a role with functional permissions only, when its holder
    /// did anything successfully (a login counts).
    pub async fn dormant_permissions(
        &self,
        subject: &Subject,
        days: u32,
    ) -> Result<Vec<DormantGrant>> {
        Self::require_reports(subject)?;
        if days == 0 || days > 3650 {
            return Err(ServiceError::invalid("days", "must be between 1 and 3650"));
        }
        let since = subject.now - i64::from(days) * 24 * 60 * 60 * 1000;
        let used = self.store.last_use_since(since).await?;
        let roles = self.store.roles().await?;
        let mut out = Vec::new();
        for user in subject.snapshot.users().filter(|u| !u.disabled()) {
            let mine: Vec<Option<&str>> = used
                .iter()
                .filter(|(u, _, _)| *u == user.id())
                .map(|(_, object, _)| object.as_deref())
                .collect();
            for (role_id, name, assignment) in user.roles() {
                if !assignment.is_active(subject.now) {
                    continue;
                }
                let Some(role) = roles.iter().find(|r| r.id == role_id) else {
                    continue;
                };
                let in_use = if role.grants.is_empty() {
                    !mine.is_empty()
                } else {
                    role.grants
                        .iter()
                        .any(|g| mine.contains(&Some(g.object.as_str())))
                };
                if !in_use {
                    out.push(DormantGrant {
                        username: user.username().to_owned(),
                        role: name.to_owned(),
                    });
                }
            }
        }
        Ok(out)
    }

    /// Users holding both roles of any rule (`rules`, or [`DEFAULT_SOD_RULES`] when empty)
    /// (needs `view_audit` or `manage_users`).
    pub async fn sod_conflicts(
        &self,
        subject: &Subject,
        rules: &[(String, String)],
    ) -> Result<Vec<SodConflict>> {
        Self::require_reports(subject)?;
        let rules: Vec<(String, String)> = if rules.is_empty() {
            DEFAULT_SOD_RULES
                .iter()
                .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
                .collect()
        } else {
            rules.to_vec()
        };
        let mut out = Vec::new();
        for user in subject.snapshot.users() {
            let held: Vec<&str> = user
                .roles()
                .filter(|(_, _, a)| a.is_active(subject.now))
                .map(|(_, name, _)| name)
                .collect();
            for (a, b) in &rules {
                if held.contains(&a.as_str()) && held.contains(&b.as_str()) {
                    out.push(SodConflict {
                        username: user.username().to_owned(),
                        roles: (a.clone(), b.clone()),
                    });
                }
            }
        }
        Ok(out)
    }
}
