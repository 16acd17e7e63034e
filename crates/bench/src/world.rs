//! The deterministic benchmark world: an organisation (units, an 8-level reporting tree, roles
//! like the demo's), its customers (only owner and unit are kept) and the requests to decide.
//!
//! Everything comes from one ChaCha8 stream seeded with `--seed`, so the same options always
//! give the same world and the same requests, on every machine.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use warden_policy::{
    Action, Grant, Model, ObjectType, RoleAssignment, RoleDef, RoleId, Scope, Timestamp, UnitDef,
    UnitId, UserDef, UserId,
};

/// The instant every request is decided at (2025-06-15T00:00:00Z).
pub const NOW: Timestamp = 1_749_945_600_000;

/// How many levels the reporting tree has (fewer when there are fewer users).
pub const LEVELS: usize = 8;

/// The actions the requests use.
pub const ACTIONS: [Action; 4] = [Action::Read, Action::Update, Action::Delete, Action::Export];

/// Sizes of a world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorldSpec {
    pub seed: u64,
    pub users: usize,
    pub units: usize,
    pub customers: usize,
    pub requests: usize,
}

/// The roles of the benchmark world, by id. Like the demo's, plus one `unit_tree` role, one
/// `unit` role and one `subordinates` role limited to direct reports.
pub mod roles {
    pub const ADMINISTRATOR: i64 = 1;
    pub const SALES_MANAGER: i64 = 2;
    pub const SALES_SUPERVISOR: i64 = 3;
    pub const TEAM_LEAD: i64 = 4;
    pub const SALES_REP: i64 = 5;
    pub const REGIONAL_DIRECTOR: i64 = 6;
    pub const BRANCH_ASSISTANT: i64 = 7;
}

/// One request: `user` (dense index) does `action` on customer `customer` (dense index).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub user: u32,
    pub action: Action,
    pub customer: u32,
}

/// The generated world. Dense indexes: user `i` has id `i + 1`, unit `j` has id `j + 1`,
/// customer `k` has id `k + 1`.
#[derive(Debug, Clone)]
pub struct World {
    pub spec: WorldSpec,
    /// The model the engine compiles (and the peers are encoded from).
    pub model: Model,
    /// Each customer's owner and unit; nothing else of a customer is kept in memory.
    pub customers: Vec<(UserId, UnitId)>,
    /// The requests, in the order every engine decides them.
    pub requests: Vec<Request>,
    /// The reporting line numbered in pre-order (by this module, independently of the engine):
    /// `pre[i]` is user `i`'s position, `last[i]` the largest position in `i`'s subtree.
    pub pre: Vec<u32>,
    pub last: Vec<u32>,
    /// Reporting-tree level of each user (0 for the head of the organisation).
    pub level: Vec<u32>,
}

impl World {
    /// The dense index of a user id of this world.
    #[inline]
    pub fn user_index(id: UserId) -> usize {
        (id.0 - 1) as usize
    }

    /// The id of a dense user index.
    #[inline]
    pub fn user_id(index: usize) -> UserId {
        UserId(index as i64 + 1)
    }

    /// The id of a dense unit index.
    #[inline]
    pub fn unit_id(index: usize) -> UnitId {
        UnitId(index as i64 + 1)
    }

    /// Number of distinct levels in the reporting tree.
    pub fn depth(&self) -> u32 {
        self.level.iter().copied().max().map_or(0, |d| d + 1)
    }
}

/// The roles' grants on customers.
fn role_defs() -> Vec<RoleDef> {
    use Action::{Delete, Export, Read, Update};
    let subordinates = Scope::Subordinates { depth: None };
    let direct_reports = Scope::Subordinates { depth: Some(1) };
    let role = |id: i64, name: &str, grants: &[(Action, Scope)]| RoleDef {
        id: RoleId(id),
        name: name.to_owned(),
        grants: grants
            .iter()
            .map(|&(action, scope)| Grant {
                object: ObjectType::Customers,
                action,
                scope,
            })
            .collect(),
        permissions: Vec::new(),
        fields: Vec::new(),
    };
    vec![
        role(
            roles::ADMINISTRATOR,
            "Administrator",
            &[
                (Read, Scope::All),
                (Update, Scope::All),
                (Delete, Scope::All),
                (Export, Scope::All),
            ],
        ),
        role(
            roles::SALES_MANAGER,
            "Sales Manager",
            &[
                (Read, subordinates),
                (Update, subordinates),
                (Delete, subordinates),
                (Export, subordinates),
            ],
        ),
        role(
            roles::SALES_SUPERVISOR,
            "Sales Supervisor",
            &[
                (Read, subordinates),
                (Update, subordinates),
                (Export, subordinates),
                (Delete, Scope::Own),
            ],
        ),
        role(
            roles::TEAM_LEAD,
            "Team Lead",
            &[(Read, direct_reports), (Update, direct_reports)],
        ),
        role(
            roles::SALES_REP,
            "Sales Rep",
            &[
                (Read, Scope::Own),
                (Update, Scope::Own),
                (Delete, Scope::Own),
            ],
        ),
        role(
            roles::REGIONAL_DIRECTOR,
            "Regional Director",
            &[(Read, Scope::UnitTree), (Export, Scope::UnitTree)],
        ),
        role(
            roles::BRANCH_ASSISTANT,
            "Branch Assistant",
            &[(Read, Scope::Unit)],
        ),
    ]
}

/// Sizes of the reporting-tree levels: geometric growth, the remainder on the last level.
fn level_sizes(users: usize) -> Vec<usize> {
    let levels = LEVELS.min(users);
    if levels <= 1 {
        return vec![users];
    }
    let total = |ratio: f64| -> f64 { (0..levels).map(|k| ratio.powi(k as i32)).sum() };
    let (mut low, mut high) = (1.0_f64, users as f64);
    for _ in 0..100 {
        let mid = (low + high) / 2.0;
        if total(mid) > users as f64 {
            high = mid;
        } else {
            low = mid;
        }
    }
    let mut sizes: Vec<usize> = (0..levels - 1)
        .map(|k| (low.powi(k as i32).round() as usize).max(1))
        .collect();
    let used: usize = sizes.iter().sum();
    sizes.push(users.saturating_sub(used).max(1));
    // Rounding can overshoot for tiny worlds: take the excess from the widest upper level.
    while sizes.iter().sum::<usize>() > users {
        if let Some(widest) = sizes[..levels - 1]
            .iter_mut()
            .filter(|s| **s > 1)
            .max_by_key(|s| **s)
        {
            *widest -= 1;
        } else {
            break;
        }
    }
    sizes
}

/// Numbers a forest in pre-order, children in index order. Returns `(pre, last)`.
fn preorder(parent: &[Option<u32>]) -> (Vec<u32>, Vec<u32>) {
    let n = parent.len();
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p as usize].push(i as u32),
            None => roots.push(i as u32),
        }
    }
    let mut pre = vec![0u32; n];
    let mut last = vec![0u32; n];
    let mut counter = 0u32;
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for root in roots {
        pre[root as usize] = counter;
        counter += 1;
        stack.push((root, 0));
        while let Some((node, next)) = stack.last_mut() {
            let node = *node as usize;
            if let Some(&child) = children[node].get(*next) {
                *next += 1;
                pre[child as usize] = counter;
                counter += 1;
                stack.push((child, 0));
            } else {
                last[node] = counter - 1;
                stack.pop();
            }
        }
    }
    (pre, last)
}

/// Compressed lists: the members of each group, e.g. the customers of each owner.
struct Groups {
    start: Vec<u32>,
    members: Vec<u32>,
}

impl Groups {
    fn build(groups: usize, keys: impl Iterator<Item = usize> + Clone) -> Self {
        let mut start = vec![0u32; groups + 1];
        for key in keys.clone() {
            start[key + 1] += 1;
        }
        for i in 0..groups {
            start[i + 1] += start[i];
        }
        let mut fill = start.clone();
        let mut members = vec![0u32; start[groups] as usize];
        for (member, key) in keys.enumerate() {
            members[fill[key] as usize] = member as u32;
            fill[key] += 1;
        }
        Groups { start, members }
    }

    fn of(&self, group: usize) -> &[u32] {
        &self.members[self.start[group] as usize..self.start[group + 1] as usize]
    }
}

/// Generates the world of `spec`. `progress` is told about each generated customer and
/// request, in chunks.
pub fn generate(spec: WorldSpec, mut progress: impl FnMut(u64)) -> World {
    assert!(spec.users >= 1, "a world needs at least one user");
    assert!(spec.units >= 1, "a world needs at least one unit");
    assert!(spec.customers >= 1, "a world needs at least one customer");
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);

    // Units: a random recursive tree under unit 0 (each unit hangs below any earlier one), about
    // ln(units) levels deep: five or six for 200 units.
    let mut unit_parent: Vec<Option<u32>> = vec![None];
    for j in 1..spec.units {
        unit_parent.push(Some(rng.gen_range(0..j) as u32));
    }
    let mut unit_children: Vec<Vec<u32>> = vec![Vec::new(); spec.units];
    for (j, p) in unit_parent.iter().enumerate() {
        if let Some(p) = p {
            unit_children[*p as usize].push(j as u32);
        }
    }

    // Reporting tree: level by level; every user of a level gets a manager on the level above
    // (the first ones round-robin so no manager is left without reports, the rest at random).
    let sizes = level_sizes(spec.users);
    let mut manager: Vec<Option<u32>> = Vec::with_capacity(spec.users);
    let mut level: Vec<u32> = Vec::with_capacity(spec.users);
    let mut level_start = Vec::with_capacity(sizes.len());
    for (k, &size) in sizes.iter().enumerate() {
        let start = manager.len();
        level_start.push(start);
        for i in 0..size {
            let m = if k == 0 {
                None
            } else {
                let above = level_start[k - 1];
                let above_size = sizes[k - 1];
                let offset = if i < above_size {
                    i
                } else {
                    rng.gen_range(0..above_size)
                };
                Some((above + offset) as u32)
            };
            manager.push(m);
            level.push(k as u32);
        }
    }
    let (pre, last) = preorder(&manager);

    // Each user's unit: the head sits in the root unit; a report stays in the manager's unit
    // or moves one unit down, so units follow the reporting line loosely.
    let mut unit_of: Vec<u32> = Vec::with_capacity(spec.users);
    for m in &manager {
        let unit = match *m {
            None => 0,
            Some(m) => {
                let theirs = unit_of[m as usize];
                let below = &unit_children[theirs as usize];
                if !below.is_empty() && rng.gen_bool(0.6) {
                    below[rng.gen_range(0..below.len())]
                } else {
                    theirs
                }
            }
        };
        unit_of.push(unit);
    }

    // Roles by level, plus a few extra holders of the unit roles and of Administrator.
    let deepest = sizes.len() as u32 - 1;
    let mut user_roles: Vec<Vec<i64>> = level
        .iter()
        .map(|&k| {
            let main = match k {
                0 => roles::ADMINISTRATOR,
                _ if k == deepest => roles::SALES_REP,
                1 | 2 => roles::SALES_MANAGER,
                3 | 4 => roles::SALES_SUPERVISOR,
                5 => roles::TEAM_LEAD,
                _ => roles::SALES_REP,
            };
            let mut held = vec![main];
            if k == 1 {
                held.push(roles::REGIONAL_DIRECTOR);
            }
            held
        })
        .collect();
    for held in user_roles.iter_mut() {
        if rng.gen_bool(0.03) {
            held.push(roles::BRANCH_ASSISTANT);
        }
        if rng.gen_bool(0.02) {
            held.push(roles::REGIONAL_DIRECTOR);
        }
        if rng.gen_bool(0.0005) {
            held.push(roles::ADMINISTRATOR);
        }
        held.sort_unstable();
        held.dedup();
    }

    let units = (0..spec.units)
        .map(|j| UnitDef {
            id: World::unit_id(j),
            name: format!("Unit {}", j + 1),
            parent: unit_parent[j].map(|p| World::unit_id(p as usize)),
        })
        .collect();
    let users = (0..spec.users)
        .map(|i| UserDef {
            id: World::user_id(i),
            username: format!("user{}", i + 1),
            unit: World::unit_id(unit_of[i] as usize),
            manager: manager[i].map(|m| World::user_id(m as usize)),
            disabled: false,
            portal_account: None,
            roles: user_roles[i]
                .iter()
                .map(|&role| RoleAssignment {
                    role: RoleId(role),
                    expires_at: None,
                })
                .collect(),
        })
        .collect();
    let model = Model {
        epoch: 1,
        units,
        users,
        roles: role_defs(),
        controls: Vec::new(),
        ..Default::default()
    };

    // Customers: nine in ten owned by someone on the deepest level (the reps), the rest by
    // anyone; the unit is the owner's, except for one in twenty filed under another unit.
    let deepest_start = level_start[sizes.len() - 1];
    let mut customers = Vec::with_capacity(spec.customers);
    for k in 0..spec.customers {
        let owner = if rng.gen_bool(0.9) {
            rng.gen_range(deepest_start..spec.users)
        } else {
            rng.gen_range(0..spec.users)
        };
        let unit = if rng.gen_bool(0.05) {
            rng.gen_range(0..spec.units) as u32
        } else {
            unit_of[owner]
        };
        customers.push((World::user_id(owner), World::unit_id(unit as usize)));
        if k % 65_536 == 65_535 {
            progress(65_536);
        }
    }
    progress((spec.customers % 65_536) as u64);

    // Requests: a user picked at random; the record is, in about equal parts, one owned by
    // someone in the user's part of the reporting line (often allowed), one of the user's unit,
    // or any record (mostly denied for everyone but the wide scopes).
    let by_owner = Groups::build(
        spec.users,
        customers.iter().map(|(owner, _)| World::user_index(*owner)),
    );
    let by_unit = Groups::build(
        spec.units,
        customers.iter().map(|(_, unit)| (unit.0 - 1) as usize),
    );
    let mut in_preorder = vec![0u32; spec.users];
    for (i, &p) in pre.iter().enumerate() {
        in_preorder[p as usize] = i as u32;
    }
    let mut requests = Vec::with_capacity(spec.requests);
    for k in 0..spec.requests {
        let user = rng.gen_range(0..spec.users);
        let action = *ACTIONS
            .choose_weighted(&mut rng, |a| match a {
                Action::Read => 55,
                Action::Update => 25,
                _ => 10,
            })
            .expect("the weights are positive");
        let any = |rng: &mut ChaCha8Rng| rng.gen_range(0..spec.customers) as u32;
        let customer = match rng.gen_range(0..100) {
            0..45 => {
                let position = rng.gen_range(pre[user]..=last[user]);
                let owner = in_preorder[position as usize] as usize;
                by_owner
                    .of(owner)
                    .choose(&mut rng)
                    .copied()
                    .unwrap_or_else(|| any(&mut rng))
            }
            45..55 => by_unit
                .of(unit_of[user] as usize)
                .choose(&mut rng)
                .copied()
                .unwrap_or_else(|| any(&mut rng)),
            _ => any(&mut rng),
        };
        requests.push(Request {
            user: user as u32,
            action,
            customer,
        });
        if k % 65_536 == 65_535 {
            progress(65_536);
        }
    }
    progress((spec.requests % 65_536) as u64);

    World {
        spec,
        model,
        customers,
        requests,
        pre,
        last,
        level,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: usize, units: usize, customers: usize) -> WorldSpec {
        WorldSpec {
            seed: 7,
            users,
            units,
            customers,
            requests: 1_000,
        }
    }

    #[test]
    fn the_standard_shape_has_eight_levels() {
        // docs/benchmarks.md quotes these sizes.
        assert_eq!(
            level_sizes(10_000),
            vec![1, 4, 13, 45, 160, 568, 2_021, 7_188]
        );
        for users in [1, 2, 3, 7, 8, 9, 20, 50, 1_000] {
            let sizes = level_sizes(users);
            assert_eq!(sizes.iter().sum::<usize>(), users, "{users}: {sizes:?}");
            assert!(sizes.iter().all(|&s| s >= 1), "{users}: {sizes:?}");
        }
    }

    #[test]
    fn worlds_are_deterministic_and_compile() {
        let a = generate(spec(300, 20, 5_000), |_| {});
        let b = generate(spec(300, 20, 5_000), |_| {});
        assert_eq!(a.model, b.model);
        assert_eq!(a.customers, b.customers);
        assert_eq!(a.requests, b.requests);
        assert_eq!(a.depth(), 8);
        let snapshot = warden_policy::Snapshot::compile(&a.model).unwrap();
        assert_eq!(snapshot.user_count(), 300);
        // The module's own numbering agrees with the engine's view of the reporting line.
        for (i, user) in a.model.users.iter().enumerate() {
            if let Some(m) = user.manager {
                let m = World::user_index(m);
                assert!(a.pre[m] < a.pre[i] && a.last[i] <= a.last[m]);
            }
        }
        let other = generate(
            WorldSpec {
                seed: 8,
                ..spec(300, 20, 5_000)
            },
            |_| {},
        );
        assert_ne!(a.customers, other.customers);
    }

    #[test]
    fn tiny_worlds_work() {
        for users in [1, 2, 5] {
            let w = generate(spec(users, 1, 10), |_| {});
            assert!(warden_policy::Snapshot::compile(&w.model).is_ok());
        }
    }
}
