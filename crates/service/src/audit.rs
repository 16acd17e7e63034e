//! Reading the access log (needs `view_audit`).

use warden_policy::{ObjectType, Permission};
use warden_store::AccessEntry;

use crate::{Result, Subject, Warden};

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
}
