//! `warden-bench`: measures Warden against the brief's quality targets, honestly and
//! repeatably.
//!
//! ```text
//! cargo run --release -p warden-bench -- [--quick] [--json] [--users N] [--customers N]
//! ```
//!
//! Generates the standard world (or the quick one) from a seed, compiles Warden's snapshot,
//! builds the same rules in `cedar-policy` and `casbin`, decides the same requests with all
//! of them on this thread, compares every decision and reports the figures. With `--json`,
//! stdout holds exactly one JSON object; progress goes to stderr. Exits with status 1 when the
//! engines disagree on any request (after printing the figures), 2 on bad options or errors.

mod casbin_peer;
mod cedar_peer;
mod checks;
mod report;
mod world;

use std::io::Write as _;
use std::process::ExitCode;
use std::time::Instant;

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
/// world (and, later, the store and the HTTP server).
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
        Ok(spec)
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

    // Issue 3: the store, service and server crates are still being written. A `store_bench`
    // module will seed `world` into SQLite and measure the list pages, the manager move and
    // HTTP here, returning `StoreFigures`; until then every store figure is pending (null).
    let store = StoreFigures::pending();

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
