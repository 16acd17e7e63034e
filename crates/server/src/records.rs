//! The records API: `/{object}` and `/{object}/{id}` for customers, contacts, deals,
//! contracts and activities.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value as Json_};
use warden_policy::ObjectType;

use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::{record_input, record_json, JsonBody};
use crate::AppState;

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

/// List the records the caller may read, 50 (or `limit`) at a time, in id order.
#[utoipa::path(get, path = "/api/v1/{object}", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path, description = "customers, contacts, deals, contracts or activities"),
           ("limit" = Option<u32>, Query, description = "1 to 200, default 50"),
           ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "`{\"items\": [record…], \"next_cursor\": string|null}`; only readable records, unreadable fields absent"),
              (status = 401), (status = 422, description = "bad limit or cursor")))]
async fn list(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(object_name): Path<String>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<Json<Json_>> {
    let object = object(&object_name)?;
    let limit = whole_number(&params, "limit")?
        .map(|n| {
            u32::try_from(n).map_err(|_| AppError::invalid("limit", "must be between 1 and 200"))
        })
        .transpose()?;
    let page = state
        .warden
        .list_records(
            &subject,
            object,
            params.get("cursor").map(String::as_str),
            limit,
        )
        .await?;
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
    responses((status = 201, description = "the new record"), (status = 401), (status = 403, description = "create not allowed"),
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
    let view = state.warden.create_record(&subject, object, input).await?;
    Ok((StatusCode::CREATED, Json(record_json(&view))).into_response())
}

/// Change fields of a record: send the changed fields and the `version` you read.
#[utoipa::path(patch, path = "/api/v1/{object}/{id}", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path)),
    request_body(content = Object, description = "changed fields and the `version` read"),
    responses((status = 200, description = "the updated record"), (status = 401), (status = 403, description = "visible but not updatable"),
              (status = 404), (status = 409, description = "stale version"), (status = 422)))]
async fn update(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Json_>,
) -> ApiResult<Json<Json_>> {
    let object = object(&object_name)?;
    let id = record_id(&id)?;
    let (input, version) = record_input(object, body)?;
    let view = state
        .warden
        .update_record(&subject, object, id, version, input)
        .await?;
    Ok(Json(record_json(&view)))
}

/// Delete a record (optionally only at `?version=`).
#[utoipa::path(delete, path = "/api/v1/{object}/{id}", tag = "records", security(("bearer" = [])),
    params(("object" = String, Path), ("id" = i64, Path), ("version" = Option<i64>, Query)),
    responses((status = 204), (status = 401), (status = 403), (status = 404), (status = 409)))]
async fn delete(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path((object_name, id)): Path<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
) -> ApiResult<StatusCode> {
    let object = object(&object_name)?;
    let id = record_id(&id)?;
    let version = whole_number(&params, "version")?;
    state
        .warden
        .delete_record(&subject, object, id, version)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/{object}", get(list).post(create))
        .route("/{object}/{id}", get(read).patch(update).delete(delete))
}
