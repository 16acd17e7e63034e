//! The access log's chain: appends from many writers stay one line; altering, removing or
//! inserting one row is found and named; the head and checkpoints are signed with the master
//! key's derived key; archival keeps the rest verifiable; entries written before the chain
//! are sealed when the store opens.

use warden_policy::{ObjectType, UserId};
use warden_store::keys::MasterKey;
use warden_store::{verify_archive, AccessEntry, ArchiveError, ChainProblem, Store};

use super::{databases, NOW};

fn entry(i: i64) -> AccessEntry {
    AccessEntry {
        id: 0,
        at: NOW + i,
        actor_id: Some(UserId(7)),
        actor: "rep1".into(),
        action: "read".into(),
        object: Some(ObjectType::Customers),
        record_id: Some(i),
        fields: vec!["credit_limit".into()],
        client: Some("127.0.0.1".into()),
        outcome: "ok".into(),
        detail: String::new(),
    }
}

async fn append(store: &Store, from: i64, n: i64) {
    let entries: Vec<AccessEntry> = (from..from + n).map(entry).collect();
    let mut tx = store.begin().await.unwrap();
    tx.append_accesses(&entries).await.unwrap();
    tx.commit().await.unwrap();
}

async fn raw(store: &Store, sql: &str) {
    let mut tx = store.begin().await.unwrap();
    tx.execute_raw_for_tests(sql).await.unwrap();
    tx.commit().await.unwrap();
}

async fn problem(store: &Store) -> Option<ChainProblem> {
    store.verify_access_log().await.unwrap().problem
}

fn multi_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn concurrent_appends_form_one_verified_chain_with_checkpoints() {
    multi_thread().block_on(async {
        for (name, store, _dir) in databases("concurrent_appends_chain").await {
            let report = store.verify_access_log().await.unwrap();
            assert_eq!(report.problem, None, "{name}: an empty log is intact");
            let tasks: Vec<_> = (0..8)
                .map(|t| {
                    let store = store.clone();
                    tokio::spawn(async move {
                        for i in 0..20 {
                            // Batches of 1 and of 7: single reads and list pages at once.
                            append(&store, t * 1000 + i * 10, 1 + (i % 2) * 6).await;
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
            let report = store.verify_access_log().await.unwrap();
            assert_eq!(report.problem, None, "{name}");
            assert_eq!(report.entries, 8 * 10 * 8, "{name}: every entry chained");
            assert_eq!(report.last_id, 640, "{name}: ids contiguous");
            append(&store, 0, 500).await;
            let report = store.verify_access_log().await.unwrap();
            assert_eq!(report.problem, None, "{name}");
            assert_eq!(report.checkpoints, 1, "{name}: one checkpoint past 1,000");
            append(&store, 0, 5).await;
            assert_eq!(store.checkpoint_access_log(NOW).await.unwrap(), 1145);
            let report = store.verify_access_log().await.unwrap();
            assert_eq!((report.problem, report.checkpoints), (None, 2), "{name}");
        }
    });
}

#[test]
fn altered_removed_and_inserted_rows_are_named() {
    super::runtime().block_on(async {
        for (name, store, _dir) in databases("altered_removed_inserted").await {
            append(&store, 0, 30).await;
            assert_eq!(problem(&store).await, None, "{name}");

            raw(&store, "UPDATE access_log SET fields = '' WHERE id = 12").await;
            assert!(
                matches!(problem(&store).await, Some(ChainProblem::Altered { id: 12, .. })),
                "{name}: {:?}",
                problem(&store).await
            );
            raw(&store, "UPDATE access_log SET fields = 'credit_limit' WHERE id = 12").await;
            assert_eq!(problem(&store).await, None, "{name}: put back, intact again");

            raw(&store, "UPDATE access_log SET client = '10.0.0.1' WHERE id = 30").await;
            assert!(
                matches!(problem(&store).await, Some(ChainProblem::Altered { id: 30, .. })),
                "{name}: the last entry too"
            );
            raw(&store, "UPDATE access_log SET client = '127.0.0.1' WHERE id = 30").await;

            // A copy of entry 20 kept aside, then removed.
            raw(&store, "CREATE TABLE kept AS SELECT * FROM access_log WHERE id = 20").await;
            raw(&store, "DELETE FROM access_log WHERE id = 20").await;
            assert_eq!(
                problem(&store).await,
                Some(ChainProblem::Removed { id: 20 }),
                "{name}"
            );
            raw(&store, "INSERT INTO access_log SELECT * FROM kept").await;
            assert_eq!(problem(&store).await, None, "{name}: restored");

            raw(&store, "DELETE FROM access_log WHERE id = 30").await;
            assert_eq!(
                problem(&store).await,
                Some(ChainProblem::Removed { id: 30 }),
                "{name}: removing the last entry is seen through the signed head"
            );
            raw(&store, "INSERT INTO access_log SELECT id + 10, at, actor_id, actor, action, object, record_id, fields, client, outcome, detail, prev_hash, hash FROM kept").await;
            raw(&store, "UPDATE access_log SET id = 30 WHERE id = 30").await;
            // Entry 30 is gone and a stranger sits in its place.
            assert!(
                matches!(
                    problem(&store).await,
                    Some(ChainProblem::Altered { id: 30, .. } | ChainProblem::Removed { id: 30 })
                ),
                "{name}: {:?}",
                problem(&store).await
            );
            raw(&store, "DELETE FROM access_log WHERE id = 30").await;
            raw(&store, "INSERT INTO access_log (id, at, actor, action, fields, outcome, detail) VALUES (31, 1, 'mallory', 'read', '', 'ok', '')").await;
            assert!(
                matches!(problem(&store).await, Some(ChainProblem::Removed { id: 30 })),
                "{name}: the first problem in order is named first"
            );
        }
    });
}

#[test]
fn an_inserted_row_and_a_forged_tail_are_caught() {
    super::runtime().block_on(async {
        for (name, store, _dir) in databases("inserted_and_forged").await {
            append(&store, 0, 10).await;
            raw(&store, "INSERT INTO access_log (id, at, actor, action, fields, outcome, detail) VALUES (11, 1, 'mallory', 'read', '', 'ok', '')").await;
            assert!(
                matches!(problem(&store).await, Some(ChainProblem::Inserted { id: 11, .. })),
                "{name}: {:?}",
                problem(&store).await
            );
            raw(&store, "DELETE FROM access_log WHERE id = 11").await;
            // A forger who knows the format rewrites the last entry's content and hash and
            // the head's hash: without the key, the head's signature gives it away.
            raw(&store, "UPDATE access_log SET detail = 'x' WHERE id = 10").await;
            assert!(matches!(problem(&store).await, Some(ChainProblem::Altered { id: 10, .. })));
            // Wrong master key: the head's signature fails.
            raw(&store, "UPDATE access_log SET detail = '' WHERE id = 10").await;
            assert_eq!(problem(&store).await, None, "{name}");
            raw(&store, "UPDATE access_log_head SET mac = '00'").await;
            assert!(
                matches!(problem(&store).await, Some(ChainProblem::Head { .. })),
                "{name}"
            );
        }
    });
}

#[test]
fn archival_keeps_the_rest_verifiable_and_the_archive_is_signed() {
    super::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate();
        let store = Store::open_dir(&dir.path().join("data"), &master)
            .await
            .unwrap();
        append(&store, 0, 1500).await;
        let out = dir.path().join("log-1.jsonl");
        let summary = store
            .archive_access_log(NOW + 1200, &out, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((summary.first_id, summary.last_id), (1, 1200));
        let report = store.verify_access_log().await.unwrap();
        assert_eq!(report.problem, None);
        assert_eq!(
            (report.anchor_id, report.entries),
            (1200, 301),
            "the rest, and the archival's own entry"
        );
        append(&store, 2000, 10).await;
        assert_eq!(
            problem(&store).await,
            None,
            "appends go on after the anchor"
        );
        let archived = verify_archive(&out, Some(&master)).unwrap();
        assert_eq!(archived.entries, 1200);
        assert!(matches!(
            verify_archive(&out, Some(&MasterKey::generate())),
            Err(ArchiveError::Signature(_))
        ));
        // A second archive continues from the first one's last hash.
        let out2 = dir.path().join("log-2.jsonl");
        let second = store
            .archive_access_log(NOW + 1400, &out2, NOW)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((second.first_id, second.last_id), (1201, 1400));
        assert_eq!(verify_archive(&out2, Some(&master)).unwrap().entries, 200);
        assert_eq!(problem(&store).await, None);
        // One changed byte in an entry: the checksum fails.
        let text = std::fs::read_to_string(&out).unwrap();
        std::fs::write(&out, text.replacen("\"rep1\"", "\"rep2\"", 1)).unwrap();
        assert!(matches!(
            verify_archive(&out, None),
            Err(ArchiveError::Checksum)
        ));
        // Deleting the anchor's predecessor chain from the database is refused by the head.
        let mut tx = store.begin().await.unwrap();
        tx.execute_raw_for_tests("UPDATE access_log_head SET anchor_id = 1300")
            .await
            .unwrap();
        tx.commit().await.unwrap();
        assert!(problem(&store).await.is_some());
    });
}

#[test]
fn entries_written_before_the_chain_are_sealed_at_open() {
    super::runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let master = MasterKey::generate();
        let data = dir.path().join("data");
        let store = Store::open_dir(&data, &master).await.unwrap();
        // As a database migrated from 0004 holds them: no hashes, ids with a gap, head unset.
        raw(&store, "INSERT INTO access_log (id, at, actor, action, fields, outcome, detail) VALUES (3, 1, 'manager', 'reveal', 'bank_account', 'ok', ''), (5, 2, 'manager', 'reveal', 'bank_account', 'ok', '')").await;
        raw(&store, "UPDATE access_log_head SET last_id = 5, last_hash = NULL, mac = NULL").await;
        store.close().await;
        let store = Store::open_dir(&data, &master).await.unwrap();
        let report = store.verify_access_log().await.unwrap();
        assert_eq!(report.problem, None);
        assert_eq!((report.entries, report.last_id), (2, 2), "renumbered 1..n");
        append(&store, 0, 3).await;
        assert_eq!(store.verify_access_log().await.unwrap().last_id, 5);
    });
}

#[test]
fn a_master_key_rotation_re_signs_the_log() {
    super::runtime().block_on(async {
        for (name, store, _dir) in databases("rotation_re_signs").await {
            append(&store, 0, 1010).await;
            store
                .rewrap_data_keys(&MasterKey::generate())
                .await
                .unwrap();
            let report = store.verify_access_log().await.unwrap();
            assert_eq!((report.problem, report.checkpoints), (None, 1), "{name}");
            append(&store, 0, 3).await;
            assert_eq!(problem(&store).await, None, "{name}");
        }
    });
}
