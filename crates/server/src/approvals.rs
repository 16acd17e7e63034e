//! The approvals API: requests (`/approvals`), their decisions, approval policies
//! (`/approval-policies`) and the four-eyes setting; and how a held change is answered
//! everywhere (202 with the request).

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use utoipa::ToSchema;
use warden_policy::{Action, ObjectType};
use warden_service::store::{criteria_from_json, criteria_to_json};
use warden_service::{
    ApprovalPolicyInput, ApprovalPolicyView, ApprovalRole, ApprovalView, ApproversInput, Outcome,
    RequestersInput,
};

use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::{timestamp, value_json, JsonBody, OptionalJsonBody};
use crate::AppState;

/// A request as JSON: identifiers, state, steps with their approvers, the proposed values the
/// viewer may see, and (single reads) the history.
pub(crate) fn approval_json(view: &ApprovalView) -> Json_ {
    json!({
        "id": view.id,
        "kind": view.kind,
        "operation": view.operation,
        "object": view.object.map(|o| o.as_str()),
        "record_id": view.record_id,
        "record_version": view.record_version,
        "requester": view.requester,
        "summary": view.summary,
        "state": view.state,
        "reason": view.reason,
        "approvers": view.steps.iter().flat_map(|s| s.approvers.iter().cloned()).collect::<Vec<_>>(),
        "steps": view.steps.iter().map(|s| json!({
            "policy": s.policy,
            "approvers": s.approvers,
            "required": s.required,
            "approved_by": s.approved_by,
            "escalations": s.escalations,
        })).collect::<Vec<_>>(),
        "changes": view.fields.iter().map(|f| match &f.value {
            Some(value) => json!({"field": f.field, "value": value_json(value), "access": f.access.as_str()}),
            None => json!({"field": f.field, "access": f.access.as_str()}),
        }).collect::<Vec<_>>(),
        "owner": view.owner,
        "organisation_change": view.organisation_change.as_deref().and_then(|c| serde_json::from_str::<Json_>(c).ok()),
        "can_decide": view.can_decide,
        "created_at": timestamp(view.created_at),
        "updated_at": timestamp(view.updated_at),
        "expires_at": view.expires_at.map(timestamp),
        "events": view.events.iter().map(|e| json!({
            "at": timestamp(e.at), "actor": e.actor, "event": e.event, "comment": e.comment,
        })).collect::<Vec<_>>(),
    })
}

/// A change held for approval: 202 with the request.
pub(crate) fn pending(view: &ApprovalView) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"approval": approval_json(view)})),
    )
        .into_response()
}

/// Answers an outcome: the applied result with `status`, or 202 with the request.
pub(crate) fn outcome<T>(
    outcome: Outcome<T>,
    status: StatusCode,
    render: impl FnOnce(T) -> Response,
) -> Response {
    match outcome {
        Outcome::Done(value) => {
            let mut response = render(value);
            if response.status() == StatusCode::OK {
                *response.status_mut() = status;
            }
            response
        }
        Outcome::Pending(view) => pending(&view),
    }
}

/// Query of `GET /approvals`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ApprovalsQuery {
    /// pending, applied, rejected, conflict, expired or withdrawn
    pub state: Option<String>,
    /// `inbox` (yours to decide now), `mine` (you asked), `all` (overseers), or absent: both
    /// inbox and mine, decided or not.
    pub role: Option<String>,
    pub cursor: Option<i64>,
    pub limit: Option<u32>,
}

/// The requests you made or may decide: `?state=pending` is your inbox and your open requests.
#[utoipa::path(get, path = "/api/v1/approvals", tag = "approvals", security(("bearer" = [])), params(ApprovalsQuery),
    responses((status = 200, description = "`{\"items\": [approval…], \"next_cursor\"}`"), (status = 403, description = "`role=all` needs manage_roles or view_audit"), (status = 422)))]
async fn list(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Query(query): Query<ApprovalsQuery>,
) -> ApiResult<Json<Json_>> {
    let role = match query.role.as_deref() {
        None | Some("") => ApprovalRole::Involved,
        Some("inbox") => ApprovalRole::Inbox,
        Some("mine") => ApprovalRole::Mine,
        Some("all") => ApprovalRole::All,
        Some(_) => return Err(AppError::invalid("role", "must be inbox, mine or all")),
    };
    let (items, next) = state
        .warden
        .list_approvals(
            &subject,
            query.state.as_deref(),
            role,
            query.cursor,
            query.limit.unwrap_or(50),
        )
        .await?;
    Ok(Json(json!({
        "items": items.iter().map(approval_json).collect::<Vec<_>>(),
        "next_cursor": next,
    })))
}

fn request_id(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(AppError::not_found)
}

/// One request with its history.
#[utoipa::path(get, path = "/api/v1/approvals/{id}", tag = "approvals", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200), (status = 404, description = "missing, or neither yours nor yours to decide")))]
async fn get_one(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Json_>> {
    let view = state
        .warden
        .get_approval(&subject, request_id(&id)?)
        .await?;
    Ok(Json(approval_json(&view)))
}

/// A decision's comment.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    #[serde(default)]
    pub comment: String,
}

async fn decide(
    state: AppState,
    subject: warden_service::Subject,
    id: &str,
    approve: bool,
    body: DecisionBody,
) -> ApiResult<Json<Json_>> {
    let comment = body.comment;
    let view = state
        .warden
        .decide_approval(&subject, request_id(id)?, approve, &comment)
        .await?;
    Ok(Json(approval_json(&view)))
}

/// Approve: the last approval needed applies the change (`state` becomes `applied`, or
/// `conflict` when the record changed since the request, with nothing applied).
#[utoipa::path(post, path = "/api/v1/approvals/{id}/approve", tag = "approvals", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = DecisionBody,
    responses((status = 200, description = "the request after the decision"), (status = 403, description = "your own request, or you are not an approver"),
              (status = 404), (status = 409, description = "already decided")))]
async fn approve(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<DecisionBody>,
) -> ApiResult<Json<Json_>> {
    decide(state, subject, &id, true, body).await
}

/// Reject: the request ends `rejected`; nothing is applied.
#[utoipa::path(post, path = "/api/v1/approvals/{id}/reject", tag = "approvals", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = DecisionBody,
    responses((status = 200), (status = 403), (status = 404), (status = 409)))]
async fn reject(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<DecisionBody>,
) -> ApiResult<Json<Json_>> {
    decide(state, subject, &id, false, body).await
}

/// Withdraw your own pending request.
#[utoipa::path(post, path = "/api/v1/approvals/{id}/withdraw", tag = "approvals", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = DecisionBody,
    responses((status = 200), (status = 403, description = "not your request"), (status = 404), (status = 409)))]
async fn withdraw(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
    OptionalJsonBody(body): OptionalJsonBody<DecisionBody>,
) -> ApiResult<Json<Json_>> {
    let comment = body.comment;
    let view = state
        .warden
        .withdraw_approval(&subject, request_id(&id)?, &comment)
        .await?;
    Ok(Json(approval_json(&view)))
}

/// An approval policy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyBody {
    pub name: String,
    /// customers, contacts, deals, contracts or activities
    pub object: String,
    /// create, update and/or delete
    pub operations: Vec<String>,
    /// Only when one of these fields changes (creates and updates); empty: any change.
    #[serde(default)]
    pub fields: Vec<String>,
    /// A condition on the record as it will be (see the README's condition form).
    #[schema(value_type = Option<Object>)]
    pub when: Option<Json_>,
    /// `"anyone"` (default), `{"role": NAME}` or `{"unit": NAME}` (and the units below it).
    #[schema(value_type = Option<Object>)]
    pub requesters: Option<Json_>,
    /// `{"superior": LEVELS}`, `{"role": NAME}` or `{"users": [USERNAME…]}`.
    #[schema(value_type = Object)]
    pub approvers: Json_,
    /// How many distinct people must approve (default 1).
    pub required: Option<u32>,
    pub expires_after_hours: Option<u32>,
    /// On expiry, a `superior` step moves one level up instead of expiring.
    #[serde(default)]
    pub escalate: bool,
    /// The version read (updates).
    pub version: Option<i64>,
}

pub(crate) fn policy_input(body: PolicyBody) -> ApiResult<(ApprovalPolicyInput, Option<i64>)> {
    let object =
        ObjectType::parse(&body.object).map_err(|e| AppError::invalid("object", e.to_string()))?;
    let operations = body
        .operations
        .iter()
        .map(|o| Action::parse(o).map_err(|e| AppError::invalid("operations", e.to_string())))
        .collect::<ApiResult<Vec<_>>>()?;
    let when = body
        .when
        .as_ref()
        .filter(|w| !w.is_null())
        .map(|w| criteria_from_json(w).map_err(|m| AppError::invalid("when", m)))
        .transpose()?;
    let text = |v: &Json_, field: &str| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| AppError::invalid(field.to_owned(), "takes a name"))
    };
    let requesters = match &body.requesters {
        None | Some(Json_::Null) => RequestersInput::Anyone,
        Some(Json_::String(s)) if s == "anyone" => RequestersInput::Anyone,
        Some(Json_::Object(m)) if m.len() == 1 && m.contains_key("role") => {
            RequestersInput::Role(text(&m["role"], "requesters.role")?)
        }
        Some(Json_::Object(m)) if m.len() == 1 && m.contains_key("unit") => {
            RequestersInput::Unit(text(&m["unit"], "requesters.unit")?)
        }
        Some(_) => {
            return Err(AppError::invalid(
                "requesters",
                "must be \"anyone\", {\"role\": NAME} or {\"unit\": NAME}",
            ))
        }
    };
    let approvers = match body.approvers.as_object().filter(|m| m.len() == 1) {
        Some(m) if m.contains_key("superior") => ApproversInput::Superior(
            m["superior"]
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| {
                    AppError::invalid("approvers.superior", "takes a number of levels")
                })?,
        ),
        Some(m) if m.contains_key("role") => {
            ApproversInput::Role(text(&m["role"], "approvers.role")?)
        }
        Some(m) if m.contains_key("users") => ApproversInput::Users(
            m["users"]
                .as_array()
                .ok_or_else(|| AppError::invalid("approvers.users", "takes a list of usernames"))?
                .iter()
                .map(|u| text(u, "approvers.users"))
                .collect::<ApiResult<Vec<_>>>()?,
        ),
        _ => {
            return Err(AppError::invalid(
                "approvers",
                "must be {\"superior\": LEVELS}, {\"role\": NAME} or {\"users\": [USERNAME…]}",
            ))
        }
    };
    Ok((
        ApprovalPolicyInput {
            name: body.name,
            object,
            operations,
            fields: body.fields,
            when,
            requesters,
            approvers,
            required: body.required.unwrap_or(1),
            expires_after_hours: body.expires_after_hours,
            escalate: body.escalate,
        },
        body.version,
    ))
}

pub(crate) fn policy_json(view: &ApprovalPolicyView) -> Json_ {
    let p = &view.input;
    json!({
        "id": view.id,
        "version": view.version,
        "name": p.name,
        "object": p.object.as_str(),
        "operations": p.operations.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "fields": p.fields,
        "when": p.when.as_ref().map(criteria_to_json),
        "requesters": match &p.requesters {
            RequestersInput::Anyone => json!("anyone"),
            RequestersInput::Role(r) => json!({"role": r}),
            RequestersInput::Unit(u) => json!({"unit": u}),
        },
        "approvers": match &p.approvers {
            ApproversInput::Superior(n) => json!({"superior": n}),
            ApproversInput::Role(r) => json!({"role": r}),
            ApproversInput::Users(u) => json!({"users": u}),
        },
        "required": p.required,
        "expires_after_hours": p.expires_after_hours,
        "escalate": p.escalate,
    })
}

/// Every approval policy (anyone may read them).
#[utoipa::path(get, path = "/api/v1/approval-policies", tag = "approvals", security(("bearer" = [])),
    responses((status = 200, description = "`{\"items\": [policy…], \"four_eyes\": bool}`")))]
async fn list_policies(
    State(state): State<AppState>,
    Auth(subject): Auth,
) -> ApiResult<Json<Json_>> {
    let policies = state.warden.list_approval_policies(&subject).await?;
    Ok(Json(json!({
        "items": policies.iter().map(policy_json).collect::<Vec<_>>(),
        "four_eyes": state.warden.four_eyes(&subject),
    })))
}

/// Create an approval policy (needs manage_roles; 202 under four eyes).
#[utoipa::path(post, path = "/api/v1/approval-policies", tag = "approvals", security(("bearer" = [])), request_body = PolicyBody,
    responses((status = 201), (status = 202, description = "held under four eyes: `{\"approval\": …}`"), (status = 403), (status = 409), (status = 422)))]
async fn create_policy(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<PolicyBody>,
) -> ApiResult<Response> {
    let (input, _) = policy_input(body)?;
    let result = state.warden.create_approval_policy(&subject, input).await?;
    Ok(outcome(result, StatusCode::CREATED, |p| {
        Json(policy_json(&p)).into_response()
    }))
}

/// Replace an approval policy (send the `version` read).
#[utoipa::path(put, path = "/api/v1/approval-policies/{id}", tag = "approvals", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = PolicyBody,
    responses((status = 200), (status = 202), (status = 403), (status = 404), (status = 409), (status = 422)))]
async fn put_policy(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PolicyBody>,
) -> ApiResult<Response> {
    let (input, version) = policy_input(body)?;
    let result = state
        .warden
        .update_approval_policy(&subject, request_id(&id)?, version, input)
        .await?;
    Ok(outcome(result, StatusCode::OK, |p| {
        Json(policy_json(&p)).into_response()
    }))
}

/// Delete an approval policy (requests it caught keep their steps).
#[utoipa::path(delete, path = "/api/v1/approval-policies/{id}", tag = "approvals", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204), (status = 202), (status = 403), (status = 404)))]
async fn delete_policy(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let result = state
        .warden
        .delete_approval_policy(&subject, request_id(&id)?)
        .await?;
    Ok(outcome(result, StatusCode::NO_CONTENT, |()| {
        StatusCode::NO_CONTENT.into_response()
    }))
}

/// The four-eyes setting.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FourEyesBody {
    pub on: bool,
}

/// Turn four eyes on permission changes on (at once) or off (which itself waits, 202).
#[utoipa::path(put, path = "/api/v1/settings/four-eyes", tag = "approvals", security(("bearer" = [])), request_body = FourEyesBody,
    responses((status = 200, description = "`{\"on\": bool}`"), (status = 202), (status = 403, description = "needs manage_roles")))]
async fn put_four_eyes(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<FourEyesBody>,
) -> ApiResult<Response> {
    let result = state.warden.set_four_eyes(&subject, body.on).await?;
    Ok(outcome(result, StatusCode::OK, |on| {
        Json(json!({"on": on})).into_response()
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/approvals", get(list))
        .route("/approvals/{id}", get(get_one))
        .route("/approvals/{id}/approve", post(approve))
        .route("/approvals/{id}/reject", post(reject))
        .route("/approvals/{id}/withdraw", post(withdraw))
        .route("/approval-policies", get(list_policies).post(create_policy))
        .route(
            "/approval-policies/{id}",
            axum::routing::put(put_policy).delete(delete_policy),
        )
        .route("/settings/four-eyes", axum::routing::put(put_four_eyes))
}
