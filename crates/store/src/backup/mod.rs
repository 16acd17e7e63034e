//! Backups: online consistent snapshots of the SQLite database, logical exports of a
//! PostgreSQL database, both in one encrypted and checksummed container; their verification
//! and the restore of a SQLite snapshot into a data directory.
//!
//! # The file format (version 1)
//!
//! ```text
//! header, 95 bytes, integers big-endian:
//!    0  8  magic "WARDENBK"
//!    8  2  format version (1)
//!   10  1  content kind: 1 = SQLite database image, 2 = PostgreSQL export (JSON lines)
//!   11  1  compression: 1 = deflate (raw, RFC 1951)
//!   12  8  created at, ms since the Unix epoch (when the snapshot was taken)
//!   20 16  fingerprint of the master key (ASCII hex, `MasterKey::fingerprint`)
//!   36  8  schema version: the latest migration applied to the database
//!   44  8  plaintext size: the database image's (or export's) size in bytes
//!   52 32  plaintext SHA-256
//!   84  7  nonce prefix (random per file)
//!   91  4  chunk size (65536)
//! body: the plaintext deflated, then cut into chunks of 64 KiB sealed with AES-256-GCM
//!   (the `aead` crate's STREAM, big-endian 32-bit counter: nonce = prefix ‖ counter ‖
//!   last-flag), the 95 header bytes as associated data of every chunk; each chunk is written
//!   as a 4-byte length (top bit set on the last chunk) then ciphertext ‖ tag
//! trailer, 32 bytes: SHA-256 of every byte before it
//! ```
//!
//! The key is `MasterKey::derive("warden backup v1")`. What each check finds:
//! the trailer finds any damage or truncation without the key; the fingerprint tells "made
//! with another master key" apart from "corrupt"; STREAM finds altered, reordered, dropped or
//! truncated chunks and (through the associated data) an altered header; the inner SHA-256
//! checks the inflated plaintext; a restore then runs `PRAGMA integrity_check` on the image.
//! Files are written as `FILE.partial`, fsynced, then renamed: a half-written backup never has
//! the final name.

mod container;
mod postgres;
mod sqlite;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use container::{BackupKind, FORMAT_VERSION, MAGIC};
pub use postgres::export_postgres;
pub use sqlite::{backup_sqlite, restore_sqlite, Restored};

use crate::keys::MasterKey;

/// The purpose the backup key is derived for.
const KEY_PURPOSE: &str = "warden backup v1";

/// Why a backup, a verification or a restore failed.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("not a Warden backup file (no WARDENBK header)")]
    NotABackup,
    #[error("backup format version {0} is not supported by this warden (it reads version {FORMAT_VERSION})")]
    UnsupportedVersion(u16),
    #[error("the backup is corrupt: {0}")]
    Corrupt(String),
    #[error("the backup was made with another master key (fingerprint {backup}); the key given has fingerprint {given}")]
    ForeignKey { backup: String, given: String },
    #[error("the backup holds schema version {backup}, newer than this warden knows ({known}): restore it with a newer warden")]
    NewerSchema { backup: i64, known: i64 },
    #[error("this is a {found} backup; {wanted} expected")]
    WrongKind {
        found: BackupKind,
        wanted: BackupKind,
    },
    #[error("{0} holds no database")]
    NoDatabase(PathBuf),
    #[error("{0} already holds a database; pass --force to replace it")]
    TargetHoldsDatabase(PathBuf),
    #[error("a warden server is using {0} (it holds the lock file); stop it first")]
    InUse(PathBuf),
    #[error("{0} already exists; choose another name or remove it")]
    OutputExists(PathBuf),
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error("database error: {0}")]
    Database(String),
}

impl BackupError {
    pub(crate) fn io(context: String, source: io::Error) -> BackupError {
        BackupError::Io { context, source }
    }
}

impl From<sqlx::Error> for BackupError {
    fn from(error: sqlx::Error) -> Self {
        BackupError::Database(error.to_string())
    }
}

/// What a backup file's header says, once its checksum matched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInfo {
    pub kind: BackupKind,
    pub format_version: u16,
    /// When the snapshot was taken, ms since the Unix epoch.
    pub created_at_ms: i64,
    pub key_fingerprint: String,
    pub schema_version: i64,
    /// The plaintext (image or export) size.
    pub plaintext_size: u64,
    /// The plaintext SHA-256, hexadecimal.
    pub plaintext_sha256: String,
    /// The backup file's size.
    pub file_size: u64,
}

impl BackupInfo {
    fn new(header: &container::Header, file_size: u64) -> BackupInfo {
        BackupInfo {
            kind: header.kind,
            format_version: FORMAT_VERSION,
            created_at_ms: header.created_at_ms,
            key_fingerprint: header.key_fingerprint.clone(),
            schema_version: header.schema_version,
            plaintext_size: header.plaintext_size,
            plaintext_sha256: hex::encode(header.plaintext_sha256),
            file_size,
        }
    }
}

/// What was found inside a decrypted backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Contents {
    /// `PRAGMA integrity_check`'s answer for a SQLite image ("ok"); for an export, "ok" when
    /// every line is a JSON row of a named table.
    pub integrity: String,
    /// The latest migration recorded inside the contents.
    pub schema_version: i64,
    pub users: i64,
    pub customers: i64,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone)]
pub struct Verification {
    pub info: BackupInfo,
    /// `None` when no key was given: only the file checksum was checked.
    pub contents: Option<Contents>,
}

/// Checks a backup file: its checksum always; with `key`, the key's fingerprint, then
/// decrypts it fully, checks the inner SHA-256 and looks inside (a SQLite image must pass
/// `PRAGMA integrity_check`). The decrypted contents go to a private temporary file that is
/// removed before this returns.
pub async fn verify(path: &Path, key: Option<&MasterKey>) -> Result<Verification, BackupError> {
    let checked = {
        let path = path.to_owned();
        blocking(move || container::check(&path)).await?
    };
    let info = BackupInfo::new(&checked.header, checked.file_len);
    let Some(key) = key else {
        return Ok(Verification {
            info,
            contents: None,
        });
    };
    check_fingerprint(&checked.header, key)?;
    let contents = match checked.header.kind {
        BackupKind::SqliteImage => {
            let image = sqlite::unpack_image(path, checked, key, &std::env::temp_dir()).await?;
            sqlite::inspect_image(image.path()).await?
        }
        BackupKind::PostgresExport => postgres::inspect_export(path, checked, key).await?,
    };
    if contents.integrity != "ok" {
        return Err(BackupError::Corrupt(format!(
            "the database inside fails its integrity check: {}",
            contents.integrity
        )));
    }
    Ok(Verification {
        info,
        contents: Some(contents),
    })
}

/// Reads a backup's header after checking the file's checksum (no key needed).
pub fn read_info(path: &Path) -> Result<BackupInfo, BackupError> {
    let checked = container::check(path)?;
    Ok(BackupInfo::new(&checked.header, checked.file_len))
}

fn backup_key(key: &MasterKey) -> [u8; 32] {
    key.derive(KEY_PURPOSE)
}

fn check_fingerprint(header: &container::Header, key: &MasterKey) -> Result<(), BackupError> {
    let given = key.fingerprint();
    if header.key_fingerprint != given {
        return Err(BackupError::ForeignKey {
            backup: header.key_fingerprint.clone(),
            given,
        });
    }
    Ok(())
}

/// Runs blocking file work off the async runtime's threads.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, BackupError> + Send + 'static,
) -> Result<T, BackupError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| BackupError::io("a background task failed".into(), io::Error::other(e)))?
}

/// Writes `out` through `write` as `out.partial` (mode 0600), fsyncs it, renames it into place
/// and fsyncs the directory. Refuses an existing `out`; removes the partial file on failure.
fn write_atomically(
    out: &Path,
    write: impl FnOnce(&mut std::fs::File) -> io::Result<()>,
) -> Result<(), BackupError> {
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let io_error = |e: io::Error| BackupError::io(format!("cannot write {}", partial.display()), e);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let result = options.open(&partial).and_then(|mut file| {
        write(&mut file)?;
        file.flush()?;
        file.sync_all()
    });
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(io_error(e));
    }
    if let Err(e) = std::fs::rename(&partial, out) {
        let _ = std::fs::remove_file(&partial);
        return Err(BackupError::io(
            format!("cannot rename {} to {}", partial.display(), out.display()),
            e,
        ));
    }
    sync_dir(out.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// Makes a rename durable. Best effort: not every platform can open a directory.
fn sync_dir(dir: &Path) {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if let Ok(handle) = std::fs::File::open(dir) {
        let _ = handle.sync_all();
    }
}

/// The name of a scheduled backup taken at `now_ms`: `warden-<UTC time>.wbk`, which sorts
/// in time order.
pub fn scheduled_file_name(now_ms: i64) -> String {
    let stamp = jiff::Timestamp::from_millisecond(now_ms)
        .map(|t| t.strftime("%Y%m%dT%H%M%S%.3fZ").to_string())
        .unwrap_or_else(|_| now_ms.to_string());
    format!("warden-{stamp}.wbk")
}

/// Deletes the oldest scheduled backups in `dir` beyond the newest `keep`; returns the paths
/// deleted. Only complete files named like [`scheduled_file_name`] are counted.
pub fn prune(dir: &Path, keep: usize) -> io::Result<Vec<PathBuf>> {
    let mut names: Vec<String> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.starts_with("warden-") && name.ends_with(".wbk"))
        .collect();
    names.sort();
    let excess = names.len().saturating_sub(keep);
    let mut deleted = Vec::new();
    for name in names.into_iter().take(excess) {
        let path = dir.join(name);
        std::fs::remove_file(&path)?;
        deleted.push(path);
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scheduled_names_sort_in_time_order_and_prune_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let times = [1_700_000_000_000, 1_700_000_000_500, 1_700_000_360_000];
        let names: Vec<String> = times.iter().map(|t| scheduled_file_name(*t)).collect();
        assert_eq!(names[0], "warden-20231114T221320.000Z.wbk");
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        for name in &names {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::write(dir.path().join("warden-1.wbk.partial"), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        let deleted = prune(dir.path(), 2).unwrap();
        assert_eq!(deleted, vec![dir.path().join(&names[0])]);
        assert!(dir.path().join(&names[2]).exists());
        assert!(dir.path().join("notes.txt").exists());
        assert!(prune(dir.path(), 2).unwrap().is_empty());
    }
}
