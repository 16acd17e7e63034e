//! The in-process check benchmark: Warden's `Snapshot::check`, the pre-order floor, Cedar (two
//! ways) and casbin deciding the same requests of the same world, one after the other on this thread.
//!
//! Each engine decides the requests in batches; a batch is timed as a whole and its time
//! divided by its size (a single check is too short for the clock). The figures are the
//! median and the 99th percentile over batches. Each engine first decides a few batches
//! untimed (warm-up). Every decision is kept and the engines' decisions are compared request
//! by request.

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use indicatif::{ProgressBar, ProgressStyle};
use warden_policy::{ObjectType, RecordRef, Snapshot};

use crate::casbin_peer::CasbinPeer;
use crate::cedar_peer::CedarPeer;
use crate::world::{World, NOW};

/// Batches decided untimed before timing starts.
const WARMUP_BATCHES: usize = 5;

/// Median and tail of per-check times.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Timing {
    pub p50_ns: f64,
    pub p99_ns: f64,
    pub mean_ns: f64,
}

impl Timing {
    fn from_batches(mut per_check_ns: Vec<f64>) -> Timing {
        if per_check_ns.is_empty() {
            return Timing::default();
        }
        per_check_ns.sort_by(f64::total_cmp);
        let at = |q: f64| {
            let rank =
                ((per_check_ns.len() as f64 * q).ceil() as usize).clamp(1, per_check_ns.len());
            per_check_ns[rank - 1]
        };
        Timing {
            p50_ns: at(0.50),
            p99_ns: at(0.99),
            mean_ns: per_check_ns.iter().sum::<f64>() / per_check_ns.len() as f64,
        }
    }
}

/// The engines, built once outside the timed loops.
pub struct Engines {
    pub snapshot: Snapshot,
    pub cedar: CedarPeer,
    pub casbin: CasbinPeer,
    pub snapshot_build: Duration,
    pub cedar_build: Duration,
    pub casbin_build: Duration,
    /// Resident memory each build added (MB, approximate: from `/proc/self/status`).
    pub snapshot_rss_mb: Option<f64>,
    pub cedar_rss_mb: Option<f64>,
    pub casbin_rss_mb: Option<f64>,
}

/// The first request on which the engines disagree.
#[derive(Debug, Clone)]
pub struct Disagreement {
    pub description: String,
}

/// What the check benchmark measured.
#[derive(Debug, Clone)]
pub struct CheckFigures {
    pub warden: Timing,
    pub floor: Timing,
    pub cedar: Timing,
    /// Building Cedar's `Request` (context with the record's owner and unit), per request;
    /// timed apart from the decision.
    pub cedar_request_build: Timing,
    /// Cedar deciding with a per-request entity slice (`resource.owner`), and building the
    /// slice and the request, per request; timed apart.
    pub cedar_slice: Timing,
    pub cedar_slice_build: Timing,
    pub casbin: Timing,
    pub batch: usize,
    pub batches: usize,
    pub decisions_compared: usize,
    pub decisions_disagree: usize,
    pub decisions_allowed: usize,
    pub floor_allowed: usize,
    pub first_disagreement: Option<Disagreement>,
}

/// Reads a `kB` field of `/proc/self/status` in MB.
pub fn proc_status_mb(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn rss_delta<T>(build: impl FnOnce() -> Result<T>) -> Result<(T, Duration, Option<f64>)> {
    let before = proc_status_mb("VmRSS:");
    let start = Instant::now();
    let built = build()?;
    let elapsed = start.elapsed();
    let after = proc_status_mb("VmRSS:");
    let delta = before.zip(after).map(|(b, a)| (a - b).max(0.0));
    Ok((built, elapsed, delta))
}

impl Engines {
    /// Compiles the snapshot and builds both peers' state.
    pub fn build(world: &World) -> Result<Engines> {
        eprintln!("compiling the snapshot…");
        let (snapshot, snapshot_build, snapshot_rss_mb) = rss_delta(|| {
            Snapshot::compile(&world.model).map_err(|e| anyhow!("the world does not compile: {e}"))
        })?;
        eprintln!("building Cedar's entities and policies…");
        let (cedar, cedar_build, cedar_rss_mb) = rss_delta(|| CedarPeer::build(&world.model))?;
        eprintln!("building casbin's enforcer…");
        let (casbin, casbin_build, casbin_rss_mb) = rss_delta(|| CasbinPeer::build(&world.model))?;
        Ok(Engines {
            snapshot,
            cedar,
            casbin,
            snapshot_build,
            cedar_build,
            casbin_build,
            snapshot_rss_mb,
            cedar_rss_mb,
            casbin_rss_mb,
        })
    }
}

fn progress_bar(len: usize, label: &'static str) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} requests ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_prefix(label);
    bar
}

/// Times `decide` over the requests batch by batch; `decide(range)` decides the requests in
/// `range`. Returns the per-check time of each timed batch.
fn time_batches(
    requests: usize,
    batch: usize,
    label: &'static str,
    mut decide: impl FnMut(std::ops::Range<usize>) -> Result<()>,
) -> Result<Vec<f64>> {
    let ranges: Vec<_> = (0..requests)
        .step_by(batch)
        .map(|start| start..(start + batch).min(requests))
        .collect();
    for range in ranges.iter().take(WARMUP_BATCHES) {
        decide(range.clone())?;
    }
    let bar = progress_bar(requests, label);
    let mut per_check = Vec::with_capacity(ranges.len());
    for range in ranges {
        let len = range.len();
        let start = Instant::now();
        decide(range)?;
        let elapsed = start.elapsed();
        per_check.push(elapsed.as_nanos() as f64 / len as f64);
        bar.inc(len as u64);
    }
    bar.finish_and_clear();
    Ok(per_check)
}

/// Like [`time_batches`] for an engine whose input is prepared per request: each batch's
/// inputs are made by `prepare` (timed apart), then decided by `decide` into `decisions`.
/// Returns the per-check times of deciding and of preparing.
fn time_prepared<T>(
    requests: usize,
    batch: usize,
    label: &'static str,
    decisions: &mut [bool],
    prepare: impl Fn(usize) -> Result<T>,
    decide: impl Fn(&T) -> bool,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let ranges: Vec<_> = (0..requests)
        .step_by(batch)
        .map(|start| start..(start + batch).min(requests))
        .collect();
    let mut inputs = Vec::with_capacity(batch);
    let make = |range: std::ops::Range<usize>, inputs: &mut Vec<T>| -> Result<Duration> {
        inputs.clear();
        let start = Instant::now();
        for i in range {
            inputs.push(prepare(i)?);
        }
        Ok(start.elapsed())
    };
    for range in ranges.iter().take(WARMUP_BATCHES) {
        make(range.clone(), &mut inputs)?;
        for input in &inputs {
            black_box(decide(input));
        }
    }
    let bar = progress_bar(requests, label);
    let mut decide_times = Vec::with_capacity(ranges.len());
    let mut prepare_times = Vec::with_capacity(ranges.len());
    for range in ranges {
        let len = range.len();
        let made = make(range.clone(), &mut inputs)?;
        prepare_times.push(made.as_nanos() as f64 / len as f64);
        let start = Instant::now();
        for (slot, input) in decisions[range].iter_mut().zip(&inputs) {
            *slot = black_box(decide(input));
        }
        decide_times.push(start.elapsed().as_nanos() as f64 / len as f64);
        bar.inc(len as u64);
    }
    bar.finish_and_clear();
    Ok((decide_times, prepare_times))
}

/// Decides every request of `world` with every engine and compares the decisions.
pub fn run(world: &World, engines: &Engines, batch: usize) -> Result<CheckFigures> {
    let batch = batch.max(1);
    let requests = &world.requests;
    let n = requests.len();
    let customers = &world.customers;

    // Warden.
    let snapshot = &engines.snapshot;
    let mut warden = vec![false; n];
    let warden_times = time_batches(n, batch, "warden", |range| {
        for i in range {
            let r = requests[i];
            let (owner, unit) = customers[r.customer as usize];
            let decision = snapshot.check(
                World::user_id(r.user as usize),
                r.action,
                ObjectType::Customers,
                &RecordRef::new(owner, unit),
                NOW,
            );
            warden[i] = black_box(decision).is_allowed();
        }
        Ok(())
    })?;

    // The floor: the bare pre-order interval test, no roles, no scopes.
    let (pre, last) = (&world.pre, &world.last);
    let mut floor = vec![false; n];
    let floor_times = time_batches(n, batch, "floor", |range| {
        for i in range {
            let r = requests[i];
            let (owner, _) = customers[r.customer as usize];
            let me = r.user as usize;
            let theirs = pre[World::user_index(owner)];
            floor[i] = black_box(pre[me] <= theirs && theirs <= last[me]);
        }
        Ok(())
    })?;

    // Cedar: each batch's requests are built first (timed apart), then decided.
    let cedar = &engines.cedar;
    let mut cedar_decisions = vec![false; n];
    let (cedar_times, cedar_build_times) = time_prepared(
        n,
        batch,
        "cedar",
        &mut cedar_decisions,
        |i| {
            let r = requests[i];
            let (owner, unit) = customers[r.customer as usize];
            cedar.request(
                r.user as usize,
                r.action,
                r.customer as u64 + 1,
                World::user_index(owner),
                (unit.0 - 1) as usize,
                NOW,
            )
        },
        |request| cedar.is_allowed(request),
    )?;

    // Cedar with a per-request entity slice: the slices are built first (timed apart).
    let mut slice_decisions = vec![false; n];
    let (slice_times, slice_build_times) = time_prepared(
        n,
        batch,
        "slices",
        &mut slice_decisions,
        |i| {
            let r = requests[i];
            let (owner, unit) = customers[r.customer as usize];
            cedar.slice(
                r.user as usize,
                r.action,
                r.customer as u64 + 1,
                World::user_index(owner),
                (unit.0 - 1) as usize,
                NOW,
            )
        },
        |(request, slice)| cedar.is_allowed_in_slice(request, slice),
    )?;

    // casbin.
    let casbin = &engines.casbin;
    let mut casbin_decisions = vec![false; n];
    let casbin_times = time_batches(n, batch, "casbin", |range| {
        for i in range {
            let r = requests[i];
            let (owner, unit) = customers[r.customer as usize];
            casbin_decisions[i] = black_box(casbin.is_allowed(
                r.user as usize,
                r.action,
                World::user_index(owner),
                (unit.0 - 1) as usize,
            )?);
        }
        Ok(())
    })
    .context("casbin failed to decide")?;

    // Compare every decision.
    let mut disagree = 0;
    let mut first_disagreement = None;
    for i in 0..n {
        if warden[i] != cedar_decisions[i]
            || warden[i] != slice_decisions[i]
            || warden[i] != casbin_decisions[i]
        {
            disagree += 1;
            if first_disagreement.is_none() {
                let r = requests[i];
                let (owner, unit) = customers[r.customer as usize];
                let user = World::user_id(r.user as usize);
                let decision = snapshot.check(
                    user,
                    r.action,
                    ObjectType::Customers,
                    &RecordRef::new(owner, unit),
                    NOW,
                );
                first_disagreement = Some(Disagreement {
                    description: format!(
                        "request #{i}: user {} {} customer {} (owner {}, unit {}): \
                         warden {} ({decision:?}), cedar {}, cedar with a slice {}, casbin {}",
                        user.0,
                        r.action,
                        r.customer + 1,
                        owner.0,
                        unit.0,
                        allow(warden[i]),
                        allow(cedar_decisions[i]),
                        allow(slice_decisions[i]),
                        allow(casbin_decisions[i]),
                    ),
                });
            }
        }
    }

    Ok(CheckFigures {
        warden: Timing::from_batches(warden_times),
        floor: Timing::from_batches(floor_times),
        cedar: Timing::from_batches(cedar_times),
        cedar_request_build: Timing::from_batches(cedar_build_times),
        cedar_slice: Timing::from_batches(slice_times),
        cedar_slice_build: Timing::from_batches(slice_build_times),
        casbin: Timing::from_batches(casbin_times),
        batch,
        batches: n.div_ceil(batch),
        decisions_compared: n,
        decisions_disagree: disagree,
        decisions_allowed: warden.iter().filter(|&&a| a).count(),
        floor_allowed: floor.iter().filter(|&&a| a).count(),
        first_disagreement,
    })
}

fn allow(allowed: bool) -> &'static str {
    if allowed {
        "allow"
    } else {
        "deny"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::world::{generate, WorldSpec};

    #[test]
    fn percentiles_are_ranks() {
        let t = Timing::from_batches((1..=100).map(f64::from).collect());
        assert_eq!(t.p50_ns, 50.0);
        assert_eq!(t.p99_ns, 99.0);
        assert_eq!(Timing::from_batches(vec![3.0]).p99_ns, 3.0);
    }

    #[test]
    fn the_engines_agree_on_a_small_world() {
        let world = generate(
            WorldSpec {
                seed: 3,
                users: 400,
                units: 40,
                customers: 4_000,
                requests: 6_000,
            },
            |_| {},
        );
        let engines = Engines::build(&world).unwrap();
        let figures = run(&world, &engines, 100).unwrap();
        assert_eq!(figures.decisions_compared, 6_000);
        assert_eq!(
            figures.decisions_disagree, 0,
            "{:?}",
            figures.first_disagreement
        );
        // The mix is not degenerate.
        assert!(
            figures.decisions_allowed > 600,
            "{}",
            figures.decisions_allowed
        );
        assert!(
            figures.decisions_allowed < 5_400,
            "{}",
            figures.decisions_allowed
        );
    }
}
