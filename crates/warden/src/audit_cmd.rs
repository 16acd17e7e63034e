//! `warden audit`: verify the access log's chain (or an archive of it), archive old entries
//! into a signed file, and write a signed checkpoint on demand.

use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use warden_store::keys::{MasterKey, KEY_FILE};
use warden_store::SQLITE_FILE;

use crate::{now_ms, open_store};

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk the access log's hash chain and its signed checkpoints: exit 0 when intact,
    /// non-zero naming the first altered, removed or inserted entry. With --archive, verify an
    /// archive file instead.
    Verify(VerifyArgs),
    /// Move the entries written before a date into a signed archive file; the rest of the
    /// log stays verifiable (it starts from the last archived entry's hash).
    Archive(ArchiveArgs),
    /// Write a signed checkpoint of the last entry now.
    Checkpoint(LogArgs),
}

/// Where the database and its master key are.
#[derive(Debug, Args)]
pub struct LogArgs {
    /// Data directory (SQLite database).
    #[arg(long, default_value = "./warden-data", conflicts_with = "database_url")]
    data: PathBuf,
    /// Database URL instead of a data directory: postgres://… (or sqlite://…).
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    database_url: Option<String>,
    /// The master key file (default: <data>/master.key; required with --database-url unless
    /// WARDEN_MASTER_KEY is set). The log's signing key is derived from it.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Verify this archive file (written by `warden audit archive`) instead of the database:
    /// its checksum, its signature (when the master key is found) and its chain.
    #[arg(long, value_name = "FILE")]
    archive: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[command(flatten)]
    log: LogArgs,
    /// Archive the entries written before this day (YYYY-MM-DD, UTC) or time (RFC 3339).
    #[arg(long, value_name = "DATE")]
    before: String,
    /// The archive file to write (refused if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
}

impl LogArgs {
    pub(crate) async fn open(&self) -> anyhow::Result<warden_store::Store> {
        if self.database_url.is_none() && !self.data.join(SQLITE_FILE).exists() {
            bail!("{} holds no Warden database", self.data.display());
        }
        let (store, _, _) = open_store(
            &self.data,
            self.database_url.as_deref(),
            self.key_file.as_deref(),
        )
        .await?;
        Ok(store)
    }

    /// The master key, if one is to be found without creating it.
    fn existing_key(&self) -> anyhow::Result<Option<MasterKey>> {
        if std::env::var(warden_store::keys::MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty()) {
            let path = PathBuf::new();
            return Ok(Some(MasterKey::load(&path)?.0));
        }
        let path = self
            .key_file
            .clone()
            .unwrap_or_else(|| self.data.join(KEY_FILE));
        if path.exists() {
            Ok(Some(MasterKey::load_file(&path)?.0))
        } else {
            Ok(None)
        }
    }
}

fn parse_before(text: &str) -> anyhow::Result<i64> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    let date: jiff::civil::Date = text
        .parse()
        .with_context(|| format!("--before {text}: give YYYY-MM-DD or an RFC 3339 time"))?;
    Ok(date
        .to_zoned(jiff::tz::TimeZone::UTC)?
        .timestamp()
        .as_millisecond())
}

pub async fn run(command: AuditCommand) -> anyhow::Result<()> {
    match command {
        AuditCommand::Verify(args) => verify(args).await,
        AuditCommand::Archive(args) => archive(args).await,
        AuditCommand::Checkpoint(args) => {
            let store = args.open().await?;
            let id = store.checkpoint_access_log(now_ms()).await?;
            println!("Signed a checkpoint at entry {id}.");
            Ok(())
        }
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(file) = &args.archive {
        let key = args.log.existing_key()?;
        let summary = warden_store::verify_archive(file, key.as_ref())
            .map_err(|e| anyhow::anyhow!("the archive {} is NOT intact: {e}", file.display()))?;
        let signed = if key.is_some() {
            "checksum and signature"
        } else {
            "checksum only (no master key found: the signature was not checked)"
        };
        println!(
            "The archive {} is intact: {} entries ({} to {}); {signed}.",
            file.display(),
            summary.entries,
            summary.first_id,
            summary.last_id
        );
        return Ok(());
    }
    let store = args.log.open().await?;
    let report = store.verify_access_log().await?;
    if let Some(problem) = report.problem {
        bail!("the access log is NOT intact: {problem}");
    }
    println!(
        "The access log is intact: {} entries (after archived entry {}, up to {}), {} signed \
         checkpoints, the head signed.",
        report.entries, report.anchor_id, report.last_id, report.checkpoints
    );
    Ok(())
}

async fn archive(args: ArchiveArgs) -> anyhow::Result<()> {
    let before = parse_before(&args.before)?;
    if args.out.exists() {
        bail!("{} exists; choose another file", args.out.display());
    }
    let store = args.log.open().await?;
    let report = store.verify_access_log().await?;
    if let Some(problem) = report.problem {
        bail!("the access log is NOT intact ({problem}): nothing archived");
    }
    match store
        .archive_access_log(before, &args.out, now_ms())
        .await?
    {
        None => println!(
            "No entry was written before {}: nothing archived.",
            args.before
        ),
        Some(summary) => println!(
            "Archived {} entries ({} to {}) into {}; the log in the database now starts after \
             entry {}.",
            summary.entries,
            summary.first_id,
            summary.last_id,
            args.out.display(),
            summary.last_id
        ),
    }
    Ok(())
}
