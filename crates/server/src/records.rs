//! The records API: `/{object}` and `/{object}/{id}` for customers, contacts, deals,
//! contracts and activities.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value as Json_};
use warden_policy::ObjectType;

use crate::approvals::outcome;
use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::{record_input, record_json, value_json, JsonBody};
use crate::AppState;
use warden_service::ListQuery;

fn object(name: &str) -> ApiResult<ObjectType> {
    ObjectType::parse(name).map_err(|_| AppError::not_found())
}

/// Ids in paths: anything that is not one is simply not found.
fn record_id(text: &str) -> ApiResult<i64> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(AppError::not_found)
}

fn whole_number(params: &HashMap<String, String>, name: &str) -> ApiResult<Option<i64>> {
    params
        .get(name)
        .map(|v| {
            v.parse::<i64>()
                .map_err(|_| AppError::invalid(name, "must be a whole number"))
        })
        .transpose()
}

/// List the records the caller may read, 50 (or `limit`) at a time, in id order; any other
/// query parameter `field=value` keeps only records whose field equals the value.
#[utoipa::path(get, path = "/api/v1/{object}", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path, description = "customers, contacts, deals, contracts or activities"),
           ("limit" = Option<u32>, Query, description = "1 to 200, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
           ("sort" = Option<String>, Query, description = "only `id` (the default): lists are in id order"),
           ("field" = Option<String>, Query, description = "`FIELD=VALUE`, repeatable: equality on a field readable on every record you can see (403 for a field hidden or masked from you, 422 for an encrypted one)")),
    responses((status = 200, description = "`{\"items\": [record…], \"next_cursor\": string|null}`; only readable records, unreadable fields absent"),
              (status = 401), (status = 403, description = "filtered or sorted by a field hidden from the caller"),
              (status = 422, description = "bad limit, cursor or field")))]
async fn list(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(object_name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Json_>> {
    let object = object(&object_name)?;
    let mut query = ListQuery::default();
    for (name, value) in params {
        match name.as_str() {
            "limit" => {
                query.limit = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| AppError::invalid("limit", "must be between 1 and 200"))?,
                );
            }
            "cursor" => query.cursor = Some(value),
            "sort" => query.sort = Some(value),
            _ => query.matching.push((name, value)),
        }
    }
    let page = state.warden.query_records(&subject, object, &query).await?;
    Ok(Json(json!({
        "items": page.items.iter().map(record_json).collect::<Vec<_>>(),
        "next_cursor": page.next_cursor,
    })))
}

/// Read one record: 404 when it does not exist or the caller may not read it.
#[utoipa::path(get, path = "/api/v1/{object}/{id}", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path)),
    responses((status = 200, description = "the record"), (status = 401), (status = 404, description = "missing or not readable")))]
async fn read(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, id)): Path<(String, String)>,
) -> ApiResult<Json<Json_>> {
    let object = object(&object_name)?;
    let view = state
        .warden
        .get_record(&subject, object, record_id(&id)?)
        .await?;
    Ok(Json(record_json(&view)))
}

/// Create a record, owned by the caller unless `owner` names someone in the caller's scope.
#[utoipa::path(post, path = "/api/v1/{object}", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path)),
    request_body(content = Object, description = "field values; `customer_id` for records of a customer; optional `owner` (username)"),
    responses((status = 201, description = "the new record"), (status = 202, description = "held for approval: `{\"approval\": {\"id\", \"state\": \"pending\", \"approvers\": […]}}`"),
              (status = 401), (status = 403, description = "create not allowed"),
              (status = 422, description = "bad input, naming the field")))]
async fn create(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(object_name): Path<String>,
    JsonBody(body): JsonBody<Json_>,
) -> ApiResult<Response> {
    let object = object(&object_name)?;
    let (input, version) = record_input(object, body)?;
    if version.is_some() {
        return Err(AppError::invalid(
            "version",
            "is set by the server and cannot be written",
        ));
    }
    let result = state.warden.create_record(&subject, object, input).await?;
    Ok(outcome(result, StatusCode::CREATED, |view| {
        Json(record_json(&view)).into_response()
    }))
}

/// Change fields of a record: send the changed fields and the `version` you read.
#[utoipa::path(patch, path = "/api/v1/{object}/{id}", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path)),
    request_body(content = Object, description = "changed fields and the `version` read"),
    responses((status = 200, description = "the updated record"), (status = 202, description = "held for approval (see create)"), (status = 401), (status = 403, description = "visible but not updatable"),
              (status = 404), (status = 409, description = "stale version"), (status = 422)))]
async fn update(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Json_>,
) -> ApiResult<Response> {
    let object = object(&object_name)?;
    let id = record_id(&id)?;
    let (input, version) = record_input(object, body)?;
    let result = state
        .warden
        .update_record(&subject, object, id, version, input)
        .await?;
    Ok(outcome(result, StatusCode::OK, |view| {
        Json(record_json(&view)).into_response()
    }))
}

/// The full value of a field shown masked (or in full): every reveal is written to the
/// access log before the value is returned.
#[utoipa::path(post, path = "/api/v1/{object}/{id}/fields/{field}/reveal", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path), ("field" = String, Path)),
    responses((status = 200, description = "`{\"field\": name, \"value\": full value}`"), (status = 401),
              (status = 403, description = "the field is hidden from the caller"), (status = 404, description = "missing or not readable"),
              (status = 422, description = "no such field")))]
async fn reveal(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, id, field)): Path<(String, String, String)>,
) -> ApiResult<Json<Json_>> {
    let object = object(&object_name)?;
    let id = record_id(&id)?;
    let value = state
        .warden
        .reveal_field(&subject, object, id, &field)
        .await?;
    Ok(Json(json!({"field": field, "value": value_json(&value)})))
}

/// Delete a record (optionally only at `?version=`).
#[utoipa::path(delete, path = "/api/v1/{object}/{id}", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path), ("version" = Option<i64>, Query)),
    responses((status = 204), (status = 202, description = "held for approval (see create)"), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn delete(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let object = object(&object_name)?;
    let id = record_id(&id)?;
    let version = whole_number(&params, "version")?;
    let result = state
        .warden
        .delete_record(&subject, object, id, version)
        .await?;
    Ok(outcome(result, StatusCode::NO_CONTENT, |()| {
        StatusCode::NO_CONTENT.into_response()
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{object}", get(list).post(create))
        .route("/{object}/{id}", get(read).patch(update).delete(delete))
        .route("/{object}/{id}/fields/{field}/reveal", post(reveal))
}
