//! The wire format: a JSON body extractor with clear errors, and records to and from JSON.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;
use serde_json::{Map, Number, Value as Json};
use warden_policy::schema::{schema, FieldKind, Value};

use warden_service::{RecordInput, RecordView};

use crate::error::AppError;

/// A JSON body: 400 when it is not JSON, 422 naming the field when it does not fit.
pub struct JsonBody<T>(pub T);

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("application/json")
            .to_owned();
        if !content_type.starts_with("application/json") {
            return Err(AppError::BadRequest(
                "the body must be JSON (Content-Type: application/json)".into(),
            ));
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(body_rejection)?;
        let value: Json = serde_json::from_slice(&bytes)
            .map_err(|e| AppError::BadRequest(format!("malformed JSON: {e}")))?;
        // Every body of the API is an object. serde would also read a struct from an array
        // (its fields by position), so `[]` would be a body with every field left out.
        if !value.is_object() {
            return Err(AppError::invalid("body", "must be a JSON object"));
        }
        parse_value(value).map(JsonBody)
    }
}

/// A body that could not be read: 413 when over the limit, 400 otherwise.
fn body_rejection(rejection: axum::extract::rejection::BytesRejection) -> AppError {
    if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        AppError::TooLarge
    } else {
        AppError::BadRequest(format!("cannot read the body: {}", rejection.body_text()))
    }
}

/// A JSON body that may be left out: an empty body is `T::default()` (a decision without a
/// comment, say); anything else is read as [`JsonBody`] reads it.
pub struct OptionalJsonBody<T>(pub T);

impl<S, T> FromRequest<S> for OptionalJsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Default,
{
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let (parts, body) = request.into_parts();
        let bytes = Bytes::from_request(Request::from_parts(parts.clone(), body), state)
            .await
            .map_err(body_rejection)?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJsonBody(T::default()));
        }
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        JsonBody::from_request(request, state)
            .await
            .map(|JsonBody(value)| OptionalJsonBody(value))
    }
}

/// Turns a JSON value into `T`, naming the offending field on failure.
pub fn parse_value<T: DeserializeOwned>(value: Json) -> Result<T, AppError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        // serde names a missing or unknown field in its message; a wrong type has a path.
        let field = if path == "." {
            inner
                .split('`')
                .nth(1)
                .map(str::to_owned)
                .unwrap_or_else(|| "body".to_owned())
        } else {
            path
        };
        AppError::invalid(field, inner)
    })
}

/// Milliseconds to RFC 3339.
pub fn timestamp(ms: i64) -> Json {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| Json::String(t.to_string()))
        .unwrap_or(Json::Null)
}

/// RFC 3339 to milliseconds.
pub fn parse_timestamp(field: &str, text: &str) -> Result<i64, AppError> {
    text.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|_| {
            AppError::invalid(
                field,
                "must be an RFC 3339 time such as 2027-01-31T18:00:00Z",
            )
        })
}

pub(crate) fn value_json(value: &Value) -> Json {
    match value {
        Value::Null => Json::Null,
        Value::Text(text) => Json::String(text.clone()),
        Value::Integer(n) => Json::Number(Number::from(*n)),
        Value::Bool(b) => Json::Bool(*b),
    }
}

/// A record as JSON: its fields, then `id`, `owner`, `unit`, `version` and times. Fields
/// hidden from the caller are absent; masked ones hold their masked text and are named in
/// `masked_fields` (their full value is at `…/{id}/fields/{field}/reveal`).
pub fn record_json(view: &RecordView) -> Json {
    let record = &view.record;
    let mut map = Map::new();
    map.insert("id".into(), Json::from(record.id));
    if let Some(customer_id) = record.customer_id {
        map.insert("customer_id".into(), Json::from(customer_id));
    }
    let mut masked = Vec::new();
    for (name, value, level) in view.visible_fields() {
        map.insert(name.into(), value_json(value));
        if level == warden_policy::FieldAccess::Masked {
            masked.push(Json::from(name));
        }
    }
    if !masked.is_empty() {
        map.insert("masked_fields".into(), Json::Array(masked));
    }
    map.insert("owner".into(), Json::String(view.owner_username.clone()));
    map.insert("unit".into(), Json::String(view.unit_name.clone()));
    map.insert("version".into(), Json::from(record.version));
    map.insert("created_at".into(), timestamp(record.created_at));
    map.insert("updated_at".into(), timestamp(record.updated_at));
    Json::Object(map)
}

/// Keys a client may not set: the server owns them.
const SERVER_OWNED: &[&str] = &["id", "unit", "created_at", "updated_at"];

/// A create or update body: field values plus `owner`, `customer_id` and `version`.
pub fn record_input(
    object: warden_policy::ObjectType,
    body: Json,
) -> Result<(RecordInput, Option<i64>), AppError> {
    let Json::Object(map) = body else {
        return Err(AppError::invalid("body", "must be a JSON object"));
    };
    let schema = schema(object);
    let mut input = RecordInput::default();
    let mut version = None;
    for (key, value) in map {
        match key.as_str() {
            "version" => {
                version = Some(
                    value
                        .as_i64()
                        .ok_or_else(|| AppError::invalid("version", "must be a whole number"))?,
                );
            }
            "customer_id" => {
                input.customer_id =
                    Some(value.as_i64().ok_or_else(|| {
                        AppError::invalid("customer_id", "must be a whole number")
                    })?);
            }
            "owner" => {
                input.owner = Some(
                    value
                        .as_str()
                        .ok_or_else(|| AppError::invalid("owner", "must be a username"))?
                        .to_owned(),
                );
            }
            key if SERVER_OWNED.contains(&key) => {
                return Err(AppError::invalid(
                    key,
                    "is set by the server and cannot be written",
                ));
            }
            _ => {
                let kind = schema.field(&key).map(|(_, def)| def.kind);
                let value = match (value, kind) {
                    (Json::Null, _) => Value::Null,
                    (Json::String(text), _) => Value::Text(text),
                    (Json::Bool(b), _) => Value::Bool(b),
                    (Json::Number(n), _) => match n.as_i64() {
                        Some(n) => Value::Integer(n),
                        None => {
                            let what = kind.map(|k| k.describe()).unwrap_or("a whole number");
                            return Err(AppError::invalid(key, format!("must be {what}")));
                        }
                    },
                    (_, Some(FieldKind::Text { .. })) | (_, None) => {
                        return Err(AppError::invalid(
                            key,
                            "must be a string, a number, true, false or null",
                        ))
                    }
                    (_, Some(kind)) => {
                        return Err(AppError::invalid(
                            key,
                            format!("must be {}", kind.describe()),
                        ))
                    }
                };
                input.fields.push((key, value));
            }
        }
    }
    Ok((input, version))
}
