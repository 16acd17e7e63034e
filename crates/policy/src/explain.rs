//! Explain: every action on one record, with every reason and the reporting-line path, and
//! every field with its level and the role that gives it.

use crate::check::{Decision, Grounds, Reason};
use crate::{Action, FieldAccess, ObjectType, RecordRef, RoleId, Snapshot, Timestamp, UserId};

/// Why a user may or may not do each action on one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub user: UserId,
    pub object: ObjectType,
    pub actions: Vec<ActionExplanation>,
    /// Roles the user holds whose assignment has expired (they grant nothing).
    pub expired_roles: Vec<RoleId>,
    /// Every field of the record: hidden, masked, readable or writable, and by which role.
    pub fields: Vec<FieldExplanation>,
}

/// One field of an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldExplanation {
    pub field: &'static str,
    /// Encrypted at rest, and hidden unless a role grants it.
    pub sensitive: bool,
    /// What a role gets of this field when it has no rule for it.
    pub default: FieldAccess,
    /// The level for reading: the strongest among the roles whose read grant covers the record.
    pub read: FieldAccess,
    /// The role that gives `read` (none when the field is hidden).
    pub read_by: Option<RoleId>,
    /// Whether an update may change the field: a role whose update grant covers the record
    /// gives it `write`.
    pub writable: bool,
    pub write_by: Option<RoleId>,
    /// The record is reached only through a share, a team place or a sharing rule: the levels
    /// are the weakest of the user's roles (or the schema's defaults).
    pub through_sharing: bool,
    /// Hidden because the user is a portal user and the field is not portal-visible.
    pub portal_hidden: bool,
}

/// One action of an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionExplanation {
    pub action: Action,
    /// The decision `check` gives (the first reason, or why it is denied).
    pub decision: Decision,
    /// Everything that allows it: one grant per role, then shares, team places and sharing
    /// rules (restrictions aside).
    pub reasons: Vec<Reason>,
    /// Restriction rules that apply to the user and that the record does not meet: each
    /// removes the action whatever allows it.
    pub restricted_by: Vec<i64>,
    /// When a grant reaches the record through the reporting line: the people from the user
    /// down to the record's owner, both included.
    pub reporting_path: Vec<UserId>,
}

impl Snapshot {
    /// Explains every action of `object` on `record` for `user` at `now`.
    pub fn explain(
        &self,
        user: UserId,
        object: ObjectType,
        record: &RecordRef<'_>,
        now: Timestamp,
    ) -> Explanation {
        let actions = Action::ALL
            .iter()
            .map(|&action| {
                let decision = self.check(user, action, object, record, now);
                let reasons = self.all_reasons(user, action, object, record, now);
                let restricted_by = self.failing_restrictions(user, action, object, record, now);
                let reporting_path = reasons
                    .iter()
                    .filter_map(Reason::grant)
                    .find_map(|reason| match reason.grounds {
                        Grounds::ReportingLine { owner, .. } => Some(self.path_down(user, owner)),
                        _ => None,
                    })
                    .unwrap_or_default();
                ActionExplanation {
                    action,
                    decision,
                    reasons,
                    restricted_by,
                    reporting_path,
                }
            })
            .collect();
        Explanation {
            user,
            object,
            actions,
            expired_roles: self.expired_roles(user, now),
            fields: self.field_explanations(user, object, record, now),
        }
    }

    /// The reporting line from `top` down to `bottom` (both included), or empty when `bottom`
    /// is not below `top`.
    fn path_down(&self, top: UserId, bottom: UserId) -> Vec<UserId> {
        if !self.is_at_or_above(top, bottom) {
            return Vec::new();
        }
        let mut path = vec![bottom];
        for manager in self.managers_of(bottom) {
            path.push(manager);
            if manager == top {
                break;
            }
        }
        path.reverse();
        path
    }
}
