//! The compiled snapshot: dense tables, the reporting line and the unit tree numbered in
//! pre-order, and per-role grant tables. Built once per permission epoch, then only read.

use std::collections::HashMap;

use crate::access::{AccessDenial, AccessRules};
use crate::check::{Decision, Denial, GrantReason, Grounds, Reason};
use crate::filter::{Condition, Filter, RecordFilter, SharedWith, Target};
use crate::model::{AccessOwner, Model, RecordRef, RoleAssignment};
use crate::schema::schema;
use crate::sharing::{Audience, Principal, RestrictionRule, RuleSource, ShareAccess, SharingRule};
use crate::{
    Action, Control, FieldAccess, ModelError, ObjectType, Permission, RoleId, Scope, Timestamp,
    UnitId, UserId,
};

/// Maps database ids to dense indexes: a plain vector when ids are dense (the usual case with
/// auto-increment keys), a hash map otherwise.
#[derive(Debug, Clone)]
pub(crate) enum IdIndex {
    Dense(Vec<u32>),
    Sparse(HashMap<i64, u32>),
}

const NO_INDEX: u32 = u32::MAX;

impl IdIndex {
    fn build(ids: impl Iterator<Item = i64> + Clone, len: usize) -> Self {
        let max = ids.clone().max().unwrap_or(0);
        let dense_limit =
            i64::try_from(len.saturating_mul(4).saturating_add(1024)).unwrap_or(i64::MAX);
        if max < dense_limit {
            let size = usize::try_from(max).unwrap_or(0) + 1;
            let mut table = vec![NO_INDEX; size];
            for (position, id) in ids.enumerate() {
                if let Ok(slot) = usize::try_from(id) {
                    table[slot] = position as u32;
                }
            }
            IdIndex::Dense(table)
        } else {
            IdIndex::Sparse(
                ids.enumerate()
                    .map(|(position, id)| (id, position as u32))
                    .collect(),
            )
        }
    }

    #[inline]
    pub(crate) fn get(&self, id: i64) -> Option<u32> {
        match self {
            IdIndex::Dense(table) => {
                let slot = usize::try_from(id).ok()?;
                table.get(slot).copied().filter(|&i| i != NO_INDEX)
            }
            IdIndex::Sparse(map) => map.get(&id).copied(),
        }
    }
}

/// The scopes one role (or the union of several) grants for one object and action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct ScopeSet {
    flags: u8,
    /// Levels below the user covered by `SUBORDINATES`; `u32::MAX` is unlimited.
    depth: u32,
}

impl ScopeSet {
    const OWN: u8 = 1;
    const SUBORDINATES: u8 = 2;
    const UNIT: u8 = 4;
    const UNIT_TREE: u8 = 8;
    const ALL: u8 = 16;
    const ACCOUNT: u8 = 32;

    fn add(&mut self, scope: Scope) {
        match scope {
            Scope::Own => self.flags |= Self::OWN,
            Scope::Subordinates { depth } => {
                self.flags |= Self::SUBORDINATES;
                self.depth = self.depth.max(depth.unwrap_or(u32::MAX));
            }
            Scope::Unit => self.flags |= Self::UNIT,
            Scope::UnitTree => self.flags |= Self::UNIT_TREE,
            Scope::All => self.flags |= Self::ALL,
            Scope::Account => self.flags |= Self::ACCOUNT,
        }
    }

    fn union(&mut self, other: ScopeSet) {
        self.flags |= other.flags;
        if other.flags & Self::SUBORDINATES != 0 {
            self.depth = self.depth.max(other.depth);
        }
    }

    fn is_empty(self) -> bool {
        self.flags == 0
    }

    fn subordinates_scope(self) -> Scope {
        Scope::Subordinates {
            depth: (self.depth != u32::MAX).then_some(self.depth),
        }
    }
}

#[derive(Debug, Clone)]
struct UserNode {
    id: UserId,
    username: String,
    unit: u32,
    manager: Option<u32>,
    disabled: bool,
    roles: Vec<(u32, RoleAssignment)>,
    pre: u32,
    last: u32,
    depth: u32,
    /// The user's own access rules, if any.
    access: Option<AccessRules>,
    has_mfa: bool,
    portal_account: Option<i64>,
}

#[derive(Debug, Clone)]
struct UnitNode {
    id: UnitId,
    name: String,
    parent: Option<u32>,
    pre: u32,
    last: u32,
    depth: u32,
}

#[derive(Debug, Clone)]
pub(crate) struct RoleNode {
    pub(crate) id: RoleId,
    pub(crate) name: String,
    table: [[ScopeSet; Action::COUNT]; ObjectType::COUNT],
    permissions: u8,
    access: Option<AccessRules>,
    /// Field access per object, in schema field order (defaults filled in).
    pub(crate) fields: [Box<[FieldAccess]>; ObjectType::COUNT],
}

/// A read-only view of one user in a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct UserView<'a> {
    snapshot: &'a Snapshot,
    index: u32,
}

impl<'a> UserView<'a> {
    fn node(&self) -> &'a UserNode {
        &self.snapshot.users[self.index as usize]
    }
    pub fn id(&self) -> UserId {
        self.node().id
    }
    pub fn username(&self) -> &'a str {
        &self.node().username
    }
    pub fn unit(&self) -> UnitId {
        self.snapshot.units[self.node().unit as usize].id
    }
    pub fn unit_name(&self) -> &'a str {
        &self.snapshot.units[self.node().unit as usize].name
    }
    pub fn manager(&self) -> Option<UserView<'a>> {
        self.node().manager.map(|index| UserView {
            snapshot: self.snapshot,
            index,
        })
    }
    pub fn disabled(&self) -> bool {
        self.node().disabled
    }
    /// Role assignments, active or not, as `(role id, role name, assignment)`.
    pub fn roles(&self) -> impl Iterator<Item = (RoleId, &'a str, RoleAssignment)> + 'a {
        let snapshot = self.snapshot;
        self.node().roles.iter().map(move |(role, assignment)| {
            let node = &snapshot.roles[*role as usize];
            (node.id, node.name.as_str(), *assignment)
        })
    }
    /// Depth in the reporting line (0 for someone who reports to nobody).
    pub fn depth(&self) -> u32 {
        self.node().depth
    }
    /// For a portal user, the customer account they belong to.
    pub fn portal_account(&self) -> Option<i64> {
        self.node().portal_account
    }
}

/// The compiled, immutable permission model. Cheap to share (`Arc`) between requests.
#[derive(Debug, Clone)]
pub struct Snapshot {
    epoch: i64,
    users: Vec<UserNode>,
    pub(crate) user_index: IdIndex,
    users_by_name: HashMap<String, u32>,
    /// Dense user indexes in reporting-line pre-order: `users_in_preorder[users[i].pre] == i`.
    users_in_preorder: Vec<u32>,
    units: Vec<UnitNode>,
    unit_index: IdIndex,
    units_in_preorder: Vec<u32>,
    roles: Vec<RoleNode>,
    role_index: HashMap<RoleId, u32>,
    controls: [Control; ObjectType::COUNT],
    pub(crate) approval_policies: Vec<crate::ApprovalPolicy>,
    pub(crate) four_eyes: bool,
    /// Per user (dense index): a number shared by every account of one person.
    pub(crate) persons: Vec<u32>,
    /// Per user: a stable key of the person (`person:KEY` or `user:ID`).
    pub(crate) person_keys: Vec<String>,
    sharing_rules: Vec<SharingRule>,
    restriction_rules: Vec<RestrictionRule>,
}

/// A forest's numbering: `(pre, last, depth, preorder)`.
type Numbering = (Vec<u32>, Vec<u32>, Vec<u32>, Vec<u32>);

/// Numbers a forest in pre-order. `parent[i]` is `i`'s parent; children are visited in the
/// order of `order_key`. Returns `(pre, last, depth, preorder)` or the first node on a cycle.
fn number_forest(parent: &[Option<u32>], order_key: impl Fn(u32) -> i64) -> Result<Numbering, u32> {
    let n = parent.len();
    let mut children: Vec<Vec<u32>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (node, p) in parent.iter().enumerate() {
        match p {
            Some(p) => children[*p as usize].push(node as u32),
            None => roots.push(node as u32),
        }
    }
    for list in &mut children {
        list.sort_by_key(|&c| order_key(c));
    }
    roots.sort_by_key(|&c| order_key(c));

    let mut pre = vec![NO_INDEX; n];
    let mut last = vec![0u32; n];
    let mut depth = vec![0u32; n];
    let mut preorder = Vec::with_capacity(n);
    // Iterative depth-first walk: (node, next child position).
    let mut stack: Vec<(u32, usize)> = Vec::new();
    for root in roots {
        pre[root as usize] = preorder.len() as u32;
        preorder.push(root);
        stack.push((root, 0));
        while let Some((node, next)) = stack.last_mut() {
            let node_index = *node as usize;
            if let Some(&child) = children[node_index].get(*next) {
                *next += 1;
                pre[child as usize] = preorder.len() as u32;
                depth[child as usize] = depth[node_index] + 1;
                preorder.push(child);
                stack.push((child, 0));
            } else {
                last[node_index] = preorder.len() as u32 - 1;
                stack.pop();
            }
        }
    }
    // Every node has at most one parent, so a node not reached from a root is on (or hangs
    // below) a cycle.
    if let Some(unreached) = (0..n as u32)
        .filter(|&i| pre[i as usize] == NO_INDEX)
        .min_by_key(|&i| order_key(i))
    {
        return Err(unreached);
    }
    Ok((pre, last, depth, preorder))
}

/// Numbers people: accounts linked to the same person key share a number; every other account
/// is its own person.
/// Also returns each account's stable person key: `person:KEY` for a linked account,
/// `user:ID` for one that is its own person.
fn person_numbers(model: &Model, user_index: &IdIndex) -> (Vec<u32>, Vec<String>) {
    let mut persons: Vec<u32> = (0..model.users.len() as u32).collect();
    let mut keys: Vec<String> = model
        .users
        .iter()
        .map(|u| format!("user:{}", u.id.0))
        .collect();
    let mut first_of_key: HashMap<&str, u32> = HashMap::new();
    for (user, key) in &model.persons {
        if let Some(index) = user_index.get(user.0) {
            let first = *first_of_key.entry(key.as_str()).or_insert(index);
            persons[index as usize] = first;
            keys[index as usize] = format!("person:{key}");
        }
    }
    (persons, keys)
}

/// Refuses a policy that names what the model does not have.
fn check_approval_policy(
    policy: &crate::ApprovalPolicy,
    role_index: &HashMap<RoleId, u32>,
    unit_index: &IdIndex,
    user_index: &IdIndex,
) -> Result<(), ModelError> {
    let bad = |message: String| ModelError::BadApprovalPolicy {
        policy: policy.id,
        message,
    };
    let object = crate::schema::schema(policy.object);
    let named = policy
        .fields
        .iter()
        .map(String::as_str)
        .chain(policy.when.iter().flat_map(|c| c.fields()));
    for field in named {
        if object.field(field).is_none() {
            return Err(bad(format!(
                "`{field}` is not a field of {}",
                policy.object
            )));
        }
    }
    if let Some(action) = policy
        .operations
        .iter()
        .find(|a| !matches!(a, Action::Create | Action::Update | Action::Delete))
    {
        return Err(bad(format!("`{action}` cannot be approved (yet)")));
    }
    if policy.required == 0 {
        return Err(bad("needs at least one approval".into()));
    }
    match policy.requesters {
        crate::Requesters::Role(role) if !role_index.contains_key(&role) => {
            return Err(bad(format!("unknown role {role:?}")))
        }
        crate::Requesters::Unit(unit) if unit_index.get(unit.0).is_none() => {
            return Err(bad(format!("unknown unit {unit:?}")))
        }
        _ => {}
    }
    match &policy.approvers {
        crate::Approvers::Role(role) if !role_index.contains_key(role) => {
            Err(bad(format!("unknown role {role:?}")))
        }
        crate::Approvers::Users(users) => {
            match users.iter().find(|u| user_index.get(u.0).is_none()) {
                Some(user) => Err(bad(format!("unknown user {user:?}"))),
                None => Ok(()),
            }
        }
        _ => Ok(()),
    }
}

impl Snapshot {
    /// Compiles a model. Fails on dangling references, duplicate ids and cycles.
    pub fn compile(model: &Model) -> Result<Snapshot, ModelError> {
        for id in model
            .units
            .iter()
            .map(|u| u.id.0)
            .chain(model.users.iter().map(|u| u.id.0))
        {
            if id < 0 {
                return Err(ModelError::NegativeId(id));
            }
        }

        // Units.
        let unit_index = IdIndex::build(model.units.iter().map(|u| u.id.0), model.units.len());
        let mut seen = HashMap::with_capacity(model.units.len());
        for (i, unit) in model.units.iter().enumerate() {
            if seen.insert(unit.id, i).is_some() {
                return Err(ModelError::DuplicateUnit(unit.id));
            }
        }
        let unit_parents = model
            .units
            .iter()
            .map(|unit| match unit.parent {
                None => Ok(None),
                Some(parent) => {
                    unit_index
                        .get(parent.0)
                        .map(Some)
                        .ok_or(ModelError::UnknownParentUnit {
                            unit: unit.id,
                            parent,
                        })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (unit_pre, unit_last, unit_depth, units_in_preorder) =
            number_forest(&unit_parents, |i| model.units[i as usize].id.0)
                .map_err(|i| ModelError::UnitCycle(model.units[i as usize].id))?;
        let units = model
            .units
            .iter()
            .enumerate()
            .map(|(i, unit)| UnitNode {
                id: unit.id,
                name: unit.name.clone(),
                parent: unit_parents[i],
                pre: unit_pre[i],
                last: unit_last[i],
                depth: unit_depth[i],
            })
            .collect();

        // Roles.
        let mut role_index = HashMap::with_capacity(model.roles.len());
        let mut roles = Vec::with_capacity(model.roles.len());
        for role in &model.roles {
            if role_index.insert(role.id, roles.len() as u32).is_some() {
                return Err(ModelError::DuplicateRole(role.id));
            }
            let mut table = [[ScopeSet::default(); Action::COUNT]; ObjectType::COUNT];
            for grant in &role.grants {
                table[grant.object.index()][grant.action.index()].add(grant.scope);
            }
            let permissions = role
                .permissions
                .iter()
                .fold(0u8, |bits, p| bits | (1 << p.index()));
            let mut fields: [Box<[FieldAccess]>; ObjectType::COUNT] =
                std::array::from_fn(|object| {
                    schema(ObjectType::ALL[object])
                        .fields
                        .iter()
                        .map(|field| field.default_access())
                        .collect()
                });
            for rule in &role.fields {
                let (index, _) = schema(rule.object).field(&rule.field).ok_or_else(|| {
                    ModelError::UnknownField {
                        role: role.id,
                        object: rule.object,
                        field: rule.field.clone(),
                    }
                })?;
                fields[rule.object.index()][index] = rule.access;
            }
            roles.push(RoleNode {
                id: role.id,
                name: role.name.clone(),
                table,
                permissions,
                access: None,
                fields,
            });
        }

        // Users.
        let user_index = IdIndex::build(model.users.iter().map(|u| u.id.0), model.users.len());
        let mut users_by_name = HashMap::with_capacity(model.users.len());
        let mut seen = HashMap::with_capacity(model.users.len());
        for (i, user) in model.users.iter().enumerate() {
            if seen.insert(user.id, i).is_some() {
                return Err(ModelError::DuplicateUser(user.id));
            }
            users_by_name.insert(user.username.clone(), i as u32);
        }
        let managers = model
            .users
            .iter()
            .map(|user| match user.manager {
                None => Ok(None),
                Some(manager) => {
                    user_index
                        .get(manager.0)
                        .map(Some)
                        .ok_or(ModelError::UnknownManager {
                            user: user.id,
                            manager,
                        })
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        let (pre, last, depth, users_in_preorder) =
            number_forest(&managers, |i| model.users[i as usize].id.0)
                .map_err(|i| ModelError::ReportingCycle(model.users[i as usize].id))?;
        let mut users = Vec::with_capacity(model.users.len());
        for (i, user) in model.users.iter().enumerate() {
            let unit = unit_index.get(user.unit.0).ok_or(ModelError::UnknownUnit {
                user: user.id,
                unit: user.unit,
            })?;
            let mut assignments = user
                .roles
                .iter()
                .map(|assignment| {
                    role_index
                        .get(&assignment.role)
                        .map(|&role| (role, *assignment))
                        .ok_or(ModelError::UnknownRole {
                            user: user.id,
                            role: assignment.role,
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            // Deterministic reasons: the lowest role id that allows is the one reported.
            assignments.sort_by_key(|(_, a)| a.role);
            users.push(UserNode {
                id: user.id,
                username: user.username.clone(),
                unit,
                manager: managers[i],
                disabled: user.disabled,
                roles: assignments,
                pre: pre[i],
                last: last[i],
                depth: depth[i],
                access: None,
                has_mfa: false,
                portal_account: user.portal_account,
            });
        }
        for (owner, rules) in &model.access_rules {
            match owner {
                AccessOwner::Role(role) => {
                    if let Some(&i) = role_index.get(role) {
                        roles[i as usize].access = Some(rules.clone());
                    }
                }
                AccessOwner::User(user) => {
                    if let Some(i) = user_index.get(user.0) {
                        users[i as usize].access = Some(rules.clone());
                    }
                }
            }
        }
        for user in &model.mfa_enrolled {
            if let Some(i) = user_index.get(user.0) {
                users[i as usize].has_mfa = true;
            }
        }

        let mut controls = [Control::ByCustomer; ObjectType::COUNT];
        controls[ObjectType::Customers.index()] = Control::OwnGrants;
        for (object, control) in &model.controls {
            // Customers have no customer above them: they are always decided by their own grants.
            if *object != ObjectType::Customers {
                controls[object.index()] = *control;
            }
        }

        let (persons, person_keys) = person_numbers(model, &user_index);
        for policy in &model.approval_policies {
            check_approval_policy(policy, &role_index, &unit_index, &user_index)?;
        }
        for rule in &model.sharing_rules {
            if let RuleSource::Criteria(criteria) = &rule.source {
                criteria
                    .check_for_records(rule.object)
                    .map_err(|e| ModelError::BadRule {
                        rule: rule.name.clone(),
                        message: e.message,
                    })?;
            }
        }
        for rule in &model.restriction_rules {
            rule.only
                .check_for_records(rule.object)
                .map_err(|e| ModelError::BadRule {
                    rule: rule.name.clone(),
                    message: e.message,
                })?;
        }

        Ok(Snapshot {
            sharing_rules: model.sharing_rules.clone(),
            restriction_rules: model.restriction_rules.clone(),
            approval_policies: model.approval_policies.clone(),
            four_eyes: model.four_eyes,
            persons,
            person_keys,
            epoch: model.epoch,
            users,
            user_index,
            users_by_name,
            users_in_preorder,
            units,
            unit_index,
            units_in_preorder,
            roles,
            role_index,
            controls,
        })
    }

    /// The permission epoch the model was read at.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// How access to `object`'s records is decided.
    pub fn control(&self, object: ObjectType) -> Control {
        self.controls[object.index()]
    }

    /// Looks a user up by id.
    pub fn user(&self, id: UserId) -> Option<UserView<'_>> {
        self.user_index.get(id.0).map(|index| UserView {
            snapshot: self,
            index,
        })
    }

    /// Looks a user up by username.
    pub fn user_by_name(&self, username: &str) -> Option<UserView<'_>> {
        self.users_by_name.get(username).map(|&index| UserView {
            snapshot: self,
            index,
        })
    }

    /// Every user, in reporting-line pre-order (a manager before their reports).
    pub fn users(&self) -> impl Iterator<Item = UserView<'_>> {
        self.users_in_preorder.iter().map(move |&index| UserView {
            snapshot: self,
            index,
        })
    }

    /// A unit's name.
    pub fn unit_name(&self, id: UnitId) -> Option<&str> {
        self.unit_index
            .get(id.0)
            .map(|i| self.units[i as usize].name.as_str())
    }

    /// A unit's parent.
    pub fn unit_parent(&self, id: UnitId) -> Option<UnitId> {
        let i = self.unit_index.get(id.0)?;
        self.units[i as usize]
            .parent
            .map(|p| self.units[p as usize].id)
    }

    /// A role by name.
    pub fn role_by_name(&self, name: &str) -> Option<RoleId> {
        self.roles.iter().find(|r| r.name == name).map(|r| r.id)
    }

    /// A unit by name.
    pub fn unit_by_name(&self, name: &str) -> Option<UnitId> {
        self.units.iter().find(|u| u.name == name).map(|u| u.id)
    }

    /// A role's name.
    pub fn role_name(&self, id: RoleId) -> Option<&str> {
        self.role_index
            .get(&id)
            .map(|&i| self.roles[i as usize].name.as_str())
    }

    /// The functional permissions a role carries.
    pub fn role_permissions(&self, role: RoleId) -> Vec<Permission> {
        self.role_index.get(&role).map_or_else(Vec::new, |&i| {
            let bits = self.roles[i as usize].permissions;
            Permission::ALL
                .iter()
                .copied()
                .filter(|p| bits & (1 << p.index()) != 0)
                .collect()
        })
    }

    /// Whether `user` holds `permission` through an active role at `now`.
    pub fn has_permission(&self, user: UserId, permission: Permission, now: Timestamp) -> bool {
        let Some(index) = self.user_index.get(user.0) else {
            return false;
        };
        let node = &self.users[index as usize];
        // Portal users are outsiders: no functional permission reaches them, whatever role
        // they are given.
        !node.disabled
            && node.portal_account.is_none()
            && node.roles.iter().any(|(role, assignment)| {
                assignment.is_active(now)
                    && self.roles[*role as usize].permissions & (1 << permission.index()) != 0
            })
    }

    /// Whether `user` may work from `client` at `now`: every access rule of the user and of
    /// their active roles must allow (see [`crate::access::check_all`]).
    pub fn access_check(
        &self,
        user: UserId,
        client: std::net::IpAddr,
        now: Timestamp,
    ) -> Result<(), AccessDenial> {
        let Some(index) = self.user_index.get(user.0) else {
            return Ok(());
        };
        let node = &self.users[index as usize];
        let rules = node.access.iter().chain(
            node.roles
                .iter()
                .filter(|(_, assignment)| assignment.is_active(now))
                .filter_map(|(role, _)| self.roles[*role as usize].access.as_ref()),
        );
        crate::access::check_all(rules, client, now, node.has_mfa)
    }

    /// Whether the user has a confirmed second factor.
    pub fn has_mfa(&self, user: UserId) -> bool {
        self.user_index
            .get(user.0)
            .is_some_and(|i| self.users[i as usize].has_mfa)
    }

    /// Whether `ancestor` is `descendant` or above them in the reporting line.
    pub fn is_at_or_above(&self, ancestor: UserId, descendant: UserId) -> bool {
        match (
            self.user_index.get(ancestor.0),
            self.user_index.get(descendant.0),
        ) {
            (Some(a), Some(d)) => {
                let (a, d) = (&self.users[a as usize], &self.users[d as usize]);
                a.pre <= d.pre && d.pre <= a.last
            }
            _ => false,
        }
    }

    /// The chain of command from `user` up to the root, starting with `user`'s manager.
    pub fn managers_of(&self, user: UserId) -> Vec<UserId> {
        let mut chain = Vec::new();
        let mut current = self.user_index.get(user.0);
        while let Some(index) = current.and_then(|i| self.users[i as usize].manager) {
            chain.push(self.users[index as usize].id);
            current = Some(index);
        }
        chain
    }

    /// The sharing rules, in the order the model gave them.
    pub fn sharing_rules(&self) -> &[SharingRule] {
        &self.sharing_rules
    }

    /// The restriction rules, in the order the model gave them.
    pub fn restriction_rules(&self) -> &[RestrictionRule] {
        &self.restriction_rules
    }

    /// The record that decides `action` on `object`: the record itself, or its customer (with
    /// the mapped action) for an object controlled by its customer.
    fn target<'r>(
        &self,
        object: ObjectType,
        action: Action,
        record: &RecordRef<'r>,
    ) -> Result<(Action, Target<'r>), Denial> {
        match self.controls[object.index()] {
            Control::OwnGrants => Ok((
                action,
                Target {
                    object,
                    owner: record.owner,
                    unit: record.unit,
                    shares: record.facts.shares,
                    values: record.facts.values,
                },
            )),
            Control::ByCustomer => match record.customer {
                Some((owner, unit)) => Ok((
                    action.on_controlling_customer(),
                    Target {
                        object: ObjectType::Customers,
                        owner,
                        unit,
                        shares: record.customer_facts.shares,
                        values: record.customer_facts.values,
                    },
                )),
                None => Err(Denial::NoCustomer),
            },
        }
    }

    /// Whether `principal` stands for the user at `now`.
    fn is_principal(&self, user: &UserNode, principal: Principal, now: Timestamp) -> bool {
        match principal {
            Principal::User(id) => id == user.id,
            Principal::Unit(id) => self.unit_index.get(id.0).is_some_and(|u| {
                let unit = &self.units[u as usize];
                let mine = &self.units[user.unit as usize];
                unit.pre <= mine.pre && mine.pre <= unit.last
            }),
            Principal::Role(id) => user
                .roles
                .iter()
                .any(|(_, assignment)| assignment.role == id && assignment.is_active(now)),
        }
    }

    /// Whether a restriction rule applies to the user at `now`.
    fn in_audience(&self, user: &UserNode, audience: Audience, now: Timestamp) -> bool {
        match audience {
            Audience::Everyone => true,
            Audience::Role(role) => self.is_principal(user, Principal::Role(role), now),
            Audience::Unit(unit) => self.is_principal(user, Principal::Unit(unit), now),
            Audience::ExceptRole(role) => !self.is_principal(user, Principal::Role(role), now),
        }
    }

    /// The restriction rules that narrow `action` on `object` for the user at `now`.
    fn restrictions_for<'s>(
        &'s self,
        user: &'s UserNode,
        object: ObjectType,
        action: Action,
        now: Timestamp,
    ) -> impl Iterator<Item = &'s RestrictionRule> + 's {
        self.restriction_rules.iter().filter(move |rule| {
            rule.object == object
                && rule.narrows(action)
                && self.in_audience(user, rule.applies_to, now)
        })
    }

    /// Decides one action on one record at `now`.
    ///
    /// For an object controlled by its customer, the record's `customer` is decided with the
    /// mapped action ([`Action::on_controlling_customer`]). Role grants, then shares and team
    /// places, then sharing rules may allow; every restriction rule that applies must then
    /// hold; a portal user never reaches outside their account (see [`crate::sharing`]).
    pub fn check(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        record: &RecordRef<'_>,
        now: Timestamp,
    ) -> Decision {
        let Some(index) = self.user_index.get(user.0) else {
            return Decision::Deny(Denial::UnknownUser);
        };
        let node = &self.users[index as usize];
        if node.disabled {
            return Decision::Deny(Denial::Disabled);
        }
        if node
            .portal_account
            .is_some_and(|account| record.account(object) != Some(account))
        {
            return Decision::Deny(Denial::OutsideAccount);
        }
        let (action, target) = match self.target(object, action, record) {
            Ok(found) => found,
            Err(denial) => return Decision::Deny(denial),
        };
        let object = target.object;
        let owner_index = self.user_index.get(target.owner.0);
        let unit_index = self.unit_index.get(target.unit.0);
        let mut any_grant = false;
        let mut reason = None;
        for (role, assignment) in &node.roles {
            if !assignment.is_active(now) {
                continue;
            }
            let role = &self.roles[*role as usize];
            let scopes = role.table[object.index()][action.index()];
            if scopes.is_empty() {
                continue;
            }
            any_grant = true;
            if let Some((scope, grounds)) =
                self.match_scopes(node, scopes, target.owner, owner_index, unit_index)
            {
                reason = Some(Reason::Grant(GrantReason {
                    role: role.id,
                    object,
                    action,
                    scope,
                    grounds,
                }));
                break;
            }
        }
        let reason = reason.or_else(|| self.sharing_reasons(node, action, &target, now).next());
        let Some(reason) = reason else {
            return Decision::Deny(if any_grant {
                Denial::OutOfScope { object, action }
            } else {
                Denial::NoGrant { object, action }
            });
        };
        if let Some(rule) = self
            .restrictions_for(node, object, action, now)
            .find(|rule| !rule.only.holds(object, target.values))
        {
            return Decision::Deny(Denial::Restricted {
                object,
                action,
                rule: rule.id,
            });
        }
        Decision::Allow(reason)
    }

    /// Every share, team place and sharing rule that gives the user `action` on the target.
    fn sharing_reasons<'s>(
        &'s self,
        user: &'s UserNode,
        action: Action,
        target: &'s Target<'_>,
        now: Timestamp,
    ) -> impl Iterator<Item = Reason> + 's {
        let object = target.object;
        let shares = target
            .shares
            .iter()
            .filter(move |share| {
                share.access.allows(action) && self.is_principal(user, share.principal, now)
            })
            .map(move |share| Reason::Share {
                object,
                action,
                kind: share.kind,
                principal: share.principal,
                access: share.access,
            });
        let rules = self
            .sharing_rules
            .iter()
            .filter(move |rule| {
                rule.object == object
                    && rule.access.allows(action)
                    && self.is_principal(user, rule.share_with, now)
                    && match &rule.source {
                        RuleSource::Criteria(criteria) => criteria.holds(object, target.values),
                        RuleSource::OwnedByUnit(unit) => self.unit_within(target.unit, *unit),
                    }
            })
            .map(move |rule| Reason::Rule {
                object,
                action,
                rule: rule.id,
                principal: rule.share_with,
                access: rule.access,
            });
        shares.chain(rules)
    }

    /// The first of `scopes` (broadest first) that covers a record, and how it does.
    #[inline]
    fn match_scopes(
        &self,
        user: &UserNode,
        scopes: ScopeSet,
        owner: UserId,
        owner_index: Option<u32>,
        unit_index: Option<u32>,
    ) -> Option<(Scope, Grounds)> {
        if scopes.flags & ScopeSet::ALL != 0 {
            return Some((Scope::All, Grounds::Everything));
        }
        // The account bound itself is checked before any scope (see `check`).
        if scopes.flags & ScopeSet::ACCOUNT != 0 && user.portal_account.is_some() {
            return Some((Scope::Account, Grounds::Account));
        }
        if let Some(o) = owner_index {
            let record_owner = &self.users[o as usize];
            if scopes.flags & ScopeSet::SUBORDINATES != 0
                && user.pre <= record_owner.pre
                && record_owner.pre <= user.last
                && record_owner.depth - user.depth <= scopes.depth
            {
                let levels = record_owner.depth - user.depth;
                let grounds = if levels == 0 {
                    Grounds::Owner
                } else {
                    Grounds::ReportingLine { owner, levels }
                };
                return Some((scopes.subordinates_scope(), grounds));
            }
            if scopes.flags & ScopeSet::OWN != 0 && record_owner.id == user.id {
                return Some((Scope::Own, Grounds::Owner));
            }
        }
        if let Some(r) = unit_index {
            let my_unit = &self.units[user.unit as usize];
            if scopes.flags & ScopeSet::UNIT_TREE != 0 {
                let record_unit = &self.units[r as usize];
                if my_unit.pre <= record_unit.pre && record_unit.pre <= my_unit.last {
                    let levels = record_unit.depth - my_unit.depth;
                    let grounds = if levels == 0 {
                        Grounds::SameUnit
                    } else {
                        Grounds::UnitBelow { levels }
                    };
                    return Some((Scope::UnitTree, grounds));
                }
            }
            if scopes.flags & ScopeSet::UNIT != 0 && r == user.unit {
                return Some((Scope::Unit, Grounds::SameUnit));
            }
        }
        None
    }

    /// Every reason that allows `action` on `record`: one per active role whose grant covers
    /// it, then every share, team place and sharing rule. Restrictions are not applied here
    /// (explain reports them apart).
    pub(crate) fn all_reasons(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        record: &RecordRef<'_>,
        now: Timestamp,
    ) -> Vec<Reason> {
        let mut reasons: Vec<Reason> = self
            .roles_reaching(user, action, object, Some(record), now)
            .into_iter()
            .filter_map(|(_, reason)| reason.map(Reason::Grant))
            .collect();
        if let (Some(index), Ok((action, target))) = (
            self.user_index.get(user.0),
            self.target(object, action, record),
        ) {
            let node = &self.users[index as usize];
            let bounded = node
                .portal_account
                .is_some_and(|account| record.account(object) != Some(account));
            if !node.disabled && !bounded {
                reasons.extend(self.sharing_reasons(node, action, &target, now));
            }
        }
        reasons
    }

    /// The restriction rules that remove `action` on `record` from the user (each one that
    /// applies and does not hold).
    pub(crate) fn failing_restrictions(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        record: &RecordRef<'_>,
        now: Timestamp,
    ) -> Vec<i64> {
        let (Some(index), Ok((action, target))) = (
            self.user_index.get(user.0),
            self.target(object, action, record),
        ) else {
            return Vec::new();
        };
        let node = &self.users[index as usize];
        self.restrictions_for(node, target.object, action, now)
            .filter(|rule| !rule.only.holds(target.object, target.values))
            .map(|rule| rule.id)
            .collect()
    }

    /// The active roles whose `action` grant covers `record`, with the reason each gives, and
    /// every active role that grants `action` on the object at some scope (for the field floor).
    /// Both follow the object's control: a contact is reached through its customer's grants.
    /// Nothing outside a portal user's account.
    pub(crate) fn roles_reaching(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        record: Option<&RecordRef<'_>>,
        now: Timestamp,
    ) -> Vec<(&RoleNode, Option<GrantReason>)> {
        let Some(index) = self.user_index.get(user.0) else {
            return Vec::new();
        };
        let node = &self.users[index as usize];
        if node.disabled {
            return Vec::new();
        }
        if let (Some(account), Some(record)) = (node.portal_account, record) {
            if record.account(object) != Some(account) {
                return Vec::new();
            }
        }
        let control = self.controls[object.index()];
        let (object, action) = match control {
            Control::OwnGrants => (object, action),
            Control::ByCustomer => (ObjectType::Customers, action.on_controlling_customer()),
        };
        let target = match (record, control) {
            (None, _) => None,
            (Some(record), Control::OwnGrants) => Some((record.owner, record.unit)),
            (Some(record), Control::ByCustomer) => match record.customer {
                Some(customer) => Some(customer),
                None => return Vec::new(),
            },
        };
        let indexes = target.map(|(owner, unit)| {
            (
                owner,
                self.user_index.get(owner.0),
                self.unit_index.get(unit.0),
            )
        });
        node.roles
            .iter()
            .filter(|(_, assignment)| assignment.is_active(now))
            .filter_map(|(role, _)| {
                let role = &self.roles[*role as usize];
                let scopes = role.table[object.index()][action.index()];
                if scopes.is_empty() {
                    return None;
                }
                match indexes {
                    None => Some((role, None)),
                    Some((owner, owner_index, unit_index)) => self
                        .match_scopes(node, scopes, owner, owner_index, unit_index)
                        .map(|(scope, grounds)| {
                            (
                                role,
                                Some(GrantReason {
                                    role: role.id,
                                    object,
                                    action,
                                    scope,
                                    grounds,
                                }),
                            )
                        }),
                }
            })
            .collect()
    }

    /// Whether `user` is a portal user.
    pub(crate) fn is_portal(&self, user: UserId) -> bool {
        self.user_index
            .get(user.0)
            .is_some_and(|i| self.users[i as usize].portal_account.is_some())
    }

    /// The roles a user holds whose assignment has expired at `now`.
    pub(crate) fn expired_roles(&self, user: UserId, now: Timestamp) -> Vec<RoleId> {
        self.user_index
            .get(user.0)
            .map(|i| {
                self.users[i as usize]
                    .roles
                    .iter()
                    .filter(|(_, a)| !a.is_active(now))
                    .map(|(_, a)| a.role)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The records `user` may do `action` on, as a predicate for the store.
    ///
    /// INVARIANT: `filter(..).matches(r)` == `check(.., r).is_allowed()` for every record `r`.
    pub fn filter(
        &self,
        user: UserId,
        action: Action,
        object: ObjectType,
        now: Timestamp,
    ) -> RecordFilter {
        let listed = object;
        let (via_customer, object, action) = match self.controls[object.index()] {
            Control::OwnGrants => (false, object, action),
            Control::ByCustomer => (
                true,
                ObjectType::Customers,
                action.on_controlling_customer(),
            ),
        };
        let Some(index) = self.user_index.get(user.0) else {
            return RecordFilter::none(listed, via_customer);
        };
        let node = &self.users[index as usize];
        if node.disabled {
            return RecordFilter::none(listed, via_customer);
        }
        let mut filter = self.grants_filter(node, action, object, now);
        if let Filter::Any(conditions) = &mut filter {
            self.push_sharing_conditions(node, action, object, now, conditions);
        }
        RecordFilter {
            object: listed,
            via_customer,
            filter,
            restrictions: self
                .restrictions_for(node, object, action, now)
                .map(|rule| rule.only.clone())
                .collect(),
            account: node.portal_account,
        }
    }

    /// Shares, team places and sharing rules as disjuncts of a filter.
    fn push_sharing_conditions(
        &self,
        node: &UserNode,
        action: Action,
        object: ObjectType,
        now: Timestamp,
        conditions: &mut Vec<Condition>,
    ) {
        let Some(access) = ShareAccess::needed_for(action) else {
            return;
        };
        let mut units = Vec::new();
        let mut unit = Some(node.unit);
        while let Some(u) = unit {
            units.push(self.units[u as usize].id);
            unit = self.units[u as usize].parent;
        }
        units.sort_unstable();
        let mut roles: Vec<RoleId> = node
            .roles
            .iter()
            .filter(|(_, assignment)| assignment.is_active(now))
            .map(|(_, assignment)| assignment.role)
            .collect();
        roles.sort_unstable();
        roles.dedup();
        conditions.push(Condition::SharedWith(SharedWith {
            object,
            user: node.id,
            units,
            roles,
            access,
        }));
        for rule in &self.sharing_rules {
            if rule.object != object
                || !rule.access.allows(action)
                || !self.is_principal(node, rule.share_with, now)
            {
                continue;
            }
            conditions.push(match &rule.source {
                RuleSource::Criteria(criteria) => Condition::Matches(criteria.clone()),
                RuleSource::OwnedByUnit(unit) => Condition::UnitIn(self.units_within(*unit)),
            });
        }
    }

    /// The ids of a unit and every unit below it, sorted (empty for an unknown unit).
    fn units_within(&self, unit: UnitId) -> Vec<UnitId> {
        let Some(index) = self.unit_index.get(unit.0) else {
            return Vec::new();
        };
        let top = &self.units[index as usize];
        let mut units: Vec<UnitId> = self.units_in_preorder[top.pre as usize..=top.last as usize]
            .iter()
            .map(|&i| self.units[i as usize].id)
            .collect();
        units.sort_unstable();
        units
    }

    /// What the user's role grants reach.
    fn grants_filter(
        &self,
        node: &UserNode,
        action: Action,
        object: ObjectType,
        now: Timestamp,
    ) -> Filter {
        let mut scopes = ScopeSet::default();
        for (role, assignment) in &node.roles {
            if assignment.is_active(now) {
                scopes.union(self.roles[*role as usize].table[object.index()][action.index()]);
            }
        }
        if scopes.flags & ScopeSet::ALL != 0 {
            return Filter::All;
        }
        // The account bound is the filter's `account`: within it, this scope covers all.
        if scopes.flags & ScopeSet::ACCOUNT != 0 && node.portal_account.is_some() {
            return Filter::All;
        }
        let mut conditions = Vec::new();
        if scopes.flags & ScopeSet::SUBORDINATES != 0 {
            let below = &self.users_in_preorder[node.pre as usize..=node.last as usize];
            let mut owners: Vec<UserId> = below
                .iter()
                .map(|&i| &self.users[i as usize])
                .filter(|u| u.depth - node.depth <= scopes.depth)
                .map(|u| u.id)
                .collect();
            owners.sort_unstable();
            conditions.push(Condition::OwnerIn(owners));
        } else if scopes.flags & ScopeSet::OWN != 0 {
            conditions.push(Condition::OwnerIn(vec![node.id]));
        }
        let my_unit = &self.units[node.unit as usize];
        if scopes.flags & ScopeSet::UNIT_TREE != 0 {
            conditions.push(Condition::UnitIn(self.units_within(my_unit.id)));
        } else if scopes.flags & ScopeSet::UNIT != 0 {
            conditions.push(Condition::UnitIn(vec![my_unit.id]));
        }
        Filter::Any(conditions)
    }

    /// Number of users in the snapshot.
    pub fn user_count(&self) -> usize {
        self.users.len()
    }
}
