//! Backups end to end: `warden backup` taken from a running server under concurrent writes,
//! `warden backup verify`, `warden restore` (and its refusals, with the target byte for byte
//! untouched), the restored database served again, scheduled backups, and the PostgreSQL
//! export.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{ConnectOptions, Connection};
use warden_store::keys::MasterKey;

use crate::harness::{id, ids, Api, Backend, Server, REPS};

/// The master key of these tests (and another one, for a foreign backup).
pub const KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";
const OTHER_KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn key_env(key: &str) -> [(&'static str, &str); 1] {
    [("WARDEN_MASTER_KEY", key)]
}

fn fingerprint(key: &str) -> String {
    MasterKey::from_hex(key, "test").unwrap().fingerprint()
}

/// What a command said.
struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ok={}\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.ok, self.stdout, self.stderr
        )
    }
}

/// Runs `warden ARGS` with `WARDEN_MASTER_KEY` set to `key` (unset when `None`).
async fn warden(args: &[&str], key: Option<&str>) -> Ran {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .args(args)
        .env_remove("WARDEN_MASTER_KEY")
        .env_remove("WARDEN_DATABASE_URL")
        .env("WARDEN_LOG", "warn");
    if let Some(key) = key {
        command.env("WARDEN_MASTER_KEY", key);
    }
    let output = command.output().await.expect("run the warden binary");
    Ran {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

async fn open(db: &Path) -> sqlx::SqliteConnection {
    SqliteConnectOptions::new()
        .filename(db)
        .read_only(true)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("open {}: {e}", db.display()))
}

/// The customer ids of a database file.
async fn customer_ids(db: &Path) -> BTreeSet<i64> {
    let mut conn = open(db).await;
    let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM customers")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    ids.into_iter().collect()
}

/// Every file of a directory with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

/// One acknowledged write: the id the server answered and when the answer arrived.
struct Ack {
    id: i64,
    at: Instant,
}

/// Creates customers as each rep until `stop`; returns every acknowledged creation.
async fn write_until(api: Arc<Api>, rep: &'static str, stop: Arc<AtomicBool>) -> Vec<Ack> {
    let mut acks = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let reply = api
            .post(
                rep,
                "/api/v1/customers",
                json!({"name": format!("written by {rep} #{n}")}),
            )
            .await;
        assert_eq!(reply.status, 201, "create as {rep}: {}", reply.text);
        acks.push(Ack {
            id: id(&reply.body),
            at: Instant::now(),
        });
    }
    acks
}

/// The whole story on one demo server: an online backup under concurrent writes, its restore
/// and the restored database served; then every refusal.
pub async fn everything(server: &Server) {
    let work = tempfile::tempdir().unwrap();
    let api = Arc::new(Api::login_everyone(server).await);
    let live_db = server.data_dir().join("warden.db");
    let backup = work.path().join("online.wbk");

    // Writers on every rep; the backup starts while they run and they go on during it.
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = REPS
        .iter()
        .map(|rep| tokio::spawn(write_until(api.clone(), rep, stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let backup_started = Instant::now();
    let ran = warden(
        &[
            "backup",
            "--data",
            path(server.data_dir()),
            "--out",
            path(&backup),
        ],
        Some(KEY),
    )
    .await;
    assert!(ran.ok, "warden backup:\n{ran}");
    assert!(ran.stdout.contains(&fingerprint(KEY)), "{ran}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let mut acks = Vec::new();
    for writer in writers {
        acks.extend(writer.await.unwrap());
    }
    let before: BTreeSet<i64> = acks
        .iter()
        .filter(|a| a.at < backup_started)
        .map(|a| a.id)
        .collect();
    let after = acks.len() - before.len();
    eprintln!(
        "e2e [backup] {} writes acknowledged before the backup started, {after} during and after",
        before.len()
    );
    assert!(
        !before.is_empty() && after > 0,
        "writes on both sides of the backup"
    );
    assert!(!backup.with_extension("wbk.partial").exists());

    // Encrypted: no demo plaintext, not even the SQLite header.
    let bytes = std::fs::read(&backup).unwrap();
    for plain in ["Acme Trading", "SQLite format 3", "written by rep1"] {
        assert!(
            !bytes.windows(plain.len()).any(|w| w == plain.as_bytes()),
            "the backup holds {plain:?} in plain text"
        );
    }

    // Restored into a fresh directory: intact, every write acknowledged before the start, and
    // a prefix of the commit order (ids are given in commit order: one writer, no deletes).
    let restored = work.path().join("restored");
    let ran = warden(
        &[
            "restore",
            "--data",
            path(&restored),
            "--from",
            path(&backup),
        ],
        Some(KEY),
    )
    .await;
    assert!(ran.ok, "warden restore:\n{ran}");
    assert!(ran.stdout.contains("integrity ok"), "{ran}");
    let restored_db = restored.join("warden.db");
    let mut conn = open(&restored_db).await;
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(integrity, "ok");
    let counted: BTreeMap<(i64, i64), i64> = sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT owner_id, unit_id, n FROM customer_counts WHERE n <> 0",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|(o, u, n)| ((o, u), n))
    .collect();
    let actual: BTreeMap<(i64, i64), i64> = sqlx::query_as::<_, (i64, i64, i64)>(
        "SELECT owner_id, unit_id, COUNT(*) FROM customers GROUP BY owner_id, unit_id",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .into_iter()
    .map(|(o, u, n)| ((o, u), n))
    .collect();
    assert_eq!(
        counted, actual,
        "customer_counts agrees with the customers restored"
    );
    conn.close().await.unwrap();
    let restored_ids = customer_ids(&restored_db).await;
    let missing: Vec<_> = before.difference(&restored_ids).collect();
    assert!(
        missing.is_empty(),
        "acknowledged before the backup, not restored: {missing:?}"
    );
    let last = *restored_ids.last().unwrap();
    let live_ids = customer_ids(&live_db).await;
    let prefix: BTreeSet<i64> = live_ids.iter().copied().filter(|i| *i <= last).collect();
    assert_eq!(
        restored_ids, prefix,
        "the restored customers are a prefix of the commits"
    );
    assert!(
        restored_ids.len() < live_ids.len(),
        "later writes are not in the backup"
    );

    // The restored database serves the same data under the same master key.
    let original: Vec<_> = api
        .all_customers("admin", 100)
        .await
        .into_iter()
        .filter(|c| id(c) <= last)
        .collect();
    {
        let again = Server::serve_data(&restored, &key_env(KEY), &[]).await;
        let again_api = Api::login_everyone(&again).await;
        let served = again_api.all_customers("admin", 100).await;
        assert_eq!(ids(&served), restored_ids);
        assert_eq!(
            served, original,
            "the restored server serves the same records"
        );
        let rep1 = again_api.all_customers("rep1", 100).await;
        assert!(
            rep1.iter().any(|c| c["name"] == "Acme Trading"),
            "rep1 sees Acme Trading"
        );
    }

    verify_and_refusals(server, work.path(), &backup, &restored).await;
    scheduled_backups(&restored).await;
}

/// `backup verify` on good, damaged and foreign files; `restore` refusing each with the
/// target byte for byte untouched.
async fn verify_and_refusals(server: &Server, work: &Path, backup: &Path, target: &Path) {
    let ran = warden(&["backup", "verify", path(backup)], Some(KEY)).await;
    assert!(ran.ok, "verify:\n{ran}");
    for expected in ["checksum ok", "integrity ok", "13 users", "SQLite database"] {
        assert!(
            ran.stdout.contains(expected),
            "verify says {expected:?}:\n{ran}"
        );
    }
    let ran = warden(&["backup", "verify", path(backup)], None).await;
    assert!(
        ran.ok && ran.stdout.contains("contents not checked"),
        "{ran}"
    );
    let key_file = work.join("master.key");
    warden_store::keys::write_key_file(&key_file, &MasterKey::from_hex(KEY, "t").unwrap()).unwrap();
    let ran = warden(
        &[
            "backup",
            "verify",
            path(backup),
            "--key-file",
            path(&key_file),
        ],
        None,
    )
    .await;
    assert!(ran.ok && ran.stdout.contains("integrity ok"), "{ran}");

    let good = std::fs::read(backup).unwrap();
    let mut flipped = good.clone();
    let middle = flipped.len() / 2;
    flipped[middle] ^= 0x01;
    let mut magic = good.clone();
    magic[..8].copy_from_slice(b"NOTWARDN");
    let cases: [(&str, Vec<u8>, &str); 4] = [
        ("flipped", flipped, "checksum does not match"),
        (
            "truncated",
            good[..good.len() * 2 / 3].to_vec(),
            "checksum does not match",
        ),
        ("magic", magic, "not a Warden backup"),
        ("empty", Vec::new(), "not a Warden backup"),
    ];
    let untouched = snapshot(target);
    for (name, bytes, message) in cases {
        let bad = work.join(format!("{name}.wbk"));
        std::fs::write(&bad, bytes).unwrap();
        let ran = warden(&["backup", "verify", path(&bad)], Some(KEY)).await;
        assert!(
            !ran.ok && ran.stderr.contains(message),
            "verify {name}:\n{ran}"
        );
        let ran = warden(
            &[
                "restore",
                "--data",
                path(target),
                "--from",
                path(&bad),
                "--force",
            ],
            Some(KEY),
        )
        .await;
        assert!(
            !ran.ok && ran.stderr.contains(message),
            "restore {name}:\n{ran}"
        );
        assert!(ran.stderr.contains("nothing was changed"), "{ran}");
        assert_eq!(
            snapshot(target),
            untouched,
            "restore of {name} changed the target"
        );
    }

    // Another master key: told apart from corruption.
    let foreign = format!(
        "made with another master key (fingerprint {})",
        fingerprint(KEY)
    );
    let ran = warden(&["backup", "verify", path(backup)], Some(OTHER_KEY)).await;
    assert!(
        !ran.ok && ran.stderr.contains(&foreign),
        "verify foreign:\n{ran}"
    );
    let ran = warden(
        &[
            "restore",
            "--data",
            path(target),
            "--from",
            path(backup),
            "--force",
        ],
        Some(OTHER_KEY),
    )
    .await;
    assert!(
        !ran.ok && ran.stderr.contains(&foreign),
        "restore foreign:\n{ran}"
    );
    assert_eq!(snapshot(target), untouched);

    // A database already there: only with --force.
    let ran = warden(
        &["restore", "--data", path(target), "--from", path(backup)],
        Some(KEY),
    )
    .await;
    assert!(!ran.ok && ran.stderr.contains("pass --force"), "{ran}");
    assert_eq!(snapshot(target), untouched);

    // A directory a server is using: refused even with --force.
    let ran = warden(
        &[
            "restore",
            "--data",
            path(server.data_dir()),
            "--from",
            path(backup),
            "--force",
        ],
        Some(KEY),
    )
    .await;
    assert!(
        !ran.ok && ran.stderr.contains("a warden server is using"),
        "{ran}"
    );

    // And with --force on a stopped one: replaced, the old files kept aside.
    let ran = warden(
        &[
            "restore",
            "--data",
            path(target),
            "--from",
            path(backup),
            "--force",
        ],
        Some(KEY),
    )
    .await;
    assert!(ran.ok && ran.stdout.contains("replaced"), "{ran}");
    let names: Vec<String> = snapshot(target)
        .keys()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("warden.db.replaced-")),
        "{names:?}"
    );
}

/// `--backup-every` writes verifiable backups and keeps only the newest `--backup-keep`.
async fn scheduled_backups(data: &Path) {
    let dir = data.join("backups");
    let server = Server::serve_data(
        data,
        &key_env(KEY),
        &["--backup-every", "1s", "--backup-keep", "2"],
    )
    .await;
    let list = || -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default();
        files.sort();
        files
    };
    // At least four intervals, then until exactly two are there (a third lives for the
    // moment between a backup's rename and the pruning after it).
    let started = Instant::now();
    let deadline = started + Duration::from_secs(30);
    let files = loop {
        let files: Vec<PathBuf> = list()
            .into_iter()
            .filter(|f| f.extension().is_some_and(|e| e == "wbk"))
            .collect();
        if started.elapsed() > Duration::from_secs(4) && files.len() == 2 {
            break files;
        }
        assert!(
            Instant::now() < deadline,
            "scheduled backups: {files:?}\n{}",
            server.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("warden-") && name.ends_with(".wbk"),
            "{name}"
        );
    }
    drop(server);
    let ran = warden(&["backup", "verify", path(&files[1])], Some(KEY)).await;
    assert!(ran.ok && ran.stdout.contains("integrity ok"), "{ran}");
}

/// PostgreSQL: `warden export` in the same container, verifiable; scheduled backups refused.
pub async fn postgres_export(url: &str) {
    let server =
        Server::start_with_env(Backend::Postgres(url.to_owned()), &[], &key_env(KEY)).await;
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("export.wbk");
    let ran = warden(
        &["export", "--database-url", url, "--out", path(&out)],
        Some(KEY),
    )
    .await;
    assert!(ran.ok, "export:\n{ran}");
    let bytes = std::fs::read(&out).unwrap();
    assert!(!bytes.windows(12).any(|w| w == b"Acme Trading"));
    let ran = warden(&["backup", "verify", path(&out)], Some(KEY)).await;
    assert!(ran.ok, "verify export:\n{ran}");
    for expected in ["PostgreSQL export", "13 users", "integrity ok"] {
        assert!(ran.stdout.contains(expected), "{expected:?}:\n{ran}");
    }
    let ran = warden(&["backup", "verify", path(&out)], Some(OTHER_KEY)).await;
    assert!(
        !ran.ok && ran.stderr.contains("another master key"),
        "{ran}"
    );
    drop(server);
    let ran = warden(
        &[
            "serve",
            "--database-url",
            url,
            "--backup-every",
            "1h",
            "--listen",
            "127.0.0.1:0",
        ],
        Some(KEY),
    )
    .await;
    assert!(!ran.ok && ran.stderr.contains("pg_dump"), "{ran}");
}
