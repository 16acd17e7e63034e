//! The consistency check (`Store::check_consistency` and `warden check`): a freshly seeded demo
//! database reports nothing; each way of corrupting it (a page, a foreign key, a cycle, an
//! orphan, a count, the access log) is reported, and the command exits non-zero. On SQLite
//! always, on PostgreSQL when `WARDEN_TEST_POSTGRES_URL` is set (there with foreign-key
//! triggers switched off for the session, which is how orphans get past PostgreSQL).

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::{Path, PathBuf};
use std::process::Command;

use sqlx::{Connection, Executor};
use warden_store::keys::KEY_FILE;
use warden_store::{AccessEntry, CheckKind, ConsistencyReport, Store, SQLITE_FILE};

const NOW: i64 = 1_700_000_000_000;

/// Seeds the demo (60 customers) with one access log entry and one share, and closes it.
async fn seed(url: &str, key_file: &Path) {
    let store = Store::connect_with_key_file(url, key_file)
        .await
        .unwrap()
        .store;
    warden_service::demo::seed(&store, 60, "check-test-password", NOW)
        .await
        .unwrap();
    let mut tx = store.begin().await.unwrap();
    tx.append_access(&AccessEntry {
        id: 0,
        at: NOW,
        actor_id: None,
        actor: "test".into(),
        action: "read".into(),
        object: None,
        record_id: None,
        fields: vec!["name".into()],
        client: None,
        outcome: "ok".into(),
        detail: String::new(),
    })
    .await
    .unwrap();
    tx.execute_raw_for_tests(
        "INSERT INTO record_shares (object, record_id, kind, principal_kind, principal_id, \
         access, created_at) SELECT 'customers', MIN(c.id), 'share', 'user', \
         (SELECT id FROM users WHERE username = 'rep2'), 'read', 0 FROM customers c",
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store.close().await;
}

/// A seeded SQLite data directory, copied for each case.
struct Seeded {
    _dir: tempfile::TempDir,
    data: PathBuf,
}

async fn seeded_sqlite() -> Seeded {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("seed");
    seed(&Store::dir_url(&data).unwrap(), &data.join(KEY_FILE)).await;
    // Everything into the main file: the cases copy it and some write into its pages.
    let mut conn = sqlx::AnyConnection::connect(&Store::dir_url(&data).unwrap())
        .await
        .unwrap();
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        .await
        .unwrap();
    conn.close().await.unwrap();
    Seeded { _dir: dir, data }
}

impl Seeded {
    /// A copy of the seeded directory in `dir`.
    fn copy(&self, dir: &Path) -> PathBuf {
        let data = dir.join("data");
        std::fs::create_dir_all(&data).unwrap();
        for entry in std::fs::read_dir(&self.data).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), data.join(entry.file_name())).unwrap();
        }
        data
    }
}

/// Runs `sql` on a connection of its own with foreign keys off (as a careless tool would).
async fn corrupt(url: &str, sql: &str) {
    let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
    let off = if url.starts_with("sqlite:") {
        "PRAGMA foreign_keys = OFF"
    } else {
        "SET session_replication_role = replica"
    };
    conn.execute(off).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
    conn.close().await.unwrap();
}

async fn report(url: &str, key_file: &Path) -> ConsistencyReport {
    let store = Store::connect_with_key_file(url, key_file)
        .await
        .unwrap()
        .store;
    let report = store.check_consistency().await.unwrap();
    store.close().await;
    report
}

/// `warden check` on the data directory or URL: (exit status ok, stdout + stderr).
fn command(data: Option<&Path>, url: &str, key_file: &Path) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .arg("check")
        .env_remove("WARDEN_DATABASE_URL")
        .env_remove("WARDEN_MASTER_KEY");
    match data {
        Some(data) => command.arg("--data").arg(data),
        None => command
            .arg("--database-url")
            .arg(url)
            .arg("--key-file")
            .arg(key_file),
    };
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// One way of breaking a database: the SQL, and what the check must say.
struct Case {
    name: &'static str,
    sql: &'static str,
    kind: CheckKind,
    says: &'static str,
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            name: "unit cycle",
            sql: "UPDATE units SET parent_id = (SELECT id FROM units WHERE name = 'Sales Team 1') \
                  WHERE name = 'Head Office'",
            kind: CheckKind::Cycle,
            says: "the unit tree has a cycle",
        },
        Case {
            name: "reporting cycle",
            sql: "UPDATE users SET manager_id = (SELECT id FROM users WHERE username = 'rep1') \
                  WHERE username = 'manager'",
            kind: CheckKind::Cycle,
            says: "the reporting line has a cycle",
        },
        Case {
            name: "user in a missing unit",
            sql: "UPDATE users SET unit_id = 9999 WHERE username = 'rep1'",
            kind: CheckKind::Orphan,
            says: "users.unit_id names a missing row of units: id 9999",
        },
        Case {
            name: "user with a missing manager",
            sql: "UPDATE users SET manager_id = 9998 WHERE username = 'rep2'",
            kind: CheckKind::Orphan,
            says: "users.manager_id names a missing row of users: id 9998",
        },
        Case {
            name: "assignment of a missing role",
            sql: "INSERT INTO user_roles (user_id, role_id) \
                  SELECT id, 9997 FROM users WHERE username = 'rep3'",
            kind: CheckKind::Orphan,
            says: "user_roles.role_id names a missing row of roles: id 9997",
        },
        Case {
            name: "assignment to a missing user",
            sql: "INSERT INTO user_roles (user_id, role_id) SELECT 9996, MIN(id) FROM roles",
            kind: CheckKind::Orphan,
            says: "user_roles.user_id names a missing row of users: id 9996",
        },
        Case {
            name: "customer of a missing owner",
            sql: "UPDATE customers SET owner_id = 9995 WHERE id = (SELECT MAX(id) FROM customers)",
            kind: CheckKind::Orphan,
            says: "customers.owner_id names a missing row of users: id 9995",
        },
        Case {
            name: "customer in a missing unit",
            sql: "UPDATE customers SET unit_id = 9994 WHERE id = (SELECT MAX(id) FROM customers)",
            kind: CheckKind::Orphan,
            says: "customers.unit_id names a missing row of units: id 9994",
        },
        Case {
            name: "share of a missing record",
            sql: "INSERT INTO record_shares (object, record_id, kind, principal_kind, \
                  principal_id, access, created_at) SELECT 'deals', 9993, 'share', 'user', \
                  MIN(id), 'read', 0 FROM users",
            kind: CheckKind::Orphan,
            says: "record_shares.record_id (deals) names a missing row of deals: id 9993",
        },
        Case {
            name: "share with a missing principal",
            sql: "INSERT INTO record_shares (object, record_id, kind, principal_kind, \
                  principal_id, access, created_at) SELECT 'customers', MIN(id), 'share', \
                  'role', 9992, 'edit', 0 FROM customers",
            kind: CheckKind::Orphan,
            says: "record_shares.principal_id (role) names a missing row of roles: id 9992",
        },
        Case {
            name: "count off by one",
            sql: "UPDATE customer_counts SET n = n + 1 WHERE owner_id = \
                  (SELECT MIN(owner_id) FROM customer_counts WHERE n > 0)",
            kind: CheckKind::Count,
            says: "customer_counts says owner",
        },
        Case {
            name: "count of customers removed behind its back",
            sql: "DELETE FROM customers WHERE id = (SELECT MIN(id) FROM customers)",
            kind: CheckKind::Count,
            says: "customers; there are",
        },
        Case {
            name: "access log entry altered",
            sql: "UPDATE access_log SET fields = 'credit_limit' \
                  WHERE id = (SELECT MIN(id) FROM access_log)",
            kind: CheckKind::AccessLog,
            says: "was altered",
        },
    ]
}

fn assert_clean(name: &str, report: &ConsistencyReport, cli: &(bool, String)) {
    assert!(
        report.is_consistent(),
        "[{name}] clean demo: {:?}",
        report.problems
    );
    assert!(report.users > 0 && report.customers == 60 && report.shares == 1);
    assert_eq!(report.log_entries, 1, "[{name}]");
    assert!(
        cli.0 && cli.1.contains("consistent: 0 problems"),
        "[{name}] {}",
        cli.1
    );
}

fn assert_found(name: &str, case: &Case, report: &ConsistencyReport, cli: &(bool, String)) {
    assert!(
        report
            .problems
            .iter()
            .any(|p| p.kind == case.kind && p.detail.contains(case.says)),
        "[{name}] {}: expected a {:?} problem saying {:?}, got {:?}",
        case.name,
        case.kind,
        case.says,
        report.problems
    );
    assert!(
        !cli.0 && cli.1.contains(case.says) && cli.1.contains("NOT consistent"),
        "[{name}] {}: warden check said {}",
        case.name,
        cli.1
    );
}

#[tokio::test]
async fn every_corruption_is_reported_on_sqlite() {
    let seeded = seeded_sqlite().await;
    let key = |data: &Path| data.join(KEY_FILE);

    let dir = tempfile::tempdir().unwrap();
    let data = seeded.copy(dir.path());
    let url = Store::dir_url(&data).unwrap();
    let clean = report(&url, &key(&data)).await;
    assert_clean("sqlite", &clean, &command(Some(&data), &url, &key(&data)));

    for case in cases() {
        let dir = tempfile::tempdir().unwrap();
        let data = seeded.copy(dir.path());
        let url = Store::dir_url(&data).unwrap();
        corrupt(&url, case.sql).await;
        let found = report(&url, &key(&data)).await;
        assert_found(
            "sqlite",
            &case,
            &found,
            &command(Some(&data), &url, &key(&data)),
        );
        // The orphans got past SQLite's foreign keys only because they were off: its own
        // check names them too.
        if case.kind == CheckKind::Orphan && !case.name.starts_with("share") {
            assert!(
                found
                    .problems
                    .iter()
                    .any(|p| p.kind == CheckKind::ForeignKey),
                "[sqlite] {}: {:?}",
                case.name,
                found.problems
            );
        }
    }
}

/// A damaged page: the root page of an index the server never reads in these checks gets an
/// invalid page type. `PRAGMA integrity_check` names it.
#[tokio::test]
async fn a_damaged_page_is_reported_on_sqlite() {
    let seeded = seeded_sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let data = seeded.copy(dir.path());
    let url = Store::dir_url(&data).unwrap();
    let mut conn = sqlx::AnyConnection::connect(&url).await.unwrap();
    let root: i64 = sqlx::query_scalar(
        "SELECT CAST(rootpage AS BIGINT) FROM sqlite_master WHERE name = 'webhook_outbox_due'",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let page_size: i64 =
        sqlx::query_scalar("SELECT CAST(page_size AS BIGINT) FROM pragma_page_size()")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    conn.close().await.unwrap();
    let file = data.join(SQLITE_FILE);
    let mut bytes = std::fs::read(&file).unwrap();
    let at = usize::try_from((root - 1) * page_size).unwrap();
    bytes[at] = 0x07; // not one of the four b-tree page types (2, 5, 10, 13)
    std::fs::write(&file, bytes).unwrap();

    let found = report(&url, &data.join(KEY_FILE)).await;
    assert!(
        found
            .problems
            .iter()
            .any(|p| p.kind == CheckKind::Integrity),
        "{:?}",
        found.problems
    );
    let (ok, text) = command(Some(&data), &url, &data.join(KEY_FILE));
    assert!(!ok && text.contains("PROBLEM integrity"), "{text}");
}

#[tokio::test]
async fn every_corruption_is_reported_on_postgres() {
    let Some(url) =
        warden_store::testing::fresh_postgres_database("every_corruption_is_reported_on_postgres")
            .await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("master.key");
    seed(&url, &key).await;
    let clean = report(&url, &key).await;
    assert_clean("postgres", &clean, &command(None, &url, &key));
    // One database for every case: each corruption is undone before the next (in a
    // transaction rolled back would be simpler, but the check must see it committed).
    for case in cases() {
        let Some(undo) = undo_on_postgres(case.name) else {
            continue;
        };
        corrupt(&url, case.sql).await;
        let found = report(&url, &key).await;
        assert_found("postgres", &case, &found, &command(None, &url, &key));
        corrupt(&url, undo).await;
        let again = report(&url, &key).await;
        assert!(
            again.is_consistent(),
            "[postgres] after undoing {}: {:?}",
            case.name,
            again.problems
        );
    }
}

/// How to put a case back on PostgreSQL (where the cases share one database).
fn undo_on_postgres(name: &str) -> Option<&'static str> {
    Some(match name {
        "user in a missing unit" => {
            "UPDATE users SET unit_id = (SELECT unit_id FROM users WHERE username = 'rep2') \
             WHERE username = 'rep1'"
        }
        "user with a missing manager" => {
            "UPDATE users SET manager_id = (SELECT manager_id FROM users WHERE username = 'rep1') \
             WHERE username = 'rep2'"
        }
        "assignment of a missing role" => "DELETE FROM user_roles WHERE role_id = 9997",
        "assignment to a missing user" => "DELETE FROM user_roles WHERE user_id = 9996",
        "share of a missing record" => "DELETE FROM record_shares WHERE record_id = 9993",
        "share with a missing principal" => "DELETE FROM record_shares WHERE principal_id = 9992",
        "count off by one" => {
            "UPDATE customer_counts SET n = n - 1 WHERE owner_id = \
             (SELECT MIN(owner_id) FROM customer_counts WHERE n > 0)"
        }
        _ => return None,
    })
}
