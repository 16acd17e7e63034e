//! Reading a whole table at once, as one JSON value built by the database.
//!
//! sqlx's SQLite driver runs each connection on a thread of its own and hands every result
//! row to the async side through a channel: about one thread wake-up per row. Loading the
//! organisation (10,000 users and as many role assignments) that way took 25–35 ms, most of
//! it in futex calls, and every permission change reloads it. Aggregated into one JSON array
//! by the database (`json_group_array` on SQLite, `json_agg` on PostgreSQL), the same rows
//! cross once and parse in about a millisecond.

use serde_json::Value;
use sqlx::AnyConnection;

use crate::{Backend, Result, StoreError};

/// One row of a [`fetch_table`] result, with typed, checked access to its columns.
pub(crate) struct JsonRow<'a> {
    table: &'static str,
    columns: &'a [&'static str],
    values: &'a [Value],
}

impl JsonRow<'_> {
    fn corrupt(&self, index: usize, message: &str) -> StoreError {
        StoreError::Corrupt {
            table: self.table,
            column: self.columns.get(index).copied().unwrap_or("?"),
            message: message.to_owned(),
        }
    }

    /// A column that may be NULL, holding a whole number.
    pub(crate) fn opt_int(&self, index: usize) -> Result<Option<i64>> {
        match self.values.get(index) {
            Some(Value::Null) => Ok(None),
            Some(value) => value
                .as_i64()
                .map(Some)
                .ok_or_else(|| self.corrupt(index, "not a whole number")),
            None => Err(self.corrupt(index, "missing")),
        }
    }

    /// A whole number.
    pub(crate) fn int(&self, index: usize) -> Result<i64> {
        self.opt_int(index)?
            .ok_or_else(|| self.corrupt(index, "NULL where a number is required"))
    }

    /// A text.
    pub(crate) fn text(&self, index: usize) -> Result<String> {
        match self.values.get(index) {
            Some(Value::String(text)) => Ok(text.clone()),
            _ => Err(self.corrupt(index, "not a text")),
        }
    }
}

/// Every row of `SELECT columns FROM table ORDER BY order_by`, read as one JSON array of
/// arrays and returned in that order. `table`, `columns` and `order_by` are static SQL.
pub(crate) async fn fetch_table(
    conn: &mut AnyConnection,
    backend: Backend,
    table: &'static str,
    columns: &'static [&'static str],
    order_by: &str,
) -> Result<Vec<Vec<Value>>> {
    let list = columns.join(", ");
    let sql = match backend {
        // Ordered aggregates: SQLite 3.44 and later (the bundled one is 3.46).
        Backend::Sqlite => format!(
            "SELECT COALESCE(json_group_array(json_array({list}) ORDER BY {order_by}), '[]') \
             FROM {table}"
        ),
        Backend::Postgres => format!(
            "SELECT COALESCE(json_agg(json_build_array({list}) ORDER BY {order_by}), '[]'::json)::text \
             FROM {table}"
        ),
    };
    let text: String = sqlx::query_scalar(&sql).fetch_one(&mut *conn).await?;
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt {
        table,
        column: "*",
        message: format!("the rows do not read back as JSON: {e}"),
    })
}

/// Applies `decode` to each row of a [`fetch_table`] result.
pub(crate) fn decode_rows<T>(
    rows: &[Vec<Value>],
    table: &'static str,
    columns: &'static [&'static str],
    mut decode: impl FnMut(&JsonRow<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    rows.iter()
        .map(|values| {
            decode(&JsonRow {
                table,
                columns,
                values,
            })
        })
        .collect()
}
