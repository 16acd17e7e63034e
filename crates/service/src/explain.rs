//! Explain: why a user may or may not act on a record, in names a person reads.

use warden_policy::{
    Action, Decision, Denial, FieldAccess, Grounds, ObjectType, Permission, Principal, Reason,
    ShareKind, Snapshot,
};

use crate::{Result, ServiceError, Subject, Warden};

/// The explanation of one user's access to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExplainReport {
    pub user: String,
    pub object: ObjectType,
    pub id: i64,
    pub owner: String,
    pub unit: String,
    pub actions: Vec<ActionReport>,
    /// Roles the user holds whose assignment has expired.
    pub expired_roles: Vec<String>,
    /// Every field of the record, and what the user may do with it.
    pub fields: Vec<FieldReport>,
}

/// One field of an [`ExplainReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldReport {
    pub field: &'static str,
    pub sensitive: bool,
    /// hidden, masked, read or write: the strongest level among the roles whose read grant
    /// covers the record.
    pub read: FieldAccess,
    /// The role giving `read`.
    pub read_by: Option<String>,
    pub writable: bool,
    /// The role giving `write` under an update grant that covers the record.
    pub write_by: Option<String>,
    /// In words.
    pub because: String,
}

/// Where a reason comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReasonSource {
    /// A role's grant and scope.
    Role,
    /// A share on the record (or on its customer).
    Share,
    /// A place in the record's team.
    Team,
    /// A sharing rule.
    SharingRule,
}

impl ReasonSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonSource::Role => "role",
            ReasonSource::Share => "share",
            ReasonSource::Team => "team",
            ReasonSource::SharingRule => "sharing_rule",
        }
    }
}

/// One action of an [`ExplainReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReport {
    pub action: Action,
    pub allowed: bool,
    pub reasons: Vec<ReasonReport>,
    /// Restriction rules (by name) that apply to the user and that the record does not meet:
    /// each removes the action whatever the reasons say.
    pub restricted_by: Vec<String>,
    /// Why it is refused, when it is.
    pub denied_because: Option<String>,
}

/// One thing that allows an action: a role's grant, a share, a team place or a sharing rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonReport {
    pub source: ReasonSource,
    /// The role, for a grant.
    pub role: Option<String>,
    /// The object decided on (a contact is allowed through its customer).
    pub object: ObjectType,
    pub action: Action,
    /// The scope, for a grant.
    pub scope: Option<String>,
    /// The sharing rule's name.
    pub rule: Option<String>,
    /// Whom a share, team place or rule names (`user rep3`, `unit Support East`, `role …`).
    pub principal: Option<String>,
    /// `read` or `edit`, for a share, team place or rule.
    pub access: Option<&'static str>,
    /// How the record falls within the scope, in words.
    pub because: String,
    /// Usernames from the user down to the record's owner, for a reporting-line grant.
    pub reporting_path: Vec<String>,
}

impl Warden {
    /// Explains `user`'s access to one record. Anyone may ask about themselves; asking about
    /// someone else needs `manage_users` or `manage_roles`. The record must be readable by the
    /// caller (404 otherwise), so explain never reveals a record.
    pub async fn explain(
        &self,
        subject: &Subject,
        username: &str,
        object: ObjectType,
        id: i64,
    ) -> Result<ExplainReport> {
        if username != subject.username
            && !subject.can(Permission::ManageUsers)
            && !subject.can(Permission::ManageRoles)
        {
            return Err(ServiceError::Forbidden(
                "explaining another user's access needs manage_users or manage_roles".into(),
            ));
        }
        let snapshot = &subject.snapshot;
        let user = snapshot
            .user_by_name(username)
            .ok_or_else(|| ServiceError::invalid("user", format!("no user named `{username}`")))?;
        let record = self
            .store
            .get_record(object, id)
            .await?
            .ok_or(ServiceError::NotFound)?;
        if !snapshot
            .check(
                subject.user,
                Action::Read,
                object,
                &record.record_ref(),
                subject.now,
            )
            .is_allowed()
        {
            return Err(ServiceError::NotFound);
        }
        let explanation = snapshot.explain(user.id(), object, &record.record_ref(), subject.now);
        let name_of = |id| {
            snapshot
                .user(id)
                .map(|u| u.username().to_owned())
                .unwrap_or_default()
        };
        let role_name = |id| snapshot.role_name(id).unwrap_or_default().to_owned();
        let actions = explanation
            .actions
            .iter()
            .map(|item| ActionReport {
                action: item.action,
                allowed: item.decision.is_allowed(),
                reasons: item
                    .reasons
                    .iter()
                    .map(|reason| reason_report(snapshot, username, reason, &item.reporting_path))
                    .collect(),
                restricted_by: item
                    .restricted_by
                    .iter()
                    .map(|id| restriction_name(snapshot, *id))
                    .collect(),
                denied_because: match item.decision {
                    Decision::Allow(_) => None,
                    Decision::Deny(denial) => Some(match denial {
                        Denial::UnknownUser => "the user does not exist".to_owned(),
                        Denial::Disabled => "the user is disabled".to_owned(),
                        Denial::NoGrant { object, action } => format!("none of the user's roles grants {action} on {object}"),
                        Denial::OutOfScope { object, action } => {
                            format!("the record is outside the scope of every {action} grant on {object} the user holds")
                        }
                        Denial::NoCustomer => "the record has no customer".to_owned(),
                        Denial::Restricted { rule, .. } => format!(
                            "the restriction rule `{}` applies to {username} and the record does not meet it",
                            restriction_name(snapshot, rule)
                        ),
                        Denial::OutsideAccount => format!(
                            "{username} is a portal user, and the record belongs to another customer account"
                        ),
                    }),
                },
            })
            .collect();
        Ok(ExplainReport {
            user: username.to_owned(),
            object,
            id,
            owner: name_of(record.owner),
            unit: snapshot
                .unit_name(record.unit)
                .unwrap_or_default()
                .to_owned(),
            actions,
            expired_roles: explanation
                .expired_roles
                .iter()
                .map(|r| role_name(*r))
                .collect(),
            fields: explanation
                .fields
                .iter()
                .map(|f| {
                    let read_by = f.read_by.map(role_name);
                    let write_by = f.write_by.map(role_name);
                    let because = match (&read_by, &write_by) {
                        _ if f.portal_hidden => format!(
                            "hidden: {username} is a portal user and the field is not shown on the portal"
                        ),
                        (_, Some(writer)) if f.through_sharing => format!(
                            "the record is reached by a share, team place or sharing rule; {writer} lets {username} change the field"
                        ),
                        (Some(reader), None) if f.through_sharing => format!(
                            "the record is reached by a share, team place or sharing rule; the field is at the weakest level among {username}'s roles ({reader})"
                        ),
                        (None, None) if f.through_sharing && f.read > FieldAccess::Hidden => {
                            "the record is reached by a share, team place or sharing rule; the field follows the schema's default".to_owned()
                        }
                        (_, Some(writer)) => format!("{writer} lets {username} change it"),
                        (Some(reader), None) => format!(
                            "{reader} shows it {}; no role whose update grant covers the record lets {username} change it",
                            match f.read {
                                FieldAccess::Masked => "masked (full value by a logged reveal)",
                                _ => "read-only",
                            }
                        ),
                        (None, None) if f.sensitive => format!(
                            "sensitive: hidden unless a role grants it, and none of {username}'s roles that reach the record does"
                        ),
                        (None, None) => format!(
                            "hidden: no role of {username}'s that reaches the record shows it"
                        ),
                    };
                    FieldReport {
                        field: f.field,
                        sensitive: f.sensitive,
                        read: f.read,
                        read_by,
                        writable: f.writable,
                        write_by,
                        because,
                    }
                })
                .collect(),
        })
    }
}

/// A principal in words.
pub(crate) fn principal_name(snapshot: &Snapshot, principal: Principal) -> String {
    match principal {
        Principal::User(id) => format!(
            "user {}",
            snapshot
                .user(id)
                .map_or_else(|| format!("#{}", id.0), |u| u.username().to_owned())
        ),
        Principal::Unit(id) => format!(
            "unit {}",
            snapshot
                .unit_name(id)
                .map_or_else(|| format!("#{}", id.0), str::to_owned)
        ),
        Principal::Role(id) => format!(
            "role {}",
            snapshot
                .role_name(id)
                .map_or_else(|| format!("#{}", id.0), str::to_owned)
        ),
    }
}

fn restriction_name(snapshot: &Snapshot, id: i64) -> String {
    snapshot
        .restriction_rules()
        .iter()
        .find(|r| r.id == id)
        .map_or_else(|| format!("#{id}"), |r| r.name.clone())
}

fn reason_report(
    snapshot: &Snapshot,
    username: &str,
    reason: &Reason,
    reporting_path: &[warden_policy::UserId],
) -> ReasonReport {
    let name_of = |id| {
        snapshot
            .user(id)
            .map(|u| u.username().to_owned())
            .unwrap_or_default()
    };
    match *reason {
        Reason::Grant(grant) => ReasonReport {
            source: ReasonSource::Role,
            role: Some(
                snapshot
                    .role_name(grant.role)
                    .unwrap_or_default()
                    .to_owned(),
            ),
            object: grant.object,
            action: grant.action,
            scope: Some(grant.scope.to_string()),
            rule: None,
            principal: None,
            access: None,
            because: match grant.grounds {
                Grounds::Owner => format!("{username} owns the record"),
                Grounds::ReportingLine { owner, levels } => format!(
                    "the owner {} is {levels} level(s) below {username} in the reporting line",
                    name_of(owner)
                ),
                Grounds::SameUnit => format!("the record belongs to {username}'s unit"),
                Grounds::UnitBelow { levels } => {
                    format!("the record's unit is {levels} level(s) below {username}'s unit")
                }
                Grounds::Everything => "the scope covers every record".to_owned(),
                Grounds::Account => {
                    format!("the record belongs to {username}'s customer account (portal)")
                }
            },
            reporting_path: if matches!(grant.grounds, Grounds::ReportingLine { .. }) {
                reporting_path.iter().map(|id| name_of(*id)).collect()
            } else {
                Vec::new()
            },
        },
        Reason::Share {
            object,
            action,
            kind,
            principal,
            access,
        } => {
            let whom = principal_name(snapshot, principal);
            let on = if object == ObjectType::Customers {
                "the customer"
            } else {
                "the record"
            };
            ReasonReport {
                source: if kind == ShareKind::Team {
                    ReasonSource::Team
                } else {
                    ReasonSource::Share
                },
                role: None,
                object,
                action,
                scope: None,
                rule: None,
                principal: Some(whom.clone()),
                access: Some(access.as_str()),
                because: match kind {
                    ShareKind::Team => {
                        format!(
                            "{whom} is in the team of {on} with {} access",
                            access.as_str()
                        )
                    }
                    ShareKind::Share => {
                        format!("{on} is shared with {whom} for {}", access.as_str())
                    }
                },
                reporting_path: Vec::new(),
            }
        }
        Reason::Rule {
            object,
            action,
            rule,
            principal,
            access,
        } => {
            let whom = principal_name(snapshot, principal);
            let name = snapshot
                .sharing_rules()
                .iter()
                .find(|r| r.id == rule)
                .map_or_else(|| format!("#{rule}"), |r| r.name.clone());
            ReasonReport {
                source: ReasonSource::SharingRule,
                role: None,
                object,
                action,
                scope: None,
                rule: Some(name.clone()),
                principal: Some(whom.clone()),
                access: Some(access.as_str()),
                because: format!(
                    "the sharing rule `{name}` picks the record and shares it with {whom} for {}",
                    access.as_str()
                ),
                reporting_path: Vec::new(),
            }
        }
    }
}
