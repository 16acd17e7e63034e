//! One error type for every handler, mapped to a status code and a JSON body. Internal errors
//! are logged here and never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;
use warden_service::ServiceError;

/// An error answered to the client.
#[derive(Debug)]
pub enum AppError {
    /// What the service refused or failed at.
    Service(ServiceError),
    /// The request itself is malformed (400): not JSON, wrong content type.
    BadRequest(String),
    /// The body is larger than the server accepts (413).
    TooLarge,
}

impl AppError {
    pub fn not_found() -> Self {
        AppError::Service(ServiceError::NotFound)
    }

    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::Service(ServiceError::Invalid {
            field: field.into(),
            message: message.into(),
        })
    }
}

impl From<ServiceError> for AppError {
    fn from(error: ServiceError) -> Self {
        AppError::Service(error)
    }
}

/// Handlers return this.
pub type ApiResult<T> = Result<T, AppError>;

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let error = match self {
            AppError::Service(error) => error,
            AppError::BadRequest(message) => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "bad_request", "message": message})),
                )
                    .into_response()
            }
            AppError::TooLarge => {
                return (
                    StatusCode::PAYLOAD_TOO_LARGE,
                    Json(json!({"error": "payload_too_large", "message": format!("the body is larger than the {} bytes accepted", crate::MAX_BODY_BYTES)})),
                )
                    .into_response()
            }
        };
        let (status, body) = match error {
            ServiceError::Unauthenticated => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthenticated", "message": "invalid or missing credentials"}),
            ),
            ServiceError::Forbidden(message) => (
                StatusCode::FORBIDDEN,
                json!({"error": "forbidden", "message": message}),
            ),
            ServiceError::FieldForbidden { field, message } => (
                StatusCode::FORBIDDEN,
                json!({"error": "forbidden", "field": field, "message": format!("{field}: {message}")}),
            ),
            ServiceError::NotFound => (
                StatusCode::NOT_FOUND,
                json!({"error": "not_found", "message": "not found"}),
            ),
            ServiceError::Conflict(message) => (
                StatusCode::CONFLICT,
                json!({"error": "conflict", "message": message}),
            ),
            ServiceError::Invalid { field, message } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                json!({"error": "invalid", "field": field, "message": format!("{field}: {message}")}),
            ),
            ServiceError::MfaRequired { enrolled: true } => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "mfa_required", "message": "send the current code as `totp` (or a `recovery_code`)"}),
            ),
            ServiceError::MfaRequired { enrolled: false } => (
                StatusCode::FORBIDDEN,
                json!({"error": "mfa_required", "message": "a role of yours requires a second factor: enrol at POST /api/v1/me/mfa/totp"}),
            ),
            ServiceError::Throttled { retry_after_s } => {
                let mut response = (
                    StatusCode::TOO_MANY_REQUESTS,
                    Json(json!({"error": "too_many_attempts", "message": format!("too many failed attempts; try again in {retry_after_s} s")})),
                )
                    .into_response();
                if let Ok(value) = axum::http::HeaderValue::from_str(&retry_after_s.to_string()) {
                    response.headers_mut().insert("retry-after", value);
                }
                return response;
            }
            ServiceError::AccessDenied(denial) => (
                StatusCode::FORBIDDEN,
                json!({"error": denial.code(), "message": match denial {
                    warden_policy::access::AccessDenial::IpNotAllowed => "your address is not allowed by an access rule",
                    warden_policy::access::AccessDenial::OutsideLoginHours => "it is outside your login hours",
                    warden_policy::access::AccessDenial::MfaRequired => "a second factor is required",
                }}),
            ),
            ServiceError::Internal(message) => {
                tracing::error!(%message, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal", "message": "internal error; see the server log"}),
                )
            }
        };
        let mut response = (status, Json(body)).into_response();
        if status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                "www-authenticate",
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

/// The stable `error` code of a status that axum answers on its own.
fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::UNAUTHORIZED => "unauthenticated",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        s if s.is_server_error() => "internal",
        _ => "error",
    }
}

/// The longest refusal text of axum's kept as the message (it names what did not parse).
const MAX_MESSAGE_BYTES: usize = 1024;

/// Rewrites an error answer that is not JSON (axum's rejections of a path, a query or a
/// method, a body over the limit) into `{"error", "message"}`, keeping its status and headers
/// (`Allow`, `Retry-After`). A server error's text is never shown: it could hold internals.
pub(crate) async fn json_errors(
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let is_json = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, MAX_MESSAGE_BYTES)
        .await
        .map(|bytes| String::from_utf8_lossy(&bytes).trim().to_owned())
        .unwrap_or_default();
    let message = if status.is_server_error() || text.is_empty() {
        status
            .canonical_reason()
            .unwrap_or("request refused")
            .to_lowercase()
    } else {
        text
    };
    if status.is_server_error() {
        tracing::error!(%status, "a non-JSON server error was answered as internal");
    }
    parts.headers.remove(axum::http::header::CONTENT_TYPE);
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    let mut answer = (
        status,
        Json(json!({"error": code_of(status), "message": message})),
    )
        .into_response();
    for (name, value) in parts.headers.iter() {
        answer.headers_mut().insert(name.clone(), value.clone());
    }
    answer
}

/// A handler that panicked: 500 with the usual body; the panic's message goes to the log only.
pub(crate) fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic without a message");
    tracing::error!(%detail, "a request handler panicked");
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        Json(json!({"error": "internal", "message": "internal error; see the server log"})),
    )
        .into_response()
}
