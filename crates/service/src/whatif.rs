//! What-if: the exact access difference of a proposed change to the organisation — who gains
//! and loses how many customers for each action, with sample records — without applying it.
//! The engine decides per (owner, unit) cell and the store's counts weigh the cells
//! (`warden_policy::customer_access_diff`); applying afterwards goes through the same admin
//! use cases as the change itself (so four eyes holds it when on).

use warden_policy::{
    customer_access_diff, Action, Cell, Grant, OrgEdit, Permission, RoleId, Snapshot, Timestamp,
    UserId,
};

use crate::approvals::Outcome;
use crate::{Result, RoleInput, ServiceError, Subject, UserUpdate, Warden};

/// How many sample records each gain or loss shows.
const SAMPLES: u32 = 5;

/// A proposed change, by name, with the fields of its admin API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WhatIfChange {
    /// `PATCH /users/{user}` with `manager` and/or `unit`.
    MoveUser {
        user: String,
        manager: Option<Option<String>>,
        unit: Option<String>,
    },
    /// `PATCH /units/{unit}` with `parent`.
    MoveUnit {
        unit: String,
        parent: Option<String>,
    },
    /// `PUT /roles/{id}` (only the grants change access to records).
    UpdateRole {
        id: RoleId,
        version: Option<i64>,
        input: RoleInput,
    },
    /// `PATCH /users/{user}` with `roles`.
    SetRoles {
        user: String,
        roles: Vec<(String, Option<Timestamp>)>,
    },
}

/// One user's change of access to customers for one action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAccessChange {
    pub user: String,
    pub action: Action,
    pub gained: u64,
    pub lost: u64,
    pub gained_samples: Vec<i64>,
    pub lost_samples: Vec<i64>,
}

/// What a change would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatIfReport {
    pub changes: Vec<UserAccessChange>,
    /// The users the change could affect, all of whom were examined.
    pub users_examined: usize,
    /// How many (owner, unit) cells of customers were decided.
    pub cells: usize,
}

impl WhatIfChange {
    fn permission(&self) -> Permission {
        match self {
            WhatIfChange::UpdateRole { .. } => Permission::ManageRoles,
            _ => Permission::ManageUsers,
        }
    }
}

/// An outcome with its value dropped (the caller reads the new state afterwards).
fn done<T>(outcome: Outcome<T>) -> Outcome<()> {
    match outcome {
        Outcome::Done(_) => Outcome::Done(()),
        Outcome::Pending(view) => Outcome::Pending(view),
    }
}

impl Warden {
    /// The edit in ids, resolved on `snapshot`.
    async fn resolve_edit(
        &self,
        subject: &Subject,
        snapshot: &Snapshot,
        change: &WhatIfChange,
    ) -> Result<OrgEdit> {
        let user = |name: &str, field: &str| -> Result<UserId> {
            snapshot
                .user_by_name(name)
                .map(|u| u.id())
                .ok_or_else(|| ServiceError::invalid(field, format!("no user named `{name}`")))
        };
        let unit = |name: &str, field: &str| {
            snapshot
                .unit_by_name(name)
                .ok_or_else(|| ServiceError::invalid(field, format!("no unit named `{name}`")))
        };
        Ok(match change {
            WhatIfChange::MoveUser {
                user: name,
                manager,
                unit: new_unit,
            } => OrgEdit::MoveUser {
                user: user(name, "user")?,
                manager: manager
                    .as_ref()
                    .map(|m| m.as_deref().map(|m| user(m, "manager")).transpose())
                    .transpose()?,
                unit: new_unit.as_deref().map(|u| unit(u, "unit")).transpose()?,
            },
            WhatIfChange::MoveUnit { unit: name, parent } => OrgEdit::MoveUnit {
                unit: unit(name, "unit")?,
                parent: parent.as_deref().map(|p| unit(p, "parent")).transpose()?,
            },
            WhatIfChange::UpdateRole { id, input, .. } => {
                snapshot.role_name(*id).ok_or(ServiceError::NotFound)?;
                let grants: Vec<Grant> = input.grants.clone();
                OrgEdit::SetRoleGrants { role: *id, grants }
            }
            WhatIfChange::SetRoles { user: name, roles } => OrgEdit::SetUserRoles {
                user: user(name, "user")?,
                roles: self.resolve_roles(subject, roles).await?,
            },
        })
    }

    /// The access difference `change` would make, without making it (needs the permission
    /// the change itself needs).
    pub async fn what_if(&self, subject: &Subject, change: &WhatIfChange) -> Result<WhatIfReport> {
        subject.require(change.permission())?;
        let model = self.store.load_model().await?;
        let compile = |model| {
            Snapshot::compile(model).map_err(|e| {
                ServiceError::invalid("change", format!("the organisation would be invalid: {e}"))
            })
        };
        let before = compile(&model)?;
        let edit = self.resolve_edit(subject, &before, change).await?;
        let after = compile(&edit.apply(&model))?;
        let cells: Vec<Cell> = self
            .store
            .customer_cells()
            .await?
            .into_iter()
            .map(|(owner, unit, records)| Cell {
                owner,
                unit,
                records,
            })
            .collect();
        let users = edit.candidates(&before, &after);
        let diff = customer_access_diff(&before, &after, &users, &cells, subject.now);
        let mut changes = Vec::with_capacity(diff.len());
        for change in diff {
            changes.push(UserAccessChange {
                user: before
                    .user(change.user)
                    .map(|u| u.username().to_owned())
                    .unwrap_or_default(),
                action: change.action,
                gained: change.gained,
                lost: change.lost,
                gained_samples: self
                    .store
                    .sample_customers(&change.gained_cells, SAMPLES)
                    .await?,
                lost_samples: self
                    .store
                    .sample_customers(&change.lost_cells, SAMPLES)
                    .await?,
            });
        }
        Ok(WhatIfReport {
            changes,
            users_examined: users.len(),
            cells: cells.len(),
        })
    }

    /// Applies a change read through what-if, by the admin use case it stands for.
    pub async fn apply_what_if(
        &self,
        subject: &Subject,
        change: WhatIfChange,
    ) -> Result<Outcome<()>> {
        Ok(match change {
            WhatIfChange::MoveUser {
                user,
                manager,
                unit,
            } => done(
                self.update_user(
                    subject,
                    &user,
                    UserUpdate {
                        manager,
                        unit,
                        ..UserUpdate::default()
                    },
                )
                .await?,
            ),
            WhatIfChange::MoveUnit { unit, parent } => {
                self.update_unit(subject, &unit, None, Some(parent.as_deref()))
                    .await?;
                Outcome::Done(())
            }
            WhatIfChange::UpdateRole { id, version, input } => {
                done(self.update_role(subject, id, version, input).await?)
            }
            WhatIfChange::SetRoles { user, roles } => done(
                self.update_user(
                    subject,
                    &user,
                    UserUpdate {
                        roles: Some(roles),
                        ..UserUpdate::default()
                    },
                )
                .await?,
            ),
        })
    }
}
