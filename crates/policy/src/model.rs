//! The model the snapshot is compiled from: plain data as the store loads it.

use crate::access::AccessRules;
use crate::{
    Action, Control, FieldAccess, ObjectType, Permission, RoleId, Scope, Timestamp, UnitId, UserId,
};

/// Everything the engine needs to know, as loaded in one read of the database.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Model {
    /// The permission epoch this model was read at (bumped by every permission change).
    pub epoch: i64,
    pub units: Vec<UnitDef>,
    pub users: Vec<UserDef>,
    pub roles: Vec<RoleDef>,
    /// Objects whose control differs from the default (customers by their own grants, every
    /// other object by its customer).
    pub controls: Vec<(ObjectType, Control)>,
    /// Access rules (addresses, hours, second factor) of roles and users.
    pub access_rules: Vec<(AccessOwner, AccessRules)>,
    /// Users who have a confirmed second factor.
    pub mfa_enrolled: Vec<UserId>,
    /// Approval policies: which changes wait for whose approval.
    pub approval_policies: Vec<crate::ApprovalPolicy>,
    /// Whether changes to permissions themselves wait for a second administrator.
    pub four_eyes: bool,
    /// Accounts that belong to a natural person (an employee number, say): accounts with the
    /// same key are one person, who can never approve their own request from another account.
    /// Accounts not listed are each their own person.
    pub persons: Vec<(UserId, String)>,
}

/// Whom a set of access rules applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessOwner {
    /// Every holder of the role (while the assignment is active).
    Role(RoleId),
    /// One user.
    User(UserId),
}

/// An organisational unit; `parent` is `None` for a root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitDef {
    pub id: UnitId,
    pub name: String,
    pub parent: Option<UnitId>,
}

/// A user: one unit, at most one manager (the reporting line), any number of roles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDef {
    pub id: UserId,
    pub username: String,
    pub unit: UnitId,
    pub manager: Option<UserId>,
    pub disabled: bool,
    pub roles: Vec<RoleAssignment>,
}

/// A role held by a user, possibly until a given time (exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleAssignment {
    pub role: RoleId,
    pub expires_at: Option<Timestamp>,
}

impl RoleAssignment {
    /// Whether the assignment counts at `now`.
    pub fn is_active(&self, now: Timestamp) -> bool {
        self.expires_at.is_none_or(|expiry| now < expiry)
    }
}

/// A role: record grants per object and action, plus functional permissions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDef {
    pub id: RoleId,
    pub name: String,
    pub grants: Vec<Grant>,
    pub permissions: Vec<Permission>,
    /// Field rules that differ from the schema's defaults (see [`crate::schema::FieldDef::default_access`]).
    pub fields: Vec<FieldRule>,
}

/// "Holders of this role get `access` to `field` of the `object` records their grants reach."
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FieldRule {
    pub object: ObjectType,
    pub field: String,
    pub access: FieldAccess,
}

/// "Holders of this role may do `action` on `object` records within `scope`."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Grant {
    pub object: ObjectType,
    pub action: Action,
    pub scope: Scope,
}

/// What the engine needs to know of a record: its owner and unit, and for a record controlled
/// by its customer, the customer's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RecordRef {
    pub owner: UserId,
    pub unit: UnitId,
    /// The owning customer's owner and unit, for contacts, deals, contracts and activities.
    pub customer: Option<(UserId, UnitId)>,
}

impl RecordRef {
    /// A record with no customer (a customer itself).
    pub fn new(owner: UserId, unit: UnitId) -> Self {
        RecordRef {
            owner,
            unit,
            customer: None,
        }
    }
}
