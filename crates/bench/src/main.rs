//! `warden-bench`: measures Warden against the brief's quality targets, honestly and
//! repeatably.
//!
//! ```text
//! cargo run --release -p warden-bench -- [--quick] [--json] [--users N] [--customers N]
//! ```
//!
//! Generates the standard world (or the quick one) from a seed, compiles Warden's snapshot,
//! builds the same rules in `cedar-policy` and `casbin`, decides the same requests with all
//! of them on this thread, compares every decision; then seeds the world into a fresh SQLite
//! database and measures list pages, moving a manager and HTTP reads (`store_bench`), and
//! reports the figures. With `--json`,
//! stdout holds exactly one JSON object; progress goes to stderr. Exits with status 1 when the
//! engines disagree on any request (after printing the figures), 2 on bad options or errors.

mod casbin_peer;
mod cedar_peer;
mod checks;
mod report;
mod store_bench;
mod whatif_bench;
mod world;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::report::{Machine, Report, StoreFigures};
use crate::world::WorldSpec;

/// The standard world of the brief.
const STANDARD: WorldSpec = WorldSpec {
    seed: 42,
    users: 10_000,
    units: 200,
    customers: 1_000_000,
    requests: 200_000,
};

/// The quick world: about a minute on 2 cores.
const QUICK: WorldSpec = WorldSpec {
    seed: 42,
    users: 1_000,
    units: 200,
    customers: 100_000,
    requests: 50_000,
};

/// Measures Warden's permission check against cedar-policy and casbin on a deterministic
/// world, then seeds it into SQLite and measures the store and the HTTP server.
#[derive(Debug, Parser)]
#[command(name = "warden-bench", version)]
struct Options {
    /// Use the quick world (1,000 users, 100,000 customers, 50,000 requests) instead of the
    /// standard one (10,000 users, 1,000,000 customers, 200,000 requests).
    #[arg(long)]
    quick: bool,
    /// Print exactly one JSON object on stdout instead of a table.
    #[arg(long)]
    json: bool,
    /// Number of users (overrides the world's).
    #[arg(long, value_name = "N")]
    users: Option<usize>,
    /// Number of customers (overrides the world's).
    #[arg(long, value_name = "N")]
    customers: Option<usize>,
    /// Number of organisational units (default 200, at most one per 5 users).
    #[arg(long, value_name = "N")]
    units: Option<usize>,
    /// Number of requests each engine decides (overrides the world's).
    #[arg(long, value_name = "N")]
    requests: Option<usize>,
    /// Seed of the world and of the requests.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Checks timed together in one batch.
    #[arg(long, default_value_t = 1_000, value_name = "N")]
    batch: usize,
    /// Print the peers' encodings of the world's rules (Cedar schema and policies, casbin
    /// model and policy rows) and exit.
    #[arg(long)]
    show_encodings: bool,
    /// Timed repetitions of each first list page (at least 30).
    #[arg(long, default_value_t = 50, value_name = "N")]
    list_repetitions: usize,
    /// Timed moves of the manager (half there, half back).
    #[arg(long, default_value_t = 10, value_name = "N")]
    moves: usize,
    /// Concurrent keep-alive HTTP connections.
    #[arg(long, default_value_t = 32, value_name = "N")]
    http_connections: usize,
    /// Seconds of timed HTTP load (default: 5 for the standard world, 2 for --quick, 0.5 for
    /// worlds under 20,000 customers).
    #[arg(long, value_name = "S")]
    http_seconds: Option<f64>,
    /// Skip the store and HTTP half (seeding SQLite, list pages, the move, HTTP).
    #[arg(long)]
    no_store: bool,
    /// Keep the seeded SQLite database (its directory is printed on stderr).
    #[arg(long)]
    keep_db: bool,
    /// Manual shares and team places seeded on customers (default: one per ten customers,
    /// the standard world's 100,000).
    #[arg(long, value_name = "N")]
    shares: Option<usize>,
    /// Timed runs of each kind of what-if.
    #[arg(long, default_value_t = 3, value_name = "N")]
    whatif_runs: usize,
}

impl Options {
    fn spec(&self) -> Result<WorldSpec> {
        let base = if self.quick { QUICK } else { STANDARD };
        let users = self.users.unwrap_or(base.users);
        let spec = WorldSpec {
            seed: self.seed,
            users,
            units: self
                .units
                .unwrap_or_else(|| base.units.min((users / 5).max(1))),
            customers: self.customers.unwrap_or(base.customers),
            requests: self.requests.unwrap_or(base.requests),
        };
        for (name, value) in [
            ("--users", spec.users),
            ("--units", spec.units),
            ("--customers", spec.customers),
            ("--requests", spec.requests),
        ] {
            if value == 0 {
                bail!("{name} must be at least 1");
            }
        }
        if spec.users > u32::MAX as usize / 2 || spec.customers > u32::MAX as usize / 2 {
            bail!("--users and --customers must be below {}", u32::MAX / 2);
        }
        if self.batch == 0 {
            bail!("--batch must be at least 1");
        }
        if self.list_repetitions < 30 {
            bail!("--list-repetitions must be at least 30");
        }
        if self.http_connections == 0 || self.http_connections > 1_000 {
            bail!("--http-connections must be between 1 and 1000");
        }
        if self.http_seconds.is_some_and(|s| !(s > 0.0 && s <= 600.0)) {
            bail!("--http-seconds must be above 0 and at most 600");
        }
        Ok(spec)
    }

    /// The store half's options for a world of `spec`: the HTTP phase is scaled to the world
    /// so that the tiny CI world finishes in about a second.
    fn store_options(&self, spec: &WorldSpec) -> store_bench::StoreOptions {
        let (warmup, seconds) = if spec.customers < 20_000 {
            (0.2, 0.5)
        } else if self.quick {
            (0.5, 2.0)
        } else {
            (1.0, 5.0)
        };
        store_bench::StoreOptions {
            list_repetitions: self.list_repetitions,
            moves: self.moves,
            http_connections: self.http_connections,
            http_warmup: Duration::from_secs_f64(warmup),
            http_duration: Duration::from_secs_f64(self.http_seconds.unwrap_or(seconds)),
            http_max_requests: 5_000_000,
            http_ids_per_user: 1_000,
            keep_db: self.keep_db,
            shares: self.shares.unwrap_or(spec.customers / 10),
            whatif_runs: self.whatif_runs,
        }
    }
}

/// The peers' encodings of `model`, for reading (the `g` rows of casbin are only counted).
fn encodings(model: &warden_policy::Model) -> Result<String> {
    use cedar_peer::RecordIn;
    let (rows, p_rows, g_rows) = casbin_peer::policy_text(model)?;
    let p_only: String = rows
        .lines()
        .filter(|l| l.starts_with("p,"))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(format!(
        "== Cedar schema (record in the context)\n{}\n\
         == Cedar policies (record in the context)\n{}\n\
         == Cedar schema (record as a resource entity, per-request slices)\n{}\n\
         == Cedar policies (record as a resource entity, per-request slices)\n{}\n\
         == casbin model\n{}\n\
         == casbin policy rows ({p_rows} p rows; {g_rows} g rows not shown)\n{p_only}",
        cedar_peer::schema_text(model, RecordIn::Context),
        cedar_peer::policy_text(model, RecordIn::Context),
        cedar_peer::schema_text(model, RecordIn::Resource),
        cedar_peer::policy_text(model, RecordIn::Resource),
        casbin_peer::MODEL.trim(),
    ))
}

fn main() -> ExitCode {
    let options = Options::parse();
    // Warnings only (sqlx names statements slower than a second); `RUST_LOG=sqlx::query=debug`
    // prints every statement with its time.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(&options) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark; exit status 1 when the engines disagree.
fn run(options: &Options) -> Result<ExitCode> {
    let spec = options.spec()?;
    let mode = if options.quick { "quick" } else { "standard" };

    eprintln!(
        "generating the {mode} world: {} users, {} units, {} customers, {} requests (seed {})…",
        spec.users, spec.units, spec.customers, spec.requests, spec.seed
    );
    let bar = ProgressBar::new((spec.customers + spec.requests) as u64);
    if let Ok(style) = ProgressStyle::with_template("   world [{bar:40}] {pos}/{len} ({eta})") {
        bar.set_style(style.progress_chars("=> "));
    }
    let started = Instant::now();
    let world = world::generate(spec, |n| bar.inc(n));
    let world_ms = started.elapsed().as_secs_f64() * 1_000.0;
    bar.finish_and_clear();

    if options.show_encodings {
        print!("{}", encodings(&world.model)?);
        return Ok(ExitCode::SUCCESS);
    }

    let engines = checks::Engines::build(&world)?;
    eprintln!("deciding {} requests with each engine…", spec.requests);
    let checks = checks::run(&world, &engines, options.batch)?;

    // The store half: seed `world` into SQLite, then list pages, the manager move and HTTP.
    let store = if options.no_store {
        StoreFigures::pending()
    } else {
        store_bench::run(&world, &options.store_options(&spec))?
    };

    let report = Report {
        mode,
        world: &world,
        world_ms,
        engines: &engines,
        checks: &checks,
        store,
        machine: Machine::detect(),
        peak_rss_mb: checks::proc_status_mb("VmHWM:"),
    };
    let mut stdout = std::io::stdout().lock();
    if options.json {
        writeln!(stdout, "{}", report.to_json())?;
    } else {
        write!(stdout, "{}", report.to_table())?;
    }
    stdout.flush()?;
    if let Some(d) = &checks.first_disagreement {
        eprintln!(
            "error: the engines disagree on {} of {} requests; first: {}",
            checks.decisions_disagree, checks.decisions_compared, d.description
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
