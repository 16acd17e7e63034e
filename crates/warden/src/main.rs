//! The `warden` command: `demo` seeds and serves the demo organisation, `serve` serves an
//! existing database; `backup`, `restore` and `export` are in `backup_cmd`. Only argument
//! handling and wiring live here.

mod backup_cmd;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use rand::distributions::Alphanumeric;
use rand::Rng;
use warden_service::{demo, Config, Warden};
use warden_store::Store;

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

async fn open_store(data: &std::path::Path, database_url: Option<&str>) -> anyhow::Result<Store> {
    Ok(match database_url {
        Some(url) => Store::connect(url).await?,
        None => Store::open_dir(data).await?,
    })
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let _lock = backup_cmd::lock_data_dir(&args.data, args.database_url.as_deref())?;
    let store = open_store(&args.data, args.database_url.as_deref()).await?;
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
        "Try: curl -s -X POST http://{}/api/v1/login -H 'content-type: application/json' \\",
        args.listen
    );
    println!("       -d '{{\"username\":\"rep1\",\"password\":\"…\"}}'");
    let warden = Warden::new(store, Config::default()).await?;
    backup_cmd::schedule(&args.backup, &args.data, args.database_url.as_deref())?;
    serve(warden, args.listen, args.trusted_proxies).await
}

async fn serve_command(args: ServeArgs) -> anyhow::Result<()> {
    let _lock = backup_cmd::lock_data_dir(&args.data, args.database_url.as_deref())?;
    let store = open_store(&args.data, args.database_url.as_deref()).await?;
    let warden = Warden::new(store, Config::default()).await?;
    backup_cmd::schedule(&args.backup, &args.data, args.database_url.as_deref())?;
    serve(warden, args.listen, args.trusted_proxies).await
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
        }
    })
}
