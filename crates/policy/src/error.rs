//! Why a model cannot be compiled into a snapshot.

use crate::{RoleId, UnitId, UserId};

/// A model that cannot be compiled. Each variant names the offending item.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    #[error("unit {0:?} appears twice")]
    DuplicateUnit(UnitId),
    #[error("user {0:?} appears twice")]
    DuplicateUser(UserId),
    #[error("role {0:?} appears twice")]
    DuplicateRole(RoleId),
    #[error("unit {unit:?} has unknown parent {parent:?}")]
    UnknownParentUnit { unit: UnitId, parent: UnitId },
    #[error("user {user:?} belongs to unknown unit {unit:?}")]
    UnknownUnit { user: UserId, unit: UnitId },
    #[error("user {user:?} reports to unknown manager {manager:?}")]
    UnknownManager { user: UserId, manager: UserId },
    #[error("user {user:?} holds unknown role {role:?}")]
    UnknownRole { user: UserId, role: RoleId },
    #[error("the unit tree has a cycle through unit {0:?}")]
    UnitCycle(UnitId),
    #[error("the reporting line has a cycle through user {0:?}")]
    ReportingCycle(UserId),
    #[error("role {role:?} has a rule for unknown field `{field}` of {object}")]
    UnknownField {
        role: RoleId,
        object: crate::ObjectType,
        field: String,
    },
    #[error("approval policy {policy}: {message}")]
    BadApprovalPolicy { policy: i64, message: String },
    #[error("rule `{rule}`: {message}")]
    BadRule { rule: String, message: String },
    #[error("ids must be non-negative, got {0}")]
    NegativeId(i64),
}
