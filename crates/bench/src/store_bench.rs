//! The store and HTTP half of the benchmark: seeds the generated world into a fresh SQLite
//! database through the store's public API, then measures, through the service, the first
//! list page of four personas (and the page with no permission filter), moving a manager (and
//! proves that no customer row was rewritten), and authorised single reads over HTTP against
//! the real server, started in this process on a loopback port.
//!
//! Everything is measured on one tokio multi-thread runtime with as many workers as CPUs; the
//! HTTP client runs on the same runtime, so it shares the CPUs with the server (the figures
//! say so).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode, Uri};
use indicatif::{ProgressBar, ProgressStyle};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use warden_policy::schema::{schema, Value};
use warden_policy::{
    Action, Condition, Filter, Grant, ObjectType, Permission, Principal, RecordFilter, RecordRef,
    RoleAssignment, RoleId, Scope, Share, ShareAccess, ShareKind, UnitId, UserId,
};
use warden_service::{Config, Subject, UserUpdate, Warden};
use warden_store::keys::MasterKey;
use warden_store::{ListPlan, NewRecord, NewUser, RoleContents, Store};

use crate::report::{ListPageFigures, PersonaFigures, StoreFigures};
use crate::world::{self, roles, World};

/// The password of every seeded user (one argon2id hash, computed once).
pub const PASSWORD: &str = "bench-password-1234";

/// Customers passed to one `Tx::insert_records` call (the progress bar moves per call).
const CUSTOMERS_PER_CALL: usize = 20_000;
/// Customers per transaction.
const CUSTOMERS_PER_TX: usize = 200_000;

/// The page size of the list figures (the brief's "first page (50)").
const PAGE: u32 = 50;

/// Options of the store half.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Timed repetitions of each first page (at least 30).
    pub list_repetitions: usize,
    /// Moves of the manager timed (half there, half back).
    pub moves: usize,
    /// Concurrent keep-alive HTTP connections.
    pub http_connections: usize,
    /// Untimed warm-up, then timed load.
    pub http_warmup: Duration,
    pub http_duration: Duration,
    /// At most this many requests in the timed window, whatever the duration.
    pub http_max_requests: u64,
    /// Readable customers sampled per logged-in user.
    pub http_ids_per_user: usize,
    /// Keep the seeded database (its directory is printed) instead of deleting it.
    pub keep_db: bool,
    /// Manual shares and team places seeded on customers (the standard world's 100,000).
    pub shares: usize,
    /// Timed runs of each kind of what-if.
    pub whatif_runs: usize,
}

/// The ids the database gave to the world's dense indexes.
struct Seeded {
    store: Store,
    dir: tempfile::TempDir,
    users: Vec<UserId>,
    units: Vec<UnitId>,
    /// Database ids of the world's roles, in the model's order.
    roles: Vec<RoleId>,
    customers: Vec<i64>,
}

/// A user of the world, by dense index.
struct People<'a> {
    world: &'a World,
    /// People below each user (subtree size minus one).
    below: Vec<usize>,
    /// Customers owned by each user.
    owned: Vec<usize>,
}

impl<'a> People<'a> {
    fn new(world: &'a World) -> Self {
        let below = world
            .pre
            .iter()
            .zip(&world.last)
            .map(|(p, l)| (l - p) as usize)
            .collect();
        let mut owned = vec![0usize; world.model.users.len()];
        for (owner, _) in &world.customers {
            owned[World::user_index(*owner)] += 1;
        }
        People {
            world,
            below,
            owned,
        }
    }

    fn roles(&self, i: usize) -> Vec<i64> {
        let mut held: Vec<i64> = self.world.model.users[i]
            .roles
            .iter()
            .map(|a| a.role.0)
            .collect();
        held.sort_unstable();
        held
    }

    fn holds(&self, i: usize, role: i64) -> bool {
        self.roles(i).contains(&role)
    }

    fn only(&self, i: usize, role: i64) -> bool {
        self.roles(i) == [role]
    }

    fn count(&self) -> usize {
        self.below.len()
    }

    /// The middle of `candidates` by `key` (ties broken by index): a typical one.
    fn median_by(&self, mut candidates: Vec<usize>, key: impl Fn(usize) -> usize) -> Option<usize> {
        candidates.sort_by_key(|&i| (key(i), i));
        candidates.get(candidates.len() / 2).copied()
    }

    /// A rep: a leaf who holds only Sales Rep and owns customers; the median by customers.
    fn rep(&self) -> Option<usize> {
        let candidates = (0..self.count())
            .filter(|&i| self.below[i] == 0 && self.owned[i] > 0 && self.only(i, roles::SALES_REP))
            .collect();
        self.median_by(candidates, |i| self.owned[i])
    }

    /// A supervisor: a holder of only Sales Supervisor on the lowest level where one has
    /// reports; the median by people below.
    fn supervisor(&self) -> Option<usize> {
        let holders: Vec<usize> = (0..self.count())
            .filter(|&i| self.below[i] > 0 && self.only(i, roles::SALES_SUPERVISOR))
            .collect();
        let lowest = holders.iter().map(|&i| self.world.level[i]).max()?;
        let candidates = holders
            .into_iter()
            .filter(|&i| self.world.level[i] == lowest)
            .collect();
        self.median_by(candidates, |i| self.below[i])
    }

    /// A manager: a holder of only Sales Manager with at least 1,000 people below (the one
    /// with the fewest such; else any holder of Sales Manager); in small worlds, the one with
    /// the most people below.
    fn manager(&self) -> Option<usize> {
        let holders: Vec<usize> = (0..self.count())
            .filter(|&i| self.below[i] > 0 && self.holds(i, roles::SALES_MANAGER))
            .collect();
        let pure: Vec<usize> = holders
            .iter()
            .copied()
            .filter(|&i| self.only(i, roles::SALES_MANAGER))
            .collect();
        for group in [&pure, &holders] {
            if let Some(i) = group
                .iter()
                .copied()
                .filter(|&i| self.below[i] >= 1_000)
                .min_by_key(|&i| (self.below[i], i))
            {
                return Some(i);
            }
        }
        for group in [&pure, &holders] {
            if let Some(i) = group.iter().copied().max_by_key(|&i| (self.below[i], i)) {
                return Some(i);
            }
        }
        None
    }

    /// An administrator (scope `all`): the first holder of Administrator.
    fn admin(&self) -> Option<usize> {
        (0..self.count()).find(|&i| self.holds(i, roles::ADMINISTRATOR))
    }

    /// People to move `moved` under, best first: outside its subtree, not its manager,
    /// holding a `subordinates` role (no Administrator), on its manager's level (other branch
    /// heads), then on its own level.
    fn new_bosses(&self, moved: usize) -> Vec<usize> {
        let world = self.world;
        let Some(manager) = world.model.users[moved].manager.map(World::user_index) else {
            return Vec::new();
        };
        let inside =
            |i: usize| world.pre[moved] <= world.pre[i] && world.pre[i] <= world.last[moved];
        let eligible = |i: usize| {
            i != manager
                && !inside(i)
                && (self.holds(i, roles::SALES_MANAGER) || self.holds(i, roles::SALES_SUPERVISOR))
                && !self.holds(i, roles::ADMINISTRATOR)
        };
        let mut out = Vec::new();
        for level in [world.level[manager], world.level[moved]] {
            out.extend((0..self.count()).filter(|&i| world.level[i] == level && eligible(i)));
        }
        out
    }
}

/// The dense index of a unit id of the world (unit `j` has id `j + 1`).
fn unit_index(unit: UnitId) -> usize {
    (unit.0 - 1) as usize
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub(crate) fn round(value: f64, decimals: i32) -> f64 {
    let factor = 10f64.powi(decimals);
    (value * factor).round() / factor
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

const INDUSTRIES: &[&str] = &[
    "Manufacturing",
    "Retail",
    "Logistics",
    "Finance",
    "Healthcare",
    "Education",
    "Energy",
    "Hospitality",
];
const REGIONS: &[&str] = &["North", "South", "East", "West", "Central", "Overseas"];
const STATUSES: &[&str] = &["prospect", "active", "inactive"];

/// The stored values of customer `k` (dense index): realistic sizes, sensitive fields empty.
fn customer_values(k: usize) -> Vec<Value> {
    let n = k + 1;
    let mut values = vec![Value::Null; schema(ObjectType::Customers).fields.len()];
    let set = |values: &mut Vec<Value>, field: &str, value: Value| {
        if let Some((i, _)) = schema(ObjectType::Customers).field(field) {
            values[i] = value;
        }
    };
    set(&mut values, "name", Value::Text(format!("Customer {n}")));
    set(
        &mut values,
        "email",
        Value::Text(format!("contact{n}@example.com")),
    );
    set(&mut values, "phone", Value::Text(format!("+1 555 {n:07}")));
    set(
        &mut values,
        "industry",
        Value::Text(INDUSTRIES[k % INDUSTRIES.len()].to_owned()),
    );
    set(
        &mut values,
        "region",
        Value::Text(REGIONS[(k / 7) % REGIONS.len()].to_owned()),
    );
    set(
        &mut values,
        "status",
        Value::Text(STATUSES[(k / 3) % STATUSES.len()].to_owned()),
    );
    values
}

/// One argon2id hash of [`PASSWORD`], with the library's defaults (as the service hashes).
fn password_hash() -> Result<String> {
    use argon2::password_hash::{rand_core::OsRng, PasswordHasher, SaltString};
    let salt = SaltString::generate(&mut OsRng);
    argon2::Argon2::default()
        .hash_password(PASSWORD.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow!("hashing the password: {e}"))
}

fn dir_size_mb(dir: &Path) -> Option<f64> {
    let entries = std::fs::read_dir(dir).ok()?;
    let bytes: u64 = entries
        .flatten()
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum();
    Some(bytes as f64 / 1024.0 / 1024.0)
}

/// Seeds the world; returns the store and the id mapping, and fills the seeding figures.
async fn seed(world: &World, shares: usize, figures: &mut StoreFigures) -> Result<Seeded> {
    let hash = password_hash()?;
    let dir = tempfile::tempdir().context("creating a temporary directory")?;
    // A fresh master key per run: the benchmark's database is thrown away with its directory.
    let store = Store::open_dir(dir.path(), &MasterKey::generate()).await?;
    eprintln!(
        "seeding SQLite in {}: {} units, {} roles, {} users, {} customers…",
        dir.path().display(),
        world.model.units.len(),
        world.model.roles.len(),
        world.model.users.len(),
        world.customers.len()
    );
    let started = Instant::now();

    let mut tx = store.begin().await?;
    let mut unit_ids: HashMap<UnitId, UnitId> = HashMap::new();
    let mut units = Vec::with_capacity(world.model.units.len());
    for unit in &world.model.units {
        let parent = match unit.parent {
            Some(p) => Some(
                *unit_ids
                    .get(&p)
                    .ok_or_else(|| anyhow!("unit {:?} comes before its parent", unit.id))?,
            ),
            None => None,
        };
        let id = tx.insert_unit(&unit.name, parent, world::NOW).await?;
        unit_ids.insert(unit.id, id);
        units.push(id);
    }
    let mut role_ids: HashMap<RoleId, RoleId> = HashMap::new();
    let mut roles = Vec::with_capacity(world.model.roles.len());
    for role in &world.model.roles {
        // The world's Administrator holds the whole system, as the demo's does: it may manage
        // users (the move below is made by it). Functional permissions change no record scope.
        // It may also share every customer (the what-if of a share is asked by it); no request
        // of the check half asks about sharing, so the engines still decide the same world.
        let (permissions, grants) = if role.id == RoleId(roles::ADMINISTRATOR) {
            let mut grants = role.grants.clone();
            grants.push(Grant {
                object: ObjectType::Customers,
                action: Action::Share,
                scope: Scope::All,
            });
            (Permission::ALL.to_vec(), grants)
        } else {
            (role.permissions.clone(), role.grants.clone())
        };
        let id = tx
            .insert_role(
                &role.name,
                "",
                RoleContents {
                    grants: &grants,
                    permissions: &permissions,
                    fields: &role.fields,
                },
                world::NOW,
            )
            .await?;
        role_ids.insert(role.id, id);
        roles.push(id);
    }
    let mut user_ids: HashMap<UserId, UserId> = HashMap::new();
    let mut users = Vec::with_capacity(world.model.users.len());
    for user in &world.model.users {
        let manager = match user.manager {
            Some(m) => Some(
                *user_ids
                    .get(&m)
                    .ok_or_else(|| anyhow!("user {:?} comes before their manager", user.id))?,
            ),
            None => None,
        };
        let unit = *unit_ids
            .get(&user.unit)
            .ok_or_else(|| anyhow!("user {:?} has an unknown unit", user.id))?;
        let id = tx
            .insert_user(
                &NewUser {
                    username: user.username.clone(),
                    display_name: user.username.clone(),
                    unit,
                    manager,
                    password_hash: hash.clone(),
                },
                world::NOW,
            )
            .await?;
        let assignments = user
            .roles
            .iter()
            .map(|a| {
                Ok(RoleAssignment {
                    role: *role_ids
                        .get(&a.role)
                        .ok_or_else(|| anyhow!("unknown role {:?}", a.role))?,
                    expires_at: a.expires_at,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        tx.set_user_roles(id, &assignments).await?;
        user_ids.insert(user.id, id);
        users.push(id);
    }
    tx.bump_epoch().await?;
    tx.commit().await?;
    let org = started.elapsed();

    let bar = ProgressBar::new(world.customers.len() as u64);
    if let Ok(style) =
        ProgressStyle::with_template("    seed [{bar:40}] {pos}/{len} customers ({per_sec}, {eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    let customers_started = Instant::now();
    let mut customers = Vec::with_capacity(world.customers.len());
    for (t, in_tx) in world.customers.chunks(CUSTOMERS_PER_TX).enumerate() {
        let mut tx = store.begin().await?;
        for (c, chunk) in in_tx.chunks(CUSTOMERS_PER_CALL).enumerate() {
            let first = t * CUSTOMERS_PER_TX + c * CUSTOMERS_PER_CALL;
            let records: Vec<NewRecord> = chunk
                .iter()
                .enumerate()
                .map(|(k, (owner, unit))| NewRecord {
                    customer_id: None,
                    owner: users[World::user_index(*owner)],
                    unit: units[unit_index(*unit)],
                    values: customer_values(first + k),
                })
                .collect();
            let ids = tx
                .insert_records(ObjectType::Customers, &records, world::NOW)
                .await?;
            ensure!(
                ids.len() == records.len(),
                "{} ids for {} customers",
                ids.len(),
                records.len()
            );
            customers.extend(ids);
            bar.inc(chunk.len() as u64);
        }
        tx.commit().await?;
    }
    bar.finish_and_clear();
    let customers_time = customers_started.elapsed();

    let shares_started = Instant::now();
    let planned = plan_shares(world, shares, &users, &units, &roles, &customers);
    let mut tx = store.begin().await?;
    tx.insert_shares(ObjectType::Customers, &planned, world::NOW)
        .await?;
    tx.commit().await?;
    figures.shares = Some(store.share_count().await?);
    figures.seed_shares_s = Some(round(shares_started.elapsed().as_secs_f64(), 2));

    let total = started.elapsed();
    figures.seed_s = Some(round(total.as_secs_f64(), 2));
    figures.seed_org_s = Some(round(org.as_secs_f64(), 2));
    figures.seed_customers_per_s =
        Some(world.customers.len() as f64 / customers_time.as_secs_f64().max(1e-9));
    figures.db_size_mb = dir_size_mb(dir.path());
    eprintln!(
        "seeded in {:.1} s (organisation {:.1} s, customers {:.1} s, {} shares {:.1} s)",
        total.as_secs_f64(),
        org.as_secs_f64(),
        customers_time.as_secs_f64(),
        figures.shares.unwrap_or(0),
        shares_started.elapsed().as_secs_f64()
    );
    Ok(Seeded {
        store,
        dir,
        users,
        units,
        roles,
        customers,
    })
}

/// `count` shares on random customers, from their own stream (the world's seed, salted), so
/// the world's requests are unchanged: 85% with one user (one in ten of those a team place),
/// 14% with a unit (and the units below it), 1% with a role other than the Administrator;
/// 80% read, 20% edit. Duplicates are dropped by the store.
fn plan_shares(
    world: &World,
    count: usize,
    users: &[UserId],
    units: &[UnitId],
    roles: &[RoleId],
    customers: &[i64],
) -> Vec<(i64, Share)> {
    let mut rng = ChaCha8Rng::seed_from_u64(world.spec.seed ^ 0x5348_4152_4553);
    let roles: Vec<RoleId> = world
        .model
        .roles
        .iter()
        .zip(roles)
        .filter(|(role, _)| role.id != RoleId(roles::ADMINISTRATOR))
        .map(|(_, id)| *id)
        .collect();
    if customers.is_empty() || users.is_empty() {
        return Vec::new();
    }
    (0..count)
        .map(|_| {
            let record = customers[rng.gen_range(0..customers.len())];
            let pick = rng.gen_range(0..100);
            let (kind, principal) = if pick < 85 || (pick >= 99 && roles.is_empty()) {
                let kind = if rng.gen_bool(0.1) {
                    ShareKind::Team
                } else {
                    ShareKind::Share
                };
                (kind, Principal::User(users[rng.gen_range(0..users.len())]))
            } else if pick < 99 {
                (
                    ShareKind::Share,
                    Principal::Unit(units[rng.gen_range(0..units.len())]),
                )
            } else {
                (
                    ShareKind::Share,
                    Principal::Role(roles[rng.gen_range(0..roles.len())]),
                )
            };
            let access = if rng.gen_bool(0.2) {
                ShareAccess::Edit
            } else {
                ShareAccess::Read
            };
            (
                record,
                Share {
                    kind,
                    principal,
                    access,
                },
            )
        })
        .collect()
}

pub(crate) async fn subject(warden: &Warden, user: UserId) -> Result<Subject> {
    let snapshot = warden.current_snapshot().await?;
    let username = snapshot
        .user(user)
        .ok_or_else(|| anyhow!("user {user:?} is not in the snapshot"))?
        .username()
        .to_owned();
    Ok(Subject {
        user,
        username,
        snapshot,
        now: world::NOW,
        client: std::net::IpAddr::from([127, 0, 0, 1]),
        session_hash: String::new(),
        mfa_pending: false,
        viewer: None,
    })
}

/// Times `repetitions` first pages for `user` (after three untimed ones); checks the page.
async fn measure_persona(
    warden: &Warden,
    user: UserId,
    people_below: usize,
    repetitions: usize,
) -> Result<(f64, PersonaFigures)> {
    let store = warden.store();
    let subject = subject(warden, user).await?;
    let filter = subject
        .snapshot
        .filter(user, Action::Read, ObjectType::Customers, subject.now);
    let visible = store.count_customers(&filter.filter).await?;
    let through_shares = visible
        - store
            .count_customers(&filter.filter.without_shares())
            .await?;
    let plan = store.list_plan(&filter, PAGE).await?;
    let query_plan = if plan == ListPlan::Empty {
        String::new()
    } else {
        store
            .explain_list_plan(&filter.filter, plan == ListPlan::WalkIds)
            .await?
            .join(" / ")
    };
    let mut times = Vec::with_capacity(repetitions);
    for i in 0..repetitions + 3 {
        let started = Instant::now();
        let page = warden
            .list_records(&subject, ObjectType::Customers, None, Some(PAGE))
            .await?;
        let elapsed = started.elapsed();
        if i < 3 {
            let expected = (visible as usize).min(PAGE as usize);
            ensure!(
                page.items.len() == expected,
                "{}: a first page of {} items, expected {expected}",
                subject.username,
                page.items.len()
            );
            for item in &page.items {
                ensure!(
                    subject
                        .snapshot
                        .check(
                            user,
                            Action::Read,
                            ObjectType::Customers,
                            &item.record.record_ref(),
                            subject.now
                        )
                        .is_allowed(),
                    "{}: the page holds customer {} which check refuses",
                    subject.username,
                    item.record.id
                );
            }
        } else {
            times.push(ms(elapsed));
        }
    }
    times.sort_by(f64::total_cmp);
    let p50 = round(percentile(&times, 50.0), 3);
    let mut store_times = Vec::with_capacity(repetitions);
    for i in 0..repetitions + 3 {
        let started = Instant::now();
        let page = store
            .list_records(ObjectType::Customers, &filter, None, PAGE)
            .await?;
        let elapsed = started.elapsed();
        ensure!(
            page.items.len() == (visible as usize).min(PAGE as usize),
            "{}: the store's first page has {} items",
            subject.username,
            page.items.len()
        );
        if i >= 3 {
            store_times.push(ms(elapsed));
        }
    }
    store_times.sort_by(f64::total_cmp);
    Ok((
        p50,
        PersonaFigures {
            username: subject.username,
            visible,
            people_below,
            plan: plan.as_str().to_owned(),
            query_plan,
            p99_ms: round(percentile(&times, 99.0), 3),
            through_shares,
            store_ms_p50: round(percentile(&store_times, 50.0), 3),
        },
    ))
}

/// Count, sum of versions and of update times of every customer: equal before and after a
/// move when no customer row was rewritten.
async fn customer_checksum(dir: &Path) -> Result<(i64, i64, i64)> {
    use sqlx::{Connection as _, Row as _};
    let file = dir.join("warden.db");
    ensure!(file.exists(), "{} is missing", file.display());
    let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&file);
    let mut conn = sqlx::SqliteConnection::connect_with(&options).await?;
    let row = sqlx::query(
        "SELECT COUNT(*), COALESCE(SUM(version), 0), COALESCE(SUM(updated_at % 1000003), 0) FROM customers",
    )
    .fetch_one(&mut conn)
    .await?;
    let sums = (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
    conn.close().await?;
    Ok(sums)
}

/// Moves `moved` under `boss` as the administrator, and times it until a list by the new boss
/// reflects it: from the start of `Warden::update_user` (which commits the change, bumps the
/// epoch and reloads the snapshot) through the new boss's first page on a fresh snapshot to
/// their exact visible count, which must be `expected`.
async fn timed_move(
    warden: &Warden,
    admin: UserId,
    moved: &str,
    boss: UserId,
    expected: i64,
) -> Result<f64> {
    let admin = subject(warden, admin).await?;
    let boss_name = admin
        .snapshot
        .user(boss)
        .ok_or_else(|| anyhow!("no new boss"))?
        .username()
        .to_owned();
    let started = Instant::now();
    let outcome = warden
        .update_user(
            &admin,
            moved,
            UserUpdate {
                manager: Some(Some(boss_name.clone())),
                ..UserUpdate::default()
            },
        )
        .await?;
    if !matches!(outcome, warden_service::Outcome::Done(_)) {
        return Err(anyhow!("the move was held for approval"));
    }
    let boss_subject = subject(warden, boss).await?;
    let page = warden
        .list_records(&boss_subject, ObjectType::Customers, None, Some(PAGE))
        .await?;
    let filter =
        boss_subject
            .snapshot
            .filter(boss, Action::Read, ObjectType::Customers, world::NOW);
    let visible = warden.store().count_customers(&filter.filter).await?;
    let elapsed = started.elapsed();
    ensure!(
        visible == expected,
        "after moving {moved} under {boss_name}, {boss_name} sees {visible} customers, expected {expected}"
    );
    ensure!(
        !page.items.is_empty() || expected == 0,
        "{boss_name}'s first page is empty"
    );
    Ok(ms(elapsed))
}

/// The moved person's subtree as an owner condition (database ids).
fn subtree_owners(world: &World, seeded: &Seeded, moved: usize) -> Vec<UserId> {
    let mut owners: Vec<UserId> = (0..world.model.users.len())
        .filter(|&i| world.pre[moved] <= world.pre[i] && world.pre[i] <= world.last[moved])
        .map(|i| seeded.users[i])
        .collect();
    owners.sort_unstable();
    owners
}

async fn measure_move(
    world: &World,
    people: &People<'_>,
    seeded: &Seeded,
    warden: &Warden,
    moves: usize,
    figures: &mut StoreFigures,
) -> Result<()> {
    let (Some(moved), Some(admin)) = (people.manager(), people.admin()) else {
        eprintln!("no manager to move in this world: move_manager_ms is not measured");
        return Ok(());
    };
    let Some(old_boss) = world.model.users[moved].manager.map(World::user_index) else {
        return Ok(());
    };
    let store = warden.store();
    let name = world.model.users[moved].username.clone();
    let old_boss_id = seeded.users[old_boss];
    let snapshot = warden.current_snapshot().await?;
    let owners = subtree_owners(world, seeded, moved);
    let moved_records = store
        .count_customers(&Filter::Any(vec![Condition::OwnerIn(owners.clone())]))
        .await?;
    let old_filter = snapshot.filter(old_boss_id, Action::Read, ObjectType::Customers, world::NOW);
    let old_before = store.count_customers(&old_filter.filter).await?;
    // The new boss: the first candidate who does not see the moved records already (through
    // a unit grant), and what they must see after the move: what they saw, plus those.
    let mut chosen = None;
    for boss in people.new_bosses(moved) {
        let boss_id = seeded.users[boss];
        let filter = snapshot.filter(boss_id, Action::Read, ObjectType::Customers, world::NOW);
        let Filter::Any(conditions) = &filter.filter else {
            continue;
        };
        let before = store.count_customers(&filter.filter).await?;
        let mut union = conditions.clone();
        union.push(Condition::OwnerIn(owners.clone()));
        let after = store.count_customers(&Filter::Any(union)).await?;
        if after > before {
            chosen = Some((boss, boss_id, after));
            break;
        }
    }
    let Some((boss, boss_id, boss_after)) = chosen else {
        eprintln!("nobody to move {name} under in this world: move_manager_ms is not measured");
        return Ok(());
    };
    eprintln!(
        "moving {name} ({} below, {moved_records} customers) between {} and {}, {moves} times…",
        people.below[moved], world.model.users[old_boss].username, world.model.users[boss].username
    );
    let before = customer_checksum(seeded.dir.path()).await?;
    let mut times = Vec::with_capacity(moves);
    for i in 0..moves.max(2) {
        let time = if i % 2 == 0 {
            timed_move(warden, seeded.users[admin], &name, boss_id, boss_after).await?
        } else {
            timed_move(warden, seeded.users[admin], &name, old_boss_id, old_before).await?
        };
        times.push(time);
    }
    // Leave the organisation as generated (the HTTP phase follows).
    if times.len() % 2 == 1 {
        timed_move(warden, seeded.users[admin], &name, old_boss_id, old_before).await?;
    }
    let after = customer_checksum(seeded.dir.path()).await?;
    if before != after {
        bail!(
            "moving a manager rewrote customer rows: (count, sum of versions, sum of update times) \
             was {before:?}, is {after:?}"
        );
    }
    times.sort_by(f64::total_cmp);
    figures.move_manager_ms = Some(round(percentile(&times, 50.0), 2));
    figures.move_manager_ms_max = times.last().map(|t| round(*t, 2));
    figures.move_manager_moves = times.len();
    figures.move_manager_user = Some(name);
    figures.move_manager_new_boss = Some(world.model.users[boss].username.clone());
    figures.move_manager_people = Some(people.below[moved]);
    figures.move_manager_records = Some(moved_records);
    Ok(())
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

async fn send(sender: &mut Sender, request: Request<Full<Bytes>>) -> Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

fn get(uri: &Uri, token: &HeaderValue) -> Result<Request<Full<Bytes>>> {
    Ok(Request::builder()
        .method(Method::GET)
        .uri(uri.clone())
        .header(HOST, "127.0.0.1")
        .header(AUTHORIZATION, token.clone())
        .body(Full::new(Bytes::new()))?)
}

/// Logs in over HTTP; returns the `Authorization` header value.
async fn login(addr: SocketAddr, username: &str) -> Result<HeaderValue> {
    let mut sender = connect(addr).await?;
    let body = serde_json::json!({ "username": username, "password": PASSWORD }).to_string();
    let request = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/login")
        .header(HOST, "127.0.0.1")
        .header(CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(body)))?;
    let (status, body) = send(&mut sender, request).await?;
    ensure!(
        status == StatusCode::OK,
        "login as {username}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    let json: serde_json::Value = serde_json::from_slice(&body)?;
    let token = json["token"]
        .as_str()
        .ok_or_else(|| anyhow!("login as {username}: no token"))?;
    Ok(HeaderValue::from_str(&format!("Bearer {token}"))?)
}

/// Up to `n` customers `user` may read (database ids), sampled evenly at random.
fn readable_sample(
    world: &World,
    seeded: &Seeded,
    warden_snapshot: &warden_policy::Snapshot,
    user: UserId,
    n: usize,
    seed: u64,
) -> Vec<i64> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut sample = Vec::with_capacity(n);
    let mut seen = 0usize;
    for (k, (owner, unit)) in world.customers.iter().enumerate() {
        let record = RecordRef::new(
            seeded.users[World::user_index(*owner)],
            seeded.units[unit_index(*unit)],
        );
        if !warden_snapshot
            .check(
                user,
                Action::Read,
                ObjectType::Customers,
                &record,
                world::NOW,
            )
            .is_allowed()
        {
            continue;
        }
        seen += 1;
        if sample.len() < n {
            sample.push(seeded.customers[k]);
        } else {
            let j = rng.gen_range(0..seen);
            if j < n {
                sample[j] = seeded.customers[k];
            }
        }
    }
    sample
}

/// One client connection's share of the load.
struct Load {
    token: HeaderValue,
    uris: Arc<Vec<Uri>>,
    start: usize,
    warm_until: Instant,
    deadline: Instant,
    max_requests: u64,
}

/// Latencies (µs) of the requests started in the timed window, and the errors.
async fn drive(addr: SocketAddr, load: Load) -> Result<(Vec<u32>, u64)> {
    let mut sender = connect(addr).await?;
    let mut latencies = Vec::with_capacity(1 << 16);
    let mut errors = 0u64;
    let mut next = load.start;
    loop {
        let started = Instant::now();
        if started >= load.deadline || latencies.len() as u64 >= load.max_requests {
            break;
        }
        let uri = &load.uris[next % load.uris.len()];
        next += 1;
        let (status, _) = send(&mut sender, get(uri, &load.token)?).await?;
        let done = Instant::now();
        if started >= load.warm_until && done <= load.deadline {
            if status == StatusCode::OK {
                latencies.push(
                    u32::try_from(done.duration_since(started).as_micros()).unwrap_or(u32::MAX),
                );
            } else {
                errors += 1;
            }
        }
    }
    Ok((latencies, errors))
}

async fn measure_http(
    world: &World,
    people: &People<'_>,
    seeded: &Seeded,
    warden: &Warden,
    options: &StoreOptions,
    figures: &mut StoreFigures,
) -> Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(warden_server::serve(warden.clone(), listener, async move {
        let _ = stopped.await;
    }));

    // Who logs in: the four personas and a few more reps.
    let mut who: Vec<usize> = [
        people.rep(),
        people.supervisor(),
        people.manager(),
        people.admin(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let more_reps = (0..people.count())
        .filter(|&i| {
            people.below[i] == 0 && people.owned[i] > 0 && people.only(i, roles::SALES_REP)
        })
        .step_by(97);
    for i in more_reps {
        if who.len() >= 8 {
            break;
        }
        if !who.contains(&i) {
            who.push(i);
        }
    }
    ensure!(!who.is_empty(), "nobody to log in as");
    let snapshot = warden.current_snapshot().await?;
    let mut users = Vec::new();
    for &i in &who {
        let name = &world.model.users[i].username;
        let token = login(addr, name).await?;
        let ids = readable_sample(
            world,
            seeded,
            &snapshot,
            seeded.users[i],
            options.http_ids_per_user,
            i as u64,
        );
        if ids.is_empty() {
            continue;
        }
        let uris = ids
            .iter()
            .map(|id| format!("/api/v1/customers/{id}").parse::<Uri>())
            .collect::<Result<Vec<_>, _>>()?;
        users.push((name.clone(), token, Arc::new(uris), ids));
    }
    ensure!(!users.is_empty(), "no logged-in user may read any customer");

    // A sample of each user's ids must answer 200 with that record; a record the rep may not
    // read must answer 404.
    let mut sender = connect(addr).await?;
    for (name, token, uris, ids) in &users {
        for (uri, id) in uris.iter().zip(ids).take(5) {
            let (status, body) = send(&mut sender, get(uri, token)?).await?;
            ensure!(status == StatusCode::OK, "{name} GET {uri}: {status}");
            let json: serde_json::Value = serde_json::from_slice(&body)?;
            ensure!(
                json["id"] == serde_json::json!(id),
                "{name} GET {uri}: {json}"
            );
        }
    }
    if let Some(rep) = people.rep() {
        let rep_id = seeded.users[rep];
        if let Some((_, token, _, _)) = users
            .iter()
            .find(|(n, ..)| *n == world.model.users[rep].username)
        {
            let hidden = world
                .customers
                .iter()
                .position(|(owner, _)| seeded.users[World::user_index(*owner)] != rep_id);
            if let Some(k) = hidden {
                // Read back with its shares: one may have opened it to the rep.
                let record = seeded
                    .store
                    .get_record(ObjectType::Customers, seeded.customers[k])
                    .await?
                    .ok_or_else(|| anyhow!("customer {} is missing", seeded.customers[k]))?;
                if !snapshot
                    .check(
                        rep_id,
                        Action::Read,
                        ObjectType::Customers,
                        &record.record_ref(),
                        world::NOW,
                    )
                    .is_allowed()
                {
                    let uri: Uri = format!("/api/v1/customers/{}", seeded.customers[k]).parse()?;
                    let (status, _) = send(&mut sender, get(&uri, token)?).await?;
                    ensure!(
                        status == StatusCode::NOT_FOUND,
                        "the rep reads a customer they may not: {status}"
                    );
                }
            }
        }
    }
    drop(sender);

    eprintln!(
        "HTTP: {} connections, {} users, {:.1} s warm-up and {:.1} s timed…",
        options.http_connections,
        users.len(),
        options.http_warmup.as_secs_f64(),
        options.http_duration.as_secs_f64()
    );
    let start = Instant::now() + Duration::from_millis(20);
    let warm_until = start + options.http_warmup;
    let deadline = warm_until + options.http_duration;
    let per_task = options.http_max_requests / options.http_connections.max(1) as u64 + 1;
    let loads: Vec<Load> = (0..options.http_connections)
        .map(|c| {
            let (_, token, uris, _) = &users[c % users.len()];
            Load {
                token: token.clone(),
                uris: uris.clone(),
                start: c * 7919,
                warm_until,
                deadline,
                max_requests: per_task,
            }
        })
        .collect();
    // The client tasks run on the server's runtime: they share its worker threads and CPUs.
    // (A client on a thread and runtime of its own measured the same.)
    let tasks: Vec<_> = loads
        .into_iter()
        .map(|load| tokio::spawn(drive(addr, load)))
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        results.push(task.await?);
    }
    let mut latencies: Vec<u32> = Vec::new();
    let mut errors = 0;
    for result in results {
        let (l, e) = result?;
        latencies.extend(l);
        errors += e;
    }
    let ended = Instant::now().min(deadline);
    let window = ended.saturating_duration_since(warm_until).as_secs_f64();
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(10), server).await {
        Ok(joined) => joined??,
        Err(_) => eprintln!("warning: the server did not stop within 10 s"),
    }
    latencies.sort_unstable();
    let as_ms: Vec<f64> = latencies
        .iter()
        .map(|&us| f64::from(us) / 1_000.0)
        .collect();
    let requests = latencies.len() as u64;
    figures.http_get_rps = Some(round(requests as f64 / window.max(1e-9), 0));
    figures.http_get_p50_ms = Some(round(percentile(&as_ms, 50.0), 3));
    figures.http_get_p99_ms = Some(round(percentile(&as_ms, 99.0), 3));
    figures.http_get_max_ms = as_ms.last().map(|v| round(*v, 3));
    figures.http_connections = options.http_connections;
    figures.http_seconds = Some(round(window, 2));
    figures.http_requests = Some(requests);
    figures.http_errors = Some(errors);
    figures.http_users = users.len();
    Ok(())
}

async fn run_async(world: &World, options: &StoreOptions) -> Result<StoreFigures> {
    let mut figures = StoreFigures {
        list_repetitions: options.list_repetitions,
        ..StoreFigures::default()
    };
    let seeded = seed(world, options.shares, &mut figures).await?;
    let warden = Warden::new(seeded.store.clone(), Config::default()).await?;
    let people = People::new(world);

    eprintln!(
        "first pages ({} repetitions each)…",
        options.list_repetitions
    );
    let picks = [
        people.rep(),
        people.supervisor(),
        people.manager(),
        people.admin(),
    ];
    let mut p50s = [None; 4];
    for (slot, pick) in picks.iter().enumerate() {
        if let Some(i) = *pick {
            let (p50, detail) = measure_persona(
                &warden,
                seeded.users[i],
                people.below[i],
                options.list_repetitions,
            )
            .await?;
            p50s[slot] = Some(p50);
            figures.personas[slot] = Some(detail);
        }
    }
    figures.list_page_ms_p50 = ListPageFigures {
        rep: p50s[0],
        supervisor: p50s[1],
        manager: p50s[2],
        admin: p50s[3],
    };
    let all = RecordFilter::everything(ObjectType::Customers);
    let mut times = Vec::with_capacity(options.list_repetitions);
    for i in 0..options.list_repetitions + 3 {
        let started = Instant::now();
        let page = seeded
            .store
            .list_records(ObjectType::Customers, &all, None, PAGE)
            .await?;
        let elapsed = started.elapsed();
        ensure!(
            page.items.len() == world.customers.len().min(PAGE as usize),
            "the unfiltered first page has {} items",
            page.items.len()
        );
        if i >= 3 {
            times.push(ms(elapsed));
        }
    }
    times.sort_by(f64::total_cmp);
    figures.list_page_unfiltered_ms_p50 = Some(round(percentile(&times, 50.0), 3));
    figures.list_page_unfiltered_ms_p99 = Some(round(percentile(&times, 99.0), 3));

    measure_move(
        world,
        &people,
        &seeded,
        &warden,
        options.moves,
        &mut figures,
    )
    .await?;
    crate::whatif_bench::measure(
        &crate::whatif_bench::Setting {
            world,
            warden: &warden,
            admin: people.admin().map(|i| seeded.users[i]),
            rep: people.rep().map(|i| world.model.users[i].username.clone()),
            manager: people.manager(),
            roles: &seeded.roles,
            customers: &seeded.customers,
            runs: options.whatif_runs,
        },
        &mut figures,
    )
    .await?;
    measure_http(world, &people, &seeded, &warden, options, &mut figures).await?;
    seeded.store.close().await;
    if options.keep_db {
        let kept = seeded.dir.keep();
        eprintln!("the seeded database is kept in {}", kept.display());
    }
    Ok(figures)
}

/// Seeds `world` into a fresh SQLite database and measures the store and HTTP figures.
pub fn run(world: &World, options: &StoreOptions) -> Result<StoreFigures> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(run_async(world, options))
}
