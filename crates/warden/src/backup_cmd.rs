//! The backup commands — `warden backup`, `warden backup verify`, `warden restore`,
//! `warden export` — the data directory's lock taken by `serve` and `demo`, and their scheduled
//! backups (`--backup-every`). The work itself is `warden_store::backup`'s.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::{Args, Subcommand};
use warden_store::backup::{self, BackupInfo, Verification};
use warden_store::keys::{KeyOrigin, MasterKey, KEY_FILE, MASTER_KEY_ENV};
use warden_store::DataDirLock;

/// `warden backup --data DIR --out FILE`, or `warden backup verify FILE`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BackupArgs {
    #[command(subcommand)]
    action: Option<BackupAction>,
    /// Data directory whose SQLite database is backed up (a server may be running on it).
    #[arg(long, default_value = "./warden-data")]
    data: PathBuf,
    /// The backup file to write (refused if it exists). Written as FILE.partial, then renamed.
    #[arg(long, required = true, value_name = "FILE")]
    out: Option<PathBuf>,
    /// The master key file (default: $WARDEN_MASTER_KEY, else <data>/master.key).
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum BackupAction {
    /// Check a backup file: always its checksum; with the master key, decrypt it fully, check
    /// the SHA-256 inside and the database's integrity, and report what it holds.
    Verify(VerifyArgs),
}

#[derive(Debug, Args)]
struct VerifyArgs {
    /// The backup file.
    file: PathBuf,
    /// A data directory whose master.key to use (default: $WARDEN_MASTER_KEY).
    #[arg(long, conflicts_with = "key_file")]
    data: Option<PathBuf>,
    /// The master key file.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

/// `warden restore --data DIR --from FILE`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Data directory to restore into. No server may be running on it.
    #[arg(long, default_value = "./warden-data")]
    data: PathBuf,
    /// The backup file (made by `warden backup` or a scheduled backup).
    #[arg(long, value_name = "FILE")]
    from: PathBuf,
    /// The master key file the backup was made with (default: $WARDEN_MASTER_KEY, else
    /// <data>/master.key). Copied to <data>/master.key when that does not exist.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
    /// Replace the database the directory holds (its files are kept aside as
    /// warden.db*.replaced-<time>).
    #[arg(long)]
    force: bool,
}

/// `warden export --database-url URL --out FILE`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The PostgreSQL database to export: postgres://…
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    database_url: String,
    /// The export file to write (refused if it exists).
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// The master key file (default: $WARDEN_MASTER_KEY). Created (0600) if it does not exist.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

/// Scheduled backups, for `warden serve` and `warden demo`.
#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Take a backup this often while serving, e.g. 6h or 30m (SQLite data directories only;
    /// on PostgreSQL use pg_dump).
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    backup_every: Option<Duration>,
    /// Where scheduled backups go (default: <data>/backups).
    #[arg(long, value_name = "DIR", requires = "backup_every")]
    backup_dir: Option<PathBuf>,
    /// How many scheduled backups to keep; the oldest beyond are deleted.
    #[arg(long, value_name = "N", default_value_t = 7,
          value_parser = clap::value_parser!(u32).range(1..))]
    backup_keep: u32,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let duration: jiff::SignedDuration = text
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 6h, 30m or 1h30m"))?;
    let duration = Duration::try_from(duration)
        .ok()
        .filter(|d| !d.is_zero())
        .ok_or_else(|| format!("{text:?}: the interval must be positive"))?;
    Ok(duration)
}

/// Where the key comes from: an explicit file, else the environment, else the data
/// directory's key file. `create` says whether a missing file may be created (only when
/// writing a backup: reading one needs the key it was made with).
fn master_key(
    key_file: Option<&Path>,
    data: Option<&Path>,
    create: bool,
) -> anyhow::Result<Option<MasterKey>> {
    let from_env = std::env::var(MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty());
    let path = match (key_file, data) {
        (Some(path), _) => path.to_owned(),
        (None, _) if from_env => {
            let (key, _) = MasterKey::load(Path::new(KEY_FILE))?;
            return Ok(Some(key));
        }
        (None, Some(data)) => data.join(KEY_FILE),
        (None, None) => return Ok(None),
    };
    if !create && !path.exists() {
        bail!(
            "no master key: {} does not exist (pass --key-file, or set {MASTER_KEY_ENV})",
            path.display()
        );
    }
    let (key, origin) = MasterKey::load_file(&path)?;
    if let KeyOrigin::Created(_) = origin {
        eprintln!("Using {origin}.");
    }
    Ok(Some(key))
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| format!("{ms} ms"))
}

fn describe(info: &BackupInfo) {
    println!(
        "  format {}, {}, made {}",
        info.format_version,
        info.kind,
        time(info.created_at_ms)
    );
    println!("  master key fingerprint {}", info.key_fingerprint);
    println!("  schema version {}", info.schema_version);
    println!(
        "  {} bytes ({} bytes before compression and encryption, SHA-256 {})",
        info.file_size, info.plaintext_size, info.plaintext_sha256
    );
}

fn report(verification: &Verification) {
    describe(&verification.info);
    match &verification.contents {
        Some(contents) => {
            println!("  checksum ok; decrypted and SHA-256 ok");
            println!(
                "  integrity {}; migration version {}; {} users, {} customers",
                contents.integrity, contents.schema_version, contents.users, contents.customers
            );
        }
        None => println!(
            "  checksum ok; contents not checked: no master key (pass --key-file or --data, or \
             set {MASTER_KEY_ENV})"
        ),
    }
}

/// `warden backup …`.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    if let Some(BackupAction::Verify(verify)) = args.action {
        return verify_command(verify).await;
    }
    let out = args.out.context("--out FILE is required")?;
    // Checked before the key is looked for: a missing key file would otherwise be created.
    if !args.data.join(warden_store::SQLITE_FILE).is_file() {
        bail!("{} holds no database to back up", args.data.display());
    }
    let key =
        master_key(args.key_file.as_deref(), Some(&args.data), true)?.context("no master key")?;
    let info = backup::backup_sqlite(&args.data, &out, &key, crate::now_ms())
        .await
        .with_context(|| format!("backup of {} failed", args.data.display()))?;
    println!("Backed up {} to {}", args.data.display(), out.display());
    describe(&info);
    println!("Keep the master key apart from the backup: without it the backup cannot be read.");
    Ok(())
}

async fn verify_command(args: VerifyArgs) -> anyhow::Result<()> {
    let key = master_key(args.key_file.as_deref(), args.data.as_deref(), false)?;
    let verification = backup::verify(&args.file, key.as_ref())
        .await
        .with_context(|| format!("{} is not a good backup", args.file.display()))?;
    println!("{}: a Warden backup", args.file.display());
    report(&verification);
    Ok(())
}

/// `warden restore …`.
pub async fn restore(args: RestoreArgs) -> anyhow::Result<()> {
    let key =
        master_key(args.key_file.as_deref(), Some(&args.data), false)?.context("no master key")?;
    let restored =
        backup::restore_sqlite(&args.from, &args.data, &key, args.force, crate::now_ms())
            .await
            .with_context(|| {
                format!(
                    "restore into {} refused; nothing was changed",
                    args.data.display()
                )
            })?;
    println!(
        "Restored {} into {}",
        args.from.display(),
        args.data.display()
    );
    report(&restored.verification);
    for aside in &restored.replaced {
        println!(
            "  the replaced database's file is kept as {} (delete it once the restore is checked)",
            aside.display()
        );
    }
    // The restored data keys are wrapped by this key: the server must find it.
    let target_key = args.data.join(KEY_FILE);
    if let Some(source) = &args.key_file {
        if !target_key.exists() && std::env::var(MASTER_KEY_ENV).is_err() {
            warden_store::keys::write_key_file(&target_key, &key).with_context(|| {
                format!("cannot copy the master key to {}", target_key.display())
            })?;
            println!(
                "  copied the master key from {} to {} (mode 0600)",
                source.display(),
                target_key.display()
            );
        }
    }
    Ok(())
}

/// `warden export …`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    if !(args.database_url.starts_with("postgres:") || args.database_url.starts_with("postgresql:"))
    {
        bail!("warden export reads PostgreSQL (postgres://…); back SQLite up with warden backup");
    }
    let key = master_key(args.key_file.as_deref(), None, true)?
        .with_context(|| format!("no master key: pass --key-file PATH or set {MASTER_KEY_ENV}"))?;
    let info = backup::export_postgres(&args.database_url, &args.out, &key, crate::now_ms())
        .await
        .context("export failed")?;
    println!("Exported the database to {}", args.out.display());
    describe(&info);
    Ok(())
}

/// Takes the data directory's lock for a serving process (nothing for a database URL).
pub fn lock_data_dir(
    data: &Path,
    database_url: Option<&str>,
) -> anyhow::Result<Option<DataDirLock>> {
    if database_url.is_some() {
        return Ok(None);
    }
    Ok(Some(DataDirLock::acquire(data)?))
}

/// Starts the scheduled backups of a serving process, if asked for: a background task that
/// writes `warden-<UTC time>.wbk` every interval and deletes the oldest beyond `--backup-keep`.
/// A backup is a read transaction on a connection of its own and the sealing runs on a
/// blocking thread: requests never wait for it.
pub fn schedule(
    args: &ScheduleArgs,
    data: &Path,
    database_url: Option<&str>,
    key_file: &Path,
) -> anyhow::Result<()> {
    let Some(every) = args.backup_every else {
        return Ok(());
    };
    if database_url.is_some() {
        bail!(
            "--backup-every backs up a SQLite data directory; on PostgreSQL use pg_dump (see the \
             README) or warden export"
        );
    }
    let (key, _) = MasterKey::load(key_file)?;
    let dir = args
        .backup_dir
        .clone()
        .unwrap_or_else(|| data.join("backups"));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the backup directory {}", dir.display()))?;
    let keep = args.backup_keep as usize;
    let data = data.to_owned();
    tracing::info!(dir = %dir.display(), every = ?every, keep, "scheduled backups on");
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let now = crate::now_ms();
            let out = dir.join(backup::scheduled_file_name(now));
            match backup::backup_sqlite(&data, &out, &key, now).await {
                Ok(info) => {
                    tracing::info!(file = %out.display(), bytes = info.file_size, "backup written");
                    match backup::prune(&dir, keep) {
                        Ok(deleted) => {
                            for file in deleted {
                                tracing::info!(file = %file.display(), "old backup deleted");
                            }
                        }
                        Err(e) => tracing::warn!(dir = %dir.display(), error = %e,
                                                 "cannot delete old backups"),
                    }
                }
                Err(e) => tracing::error!(file = %out.display(), error = %e, "backup failed"),
            }
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Top,
    }

    #[derive(Debug, Subcommand)]
    enum Top {
        Backup(BackupArgs),
    }

    fn parse(args: &[&str]) -> Result<BackupArgs, clap::Error> {
        let mut argv = vec!["warden", "backup"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).map(|cli| match cli.command {
            Top::Backup(args) => args,
        })
    }

    #[test]
    fn backup_takes_options_or_a_verify_subcommand() {
        let take = parse(&["--data", "d", "--out", "f"]).expect("backup --data --out");
        assert!(take.action.is_none());
        assert_eq!(take.out, Some(PathBuf::from("f")));
        let verify = parse(&["verify", "f.wbk"]).expect("backup verify FILE");
        assert!(
            matches!(verify.action, Some(BackupAction::Verify(ref v)) if v.file == Path::new("f.wbk"))
        );
        parse(&["verify", "f.wbk", "--key-file", "k"]).expect("verify --key-file");
        assert!(parse(&["--data", "d"]).is_err(), "--out is required");
        assert!(
            parse(&["--out", "f", "verify", "x"]).is_err(),
            "options or verify, not both"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("6h"), Ok(Duration::from_secs(6 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("often").is_err());
    }
}
