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
