//! The `warden` command: `demo` seeds and serves the demo organisation, `serve` serves an
//! existing database; `backup`, `restore` and `export` are in `backup_cmd`; `keys` rotates
//! and inspects the encryption keys; `audit` verifies and archives the access log
//! (`audit_cmd`); `policy` exports and applies the policy file (`policy_cmd`); `check` checks
//! the database's consistency (`check_cmd`). Only argument handling and wiring live here.

mod audit_cmd;
mod backup_cmd;
mod check_cmd;
mod policy_cmd;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use rand::distributions::Alphanumeric;
use rand::Rng;
use warden_service::{demo, Config, Warden};
use warden_store::keys::{KeyOrigin, MasterKey, KEY_FILE, MASTER_KEY_ENV};
use warden_store::{ReencryptCursor, Store};

/// Warden: customer data with permissions — who may see, change, export, share and approve
/// what, down to single records, every decision explainable.
#[derive(Debug, Parser)]
#[command(name = "warden", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Seed the demo organisation (if the data directory holds no database), print the logins
    /// and serve it.
    Demo(DemoArgs),
    /// Serve an existing database.
    Serve(ServeArgs),
    /// Back the SQLite database up while it serves (`backup --data DIR --out FILE`), or check
    /// a backup file (`backup verify FILE`).
    Backup(backup_cmd::BackupArgs),
    /// Restore a backup into a data directory; verifies it fully before touching anything.
    Restore(backup_cmd::RestoreArgs),
    /// Export a PostgreSQL database into an encrypted, verifiable backup file.
    Export(backup_cmd::ExportArgs),
    /// The encryption keys: rotate the master key (and re-encrypt), or show their state.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// The access log: verify its chain (`audit verify --data DIR`), archive old entries,
    /// write a signed checkpoint.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Policy as code: `policy export` prints the organisation's permissions as one TOML file;
    /// `policy apply FILE [--dry-run] [--as USER]` shows the what-if and applies it atomically.
    #[command(subcommand)]
    Policy(policy_cmd::PolicyCommand),
    /// Check the database's consistency: SQLite's integrity and foreign keys, no cycles in the
    /// unit tree or reporting line, no orphans, customer counts, the access log's chain. Lists
    /// every problem; exits non-zero if there is any.
    Check(audit_cmd::LogArgs),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Rotate the master key: re-wrap every data key under a new one (atomic). With
    /// --reencrypt, also make a new data key and re-encrypt every value under it, in small
    /// transactions (online; a killed run is resumed by running it again).
    Rotate(RotateArgs),
    /// Show the data keys, their state and how many values each encrypts.
    Status(KeyArgs),
}

/// Where the database and its master key are.
#[derive(Debug, Args)]
struct KeyArgs {
    /// Data directory (SQLite database).
    #[arg(long, default_value = "./warden-data", conflicts_with = "database_url")]
    data: PathBuf,
    /// Database URL instead of a data directory: postgres://… (or sqlite://…).
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    database_url: Option<String>,
    /// The master key file (default: <data>/master.key; required with --database-url unless
    /// WARDEN_MASTER_KEY is set). Created (mode 0600) when the database is new.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RotateArgs {
    #[command(flatten)]
    keys: KeyArgs,
    /// Also re-encrypt every value under a new data key.
    #[arg(long)]
    reencrypt: bool,
    /// Read the new master key from this file (created with a random key, mode 0600, when
    /// absent). Default: WARDEN_NEW_MASTER_KEY, else a random key.
    #[arg(long, value_name = "PATH")]
    new_key_file: Option<PathBuf>,
    /// Rows re-encrypted per transaction.
    #[arg(long, default_value_t = 500)]
    batch_size: u32,
}

#[derive(Debug, Args)]
struct DemoArgs {
    /// Data directory (SQLite database).
    #[arg(long, default_value = "./warden-data", conflicts_with = "database_url")]
    data: PathBuf,
    /// Database URL instead of a data directory: postgres://… (or sqlite://…).
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// How many customers to seed.
    #[arg(long, default_value_t = 2000)]
    customers: usize,
    /// A proxy whose X-Forwarded-For is believed (repeatable), e.g. 10.0.0.0/8.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<ipnet::IpNet>,
    /// Password of every demo user (default: a random one, printed).
    #[arg(long, env = "WARDEN_DEMO_PASSWORD")]
    password: Option<String>,
    #[command(flatten)]
    backup: backup_cmd::ScheduleArgs,
    #[command(flatten)]
    webhook: WebhookArgs,
    /// The master key file (default: <data>/master.key; required with --database-url unless
    /// WARDEN_MASTER_KEY is set). Created (mode 0600) when the database is new.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

/// Approval notifications.
#[derive(Debug, Args)]
struct WebhookArgs {
    /// POST every approval event (requested, approved, rejected, applied, conflict, expired,
    /// escalated, withdrawn) as JSON to this URL, retried with backoff.
    #[arg(long, env = "WARDEN_WEBHOOK_URL", value_name = "URL")]
    webhook_url: Option<String>,
    /// The secret of the `X-Warden-Signature` HMAC-SHA256 header (required with --webhook-url).
    #[arg(
        long,
        env = "WARDEN_WEBHOOK_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    webhook_secret: Option<String>,
    /// How often deadlines are swept and the webhook outbox is delivered, in milliseconds.
    #[arg(long, default_value_t = 1000, value_name = "MS")]
    background_every_ms: u64,
}

impl WebhookArgs {
    fn config(&self) -> anyhow::Result<Option<warden_server::background::WebhookConfig>> {
        match (&self.webhook_url, &self.webhook_secret) {
            (None, _) => Ok(None),
            (Some(_), None) => {
                bail!("--webhook-url needs --webhook-secret (or WARDEN_WEBHOOK_SECRET)")
            }
            (Some(url), Some(secret)) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    bail!("--webhook-url must be an http:// or https:// URL");
                }
                if secret.len() < 16 {
                    bail!("--webhook-secret must be at least 16 characters");
                }
                Ok(Some(warden_server::background::WebhookConfig {
                    url: url.clone(),
                    secret: secret.clone(),
                }))
            }
        }
    }

    fn spawn(&self, warden: &Warden) -> anyhow::Result<()> {
        let config = self.config()?;
        warden_server::background::spawn(
            warden.clone(),
            config,
            std::time::Duration::from_millis(self.background_every_ms.max(100)),
        );
        Ok(())
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    /// Data directory (SQLite database).
    #[arg(long, default_value = "./warden-data", conflicts_with = "database_url")]
    data: PathBuf,
    /// Database URL instead of a data directory: postgres://… (or sqlite://…).
    #[arg(long, env = "WARDEN_DATABASE_URL")]
    database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A proxy whose X-Forwarded-For is believed (repeatable), e.g. 10.0.0.0/8. Requests from
    /// any other address are judged by their socket's address, whatever their headers say.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    trusted_proxies: Vec<ipnet::IpNet>,
    #[command(flatten)]
    backup: backup_cmd::ScheduleArgs,
    #[command(flatten)]
    webhook: WebhookArgs,
    /// The master key file (default: <data>/master.key; required with --database-url unless
    /// WARDEN_MASTER_KEY is set). Created (mode 0600) when the database is new.
    #[arg(long, value_name = "PATH")]
    key_file: Option<PathBuf>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

async fn shutdown_signal() {
    // If the handler cannot be installed, serve until killed.
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

async fn serve(
    warden: Warden,
    listen: SocketAddr,
    trusted_proxies: Vec<ipnet::IpNet>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    println!("Warden listening on http://{address}");
    let config = warden_server::ServerConfig { trusted_proxies };
    warden_server::serve_with(warden, config, listener, shutdown_signal()).await?;
    Ok(())
}

fn master_key_from_env() -> bool {
    std::env::var(MASTER_KEY_ENV).is_ok_and(|v| !v.trim().is_empty())
}

/// Where the master key file is: `--key-file`, else `<data>/master.key`. With a database URL
/// there is no data directory to default to, and the key must not be guessed.
fn key_file_path(
    data: &Path,
    database_url: Option<&str>,
    key_file: Option<&Path>,
) -> anyhow::Result<PathBuf> {
    match (key_file, database_url) {
        (Some(path), _) => Ok(path.to_owned()),
        (None, None) => Ok(data.join(KEY_FILE)),
        (None, Some(_)) if master_key_from_env() => Ok(PathBuf::new()),
        (None, Some(_)) => bail!(
            "with --database-url, give the master key file with --key-file PATH (it is created \
             when the database is new; keep it apart from the database), or set {MASTER_KEY_ENV}"
        ),
    }
}

/// Opens the database with its master key, and says where the key came from (never the key).
async fn open_store(
    data: &Path,
    database_url: Option<&str>,
    key_file: Option<&Path>,
) -> anyhow::Result<(Store, KeyOrigin, PathBuf)> {
    let key_file = key_file_path(data, database_url, key_file)?;
    let url = match database_url {
        Some(url) => url.to_owned(),
        None => Store::dir_url(data)?,
    };
    let unlocked = Store::connect_with_key_file(&url, &key_file).await?;
    println!(
        "Using {} (fingerprint {}).",
        unlocked.origin,
        unlocked.store.master_fingerprint()
    );
    if unlocked.finished_rotation {
        println!(
            "Finished an interrupted master key rotation: {} now holds the new key.",
            key_file.display()
        );
    }
    Ok((unlocked.store, unlocked.origin, key_file))
}

/// What `demo` and `serve` do before serving: lock the data directory (a restore must not
/// replace it under a running server), then open the store with its master key.
async fn open_to_serve(
    data: &Path,
    database_url: Option<&str>,
    key_file: Option<&Path>,
) -> anyhow::Result<(Option<warden_store::DataDirLock>, Store, PathBuf)> {
    let lock = backup_cmd::lock_data_dir(data, database_url)?;
    let (store, _, key_file) = open_store(data, database_url, key_file).await?;
    Ok((lock, store, key_file))
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let (_lock, store, key_file) = open_to_serve(
        &args.data,
        args.database_url.as_deref(),
        args.key_file.as_deref(),
    )
    .await?;
    let place = match &args.database_url {
        Some(_) => "the database".to_owned(),
        None => args.data.display().to_string(),
    };
    let fresh = store.is_empty().await?;
    let password = if fresh {
        let password = args.password.clone().unwrap_or_else(|| {
            rand::thread_rng()
                .sample_iter(&Alphanumeric)
                .take(16)
                .map(char::from)
                .collect()
        });
        let started = std::time::Instant::now();
        demo::seed(&store, args.customers, &password, now_ms()).await?;
        println!(
            "Seeded the demo organisation with {} customers into {place} in {:.1} s.",
            args.customers,
            started.elapsed().as_secs_f64()
        );
        Some(password)
    } else {
        println!(
            "{} already holds a database: serving it as it is.",
            args.data.display()
        );
        args.password.clone()
    };
    println!();
    println!("Demo logins (every user has the same password):");
    for (username, display_name, unit, _, role) in demo::DEMO_USERS {
        println!("  {username:<12} {role:<18} {display_name} ({unit})");
    }
    match &password {
        Some(password) => println!("  password:    {password}"),
        None => println!("  password:    the one set when the demo was first seeded"),
    }
    println!();
    println!(
        "Open the console at http://{}/ and sign in as one of them.",
        args.listen
    );
    println!(
        "Or try: curl -s -X POST http://{}/api/v1/login -H 'content-type: application/json' \\",
        args.listen
    );
    println!("       -d '{{\"username\":\"rep1\",\"password\":\"…\"}}'");
    start_serving(
        store,
        &key_file,
        ServingArgs {
            data: &args.data,
            database_url: args.database_url.as_deref(),
            backup: &args.backup,
            webhook: &args.webhook,
        },
        args.listen,
        args.trusted_proxies,
    )
    .await
}

/// What `demo` and `serve` share once the store is open.
struct ServingArgs<'a> {
    data: &'a Path,
    database_url: Option<&'a str>,
    backup: &'a backup_cmd::ScheduleArgs,
    webhook: &'a WebhookArgs,
}

/// The service over `store`, its background work and scheduled backups, then the server.
async fn start_serving(
    store: Store,
    key_file: &Path,
    args: ServingArgs<'_>,
    listen: SocketAddr,
    trusted_proxies: Vec<ipnet::IpNet>,
) -> anyhow::Result<()> {
    let warden = Warden::new(store, Config::default()).await?;
    args.webhook.spawn(&warden)?;
    backup_cmd::schedule(args.backup, args.data, args.database_url, key_file)?;
    serve(warden, listen, trusted_proxies).await
}

async fn serve_command(args: ServeArgs) -> anyhow::Result<()> {
    let (_lock, store, key_file) = open_to_serve(
        &args.data,
        args.database_url.as_deref(),
        args.key_file.as_deref(),
    )
    .await?;
    start_serving(
        store,
        &key_file,
        ServingArgs {
            data: &args.data,
            database_url: args.database_url.as_deref(),
            backup: &args.backup,
            webhook: &args.webhook,
        },
        args.listen,
        args.trusted_proxies,
    )
    .await
}

/// The new master key asked for: from `--new-key-file`, else `WARDEN_NEW_MASTER_KEY`.
fn new_master_key(args: &RotateArgs) -> anyhow::Result<Option<MasterKey>> {
    if let Some(path) = &args.new_key_file {
        let (key, origin) = MasterKey::load_file(path)?;
        println!("New master key: {origin}.");
        return Ok(Some(key));
    }
    match std::env::var("WARDEN_NEW_MASTER_KEY") {
        Ok(text) if !text.trim().is_empty() => {
            Ok(Some(MasterKey::from_hex(&text, "WARDEN_NEW_MASTER_KEY")?))
        }
        _ => Ok(None),
    }
}

async fn rotate(args: RotateArgs) -> anyhow::Result<()> {
    let k = &args.keys;
    let (store, origin, key_file) =
        open_store(&k.data, k.database_url.as_deref(), k.key_file.as_deref()).await?;
    let new = new_master_key(&args)?;
    match origin {
        KeyOrigin::Environment => {
            let Some(new) = new else {
                bail!(
                    "the master key comes from {MASTER_KEY_ENV}: give the new one in \
                     WARDEN_NEW_MASTER_KEY or with --new-key-file PATH"
                );
            };
            let n = store.rewrap_data_keys(&new).await?;
            println!(
                "Re-wrapped {n} data keys under the new master key (fingerprint {}). Set \
                 {MASTER_KEY_ENV} to the new key before the next start.",
                new.fingerprint()
            );
        }
        KeyOrigin::File(_) | KeyOrigin::Created(_) => {
            let new = store.rotate_master_key_file(&key_file, new).await?;
            println!(
                "Re-wrapped every data key under a new master key (fingerprint {}), now in {}. \
                 Restart running servers with it.",
                new.fingerprint(),
                key_file.display()
            );
        }
    }
    if args.reencrypt {
        reencrypt(&store, args.batch_size.max(1)).await?;
    }
    Ok(())
}

/// Moves every value onto a new data key (or the one an interrupted run made), pass after
/// pass until none is left off it (a server may still write with the old key meanwhile).
async fn reencrypt(store: &Store, batch_size: u32) -> anyhow::Result<()> {
    let target = store.start_reencryption().await?;
    println!("Re-encrypting every value under data key {target}.");
    let mut pass = 0;
    loop {
        let left = store.rows_to_reencrypt().await?;
        if left == 0 {
            println!("Every value is under data key {target}.");
            return Ok(());
        }
        if pass == 10 {
            bail!("values keep being written under an old data key; run the command again");
        }
        pass += 1;
        let bar = indicatif::ProgressBar::new(left);
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "  re-encrypt [{bar:40}] {pos}/{len} rows ({per_sec}, {eta})",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        let mut cursor = ReencryptCursor::default();
        while let Some(n) = store.reencrypt_batch(&mut cursor, batch_size).await? {
            bar.inc(n);
        }
        bar.finish_and_clear();
    }
}

async fn status(args: KeyArgs) -> anyhow::Result<()> {
    let (store, _, _) = open_store(
        &args.data,
        args.database_url.as_deref(),
        args.key_file.as_deref(),
    )
    .await?;
    let status = store.key_status().await?;
    println!(
        "{:>6}  {:<8}  {:<16}  {:<24}  {:>10}",
        "key", "state", "wrapped by", "created", "values"
    );
    for key in &status.keys {
        let created = jiff::Timestamp::from_millisecond(key.created_at)
            .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|_| key.created_at.to_string());
        println!(
            "{:>6}  {:<8}  {:<16}  {:<24}  {:>10}",
            key.id, key.state, key.master_fingerprint, created, key.values
        );
    }
    if status.plain > 0 {
        println!(
            "{} values are stored unencrypted (written before encryption): run \
             `warden keys rotate --reencrypt`.",
            status.plain
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARDEN_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        match cli.command {
            Command::Demo(args) => demo(args).await,
            Command::Serve(args) => serve_command(args).await,
            Command::Backup(args) => backup_cmd::backup(args).await,
            Command::Restore(args) => backup_cmd::restore(args).await,
            Command::Export(args) => backup_cmd::export(args).await,
            Command::Keys(KeysCommand::Rotate(args)) => rotate(args).await,
            Command::Keys(KeysCommand::Status(args)) => status(args).await,
            Command::Audit(command) => audit_cmd::run(command).await,
            Command::Policy(command) => policy_cmd::run(command).await,
            Command::Check(args) => check_cmd::run(args).await,
        }
    })
}
