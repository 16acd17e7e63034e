//! PostgreSQL: a logical export of every table (one JSON line per row, values as stored, so
//! encrypted fields stay ciphertext) in the backup container, and the look inside one.
//! `pg_dump` stays the primary way to back PostgreSQL up; the export is a Warden-verifiable,
//! encrypted copy of the data.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use futures_util::TryStreamExt;
use rand::RngCore;
use sqlx::postgres::PgConnection;
use sqlx::Connection;

use super::container::{self, BackupKind, Checked, Header};
use super::{blocking, write_atomically, BackupError, BackupInfo, Contents};
use crate::keys::MasterKey;

/// Writes a logical export of the PostgreSQL database at `url`, sealed under `key`, to `out`.
/// Every table of the current schema is read in one `REPEATABLE READ` read-only transaction,
/// so the export is one consistent snapshot. Lines are `{"table": NAME, "row": {…}}`, tables
/// in name order.
pub async fn export_postgres(
    url: &str,
    out: &Path,
    key: &MasterKey,
    now_ms: i64,
) -> Result<BackupInfo, BackupError> {
    if out.exists() {
        return Err(BackupError::OutputExists(out.to_owned()));
    }
    let out_dir = match out.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    // An unnamed temporary file: the plaintext vanishes with this process whatever happens.
    let plain = tempfile::tempfile_in(&out_dir).map_err(|e| {
        BackupError::io(format!("cannot create a file in {}", out_dir.display()), e)
    })?;
    let io_error = |e: std::io::Error| BackupError::io("cannot write the export".into(), e);
    let mut conn = PgConnection::connect(url).await?;
    let mut tx = conn.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' \
         ORDER BY table_name",
    )
    .fetch_all(&mut *tx)
    .await?;
    let mut schema_version = 0;
    let mut writer = BufWriter::new(&plain);
    for table in &tables {
        let quoted = format!("\"{}\"", table.replace('"', "\"\""));
        // Table names come from the catalog and are quoted; no value is interpolated.
        let sql = format!("SELECT row_to_json(t)::text FROM {quoted} t");
        let mut rows = sqlx::query_scalar::<_, String>(&sql).fetch(&mut *tx);
        while let Some(row) = rows.try_next().await? {
            writeln!(
                writer,
                "{{\"table\":{},\"row\":{row}}}",
                serde_json::Value::String(table.clone())
            )
            .map_err(io_error)?;
        }
        drop(rows);
        if table == "_sqlx_migrations" {
            schema_version = sqlx::query_scalar(
                "SELECT COALESCE(MAX(version), 0) FROM _sqlx_migrations WHERE success",
            )
            .fetch_one(&mut *tx)
            .await?;
        }
    }
    tx.commit().await?;
    conn.close().await?;
    writer.flush().map_err(io_error)?;
    drop(writer);
    let fingerprint = key.fingerprint();
    let key = super::backup_key(key);
    let out = out.to_owned();
    blocking(move || {
        let mut plain = plain;
        let (size, sha) = hash(&mut plain).map_err(io_error)?;
        let mut nonce_prefix = [0u8; 7];
        rand::rngs::OsRng.fill_bytes(&mut nonce_prefix);
        let header = Header {
            kind: BackupKind::PostgresExport,
            created_at_ms: now_ms,
            key_fingerprint: fingerprint,
            schema_version,
            plaintext_size: size,
            plaintext_sha256: sha,
            nonce_prefix,
        };
        write_atomically(&out, |file| {
            plain.seek(SeekFrom::Start(0))?;
            container::seal(&mut plain, &header, &key, file)
        })?;
        super::read_info(&out)
    })
    .await
}

fn hash(file: &mut std::fs::File) -> std::io::Result<(u64, [u8; 32])> {
    use sha2::{Digest, Sha256};
    file.seek(SeekFrom::Start(0))?;
    let mut hasher = Sha256::new();
    let size = std::io::copy(&mut BufReader::new(&mut *file), &mut hasher)?;
    Ok((size, hasher.finalize().into()))
}

/// Decrypts an export (into an unnamed temporary file) and checks that every line is a row
/// of a named table; counts users and customers.
pub(super) async fn inspect_export(
    path: &Path,
    checked: Checked,
    key: &MasterKey,
) -> Result<Contents, BackupError> {
    let key = super::backup_key(key);
    let path = path.to_owned();
    let schema_version = checked.header.schema_version;
    blocking(move || {
        let io_error = |e: std::io::Error| BackupError::io("cannot read the export".into(), e);
        let mut plain = tempfile::tempfile().map_err(io_error)?;
        container::open(&path, &checked, &key, &plain)?;
        plain.seek(SeekFrom::Start(0)).map_err(io_error)?;
        let mut rows: BTreeMap<String, i64> = BTreeMap::new();
        for (n, line) in BufReader::new(plain).lines().enumerate() {
            let line = line.map_err(io_error)?;
            let value: serde_json::Value = serde_json::from_str(&line)
                .map_err(|e| BackupError::Corrupt(format!("line {} of the export: {e}", n + 1)))?;
            match (
                value.get("table").and_then(|t| t.as_str()),
                value.get("row"),
            ) {
                (Some(table), Some(serde_json::Value::Object(_))) => {
                    *rows.entry(table.to_owned()).or_default() += 1;
                }
                _ => {
                    return Err(BackupError::Corrupt(format!(
                        "line {} of the export is not a table row",
                        n + 1
                    )))
                }
            }
        }
        Ok(Contents {
            integrity: "ok".into(),
            schema_version,
            users: rows.get("users").copied().unwrap_or(0),
            customers: rows.get("customers").copied().unwrap_or(0),
        })
    })
    .await
}
