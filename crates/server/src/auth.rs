//! Authentication at the edge: the [`Auth`] extractor (bearer token or session cookie), login,
//! logout and `GET /me`.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts, OriginalUri, State};
use axum::http::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warden_policy::Permission;
use warden_service::{ServiceError, Subject};

use crate::error::{ApiResult, AppError};
use crate::json::{timestamp, JsonBody};
use crate::{now_ms, AppState};

/// The session cookie set by login, for the console.
pub const SESSION_COOKIE: &str = "warden_session";

/// The authenticated caller of a request.
pub struct Auth(pub Subject);

/// The bearer token of a request: the `Authorization` header, else the session cookie.
pub(crate) fn request_token(headers: &HeaderMap) -> Option<String> {
    if let Some(value) = headers.get(AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        let mut parts = value.splitn(2, ' ');
        let scheme = parts.next().unwrap_or_default();
        let token = parts.next().unwrap_or_default().trim();
        return (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty())
            .then(|| token.to_owned());
    }
    cookie_value(headers, SESSION_COOKIE)
}

/// The value of the cookie `name` among a request's cookies.
pub(crate) fn cookie_value(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
}

/// Paths open to a user whose role requires a second factor they have not enrolled yet.
const ENROLMENT_PATHS: &[&str] = &[
    "/api/v1/me",
    "/api/v1/me/mfa/totp",
    "/api/v1/me/mfa/totp/confirm",
    "/api/v1/logout",
];

/// The client's address: the socket's peer, unless the peer is a trusted proxy, in which case
/// the right-most address of `X-Forwarded-For` that is not itself a trusted proxy. An unknown
/// peer is `0.0.0.0`, which no allow-list contains (fail closed). IPv4-mapped IPv6 addresses
/// (an IPv4 client of a dual-stack `[::]` listener) count as the IPv4 addresses they are.
pub(crate) fn client_address(parts: &Parts, trusted: &[ipnet::IpNet]) -> IpAddr {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical())
        .unwrap_or(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
    if !trusted.iter().any(|net| net.contains(&peer)) {
        return peer;
    }
    let forwarded: Vec<IpAddr> = parts
        .headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse::<IpAddr>().ok())
        .map(|a| a.to_canonical())
        .collect();
    forwarded
        .iter()
        .rev()
        .find(|a| !trusted.iter().any(|net| net.contains(*a)))
        .copied()
        .unwrap_or(peer)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = request_token(&parts.headers).ok_or(ServiceError::Unauthenticated)?;
        let client = client_address(parts, &state.config.trusted_proxies);
        let subject = state.warden.authenticate(&token, client, now_ms()).await?;
        // Inside the `/api/v1` nest, `parts.uri` has lost its prefix: compare the original.
        let path = parts
            .extensions
            .get::<OriginalUri>()
            .map_or(parts.uri.path(), |original| original.0.path());
        if subject.mfa_pending && !ENROLMENT_PATHS.contains(&path) {
            return Err(ServiceError::MfaRequired { enrolled: false }.into());
        }
        // INVARIANT: a view-as token only reads. Every change (and every reveal) is a POST,
        // PUT, PATCH or DELETE: refused here, before any use case runs.
        if subject.viewer.is_some() && !matches!(parts.method, Method::GET | Method::HEAD) {
            return Err(ServiceError::Forbidden(
                "a view-as token is read-only: it cannot change anything".into(),
            )
            .into());
        }
        Ok(Auth(subject))
    }
}

/// Whether the client reached us over TLS: the request's own scheme, or — only from a trusted
/// proxy, like `X-Forwarded-For` — `X-Forwarded-Proto: https`. Decides the cookie's `Secure`.
pub(crate) fn is_https(parts: &Parts, trusted: &[ipnet::IpNet]) -> bool {
    if parts.uri.scheme_str() == Some("https") {
        return true;
    }
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_canonical());
    peer.is_some_and(|peer| trusted.iter().any(|net| net.contains(&peer)))
        && parts
            .headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Whether the request came over TLS ([`is_https`]), as an extractor.
pub struct Https(pub bool);

impl FromRequestParts<AppState> for Https {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Https(is_https(parts, &state.config.trusted_proxies)))
    }
}

/// The session cookie for a new session: never readable by scripts, never sent by another
/// site's request, and only over TLS when the client uses TLS (a plain-HTTP demo still works).
pub(crate) fn session_cookie(token: &str, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/{secure}")
}

/// The header that ends the session cookie.
pub(crate) const CLEAR_SESSION_COOKIE: &str =
    "warden_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0";

/// The client address of a request, as an extractor (for login, which has no subject yet).
pub struct ClientAddress(pub IpAddr);

impl FromRequestParts<AppState> for ClientAddress {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(
            parts,
            &state.config.trusted_proxies,
        )))
    }
}

/// Credentials for `POST /login`. No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    pub username: String,
    pub password: String,
    /// The current TOTP code, when the account has a second factor.
    #[serde(default)]
    pub totp: Option<String>,
    /// A one-time recovery code instead of the TOTP code.
    #[serde(default)]
    pub recovery_code: Option<String>,
}

/// A successful login.
#[derive(Debug, Serialize, ToSchema)]
pub struct LoginResponse {
    /// Send as `Authorization: Bearer TOKEN`.
    pub token: String,
    /// RFC 3339.
    #[schema(value_type = String)]
    pub expires_at: serde_json::Value,
    pub username: String,
}

/// Log in: a bearer token, and a session cookie for the console.
#[utoipa::path(post, path = "/api/v1/login", request_body = LoginRequest, tag = "auth",
    responses((status = 200, body = LoginResponse),
              (status = 401, description = "unknown user or wrong password (the same answer); `{\"error\":\"mfa_required\"}` when a second factor is due"),
              (status = 403, description = "`ip_not_allowed` or `outside_login_hours`"),
              (status = 429, description = "too many failed attempts for this user or address; see `Retry-After`")))]
async fn login(
    State(state): State<AppState>,
    ClientAddress(client): ClientAddress,
    Https(https): Https,
    JsonBody(body): JsonBody<LoginRequest>,
) -> ApiResult<Response> {
    let request = warden_service::LoginRequest {
        username: body.username.clone(),
        password: body.password,
        totp: body.totp,
        recovery_code: body.recovery_code,
    };
    let outcome = state.warden.login(&request, client, now_ms()).await?;
    let cookie = session_cookie(&outcome.token, https);
    let mut response = Json(LoginResponse {
        token: outcome.token,
        expires_at: timestamp(outcome.expires_at),
        username: body.username,
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(SET_COOKIE, value);
    }
    Ok(response)
}

/// Log out: the token stops working at once.
#[utoipa::path(post, path = "/api/v1/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401)))]
async fn logout(State(state): State<AppState>, Auth(subject): Auth) -> ApiResult<Response> {
    state.warden.logout(&subject).await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    response
        .headers_mut()
        .insert(SET_COOKIE, HeaderValue::from_static(CLEAR_SESSION_COOKIE));
    Ok(response)
}

/// The caller: who they are, their roles and functional permissions.
#[derive(Debug, Serialize, ToSchema)]
pub struct MeResponse {
    pub id: i64,
    /// Whether a second factor is enrolled.
    pub mfa_enrolled: bool,
    pub username: String,
    pub unit: String,
    pub manager: Option<String>,
    pub roles: Vec<String>,
    pub permissions: Vec<String>,
    /// How many approval requests wait for the caller's decision.
    pub approvals_inbox: usize,
}

/// Who am I?
#[utoipa::path(get, path = "/api/v1/me", tag = "auth", security(("bearer" = [])),
    responses((status = 200, body = MeResponse), (status = 401)))]
async fn me(State(state): State<AppState>, Auth(subject): Auth) -> ApiResult<Json<MeResponse>> {
    let approvals_inbox = state.warden.inbox_count(&subject).await?;
    let user = subject
        .snapshot
        .user(subject.user)
        .ok_or(ServiceError::Unauthenticated)?;
    Ok(Json(MeResponse {
        id: subject.user.0,
        mfa_enrolled: subject.snapshot.has_mfa(subject.user),
        username: user.username().to_owned(),
        unit: user.unit_name().to_owned(),
        manager: user.manager().map(|m| m.username().to_owned()),
        roles: user
            .roles()
            .filter(|(_, _, a)| a.is_active(subject.now))
            .map(|(_, name, _)| name.to_owned())
            .collect(),
        permissions: Permission::ALL
            .iter()
            .filter(|p| subject.can(**p))
            .map(|p| p.as_str().to_owned())
            .collect(),
        approvals_inbox,
    }))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/login", post(login))
        .route("/logout", post(logout))
        .route("/me", get(me))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_from_the_header_first_then_the_cookie() {
        let mut headers = HeaderMap::new();
        headers.insert(
            COOKIE,
            HeaderValue::from_static("a=b; warden_session=fromcookie"),
        );
        assert_eq!(request_token(&headers).as_deref(), Some("fromcookie"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer fromheader"));
        assert_eq!(request_token(&headers).as_deref(), Some("fromheader"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic abc"));
        assert_eq!(request_token(&headers), None);
    }

    #[test]
    fn ipv4_clients_of_a_dual_stack_listener_are_ipv4() {
        let parts = |peer: &str, forwarded: Option<&str>| {
            let mut request = axum::http::Request::builder();
            if let Some(forwarded) = forwarded {
                request = request.header("x-forwarded-for", forwarded);
            }
            let (mut parts, ()) = request.body(()).unwrap().into_parts();
            parts
                .extensions
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            parts
        };
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let proxies: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        assert_eq!(
            client_address(&parts("[::ffff:203.0.113.7]:4000", None), &[]),
            ip("203.0.113.7")
        );
        assert_eq!(
            client_address(
                &parts("[::ffff:10.1.2.3]:4000", Some("::ffff:198.51.100.1")),
                &proxies
            ),
            ip("198.51.100.1"),
            "a mapped proxy is trusted, a mapped forwarded address is IPv4"
        );
        assert_eq!(
            client_address(&parts("[2001:db8::1]:4000", Some("203.0.113.7")), &proxies),
            ip("2001:db8::1")
        );
    }
}
