//! Writing the access log from the use cases: who did what to which record and which fields,
//! from where, with what outcome. Writes and changes are logged in their own transaction;
//! reads and refusals in a transaction committed before the answer leaves. When the log cannot
//! be written the use case fails: nothing happens unrecorded.
//!
//! The log holds field *names*, never values: a read lists the sensitive fields whose values
//! were returned in full (masked ones are named in `detail`).
//!
//! Reads and refusals of concurrent requests are committed together (group commit, see
//! [`ReadLog`]): one transaction and one disk flush for every request waiting, each request
//! answered only once its entries are committed.

use tokio::sync::{mpsc, oneshot};
use warden_policy::{Action, FieldAccess, ObjectType};
use warden_store::{AccessEntry, Store, Tx};

use crate::records::RecordView;
use crate::{Result, ServiceError, Subject, Warden};

/// An entry by the subject, now, from their address; the caller fills in the rest.
/// Under a view-as token the actor is the administrator, named with whose eyes they used.
pub(crate) fn entry(subject: &Subject, action: &str) -> AccessEntry {
    let (actor_id, actor) = match &subject.viewer {
        Some(viewer) => (
            viewer.user,
            format!("{} (as {})", viewer.username, subject.username),
        ),
        None => (subject.user, subject.username.clone()),
    };
    AccessEntry {
        id: 0,
        at: subject.now,
        actor_id: Some(actor_id),
        actor,
        action: action.to_owned(),
        object: None,
        record_id: None,
        fields: Vec::new(),
        client: Some(subject.client.to_string()),
        outcome: "ok".to_owned(),
        detail: String::new(),
    }
}

/// The entry of one record read: the sensitive fields returned in full, the masked ones in
/// `detail`.
fn read_entry(subject: &Subject, view: &RecordView, how: &str) -> AccessEntry {
    let mut e = entry(subject, "read");
    e.object = Some(view.record.object);
    e.record_id = Some(view.record.id);
    let mut masked = Vec::new();
    for (def, level) in view.fields.iter().filter(|(def, _)| def.sensitive) {
        match level {
            FieldAccess::Read | FieldAccess::Write => e.fields.push(def.name.to_owned()),
            FieldAccess::Masked => masked.push(def.name),
            FieldAccess::Hidden => {}
        }
    }
    e.detail = match (how, masked.is_empty()) {
        (how, true) => how.to_owned(),
        ("", false) => format!("masked: {}", masked.join(",")),
        (how, false) => format!("{how}; masked: {}", masked.join(",")),
    };
    e
}

/// Entries of one request waiting to be committed, and who to tell.
struct Pending {
    entries: Vec<AccessEntry>,
    done: oneshot::Sender<std::result::Result<(), String>>,
}

/// The most entries committed in one group (a list page has at most 200).
const MAX_GROUP: usize = 1000;

/// The writer of entries that are not part of a write transaction: one task takes every
/// request waiting, appends their entries in one transaction, and answers each with the
/// outcome. While it writes, the next requests queue and form the next group: under load one
/// flush serves many reads, alone a read waits for its own.
#[derive(Debug, Clone)]
pub(crate) struct ReadLog {
    sender: mpsc::UnboundedSender<Pending>,
}

impl ReadLog {
    /// Starts the writer task on the current runtime.
    pub(crate) fn start(store: Store) -> ReadLog {
        let (sender, mut receiver) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut count = first.entries.len();
                let mut group = vec![first];
                while count < MAX_GROUP {
                    match receiver.try_recv() {
                        Ok(next) => {
                            count += next.entries.len();
                            group.push(next);
                        }
                        Err(_) => break,
                    }
                }
                let entries: Vec<AccessEntry> = group
                    .iter_mut()
                    .flat_map(|p| std::mem::take(&mut p.entries))
                    .collect();
                let outcome = append_committed(&store, &entries)
                    .await
                    .map_err(|e| e.to_string());
                for pending in group {
                    // A request that gave up waiting has nobody to tell.
                    let _ = pending.done.send(outcome.clone());
                }
            }
        });
        ReadLog { sender }
    }

    /// Appends `entries`; returns once they are committed (or failed to be).
    async fn append(&self, entries: Vec<AccessEntry>) -> Result<()> {
        let failed =
            |why: String| ServiceError::Internal(format!("the access log was not written: {why}"));
        let (done, outcome) = oneshot::channel();
        self.sender
            .send(Pending { entries, done })
            .map_err(|_| failed("its writer has stopped".into()))?;
        outcome
            .await
            .map_err(|_| failed("its writer has stopped".into()))?
            .map_err(failed)
    }
}

async fn append_committed(store: &Store, entries: &[AccessEntry]) -> warden_store::Result<()> {
    let mut tx = store.begin().await?;
    tx.append_accesses(entries).await?;
    tx.commit().await
}

impl Warden {
    /// Appends entries outside any write of the request, committed before this returns.
    pub(crate) async fn log_now(&self, entries: Vec<AccessEntry>) -> Result<()> {
        if entries.is_empty() {
            return Ok(());
        }
        self.read_log.append(entries).await
    }

    /// Records the reads of `views`, one entry per record (`how`: `list`, or empty for a
    /// single read), in one statement, committed before they are returned.
    pub(crate) async fn log_reads(
        &self,
        subject: &Subject,
        views: &[RecordView],
        how: &str,
    ) -> Result<()> {
        let entries: Vec<AccessEntry> = views
            .iter()
            .map(|view| read_entry(subject, view, how))
            .collect();
        self.log_now(entries).await
    }

    /// Records a refused attempt on a record (403 or 404) and hands the refusal back — or, when
    /// the refusal cannot be recorded, the failure to record it.
    pub(crate) async fn log_denied(
        &self,
        subject: &Subject,
        action: Action,
        object: ObjectType,
        id: Option<i64>,
        refusal: ServiceError,
    ) -> ServiceError {
        let mut e = entry(subject, action.as_str());
        e.object = Some(object);
        e.record_id = id;
        e.outcome = "denied".to_owned();
        e.detail = refusal.to_string();
        match self.log_now(vec![e]).await {
            Ok(()) => refusal,
            Err(failure) => failure,
        }
    }
}

/// Records a write of a record (the fields written, by name) in the write's transaction.
pub(crate) async fn log_write<'a>(
    tx: &mut Tx,
    subject: &Subject,
    action: Action,
    object: ObjectType,
    id: i64,
    fields: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut e = entry(subject, action.as_str());
    e.object = Some(object);
    e.record_id = Some(id);
    e.fields = fields.into_iter().map(str::to_owned).collect();
    tx.append_access(&e).await?;
    Ok(())
}

/// Records a change of permissions or settings (`action` like `user.update`) in its
/// transaction: what was changed, by name, and of what (`detail`).
pub(crate) async fn log_change(
    tx: &mut Tx,
    subject: &Subject,
    action: &str,
    fields: &[&str],
    detail: String,
) -> Result<()> {
    let mut e = entry(subject, action);
    e.fields = fields.iter().map(|f| (*f).to_owned()).collect();
    e.detail = detail;
    tx.append_access(&e).await?;
    Ok(())
}
