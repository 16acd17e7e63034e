//! The service's error type: what a caller did wrong, or that something failed inside.

use warden_store::StoreError;

/// One error enum for every use case; the server maps each variant to one HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// No valid credentials (401). The same for an unknown user and a wrong password.
    #[error("invalid credentials")]
    Unauthenticated,
    /// Authenticated, but the action is not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// The record may be acted on, but not this field (403, naming the field): a write that
    /// touches it is refused whole, and a list may not be filtered by it.
    #[error("{field}: {message}")]
    FieldForbidden { field: String, message: String },
    /// Missing, or not visible to the caller (404): existence is not leaked.
    #[error("not found")]
    NotFound,
    /// The record changed since the caller read it, or a name is taken (409).
    #[error("{0}")]
    Conflict(String),
    /// Bad input (422), naming the field.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The password was right but a second factor is due (401 `mfa_required`), or a role
    /// requires one and the user must enrol before anything else (403 `mfa_required`).
    #[error("a second factor is required")]
    MfaRequired { enrolled: bool },
    /// Too many failed logins for this user or address (429, with `Retry-After`).
    #[error("too many failed attempts; try again in {retry_after_s} s")]
    Throttled { retry_after_s: i64 },
    /// An access rule refuses this address or time (403 with the rule's code).
    #[error("access refused by an access rule: {}", .0.code())]
    AccessDenied(warden_policy::access::AccessDenial),
    /// Something failed inside (500); the message is logged, not shown.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ServiceError {
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        ServiceError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NotFound => ServiceError::NotFound,
            StoreError::Conflict => ServiceError::Conflict(
                "the record was changed by someone else; read it again".into(),
            ),
            // The database's own text names constraints and tables, and differs between
            // SQLite and PostgreSQL: it goes to the server's log, the caller gets a plain
            // sentence (the use cases check the usual cases first and say precisely).
            StoreError::Duplicate(what) => {
                tracing::debug!(database = %what, "unique constraint");
                ServiceError::Conflict("something with the same name or key already exists".into())
            }
            // A customer with portal users, a unit with members, …: the caller can resolve it.
            StoreError::Reference(what) => {
                tracing::debug!(database = %what, "foreign key");
                ServiceError::Conflict(
                    "other data still refers to it (for example a portal user of this customer \
                     account, or the members of this unit): change or remove that first"
                        .into(),
                )
            }
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

impl From<warden_policy::schema::InvalidValue> for ServiceError {
    fn from(error: warden_policy::schema::InvalidValue) -> Self {
        ServiceError::Invalid {
            field: error.field,
            message: error.message,
        }
    }
}
