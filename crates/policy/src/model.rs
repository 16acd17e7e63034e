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
    /// Sharing rules: records picked by a condition or by their unit, opened to a principal.
    pub sharing_rules: Vec<crate::SharingRule>,
    /// Restriction rules: conditions every record must meet for the users they apply to.
    pub restriction_rules: Vec<crate::RestrictionRule>,
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
    /// For a portal user (an external user of a customer account): the customer's id. Such a
    /// user reaches only that account's records and only portal-visible fields.
    pub portal_account: Option<i64>,
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

/// What the engine needs to know of a record: its owner and unit; for a record controlled by
/// its customer, the customer's; the shares and field values that sharing and restriction
/// rules test; and the customer account it belongs to (the portal bound).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RecordRef<'a> {
    pub owner: UserId,
    pub unit: UnitId,
    /// The owning customer's owner and unit, for contacts, deals, contracts and activities.
    pub customer: Option<(UserId, UnitId)>,
    /// The record's id; `None` for a record not created yet.
    pub id: Option<i64>,
    /// The customer it belongs to (contacts, deals, …); `None` for a customer.
    pub customer_id: Option<i64>,
    /// The record's own shares, team places and field values (schema order).
    pub facts: Facts<'a>,
    /// Its customer's, for a record that belongs to one (sensitive values left empty: rules
    /// never test them).
    pub customer_facts: Facts<'a>,
}

/// The shares, team places and field values of one record.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Facts<'a> {
    pub shares: &'a [crate::Share],
    pub values: &'a [crate::schema::Value],
}

impl<'a> RecordRef<'a> {
    /// A record with no customer (a customer itself), no id, no shares and no values.
    pub fn new(owner: UserId, unit: UnitId) -> Self {
        RecordRef {
            owner,
            unit,
            customer: None,
            id: None,
            customer_id: None,
            facts: Facts::default(),
            customer_facts: Facts::default(),
        }
    }

    /// The customer account the record belongs to: a customer's own id, another record's
    /// customer.
    pub fn account(&self, object: ObjectType) -> Option<i64> {
        if object == ObjectType::Customers {
            self.id
        } else {
            self.customer_id
        }
    }
}

/// An owned [`RecordRef`], for a record that is planned rather than read (a create, a
/// hand-over, an approval's target).
#[derive(Debug, Clone, PartialEq)]
pub struct OwnedRecordRef {
    pub owner: UserId,
    pub unit: UnitId,
    pub customer: Option<(UserId, UnitId)>,
    pub id: Option<i64>,
    pub customer_id: Option<i64>,
    pub shares: Vec<crate::Share>,
    pub values: Vec<crate::schema::Value>,
    pub customer_shares: Vec<crate::Share>,
    pub customer_values: Vec<crate::schema::Value>,
}

impl OwnedRecordRef {
    /// The borrowed form the engine takes.
    pub fn as_ref(&self) -> RecordRef<'_> {
        RecordRef {
            owner: self.owner,
            unit: self.unit,
            customer: self.customer,
            id: self.id,
            customer_id: self.customer_id,
            facts: Facts {
                shares: &self.shares,
                values: &self.values,
            },
            customer_facts: Facts {
                shares: &self.customer_shares,
                values: &self.customer_values,
            },
        }
    }
}

impl RecordRef<'_> {
    /// An owned copy.
    pub fn to_owned_ref(&self) -> OwnedRecordRef {
        OwnedRecordRef {
            owner: self.owner,
            unit: self.unit,
            customer: self.customer,
            id: self.id,
            customer_id: self.customer_id,
            shares: self.facts.shares.to_vec(),
            values: self.facts.values.to_vec(),
            customer_shares: self.customer_facts.shares.to_vec(),
            customer_values: self.customer_facts.values.to_vec(),
        }
    }
}
