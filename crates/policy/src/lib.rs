//! Warden's permission engine: the organisation, its roles and their scopes compiled into one
//! immutable [`Snapshot`] that answers three questions without IO.
//!
//! - [`Snapshot::check`]: may this user do this action on this record? With the reason.
//! - [`Snapshot::filter`]: which records may this user act on? A [`RecordFilter`] that the store
//!   turns into SQL, so a list is filtered in the database and never loaded then checked.
//! - [`Snapshot::field_levels`]: which fields of a record are hidden, masked, readable or
//!   writable for this user and action (field-level security, per role and scope).
//! - [`Snapshot::explain`]: every reason, for every action and every field, with the
//!   reporting-line path.
//!
//! # Design
//!
//! The reporting line and the unit tree are numbered in pre-order when the snapshot is
//! compiled: each user gets `pre` (its position) and `last` (the largest `pre` in its subtree),
//! so "the owner is me or below me" is two integer comparisons. Records carry only their
//! owner and unit; moving a person renumbers people (in memory, at the next compile), never
//! records.
//!
//! INVARIANT: a record is in `filter(u, a, o)` exactly when `check(u, a, o, record)` allows.
//! The property tests in `tests/` hold both to a naive reference model.
//!
//! Time enters as a parameter ([`Timestamp`]): role assignments can expire, and nothing in
//! this crate reads a clock.

pub mod access;
mod approval;
mod check;
mod error;
mod explain;
mod fields;
mod filter;
mod ids;
mod model;
pub mod schema;
pub mod sharing;
mod snapshot;
mod vocab;
mod whatif;

pub use approval::{
    ApprovalPolicy, ApprovalTarget, Approvers, CompareOp, Criteria, Proposal, Requesters,
};
pub use check::{Decision, Denial, GrantReason, Grounds, Reason};
pub use error::ModelError;
pub use explain::{ActionExplanation, Explanation, FieldExplanation};
pub use fields::{mask, FieldLevels};
pub use filter::{Condition, Filter, RecordFilter, SharedWith};
pub use ids::{RoleId, Timestamp, UnitId, UserId};
pub use model::{
    AccessOwner, Facts, FieldRule, Grant, Model, OwnedRecordRef, RecordRef, RoleAssignment,
    RoleDef, UnitDef, UserDef,
};
pub use sharing::{
    Audience, Principal, RestrictionRule, RuleSource, Share, ShareAccess, ShareKind, SharingRule,
};
pub use snapshot::{Snapshot, UserView};
pub use vocab::{Action, Control, FieldAccess, ObjectType, Permission, Scope, UnknownName};
pub use whatif::{
    customer_access_diff, delta, differing_filters, field_level_changes, members,
    plan_customer_diff, record_access_diff, AccessChange, Cell, Class, DiffFilters, DiffPlan,
    FieldLevelChange, OrgEdit, PlannedDiff, ShareCorrection, MAX_CRITERIA,
};
