//! The access log viewer (needs `view_audit`): filters by actor, object, record, action and
//! dates, cursor pagination, and the API's CSV export of the same selection.

use std::collections::HashMap;

use askama::Template;
use axum::extract::{Query, State};
use warden_policy::ObjectType;
use warden_service::AuditFilter;

use super::{render, when, Console, Nav, PageResult};
use crate::error::AppError;
use crate::json::parse_timestamp;
use crate::AppState;

/// Entries per page.
const PAGE_SIZE: u32 = 100;

/// The filters the form offers, in the API's names.
const FILTERS: &[&str] = &["actor", "object", "record", "action", "from", "to"];

struct Line {
    id: i64,
    at: String,
    actor: String,
    action: String,
    record: String,
    fields: String,
    client: String,
    outcome: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct LogPage {
    nav: Nav,
    actor: String,
    object: String,
    record: String,
    action: String,
    from: String,
    to: String,
    objects: Vec<&'static str>,
    lines: Vec<Line>,
    /// The link to the next page (same filters), when there is one.
    next: Option<String>,
    /// The same selection as CSV, from the API.
    export: String,
}

/// Percent-encoding for a query string value.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// A date of the form (`YYYY-MM-DD`, the start of that day in UTC) or a full RFC 3339 time.
fn time_param(text: &str) -> String {
    if text.len() == 10 {
        format!("{text}T00:00:00Z")
    } else {
        text.to_owned()
    }
}

/// `GET /audit?actor=&object=&record=&action=&from=&to=&cursor=`.
pub(super) async fn log(
    State(state): State<AppState>,
    console: Console,
    Query(params): Query<HashMap<String, String>>,
) -> PageResult {
    let get = |name: &str| {
        params
            .get(name)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    let object = get("object");
    let record = get("record");
    let (from, to) = (get("from"), get("to"));
    let filter = AuditFilter {
        actor: Some(get("actor")).filter(|a| !a.is_empty()),
        object: (!object.is_empty())
            .then(|| {
                ObjectType::parse(&object).map_err(|e| AppError::invalid("object", e.to_string()))
            })
            .transpose()?,
        record_id: (!record.is_empty())
            .then(|| {
                record
                    .parse::<i64>()
                    .map_err(|_| AppError::invalid("record", "must be a record's number"))
            })
            .transpose()?,
        action: Some(get("action")).filter(|a| !a.is_empty()),
        from: (!from.is_empty())
            .then(|| parse_timestamp("from", &time_param(&from)))
            .transpose()?,
        to: (!to.is_empty())
            .then(|| parse_timestamp("to", &time_param(&to)))
            .transpose()?,
        cursor: Some(get("cursor")).filter(|c| !c.is_empty()),
        limit: Some(PAGE_SIZE),
    };
    let page = state
        .warden
        .audit_entries(&console.subject, &filter)
        .await?;
    let query: String = FILTERS
        .iter()
        .filter_map(|name| {
            let value = get(name);
            let value = if matches!(*name, "from" | "to") && !value.is_empty() {
                time_param(&value)
            } else {
                value
            };
            (!value.is_empty()).then(|| format!("&{name}={}", encode(&value)))
        })
        .collect();
    let form_query: String = FILTERS
        .iter()
        .filter_map(|name| {
            let value = get(name);
            (!value.is_empty()).then(|| format!("&{name}={}", encode(&value)))
        })
        .collect();
    render(&LogPage {
        nav: console.nav("audit"),
        objects: ObjectType::ALL.iter().map(|o| o.as_str()).collect(),
        lines: page
            .items
            .iter()
            .map(|e| Line {
                id: e.id,
                at: when(e.at),
                actor: e.actor.clone(),
                action: e.action.clone(),
                record: match (e.object, e.record_id) {
                    (Some(object), Some(id)) => format!("{object} #{id}"),
                    (Some(object), None) => object.to_string(),
                    _ => String::new(),
                },
                fields: e.fields.join(", "),
                client: e.client.clone().unwrap_or_default(),
                outcome: e.outcome.clone(),
                detail: e.detail.clone(),
            })
            .collect(),
        next: page
            .next_cursor
            .map(|cursor| format!("/audit?cursor={}{form_query}", encode(&cursor))),
        export: format!("/api/v1/audit?format=csv{query}"),
        actor: get("actor"),
        object,
        record,
        action: get("action"),
        from,
        to,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("rep1"), "rep1");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode("2026-01-01T00:00:00Z"), "2026-01-01T00%3A00%3A00Z");
    }
}
