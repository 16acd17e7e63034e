//! Figures for the console's dashboard: how many customers the caller may read, per unit,
//! counted from the per-(owner, unit) counts (or, with shares and rules, grouped in SQL) without
//! reading a single record.

use warden_policy::{Action, ObjectType, RecordRef};

use crate::{Result, Subject, Warden};

/// How many customers of one unit the caller may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitCount {
    pub unit: String,
    pub customers: u64,
}

impl Warden {
    /// The customers the caller may read, counted per unit (units with none left out), largest
    /// first. Each (owner, unit) cell is decided once by the engine, exactly as what-if decides
    /// it, so the figure agrees with the list without reading or logging any record: it says
    /// how many, never which.
    pub async fn visible_customers_per_unit(&self, subject: &Subject) -> Result<Vec<UnitCount>> {
        let snapshot = &subject.snapshot;
        let mut per_unit: Vec<UnitCount> = Vec::new();
        let filter = self
            .store
            .without_unused_shares(snapshot.filter(
                subject.user,
                Action::Read,
                ObjectType::Customers,
                subject.now,
            ))
            .await?;
        // Shares, sharing rules, restrictions and the portal bound need the records' facts:
        // then the database counts, grouped by unit (still no record is read or logged).
        if !filter.filter.is_hierarchical()
            || !filter.restrictions.is_empty()
            || filter.account.is_some()
        {
            for (unit, records) in self.store.count_records_by_unit(&filter).await? {
                per_unit.push(UnitCount {
                    unit: snapshot.unit_name(unit).unwrap_or_default().to_owned(),
                    customers: u64::try_from(records).unwrap_or(0),
                });
            }
            per_unit.sort_by(|a, b| b.customers.cmp(&a.customers).then(a.unit.cmp(&b.unit)));
            return Ok(per_unit);
        }
        for (owner, unit, records) in self.store.customer_cells().await? {
            let allowed = snapshot
                .check(
                    subject.user,
                    Action::Read,
                    ObjectType::Customers,
                    &RecordRef::new(owner, unit),
                    subject.now,
                )
                .is_allowed();
            if !allowed {
                continue;
            }
            let name = snapshot.unit_name(unit).unwrap_or_default();
            match per_unit.iter_mut().find(|c| c.unit == name) {
                Some(count) => count.customers += records,
                None => per_unit.push(UnitCount {
                    unit: name.to_owned(),
                    customers: records,
                }),
            }
        }
        per_unit.sort_by(|a, b| b.customers.cmp(&a.customers).then(a.unit.cmp(&b.unit)));
        Ok(per_unit)
    }
}
