//! The web console: server-rendered pages at `/` for people who do not use curl.
//!
//! Every page calls the same `warden_service` use cases as the JSON API, with the same
//! [`Subject`] from the same session (the `warden_session` cookie the API's login sets too), so
//! the console can show nothing and do nothing the API would refuse. This module owns what all
//! pages share: the signed-in caller ([`Console`]), CSRF tokens on every state-changing form
//! ([`Posted`]), the security headers of every answer, errors as HTML pages, and the static
//! assets (one stylesheet, one script; no inline script, so the CSP forbids it outright).

mod approvals;
pub(crate) mod assets;
mod audit;
mod auth;
mod customers;
mod dashboard;
mod org;
mod reviews;
mod roles;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use warden_policy::Permission;
use warden_service::{ServiceError, Subject};

use crate::auth::{client_address, request_token};
use crate::error::AppError;
use crate::{now_ms, AppState};

/// The console's routes; `lib.rs` merges them at the root beside `/api/v1`.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/customers", get(customers::list))
        .route(
            "/customers/{id}",
            get(customers::record).post(customers::update),
        )
        .route(
            "/customers/new",
            get(customers::new_form).post(customers::create),
        )
        .route("/customers/{id}/reveal", post(customers::reveal))
        .route("/customers/{id}/delete", post(customers::delete))
        .route("/customers/{id}/explain", get(customers::explain))
        .route("/approvals", get(approvals::list))
        .route("/approvals/policies", get(approvals::policies))
        .route("/approvals/{id}", get(approvals::one))
        .route("/approvals/{id}/{decision}", post(approvals::decide))
        .route("/admin/org", get(org::tree))
        .route("/admin/org/move", get(org::preview).post(org::apply))
        .route("/admin/roles", get(roles::matrix))
        .route("/admin/roles/{id}", post(roles::apply))
        .route("/admin/roles/{id}/edit", get(roles::edit))
        .route("/admin/roles/{id}/preview", get(roles::preview))
        .route("/audit", get(audit::log))
        .route("/reviews", get(reviews::index).post(reviews::open))
        .route("/reviews/{id}/close", post(reviews::close))
        .route("/reviews/{id}", get(reviews::campaign))
        .route("/reviews/{id}/items/{item}", post(reviews::decide))
        .route("/static/{file}", get(assets::serve))
        .layer(axum::middleware::from_fn_with_state(
            state,
            error_pages_with_nav,
        ))
        .layer(axum::middleware::map_response(security_headers))
}

/// What an error page said, kept on the response so that [`error_pages_with_nav`] can render
/// it again with the navigation bar.
#[derive(Clone, Debug)]
struct ShownError {
    title: &'static str,
    message: String,
}

/// An error page of a signed-in user keeps the navigation bar (and its sign-out button). The
/// error itself is rendered without knowing the caller; only when there is one is the session
/// read again (one query, on errors only), through the same authentication as every page.
async fn error_pages_with_nav(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let token = request_token(&parts.headers);
    let client = client_address(&parts, &state.config.trusted_proxies);
    let response = next.run(Request::from_parts(parts, body)).await;
    let (Some(shown), Some(token)) = (response.extensions().get::<ShownError>().cloned(), token)
    else {
        return response;
    };
    let Ok(subject) = state.warden.authenticate(&token, client, now_ms()).await else {
        return response;
    };
    if subject.mfa_pending {
        return response;
    }
    let console = Console {
        csrf: csrf_token(&token),
        subject,
    };
    let status = response.status();
    let page = ErrorPage {
        nav: console.nav(""),
        status: status.as_u16(),
        title: shown.title,
        message: shown.message,
    };
    match page.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(_) => response,
    }
}

/// The Content-Security-Policy of every console answer: nothing from elsewhere, no inline
/// script or style, no framing, forms only back to the console.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
    object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        HeaderName::from_static("x-content-type-options"),
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        HeaderName::from_static("x-frame-options"),
        HeaderValue::from_static("DENY"),
    );
    headers.insert(
        HeaderName::from_static("referrer-policy"),
        HeaderValue::from_static("same-origin"),
    );
    // Pages show customer data: no cache may keep them. Assets set their own header first.
    if !headers.contains_key(CACHE_CONTROL) {
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// What the navigation bar of every page needs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Nav {
    pub signed_in: bool,
    pub username: String,
    /// The session's CSRF token, put into every form.
    pub csrf: String,
    pub manage_users: bool,
    pub manage_roles: bool,
    pub view_audit: bool,
    /// Which entry of the bar is the current page.
    pub current: &'static str,
}

impl Nav {
    fn anonymous() -> Nav {
        Nav::default()
    }
}

/// The signed-in caller of a console page: the API's [`Subject`], from the session cookie.
/// A request without a valid session is sent to the login form.
pub(crate) struct Console {
    pub subject: Subject,
    pub csrf: String,
}

impl Console {
    /// The navigation bar, with `current` marked.
    pub fn nav(&self, current: &'static str) -> Nav {
        Nav {
            signed_in: true,
            username: self.subject.username.clone(),
            csrf: self.csrf.clone(),
            manage_users: self.subject.can(Permission::ManageUsers),
            manage_roles: self.subject.can(Permission::ManageRoles),
            view_audit: self.subject.can(Permission::ViewAudit),
            current,
        }
    }
}

/// The CSRF token of a session: HMAC-SHA256 keyed by the session's token. The session token
/// is 256 random bits the page never sees (the cookie is `HttpOnly`), so the CSRF token is
/// as unguessable as a random one, is bound to this session alone, dies with it, and needs no
/// server-side state (any server node computes the same).
pub(crate) fn csrf_token(session_token: &str) -> String {
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(session_token.as_bytes()) else {
        return String::new();
    };
    mac.update(b"warden console csrf v1");
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `given` is `expected`, in time independent of where they differ.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    !expected.is_empty() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

impl FromRequestParts<AppState> for Console {
    type Rejection = ConsoleError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = request_token(&parts.headers).ok_or(ServiceError::Unauthenticated)?;
        let client = client_address(parts, &state.config.trusted_proxies);
        let subject = state.warden.authenticate(&token, client, now_ms()).await?;
        if subject.mfa_pending {
            return Err(ServiceError::MfaRequired { enrolled: false }.into());
        }
        // View-as tokens are for the read-only API; the console's forms change things.
        if subject.viewer.is_some() {
            return Err(ServiceError::Unauthenticated.into());
        }
        Ok(Console {
            csrf: csrf_token(&token),
            subject,
        })
    }
}

/// A submitted form of a signed-in caller whose CSRF token matched: every state-changing
/// console route takes this, so none can be reached by a form posted from another site.
pub(crate) struct Posted {
    pub console: Console,
    pub fields: Vec<(String, String)>,
}

impl Posted {
    /// The first value of a field, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        form_value(&self.fields, name)
    }
}

pub(crate) fn form_value<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(key, _)| key == name)
        .map_or("", |(_, value)| value.as_str())
}

impl FromRequest<AppState> for Posted {
    type Rejection = ConsoleError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = request.into_parts();
        let console = Console::from_request_parts(&mut parts, state).await?;
        let request = Request::from_parts(parts, body);
        let axum::Form(fields) = axum::Form::<Vec<(String, String)>>::from_request(request, state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
        if !same_secret(form_value(&fields, "csrf"), &console.csrf) {
            return Err(ConsoleError::csrf());
        }
        Ok(Posted { console, fields })
    }
}

/// An error answered as an HTML page (or, for a missing session, a redirect to the login
/// form). It carries the API's [`AppError`], so the status codes are the API's.
#[derive(Debug)]
pub(crate) enum ConsoleError {
    App(AppError),
    /// A state-changing form without its session's CSRF token (403).
    Csrf,
}

impl ConsoleError {
    fn csrf() -> Self {
        ConsoleError::Csrf
    }
}

impl From<AppError> for ConsoleError {
    fn from(error: AppError) -> Self {
        ConsoleError::App(error)
    }
}

impl From<ServiceError> for ConsoleError {
    fn from(error: ServiceError) -> Self {
        ConsoleError::App(AppError::Service(error))
    }
}

impl From<askama::Error> for ConsoleError {
    fn from(error: askama::Error) -> Self {
        ServiceError::Internal(format!("template: {error}")).into()
    }
}

pub(crate) type PageResult<T = Response> = Result<T, ConsoleError>;

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    nav: Nav,
    status: u16,
    title: &'static str,
    message: String,
}

/// A redirect after a form (303: the browser follows with a GET).
pub(crate) fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(LOCATION, value);
    }
    response
}

/// A rendered page.
pub(crate) fn render(page: &impl Template) -> PageResult {
    Ok(Html(page.render()?).into_response())
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        let (status, title, message) = match self {
            ConsoleError::Csrf => (
                StatusCode::FORBIDDEN,
                "Refused",
                "This form was not sent from a page of this console (its security token is missing or wrong). Reload the page and try again.".to_owned(),
            ),
            ConsoleError::App(AppError::BadRequest(message)) => {
                (StatusCode::BAD_REQUEST, "Bad request", message)
            }
            ConsoleError::App(AppError::Service(error)) => match error {
                ServiceError::Unauthenticated => return see_other("/login"),
                ServiceError::NotFound => (
                    StatusCode::NOT_FOUND,
                    "Not found",
                    "There is nothing here, or nothing you may see.".to_owned(),
                ),
                ServiceError::Forbidden(message) => (StatusCode::FORBIDDEN, "Not allowed", message),
                error @ ServiceError::FieldForbidden { .. } => {
                    (StatusCode::FORBIDDEN, "Not allowed", error.to_string())
                }
                error @ ServiceError::Conflict(_) => {
                    (StatusCode::CONFLICT, "Conflict", error.to_string())
                }
                error @ ServiceError::Invalid { .. } => (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "Invalid input",
                    error.to_string(),
                ),
                ServiceError::MfaRequired { .. } => (
                    StatusCode::FORBIDDEN,
                    "Second factor required",
                    "A role of yours requires a second factor. Enrol one (POST /api/v1/me/mfa/totp), then sign in again.".to_owned(),
                ),
                error @ ServiceError::Throttled { .. } => {
                    (StatusCode::TOO_MANY_REQUESTS, "Too many attempts", error.to_string())
                }
                ServiceError::AccessDenied(denial) => (
                    StatusCode::FORBIDDEN,
                    "Access refused",
                    format!("An access rule refuses this request ({}).", denial.code()),
                ),
                ServiceError::Internal(message) => {
                    tracing::error!(%message, "internal error");
                    (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "Something went wrong",
                        "Internal error; see the server log.".to_owned(),
                    )
                }
            },
        };
        let page = ErrorPage {
            nav: Nav::anonymous(),
            status: status.as_u16(),
            title,
            message,
        };
        let mut response = match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(_) => {
                (status, [(CONTENT_TYPE, "text/plain; charset=utf-8")], title).into_response()
            }
        };
        response.extensions_mut().insert(ShownError {
            title,
            message: page.message,
        });
        response
    }
}

/// Milliseconds since the epoch as a short UTC time for people.
pub(crate) fn when(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_default()
}

/// A value of a record as text (empty for none).
pub(crate) fn value_text(value: &warden_policy::schema::Value) -> String {
    use warden_policy::schema::Value;
    match value {
        Value::Null => String::new(),
        Value::Text(text) => text.clone(),
        Value::Integer(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
    }
}
