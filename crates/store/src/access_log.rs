//! The access log: one row per recorded access — reads and writes of customer data, denied
//! attempts, logins and logouts, changes of permissions and settings — appended in the
//! transaction of what it records, as a hash chain with signed checkpoints; its verification
//! and its archival.
//!
//! # The chain (format version 1)
//!
//! Entry ids are given out by the one-row table `access_log_head` (`last_id + n`, in the
//! appending transaction), so they are contiguous: a missing id is a removed entry. Each entry
//! stores `prev_hash` (the hash of the entry before it; for the first entry the archive
//! anchor's hash, 32 zero bytes when nothing was archived) and `hash`:
//!
//! ```text
//! hash = SHA-256( str("warden access log entry v1")
//!                 i64(id) i64(at) opt_i64(actor_id) str(actor) str(action) opt_str(object)
//!                 opt_i64(record_id) str(fields) opt_str(client) str(outcome) str(detail)
//!                 prev_hash (32 raw bytes) )
//! i64(x)     = 8 bytes, big-endian two's complement
//! str(s)     = u32 big-endian byte length, then the UTF-8 bytes
//! opt_T(x)   = 0x00 when absent (NULL), else 0x01 then T(x)
//! ```
//!
//! `fields` is the column as stored: field *names* joined by `,` (never values). Hashes are
//! stored as 64 lowercase hexadecimal characters.
//!
//! # Signatures
//!
//! A key derived from the master key (HKDF-SHA256, purpose `warden access log signing v1`;
//! never stored in the database) signs with HMAC-SHA256:
//! - the head, on every append: `str("warden access log head v1") i64(last_id)
//!   last_hash i64(anchor_id) anchor_hash` — so entries cannot be appended, removed from the
//!   end or recomputed without the key;
//! - a checkpoint every [`CHECKPOINT_EVERY`] entries (and on demand):
//!   `str("warden access log checkpoint v1") i64(entry_id) hash i64(at)`;
//! - an archive file: `str("warden access log archive v1") sha256(file before its last line)`.
//!
//! INVARIANT: the head row is updated in every appending transaction before the entries are
//! inserted; on PostgreSQL its row lock, on SQLite the single writer, makes appends a line.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyPool, Row};
use warden_policy::{ObjectType, Timestamp, UserId};
use zeroize::Zeroizing;

use crate::crypto::Keys;
use crate::keys::MasterKey;
use crate::sql::{Param, SqlBuilder};
use crate::{Backend, Result, Store, StoreError, Tx};

/// A signed checkpoint is written each time the chain passes a multiple of this many entries.
pub const CHECKPOINT_EVERY: i64 = 1000;
/// The hash before the first entry of a log that was never archived.
pub const GENESIS: [u8; 32] = [0; 32];

const ENTRY_DOMAIN: &str = "warden access log entry v1";
const HEAD_DOMAIN: &str = "warden access log head v1";
const CHECKPOINT_DOMAIN: &str = "warden access log checkpoint v1";
const ARCHIVE_DOMAIN: &str = "warden access log archive v1";
const KEY_PURPOSE: &str = "warden access log signing v1";
const ARCHIVE_FORMAT: &str = "warden-access-log-archive-v1";

type HmacSha256 = Hmac<Sha256>;

/// One entry of the access log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessEntry {
    /// Given by the log when appended (ignored on append).
    pub id: i64,
    pub at: Timestamp,
    pub actor_id: Option<UserId>,
    /// The actor's username when the entry was written (it survives renames and deletions);
    /// for a failed login, the username given.
    pub actor: String,
    /// What was done: `read`, `create`, `update`, `delete`, `reveal`, `login`, `logout`,
    /// `user.update`, …
    pub action: String,
    pub object: Option<ObjectType>,
    pub record_id: Option<i64>,
    /// The fields concerned, by name (never their values).
    pub fields: Vec<String>,
    /// The client's address.
    pub client: Option<String>,
    /// `ok`, `denied` or `failed`.
    pub outcome: String,
    pub detail: String,
}

/// The signing key of the log, derived from the master key.
pub struct AuditKey {
    key: Zeroizing<[u8; 32]>,
    fingerprint: String,
}

impl AuditKey {
    /// The log's signing key under `master`.
    pub fn from_master(master: &MasterKey) -> AuditKey {
        AuditKey {
            key: Zeroizing::new(master.derive(KEY_PURPOSE)),
            fingerprint: master.fingerprint(),
        }
    }

    fn mac(&self, message: &[u8]) -> Result<[u8; 32]> {
        let mut mac = HmacSha256::new_from_slice(self.key.as_slice()).map_err(|_| {
            StoreError::KeyFile("the access log's signing key has a bad length".into())
        })?;
        mac.update(message);
        Ok(mac.finalize().into_bytes().into())
    }

    /// Compares in constant time.
    fn verifies(&self, message: &[u8], mac_hex: &str) -> bool {
        let Ok(expected) = hex::decode(mac_hex) else {
            return false;
        };
        let Ok(mut mac) = HmacSha256::new_from_slice(self.key.as_slice()) else {
            return false;
        };
        mac.update(message);
        mac.verify_slice(&expected).is_ok()
    }
}

/// The canonical encoder (see the module documentation).
#[derive(Default)]
struct Canonical(Vec<u8>);

impl Canonical {
    fn str(&mut self, s: &str) -> &mut Self {
        // Every string here is far below 4 GiB (bodies are limited to 1 MiB).
        let len = u32::try_from(s.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
        self
    }
    fn i64(&mut self, x: i64) -> &mut Self {
        self.0.extend_from_slice(&x.to_be_bytes());
        self
    }
    fn opt_i64(&mut self, x: Option<i64>) -> &mut Self {
        match x {
            None => self.0.push(0),
            Some(x) => {
                self.0.push(1);
                self.i64(x);
            }
        }
        self
    }
    fn opt_str(&mut self, x: Option<&str>) -> &mut Self {
        match x {
            None => self.0.push(0),
            Some(x) => {
                self.0.push(1);
                self.str(x);
            }
        }
        self
    }
    fn raw(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.extend_from_slice(bytes);
        self
    }
}

/// An entry's columns as stored (the hash covers exactly these).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredEntry {
    pub id: i64,
    pub at: i64,
    pub actor_id: Option<i64>,
    pub actor: String,
    pub action: String,
    pub object: Option<String>,
    pub record_id: Option<i64>,
    pub fields: String,
    pub client: Option<String>,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: Option<String>,
    pub hash: Option<String>,
}

impl StoredEntry {
    fn from_entry(id: i64, entry: &AccessEntry) -> StoredEntry {
        StoredEntry {
            id,
            at: entry.at,
            actor_id: entry.actor_id.map(|u| u.0),
            actor: entry.actor.clone(),
            action: entry.action.clone(),
            object: entry.object.map(|o| o.as_str().to_owned()),
            record_id: entry.record_id,
            fields: entry.fields.join(","),
            client: entry.client.clone(),
            outcome: entry.outcome.clone(),
            detail: entry.detail.clone(),
            prev_hash: None,
            hash: None,
        }
    }

    /// The entry's hash after `prev`, computed from its content.
    pub fn compute_hash(&self, prev: &[u8; 32]) -> [u8; 32] {
        let mut c = Canonical::default();
        c.str(ENTRY_DOMAIN)
            .i64(self.id)
            .i64(self.at)
            .opt_i64(self.actor_id)
            .str(&self.actor)
            .str(&self.action)
            .opt_str(self.object.as_deref())
            .opt_i64(self.record_id)
            .str(&self.fields)
            .opt_str(self.client.as_deref())
            .str(&self.outcome)
            .str(&self.detail)
            .raw(prev);
        Sha256::digest(&c.0).into()
    }

    fn into_entry(self) -> AccessEntry {
        AccessEntry {
            id: self.id,
            at: self.at,
            actor_id: self.actor_id.map(UserId),
            actor: self.actor,
            action: self.action,
            object: self.object.and_then(|o| ObjectType::parse(&o).ok()),
            record_id: self.record_id,
            fields: self
                .fields
                .split(',')
                .filter(|f| !f.is_empty())
                .map(str::to_owned)
                .collect(),
            client: self.client,
            outcome: self.outcome,
            detail: self.detail,
        }
    }
}

const COLUMNS: &str =
    "id, at, actor_id, actor, action, object, record_id, fields, client, outcome, detail, prev_hash, hash";

fn stored_from_row(row: &AnyRow) -> Result<StoredEntry> {
    Ok(StoredEntry {
        id: row.try_get(0)?,
        at: row.try_get(1)?,
        actor_id: row.try_get(2)?,
        actor: row.try_get(3)?,
        action: row.try_get(4)?,
        object: row.try_get(5)?,
        record_id: row.try_get(6)?,
        fields: row.try_get(7)?,
        client: row.try_get(8)?,
        outcome: row.try_get(9)?,
        detail: row.try_get(10)?,
        prev_hash: row.try_get(11)?,
        hash: row.try_get(12)?,
    })
}

fn decode_hash(text: &str) -> Option<[u8; 32]> {
    hex::decode(text).ok()?.try_into().ok()
}

fn corrupt_head(message: &str) -> StoreError {
    StoreError::Corrupt {
        table: "access_log_head",
        column: "last_hash",
        message: message.to_owned(),
    }
}

fn head_message(last_id: i64, last_hash: &[u8; 32], anchor_id: i64, anchor: &[u8; 32]) -> Vec<u8> {
    let mut c = Canonical::default();
    c.str(HEAD_DOMAIN)
        .i64(last_id)
        .raw(last_hash)
        .i64(anchor_id)
        .raw(anchor);
    c.0
}

fn checkpoint_message(entry_id: i64, hash: &[u8; 32], at: i64) -> Vec<u8> {
    let mut c = Canonical::default();
    c.str(CHECKPOINT_DOMAIN).i64(entry_id).raw(hash).i64(at);
    c.0
}

/// The head row, read while holding its lock (`UPDATE … RETURNING`).
struct Head {
    last_id: i64,
    last_hash: Option<[u8; 32]>,
    anchor_id: i64,
    anchor_hash: [u8; 32],
}

async fn lock_head<'e, E>(executor: E, advance: i64) -> Result<Head>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "UPDATE access_log_head SET last_id = last_id + $1 WHERE id = 1 \
         RETURNING last_id, last_hash, anchor_id, anchor_hash",
    )
    .bind(advance)
    .fetch_one(executor)
    .await?;
    let last_hash: Option<String> = row.try_get(1)?;
    let anchor_hash: String = row.try_get(3)?;
    Ok(Head {
        last_id: row.try_get(0)?,
        last_hash: match last_hash {
            None => None,
            Some(h) => Some(decode_hash(&h).ok_or_else(|| corrupt_head("not a hash"))?),
        },
        anchor_id: row.try_get(2)?,
        anchor_hash: decode_hash(&anchor_hash).ok_or_else(|| corrupt_head("bad anchor"))?,
    })
}

async fn write_head<'e, E>(
    executor: E,
    key: &AuditKey,
    last_id: i64,
    last_hash: &[u8; 32],
    anchor_id: i64,
    anchor_hash: &[u8; 32],
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mac = key.mac(&head_message(last_id, last_hash, anchor_id, anchor_hash))?;
    sqlx::query(
        "UPDATE access_log_head SET last_id = $1, last_hash = $2, anchor_id = $3, \
         anchor_hash = $4, mac = $5 WHERE id = 1",
    )
    .bind(last_id)
    .bind(hex::encode(last_hash))
    .bind(anchor_id)
    .bind(hex::encode(anchor_hash))
    .bind(hex::encode(mac))
    .execute(executor)
    .await?;
    Ok(())
}

async fn write_checkpoint<'e, E>(
    executor: E,
    key: &AuditKey,
    entry_id: i64,
    hash: &[u8; 32],
    at: i64,
) -> Result<()>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let mac = key.mac(&checkpoint_message(entry_id, hash, at))?;
    sqlx::query(
        "INSERT INTO access_log_checkpoints (entry_id, hash, at, key_fingerprint, mac) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(entry_id)
    .bind(hex::encode(hash))
    .bind(at)
    .bind(key.fingerprint.as_str())
    .bind(hex::encode(mac))
    .execute(executor)
    .await?;
    Ok(())
}

/// Chains the entries written before the chain existed (migration 0006 leaves the head's
/// `last_hash` NULL over them), once, when a store opens. They are renumbered 1..n first:
/// PostgreSQL's identity could leave gaps, and a gap reads as a removed entry.
pub(crate) async fn seal_legacy(pool: &AnyPool, keys: &Keys) -> Result<()> {
    let sealed: Option<String> =
        sqlx::query_scalar("SELECT last_hash FROM access_log_head WHERE id = 1")
            .fetch_one(pool)
            .await?;
    if sealed.is_some() {
        return Ok(());
    }
    let mut tx = pool.begin().await?;
    let head = lock_head(&mut *tx, 0).await?;
    if head.last_hash.is_some() {
        // Another process sealed it meanwhile.
        return Ok(());
    }
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM access_log WHERE id <= $1 ORDER BY id")
        .bind(head.last_id)
        .fetch_all(&mut *tx)
        .await?;
    for (new, old) in (1_i64..).zip(ids.iter().copied()) {
        if new != old {
            sqlx::query("UPDATE access_log SET id = $1 WHERE id = $2")
                .bind(new)
                .bind(old)
                .execute(&mut *tx)
                .await?;
        }
    }
    let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM access_log WHERE id <= $1 ORDER BY id"
    ))
    .bind(count)
    .fetch_all(&mut *tx)
    .await?;
    let mut prev = GENESIS;
    for row in &rows {
        let entry = stored_from_row(row)?;
        let hash = entry.compute_hash(&prev);
        sqlx::query("UPDATE access_log SET prev_hash = $1, hash = $2 WHERE id = $3")
            .bind(hex::encode(prev))
            .bind(hex::encode(hash))
            .bind(entry.id)
            .execute(&mut *tx)
            .await?;
        prev = hash;
    }
    let key = AuditKey::from_master(&keys.master());
    write_head(&mut *tx, &key, count, &prev, 0, &GENESIS).await?;
    tx.commit().await?;
    Ok(())
}

/// Re-signs the head and the checkpoints under `new` (a master key rotation), each only if it
/// verifies under `old`: a signature that was already wrong stays wrong, so a rotation never
/// launders tampering.
pub(crate) async fn resign(tx: &mut Tx, old: &MasterKey, new: &MasterKey) -> Result<()> {
    let (old_key, new_key) = (AuditKey::from_master(old), AuditKey::from_master(new));
    if old_key.fingerprint == new_key.fingerprint {
        return Ok(());
    }
    let row = sqlx::query(
        "SELECT last_id, last_hash, anchor_id, anchor_hash, mac FROM access_log_head WHERE id = 1",
    )
    .fetch_one(&mut *tx.tx)
    .await?;
    let last_id: i64 = row.try_get(0)?;
    let last_hash: Option<String> = row.try_get(1)?;
    let anchor_id: i64 = row.try_get(2)?;
    let anchor_hash: String = row.try_get(3)?;
    let mac: Option<String> = row.try_get(4)?;
    if let (Some(last), Some(anchor), Some(mac)) = (
        last_hash.as_deref().and_then(decode_hash),
        decode_hash(&anchor_hash),
        mac,
    ) {
        if old_key.verifies(&head_message(last_id, &last, anchor_id, &anchor), &mac) {
            write_head(&mut *tx.tx, &new_key, last_id, &last, anchor_id, &anchor).await?;
        }
    }
    let checkpoints = sqlx::query(
        "SELECT entry_id, hash, at, mac FROM access_log_checkpoints WHERE key_fingerprint = $1",
    )
    .bind(old_key.fingerprint.as_str())
    .fetch_all(&mut *tx.tx)
    .await?;
    for row in &checkpoints {
        let entry_id: i64 = row.try_get(0)?;
        let hash: String = row.try_get(1)?;
        let at: i64 = row.try_get(2)?;
        let mac: String = row.try_get(3)?;
        let Some(hash) = decode_hash(&hash) else {
            continue;
        };
        let message = checkpoint_message(entry_id, &hash, at);
        if old_key.verifies(&message, &mac) {
            sqlx::query(
                "UPDATE access_log_checkpoints SET key_fingerprint = $1, mac = $2                  WHERE entry_id = $3",
            )
            .bind(new_key.fingerprint.as_str())
            .bind(hex::encode(new_key.mac(&message)?))
            .bind(entry_id)
            .execute(&mut *tx.tx)
            .await?;
        }
    }
    Ok(())
}

impl Tx {
    /// Appends one entry; returns its id.
    pub async fn append_access(&mut self, entry: &AccessEntry) -> Result<i64> {
        self.append_accesses(std::slice::from_ref(entry)).await
    }

    /// Appends entries in one statement (a list page's reads), chained in order; returns the
    /// id of the last. Nothing is written for no entries (and 0 is returned).
    pub async fn append_accesses(&mut self, entries: &[AccessEntry]) -> Result<i64> {
        let Some(last_entry) = entries.last() else {
            return Ok(0);
        };
        let n = i64::try_from(entries.len()).unwrap_or(i64::MAX);
        // INVARIANT: the head is locked (and advanced) before anything else is written.
        let head = lock_head(&mut *self.tx, n).await?;
        let mut prev = head
            .last_hash
            .ok_or_else(|| corrupt_head("the chain was not sealed when the store opened"))?;
        let first = head.last_id - n + 1;
        let mut sql = SqlBuilder::positional(
            &format!("INSERT INTO access_log ({COLUMNS}) VALUES "),
            self.backend(),
        );
        for (id, entry) in (first..).zip(entries) {
            let stored = StoredEntry::from_entry(id, entry);
            let hash = stored.compute_hash(&prev);
            if id > first {
                sql.push(", ");
            }
            sql.push("(");
            sql.bind_int(id).push(", ");
            sql.bind_int(stored.at).push(", ");
            sql.bind(Param::Int(stored.actor_id)).push(", ");
            sql.bind(Param::Text(Some(stored.actor))).push(", ");
            sql.bind(Param::Text(Some(stored.action))).push(", ");
            sql.bind(Param::Text(stored.object)).push(", ");
            sql.bind(Param::Int(stored.record_id)).push(", ");
            sql.bind(Param::Text(Some(stored.fields))).push(", ");
            sql.bind(Param::Text(stored.client)).push(", ");
            sql.bind(Param::Text(Some(stored.outcome))).push(", ");
            sql.bind(Param::Text(Some(stored.detail))).push(", ");
            sql.bind(Param::Text(Some(hex::encode(prev)))).push(", ");
            sql.bind(Param::Text(Some(hex::encode(hash)))).push(")");
            prev = hash;
        }
        sql.query().execute(&mut *self.tx).await?;
        let key = AuditKey::from_master(&self.keys.master());
        write_head(
            &mut *self.tx,
            &key,
            head.last_id,
            &prev,
            head.anchor_id,
            &head.anchor_hash,
        )
        .await?;
        if (first - 1) / CHECKPOINT_EVERY != head.last_id / CHECKPOINT_EVERY {
            write_checkpoint(&mut *self.tx, &key, head.last_id, &prev, last_entry.at).await?;
        }
        Ok(head.last_id)
    }
}

/// An entry for an operator command (`warden audit archive`, `warden keys rotate`): no user
/// is signed in, so the actor is the command line.
pub(crate) fn operator_entry(action: &str, now: Timestamp, detail: String) -> AccessEntry {
    AccessEntry {
        id: 0,
        at: now,
        actor_id: None,
        actor: "(command line)".to_owned(),
        action: action.to_owned(),
        object: None,
        record_id: None,
        fields: Vec::new(),
        client: None,
        outcome: "ok".to_owned(),
        detail,
    }
}

/// What to read of the log; every part optional. Entries come in id order, after `after`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessQuery {
    pub actor_id: Option<UserId>,
    /// The actor's name as written (for actors no longer known, or failed logins).
    pub actor: Option<String>,
    pub object: Option<ObjectType>,
    pub record_id: Option<i64>,
    pub action: Option<String>,
    /// From this time (inclusive).
    pub from: Option<Timestamp>,
    /// Until this time (exclusive).
    pub to: Option<Timestamp>,
    /// The cursor: the last id of the previous page.
    pub after: Option<i64>,
    pub limit: u32,
}

/// What `verify` found wrong first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainProblem {
    /// The entry's content does not match its hash, or the entry after it no longer follows it.
    Altered { id: i64, why: String },
    /// An entry the chain expects is missing.
    Removed { id: i64 },
    /// An entry that is not part of the chain.
    Inserted { id: i64, why: String },
    /// A checkpoint does not verify.
    Checkpoint { entry_id: i64, why: String },
    /// The head does not verify.
    Head { why: String },
}

impl std::fmt::Display for ChainProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainProblem::Altered { id, why } => write!(f, "entry {id} was altered: {why}"),
            ChainProblem::Removed { id } => write!(f, "entry {id} was removed"),
            ChainProblem::Inserted { id, why } => write!(f, "entry {id} was inserted: {why}"),
            ChainProblem::Checkpoint { entry_id, why } => {
                write!(
                    f,
                    "the checkpoint at entry {entry_id} does not verify: {why}"
                )
            }
            ChainProblem::Head { why } => write!(f, "the log's head does not verify: {why}"),
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainReport {
    /// Entries checked.
    pub entries: u64,
    /// The last archived entry (0: none); the chain in the database starts after it.
    pub anchor_id: i64,
    pub last_id: i64,
    /// Signed checkpoints checked.
    pub checkpoints: u64,
    /// The first problem, in entry order; `None` when intact.
    pub problem: Option<ChainProblem>,
}

/// Walks entries in id order from `(expected id, prev hash)`; returns the first problem.
struct Walker {
    expected: i64,
    prev: [u8; 32],
    entries: u64,
}

impl Walker {
    fn step(&mut self, entry: &StoredEntry) -> Option<ChainProblem> {
        // Problems are named in id order: a gap before this entry comes first.
        if entry.id > self.expected {
            return Some(ChainProblem::Removed { id: self.expected });
        }
        let (Some(prev_hex), Some(hash_hex)) = (&entry.prev_hash, &entry.hash) else {
            return Some(ChainProblem::Inserted {
                id: entry.id,
                why: "it has no hash".into(),
            });
        };
        let (Some(stored_prev), Some(stored_hash)) = (decode_hash(prev_hex), decode_hash(hash_hex))
        else {
            return Some(ChainProblem::Altered {
                id: entry.id,
                why: "its hashes are not hashes".into(),
            });
        };
        if entry.compute_hash(&stored_prev) != stored_hash {
            return Some(ChainProblem::Altered {
                id: entry.id,
                why: "its content does not match its hash".into(),
            });
        }
        if stored_prev != self.prev {
            // The entry is intact against the hash it names as its predecessor: so the
            // predecessor is what changed (replaced with a recomputed hash).
            return Some(if self.entries == 0 {
                ChainProblem::Altered {
                    id: entry.id,
                    why: "it does not follow the archive anchor".into(),
                }
            } else {
                ChainProblem::Altered {
                    id: entry.id - 1,
                    why: format!("entry {} no longer follows it", entry.id),
                }
            });
        }
        self.prev = stored_hash;
        self.expected = entry.id + 1;
        self.entries += 1;
        None
    }
}

struct CheckpointRow {
    entry_id: i64,
    hash: String,
    at: i64,
    fingerprint: String,
    mac: String,
}

impl Store {
    /// The entries about one record, oldest first.
    pub async fn access_entries_for(
        &self,
        object: ObjectType,
        record_id: i64,
    ) -> Result<Vec<AccessEntry>> {
        let (entries, _) = self
            .access_entries(&AccessQuery {
                object: Some(object),
                record_id: Some(record_id),
                limit: 10_000,
                ..AccessQuery::default()
            })
            .await?;
        Ok(entries)
    }

    /// One page of the entries matching `query`, in id order, and the cursor of the next.
    pub async fn access_entries(
        &self,
        query: &AccessQuery,
    ) -> Result<(Vec<AccessEntry>, Option<i64>)> {
        let mut sql = SqlBuilder::new(&format!("SELECT {COLUMNS} FROM access_log WHERE 1 = 1"));
        if let Some(actor) = query.actor_id {
            sql.push(" AND actor_id = ").bind_int(actor.0);
        }
        if let Some(actor) = &query.actor {
            sql.push(" AND actor = ")
                .bind(Param::Text(Some(actor.clone())));
        }
        if let Some(object) = query.object {
            sql.push(" AND object = ")
                .bind(Param::Text(Some(object.as_str().to_owned())));
        }
        if let Some(record) = query.record_id {
            sql.push(" AND record_id = ").bind_int(record);
        }
        if let Some(action) = &query.action {
            sql.push(" AND action = ")
                .bind(Param::Text(Some(action.clone())));
        }
        if let Some(from) = query.from {
            sql.push(" AND at >= ").bind_int(from);
        }
        if let Some(to) = query.to {
            sql.push(" AND at < ").bind_int(to);
        }
        if let Some(after) = query.after {
            sql.push(" AND id > ").bind_int(after);
        }
        let limit = i64::from(query.limit.max(1));
        sql.push(" ORDER BY id LIMIT ").bind_int(limit + 1);
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut entries = rows
            .iter()
            .map(|row| stored_from_row(row).map(StoredEntry::into_entry))
            .collect::<Result<Vec<_>>>()?;
        let next = if entries.len() > query.limit.max(1) as usize {
            entries.truncate(query.limit.max(1) as usize);
            entries.last().map(|e| e.id)
        } else {
            None
        };
        Ok((entries, next))
    }

    /// When each actor last did something successfully, per object (`None`: not a record),
    /// since `since`: the usage the dormant-permissions report compares grants with.
    pub async fn last_use_since(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(UserId, Option<String>, Timestamp)>> {
        sqlx::query(
            "SELECT actor_id, object, MAX(at) FROM access_log \
             WHERE at >= $1 AND outcome = 'ok' AND actor_id IS NOT NULL \
             GROUP BY actor_id, object",
        )
        .bind(since)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((UserId(row.try_get(0)?), row.try_get(1)?, row.try_get(2)?)))
        .collect()
    }

    /// Writes a signed checkpoint of the last entry now (unless there is one already).
    pub async fn checkpoint_access_log(&self, now: Timestamp) -> Result<i64> {
        let mut tx = self.begin().await?;
        let head = lock_head(&mut *tx.tx, 0).await?;
        let hash = head
            .last_hash
            .ok_or_else(|| corrupt_head("the chain was not sealed when the store opened"))?;
        if head.last_id > head.anchor_id {
            let exists: Option<i64> = sqlx::query_scalar(
                "SELECT entry_id FROM access_log_checkpoints WHERE entry_id = $1",
            )
            .bind(head.last_id)
            .fetch_optional(&mut *tx.tx)
            .await?;
            if exists.is_none() {
                let key = AuditKey::from_master(&self.keys.master());
                write_checkpoint(&mut *tx.tx, &key, head.last_id, &hash, now).await?;
            }
        }
        tx.commit().await?;
        Ok(head.last_id)
    }

    /// Walks the whole chain in the database (one consistent snapshot, while others append)
    /// with the master key's signing key, and reports the first problem.
    pub async fn verify_access_log(&self) -> Result<ChainReport> {
        let key = AuditKey::from_master(&self.keys.master());
        let mut tx = self.pool.begin().await?;
        if self.backend() == Backend::Postgres {
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                .execute(&mut *tx)
                .await?;
        }
        let row = sqlx::query(
            "SELECT last_id, last_hash, anchor_id, anchor_hash, mac FROM access_log_head WHERE id = 1",
        )
        .fetch_one(&mut *tx)
        .await?;
        let last_id: i64 = row.try_get(0)?;
        let last_hash: Option<String> = row.try_get(1)?;
        let anchor_id: i64 = row.try_get(2)?;
        let anchor_hex: String = row.try_get(3)?;
        let mac: Option<String> = row.try_get(4)?;
        let mut report = ChainReport {
            entries: 0,
            anchor_id,
            last_id,
            checkpoints: 0,
            problem: None,
        };
        let head_problem = |why: &str| ChainProblem::Head {
            why: why.to_owned(),
        };
        let Some(anchor) = decode_hash(&anchor_hex) else {
            report.problem = Some(head_problem("its anchor is not a hash"));
            return Ok(report);
        };
        let checkpoints: Vec<CheckpointRow> = sqlx::query(
            "SELECT entry_id, hash, at, key_fingerprint, mac FROM access_log_checkpoints \
             WHERE entry_id > $1 ORDER BY entry_id",
        )
        .bind(anchor_id)
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|row| {
            Ok(CheckpointRow {
                entry_id: row.try_get(0)?,
                hash: row.try_get(1)?,
                at: row.try_get(2)?,
                fingerprint: row.try_get(3)?,
                mac: row.try_get(4)?,
            })
        })
        .collect::<Result<_>>()?;
        let mut checkpoints = checkpoints.into_iter().peekable();
        let mut walker = Walker {
            expected: anchor_id + 1,
            prev: anchor,
            entries: 0,
        };
        let mut cursor = i64::MIN;
        'pages: loop {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM access_log WHERE id > $1 ORDER BY id LIMIT 2000"
            ))
            .bind(cursor)
            .fetch_all(&mut *tx)
            .await?;
            let Some(last) = rows.last() else { break };
            cursor = last.try_get(0)?;
            for row in &rows {
                let entry = stored_from_row(row)?;
                if entry.id > walker.expected && walker.expected <= last_id {
                    report.problem = Some(ChainProblem::Removed {
                        id: walker.expected,
                    });
                    break 'pages;
                }
                if entry.id <= anchor_id || entry.id > last_id {
                    report.problem = Some(ChainProblem::Inserted {
                        id: entry.id,
                        why: "it lies outside the signed chain".into(),
                    });
                    break 'pages;
                }
                if let Some(problem) = walker.step(&entry) {
                    report.problem = Some(problem);
                    break 'pages;
                }
                while let Some(cp) = checkpoints.next_if(|cp| cp.entry_id <= entry.id) {
                    report.checkpoints += 1;
                    let why = if cp.entry_id != entry.id {
                        Some(format!("entry {} is missing", cp.entry_id))
                    } else if cp.fingerprint != key.fingerprint {
                        Some(format!(
                            "it was signed under another master key (fingerprint {})",
                            cp.fingerprint
                        ))
                    } else if decode_hash(&cp.hash).is_none_or(|h| {
                        !key.verifies(&checkpoint_message(cp.entry_id, &h, cp.at), &cp.mac)
                    }) {
                        Some("its signature does not match".to_owned())
                    } else if Some(cp.hash.as_str()) != entry.hash.as_deref() {
                        Some("the entry's hash is not the one signed".to_owned())
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        report.problem = Some(ChainProblem::Checkpoint {
                            entry_id: cp.entry_id,
                            why,
                        });
                        break 'pages;
                    }
                }
            }
        }
        report.entries = walker.entries;
        if report.problem.is_some() {
            return Ok(report);
        }
        if walker.expected <= last_id {
            report.problem = Some(ChainProblem::Removed {
                id: walker.expected,
            });
        } else if let Some(cp) = checkpoints.next() {
            report.problem = Some(ChainProblem::Checkpoint {
                entry_id: cp.entry_id,
                why: "it names an entry beyond the last".into(),
            });
        } else {
            let signed = match (last_hash.as_deref().and_then(decode_hash), &mac) {
                (Some(hash), Some(mac)) => {
                    if hash != walker.prev {
                        Some("it does not name the last entry's hash")
                    } else if key.verifies(&head_message(last_id, &hash, anchor_id, &anchor), mac) {
                        None
                    } else {
                        Some(
                            "its signature does not match (entries were rewritten, or this is \
                             not the master key of this database)",
                        )
                    }
                }
                _ => Some("it is not signed"),
            };
            report.problem = signed.map(head_problem);
        }
        tx.commit().await?;
        Ok(report)
    }

    /// Moves the entries written before `before` (the longest prefix of the chain older than
    /// it) into a signed archive file `out`, then deletes them and moves the
    /// anchor to the last one, so the rest still verifies. The archived part is checked as it
    /// is written; the file is complete on disk before anything is deleted.
    pub async fn archive_access_log(
        &self,
        before: Timestamp,
        out: &Path,
        now: Timestamp,
    ) -> Result<Option<ArchiveSummary>> {
        let key = AuditKey::from_master(&self.keys.master());
        let row = sqlx::query("SELECT anchor_id, anchor_hash FROM access_log_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let anchor_id: i64 = row.try_get(0)?;
        let anchor_hex: String = row.try_get(1)?;
        let anchor = decode_hash(&anchor_hex).ok_or_else(|| corrupt_head("bad anchor"))?;
        // The longest prefix older than `before`: it ends just before the first later entry.
        let first_later: Option<i64> =
            sqlx::query_scalar("SELECT MIN(id) FROM access_log WHERE id > $1 AND at >= $2")
                .bind(anchor_id)
                .bind(before)
                .fetch_one(&self.pool)
                .await?;
        let cut: Option<i64> = match first_later {
            Some(first) => Some(first - 1),
            None => {
                sqlx::query_scalar("SELECT MAX(id) FROM access_log")
                    .fetch_one(&self.pool)
                    .await?
            }
        };
        let Some(cut) = cut.filter(|c| *c > anchor_id) else {
            return Ok(None);
        };
        let partial = PathBuf::from(format!("{}.partial", out.display()));
        let io = |e: std::io::Error| StoreError::KeyFile(format!("{}: {e}", out.display()));
        let mut body: Vec<u8> = Vec::new();
        let header = serde_json::json!({
            "format": ARCHIVE_FORMAT,
            "first_id": anchor_id + 1,
            "last_id": cut,
            "prev_hash": anchor_hex,
            "created_at": now,
            "key_fingerprint": key.fingerprint,
        });
        body.extend_from_slice(header.to_string().as_bytes());
        body.push(b'\n');
        let mut walker = Walker {
            expected: anchor_id + 1,
            prev: anchor,
            entries: 0,
        };
        let mut cursor = anchor_id;
        while cursor < cut {
            let rows = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM access_log WHERE id > $1 AND id <= $2 ORDER BY id LIMIT 2000"
            ))
            .bind(cursor)
            .bind(cut)
            .fetch_all(&self.pool)
            .await?;
            let Some(last) = rows.last() else { break };
            cursor = last.try_get(0)?;
            for row in &rows {
                let entry = stored_from_row(row)?;
                if let Some(problem) = walker.step(&entry) {
                    return Err(StoreError::Corrupt {
                        table: "access_log",
                        column: "hash",
                        message: format!("not archived: {problem}"),
                    });
                }
                let line = serde_json::to_string(&entry).map_err(|e| StoreError::Corrupt {
                    table: "access_log",
                    column: "*",
                    message: e.to_string(),
                })?;
                body.extend_from_slice(line.as_bytes());
                body.push(b'\n');
            }
        }
        if walker.expected != cut + 1 {
            return Err(StoreError::Corrupt {
                table: "access_log",
                column: "id",
                message: format!("not archived: entry {} was removed", walker.expected),
            });
        }
        let digest: [u8; 32] = Sha256::digest(&body).into();
        let mut c = Canonical::default();
        c.str(ARCHIVE_DOMAIN).raw(&digest);
        let trailer = serde_json::json!({
            "sha256": hex::encode(digest),
            "hmac": hex::encode(key.mac(&c.0)?),
        });
        body.extend_from_slice(trailer.to_string().as_bytes());
        body.push(b'\n');
        {
            let mut file = std::fs::File::create(&partial).map_err(io)?;
            file.write_all(&body).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&partial, out).map_err(io)?;
        let mut tx = self.begin().await?;
        let head = lock_head(&mut *tx.tx, 0).await?;
        if head.anchor_id != anchor_id {
            return Err(StoreError::Conflict);
        }
        let last_hash = head
            .last_hash
            .ok_or_else(|| corrupt_head("the chain was not sealed when the store opened"))?;
        sqlx::query("DELETE FROM access_log WHERE id <= $1")
            .bind(cut)
            .execute(&mut *tx.tx)
            .await?;
        sqlx::query("DELETE FROM access_log_checkpoints WHERE entry_id <= $1")
            .bind(cut)
            .execute(&mut *tx.tx)
            .await?;
        write_head(
            &mut *tx.tx,
            &key,
            head.last_id,
            &last_hash,
            cut,
            &walker.prev,
        )
        .await?;
        // The archival itself is recorded, after the anchor it leaves.
        tx.append_access(&operator_entry(
            "audit.archive",
            now,
            format!("entries {} to {cut} into {}", anchor_id + 1, out.display()),
        ))
        .await?;
        tx.commit().await?;
        Ok(Some(ArchiveSummary {
            first_id: anchor_id + 1,
            last_id: cut,
            entries: walker.entries,
        }))
    }
}

/// What an archive holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveSummary {
    pub first_id: i64,
    pub last_id: i64,
    pub entries: u64,
}

/// Why an archive file does not verify.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read the archive: {0}")]
    Io(#[from] std::io::Error),
    #[error("not an access log archive: {0}")]
    Format(String),
    #[error("the archive's checksum does not match: it was altered or truncated")]
    Checksum,
    #[error("the archive's signature does not match (altered, or signed under another master key, fingerprint {0})")]
    Signature(String),
    #[error("the archive's chain is broken: {0}")]
    Chain(ChainProblem),
}

/// Verifies an archive file written by [`Store::archive_access_log`]: its checksum always,
/// its signature when `master` is given, and the chain of its entries.
pub fn verify_archive(
    path: &Path,
    master: Option<&MasterKey>,
) -> std::result::Result<ArchiveSummary, ArchiveError> {
    let bytes = std::fs::read(path)?;
    let format = |m: &str| ArchiveError::Format(m.to_owned());
    let body_end = bytes
        .strip_suffix(b"\n")
        .and_then(|b| b.iter().rposition(|c| *c == b'\n'))
        .map(|i| i + 1)
        .ok_or_else(|| format("no trailer line"))?;
    let (body, trailer) = bytes.split_at(body_end);
    let trailer: serde_json::Value =
        serde_json::from_slice(trailer).map_err(|e| ArchiveError::Format(e.to_string()))?;
    let digest: [u8; 32] = Sha256::digest(body).into();
    if trailer["sha256"].as_str() != Some(hex::encode(digest).as_str()) {
        return Err(ArchiveError::Checksum);
    }
    let mut lines = body.lines();
    let header: serde_json::Value = match lines.next() {
        Some(line) => {
            serde_json::from_str(&line?).map_err(|e| ArchiveError::Format(e.to_string()))?
        }
        None => return Err(format("no header")),
    };
    if header["format"].as_str() != Some(ARCHIVE_FORMAT) {
        return Err(format("unknown format"));
    }
    if let Some(master) = master {
        let key = AuditKey::from_master(master);
        let mut c = Canonical::default();
        c.str(ARCHIVE_DOMAIN).raw(&digest);
        if !key.verifies(&c.0, trailer["hmac"].as_str().unwrap_or_default()) {
            return Err(ArchiveError::Signature(
                header["key_fingerprint"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            ));
        }
    }
    let first_id = header["first_id"]
        .as_i64()
        .ok_or_else(|| format("no first_id"))?;
    let last_id = header["last_id"]
        .as_i64()
        .ok_or_else(|| format("no last_id"))?;
    let prev = header["prev_hash"]
        .as_str()
        .and_then(decode_hash)
        .ok_or_else(|| format("no prev_hash"))?;
    let mut walker = Walker {
        expected: first_id,
        prev,
        entries: 0,
    };
    for line in lines {
        let entry: StoredEntry =
            serde_json::from_str(&line?).map_err(|e| ArchiveError::Format(e.to_string()))?;
        if entry.id > last_id {
            return Err(ArchiveError::Chain(ChainProblem::Inserted {
                id: entry.id,
                why: "beyond the archive's last entry".into(),
            }));
        }
        if let Some(problem) = walker.step(&entry) {
            return Err(ArchiveError::Chain(problem));
        }
    }
    if walker.expected != last_id + 1 {
        return Err(ArchiveError::Chain(ChainProblem::Removed {
            id: walker.expected,
        }));
    }
    Ok(ArchiveSummary {
        first_id,
        last_id,
        entries: walker.entries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: i64) -> StoredEntry {
        StoredEntry {
            id,
            at: 1_700_000_000_000 + id,
            actor_id: Some(5),
            actor: "rep1".into(),
            action: "read".into(),
            object: Some("customers".into()),
            record_id: Some(42),
            fields: "credit_limit".into(),
            client: Some("127.0.0.1".into()),
            outcome: "ok".into(),
            detail: String::new(),
            prev_hash: None,
            hash: None,
        }
    }

    #[test]
    fn every_column_and_the_predecessor_change_the_hash() {
        let base = entry(1);
        let h = base.compute_hash(&GENESIS);
        assert_ne!(h, base.compute_hash(&[1; 32]));
        let mut variants = Vec::new();
        let mut e = base.clone();
        e.id = 2;
        variants.push(e);
        let mut e = base.clone();
        e.at += 1;
        variants.push(e);
        let mut e = base.clone();
        e.actor_id = None;
        variants.push(e);
        let mut e = base.clone();
        e.actor = "rep2".into();
        variants.push(e);
        let mut e = base.clone();
        e.object = None;
        variants.push(e);
        let mut e = base.clone();
        e.record_id = Some(43);
        variants.push(e);
        let mut e = base.clone();
        e.fields = String::new();
        variants.push(e);
        let mut e = base.clone();
        e.client = None;
        variants.push(e);
        let mut e = base.clone();
        e.outcome = "denied".into();
        variants.push(e);
        // Length prefixes: moving a character from one string to the next changes the hash.
        let mut e = base.clone();
        e.actor = "rep1r".into();
        e.action = "ead".into();
        variants.push(e);
        for v in variants {
            assert_ne!(v.compute_hash(&GENESIS), h, "{v:?}");
        }
    }

    #[test]
    fn the_walker_names_the_first_bad_entry() {
        let mut chain = Vec::new();
        let mut prev = GENESIS;
        for id in 1..=5 {
            let mut e = entry(id);
            let h = e.compute_hash(&prev);
            e.prev_hash = Some(hex::encode(prev));
            e.hash = Some(hex::encode(h));
            prev = h;
            chain.push(e);
        }
        let walk = |chain: &[StoredEntry]| {
            let mut w = Walker {
                expected: 1,
                prev: GENESIS,
                entries: 0,
            };
            chain.iter().find_map(|e| w.step(e))
        };
        assert_eq!(walk(&chain), None);
        let mut altered = chain.clone();
        altered[2].fields = String::new();
        assert!(matches!(
            walk(&altered),
            Some(ChainProblem::Altered { id: 3, .. })
        ));
        let mut removed = chain.clone();
        removed.remove(1);
        assert_eq!(walk(&removed), Some(ChainProblem::Removed { id: 2 }));
        // Entry 2 replaced by a forgery with a recomputed hash: entry 3 no longer follows it.
        let mut forged = chain.clone();
        forged[1].detail = "forged".into();
        let h =
            forged[1].compute_hash(&decode_hash(forged[1].prev_hash.as_deref().unwrap()).unwrap());
        forged[1].hash = Some(hex::encode(h));
        assert!(matches!(
            walk(&forged),
            Some(ChainProblem::Altered { id: 2, .. })
        ));
        let mut inserted = chain.clone();
        let mut extra = entry(6);
        extra.prev_hash = None;
        inserted.push(extra);
        assert!(matches!(
            walk(&inserted),
            Some(ChainProblem::Inserted { id: 6, .. })
        ));
    }
}
