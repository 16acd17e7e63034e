//! What-if: the exact difference in access that a change to the organisation makes, per user
//! and action, counted over *cells* of customers — all customers with one owner and one unit
//! decide alike, so the engine decides each cell once instead of each record, and the store's
//! per-(owner, unit) counts turn cells into record counts. Only the users a change can affect
//! are examined (the reporting chains above a moved person, the holders of a changed role, …),
//! which the property tests hold to a comparison of every user.

use std::collections::BTreeSet;

use crate::{
    Action, Model, ObjectType, RecordRef, RoleAssignment, RoleId, Snapshot, Timestamp, UnitId,
    UserId,
};

/// All customers with one owner and one unit: how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub owner: UserId,
    pub unit: UnitId,
    pub records: u64,
}

/// A change to the organisation, in ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrgEdit {
    /// A new manager (`Some(None)`: none) and/or a new unit for a user.
    MoveUser {
        user: UserId,
        manager: Option<Option<UserId>>,
        unit: Option<UnitId>,
    },
    /// A unit under a new parent (`None`: a root).
    MoveUnit {
        unit: UnitId,
        parent: Option<UnitId>,
    },
    /// A role's grants replaced.
    SetRoleGrants {
        role: RoleId,
        grants: Vec<crate::Grant>,
    },
    /// A user's role assignments replaced.
    SetUserRoles {
        user: UserId,
        roles: Vec<RoleAssignment>,
    },
}

impl OrgEdit {
    /// The model with the edit made (the edit is not checked here: the new model is compiled,
    /// and a cycle or an unknown id fails there).
    pub fn apply(&self, model: &Model) -> Model {
        let mut after = model.clone();
        match self {
            OrgEdit::MoveUser {
                user,
                manager,
                unit,
            } => {
                if let Some(u) = after.users.iter_mut().find(|u| u.id == *user) {
                    if let Some(manager) = manager {
                        u.manager = *manager;
                    }
                    if let Some(unit) = unit {
                        u.unit = *unit;
                    }
                }
            }
            OrgEdit::MoveUnit { unit, parent } => {
                if let Some(u) = after.units.iter_mut().find(|u| u.id == *unit) {
                    u.parent = *parent;
                }
            }
            OrgEdit::SetRoleGrants { role, grants } => {
                if let Some(r) = after.roles.iter_mut().find(|r| r.id == *role) {
                    r.grants = grants.clone();
                }
            }
            OrgEdit::SetUserRoles { user, roles } => {
                if let Some(u) = after.users.iter_mut().find(|u| u.id == *user) {
                    u.roles = roles.clone();
                }
            }
        }
        after
    }

    /// The users whose access the edit can change: a superset, never missing one (see the
    /// module's property tests).
    pub fn candidates(&self, before: &Snapshot, after: &Snapshot) -> Vec<UserId> {
        let mut out: BTreeSet<UserId> = BTreeSet::new();
        match self {
            // Who sees a person's records through the reporting line: the chains above them,
            // before and after. A new unit changes only the person's own unit scopes (records
            // keep the unit they were filed under).
            OrgEdit::MoveUser { user, .. } => {
                out.insert(*user);
                out.extend(before.managers_of(*user));
                out.extend(after.managers_of(*user));
            }
            // Who sees a unit's records through `unit_tree`: members of the units above it,
            // before and after.
            OrgEdit::MoveUnit { unit, .. } => {
                let mut chain: BTreeSet<UnitId> = BTreeSet::new();
                for snapshot in [before, after] {
                    let mut current = Some(*unit);
                    while let Some(u) = current {
                        chain.insert(u);
                        current = snapshot.unit_parent(u);
                    }
                }
                out.extend(
                    after
                        .users()
                        .filter(|u| chain.contains(&u.unit()))
                        .map(|u| u.id()),
                );
            }
            OrgEdit::SetRoleGrants { role, .. } => out.extend(
                before
                    .users()
                    .filter(|u| u.roles().any(|(id, _, _)| id == *role))
                    .map(|u| u.id()),
            ),
            OrgEdit::SetUserRoles { user, .. } => {
                out.insert(*user);
            }
        }
        out.into_iter().collect()
    }
}

/// One user's change of access for one action on customers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessChange {
    pub user: UserId,
    pub action: Action,
    pub gained: u64,
    pub lost: u64,
    /// The cells gained and lost (to draw sample records from).
    pub gained_cells: Vec<(UserId, UnitId)>,
    pub lost_cells: Vec<(UserId, UnitId)>,
}

/// The access to customers that differs between `before` and `after` for `users`, per action;
/// only non-empty differences are returned.
pub fn customer_access_diff(
    before: &Snapshot,
    after: &Snapshot,
    users: &[UserId],
    cells: &[Cell],
    now: Timestamp,
) -> Vec<AccessChange> {
    let mut out = Vec::new();
    for &user in users {
        for &action in Action::ALL {
            let mut change = AccessChange {
                user,
                action,
                gained: 0,
                lost: 0,
                gained_cells: Vec::new(),
                lost_cells: Vec::new(),
            };
            for cell in cells {
                let record = RecordRef::new(cell.owner, cell.unit);
                let was = before
                    .check(user, action, ObjectType::Customers, &record, now)
                    .is_allowed();
                let is = after
                    .check(user, action, ObjectType::Customers, &record, now)
                    .is_allowed();
                match (was, is) {
                    (false, true) => {
                        change.gained += cell.records;
                        change.gained_cells.push((cell.owner, cell.unit));
                    }
                    (true, false) => {
                        change.lost += cell.records;
                        change.lost_cells.push((cell.owner, cell.unit));
                    }
                    _ => {}
                }
            }
            if change.gained > 0 || change.lost > 0 {
                out.push(change);
            }
        }
    }
    out
}
