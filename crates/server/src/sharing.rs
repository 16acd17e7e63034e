//! The sharing API: shares and teams of one record (`/{object}/{id}/shares`, `/team`), and the
//! sharing and restriction rules (`/sharing-rules`, `/restriction-rules`).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value as Json_};
use warden_policy::{Action, ObjectType, ShareAccess};
use warden_service::store::{criteria_from_json, criteria_to_json};
use warden_service::{
    AudienceInput, PrincipalName, RestrictionRuleInput, RuleSourceInput, RuleView, ShareView,
    SharingRuleInput,
};

use crate::approvals::outcome;
use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::JsonBody;
use crate::AppState;

pub(crate) fn object(name: &str) -> ApiResult<ObjectType> {
    ObjectType::parse(name).map_err(|_| AppError::not_found())
}

pub(crate) fn id(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(AppError::not_found)
}

pub(crate) fn access(text: Option<&str>, field: &str) -> ApiResult<ShareAccess> {
    ShareAccess::parse(text.unwrap_or("read"))
        .ok_or_else(|| AppError::invalid(field.to_owned(), "must be \"read\" or \"edit\""))
}

/// `{"user": NAME}`, `{"unit": NAME}` or `{"role": NAME}`.
pub(crate) fn principal(value: &Json_, field: &str) -> ApiResult<PrincipalName> {
    let bad = || {
        AppError::invalid(
            field.to_owned(),
            "must be {\"user\": NAME}, {\"unit\": NAME} or {\"role\": NAME}",
        )
    };
    let map = value.as_object().filter(|m| m.len() == 1).ok_or_else(bad)?;
    let (kind, name) = map.iter().next().ok_or_else(bad)?;
    let name = name.as_str().ok_or_else(bad)?.to_owned();
    Ok(match kind.as_str() {
        "user" => PrincipalName::User(name),
        "unit" => PrincipalName::Unit(name),
        "role" => PrincipalName::Role(name),
        _ => return Err(bad()),
    })
}

fn principal_json(principal: &PrincipalName) -> Json_ {
    match principal {
        PrincipalName::User(n) => json!({ "user": n }),
        PrincipalName::Unit(n) => json!({ "unit": n }),
        PrincipalName::Role(n) => json!({ "role": n }),
    }
}

fn share_json(view: &ShareView) -> Json_ {
    json!({
        "id": view.id,
        "object": view.object.as_str(),
        "record_id": view.record_id,
        "kind": view.kind.as_str(),
        "with": { view.principal_kind: view.principal },
        "access": view.access.as_str(),
        "created_by": view.created_by,
        "created_at": view.created_at,
    })
}

/// Body of `POST /{object}/{id}/shares`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareBody {
    /// `{"user": NAME}`, `{"unit": NAME}` (and the units below it) or `{"role": NAME}`.
    #[schema(value_type = Object)]
    pub with: Json_,
    /// `read` (default) or `edit`.
    pub access: Option<String>,
}

/// Body of `POST /{object}/{id}/team`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamBody {
    /// The username of the member.
    pub user: String,
    /// `read` (default) or `edit`.
    pub access: Option<String>,
}

/// The shares and team places of a record the caller may read.
#[utoipa::path(get, path = "/api/v1/{object}/{id}/shares", tag = "sharing", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path)),
    responses((status = 200, description = "`{\"items\": [{id, kind: share|team, with, access, created_by, created_at}]}`"),
              (status = 404, description = "not readable by the caller")))]
async fn list_shares(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, record)): Path<(String, String)>,
) -> ApiResult<Json<Json_>> {
    let (object, record) = (object(&object_name)?, id(&record)?);
    let items = state.warden.list_shares(&subject, object, record).await?;
    Ok(Json(
        json!({ "items": items.iter().map(share_json).collect::<Vec<_>>() }),
    ))
}

/// Share a record with a user, a unit or a role, for reading or editing. Needs `share` on the
/// record (and `update` to give `edit`). On contacts, deals, … controlled by their customer,
/// a customer's shares reach its records.
#[utoipa::path(post, path = "/api/v1/{object}/{id}/shares", tag = "sharing", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path)), request_body = ShareBody,
    responses((status = 201, description = "the share"), (status = 403), (status = 404), (status = 422)))]
async fn create_share(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, record)): Path<(String, String)>,
    JsonBody(body): JsonBody<ShareBody>,
) -> ApiResult<Response> {
    let (object, record) = (object(&object_name)?, id(&record)?);
    let with = principal(&body.with, "with")?;
    let access = access(body.access.as_deref(), "access")?;
    let view = state
        .warden
        .share_record(&subject, object, record, &with, access)
        .await?;
    Ok((StatusCode::CREATED, Json(share_json(&view))).into_response())
}

/// Take a share back (by anyone allowed `share` on the record, or by who gave it).
#[utoipa::path(delete, path = "/api/v1/{object}/{id}/shares/{share}", tag = "sharing", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path), ("share" = i64, Path)),
    responses((status = 204), (status = 403), (status = 404)))]
async fn delete_share(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, record, share)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    let (object, record, share) = (object(&object_name)?, id(&record)?, id(&share)?);
    state
        .warden
        .revoke_share(&subject, object, record, share)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Add a member to a record's team (相关团队), or change their access. By the owner and the
/// owner's superiors.
#[utoipa::path(post, path = "/api/v1/{object}/{id}/team", tag = "sharing", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path)), request_body = TeamBody,
    responses((status = 201, description = "the team place"), (status = 403), (status = 404), (status = 422)))]
async fn add_member(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, record)): Path<(String, String)>,
    JsonBody(body): JsonBody<TeamBody>,
) -> ApiResult<Response> {
    let (object, record) = (object(&object_name)?, id(&record)?);
    let access = access(body.access.as_deref(), "access")?;
    let view = state
        .warden
        .put_team_member(&subject, object, record, &body.user, access)
        .await?;
    Ok((StatusCode::CREATED, Json(share_json(&view))).into_response())
}

/// Remove a member from a record's team (the id from `GET …/shares`).
#[utoipa::path(delete, path = "/api/v1/{object}/{id}/team/{share}", tag = "sharing", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path), ("share" = i64, Path)),
    responses((status = 204), (status = 403), (status = 404)))]
async fn remove_member(
    state: State<AppState>,
    auth: Auth,
    path: Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    delete_share(state, auth, path).await
}

/// Body of the sharing-rule calls.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SharingRuleBody {
    pub name: String,
    pub object: String,
    /// Records meeting a condition (`{"region": "East"}`, the approval policies' language)…
    #[schema(value_type = Option<Object>)]
    pub when: Option<Json_>,
    /// …or records of a unit and the units below it.
    pub owned_by_unit: Option<String>,
    /// `{"user"|"unit"|"role": NAME}`.
    #[schema(value_type = Object)]
    pub share_with: Json_,
    /// `read` (default) or `edit`.
    pub access: Option<String>,
}

pub(crate) fn sharing_rule_input(body: SharingRuleBody) -> ApiResult<SharingRuleInput> {
    let object =
        ObjectType::parse(&body.object).map_err(|e| AppError::invalid("object", e.to_string()))?;
    let source = match (body.when.filter(|w| !w.is_null()), body.owned_by_unit) {
        (Some(when), None) => RuleSourceInput::When(
            criteria_from_json(&when).map_err(|m| AppError::invalid("when", m))?,
        ),
        (None, Some(unit)) => RuleSourceInput::OwnedByUnit(unit),
        _ => {
            return Err(AppError::invalid(
                "when",
                "give either `when` (a condition) or `owned_by_unit` (a unit's name)",
            ))
        }
    };
    Ok(SharingRuleInput {
        name: body.name,
        object,
        source,
        share_with: principal(&body.share_with, "share_with")?,
        access: access(body.access.as_deref(), "access")?,
    })
}

fn sharing_rule_json(view: &RuleView<SharingRuleInput>) -> Json_ {
    let rule = &view.rule;
    let mut out = json!({
        "id": view.id,
        "name": rule.name,
        "object": rule.object.as_str(),
        "share_with": principal_json(&rule.share_with),
        "access": rule.access.as_str(),
    });
    match &rule.source {
        RuleSourceInput::When(c) => out["when"] = criteria_to_json(c),
        RuleSourceInput::OwnedByUnit(unit) => out["owned_by_unit"] = json!(unit),
    }
    out
}

/// Body of the restriction-rule calls.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestrictionRuleBody {
    pub name: String,
    pub object: String,
    /// `"everyone"`, `{"role": NAME}`, `{"unit": NAME}` or `{"except_role": NAME}`.
    #[schema(value_type = Object)]
    pub applies_to: Json_,
    /// The actions it narrows (default: all).
    #[serde(default)]
    pub actions: Vec<String>,
    /// The condition every record reached must meet.
    #[schema(value_type = Object)]
    pub only: Json_,
}

pub(crate) fn restriction_rule_input(body: RestrictionRuleBody) -> ApiResult<RestrictionRuleInput> {
    let object =
        ObjectType::parse(&body.object).map_err(|e| AppError::invalid("object", e.to_string()))?;
    let name = |v: &Json_| {
        v.as_str()
            .map(str::to_owned)
            .ok_or_else(|| AppError::invalid("applies_to", "takes a name"))
    };
    let applies_to = match &body.applies_to {
        Json_::String(s) if s == "everyone" => AudienceInput::Everyone,
        Json_::Object(m) if m.len() == 1 => {
            let (kind, value) = m
                .iter()
                .next()
                .ok_or_else(|| AppError::invalid("applies_to", "empty"))?;
            match kind.as_str() {
                "role" => AudienceInput::Role(name(value)?),
                "unit" => AudienceInput::Unit(name(value)?),
                "except_role" => AudienceInput::ExceptRole(name(value)?),
                _ => return Err(AppError::invalid("applies_to", "unknown audience")),
            }
        }
        _ => return Err(AppError::invalid(
            "applies_to",
            "must be \"everyone\", {\"role\": NAME}, {\"unit\": NAME} or {\"except_role\": NAME}",
        )),
    };
    let actions = body
        .actions
        .iter()
        .map(|a| Action::parse(a).map_err(|e| AppError::invalid("actions", e.to_string())))
        .collect::<ApiResult<Vec<_>>>()?;
    Ok(RestrictionRuleInput {
        name: body.name,
        object,
        applies_to,
        actions,
        only: criteria_from_json(&body.only).map_err(|m| AppError::invalid("only", m))?,
    })
}

fn restriction_rule_json(view: &RuleView<RestrictionRuleInput>) -> Json_ {
    let rule = &view.rule;
    json!({
        "id": view.id,
        "name": rule.name,
        "object": rule.object.as_str(),
        "applies_to": match &rule.applies_to {
            AudienceInput::Everyone => json!("everyone"),
            AudienceInput::Role(n) => json!({ "role": n }),
            AudienceInput::Unit(n) => json!({ "unit": n }),
            AudienceInput::ExceptRole(n) => json!({ "except_role": n }),
        },
        "actions": rule.actions.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
        "only": criteria_to_json(&rule.only),
    })
}

/// Every sharing rule (`manage_roles` or `view_audit`).
#[utoipa::path(get, path = "/api/v1/sharing-rules", tag = "sharing", security(("bearer" = [])),
    responses((status = 200, description = "`{\"items\": [rule…]}`"), (status = 403)))]
async fn list_sharing_rules(
    State(state): State<AppState>,
    Auth(subject): Auth,
) -> ApiResult<Json<Json_>> {
    let rules = state.warden.list_sharing_rules(&subject).await?;
    Ok(Json(
        json!({ "items": rules.iter().map(sharing_rule_json).collect::<Vec<_>>() }),
    ))
}

/// Create a sharing rule (`manage_roles`; with four eyes on, 202 and a request).
#[utoipa::path(post, path = "/api/v1/sharing-rules", tag = "sharing", security(("bearer" = [])),
    request_body = SharingRuleBody,
    responses((status = 201), (status = 202, description = "held for four eyes"), (status = 403), (status = 409), (status = 422)))]
async fn create_sharing_rule(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<SharingRuleBody>,
) -> ApiResult<Response> {
    let input = sharing_rule_input(body)?;
    let done = state.warden.put_sharing_rule(&subject, None, input).await?;
    Ok(outcome(done, StatusCode::CREATED, |v| {
        Json(sharing_rule_json(&v)).into_response()
    }))
}

/// Replace a sharing rule.
#[utoipa::path(put, path = "/api/v1/sharing-rules/{id}", tag = "sharing", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = SharingRuleBody,
    responses((status = 200), (status = 202), (status = 403), (status = 404), (status = 422)))]
async fn replace_sharing_rule(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(rule): Path<String>,
    JsonBody(body): JsonBody<SharingRuleBody>,
) -> ApiResult<Response> {
    let rule = id(&rule)?;
    let input = sharing_rule_input(body)?;
    let done = state
        .warden
        .put_sharing_rule(&subject, Some(rule), input)
        .await?;
    Ok(outcome(done, StatusCode::OK, |v| {
        Json(sharing_rule_json(&v)).into_response()
    }))
}

/// Delete a sharing rule.
#[utoipa::path(delete, path = "/api/v1/sharing-rules/{id}", tag = "sharing", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204), (status = 202), (status = 403), (status = 404)))]
async fn delete_sharing_rule(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(rule): Path<String>,
) -> ApiResult<Response> {
    let rule = id(&rule)?;
    let done = state.warden.delete_rule(&subject, false, rule).await?;
    Ok(outcome(done, StatusCode::NO_CONTENT, |()| {
        StatusCode::NO_CONTENT.into_response()
    }))
}

/// Every restriction rule (`manage_roles` or `view_audit`).
#[utoipa::path(get, path = "/api/v1/restriction-rules", tag = "sharing", security(("bearer" = [])),
    responses((status = 200, description = "`{\"items\": [rule…]}`"), (status = 403)))]
async fn list_restriction_rules(
    State(state): State<AppState>,
    Auth(subject): Auth,
) -> ApiResult<Json<Json_>> {
    let rules = state.warden.list_restriction_rules(&subject).await?;
    Ok(Json(
        json!({ "items": rules.iter().map(restriction_rule_json).collect::<Vec<_>>() }),
    ))
}

/// Create a restriction rule: for the users it applies to, the actions it names reach only
/// records meeting `only`, whatever grants, shares and sharing rules say.
#[utoipa::path(post, path = "/api/v1/restriction-rules", tag = "sharing", security(("bearer" = [])),
    request_body = RestrictionRuleBody,
    responses((status = 201), (status = 202, description = "held for four eyes"), (status = 403), (status = 409), (status = 422)))]
async fn create_restriction_rule(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<RestrictionRuleBody>,
) -> ApiResult<Response> {
    let input = restriction_rule_input(body)?;
    let done = state
        .warden
        .put_restriction_rule(&subject, None, input)
        .await?;
    Ok(outcome(done, StatusCode::CREATED, |v| {
        Json(restriction_rule_json(&v)).into_response()
    }))
}

/// Replace a restriction rule.
#[utoipa::path(put, path = "/api/v1/restriction-rules/{id}", tag = "sharing", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = RestrictionRuleBody,
    responses((status = 200), (status = 202), (status = 403), (status = 404), (status = 422)))]
async fn replace_restriction_rule(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(rule): Path<String>,
    JsonBody(body): JsonBody<RestrictionRuleBody>,
) -> ApiResult<Response> {
    let rule = id(&rule)?;
    let input = restriction_rule_input(body)?;
    let done = state
        .warden
        .put_restriction_rule(&subject, Some(rule), input)
        .await?;
    Ok(outcome(done, StatusCode::OK, |v| {
        Json(restriction_rule_json(&v)).into_response()
    }))
}

/// Delete a restriction rule.
#[utoipa::path(delete, path = "/api/v1/restriction-rules/{id}", tag = "sharing", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 204), (status = 202), (status = 403), (status = 404)))]
async fn delete_restriction_rule(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(rule): Path<String>,
) -> ApiResult<Response> {
    let rule = id(&rule)?;
    let done = state.warden.delete_rule(&subject, true, rule).await?;
    Ok(outcome(done, StatusCode::NO_CONTENT, |()| {
        StatusCode::NO_CONTENT.into_response()
    }))
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/{object}/{id}/shares", get(list_shares).post(create_share))
        .route("/{object}/{id}/shares/{share}", delete(delete_share))
        .route("/{object}/{id}/team", axum::routing::post(add_member))
        .route("/{object}/{id}/team/{share}", delete(remove_member))
        .route(
            "/sharing-rules",
            get(list_sharing_rules).post(create_sharing_rule),
        )
        .route(
            "/sharing-rules/{id}",
            put(replace_sharing_rule).delete(delete_sharing_rule),
        )
        .route(
            "/restriction-rules",
            get(list_restriction_rules).post(create_restriction_rule),
        )
        .route(
            "/restriction-rules/{id}",
            put(replace_restriction_rule).delete(delete_restriction_rule),
        )
}
