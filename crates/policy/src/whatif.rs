//! What-if: the exact difference in access that a change makes, per user and action on
//! customers, without enumerating users × records.
//!
//! Two methods, chosen per user and action ([`plan_customer_diff`]):
//! - **classes** — all customers with one owner, one unit and the same truth value of each
//!   criterion in play (the sharing rules' conditions and restrictions the filters test)
//!   decide alike, except where a share reaches them: the filters are evaluated once per
//!   class and the store's per-class counts weigh them (the per-(owner, unit) counts when no
//!   criterion is in play: no record is read). Shares are per record, so the store corrects
//!   the count on the few records a share opens to the user ([`ShareCorrection`]).
//! - **counts** — for portal users (bound to one account) and what-ifs testing more than
//!   [`MAX_CRITERIA`] criteria, the difference is two SQL counts, `after ∧ ¬before` and
//!   `before ∧ ¬after`, where the driving side is first narrowed to the disjuncts that
//!   changed ([`delta`]) so that the database can use its owner and unit indexes.
//!
//! A share given or taken back changes one record's facts, not the organisation: the engine
//! decides that one record before and after for each user the share can reach
//! ([`record_access_diff`]).
//!
//! Only the users a change can affect are examined ([`OrgEdit::candidates`], a sound superset
//! held to a comparison of every user by the property tests): the reporting chains above a
//! moved person, the members of a moved unit's subtree and of the units above it, the holders
//! of an edited role, the members of a sharing rule's principal, a restriction rule's
//! audience, a share's principal.

use std::collections::BTreeSet;

use crate::filter::{Condition, Filter, RecordFilter, SharedWith};
use crate::{
    Action, Audience, Criteria, FieldAccess, FieldRule, Model, ObjectType, Principal, RecordRef,
    RestrictionRule, RoleAssignment, RoleId, SharingRule, Snapshot, Timestamp, UnitId, UserId,
};

/// All customers with one owner and one unit: how many there are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub owner: UserId,
    pub unit: UnitId,
    pub records: u64,
}

/// A change to the organisation, in ids.
#[derive(Debug, Clone, PartialEq)]
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
    /// A role's grants and field rules replaced (field rules change no record access, only
    /// what a user sees of the records they reach).
    SetRole {
        role: RoleId,
        grants: Vec<crate::Grant>,
        fields: Vec<FieldRule>,
    },
    /// A sharing rule added (an id not in the model, e.g. 0) or replaced (its id).
    PutSharingRule(SharingRule),
    /// A sharing rule removed, by id.
    DeleteSharingRule(i64),
    /// A restriction rule added (an id not in the model) or replaced (its id).
    PutRestrictionRule(RestrictionRule),
    /// A restriction rule removed, by id.
    DeleteRestrictionRule(i64),
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
            OrgEdit::SetRole {
                role,
                grants,
                fields,
            } => {
                if let Some(r) = after.roles.iter_mut().find(|r| r.id == *role) {
                    r.grants = grants.clone();
                    r.fields = fields.clone();
                }
            }
            OrgEdit::PutSharingRule(rule) => {
                match after.sharing_rules.iter_mut().find(|r| r.id == rule.id) {
                    Some(existing) => *existing = rule.clone(),
                    None => {
                        // A new rule's id is given by the store; any unused one decides alike.
                        let id = after.sharing_rules.iter().map(|r| r.id).max().unwrap_or(0) + 1;
                        after.sharing_rules.push(SharingRule {
                            id: if rule.id > 0 { rule.id } else { id },
                            ..rule.clone()
                        });
                    }
                }
            }
            OrgEdit::DeleteSharingRule(id) => after.sharing_rules.retain(|r| r.id != *id),
            OrgEdit::PutRestrictionRule(rule) => {
                match after.restriction_rules.iter_mut().find(|r| r.id == rule.id) {
                    Some(existing) => *existing = rule.clone(),
                    None => {
                        let id = after
                            .restriction_rules
                            .iter()
                            .map(|r| r.id)
                            .max()
                            .unwrap_or(0)
                            + 1;
                        after.restriction_rules.push(RestrictionRule {
                            id: if rule.id > 0 { rule.id } else { id },
                            ..rule.clone()
                        });
                    }
                }
            }
            OrgEdit::DeleteRestrictionRule(id) => after.restriction_rules.retain(|r| r.id != *id),
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
            // before and after. Whose units above them change: the members of the moved
            // unit's subtree (shares with a unit, sharing rules to a unit and restriction rules
            // on a unit reach the units below). Whose owned-by-unit sharing rules reach it: the
            // principals of rules on a unit above it.
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
                for snapshot in [before, after] {
                    out.extend(members(snapshot, Principal::Unit(*unit)));
                    for rule in snapshot.sharing_rules() {
                        if let crate::RuleSource::OwnedByUnit(source) = rule.source {
                            if chain.contains(&source) {
                                out.extend(members(snapshot, rule.share_with));
                            }
                        }
                    }
                }
            }
            OrgEdit::SetRoleGrants { role, .. } | OrgEdit::SetRole { role, .. } => {
                out.extend(members(before, Principal::Role(*role)));
            }
            OrgEdit::SetUserRoles { user, .. } => {
                out.insert(*user);
            }
            // A sharing rule reaches the members of its principal, before and after.
            OrgEdit::PutSharingRule(rule) => {
                out.extend(members(after, rule.share_with));
                if let Some(old) = before.sharing_rules().iter().find(|r| r.id == rule.id) {
                    out.extend(members(before, old.share_with));
                }
            }
            OrgEdit::DeleteSharingRule(id) => {
                if let Some(old) = before.sharing_rules().iter().find(|r| r.id == *id) {
                    out.extend(members(before, old.share_with));
                }
            }
            // A restriction rule narrows its audience, before and after.
            OrgEdit::PutRestrictionRule(rule) => {
                out.extend(audience(after, rule.applies_to));
                if let Some(old) = before.restriction_rules().iter().find(|r| r.id == rule.id) {
                    out.extend(audience(before, old.applies_to));
                }
            }
            OrgEdit::DeleteRestrictionRule(id) => {
                if let Some(old) = before.restriction_rules().iter().find(|r| r.id == *id) {
                    out.extend(audience(before, old.applies_to));
                }
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

/// The users a principal can stand for on `snapshot`: the user; the members of the unit and of
/// every unit below it; every holder of the role, whether or not the assignment is active now
/// (a superset: the engine decides activity).
pub fn members(snapshot: &Snapshot, principal: Principal) -> Vec<UserId> {
    match principal {
        Principal::User(user) => vec![user],
        Principal::Unit(unit) => snapshot
            .users()
            .filter(|u| unit_within(snapshot, u.unit(), unit))
            .map(|u| u.id())
            .collect(),
        Principal::Role(role) => snapshot
            .users()
            .filter(|u| u.roles().any(|(id, _, _)| id == role))
            .map(|u| u.id())
            .collect(),
    }
}

/// The users a restriction rule can apply to (a superset: `except_role` takes everyone).
fn audience(snapshot: &Snapshot, audience: Audience) -> Vec<UserId> {
    match audience {
        Audience::Everyone | Audience::ExceptRole(_) => snapshot.users().map(|u| u.id()).collect(),
        Audience::Role(role) => members(snapshot, Principal::Role(role)),
        Audience::Unit(unit) => members(snapshot, Principal::Unit(unit)),
    }
}

/// Whether `unit` is `top` or below it.
fn unit_within(snapshot: &Snapshot, unit: UnitId, top: UnitId) -> bool {
    let mut current = Some(unit);
    // The unit tree is acyclic (the snapshot refuses cycles), so this walk ends.
    while let Some(u) = current {
        if u == top {
            return true;
        }
        current = snapshot.unit_parent(u);
    }
    false
}

/// A filter `d` with `d ∧ ¬except == filter ∧ ¬except`, narrowed to what `filter` reaches that
/// `except` may not, so that the store's count is driven by the few disjuncts that changed
/// (and can use the owner and unit indexes); `None` when `filter ∧ ¬except` is empty whatever
/// the records.
///
/// Sound because, with equal restrictions and account bound, a record that meets one of the
/// disjuncts `except` also has (a shared condition, an owner or unit in both lists) meets
/// `except`, so removing those disjuncts from `filter` removes only records `¬except` drops.
pub fn delta(filter: &RecordFilter, except: &RecordFilter) -> Option<RecordFilter> {
    if filter.is_none() {
        return None;
    }
    let same_bounds = filter.object == except.object
        && filter.via_customer == except.via_customer
        && filter.restrictions == except.restrictions
        && filter.account == except.account;
    if !same_bounds {
        return Some(filter.clone());
    }
    let (mine, theirs) = match (&filter.filter, &except.filter) {
        (_, Filter::All) => return None,
        (Filter::All, Filter::Any(_)) => return Some(filter.clone()),
        (Filter::Any(mine), Filter::Any(theirs)) => (mine, theirs),
    };
    let (their_owners, their_units) = owners_and_units(theirs);
    let (my_owners, my_units) = owners_and_units(mine);
    let mut kept = Vec::new();
    let owners: Vec<UserId> = my_owners.difference(&their_owners).copied().collect();
    if !owners.is_empty() {
        kept.push(Condition::OwnerIn(owners));
    }
    let units: Vec<UnitId> = my_units.difference(&their_units).copied().collect();
    if !units.is_empty() {
        kept.push(Condition::UnitIn(units));
    }
    for condition in mine {
        if !matches!(condition, Condition::OwnerIn(_) | Condition::UnitIn(_))
            && !theirs.contains(condition)
        {
            kept.push(condition.clone());
        }
    }
    if kept.is_empty() {
        return None;
    }
    Some(RecordFilter {
        filter: Filter::Any(kept),
        ..filter.clone()
    })
}

fn owners_and_units(conditions: &[Condition]) -> (BTreeSet<UserId>, BTreeSet<UnitId>) {
    let mut owners = BTreeSet::new();
    let mut units = BTreeSet::new();
    for condition in conditions {
        match condition {
            Condition::OwnerIn(ids) => owners.extend(ids.iter().copied()),
            Condition::UnitIn(ids) => units.extend(ids.iter().copied()),
            Condition::SharedWith(_) | Condition::Matches(_) => {}
        }
    }
    (owners, units)
}

/// Customers that every filter of one what-if decides alike: one owner, one unit and one
/// truth value of each criterion in play (bit `i` of `holds`: criterion `i` holds). With no
/// criterion in play these are the (owner, unit) cells. Shares are not part of a class: they
/// are per record, and corrected for by the store ([`ShareCorrection`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub owner: UserId,
    pub unit: UnitId,
    pub holds: u64,
    pub records: u64,
}

/// The most criteria a what-if sorts customers by (one bit each, so at most 2^16 classes per
/// cell); a what-if testing more counts in SQL.
pub const MAX_CRITERIA: usize = 16;

/// The filters that differ before and after a change, per user and action, and the criteria
/// (sharing rule conditions, restrictions) they test.
#[derive(Debug, Clone, PartialEq)]
pub struct DiffFilters {
    pairs: Vec<FilterPair>,
    criteria: Vec<Criteria>,
}

#[derive(Debug, Clone, PartialEq)]
struct FilterPair {
    user: UserId,
    action: Action,
    was: RecordFilter,
    is: RecordFilter,
}

impl DiffFilters {
    /// The criteria to sort customers by, in bit order: the classes passed to
    /// [`plan_customer_diff`] must be built on exactly these.
    pub fn criteria(&self) -> &[Criteria] {
        &self.criteria
    }
}

/// The filters of `users` on customers that differ between `before` and `after`.
pub fn differing_filters(
    before: &Snapshot,
    after: &Snapshot,
    users: &[UserId],
    now: Timestamp,
) -> DiffFilters {
    let mut pairs = Vec::new();
    let mut criteria: Vec<Criteria> = Vec::new();
    for &user in users {
        for &action in Action::ALL {
            let was = before.filter(user, action, ObjectType::Customers, now);
            let is = after.filter(user, action, ObjectType::Customers, now);
            if was == is {
                continue;
            }
            if by_classes(&was) && by_classes(&is) {
                for tested in criteria_of(&was).chain(criteria_of(&is)) {
                    if !criteria.contains(tested) {
                        criteria.push(tested.clone());
                    }
                }
            }
            pairs.push(FilterPair {
                user,
                action,
                was,
                is,
            });
        }
    }
    if criteria.len() > MAX_CRITERIA {
        // Too many to sort by: every pair testing one is counted in SQL instead.
        criteria.clear();
    }
    DiffFilters { pairs, criteria }
}

/// How one user's change of access for one action is to be counted.
#[derive(Debug, Clone, PartialEq)]
#[allow(
    clippy::large_enum_variant,
    reason = "a few plans per what-if, each consumed at once: boxing would buy nothing"
)]
pub enum DiffPlan {
    /// Counted over classes, exactly (neither filter bound to a portal account), then
    /// corrected by the store for records a share reaches (`correction`). `exact` holds the
    /// filters (before, after) when a gained or lost cell may hold records that are neither
    /// (criteria or shares tell them apart): samples drawn from cells must be tested.
    Classes {
        change: AccessChange,
        correction: Option<ShareCorrection>,
        exact: Option<(RecordFilter, RecordFilter)>,
    },
    /// Counted by the store: records matching `.0` and not `.1` (`None`: surely none).
    Count {
        gained: Option<(RecordFilter, RecordFilter)>,
        lost: Option<(RecordFilter, RecordFilter)>,
    },
}

/// What the store counts to correct a class count for shares: among the records a share
/// opens to the user before or after (`reach`), those gained (lost) minus those the classes
/// counted as gained (lost). Outside `reach` the share conditions are false on both sides,
/// so the classes are exact there; inside, the store decides each record.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareCorrection {
    /// The user's principals before and after (equal ones once).
    pub reach: Vec<SharedWith>,
    pub was: RecordFilter,
    pub is: RecordFilter,
    /// `was` and `is` without their share conditions: what the classes evaluated.
    pub was_by_class: RecordFilter,
    pub is_by_class: RecordFilter,
}

/// One user's planned diff for one action.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedDiff {
    pub user: UserId,
    pub action: Action,
    pub plan: DiffPlan,
}

/// Plans the diff of access to customers for each differing pair of `filters`: by classes
/// (built on `filters.criteria()`), corrected for shares, when neither side is bound to a
/// portal account and every criterion is in play; by store counts otherwise (see the
/// module's doc).
pub fn plan_customer_diff(filters: &DiffFilters, classes: &[Class]) -> Vec<PlannedDiff> {
    let criteria = &filters.criteria;
    let mut out = Vec::new();
    for FilterPair {
        user,
        action,
        was,
        is,
    } in &filters.pairs
    {
        let (user, action) = (*user, *action);
        let tests = ClassTest::new(was, criteria).zip(ClassTest::new(is, criteria));
        if let Some((was_test, is_test)) = tests {
            let change = class_diff(user, action, &was_test, &is_test, classes);
            let correction = (has_shares(was) || has_shares(is)).then(|| ShareCorrection {
                reach: share_conditions(was).chain(share_conditions(is)).fold(
                    Vec::new(),
                    |mut reach, with| {
                        if !reach.contains(with) {
                            reach.push(with.clone());
                        }
                        reach
                    },
                ),
                was: was.clone(),
                is: is.clone(),
                was_by_class: without_shares(was),
                is_by_class: without_shares(is),
            });
            if change.gained > 0 || change.lost > 0 || correction.is_some() {
                let exact = (correction.is_some() || !criteria.is_empty())
                    .then(|| (was.clone(), is.clone()));
                out.push(PlannedDiff {
                    user,
                    action,
                    plan: DiffPlan::Classes {
                        change,
                        correction,
                        exact,
                    },
                });
            }
            continue;
        }
        let side = |filter: &RecordFilter, except: &RecordFilter| {
            delta(filter, except)
                .filter(|d| !surely_empty(d, classes))
                .map(|d| (d, except.clone()))
        };
        let gained = side(is, was);
        let lost = side(was, is);
        if gained.is_some() || lost.is_some() {
            out.push(PlannedDiff {
                user,
                action,
                plan: DiffPlan::Count { gained, lost },
            });
        }
    }
    out
}

/// Whether a filter can be decided per class: it is not bound to a portal account.
fn by_classes(filter: &RecordFilter) -> bool {
    filter.account.is_none() && !filter.via_customer
}

fn criteria_of(filter: &RecordFilter) -> impl Iterator<Item = &Criteria> {
    let matched = match &filter.filter {
        Filter::All => &[][..],
        Filter::Any(conditions) => &conditions[..],
    };
    matched
        .iter()
        .filter_map(|c| match c {
            Condition::Matches(criteria) => Some(criteria),
            _ => None,
        })
        .chain(filter.restrictions.iter())
}

fn share_conditions(filter: &RecordFilter) -> impl Iterator<Item = &SharedWith> {
    let conditions = match &filter.filter {
        Filter::All => &[][..],
        Filter::Any(conditions) => &conditions[..],
    };
    conditions.iter().filter_map(|c| match c {
        Condition::SharedWith(with) => Some(with),
        _ => None,
    })
}

fn has_shares(filter: &RecordFilter) -> bool {
    share_conditions(filter).next().is_some()
}

fn without_shares(filter: &RecordFilter) -> RecordFilter {
    RecordFilter {
        filter: filter.filter.without_shares(),
        ..filter.clone()
    }
}

/// A record filter as a test on classes (share conditions read as false).
struct ClassTest<'a> {
    filter: &'a Filter,
    /// A class whose `holds` meets any of these bits is reached (sharing rule conditions).
    any: u64,
    /// A reached class must hold all of these bits (restrictions).
    all: u64,
}

impl<'a> ClassTest<'a> {
    /// `None` when the filter is bound to an account or tests a criterion not in `criteria`.
    fn new(filter: &'a RecordFilter, criteria: &[Criteria]) -> Option<ClassTest<'a>> {
        if !by_classes(filter) {
            return None;
        }
        let bit = |c: &Criteria| criteria.iter().position(|k| k == c).map(|i| 1u64 << i);
        let mut any = 0;
        if let Filter::Any(conditions) = &filter.filter {
            for condition in conditions {
                if let Condition::Matches(c) = condition {
                    any |= bit(c)?;
                }
            }
        }
        let mut all = 0;
        for c in &filter.restrictions {
            all |= bit(c)?;
        }
        Some(ClassTest {
            filter: &filter.filter,
            any,
            all,
        })
    }

    fn reaches(&self, class: &Class) -> bool {
        (self.filter.matches_owner_unit(class.owner, class.unit) || class.holds & self.any != 0)
            && class.holds & self.all == self.all
    }
}

fn class_diff(
    user: UserId,
    action: Action,
    was: &ClassTest<'_>,
    is: &ClassTest<'_>,
    classes: &[Class],
) -> AccessChange {
    let mut change = AccessChange {
        user,
        action,
        gained: 0,
        lost: 0,
        gained_cells: Vec::new(),
        lost_cells: Vec::new(),
    };
    for class in classes {
        let cell = (class.owner, class.unit);
        match (was.reaches(class), is.reaches(class)) {
            (false, true) => {
                change.gained += class.records;
                if change.gained_cells.last() != Some(&cell) {
                    change.gained_cells.push(cell);
                }
            }
            (true, false) => {
                change.lost += class.records;
                if change.lost_cells.last() != Some(&cell) {
                    change.lost_cells.push(cell);
                }
            }
            _ => {}
        }
    }
    change
}

/// Whether a narrowed filter of owner and unit conditions only reaches no class with records
/// (then no SQL is needed to know its count is zero).
fn surely_empty(filter: &RecordFilter, classes: &[Class]) -> bool {
    filter.filter.is_hierarchical()
        && !classes
            .iter()
            .any(|c| c.records > 0 && filter.filter.matches_owner_unit(c.owner, c.unit))
}

/// The change of access to one record of `object` when its facts change (a share given or
/// taken back): each of `users` is decided on the record before and after, per action. Gains
/// and losses are 0 or 1 record.
pub fn record_access_diff(
    snapshot: &Snapshot,
    object: ObjectType,
    users: &[UserId],
    before: &RecordRef<'_>,
    after: &RecordRef<'_>,
    now: Timestamp,
) -> Vec<AccessChange> {
    let mut out = Vec::new();
    for &user in users {
        for &action in Action::ALL {
            let was = snapshot
                .check(user, action, object, before, now)
                .is_allowed();
            let is = snapshot
                .check(user, action, object, after, now)
                .is_allowed();
            if was != is {
                out.push(AccessChange {
                    user,
                    action,
                    gained: u64::from(is),
                    lost: u64::from(was),
                    gained_cells: Vec::new(),
                    lost_cells: Vec::new(),
                });
            }
        }
    }
    out
}

/// A field whose best level changes for a user: the strongest level any record the user may
/// `action` can have ([`Snapshot::field_ceiling`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldLevelChange {
    pub user: UserId,
    pub action: Action,
    pub object: ObjectType,
    pub field: &'static str,
    pub before: FieldAccess,
    pub after: FieldAccess,
}

/// The fields whose level changes for `users` on read and update, per object: what field rules
/// change (they change no record access), and what a role's new grants open or close.
pub fn field_level_changes(
    before: &Snapshot,
    after: &Snapshot,
    users: &[UserId],
    now: Timestamp,
) -> Vec<FieldLevelChange> {
    let mut out = Vec::new();
    for &user in users {
        for action in [Action::Read, Action::Update] {
            for &object in ObjectType::ALL {
                let was = before.field_ceiling(user, action, object, now);
                let is = after.field_ceiling(user, action, object, now);
                if was == is {
                    continue;
                }
                for ((def, old), (_, new)) in was.iter().zip(is.iter()) {
                    if old != new {
                        out.push(FieldLevelChange {
                            user,
                            action,
                            object,
                            field: def.name,
                            before: old,
                            after: new,
                        });
                    }
                }
            }
        }
    }
    out
}
