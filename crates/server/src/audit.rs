//! The access log API: `/audit` (needs `view_audit`).

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use warden_policy::ObjectType;

use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::timestamp;
use crate::AppState;

/// Query of `GET /audit`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// customers, contacts, deals, contracts or activities
    pub object: String,
    /// The record's id.
    pub id: i64,
}

/// The access log's entries about one record, oldest first.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "`{\"items\": [{id, at, actor, action, object, record_id, fields, client, detail}…]}`"),
              (status = 403, description = "needs view_audit")))]
pub(crate) async fn entries(
    State(state): State<AppState>,
    Auth(subject): Auth,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) = query.map_err(|e| AppError::invalid("query", e.body_text()))?;
    let object =
        ObjectType::parse(&query.object).map_err(|e| AppError::invalid("object", e.to_string()))?;
    let entries = state
        .warden
        .access_entries_for(&subject, object, query.id)
        .await?;
    Ok(Json(json!({
        "items": entries.iter().map(|e| json!({
            "id": e.id,
            "at": timestamp(e.at),
            "actor": e.actor,
            "action": e.action,
            "object": e.object.map(|o| o.as_str()),
            "record_id": e.record_id,
            "fields": e.fields,
            "client": e.client,
            "detail": e.detail,
        })).collect::<Vec<_>>(),
    })))
}

pub fn router() -> Router<AppState> {
    Router::new().route("/audit", get(entries))
}
