//! Building SQL with numbered parameters, and turning the engine's filter into a `WHERE` term.

use sqlx::any::AnyArguments;
use sqlx::query::{Query, QueryScalar};
use sqlx::Any;
use warden_policy::{Condition, Filter};

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

    /// Appends the engine's filter as a boolean term over `alias.owner_id` and `alias.unit_id`.
    ///
    /// With `walk_ids`, the terms are written so that no index on owner or unit is used
    /// (`+column`): the planner then walks the id order and tests each row, which is the fast
    /// plan when the caller sees a large share of the rows.
    pub(crate) fn push_filter(
        &mut self,
        alias: &str,
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
            };
        }
        self.push(")")
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
