//! Explain: every action on one record, with every reason and the reporting-line path.

use crate::check::{Decision, Grounds, Reason};
use crate::{Action, ObjectType, RecordRef, RoleId, Snapshot, Timestamp, UserId};

/// Why a user may or may not do each action on one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub user: UserId,
    pub object: ObjectType,
    pub actions: Vec<ActionExplanation>,
    /// Roles the user holds whose assignment has expired (they grant nothing).
    pub expired_roles: Vec<RoleId>,
}

/// One action of an [`Explanation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionExplanation {
    pub action: Action,
    /// The decision `check` gives (the first reason, or why it is denied).
    pub decision: Decision,
    /// Every grant that allows it, one per role.
    pub reasons: Vec<Reason>,
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
        record: &RecordRef,
        now: Timestamp,
    ) -> Explanation {
        let actions = Action::ALL
            .iter()
            .map(|&action| {
                let decision = self.check(user, action, object, record, now);
                let reasons = self.all_reasons(user, action, object, record, now);
                let reporting_path = reasons
                    .iter()
                    .find_map(|reason| match reason.grounds {
                        Grounds::ReportingLine { owner, .. } => Some(self.path_down(user, owner)),
                        _ => None,
                    })
                    .unwrap_or_default();
                ActionExplanation {
                    action,
                    decision,
                    reasons,
                    reporting_path,
                }
            })
            .collect();
        Explanation {
            user,
            object,
            actions,
            expired_roles: self.expired_roles(user, now),
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
