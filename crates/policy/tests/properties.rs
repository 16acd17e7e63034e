//! Property tests of the engine against a naive reference model on random organisations:
//! `check` == reference, `filter` == `check`, a move changes access only along the chains
//! of command above the person moved, and field levels == the reference's, never lowered by
//! a wider grant, never below the list floor.

use proptest::prelude::*;
use warden_policy::schema::schema;
use warden_policy::{
    Action, Control, FieldAccess, FieldRule, Grant, Model, ObjectType, RecordRef, RoleAssignment,
    RoleDef, RoleId, Scope, Snapshot, UnitDef, UnitId, UserDef, UserId,
};

const NOW: i64 = 1_000_000;

/// A random organisation plus records.
#[derive(Debug, Clone)]
struct World {
    model: Model,
    records: Vec<RecordRef<'static>>,
}

fn scope_strategy() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Own),
        Just(Scope::Subordinates { depth: None }),
        (1u32..3).prop_map(|d| Scope::Subordinates { depth: Some(d) }),
        Just(Scope::Unit),
        Just(Scope::UnitTree),
        Just(Scope::All),
    ]
}

fn field_rule_strategy() -> impl Strategy<Value = FieldRule> {
    (
        prop::sample::select(vec![ObjectType::Customers, ObjectType::Contacts]),
        any::<prop::sample::Index>(),
        prop::sample::select(FieldAccess::ALL.to_vec()),
    )
        .prop_map(|(object, field, access)| {
            let fields = schema(object).fields;
            FieldRule {
                object,
                field: fields[field.index(fields.len())].name.to_owned(),
                access,
            }
        })
}

fn world_strategy() -> impl Strategy<Value = World> {
    (2usize..8, 2usize..24, 1usize..5).prop_flat_map(|(units, users, roles)| {
        (
            // Parents point to earlier indexes: a forest by construction.
            proptest::collection::vec(
                proptest::option::weighted(0.8, any::<prop::sample::Index>()),
                units,
            ),
            proptest::collection::vec(
                (
                    proptest::option::weighted(0.8, any::<prop::sample::Index>()),
                    any::<prop::sample::Index>(),
                    proptest::bool::weighted(0.1),
                    proptest::collection::vec(
                        (
                            any::<prop::sample::Index>(),
                            proptest::option::weighted(0.2, 0i64..2_000_000),
                        ),
                        0..3,
                    ),
                ),
                users,
            ),
            proptest::collection::vec(
                (
                    proptest::collection::vec(
                        (
                            prop::sample::select(ObjectType::ALL.to_vec()),
                            prop::sample::select(Action::ALL.to_vec()),
                            scope_strategy(),
                        ),
                        0..8,
                    ),
                    proptest::collection::vec(field_rule_strategy(), 0..6),
                ),
                roles,
            ),
            proptest::collection::vec(
                (
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                    any::<prop::sample::Index>(),
                ),
                1..30,
            ),
            proptest::bool::ANY,
        )
            .prop_map(
                move |(unit_parents, user_specs, role_specs, record_specs, contacts_own)| {
                    // Sparse ids, so both id index layouts are exercised.
                    let unit_id = |i: usize| UnitId(i as i64 * 3 + 1);
                    let user_id = |i: usize| UserId(i as i64 * 7 + 2);
                    let units: Vec<UnitDef> = unit_parents
                        .iter()
                        .enumerate()
                        .map(|(i, p)| UnitDef {
                            id: unit_id(i),
                            name: format!("unit{i}"),
                            parent: p.filter(|_| i > 0).map(|p| unit_id(p.index(i))),
                        })
                        .collect();
                    let roles: Vec<RoleDef> = role_specs
                        .iter()
                        .enumerate()
                        .map(|(i, (grants, rules))| {
                            // One rule per field: the last one drawn wins.
                            let mut fields: Vec<FieldRule> = Vec::new();
                            for rule in rules {
                                fields.retain(|f: &FieldRule| {
                                    f.object != rule.object || f.field != rule.field
                                });
                                fields.push(rule.clone());
                            }
                            RoleDef {
                                id: RoleId(i as i64 + 1),
                                name: format!("role{i}"),
                                grants: grants
                                    .iter()
                                    .map(|&(object, action, scope)| Grant {
                                        object,
                                        action,
                                        scope,
                                    })
                                    .collect(),
                                permissions: vec![],
                                fields,
                            }
                        })
                        .collect();
                    let users: Vec<UserDef> = user_specs
                        .iter()
                        .enumerate()
                        .map(|(i, (manager, unit, disabled, assignments))| {
                            let mut roles_held: Vec<RoleAssignment> = assignments
                                .iter()
                                .map(|(r, expires_at)| RoleAssignment {
                                    role: RoleId(r.index(role_specs.len()) as i64 + 1),
                                    expires_at: *expires_at,
                                })
                                .collect();
                            roles_held.sort_by_key(|a| a.role);
                            roles_held.dedup_by_key(|a| a.role);
                            UserDef {
                                id: user_id(i),
                                username: format!("user{i}"),
                                unit: unit_id(unit.index(units.len())),
                                manager: manager.filter(|_| i > 0).map(|m| user_id(m.index(i))),
                                disabled: *disabled,
                                portal_account: None,
                                roles: roles_held,
                            }
                        })
                        .collect();
                    let records = record_specs
                        .iter()
                        .map(|(o, u, co, cu)| RecordRef {
                            owner: user_id(o.index(users.len())),
                            unit: unit_id(u.index(units.len())),
                            customer: Some((
                                user_id(co.index(users.len())),
                                unit_id(cu.index(units.len())),
                            )),
                            ..RecordRef::new(UserId(0), UnitId(0))
                        })
                        .collect();
                    let controls = if contacts_own {
                        vec![(ObjectType::Contacts, Control::OwnGrants)]
                    } else {
                        vec![]
                    };
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
    })
}

/// The reference: the rules of PRODUCT.md written the slowest, plainest way.
fn reference_allows(
    model: &Model,
    user: UserId,
    action: Action,
    object: ObjectType,
    record: &RecordRef,
) -> bool {
    !reference_roles(model, user, action, object, record).is_empty()
}

/// The reference's field level: per field, the strongest rule (or schema default) among the
/// active roles whose `action` grant covers the record; hidden when none does.
fn reference_field_levels(
    model: &Model,
    user: UserId,
    action: Action,
    object: ObjectType,
    record: &RecordRef,
) -> Vec<FieldAccess> {
    let roles = reference_roles(model, user, action, object, record);
    schema(object)
        .fields
        .iter()
        .map(|def| {
            roles
                .iter()
                .map(|role| {
                    role.fields
                        .iter()
                        .find(|f| f.object == object && f.field == def.name)
                        .map_or(def.default_access(), |f| f.access)
                })
                .max()
                .unwrap_or(FieldAccess::Hidden)
        })
        .collect()
}

/// The active roles of `user` one of whose grants allows `action` on `record`.
fn reference_roles<'m>(
    model: &'m Model,
    user: UserId,
    action: Action,
    object: ObjectType,
    record: &RecordRef,
) -> Vec<&'m RoleDef> {
    let Some(me) = model.users.iter().find(|u| u.id == user) else {
        return Vec::new();
    };
    if me.disabled {
        return Vec::new();
    }
    let controlled_by_customer =
        object != ObjectType::Customers && !model.controls.contains(&(object, Control::OwnGrants));
    let (object, action, owner, unit) = if controlled_by_customer {
        let Some((owner, unit)) = record.customer else {
            return Vec::new();
        };
        let action = match action {
            Action::Create | Action::Update | Action::Delete => Action::Update,
            other => other,
        };
        (ObjectType::Customers, action, owner, unit)
    } else {
        (object, action, record.owner, record.unit)
    };
    // Levels from `owner` up to `me`, if `me` is owner or above.
    let levels_below_me = || {
        let mut current = Some(owner);
        let mut levels = 0u32;
        while let Some(id) = current {
            if id == me.id {
                return Some(levels);
            }
            current = model
                .users
                .iter()
                .find(|u| u.id == id)
                .and_then(|u| u.manager);
            levels += 1;
        }
        None
    };
    let unit_below_mine = || {
        let mut current = Some(unit);
        while let Some(id) = current {
            if id == me.unit {
                return true;
            }
            current = model
                .units
                .iter()
                .find(|u| u.id == id)
                .and_then(|u| u.parent);
        }
        false
    };
    me.roles
        .iter()
        .filter(|a| a.expires_at.is_none_or(|e| NOW < e))
        .map(|assignment| {
            model
                .roles
                .iter()
                .find(|r| r.id == assignment.role)
                .expect("role exists")
        })
        .filter(|role| {
            role.grants
                .iter()
                .filter(|g| g.object == object && g.action == action)
                .any(|g| match g.scope {
                    Scope::All => true,
                    Scope::Own => owner == me.id,
                    Scope::Subordinates { depth } => {
                        levels_below_me().is_some_and(|l| l <= depth.unwrap_or(u32::MAX))
                    }
                    Scope::Unit => unit == me.unit,
                    Scope::UnitTree => unit_below_mine(),
                    Scope::Account => false,
                })
        })
        .collect()
}

/// Every user's field levels on every record, for read and update of customers and contacts.
fn field_table(snapshot: &Snapshot, world: &World) -> Vec<FieldAccess> {
    let mut table = Vec::new();
    for user in &world.model.users {
        for object in [ObjectType::Customers, ObjectType::Contacts] {
            for action in [Action::Read, Action::Update] {
                for record in &world.records {
                    let levels = snapshot.field_levels(user.id, action, object, record, NOW);
                    table.extend(levels.iter().map(|(_, level)| level));
                }
            }
        }
    }
    table
}

/// Every user's access to every record, for every action and object.
fn access_table(snapshot: &Snapshot, world: &World) -> Vec<bool> {
    let mut table = Vec::new();
    for user in &world.model.users {
        for object in ObjectType::ALL {
            for action in Action::ALL {
                for record in &world.records {
                    table.push(
                        snapshot
                            .check(user.id, *action, *object, record, NOW)
                            .is_allowed(),
                    );
                }
            }
        }
    }
    table
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn check_agrees_with_the_reference_model(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("random worlds are forests");
        for user in &world.model.users {
            for object in ObjectType::ALL {
                for action in Action::ALL {
                    for record in &world.records {
                        let decision = snapshot.check(user.id, *action, *object, record, NOW);
                        let expected = reference_allows(&world.model, user.id, *action, *object, record);
                        prop_assert_eq!(decision.is_allowed(), expected,
                            "user {:?} {:?} {:?} {:?}: {:?}", user.id, action, object, record, decision);
                    }
                }
            }
        }
    }

    #[test]
    fn filter_matches_exactly_what_check_allows(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("random worlds are forests");
        for user in &world.model.users {
            for object in ObjectType::ALL {
                for action in Action::ALL {
                    let filter = snapshot.filter(user.id, *action, *object, NOW);
                    for record in &world.records {
                        prop_assert_eq!(
                            filter.matches(record),
                            snapshot.check(user.id, *action, *object, record, NOW).is_allowed(),
                            "user {:?} {:?} {:?} {:?} filter {:?}", user.id, action, object, record, filter
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn explain_reports_the_check_decision_and_only_true_reasons(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("random worlds are forests");
        for user in &world.model.users {
            for record in &world.records {
                let explanation = snapshot.explain(user.id, ObjectType::Customers, record, NOW);
                for item in &explanation.actions {
                    let decision = snapshot.check(user.id, item.action, ObjectType::Customers, record, NOW);
                    prop_assert_eq!(item.decision, decision);
                    prop_assert_eq!(item.reasons.is_empty(), !decision.is_allowed());
                    if let Some(path) = item.reporting_path.first() {
                        prop_assert_eq!(*path, user.id);
                        prop_assert_eq!(item.reporting_path.last().copied(), Some(record.owner));
                    }
                }
            }
        }
    }

    #[test]
    fn a_move_changes_access_only_along_the_old_and_new_chains(
        world in world_strategy(),
        mover in any::<prop::sample::Index>(),
        new_manager in any::<prop::sample::Index>(),
    ) {
        let before = Snapshot::compile(&world.model).expect("random worlds are forests");
        let users = &world.model.users;
        let mover = users[mover.index(users.len())].id;
        let candidate = users[new_manager.index(users.len())].id;
        // A move under oneself or one's own subordinate would make a cycle; the engine refuses it.
        let target = (!before.is_at_or_above(mover, candidate)).then_some(candidate);
        let mut moved = world.clone();
        for user in &mut moved.model.users {
            if user.id == mover {
                user.manager = target;
            }
        }
        let after = Snapshot::compile(&moved.model).expect("the move keeps a forest");
        let mut affected: Vec<UserId> = before.managers_of(mover);
        affected.extend(after.managers_of(mover));
        let table_before = access_table(&before, &world);
        let table_after = access_table(&after, &moved);
        let per_user = table_before.len() / users.len();
        for (i, user) in users.iter().enumerate() {
            if affected.contains(&user.id) {
                continue;
            }
            prop_assert_eq!(
                &table_before[i * per_user..(i + 1) * per_user],
                &table_after[i * per_user..(i + 1) * per_user],
                "{:?} is outside both chains above {:?} but their access changed", user.id, mover
            );
        }
    }

    #[test]
    fn adding_a_grant_never_takes_access_away(world in world_strategy(), extra in scope_strategy(), role in any::<prop::sample::Index>()) {
        let before = Snapshot::compile(&world.model).expect("random worlds are forests");
        let mut widened = world.clone();
        let roles = &mut widened.model.roles;
        let index = role.index(roles.len());
        roles[index].grants.push(Grant { object: ObjectType::Customers, action: Action::Read, scope: extra });
        let after = Snapshot::compile(&widened.model).expect("same hierarchy");
        for (was, is) in access_table(&before, &world).into_iter().zip(access_table(&after, &widened)) {
            prop_assert!(!was || is, "a wider grant removed access");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn field_levels_agree_with_the_reference_model(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("random worlds are forests");
        for user in &world.model.users {
            for object in [ObjectType::Customers, ObjectType::Contacts, ObjectType::Deals] {
                for action in [Action::Read, Action::Update, Action::Create] {
                    for record in &world.records {
                        let levels: Vec<FieldAccess> = snapshot
                            .field_levels(user.id, action, object, record, NOW)
                            .iter()
                            .map(|(_, level)| level)
                            .collect();
                        let expected = reference_field_levels(&world.model, user.id, action, object, record);
                        prop_assert_eq!(&levels, &expected, "user {:?} {:?} {:?} {:?}", user.id, action, object, record);
                        // No grant, no field: a record the user may not act on shows nothing.
                        if !snapshot.check(user.id, action, object, record, NOW).is_allowed() {
                            prop_assert!(levels.iter().all(|l| *l == FieldAccess::Hidden));
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn the_list_floor_is_never_above_a_readable_record(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("random worlds are forests");
        for user in &world.model.users {
            for object in [ObjectType::Customers, ObjectType::Contacts] {
                let floor = snapshot.field_floor(user.id, Action::Read, object, NOW);
                for record in &world.records {
                    if !snapshot.check(user.id, Action::Read, object, record, NOW).is_allowed() {
                        continue;
                    }
                    let levels = snapshot.field_levels(user.id, Action::Read, object, record, NOW);
                    for ((def, low), (_, level)) in floor.iter().zip(levels.iter()) {
                        prop_assert!(low <= level, "{}: floor {:?} above {:?} on {:?}", def.name, low, level, record);
                    }
                }
            }
        }
    }

    #[test]
    fn a_wider_grant_or_a_stronger_rule_never_lowers_a_field(
        world in world_strategy(),
        extra in scope_strategy(),
        rule in field_rule_strategy(),
        role in any::<prop::sample::Index>(),
    ) {
        let before = Snapshot::compile(&world.model).expect("random worlds are forests");
        let mut widened = world.clone();
        let roles = &mut widened.model.roles;
        let index = role.index(roles.len());
        let role = &mut roles[index];
        role.grants.push(Grant { object: ObjectType::Customers, action: Action::Read, scope: extra });
        let default = schema(rule.object).field(&rule.field).expect("drawn from the schema").1.default_access();
        let current = role
            .fields
            .iter()
            .find(|f| f.object == rule.object && f.field == rule.field)
            .map_or(default, |f| f.access);
        role.fields.retain(|f| f.object != rule.object || f.field != rule.field);
        role.fields.push(FieldRule { access: current.max(rule.access), ..rule });
        let after = Snapshot::compile(&widened.model).expect("same hierarchy");
        for (was, is) in field_table(&before, &world).into_iter().zip(field_table(&after, &widened)) {
            prop_assert!(was <= is, "a field went from {:?} to {:?}", was, is);
        }
    }

    #[test]
    fn explain_names_each_field_level_and_writability(world in world_strategy()) {
        let snapshot = Snapshot::compile(&world.model).expect("random worlds are forests");
        for user in &world.model.users {
            for record in &world.records {
                let explanation = snapshot.explain(user.id, ObjectType::Customers, record, NOW);
                let read = snapshot.field_levels(user.id, Action::Read, ObjectType::Customers, record, NOW);
                let update = snapshot.field_levels(user.id, Action::Update, ObjectType::Customers, record, NOW);
                prop_assert_eq!(explanation.fields.len(), schema(ObjectType::Customers).fields.len());
                for field in &explanation.fields {
                    prop_assert_eq!(Some(field.read), read.of(field.field));
                    prop_assert_eq!(field.writable, update.of(field.field) == Some(FieldAccess::Write));
                    prop_assert_eq!(field.read_by.is_some(), field.read != FieldAccess::Hidden);
                    prop_assert_eq!(field.write_by.is_some(), field.writable);
                }
            }
        }
    }
}

#[test]
fn a_cycle_in_the_reporting_line_is_refused() {
    let model = Model {
        epoch: 1,
        units: vec![UnitDef {
            id: UnitId(1),
            name: "HQ".into(),
            parent: None,
        }],
        users: vec![
            UserDef {
                id: UserId(1),
                username: "a".into(),
                unit: UnitId(1),
                manager: Some(UserId(2)),
                disabled: false,
                roles: vec![],
                portal_account: None,
            },
            UserDef {
                id: UserId(2),
                username: "b".into(),
                unit: UnitId(1),
                manager: Some(UserId(1)),
                disabled: false,
                roles: vec![],
                portal_account: None,
            },
        ],
        roles: vec![],
        controls: vec![],
        ..Default::default()
    };
    assert_eq!(
        Snapshot::compile(&model).unwrap_err(),
        warden_policy::ModelError::ReportingCycle(UserId(1))
    );
}
