//! Warden's storage: one [`Store`] over SQLite (embedded, WAL) or PostgreSQL, chosen by URL.
//!
//! The store knows tables and SQL; it does not decide permissions. It loads the organisation
//! as a [`warden_policy::Model`] for the engine, and turns the engine's
//! [`warden_policy::RecordFilter`] into a `WHERE` clause so that lists are filtered in the
//! database. Every write happens inside a [`Tx`] so the service can bump the permission epoch
//! and append to the access log in the same transaction as the change.
//!
//! SQL is written once with `$N` placeholders, which both SQLite and PostgreSQL accept; where
//! the dialects differ (id columns, JSON set membership) the [`Backend`] says which to use,
//! and the migrations are kept per dialect.

mod access_log;
mod approvals;
pub mod backup;
mod bulk;
mod check;
mod connect;
mod crypto;
mod datadir;
mod error;
pub mod keys;
mod org;
mod policy_file;
mod records;
mod reviews;
mod security;
mod sessions;
mod sharing;
mod sql;
mod stats;
#[doc(hidden)]
pub mod testing;
mod whatif;

pub use access_log::{
    verify_archive, AccessEntry, AccessQuery, ArchiveError, ArchiveSummary, ChainProblem,
    ChainReport, CHECKPOINT_EVERY,
};
pub use approvals::{
    criteria_from_json, criteria_to_json, policy_from_json, policy_to_json, value_from_json,
    value_to_json, ApprovalEvent, ApprovalListing, ApprovalPolicyRow, ApprovalRow, ApprovalVote,
    NewApprovalRequest, WebhookDelivery, FOUR_EYES,
};
pub use check::{CheckKind, ConsistencyReport, Problem};
pub use connect::{Backend, Store, Tx, SQLITE_FILE};
pub use crypto::{
    pending_key_file, DataKeyInfo, KeyStatus, ReencryptCursor, Unlocked, CIPHERTEXT_PREFIX,
};
pub use datadir::{DataDirLock, LOCK_FILE};
pub use error::StoreError;
pub use org::{NewUser, RoleContents, RoleRow, UnitRow, UserChanges, UserRow};
pub use records::{ListPage, ListPlan, NewRecord, Record, RecordChanges};
pub use reviews::{CampaignRow, ReviewItemRow};
pub use security::{
    address_key, rules_from_json, rules_to_json, user_key, ApiTokenRow, ThrottleState, TotpState,
};
pub use sessions::SessionRow;
pub use sharing::{
    principal_from_json, principal_to_json, restriction_rule_from_json, restriction_rule_to_json,
    sharing_rule_from_json, sharing_rule_to_json, ShareRow,
};

/// Result type of the store.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;
