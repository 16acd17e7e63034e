//! No sensitive value of the demo appears in plain text in the SQLite file or its WAL: the
//! demo is seeded, its values are read back through the store, and the raw bytes of
//! `warden.db` and `warden.db-wal` are searched for them, before and after a checkpoint.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use std::path::Path;

use warden_policy::schema::Value;
use warden_policy::{ObjectType, RecordFilter};
use warden_service::demo;
use warden_service::store::keys::MasterKey;
use warden_service::store::{Store, SQLITE_FILE};

const NOW: i64 = 1_700_000_000_000;
const TOTP_SECRET: &str = "KRUGKIDROVUWG2ZAMJZG653OEBTG66BANJ2W24DT";

/// Every sensitive value and every customer name (a control: these must be found) of the
/// seeded demo, read back through the store.
async fn demo_values(store: &Store) -> (Vec<String>, Vec<String>) {
    let all = RecordFilter::everything(ObjectType::Customers);
    let (mut sensitive, mut names) = (Vec::new(), Vec::new());
    let mut after = None;
    loop {
        let page = store
            .list_records(ObjectType::Customers, &all, after, 200)
            .await
            .unwrap();
        for record in &page.items {
            for field in ["credit_limit", "bank_account"] {
                match record.value(field) {
                    Some(Value::Integer(n)) => sensitive.push(n.to_string()),
                    Some(Value::Text(text)) => sensitive.push(text.clone()),
                    other => panic!("{field} of {} is {other:?}", record.id),
                }
            }
            if let Some(Value::Text(name)) = record.value("name") {
                names.push(name.clone());
            }
        }
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    (sensitive, names)
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_default()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

/// The sensitive values worth searching for: short numbers such as `5000` also occur inside
/// phone numbers, dates and configuration, so only those that appear in no non-sensitive text
/// are kept.
fn distinctive(sensitive: &[String], names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = sensitive
        .iter()
        .filter(|v| v.len() >= 6)
        .filter(|v| !names.iter().any(|n| n.contains(v.as_str())))
        .cloned()
        .collect();
    out.sort();
    out.dedup();
    out
}

fn assert_absent(bytes: &[u8], values: &[String], what: &str) {
    let found: Vec<&String> = values.iter().filter(|v| contains(bytes, v)).collect();
    assert!(
        found.is_empty(),
        "{} sensitive values in plain text in {what}, e.g. {:?}",
        found.len(),
        found.first()
    );
}

#[test]
fn no_demo_sensitive_value_is_in_the_database_file_or_its_wal() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open_dir(dir.path(), &MasterKey::generate())
            .await
            .unwrap();
        demo::seed(&store, 300, "scan-password-1234", NOW)
            .await
            .unwrap();
        let admin = store.load_model().await.unwrap().users[0].id;
        let mut tx = store.begin().await.unwrap();
        tx.set_totp_pending(admin, TOTP_SECRET).await.unwrap();
        tx.commit().await.unwrap();

        let (sensitive, names) = demo_values(&store).await;
        assert_eq!(sensitive.len(), 600);
        // The approval policies are plain configuration; a number in them (a deadline in
        // milliseconds) may contain a credit limit's digits by chance.
        let mut plain_texts = names.clone();
        for row in store.approval_policies().await.unwrap() {
            plain_texts.push(warden_service::store::policy_to_json(&row.policy).to_string());
        }
        let mut needles = distinctive(&sensitive, &plain_texts);
        assert!(
            needles.len() > 300,
            "only {} distinctive values",
            needles.len()
        );
        needles.push(TOTP_SECRET.to_owned());

        // Before a checkpoint: the WAL holds the freshly written pages.
        let file = dir.path().join(SQLITE_FILE);
        let wal = dir.path().join(format!("{SQLITE_FILE}-wal"));
        let mut before = read(&file);
        let wal_bytes = read(&wal);
        assert!(!wal_bytes.is_empty(), "the WAL is in use");
        before.extend_from_slice(&wal_bytes);
        assert!(
            names.iter().all(|n| contains(&before, n)),
            "the scan sees the data (customer names are stored in plain text)"
        );
        assert_absent(&wal_bytes, &needles, "the WAL");
        assert_absent(
            &before,
            &needles,
            "the database file and WAL before a checkpoint",
        );

        // After a checkpoint (closing the last connection checkpoints and removes the WAL).
        store.close().await;
        let after = read(&file);
        assert!(names.iter().all(|n| contains(&after, n)));
        let mut rest = after.clone();
        rest.extend_from_slice(&read(&wal));
        assert_absent(&rest, &needles, "the database file after a checkpoint");
    });
}
