//! Differential backends: the same random sequence of operations through the service — creates,
//! updates and deletes (some held for approval), approvals decided, shares given and taken
//! back, list pages and single reads, each by a random demo user — runs on SQLite and on
//! PostgreSQL, and both must answer every step alike and end in the same state: what every
//! demo user sees (ids, versions, field values as shown to them), every record's shares, the
//! approval requests, the organisation as policy-as-code exports it, and the access log entry by
//! entry (with both chains verifying). Skipped, saying so, when `WARDEN_TEST_POSTGRES_URL` is
//! unset. `WARDEN_BACKEND_SEQUENCES` and `WARDEN_BACKEND_STEPS` lengthen the run by hand.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
#![allow(clippy::expect_used, reason = "a failed expect is a failed test")]

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use warden_policy::schema::Value;
use warden_policy::{ObjectType, ShareAccess};
use warden_service::store::keys::MasterKey;
use warden_service::store::{AccessQuery, Store};
use warden_service::{
    ApprovalRole, Config, Outcome, PrincipalName, RecordInput, RecordView, Subject, Warden,
};

const NOW: i64 = 1_800_000_000_000;
const CUSTOMERS: usize = 24;
const REGIONS: [&str; 3] = ["East", "West", "North"];
const STATUSES: [&str; 2] = ["active", "inactive"];

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The demo users, as subjects on the current snapshot at `now`.
async fn subjects(warden: &Warden, users: &[String], now: i64) -> Vec<Subject> {
    let snapshot = warden.current_snapshot().await.unwrap();
    users
        .iter()
        .map(|name| {
            let user = snapshot.user_by_name(name).unwrap();
            Subject {
                user: user.id(),
                username: name.clone(),
                snapshot: snapshot.clone(),
                now,
                client: IpAddr::V4(Ipv4Addr::LOCALHOST),
                session_hash: String::new(),
                mfa_pending: false,
                viewer: None,
            }
        })
        .collect()
}

/// A record as its reader is shown it: nothing that differs by backend for the same data.
fn shown(view: &RecordView) -> String {
    let mut out = format!(
        "#{} v{} owner={} unit={}",
        view.record.id, view.record.version, view.owner_username, view.unit_name
    );
    for (name, value, access) in view.visible_fields() {
        let _ = write!(out, " {name}={value:?}/{access:?}");
    }
    out
}

fn outcome<T>(result: &warden_service::Result<T>, ok: impl Fn(&T) -> String) -> String {
    match result {
        Ok(value) => format!("ok {}", ok(value)),
        Err(error) => format!("error {error:?}"),
    }
}

fn held<T>(outcome: &Outcome<T>, done: impl Fn(&T) -> String) -> String {
    match outcome {
        Outcome::Done(value) => format!("done {}", done(value)),
        Outcome::Pending(approval) => format!(
            "held #{} {} {}: {:?}",
            approval.id, approval.operation, approval.summary, approval.steps
        ),
    }
}

fn some_fields(rng: &mut StdRng) -> Vec<(String, Value)> {
    let text = |v: &str| Value::Text(v.to_owned());
    let mut fields = Vec::new();
    if rng.gen_bool(0.5) {
        fields.push(("region".to_owned(), text(REGIONS[rng.gen_range(0..3)])));
    }
    if rng.gen_bool(0.5) {
        fields.push(("status".to_owned(), text(STATUSES[rng.gen_range(0..2)])));
    }
    if rng.gen_bool(0.3) {
        // Above and below the demo's "credit limit over 100,000 needs approval" policy.
        let limit = if rng.gen_bool(0.5) { 250_000 } else { 5_000 };
        fields.push(("credit_limit".to_owned(), Value::Integer(limit)));
    }
    if rng.gen_bool(0.2) {
        fields.push((
            "name".to_owned(),
            text(&format!("Renamed {} ' OR 1=1 --", rng.gen_range(0..1000))),
        ));
    }
    fields
}

/// Runs `steps` random operations drawn from `seed` on `store` (freshly seeded with the demo),
/// returning one line per step and then the final state.
async fn run(store: Store, seed: u64, steps: usize) -> Vec<String> {
    let seeded = warden_service::demo::seed(&store, CUSTOMERS, "backends-password-1", NOW)
        .await
        .unwrap();
    let warden = Warden::new(store.clone(), Config::default()).await.unwrap();
    let users: Vec<String> = seeded.users.iter().map(|(name, _)| name.clone()).collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut lines = Vec::new();
    let mut now = NOW;
    let mut max_id = CUSTOMERS as i64;
    for step in 0..steps {
        now += 1_000;
        // Shares and approvals change what the snapshot says only through the database, but
        // every step takes a fresh snapshot as the server does per request.
        let people = subjects(&warden, &users, now).await;
        let who = &people[rng.gen_range(0..people.len())];
        // Mostly a record the caller can read (else most steps are refusals), sometimes any.
        let id = match rng.gen_bool(0.75) {
            true => {
                let cursor = rng.gen_range(0..=max_id).to_string();
                match warden
                    .list_records(who, ObjectType::Customers, Some(&cursor), Some(3))
                    .await
                {
                    Ok(page) if !page.items.is_empty() => {
                        page.items[rng.gen_range(0..page.items.len())].record.id
                    }
                    _ => rng.gen_range(1..=max_id + 2),
                }
            }
            false => rng.gen_range(1..=max_id + 2),
        };
        let line = match rng.gen_range(0..9) {
            0 => {
                let mut fields = some_fields(&mut rng);
                fields.retain(|(name, _)| name != "name");
                fields.push((
                    "name".to_owned(),
                    Value::Text(format!("Customer <{step}> \"made\"")),
                ));
                let input = RecordInput {
                    fields,
                    ..RecordInput::default()
                };
                let result = warden
                    .create_record(who, ObjectType::Customers, input)
                    .await;
                if let Ok(Outcome::Done(view)) = &result {
                    max_id = max_id.max(view.record.id);
                }
                format!("create: {}", outcome(&result, |o| held(o, shown)))
            }
            1 | 2 => {
                let input = RecordInput {
                    fields: some_fields(&mut rng),
                    ..RecordInput::default()
                };
                // The version read, or a stale one now and then (a 409 must agree too).
                let version = match warden.get_record(who, ObjectType::Customers, id).await {
                    Ok(view) if rng.gen_bool(0.9) => view.record.version,
                    _ => 1,
                };
                let result = warden
                    .update_record(who, ObjectType::Customers, id, Some(version), input)
                    .await;
                format!("update #{id}: {}", outcome(&result, |o| held(o, shown)))
            }
            3 => {
                let result = warden
                    .delete_record(who, ObjectType::Customers, id, None)
                    .await;
                format!(
                    "delete #{id}: {}",
                    outcome(&result, |o| held(o, |_| String::new()))
                )
            }
            4 => {
                let with = match rng.gen_range(0..3) {
                    0 => PrincipalName::Unit("Sales East".to_owned()),
                    _ => PrincipalName::User(users[rng.gen_range(0..users.len())].clone()),
                };
                let access = if rng.gen_bool(0.7) {
                    ShareAccess::Read
                } else {
                    ShareAccess::Edit
                };
                let result = warden
                    .share_record(who, ObjectType::Customers, id, &with, access)
                    .await;
                format!(
                    "share #{id} with {with:?}: {}",
                    outcome(&result, |s| format!(
                        "#{} {}:{} {:?}",
                        s.id, s.principal_kind, s.principal, s.access
                    ))
                )
            }
            5 => {
                let shares = warden.list_shares(who, ObjectType::Customers, id).await;
                let taken = match &shares {
                    Ok(list) if !list.is_empty() => {
                        let share = &list[rng.gen_range(0..list.len())];
                        let result = warden
                            .revoke_share(who, ObjectType::Customers, id, share.id)
                            .await;
                        outcome(&result, |()| format!("took #{}", share.id))
                    }
                    other => outcome(other, |list| format!("{} shares", list.len())),
                };
                format!("take back on #{id}: {taken}")
            }
            6 => {
                let (inbox, _) = warden
                    .list_approvals(who, Some("pending"), ApprovalRole::Inbox, None, 50)
                    .await
                    .unwrap();
                match inbox.first() {
                    Some(request) => {
                        let approve = rng.gen_bool(0.75);
                        let result = warden
                            .decide_approval(who, request.id, approve, "checked")
                            .await;
                        format!(
                            "decide #{} approve={approve}: {}",
                            request.id,
                            outcome(&result, |v| format!("{} {}", v.id, v.state))
                        )
                    }
                    None => "inbox empty".to_owned(),
                }
            }
            7 => {
                let after = rng.gen_range(0..=max_id);
                let cursor = after.to_string();
                let result = warden
                    .list_records(who, ObjectType::Customers, Some(&cursor), Some(5))
                    .await;
                format!(
                    "list after {after}: {}",
                    outcome(&result, |page| {
                        let items: Vec<String> = page.items.iter().map(shown).collect();
                        format!("{items:?} next {:?}", page.next_cursor)
                    })
                )
            }
            _ => {
                let result = warden.get_record(who, ObjectType::Customers, id).await;
                format!("read #{id}: {}", outcome(&result, shown))
            }
        };
        lines.push(format!("{step} {}: {line}", who.username));
    }
    lines.extend(final_state(&warden, &store, &users, now + 1_000, max_id).await);
    lines
}

/// Everything the two backends must agree on at the end.
async fn final_state(
    warden: &Warden,
    store: &Store,
    users: &[String],
    now: i64,
    max_id: i64,
) -> Vec<String> {
    let mut lines = Vec::new();
    let people = subjects(warden, users, now).await;
    for who in &people {
        let mut cursor: Option<String> = None;
        loop {
            let page = warden
                .list_records(who, ObjectType::Customers, cursor.as_deref(), Some(50))
                .await
                .unwrap();
            for view in &page.items {
                lines.push(format!("sees {}: {}", who.username, shown(view)));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
    }
    let admin = people.iter().find(|p| p.username == "admin").unwrap();
    for id in 1..=max_id {
        if let Ok(shares) = warden.list_shares(admin, ObjectType::Customers, id).await {
            for s in shares {
                lines.push(format!(
                    "share #{} on #{id}: {:?} {}:{} {:?} by {:?}",
                    s.id, s.kind, s.principal_kind, s.principal, s.access, s.created_by
                ));
            }
        }
    }
    let mut cursor = None;
    loop {
        let (requests, next) = warden
            .list_approvals(admin, None, ApprovalRole::All, cursor, 200)
            .await
            .unwrap();
        for r in requests {
            lines.push(format!(
                "request #{} {} {:?} #{:?} by {}: {}",
                r.id, r.operation, r.object, r.record_id, r.requester, r.state
            ));
        }
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    lines.push(format!(
        "policy:\n{}",
        warden.export_policy().await.unwrap()
    ));
    let mut after = None;
    loop {
        let (entries, next) = store
            .access_entries(&AccessQuery {
                actor_id: None,
                actor: None,
                object: None,
                record_id: None,
                action: None,
                from: None,
                to: None,
                after,
                limit: 500,
            })
            .await
            .unwrap();
        for e in entries {
            lines.push(format!(
                "log #{} at {} {} {} {:?} #{:?} {:?} {} {}",
                e.id, e.at, e.actor, e.action, e.object, e.record_id, e.fields, e.outcome, e.detail
            ));
        }
        match next {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    let chain = store.verify_access_log().await.unwrap();
    assert!(
        chain.problem.is_none(),
        "the access log does not verify: {chain:?}"
    );
    lines.push(format!("log verified: {} entries", chain.entries));
    lines
}

#[tokio::test]
async fn sqlite_and_postgres_end_alike() {
    let sequences = env_usize("WARDEN_BACKEND_SEQUENCES", 3) as u64;
    let steps = env_usize("WARDEN_BACKEND_STEPS", 120);
    let mut compared = 0;
    for seed in 0..sequences {
        let Some(url) =
            warden_service::store::testing::fresh_postgres_database(&format!("backends_{seed}"))
                .await
        else {
            eprintln!(
                "sqlite_and_postgres_end_alike: skipped: WARDEN_TEST_POSTGRES_URL is not set"
            );
            return;
        };
        let key = MasterKey::generate();
        let dir = tempfile::tempdir().unwrap();
        let sqlite = run(
            Store::open_dir(dir.path(), &key).await.unwrap(),
            seed,
            steps,
        )
        .await;
        let postgres = run(Store::connect(&url, &key).await.unwrap(), seed, steps).await;
        for (i, (a, b)) in sqlite.iter().zip(&postgres).enumerate() {
            assert_eq!(
                a, b,
                "sequence {seed}: line {i} differs (SQLite left, PostgreSQL right)"
            );
        }
        assert_eq!(
            sqlite.len(),
            postgres.len(),
            "sequence {seed}: lengths differ"
        );
        // The sequence must have done something: a run of refusals alone proves little.
        let changed = sqlite
            .iter()
            .filter(|l| l.contains(": ok done") || l.contains(": ok held"))
            .count();
        assert!(
            changed >= steps / 10,
            "sequence {seed}: only {changed} changes applied or held:\n{}",
            sqlite[..steps].join("\n")
        );
        compared += sqlite.len();
    }
    eprintln!("sqlite_and_postgres_end_alike: {sequences} sequences of {steps} steps, {compared} lines compared, 0 differences");
}

/// SQLite hands a new row the largest id + 1: without the store's high-water mark, deleting the
/// newest customer or share gave its id to the next one (old log entries, approvals and links
/// then named another record). PostgreSQL's sequences never go back; both must behave so.
#[tokio::test]
async fn an_id_is_never_given_twice() {
    let dir = tempfile::tempdir().unwrap();
    let key = MasterKey::generate();
    let mut stores = vec![("sqlite", Store::open_dir(dir.path(), &key).await.unwrap())];
    match warden_service::store::testing::fresh_postgres_database("backends_ids").await {
        Some(url) => stores.push(("postgres", Store::connect(&url, &key).await.unwrap())),
        None => eprintln!("an_id_is_never_given_twice: skipped on PostgreSQL: WARDEN_TEST_POSTGRES_URL is not set"),
    }
    for (name, store) in stores {
        warden_service::demo::seed(&store, 3, "backends-password-1", NOW)
            .await
            .unwrap();
        let warden = Warden::new(store, Config::default()).await.unwrap();
        let users = ["admin".to_owned()];
        let admin = &subjects(&warden, &users, NOW).await[0];
        let create = |n: u32| RecordInput {
            fields: vec![("name".to_owned(), Value::Text(format!("New {n}")))],
            ..RecordInput::default()
        };
        let created = |o: Outcome<RecordView>| match o {
            Outcome::Done(view) => view.record.id,
            Outcome::Pending(_) => panic!("{name}: the admin's create was held"),
        };
        let first = created(
            warden
                .create_record(admin, ObjectType::Customers, create(1))
                .await
                .unwrap(),
        );
        let with = PrincipalName::User("rep1".to_owned());
        let share = warden
            .share_record(
                admin,
                ObjectType::Customers,
                first,
                &with,
                ShareAccess::Read,
            )
            .await
            .unwrap();
        warden
            .revoke_share(admin, ObjectType::Customers, first, share.id)
            .await
            .unwrap();
        let again = warden
            .share_record(
                admin,
                ObjectType::Customers,
                first,
                &with,
                ShareAccess::Read,
            )
            .await
            .unwrap();
        assert!(
            again.id > share.id,
            "{name}: share id {} given again",
            share.id
        );
        let deleted = warden
            .delete_record(admin, ObjectType::Customers, first, None)
            .await
            .unwrap();
        assert!(
            matches!(deleted, Outcome::Done(())),
            "{name}: the admin's delete was held"
        );
        let next = created(
            warden
                .create_record(admin, ObjectType::Customers, create(2))
                .await
                .unwrap(),
        );
        assert!(next > first, "{name}: customer id {first} given again");
    }
}
