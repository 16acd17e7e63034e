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

/// Said about manual shares, which the standard world has and this program does not generate.
pub const SHARES_NOTE: &str =
    "the standard world's 100,000 manual shares are left out until sharing exists";

/// List-page medians for the four demo-like callers, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ListPageFigures {
    pub rep: Option<f64>,
    pub supervisor: Option<f64>,
    pub manager: Option<f64>,
    pub admin: Option<f64>,
}

/// The store and HTTP figures. Measured by a `store_bench` module once the store, service and
/// server crates can seed a world and serve it; until then every figure is `None` (`null` in
/// JSON).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StoreFigures {
    pub seed_s: Option<f64>,
    pub list_page_ms_p50: ListPageFigures,
    pub list_page_unfiltered_ms_p50: Option<f64>,
    pub move_manager_ms: Option<f64>,
    pub http_get_rps: Option<f64>,
    pub http_get_p99_ms: Option<f64>,
}

impl StoreFigures {
    /// Nothing measured yet.
    pub fn pending() -> StoreFigures {
        StoreFigures::default()
    }

    fn is_pending(&self) -> bool {
        *self == StoreFigures::default()
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
            "shares": 0,
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
        object
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
        line("store and HTTP".to_owned());
        line(format!(
            "  seed the world:            {}",
            opt(s.seed_s, "s")
        ));
        let pages = s.list_page_ms_p50;
        line(format!(
            "  first page, rep:           {}",
            opt(pages.rep, "ms")
        ));
        line(format!(
            "  first page, supervisor:    {}",
            opt(pages.supervisor, "ms")
        ));
        line(format!(
            "  first page, manager:       {}",
            opt(pages.manager, "ms")
        ));
        line(format!(
            "  first page, admin:         {}",
            opt(pages.admin, "ms")
        ));
        line(format!(
            "  first page, no filter:     {}",
            opt(s.list_page_unfiltered_ms_p50, "ms")
        ));
        line(format!(
            "  move a manager:            {}",
            opt(s.move_manager_ms, "ms")
        ));
        line(format!(
            "  HTTP GET:                  {}",
            opt(s.http_get_rps, "req/s")
        ));
        line(format!(
            "  HTTP GET p99:              {}",
            opt(s.http_get_p99_ms, "ms")
        ));
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
        out
    }
}
