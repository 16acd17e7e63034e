//! The list predicate: which records a user may act on, in a form the store turns into SQL.

use crate::schema::Value;
use crate::{Criteria, ObjectType, RecordRef, RoleId, ShareAccess, UnitId, UserId};

/// A predicate over the deciding record (the record, or its customer): what reaches it.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// Every record.
    All,
    /// Records matching at least one condition; empty means none.
    Any(Vec<Condition>),
}

/// One disjunct of a [`Filter`]. The id lists are sorted and free of duplicates.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// Owned by one of these users (role grants).
    OwnerIn(Vec<UserId>),
    /// Of one of these units (role grants, sharing rules by unit).
    UnitIn(Vec<UnitId>),
    /// A share or team place on the record names the user, one of their units or roles.
    SharedWith(SharedWith),
    /// The record meets a sharing rule's condition.
    Matches(Criteria),
}

/// The principals that stand for one user, for [`Condition::SharedWith`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedWith {
    /// The object whose shares count (the deciding object).
    pub object: ObjectType,
    pub user: UserId,
    /// The user's unit and every unit above it (a share with a unit reaches the units below).
    pub units: Vec<UnitId>,
    /// The user's active roles.
    pub roles: Vec<RoleId>,
    /// The least access a share must give.
    pub access: ShareAccess,
}

/// The filter for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordFilter {
    /// The object listed.
    pub object: ObjectType,
    /// Whether `filter` and `restrictions` apply to the record's customer (an object
    /// controlled by its customer) rather than to the record itself.
    pub via_customer: bool,
    /// What reaches the deciding record: grants, shares, sharing rules.
    pub filter: Filter,
    /// Conditions the deciding record must also meet (restriction rules; all of them).
    pub restrictions: Vec<Criteria>,
    /// For a portal user: the only customer account whose records are reached (a customer's
    /// own id, another record's customer id).
    pub account: Option<i64>,
}

/// The deciding record, as a filter evaluates it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Target<'a> {
    pub(crate) object: ObjectType,
    pub(crate) owner: UserId,
    pub(crate) unit: UnitId,
    pub(crate) shares: &'a [crate::Share],
    pub(crate) values: &'a [Value],
}

impl Filter {
    /// The filter that matches nothing.
    pub fn none() -> Self {
        Filter::Any(Vec::new())
    }

    /// Whether this filter matches nothing at all.
    pub fn is_none(&self) -> bool {
        match self {
            Filter::All => false,
            Filter::Any(conditions) => conditions.iter().all(Condition::is_empty),
        }
    }

    /// The predicate without its share conditions (owners, units and rule conditions only).
    pub fn without_shares(&self) -> Filter {
        match self {
            Filter::All => Filter::All,
            Filter::Any(conditions) => Filter::Any(
                conditions
                    .iter()
                    .filter(|c| !matches!(c, Condition::SharedWith(_)))
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// Whether only owner and unit conditions appear (what the planner's statistics and the
    /// what-if cells can count exactly).
    pub fn is_hierarchical(&self) -> bool {
        match self {
            Filter::All => true,
            Filter::Any(conditions) => conditions
                .iter()
                .all(|c| matches!(c, Condition::OwnerIn(_) | Condition::UnitIn(_))),
        }
    }

    /// Evaluates the predicate on one owner and unit, ignoring shares and rule conditions
    /// (which need the record): for counts by owner and unit.
    pub fn matches_owner_unit(&self, owner: UserId, unit: UnitId) -> bool {
        match self {
            Filter::All => true,
            Filter::Any(conditions) => conditions.iter().any(|c| match c {
                Condition::OwnerIn(ids) => ids.binary_search(&owner).is_ok(),
                Condition::UnitIn(ids) => ids.binary_search(&unit).is_ok(),
                Condition::SharedWith(_) | Condition::Matches(_) => false,
            }),
        }
    }

    /// Evaluates the predicate on the deciding record (the store evaluates it in SQL).
    pub(crate) fn matches(&self, target: &Target<'_>) -> bool {
        match self {
            Filter::All => true,
            Filter::Any(conditions) => conditions.iter().any(|c| match c {
                Condition::OwnerIn(ids) => ids.binary_search(&target.owner).is_ok(),
                Condition::UnitIn(ids) => ids.binary_search(&target.unit).is_ok(),
                Condition::SharedWith(with) => {
                    with.object == target.object
                        && target.shares.iter().any(|share| {
                            share.access >= with.access
                                && match share.principal {
                                    crate::Principal::User(u) => u == with.user,
                                    crate::Principal::Unit(u) => with.units.contains(&u),
                                    crate::Principal::Role(r) => with.roles.contains(&r),
                                }
                        })
                }
                Condition::Matches(criteria) => criteria.holds(target.object, target.values),
            }),
        }
    }
}

impl Condition {
    fn is_empty(&self) -> bool {
        match self {
            Condition::OwnerIn(ids) => ids.is_empty(),
            Condition::UnitIn(ids) => ids.is_empty(),
            Condition::SharedWith(_) | Condition::Matches(_) => false,
        }
    }
}

impl RecordFilter {
    /// A filter that matches every record of `object` (tests, exports and benchmarks that
    /// read everything).
    pub fn everything(object: ObjectType) -> Self {
        RecordFilter {
            object,
            via_customer: false,
            filter: Filter::All,
            restrictions: Vec::new(),
            account: None,
        }
    }

    /// A filter that matches no record of `object`.
    pub fn none(object: ObjectType, via_customer: bool) -> Self {
        RecordFilter {
            object,
            via_customer,
            filter: Filter::none(),
            restrictions: Vec::new(),
            account: None,
        }
    }

    /// Whether the filter can match nothing at all.
    pub fn is_none(&self) -> bool {
        self.filter.is_none()
    }

    /// Evaluates the filter on a record the way the store's SQL does.
    pub fn matches(&self, record: &RecordRef<'_>) -> bool {
        if let Some(account) = self.account {
            if record.account(self.object) != Some(account) {
                return false;
            }
        }
        let target = if self.via_customer {
            match record.customer {
                Some((owner, unit)) => Target {
                    object: ObjectType::Customers,
                    owner,
                    unit,
                    shares: record.customer_facts.shares,
                    values: record.customer_facts.values,
                },
                None => return false,
            }
        } else {
            Target {
                object: self.object,
                owner: record.owner,
                unit: record.unit,
                shares: record.facts.shares,
                values: record.facts.values,
            }
        };
        self.filter.matches(&target)
            && self
                .restrictions
                .iter()
                .all(|only| only.holds(target.object, target.values))
    }
}
