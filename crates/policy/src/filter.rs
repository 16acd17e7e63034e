//! The list predicate: which records a user may act on, in a form the store turns into SQL.

use crate::{RecordRef, UnitId, UserId};

/// A predicate over records' owner and unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Filter {
    /// Every record.
    All,
    /// Records matching at least one condition; empty means none.
    Any(Vec<Condition>),
}

/// One disjunct of a [`Filter`]. The id lists are sorted and free of duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    OwnerIn(Vec<UserId>),
    UnitIn(Vec<UnitId>),
}

/// The filter for one object: applied to the record itself, or, for an object controlled by
/// its customer, to the record's customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordFilter {
    pub via_customer: bool,
    pub filter: Filter,
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

    /// Evaluates the predicate on one owner and unit (the store evaluates it in SQL).
    pub fn matches(&self, owner: UserId, unit: UnitId) -> bool {
        match self {
            Filter::All => true,
            Filter::Any(conditions) => conditions.iter().any(|c| match c {
                Condition::OwnerIn(ids) => ids.binary_search(&owner).is_ok(),
                Condition::UnitIn(ids) => ids.binary_search(&unit).is_ok(),
            }),
        }
    }
}

impl Condition {
    fn is_empty(&self) -> bool {
        match self {
            Condition::OwnerIn(ids) => ids.is_empty(),
            Condition::UnitIn(ids) => ids.is_empty(),
        }
    }
}

impl RecordFilter {
    /// Evaluates the filter on a record the way the store's SQL does.
    pub fn matches(&self, record: &RecordRef) -> bool {
        if self.via_customer {
            match record.customer {
                Some((owner, unit)) => self.filter.matches(owner, unit),
                None => false,
            }
        } else {
            self.filter.matches(record.owner, record.unit)
        }
    }
}
