//! The access-control API: password change, TOTP enrolment, API tokens, unlocking, and the
//! access rules of roles and users.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warden_policy::access::{AccessRules, LoginHours};
use warden_policy::RoleId;
use warden_service::AccessTarget;
use warden_store::ApiTokenRow;

use crate::auth::Auth;
use crate::error::{ApiResult, AppError};
use crate::json::{parse_timestamp, timestamp, JsonBody};
use crate::AppState;

/// A password change. No `Debug`: it holds passwords.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChange {
    pub current_password: String,
    /// At least 12 characters, not containing the username, not a common password.
    pub new_password: String,
}

/// Change your password; your other sessions end.
#[utoipa::path(post, path = "/api/v1/me/password", tag = "security", security(("bearer" = [])), request_body = PasswordChange,
    responses((status = 204), (status = 401), (status = 422, description = "wrong current password, or the new one breaks the policy")))]
async fn change_password(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<PasswordChange>,
) -> ApiResult<StatusCode> {
    state
        .warden
        .change_password(&subject, &body.current_password, &body.new_password)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A started TOTP enrolment.
#[derive(Serialize, ToSchema)]
pub struct TotpStart {
    /// Base32 secret for manual entry.
    pub secret: String,
    /// `otpauth://` URI for an authenticator app (as a QR code).
    pub otpauth_uri: String,
}

/// Start TOTP enrolment (RFC 6238, SHA-1, 6 digits, 30 s).
#[utoipa::path(post, path = "/api/v1/me/mfa/totp", tag = "security", security(("bearer" = [])),
    responses((status = 200, body = TotpStart), (status = 409, description = "already enrolled")))]
async fn start_totp(
    State(state): State<AppState>,
    Auth(subject): Auth,
) -> ApiResult<Json<TotpStart>> {
    let enrolment = state.warden.start_totp(&subject).await?;
    Ok(Json(TotpStart {
        secret: enrolment.secret,
        otpauth_uri: enrolment.otpauth_uri,
    }))
}

/// A code from the authenticator.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TotpConfirm {
    pub code: String,
}

/// The recovery codes of a confirmed enrolment: each works once; shown only now.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

/// Confirm TOTP enrolment with a current code; from now on login needs a code.
#[utoipa::path(post, path = "/api/v1/me/mfa/totp/confirm", tag = "security", security(("bearer" = [])), request_body = TotpConfirm,
    responses((status = 200, body = RecoveryCodes), (status = 409), (status = 422, description = "the code does not match")))]
async fn confirm_totp(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<TotpConfirm>,
) -> ApiResult<Json<RecoveryCodes>> {
    let codes = state.warden.confirm_totp(&subject, &body.code).await?;
    Ok(Json(RecoveryCodes {
        recovery_codes: codes,
    }))
}

/// An API token as listed.
#[derive(Serialize, ToSchema)]
pub struct ApiTokenJson {
    /// Public identifier (for revoking); not the secret.
    pub id: String,
    pub name: String,
    #[schema(value_type = String)]
    pub created_at: serde_json::Value,
    #[schema(value_type = String)]
    pub expires_at: serde_json::Value,
    #[schema(value_type = String)]
    pub last_used_at: serde_json::Value,
    /// The secret: present only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

fn token_json(row: ApiTokenRow, token: Option<String>) -> ApiTokenJson {
    ApiTokenJson {
        id: row.id,
        name: row.name,
        created_at: timestamp(row.created_at),
        expires_at: timestamp(row.expires_at),
        last_used_at: timestamp(row.last_used_at),
        token,
    }
}

/// A token to create.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    pub name: String,
    /// RFC 3339; default 90 days, at most a year.
    pub expires_at: Option<String>,
}

/// Create an API token for integrations (send it as `Authorization: Bearer`).
#[utoipa::path(post, path = "/api/v1/me/tokens", tag = "security", security(("bearer" = [])), request_body = NewToken,
    responses((status = 201, body = ApiTokenJson), (status = 422)))]
async fn create_token(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<NewToken>,
) -> ApiResult<Response> {
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|e| parse_timestamp("expires_at", e))
        .transpose()?;
    let created = state
        .warden
        .create_api_token(&subject, &body.name, expires_at)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(token_json(created.row, Some(created.token))),
    )
        .into_response())
}

/// Body of `POST /access/view-as`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ViewAsBody {
    /// Whose eyes to look through.
    pub user: String,
    /// How long the token lives: 1 to 60 minutes (default 15).
    pub minutes: Option<u32>,
}

/// Issue a short-lived, read-only token that sees exactly what `user` sees (needs
/// `manage_users` and `manage_roles`). Every request made with it is logged under the
/// administrator's name (`admin (as rep1)`); anything but a read is refused with 403.
#[utoipa::path(post, path = "/api/v1/access/view-as", tag = "access", security(("bearer" = [])), request_body = ViewAsBody,
    responses((status = 201, description = "`{\"token\", \"user\", \"expires_at\", \"read_only\": true}`"),
              (status = 403), (status = 422)))]
async fn view_as(
    State(state): State<AppState>,
    Auth(subject): Auth,
    JsonBody(body): JsonBody<ViewAsBody>,
) -> ApiResult<Response> {
    let issued = state
        .warden
        .view_as(&subject, &body.user, body.minutes.unwrap_or(15))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::json!({
            "token": issued.token,
            "user": issued.user,
            "expires_at": crate::json::timestamp(issued.expires_at),
            "read_only": true,
        })),
    )
        .into_response())
}

/// Your API tokens (without their secrets).
#[utoipa::path(get, path = "/api/v1/me/tokens", tag = "security", security(("bearer" = [])), responses((status = 200, body = [ApiTokenJson])))]
async fn list_tokens(
    State(state): State<AppState>,
    Auth(subject): Auth,
) -> ApiResult<Json<serde_json::Value>> {
    let tokens: Vec<ApiTokenJson> = state
        .warden
        .api_tokens(&subject)
        .await?
        .into_iter()
        .map(|r| token_json(r, None))
        .collect();
    Ok(Json(serde_json::json!({ "items": tokens })))
}

/// Revoke one of your API tokens: it stops working at once.
#[utoipa::path(delete, path = "/api/v1/me/tokens/{id}", tag = "security", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404)))]
async fn revoke_token(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    state.warden.revoke_api_token(&subject, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lift the lock that failed logins put on a username.
#[utoipa::path(post, path = "/api/v1/users/{username}/unlock", tag = "security", security(("bearer" = [])),
    params(("username" = String, Path)), responses((status = 204), (status = 403, description = "needs manage_users"), (status = 404)))]
async fn unlock(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(username): Path<String>,
) -> ApiResult<StatusCode> {
    state.warden.unlock_user(&subject, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A weekly window in a time zone.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginHoursJson {
    /// IANA name, e.g. `Asia/Shanghai`.
    pub time_zone: String,
    /// `mon` … `sun`; the day a window starts on.
    pub days: Vec<String>,
    /// `HH:MM`, inclusive.
    pub from: String,
    /// `HH:MM`, exclusive; earlier than `from` means the window runs past midnight.
    pub to: String,
}

/// Access rules of a role or a user; every part optional.
#[derive(Debug, Deserialize, Serialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct AccessRulesJson {
    /// CIDR blocks (or single addresses) allowed; empty or absent: any.
    #[serde(default)]
    pub ip_allow: Vec<String>,
    /// When access is allowed; absent or null: always.
    #[serde(default)]
    pub login_hours: Option<LoginHoursJson>,
    /// Users must have a second factor (until they do, they may only enrol one).
    #[serde(default)]
    pub mfa_required: bool,
}

pub(crate) const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

fn parse_clock(field: &str, text: &str) -> ApiResult<u16> {
    let invalid = || AppError::invalid(field, "must be a time HH:MM");
    let bytes = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| -> Option<u16> {
        let part = bytes.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0')))
    };
    if bytes.len() != 5 || bytes[2] != b':' {
        return Err(invalid());
    }
    let (h, m) = (
        digits(0..2).ok_or_else(invalid)?,
        digits(3..5).ok_or_else(invalid)?,
    );
    if h > 24 || m > 59 || (h == 24 && m > 0) {
        return Err(invalid());
    }
    Ok(h * 60 + m)
}

pub(crate) fn rules_from_body(body: AccessRulesJson) -> ApiResult<AccessRules> {
    let ip_allow = body
        .ip_allow
        .iter()
        .enumerate()
        .map(|(i, text)| {
            text.parse::<ipnet::IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                .map(|net| net.trunc())
                .map_err(|_| {
                    AppError::invalid(
                        format!("ip_allow[{i}]"),
                        "must be an address or a CIDR block such as 203.0.113.0/24",
                    )
                })
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let login_hours = body
        .login_hours
        .map(|hours| {
            let time_zone = jiff::tz::db().get(&hours.time_zone).map_err(|_| {
                AppError::invalid(
                    "login_hours.time_zone",
                    "must be an IANA time zone such as Asia/Shanghai",
                )
            })?;
            let mut days = 0u8;
            for day in &hours.days {
                let index = DAYS.iter().position(|d| d == day).ok_or_else(|| {
                    AppError::invalid(
                        "login_hours.days",
                        "must be among mon, tue, wed, thu, fri, sat, sun",
                    )
                })?;
                days |= 1 << index;
            }
            if days == 0 {
                return Err(AppError::invalid(
                    "login_hours.days",
                    "must name at least one day",
                ));
            }
            let from = parse_clock("login_hours.from", &hours.from)?;
            let to = parse_clock("login_hours.to", &hours.to)?;
            if from == to {
                return Err(AppError::invalid(
                    "login_hours.to",
                    "must differ from `from`",
                ));
            }
            Ok(LoginHours {
                time_zone,
                days,
                from,
                to,
            })
        })
        .transpose()?;
    Ok(AccessRules {
        ip_allow,
        login_hours,
        mfa_required: body.mfa_required,
    })
}

pub(crate) fn rules_to_body(rules: &AccessRules) -> AccessRulesJson {
    let clock = |minutes: u16| format!("{:02}:{:02}", minutes / 60, minutes % 60);
    AccessRulesJson {
        ip_allow: rules.ip_allow.iter().map(|n| n.to_string()).collect(),
        login_hours: rules.login_hours.as_ref().map(|h| LoginHoursJson {
            time_zone: h.time_zone.iana_name().unwrap_or("UTC").to_owned(),
            days: DAYS
                .iter()
                .enumerate()
                .filter(|(i, _)| h.days & (1 << i) != 0)
                .map(|(_, d)| (*d).to_owned())
                .collect(),
            from: clock(h.from),
            to: clock(h.to),
        }),
        mfa_required: rules.mfa_required,
    }
}

fn role_id(text: &str) -> ApiResult<RoleId> {
    text.parse::<i64>()
        .map(RoleId)
        .map_err(|_| AppError::not_found())
}

#[utoipa::path(get, path = "/api/v1/roles/{id}/access", tag = "security", security(("bearer" = [])),
    params(("id" = i64, Path)), responses((status = 200, body = AccessRulesJson), (status = 403), (status = 404)))]
async fn get_role_access(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<AccessRulesJson>> {
    let rules = state
        .warden
        .access_rules(&subject, AccessTarget::Role(role_id(&id)?))
        .await?;
    Ok(Json(rules_to_body(&rules)))
}

/// Set the access rules of every holder of a role (address, hours, second factor).
#[utoipa::path(put, path = "/api/v1/roles/{id}/access", tag = "security", security(("bearer" = [])),
    params(("id" = i64, Path)), request_body = AccessRulesJson,
    responses((status = 200, body = AccessRulesJson), (status = 202, description = "held under four eyes: `{\"approval\": …}`"), (status = 403, description = "needs manage_roles"), (status = 404), (status = 422)))]
async fn put_role_access(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AccessRulesJson>,
) -> ApiResult<axum::response::Response> {
    let rules = state
        .warden
        .set_access_rules(
            &subject,
            AccessTarget::Role(role_id(&id)?),
            rules_from_body(body)?,
        )
        .await?;
    Ok(crate::approvals::outcome(
        rules,
        axum::http::StatusCode::OK,
        |rules| axum::response::IntoResponse::into_response(Json(rules_to_body(&rules))),
    ))
}

#[utoipa::path(get, path = "/api/v1/users/{username}/access", tag = "security", security(("bearer" = [])),
    params(("username" = String, Path)), responses((status = 200, body = AccessRulesJson), (status = 403), (status = 404)))]
async fn get_user_access(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(username): Path<String>,
) -> ApiResult<Json<AccessRulesJson>> {
    let rules = state
        .warden
        .access_rules(&subject, AccessTarget::User(&username))
        .await?;
    Ok(Json(rules_to_body(&rules)))
}

/// Set the access rules of one user.
#[utoipa::path(put, path = "/api/v1/users/{username}/access", tag = "security", security(("bearer" = [])),
    params(("username" = String, Path)), request_body = AccessRulesJson,
    responses((status = 200, body = AccessRulesJson), (status = 202, description = "held under four eyes"), (status = 403, description = "needs manage_users"), (status = 404), (status = 422)))]
async fn put_user_access(
    State(state): State<AppState>,
    Auth(subject): Auth,
    Path(username): Path<String>,
    JsonBody(body): JsonBody<AccessRulesJson>,
) -> ApiResult<axum::response::Response> {
    let rules = state
        .warden
        .set_access_rules(
            &subject,
            AccessTarget::User(&username),
            rules_from_body(body)?,
        )
        .await?;
    Ok(crate::approvals::outcome(
        rules,
        axum::http::StatusCode::OK,
        |rules| axum::response::IntoResponse::into_response(Json(rules_to_body(&rules))),
    ))
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/me/password", post(change_password))
        .route("/me/mfa/totp", post(start_totp))
        .route("/me/mfa/totp/confirm", post(confirm_totp))
        .route("/me/tokens", get(list_tokens).post(create_token))
        .route("/me/tokens/{id}", delete(revoke_token))
        .route("/access/view-as", post(view_as))
        .route("/users/{username}/unlock", post(unlock))
        .route(
            "/roles/{id}/access",
            get(get_role_access).put(put_role_access),
        )
        .route(
            "/users/{username}/access",
            get(get_user_access).put(put_user_access),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_rules_round_trip_through_json() {
        let body = AccessRulesJson {
            ip_allow: vec!["203.0.113.9/24".into(), "198.51.100.7".into()],
            login_hours: Some(LoginHoursJson {
                time_zone: "Asia/Shanghai".into(),
                days: vec!["mon".into(), "fri".into()],
                from: "09:00".into(),
                to: "18:30".into(),
            }),
            mfa_required: true,
        };
        let rules = rules_from_body(body).unwrap();
        assert_eq!(
            rules.ip_allow[0].to_string(),
            "203.0.113.0/24",
            "host bits are cleared"
        );
        assert_eq!(rules.ip_allow[1].to_string(), "198.51.100.7/32");
        let back = rules_to_body(&rules);
        assert_eq!(back.login_hours.as_ref().unwrap().days, vec!["mon", "fri"]);
        assert_eq!(back.login_hours.as_ref().unwrap().to, "18:30");
        assert_eq!(rules_from_body(back).unwrap(), rules);
    }

    #[test]
    fn bad_rules_name_the_field() {
        let field = |body: AccessRulesJson| match rules_from_body(body) {
            Err(AppError::Service(warden_service::ServiceError::Invalid { field, .. })) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            field(AccessRulesJson {
                ip_allow: vec!["nonsense".into()],
                ..Default::default()
            }),
            "ip_allow[0]"
        );
        let hours = |tz: &str, from: &str| AccessRulesJson {
            login_hours: Some(LoginHoursJson {
                time_zone: tz.into(),
                days: vec!["mon".into()],
                from: from.into(),
                to: "18:00".into(),
            }),
            ..Default::default()
        };
        assert_eq!(
            field(hours("Mars/Olympus", "09:00")),
            "login_hours.time_zone"
        );
        assert_eq!(field(hours("UTC", "9am")), "login_hours.from");
        for bad in ["9:000", "+9:00", "09-00", "25:00", "24:01", "09:60"] {
            assert_eq!(field(hours("UTC", bad)), "login_hours.from", "{bad}");
        }
        assert!(parse_clock("f", "24:00").is_ok());
    }
}
