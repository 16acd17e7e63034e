//! Encryption at rest of the sensitive fields and TOTP secrets: data keys wrapped by the
//! master key, the keyring a [`Store`] holds, the ciphertext format, and key rotation.
//!
//! * A data key (DEK) is a random 256-bit AES-256-GCM key. It is stored in `data_keys` only
//!   wrapped: encrypted under a key derived from the master key (purpose
//!   `"warden data key wrap v1"`), with the DEK's id as associated data, next to the
//!   fingerprint of the master key that wrapped it. The master key itself is never stored.
//! * One DEK is *active* and encrypts every new value; *retired* ones only decrypt.
//! * A stored value is text: `wenc1:<dek id>:<base64 of nonce ‖ ciphertext ‖ tag>`. Its
//!   associated data is the table, the row id, the column and the DEK id, so a ciphertext
//!   copied to another row or column (or relabelled with another key id) fails to decrypt.
//! * Rotating the master key re-wraps every DEK in one transaction; re-encryption makes a new
//!   active DEK and moves every value onto it in small transactions, resumable at any point
//!   because "not yet under the active key" is visible in the data itself.
//!
//! INVARIANT: no sensitive field and no TOTP secret is written to the database in plain text:
//! every write path of `records.rs` and `security.rs` goes through [`Keys::encrypt`], and
//! every read path through [`Keys::decrypt`], which refuses plain text and wrong keys with an
//! error rather than a NULL.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use rand::RngCore;
use sqlx::{AnyPool, Row};
use warden_policy::schema::schema;
use warden_policy::ObjectType;
use zeroize::Zeroizing;

use crate::keys::{write_key_file, KeyOrigin, MasterKey, MASTER_KEY_ENV};
use crate::sql::{Param, SqlBuilder};
use crate::{Backend, Result, Store, StoreError};

/// The start of every encrypted value (format version 1).
pub const CIPHERTEXT_PREFIX: &str = "wenc1:";
/// The HKDF purpose of the key that wraps data keys.
const WRAP_PURPOSE: &str = "warden data key wrap v1";
const NONCE_LEN: usize = 12;

/// Where an encrypted value lives; bound to its ciphertext as associated data.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FieldRef {
    pub(crate) table: &'static str,
    pub(crate) id: i64,
    pub(crate) column: &'static str,
}

fn field_aad(at: FieldRef, dek: i64) -> Vec<u8> {
    format!(
        "warden field v1\0{}\0{}\0{}\0{dek}",
        at.table, at.id, at.column
    )
    .into_bytes()
}

fn wrap_aad(dek: i64) -> Vec<u8> {
    format!("warden data key v1\0{dek}").into_bytes()
}

/// A random 96-bit nonce from the operating system. Random nonces under one AES-GCM key are
/// safe up to about 2^32 encryptions (collision probability ~2^-33); Warden writes far fewer
/// values per data key than that, and re-encryption starts a new key.
fn nonce() -> [u8; NONCE_LEN] {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rngs::OsRng.fill_bytes(&mut nonce);
    nonce
}

fn seal(cipher: &Aes256Gcm, aad: &[u8], plain: &[u8]) -> Option<Vec<u8>> {
    let nonce = nonce();
    let sealed = cipher
        .encrypt(Nonce::from_slice(&nonce), Payload { msg: plain, aad })
        .ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + sealed.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&sealed);
    Some(out)
}

fn open(cipher: &Aes256Gcm, aad: &[u8], blob: &[u8]) -> Option<Vec<u8>> {
    if blob.len() < NONCE_LEN {
        return None;
    }
    let (nonce, sealed) = blob.split_at(NONCE_LEN);
    cipher
        .decrypt(Nonce::from_slice(nonce), Payload { msg: sealed, aad })
        .ok()
}

fn wrapping_cipher(master: &MasterKey) -> Aes256Gcm {
    let key = Zeroizing::new(master.derive(WRAP_PURPOSE));
    Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(key.as_slice()))
}

fn wrap(master: &MasterKey, id: i64, dek: &[u8; 32]) -> Result<String> {
    let sealed =
        seal(&wrapping_cipher(master), &wrap_aad(id), dek).ok_or_else(|| StoreError::Corrupt {
            table: "data_keys",
            column: "wrapped",
            message: "cannot wrap a data key".into(),
        })?;
    Ok(B64.encode(sealed))
}

fn unwrap_key(master: &MasterKey, id: i64, wrapped: &str) -> Result<Zeroizing<[u8; 32]>> {
    let corrupt = || StoreError::Corrupt {
        table: "data_keys",
        column: "wrapped",
        message: format!("data key {id} does not unwrap under the master key it names"),
    };
    let blob = B64.decode(wrapped).map_err(|_| corrupt())?;
    let plain =
        Zeroizing::new(open(&wrapping_cipher(master), &wrap_aad(id), &blob).ok_or_else(corrupt)?);
    let key: [u8; 32] = plain.as_slice().try_into().map_err(|_| corrupt())?;
    Ok(Zeroizing::new(key))
}

/// One unwrapped data key.
struct DataKey {
    bytes: Zeroizing<[u8; 32]>,
    cipher: Aes256Gcm,
}

impl DataKey {
    fn new(bytes: Zeroizing<[u8; 32]>) -> DataKey {
        let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(bytes.as_slice()));
        DataKey { bytes, cipher }
    }
}

/// The unwrapped data keys, the active one, and the master key that wraps them.
struct Keyring {
    master: MasterKey,
    active: i64,
    keys: HashMap<i64, DataKey>,
}

/// The keyring of a store, shared by its clones: the active key encrypts, any known key
/// decrypts. Locked only for the few instructions of one encryption (never across an await).
pub(crate) struct Keys(RwLock<Keyring>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ring = self.read();
        f.debug_struct("Keys")
            .field("active", &ring.active)
            .field("known", &ring.keys.len())
            .field("master", &ring.master)
            .finish()
    }
}

/// One row of `data_keys`.
struct KeyRow {
    id: i64,
    wrapped: String,
    fingerprint: String,
    state: String,
    created_at: i64,
}

async fn key_rows<'e, E>(executor: E) -> Result<Vec<KeyRow>>
where
    E: sqlx::Executor<'e, Database = sqlx::Any>,
{
    let rows = sqlx::query(
        "SELECT id, wrapped, master_fingerprint, state, created_at FROM data_keys ORDER BY id",
    )
    .fetch_all(executor)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(KeyRow {
                id: row.try_get(0)?,
                wrapped: row.try_get(1)?,
                fingerprint: row.try_get(2)?,
                state: row.try_get(3)?,
                created_at: row.try_get(4)?,
            })
        })
        .collect()
}

/// Milliseconds since the epoch, for the `created_at` of a data key (metadata only: no
/// decision depends on it).
fn unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A fresh random data key.
fn generate_dek() -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(key.as_mut_slice());
    key
}

/// The fingerprints of the master keys that wrapped the database's data keys (one, except
/// when the database is corrupt); empty for a database without data keys.
async fn stored_fingerprints(pool: &AnyPool) -> Result<Vec<String>> {
    let mut fingerprints: Vec<String> = key_rows(pool)
        .await?
        .into_iter()
        .map(|row| row.fingerprint)
        .collect();
    fingerprints.sort();
    fingerprints.dedup();
    Ok(fingerprints)
}

impl Keys {
    /// The master key in use (the access log derives its signing key from it).
    pub(crate) fn master(&self) -> MasterKey {
        self.read().master.clone()
    }

    fn read(&self) -> RwLockReadGuard<'_, Keyring> {
        self.0
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Keyring> {
        self.0
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Unwraps the database's data keys with `master`, creating the first one when there is
    /// none. Refuses a master key other than the one that wrapped them.
    pub(crate) async fn open(pool: &AnyPool, master: &MasterKey) -> Result<Keys> {
        let mut rows = key_rows(pool).await?;
        if rows.is_empty() {
            let dek = generate_dek();
            let inserted = sqlx::query(
                "INSERT INTO data_keys (id, wrapped, master_fingerprint, state, created_at) \
                 VALUES (1, $1, $2, 'active', $3)",
            )
            .bind(wrap(master, 1, &dek)?)
            .bind(master.fingerprint())
            .bind(unix_ms())
            .execute(pool)
            .await;
            match inserted.map_err(StoreError::from) {
                // Another process created it at the same moment: use theirs.
                Ok(_) | Err(StoreError::Duplicate(_)) => {}
                Err(e) => return Err(e),
            }
            rows = key_rows(pool).await?;
        }
        let mut keys = HashMap::new();
        let mut active = None;
        for row in &rows {
            if row.fingerprint != master.fingerprint() {
                return Err(StoreError::WrongMasterKey {
                    found: master.fingerprint(),
                    expected: row.fingerprint.clone(),
                });
            }
            keys.insert(
                row.id,
                DataKey::new(unwrap_key(master, row.id, &row.wrapped)?),
            );
            if row.state == "active" {
                active = Some(row.id);
            }
        }
        let active = active.ok_or_else(|| StoreError::Corrupt {
            table: "data_keys",
            column: "state",
            message: "no data key is active".into(),
        })?;
        Ok(Keys(RwLock::new(Keyring {
            master: master.clone(),
            active,
            keys,
        })))
    }

    /// The id of the key that encrypts new values.
    pub(crate) fn active(&self) -> i64 {
        self.read().active
    }

    /// Encrypts `plain` for the place `at`, under the active data key.
    pub(crate) fn encrypt(&self, at: FieldRef, plain: &str) -> Result<String> {
        let ring = self.read();
        let active = ring.active;
        let sealed = ring
            .keys
            .get(&active)
            .and_then(|key| seal(&key.cipher, &field_aad(at, active), plain.as_bytes()))
            .ok_or(StoreError::Decrypt {
                table: at.table,
                column: at.column,
                id: at.id,
                reason: "the active data key is not loaded",
            })?;
        Ok(format!(
            "{CIPHERTEXT_PREFIX}{active}:{}",
            B64.encode(sealed)
        ))
    }

    /// Decrypts the stored `text` of the place `at`. Plain text, an unknown key, or a
    /// ciphertext made for another place is an error.
    pub(crate) fn decrypt(&self, at: FieldRef, text: &str) -> Result<String> {
        let fail = |reason: &'static str| StoreError::Decrypt {
            table: at.table,
            column: at.column,
            id: at.id,
            reason,
        };
        let rest = text
            .strip_prefix(CIPHERTEXT_PREFIX)
            .ok_or_else(|| fail("the value is not encrypted"))?;
        let (dek, body) = rest
            .split_once(':')
            .ok_or_else(|| fail("malformed ciphertext"))?;
        let dek: i64 = dek.parse().map_err(|_| fail("malformed ciphertext"))?;
        let blob = B64.decode(body).map_err(|_| fail("malformed ciphertext"))?;
        let ring = self.read();
        let key = ring
            .keys
            .get(&dek)
            .ok_or_else(|| fail("its data key is unknown"))?;
        let plain = open(&key.cipher, &field_aad(at, dek), &blob).ok_or_else(|| {
            fail("authentication failed (altered, or moved from another row or field)")
        })?;
        String::from_utf8(plain).map_err(|_| fail("not UTF-8"))
    }

    /// Whether `text` is encrypted under the active key (re-encryption skips it).
    fn is_under_active(&self, text: &str) -> bool {
        let prefix = format!("{CIPHERTEXT_PREFIX}{}:", self.active());
        text.starts_with(&prefix)
    }

    /// Learns the data keys created since the keyring was loaded (a re-encryption started by
    /// another process) and which one is active now.
    pub(crate) async fn reload(&self, pool: &AnyPool) -> Result<()> {
        let rows = key_rows(pool).await?;
        let mut fresh = Vec::new();
        {
            let ring = self.read();
            for row in &rows {
                if !ring.keys.contains_key(&row.id) {
                    if row.fingerprint != ring.master.fingerprint() {
                        return Err(StoreError::WrongMasterKey {
                            found: ring.master.fingerprint(),
                            expected: row.fingerprint.clone(),
                        });
                    }
                    fresh.push((row.id, unwrap_key(&ring.master, row.id, &row.wrapped)?));
                }
            }
        }
        let mut ring = self.write();
        for (id, bytes) in fresh {
            ring.keys.insert(id, DataKey::new(bytes));
        }
        if let Some(active) = rows.iter().find(|row| row.state == "active") {
            ring.active = active.id;
        }
        Ok(())
    }
}

/// The tables and columns that hold encrypted values: every sensitive field of every object,
/// the users' TOTP secrets, and the intended changes of approval requests.
pub(crate) fn encrypted_columns() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = ObjectType::ALL
        .iter()
        .map(|object| schema(*object))
        .map(|s| {
            (
                s.table,
                s.fields
                    .iter()
                    .filter(|f| f.sensitive)
                    .map(|f| f.name)
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, columns)| !columns.is_empty())
        .collect();
    out.push(("users", vec!["totp_secret"]));
    out.push(("approval_requests", vec!["payload"]));
    out
}

/// `(c1 IS NOT NULL AND c1 NOT LIKE $p) OR …`: a row holding a value not under the key whose
/// prefix is bound as `$p`.
fn off_key_condition(sql: &mut SqlBuilder, columns: &[&str], prefix_like: &str) {
    sql.push("(");
    for (i, column) in columns.iter().enumerate() {
        if i > 0 {
            sql.push(" OR ");
        }
        sql.push(&format!("({column} IS NOT NULL AND {column} NOT LIKE "))
            .bind(Param::Text(Some(prefix_like.to_owned())))
            .push(")");
    }
    sql.push(")");
}

/// A data key as `warden keys status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataKeyInfo {
    pub id: i64,
    /// `active` or `retired`.
    pub state: String,
    /// Fingerprint of the master key that wraps it.
    pub master_fingerprint: String,
    pub created_at: i64,
    /// How many stored values it encrypts.
    pub values: u64,
}

/// The data keys and the values they encrypt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    pub keys: Vec<DataKeyInfo>,
    /// Values stored without encryption (written before encryption existed; re-encryption
    /// encrypts them).
    pub plain: u64,
}

/// Where a re-encryption pass has got to: the table (index in the encrypted columns) and
/// the last row id done. A pass needs no stored state: a killed run is resumed by starting
/// another pass, which finds the values still off the active key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReencryptCursor {
    table: usize,
    after: i64,
}

/// What [`Store::connect_with_key_file`] found.
#[derive(Debug)]
pub struct Unlocked {
    pub store: Store,
    /// Where the master key came from (never the key).
    pub origin: KeyOrigin,
    /// A master-key rotation had been interrupted after the data keys were re-wrapped and
    /// before the new key file was renamed; the rename has now been done.
    pub finished_rotation: bool,
}

/// Where a new master key waits while data keys are re-wrapped under it: `<key file>.new`.
pub fn pending_key_file(key_file: &Path) -> PathBuf {
    let mut name = key_file.as_os_str().to_owned();
    name.push(".new");
    PathBuf::from(name)
}

fn io_error(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::KeyFile(format!("{}: {e}", path.display()))
}

/// Renames the pending key file over the key file and syncs the directory, so that the
/// rename survives a crash.
fn commit_key_file(pending: &Path, key_file: &Path) -> Result<()> {
    std::fs::rename(pending, key_file).map_err(|e| io_error(pending, e))?;
    if let Some(dir) = key_file.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(handle) = std::fs::File::open(dir) {
            // Best effort: some file systems refuse fsync on a directory.
            let _ = handle.sync_all();
        }
    }
    Ok(())
}

impl Store {
    /// Connects to `url` with the master key from `WARDEN_MASTER_KEY`, or else from
    /// `key_file` — created (mode 0600) only when the database has no data keys yet.
    /// Finishes a master-key rotation interrupted between re-wrapping and renaming the new
    /// key file over the old one.
    pub async fn connect_with_key_file(url: &str, key_file: &Path) -> Result<Unlocked> {
        let (pool, backend) = Store::open_pool(url).await?;
        let from_env = std::env::var(MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
        let stored = stored_fingerprints(&pool).await?;
        if !from_env && !stored.is_empty() && !key_file.exists() {
            return Err(StoreError::KeyFile(format!(
                "the database is encrypted but the key file {} does not exist: restore it, \
                 or set {MASTER_KEY_ENV}",
                key_file.display()
            )));
        }
        let (mut key, mut origin) = MasterKey::load(key_file)?;
        let mut finished_rotation = false;
        let pending = pending_key_file(key_file);
        if !from_env && !stored.contains(&key.fingerprint()) && pending.exists() {
            let (new, _) = MasterKey::load_file(&pending)?;
            if stored.contains(&new.fingerprint()) {
                commit_key_file(&pending, key_file)?;
                tracing::warn!(
                    "finished an interrupted master key rotation: {} now holds the new key",
                    key_file.display()
                );
                key = new;
                origin = KeyOrigin::File(key_file.to_owned());
                finished_rotation = true;
            }
        }
        let store = Store::with_keys(pool, backend, &key).await?;
        Ok(Unlocked {
            store,
            origin,
            finished_rotation,
        })
    }

    /// Re-reads the data keys: a new active key made by a re-encryption elsewhere is used for
    /// the next write. The service calls it whenever the permission epoch moves (a
    /// re-encryption bumps it when it makes a new key).
    pub async fn reload_keys(&self) -> Result<()> {
        self.keys.reload(&self.pool).await
    }

    /// The id of the data key that encrypts new values.
    pub fn active_data_key(&self) -> i64 {
        self.keys.active()
    }

    /// Fingerprint of the master key this store was opened with.
    pub fn master_fingerprint(&self) -> String {
        self.keys.read().master.fingerprint()
    }

    /// Re-wraps every data key under `new`, in one transaction (all or none), and keeps
    /// using `new` from then on. Keys already wrapped by `new` are left as they are, so a
    /// repeated call does nothing. Returns how many keys were re-wrapped.
    pub async fn rewrap_data_keys(&self, new: &MasterKey) -> Result<usize> {
        let mut tx = self.begin().await?;
        let rows = key_rows(&mut *tx.tx).await?;
        let mut updates = Vec::new();
        let old_master = self.keys.master();
        {
            let ring = self.keys.read();
            for row in &rows {
                if row.fingerprint == new.fingerprint() {
                    continue;
                }
                let bytes = match ring.keys.get(&row.id) {
                    Some(key) => key.bytes.clone(),
                    None => unwrap_key(&ring.master, row.id, &row.wrapped)?,
                };
                updates.push((row.id, wrap(new, row.id, &bytes)?, row.fingerprint.clone()));
            }
        }
        for (id, wrapped, old) in &updates {
            let n = sqlx::query(
                "UPDATE data_keys SET wrapped = $1, master_fingerprint = $2 \
                 WHERE id = $3 AND master_fingerprint = $4",
            )
            .bind(wrapped)
            .bind(new.fingerprint())
            .bind(id)
            .bind(old)
            .execute(&mut *tx.tx)
            .await?
            .rows_affected();
            if n != 1 {
                return Err(StoreError::Conflict);
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let detail = format!(
            "{} data keys re-wrapped; master key {} -> {}",
            updates.len(),
            old_master.fingerprint(),
            new.fingerprint()
        );
        if !updates.is_empty() {
            tx.append_access(&crate::access_log::operator_entry(
                "keys.rotate",
                now,
                detail,
            ))
            .await?;
        }
        // The access log's signatures follow the master key, in the same transaction.
        crate::access_log::resign(&mut tx, &old_master, new).await?;
        tx.commit().await?;
        self.keys.write().master = new.clone();
        Ok(updates.len())
    }

    /// Rotates the master key kept in `key_file`, crash-safely: the new key is written to
    /// `<key_file>.new` (mode 0600) first, every data key is re-wrapped under it in one
    /// transaction, then the new file is renamed over the old. Killed before the commit, the
    /// database still opens with the old key (and the next rotation reuses the waiting new
    /// key); killed after it, the next open finishes the rename
    /// ([`Store::connect_with_key_file`]). `new` is the key to rotate to (random when `None`).
    pub async fn rotate_master_key_file(
        &self,
        key_file: &Path,
        new: Option<MasterKey>,
    ) -> Result<MasterKey> {
        let pending = pending_key_file(key_file);
        let new = if pending.exists() {
            let (waiting, _) = MasterKey::load_file(&pending)?;
            if new
                .as_ref()
                .is_some_and(|n| n.fingerprint() != waiting.fingerprint())
            {
                return Err(StoreError::KeyFile(format!(
                    "{} holds the new key of an unfinished rotation; finish it with that key, \
                     or remove the file if that rotation never re-wrapped anything",
                    pending.display()
                )));
            }
            waiting
        } else {
            let new = new.unwrap_or_else(MasterKey::generate);
            write_key_file(&pending, &new).map_err(|e| io_error(&pending, e))?;
            new
        };
        self.rewrap_data_keys(&new).await?;
        commit_key_file(&pending, key_file)?;
        Ok(new)
    }

    /// The data keys, their state and how many values each encrypts.
    pub async fn key_status(&self) -> Result<KeyStatus> {
        let rows = key_rows(&self.pool).await?;
        let mut counts = vec![0u64; rows.len()];
        let mut plain = 0u64;
        for (table, columns) in encrypted_columns() {
            let mut sql = SqlBuilder::new("SELECT ");
            for (i, row) in rows.iter().enumerate() {
                if i > 0 {
                    sql.push(", ");
                }
                sql.push("CAST(COALESCE(SUM(");
                for (j, column) in columns.iter().enumerate() {
                    if j > 0 {
                        sql.push(" + ");
                    }
                    sql.push(&format!("CASE WHEN {column} LIKE "))
                        .bind(Param::Text(Some(format!(
                            "{CIPHERTEXT_PREFIX}{}:%",
                            row.id
                        ))))
                        .push(" THEN 1 ELSE 0 END");
                }
                sql.push("), 0) AS BIGINT)");
            }
            if !rows.is_empty() {
                sql.push(", ");
            }
            sql.push("CAST(COALESCE(SUM(");
            for (j, column) in columns.iter().enumerate() {
                if j > 0 {
                    sql.push(" + ");
                }
                sql.push(&format!(
                    "CASE WHEN {column} IS NOT NULL AND {column} NOT LIKE "
                ))
                .bind(Param::Text(Some(format!("{CIPHERTEXT_PREFIX}%"))))
                .push(" THEN 1 ELSE 0 END");
            }
            sql.push(&format!("), 0) AS BIGINT) FROM {table}"));
            let row = sql.query().fetch_one(&self.pool).await?;
            for (i, count) in counts.iter_mut().enumerate() {
                *count += u64::try_from(row.try_get::<i64, _>(i)?).unwrap_or(0);
            }
            plain += u64::try_from(row.try_get::<i64, _>(rows.len())?).unwrap_or(0);
        }
        Ok(KeyStatus {
            keys: rows
                .into_iter()
                .zip(counts)
                .map(|(row, values)| DataKeyInfo {
                    id: row.id,
                    state: row.state,
                    master_fingerprint: row.fingerprint,
                    created_at: row.created_at,
                    values,
                })
                .collect(),
            plain,
        })
    }

    /// How many rows hold a value not under the active data key (what re-encryption has
    /// left to do).
    pub async fn rows_to_reencrypt(&self) -> Result<u64> {
        let like = format!("{CIPHERTEXT_PREFIX}{}:%", self.keys.active());
        let mut total = 0;
        for (table, columns) in encrypted_columns() {
            let mut sql = SqlBuilder::new(&format!(
                "SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE "
            ));
            off_key_condition(&mut sql, &columns, &like);
            let n: i64 = sql.scalar().fetch_one(&self.pool).await?;
            total += u64::try_from(n).unwrap_or(0);
        }
        Ok(total)
    }

    /// Starts (or resumes) a re-encryption: when every value is under the active data key, a
    /// new data key becomes active and the old one retired, and the permission epoch is
    /// bumped in the same transaction so that running servers load the new key before their
    /// next request; when values are still off the active key (an earlier run was
    /// interrupted, or a server wrote with the old key meanwhile), the active key is kept and
    /// the pass continues. Returns the id of the key values are moved to.
    pub async fn start_reencryption(&self) -> Result<i64> {
        self.reload_keys().await?;
        if self.rows_to_reencrypt().await? > 0 {
            return Ok(self.keys.active());
        }
        let dek = generate_dek();
        let mut tx = self.begin().await?;
        let id: i64 =
            sqlx::query_scalar("SELECT CAST(COALESCE(MAX(id), 0) + 1 AS BIGINT) FROM data_keys")
                .fetch_one(&mut *tx.tx)
                .await?;
        sqlx::query("UPDATE data_keys SET state = 'retired' WHERE state = 'active'")
            .execute(&mut *tx.tx)
            .await?;
        let master = self.keys.read().master.clone();
        sqlx::query(
            "INSERT INTO data_keys (id, wrapped, master_fingerprint, state, created_at) \
             VALUES ($1, $2, $3, 'active', $4)",
        )
        .bind(id)
        .bind(wrap(&master, id, &dek)?)
        .bind(master.fingerprint())
        .bind(unix_ms())
        .execute(&mut *tx.tx)
        .await?;
        tx.bump_epoch().await?;
        tx.commit().await?;
        self.reload_keys().await?;
        Ok(id)
    }

    /// Re-encrypts under the active key the values of up to `limit` rows after `cursor`, in
    /// one transaction; returns how many rows were rewritten, or `None` when the pass has
    /// gone through every table. Rows are read outside the transaction and each update is
    /// conditional on the old values, so a row changed meanwhile by a server is left to the
    /// next pass instead of being overwritten (and the write transaction starts with a write,
    /// so on SQLite it waits for other writers instead of failing).
    pub async fn reencrypt_batch(
        &self,
        cursor: &mut ReencryptCursor,
        limit: u32,
    ) -> Result<Option<u64>> {
        let tables = encrypted_columns();
        let Some(&(table, ref columns)) = tables.get(cursor.table) else {
            return Ok(None);
        };
        let like = format!("{CIPHERTEXT_PREFIX}{}:%", self.keys.active());
        let mut sql = SqlBuilder::new(&format!(
            "SELECT id, {} FROM {table} WHERE id > ",
            columns.join(", ")
        ));
        sql.bind_int(cursor.after).push(" AND ");
        off_key_condition(&mut sql, columns, &like);
        sql.push(" ORDER BY id LIMIT ").bind_int(i64::from(limit));
        let rows = sql.query().fetch_all(&self.pool).await?;
        if rows.is_empty() {
            cursor.table += 1;
            cursor.after = 0;
            return Ok(Some(0));
        }
        let null_safe_equal = match self.backend() {
            Backend::Sqlite => " IS ",
            Backend::Postgres => " IS NOT DISTINCT FROM ",
        };
        let mut updates = Vec::with_capacity(rows.len());
        for row in &rows {
            let id: i64 = row.try_get(0)?;
            let mut sql = SqlBuilder::new(&format!("UPDATE {table} SET "));
            let mut olds = Vec::new();
            for (i, &column) in columns.iter().enumerate() {
                let old: Option<String> = row.try_get(i + 1)?;
                let at = FieldRef { table, id, column };
                let new = match &old {
                    None => None,
                    Some(text) if self.keys.is_under_active(text) => Some(text.clone()),
                    // Written before encryption existed: encrypt it as it is.
                    Some(text) if !text.starts_with(CIPHERTEXT_PREFIX) => {
                        Some(self.keys.encrypt(at, text)?)
                    }
                    Some(text) => {
                        let plain = Zeroizing::new(self.keys.decrypt(at, text)?);
                        Some(self.keys.encrypt(at, &plain)?)
                    }
                };
                if i > 0 {
                    sql.push(", ");
                }
                sql.push(column).push(" = ").bind(Param::Text(new));
                olds.push(old);
            }
            sql.push(" WHERE id = ").bind_int(id);
            for (column, old) in columns.iter().zip(olds) {
                sql.push(" AND ")
                    .push(column)
                    .push(null_safe_equal)
                    .bind(Param::Text(old));
            }
            updates.push(sql);
            cursor.after = id;
        }
        let mut tx = self.begin().await?;
        let mut done = 0;
        for sql in &updates {
            done += sql.query().execute(&mut *tx.tx).await?.rows_affected();
        }
        tx.commit().await?;
        Ok(Some(done))
    }
}
