//! Encryption at rest: round trips, ciphertexts bound to their row and field, the master key
//! checked at open, master-key rotation (also interrupted) and resumable re-encryption.

use std::path::Path;

use sqlx::Row;
use warden_policy::schema::{schema, Value};
use warden_policy::{ObjectType, UnitId, UserId};
use warden_store::keys::{write_key_file, MasterKey, MASTER_KEY_ENV};
use warden_store::{
    pending_key_file, NewRecord, NewUser, ReencryptCursor, Store, StoreError, CIPHERTEXT_PREFIX,
};

use super::{runtime, NOW};

/// One unit and one user to own records.
async fn owner(store: &Store) -> (UserId, UnitId) {
    let mut tx = store.begin().await.unwrap();
    let unit = tx.insert_unit("Sales", None, NOW).await.unwrap();
    let user = tx
        .insert_user(
            &NewUser {
                username: "rep".into(),
                display_name: "Rep".into(),
                unit,
                manager: None,
                password_hash: "x".into(),
            },
            NOW,
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    (user, unit)
}

fn customer(i: i64, owner: (UserId, UnitId)) -> NewRecord {
    let mut values = vec![Value::Null; schema(ObjectType::Customers).fields.len()];
    let mut set = |field: &str, value: Value| {
        values[schema(ObjectType::Customers).field(field).unwrap().0] = value;
    };
    set("name", Value::Text(format!("Customer {i}")));
    set("credit_limit", Value::Integer(700_000 + i));
    set(
        "bank_account",
        Value::Text(format!("DE89 3704 0044 {i:010}")),
    );
    NewRecord {
        customer_id: None,
        owner: owner.0,
        unit: owner.1,
        values,
    }
}

/// Inserts `n` customers (in one multi-row statement when `n > 1`); returns their ids.
async fn insert_customers(store: &Store, owner: (UserId, UnitId), n: i64) -> Vec<i64> {
    let records: Vec<NewRecord> = (0..n).map(|i| customer(i, owner)).collect();
    let mut tx = store.begin().await.unwrap();
    let ids = tx
        .insert_records(ObjectType::Customers, &records, NOW)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    ids
}

async fn raw_text(store_url_or_dir: &RawDb<'_>, sql: &str) -> Vec<Option<String>> {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&store_url_or_dir.url())
        .await
        .unwrap();
    let rows = sqlx::query(sql).fetch_all(&mut conn).await.unwrap();
    rows.iter().map(|row| row.try_get(0).unwrap()).collect()
}

async fn raw_execute(db: &RawDb<'_>, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url()).await.unwrap();
    sqlx::raw_sql(sql).execute(&mut conn).await.unwrap();
}

/// A database reached behind the store's back, as an attacker with the file would.
enum RawDb<'a> {
    Dir(&'a Path),
    Url(String),
}

impl RawDb<'_> {
    fn url(&self) -> String {
        match self {
            RawDb::Dir(dir) => Store::dir_url(dir).unwrap(),
            RawDb::Url(url) => url.clone(),
        }
    }
}

/// A fresh SQLite directory and (when configured) PostgreSQL database, each with a way in
/// that bypasses the store.
async fn raw_databases(
    test: &str,
) -> Vec<(String, Store, RawDb<'static>, Option<tempfile::TempDir>)> {
    let dir = tempfile::tempdir().unwrap();
    let path: &'static Path = Box::leak(dir.path().to_owned().into_boxed_path());
    let sqlite = Store::open_dir(path, &MasterKey::generate()).await.unwrap();
    let mut out = vec![("sqlite".to_owned(), sqlite, RawDb::Dir(path), Some(dir))];
    if let Some(url) = warden_store::testing::fresh_postgres_database(test).await {
        let store = Store::connect(&url, &MasterKey::generate()).await.unwrap();
        out.push(("postgres".to_owned(), store, RawDb::Url(url), None));
    }
    out
}

#[test]
fn values_round_trip_encrypted_and_bound_to_their_row_and_field() {
    runtime().block_on(async {
        for (name, store, raw, _dir) in raw_databases("encryption_round_trip").await {
            let owner = owner(&store).await;
            let single = insert_customers(&store, owner, 1).await;
            let many = insert_customers(&store, owner, 3).await;
            let (a, b) = (single[0], many[1]);
            for (id, i) in [(a, 0), (b, 1)] {
                let record = store
                    .get_record(ObjectType::Customers, id)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    record.value("credit_limit"),
                    Some(&Value::Integer(700_000 + i)),
                    "{name}"
                );
                assert_eq!(
                    record.value("bank_account"),
                    Some(&Value::Text(format!("DE89 3704 0044 {i:010}"))),
                    "{name}"
                );
            }
            let stored = raw_text(&raw, "SELECT bank_account FROM customers ORDER BY id").await;
            assert!(
                stored
                    .iter()
                    .all(|v| v.as_deref().unwrap().starts_with(CIPHERTEXT_PREFIX)),
                "{name}: {stored:?}"
            );

            // A ciphertext moved to another row does not decrypt there.
            raw_execute(
                &raw,
                &format!(
                    "UPDATE customers SET bank_account = \
                     (SELECT bank_account FROM customers WHERE id = {a}) WHERE id = {b}"
                ),
            )
            .await;
            let err = store
                .get_record(ObjectType::Customers, b)
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::Decrypt { id, .. } if id == b),
                "{name}: {err}"
            );
            assert!(err.to_string().contains("bank_account"), "{name}: {err}");
            // Nor does it in a list: the whole page fails rather than showing a NULL.
            let all = warden_policy::RecordFilter::everything(ObjectType::Customers);
            assert!(store
                .list_records(ObjectType::Customers, &all, None, 50)
                .await
                .is_err());

            // Nor in another field of its own row.
            raw_execute(
                &raw,
                &format!("UPDATE customers SET credit_limit = bank_account WHERE id = {a}"),
            )
            .await;
            let err = store
                .get_record(ObjectType::Customers, a)
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::Decrypt {
                        column: "credit_limit",
                        ..
                    }
                ),
                "{name}: {err}"
            );

            // Plain text written behind the store's back is refused too.
            raw_execute(
                &raw,
                &format!(
                    "UPDATE customers SET bank_account = 'DE00 plain' WHERE id = {}",
                    many[2]
                ),
            )
            .await;
            let err = store
                .get_record(ObjectType::Customers, many[2])
                .await
                .unwrap_err();
            assert!(err.to_string().contains("not encrypted"), "{name}: {err}");
        }
    });
}

#[test]
fn contracts_updates_and_totp_secrets_are_encrypted() {
    runtime().block_on(async {
        for (name, store, raw, _dir) in raw_databases("encryption_contracts").await {
            let owner = owner(&store).await;
            let customer = insert_customers(&store, owner, 1).await[0];
            let contract = schema(ObjectType::Contracts);
            let mut values = vec![Value::Null; contract.fields.len()];
            values[contract.field("name").unwrap().0] = Value::Text("Frame".into());
            values[contract.field("value").unwrap().0] = Value::Integer(4_250_000);
            values[contract.field("terms").unwrap().0] =
                Value::Text("net 30, penalty clause seven".into());
            let mut tx = store.begin().await.unwrap();
            let inserted = tx
                .insert_record(
                    ObjectType::Contracts,
                    &NewRecord {
                        customer_id: Some(customer),
                        owner: owner.0,
                        unit: owner.1,
                        values,
                    },
                    NOW,
                )
                .await
                .unwrap();
            assert_eq!(
                inserted.value("terms"),
                Some(&Value::Text("net 30, penalty clause seven".into())),
                "{name}"
            );
            let terms = contract.field("terms").unwrap().0;
            let updated = tx
                .update_record(
                    ObjectType::Contracts,
                    inserted.id,
                    inserted.version,
                    &warden_store::RecordChanges {
                        values: vec![(terms, Value::Text("net 60".into()))],
                        ..Default::default()
                    },
                    NOW + 1,
                )
                .await
                .unwrap();
            assert_eq!(
                updated.value("terms"),
                Some(&Value::Text("net 60".into())),
                "{name}"
            );
            assert_eq!(
                updated.value("value"),
                Some(&Value::Integer(4_250_000)),
                "{name}"
            );
            tx.set_totp_pending(owner.0, "JBSWY3DPEHPK3PXPJBSWY3DP")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let totp = store.totp_state(owner.0).await.unwrap();
            assert_eq!(
                totp.secret.as_deref(),
                Some("JBSWY3DPEHPK3PXPJBSWY3DP"),
                "{name}"
            );
            for sql in [
                "SELECT terms FROM contracts",
                "SELECT value FROM contracts",
                "SELECT totp_secret FROM users",
            ] {
                for value in raw_text(&raw, sql).await.into_iter().flatten() {
                    assert!(
                        value.starts_with(CIPHERTEXT_PREFIX),
                        "{name}: {sql}: {value}"
                    );
                }
            }
        }
    });
}

#[test]
fn a_wrong_master_key_is_refused_with_both_fingerprints() {
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let right = MasterKey::generate();
        let wrong = MasterKey::generate();
        let store = Store::open_dir(dir.path(), &right).await.unwrap();
        insert_customers(&store, owner(&store).await, 2).await;
        store.close().await;
        let err = Store::open_dir(dir.path(), &wrong).await.unwrap_err();
        let message = err.to_string();
        assert!(
            matches!(err, StoreError::WrongMasterKey { .. }),
            "{message}"
        );
        assert!(
            message.contains("does not open this database")
                && message.contains(&wrong.fingerprint())
                && message.contains(&right.fingerprint()),
            "{message}"
        );
        assert!(!message.contains(&right.to_hex()) && !message.contains(&wrong.to_hex()));
        let again = Store::open_dir(dir.path(), &right).await.unwrap();
        assert!(again.get_record(ObjectType::Customers, 1).await.is_ok());
    });
}

#[test]
fn rewrapping_moves_the_database_to_the_new_master_key_atomically() {
    runtime().block_on(async {
        for (name, store, raw, _dir) in raw_databases("encryption_rewrap").await {
            let ids = insert_customers(&store, owner(&store).await, 5).await;
            let before = raw_text(&raw, "SELECT bank_account FROM customers ORDER BY id").await;
            let new = MasterKey::generate();
            assert_eq!(store.rewrap_data_keys(&new).await.unwrap(), 1, "{name}");
            assert_eq!(
                store.rewrap_data_keys(&new).await.unwrap(),
                0,
                "{name}: idempotent"
            );
            assert_eq!(store.master_fingerprint(), new.fingerprint(), "{name}");
            // The values themselves are untouched: only the data keys are re-wrapped.
            let after = raw_text(&raw, "SELECT bank_account FROM customers ORDER BY id").await;
            assert_eq!(before, after, "{name}");
            let fingerprints = raw_text(&raw, "SELECT master_fingerprint FROM data_keys").await;
            assert!(
                fingerprints
                    .iter()
                    .all(|f| f.as_deref() == Some(new.fingerprint().as_str())),
                "{name}"
            );
            for id in ids {
                assert!(store
                    .get_record(ObjectType::Customers, id)
                    .await
                    .unwrap()
                    .is_some());
            }
        }
    });
}

#[test]
fn reencryption_interrupted_and_resumed_leaves_every_value_readable() {
    runtime().block_on(async {
        for (name, store, raw, _dir) in raw_databases("encryption_reencrypt").await {
            let owner = owner(&store).await;
            let ids = insert_customers(&store, owner, 120).await;
            let mut tx = store.begin().await.unwrap();
            tx.set_totp_pending(owner.0, "JBSWY3DPEHPK3PXP")
                .await
                .unwrap();
            tx.commit().await.unwrap();
            let first = store.active_data_key();
            let target = store.start_reencryption().await.unwrap();
            assert_ne!(target, first, "{name}");
            assert_eq!(store.rows_to_reencrypt().await.unwrap(), 121, "{name}");
            // One batch, then "killed".
            let mut cursor = ReencryptCursor::default();
            assert_eq!(
                store.reencrypt_batch(&mut cursor, 50).await.unwrap(),
                Some(50),
                "{name}"
            );
            // Counts are of values: two per customer, and the TOTP secret.
            let status = store.key_status().await.unwrap();
            assert_eq!(
                status
                    .keys
                    .iter()
                    .map(|k| (k.id, k.state.as_str(), k.values))
                    .collect::<Vec<_>>(),
                vec![(first, "retired", 141), (target, "active", 100)],
                "{name}"
            );
            // Resumed by a new run: the same target, the rest moved.
            let resumed = store.start_reencryption().await.unwrap();
            assert_eq!(resumed, target, "{name}: resumed, not restarted");
            let mut cursor = ReencryptCursor::default();
            while store
                .reencrypt_batch(&mut cursor, 50)
                .await
                .unwrap()
                .is_some()
            {}
            assert_eq!(store.rows_to_reencrypt().await.unwrap(), 0, "{name}");
            let status = store.key_status().await.unwrap();
            assert_eq!(
                status
                    .keys
                    .iter()
                    .map(|k| (k.id, k.values))
                    .collect::<Vec<_>>(),
                vec![(first, 0), (target, 241)],
                "{name}"
            );
            for value in raw_text(&raw, "SELECT bank_account FROM customers").await {
                assert!(
                    value
                        .unwrap()
                        .starts_with(&format!("{CIPHERTEXT_PREFIX}{target}:")),
                    "{name}"
                );
            }
            for (i, id) in ids.iter().enumerate() {
                let record = store
                    .get_record(ObjectType::Customers, *id)
                    .await
                    .unwrap()
                    .unwrap();
                assert_eq!(
                    record.value("credit_limit"),
                    Some(&Value::Integer(700_000 + i as i64)),
                    "{name}"
                );
            }
            assert_eq!(
                store.totp_state(owner.0).await.unwrap().secret.as_deref(),
                Some("JBSWY3DPEHPK3PXP")
            );
            // A second rotation starts a third key.
            let third = store.start_reencryption().await.unwrap();
            assert!(third > target, "{name}");
        }
    });
}

#[test]
fn a_master_key_rotation_interrupted_before_the_rename_is_finished_at_open() {
    if std::env::var(MASTER_KEY_ENV).is_ok() {
        eprintln!("skipped: {MASTER_KEY_ENV} is set, and it would override the key file");
        return;
    }
    runtime().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let key_file = dir.path().join("master.key");
        let url = Store::dir_url(dir.path()).unwrap();
        let opened = Store::connect_with_key_file(&url, &key_file).await.unwrap();
        assert!(!opened.finished_rotation);
        let store = opened.store;
        let ids = insert_customers(&store, owner(&store).await, 3).await;
        let (old, _) = MasterKey::load_file(&key_file).unwrap();

        // Killed after writing the new key but before re-wrapping: the old key still opens
        // the database, and the next rotation takes the waiting key.
        let pending = pending_key_file(&key_file);
        let waiting = MasterKey::generate();
        write_key_file(&pending, &waiting).unwrap();
        store.close().await;
        let store = Store::connect_with_key_file(&url, &key_file)
            .await
            .unwrap()
            .store;
        assert_eq!(store.master_fingerprint(), old.fingerprint());

        // Killed after re-wrapping, before the rename: the next open finishes it.
        store.rewrap_data_keys(&waiting).await.unwrap();
        store.close().await;
        let opened = Store::connect_with_key_file(&url, &key_file).await.unwrap();
        assert!(opened.finished_rotation);
        assert!(!pending.exists());
        let (now_in_file, _) = MasterKey::load_file(&key_file).unwrap();
        assert_eq!(now_in_file.fingerprint(), waiting.fingerprint());
        for id in &ids {
            assert!(opened
                .store
                .get_record(ObjectType::Customers, *id)
                .await
                .unwrap()
                .is_some());
        }

        // A whole rotation, then the old key no longer opens the database.
        let rotated = opened
            .store
            .rotate_master_key_file(&key_file, None)
            .await
            .unwrap();
        opened.store.close().await;
        assert!(!pending.exists());
        let err = Store::open_dir(dir.path(), &waiting).await.unwrap_err();
        assert!(matches!(err, StoreError::WrongMasterKey { .. }), "{err}");
        let store = Store::open_dir(dir.path(), &rotated).await.unwrap();
        assert!(store
            .get_record(ObjectType::Customers, ids[0])
            .await
            .unwrap()
            .is_some());
        store.close().await;

        // The key file lost: refused, and no new key file is made in its place.
        std::fs::remove_file(&key_file).unwrap();
        let err = Store::connect_with_key_file(&url, &key_file)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("does not exist"), "{err}");
        assert!(!key_file.exists());
    });
}
