//! The figures of one run: as one JSON object (`--json`) or as a readable table.
//!
//! JSON keys are a stable surface (CI and the docs read them): add keys, never rename one.

use serde_json::{json, Value};

use crate::checks::{CheckFigures, Engines, Timing};
use crate::world::World;

/// The brief's target for the in-process check, p50.
pub const CHECK_TARGET_NS: f64 = 1_000.0;
/// How many times faster than each peer the check must be.
pub const PEER_FACTOR_TARGET: f64 = 10.0;

/// Said wherever a store or HTTP figure is not measured yet.
pub const STORE_PENDING: &str = "pending (store not yet measured)";

/// Said with every HTTP figure.
pub const HTTP_NOTE: &str = "client and server run in one process on the same CPUs (loopback, keep-alive, one connection per client task); the client's work is included";

/// Said about manual shares: how they are generated.
pub const SHARES_NOTE: &str = "manual shares and team places on random customers (one per ten customers unless --shares): 85% with one user, 14% with a unit and the units below it, 1% with a role; 80% read, 20% edit; every list page, count and what-if below runs with them";

/// List-page medians for the four demo-like callers, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ListPageFigures {
    pub rep: Option<f64>,
    pub supervisor: Option<f64>,
    pub manager: Option<f64>,
    pub admin: Option<f64>,
}

/// One list persona's details (added JSON keys `list_users`, `list_visible`, `list_plan`,
/// `list_query_plan`, `list_page_ms_p99`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersonaFigures {
    pub username: String,
    /// How many customers the persona may read.
    pub visible: i64,
    /// People in the persona's reporting subtree, themselves excluded.
    pub people_below: usize,
    /// The plan the store chose (`walk ids`, `enumerate via index`, `empty`).
    pub plan: String,
    /// SQLite's `EXPLAIN QUERY PLAN` of that plan's query (ids only), rows joined by ` / `.
    pub query_plan: String,
    pub p99_ms: f64,
    /// How many of `visible` only a share or team place opens to the persona.
    pub through_shares: i64,
    /// The same first page from the store alone (`Store::list_records` with the persona's
    /// filter: no service, no access-log commit), p50 in ms — what the permission filter
    /// itself costs, next to [`StoreFigures::list_page_unfiltered_ms_p50`].
    pub store_ms_p50: f64,
}

/// One kind of what-if, timed on the seeded world (`Warden::what_if`, as the API calls it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WhatIfFigures {
    /// The change's name in the API (`move_user`, `update_role`, …).
    pub kind: &'static str,
    /// What was proposed, in words.
    pub proposal: String,
    /// Median and slowest of the timed runs, milliseconds.
    pub ms_p50: f64,
    pub ms_max: f64,
    pub runs: usize,
    pub users_examined: usize,
    /// Users whose access changes for at least one action.
    pub users_changed: usize,
    /// Sums over users and actions.
    pub gained: u64,
    pub lost: u64,
    /// (user, action) differences counted in SQL rather than over (owner, unit) cells.
    pub counted_in_sql: usize,
}

/// The store and HTTP figures, measured by `store_bench` (every figure `None`, `null` in
/// JSON, when not measured).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StoreFigures {
    pub seed_s: Option<f64>,
    pub list_page_ms_p50: ListPageFigures,
    pub list_page_unfiltered_ms_p50: Option<f64>,
    pub move_manager_ms: Option<f64>,
    pub http_get_rps: Option<f64>,
    pub http_get_p99_ms: Option<f64>,
    /// Seeding: the organisation alone (units, roles, users with their roles), seconds.
    pub seed_org_s: Option<f64>,
    /// Seeding: customers inserted per second.
    pub seed_customers_per_s: Option<f64>,
    /// Size of the SQLite file (with its WAL) after seeding, MB.
    pub db_size_mb: Option<f64>,
    /// The list personas, in the order rep, supervisor, manager, admin (`None`: the world
    /// has no such user).
    pub personas: [Option<PersonaFigures>; 4],
    pub list_repetitions: usize,
    pub list_page_unfiltered_ms_p99: Option<f64>,
    /// The slowest of the timed moves, and how many there were (half there, half back).
    pub move_manager_ms_max: Option<f64>,
    pub move_manager_moves: usize,
    pub move_manager_user: Option<String>,
    pub move_manager_new_boss: Option<String>,
    pub move_manager_people: Option<usize>,
    pub move_manager_records: Option<i64>,
    pub http_get_p50_ms: Option<f64>,
    pub http_get_max_ms: Option<f64>,
    pub http_connections: usize,
    pub http_seconds: Option<f64>,
    pub http_requests: Option<u64>,
    pub http_errors: Option<u64>,
    pub http_users: usize,
    /// Shares and team places in the database (duplicates of the generated ones dropped).
    pub shares: Option<i64>,
    pub seed_shares_s: Option<f64>,
    pub whatif: Vec<WhatIfFigures>,
}

/// The personas' names, in the order of [`StoreFigures::personas`] (JSON keys).
pub const PERSONAS: [&str; 4] = ["rep", "supervisor", "manager", "admin"];

/// The brief's store targets.
pub const LIST_TARGET_MS: f64 = 5.0;
pub const LIST_FACTOR_TARGET: f64 = 3.0;
pub const MOVE_TARGET_MS: f64 = 50.0;
pub const HTTP_RPS_TARGET: f64 = 10_000.0;
pub const HTTP_P99_TARGET_MS: f64 = 5.0;
pub const SEED_TARGET_S: f64 = 60.0;

impl StoreFigures {
    /// Nothing measured yet.
    pub fn pending() -> StoreFigures {
        StoreFigures::default()
    }

    fn is_pending(&self) -> bool {
        *self == StoreFigures::default()
    }

    /// Whether every persona's p50 is under 5 ms (`None` when none was measured).
    pub fn lists_under_target(&self) -> Option<bool> {
        let pages = self.list_page_ms_p50.all();
        (!pages.is_empty()).then(|| pages.iter().all(|p| *p < LIST_TARGET_MS))
    }

    /// Whether every persona's filtered page is at most 3× the unfiltered page, both read
    /// from the store alone: the service's page adds the same access-log commit to both, which
    /// is not the filter's cost (and is under the 5 ms target with it).
    pub fn lists_within_factor(&self) -> Option<bool> {
        let base = self.list_page_unfiltered_ms_p50?;
        let pages: Vec<f64> = self
            .personas
            .iter()
            .flatten()
            .map(|p| p.store_ms_p50)
            .collect();
        (!pages.is_empty()).then(|| pages.iter().all(|p| *p <= LIST_FACTOR_TARGET * base))
    }
}

impl ListPageFigures {
    fn all(&self) -> Vec<f64> {
        [self.rep, self.supervisor, self.manager, self.admin]
            .into_iter()
            .flatten()
            .collect()
    }

    fn get(&self, index: usize) -> Option<f64> {
        [self.rep, self.supervisor, self.manager, self.admin]
            .get(index)
            .copied()
            .flatten()
    }
}

/// The machine the figures were taken on.
#[derive(Debug, Clone)]
pub struct Machine {
    pub cpus: usize,
    pub cpu_model: String,
    pub memory_gb: Option<f64>,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "unknown".to_owned());
        let memory_gb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
            let line = m.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kb / 1024.0 / 1024.0)
        });
        Machine {
            cpus: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu_model,
            memory_gb,
        }
    }
}

/// Everything one run measured.
pub struct Report<'a> {
    pub mode: &'static str,
    pub world: &'a World,
    pub world_ms: f64,
    pub engines: &'a Engines,
    pub checks: &'a CheckFigures,
    pub store: StoreFigures,
    pub machine: Machine,
    pub peak_rss_mb: Option<f64>,
}

fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

fn ms(d: std::time::Duration) -> f64 {
    round(d.as_secs_f64() * 1_000.0, 1)
}

fn ns(t: f64) -> f64 {
    round(t, 1)
}

impl Report<'_> {
    fn speedup(&self, peer: &Timing) -> f64 {
        if self.checks.warden.p50_ns > 0.0 {
            round(peer.p50_ns / self.checks.warden.p50_ns, 1)
        } else {
            0.0
        }
    }

    /// The run as one JSON object.
    pub fn to_json(&self) -> Value {
        let spec = &self.world.spec;
        let c = self.checks;
        let e = self.engines;
        let s = &self.store;
        let mut object = json!({
            "mode": self.mode,
            "seed": spec.seed,
            "users": spec.users,
            "units": spec.units,
            "customers": spec.customers,
            "requests": spec.requests,
            "reporting_levels": self.world.depth(),
            "shares": s.shares,
            "shares_note": SHARES_NOTE,
            "world_ms": round(self.world_ms, 1),
            "seed_s": s.seed_s,
            "snapshot_build_ms": ms(e.snapshot_build),
            "cedar_build_ms": ms(e.cedar_build),
            "casbin_build_ms": ms(e.casbin_build),
            "batch": c.batch,
            "batches": c.batches,
            "check_ns_p50": ns(c.warden.p50_ns),
            "check_ns_p99": ns(c.warden.p99_ns),
            "check_ns_mean": ns(c.warden.mean_ns),
            "floor_check_ns_p50": ns(c.floor.p50_ns),
            "floor_check_ns_p99": ns(c.floor.p99_ns),
            "cedar_check_ns_p50": ns(c.cedar.p50_ns),
            "cedar_check_ns_p99": ns(c.cedar.p99_ns),
            "cedar_request_build_ns_p50": ns(c.cedar_request_build.p50_ns),
            "cedar_slice_check_ns_p50": ns(c.cedar_slice.p50_ns),
            "cedar_slice_check_ns_p99": ns(c.cedar_slice.p99_ns),
            "cedar_slice_build_ns_p50": ns(c.cedar_slice_build.p50_ns),
            "casbin_check_ns_p50": ns(c.casbin.p50_ns),
            "casbin_check_ns_p99": ns(c.casbin.p99_ns),
            "speedup_vs_cedar": self.speedup(&c.cedar),
            "speedup_vs_casbin": self.speedup(&c.casbin),
            "decisions_compared": c.decisions_compared,
            "decisions_disagree": c.decisions_disagree,
            "decisions_allowed": c.decisions_allowed,
            "floor_allowed": c.floor_allowed,
            "first_disagreement": c.first_disagreement.as_ref().map(|d| d.description.clone()),
            "cedar_policies": e.cedar.policy_count,
            "casbin_policy_rows": e.casbin.policy_rows,
            "casbin_grouping_rows": e.casbin.grouping_rows,
        });
        let more = json!({
            "snapshot_rss_mb": e.snapshot_rss_mb.map(|v| round(v, 1)),
            "cedar_rss_mb": e.cedar_rss_mb.map(|v| round(v, 1)),
            "casbin_rss_mb": e.casbin_rss_mb.map(|v| round(v, 1)),
            "peak_rss_mb": self.peak_rss_mb.map(|v| round(v, 1)),
            "list_page_ms_p50": {
                "rep": s.list_page_ms_p50.rep,
                "supervisor": s.list_page_ms_p50.supervisor,
                "manager": s.list_page_ms_p50.manager,
                "admin": s.list_page_ms_p50.admin,
            },
            "list_page_unfiltered_ms_p50": s.list_page_unfiltered_ms_p50,
            "move_manager_ms": s.move_manager_ms,
            "http_get_rps": s.http_get_rps,
            "http_get_p99_ms": s.http_get_p99_ms,
            "store_status": if s.is_pending() { STORE_PENDING } else { "measured" },
            "targets": {
                "check_p50_under_1us": c.warden.p50_ns < CHECK_TARGET_NS,
                "ten_x_faster_than_cedar": c.cedar.p50_ns >= PEER_FACTOR_TARGET * c.warden.p50_ns,
                "ten_x_faster_than_casbin": c.casbin.p50_ns >= PEER_FACTOR_TARGET * c.warden.p50_ns,
                "decisions_agree": c.decisions_disagree == 0,
                "seed_under_60s": s.seed_s.map(|v| v < SEED_TARGET_S),
                "list_pages_under_5ms": s.lists_under_target(),
                "list_pages_within_3x_unfiltered": s.lists_within_factor(),
                "move_manager_under_50ms": s.move_manager_ms.map(|v| v < MOVE_TARGET_MS),
                "http_over_10000_rps": s.http_get_rps.map(|v| v > HTTP_RPS_TARGET),
                "http_p99_under_5ms": s.http_get_p99_ms.map(|v| v < HTTP_P99_TARGET_MS),
            },
            "machine": {
                "cpus": self.machine.cpus,
                "cpu_model": self.machine.cpu_model,
                "memory_gb": self.machine.memory_gb.map(|v| round(v, 1)),
            },
        });
        if let (Value::Object(object), Value::Object(more)) = (&mut object, more) {
            object.extend(more);
        }
        if let (Value::Object(object), Value::Object(store)) = (&mut object, self.store_json()) {
            object.extend(store);
        }
        object
    }

    /// The keys added by the store bench (beyond the original store keys).
    fn store_json(&self) -> Value {
        let s = &self.store;
        let persona = |f: &dyn Fn(&PersonaFigures) -> Value| -> Value {
            let mut map = serde_json::Map::new();
            for (name, p) in PERSONAS.iter().zip(&s.personas) {
                map.insert((*name).to_owned(), p.as_ref().map_or(Value::Null, f));
            }
            Value::Object(map)
        };
        json!({
            "seed_org_s": s.seed_org_s,
            "seed_customers_per_s": s.seed_customers_per_s.map(|v| v.round()),
            "db_size_mb": s.db_size_mb.map(|v| round(v, 1)),
            "list_users": persona(&|p| json!(p.username)),
            "list_visible": persona(&|p| json!(p.visible)),
            "list_people_below": persona(&|p| json!(p.people_below)),
            "list_plan": persona(&|p| json!(p.plan)),
            "list_query_plan": persona(&|p| json!(p.query_plan)),
            "list_page_ms_p99": persona(&|p| json!(p.p99_ms)),
            "list_through_shares": persona(&|p| json!(p.through_shares)),
            "list_page_store_ms_p50": persona(&|p| json!(p.store_ms_p50)),
            "seed_shares_s": s.seed_shares_s,
            "whatif_ms": s
                .whatif
                .iter()
                .map(|w| (w.kind.to_owned(), json!(w.ms_p50)))
                .collect::<serde_json::Map<_, _>>(),
            "whatif": s
                .whatif
                .iter()
                .map(|w| {
                    (
                        w.kind.to_owned(),
                        json!({
                            "proposal": w.proposal,
                            "ms_p50": w.ms_p50,
                            "ms_max": w.ms_max,
                            "runs": w.runs,
                            "users_examined": w.users_examined,
                            "users_changed": w.users_changed,
                            "gained": w.gained,
                            "lost": w.lost,
                            "counted_in_sql": w.counted_in_sql,
                        }),
                    )
                })
                .collect::<serde_json::Map<_, _>>(),
            "list_repetitions": s.list_repetitions,
            "list_page_unfiltered_ms_p99": s.list_page_unfiltered_ms_p99,
            "move_manager_ms_max": s.move_manager_ms_max,
            "move_manager_moves": s.move_manager_moves,
            "move_manager_user": s.move_manager_user,
            "move_manager_new_boss": s.move_manager_new_boss,
            "move_manager_people": s.move_manager_people,
            "move_manager_records": s.move_manager_records,
            "http_get_p50_ms": s.http_get_p50_ms,
            "http_get_max_ms": s.http_get_max_ms,
            "http_connections": s.http_connections,
            "http_seconds": s.http_seconds,
            "http_requests": s.http_requests,
            "http_errors": s.http_errors,
            "http_users": s.http_users,
            "http_note": HTTP_NOTE,
        })
    }

    /// The run as a readable table.
    pub fn to_table(&self) -> String {
        let spec = &self.world.spec;
        let c = self.checks;
        let e = self.engines;
        let s = &self.store;
        let mut out = String::new();
        let mut line = |text: String| {
            out.push_str(&text);
            out.push('\n');
        };
        let yes = |ok: bool| if ok { "met" } else { "NOT MET" };
        let opt = |v: Option<f64>, unit: &str| match v {
            Some(v) => format!("{v:.1} {unit}"),
            None => STORE_PENDING.to_owned(),
        };
        let opt2 = |v: Option<f64>, unit: &str| match v {
            Some(v) => format!("{v:.2} {unit}"),
            None => STORE_PENDING.to_owned(),
        };
        line(format!(
            "Warden benchmark ({} world, seed {})",
            self.mode, spec.seed
        ));
        line(format!(
            "world: {} users in {} reporting levels, {} units, {} customers, {} requests ({:.0} ms to generate)",
            spec.users,
            self.world.depth(),
            spec.units,
            spec.customers,
            spec.requests,
            self.world_ms
        ));
        line(format!("note: {SHARES_NOTE}"));
        line(format!(
            "machine: {} CPUs, {}, {}",
            self.machine.cpus,
            self.machine.cpu_model,
            self.machine
                .memory_gb
                .map_or_else(|| "memory unknown".to_owned(), |g| format!("{g:.1} GB"))
        ));
        line(String::new());
        line(format!(
            "{:<28} {:>12} {:>12} {:>12} {:>10}",
            "in-process check", "p50 ns", "p99 ns", "build ms", "vs Warden"
        ));
        let row = |name: &str, t: &Timing, build: Option<f64>, factor: Option<f64>| {
            format!(
                "{:<28} {:>12.1} {:>12.1} {:>12} {:>10}",
                name,
                t.p50_ns,
                t.p99_ns,
                build.map_or_else(|| "-".to_owned(), |b| format!("{b:.1}")),
                factor.map_or_else(|| "-".to_owned(), |f| format!("{f:.1}x")),
            )
        };
        line(row(
            "warden Snapshot::check",
            &c.warden,
            Some(ms(e.snapshot_build)),
            None,
        ));
        line(row("floor (pre-order interval)", &c.floor, None, None));
        line(row(
            "cedar-policy is_authorized",
            &c.cedar,
            Some(ms(e.cedar_build)),
            Some(self.speedup(&c.cedar)),
        ));
        line(row(
            "  + building the Request",
            &c.cedar_request_build,
            None,
            None,
        ));
        line(row(
            "cedar-policy, entity slice",
            &c.cedar_slice,
            None,
            Some(self.speedup(&c.cedar_slice)),
        ));
        line(row(
            "  + building the slice",
            &c.cedar_slice_build,
            None,
            None,
        ));
        line(row(
            "casbin Enforcer::enforce",
            &c.casbin,
            Some(ms(e.casbin_build)),
            Some(self.speedup(&c.casbin)),
        ));
        line(format!(
            "(batches of {} checks timed together, {} batches; Cedar {} policies; casbin {} p rows, {} g rows)",
            c.batch, c.batches, e.cedar.policy_count, e.casbin.policy_rows, e.casbin.grouping_rows
        ));
        line(String::new());
        line(format!(
            "decisions: {} compared, {} disagree, {} allowed",
            c.decisions_compared, c.decisions_disagree, c.decisions_allowed
        ));
        if let Some(d) = &c.first_disagreement {
            line(format!("first disagreement: {}", d.description));
        }
        let mb = |v: Option<f64>| v.map_or_else(|| "?".to_owned(), |v| format!("{v:.0} MB"));
        line(format!(
            "memory: snapshot +{}, cedar +{}, casbin +{}, peak RSS {}",
            mb(e.snapshot_rss_mb),
            mb(e.cedar_rss_mb),
            mb(e.casbin_rss_mb),
            mb(self.peak_rss_mb)
        ));
        line(String::new());
        line("store and HTTP (SQLite)".to_owned());
        line(format!(
            "  seed the world:            {}{}",
            opt(s.seed_s, "s"),
            match (s.seed_org_s, s.seed_customers_per_s, s.db_size_mb) {
                (Some(org), Some(rate), Some(size)) =>
                    format!(" (organisation {org:.1} s, {rate:.0} customers/s, {size:.0} MB)"),
                _ => String::new(),
            }
        ));
        for (i, name) in PERSONAS.iter().enumerate() {
            let detail = s.personas[i].as_ref().map_or_else(String::new, |p| {
                format!(
                    " p99 {:.2} ms, store alone {:.2} ms; {} sees {} ({} through shares; {} below), {}",
                    p.p99_ms,
                    p.store_ms_p50,
                    p.username,
                    p.visible,
                    p.through_shares,
                    p.people_below,
                    p.plan
                )
            });
            line(format!(
                "  first page, {:<14} {}{}",
                format!("{name}:"),
                opt2(s.list_page_ms_p50.get(i), "ms"),
                detail
            ));
        }
        line(format!(
            "  first page, no filter:     {}",
            opt2(s.list_page_unfiltered_ms_p50, "ms")
        ));
        line(format!(
            "  move a manager:            {}{}",
            opt(s.move_manager_ms, "ms"),
            match (&s.move_manager_user, s.move_manager_people, s.move_manager_ms_max) {
                (Some(user), Some(people), Some(max)) => format!(
                    " (median of {} moves, max {max:.1} ms; {user} with {people} below, {} records)",
                    s.move_manager_moves,
                    s.move_manager_records.unwrap_or_default()
                ),
                _ => String::new(),
            }
        ));
        line(format!(
            "  HTTP GET:                  {}{}",
            opt(s.http_get_rps, "req/s"),
            match (s.http_requests, s.http_seconds) {
                (Some(n), Some(secs)) => format!(
                    " ({n} requests in {secs:.1} s, {} connections, {} users, {} errors)",
                    s.http_connections,
                    s.http_users,
                    s.http_errors.unwrap_or_default()
                ),
                _ => String::new(),
            }
        ));
        line(format!(
            "  HTTP GET p50 / p99 / max:  {} / {} / {}",
            opt2(s.http_get_p50_ms, "ms"),
            opt2(s.http_get_p99_ms, "ms"),
            opt2(s.http_get_max_ms, "ms")
        ));
        if s.http_get_rps.is_some() {
            line(format!("  note: {HTTP_NOTE}"));
        }
        if let Some(shares) = s.shares {
            line(format!(
                "  shares in the database:    {shares} (seeded in {})",
                opt2(s.seed_shares_s, "s")
            ));
        }
        for w in &s.whatif {
            line(format!(
                "  what-if {:<18} {:.1} ms (max {:.1}, {} runs): {}; {} examined, {} changed, +{} / -{}, {} counted in SQL",
                format!("{}:", w.kind),
                w.ms_p50,
                w.ms_max,
                w.runs,
                w.proposal,
                w.users_examined,
                w.users_changed,
                w.gained,
                w.lost,
                w.counted_in_sql
            ));
        }
        line(String::new());
        line("targets".to_owned());
        line(format!(
            "  check p50 under 1 µs:                {}",
            yes(c.warden.p50_ns < CHECK_TARGET_NS)
        ));
        line(format!(
            "  at least 10x faster than Cedar:      {}",
            yes(c.cedar.p50_ns >= PEER_FACTOR_TARGET * c.warden.p50_ns)
        ));
        line(format!(
            "  at least 10x faster than casbin:     {}",
            yes(c.casbin.p50_ns >= PEER_FACTOR_TARGET * c.warden.p50_ns)
        ));
        line(format!(
            "  identical decisions:                 {}",
            yes(c.decisions_disagree == 0)
        ));
        let maybe = |v: Option<bool>| v.map_or("not measured", yes);
        line(format!(
            "  seed under 60 s:                     {}",
            maybe(s.seed_s.map(|v| v < SEED_TARGET_S))
        ));
        line(format!(
            "  first pages p50 under 5 ms:          {}",
            maybe(s.lists_under_target())
        ));
        line(format!(
            "  first pages at most 3x unfiltered:   {}",
            maybe(s.lists_within_factor())
        ));
        line(format!(
            "  move a manager under 50 ms:          {}",
            maybe(s.move_manager_ms.map(|v| v < MOVE_TARGET_MS))
        ));
        line(format!(
            "  HTTP over 10,000 req/s:              {}",
            maybe(s.http_get_rps.map(|v| v > HTTP_RPS_TARGET))
        ));
        line(format!(
            "  HTTP p99 under 5 ms:                 {}",
            maybe(s.http_get_p99_ms.map(|v| v < HTTP_P99_TARGET_MS))
        ));
        out
    }
}
