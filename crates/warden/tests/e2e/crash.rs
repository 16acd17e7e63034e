//! Crash safety: writers create and update customers through the HTTP API of the real server
//! on SQLite and remember every acknowledged write (a 2xx answer); the server is killed with
//! SIGKILL at a random moment, `warden check` runs on the data it left (SQLite's
//! `integrity_check`, foreign keys, orphans, counts, the access log's chain), the server is
//! restarted on the same data, and every acknowledged write must be there whole: each record
//! at the last version acknowledged, with the fields of that version. A write in flight when
//! the server died (no answer) may be there or not, but only whole. `WARDEN_CRASH_ROUNDS`
//! rounds (default 3).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};

use crate::harness::{Api, Backend, Server, REPS};

/// Writer tasks per rep.
const WRITERS_PER_REP: usize = 2;

/// A customer's fields as written: what the server must give back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    version: i64,
    name: String,
    phone: String,
    region: String,
}

impl Written {
    fn from_record(record: &Value) -> Option<Written> {
        Some(Written {
            version: record["version"].as_i64()?,
            name: record["name"].as_str()?.to_owned(),
            phone: record["phone"].as_str()?.to_owned(),
            region: record["region"].as_str()?.to_owned(),
        })
    }
}

/// What a writer knows of one of its records.
#[derive(Debug, Clone)]
struct Known {
    owner: &'static str,
    acked: Written,
    /// An update sent without an answer: it may have committed.
    in_doubt: Option<Written>,
}

/// Everything acknowledged so far, by customer id.
type Ledger = BTreeMap<i64, Known>;

#[derive(Debug, Default)]
struct Figures {
    creates: u64,
    updates: u64,
    in_doubt_applied: u64,
    in_doubt_not_applied: u64,
    lost: Vec<String>,
}

/// One writer: creates and updates its own customers until a request goes unanswered (the
/// server is gone) or `stop` is set. Returns the records it touched and its counts.
async fn writer(
    http: reqwest::Client,
    base: String,
    owner: &'static str,
    token: String,
    tag: String,
    mut mine: Vec<(i64, Known)>,
    stop: Arc<AtomicBool>,
) -> (Vec<(i64, Known)>, u64, u64) {
    let (mut creates, mut updates) = (0, 0);
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let (pick, roll) = {
            let mut rng = rand::thread_rng();
            (rng.gen_range(0..mine.len().max(1)), rng.gen_range(0..10))
        };
        let fields = Written {
            version: 0,
            name: format!("crash {tag}-{seq}"),
            phone: format!("+1 555 {seq:07}"),
            region: format!("region {tag} {seq}"),
        };
        if mine.is_empty() || roll < 3 {
            let sent = http
                .post(format!("{base}/api/v1/customers"))
                .bearer_auth(&token)
                .json(&json!({"name": fields.name, "phone": fields.phone,
                              "region": fields.region, "status": "prospect"}))
                .send()
                .await;
            let Ok(response) = sent else { break };
            let status = response.status().as_u16();
            let Ok(body) = response.json::<Value>().await else {
                break;
            };
            assert_eq!(status, 201, "{owner} creates: {body}");
            let acked = Written::from_record(&body).expect("a created customer");
            assert_eq!(
                acked,
                Written {
                    version: 1,
                    ..fields
                }
            );
            let id = body["id"].as_i64().expect("an id");
            mine.push((
                id,
                Known {
                    owner,
                    acked,
                    in_doubt: None,
                },
            ));
            creates += 1;
        } else {
            let (id, known) = &mut mine[pick];
            let sent = http
                .patch(format!("{base}/api/v1/customers/{id}"))
                .bearer_auth(&token)
                .json(&json!({"version": known.acked.version, "name": fields.name,
                              "phone": fields.phone, "region": fields.region}))
                .send()
                .await;
            let intended = Written {
                version: known.acked.version + 1,
                ..fields
            };
            let answer = match sent {
                Ok(response) => {
                    let status = response.status().as_u16();
                    response.json::<Value>().await.ok().map(|b| (status, b))
                }
                Err(_) => None,
            };
            let Some((status, body)) = answer else {
                known.in_doubt = Some(intended);
                break;
            };
            assert_eq!(status, 200, "{owner} updates {id}: {body}");
            let acked = Written::from_record(&body).expect("an updated customer");
            assert_eq!(acked, intended, "{owner} updates {id}");
            known.acked = acked;
            updates += 1;
        }
    }
    (mine, creates, updates)
}

/// Every customer `user` can list, by id.
async fn listed(api: &Api, user: &str) -> BTreeMap<i64, Value> {
    api.all_customers(user, 200)
        .await
        .into_iter()
        .map(|record| (crate::harness::id(&record), record))
        .collect()
}

/// After a restart: every acknowledged write is there whole; an in-doubt update is there
/// whole or not at all (and becomes the acknowledged state if it is).
async fn verify(api: &Api, ledger: &mut Ledger, figures: &mut Figures, round: usize) {
    // The administrator reads every customer; the reps' sessions stay untouched until their
    // writers' first requests (see `age_sessions`).
    let seen = listed(api, "admin").await;
    for (id, known) in ledger.iter_mut() {
        let found = seen.get(id).and_then(Written::from_record);
        let in_doubt = known.in_doubt.take();
        match found {
            Some(found) if found == known.acked => {
                if in_doubt.is_some() {
                    figures.in_doubt_not_applied += 1;
                }
            }
            Some(found) if Some(&found) == in_doubt.as_ref() => {
                figures.in_doubt_applied += 1;
                known.acked = found;
            }
            other => figures.lost.push(format!(
                "round {round}: customer {id} of {}: acknowledged {:?} (in doubt {:?}), found {:?}",
                known.owner, known.acked, in_doubt, other
            )),
        }
    }
}

/// Moves every session's last use two minutes back (the server is down).
async fn age_sessions(data: &std::path::Path) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let url = warden_store::Store::dir_url(data).expect("the data directory's URL");
    let mut conn = sqlx::AnyConnection::connect(&url)
        .await
        .expect("open the database");
    sqlx::query("UPDATE sessions SET last_used_at = last_used_at - 120000")
        .execute(&mut conn)
        .await
        .expect("age the sessions");
    conn.close().await.expect("close the database");
}

pub async fn rounds() {
    let rounds: usize = std::env::var("WARDEN_CRASH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let started = Instant::now();
    let mut server = Server::start(Backend::Sqlite).await;
    let mut api = Api::login_everyone(&server).await;
    let mut ledger = Ledger::new();
    let mut figures = Figures::default();
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client");
    for round in 1..=rounds {
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for (r, rep) in REPS.iter().enumerate() {
            for w in 0..WRITERS_PER_REP {
                // Each writer owns the records it created; they go back to it every round.
                let tag = format!("r{round}w{r}{w}");
                let mine: Vec<(i64, Known)> = ledger
                    .iter()
                    .filter(|(id, k)| {
                        k.owner == *rep && usize::try_from(**id).unwrap_or(0) % WRITERS_PER_REP == w
                    })
                    .map(|(id, k)| (*id, k.clone()))
                    .collect();
                tasks.push(tokio::spawn(writer(
                    http.clone(),
                    server.base.clone(),
                    rep,
                    api.token(rep).to_owned(),
                    tag,
                    mine,
                    stop.clone(),
                )));
            }
        }
        let delay = rand::thread_rng().gen_range(200..1500);
        tokio::time::sleep(Duration::from_millis(delay)).await;
        server.kill();
        stop.store(true, Ordering::Relaxed);
        for task in tasks {
            let (mine, creates, updates) = task.await.expect("a writer");
            figures.creates += creates;
            figures.updates += updates;
            for (id, known) in mine {
                ledger.insert(id, known);
            }
        }
        // The data as the kill left it, before anything reopens it for serving.
        let (ok, text) = server.check();
        assert!(ok, "round {round}: warden check after the kill:\n{text}");
        // Two minutes pass while the server is down: the first request of every session
        // after the restart also records its use (a write at most once a minute per session),
        // all at once beside the writers' transactions.
        age_sessions(server.data_dir()).await;
        server.restart().await;
        api = api.on(&server);
        verify(&api, &mut ledger, &mut figures, round).await;
        eprintln!(
            "crash round {round}/{rounds}: killed after {delay} ms; {} records, {} acknowledged \
             writes so far, {} lost",
            ledger.len(),
            figures.creates + figures.updates,
            figures.lost.len()
        );
    }
    let (ok, text) = server.check();
    assert!(ok, "after the last round: {text}");
    eprintln!(
        "crash: {rounds} rounds, {} acknowledged writes ({} creates, {} updates), in doubt: {} \
         applied, {} not; {} lost; warden check: {}; {:.0} s",
        figures.creates + figures.updates,
        figures.creates,
        figures.updates,
        figures.in_doubt_applied,
        figures.in_doubt_not_applied,
        figures.lost.len(),
        text.lines().last().unwrap_or_default(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        figures.lost.is_empty(),
        "acknowledged writes lost:\n{}",
        figures.lost.join("\n")
    );
    assert!(
        figures.creates + figures.updates > 0,
        "the writers wrote nothing"
    );
}
