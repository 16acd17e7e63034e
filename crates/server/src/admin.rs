//! The admin API: users, units and roles; and explain.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use warden_policy::{
    Action, Control, FieldAccess, FieldRule, Grant, ObjectType, Permission, RoleId, Scope,
};
use warden_service::{
    ExplainReport, RoleInput, RoleView, UnitView, UserInput, UserUpdate, UserView, WhatIfChange,
};

use crate::approvals::outcome;
use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::{parse_timestamp, timestamp, JsonBody};
use crate::AppState;

/// Absent → `None`; `null` → `Some(None)`; a value → `Some(Some(v))`.
fn double_option<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// A role held by a user: a role name, or a name with an expiry.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(untagged)]
pub enum RoleRef {
    Name(String),
    WithExpiry {
        role: String,
        /// RFC 3339; the assignment stops counting at this time.
        expires_at: Option<String>,
    },
}

pub(crate) fn role_refs(refs: Vec<RoleRef>) -> ApiResult<Vec<(String, Option<i64>)>> {
    refs.into_iter()
        .map(|r| match r {
            RoleRef::Name(name) => Ok((name, None)),
            RoleRef::WithExpiry { role, expires_at } => {
                let expiry = expires_at
                    .map(|e| parse_timestamp("roles", &e))
                    .transpose()?;
                Ok((role, expiry))
            }
        })
        .collect()
}

/// A user as the admin API shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserJson {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub unit: String,
    pub manager: Option<String>,
    pub disabled: bool,
    pub roles: Vec<RoleRef>,
    pub person: Option<String>,
    /// For a portal user, the id of the customer account they belong to.
    pub portal_account: Option<i64>,
}

impl From<UserView> for UserJson {
    fn from(user: UserView) -> Self {
        UserJson {
            id: user.id.0,
            username: user.username,
            display_name: user.display_name,
            unit: user.unit,
            manager: user.manager,
            disabled: user.disabled,
            person: user.person,
            portal_account: user.portal_account,
            roles: user
                .roles
                .into_iter()
                .map(|(role, expiry)| match expiry {
                    None => RoleRef::Name(role),
                    Some(e) => RoleRef::WithExpiry {
                        role,
                        expires_at: timestamp(e).as_str().map(str::to_owned),
                    },
                })
                .collect(),
        }
    }
}

/// A user to create. No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub username: String,
    pub display_name: Option<String>,
    /// At least 12 characters.
    pub password: String,
    /// Unit name.
    pub unit: String,
    /// Manager's username.
    pub manager: Option<String>,
    #[serde(default)]
    pub roles: Vec<RoleRef>,
    /// The natural person behind the account (an employee number).
    pub person: Option<String>,
    /// Makes the user a portal user of this customer account (by id): they reach only that
    /// account's records and portal-visible fields. Set at creation only.
    pub portal_account: Option<i64>,
}

/// Changes to a user; absent fields stay as they are; `"manager": null` removes the manager.
/// No `Debug`: it may hold a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUser {
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub manager: Option<Option<String>>,
    pub unit: Option<String>,
    pub roles: Option<Vec<RoleRef>>,
    pub disabled: Option<bool>,
    pub display_name: Option<String>,
    pub password: Option<String>,
    /// The natural person behind the account (an employee number); `null` unlinks it.
    /// Accounts of one person never approve each other's requests.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub person: Option<Option<String>>,
}

#[utoipa::path(get, path = "/api/v1/users", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [UserJson]), (status = 403, description = "needs manage_users")))]
async fn list_users(
    State(state): State<AppState>,
    Auth(subject): Auth,
) -> ApiResult<Json<serde_json::Value>> {
    let users = state.warden.list_users(&subject).await?;
    Ok(Json(
        serde_json::json!({"items": users.into_iter().map(UserJson::from).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(post, path = "/api/v1/users", tag = "admin", security(("bearer" = [])), request_body = CreateUser,
    responses((status = 201, body = UserJson), (status = 403), (status = 409, description = "username taken"), (status = 422)))]
async fn create_user(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<CreateUser>,
) -> ApiResult<Response> {
    let input = UserInput {
        username: body.username,
        display_name: body.display_name,
        password: body.password,
        unit: body.unit,
        manager: body.manager,
        roles: role_refs(body.roles)?,
        person: body.person,
        portal_account: body.portal_account,
    };
    let user = state.warden.create_user(&subject, input).await?;
    Ok((StatusCode::CREATED, Json(UserJson::from(user))).into_response())
}

#[utoipa::path(get, path = "/api/v1/users/{username}", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path)),
    responses((status = 200, body = UserJson), (status = 403), (status = 404)))]
async fn get_user(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(username): Path<String>,
) -> ApiResult<Json<UserJson>> {
    Ok(Json(
        state.warden.get_user(&subject, &username).await?.into(),
    ))
}

/// Move a user (manager, unit), change their roles, disable them: holds from the next request.
#[utoipa::path(patch, path = "/api/v1/users/{username}", tag = "admin", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = PatchUser,
    responses((status = 200, body = UserJson), (status = 403, description = "needs manage_users"), (status = 404), (status = 422)))]
async fn patch_user(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(username): Path<String>,
    JsonBody(body): JsonBody<PatchUser>,
) -> ApiResult<Response> {
    let update = UserUpdate {
        display_name: body.display_name,
        unit: body.unit,
        manager: body.manager,
        roles: body.roles.map(role_refs).transpose()?,
        disabled: body.disabled,
        password: body.password,
        person: body.person,
    };
    let result = state
        .warden
        .update_user(&subject, &username, update)
        .await?;
    Ok(outcome(result, StatusCode::OK, |user| {
        Json(UserJson::from(user)).into_response()
    }))
}

/// A unit.
#[derive(Debug, Serialize, ToSchema)]
pub struct UnitJson {
    pub id: i64,
    pub name: String,
    pub parent: Option<String>,
}

impl From<UnitView> for UnitJson {
    fn from(unit: UnitView) -> Self {
        UnitJson {
            id: unit.id.0,
            name: unit.name,
            parent: unit.parent,
        }
    }
}

/// A unit to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUnit {
    pub name: String,
    pub parent: Option<String>,
}

/// Rename a unit or move it; `"parent": null` makes it a root.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUnit {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub parent: Option<Option<String>>,
}

#[utoipa::path(get, path = "/api/v1/units", tag = "admin", security(("bearer" = [])), responses((status = 200, body = [UnitJson])))]
async fn list_units(
    State(state): State<AppState>,
    Auth(subject): Auth,
) -> ApiResult<Json<serde_json::Value>> {
    let units = state.warden.list_units(&subject).await?;
    Ok(Json(
        serde_json::json!({"items": units.into_iter().map(UnitJson::from).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(post, path = "/api/v1/units", tag = "admin", security(("bearer" = [])), request_body = CreateUnit,
    responses((status = 201, body = UnitJson), (status = 403), (status = 409), (status = 422)))]
async fn create_unit(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<CreateUnit>,
) -> ApiResult<Response> {
    let unit = state
        .warden
        .create_unit(&subject, &body.name, body.parent.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(UnitJson::from(unit))).into_response())
}

#[utoipa::path(patch, path = "/api/v1/units/{name}", tag = "admin", security(("bearer" = [])),
    params(("name" = String, Path)), request_body = PatchUnit,
    responses((status = 200, body = UnitJson), (status = 403), (status = 404), (status = 422)))]
async fn patch_unit(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<PatchUnit>,
) -> ApiResult<Json<UnitJson>> {
    let parent = body.parent.as_ref().map(|p| p.as_deref());
    Ok(Json(
        state
            .warden
            .update_unit(&subject, &name, body.name.as_deref(), parent)
            .await?
            .into(),
    ))
}

/// One grant of a role.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct GrantJson {
    /// customers, contacts, deals, contracts, activities
    pub object: String,
    /// read, create, update, delete, export, share, approve
    pub action: String,
    /// own, subordinates, unit, unit_tree, all
    pub scope: String,
    /// For `subordinates`: how many levels down (1 = direct reports).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub depth: Option<u32>,
}

/// A role.
#[derive(Debug, Serialize, ToSchema)]
pub struct RoleJson {
    pub id: i64,
    pub name: String,
    pub description: String,
    pub version: i64,
    pub grants: Vec<GrantJson>,
    pub permissions: Vec<String>,
    /// Field rules that differ from the schema's defaults (sensitive fields hidden, the rest
    /// writable).
    pub fields: Vec<FieldRuleJson>,
}

/// A role's rule for one field.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FieldRuleJson {
    /// customers, contacts, deals, contracts or activities
    pub object: String,
    pub field: String,
    /// hidden, masked, read or write
    pub access: String,
}

impl From<RoleView> for RoleJson {
    fn from(role: RoleView) -> Self {
        RoleJson {
            id: role.id.0,
            name: role.name,
            description: role.description,
            version: role.version,
            grants: role
                .grants
                .iter()
                .map(|g| GrantJson {
                    object: g.object.as_str().into(),
                    action: g.action.as_str().into(),
                    scope: g.scope.name().into(),
                    depth: g.scope.depth(),
                })
                .collect(),
            permissions: role
                .permissions
                .iter()
                .map(|p| p.as_str().to_owned())
                .collect(),
            fields: role
                .fields
                .iter()
                .map(|f| FieldRuleJson {
                    object: f.object.as_str().into(),
                    field: f.field.clone(),
                    access: f.access.as_str().into(),
                })
                .collect(),
        }
    }
}

/// A role's whole content (create, or replace with `PUT`).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub grants: Vec<GrantJson>,
    /// manage_users, manage_roles, view_audit, manage_settings
    #[serde(default)]
    pub permissions: Vec<String>,
    /// Field rules: `hidden`, `masked`, `read` or `write` per object and field.
    #[serde(default)]
    pub fields: Vec<FieldRuleJson>,
    /// With `PUT`: the version read; the change is refused (409) if the role changed since.
    pub version: Option<i64>,
}

pub(crate) fn role_input(body: RoleBody) -> ApiResult<(RoleInput, Option<i64>)> {
    let grants = body
        .grants
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let field = |name: &str| format!("grants[{i}].{name}");
            Ok(Grant {
                object: ObjectType::parse(&g.object)
                    .map_err(|e| AppError::invalid(field("object"), e.to_string()))?,
                action: Action::parse(&g.action)
                    .map_err(|e| AppError::invalid(field("action"), e.to_string()))?,
                scope: Scope::parse(&g.scope, g.depth)
                    .map_err(|e| AppError::invalid(field("scope"), e.to_string()))?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let permissions = body
        .permissions
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Permission::parse(p)
                .map_err(|e| AppError::invalid(format!("permissions[{i}]"), e.to_string()))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let fields = body
        .fields
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let field = |name: &str| format!("fields[{i}].{name}");
            Ok(FieldRule {
                object: ObjectType::parse(&f.object)
                    .map_err(|e| AppError::invalid(field("object"), e.to_string()))?,
                field: f.field.clone(),
                access: FieldAccess::parse(&f.access)
                    .map_err(|e| AppError::invalid(field("access"), e.to_string()))?,
            })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    Ok((
        RoleInput {
            name: body.name,
            description: body.description,
            grants,
            permissions,
            fields,
        },
        body.version,
    ))
}

#[utoipa::path(get, path = "/api/v1/roles", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [RoleJson], description = "grants and permissions only for manage_roles / manage_users holders")))]
async fn list_roles(
    State(state): State<AppState>,
    Auth(subject): Auth,
) -> ApiResult<Json<serde_json::Value>> {
    let roles = state.warden.list_roles(&subject).await?;
    Ok(Json(
        serde_json::json!({"items": roles.into_iter().map(RoleJson::from).collect::<Vec<_>>()}),
    ))
}

#[utoipa::path(post, path = "/api/v1/roles", tag = "admin", security(("bearer" = [])), request_body = RoleBody,
    responses((status = 201, body = RoleJson), (status = 403, description = "needs manage_roles"), (status = 409), (status = 422)))]
async fn create_role(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<RoleBody>,
) -> ApiResult<Response> {
    let (input, _) = role_input(body)?;
    let result = state.warden.create_role(&subject, input).await?;
    Ok(outcome(result, StatusCode::CREATED, |role| {
        Json(RoleJson::from(role)).into_response()
    }))
}

fn role_id(text: &str) -> ApiResult<RoleId> {
    text.parse::<i64>()
        .map(RoleId)
        .map_err(|_| AppError::not_found())
}

#[utoipa::path(get, path = "/api/v1/roles/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = RoleJson), (status = 404)))]
async fn get_role(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<RoleJson>> {
    let id = role_id(&id)?;
    let role = state
        .warden
        .list_roles(&subject)
        .await?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(AppError::not_found)?;
    Ok(Json(role.into()))
}

#[utoipa::path(put, path = "/api/v1/roles/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = RoleBody,
    responses((status = 200, body = RoleJson), (status = 403), (status = 404), (status = 409), (status = 422)))]
async fn put_role(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<RoleBody>,
) -> ApiResult<Response> {
    let id = role_id(&id)?;
    let (input, version) = role_input(body)?;
    let result = state
        .warden
        .update_role(&subject, id, version, input)
        .await?;
    Ok(outcome(result, StatusCode::OK, |role| {
        Json(RoleJson::from(role)).into_response()
    }))
}

/// Query of `GET /access/explain`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ExplainQuery {
    /// Username whose access is explained.
    pub user: String,
    /// customers, contacts, deals, contracts or activities
    pub object: String,
    pub id: i64,
}

fn explain_json(report: ExplainReport) -> serde_json::Value {
    serde_json::json!({
        "user": report.user,
        "object": report.object.as_str(),
        "id": report.id,
        "owner": report.owner,
        "unit": report.unit,
        "expired_roles": report.expired_roles,
        "actions": report.actions.iter().map(|a| serde_json::json!({
            "action": a.action.as_str(),
            "allowed": a.allowed,
            "reasons": a.reasons.iter().map(|r| serde_json::json!({
                "source": r.source.as_str(),
                "role": r.role,
                "object": r.object.as_str(),
                "action": r.action.as_str(),
                "scope": r.scope,
                "rule": r.rule,
                "principal": r.principal,
                "access": r.access,
                "because": r.because,
                "reporting_path": r.reporting_path,
            })).collect::<Vec<_>>(),
            "restricted_by": a.restricted_by,
            "denied_because": a.denied_because,
        })).collect::<Vec<_>>(),
        "fields": report.fields.iter().map(|f| serde_json::json!({
            "field": f.field,
            "sensitive": f.sensitive,
            "read": f.read.as_str(),
            "read_by": f.read_by,
            "writable": f.writable,
            "write_by": f.write_by,
            "because": f.because,
        })).collect::<Vec<_>>(),
    })
}

/// Why can `user` see (or change…) this record? Everyone may ask about themselves.
#[utoipa::path(get, path = "/api/v1/access/explain", tag = "access", security(("bearer" = [])), params(ExplainQuery),
    responses((status = 200, description = "per action: allowed, every reason (a role's grant with its scope and reporting path, a share, a team place, a sharing rule), the restriction rules that remove it, or why denied; per field: hidden / masked / read, writable, and the role that says so"),
              (status = 403, description = "asking about another user needs manage_users or manage_roles"),
              (status = 404, description = "the record is not readable by the caller")))]
async fn explain(
    State(state): State<AppState>,
    Auth(subject): Auth,
    query: Result<Query<ExplainQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<serde_json::Value>> {
    let Query(query) = query.map_err(|e| AppError::invalid("query", e.body_text()))?;
    let object =
        ObjectType::parse(&query.object).map_err(|e| AppError::invalid("object", e.to_string()))?;
    let report = state
        .warden
        .explain(&subject, &query.user, object, query.id)
        .await?;
    Ok(Json(explain_json(report)))
}

/// An object's schema and how its records are decided.
#[derive(Debug, Serialize, ToSchema)]
pub struct ObjectJson {
    pub object: String,
    /// `own_grants`, or `by_customer` (decided by the record's customer).
    pub control: String,
    pub fields: Vec<FieldJson>,
}

/// One field of an object.
#[derive(Debug, Serialize, ToSchema)]
pub struct FieldJson {
    pub name: String,
    /// What a value looks like.
    pub kind: String,
    pub required: bool,
    /// Financial or contractual: encrypted at rest, hidden unless granted.
    pub sensitive: bool,
}

fn control_name(control: Control) -> &'static str {
    match control {
        Control::OwnGrants => "own_grants",
        Control::ByCustomer => "by_customer",
    }
}

/// The objects, their fields, and how each is controlled.
#[utoipa::path(get, path = "/api/v1/objects", tag = "admin", security(("bearer" = [])), responses((status = 200, body = [ObjectJson])))]
async fn list_objects(Auth(subject): Auth) -> ApiResult<Json<serde_json::Value>> {
    let items: Vec<ObjectJson> = ObjectType::ALL
        .iter()
        .map(|&object| ObjectJson {
            object: object.as_str().into(),
            control: control_name(subject.snapshot.control(object)).into(),
            fields: warden_policy::schema::schema(object)
                .fields
                .iter()
                .map(|f| FieldJson {
                    name: f.name.into(),
                    kind: f.kind.describe().into(),
                    required: f.required,
                    sensitive: f.sensitive,
                })
                .collect(),
        })
        .collect();
    Ok(Json(serde_json::json!({"items": items})))
}

/// How an object's records are decided.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ControlBody {
    /// `own_grants` or `by_customer`
    pub control: String,
}

/// Give an object its own grants, or let its customer decide (the default).
#[utoipa::path(put, path = "/api/v1/objects/{object}/control", tag = "admin", security(("bearer" = [])),
    params(("object" = String, Path)), request_body = ControlBody,
    responses((status = 204), (status = 202, description = "held under four eyes"), (status = 403, description = "needs manage_roles"), (status = 404), (status = 422)))]
async fn put_control(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(object): Path<String>,
    JsonBody(body): JsonBody<ControlBody>,
) -> ApiResult<Response> {
    let object = ObjectType::parse(&object).map_err(|_| AppError::not_found())?;
    let control = match body.control.as_str() {
        "own_grants" => Control::OwnGrants,
        "by_customer" => Control::ByCustomer,
        _ => {
            return Err(AppError::invalid(
                "control",
                "must be own_grants or by_customer",
            ))
        }
    };
    let result = state
        .warden
        .set_object_control(&subject, object, control)
        .await?;
    Ok(outcome(result, StatusCode::NO_CONTENT, |()| {
        StatusCode::NO_CONTENT.into_response()
    }))
}

/// `move_user` of what-if: the fields of `PATCH /users/{user}` that move a person.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveUserBody {
    pub user: String,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub manager: Option<Option<String>>,
    pub unit: Option<String>,
}

/// `move_unit` of what-if: the fields of `PATCH /units/{unit}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveUnitBody {
    pub unit: String,
    /// The new parent; `null` makes it a root.
    pub parent: Option<String>,
}

/// `update_role` of what-if: the role's id and the body of `PUT /roles/{id}`.
#[derive(Deserialize, ToSchema)]
pub struct UpdateRoleBody {
    pub id: i64,
    #[serde(flatten)]
    pub role: RoleBody,
}

/// `set_roles` of what-if: a user and the roles of `PATCH /users/{user}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetRolesBody {
    pub user: String,
    pub roles: Vec<RoleRef>,
}

/// `replace_sharing_rule` of what-if: the id and the body of `PUT /sharing-rules/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceSharingRuleBody {
    pub id: i64,
    pub rule: crate::sharing::SharingRuleBody,
}

/// `replace_restriction_rule` of what-if: the id and the body of `PUT /restriction-rules/{id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceRestrictionRuleBody {
    pub id: i64,
    pub rule: crate::sharing::RestrictionRuleBody,
}

/// `remove_sharing_rule` / `remove_restriction_rule` of what-if: the rule's id.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleIdBody {
    pub id: i64,
}

/// `share` of what-if: the record and the body of `POST /{object}/{id}/shares`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShareWhatIfBody {
    pub object: String,
    pub id: i64,
    #[schema(value_type = Object)]
    pub with: serde_json::Value,
    pub access: Option<String>,
}

/// `revoke_share` of what-if: the path of `DELETE /{object}/{id}/shares/{share}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RevokeShareBody {
    pub object: String,
    pub id: i64,
    pub share: i64,
}

/// `add_team_member` of what-if: the record and the body of `POST /{object}/{id}/team`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamWhatIfBody {
    pub object: String,
    pub id: i64,
    pub user: String,
    pub access: Option<String>,
}

/// A proposed change: exactly one of its kinds.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WhatIfBody {
    pub move_user: Option<MoveUserBody>,
    pub move_unit: Option<MoveUnitBody>,
    pub update_role: Option<UpdateRoleBody>,
    pub set_roles: Option<SetRolesBody>,
    pub add_sharing_rule: Option<crate::sharing::SharingRuleBody>,
    pub replace_sharing_rule: Option<ReplaceSharingRuleBody>,
    pub remove_sharing_rule: Option<RuleIdBody>,
    pub add_restriction_rule: Option<crate::sharing::RestrictionRuleBody>,
    pub replace_restriction_rule: Option<ReplaceRestrictionRuleBody>,
    pub remove_restriction_rule: Option<RuleIdBody>,
    pub share: Option<ShareWhatIfBody>,
    pub revoke_share: Option<RevokeShareBody>,
    pub add_team_member: Option<TeamWhatIfBody>,
}

/// The record named by a what-if on shares (422 rather than 404: it is a body's field).
fn record_target(object: &str, id: i64) -> ApiResult<(ObjectType, i64)> {
    let object =
        ObjectType::parse(object).map_err(|e| AppError::invalid("object", e.to_string()))?;
    if id <= 0 {
        return Err(AppError::invalid("id", "must be a record id"));
    }
    Ok((object, id))
}

pub(crate) fn what_if_change(body: WhatIfBody) -> ApiResult<WhatIfChange> {
    let given = [
        body.move_user.is_some(),
        body.move_unit.is_some(),
        body.update_role.is_some(),
        body.set_roles.is_some(),
        body.add_sharing_rule.is_some(),
        body.replace_sharing_rule.is_some(),
        body.remove_sharing_rule.is_some(),
        body.add_restriction_rule.is_some(),
        body.replace_restriction_rule.is_some(),
        body.remove_restriction_rule.is_some(),
        body.share.is_some(),
        body.revoke_share.is_some(),
        body.add_team_member.is_some(),
    ];
    if given.iter().filter(|g| **g).count() != 1 {
        return Err(AppError::invalid(
            "change",
            "give exactly one of move_user, move_unit, update_role, set_roles, \
             add_sharing_rule, replace_sharing_rule, remove_sharing_rule, add_restriction_rule, \
             replace_restriction_rule, remove_restriction_rule, share, revoke_share, \
             add_team_member",
        ));
    }
    Ok(if let Some(m) = body.move_user {
        WhatIfChange::MoveUser {
            user: m.user,
            manager: m.manager,
            unit: m.unit,
        }
    } else if let Some(m) = body.move_unit {
        WhatIfChange::MoveUnit {
            unit: m.unit,
            parent: m.parent,
        }
    } else if let Some(r) = body.update_role {
        let (input, version) = role_input(r.role)?;
        WhatIfChange::UpdateRole {
            id: RoleId(r.id),
            version,
            input,
        }
    } else if let Some(r) = body.set_roles {
        WhatIfChange::SetRoles {
            user: r.user,
            roles: role_refs(r.roles)?,
        }
    } else if let Some(rule) = body.add_sharing_rule {
        WhatIfChange::PutSharingRule {
            id: None,
            input: crate::sharing::sharing_rule_input(rule)?,
        }
    } else if let Some(r) = body.replace_sharing_rule {
        WhatIfChange::PutSharingRule {
            id: Some(r.id),
            input: crate::sharing::sharing_rule_input(r.rule)?,
        }
    } else if let Some(r) = body.remove_sharing_rule {
        WhatIfChange::DeleteSharingRule { id: r.id }
    } else if let Some(rule) = body.add_restriction_rule {
        WhatIfChange::PutRestrictionRule {
            id: None,
            input: crate::sharing::restriction_rule_input(rule)?,
        }
    } else if let Some(r) = body.replace_restriction_rule {
        WhatIfChange::PutRestrictionRule {
            id: Some(r.id),
            input: crate::sharing::restriction_rule_input(r.rule)?,
        }
    } else if let Some(r) = body.remove_restriction_rule {
        WhatIfChange::DeleteRestrictionRule { id: r.id }
    } else if let Some(s) = body.share {
        let (object, id) = record_target(&s.object, s.id)?;
        WhatIfChange::ShareRecord {
            object,
            id,
            with: crate::sharing::principal(&s.with, "with")?,
            access: crate::sharing::access(s.access.as_deref(), "access")?,
        }
    } else if let Some(r) = body.revoke_share {
        let (object, id) = record_target(&r.object, r.id)?;
        WhatIfChange::RevokeShare {
            object,
            id,
            share: r.share,
        }
    } else if let Some(t) = body.add_team_member {
        let (object, id) = record_target(&t.object, t.id)?;
        WhatIfChange::PutTeamMember {
            object,
            id,
            user: t.user,
            access: crate::sharing::access(t.access.as_deref(), "access")?,
        }
    } else {
        return Err(AppError::invalid("change", "no change given"));
    })
}

/// What would change, without changing it: per user and action, how many customers (or, for a
/// share, records of the shared object) they would gain and lose, with samples. Computed from
/// the engine, per-(owner, unit) counts and SQL counts; never record by record.
#[utoipa::path(post, path = "/api/v1/access/whatif", tag = "access", security(("bearer" = [])), request_body = WhatIfBody,
    responses((status = 200, description = "`{\"object\": \"customers\", \"changes\": [{\"user\", \"action\", \"gained\", \"lost\", \"gained_samples\", \"lost_samples\"}], \"users_examined\", \"cells\", \"counted_in_sql\", \"field_changes\": [{\"user\", \"action\", \"object\", \"field\", \"before\", \"after\"}]}`"),
              (status = 403, description = "needs the permission the change needs"), (status = 422)))]
async fn what_if(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<WhatIfBody>,
) -> ApiResult<Json<serde_json::Value>> {
    let change = what_if_change(body)?;
    let report = state.warden.what_if(&subject, &change).await?;
    Ok(Json(serde_json::json!({
        "object": report.object.as_str(),
        "changes": report.changes.iter().map(|c| serde_json::json!({
            "user": c.user,
            "action": c.action.as_str(),
            "gained": c.gained,
            "lost": c.lost,
            "gained_samples": c.gained_samples,
            "lost_samples": c.lost_samples,
        })).collect::<Vec<_>>(),
        "users_examined": report.users_examined,
        "cells": report.cells,
        "counted_in_sql": report.counted_in_sql,
        "field_changes": report.field_changes.iter().map(|f| serde_json::json!({
            "user": f.user,
            "action": f.action.as_str(),
            "object": f.object.as_str(),
            "field": f.field,
            "before": f.before.as_str(),
            "after": f.after.as_str(),
        })).collect::<Vec<_>>(),
    })))
}

/// Apply a change read through what-if, with the same payload (as its admin call would).
#[utoipa::path(post, path = "/api/v1/access/whatif/apply", tag = "access", security(("bearer" = [])), request_body = WhatIfBody,
    responses((status = 204), (status = 202, description = "held under four eyes"), (status = 403), (status = 409), (status = 422)))]
async fn apply_what_if(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<WhatIfBody>,
) -> ApiResult<Response> {
    let change = what_if_change(body)?;
    let result = state.warden.apply_what_if(&subject, change).await?;
    Ok(outcome(result, StatusCode::NO_CONTENT, |()| {
        StatusCode::NO_CONTENT.into_response()
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/access/whatif", axum::routing::post(what_if))
        .route("/access/whatif/apply", axum::routing::post(apply_what_if))
        .route("/users", get(list_users).post(create_user))
        .route("/users/{username}", get(get_user).patch(patch_user))
        .route("/units", get(list_units).post(create_unit))
        .route("/units/{name}", axum::routing::patch(patch_unit))
        .route("/roles", get(list_roles).post(create_role))
        .route("/roles/{id}", get(get_role).put(put_role))
        .route("/access/explain", get(explain))
        .route("/objects", get(list_objects))
        .route("/objects/{object}/control", axum::routing::put(put_control))
}
