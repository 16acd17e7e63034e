//! The access-review API: `/reviews` campaigns, each reviewer's items and decisions, closing,
//! and the evidence of a campaign.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use warden_service::{CampaignInput, CampaignView, ReviewScope, Subject};

use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::{timestamp, JsonBody};
use crate::AppState;

/// Whose role assignments to review: `{"all": true}`, `{"unit": NAME}` or `{"role": NAME}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeJson {
    #[serde(default)]
    pub all: Option<bool>,
    #[serde(default)]
    pub unit: Option<String>,
    #[serde(default)]
    pub role: Option<String>,
}

/// A campaign to open.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    pub scope: ScopeJson,
    /// The due date, `YYYY-MM-DD` (UTC; due at the end of that day).
    pub due: String,
    /// `keep` or `revoke`: what happens to items still undecided at close.
    pub undecided: String,
}

/// A reviewer's decision.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// `keep` or `revoke`.
    pub decision: String,
    #[serde(default)]
    pub comment: String,
}

fn campaign_json(subject: &Subject, view: &CampaignView) -> Value {
    let snapshot = &subject.snapshot;
    let name = |id| {
        snapshot
            .user(id)
            .map(|u| u.username().to_owned())
            .unwrap_or_default()
    };
    let c = &view.campaign;
    json!({
        "id": c.id,
        "name": c.name,
        "scope": serde_json::from_str::<Value>(&c.scope).unwrap_or(Value::Null),
        "due": timestamp(c.due_at),
        "undecided": c.undecided,
        "state": c.state,
        "created_by": name(c.created_by),
        "created_at": timestamp(c.created_at),
        "closed_at": c.closed_at.map(timestamp),
        "items": view.items.iter().map(|i| json!({
            "id": i.id,
            "user": name(i.user),
            "role": snapshot.role_name(i.role),
            "kind": "role",
            "reviewer": name(i.reviewer),
            "decision": i.decision,
            "comment": i.comment,
            "decided_at": i.decided_at.map(timestamp),
            "outcome": i.outcome,
        })).collect::<Vec<_>>(),
    })
}

/// Open an access-review campaign (needs manage_users).
#[utoipa::path(post, path = "/api/v1/reviews", tag = "reviews", security(("bearer" = [])), request_body = NewCampaign,
    responses((status = 201, description = "the campaign with its items"), (status = 403), (status = 422)))]
async fn open(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<NewCampaign>,
) -> ApiResult<Response> {
    let scope = match (body.scope.all, body.scope.unit, body.scope.role) {
        (Some(true), None, None) => ReviewScope::All,
        (None, Some(unit), None) => ReviewScope::Unit(unit),
        (None, None, Some(role)) => ReviewScope::Role(role),
        _ => {
            return Err(AppError::invalid(
                "scope",
                "must be {\"all\": true}, {\"unit\": NAME} or {\"role\": NAME}",
            ))
        }
    };
    let due: jiff::civil::Date = body
        .due
        .parse()
        .map_err(|_| AppError::invalid("due", "must be a date, YYYY-MM-DD"))?;
    let due_at = due
        .tomorrow()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC))
        .map(|z| z.timestamp().as_millisecond() - 1)
        .map_err(|_| AppError::invalid("due", "is out of range"))?;
    let revoke_undecided = match body.undecided.as_str() {
        "keep" => false,
        "revoke" => true,
        _ => return Err(AppError::invalid("undecided", "must be keep or revoke")),
    };
    let view = state
        .warden
        .open_campaign(
            &subject,
            CampaignInput {
                name: body.name,
                scope,
                due_at,
                revoke_undecided,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(campaign_json(&subject, &view))).into_response())
}

/// The items of a campaign the caller must decide.
#[utoipa::path(get, path = "/api/v1/reviews/{id}/items", tag = "reviews", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200), (status = 404)))]
async fn items(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let view = state.warden.my_review_items(&subject, id).await?;
    Ok(Json(campaign_json(&subject, &view)))
}

/// Keep or revoke one item (its reviewer only, while the campaign is open).
#[utoipa::path(post, path = "/api/v1/reviews/{id}/items/{item}", tag = "reviews", security(("bearer" = [])),
    params(("id" = i64, Path), ("item" = i64, Path)), request_body = Decision,
    responses((status = 200), (status = 404, description = "not an item of the caller's, or the campaign is closed"), (status = 422)))]
async fn decide(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((id, item)): Path<(i64, i64)>,
    JsonBody(body): JsonBody<Decision>,
) -> ApiResult<Json<Value>> {
    let revoke = match body.decision.as_str() {
        "keep" => false,
        "revoke" => true,
        _ => return Err(AppError::invalid("decision", "must be keep or revoke")),
    };
    state
        .warden
        .decide_review_item(&subject, id, item, revoke, &body.comment)
        .await?;
    Ok(Json(json!({"id": item, "decision": body.decision})))
}

/// Close a campaign (needs manage_users): revocations apply at once, undecided items follow
/// the campaign's rule.
#[utoipa::path(post, path = "/api/v1/reviews/{id}/close", tag = "reviews", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200), (status = 403), (status = 404), (status = 409)))]
async fn close(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let view = state.warden.close_campaign(&subject, id).await?;
    Ok(Json(campaign_json(&subject, &view)))
}

/// A campaign with every item, decision and outcome: evidence for auditors (view_audit or
/// manage_users).
#[utoipa::path(get, path = "/api/v1/reviews/{id}/evidence", tag = "reviews", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200), (status = 403), (status = 404)))]
async fn evidence(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<i64>,
) -> ApiResult<Json<Value>> {
    let view = state.warden.campaign_evidence(&subject, id).await?;
    Ok(Json(campaign_json(&subject, &view)))
}

/// Query of the dormant-permissions report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct DormantQuery {
    /// Unused for this many days (default 90).
    pub days: Option<u32>,
}

/// Query of the separation-of-duty report.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SodQuery {
    /// Rules as `ROLE|ROLE` pairs separated by commas, e.g. `Finance|Sales Rep`; default:
    /// `Finance|Sales Rep`.
    pub rules: Option<String>,
}

/// Users whose roles carry functional permissions (view_audit or manage_users).
#[utoipa::path(get, path = "/api/v1/reports/privileged", tag = "reviews", security(("bearer" = [])),
    responses((status = 200, description = "`{\"items\": [{username, disabled, roles, permissions}]}`"), (status = 403)))]
async fn privileged(State(state): State<AppState>, Auth(subject): Auth) -> ApiResult<Json<Value>> {
    let accounts = state.warden.privileged_accounts(&subject).await?;
    Ok(Json(json!({
        "items": accounts.iter().map(|a| json!({
            "username": a.username,
            "disabled": a.disabled,
            "roles": a.roles,
            "permissions": a.permissions.iter().map(|p| p.as_str()).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })))
}

/// Role assignments unused for `days` days, from the access log (view_audit or manage_users).
#[utoipa::path(get, path = "/api/v1/reports/dormant", tag = "reviews", security(("bearer" = [])), params(DormantQuery),
    responses((status = 200, description = "`{\"days\", \"items\": [{username, role}]}`"), (status = 403)))]
async fn dormant(
    State(state): State<AppState>,
    Auth(subject): Auth,
    query: Result<Query<DormantQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) = query.map_err(|e| AppError::invalid("query", e.body_text()))?;
    let days = query.days.unwrap_or(90);
    let grants = state.warden.dormant_permissions(&subject, days).await?;
    Ok(Json(json!({
        "days": days,
        "items": grants.iter().map(|g| json!({"username": g.username, "role": g.role})).collect::<Vec<_>>(),
    })))
}

/// Users holding both roles of a separation-of-duty rule (view_audit or manage_users).
#[utoipa::path(get, path = "/api/v1/reports/sod", tag = "reviews", security(("bearer" = [])), params(SodQuery),
    responses((status = 200, description = "`{\"rules\", \"items\": [{username, roles}]}`"), (status = 403), (status = 422)))]
async fn sod(
    State(state): State<AppState>,
    Auth(subject): Auth,
    query: Result<Query<SodQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) = query.map_err(|e| AppError::invalid("query", e.body_text()))?;
    let mut rules = Vec::new();
    for rule in query
        .rules
        .as_deref()
        .unwrap_or("")
        .split(',')
        .filter(|r| !r.trim().is_empty())
    {
        let (a, b) = rule
            .split_once('|')
            .ok_or_else(|| AppError::invalid("rules", "each rule is ROLE|ROLE"))?;
        rules.push((a.trim().to_owned(), b.trim().to_owned()));
    }
    let conflicts = state.warden.sod_conflicts(&subject, &rules).await?;
    let applied: Vec<Value> = if rules.is_empty() {
        warden_service::DEFAULT_SOD_RULES
            .iter()
            .map(|(a, b)| json!([a, b]))
            .collect()
    } else {
        rules.iter().map(|(a, b)| json!([a, b])).collect()
    };
    Ok(Json(json!({
        "rules": applied,
        "items": conflicts.iter().map(|c| json!({"username": c.username, "roles": [c.roles.0, c.roles.1]})).collect::<Vec<_>>(),
    })))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/reviews", post(open))
        .route("/reviews/{id}/items", get(items))
        .route("/reviews/{id}/items/{item}", post(decide))
        .route("/reviews/{id}/close", post(close))
        .route("/reviews/{id}/evidence", get(evidence))
        .route("/reports/privileged", get(privileged))
        .route("/reports/dormant", get(dormant))
        .route("/reports/sod", get(sod))
}
