//! The single-record decision: allowed with what allows it, or denied with why.

use crate::{Action, ObjectType, Principal, RoleId, Scope, ShareAccess, ShareKind, UserId};

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

/// What allows an action. `object` and `action` are those decided on: a contact is allowed
/// through its customer (`customers`, with [`Action::on_controlling_customer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// A role's grant, at a scope that covers the record.
    Grant(GrantReason),
    /// A share or a team place on the record names the user (directly, by unit or by role).
    Share {
        object: ObjectType,
        action: Action,
        kind: ShareKind,
        principal: Principal,
        access: ShareAccess,
    },
    /// A sharing rule picks the record and names the user.
    Rule {
        object: ObjectType,
        action: Action,
        rule: i64,
        principal: Principal,
        access: ShareAccess,
    },
}

impl Reason {
    /// The grant behind this reason, when it is one.
    pub fn grant(&self) -> Option<&GrantReason> {
        match self {
            Reason::Grant(grant) => Some(grant),
            _ => None,
        }
    }
}

/// The grant that allows an action: which role, which scope, on which object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrantReason {
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
    /// It belongs to the portal user's customer account.
    Account,
}

/// Why an action is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The user is not in the snapshot.
    UnknownUser,
    /// The user is disabled.
    Disabled,
    /// None of the user's active roles grants this action on this object at any scope, and no
    /// share, team place or sharing rule reaches the record.
    NoGrant { object: ObjectType, action: Action },
    /// Grants exist, but the record is outside every granted scope and no share, team place or
    /// sharing rule reaches it.
    OutOfScope { object: ObjectType, action: Action },
    /// The object is controlled by its customer and the record names none.
    NoCustomer,
    /// Something allows it, but a restriction rule that applies to the user removes it.
    Restricted {
        object: ObjectType,
        action: Action,
        rule: i64,
    },
    /// A portal user, and the record belongs to another customer account.
    OutsideAccount,
}
