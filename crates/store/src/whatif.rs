//! What-if's reads of customers: counts per class of the criteria in play, the share
//! corrections of those counts, and samples of what is gained or lost.

use sqlx::Row;
use warden_policy::{Class, Criteria, ObjectType, RecordFilter, ShareCorrection};

use crate::sql::SqlBuilder;
use crate::{Result, Store};

/// Records of the gained or lost cells tested for samples.
const CANDIDATES: u32 = 200;

impl Store {
    /// Customers per (owner, unit) and truth value of each of `criteria` (bit `i`: criterion
    /// `i` holds, as the store's SQL evaluates it for lists), ordered by owner and unit. With
    /// no criterion, the per-(owner, unit) counts (no record is read); otherwise one pass over
    /// the customers.
    pub async fn customer_classes(&self, criteria: &[Criteria]) -> Result<Vec<Class>> {
        if criteria.is_empty() {
            return Ok(self
                .customer_cells()
                .await?
                .into_iter()
                .map(|(owner, unit, records)| Class {
                    owner,
                    unit,
                    holds: 0,
                    records,
                })
                .collect());
        }
        let mut sql = SqlBuilder::new("SELECT r.owner_id, r.unit_id, ");
        for (i, criterion) in criteria.iter().enumerate() {
            if i > 0 {
                sql.push(" + ");
            }
            sql.push("(CASE WHEN ");
            sql.push_criteria("r", ObjectType::Customers, criterion, self.backend());
            sql.push(&format!(" THEN {} ELSE 0 END)", 1u64 << i));
        }
        sql.push(
            " AS holds, CAST(COUNT(*) AS BIGINT) FROM customers r \
             GROUP BY r.owner_id, r.unit_id, holds ORDER BY r.owner_id, r.unit_id, holds",
        );
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                Ok(Class {
                    owner: warden_policy::UserId(row.try_get(0)?),
                    unit: warden_policy::UnitId(row.try_get(1)?),
                    holds: u64::try_from(row.try_get::<i64, _>(2)?).unwrap_or(0),
                    records: u64::try_from(row.try_get::<i64, _>(3)?).unwrap_or(0),
                })
            })
            .collect()
    }

    /// What to add to a class count's gains and losses for the records a share reaches (see
    /// [`ShareCorrection`]): one statement over those records, found through the share index.
    pub async fn share_correction(&self, correction: &ShareCorrection) -> Result<(i64, i64)> {
        let backend = self.backend();
        let mut sql = SqlBuilder::new("SELECT ");
        let difference = |sql: &mut SqlBuilder,
                          plus: (&RecordFilter, &RecordFilter),
                          minus: (&RecordFilter, &RecordFilter)| {
            sql.push("CAST(COALESCE(SUM(CASE WHEN (");
            sql.push_record_filter(plus.0, false, backend);
            sql.push(") AND NOT (");
            sql.push_record_filter(plus.1, false, backend);
            sql.push(") THEN 1 ELSE 0 END) - SUM(CASE WHEN (");
            sql.push_record_filter(minus.0, false, backend);
            sql.push(") AND NOT (");
            sql.push_record_filter(minus.1, false, backend);
            sql.push(") THEN 1 ELSE 0 END), 0) AS BIGINT)");
        };
        let c = correction;
        difference(&mut sql, (&c.is, &c.was), (&c.is_by_class, &c.was_by_class));
        sql.push(", ");
        difference(&mut sql, (&c.was, &c.is), (&c.was_by_class, &c.is_by_class));
        // One subquery over the share index for every principal, so that the shares drive.
        sql.push(" FROM customers r WHERE r.id IN (");
        sql.push_shared_record_ids(&c.reach, backend);
        sql.push(")");
        let row = sql.query().fetch_one(&self.pool).await?;
        Ok((row.try_get(0)?, row.try_get(1)?))
    }

    /// The first `limit` customer ids in the given (owner, unit) cells (at most 50 are looked
    /// at) that `reached` reaches and `except` does not: samples of a class count, found
    /// through the owner index.
    pub async fn sample_customers_in_cells(
        &self,
        cells: &[(warden_policy::UserId, warden_policy::UnitId)],
        reached: &RecordFilter,
        except: &RecordFilter,
        limit: u32,
    ) -> Result<Vec<i64>> {
        if cells.is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        // The cells' first records through the owner index, then those tested: one statement
        // with both would let the database walk the id order instead.
        let candidates = self.sample_customers(cells, CANDIDATES).await?;
        if candidates.is_empty() {
            return Ok(Vec::new());
        }
        let backend = self.backend();
        let mut sql = SqlBuilder::new("SELECT r.id FROM customers r WHERE ");
        sql.push_in("r.id", &candidates, backend);
        sql.push(" AND (");
        sql.push_record_filter(reached, false, backend);
        sql.push(") AND NOT (");
        sql.push_record_filter(except, false, backend);
        sql.push(") ORDER BY r.id LIMIT ")
            .bind_int(i64::from(limit));
        Ok(sql.scalar::<i64>().fetch_all(&self.pool).await?)
    }
}
