//! Property tests of shares, team places, sharing rules, restriction rules and portal users on
//! random organisations: `check` == a plain reference (the hierarchy reference of
//! `properties.rs` is the engine without any of these, checked there), `filter` == `check`,
//! a portal user never reaches another account, explain agrees with check, and nothing
//! unreachable shows a field.

use proptest::prelude::*;
use warden_policy::schema::{schema, Value};
use warden_policy::{
    Action, Audience, CompareOp, Control, Criteria, Decision, Denial, Facts, FieldAccess, Grant,
    Model, ObjectType, Principal, RecordRef, RestrictionRule, RoleAssignment, RoleDef, RoleId,
    RuleSource, Scope, Share, ShareAccess, ShareKind, SharingRule, Snapshot, UnitDef, UnitId,
    UserDef, UserId,
};

const NOW: i64 = 1_000_000;
const ACCOUNTS: i64 = 4;

/// A record with everything it carries, owned (a `RecordRef` borrows from it).
#[derive(Debug, Clone)]
struct Stored {
    object: ObjectType,
    id: i64,
    owner: UserId,
    unit: UnitId,
    customer_id: Option<i64>,
    shares: Vec<Share>,
    values: Vec<Value>,
}

#[derive(Debug, Clone)]
struct World {
    model: Model,
    /// Customers `1..=ACCOUNTS` first, then contacts.
    records: Vec<Stored>,
}

impl World {
    fn customer(&self, id: i64) -> &Stored {
        self.records
            .iter()
            .find(|r| r.object == ObjectType::Customers && r.id == id)
            .expect("every contact's customer exists")
    }

    fn record_ref<'a>(&'a self, record: &'a Stored) -> RecordRef<'a> {
        let customer = record.customer_id.map(|id| self.customer(id));
        RecordRef {
            owner: record.owner,
            unit: record.unit,
            customer: customer.map(|c| (c.owner, c.unit)),
            id: Some(record.id),
            customer_id: record.customer_id,
            facts: Facts {
                shares: &record.shares,
                values: &record.values,
            },
            customer_facts: customer.map_or(Facts::default(), |c| Facts {
                shares: &c.shares,
                values: &c.values,
            }),
        }
    }
}

fn criteria_strategy() -> impl Strategy<Value = Criteria> {
    let leaf = prop_oneof![
        prop::sample::select(vec!["East", "West"]).prop_map(|r| Criteria::Compare {
            field: "region".into(),
            op: CompareOp::Eq,
            value: Value::Text(r.into()),
        }),
        prop::sample::select(vec!["active", "inactive"]).prop_map(|s| Criteria::Compare {
            field: "status".into(),
            op: CompareOp::Ne,
            value: Value::Text(s.into()),
        }),
        any::<bool>().prop_map(|v| Criteria::Compare {
            field: "vip".into(),
            op: CompareOp::Eq,
            value: Value::Bool(v),
        }),
        Just(Criteria::In {
            field: "status".into(),
            values: vec![Value::Text("active".into()), Value::Null],
        }),
    ];
    leaf.prop_recursive(2, 6, 3, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 1..3).prop_map(Criteria::All),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Criteria::Any),
            inner.prop_map(|c| Criteria::Not(Box::new(c))),
        ]
    })
}

fn value_strategy(choices: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop_oneof![
        1 => Just(Value::Null),
        3 => prop::sample::select(choices).prop_map(|c| Value::Text(c.into())),
    ]
}

fn principal(
    kind: u8,
    index: prop::sample::Index,
    users: usize,
    units: usize,
    roles: usize,
) -> Principal {
    match kind % 3 {
        0 => Principal::User(UserId(index.index(users) as i64 + 1)),
        1 => Principal::Unit(UnitId(index.index(units) as i64 + 1)),
        _ => Principal::Role(RoleId(index.index(roles) as i64 + 1)),
    }
}

prop_compose! {
    fn world_strategy()(
        units in prop::collection::vec(proptest::option::weighted(0.8, any::<prop::sample::Index>()), 2..6),
        users in prop::collection::vec(
            (proptest::option::weighted(0.7, any::<prop::sample::Index>()), any::<prop::sample::Index>(),
             prop::collection::vec(any::<prop::sample::Index>(), 0..3),
             proptest::option::weighted(0.25, 1..=ACCOUNTS)),
            3..14),
        roles in prop::collection::vec(
            prop::collection::vec((prop::sample::select(vec![ObjectType::Customers, ObjectType::Contacts]),
                                   prop::sample::select(Action::ALL.to_vec()),
                                   prop::sample::select(vec![Scope::Own, Scope::Subordinates { depth: None }, Scope::Unit, Scope::UnitTree, Scope::All, Scope::Account])),
                              0..6),
            1..4),
        customers in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>(),
             value_strategy(&["East", "West"]), value_strategy(&["active", "inactive", "prospect"]),
             prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool)],
             prop::collection::vec((any::<bool>(), any::<u8>(), any::<prop::sample::Index>(), any::<bool>()), 0..3)),
            ACCOUNTS as usize),
        contacts in prop::collection::vec(
            (any::<prop::sample::Index>(), any::<prop::sample::Index>(), 1..=ACCOUNTS,
             prop::collection::vec((any::<bool>(), any::<u8>(), any::<prop::sample::Index>(), any::<bool>()), 0..2)),
            0..5),
        sharing in prop::collection::vec(
            (prop::sample::select(vec![ObjectType::Customers, ObjectType::Contacts]),
             proptest::option::weighted(0.6, criteria_strategy()), any::<prop::sample::Index>(),
             any::<u8>(), any::<prop::sample::Index>(), any::<bool>()),
            0..3),
        restrictions in prop::collection::vec(
            (prop::sample::select(vec![ObjectType::Customers, ObjectType::Contacts]), any::<u8>(),
             any::<prop::sample::Index>(), prop::collection::vec(prop::sample::select(Action::ALL.to_vec()), 0..2),
             criteria_strategy()),
            0..3),
        contacts_own in any::<bool>(),
    ) -> World {
        let (n_units, n_users, n_roles) = (units.len(), users.len(), roles.len());
        let unit_id = |i: usize| UnitId(i as i64 + 1);
        let user_id = |i: usize| UserId(i as i64 + 1);
        let model_units = units.iter().enumerate().map(|(i, p)| UnitDef {
            id: unit_id(i),
            name: format!("unit{i}"),
            parent: p.filter(|_| i > 0).map(|p| unit_id(p.index(i))),
        }).collect();
        let model_roles = roles.iter().enumerate().map(|(i, grants)| RoleDef {
            id: RoleId(i as i64 + 1),
            name: format!("role{i}"),
            grants: grants.iter().map(|&(object, action, scope)| Grant { object, action, scope }).collect(),
            permissions: vec![],
            fields: vec![],
        }).collect();
        let model_users = users.iter().enumerate().map(|(i, (manager, unit, held, portal))| {
            let mut roles: Vec<RoleAssignment> = held.iter()
                .map(|r| RoleAssignment { role: RoleId(r.index(n_roles) as i64 + 1), expires_at: None })
                .collect();
            roles.sort_by_key(|a| a.role);
            roles.dedup_by_key(|a| a.role);
            UserDef {
                id: user_id(i),
                username: format!("user{i}"),
                unit: unit_id(unit.index(n_units)),
                manager: manager.filter(|_| i > 0).map(|m| user_id(m.index(i))),
                disabled: false,
                roles,
                portal_account: *portal,
            }
        }).collect();
        let shares = |specs: &[(bool, u8, prop::sample::Index, bool)]| -> Vec<Share> {
            specs.iter().map(|&(team, kind, index, edit)| Share {
                kind: if team { ShareKind::Team } else { ShareKind::Share },
                principal: principal(kind, index, n_users, n_units, n_roles),
                access: if edit { ShareAccess::Edit } else { ShareAccess::Read },
            }).collect()
        };
        let mut records = Vec::new();
        let fields = schema(ObjectType::Customers).fields.len();
        for (i, (owner, unit, region, status, vip, specs)) in customers.iter().enumerate() {
            let mut values = vec![Value::Null; fields];
            for (name, value) in [("name", Value::Text(format!("c{i}"))), ("region", region.clone()), ("status", status.clone()), ("vip", vip.clone())] {
                values[schema(ObjectType::Customers).field(name).expect("customer field").0] = value;
            }
            records.push(Stored {
                object: ObjectType::Customers,
                id: i as i64 + 1,
                owner: user_id(owner.index(n_users)),
                unit: unit_id(unit.index(n_units)),
                customer_id: None,
                shares: shares(specs),
                values,
            });
        }
        for (i, (owner, unit, customer, specs)) in contacts.iter().enumerate() {
            let mut values = vec![Value::Null; schema(ObjectType::Contacts).fields.len()];
            values[0] = Value::Text(format!("p{i}"));
            records.push(Stored {
                object: ObjectType::Contacts,
                id: i as i64 + 100,
                owner: user_id(owner.index(n_users)),
                unit: unit_id(unit.index(n_units)),
                customer_id: Some(*customer),
                shares: shares(specs),
                values,
            });
        }
        let sharing_rules = sharing.iter().enumerate().map(|(i, (object, criteria, unit, kind, index, edit))| SharingRule {
            id: i as i64 + 1,
            name: format!("share{i}"),
            object: *object,
            // Contacts have no region, status or vip: their rules go by unit.
            source: match (criteria, object) {
                (Some(criteria), ObjectType::Customers) => RuleSource::Criteria(criteria.clone()),
                _ => RuleSource::OwnedByUnit(unit_id(unit.index(n_units))),
            },
            share_with: principal(*kind, *index, n_users, n_units, n_roles),
            access: if *edit { ShareAccess::Edit } else { ShareAccess::Read },
        }).collect();
        let restriction_rules = restrictions.iter().enumerate().map(|(i, (object, kind, index, actions, only))| RestrictionRule {
            id: i as i64 + 1,
            name: format!("restrict{i}"),
            object: *object,
            applies_to: match kind % 4 {
                0 => Audience::Everyone,
                1 => Audience::Role(RoleId(index.index(n_roles) as i64 + 1)),
                2 => Audience::Unit(unit_id(index.index(n_units))),
                _ => Audience::ExceptRole(RoleId(index.index(n_roles) as i64 + 1)),
            },
            actions: actions.clone(),
            only: if *object == ObjectType::Customers {
                only.clone()
            } else {
                Criteria::Compare { field: "title".into(), op: CompareOp::Eq, value: Value::Null }
            },
        }).collect();
        World {
            model: Model {
                epoch: 1,
                units: model_units,
                users: model_users,
                roles: model_roles,
                controls: if contacts_own { vec![(ObjectType::Contacts, Control::OwnGrants)] } else { vec![] },
                sharing_rules,
                restriction_rules,
                ..Default::default()
            },
            records,
        }
    }
}

/// The plain statement of how grants, shares, rules, restrictions and the portal combine.
fn reference_allows(
    world: &World,
    base: &Snapshot,
    user: UserId,
    action: Action,
    object: ObjectType,
    stored: &Stored,
) -> bool {
    let model = &world.model;
    let me = model
        .users
        .iter()
        .find(|u| u.id == user)
        .expect("user exists");
    let record = world.record_ref(stored);
    let account = if object == ObjectType::Customers {
        Some(stored.id)
    } else {
        stored.customer_id
    };
    if me.portal_account.is_some() && me.portal_account != account {
        return false;
    }
    let by_customer =
        object != ObjectType::Customers && !model.controls.contains(&(object, Control::OwnGrants));
    let (dobject, daction, dunit, dshares, dvalues) = if by_customer {
        let Some(id) = stored.customer_id else {
            return false;
        };
        let customer = world.customer(id);
        let action = match action {
            Action::Create | Action::Update | Action::Delete => Action::Update,
            other => other,
        };
        (
            ObjectType::Customers,
            action,
            customer.unit,
            &customer.shares,
            &customer.values,
        )
    } else {
        (object, action, stored.unit, &stored.shares, &stored.values)
    };
    let in_unit = |unit: UnitId| {
        let mut current = Some(me.unit);
        while let Some(u) = current {
            if u == unit {
                return true;
            }
            current = model
                .units
                .iter()
                .find(|x| x.id == u)
                .and_then(|x| x.parent);
        }
        false
    };
    let unit_within = |unit: UnitId, top: UnitId| {
        let mut current = Some(unit);
        while let Some(u) = current {
            if u == top {
                return true;
            }
            current = model
                .units
                .iter()
                .find(|x| x.id == u)
                .and_then(|x| x.parent);
        }
        false
    };
    let holds_role = |role: RoleId| me.roles.iter().any(|a| a.role == role);
    let is_me = |p: Principal| match p {
        Principal::User(u) => u == me.id,
        Principal::Unit(u) => in_unit(u),
        Principal::Role(r) => holds_role(r),
    };
    let gives = |access: ShareAccess| {
        daction == Action::Read || (daction == Action::Update && access == ShareAccess::Edit)
    };
    // The hierarchy, from the engine without sharing (itself held to the reference of
    // `properties.rs`), on the record without its facts.
    let plain = RecordRef {
        facts: Facts::default(),
        customer_facts: Facts::default(),
        ..record
    };
    let by_grant = base.check(user, action, object, &plain, NOW).is_allowed();
    let by_account = me.portal_account.is_some()
        && me.roles.iter().any(|a| {
            model
                .roles
                .iter()
                .find(|r| r.id == a.role)
                .is_some_and(|r| {
                    r.grants.iter().any(|g| {
                        g.object == dobject && g.action == daction && g.scope == Scope::Account
                    })
                })
        });
    let by_share = dshares
        .iter()
        .any(|s| gives(s.access) && is_me(s.principal));
    let by_rule = model.sharing_rules.iter().any(|rule| {
        rule.object == dobject
            && gives(rule.access)
            && is_me(rule.share_with)
            && match &rule.source {
                RuleSource::Criteria(c) => c.holds(dobject, dvalues),
                RuleSource::OwnedByUnit(u) => unit_within(dunit, *u),
            }
    });
    let restricted = model.restriction_rules.iter().any(|rule| {
        rule.object == dobject
            && (rule.actions.is_empty() || rule.actions.contains(&daction))
            && match rule.applies_to {
                Audience::Everyone => true,
                Audience::Role(r) => holds_role(r),
                Audience::Unit(u) => in_unit(u),
                Audience::ExceptRole(r) => !holds_role(r),
            }
            && !rule.only.holds(dobject, dvalues)
    });
    (by_grant || by_account || by_share || by_rule) && !restricted
}

fn base_snapshot(world: &World) -> Snapshot {
    let mut plain = world.model.clone();
    plain.sharing_rules.clear();
    plain.restriction_rules.clear();
    for user in &mut plain.users {
        user.portal_account = None;
    }
    Snapshot::compile(&plain).expect("random worlds are forests")
}

const OBJECTS: [ObjectType; 2] = [ObjectType::Customers, ObjectType::Contacts];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn check_agrees_with_the_reference(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("valid world");
        let base = base_snapshot(&world);
        for user in &world.model.users {
            for object in OBJECTS {
                for action in Action::ALL {
                    for stored in world.records.iter().filter(|r| r.object == object) {
                        let record = world.record_ref(stored);
                        let decision = snapshot.check(user.id, *action, object, &record, NOW);
                        let expected = reference_allows(&world, &base, user.id, *action, object, stored);
                        prop_assert_eq!(decision.is_allowed(), expected,
                            "{:?} {:?} {:?} {:?}: {:?}", user, action, object, stored, decision);
                    }
                }
            }
        }
    }

    #[test]
    fn filter_matches_exactly_what_check_allows(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("valid world");
        for user in &world.model.users {
            for object in OBJECTS {
                for action in Action::ALL {
                    let filter = snapshot.filter(user.id, *action, object, NOW);
                    for stored in world.records.iter().filter(|r| r.object == object) {
                        let record = world.record_ref(stored);
                        prop_assert_eq!(
                            filter.matches(&record),
                            snapshot.check(user.id, *action, object, &record, NOW).is_allowed(),
                            "{:?} {:?} {:?} {:?} filter {:?}", user.id, action, object, stored, filter
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn a_portal_user_reaches_only_their_account(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("valid world");
        for user in world.model.users.iter().filter(|u| u.portal_account.is_some()) {
            prop_assert!(!snapshot.has_permission(user.id, warden_policy::Permission::ManageUsers, NOW));
            for stored in &world.records {
                let record = world.record_ref(stored);
                let account = record.account(stored.object);
                for action in Action::ALL {
                    if snapshot.check(user.id, *action, stored.object, &record, NOW).is_allowed() {
                        prop_assert_eq!(account, user.portal_account);
                    }
                }
                if account != user.portal_account {
                    prop_assert_eq!(
                        snapshot.check(user.id, Action::Read, stored.object, &record, NOW),
                        Decision::Deny(Denial::OutsideAccount)
                    );
                }
                let levels = snapshot.field_levels(user.id, Action::Read, stored.object, &record, NOW);
                for (def, level) in levels.iter() {
                    prop_assert!(def.portal || level == FieldAccess::Hidden, "{} shown to a portal user", def.name);
                }
            }
        }
    }

    #[test]
    fn explain_agrees_with_check_and_names_the_restriction(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("valid world");
        for user in &world.model.users {
            for stored in &world.records {
                let record = world.record_ref(stored);
                let explanation = snapshot.explain(user.id, stored.object, &record, NOW);
                for item in &explanation.actions {
                    let decision = snapshot.check(user.id, item.action, stored.object, &record, NOW);
                    prop_assert_eq!(item.decision, decision);
                    match decision {
                        Decision::Allow(_) => {
                            prop_assert!(!item.reasons.is_empty());
                            prop_assert!(item.restricted_by.is_empty());
                        }
                        Decision::Deny(Denial::Restricted { rule, .. }) => {
                            prop_assert!(!item.reasons.is_empty());
                            prop_assert!(item.restricted_by.contains(&rule));
                        }
                        Decision::Deny(_) => {}
                    }
                }
                // Nothing that cannot be read shows a field.
                if !snapshot.check(user.id, Action::Read, stored.object, &record, NOW).is_allowed() {
                    let levels = snapshot.field_levels(user.id, Action::Read, stored.object, &record, NOW);
                    prop_assert!(levels.iter().all(|(_, l)| l == FieldAccess::Hidden));
                }
            }
        }
    }

    #[test]
    fn a_share_never_takes_access_away_and_a_restriction_never_gives(
        world in world_strategy(),
        record in any::<prop::sample::Index>(),
        kind in any::<u8>(),
        who in any::<prop::sample::Index>(),
        only in criteria_strategy(),
    ) {
        let snapshot = Snapshot::compile(&world.model).expect("valid world");
        let table = |snapshot: &Snapshot, world: &World| {
            let mut out = Vec::new();
            for user in &world.model.users {
                for stored in &world.records {
                    let record = world.record_ref(stored);
                    for action in Action::ALL {
                        out.push(snapshot.check(user.id, *action, stored.object, &record, NOW).is_allowed());
                    }
                }
            }
            out
        };
        let before = table(&snapshot, &world);
        let mut shared = world.clone();
        let index = record.index(shared.records.len());
        let (users, units, roles) = (world.model.users.len(), world.model.units.len(), world.model.roles.len());
        shared.records[index].shares.push(Share {
            kind: ShareKind::Share,
            principal: principal(kind, who, users, units, roles),
            access: ShareAccess::Edit,
        });
        let after = table(&Snapshot::compile(&shared.model).expect("valid world"), &shared);
        for (was, is) in before.iter().zip(&after) {
            prop_assert!(!was || *is, "a share took access away");
        }
        let mut restricted = world.clone();
        restricted.model.restriction_rules.push(RestrictionRule {
            id: 99,
            name: "extra".into(),
            object: ObjectType::Customers,
            applies_to: Audience::Everyone,
            actions: vec![],
            only,
        });
        let after = table(&Snapshot::compile(&restricted.model).expect("valid world"), &restricted);
        for (was, is) in before.iter().zip(&after) {
            prop_assert!(*was || !is, "a restriction gave access");
        }
    }
}
