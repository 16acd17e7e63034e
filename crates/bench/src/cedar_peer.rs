//! The same rules in Cedar (`cedar-policy` 4): a schema, the organisation as entities, and
//! one policy per role and scope. Two ways to hand Cedar the record are measured.
//!
//! # Encoding
//!
//! - `Unit::"<id>"` entities whose parent is the parent unit, so `x in principal.unit` is
//!   "x is my unit or below it".
//! - `User::"<id>"` entities whose parent is their manager, so `owner in principal` is "the
//!   owner is me or below me in the reporting line". Attributes: `unit`, `depth` (levels below
//!   the top of the reporting line), `disabled`, and `roles`: a record from `r<role id>` to the
//!   assignment's expiry (`i64::MAX` when it never expires; the later one when a role is held
//!   twice). Roles are attributes, not parents: a role entity above a user would be inherited
//!   by everyone below them through `in` (the same leak as casbin's shared `g`/`g2` graph).
//! - One `permit` per role and scope, naming its actions (`action in [...]`):
//!   `principal.roles has rN && context.now < principal.roles.rN && <scope>`, and one `forbid`
//!   for disabled users.
//!
//! # The record
//!
//! - **Context** (the headline figure): one entity store with the users and units, built once;
//!   the record travels in the request as `context.owner` (a `User`) and `context.unit` (a
//!   `Unit`), with `context.now`. The resource `Customer::"<id>"` is not stored. This is how
//!   an application asks Cedar about a row it has just read, and the cheapest correct setup
//!   we found.
//! - **Slice**: the record is a `Customer` entity with `owner` and `unit` attributes
//!   (`resource.owner in principal`), and each request gets its own small entity store: the
//!   resource, the principal, the owner and the record's unit. The user and unit entities are
//!   built once, each listing all its ancestors as parents, so a slice needs no other entity.
//!   Building the slice is timed apart from the decision.
//!
//! Storing all 1,000,000 customers as entities in one store (the third way) is left out: the
//! brief measured it at 4.1 GB and 22 s to build, for a slower decision.
//!
//! Only grants on customers are encoded: the benchmark's requests are all on customers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use anyhow::{anyhow, bail, Context as _, Result};
use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};
use warden_policy::{Action, Model, ObjectType, RoleId, Scope, Timestamp, UnitId};

/// Where the policies read the record's owner and unit from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordIn {
    /// `context.owner`, `context.unit`.
    Context,
    /// `resource.owner`, `resource.unit` (per-request entity slices).
    Resource,
}

impl RecordIn {
    fn prefix(self) -> &'static str {
        match self {
            RecordIn::Context => "context",
            RecordIn::Resource => "resource",
        }
    }
}

/// Cedar's state for one model, built once.
pub struct CedarPeer {
    authorizer: Authorizer,
    /// The policies and the entity store of the context encoding.
    policies: PolicySet,
    entities: Entities,
    /// The policies of the slice encoding, and the entities slices are cut from: users and
    /// units listing all their ancestors, by position in the model.
    slice_policies: PolicySet,
    slice_users: Vec<Entity>,
    slice_units: Vec<Entity>,
    /// Entity uids of users and units, by position in the model.
    users: Vec<EntityUid>,
    units: Vec<EntityUid>,
    actions: Vec<EntityUid>,
    customer_type: EntityTypeName,
    pub policy_count: usize,
}

fn uid(type_name: &EntityTypeName, id: impl AsRef<str>) -> EntityUid {
    EntityUid::from_type_name_and_id(type_name.clone(), EntityId::new(id))
}

fn type_name(name: &str) -> Result<EntityTypeName> {
    EntityTypeName::from_str(name).map_err(|e| anyhow!("entity type {name}: {e}"))
}

/// The attribute of `principal.roles` that holds a role's expiry.
fn role_attr(role: RoleId) -> String {
    if role.0 < 0 {
        format!("rm{}", role.0.unsigned_abs())
    } else {
        format!("r{}", role.0)
    }
}

fn action_id(action: Action) -> String {
    format!("customers:{}", action.as_str())
}

/// The Cedar condition for `scope`, on the record's `owner` and `unit` read from `record`
/// (empty for `all`).
fn scope_condition(scope: Scope, record: RecordIn) -> String {
    let r = record.prefix();
    match scope {
        Scope::All => String::new(),
        Scope::Own => format!("{r}.owner == principal"),
        Scope::Subordinates { depth: None } => format!("{r}.owner in principal"),
        Scope::Subordinates { depth: Some(d) } => {
            format!("{r}.owner in principal && {r}.owner.depth <= principal.depth + {d}")
        }
        Scope::Unit => format!("{r}.unit == principal.unit"),
        Scope::UnitTree => format!("{r}.unit in principal.unit"),
        // The benchmark's worlds have no portal users: the scope covers nothing there.
        Scope::Account => "false".to_owned(),
    }
}

/// The policies encoding every grant on customers of `model`: one `permit` per role and scope,
/// naming the actions it allows, reading the record from `record`.
pub fn policy_text(model: &Model, record: RecordIn) -> String {
    let mut text = String::from(
        "// Disabled users may do nothing.\n\
         forbid (principal, action, resource) when { principal.disabled };\n",
    );
    for role in &model.roles {
        let attr = role_attr(role.id);
        let mut scopes: Vec<(Scope, Vec<Action>)> = Vec::new();
        for grant in role
            .grants
            .iter()
            .filter(|g| g.object == ObjectType::Customers)
        {
            match scopes.iter_mut().find(|(scope, _)| *scope == grant.scope) {
                Some((_, actions)) => actions.push(grant.action),
                None => scopes.push((grant.scope, vec![grant.action])),
            }
        }
        for (scope, mut actions) in scopes {
            actions.sort_unstable();
            actions.dedup();
            let names: Vec<String> = actions
                .iter()
                .map(|a| format!("Action::\"{}\"", action_id(*a)))
                .collect();
            let action_constraint = match names.as_slice() {
                [one] => format!("action == {one}"),
                _ => format!("action in [{}]", names.join(", ")),
            };
            let mut condition =
                format!("principal.roles has {attr} && context.now < principal.roles.{attr}");
            let scope_part = scope_condition(scope, record);
            if !scope_part.is_empty() {
                condition = format!("{condition} && {scope_part}");
            }
            let _ = write!(
                text,
                "// {} ({}): {}\n\
                 permit (principal, {action_constraint}, resource)\n  \
                 when {{ {condition} }};\n",
                role.name, role.id.0, scope,
            );
        }
    }
    text
}

/// The schema the policies of `record` are validated against.
pub fn schema_text(model: &Model, record: RecordIn) -> String {
    let roles: Vec<String> = model
        .roles
        .iter()
        .map(|r| format!("\"{}\"?: Long", role_attr(r.id)))
        .collect();
    let actions: Vec<String> = Action::ALL
        .iter()
        .map(|a| format!("\"{}\"", action_id(*a)))
        .collect();
    let (customer, context) = match record {
        RecordIn::Context => ("", "now: Long, owner: User, unit: Unit"),
        RecordIn::Resource => (" { owner: User, unit: Unit }", "now: Long"),
    };
    format!(
        "entity Unit in [Unit];\n\
         entity User in [User] {{ unit: Unit, depth: Long, disabled: Bool, roles: {{ {} }} }};\n\
         entity Customer{customer};\n\
         action {} appliesTo {{ principal: [User], resource: [Customer], context: {{ {context} }} }};\n",
        roles.join(", "),
        actions.join(", ")
    )
}

/// Each node's ancestors in a forest given by parent positions, nearest first.
fn ancestors(parents: &[Option<usize>]) -> Result<Vec<Vec<usize>>> {
    parents
        .iter()
        .enumerate()
        .map(|(start, _)| {
            let mut chain = Vec::new();
            let mut current = parents[start];
            while let Some(p) = current {
                chain.push(p);
                if chain.len() > parents.len() {
                    bail!("the forest has a cycle through position {start}");
                }
                current = parents[p];
            }
            Ok(chain)
        })
        .collect()
}

/// Parent positions of `ids` given each one's parent id.
fn parent_positions<K: std::hash::Hash + Eq + std::fmt::Debug + Copy>(
    items: impl Iterator<Item = (K, Option<K>)> + Clone,
) -> Result<Vec<Option<usize>>> {
    let position: HashMap<K, usize> = items
        .clone()
        .enumerate()
        .map(|(i, (id, _))| (id, i))
        .collect();
    items
        .map(|(_, parent)| {
            parent
                .map(|p| {
                    position
                        .get(&p)
                        .copied()
                        .with_context(|| format!("unknown parent {p:?}"))
                })
                .transpose()
        })
        .collect()
}

fn validated(text: &str, schema: &Schema) -> Result<PolicySet> {
    let policies = PolicySet::from_str(text).map_err(|e| anyhow!("policies: {e}"))?;
    let validation = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
    if !validation.validation_passed() {
        bail!("the Cedar policies do not validate: {validation}\n{text}");
    }
    Ok(policies)
}

impl CedarPeer {
    /// Builds the entity store, the policy sets and the entities slices are cut from, and
    /// validates the policies against their schemas.
    pub fn build(model: &Model) -> Result<CedarPeer> {
        let user_type = type_name("User")?;
        let unit_type = type_name("Unit")?;
        let action_type = type_name("Action")?;
        let customer_type = type_name("Customer")?;

        let users: Vec<EntityUid> = model
            .users
            .iter()
            .map(|u| uid(&user_type, u.id.0.to_string()))
            .collect();
        let units: Vec<EntityUid> = model
            .units
            .iter()
            .map(|u| uid(&unit_type, u.id.0.to_string()))
            .collect();
        let unit_position: HashMap<UnitId, usize> = model
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| (u.id, i))
            .collect();
        let managers = parent_positions(model.users.iter().map(|u| (u.id, u.manager)))?;
        let unit_parents = parent_positions(model.units.iter().map(|u| (u.id, u.parent)))?;
        let user_ancestors = ancestors(&managers)?;
        let unit_ancestors = ancestors(&unit_parents)?;

        // Units: in the store, the parent; in slices, every ancestor.
        let mut entities = Vec::with_capacity(model.users.len() + model.units.len());
        let mut slice_units = Vec::with_capacity(model.units.len());
        for (i, parent) in unit_parents.iter().enumerate() {
            let parent = parent.iter().map(|&p| units[p].clone()).collect();
            entities.push(Entity::new_no_attrs(units[i].clone(), parent));
            let all = unit_ancestors[i]
                .iter()
                .map(|&p| units[p].clone())
                .collect();
            slice_units.push(Entity::new_no_attrs(units[i].clone(), all));
        }
        // Users: likewise, with their attributes.
        let mut slice_users = Vec::with_capacity(model.users.len());
        for (i, user) in model.users.iter().enumerate() {
            let unit = units[*unit_position
                .get(&user.unit)
                .with_context(|| format!("unknown unit {:?}", user.unit))?]
            .clone();
            // A role held twice counts until the later expiry.
            let mut roles: BTreeMap<String, Timestamp> = BTreeMap::new();
            for a in &user.roles {
                let until = a.expires_at.unwrap_or(Timestamp::MAX);
                let slot = roles.entry(role_attr(a.role)).or_insert(until);
                *slot = (*slot).max(until);
            }
            let roles = RestrictedExpression::new_record(
                roles
                    .into_iter()
                    .map(|(k, v)| (k, RestrictedExpression::new_long(v))),
            )
            .map_err(|e| anyhow!("roles of user {:?}: {e}", user.id))?;
            let attrs = HashMap::from([
                (
                    "unit".to_owned(),
                    RestrictedExpression::new_entity_uid(unit),
                ),
                (
                    "depth".to_owned(),
                    RestrictedExpression::new_long(user_ancestors[i].len() as i64),
                ),
                (
                    "disabled".to_owned(),
                    RestrictedExpression::new_bool(user.disabled),
                ),
                ("roles".to_owned(), roles),
            ]);
            let parent: HashSet<EntityUid> =
                managers[i].iter().map(|&m| users[m].clone()).collect();
            entities.push(
                Entity::new(users[i].clone(), attrs.clone(), parent)
                    .map_err(|e| anyhow!("user {:?}: {e}", user.id))?,
            );
            let all: HashSet<EntityUid> = user_ancestors[i]
                .iter()
                .map(|&m| users[m].clone())
                .collect();
            slice_users.push(
                Entity::new(users[i].clone(), attrs, all)
                    .map_err(|e| anyhow!("user {:?}: {e}", user.id))?,
            );
        }

        let schema = Schema::from_str(&schema_text(model, RecordIn::Context))
            .map_err(|e| anyhow!("schema: {e}"))?;
        let entities = Entities::from_entities(entities, Some(&schema))
            .map_err(|e| anyhow!("entities: {e}"))?;
        let policies = validated(&policy_text(model, RecordIn::Context), &schema)?;
        let slice_schema = Schema::from_str(&schema_text(model, RecordIn::Resource))
            .map_err(|e| anyhow!("schema: {e}"))?;
        let slice_policies = validated(&policy_text(model, RecordIn::Resource), &slice_schema)?;
        let actions = Action::ALL
            .iter()
            .map(|a| uid(&action_type, action_id(*a)))
            .collect();
        Ok(CedarPeer {
            authorizer: Authorizer::new(),
            policy_count: policies.policies().count(),
            policies,
            entities,
            slice_policies,
            slice_users,
            slice_units,
            users,
            units,
            actions,
            customer_type,
        })
    }

    /// The request (context encoding) for `user` doing `action` on customer `customer` owned by
    /// `owner` in `unit`. `user`, `owner` and `unit` are positions in the model.
    pub fn request(
        &self,
        user: usize,
        action: Action,
        customer: u64,
        owner: usize,
        unit: usize,
        now: Timestamp,
    ) -> Result<Request> {
        let context = Context::from_pairs([
            ("now".to_owned(), RestrictedExpression::new_long(now)),
            (
                "owner".to_owned(),
                RestrictedExpression::new_entity_uid(self.users[owner].clone()),
            ),
            (
                "unit".to_owned(),
                RestrictedExpression::new_entity_uid(self.units[unit].clone()),
            ),
        ])
        .map_err(|e| anyhow!("context: {e}"))?;
        Request::new(
            self.users[user].clone(),
            self.actions[action.index()].clone(),
            uid(&self.customer_type, customer.to_string()),
            context,
            None,
        )
        .map_err(|e| anyhow!("request: {e}"))
    }

    /// Cedar's decision (context encoding).
    #[inline]
    pub fn is_allowed(&self, request: &Request) -> bool {
        self.authorizer
            .is_authorized(request, &self.policies, &self.entities)
            .decision()
            == Decision::Allow
    }

    /// The request and its entity slice (slice encoding): the customer as an entity with its
    /// owner and unit, the principal, the owner and the record's unit.
    pub fn slice(
        &self,
        user: usize,
        action: Action,
        customer: u64,
        owner: usize,
        unit: usize,
        now: Timestamp,
    ) -> Result<(Request, Entities)> {
        let resource = uid(&self.customer_type, customer.to_string());
        let record = Entity::new(
            resource.clone(),
            HashMap::from([
                (
                    "owner".to_owned(),
                    RestrictedExpression::new_entity_uid(self.users[owner].clone()),
                ),
                (
                    "unit".to_owned(),
                    RestrictedExpression::new_entity_uid(self.units[unit].clone()),
                ),
            ]),
            HashSet::new(),
        )
        .map_err(|e| anyhow!("customer entity: {e}"))?;
        let mut slice = vec![
            record,
            self.slice_users[user].clone(),
            self.slice_units[unit].clone(),
        ];
        if owner != user {
            slice.push(self.slice_users[owner].clone());
        }
        let entities =
            Entities::from_entities(slice, None).map_err(|e| anyhow!("entity slice: {e}"))?;
        let context =
            Context::from_pairs([("now".to_owned(), RestrictedExpression::new_long(now))])
                .map_err(|e| anyhow!("context: {e}"))?;
        let request = Request::new(
            self.users[user].clone(),
            self.actions[action.index()].clone(),
            resource,
            context,
            None,
        )
        .map_err(|e| anyhow!("request: {e}"))?;
        Ok((request, entities))
    }

    /// Cedar's decision (slice encoding).
    #[inline]
    pub fn is_allowed_in_slice(&self, request: &Request, slice: &Entities) -> bool {
        self.authorizer
            .is_authorized(request, &self.slice_policies, slice)
            .decision()
            == Decision::Allow
    }
}
