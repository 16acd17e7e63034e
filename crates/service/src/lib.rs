//! Warden's use cases. [`Warden`] holds the store and the current permission snapshot; every
//! use case authenticates a [`Subject`], decides with the engine, and reads or writes through
//! the store, one transaction per change.
//!
//! Time is always a parameter (`now`, milliseconds since the Unix epoch): expiry of sessions
//! and role assignments is tested exactly, and nothing here reads a clock.
//!
//! INVARIANT: a decision is never made on a snapshot older than the epoch the request read
//! from the database (see [`Warden::authenticate`]); a permission change therefore holds on
//! every server node from its next request.

mod admin;
mod approval_policies;
mod approvals;
mod audit;
mod auth;
mod dashboard;
pub mod demo;
mod error;
mod explain;
mod four_eyes;
#[doc(hidden)]
pub mod fuzzing;
mod logging;
mod policy_file;
mod records;
mod reviews;
mod rules;
mod security;
mod sharing;
mod state;
mod view_as;
mod whatif;

pub use admin::{RoleInput, RoleView, UnitView, UserInput, UserUpdate, UserView};
pub use approval_policies::{
    ApprovalPolicyInput, ApprovalPolicyView, ApproversInput, RequestersInput,
};
pub use approvals::{
    ApprovalRole, ApprovalView, EventView, Outcome, ProposedField, StepView, PENDING,
};
pub use audit::{AuditFilter, AuditPage, MAX_AUDIT_PAGE};
pub use auth::{LoginOutcome, LoginRequest, Subject, Viewer};
pub use dashboard::UnitCount;
pub use error::ServiceError;
pub use explain::{ActionReport, ExplainReport, FieldReport, ReasonReport, ReasonSource};
pub use policy_file::{
    ItemChangeKind, PolicyAccessChange, PolicyItemChange, PolicyPlan, BOOTSTRAP_ACTOR,
};
pub use records::{ListQuery, Page, RecordInput, RecordView};
pub use reviews::{
    CampaignInput, CampaignView, DormantGrant, PrivilegedAccount, ReviewScope, SodConflict,
    DEFAULT_SOD_RULES,
};
pub use rules::{AudienceInput, RestrictionRuleInput, RuleSourceInput, RuleView, SharingRuleInput};
pub use security::{
    check_password_policy, AccessTarget, NewApiToken, TotpEnrolment, MIN_PASSWORD_CHARS,
};
pub use sharing::{PrincipalName, ShareView, SharingRights};
pub use state::{Config, Warden};
pub use view_as::{ViewAsToken, MAX_VIEW_AS_MINUTES};
pub use whatif::{FieldChange, UserAccessChange, WhatIfChange, WhatIfReport};

/// Result type of the service.
pub type Result<T, E = ServiceError> = std::result::Result<T, E>;

pub use warden_policy as policy;
pub use warden_store as store;
