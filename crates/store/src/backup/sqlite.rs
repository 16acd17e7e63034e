//! SQLite: the online snapshot (`VACUUM INTO` on a connection of its own, so it runs beside
//! a serving process), the look inside an image, and the restore into a data directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rand::RngCore;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tempfile::NamedTempFile;

use super::container::{self, BackupKind, Checked, Header};
use super::{blocking, check_fingerprint, sync_dir, write_atomically, BackupError, BackupInfo};
use super::{Contents, Verification};
use crate::connect::{latest_sqlite_migration, SQLITE_FILE};
use crate::datadir::DataDirLock;
use crate::keys::MasterKey;

fn options(file: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(file)
        .create_if_missing(false)
        .busy_timeout(Duration::from_secs(30))
        .log_statements(log::LevelFilter::Trace)
}

/// Takes a consistent snapshot of the database in `data_dir` (while a server may be writing
/// to it) and writes it, sealed under `key`, to `out`. The snapshot is one read transaction
/// (`VACUUM INTO`): it holds every transaction committed before it began and nothing of any
/// later one. The plaintext image lives in a private temporary file next to `out` only while
/// it is being sealed.
pub async fn backup_sqlite(
    data_dir: &Path,
    out: &Path,
    key: &MasterKey,
    now_ms: i64,
) -> Result<BackupInfo, BackupError> {
    let db = data_dir.join(SQLITE_FILE);
    if !db.is_file() {
        return Err(BackupError::NoDatabase(data_dir.to_owned()));
    }
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let out_dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => PathBuf::from("."),
    };
    let image = tempfile::Builder::new()
        .prefix(".warden-snapshot-")
        .suffix(".db")
        .tempfile_in(&out_dir)
        .map_err(|e| {
            BackupError::io(format!("cannot create a file in {}", out_dir.display()), e)
        })?;
    let image_path = image
        .path()
        .to_str()
        .ok_or_else(|| BackupError::io("".into(), std::io::Error::other("path is not UTF-8")))?
        .to_owned();
    let mut conn = options(&db).connect().await?;
    sqlx::query("VACUUM INTO ?")
        .bind(&image_path)
        .execute(&mut conn)
        .await?;
    conn.close().await?;
    let contents = inspect_image(image.path()).await?;
    let fingerprint = key.fingerprint();
    let key = super::backup_key(key);
    let out = out.to_owned();
    blocking(move || {
        let (size, sha) = container::hash_file(image.path())
            .map_err(|e| BackupError::io("cannot read the snapshot".into(), e))?;
        let mut nonce_prefix = [0u8; 7];
        rand::rngs::OsRng.fill_bytes(&mut nonce_prefix);
        let header = Header {
            kind: BackupKind::SqliteImage,
            created_at_ms: now_ms,
            key_fingerprint: fingerprint,
            schema_version: contents.schema_version,
            plaintext_size: size,
            plaintext_sha256: sha,
            nonce_prefix,
        };
        write_atomically(&out, |file| {
            let mut plain = std::fs::File::open(image.path())?;
            container::seal(&mut plain, &header, &key, file)
        })?;
        drop(image);
        super::read_info(&out)
    })
    .await
}

/// Decrypts a checked SQLite backup into a private temporary file in `dir`, checking the
/// inner SHA-256. The file is removed when the handle drops.
pub(super) async fn unpack_image(
    path: &Path,
    checked: Checked,
    key: &MasterKey,
    dir: &Path,
) -> Result<NamedTempFile, BackupError> {
    if checked.header.kind != BackupKind::SqliteImage {
        return Err(BackupError::WrongKind {
            found: checked.header.kind,
            wanted: BackupKind::SqliteImage,
        });
    }
    let key = super::backup_key(key);
    let path = path.to_owned();
    let dir = dir.to_owned();
    blocking(move || {
        let image = tempfile::Builder::new()
            .prefix(".warden.db.restore-")
            .tempfile_in(&dir)
            .map_err(|e| {
                BackupError::io(format!("cannot create a file in {}", dir.display()), e)
            })?;
        container::open(&path, &checked, &key, image.as_file())?;
        image
            .as_file()
            .sync_all()
            .map_err(|e| BackupError::io("cannot write the restored database".into(), e))?;
        Ok(image)
    })
    .await
}

/// Opens a database image read-only and reports its integrity, migration version and counts.
pub(super) async fn inspect_image(image: &Path) -> Result<Contents, BackupError> {
    let not_a_database = |e: sqlx::Error| {
        BackupError::Corrupt(format!(
            "the contents are not a usable SQLite database: {e}"
        ))
    };
    let mut conn = options(image)
        .read_only(true)
        .immutable(true)
        .connect()
        .await
        .map_err(not_a_database)?;
    let checks: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_all(&mut conn)
        .await
        .map_err(not_a_database)?;
    let integrity = checks.join("; ");
    let schema_version: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await
            .map_err(not_a_database)?;
    let (users, customers): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM customers)")
            .fetch_one(&mut conn)
            .await
            .map_err(not_a_database)?;
    conn.close().await?;
    Ok(Contents {
        integrity,
        schema_version,
        users,
        customers,
    })
}

/// The outcome of [`restore_sqlite`].
#[derive(Debug, Clone)]
pub struct Restored {
    pub verification: Verification,
    /// Where the files of the database it replaced (with `force`) were moved.
    pub replaced: Vec<PathBuf>,
}

/// Restores a SQLite backup into `data_dir`. Everything is checked before the target is
/// touched: the lock (no server may be using the directory), an existing database (replaced
/// only with `force`), the file checksum, the key, the decryption, the inner SHA-256, the
/// image's `PRAGMA integrity_check` and schema version. Only then is the image (decrypted
/// next to the target, on the same file system) renamed into place; the files of a replaced
/// database are first renamed aside to `<name>.replaced-<now_ms>`, so its `-wal` can never be
/// applied to the restored one. On any failure the target is left as it was.
pub async fn restore_sqlite(
    from: &Path,
    data_dir: &Path,
    key: &MasterKey,
    force: bool,
    now_ms: i64,
) -> Result<Restored, BackupError> {
    std::fs::create_dir_all(data_dir)
        .map_err(|e| BackupError::io(format!("cannot create {}", data_dir.display()), e))?;
    let _lock = DataDirLock::acquire(data_dir)?;
    let db = data_dir.join(SQLITE_FILE);
    if db.exists() && !force {
        return Err(BackupError::TargetHoldsDatabase(data_dir.to_owned()));
    }
    let checked = {
        let from = from.to_owned();
        blocking(move || container::check(&from)).await?
    };
    if checked.header.kind != BackupKind::SqliteImage {
        return Err(BackupError::WrongKind {
            found: checked.header.kind,
            wanted: BackupKind::SqliteImage,
        });
    }
    check_fingerprint(&checked.header, key)?;
    let info = BackupInfo::new(&checked.header, checked.file_len);
    let image = unpack_image(from, checked, key, data_dir).await?;
    let contents = inspect_image(image.path()).await?;
    if contents.integrity != "ok" {
        return Err(BackupError::Corrupt(format!(
            "the database inside fails its integrity check: {}",
            contents.integrity
        )));
    }
    let known = latest_sqlite_migration();
    if contents.schema_version > known {
        return Err(BackupError::NewerSchema {
            backup: contents.schema_version,
            known,
        });
    }
    // Verified: from here on only renames inside the directory.
    let mut moved: Vec<(PathBuf, PathBuf)> = Vec::new();
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = data_dir.join(format!("{SQLITE_FILE}{suffix}"));
        if file.exists() {
            let aside = data_dir.join(format!("{SQLITE_FILE}{suffix}.replaced-{now_ms}"));
            if let Err(e) = std::fs::rename(&file, &aside) {
                undo(&moved);
                return Err(BackupError::io(
                    format!("cannot move {} aside", file.display()),
                    e,
                ));
            }
            moved.push((file, aside));
        }
    }
    if let Err(e) = image.persist(&db) {
        undo(&moved);
        return Err(BackupError::io(
            format!("cannot rename the restored database to {}", db.display()),
            e.error,
        ));
    }
    sync_dir(data_dir);
    Ok(Restored {
        verification: Verification {
            info,
            contents: Some(contents),
        },
        replaced: moved.into_iter().map(|(_, aside)| aside).collect(),
    })
}

/// Puts files moved aside back (best effort: the renames just succeeded the other way).
fn undo(moved: &[(PathBuf, PathBuf)]) {
    for (original, aside) in moved.iter().rev() {
        let _ = std::fs::rename(aside, original);
    }
}
