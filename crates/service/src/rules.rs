//! Administration of sharing rules and restriction rules (needs `manage_roles`): names in, ids
//! stored, every change through [`OrgChange`] so that four eyes covers it and the epoch bump
//! makes it hold on every node from the next request.

use warden_policy::{
    Action, Audience, Criteria, ObjectType, Permission, Principal, RestrictionRule, RuleSource,
    ShareAccess, SharingRule,
};

use crate::approvals::Outcome;
use crate::explain::principal_name;
use crate::four_eyes::{Created, OrgChange};
use crate::sharing::PrincipalName;
use crate::{Result, ServiceError, Subject, Warden};

/// Which records a sharing rule picks, by name.
#[derive(Debug, Clone, PartialEq)]
pub enum RuleSourceInput {
    /// Records meeting a condition (the approval policies' condition language).
    When(Criteria),
    /// Records of the unit (by name) and of every unit below it.
    OwnedByUnit(String),
}

/// A sharing rule as the admin API takes and shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct SharingRuleInput {
    pub name: String,
    pub object: ObjectType,
    pub source: RuleSourceInput,
    pub share_with: PrincipalName,
    pub access: ShareAccess,
}

/// Whom a restriction rule applies to, by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceInput {
    Everyone,
    Role(String),
    Unit(String),
    ExceptRole(String),
}

/// A restriction rule as the admin API takes and shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct RestrictionRuleInput {
    pub name: String,
    pub object: ObjectType,
    pub applies_to: AudienceInput,
    /// Empty: every action.
    pub actions: Vec<Action>,
    pub only: Criteria,
}

/// A stored rule with its id.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleView<T> {
    pub id: i64,
    pub rule: T,
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ServiceError::invalid("name", "must be 1 to 100 characters"));
    }
    Ok(name.to_owned())
}

fn check_condition(field: &str, object: ObjectType, criteria: &Criteria) -> Result<()> {
    criteria.check_for_records(object).map_err(|e| {
        ServiceError::invalid(
            e.field
                .map_or_else(|| field.to_owned(), |f| format!("{field}.{f}")),
            e.message,
        )
    })
}

/// The name part of a principal in words (`user rep3` → `rep3`).
fn bare_name(subject: &Subject, principal: Principal) -> String {
    let described = principal_name(&subject.snapshot, principal);
    described
        .split_once(' ')
        .map_or(described.clone(), |(_, name)| name.to_owned())
}

impl Warden {
    pub(crate) fn resolve_sharing_rule(
        &self,
        subject: &Subject,
        id: i64,
        input: &SharingRuleInput,
    ) -> Result<SharingRule> {
        let source = match &input.source {
            RuleSourceInput::When(criteria) => {
                check_condition("when", input.object, criteria)?;
                RuleSource::Criteria(criteria.clone())
            }
            RuleSourceInput::OwnedByUnit(unit) => {
                RuleSource::OwnedByUnit(subject.snapshot.unit_by_name(unit).ok_or_else(|| {
                    ServiceError::invalid("owned_by_unit", format!("no unit `{unit}`"))
                })?)
            }
        };
        Ok(SharingRule {
            id,
            name: check_name(&input.name)?,
            object: input.object,
            source,
            share_with: self.resolve_principal(subject, &input.share_with)?,
            access: input.access,
        })
    }

    pub(crate) fn resolve_restriction_rule(
        &self,
        subject: &Subject,
        id: i64,
        input: &RestrictionRuleInput,
    ) -> Result<RestrictionRule> {
        check_condition("only", input.object, &input.only)?;
        let snapshot = &subject.snapshot;
        let role = |name: &String| {
            snapshot
                .role_by_name(name)
                .ok_or_else(|| ServiceError::invalid("applies_to", format!("no role `{name}`")))
        };
        let applies_to = match &input.applies_to {
            AudienceInput::Everyone => Audience::Everyone,
            AudienceInput::Role(name) => Audience::Role(role(name)?),
            AudienceInput::ExceptRole(name) => Audience::ExceptRole(role(name)?),
            AudienceInput::Unit(name) => {
                Audience::Unit(snapshot.unit_by_name(name).ok_or_else(|| {
                    ServiceError::invalid("applies_to", format!("no unit `{name}`"))
                })?)
            }
        };
        Ok(RestrictionRule {
            id,
            name: check_name(&input.name)?,
            object: input.object,
            applies_to,
            actions: input.actions.clone(),
            only: input.only.clone(),
        })
    }

    fn sharing_rule_input(subject: &Subject, rule: &SharingRule) -> SharingRuleInput {
        let snapshot = &subject.snapshot;
        SharingRuleInput {
            name: rule.name.clone(),
            object: rule.object,
            source: match &rule.source {
                RuleSource::Criteria(c) => RuleSourceInput::When(c.clone()),
                RuleSource::OwnedByUnit(unit) => RuleSourceInput::OwnedByUnit(
                    snapshot.unit_name(*unit).unwrap_or_default().to_owned(),
                ),
            },
            share_with: match rule.share_with {
                Principal::User(_) => PrincipalName::User(bare_name(subject, rule.share_with)),
                Principal::Unit(_) => PrincipalName::Unit(bare_name(subject, rule.share_with)),
                Principal::Role(_) => PrincipalName::Role(bare_name(subject, rule.share_with)),
            },
            access: rule.access,
        }
    }

    fn restriction_rule_input(subject: &Subject, rule: &RestrictionRule) -> RestrictionRuleInput {
        let snapshot = &subject.snapshot;
        let role = |id| snapshot.role_name(id).unwrap_or_default().to_owned();
        RestrictionRuleInput {
            name: rule.name.clone(),
            object: rule.object,
            applies_to: match rule.applies_to {
                Audience::Everyone => AudienceInput::Everyone,
                Audience::Role(id) => AudienceInput::Role(role(id)),
                Audience::ExceptRole(id) => AudienceInput::ExceptRole(role(id)),
                Audience::Unit(id) => {
                    AudienceInput::Unit(snapshot.unit_name(id).unwrap_or_default().to_owned())
                }
            },
            actions: rule.actions.clone(),
            only: rule.only.clone(),
        }
    }

    /// Every sharing rule (needs `manage_roles` or `view_audit`).
    pub async fn list_sharing_rules(
        &self,
        subject: &Subject,
    ) -> Result<Vec<RuleView<SharingRuleInput>>> {
        require_rule_reader(subject)?;
        Ok(self
            .store
            .sharing_rules()
            .await?
            .iter()
            .map(|rule| RuleView {
                id: rule.id,
                rule: Self::sharing_rule_input(subject, rule),
            })
            .collect())
    }

    /// Every restriction rule (needs `manage_roles` or `view_audit`).
    pub async fn list_restriction_rules(
        &self,
        subject: &Subject,
    ) -> Result<Vec<RuleView<RestrictionRuleInput>>> {
        require_rule_reader(subject)?;
        Ok(self
            .store
            .restriction_rules()
            .await?
            .iter()
            .map(|rule| RuleView {
                id: rule.id,
                rule: Self::restriction_rule_input(subject, rule),
            })
            .collect())
    }

    /// Creates (`id` none) or replaces a sharing rule; four eyes may hold it.
    pub async fn put_sharing_rule(
        &self,
        subject: &Subject,
        id: Option<i64>,
        input: SharingRuleInput,
    ) -> Result<Outcome<RuleView<SharingRuleInput>>> {
        subject.require(Permission::ManageRoles)?;
        if let Some(id) = id {
            self.find_rule(false, id).await?;
        }
        let rule = self.resolve_sharing_rule(subject, id.unwrap_or(0), &input)?;
        Ok(
            match self
                .submit_org_change(subject, OrgChange::PutSharingRule(rule))
                .await?
            {
                Outcome::Done(created) => Outcome::Done(RuleView {
                    id: created_id(created, id),
                    rule: input,
                }),
                Outcome::Pending(view) => Outcome::Pending(view),
            },
        )
    }

    /// Creates (`id` none) or replaces a restriction rule; four eyes may hold it.
    pub async fn put_restriction_rule(
        &self,
        subject: &Subject,
        id: Option<i64>,
        input: RestrictionRuleInput,
    ) -> Result<Outcome<RuleView<RestrictionRuleInput>>> {
        subject.require(Permission::ManageRoles)?;
        if let Some(id) = id {
            self.find_rule(true, id).await?;
        }
        let rule = self.resolve_restriction_rule(subject, id.unwrap_or(0), &input)?;
        Ok(
            match self
                .submit_org_change(subject, OrgChange::PutRestrictionRule(rule))
                .await?
            {
                Outcome::Done(created) => Outcome::Done(RuleView {
                    id: created_id(created, id),
                    rule: input,
                }),
                Outcome::Pending(view) => Outcome::Pending(view),
            },
        )
    }

    /// Deletes a sharing rule (`restriction: false`) or a restriction rule.
    pub async fn delete_rule(
        &self,
        subject: &Subject,
        restriction: bool,
        id: i64,
    ) -> Result<Outcome<()>> {
        subject.require(Permission::ManageRoles)?;
        self.find_rule(restriction, id).await?;
        let change = if restriction {
            OrgChange::DeleteRestrictionRule(id)
        } else {
            OrgChange::DeleteSharingRule(id)
        };
        Ok(match self.submit_org_change(subject, change).await? {
            Outcome::Done(_) => Outcome::Done(()),
            Outcome::Pending(view) => Outcome::Pending(view),
        })
    }

    async fn find_rule(&self, restriction: bool, id: i64) -> Result<()> {
        let found = if restriction {
            self.store
                .restriction_rules()
                .await?
                .iter()
                .any(|r| r.id == id)
        } else {
            self.store.sharing_rules().await?.iter().any(|r| r.id == id)
        };
        if found {
            Ok(())
        } else {
            Err(ServiceError::NotFound)
        }
    }
}

fn created_id(created: Created, id: Option<i64>) -> i64 {
    match created {
        Created::Rule(id) => id,
        _ => id.unwrap_or_default(),
    }
}

fn require_rule_reader(subject: &Subject) -> Result<()> {
    if subject.can(Permission::ManageRoles) || subject.can(Permission::ViewAudit) {
        Ok(())
    } else {
        Err(ServiceError::Forbidden(
            "reading the rules needs manage_roles or view_audit".into(),
        ))
    }
}
