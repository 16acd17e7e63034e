//! View as, in the console: an administrator opens a read-only view of the console as a chosen
//! user sees it, and leaves it. The view is the API's view-as session (`Warden::view_as`:
//! short-lived, logged under the administrator's name, dead when they lose the right), carried
//! in a cookie of its own beside the administrator's session; `Console` honours it for page
//! views only and refuses every other POST while it lives.

use axum::extract::State;
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue};
use warden_service::Subject;

use super::{see_other, view_of, PageResult, Posted, VIEW_AS_COOKIE};
use crate::auth::{cookie_value, ClientAddress, Https};
use crate::error::AppError;
use crate::{now_ms, AppState};

/// How long a view lasts: long enough to look around, short enough to be forgotten safely.
const MINUTES: u32 = 15;

/// The header that ends the view-as cookie.
pub(super) const CLEAR_VIEW_AS_COOKIE: &str =
    "warden_view_as=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0";

/// `POST /view-as` with `user`: issues the view-as session (the service checks the right and
/// logs it) and opens the customers list through the user's eyes.
pub(super) async fn start(
    State(state): State<AppState>,
    Https(https): Https,
    posted: Posted,
) -> PageResult {
    let user = posted.get("user").trim();
    if user.is_empty() {
        return Err(AppError::invalid("user", "choose whose eyes to look through").into());
    }
    let issued = state
        .warden
        .view_as(&posted.console.subject, user, MINUTES)
        .await?;
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!(
        "{VIEW_AS_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}{secure}",
        issued.token,
        MINUTES * 60
    );
    let mut response = see_other("/customers");
    let value = HeaderValue::from_str(&cookie)
        .map_err(|_| AppError::BadRequest("the view-as token is not a cookie value".into()))?;
    response.headers_mut().insert(SET_COOKIE, value);
    Ok(response)
}

/// Ends the view-as session of the request's view-as cookie, when it belongs to `session`:
/// leaving a view kills its token at once (logged), not only the cookie.
pub(super) async fn end(
    state: &AppState,
    headers: &HeaderMap,
    session: &Subject,
    client: std::net::IpAddr,
) -> PageResult<()> {
    let Some(token) = cookie_value(headers, VIEW_AS_COOKIE) else {
        return Ok(());
    };
    if let Some(view) = view_of(state, &token, session, client, now_ms()).await {
        state.warden.logout(&view).await?;
    }
    Ok(())
}

/// `POST /view-as/exit`: back to the administrator's own eyes.
pub(super) async fn exit(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    posted: Posted,
) -> PageResult {
    end(&state, &headers, &posted.console.subject, client).await?;
    let mut response = see_other("/admin/org");
    response
        .headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_static(CLEAR_VIEW_AS_COOKIE));
    Ok(response)
}
