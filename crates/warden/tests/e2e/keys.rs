//! `warden keys`: a re-encryption of a 20,000-customer demo killed mid-way and run again
//! leaves every value readable and under the new data key.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use warden_policy::schema::Value;
use warden_policy::{ObjectType, RecordFilter};
use warden_store::keys::KEY_FILE;
use warden_store::Store;

const CUSTOMERS: usize = 20_000;

/// A child killed (and reaped) on drop.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn warden() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_warden"));
    command
        .env_remove("WARDEN_MASTER_KEY")
        .env_remove("WARDEN_NEW_MASTER_KEY")
        .env_remove("WARDEN_DATABASE_URL")
        .env("WARDEN_LOG", "warn")
        .stdin(Stdio::null());
    command
}

fn run(args: &[&str], data: &Path) -> Output {
    let output = warden()
        .args(args)
        .arg("--data")
        .arg(data)
        .output()
        .expect("run warden");
    assert!(
        output.status.success(),
        "warden {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// `warden keys status` as `(id, state, values)` rows.
fn status(data: &Path) -> Vec<(i64, String, u64)> {
    let output = run(&["keys", "status"], data);
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            let id = words.first()?.parse().ok()?;
            let values = words.last()?.parse().ok()?;
            Some((id, words.get(1)?.to_string(), values))
        })
        .collect()
}

fn wait_for(path: &Path, text: &str, child: &mut Child, deadline: Duration) {
    let started = Instant::now();
    loop {
        if std::fs::read_to_string(path).is_ok_and(|out| out.contains(text)) {
            return;
        }
        if let Some(status) = child.try_wait().expect("child status") {
            panic!(
                "exited with {status} before printing {text:?}:\n{}",
                std::fs::read_to_string(path).unwrap_or_default()
            );
        }
        assert!(started.elapsed() < deadline, "no {text:?} in {deadline:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every customer's credit limit and bank account, read through the store with the key file.
async fn sensitive_values(data: &Path) -> BTreeMap<i64, (Value, Value)> {
    let url = Store::dir_url(data).unwrap();
    let store = Store::connect_with_key_file(&url, &data.join(KEY_FILE))
        .await
        .unwrap()
        .store;
    let all = RecordFilter::everything(ObjectType::Customers);
    let mut out = BTreeMap::new();
    let mut after = None;
    loop {
        let page = store
            .list_records(ObjectType::Customers, &all, after, 200)
            .await
            .expect("every value decrypts");
        for record in &page.items {
            let value = |field| record.value(field).cloned().unwrap_or(Value::Null);
            out.insert(record.id, (value("credit_limit"), value("bank_account")));
        }
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => break,
        }
    }
    store.close().await;
    out
}

pub async fn reencryption_killed_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    let data: PathBuf = dir.path().join("data");

    // Seed the demo, and stop the server once it is up.
    let seed_out = dir.path().join("seed.out");
    let listen = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let mut seeding = Guard(
        warden()
            .args([
                "demo",
                "--listen",
                &listen,
                "--password",
                "e2e-keys-password-1",
            ])
            .args(["--customers", &CUSTOMERS.to_string()])
            .arg("--data")
            .arg(&data)
            .stdout(std::fs::File::create(&seed_out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_for(
        &seed_out,
        "listening",
        &mut seeding.0,
        Duration::from_secs(300),
    );
    drop(seeding);
    let seed_text = std::fs::read_to_string(&seed_out).unwrap();
    assert!(
        seed_text.contains("a new master key, written to"),
        "{seed_text}"
    );
    assert_eq!(
        status(&data),
        vec![(1, "active".into(), 2 * CUSTOMERS as u64)]
    );
    let before = sensitive_values(&data).await;
    assert_eq!(before.len(), CUSTOMERS);

    // Re-encrypt in small transactions, and kill the command mid-way.
    let rotate_out = dir.path().join("rotate.out");
    let mut rotating = Guard(
        warden()
            .args(["keys", "rotate", "--reencrypt", "--batch-size", "20"])
            .arg("--data")
            .arg(&data)
            .stdout(std::fs::File::create(&rotate_out).unwrap())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    wait_for(
        &rotate_out,
        "Re-encrypting every value under data key 2",
        &mut rotating.0,
        Duration::from_secs(60),
    );
    let started = Instant::now();
    loop {
        let keys = status(&data);
        if keys.iter().any(|(id, _, n)| *id == 2 && *n > 0) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{keys:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(rotating);
    let interrupted = status(&data);
    let on = |keys: &[(i64, String, u64)], id: i64| {
        keys.iter()
            .find(|(k, _, _)| *k == id)
            .map(|(_, state, n)| (state.clone(), *n))
    };
    let (state, left) = on(&interrupted, 1).unwrap();
    assert_eq!(state, "retired");
    assert!(
        left > 0,
        "the kill came after the last batch; nothing was interrupted: {interrupted:?}"
    );

    // Every value still reads, half-way.
    assert_eq!(sensitive_values(&data).await, before);

    // Run again: it resumes with the same data key and finishes.
    let output = run(
        &["keys", "rotate", "--reencrypt", "--batch-size", "500"],
        &data,
    );
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.contains("Re-encrypting every value under data key 2")
            && text.contains("Every value is under data key 2"),
        "{text}"
    );
    assert_eq!(
        status(&data),
        vec![
            (1, "retired".into(), 0),
            (2, "active".into(), 2 * CUSTOMERS as u64)
        ]
    );
    assert_eq!(sensitive_values(&data).await, before);
}
