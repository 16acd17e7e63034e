//! Access reviews: campaigns that put each user's role assignments before their manager, who
//! keeps or revokes each; closing applies the revocations at once (through the permission
//! epoch) and records everything in the access log.

use warden_policy::{Permission, Timestamp, UserId};
use warden_store::{CampaignRow, ReviewItemRow};

use crate::logging::log_change;
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
        let mut tx = self.store.begin().await?;
        let items = tx
            .close_campaign(campaign, subject.now)
            .await
            .map_err(|e| match e {
                warden_store::StoreError::Conflict => {
                    ServiceError::Conflict("the campaign is closed already".into())
                }
                other => other.into(),
            })?;
        let snapshot = &subject.snapshot;
        for item in items
            .iter()
            .filter(|i| i.outcome.as_deref() == Some("revoked"))
        {
            let user = snapshot
                .user(item.user)
                .map(|u| u.username().to_owned())
                .unwrap_or_default();
            let role = snapshot.role_name(item.role).unwrap_or_default();
            let how = if item.decision.is_some() {
                "decided"
            } else {
                "undecided at close"
            };
            let detail = format!("campaign {campaign}: user {user}; role {role} revoked ({how})");
            log_change(&mut tx, subject, "review.revoke", &["roles"], detail).await?;
        }
        let revoked = items
            .iter()
            .filter(|i| i.outcome.as_deref() == Some("revoked"))
            .count();
        let detail = format!(
            "campaign {campaign}: {} items, {revoked} revoked",
            items.len()
        );
        log_change(&mut tx, subject, "review.close", &[], detail).await?;
        tx.bump_epoch().await?;
        tx.commit().await?;
        self.campaign_view(campaign, None).await
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
