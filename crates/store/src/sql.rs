//! Building SQL with numbered parameters, and turning the engine's filter into a `WHERE` term.

use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryScalar};
use sqlx::Any;
use warden_policy::schema::{schema, FieldKind, Value};
use warden_policy::{
    CompareOp, Condition, Criteria, Filter, ObjectType, RecordFilter, ShareAccess, SharedWith,
};

use crate::records::plain_param;
use crate::Backend;

/// A bound value, typed for the column it goes to (PostgreSQL wants typed NULLs).
#[derive(Debug, Clone)]
pub(crate) enum Param {
    Int(Option<i64>),
    Text(Option<String>),
}

/// SQL text plus its parameters, numbered `$1, $2, …` as they are pushed.
#[derive(Debug, Default)]
pub(crate) struct SqlBuilder {
    pub(crate) sql: String,
    params: Vec<Param>,
    /// Write anonymous `?` placeholders instead of `$N` (SQLite only; see [`Self::positional`]).
    anonymous: bool,
}

/// Above this many ids, a set is bound as one JSON array instead of one parameter per id.
const INLINE_IDS: usize = 32;

impl SqlBuilder {
    pub(crate) fn new(sql: &str) -> Self {
        SqlBuilder {
            sql: sql.to_owned(),
            params: Vec::new(),
            anonymous: false,
        }
    }

    /// A builder for statements with thousands of parameters. On SQLite its placeholders are
    /// anonymous `?`, bound in order: sqlx looks up the name of every numbered parameter with
    /// `sqlite3_bind_parameter_name`, which walks a list, so binding `n` numbered parameters
    /// costs O(n²) (seeding a million customers with 30,000-parameter inserts spent three
    /// quarters of its time there).
    /// PostgreSQL keeps `$N`. Only for SQL whose placeholders are all pushed in order.
    pub(crate) fn positional(sql: &str, backend: Backend) -> Self {
        SqlBuilder {
            anonymous: backend == Backend::Sqlite,
            ..SqlBuilder::new(sql)
        }
    }

    pub(crate) fn push(&mut self, sql: &str) -> &mut Self {
        self.sql.push_str(sql);
        self
    }

    /// Appends a placeholder for `param`.
    pub(crate) fn bind(&mut self, param: Param) -> &mut Self {
        self.params.push(param);
        if self.anonymous {
            self.sql.push('?');
        } else {
            self.sql.push('$');
            self.sql.push_str(&self.params.len().to_string());
        }
        self
    }

    pub(crate) fn bind_int(&mut self, value: i64) -> &mut Self {
        self.bind(Param::Int(Some(value)))
    }

    /// Appends `column IN (…)` for a set of ids: inline for a few, a JSON array for many
    /// (one parameter whatever the size; both dialects expand it server-side).
    pub(crate) fn push_in(&mut self, column: &str, ids: &[i64], backend: Backend) -> &mut Self {
        self.push(column).push(" IN (");
        if ids.len() <= INLINE_IDS {
            for (i, id) in ids.iter().enumerate() {
                if i > 0 {
                    self.push(", ");
                }
                self.bind_int(*id);
            }
            // `IN ()` is not valid SQL; a set that cannot match anything stands in.
            if ids.is_empty() {
                self.push("NULL");
            }
        } else {
            let json = serde_json::to_string(ids).unwrap_or_else(|_| "[]".to_owned());
            match backend {
                Backend::Sqlite => {
                    self.push("SELECT value FROM json_each(");
                    self.bind(Param::Text(Some(json)));
                    self.push(")");
                }
                Backend::Postgres => {
                    self.push("SELECT value::bigint FROM json_array_elements_text(");
                    self.bind(Param::Text(Some(json)));
                    self.push("::json)");
                }
            }
        }
        self.push(")")
    }

    /// Appends the engine's filter as a boolean term over the deciding record `alias` (its
    /// `owner_id`, `unit_id`, `id` for shares, and its fields for sharing rules).
    ///
    /// With `walk_ids`, the terms are written so that no index on owner or unit is used
    /// (`+column`): the planner then walks the id order and tests each row, which is the fast
    /// plan when the caller sees a large share of the rows.
    pub(crate) fn push_filter(
        &mut self,
        alias: &str,
        object: ObjectType,
        filter: &Filter,
        walk_ids: bool,
        backend: Backend,
    ) -> &mut Self {
        let conditions = match filter {
            Filter::All => return self.push("1 = 1"),
            Filter::Any(conditions) => conditions,
        };
        if filter.is_none() {
            return self.push("1 = 0");
        }
        let hint = if walk_ids { "+" } else { "" };
        self.push("(");
        for (i, condition) in conditions.iter().enumerate() {
            if i > 0 {
                self.push(" OR ");
            }
            match condition {
                Condition::OwnerIn(ids) => {
                    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
                    self.push_in(&format!("{hint}{alias}.owner_id"), &ids, backend)
                }
                Condition::UnitIn(ids) => {
                    let ids: Vec<i64> = ids.iter().map(|id| id.0).collect();
                    self.push_in(&format!("{hint}{alias}.unit_id"), &ids, backend)
                }
                Condition::SharedWith(with) => self.push_shared_with(alias, with, backend),
                Condition::Matches(criteria) => {
                    self.push_criteria(alias, object, criteria, backend)
                }
            };
        }
        self.push(")")
    }

    /// Appends the whole of a record filter for rows `r` (joined to their customer `c`):
    /// what reaches the deciding record, every restriction, and a portal user's account.
    pub(crate) fn push_record_filter(
        &mut self,
        filter: &RecordFilter,
        walk_ids: bool,
        backend: Backend,
    ) -> &mut Self {
        let (alias, deciding) = if filter.via_customer {
            ("c", ObjectType::Customers)
        } else {
            ("r", filter.object)
        };
        self.push_filter(alias, deciding, &filter.filter, walk_ids, backend);
        for only in &filter.restrictions {
            self.push(" AND ");
            self.push_criteria(alias, deciding, only, backend);
        }
        if let Some(account) = filter.account {
            self.push(if filter.object == ObjectType::Customers {
                " AND r.id = "
            } else {
                " AND r.customer_id = "
            })
            .bind_int(account);
        }
        self
    }

    /// `alias.id IN (the records shared with the user, one of their units or roles)`.
    fn push_shared_with(&mut self, alias: &str, with: &SharedWith, backend: Backend) -> &mut Self {
        self.push(&format!("{alias}.id IN ("));
        self.push_shared_record_ids([with], backend).push(")")
    }

    /// The ids of the records shared with any of `withs`' principals (with enough access):
    /// one indexed search per kind of principal, `UNION ALL`ed, so that the share index's
    /// (object, kind, id) prefix drives each (an `OR` of kinds read every share of the object).
    pub(crate) fn push_shared_record_ids<'w>(
        &mut self,
        withs: impl IntoIterator<Item = &'w SharedWith>,
        backend: Backend,
    ) -> &mut Self {
        let mut first = true;
        for with in withs {
            let units: Vec<i64> = with.units.iter().map(|u| u.0).collect();
            let roles: Vec<i64> = with.roles.iter().map(|r| r.0).collect();
            let kinds: [(&str, &[i64]); 3] = [
                ("user", std::slice::from_ref(&with.user.0)),
                ("unit", &units),
                ("role", &roles),
            ];
            for (kind, ids) in kinds {
                if ids.is_empty() {
                    continue;
                }
                if !first {
                    self.push(" UNION ALL ");
                }
                first = false;
                self.push(&format!(
                    "SELECT s.record_id FROM record_shares s WHERE s.object = '{}' AND \
                     s.principal_kind = '{kind}' AND ",
                    with.object.as_str()
                ));
                self.push_in("s.principal_id", ids, backend);
                if with.access == ShareAccess::Edit {
                    self.push(" AND s.access = 'edit'");
                }
            }
        }
        if first {
            // No principal: a set that holds no record id.
            self.push("SELECT s.record_id FROM record_shares s WHERE 1 = 0");
        }
        self
    }

    /// The test on a `record_shares s` row: enough access, and one of the user's principals.
    pub(crate) fn push_shared_with_principals(
        &mut self,
        with: &SharedWith,
        backend: Backend,
    ) -> &mut Self {
        if with.access == ShareAccess::Edit {
            self.push("s.access = 'edit' AND ");
        }
        self.push("((s.principal_kind = 'user' AND s.principal_id = ")
            .bind_int(with.user.0)
            .push(")");
        if !with.units.is_empty() {
            let units: Vec<i64> = with.units.iter().map(|u| u.0).collect();
            self.push(" OR (s.principal_kind = 'unit' AND ")
                .push_in("s.principal_id", &units, backend)
                .push(")");
        }
        if !with.roles.is_empty() {
            let roles: Vec<i64> = with.roles.iter().map(|r| r.0).collect();
            self.push(" OR (s.principal_kind = 'role' AND ")
                .push_in("s.principal_id", &roles, backend)
                .push(")");
        }
        self.push(")")
    }

    /// A condition on the fields of `alias` (an `object` row), true or false, never NULL, so
    /// that `NOT` is plain negation as in [`warden_policy::Criteria::holds`]. Field names come
    /// from the schema, never from input.
    pub(crate) fn push_criteria(
        &mut self,
        alias: &str,
        object: ObjectType,
        criteria: &Criteria,
        backend: Backend,
    ) -> &mut Self {
        match criteria {
            Criteria::All(items) | Criteria::Any(items) => {
                let (join, empty) = if matches!(criteria, Criteria::All(_)) {
                    (" AND ", "1 = 1")
                } else {
                    (" OR ", "1 = 0")
                };
                if items.is_empty() {
                    return self.push(empty);
                }
                self.push("(");
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        self.push(join);
                    }
                    self.push_criteria(alias, object, item, backend);
                }
                self.push(")")
            }
            Criteria::Not(inner) => {
                self.push("NOT (");
                self.push_criteria(alias, object, inner, backend);
                self.push(")")
            }
            Criteria::Compare { field, op, value } => {
                let Some((_, def)) = schema(object).field(field).filter(|(_, d)| !d.sensitive)
                else {
                    // Rules never name such fields (the engine refuses them): fail closed.
                    return self.push("1 = 0");
                };
                let column = format!("{alias}.{}", def.name);
                let ordered_text = backend == Backend::Postgres
                    && !matches!(def.kind, FieldKind::Integer { .. } | FieldKind::Bool);
                match (op, value) {
                    (CompareOp::Eq, Value::Null) => self.push(&format!("{column} IS NULL")),
                    (CompareOp::Ne, Value::Null) => self.push(&format!("{column} IS NOT NULL")),
                    (_, Value::Null) => self.push("1 = 0"),
                    (CompareOp::Ne, value) => self
                        .push(&format!("({column} IS NULL OR {column} <> "))
                        .bind(plain_param(def, value))
                        .push(")"),
                    (op, value) => {
                        let sign = match op {
                            CompareOp::Eq | CompareOp::Ne => "=",
                            CompareOp::Gt => ">",
                            CompareOp::Ge => ">=",
                            CompareOp::Lt => "<",
                            CompareOp::Le => "<=",
                        };
                        // Text orders by code points, as the engine does; PostgreSQL's
                        // default collation would not.
                        let collate = if ordered_text && *op != CompareOp::Eq {
                            " COLLATE \"C\""
                        } else {
                            ""
                        };
                        self.push(&format!(
                            "({column} IS NOT NULL AND {column}{collate} {sign} "
                        ))
                        .bind(plain_param(def, value))
                        .push(")")
                    }
                }
            }
            Criteria::In { field, values } => {
                let Some((_, def)) = schema(object).field(field).filter(|(_, d)| !d.sensitive)
                else {
                    return self.push("1 = 0");
                };
                let column = format!("{alias}.{}", def.name);
                let present: Vec<&Value> = values.iter().filter(|v| **v != Value::Null).collect();
                self.push("(");
                if present.is_empty() {
                    self.push("1 = 0");
                } else {
                    self.push(&format!("({column} IS NOT NULL AND {column} IN ("));
                    for (i, value) in present.iter().enumerate() {
                        if i > 0 {
                            self.push(", ");
                        }
                        self.bind(plain_param(def, value));
                    }
                    self.push("))");
                }
                if values.contains(&Value::Null) {
                    self.push(&format!(" OR {column} IS NULL"));
                }
                self.push(")")
            }
            Criteria::Changed(_) | Criteria::Increased(_) | Criteria::Decreased(_) => {
                self.push("1 = 0")
            }
        }
    }

    /// The query with every parameter bound.
    pub(crate) fn query(&self) -> Query<'_, Any, AnyArguments<'_>> {
        let mut query = sqlx::query(&self.sql);
        for param in &self.params {
            query = match param {
                Param::Int(v) => query.bind(*v),
                Param::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }

    /// A scalar query with every parameter bound.
    pub(crate) fn scalar<O>(&self) -> QueryScalar<'_, Any, O, AnyArguments<'_>>
    where
        (O,): for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow>,
    {
        let mut query = sqlx::query_scalar(&self.sql);
        for param in &self.params {
            query = match param {
                Param::Int(v) => query.bind(*v),
                Param::Text(v) => query.bind(v.clone()),
            };
        }
        query
    }
}
