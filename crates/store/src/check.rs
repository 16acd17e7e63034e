//! The consistency check behind `warden check`: the database engine's own integrity check
//! (SQLite), foreign keys, the unit tree and reporting line without cycles, no row pointing
//! at something missing, `customer_counts` equal to the real counts, the access log's chain
//! (verified by [`Store::verify_access_log`], the one verifier) and a model the engine
//! compiles. It reports every problem it finds, not just the first.
//!
//! Foreign keys already refuse most orphans while they are enforced; the explicit queries
//! here catch what got in while they were not (`PRAGMA foreign_keys = OFF`, a restored or
//! hand-edited file, triggers disabled on PostgreSQL) and the references no foreign key can
//! express (a share's record in one of five tables, its principal of three kinds).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sqlx::Row;
use warden_policy::schema::schema;
use warden_policy::{ObjectType, Snapshot};

use crate::{Backend, Result, Store};

/// Which kind of check found a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CheckKind {
    /// The database engine's own check (`PRAGMA integrity_check`).
    Integrity,
    /// A foreign key violated (`PRAGMA foreign_key_check`, unvalidated PostgreSQL constraints).
    ForeignKey,
    /// A cycle in the unit tree or the reporting line.
    Cycle,
    /// A row naming a unit, user, role, customer, record or request that does not exist.
    Orphan,
    /// A `customer_counts` row that differs from the customers it counts.
    Count,
    /// The access log's chain does not verify.
    AccessLog,
    /// The organisation does not compile into the engine's snapshot.
    Model,
}

impl CheckKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckKind::Integrity => "integrity",
            CheckKind::ForeignKey => "foreign key",
            CheckKind::Cycle => "cycle",
            CheckKind::Orphan => "orphan",
            CheckKind::Count => "count",
            CheckKind::AccessLog => "access log",
            CheckKind::Model => "model",
        }
    }
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub kind: CheckKind,
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.detail)
    }
}

/// What the check looked at and what it found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConsistencyReport {
    pub units: u64,
    pub users: u64,
    pub customers: u64,
    pub shares: u64,
    pub log_entries: u64,
    /// Every problem, in the order of the checks.
    pub problems: Vec<Problem>,
}

impl ConsistencyReport {
    pub fn is_consistent(&self) -> bool {
        self.problems.is_empty()
    }

    fn push(&mut self, kind: CheckKind, detail: String) {
        self.problems.push(Problem { kind, detail });
    }
}

/// An orphan query: the ids of rows of `table` whose `what` does not exist.
struct Orphans {
    what: String,
    sql: String,
    /// The value of `$1`, when the query has one (a kind of record or principal).
    param: Option<&'static str>,
}

fn missing(table: &str, column: &str, target: &str) -> Orphans {
    Orphans {
        what: label(table, column, target),
        sql: format!(
            "SELECT CAST(t.{column} AS BIGINT) FROM {table} t \
             WHERE t.{column} IS NOT NULL \
             AND NOT EXISTS (SELECT 1 FROM {target} x WHERE x.id = t.{column})"
        ),
        param: None,
    }
}

fn label(table: &str, column: &str, target: &str) -> String {
    format!("{table}.{column} names a missing row of {target}")
}

impl Store {
    /// Checks the whole database and reports every problem found (an empty list: consistent).
    /// `Err` only when the database cannot be read at all.
    pub async fn check_consistency(&self) -> Result<ConsistencyReport> {
        let mut report = ConsistencyReport::default();
        self.check_engine(&mut report).await?;
        {
            let mut tx = self.pool.begin().await?;
            if self.backend() == Backend::Postgres {
                // One snapshot: the counts compared with the customers they count.
                sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .execute(&mut *tx)
                    .await?;
            }
            for (table, field) in [
                ("units", &mut report.units),
                ("users", &mut report.users),
                ("customers", &mut report.customers),
                ("record_shares", &mut report.shares),
            ] {
                let n: i64 =
                    sqlx::query_scalar(&format!("SELECT CAST(COUNT(*) AS BIGINT) FROM {table}"))
                        .fetch_one(&mut *tx)
                        .await?;
                *field = u64::try_from(n).unwrap_or(0);
            }
            check_cycles(&mut tx, &mut report).await?;
            check_orphans(&mut tx, &mut report).await?;
            check_counts(&mut tx, &mut report).await?;
            tx.rollback().await?;
        }
        let log = self.verify_access_log().await?;
        report.log_entries = log.entries;
        if let Some(problem) = log.problem {
            report.push(CheckKind::AccessLog, problem.to_string());
        }
        match self.load_model().await {
            Ok(model) => {
                if let Err(e) = Snapshot::compile(&model) {
                    report.push(CheckKind::Model, e.to_string());
                }
            }
            Err(e) => report.push(CheckKind::Model, format!("cannot be loaded: {e}")),
        }
        Ok(report)
    }

    /// SQLite's own page-level check and its foreign-key check; on PostgreSQL, foreign keys
    /// that were added without being validated.
    async fn check_engine(&self, report: &mut ConsistencyReport) -> Result<()> {
        match self.backend() {
            Backend::Sqlite => {
                let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                    .fetch_all(&self.pool)
                    .await?;
                if rows != ["ok"] {
                    for row in rows {
                        report.push(CheckKind::Integrity, row);
                    }
                }
                let rows = sqlx::query("PRAGMA foreign_key_check")
                    .fetch_all(&self.pool)
                    .await?;
                for row in rows {
                    let table: String = row.try_get(0)?;
                    let rowid: Option<i64> = row.try_get(1)?;
                    let parent: String = row.try_get(2)?;
                    let rowid = rowid.map_or_else(|| "?".to_owned(), |id| id.to_string());
                    report.push(
                        CheckKind::ForeignKey,
                        format!("{table} row {rowid} names a missing row of {parent}"),
                    );
                }
            }
            Backend::Postgres => {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT conrelid::regclass::text || ' ' || conname::text FROM pg_constraint \
                     WHERE contype = 'f' AND NOT convalidated \
                     AND connamespace = current_schema()::regnamespace",
                )
                .fetch_all(&self.pool)
                .await?;
                for row in rows {
                    report.push(
                        CheckKind::ForeignKey,
                        format!("the constraint {row} is not validated"),
                    );
                }
            }
        }
        Ok(())
    }
}

/// Every cycle of `parent` links, each named once by its members in ascending order.
fn cycles(parent: &BTreeMap<i64, Option<i64>>) -> Vec<Vec<i64>> {
    // 0: not seen, 1: on the current path, 2: done.
    let mut state: BTreeMap<i64, u8> = BTreeMap::new();
    let mut found = Vec::new();
    for &start in parent.keys() {
        let mut path = Vec::new();
        let mut at = Some(start);
        while let Some(node) = at {
            match state.get(&node).copied().unwrap_or(0) {
                0 => {
                    state.insert(node, 1);
                    path.push(node);
                    at = parent.get(&node).copied().flatten();
                }
                1 => {
                    let from = path.iter().position(|&n| n == node).unwrap_or(0);
                    let mut cycle: Vec<i64> = path[from..].to_vec();
                    cycle.sort_unstable();
                    found.push(cycle);
                    break;
                }
                _ => break,
            }
        }
        for node in path {
            state.insert(node, 2);
        }
    }
    found
}

async fn check_cycles(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    report: &mut ConsistencyReport,
) -> Result<()> {
    for (table, column, what) in [
        ("units", "parent_id", "the unit tree"),
        ("users", "manager_id", "the reporting line"),
    ] {
        let rows = sqlx::query(&format!(
            "SELECT CAST(id AS BIGINT), CAST({column} AS BIGINT) FROM {table}"
        ))
        .fetch_all(&mut **tx)
        .await?;
        let parent = rows
            .iter()
            .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<Option<i64>, _>(1)?)))
            .collect::<Result<BTreeMap<_, _>>>()?;
        for cycle in cycles(&parent) {
            let ids: Vec<String> = cycle.iter().map(i64::to_string).collect();
            report.push(
                CheckKind::Cycle,
                format!("{what} has a cycle through {table} {}", ids.join(", ")),
            );
        }
    }
    Ok(())
}

/// The references the check follows: every column that names a row elsewhere.
fn orphan_queries() -> Vec<Orphans> {
    let mut queries = vec![
        missing("units", "parent_id", "units"),
        missing("users", "unit_id", "units"),
        missing("users", "manager_id", "users"),
        missing("users", "portal_account", "customers"),
        missing("user_roles", "user_id", "users"),
        missing("user_roles", "role_id", "roles"),
        missing("role_grants", "role_id", "roles"),
        missing("role_permissions", "role_id", "roles"),
        missing("role_field_rules", "role_id", "roles"),
        missing("sessions", "user_id", "users"),
        missing("recovery_codes", "user_id", "users"),
        missing("approval_requests", "requester_id", "users"),
        missing("approval_votes", "request_id", "approval_requests"),
        missing("approval_events", "request_id", "approval_requests"),
        missing("review_items", "campaign_id", "review_campaigns"),
    ];
    for &object in ObjectType::ALL {
        let s = schema(object);
        queries.push(missing(s.table, "owner_id", "users"));
        queries.push(missing(s.table, "unit_id", "units"));
        if s.has_customer {
            queries.push(missing(s.table, "customer_id", "customers"));
        }
        queries.push(Orphans {
            what: label("record_shares", &format!("record_id ({object})"), s.table),
            sql: format!(
                "SELECT CAST(t.record_id AS BIGINT) FROM record_shares t \
                 WHERE t.object = $1 \
                 AND NOT EXISTS (SELECT 1 FROM {table} x WHERE x.id = t.record_id)",
                table = s.table
            ),
            param: Some(object.as_str()),
        });
    }
    for (kind, table) in [("user", "users"), ("unit", "units"), ("role", "roles")] {
        queries.push(Orphans {
            what: label("record_shares", &format!("principal_id ({kind})"), table),
            sql: format!(
                "SELECT CAST(t.principal_id AS BIGINT) FROM record_shares t \
                 WHERE t.principal_kind = $1 \
                 AND NOT EXISTS (SELECT 1 FROM {table} x WHERE x.id = t.principal_id)"
            ),
            param: Some(kind),
        });
    }
    for (kind, table) in [("user", "users"), ("role", "roles")] {
        queries.push(Orphans {
            what: label("access_rules", &format!("owner_id ({kind})"), table),
            sql: format!(
                "SELECT CAST(t.owner_id AS BIGINT) FROM access_rules t \
                 WHERE t.owner_kind = $1 \
                 AND NOT EXISTS (SELECT 1 FROM {table} x WHERE x.id = t.owner_id)"
            ),
            param: Some(kind),
        });
    }
    queries
}

async fn check_orphans(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    report: &mut ConsistencyReport,
) -> Result<()> {
    let kinds: Vec<(i64, String)> =
        sqlx::query_as("SELECT CAST(id AS BIGINT), object FROM record_shares")
            .fetch_all(&mut **tx)
            .await?;
    for (id, _) in kinds.iter().filter(|(_, o)| ObjectType::parse(o).is_err()) {
        report.push(
            CheckKind::Orphan,
            format!("record_shares row {id} names an unknown kind of record"),
        );
    }
    for query in orphan_queries() {
        let mut select = sqlx::query_scalar(&query.sql);
        if let Some(param) = query.param {
            select = select.bind(param);
        }
        let targets: Vec<i64> = select.fetch_all(&mut **tx).await?;
        // One problem per missing target, with how many rows name it: a deleted unit with
        // 500 customers is one problem, not 500 lines.
        let mut by_target: BTreeMap<i64, usize> = BTreeMap::new();
        for target in targets {
            *by_target.entry(target).or_default() += 1;
        }
        for (target, rows) in by_target {
            report.push(
                CheckKind::Orphan,
                format!(
                    "{}: id {target} ({rows} row{})",
                    query.what,
                    if rows == 1 { "" } else { "s" }
                ),
            );
        }
    }
    Ok(())
}

async fn check_counts(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    report: &mut ConsistencyReport,
) -> Result<()> {
    let rows = sqlx::query(
        "SELECT CAST(owner_id AS BIGINT), CAST(unit_id AS BIGINT), CAST(COUNT(*) AS BIGINT) \
         FROM customers GROUP BY owner_id, unit_id",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut real: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for row in &rows {
        real.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
    }
    let rows = sqlx::query(
        "SELECT CAST(owner_id AS BIGINT), CAST(unit_id AS BIGINT), CAST(n AS BIGINT) \
         FROM customer_counts",
    )
    .fetch_all(&mut **tx)
    .await?;
    let mut counted: BTreeMap<(i64, i64), i64> = BTreeMap::new();
    for row in &rows {
        counted.insert((row.try_get(0)?, row.try_get(1)?), row.try_get(2)?);
    }
    let cells: BTreeSet<(i64, i64)> = real.keys().chain(counted.keys()).copied().collect();
    for cell in cells {
        let actual = real.get(&cell).copied().unwrap_or(0);
        let stored = counted.get(&cell).copied().unwrap_or(0);
        if actual != stored {
            report.push(
                CheckKind::Count,
                format!(
                    "customer_counts says owner {} in unit {} has {stored} customers; there are \
                     {actual}",
                    cell.0, cell.1
                ),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(pairs: &[(i64, Option<i64>)]) -> BTreeMap<i64, Option<i64>> {
        pairs.iter().copied().collect()
    }

    #[test]
    fn a_tree_has_no_cycle() {
        let tree = links(&[(1, None), (2, Some(1)), (3, Some(1)), (4, Some(3))]);
        assert!(cycles(&tree).is_empty());
    }

    #[test]
    fn each_cycle_is_named_once_with_its_members() {
        let graph = links(&[
            (1, None),
            (2, Some(3)),
            (3, Some(2)),
            (4, Some(2)),
            (5, Some(5)),
            (6, Some(7)),
            (7, Some(8)),
            (8, Some(6)),
            (9, Some(42)),
        ]);
        assert_eq!(cycles(&graph), vec![vec![2, 3], vec![5], vec![6, 7, 8]]);
    }
}
