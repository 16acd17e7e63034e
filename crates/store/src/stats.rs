//! The list planner's statistics: customers per owner and per unit, read from
//! `customer_counts` and kept in memory for a few seconds.
//!
//! A list page chooses between walking the id order and enumerating the visible rows by how
//! many rows the caller sees (see `Store::list_plan`). Both plans return the same rows, so the
//! count only has to be about right: reading it exactly on every list cost more than the page
//! itself (a manager with 1,100 people below: 2.5 ms of `customer_counts` lookups, plus 1.7 ms
//! for the total, for a 0.35 ms page). Like a database's planner statistics, these are
//! refreshed in the background when older than [`STATS_TTL`]; only the first list of a store
//! waits for them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use sqlx::Row;
use warden_policy::{Condition, Filter};

use crate::{Result, Store};

/// The cells a what-if sample is drawn from (each is read whole through the owner index).
const SAMPLE_CELLS: usize = 10;

/// How long statistics are used before a background refresh is started.
pub(crate) const STATS_TTL: Duration = Duration::from_secs(10);

/// Customers per owner and per unit, and in all.
#[derive(Debug, Default)]
pub(crate) struct PlannerStats {
    total: i64,
    by_owner: HashMap<i64, i64>,
    by_unit: HashMap<i64, i64>,
    read_at: Option<Instant>,
}

impl PlannerStats {
    /// All customers.
    pub(crate) fn total(&self) -> i64 {
        self.total
    }

    /// About how many customers `filter` matches: the sum over its conditions, so a record
    /// matched by two conditions counts twice (never fewer than the truth), at most the total.
    pub(crate) fn estimate(&self, filter: &Filter) -> i64 {
        let conditions = match filter {
            Filter::All => return self.total,
            Filter::Any(conditions) => conditions,
        };
        let sum: i64 = conditions
            .iter()
            .map(|condition| match condition {
                Condition::OwnerIn(ids) => ids
                    .iter()
                    .map(|id| self.by_owner.get(&id.0).copied().unwrap_or(0))
                    .sum::<i64>(),
                Condition::UnitIn(ids) => ids
                    .iter()
                    .map(|id| self.by_unit.get(&id.0).copied().unwrap_or(0))
                    .sum::<i64>(),
                // Shares are few per user; a rule's condition is planned apart (walked).
                Condition::SharedWith(_) | Condition::Matches(_) => 0,
            })
            .sum();
        sum.min(self.total)
    }

    fn is_fresh(&self) -> bool {
        self.read_at.is_some_and(|at| at.elapsed() < STATS_TTL)
    }
}

/// The statistics a store shares between its clones.
#[derive(Debug, Default)]
pub(crate) struct StatsCache {
    current: RwLock<Option<Arc<PlannerStats>>>,
    refreshing: AtomicBool,
}

impl StatsCache {
    fn get(&self) -> Option<Arc<PlannerStats>> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, stats: Arc<PlannerStats>) {
        match self.current.write() {
            Ok(mut guard) => *guard = Some(stats),
            Err(poisoned) => *poisoned.into_inner() = Some(stats),
        }
    }
}

impl Store {
    /// The planner's statistics: fresh ones, or stale ones while a refresh runs in the
    /// background; read in the foreground only the first time.
    pub(crate) async fn planner_stats(&self) -> Result<Arc<PlannerStats>> {
        let cache = &self.stats;
        if let Some(stats) = cache.get() {
            if !stats.is_fresh() && !cache.refreshing.swap(true, Ordering::AcqRel) {
                let store = self.clone();
                tokio::spawn(async move {
                    match store.read_planner_stats().await {
                        Ok(stats) => store.stats.set(Arc::new(stats)),
                        Err(error) => tracing::debug!(%error, "planner statistics not refreshed"),
                    }
                    store.stats.refreshing.store(false, Ordering::Release);
                });
            }
            return Ok(stats);
        }
        let stats = Arc::new(self.read_planner_stats().await?);
        cache.set(stats.clone());
        Ok(stats)
    }

    async fn read_planner_stats(&self) -> Result<PlannerStats> {
        let read_at = Instant::now();
        let mut conn = self.pool.acquire().await?;
        let mut stats = PlannerStats {
            read_at: Some(read_at),
            ..PlannerStats::default()
        };
        for row in sqlx::query(
            "SELECT owner_id, CAST(SUM(n) AS BIGINT) FROM customer_counts GROUP BY owner_id",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            let n: i64 = row.try_get(1)?;
            stats.by_owner.insert(row.try_get(0)?, n);
            stats.total += n;
        }
        for row in sqlx::query(
            "SELECT unit_id, CAST(SUM(n) AS BIGINT) FROM customer_counts GROUP BY unit_id",
        )
        .fetch_all(&mut *conn)
        .await?
        {
            stats.by_unit.insert(row.try_get(0)?, row.try_get(1)?);
        }
        Ok(stats)
    }
}

impl Store {
    /// Customers per (owner, unit), exactly (what-if weighs the engine's per-cell decisions
    /// with these).
    pub async fn customer_cells(
        &self,
    ) -> Result<Vec<(warden_policy::UserId, warden_policy::UnitId, u64)>> {
        sqlx::query(
            "SELECT owner_id, unit_id, CAST(n AS BIGINT) FROM customer_counts WHERE n > 0 \
             ORDER BY owner_id, unit_id",
        )
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| {
            Ok((
                warden_policy::UserId(row.try_get(0)?),
                warden_policy::UnitId(row.try_get(1)?),
                u64::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
            ))
        })
        .collect()
    }

    /// The first `limit` customer ids in the given (owner, unit) cells (samples for what-if;
    /// at most [`SAMPLE_CELLS`] cells are looked at).
    pub async fn sample_customers(
        &self,
        cells: &[(warden_policy::UserId, warden_policy::UnitId)],
        limit: u32,
    ) -> Result<Vec<i64>> {
        if cells.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let mut sql = crate::sql::SqlBuilder::new("SELECT id FROM customers WHERE ");
        for (i, (owner, unit)) in cells.iter().take(SAMPLE_CELLS).enumerate() {
            if i > 0 {
                sql.push(" OR ");
            }
            // `+unit_id`: found through the owner index; the unit index would read the whole
            // unit once per cell (the cells of one change often share their unit).
            sql.push("(owner_id = ");
            sql.bind_int(owner.0);
            sql.push(" AND +unit_id = ");
            sql.bind_int(unit.0);
            sql.push(")");
        }
        sql.push(" ORDER BY id LIMIT ");
        sql.bind_int(i64::from(limit));
        Ok(sql
            .query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get::<i64, _>(0))
            .collect::<std::result::Result<Vec<_>, _>>()?)
    }
}
