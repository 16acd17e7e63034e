//! Signing in and out of the console: the login form, its second step (the TOTP code) when
//! the account has a second factor, and logout. The session is the API's: the same login use
//! case opens it and the same `warden_session` cookie carries it.

use askama::Template;
use axum::extract::{FromRequest, Request, State};
use axum::http::header::SET_COOKIE;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse};
use rand::RngCore;
use warden_service::ServiceError;

use super::{form_value, same_secret, see_other, ConsoleError, Nav, PageResult, Posted};
use crate::auth::{
    cookie_value, is_https, session_cookie, ClientAddress, Https, CLEAR_SESSION_COOKIE,
};
use crate::error::AppError;
use crate::{now_ms, AppState};

/// The login form has no session to bind a CSRF token to: it is bound to this cookie instead
/// (double submit), so another site cannot sign a browser in to an account of its choosing.
const LOGIN_CSRF_COOKIE: &str = "warden_login_csrf";

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    nav: Nav,
    csrf: String,
    username: String,
    /// The second step: the password was right, a code is due.
    totp_step: bool,
    /// Carried to the second step (the page is never cached: `no-store`).
    password: String,
    error: String,
}

fn login_page(page: LoginPage, status: StatusCode, https: bool) -> PageResult {
    let mut response = (status, Html(page.render()?)).into_response();
    let secure = if https { "; Secure" } else { "" };
    let cookie = format!(
        "{LOGIN_CSRF_COOKIE}={}; HttpOnly; SameSite=Strict; Path=/login{secure}",
        page.csrf
    );
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}

fn fresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `GET /login`.
pub(super) async fn login_form(Https(https): Https, headers: HeaderMap) -> PageResult {
    login_page(
        LoginPage {
            nav: Nav::anonymous_in(super::i18n::Lang::of(&headers)),
            csrf: fresh_token(),
            username: String::new(),
            totp_step: false,
            password: String::new(),
            error: String::new(),
        },
        StatusCode::OK,
        https,
    )
}

/// `POST /login`: username and password, and the code on the second step.
pub(super) async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    request: Request,
) -> PageResult {
    let (parts, body) = request.into_parts();
    let https = is_https(&parts, &state.config.trusted_proxies);
    let expected = cookie_value(&parts.headers, LOGIN_CSRF_COOKIE).unwrap_or_default();
    let lang = super::i18n::Lang::of(&parts.headers);
    let axum::Form(fields) =
        axum::Form::<Vec<(String, String)>>::from_request(Request::from_parts(parts, body), &state)
            .await
            .map_err(|e| AppError::BadRequest(e.body_text()))?;
    if !same_secret(form_value(&fields, "csrf"), &expected) {
        return Err(ConsoleError::Csrf);
    }
    let username = form_value(&fields, "username").trim().to_owned();
    let password = form_value(&fields, "password").to_owned();
    let code = form_value(&fields, "totp").trim().to_owned();
    let request = warden_service::LoginRequest {
        username: username.clone(),
        password: password.clone(),
        totp: (!code.is_empty() && code.len() <= 8).then(|| code.clone()),
        recovery_code: (code.len() > 8).then(|| code.clone()),
    };
    let page = |totp_step: bool, error: &str| LoginPage {
        nav: Nav::anonymous_in(lang),
        csrf: fresh_token(),
        username: username.clone(),
        totp_step,
        password: if totp_step {
            password.clone()
        } else {
            String::new()
        },
        error: error.to_owned(),
    };
    match state.warden.login(&request, client, now_ms()).await {
        Ok(outcome) => {
            let mut response = see_other("/");
            if let Ok(value) = HeaderValue::from_str(&session_cookie(&outcome.token, https)) {
                response.headers_mut().insert(SET_COOKIE, value);
            }
            Ok(response)
        }
        Err(ServiceError::MfaRequired { enrolled: true }) => {
            let error = if code.is_empty() {
                ""
            } else {
                "That code is not valid. Enter the current code of your authenticator app, or a recovery code."
            };
            login_page(page(true, error), StatusCode::UNAUTHORIZED, https)
        }
        Err(ServiceError::Unauthenticated) => login_page(
            page(false, "Unknown username or wrong password."),
            StatusCode::UNAUTHORIZED,
            https,
        ),
        Err(error @ ServiceError::Throttled { .. }) => login_page(
            page(false, &format!("{}.", capitalised(&error.to_string()))),
            StatusCode::TOO_MANY_REQUESTS,
            https,
        ),
        Err(ServiceError::AccessDenied(denial)) => login_page(
            page(
                false,
                &format!("An access rule refuses this sign-in ({}).", denial.code()),
            ),
            StatusCode::FORBIDDEN,
            https,
        ),
        Err(other) => Err(other.into()),
    }
}

fn capitalised(text: &str) -> String {
    let mut chars = text.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// `POST /logout`: ends the session at once, everywhere it was used, and a view-as view it
/// opened.
pub(super) async fn logout(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    headers: HeaderMap,
    posted: Posted,
) -> PageResult {
    super::view_as::end(&state, &headers, &posted.console.subject, client).await?;
    state.warden.logout(&posted.console.subject).await?;
    let mut response = see_other("/login");
    let headers = response.headers_mut();
    headers.append(SET_COOKIE, HeaderValue::from_static(CLEAR_SESSION_COOKIE));
    headers.append(
        SET_COOKIE,
        HeaderValue::from_static(super::view_as::CLEAR_VIEW_AS_COOKIE),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::COOKIE;

    #[test]
    fn the_login_csrf_cookie_is_read_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=b; warden_login_csrf=abc; warden_session=x"),
        );
        assert_eq!(
            cookie_value(&headers, LOGIN_CSRF_COOKIE).as_deref(),
            Some("abc")
        );
        assert_eq!(cookie_value(&headers, "missing"), None);
    }
}
