//! Reading the access log (needs `view_audit`). The log names records and fields; it holds no
//! customer value, so an auditor reads it without any grant on customer data.

use warden_policy::{ObjectType, Permission, Timestamp};
use warden_store::{AccessEntry, AccessQuery};

use crate::{Result, ServiceError, Subject, Warden};

/// What to read of the log; every part optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// The actor's username.
    pub actor: Option<String>,
    pub object: Option<ObjectType>,
    pub record_id: Option<i64>,
    pub action: Option<String>,
    /// From this time (inclusive), until `to` (exclusive).
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    pub limit: Option<u32>,
}

/// One page of the log, oldest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditPage {
    pub items: Vec<AccessEntry>,
    pub next_cursor: Option<String>,
}

/// The largest page of the log (exports page through it).
pub const MAX_AUDIT_PAGE: u32 = 1000;

impl Warden {
    /// The access log's entries about one record, oldest first (needs `view_audit`). The record
    /// need not be readable by the auditor: the log names it, it does not show it.
    pub async fn access_entries_for(
        &self,
        subject: &Subject,
        object: ObjectType,
        id: i64,
    ) -> Result<Vec<AccessEntry>> {
        subject.require(Permission::ViewAudit)?;
        Ok(self.store.access_entries_for(object, id).await?)
    }

    /// One page of the entries matching `filter`, in the order written (needs `view_audit`).
    pub async fn audit_entries(
        &self,
        subject: &Subject,
        filter: &AuditFilter,
    ) -> Result<AuditPage> {
        subject.require(Permission::ViewAudit)?;
        let limit = filter.limit.unwrap_or(100);
        if limit == 0 || limit > MAX_AUDIT_PAGE {
            return Err(ServiceError::invalid(
                "limit",
                format!("must be between 1 and {MAX_AUDIT_PAGE}"),
            ));
        }
        let after = match filter.cursor.as_deref().filter(|c| !c.is_empty()) {
            None => None,
            Some(c) => Some(c.parse::<i64>().ok().filter(|id| *id >= 0).ok_or_else(|| {
                ServiceError::invalid("cursor", "is not a cursor returned by this list")
            })?),
        };
        let (items, next) = self
            .store
            .access_entries(&AccessQuery {
                actor_id: None,
                // By the name written (failed logins have no user id).
                actor: filter.actor.clone(),
                object: filter.object,
                record_id: filter.record_id,
                action: filter.action.clone(),
                from: filter.from,
                to: filter.to,
                after,
                limit,
            })
            .await?;
        Ok(AuditPage {
            items,
            next_cursor: next.map(|id| id.to_string()),
        })
    }
}
