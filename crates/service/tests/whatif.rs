//! What-if's prediction against what really happens, on random small worlds in a real store
//! (SQLite, and PostgreSQL when `WARDEN_TEST_POSTGRES_URL` is set): worlds with shares and team
//! places, sharing rules (by condition and by unit), restriction rules and portal users; a
//! random change of every kind what-if knows; the predicted gains and losses per user and
//! action must equal those measured by deciding every (user, record) pair with `check` before
//! and after applying the change with the same payload (that enumeration is the test's
//! reference, never what-if's method), and every sample must be a record really gained or lost.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]
#![allow(clippy::expect_used, reason = "a failed expect is a failed test")]

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use warden_policy::schema::{schema, Value};
use warden_policy::{
    Action, Audience, CompareOp, Criteria, FieldAccess, FieldRule, Grant, ObjectType, Permission,
    Principal, RecordFilter, RestrictionRule, RoleAssignment, RoleId, RuleSource, Scope, Share,
    ShareAccess, ShareKind, SharingRule, Snapshot, UnitId, UserId,
};
use warden_service::store::keys::MasterKey;
use warden_service::store::{NewRecord, NewUser, Record, RoleContents, Store};
use warden_service::{
    AudienceInput, Config, Outcome, PrincipalName, RestrictionRuleInput, RoleInput,
    RuleSourceInput, ServiceError, SharingRuleInput, Subject, Warden, WhatIfChange,
};

const NOW: i64 = 1_800_000_000_000;
const WORLDS: u64 = 40;
const REGIONS: [Option<&str>; 3] = [Some("East"), Some("West"), None];
const STATUSES: [Option<&str>; 3] = [Some("active"), Some("inactive"), None];

/// One generated world, in database ids.
struct World {
    admin: UserId,
    users: Vec<(UserId, String)>,
    units: Vec<(UnitId, String)>,
    roles: Vec<(RoleId, String)>,
    customers: Vec<i64>,
}

fn pick<T: Clone>(rng: &mut StdRng, items: &[T]) -> T {
    items[rng.gen_range(0..items.len())].clone()
}

fn scope(rng: &mut StdRng) -> Scope {
    match rng.gen_range(0..6) {
        0 => Scope::Own,
        1 => Scope::Subordinates { depth: None },
        2 => Scope::Subordinates { depth: Some(1) },
        3 => Scope::Unit,
        4 => Scope::UnitTree,
        _ => Scope::All,
    }
}

fn grants(rng: &mut StdRng) -> Vec<Grant> {
    let mut out: Vec<Grant> = Vec::new();
    for _ in 0..rng.gen_range(0..5) {
        let action = pick(rng, Action::ALL);
        if out.iter().all(|g| g.action != action) {
            out.push(Grant {
                object: ObjectType::Customers,
                action,
                scope: scope(rng),
            });
        }
    }
    out
}

fn condition(rng: &mut StdRng) -> Criteria {
    let text = |v: &str| Value::Text(v.to_owned());
    match rng.gen_range(0..4) {
        0 => Criteria::Compare {
            field: "region".into(),
            op: CompareOp::Eq,
            value: REGIONS[rng.gen_range(0..2)].map_or(Value::Null, text),
        },
        1 => Criteria::Compare {
            field: "status".into(),
            op: CompareOp::Eq,
            value: STATUSES[rng.gen_range(0..2)].map_or(Value::Null, text),
        },
        2 => Criteria::Compare {
            field: "vip".into(),
            op: CompareOp::Eq,
            value: Value::Bool(rng.gen()),
        },
        _ => Criteria::Not(Box::new(Criteria::Compare {
            field: "status".into(),
            op: CompareOp::Eq,
            value: text("inactive"),
        })),
    }
}

fn customer_values(rng: &mut StdRng, i: usize) -> Vec<Value> {
    let fields = schema(ObjectType::Customers);
    let mut values = vec![Value::Null; fields.fields.len()];
    let mut set = |name: &str, value: Value| {
        values[fields.field(name).expect("a customer field").0] = value;
    };
    set("name", Value::Text(format!("customer {i}")));
    set(
        "region",
        REGIONS[rng.gen_range(0..3)].map_or(Value::Null, |r| Value::Text(r.into())),
    );
    set(
        "status",
        STATUSES[rng.gen_range(0..3)].map_or(Value::Null, |s| Value::Text(s.into())),
    );
    if rng.gen_bool(0.7) {
        set("vip", Value::Bool(rng.gen()));
    }
    values
}

fn principal(rng: &mut StdRng, world: &World) -> Principal {
    match rng.gen_range(0..3) {
        0 => Principal::User(pick(rng, &world.users).0),
        1 => Principal::Unit(pick(rng, &world.units).0),
        _ => Principal::Role(pick(rng, &world.roles).0),
    }
}

fn access(rng: &mut StdRng) -> ShareAccess {
    if rng.gen() {
        ShareAccess::Edit
    } else {
        ShareAccess::Read
    }
}

fn audience(rng: &mut StdRng, world: &World) -> Audience {
    match rng.gen_range(0..4) {
        0 => Audience::Everyone,
        1 => Audience::Role(pick(rng, &world.roles).0),
        2 => Audience::Unit(pick(rng, &world.units).0),
        _ => Audience::ExceptRole(pick(rng, &world.roles).0),
    }
}

/// Seeds a random world: an administrator (every permission, every record through a role that
/// no restriction names), random units, roles, people, customers with values, shares and team
/// places, sharing and restriction rules, and portal users.
async fn seed(store: &Store, rng: &mut StdRng) -> World {
    let mut tx = store.begin().await.unwrap();
    let mut units: Vec<(UnitId, String)> = Vec::new();
    for i in 0..rng.gen_range(2..6) {
        let parent = (i > 0 && rng.gen_bool(0.8)).then(|| units[rng.gen_range(0..i)].0);
        let name = format!("unit{i}");
        units.push((tx.insert_unit(&name, parent, NOW).await.unwrap(), name));
    }
    let admin_grants: Vec<Grant> = Action::ALL
        .iter()
        .map(|&action| Grant {
            object: ObjectType::Customers,
            action,
            scope: Scope::All,
        })
        .collect();
    let admin_role = tx
        .insert_role(
            "Administrator",
            "",
            RoleContents {
                grants: &admin_grants,
                permissions: Permission::ALL,
                fields: &[],
            },
            NOW,
        )
        .await
        .unwrap();
    let mut roles: Vec<(RoleId, String)> = Vec::new();
    for i in 0..rng.gen_range(1..4) {
        let name = format!("role{i}");
        let grants = grants(rng);
        let id = tx
            .insert_role(
                &name,
                "",
                RoleContents {
                    grants: &grants,
                    permissions: &[],
                    fields: &[],
                },
                NOW,
            )
            .await
            .unwrap();
        roles.push((id, name));
    }
    let admin = tx
        .insert_user(
            &NewUser {
                username: "admin".into(),
                display_name: "admin".into(),
                unit: units[0].0,
                manager: None,
                password_hash: "x".into(),
            },
            NOW,
        )
        .await
        .unwrap();
    tx.set_user_roles(
        admin,
        &[RoleAssignment {
            role: admin_role,
            expires_at: None,
        }],
    )
    .await
    .unwrap();
    let mut users: Vec<(UserId, String)> = vec![(admin, "admin".into())];
    for i in 1..rng.gen_range(3..10) {
        let name = format!("user{i}");
        let manager = rng.gen_bool(0.85).then(|| users[rng.gen_range(0..i)].0);
        let id = tx
            .insert_user(
                &NewUser {
                    username: name.clone(),
                    display_name: name.clone(),
                    unit: pick(rng, &units).0,
                    manager,
                    password_hash: "x".into(),
                },
                NOW,
            )
            .await
            .unwrap();
        let mut held: BTreeSet<RoleId> = BTreeSet::new();
        for _ in 0..rng.gen_range(0..3) {
            held.insert(pick(rng, &roles).0);
        }
        let held: Vec<RoleAssignment> = held
            .into_iter()
            .map(|role| RoleAssignment {
                role,
                expires_at: None,
            })
            .collect();
        tx.set_user_roles(id, &held).await.unwrap();
        users.push((id, name));
    }
    let records: Vec<NewRecord> = (0..rng.gen_range(4..30))
        .map(|i| NewRecord {
            customer_id: None,
            owner: pick(rng, &users).0,
            unit: pick(rng, &units).0,
            values: customer_values(rng, i),
        })
        .collect();
    let customers = tx
        .insert_records(ObjectType::Customers, &records, NOW)
        .await
        .unwrap();
    let mut world = World {
        admin,
        users,
        units,
        roles,
        customers,
    };
    for _ in 0..rng.gen_range(0..8) {
        let share = Share {
            kind: if rng.gen_bool(0.7) {
                ShareKind::Share
            } else {
                ShareKind::Team
            },
            principal: principal(rng, &world),
            access: access(rng),
        };
        let record = pick(rng, &world.customers);
        tx.put_share(ObjectType::Customers, record, share, admin, NOW)
            .await
            .unwrap();
    }
    for i in 0..rng.gen_range(0..3) {
        let rule = SharingRule {
            id: 0,
            name: format!("sharing {i}"),
            object: ObjectType::Customers,
            source: if rng.gen() {
                RuleSource::Criteria(condition(rng))
            } else {
                RuleSource::OwnedByUnit(pick(rng, &world.units).0)
            },
            share_with: principal(rng, &world),
            access: access(rng),
        };
        tx.insert_sharing_rule(&rule, NOW).await.unwrap();
    }
    for i in 0..rng.gen_range(0..3) {
        let rule = RestrictionRule {
            id: 0,
            name: format!("restriction {i}"),
            object: ObjectType::Customers,
            applies_to: audience(rng, &world),
            actions: if rng.gen() {
                vec![Action::Read]
            } else {
                vec![]
            },
            only: condition(rng),
        };
        tx.insert_restriction_rule(&rule, NOW).await.unwrap();
    }
    // Portal users: never the administrator, who makes the changes.
    for _ in 0..rng.gen_range(0..3) {
        let user = world.users[rng.gen_range(1..world.users.len())].0;
        let account = pick(rng, &world.customers);
        tx.set_portal_account(user, Some(account)).await.unwrap();
    }
    tx.bump_epoch().await.unwrap();
    tx.commit().await.unwrap();
    // The administrator holds every permission but stays a target too: keep their index 0.
    world.users.sort_by_key(|(id, _)| *id != admin);
    world
}

fn principal_name(world: &World, principal: Principal) -> PrincipalName {
    let name = |list: &[(i64, &String)], id: i64| {
        list.iter()
            .find(|(i, _)| *i == id)
            .map(|(_, n)| (*n).clone())
            .unwrap()
    };
    match principal {
        Principal::User(id) => PrincipalName::User(name(
            &world
                .users
                .iter()
                .map(|(i, n)| (i.0, n))
                .collect::<Vec<_>>(),
            id.0,
        )),
        Principal::Unit(id) => PrincipalName::Unit(name(
            &world
                .units
                .iter()
                .map(|(i, n)| (i.0, n))
                .collect::<Vec<_>>(),
            id.0,
        )),
        Principal::Role(id) => PrincipalName::Role(name(
            &world
                .roles
                .iter()
                .map(|(i, n)| (i.0, n))
                .collect::<Vec<_>>(),
            id.0,
        )),
    }
}

fn rule_source(rng: &mut StdRng, world: &World) -> RuleSourceInput {
    if rng.gen() {
        RuleSourceInput::When(condition(rng))
    } else {
        RuleSourceInput::OwnedByUnit(pick(rng, &world.units).1)
    }
}

fn audience_input(rng: &mut StdRng, world: &World) -> AudienceInput {
    match rng.gen_range(0..4) {
        0 => AudienceInput::Everyone,
        1 => AudienceInput::Role(pick(rng, &world.roles).1),
        2 => AudienceInput::Unit(pick(rng, &world.units).1),
        _ => AudienceInput::ExceptRole(pick(rng, &world.roles).1),
    }
}

/// A random change of the given kind (0..12), with the fields of its admin call.
async fn change(rng: &mut StdRng, store: &Store, world: &World, kind: u32) -> WhatIfChange {
    let someone = |rng: &mut StdRng| world.users[rng.gen_range(1..world.users.len())].1.clone();
    match kind {
        0 => WhatIfChange::MoveUser {
            user: someone(rng),
            manager: Some(rng.gen_bool(0.8).then(|| pick(rng, &world.users).1)),
            unit: rng.gen_bool(0.5).then(|| pick(rng, &world.units).1),
        },
        1 => WhatIfChange::MoveUnit {
            unit: pick(rng, &world.units).1,
            parent: rng.gen_bool(0.8).then(|| pick(rng, &world.units).1),
        },
        2 => {
            let (id, name) = pick(rng, &world.roles);
            let mut fields = Vec::new();
            if rng.gen() {
                fields.push(FieldRule {
                    object: ObjectType::Customers,
                    field: pick(rng, &["region", "credit_limit", "name"]).into(),
                    access: pick(
                        rng,
                        &[
                            FieldAccess::Hidden,
                            FieldAccess::Masked,
                            FieldAccess::Read,
                            FieldAccess::Write,
                        ],
                    ),
                });
            }
            WhatIfChange::UpdateRole {
                id,
                version: None,
                input: RoleInput {
                    name,
                    description: String::new(),
                    grants: grants(rng),
                    permissions: Vec::new(),
                    fields,
                },
            }
        }
        3 => {
            let mut roles: BTreeSet<String> = BTreeSet::new();
            for _ in 0..rng.gen_range(0..3) {
                roles.insert(pick(rng, &world.roles).1);
            }
            WhatIfChange::SetRoles {
                user: someone(rng),
                roles: roles.into_iter().map(|r| (r, None)).collect(),
            }
        }
        4 | 5 => {
            let existing = store.sharing_rules().await.unwrap();
            let id = (kind == 5 && !existing.is_empty()).then(|| pick(rng, &existing).id);
            WhatIfChange::PutSharingRule {
                id,
                input: SharingRuleInput {
                    name: format!("proposed {}", rng.gen::<u32>()),
                    object: ObjectType::Customers,
                    source: rule_source(rng, world),
                    share_with: principal_name(world, principal(rng, world)),
                    access: access(rng),
                },
            }
        }
        6 => match store.sharing_rules().await.unwrap().first() {
            Some(rule) => WhatIfChange::DeleteSharingRule { id: rule.id },
            None => WhatIfChange::DeleteSharingRule { id: 999 },
        },
        7 => {
            let existing = store.restriction_rules().await.unwrap();
            let id = (rng.gen() && !existing.is_empty()).then(|| pick(rng, &existing).id);
            WhatIfChange::PutRestrictionRule {
                id,
                input: RestrictionRuleInput {
                    name: format!("proposed {}", rng.gen::<u32>()),
                    object: ObjectType::Customers,
                    applies_to: audience_input(rng, world),
                    actions: if rng.gen() {
                        vec![Action::Read]
                    } else {
                        vec![]
                    },
                    only: condition(rng),
                },
            }
        }
        8 => match store.restriction_rules().await.unwrap().first() {
            Some(rule) => WhatIfChange::DeleteRestrictionRule { id: rule.id },
            None => WhatIfChange::DeleteRestrictionRule { id: 999 },
        },
        9 => WhatIfChange::ShareRecord {
            object: ObjectType::Customers,
            id: pick(rng, &world.customers),
            with: principal_name(world, principal(rng, world)),
            access: access(rng),
        },
        10 => {
            let id = pick(rng, &world.customers);
            let shares = store.shares_of(ObjectType::Customers, id).await.unwrap();
            WhatIfChange::RevokeShare {
                object: ObjectType::Customers,
                id,
                share: shares.first().map_or(999_999, |s| s.id),
            }
        }
        _ => WhatIfChange::PutTeamMember {
            object: ObjectType::Customers,
            id: pick(rng, &world.customers),
            user: someone(rng),
            access: access(rng),
        },
    }
}

async fn subject(warden: &Warden, user: UserId) -> Subject {
    let snapshot = warden.current_snapshot().await.unwrap();
    Subject {
        user,
        username: snapshot.user(user).unwrap().username().to_owned(),
        snapshot,
        now: NOW,
        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        session_hash: String::new(),
        mfa_pending: false,
        viewer: None,
    }
}

/// Every customer, read through the store (shares and values with them).
async fn all_customers(store: &Store) -> Vec<Record> {
    let all = RecordFilter::everything(ObjectType::Customers);
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .list_records(ObjectType::Customers, &all, after, 100)
            .await
            .unwrap();
        out.extend(page.items);
        match page.next_cursor {
            Some(cursor) => after = Some(cursor),
            None => return out,
        }
    }
}

/// (username, action) → the set of customers allowed, decided one by one.
fn allowed(snapshot: &Snapshot, records: &[Record]) -> BTreeMap<(String, Action), BTreeSet<i64>> {
    let mut out = BTreeMap::new();
    for user in snapshot.users() {
        for &action in Action::ALL {
            let set: BTreeSet<i64> = records
                .iter()
                .filter(|r| {
                    snapshot
                        .check(
                            user.id(),
                            action,
                            ObjectType::Customers,
                            &r.record_ref(),
                            NOW,
                        )
                        .is_allowed()
                })
                .map(|r| r.id)
                .collect();
            out.insert((user.username().to_owned(), action), set);
        }
    }
    out
}

/// Runs every world on one store kind; returns how many changes were compared.
async fn run(store_for: impl AsyncFn(u64) -> Store, label: &str) -> usize {
    let mut compared = 0;
    let mut kinds_compared: BTreeSet<u32> = BTreeSet::new();
    for seed in 0..WORLDS {
        let mut rng = StdRng::seed_from_u64(seed);
        let store = store_for(seed).await;
        let world = seed_world(&store, &mut rng).await;
        let warden = Warden::new(store.clone(), Config::default()).await.unwrap();
        // Three changes per world, one after the other, each predicted then applied.
        for step in 0..3u64 {
            let kind = ((seed * 3 + step) % 12) as u32;
            let change = change(&mut rng, &store, &world, kind).await;
            let admin = subject(&warden, world.admin).await;
            let report = match warden.what_if(&admin, &change).await {
                Ok(report) => report,
                // A change the admin call would refuse too (an unknown rule or share, a cycle,
                // a portal user given another account's record): nothing to compare.
                Err(
                    ServiceError::Invalid { .. }
                    | ServiceError::NotFound
                    | ServiceError::Forbidden(_),
                ) => continue,
                Err(e) => panic!("{label} world {seed}: what-if of {change:?} failed: {e}"),
            };
            let before = allowed(&admin.snapshot, &all_customers(&store).await);
            let outcome = warden.apply_what_if(&admin, change.clone()).await;
            match outcome {
                Ok(Outcome::Done(())) => {}
                Ok(Outcome::Pending(_)) => panic!("four eyes is off"),
                Err(e) => panic!("{label} world {seed}: applying {change:?} failed: {e}"),
            }
            let after_snapshot = warden.current_snapshot().await.unwrap();
            let after = allowed(&after_snapshot, &all_customers(&store).await);
            let mut real: BTreeMap<(String, Action), (u64, u64)> = BTreeMap::new();
            for (key, was) in &before {
                let is = after.get(key).cloned().unwrap_or_default();
                let gained = is.difference(was).count() as u64;
                let lost = was.difference(&is).count() as u64;
                if gained > 0 || lost > 0 {
                    real.insert(key.clone(), (gained, lost));
                }
            }
            let mut predicted: BTreeMap<(String, Action), (u64, u64)> = BTreeMap::new();
            for c in &report.changes {
                predicted.insert((c.user.clone(), c.action), (c.gained, c.lost));
                let key = (c.user.clone(), c.action);
                let was = &before[&key];
                let is = &after[&key];
                for id in &c.gained_samples {
                    assert!(
                        !was.contains(id) && is.contains(id),
                        "{label} world {seed}: {id} is no gain for {key:?}"
                    );
                }
                for id in &c.lost_samples {
                    assert!(
                        was.contains(id) && !is.contains(id),
                        "{label} world {seed}: {id} is no loss for {key:?}"
                    );
                }
                assert_eq!(
                    c.gained_samples.len() as u64,
                    c.gained.min(5),
                    "{label} world {seed}: gained samples of {key:?}"
                );
            }
            assert_eq!(
                predicted, real,
                "{label} world {seed} step {step}: what-if of {change:?} (predicted left, real right)"
            );
            compared += 1;
            kinds_compared.insert(kind);
        }
        store.close().await;
    }
    eprintln!("{label}: {compared} changes compared, kinds {kinds_compared:?} (of 0..12)");
    assert_eq!(
        kinds_compared.len(),
        12,
        "{label}: every kind of change was compared"
    );
    compared
}

async fn seed_world(store: &Store, rng: &mut StdRng) -> World {
    seed(store, rng).await
}

#[tokio::test]
async fn predicted_diff_equals_the_real_one_on_sqlite() {
    let dirs: std::sync::Mutex<Vec<tempfile::TempDir>> = std::sync::Mutex::new(Vec::new());
    let compared = run(
        async |_seed| {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open_dir(dir.path(), &MasterKey::generate())
                .await
                .unwrap();
            dirs.lock().unwrap().push(dir);
            store
        },
        "sqlite",
    )
    .await;
    assert!(
        compared >= WORLDS as usize,
        "only {compared} changes compared"
    );
}

#[tokio::test]
async fn predicted_diff_equals_the_real_one_on_postgres() {
    if warden_service::store::testing::postgres_url().is_none() {
        eprintln!(
            "predicted_diff_equals_the_real_one_on_postgres: skipped: WARDEN_TEST_POSTGRES_URL is not set"
        );
        return;
    }
    let compared = run(
        async |seed| {
            let url =
                warden_service::store::testing::fresh_postgres_database(&format!("whatif_{seed}"))
                    .await
                    .unwrap();
            Store::connect(&url, &MasterKey::generate()).await.unwrap()
        },
        "postgres",
    )
    .await;
    assert!(
        compared >= WORLDS as usize,
        "only {compared} changes compared"
    );
}
