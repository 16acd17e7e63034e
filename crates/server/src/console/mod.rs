//! The web console: server-rendered pages at `/` for people who do not use curl.
//!
//! Every page calls the same `warden_service` use cases as the JSON API, with the same
//! [`Subject`] from the same session (the `warden_session` cookie the API's login sets too), so
//! the console can show nothing and do nothing the API would refuse. This module owns what all
//! pages share: the signed-in caller ([`Console`]), CSRF tokens on every state-changing form
//! ([`Posted`]), the security headers of every answer, errors as HTML pages, and the static
//! assets (one stylesheet, one script; no inline script, so the CSP forbids it outright).

mod access;
mod approvals;
pub(crate) mod assets;
mod audit;
mod auth;
mod customers;
mod dashboard;
mod i18n;
mod org;
mod policies;
mod reviews;
mod roles;
mod rules;
mod sharing;
mod view_as;

use askama::Template;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use warden_policy::Permission;
use warden_service::{ServiceError, Subject};

use crate::auth::{client_address, cookie_value, request_token};
use crate::error::AppError;
use crate::{now_ms, AppState};

/// The console's routes; `lib.rs` merges them at the root beside `/api/v1`.
pub fn router(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard::page))
        .route("/login", get(auth::login_form).post(auth::login))
        .route("/logout", post(auth::logout))
        .route("/lang/{code}", get(i18n::switch))
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
        .route("/customers/{id}/shares", post(sharing::share))
        .route("/customers/{id}/team", post(sharing::add_member))
        .route(
            "/customers/{id}/shares/{share}/revoke",
            post(sharing::revoke),
        )
        .route("/approvals", get(approvals::list))
        .route("/approvals/policies", get(policies::list))
        .route(
            "/approvals/policies/new",
            get(policies::new_form).post(policies::create),
        )
        .route(
            "/approvals/policies/{id}",
            get(policies::edit_form).post(policies::update),
        )
        .route("/approvals/policies/{id}/delete", post(policies::delete))
        .route("/approvals/{id}", get(approvals::one))
        .route("/approvals/{id}/{decision}", post(approvals::decide))
        .route("/admin/org", get(org::tree))
        .route("/admin/org/move", get(org::preview).post(org::apply))
        .route("/admin/sharing-rules", get(rules::sharing_list))
        .route(
            "/admin/sharing-rules/new",
            get(rules::sharing_preview).post(rules::sharing_create),
        )
        .route(
            "/admin/sharing-rules/{id}/delete",
            get(rules::sharing_delete_preview).post(rules::sharing_delete),
        )
        .route("/admin/restriction-rules", get(rules::restriction_list))
        .route(
            "/admin/restriction-rules/new",
            get(rules::restriction_preview).post(rules::restriction_create),
        )
        .route(
            "/admin/restriction-rules/{id}/delete",
            get(rules::restriction_delete_preview).post(rules::restriction_delete),
        )
        .route("/admin/access-rules", get(access::page).post(access::save))
        .route("/view-as", post(view_as::start))
        .route("/view-as/exit", post(view_as::exit))
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
    let headers = parts.headers.clone();
    let path = parts.uri.path().to_owned();
    let client = client_address(&parts, &state.config.trusted_proxies);
    let response = next.run(Request::from_parts(parts, body)).await;
    let Some(shown) = response.extensions().get::<ShownError>().cloned() else {
        return response;
    };
    // Read as a page view: the refusal of a POST made while viewing as someone keeps the
    // banner that says why.
    let Ok(console) = Console::of(&state, &headers, &Method::GET, &path, client).await else {
        return response;
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
    /// The session's own CSRF token, for the forms that leave (sign out, exit a view-as): in
    /// a view-as view `csrf` is empty, so no other form of the page can be sent.
    pub session_csrf: String,
    /// In a view-as view: whose eyes the page is seen through (empty otherwise).
    pub viewing_as: String,
    /// A view-as cookie is still there but its view is over (expired, ended, or no longer
    /// allowed): the page is the caller's own, and says so rather than silently.
    pub view_ended: bool,
    /// The language of the page (the `warden_lang` cookie).
    pub lang: i18n::Lang,
}

impl Nav {
    fn anonymous() -> Nav {
        Nav::default()
    }

    /// A page without a signed-in caller, in the language the browser chose.
    pub(crate) fn anonymous_in(lang: i18n::Lang) -> Nav {
        Nav {
            lang,
            ..Nav::default()
        }
    }

    /// `english` in the page's language (templates: `{{ nav.t("Customers") }}`).
    pub fn t<'a>(&self, english: &'a str) -> &'a str {
        i18n::t(self.lang, english)
    }
}

/// The signed-in caller of a console page: the API's [`Subject`], from the session cookie.
/// A request without a valid session is sent to the login form.
///
/// While an administrator views as someone (a view-as token in [`VIEW_AS_COOKIE`], issued to
/// the administrator signed in by the session), a page is read with the view-as subject:
/// every decision is the viewed user's and every log entry names the administrator, exactly
/// as with the API's view-as token. Such a console only reads: its `csrf` is empty and every
/// POST but the ways out is refused before any use case runs.
pub(crate) struct Console {
    pub subject: Subject,
    pub csrf: String,
    session_csrf: String,
    view_ended: bool,
    lang: i18n::Lang,
}

/// The view-as cookie: the token of a view-as session (`Warden::view_as`) that an
/// administrator opened from the console. `HttpOnly` and `SameSite=Strict` like the session.
pub(crate) const VIEW_AS_COOKIE: &str = "warden_view_as";

/// The only POSTs a view-as view accepts: leaving it, and signing out (which leaves it too).
const VIEW_AS_EXITS: &[&str] = &["/view-as/exit", "/logout"];

impl Console {
    /// The navigation bar, with `current` marked.
    pub fn nav(&self, current: &'static str) -> Nav {
        let viewer = self.subject.viewer.as_ref();
        Nav {
            signed_in: true,
            // The person at the keyboard: in a view-as view, the administrator.
            username: viewer.map_or_else(|| self.subject.username.clone(), |v| v.username.clone()),
            csrf: self.csrf.clone(),
            manage_users: self.subject.can(Permission::ManageUsers),
            manage_roles: self.subject.can(Permission::ManageRoles),
            view_audit: self.subject.can(Permission::ViewAudit),
            current,
            session_csrf: self.session_csrf.clone(),
            viewing_as: if viewer.is_some() {
                self.subject.username.clone()
            } else {
                String::new()
            },
            view_ended: self.view_ended,
            lang: self.lang,
        }
    }

    /// The caller of a request: the session's subject, or — for a page view with a live
    /// view-as cookie issued to the session's user — the view-as subject.
    async fn of(
        state: &AppState,
        headers: &HeaderMap,
        method: &Method,
        path: &str,
        client: std::net::IpAddr,
    ) -> Result<Console, ConsoleError> {
        let token = request_token(headers).ok_or(ServiceError::Unauthenticated)?;
        let now = now_ms();
        let subject = state.warden.authenticate(&token, client, now).await?;
        if subject.mfa_pending {
            return Err(ServiceError::MfaRequired { enrolled: false }.into());
        }
        // A view-as token in the session cookie itself: the console's forms change things, and
        // a view-as token is for reading; views go through the view-as cookie below.
        if subject.viewer.is_some() {
            return Err(ServiceError::Unauthenticated.into());
        }
        let session_csrf = csrf_token(&token);
        let lang = i18n::Lang::of(headers);
        let cookie = cookie_value(headers, VIEW_AS_COOKIE);
        let view = match &cookie {
            Some(view_token) => view_of(state, view_token, &subject, client, now).await,
            None => None,
        };
        let Some(view) = view else {
            return Ok(Console {
                subject,
                csrf: session_csrf.clone(),
                session_csrf,
                view_ended: cookie.is_some(),
                lang,
            });
        };
        if matches!(*method, Method::GET | Method::HEAD) {
            return Ok(Console {
                subject: view,
                csrf: String::new(),
                session_csrf,
                view_ended: false,
                lang,
            });
        }
        if VIEW_AS_EXITS.contains(&path) {
            return Ok(Console {
                subject,
                csrf: session_csrf.clone(),
                session_csrf,
                view_ended: false,
                lang,
            });
        }
        // INVARIANT: a view-as view only reads, as the API's view-as token: refused here,
        // before any form is read or any use case runs.
        Err(ServiceError::Forbidden(format!(
            "You are viewing as {}: this view is read-only and cannot change anything. Exit the view (the banner at the top) to act as yourself.",
            view.username
        ))
        .into())
    }
}

/// The view-as subject of a view-as token, when it is alive and was issued to the user of
/// `session` (a cookie of someone else's view shows nothing); `None` otherwise: the caller's
/// own view, without the banner.
pub(crate) async fn view_of(
    state: &AppState,
    view_token: &str,
    session: &Subject,
    client: std::net::IpAddr,
    now: i64,
) -> Option<Subject> {
    let view = state
        .warden
        .authenticate(view_token, client, now)
        .await
        .ok()?;
    let issued_here = view.viewer.as_ref().is_some_and(|v| v.user == session.user);
    issued_here.then_some(view)
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
        let client = client_address(parts, &state.config.trusted_proxies);
        Console::of(
            state,
            &parts.headers,
            &parts.method,
            parts.uri.path(),
            client,
        )
        .await
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
            ConsoleError::App(AppError::TooLarge) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "Too large",
                format!("The form is larger than the {} bytes accepted.", crate::MAX_BODY_BYTES),
            ),
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
