//! What-if: the exact access difference of a proposed change — who gains and loses how many
//! records for each action, with sample records — without applying it. Every change the admin
//! API can make to access has a what-if: moves of people and units, a role's grants and field
//! rules, a user's roles, sharing rules, restriction rules, and shares and team places on one
//! record.
//!
//! The engine plans the diff per user and action (`warden_policy::plan_customer_diff`): by
//! classes of customers (one owner, one unit, one truth value of each criterion in play)
//! weighed by the store's per-class counts, corrected on the few records a share opens to the
//! user; by two SQL counts (`after ∧ ¬before`, `before ∧ ¬after`) for portal users; a share is
//! decided on its one record. No user × record pair is enumerated. Applying afterwards goes through the same admin
//! use cases as the change itself (so four eyes holds it when on).

use warden_policy::{
    differing_filters, field_level_changes, members, plan_customer_diff, record_access_diff,
    Action, DiffPlan, FieldAccess, FieldLevelChange, ObjectType, OrgEdit, Permission, Principal,
    RecordFilter, RoleId, Share, ShareAccess, ShareKind, Snapshot, Timestamp, UserId,
};
use warden_store::Record;

use crate::approvals::Outcome;
use crate::rules::{RestrictionRuleInput, SharingRuleInput};
use crate::sharing::PrincipalName;
use crate::{Result, RoleInput, ServiceError, Subject, UserUpdate, Warden};

/// How many sample records each gain or loss shows.
const SAMPLES: u32 = 5;
/// How many changes (the largest in records) carry samples; the others carry counts only.
pub const SAMPLED_CHANGES: usize = 200;

/// A proposed change, by name, with the fields of its admin API call.
#[derive(Debug, Clone, PartialEq)]
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
    /// `PUT /roles/{id}`: grants change access to records, field rules what is seen of them.
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
    /// `POST /sharing-rules` (`id` none) or `PUT /sharing-rules/{id}`.
    PutSharingRule {
        id: Option<i64>,
        input: SharingRuleInput,
    },
    /// `DELETE /sharing-rules/{id}`.
    DeleteSharingRule { id: i64 },
    /// `POST /restriction-rules` (`id` none) or `PUT /restriction-rules/{id}`.
    PutRestrictionRule {
        id: Option<i64>,
        input: RestrictionRuleInput,
    },
    /// `DELETE /restriction-rules/{id}`.
    DeleteRestrictionRule { id: i64 },
    /// `POST /{object}/{id}/shares`.
    ShareRecord {
        object: ObjectType,
        id: i64,
        with: PrincipalName,
        access: ShareAccess,
    },
    /// `DELETE /{object}/{id}/shares/{share}` (or `/team/{share}`).
    RevokeShare {
        object: ObjectType,
        id: i64,
        share: i64,
    },
    /// `POST /{object}/{id}/team`.
    PutTeamMember {
        object: ObjectType,
        id: i64,
        user: String,
        access: ShareAccess,
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

/// One user's change of the best level of one field (see `Snapshot::field_ceiling`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldChange {
    pub user: String,
    pub action: Action,
    pub object: ObjectType,
    pub field: &'static str,
    pub before: FieldAccess,
    pub after: FieldAccess,
}

/// What a change would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WhatIfReport {
    /// The object whose records the counts are of: customers, or the shared record's object.
    pub object: ObjectType,
    pub changes: Vec<UserAccessChange>,
    /// The users the change could affect, all of whom were examined.
    pub users_examined: usize,
    /// How many classes of customers were weighed: (owner, unit) cells, split by the truth
    /// values of the criteria in play.
    pub cells: usize,
    /// How many (user, action) differences were counted in SQL rather than by cells.
    pub counted_in_sql: usize,
    /// Fields whose level changes for a user (field rules change no record access).
    pub field_changes: Vec<FieldChange>,
}

impl WhatIfChange {
    /// The permission the change's admin call needs (shares are checked on their record).
    fn permission(&self) -> Option<Permission> {
        match self {
            WhatIfChange::UpdateRole { .. }
            | WhatIfChange::PutSharingRule { .. }
            | WhatIfChange::DeleteSharingRule { .. }
            | WhatIfChange::PutRestrictionRule { .. }
            | WhatIfChange::DeleteRestrictionRule { .. } => Some(Permission::ManageRoles),
            WhatIfChange::MoveUser { .. }
            | WhatIfChange::MoveUnit { .. }
            | WhatIfChange::SetRoles { .. } => Some(Permission::ManageUsers),
            WhatIfChange::ShareRecord { .. }
            | WhatIfChange::RevokeShare { .. }
            | WhatIfChange::PutTeamMember { .. } => None,
        }
    }
}

/// Counts already taken for one user: (user, filter, except) → (count, samples).
type Memo = Vec<(UserId, RecordFilter, RecordFilter, (u64, Vec<i64>))>;

/// A change to one record's shares, resolved: the record and its shares after the change.
struct RecordEdit {
    record: Record,
    shares_after: Vec<Share>,
    /// Whose access it can change: the members of the principals concerned.
    principals: Vec<Principal>,
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
                OrgEdit::SetRole {
                    role: *id,
                    grants: input.grants.clone(),
                    fields: input.fields.clone(),
                }
            }
            WhatIfChange::SetRoles { user: name, roles } => OrgEdit::SetUserRoles {
                user: user(name, "user")?,
                roles: self.resolve_roles(subject, roles).await?,
            },
            WhatIfChange::PutSharingRule { id, input } => {
                if let Some(id) = id {
                    if !snapshot.sharing_rules().iter().any(|r| r.id == *id) {
                        return Err(ServiceError::NotFound);
                    }
                }
                OrgEdit::PutSharingRule(self.resolve_sharing_rule(
                    subject,
                    id.unwrap_or(0),
                    input,
                )?)
            }
            WhatIfChange::DeleteSharingRule { id } => {
                if !snapshot.sharing_rules().iter().any(|r| r.id == *id) {
                    return Err(ServiceError::NotFound);
                }
                OrgEdit::DeleteSharingRule(*id)
            }
            WhatIfChange::PutRestrictionRule { id, input } => {
                if let Some(id) = id {
                    if !snapshot.restriction_rules().iter().any(|r| r.id == *id) {
                        return Err(ServiceError::NotFound);
                    }
                }
                OrgEdit::PutRestrictionRule(self.resolve_restriction_rule(
                    subject,
                    id.unwrap_or(0),
                    input,
                )?)
            }
            WhatIfChange::DeleteRestrictionRule { id } => {
                if !snapshot.restriction_rules().iter().any(|r| r.id == *id) {
                    return Err(ServiceError::NotFound);
                }
                OrgEdit::DeleteRestrictionRule(*id)
            }
            WhatIfChange::ShareRecord { .. }
            | WhatIfChange::RevokeShare { .. }
            | WhatIfChange::PutTeamMember { .. } => {
                return Err(ServiceError::invalid(
                    "change",
                    "a share changes a record, not the organisation",
                ))
            }
        })
    }

    /// The record a share change is on, if the subject may read it (404, logged) and may make
    /// the change as its admin call would (403, logged).
    async fn resolve_record_edit(
        &self,
        subject: &Subject,
        change: &WhatIfChange,
    ) -> Result<RecordEdit> {
        let (object, id, action) = match change {
            WhatIfChange::ShareRecord {
                object, id, access, ..
            } => (
                *object,
                *id,
                if *access == ShareAccess::Edit {
                    Action::Update
                } else {
                    Action::Share
                },
            ),
            WhatIfChange::RevokeShare { object, id, .. }
            | WhatIfChange::PutTeamMember { object, id, .. } => (*object, *id, Action::Read),
            _ => return Err(ServiceError::invalid("change", "not a change to a record")),
        };
        let snapshot = &subject.snapshot;
        // The same reading and refusals as the share calls themselves.
        let record = self.record_for_sharing(subject, object, id).await?;
        let allows = |action: Action, record: &Record| self.allows(subject, action, object, record);
        let refuse = |message: &str| ServiceError::Forbidden(message.to_owned());
        let mut shares_after = record.shares.clone();
        let principals = match change {
            WhatIfChange::ShareRecord { with, access, .. } => {
                if !allows(Action::Share, &record) || !allows(action, &record) {
                    return Err(self
                        .log_denied(
                            subject,
                            Action::Share,
                            object,
                            Some(id),
                            refuse("you may not share this record so"),
                        )
                        .await);
                }
                let principal = self.resolve_principal(subject, with)?;
                self.check_portal_receiver(subject, principal, object, &record)?;
                put(&mut shares_after, ShareKind::Share, principal, *access);
                vec![principal]
            }
            WhatIfChange::PutTeamMember { user, access, .. } => {
                if !snapshot.is_at_or_above(subject.user, record.owner) {
                    return Err(refuse(
                        "a record's team is managed by its owner and the owner's superiors",
                    ));
                }
                let principal =
                    self.resolve_principal(subject, &PrincipalName::User(user.clone()))?;
                self.check_portal_receiver(subject, principal, object, &record)?;
                put(&mut shares_after, ShareKind::Team, principal, *access);
                vec![principal]
            }
            WhatIfChange::RevokeShare { share, .. } => {
                let row = self
                    .store
                    .shares_of(object, id)
                    .await?
                    .into_iter()
                    .find(|row| row.id == *share)
                    .ok_or(ServiceError::NotFound)?;
                let allowed = match row.share.kind {
                    ShareKind::Share => {
                        row.created_by == Some(subject.user) || allows(Action::Share, &record)
                    }
                    ShareKind::Team => snapshot.is_at_or_above(subject.user, record.owner),
                };
                if !allowed {
                    return Err(refuse("you may not take this access back"));
                }
                if let Some(at) = shares_after.iter().position(|s| *s == row.share) {
                    shares_after.remove(at);
                }
                vec![row.share.principal]
            }
            _ => Vec::new(),
        };
        Ok(RecordEdit {
            record,
            shares_after,
            principals,
        })
    }

    /// The access difference `change` would make, without making it (needs what the change
    /// itself needs).
    pub async fn what_if(&self, subject: &Subject, change: &WhatIfChange) -> Result<WhatIfReport> {
        match change.permission() {
            Some(permission) => subject.require(permission)?,
            None => return self.record_what_if(subject, change).await,
        }
        let model = self.store.load_model().await?;
        let compile = |model| {
            Snapshot::compile(model).map_err(|e| {
                ServiceError::invalid("change", format!("the organisation would be invalid: {e}"))
            })
        };
        let before = compile(&model)?;
        let edit = self.resolve_edit(subject, &before, change).await?;
        let after = compile(&edit.apply(&model))?;
        let users = edit.candidates(&before, &after);
        let filters = differing_filters(&before, &after, &users, subject.now);
        let classes = self.store.customer_classes(filters.criteria()).await?;
        let plans = plan_customer_diff(&filters, &classes);
        let mut changes = Vec::with_capacity(plans.len());
        // The cells and filters of each class-counted change, to draw its samples from.
        let mut to_sample = Vec::with_capacity(plans.len());
        let mut counted_in_sql = 0;
        // Several actions of one user often have the same filters: count each pair once.
        let mut memo: Memo = Vec::new();
        for planned in plans {
            let (gained, gained_samples, lost, lost_samples, cells) = match planned.plan {
                DiffPlan::Classes {
                    change,
                    correction,
                    exact,
                } => {
                    let (gained_shared, lost_shared) = match &correction {
                        Some(correction) => self.store.share_correction(correction).await?,
                        None => (0, 0),
                    };
                    let gained = change.gained.saturating_add_signed(gained_shared);
                    let lost = change.lost.saturating_add_signed(lost_shared);
                    (gained, Vec::new(), lost, Vec::new(), Some((change, exact)))
                }
                DiffPlan::Count { gained, lost } => {
                    counted_in_sql += 1;
                    let (g, gs) = self.count_side(planned.user, gained, &mut memo).await?;
                    let (l, ls) = self.count_side(planned.user, lost, &mut memo).await?;
                    (g, gs, l, ls, None)
                }
            };
            if gained == 0 && lost == 0 {
                continue;
            }
            changes.push(UserAccessChange {
                user: username(&before, planned.user),
                action: planned.action,
                gained,
                lost,
                gained_samples,
                lost_samples,
            });
            to_sample.push(cells);
        }
        // Samples for the largest changes: one or two statements each, which for a role held
        // by thousands would cost more than the whole diff.
        let mut by_size: Vec<usize> = (0..changes.len()).collect();
        by_size.sort_by_key(|&i| std::cmp::Reverse(changes[i].gained + changes[i].lost));
        for i in by_size.into_iter().take(SAMPLED_CHANGES) {
            let Some((cells, exact)) = to_sample[i].take() else {
                continue;
            };
            let change = &mut changes[i];
            change.gained_samples = self
                .class_samples(
                    change.gained,
                    &cells.gained_cells,
                    exact.as_ref().map(|(was, is)| (is, was)),
                )
                .await?;
            change.lost_samples = self
                .class_samples(
                    change.lost,
                    &cells.lost_cells,
                    exact.as_ref().map(|(was, is)| (was, is)),
                )
                .await?;
        }
        let field_changes = field_level_changes(&before, &after, &users, subject.now)
            .into_iter()
            .map(|c| field_change(&before, c))
            .collect();
        Ok(WhatIfReport {
            object: ObjectType::Customers,
            changes,
            users_examined: users.len(),
            cells: classes.len(),
            counted_in_sql,
            field_changes,
        })
    }

    /// Samples of a class count: records of the cells, tested against (reached, not `except`)
    /// when the cells may hold records that are neither gained nor lost.
    async fn class_samples(
        &self,
        count: u64,
        cells: &[(UserId, warden_policy::UnitId)],
        exact: Option<(&RecordFilter, &RecordFilter)>,
    ) -> Result<Vec<i64>> {
        if count == 0 {
            return Ok(Vec::new());
        }
        Ok(match exact {
            None => self.store.sample_customers(cells, SAMPLES).await?,
            Some((reached, except)) => {
                let mut samples = self
                    .store
                    .sample_customers_in_cells(cells, reached, except, SAMPLES)
                    .await?;
                if (samples.len() as u64) < count.min(u64::from(SAMPLES)) {
                    // Some of it lies outside the first cells (a share's records): ask the
                    // records themselves.
                    let driving =
                        warden_policy::delta(reached, except).unwrap_or_else(|| reached.clone());
                    samples = self.store.sample_records(&driving, except, SAMPLES).await?;
                }
                samples
            }
        })
    }

    /// Counts and samples the records matching `side.0` and not `side.1`.
    async fn count_side(
        &self,
        user: UserId,
        side: Option<(RecordFilter, RecordFilter)>,
        memo: &mut Memo,
    ) -> Result<(u64, Vec<i64>)> {
        let Some((filter, except)) = side else {
            return Ok((0, Vec::new()));
        };
        if let Some((_, _, _, known)) = memo
            .iter()
            .find(|(u, f, e, _)| *u == user && *f == filter && *e == except)
        {
            return Ok(known.clone());
        }
        let count =
            u64::try_from(self.store.count_records(&filter, Some(&except)).await?).unwrap_or(0);
        let samples = if count > 0 {
            self.store.sample_records(&filter, &except, SAMPLES).await?
        } else {
            Vec::new()
        };
        memo.push((user, filter, except, (count, samples.clone())));
        Ok((count, samples))
    }

    /// What-if of a share or team place given or taken back: the one record decided before and
    /// after for every member of the principals concerned.
    async fn record_what_if(
        &self,
        subject: &Subject,
        change: &WhatIfChange,
    ) -> Result<WhatIfReport> {
        let edit = self.resolve_record_edit(subject, change).await?;
        let snapshot = &subject.snapshot;
        let mut users: Vec<UserId> = edit
            .principals
            .iter()
            .flat_map(|p| members(snapshot, *p))
            .collect();
        users.sort_unstable();
        users.dedup();
        let object = edit.record.object;
        let before = edit.record.record_ref();
        let mut after = before;
        after.facts.shares = &edit.shares_after;
        let diff = record_access_diff(snapshot, object, &users, &before, &after, subject.now);
        let id = edit.record.id;
        Ok(WhatIfReport {
            object,
            changes: diff
                .into_iter()
                .map(|c| UserAccessChange {
                    user: username(snapshot, c.user),
                    action: c.action,
                    gained: c.gained,
                    lost: c.lost,
                    gained_samples: if c.gained > 0 { vec![id] } else { Vec::new() },
                    lost_samples: if c.lost > 0 { vec![id] } else { Vec::new() },
                })
                .collect(),
            users_examined: users.len(),
            cells: 0,
            counted_in_sql: 0,
            field_changes: Vec::new(),
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
            WhatIfChange::PutSharingRule { id, input } => {
                done(self.put_sharing_rule(subject, id, input).await?)
            }
            WhatIfChange::DeleteSharingRule { id } => self.delete_rule(subject, false, id).await?,
            WhatIfChange::PutRestrictionRule { id, input } => {
                done(self.put_restriction_rule(subject, id, input).await?)
            }
            WhatIfChange::DeleteRestrictionRule { id } => {
                self.delete_rule(subject, true, id).await?
            }
            WhatIfChange::ShareRecord {
                object,
                id,
                with,
                access,
            } => {
                self.share_record(subject, object, id, &with, access)
                    .await?;
                Outcome::Done(())
            }
            WhatIfChange::RevokeShare { object, id, share } => {
                self.revoke_share(subject, object, id, share).await?;
                Outcome::Done(())
            }
            WhatIfChange::PutTeamMember {
                object,
                id,
                user,
                access,
            } => {
                self.put_team_member(subject, object, id, &user, access)
                    .await?;
                Outcome::Done(())
            }
        })
    }
}

fn username(snapshot: &Snapshot, user: UserId) -> String {
    snapshot
        .user(user)
        .map(|u| u.username().to_owned())
        .unwrap_or_default()
}

fn field_change(snapshot: &Snapshot, c: FieldLevelChange) -> FieldChange {
    FieldChange {
        user: username(snapshot, c.user),
        action: c.action,
        object: c.object,
        field: c.field,
        before: c.before,
        after: c.after,
    }
}

/// The shares after giving `principal` `access` of `kind`: an existing entry of the same kind
/// and principal changes its access (as `Tx::put_share` does), else one is added.
fn put(shares: &mut Vec<Share>, kind: ShareKind, principal: Principal, access: ShareAccess) {
    match shares
        .iter_mut()
        .find(|s| s.kind == kind && s.principal == principal)
    {
        Some(existing) => existing.access = access,
        None => shares.push(Share {
            kind,
            principal,
            access,
        }),
    }
}
