//! CRM records (customers, contacts, deals, contracts, activities): read, list with the
//! engine's filter, insert, update with optimistic versions, delete.

use sqlx::any::AnyRow;
use sqlx::Row;
use warden_policy::schema::{schema, FieldDef, FieldKind, ObjectSchema, Value};
use warden_policy::{
    Condition, Facts, Filter, ObjectType, Principal, RecordFilter, RecordRef, Share, ShareAccess,
    ShareKind, SharedWith, Timestamp, UnitId, UserId,
};

use crate::crypto::{FieldRef, Keys};
use crate::sql::{Param, SqlBuilder};
use crate::{Backend, Result, Store, StoreError, Tx};

/// A stored record. `values` follows the order of the object's schema fields.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub object: ObjectType,
    pub id: i64,
    pub customer_id: Option<i64>,
    pub owner: UserId,
    pub unit: UnitId,
    pub version: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub values: Vec<Value>,
    /// The customer's owner and unit, for records that belong to a customer.
    pub customer: Option<(UserId, UnitId)>,
    /// The record's shares and team places.
    pub shares: Vec<Share>,
    /// Its customer's shares and team places, and field values (sensitive ones left empty:
    /// rules never test them), for records that belong to a customer.
    pub customer_shares: Vec<Share>,
    pub customer_values: Vec<Value>,
}

impl Record {
    /// What the permission engine needs to know of this record.
    pub fn record_ref(&self) -> RecordRef<'_> {
        RecordRef {
            owner: self.owner,
            unit: self.unit,
            customer: self.customer,
            id: Some(self.id),
            customer_id: self.customer_id,
            facts: Facts {
                shares: &self.shares,
                values: &self.values,
            },
            customer_facts: Facts {
                shares: &self.customer_shares,
                values: &self.customer_values,
            },
        }
    }

    /// The value of a named field.
    pub fn value(&self, field: &str) -> Option<&Value> {
        let (index, _) = schema(self.object).field(field)?;
        self.values.get(index)
    }
}

/// A record to insert; `values` follows the schema's field order.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecord {
    pub customer_id: Option<i64>,
    pub owner: UserId,
    pub unit: UnitId,
    pub values: Vec<Value>,
}

/// Changes to a record: field values by schema position, and optionally a new owner or unit.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordChanges {
    pub values: Vec<(usize, Value)>,
    pub owner: Option<UserId>,
    pub unit: Option<UnitId>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq)]
pub struct ListPage {
    pub items: Vec<Record>,
    /// The id to pass as `after` for the next page, when there may be one.
    pub next_cursor: Option<i64>,
}

/// How a list page is read (chosen per request by [`Store::list_plan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListPlan {
    /// The caller may see nothing: no query is run.
    Empty,
    /// Walk the id order and test each row (no filter, or the caller sees many rows).
    WalkIds,
    /// Read the visible ids from the owner and unit indexes, sort them, then read the page's
    /// rows by id (the caller sees few rows, or the object is filtered through its customer).
    Enumerate,
}

impl ListPlan {
    /// A short name, for logs and benchmark reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ListPlan::Empty => "empty",
            ListPlan::WalkIds => "walk ids",
            ListPlan::Enumerate => "enumerate via index",
        }
    }
}

/// How a field is kept in its column. Sensitive fields are text whatever their kind, so that
/// they can hold ciphertext.
fn stored_as_text(field: &FieldDef) -> bool {
    field.sensitive || !matches!(field.kind, FieldKind::Integer { .. } | FieldKind::Bool)
}

/// The parameter that stores `value` in row `id` of `object`: sensitive fields encrypted.
fn to_param(
    keys: &Keys,
    object: &ObjectSchema,
    id: i64,
    field: &FieldDef,
    value: &Value,
) -> Result<Param> {
    let param = plain_param(field, value);
    match param {
        Param::Text(Some(text)) if field.sensitive => Ok(Param::Text(Some(keys.encrypt(
            FieldRef {
                table: object.table,
                id,
                column: field.name,
            },
            &text,
        )?))),
        param => Ok(param),
    }
}

pub(crate) fn plain_param(field: &FieldDef, value: &Value) -> Param {
    if stored_as_text(field) {
        Param::Text(match value {
            Value::Null => None,
            Value::Text(text) => Some(text.clone()),
            Value::Integer(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
        })
    } else {
        Param::Int(match value {
            Value::Integer(n) => Some(*n),
            Value::Bool(b) => Some(i64::from(*b)),
            Value::Null | Value::Text(_) => None,
        })
    }
}

fn decode_value(
    keys: &Keys,
    row: &AnyRow,
    id: i64,
    column: usize,
    object: &'static ObjectSchema,
    field: &'static FieldDef,
) -> Result<Value> {
    let corrupt = |message: String| StoreError::Corrupt {
        table: object.table,
        column: field.name,
        message,
    };
    if stored_as_text(field) {
        let text: Option<String> = row.try_get(column)?;
        let Some(mut text) = text else {
            return Ok(Value::Null);
        };
        if field.sensitive {
            text = keys.decrypt(
                FieldRef {
                    table: object.table,
                    id,
                    column: field.name,
                },
                &text,
            )?;
        }
        match field.kind {
            FieldKind::Integer { .. } => text
                .parse()
                .map(Value::Integer)
                .map_err(|_| corrupt("not a whole number".into())),
            FieldKind::Bool => Ok(Value::Bool(text == "true")),
            _ => Ok(Value::Text(text)),
        }
    } else {
        let number: Option<i64> = row.try_get(column)?;
        Ok(match (number, field.kind) {
            (None, _) => Value::Null,
            (Some(n), FieldKind::Bool) => Value::Bool(n != 0),
            (Some(n), _) => Value::Integer(n),
        })
    }
}

/// The select list: fixed columns first, then the schema's fields, the record's shares, and
/// for a record of a customer, the customer's shares and plain field values.
fn select_list(object: &ObjectSchema, backend: Backend) -> String {
    let mut columns =
        String::from("r.id, r.owner_id, r.unit_id, r.version, r.created_at, r.updated_at");
    if object.has_customer {
        columns.push_str(", r.customer_id, c.owner_id, c.unit_id");
    }
    for field in object.fields {
        columns.push_str(", r.");
        columns.push_str(field.name);
    }
    columns.push_str(", ");
    columns.push_str(&shares_column("r", object.object, backend));
    if object.has_customer {
        columns.push_str(", ");
        columns.push_str(&shares_column("c", ObjectType::Customers, backend));
        for field in schema(ObjectType::Customers).fields {
            if !field.sensitive {
                columns.push_str(", c.");
                columns.push_str(field.name);
            }
        }
    }
    columns
}

/// One column listing `alias`'s shares as `kind:principal kind:id:access`, comma-separated
/// (NULL when there are none): read with the record, so that a check needs no second query.
fn shares_column(alias: &str, object: ObjectType, backend: Backend) -> String {
    let aggregate = match backend {
        Backend::Sqlite => "group_concat",
        Backend::Postgres => "string_agg",
    };
    format!(
        "(SELECT {aggregate}(s.kind || ':' || s.principal_kind || ':' || \
         CAST(s.principal_id AS TEXT) || ':' || s.access, ',') FROM record_shares s \
         WHERE s.object = '{}' AND s.record_id = {alias}.id)",
        object.as_str()
    )
}

fn decode_shares(text: Option<String>) -> Result<Vec<Share>> {
    let corrupt = |message: String| StoreError::Corrupt {
        table: "record_shares",
        column: "*",
        message,
    };
    let Some(text) = text else {
        return Ok(Vec::new());
    };
    let mut shares = text
        .split(',')
        .map(|item| {
            let parts: Vec<&str> = item.split(':').collect();
            let [kind, principal_kind, id, access] = parts.as_slice() else {
                return Err(corrupt(format!("`{item}`")));
            };
            let id: i64 = id.parse().map_err(|_| corrupt(format!("`{item}`")))?;
            Ok(Share {
                kind: ShareKind::parse(kind).ok_or_else(|| corrupt(format!("`{item}`")))?,
                principal: Principal::from_parts(principal_kind, id)
                    .ok_or_else(|| corrupt(format!("`{item}`")))?,
                access: ShareAccess::parse(access).ok_or_else(|| corrupt(format!("`{item}`")))?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    shares.sort_unstable();
    Ok(shares)
}

fn from_clause(object: &ObjectSchema) -> String {
    if object.has_customer {
        format!(
            "{} r JOIN customers c ON c.id = r.customer_id",
            object.table
        )
    } else {
        format!("{} r", object.table)
    }
}

fn decode_record(keys: &Keys, row: &AnyRow, object: &'static ObjectSchema) -> Result<Record> {
    let id: i64 = row.try_get(0)?;
    let mut column = 6;
    let (customer_id, customer) = if object.has_customer {
        column += 3;
        (
            Some(row.try_get::<i64, _>(6)?),
            Some((UserId(row.try_get(7)?), UnitId(row.try_get(8)?))),
        )
    } else {
        (None, None)
    };
    let values = object
        .fields
        .iter()
        .enumerate()
        .map(|(i, field)| decode_value(keys, row, id, column + i, object, field))
        .collect::<Result<Vec<_>>>()?;
    column += object.fields.len();
    let shares = decode_shares(row.try_get(column)?)?;
    column += 1;
    let (customer_shares, customer_values) = if let Some(customer_id) = customer_id {
        let shares = decode_shares(row.try_get(column)?)?;
        column += 1;
        let customers = schema(ObjectType::Customers);
        let mut values = Vec::with_capacity(customers.fields.len());
        for field in customers.fields {
            if field.sensitive {
                values.push(Value::Null);
            } else {
                values.push(decode_value(
                    keys,
                    row,
                    customer_id,
                    column,
                    customers,
                    field,
                )?);
                column += 1;
            }
        }
        (shares, values)
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Record {
        shares,
        customer_shares,
        customer_values,
        object: object.object,
        id,
        customer_id,
        owner: UserId(row.try_get(1)?),
        unit: UnitId(row.try_get(2)?),
        version: row.try_get(3)?,
        created_at: row.try_get(4)?,
        updated_at: row.try_get(5)?,
        values,
        customer,
    })
}

/// The SQL of one page: `select` over `object`'s rows matching `filter`, after `after`, in id
/// order, `limit + 1` rows.
///
/// Walking ids, the filter is tested on each row in id order (`+column` keeps the owner and
/// unit indexes out). Enumerating, the ids of the visible rows are read from the owner and
/// unit indexes alone (they are covering: `(owner_id, id)`, `(unit_id, id)`), sorted, cut to
/// the page, and only the page's rows are read: a supervisor who sees 6,000 customers then
/// reads 6,000 index entries and 51 rows, not 6,000 rows.
#[allow(
    clippy::too_many_arguments,
    reason = "one page's every parameter, passed straight from the public methods"
)]
fn page_sql(
    object: &'static ObjectSchema,
    select: &str,
    filter: &RecordFilter,
    matching: &[(usize, Value)],
    walk_ids: bool,
    after: Option<i64>,
    limit: u32,
    backend: Backend,
) -> SqlBuilder {
    let from = from_clause(object);
    let mut sql = SqlBuilder::new(&format!("SELECT {select} FROM {from} WHERE "));
    if !walk_ids && matching.is_empty() {
        if let Some(places) = id_places(object, filter) {
            push_visible_ids(&mut sql, object, &places, after, limit, backend);
            sql.push(" ORDER BY r.id");
            return sql;
        }
    }
    if !walk_ids {
        sql.push(&format!("r.id IN (SELECT r.id FROM {from} WHERE "));
    }
    sql.push_record_filter(filter, walk_ids, backend);
    push_matching(&mut sql, object, matching);
    if let Some(after) = after {
        sql.push(" AND r.id > ").bind_int(after);
    }
    // `+r.id` keeps SQLite from walking the id order when the index plan was chosen.
    sql.push(if walk_ids {
        " ORDER BY r.id LIMIT "
    } else {
        " ORDER BY +r.id LIMIT "
    })
    .bind_int(i64::from(limit) + 1);
    if !walk_ids {
        sql.push(") ORDER BY r.id");
    }
    sql
}

/// Where a filter's visible ids come from, when that is all it says: owners, units and
/// shares, with no restriction, account or rule condition to test on the row itself.
struct IdPlaces<'a> {
    owners: Vec<i64>,
    units: Vec<i64>,
    shares: Vec<&'a SharedWith>,
}

fn id_places<'a>(object: &ObjectSchema, filter: &'a RecordFilter) -> Option<IdPlaces<'a>> {
    let Filter::Any(conditions) = &filter.filter else {
        return None;
    };
    if object.has_customer
        || filter.via_customer
        || filter.account.is_some()
        || !filter.restrictions.is_empty()
    {
        return None;
    }
    let mut places = IdPlaces {
        owners: Vec::new(),
        units: Vec::new(),
        shares: Vec::new(),
    };
    for condition in conditions {
        match condition {
            Condition::OwnerIn(ids) => places.owners.extend(ids.iter().map(|id| id.0)),
            Condition::UnitIn(ids) => places.units.extend(ids.iter().map(|id| id.0)),
            Condition::SharedWith(with) => places.shares.push(with),
            Condition::Matches(_) => return None,
        }
    }
    Some(places)
}

/// `r.id IN (the page's ids)`, the ids taken from the covering owner and unit indexes and the
/// share index alone, `UNION ALL`ed and grouped (a record reached twice counts once), sorted and cut to
/// the page; no customer row is read before the page's own 51. An `OR` of the same terms made
/// SQLite look up every visible row to test it, twice the time for a rep with shares.
///
/// INVARIANT (relied on here): a share never outlives its record — a delete removes the
/// record's shares in its transaction, and `warden check` reports any orphan — so every id
/// in the union is a row and the page holds `limit + 1` rows whenever that many are visible.
fn push_visible_ids(
    sql: &mut SqlBuilder,
    object: &ObjectSchema,
    places: &IdPlaces<'_>,
    after: Option<i64>,
    limit: u32,
    backend: Backend,
) {
    // GROUP BY: a record reached twice (owned and shared, or shared through two principals)
    // would take two of the page's places. One grouping of the UNION ALL measured faster than
    // UNION (a temporary b-tree per branch) or DISTINCT on SQLite: 1.0 ms against 2.4 ms for a
    // supervisor's 6,330 ids.
    sql.push("r.id IN (SELECT id FROM (");
    let mut first = true;
    let mut branch = |sql: &mut SqlBuilder, column: &str, ids: &[i64]| {
        if ids.is_empty() {
            return;
        }
        if !first {
            sql.push(" UNION ALL ");
        }
        first = false;
        sql.push(&format!("SELECT x.id AS id FROM {} x WHERE ", object.table));
        sql.push_in(&format!("x.{column}"), ids, backend);
        if let Some(after) = after {
            sql.push(" AND x.id > ").bind_int(after);
        }
    };
    branch(sql, "owner_id", &places.owners);
    branch(sql, "unit_id", &places.units);
    if !places.shares.is_empty() {
        if !first {
            sql.push(" UNION ALL ");
        }
        first = false;
        sql.push("SELECT t.record_id AS id FROM (");
        sql.push_shared_record_ids(places.shares.iter().copied(), backend);
        sql.push(") t");
        if let Some(after) = after {
            sql.push(" WHERE t.record_id > ").bind_int(after);
        }
    }
    if first {
        sql.push("SELECT x.id AS id FROM ")
            .push(object.table)
            .push(" x WHERE 1 = 0");
    }
    sql.push(") visible GROUP BY id ORDER BY id LIMIT ")
        .bind_int(i64::from(limit) + 1)
        .push(")");
}

/// `AND` one equality test per `(field position, value)`; `NULL` matches an empty field.
/// Field names come from the schema, never from input.
fn push_matching(sql: &mut SqlBuilder, object: &ObjectSchema, matching: &[(usize, Value)]) {
    for (index, value) in matching {
        let Some(field) = object.fields.get(*index) else {
            continue;
        };
        if field.sensitive {
            // Ciphertexts use random nonces: no SQL comparison can match them. The service
            // refuses such a filter; should one arrive, it matches nothing (fail closed).
            sql.push(" AND 1 = 0");
        } else if *value == Value::Null {
            sql.push(&format!(" AND r.{} IS NULL", field.name));
        } else {
            sql.push(&format!(" AND r.{} = ", field.name))
                .bind(plain_param(field, value));
        }
    }
}

impl Store {
    /// Reads one record.
    pub async fn get_record(&self, object: ObjectType, id: i64) -> Result<Option<Record>> {
        let schema = schema(object);
        let mut sql = SqlBuilder::new(&format!(
            "SELECT {} FROM {} WHERE r.id = ",
            select_list(schema, self.backend()),
            from_clause(schema)
        ));
        sql.bind_int(id);
        let row = sql.query().fetch_optional(&self.pool).await?;
        row.map(|row| decode_record(&self.keys, &row, schema))
            .transpose()
    }

    /// How many customers match `filter`. Owners and units count from the per-(owner, unit)
    /// counts (no record is read); shares add the shared records that those do not already
    /// reach, found through the share index (a user has few). Only a filter with a sharing
    /// rule's condition reads every record ([`Store::count_records`]).
    pub async fn count_customers(&self, filter: &Filter) -> Result<i64> {
        if let Filter::Any(conditions) = filter {
            let (hierarchy, shares): (Vec<Condition>, Vec<Condition>) = conditions
                .iter()
                .cloned()
                .partition(|c| matches!(c, Condition::OwnerIn(_) | Condition::UnitIn(_)));
            if !shares.is_empty() && shares.iter().all(|c| matches!(c, Condition::SharedWith(_))) {
                let hierarchy = Filter::Any(hierarchy);
                let by_place = self.count_by_owner_and_unit(&hierarchy).await?;
                let mut sql =
                    SqlBuilder::new("SELECT CAST(COUNT(*) AS BIGINT) FROM customers r WHERE ");
                sql.push_filter(
                    "r",
                    ObjectType::Customers,
                    &Filter::Any(shares),
                    false,
                    self.backend(),
                )
                .push(" AND NOT ")
                .push_filter(
                    "r",
                    ObjectType::Customers,
                    &hierarchy,
                    false,
                    self.backend(),
                );
                let only_shared = sql.scalar::<i64>().fetch_one(&self.pool).await?;
                return Ok(by_place + only_shared);
            }
        }
        if !filter.is_hierarchical() {
            let all = RecordFilter {
                object: ObjectType::Customers,
                via_customer: false,
                filter: filter.clone(),
                restrictions: Vec::new(),
                account: None,
            };
            return self.count_records(&all, None).await;
        }
        self.count_by_owner_and_unit(filter).await
    }

    /// How many customers an owner-and-unit filter matches, from the per-(owner, unit) counts.
    async fn count_by_owner_and_unit(&self, filter: &Filter) -> Result<i64> {
        let mut sql = SqlBuilder::new(
            "SELECT CAST(COALESCE(SUM(r.n), 0) AS BIGINT) FROM customer_counts r WHERE ",
        );
        sql.push_filter("r", ObjectType::Customers, filter, false, self.backend());
        Ok(sql.scalar::<i64>().fetch_one(&self.pool).await?)
    }

    /// How many records match `filter` and, when given, not `except` (both for one object):
    /// what-if's gained and lost counts, in one statement each.
    pub async fn count_records(
        &self,
        filter: &RecordFilter,
        except: Option<&RecordFilter>,
    ) -> Result<i64> {
        let schema = schema(filter.object);
        let mut sql = SqlBuilder::new(&format!(
            "SELECT CAST(COUNT(*) AS BIGINT) FROM {} WHERE ",
            from_clause(schema)
        ));
        sql.push("(");
        sql.push_record_filter(filter, false, self.backend());
        sql.push(")");
        if let Some(except) = except {
            sql.push(" AND NOT (");
            sql.push_record_filter(except, false, self.backend());
            sql.push(")");
        }
        Ok(sql.scalar::<i64>().fetch_one(&self.pool).await?)
    }

    /// `filter` without its share conditions when no share or team place names any of their
    /// principals: then it is an owner-and-unit filter again, which counts cheaply from the
    /// per-(owner, unit) counts. For counts and estimates (a share given meanwhile may be
    /// missed), never for lists.
    pub async fn without_unused_shares(&self, mut filter: RecordFilter) -> Result<RecordFilter> {
        if let Filter::Any(conditions) = &mut filter.filter {
            let mut kept = Vec::with_capacity(conditions.len());
            for condition in conditions.drain(..) {
                if let Condition::SharedWith(with) = &condition {
                    let mut sql = SqlBuilder::new(&format!(
                        "SELECT CAST(COUNT(*) AS BIGINT) FROM (SELECT 1 FROM record_shares s \
                         WHERE s.object = '{}' AND ",
                        with.object.as_str()
                    ));
                    sql.push_shared_with_principals(with, self.backend());
                    sql.push(" LIMIT 1) x");
                    if sql.scalar::<i64>().fetch_one(&self.pool).await? == 0 {
                        continue;
                    }
                }
                kept.push(condition);
            }
            *conditions = kept;
        }
        Ok(filter)
    }

    /// How many records of `filter`'s object it matches, per unit (units with none left out).
    pub async fn count_records_by_unit(&self, filter: &RecordFilter) -> Result<Vec<(UnitId, i64)>> {
        let schema = schema(filter.object);
        let mut sql = SqlBuilder::new(&format!(
            "SELECT r.unit_id, CAST(COUNT(*) AS BIGINT) FROM {} WHERE ",
            from_clause(schema)
        ));
        sql.push_record_filter(filter, false, self.backend());
        sql.push(" GROUP BY r.unit_id ORDER BY r.unit_id");
        sql.query()
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((UnitId(row.try_get(0)?), row.try_get(1)?)))
            .collect()
    }

    /// Up to `limit` ids of records matching `filter` and not `except`, in id order (what-if's
    /// samples).
    pub async fn sample_records(
        &self,
        filter: &RecordFilter,
        except: &RecordFilter,
        limit: u32,
    ) -> Result<Vec<i64>> {
        let schema = schema(filter.object);
        let mut sql = SqlBuilder::new(&format!("SELECT r.id FROM {} WHERE (", from_clause(schema)));
        sql.push_record_filter(filter, false, self.backend());
        sql.push(") AND NOT (");
        sql.push_record_filter(except, false, self.backend());
        sql.push(") ORDER BY r.id LIMIT ")
            .bind_int(i64::from(limit));
        Ok(sql.scalar::<i64>().fetch_all(&self.pool).await?)
    }

    /// One page of the records matching `filter`, in id order, after the id `after`.
    ///
    /// For customers the plan is chosen from the visible count ([`Store::list_plan`], from the
    /// planner's statistics): when the caller sees many rows, walking the id order and testing
    /// each row finds a page in about `limit ÷ share` steps; when they see few, enumerating
    /// their ids through the owner and unit indexes and sorting them is cheaper. The
    /// break-even is where the visible count squared reaches about `2 × limit × total`.
    pub async fn list_records(
        &self,
        object: ObjectType,
        filter: &RecordFilter,
        after: Option<i64>,
        limit: u32,
    ) -> Result<ListPage> {
        self.list_records_matching(object, filter, &[], after, limit)
            .await
    }

    /// [`Store::list_records`] narrowed to records whose fields equal the values given, by
    /// schema position. The caller has checked that the fields may be matched on (field
    /// security; encrypted fields cannot be compared in SQL at all).
    pub async fn list_records_matching(
        &self,
        object: ObjectType,
        filter: &RecordFilter,
        matching: &[(usize, Value)],
        after: Option<i64>,
        limit: u32,
    ) -> Result<ListPage> {
        let plan = self.list_plan(filter, limit).await?;
        self.list_page(object, filter, matching, after, limit, plan)
            .await
    }

    /// [`Store::list_records`] with the plan given instead of chosen: tests check that every
    /// plan returns exactly the records `check` allows. A filter that matches nothing always
    /// gives an empty page.
    #[doc(hidden)]
    pub async fn list_records_with_plan(
        &self,
        object: ObjectType,
        filter: &RecordFilter,
        after: Option<i64>,
        limit: u32,
        plan: ListPlan,
    ) -> Result<ListPage> {
        self.list_page(object, filter, &[], after, limit, plan)
            .await
    }

    async fn list_page(
        &self,
        object: ObjectType,
        filter: &RecordFilter,
        matching: &[(usize, Value)],
        after: Option<i64>,
        limit: u32,
        plan: ListPlan,
    ) -> Result<ListPage> {
        let plan = if filter.filter.is_none() {
            ListPlan::Empty
        } else {
            plan
        };
        let walk_ids = match plan {
            ListPlan::Empty => {
                return Ok(ListPage {
                    items: Vec::new(),
                    next_cursor: None,
                })
            }
            ListPlan::WalkIds => true,
            ListPlan::Enumerate => false,
        };
        let schema = schema(object);
        let sql = page_sql(
            schema,
            &select_list(schema, self.backend()),
            filter,
            matching,
            walk_ids,
            after,
            limit,
            self.backend(),
        );
        let rows = sql.query().fetch_all(&self.pool).await?;
        let mut items = rows
            .iter()
            .map(|row| decode_record(&self.keys, row, schema))
            .collect::<Result<Vec<_>>>()?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|r| r.id)
        } else {
            None
        };
        Ok(ListPage { items, next_cursor })
    }

    /// The plan [`Store::list_records`] uses for a page of `limit` records under `filter`.
    pub async fn list_plan(&self, filter: &RecordFilter, limit: u32) -> Result<ListPlan> {
        if filter.filter.is_none() {
            return Ok(ListPlan::Empty);
        }
        Ok(match (&filter.filter, filter.via_customer) {
            (Filter::All, _) => ListPlan::WalkIds,
            (_, true) => ListPlan::Enumerate,
            // A sharing rule's condition has no index to enumerate from; shares and owner or
            // unit sets do (the estimate counts the latter, shares are few per user).
            (filter, false) if filter_has_rule_condition(filter) => ListPlan::WalkIds,
            (filter, false) => {
                // Estimates from the planner's statistics (see `stats.rs`): both plans return
                // the same rows, only their cost depends on the choice.
                let stats = self.planner_stats().await?;
                let visible = stats.estimate(filter);
                let total = stats.total();
                if visible.saturating_mul(visible) >= 2 * i64::from(limit) * total {
                    ListPlan::WalkIds
                } else {
                    ListPlan::Enumerate
                }
            }
        })
    }

    /// Every id of `object` matching `filter` (tests and exports; no paging).
    pub async fn matching_ids(
        &self,
        object: ObjectType,
        filter: &RecordFilter,
    ) -> Result<Vec<i64>> {
        let schema = schema(object);
        let mut sql = SqlBuilder::new(&format!("SELECT r.id FROM {} WHERE ", from_clause(schema)));
        sql.push_record_filter(filter, false, self.backend());
        sql.push(" ORDER BY r.id");
        Ok(sql.scalar::<i64>().fetch_all(&self.pool).await?)
    }

    /// The database's plan for the first customer page under `filter`, walking ids (`true`) or
    /// enumerating through the owner and unit indexes (`false`); exposed for plan tests and
    /// the benchmark. The query is the one [`Store::list_records`] runs.
    pub async fn explain_list_plan(&self, filter: &Filter, walk_ids: bool) -> Result<Vec<String>> {
        let schema = schema(ObjectType::Customers);
        let mut sql = page_sql(
            schema,
            &select_list(schema, self.backend()),
            &RecordFilter {
                object: ObjectType::Customers,
                via_customer: false,
                filter: filter.clone(),
                restrictions: Vec::new(),
                account: None,
            },
            &[],
            walk_ids,
            None,
            50,
            self.backend(),
        );
        sql.sql.insert_str(
            0,
            match self.backend() {
                Backend::Sqlite => "EXPLAIN QUERY PLAN ",
                Backend::Postgres => "EXPLAIN ",
            },
        );
        let rows = sql.query().fetch_all(&self.pool).await?;
        rows.iter()
            .map(|row| {
                let column = row.len().saturating_sub(1);
                Ok(row.try_get::<String, _>(column)?)
            })
            .collect()
    }
}

fn filter_has_rule_condition(filter: &Filter) -> bool {
    matches!(filter, Filter::Any(conditions)
        if conditions.iter().any(|c| matches!(c, warden_policy::Condition::Matches(_))))
}

async fn adjust_customer_count(tx: &mut Tx, owner: UserId, unit: UnitId, delta: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO customer_counts (owner_id, unit_id, n) VALUES ($1, $2, $3) \
         ON CONFLICT (owner_id, unit_id) DO UPDATE SET n = customer_counts.n + excluded.n",
    )
    .bind(owner.0)
    .bind(unit.0)
    .bind(delta)
    .execute(&mut *tx.tx)
    .await?;
    Ok(())
}

impl Tx {
    /// `n` new ids for `object`'s table, in increasing order.
    async fn allocate_ids(&mut self, object: &'static ObjectSchema, n: usize) -> Result<Vec<i64>> {
        self.allocate_ids_in(object.table, n).await
    }

    /// One new id for `table` ([`Tx::allocate_ids_in`]).
    pub(crate) async fn allocate_id_in(&mut self, table: &'static str) -> Result<i64> {
        let ids = self.allocate_ids_in(table, 1).await?;
        ids.first().copied().ok_or(StoreError::Corrupt {
            table,
            column: "id",
            message: "no id was allocated".into(),
        })
    }

    /// `n` new ids for `table` (a name from the code, never from input), in increasing order;
    /// never an id the table has given before, even to a row since deleted.
    pub(crate) async fn allocate_ids_in(
        &mut self,
        table: &'static str,
        n: usize,
    ) -> Result<Vec<i64>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let count = i64::try_from(n).map_err(|_| StoreError::Corrupt {
            table,
            column: "id",
            message: "too many records at once".into(),
        })?;
        match self.backend() {
            Backend::Sqlite => {
                // The mark, or the largest id present if higher (rows written before the mark
                // existed, or by a restore): MAX(id) on the rowid is one b-tree descent.
                let last: i64 = sqlx::query_scalar(&format!(
                    "INSERT INTO id_high_water (tbl, last_id) \
                     VALUES ($1, (SELECT COALESCE(MAX(id), 0) FROM {table}) + $2) \
                     ON CONFLICT (tbl) DO UPDATE SET last_id = \
                     MAX(id_high_water.last_id, (SELECT COALESCE(MAX(id), 0) FROM {table})) + $2 \
                     RETURNING CAST(last_id AS BIGINT)"
                ))
                .bind(table)
                .bind(count)
                .fetch_one(&mut *self.tx)
                .await?;
                let first = last.checked_sub(count - 1).filter(|first| *first > 0);
                match first {
                    Some(first) => Ok((first..=last).collect()),
                    None => Err(StoreError::Corrupt {
                        table,
                        column: "id",
                        message: "no id is left".into(),
                    }),
                }
            }
            Backend::Postgres => {
                let mut ids: Vec<i64> = sqlx::query_scalar(&format!(
                    "SELECT nextval(pg_get_serial_sequence('{table}', 'id')) \
                     FROM generate_series(1, CAST($1 AS BIGINT))"
                ))
                .bind(count)
                .fetch_all(&mut *self.tx)
                .await?;
                ids.sort_unstable();
                Ok(ids)
            }
        }
    }

    /// Reads one record inside the transaction.
    pub async fn get_record(&mut self, object: ObjectType, id: i64) -> Result<Option<Record>> {
        let schema = schema(object);
        let mut sql = SqlBuilder::new(&format!(
            "SELECT {} FROM {} WHERE r.id = ",
            select_list(schema, self.backend()),
            from_clause(schema)
        ));
        sql.bind_int(id);
        let row = sql.query().fetch_optional(&mut *self.tx).await?;
        row.map(|row| decode_record(&self.keys, &row, schema))
            .transpose()
    }

    /// Inserts one record and returns it as stored.
    pub async fn insert_record(
        &mut self,
        object: ObjectType,
        record: &NewRecord,
        now: Timestamp,
    ) -> Result<Record> {
        let id = self
            .insert_records(object, std::slice::from_ref(record), now)
            .await?;
        let id = id.first().copied().ok_or(StoreError::NotFound)?;
        self.get_record(object, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Inserts records in multi-row statements; returns their ids in order.
    ///
    /// The ids are allocated before the rows are written, because a sensitive value is
    /// encrypted with its row id as associated data. On SQLite they follow the largest id
    /// present (what SQLite itself would assign; the store's write lock makes this transaction
    /// the only writer, and another process writing the file would make the insert fail, not
    /// go wrong); on PostgreSQL they are drawn from the table's sequence. Giving ids instead
    /// of reading them back with `RETURNING` also spares sqlx's SQLite driver handing every
    /// returned row across threads, one wake-up each, which was half the time of seeding a
    /// million customers. The customer counts are upserted in multi-row statements too, in
    /// key order.
    pub async fn insert_records(
        &mut self,
        object: ObjectType,
        records: &[NewRecord],
        now: Timestamp,
    ) -> Result<Vec<i64>> {
        let schema = schema(object);
        let backend = self.backend();
        let mut columns = String::from("id, owner_id, unit_id, version, created_at, updated_at");
        if schema.has_customer {
            columns.push_str(", customer_id");
        }
        for field in schema.fields {
            columns.push_str(", ");
            columns.push_str(field.name);
        }
        let per_row = 6 + usize::from(schema.has_customer) + schema.fields.len();
        // Stay well under SQLite's and PostgreSQL's limits on parameters per statement.
        let rows_per_statement = (30_000 / per_row).max(1);
        let ids = self.allocate_ids(schema, records.len()).await?;
        let mut counts: std::collections::BTreeMap<(UserId, UnitId), i64> =
            std::collections::BTreeMap::new();
        for (chunk, chunk_ids) in records
            .chunks(rows_per_statement)
            .zip(ids.chunks(rows_per_statement))
        {
            let mut sql = SqlBuilder::positional(
                &format!("INSERT INTO {} ({columns}) VALUES ", schema.table),
                backend,
            );
            for (i, (record, id)) in chunk.iter().zip(chunk_ids).enumerate() {
                if record.values.len() != schema.fields.len() {
                    return Err(StoreError::Corrupt {
                        table: schema.table,
                        column: "*",
                        message: format!(
                            "{} values for {} fields",
                            record.values.len(),
                            schema.fields.len()
                        ),
                    });
                }
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind_int(*id).push(", ");
                sql.bind_int(record.owner.0).push(", ");
                sql.bind_int(record.unit.0).push(", 1, ");
                sql.bind_int(now).push(", ");
                sql.bind_int(now);
                if schema.has_customer {
                    sql.push(", ").bind(Param::Int(record.customer_id));
                }
                for (field, value) in schema.fields.iter().zip(&record.values) {
                    sql.push(", ")
                        .bind(to_param(&self.keys, schema, *id, field, value)?);
                }
                sql.push(")");
                if object == ObjectType::Customers {
                    *counts.entry((record.owner, record.unit)).or_default() += 1;
                }
            }
            sql.query().execute(&mut *self.tx).await?;
        }
        let counts: Vec<((UserId, UnitId), i64)> = counts.into_iter().collect();
        for chunk in counts.chunks(1_000) {
            let mut sql = SqlBuilder::positional(
                "INSERT INTO customer_counts (owner_id, unit_id, n) VALUES ",
                backend,
            );
            for (i, ((owner, unit), n)) in chunk.iter().enumerate() {
                sql.push(if i == 0 { "(" } else { ", (" });
                sql.bind_int(owner.0).push(", ");
                sql.bind_int(unit.0).push(", ");
                sql.bind_int(*n).push(")");
            }
            sql.push(
                " ON CONFLICT (owner_id, unit_id) DO UPDATE SET n = customer_counts.n + excluded.n",
            );
            sql.query().execute(&mut *self.tx).await?;
        }
        Ok(ids)
    }

    /// Applies changes if the record is still at `expected_version`; returns the new record.
    /// [`StoreError::NotFound`] when it is gone, [`StoreError::Conflict`] when it changed.
    pub async fn update_record(
        &mut self,
        object: ObjectType,
        id: i64,
        expected_version: i64,
        changes: &RecordChanges,
        now: Timestamp,
    ) -> Result<Record> {
        let schema = schema(object);
        let before = self
            .get_record(object, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if before.version != expected_version {
            return Err(StoreError::Conflict);
        }
        let mut sql = SqlBuilder::new(&format!(
            "UPDATE {} SET version = version + 1, updated_at = ",
            schema.table
        ));
        sql.bind_int(now);
        if let Some(owner) = changes.owner {
            sql.push(", owner_id = ").bind_int(owner.0);
        }
        if let Some(unit) = changes.unit {
            sql.push(", unit_id = ").bind_int(unit.0);
        }
        for (index, value) in &changes.values {
            let field = schema.fields.get(*index).ok_or(StoreError::NotFound)?;
            sql.push(", ")
                .push(field.name)
                .push(" = ")
                .bind(to_param(&self.keys, schema, id, field, value)?);
        }
        sql.push(" WHERE id = ").bind_int(id);
        sql.push(" AND version = ").bind_int(expected_version);
        let updated = sql.query().execute(&mut *self.tx).await?.rows_affected();
        if updated == 0 {
            return Err(StoreError::Conflict);
        }
        if object == ObjectType::Customers && (changes.owner.is_some() || changes.unit.is_some()) {
            let owner = changes.owner.unwrap_or(before.owner);
            let unit = changes.unit.unwrap_or(before.unit);
            adjust_customer_count(self, before.owner, before.unit, -1).await?;
            adjust_customer_count(self, owner, unit, 1).await?;
        }
        self.get_record(object, id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    /// Deletes a record if it is still at `expected_version` (any version when `None`).
    pub async fn delete_record(
        &mut self,
        object: ObjectType,
        id: i64,
        expected_version: Option<i64>,
    ) -> Result<Record> {
        let before = self
            .get_record(object, id)
            .await?
            .ok_or(StoreError::NotFound)?;
        if expected_version.is_some_and(|v| v != before.version) {
            return Err(StoreError::Conflict);
        }
        if object == ObjectType::Customers {
            // The customer's records go with it (ON DELETE CASCADE), and their shares with them.
            for child in ObjectType::ALL.iter().filter(|o| schema(**o).has_customer) {
                sqlx::query(&format!(
                    "DELETE FROM record_shares WHERE object = $1 AND record_id IN \
                     (SELECT id FROM {} WHERE customer_id = $2)",
                    schema(*child).table
                ))
                .bind(child.as_str())
                .bind(id)
                .execute(&mut *self.tx)
                .await?;
            }
        }
        let mut sql = SqlBuilder::new(&format!("DELETE FROM {} WHERE id = ", schema(object).table));
        sql.bind_int(id)
            .push(" AND version = ")
            .bind_int(before.version);
        if sql.query().execute(&mut *self.tx).await?.rows_affected() == 0 {
            return Err(StoreError::Conflict);
        }
        // Shares have no foreign key (they point into five tables): they go with their record,
        // and a customer's go with the records deleted with it.
        if object == ObjectType::Customers {
            adjust_customer_count(self, before.owner, before.unit, -1).await?;
        }
        sqlx::query("DELETE FROM record_shares WHERE object = $1 AND record_id = $2")
            .bind(object.as_str())
            .bind(id)
            .execute(&mut *self.tx)
            .await?;
        Ok(before)
    }
}
