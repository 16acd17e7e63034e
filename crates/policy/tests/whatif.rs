//! What-if against brute force on random organisations: the access diff computed over the
//! edit's candidate users equals the diff over every user (no affected user is missed), and
//! the counts equal a record-by-record comparison.

use proptest::prelude::*;
use warden_policy::{
    customer_access_diff, Action, Cell, Grant, Model, ObjectType, OrgEdit, RecordRef,
    RoleAssignment, RoleDef, RoleId, Scope, Snapshot, UnitDef, UnitId, UserDef, UserId,
};

const NOW: i64 = 1_000_000;

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Own),
        Just(Scope::Subordinates { depth: None }),
        (1u32..3).prop_map(|d| Scope::Subordinates { depth: Some(d) }),
        Just(Scope::Unit),
        Just(Scope::UnitTree),
        Just(Scope::All),
    ]
}

fn grants() -> impl Strategy<Value = Vec<Grant>> {
    proptest::collection::vec(
        (prop::sample::select(Action::ALL.to_vec()), scope()).prop_map(|(action, scope)| Grant {
            object: ObjectType::Customers,
            action,
            scope,
        }),
        0..5,
    )
}

#[derive(Debug, Clone)]
struct Case {
    model: Model,
    cells: Vec<Cell>,
    edit: OrgEdit,
}

fn case() -> impl Strategy<Value = Case> {
    (2usize..6, 2usize..14, 1usize..4).prop_flat_map(|(units, users, roles)| {
        (
            proptest::collection::vec(
                proptest::option::weighted(0.8, any::<prop::sample::Index>()),
                units,
            ),
            proptest::collection::vec(
                (
                    proptest::option::weighted(0.85, any::<prop::sample::Index>()),
                    0..units,
                    proptest::collection::vec(0..roles, 0..3),
                ),
                users,
            ),
            proptest::collection::vec(grants(), roles),
            proptest::collection::vec((0..users, 0..units, 1u64..50), 1..12),
            (
                0..4u8,
                0..users,
                0..users,
                0..units,
                0..roles,
                grants(),
                proptest::collection::vec(0..roles, 0..3),
                any::<bool>(),
            ),
        )
            .prop_map(
                move |(
                    unit_parents,
                    people,
                    role_grants,
                    cells,
                    (kind, a, b, u, r, new_grants, new_roles, flag),
                )| {
                    let mut model = Model {
                        epoch: 1,
                        ..Model::default()
                    };
                    for (i, parent) in unit_parents.iter().enumerate() {
                        model.units.push(UnitDef {
                            id: UnitId(i as i64 + 1),
                            name: format!("unit{i}"),
                            parent: parent
                                .filter(|_| i > 0)
                                .map(|p| UnitId(p.index(i) as i64 + 1)),
                        });
                    }
                    for (i, (manager, unit, held)) in people.iter().enumerate() {
                        let mut assignments: Vec<RoleAssignment> = Vec::new();
                        for r in held {
                            if assignments.iter().all(|x| x.role.0 != *r as i64 + 1) {
                                assignments.push(RoleAssignment {
                                    role: RoleId(*r as i64 + 1),
                                    expires_at: None,
                                });
                            }
                        }
                        model.users.push(UserDef {
                            id: UserId(i as i64 + 1),
                            username: format!("u{i}"),
                            unit: UnitId(*unit as i64 + 1),
                            manager: manager
                                .filter(|_| i > 0)
                                .map(|m| UserId(m.index(i) as i64 + 1)),
                            disabled: false,
                            portal_account: None,
                            roles: assignments,
                        });
                    }
                    for (r, grants) in role_grants.iter().enumerate() {
                        model.roles.push(RoleDef {
                            id: RoleId(r as i64 + 1),
                            name: format!("r{r}"),
                            grants: grants.clone(),
                            permissions: vec![],
                            fields: vec![],
                        });
                    }
                    let mut merged: Vec<Cell> = Vec::new();
                    for (owner, unit, records) in cells {
                        let (owner, unit) = (UserId(owner as i64 + 1), UnitId(unit as i64 + 1));
                        if !merged.iter().any(|c| c.owner == owner && c.unit == unit) {
                            merged.push(Cell {
                                owner,
                                unit,
                                records,
                            });
                        }
                    }
                    let edit = match kind {
                        0 => OrgEdit::MoveUser {
                            user: UserId(a as i64 + 1),
                            manager: Some(
                                (flag || a == b)
                                    .then_some(())
                                    .map_or(Some(UserId(b as i64 + 1)), |_| None),
                            ),
                            unit: flag.then_some(UnitId(u as i64 + 1)),
                        },
                        1 => OrgEdit::MoveUnit {
                            unit: UnitId(u as i64 + 1),
                            parent: (!flag).then_some(UnitId((a % units) as i64 + 1)),
                        },
                        2 => OrgEdit::SetRoleGrants {
                            role: RoleId(r as i64 + 1),
                            grants: new_grants,
                        },
                        _ => OrgEdit::SetUserRoles {
                            user: UserId(a as i64 + 1),
                            roles: new_roles
                                .iter()
                                .collect::<std::collections::BTreeSet<_>>()
                                .into_iter()
                                .map(|r| RoleAssignment {
                                    role: RoleId(*r as i64 + 1),
                                    expires_at: None,
                                })
                                .collect(),
                        },
                    };
                    Case {
                        model,
                        cells: merged,
                        edit,
                    }
                },
            )
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn candidates_miss_nobody_and_counts_match_records(case in case()) {
        let before = Snapshot::compile(&case.model).expect("a valid model");
        // An edit that would make a cycle is refused when the new model compiles.
        let Ok(after) = Snapshot::compile(&case.edit.apply(&case.model)) else {
            return Ok(());
        };
        let everyone: Vec<UserId> = case.model.users.iter().map(|u| u.id).collect();
        let candidates = case.edit.candidates(&before, &after);
        let fast = customer_access_diff(&before, &after, &candidates, &case.cells, NOW);
        let slow = customer_access_diff(&before, &after, &everyone, &case.cells, NOW);
        prop_assert_eq!(&fast, &slow);
        // Counted over cells == counted record by record.
        for change in &slow {
            let (mut gained, mut lost) = (0u64, 0u64);
            for cell in &case.cells {
                for _ in 0..cell.records {
                    let record = RecordRef::new(cell.owner, cell.unit);
                    let was = before.check(change.user, change.action, ObjectType::Customers, &record, NOW).is_allowed();
                    let is = after.check(change.user, change.action, ObjectType::Customers, &record, NOW).is_allowed();
                    gained += u64::from(!was && is);
                    lost += u64::from(was && !is);
                }
            }
            prop_assert_eq!((change.gained, change.lost), (gained, lost));
        }
    }
}
