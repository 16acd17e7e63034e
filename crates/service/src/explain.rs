//! Explain: why a user may or may not act on a record, in names a person reads.

use warden_policy::{Action, Decision, Denial, FieldAccess, Grounds, ObjectType, Permission};

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

/// One action of an [`ExplainReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionReport {
    pub action: Action,
    pub allowed: bool,
    pub reasons: Vec<ReasonReport>,
    /// Why it is refused, when it is.
    pub denied_because: Option<String>,
}

/// One grant that allows an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReasonReport {
    pub role: String,
    /// The object whose grant applies (a contact is allowed through its customer).
    pub object: ObjectType,
    pub action: Action,
    pub scope: String,
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
                    .map(|reason| ReasonReport {
                        role: role_name(reason.role),
                        object: reason.object,
                        action: reason.action,
                        scope: reason.scope.to_string(),
                        because: match reason.grounds {
                            Grounds::Owner => format!("{username} owns the record"),
                            Grounds::ReportingLine { owner, levels } => {
                                format!("the owner {} is {levels} level(s) below {username} in the reporting line", name_of(owner))
                            }
                            Grounds::SameUnit => format!("the record belongs to {username}'s unit"),
                            Grounds::UnitBelow { levels } => {
                                format!("the record's unit is {levels} level(s) below {username}'s unit")
                            }
                            Grounds::Everything => "the scope covers every record".to_owned(),
                        },
                        reporting_path: if matches!(reason.grounds, Grounds::ReportingLine { .. }) {
                            item.reporting_path.iter().map(|id| name_of(*id)).collect()
                        } else {
                            Vec::new()
                        },
                    })
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
