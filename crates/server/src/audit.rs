//! The access log API: `GET /audit` (needs `view_audit`), one page as JSON, or the whole
//! selection exported as CSV or JSON lines. Entries name records and fields, never values.

use axum::extract::{Query, State};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use warden_policy::ObjectType;
use warden_service::{AuditFilter, MAX_AUDIT_PAGE};
use warden_store::AccessEntry;

use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::{parse_timestamp, timestamp};
use crate::AppState;

/// Query of `GET /audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// The actor's username.
    pub actor: Option<String>,
    /// customers, contacts, deals, contracts or activities
    pub object: Option<String>,
    /// The record's id.
    pub record: Option<i64>,
    /// The record's id, the older form: with it and no `limit`, every entry about the
    /// record comes on one page.
    pub id: Option<i64>,
    /// `read`, `create`, `update`, `delete`, `reveal`, `login`, `logout`, `user.update`, …
    pub action: Option<String>,
    /// From this time (RFC 3339, inclusive).
    pub from: Option<String>,
    /// Until this time (RFC 3339, exclusive).
    pub to: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Entries per page (1 to 1000; default 100). Ignored by exports.
    pub limit: Option<u32>,
    /// `json` (default, one page), `csv` or `jsonl` (every matching entry).
    pub format: Option<String>,
}

fn entry_json(e: &AccessEntry) -> Value {
    json!({
        "id": e.id,
        "at": timestamp(e.at),
        "actor": e.actor,
        "actor_id": e.actor_id.map(|u| u.0),
        "action": e.action,
        "object": e.object.map(|o| o.as_str()),
        "record_id": e.record_id,
        "fields": e.fields,
        "client": e.client,
        "outcome": e.outcome,
        "detail": e.detail,
    })
}

/// A CSV cell: quoted when it holds a separator, a quote or a line break; a leading `=`, `+`,
/// `-` or `@` is prefixed with `'` so a spreadsheet does not run it as a formula.
fn csv_cell(text: &str) -> String {
    let text = if text.starts_with(['=', '+', '-', '@']) {
        format!("'{text}")
    } else {
        text.to_owned()
    };
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text
    }
}

fn entry_csv(e: &AccessEntry) -> String {
    let at = timestamp(e.at);
    let cells = [
        e.id.to_string(),
        at.as_str().unwrap_or_default().to_owned(),
        e.actor.clone(),
        e.action.clone(),
        e.object.map(|o| o.as_str().to_owned()).unwrap_or_default(),
        e.record_id.map(|r| r.to_string()).unwrap_or_default(),
        e.fields.join(" "),
        e.client.clone().unwrap_or_default(),
        e.outcome.clone(),
        e.detail.clone(),
    ];
    let mut line = cells
        .iter()
        .map(|c| csv_cell(c))
        .collect::<Vec<_>>()
        .join(",");
    line.push('\n');
    line
}

/// The access log: who did what to which record and which fields, when, from where, with what
/// outcome — a page as JSON, or every matching entry as CSV or JSON lines.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "`{\"items\": [{id, at, actor, actor_id, action, object, record_id, fields, client, outcome, detail}…], \"next_cursor\"}`; with `format=csv` or `format=jsonl`, every matching entry"),
              (status = 403, description = "needs view_audit"),
              (status = 422, description = "a bad parameter, named")))]
pub(crate) async fn entries(
    State(state): State<AppState>,
    Auth(subject): Auth,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| AppError::invalid("query", e.body_text()))?;
    let object = query
        .object
        .as_deref()
        .map(|o| ObjectType::parse(o).map_err(|e| AppError::invalid("object", e.to_string())))
        .transpose()?;
    let filter = AuditFilter {
        actor: query.actor.filter(|a| !a.is_empty()),
        object,
        record_id: query.record.or(query.id),
        action: query.action.filter(|a| !a.is_empty()),
        from: query
            .from
            .as_deref()
            .map(|t| parse_timestamp("from", t))
            .transpose()?,
        to: query
            .to
            .as_deref()
            .map(|t| parse_timestamp("to", t))
            .transpose()?,
        cursor: query.cursor,
        limit: query.limit,
    };
    let format = query.format.as_deref().unwrap_or("json");
    let whole = query.id.is_some() && query.record.is_none() && filter.limit.is_none();
    match format {
        "json" if whole => {
            let items = all_entries(&state, &subject, filter).await?;
            Ok(Json(json!({
                "items": items.iter().map(entry_json).collect::<Vec<_>>(),
                "next_cursor": null,
            }))
            .into_response())
        }
        "json" => {
            let page = state.warden.audit_entries(&subject, &filter).await?;
            Ok(Json(json!({
                "items": page.items.iter().map(entry_json).collect::<Vec<_>>(),
                "next_cursor": page.next_cursor,
            }))
            .into_response())
        }
        "csv" | "jsonl" => {
            let mut body = String::new();
            if format == "csv" {
                body.push_str("id,at,actor,action,object,record_id,fields,client,outcome,detail\n");
            }
            for e in &all_entries(&state, &subject, filter).await? {
                if format == "csv" {
                    body.push_str(&entry_csv(e));
                } else {
                    body.push_str(&entry_json(e).to_string());
                    body.push('\n');
                }
            }
            let content_type = if format == "csv" {
                "text/csv; charset=utf-8"
            } else {
                "application/x-ndjson"
            };
            Ok(([(CONTENT_TYPE, content_type)], body).into_response())
        }
        _ => Err(AppError::invalid("format", "must be json, csv or jsonl")),
    }
}

/// Every entry matching `filter` from its cursor on, a page at a time.
async fn all_entries(
    state: &AppState,
    subject: &warden_service::Subject,
    mut filter: AuditFilter,
) -> ApiResult<Vec<AccessEntry>> {
    filter.limit = Some(MAX_AUDIT_PAGE);
    let mut out = Vec::new();
    loop {
        let page = state.warden.audit_entries(subject, &filter).await?;
        out.extend(page.items);
        match page.next_cursor {
            Some(next) => filter.cursor = Some(next),
            None => return Ok(out),
        }
    }
}

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_cells_are_quoted_and_never_formulas() {
        assert_eq!(csv_cell("rep1"), "rep1");
        assert_eq!(csv_cell("a,b"), "\"a,b\"");
        assert_eq!(csv_cell("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_cell("=1+1"), "'=1+1");
        assert_eq!(csv_cell("@x,y"), "\"'@x,y\"");
    }
}
