//! Property tests of approval routing on random organisations: the approvers of a step are
//! exactly what the policy names (the superior N levels up, the holders of a role, the named
//! users, the holders of a permission), less the disabled, less every account of the
//! requester's person, less those who may not read and `approve` the record — computed here
//! by walking the plain model, not the compiled snapshot.

use std::collections::BTreeSet;

use proptest::prelude::*;
use warden_policy::{
    Action, ApprovalTarget, Approvers, Grant, Model, ObjectType, Permission, RecordRef,
    RoleAssignment, RoleDef, RoleId, Scope, Snapshot, UnitDef, UnitId, UserDef, UserId,
};

const NOW: i64 = 1_000_000;

#[derive(Debug, Clone)]
struct World {
    model: Model,
    requester: UserId,
    record: RecordRef<'static>,
    approvers: Approvers,
    escalations: u32,
}

fn scope() -> impl Strategy<Value = Scope> {
    prop_oneof![
        Just(Scope::Own),
        Just(Scope::Subordinates { depth: None }),
        Just(Scope::Unit),
        Just(Scope::All),
    ]
}

fn world() -> impl Strategy<Value = World> {
    (2usize..16, 1usize..4).prop_flat_map(|(users, roles)| {
        (
            proptest::collection::vec(
                (
                    proptest::option::weighted(0.85, any::<prop::sample::Index>()),
                    proptest::bool::weighted(0.1),
                    proptest::collection::vec(
                        (0..roles, proptest::option::weighted(0.2, 0i64..2_000_000)),
                        0..3,
                    ),
                    proptest::option::weighted(0.3, 0u8..3),
                    0..2i64,
                ),
                users,
            ),
            proptest::collection::vec(
                (
                    proptest::collection::vec(
                        (
                            prop::sample::select(vec![Action::Read, Action::Approve]),
                            scope(),
                        ),
                        0..4,
                    ),
                    proptest::bool::weighted(0.3),
                ),
                roles,
            ),
            (0..users, 0..users, 0..2i64),
            prop_oneof![
                (1u32..4).prop_map(|levels| Approvers::Superior { levels }),
                (0..roles).prop_map(|r| Approvers::Role(RoleId(r as i64 + 1))),
                proptest::collection::vec(0..users, 1..4).prop_map(|u| Approvers::Users(
                    u.into_iter().map(|i| UserId(i as i64 + 1)).collect()
                )),
                Just(Approvers::Permission(Permission::ManageRoles)),
            ],
            0u32..3,
        )
            .prop_map(
                move |(people, role_specs, (requester, owner, unit), approvers, escalations)| {
                    let units = vec![
                        UnitDef {
                            id: UnitId(1),
                            name: "A".into(),
                            parent: None,
                        },
                        UnitDef {
                            id: UnitId(2),
                            name: "B".into(),
                            parent: Some(UnitId(1)),
                        },
                    ];
                    let mut model = Model {
                        epoch: 1,
                        units,
                        ..Model::default()
                    };
                    for (i, (manager, disabled, held, person, unit)) in people.iter().enumerate() {
                        let mut roles_held: Vec<RoleAssignment> = Vec::new();
                        for (r, expiry) in held {
                            if roles_held.iter().all(|a| a.role.0 != *r as i64 + 1) {
                                roles_held.push(RoleAssignment {
                                    role: RoleId(*r as i64 + 1),
                                    expires_at: *expiry,
                                });
                            }
                        }
                        model.users.push(UserDef {
                            id: UserId(i as i64 + 1),
                            username: format!("u{i}"),
                            unit: UnitId(unit + 1),
                            // Managers come earlier: a forest by construction.
                            manager: manager
                                .filter(|_| i > 0)
                                .map(|m| UserId(m.index(i) as i64 + 1)),
                            disabled: *disabled,
                            portal_account: None,
                            roles: roles_held,
                        });
                        if let Some(p) = person {
                            model.persons.push((UserId(i as i64 + 1), format!("P{p}")));
                        }
                    }
                    for (r, (grants, manages)) in role_specs.iter().enumerate() {
                        model.roles.push(RoleDef {
                            id: RoleId(r as i64 + 1),
                            name: format!("r{r}"),
                            grants: grants
                                .iter()
                                .map(|(action, scope)| Grant {
                                    object: ObjectType::Customers,
                                    action: *action,
                                    scope: *scope,
                                })
                                .collect(),
                            permissions: if *manages {
                                vec![Permission::ManageRoles]
                            } else {
                                vec![]
                            },
                            fields: vec![],
                        });
                    }
                    let owner = &model.users[owner];
                    let record = RecordRef::new(owner.id, UnitId(unit + 1));
                    World {
                        requester: UserId(requester as i64 + 1),
                        record,
                        approvers,
                        escalations,
                        model,
                    }
                },
            )
    })
}

/// The reference: the policy's approvers by walking the model.
fn reference(world: &World, snapshot: &Snapshot, target_record: bool) -> BTreeSet<UserId> {
    let model = &world.model;
    let user = |id: UserId| model.users.iter().find(|u| u.id == id).expect("a user");
    let active = |u: &UserDef, role: RoleId| {
        u.roles
            .iter()
            .any(|a| a.role == role && a.expires_at.is_none_or(|e| NOW < e))
    };
    let named: Vec<UserId> = match &world.approvers {
        Approvers::Superior { levels } => {
            let mut current = user(world.requester).manager;
            for _ in 1..(levels + world.escalations) {
                current = current.and_then(|m| user(m).manager);
            }
            current.into_iter().collect()
        }
        Approvers::Role(role) => model
            .users
            .iter()
            .filter(|u| active(u, *role))
            .map(|u| u.id)
            .collect(),
        Approvers::Users(users) => users.clone(),
        Approvers::Permission(p) => model
            .users
            .iter()
            .filter(|u| {
                !u.disabled
                    && model
                        .roles
                        .iter()
                        .any(|r| r.permissions.contains(p) && active(u, r.id))
            })
            .map(|u| u.id)
            .collect(),
    };
    let person = |id: UserId| {
        model
            .persons
            .iter()
            .find(|(u, _)| *u == id)
            .map_or(format!("user {}", id.0), |(_, key)| format!("person {key}"))
    };
    named
        .into_iter()
        .filter(|id| !user(*id).disabled)
        .filter(|id| person(*id) != person(world.requester))
        .filter(|id| {
            !target_record
                || [Action::Read, Action::Approve].iter().all(|action| {
                    snapshot
                        .check(*id, *action, ObjectType::Customers, &world.record, NOW)
                        .is_allowed()
                })
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn approvers_are_exactly_what_the_policy_names(world in world()) {
        let snapshot = Snapshot::compile(&world.model).expect("a valid model");
        for target_record in [true, false] {
            let target = if target_record {
                ApprovalTarget::Record { object: ObjectType::Customers, record: &world.record }
            } else {
                ApprovalTarget::Organisation
            };
            let got: Vec<UserId> = snapshot.approvers(world.requester, &world.approvers, world.escalations, target, NOW);
            prop_assert!(got.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats: {got:?}");
            let got: BTreeSet<UserId> = got.into_iter().collect();
            prop_assert_eq!(&got, &reference(&world, &snapshot, target_record));
            // Never the requester, by any of their accounts.
            for approver in &got {
                prop_assert!(!snapshot.same_person(*approver, world.requester));
            }
        }
    }

    #[test]
    fn each_escalation_moves_one_superior_up(world in world()) {
        let snapshot = Snapshot::compile(&world.model).expect("a valid model");
        let chain = snapshot.managers_of(world.requester);
        for escalations in 0..4u32 {
            let got = snapshot.approvers(
                world.requester,
                &Approvers::Superior { levels: 1 },
                escalations,
                ApprovalTarget::Organisation,
                NOW,
            );
            let expected: Vec<UserId> = chain
                .get(escalations as usize)
                .copied()
                .filter(|m| !snapshot.user(*m).expect("a user").disabled())
                .filter(|m| !snapshot.same_person(*m, world.requester))
                .into_iter()
                .collect();
            prop_assert_eq!(got, expected);
        }
    }
}
