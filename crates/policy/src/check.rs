//! The single-record decision: allowed with the grant that allows it, or denied with why.

use crate::{Action, ObjectType, RoleId, Scope, UserId};

/// The outcome of [`crate::Snapshot::check`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow(Reason),
    Deny(Denial),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// The grant that allows an action: which role, which scope, on which object (a contact is
/// allowed through a grant on its customer).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reason {
    pub role: RoleId,
    pub object: ObjectType,
    pub action: Action,
    pub scope: Scope,
    /// How the record matched the scope.
    pub grounds: Grounds,
}

/// How a record falls within a scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grounds {
    /// The user owns it.
    Owner,
    /// Its owner is `levels` below the user in the reporting line.
    ReportingLine { owner: UserId, levels: u32 },
    /// It belongs to the user's unit.
    SameUnit,
    /// It belongs to a unit `levels` below the user's.
    UnitBelow { levels: u32 },
    /// The scope covers every record.
    Everything,
}

/// Why an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The user is not in the snapshot.
    UnknownUser,
    /// The user is disabled.
    Disabled,
    /// None of the user's active roles grants this action on this object at any scope.
    NoGrant { object: ObjectType, action: Action },
    /// Grants exist, but the record is outside every granted scope.
    OutOfScope { object: ObjectType, action: Action },
    /// The object is controlled by its customer and the record names none.
    NoCustomer,
}
