//! Differential test: on random small worlds, Warden's `check` and Cedar (`cedar-policy`)
//! decide every request the same way.
//!
//! The worlds are random forests of users (managers, units, disabled users), random unit
//! trees, random roles with random grants on every object and action at every scope
//! (including `subordinates` limited in depth), role assignments that expire before, at and
//! after `now`, and random object controls. Every user (and one unknown user) asks for every
//! action on every object of every record (including records with an unknown owner or unit,
//! and child records without a customer).
//!
//! The Cedar encoding is written from the documented semantics, independently of the engine:
//! users are entities whose parent is their manager (so `owner in principal` is "owner is me
//! or below me"), units are entities whose parent is their parent unit, roles are a record
//! attribute from role to expiry (not parents: a parent role would be inherited down the
//! reporting line), the record's owner and unit (and its customer's) travel in the request
//! context, and each grant is one `permit`; disabled users meet one `forbid`. The benchmark
//! program (`crates/bench`) uses the same idea for customers.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt::Write as _;
use std::str::FromStr;

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, PolicySet, Request, RestrictedExpression,
};
use proptest::prelude::*;
use warden_policy::{
    Action, Control, Grant, Model, ObjectType, RecordRef, RoleAssignment, RoleDef, RoleId, Scope,
    Snapshot, Timestamp, UnitDef, UnitId, UserDef, UserId,
};

const NOW: Timestamp = 1_000;
/// A user id and a unit id that no world has.
const UNKNOWN_USER: UserId = UserId(999_999_999);
const UNKNOWN_UNIT: UnitId = UnitId(999_999_999);

// ---------------------------------------------------------------------------------------------
// Random worlds.

#[derive(Debug, Clone)]
struct RawUser {
    manager: Option<usize>,
    unit: usize,
    disabled: bool,
    roles: Vec<(usize, u8)>,
}

#[derive(Debug, Clone)]
struct RawRecord {
    owner: usize,
    unit: usize,
    customer: Option<(usize, usize)>,
}

#[derive(Debug, Clone)]
struct World {
    model: Model,
    records: Vec<RecordRef<'static>>,
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Own),
        prop::option::of(0u32..4).prop_map(|depth| Scope::Subordinates { depth }),
        Just(Scope::Unit),
        Just(Scope::UnitTree),
        Just(Scope::All),
    ]
}

fn grant() -> impl Strategy<Value = Grant> {
    (
        prop::sample::select(ObjectType::ALL),
        prop::sample::select(Action::ALL),
        scope(),
    )
        .prop_map(|(object, action, scope)| Grant {
            object,
            action,
            scope,
        })
}

fn expiry(kind: u8) -> Option<Timestamp> {
    match kind % 5 {
        0 => Some(NOW - 1),
        1 => Some(NOW),
        2 => Some(NOW + 1),
        _ => None,
    }
}

fn world() -> impl Strategy<Value = World> {
    (1usize..6, 1usize..9, 1usize..4, 1usize..6)
        .prop_flat_map(|(units, users, roles, records)| {
            let unit_parents = prop::collection::vec(
                prop::option::weighted(0.8, any::<prop::sample::Index>()),
                units,
            );
            let raw_users = prop::collection::vec(
                (
                    prop::option::weighted(0.85, any::<prop::sample::Index>()),
                    0..units,
                    prop::bool::weighted(0.15),
                    prop::collection::vec((0..roles, any::<u8>()), 0..3),
                ),
                users,
            );
            let role_grants = prop::collection::vec(prop::collection::vec(grant(), 0..8), roles);
            // An owner or unit index one past the end stands for an unknown id.
            let raw_records = prop::collection::vec(
                (
                    0..=users,
                    0..=units,
                    prop::option::weighted(0.8, (0..=users, 0..=units)),
                ),
                records,
            );
            let controls =
                prop::collection::vec((prop::sample::select(ObjectType::ALL), any::<bool>()), 0..3);
            let user_ids = Just((1..=users as i64).collect::<Vec<_>>()).prop_shuffle();
            let sparse = any::<bool>();
            (
                unit_parents,
                raw_users,
                role_grants,
                raw_records,
                controls,
                user_ids,
                sparse,
            )
        })
        .prop_map(
            |(unit_parents, raw_users, role_grants, raw_records, controls, user_ids, sparse)| {
                // Sparse ids exercise the engine's hash index; dense ones its table.
                let spread = if sparse { 1_000_003 } else { 1 };
                let unit_id = |i: usize| UnitId((i as i64 + 1) * spread);
                let user_id = |i: usize| UserId(user_ids[i] * spread);
                let role_id = |i: usize| RoleId(10 + 7 * i as i64);
                let units = unit_parents
                    .iter()
                    .enumerate()
                    .map(|(i, parent)| UnitDef {
                        id: unit_id(i),
                        name: format!("unit {i}"),
                        // Parents come before children: a forest.
                        parent: parent.filter(|_| i > 0).map(|p| unit_id(p.index(i))),
                    })
                    .collect();
                let users: Vec<RawUser> = raw_users
                    .into_iter()
                    .enumerate()
                    .map(|(i, (manager, unit, disabled, roles))| RawUser {
                        manager: manager.filter(|_| i > 0).map(|m| m.index(i)),
                        unit,
                        disabled,
                        roles,
                    })
                    .collect();
                let users = users
                    .iter()
                    .enumerate()
                    .map(|(i, u)| UserDef {
                        id: user_id(i),
                        username: format!("user{i}"),
                        unit: unit_id(u.unit),
                        manager: u.manager.map(user_id),
                        disabled: u.disabled,
                        portal_account: None,
                        roles: u
                            .roles
                            .iter()
                            .map(|&(role, kind)| RoleAssignment {
                                role: role_id(role),
                                expires_at: expiry(kind),
                            })
                            .collect(),
                    })
                    .collect::<Vec<_>>();
                let roles = role_grants
                    .into_iter()
                    .enumerate()
                    .map(|(i, grants)| RoleDef {
                        id: role_id(i),
                        name: format!("role {i}"),
                        grants,
                        permissions: Vec::new(),
                        fields: Vec::new(),
                    })
                    .collect();
                let controls = controls
                    .into_iter()
                    .map(|(object, own)| {
                        (
                            object,
                            if own {
                                Control::OwnGrants
                            } else {
                                Control::ByCustomer
                            },
                        )
                    })
                    .collect();
                let n_users = users.len();
                let n_units = unit_parents.len();
                let owner = |i: usize| {
                    if i == n_users {
                        UNKNOWN_USER
                    } else {
                        user_id(i)
                    }
                };
                let unit = |i: usize| {
                    if i == n_units {
                        UNKNOWN_UNIT
                    } else {
                        unit_id(i)
                    }
                };
                let records = raw_records
                    .into_iter()
                    .map(|(o, u, customer)| {
                        let raw = RawRecord {
                            owner: o,
                            unit: u,
                            customer,
                        };
                        RecordRef {
                            owner: owner(raw.owner),
                            unit: unit(raw.unit),
                            customer: raw.customer.map(|(o, u)| (owner(o), unit(u))),
                            ..RecordRef::new(UserId(0), UnitId(0))
                        }
                    })
                    .collect();
                World {
                    model: Model {
                        epoch: 1,
                        units,
                        users,
                        roles,
                        controls,
                        ..Default::default()
                    },
                    records,
                }
            },
        )
}

// ---------------------------------------------------------------------------------------------
// The Cedar encoding, from the documented semantics.

/// How an object's records are decided: customers always by their own grants; another object
/// by its customer unless the model says otherwise (the last word counts).
fn control_of(model: &Model, object: ObjectType) -> Control {
    if object == ObjectType::Customers {
        return Control::OwnGrants;
    }
    model
        .controls
        .iter()
        .rev()
        .find(|(o, _)| *o == object)
        .map_or(Control::ByCustomer, |(_, c)| *c)
}

/// The customer action that controls a child record's action (from `Control::ByCustomer`'s
/// documentation): read, export, share and approve map to themselves, every change to update.
fn customer_action(action: Action) -> Action {
    match action {
        Action::Create | Action::Update | Action::Delete => Action::Update,
        other => other,
    }
}

fn type_name(name: &str) -> EntityTypeName {
    EntityTypeName::from_str(name).expect("a valid type name")
}

fn uid(type_name: &str, id: i64) -> EntityUid {
    EntityUid::from_type_name_and_id(self::type_name(type_name), EntityId::new(id.to_string()))
}

fn action_uid(object: ObjectType, action: Action) -> EntityUid {
    EntityUid::from_type_name_and_id(
        type_name("Action"),
        EntityId::new(format!("{object}:{action}")),
    )
}

fn role_attr(role: RoleId) -> String {
    format!("r{}", role.0)
}

/// The condition for `scope` on the record's owner and unit, named by the context attributes
/// `owner` and `unit`.
fn scope_condition(scope: Scope, owner: &str, unit: &str) -> String {
    match scope {
        Scope::All => "true".to_owned(),
        Scope::Account => "false".to_owned(),
        Scope::Own => format!("context.{owner} == principal"),
        Scope::Subordinates { depth: None } => format!("context.{owner} in principal"),
        Scope::Subordinates { depth: Some(d) } => format!(
            "context.{owner} in principal && context.{owner}.depth <= principal.depth + {d}"
        ),
        Scope::Unit => format!("context.{unit} == principal.unit"),
        Scope::UnitTree => format!("context.{unit} in principal.unit"),
    }
}

fn policies(model: &Model) -> String {
    let mut text =
        String::from("forbid (principal, action, resource) when { principal.disabled };\n");
    for role in &model.roles {
        let active = format!(
            "principal.roles has {a} && context.now < principal.roles.{a}",
            a = role_attr(role.id)
        );
        for grant in &role.grants {
            // The object's own records, when it is decided by its own grants.
            if control_of(model, grant.object) == Control::OwnGrants {
                let _ = writeln!(
                    text,
                    "permit (principal, action == {}, resource) when {{ {active} && {} }};",
                    action_uid(grant.object, grant.action),
                    scope_condition(grant.scope, "owner", "unit"),
                );
            }
            // Child records decided by their customer.
            if grant.object == ObjectType::Customers {
                let children: Vec<String> = ObjectType::ALL
                    .iter()
                    .filter(|&&o| control_of(model, o) == Control::ByCustomer)
                    .flat_map(|&o| {
                        Action::ALL
                            .iter()
                            .filter(|&&a| customer_action(a) == grant.action)
                            .map(move |&a| action_uid(o, a).to_string())
                    })
                    .collect();
                if !children.is_empty() {
                    let _ = writeln!(
                        text,
                        "permit (principal, action in [{}], resource) when {{ {active} && \
                         context has customer_owner && {} }};",
                        children.join(", "),
                        scope_condition(grant.scope, "customer_owner", "customer_unit"),
                    );
                }
            }
        }
    }
    text
}

/// Levels below the top of the reporting line, by user id.
fn depths(model: &Model) -> HashMap<UserId, i64> {
    let managers: HashMap<UserId, Option<UserId>> =
        model.users.iter().map(|u| (u.id, u.manager)).collect();
    model
        .users
        .iter()
        .map(|u| {
            let mut depth = 0;
            let mut current = u.manager;
            while let Some(m) = current {
                depth += 1;
                current = managers[&m];
            }
            (u.id, depth)
        })
        .collect()
}

fn entities(model: &Model) -> Entities {
    let depth = depths(model);
    let mut all = Vec::new();
    for unit in &model.units {
        let parents: HashSet<EntityUid> =
            unit.parent.map(|p| uid("Unit", p.0)).into_iter().collect();
        all.push(Entity::new_no_attrs(uid("Unit", unit.id.0), parents));
    }
    for user in &model.users {
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
        .expect("distinct role attributes");
        let attrs = HashMap::from([
            (
                "unit".to_owned(),
                RestrictedExpression::new_entity_uid(uid("Unit", user.unit.0)),
            ),
            (
                "depth".to_owned(),
                RestrictedExpression::new_long(depth[&user.id]),
            ),
            (
                "disabled".to_owned(),
                RestrictedExpression::new_bool(user.disabled),
            ),
            ("roles".to_owned(), roles),
        ]);
        let parents: HashSet<EntityUid> =
            user.manager.map(|m| uid("User", m.0)).into_iter().collect();
        all.push(Entity::new(uid("User", user.id.0), attrs, parents).expect("valid attributes"));
    }
    Entities::from_entities(all, None).expect("distinct entities")
}

fn cedar_request(user: UserId, object: ObjectType, action: Action, record: &RecordRef) -> Request {
    let mut pairs = vec![
        ("now".to_owned(), RestrictedExpression::new_long(NOW)),
        (
            "owner".to_owned(),
            RestrictedExpression::new_entity_uid(uid("User", record.owner.0)),
        ),
        (
            "unit".to_owned(),
            RestrictedExpression::new_entity_uid(uid("Unit", record.unit.0)),
        ),
    ];
    if let Some((owner, unit)) = record.customer {
        pairs.push((
            "customer_owner".to_owned(),
            RestrictedExpression::new_entity_uid(uid("User", owner.0)),
        ));
        pairs.push((
            "customer_unit".to_owned(),
            RestrictedExpression::new_entity_uid(uid("Unit", unit.0)),
        ));
    }
    Request::new(
        uid("User", user.0),
        action_uid(object, action),
        uid("Record", 1),
        Context::from_pairs(pairs).expect("distinct context keys"),
        None,
    )
    .expect("a request without a schema")
}

// ---------------------------------------------------------------------------------------------
// The property.

fn assert_same_decisions(world: &World) -> Result<usize, TestCaseError> {
    let snapshot = Snapshot::compile(&world.model).expect("generated worlds are valid");
    let text = policies(&world.model);
    let policy_set = PolicySet::from_str(&text).expect("the encoding parses");
    let entities = entities(&world.model);
    let authorizer = Authorizer::new();
    let users = world.model.users.iter().map(|u| u.id).chain([UNKNOWN_USER]);
    let mut compared = 0;
    for user in users {
        for record in &world.records {
            for &object in ObjectType::ALL {
                for &action in Action::ALL {
                    let warden = snapshot.check(user, action, object, record, NOW);
                    let response = authorizer.is_authorized(
                        &cedar_request(user, object, action, record),
                        &policy_set,
                        &entities,
                    );
                    let cedar = response.decision() == CedarDecision::Allow;
                    prop_assert_eq!(
                        warden.is_allowed(),
                        cedar,
                        "user {:?} {} {} {:?}: warden {:?}, cedar {:?}\npolicies:\n{}\nmodel: {:#?}",
                        user,
                        action,
                        object,
                        record,
                        warden,
                        response.diagnostics().reason().collect::<Vec<_>>(),
                        text,
                        world.model
                    );
                    compared += 1;
                }
            }
        }
    }
    Ok(compared)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn warden_and_cedar_decide_every_request_alike(world in world()) {
        assert_same_decisions(&world)?;
    }
}

/// A hand-made world where every scope matters, as a sanity check of the encoding itself:
/// the property above would pass vacuously if both sides denied everything.
#[test]
fn the_encoding_allows_what_it_should() {
    let unit = |id: i64, parent: Option<i64>| UnitDef {
        id: UnitId(id),
        name: format!("unit {id}"),
        parent: parent.map(UnitId),
    };
    let user = |id: i64, unit: i64, manager: Option<i64>, role: i64| UserDef {
        id: UserId(id),
        username: format!("user{id}"),
        unit: UnitId(unit),
        manager: manager.map(UserId),
        disabled: false,
        portal_account: None,
        roles: vec![RoleAssignment {
            role: RoleId(role),
            expires_at: None,
        }],
    };
    let role = |id: i64, scope: Scope| RoleDef {
        id: RoleId(id),
        name: format!("role {id}"),
        grants: vec![Grant {
            object: ObjectType::Customers,
            action: Action::Read,
            scope,
        }],
        permissions: Vec::new(),
        fields: Vec::new(),
    };
    let model = Model {
        epoch: 1,
        units: vec![unit(1, None), unit(2, Some(1)), unit(3, Some(2))],
        users: vec![
            user(1, 1, None, 2),
            user(2, 2, Some(1), 3),
            user(3, 3, Some(2), 1),
            user(4, 1, Some(1), 4),
        ],
        roles: vec![
            role(1, Scope::Own),
            role(2, Scope::Subordinates { depth: Some(1) }),
            role(3, Scope::UnitTree),
            role(4, Scope::Unit),
        ],
        controls: Vec::new(),
        ..Default::default()
    };
    let world = World {
        records: vec![
            RecordRef::new(UserId(3), UnitId(3)),
            RecordRef::new(UserId(2), UnitId(1)),
            RecordRef {
                owner: UserId(1),
                unit: UnitId(1),
                customer: Some((UserId(3), UnitId(3))),
                ..RecordRef::new(UserId(0), UnitId(0))
            },
        ],
        model,
    };
    assert_same_decisions(&world).unwrap();
    let snapshot = Snapshot::compile(&world.model).unwrap();
    let text = policies(&world.model);
    let policy_set = PolicySet::from_str(&text).unwrap();
    let entities = entities(&world.model);
    let cedar_allows = |user: i64, object: ObjectType, record: &RecordRef| {
        Authorizer::new()
            .is_authorized(
                &cedar_request(UserId(user), object, Action::Read, record),
                &policy_set,
                &entities,
            )
            .decision()
            == CedarDecision::Allow
    };
    // (user, object, record, allowed): one line per scope, allowed and refused.
    let cases = [
        (3, ObjectType::Customers, 0, true),  // own
        (3, ObjectType::Customers, 1, false), // own, someone else's
        (1, ObjectType::Customers, 1, true),  // direct report
        (1, ObjectType::Customers, 0, false), // two levels down, depth 1
        (2, ObjectType::Customers, 0, true),  // unit tree, below
        (2, ObjectType::Customers, 1, false), // unit tree, above
        (4, ObjectType::Customers, 1, true),  // same unit
        (4, ObjectType::Customers, 0, false), // unit below, unit scope
        (3, ObjectType::Contacts, 2, true),   // contact of an own customer
        (1, ObjectType::Contacts, 2, false),  // contact of a customer two levels down
    ];
    for (user, object, record, allowed) in cases {
        let record = &world.records[record];
        let warden = snapshot
            .check(UserId(user), Action::Read, object, record, NOW)
            .is_allowed();
        assert_eq!(warden, allowed, "warden: user {user} {object} {record:?}");
        assert_eq!(
            cedar_allows(user, object, record),
            allowed,
            "cedar: user {user} {object} {record:?}"
        );
    }
}
