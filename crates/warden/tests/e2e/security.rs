//! Identity and access control, end to end (README, "Security: who may get in, from where, and
//! when"): TOTP and recovery codes, throttling and lockout, IP allow-lists and login hours per
//! user and per role, a role that requires a second factor, API tokens, password changes, and
//! the client address behind a trusted proxy. These lock accounts and set rules, so they run
//! on servers of their own, never on the one the demo walk uses.

use std::future::Future;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::{json, Value};
use totp_rs::{Algorithm, Secret, TOTP};

use crate::harness::{Api, Body, Reply, Server, PASSWORD};

/// The seven days, as the API names them.
const ALL_DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
/// An address range the test client is never in.
const OFFICE: &str = "203.0.113.0/24";

/// Runs one named check, saying on stderr when it starts and how long it took.
async fn step<T>(api: &Api, name: &str, check: impl Future<Output = T>) -> T {
    eprintln!("e2e [{}] security: {name} …", api.name);
    let started = Instant::now();
    let out = check.await;
    eprintln!(
        "e2e [{}] security: {name}: ok ({} ms)",
        api.name,
        started.elapsed().as_millis()
    );
    out
}

/// Every check of the main security server, in an order where each leaves the accounts it
/// touched usable (or touches accounts no later check needs).
pub async fn everything(server: &Server) {
    let api = Api::login_everyone(server).await;
    let sales_rep = step(&api, "the Sales Rep role", role_id(&api, "Sales Rep")).await;
    step(&api, "TOTP enrolment and login", totp_login(&api)).await;
    step(&api, "lockout", lockout(&api)).await;
    step(&api, "IP allow-lists", ip_rules(&api, sales_rep)).await;
    step(&api, "login hours", login_hours(&api)).await;
    step(
        &api,
        "a role that requires a second factor",
        role_requires_mfa(&api, sales_rep),
    )
    .await;
    step(&api, "a disabled user", disabled_user(&api)).await;
    step(&api, "API tokens", api_tokens(&api)).await;
    step(&api, "password change", password_change(&api)).await;
    step(
        &api,
        "bad access rules are 422",
        bad_access_rules(&api, sales_rep),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Helpers

fn unix_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

/// The TOTP of a base32 secret as the README describes it: RFC 6238, SHA-1, 6 digits, 30 s.
fn totp_of(secret: &str) -> TOTP {
    let bytes = Secret::Encoded(secret.to_owned())
        .to_bytes()
        .unwrap_or_else(|e| panic!("the secret {secret:?} is not base32: {e:?}"));
    TOTP::new(
        Algorithm::SHA1,
        6,
        1,
        30,
        bytes,
        Some("Warden".to_owned()),
        "e2e".to_owned(),
    )
    .expect("a TOTP")
}

/// The 30-second step of now.
fn current_step() -> u64 {
    unix_seconds() / 30
}

/// The code of one step.
fn code(totp: &TOTP, step: u64) -> String {
    totp.generate(step * 30)
}

/// `HH:00` of an hour (any integer, taken modulo 24).
fn clock(hour: u64) -> String {
    format!("{:02}:00", hour % 24)
}

/// A request as the holder of `token` (not necessarily the one `Api` logged in with).
async fn with_token(api: &Api, token: &str, method: Method, path: &str, body: Body<'_>) -> Reply {
    api.request(method, path, Some(token), body).await
}

/// `GET /api/v1/customers?limit=1` with a token, optionally with request headers.
async fn customers(api: &Api, token: &str, headers: &[(&str, &str)]) -> Reply {
    api.request_with_headers(
        Method::GET,
        "/api/v1/customers?limit=1",
        Some(token),
        Body::None,
        headers,
    )
    .await
}

/// A login with any JSON body (a second factor, a recovery code), optionally with headers.
async fn login_with(api: &Api, body: Value, headers: &[(&str, &str)]) -> Reply {
    api.request_with_headers(
        Method::POST,
        "/api/v1/login",
        None,
        Body::Json(body),
        headers,
    )
    .await
}

/// Asserts a status, and for errors the stable `error` code.
#[track_caller]
fn expect(n: &str, what: &str, reply: &Reply, status: u16, error: Option<&str>) {
    assert_eq!(reply.status, status, "[{n}] {what}: {}", reply.text);
    if let Some(error) = error {
        assert_eq!(reply.body["error"], error, "[{n}] {what}: {}", reply.text);
    }
}

/// The token of a successful login.
#[track_caller]
fn token_of(n: &str, what: &str, reply: &Reply) -> String {
    expect(n, what, reply, 200, None);
    reply.body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("[{n}] {what}: no token: {}", reply.text))
        .to_owned()
}

/// A 422 that names `field`, in the field and in the message.
#[track_caller]
fn assert_invalid(n: &str, what: &str, reply: &Reply, field: &str) {
    expect(n, what, reply, 422, Some("invalid"));
    assert_eq!(
        reply.field(),
        field,
        "[{n}] {what} names the wrong field: {}",
        reply.text
    );
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| m.contains(field)),
        "[{n}] {what}: the message does not name `{field}`: {}",
        reply.text
    );
}

/// Sets the access rules of a user (as admin) and checks they read back as set.
async fn set_user_rules(api: &Api, user: &str, rules: Value) -> Reply {
    let n = api.name;
    let path = format!("/api/v1/users/{user}/access");
    let reply = api
        .request(
            Method::PUT,
            &path,
            Some(api.token("admin")),
            Body::Json(rules.clone()),
        )
        .await;
    expect(n, &format!("admin: PUT {path} {rules}"), &reply, 200, None);
    let read = api.get("admin", &path).await;
    expect(n, &format!("admin: GET {path}"), &read, 200, None);
    assert_eq!(
        read.body, reply.body,
        "[{n}] {path}: what PUT answered differs from GET"
    );
    reply
}

/// Sets the access rules of a role (as admin).
async fn set_role_rules(api: &Api, role: i64, rules: Value) -> Reply {
    let n = api.name;
    let path = format!("/api/v1/roles/{role}/access");
    let reply = api
        .request(
            Method::PUT,
            &path,
            Some(api.token("admin")),
            Body::Json(rules.clone()),
        )
        .await;
    expect(n, &format!("admin: PUT {path} {rules}"), &reply, 200, None);
    let read = api.get("admin", &path).await;
    expect(n, &format!("admin: GET {path}"), &read, 200, None);
    assert_eq!(
        read.body, reply.body,
        "[{n}] {path}: what PUT answered differs from GET"
    );
    reply
}

/// No rules at all, as the API shows them.
fn no_rules() -> Value {
    json!({"ip_allow": [], "login_hours": null, "mfa_required": false})
}

/// A role's id, from `GET /api/v1/roles`.
async fn role_id(api: &Api, name: &str) -> i64 {
    let n = api.name;
    let roles = api.get("admin", "/api/v1/roles").await;
    expect(n, "admin: GET /api/v1/roles", &roles, 200, None);
    roles.body["items"]
        .as_array()
        .and_then(|items| items.iter().find(|r| r["name"] == name))
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("[{n}] no role {name:?}: {}", roles.text))
}

/// Starts and confirms TOTP enrolment for the holder of `token`; returns the TOTP, the step
/// the confirmation spent and the recovery codes.
async fn enrol(api: &Api, who: &str, token: &str) -> (TOTP, u64, Vec<String>) {
    let n = api.name;
    let start = with_token(api, token, Method::POST, "/api/v1/me/mfa/totp", Body::None).await;
    expect(
        n,
        &format!("{who}: POST /api/v1/me/mfa/totp"),
        &start,
        200,
        None,
    );
    let secret = start.body["secret"]
        .as_str()
        .unwrap_or_else(|| panic!("[{n}] {who}: no secret: {}", start.text));
    let uri = start.body["otpauth_uri"]
        .as_str()
        .unwrap_or_else(|| panic!("[{n}] {who}: no otpauth_uri: {}", start.text));
    let totp = totp_of(secret);
    // The URI an authenticator app scans says the same as the README and the secret.
    let scanned = TOTP::from_url(uri).unwrap_or_else(|e| panic!("[{n}] {who}: {uri}: {e:?}"));
    assert!(uri.starts_with("otpauth://totp/"), "[{n}] {who}: {uri}");
    assert_eq!(
        (scanned.algorithm, scanned.digits, scanned.step),
        (Algorithm::SHA1, 6, 30),
        "[{n}] {who}: {uri}"
    );
    assert_eq!(
        scanned.secret, totp.secret,
        "[{n}] {who}: the URI's secret differs: {uri}"
    );
    assert!(
        scanned.account_name.contains(who),
        "[{n}] {who}: the URI does not name the user: {uri}"
    );

    let confirm_path = "/api/v1/me/mfa/totp/confirm";
    let now = current_step();
    let wrong = with_token(
        api,
        token,
        Method::POST,
        confirm_path,
        Body::Json(json!({"code": code(&totp, now + 5)})),
    )
    .await;
    assert_invalid(
        n,
        &format!("{who}: confirming with a wrong code"),
        &wrong,
        "code",
    );
    let confirmed = with_token(
        api,
        token,
        Method::POST,
        confirm_path,
        Body::Json(json!({"code": code(&totp, now)})),
    )
    .await;
    expect(n, &format!("{who}: confirming"), &confirmed, 200, None);
    let codes: Vec<String> = confirmed.body["recovery_codes"]
        .as_array()
        .unwrap_or_else(|| panic!("[{n}] {who}: no recovery codes: {}", confirmed.text))
        .iter()
        .map(|c| c.as_str().expect("a recovery code as a string").to_owned())
        .collect();
    assert_eq!(codes.len(), 10, "[{n}] {who}: {}", confirmed.text);
    let distinct: std::collections::BTreeSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 10, "[{n}] {who}: repeated recovery codes");
    (totp, now, codes)
}

// ---------------------------------------------------------------------------------------------
// The checks

/// rep2 enrols TOTP, then logs in with codes computed here from the secret: a code works once
/// (the confirming code included), a recovery code once ever, and no code is `mfa_required`.
async fn totp_login(api: &Api) {
    let n = api.name;
    let rep2 = api.token("rep2");
    let (totp, confirmed_step, recovery) = enrol(api, "rep2", rep2).await;
    let me = api.get("rep2", "/api/v1/me").await;
    expect(n, "rep2: GET /api/v1/me", &me, 200, None);
    assert_eq!(me.body["mfa_enrolled"], true, "[{n}] {}", me.text);
    let again = api.post("rep2", "/api/v1/me/mfa/totp", json!({})).await;
    expect(n, "rep2 enrolling a second time", &again, 409, None);

    let login = |extra: Value| {
        let mut body = json!({"username": "rep2", "password": PASSWORD});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        login_with(api, body, &[])
    };
    let no_code = login(json!({})).await;
    expect(
        n,
        "rep2 logging in without a code",
        &no_code,
        401,
        Some("mfa_required"),
    );
    assert_eq!(
        no_code.www_authenticate.as_deref(),
        Some("Bearer"),
        "[{n}] no code"
    );
    let unauthenticated = api.login("rep2", "not-the-password-at-all").await;
    expect(
        n,
        "rep2 with a wrong password",
        &unauthenticated,
        401,
        Some("unauthenticated"),
    );

    let next = code(&totp, confirmed_step + 1);
    let wrong_password = login_with(
        api,
        json!({"username": "rep2", "password": "not-the-password-at-all", "totp": next}),
        &[],
    )
    .await;
    assert_eq!(
        (wrong_password.status, &wrong_password.body),
        (401, &unauthenticated.body),
        "[{n}] a right code does not make up for a wrong password"
    );
    let spent = login(json!({"totp": code(&totp, confirmed_step)})).await;
    assert_eq!(
        (spent.status, &spent.body),
        (401, &unauthenticated.body),
        "[{n}] the code that confirmed the enrolment is spent"
    );
    let wrong_code = login(json!({"totp": code(&totp, confirmed_step + 7)})).await;
    assert_eq!(
        (wrong_code.status, &wrong_code.body),
        (401, &unauthenticated.body),
        "[{n}] a code of another time"
    );

    // The next step's code (the server accepts one step of drift either way).
    let first = login(json!({"totp": next})).await;
    let token = token_of(n, "rep2 logging in with a code", &first);
    let me = with_token(api, &token, Method::GET, "/api/v1/me", Body::None).await;
    expect(n, "rep2's TOTP session", &me, 200, None);
    assert_eq!(me.body["username"], "rep2", "[{n}] {}", me.text);
    let replay = login(json!({"totp": next})).await;
    assert_eq!(
        (replay.status, &replay.body),
        (401, &unauthenticated.body),
        "[{n}] the same code twice: the second login must fail"
    );

    let first = login(json!({"recovery_code": recovery[0]})).await;
    let token = token_of(n, "rep2 logging in with a recovery code", &first);
    expect(
        n,
        "rep2's recovery-code session",
        &customers(api, &token, &[]).await,
        200,
        None,
    );
    let reused = login(json!({"recovery_code": recovery[0]})).await;
    assert_eq!(
        (reused.status, &reused.body),
        (401, &unauthenticated.body),
        "[{n}] a recovery code used twice"
    );
    let other = login(json!({"recovery_code": recovery[1]})).await;
    token_of(n, "rep2 with another recovery code", &other);
    // rep2's first session is untouched by all of this.
    expect(
        n,
        "rep2's first session",
        &customers(api, rep2, &[]).await,
        200,
        None,
    );
}

/// Five failures lock a username: 429 with `Retry-After`, even for the right password; an
/// unknown username locks exactly the same way; the administrator unlocks.
async fn lockout(api: &Api) {
    let n = api.name;
    async fn five_failures_then_the_right_password(api: &Api, user: &str) -> Vec<Reply> {
        let mut replies = Vec::new();
        for attempt in 1..=5 {
            replies.push(api.login(user, &format!("wrong-password-{attempt}")).await);
        }
        replies.push(api.login(user, PASSWORD).await);
        replies.push(api.login(user, "wrong-password-again").await);
        replies
    }
    let known = five_failures_then_the_right_password(api, "rep3").await;
    let unknown = five_failures_then_the_right_password(api, "nobody-at-all").await;
    for (user, replies) in [("rep3", &known), ("nobody-at-all", &unknown)] {
        for (i, reply) in replies.iter().enumerate() {
            let what = format!("{user}: attempt {}", i + 1);
            if i < 5 {
                expect(n, &what, reply, 401, Some("unauthenticated"));
                assert_eq!(reply.retry_after, None, "[{n}] {what}");
            } else {
                expect(n, &what, reply, 429, Some("too_many_attempts"));
                let seconds: u64 = reply
                    .retry_after
                    .as_deref()
                    .unwrap_or_else(|| panic!("[{n}] {what}: no Retry-After: {}", reply.text))
                    .parse()
                    .unwrap_or_else(|e| panic!("[{n}] {what}: Retry-After: {e}"));
                assert!(
                    (1..=15 * 60).contains(&seconds),
                    "[{n}] {what}: Retry-After {seconds} s, not within the 15-minute lock"
                );
            }
        }
    }
    // The same answers, whether or not the user exists (the seconds left may differ by one).
    let shape = |reply: &Reply| {
        let mut body = reply.body.clone();
        if let Some(message) = body["message"].as_str() {
            body["message"] = message.replace(|c: char| c.is_ascii_digit(), "#").into();
        }
        (reply.status, body, reply.retry_after.is_some())
    };
    assert_eq!(
        known.iter().map(shape).collect::<Vec<_>>(),
        unknown.iter().map(shape).collect::<Vec<_>>(),
        "[{n}] an unknown username must lock exactly like a known one"
    );

    let by_rep = api
        .post("rep1", "/api/v1/users/rep3/unlock", json!({}))
        .await;
    expect(n, "rep1 unlocking rep3", &by_rep, 403, Some("forbidden"));
    let still = api.login("rep3", PASSWORD).await;
    expect(
        n,
        "rep3 after a refused unlock",
        &still,
        429,
        Some("too_many_attempts"),
    );
    let unlocked = api
        .post("admin", "/api/v1/users/rep3/unlock", json!({}))
        .await;
    expect(n, "admin unlocking rep3", &unlocked, 204, None);
    token_of(
        n,
        "rep3 after the unlock",
        &api.login("rep3", PASSWORD).await,
    );
    let ghost = api
        .post("admin", "/api/v1/users/nobody-at-all/unlock", json!({}))
        .await;
    expect(n, "admin unlocking an unknown user", &ghost, 404, None);
    let ghost = api.login("nobody-at-all", PASSWORD).await;
    expect(n, "the unknown user after rep3's unlock", &ghost, 429, None);
}

/// An IP allow-list on rep1 (and on the Sales Rep role) refuses the loopback client: the
/// issued token on its next request, and a new login. `X-Forwarded-For` changes nothing on a
/// server without trusted proxies.
async fn ip_rules(api: &Api, sales_rep: i64) {
    let n = api.name;
    let rep1 = api.token("rep1");
    let own = api.get("rep1", "/api/v1/users/rep1/access").await;
    expect(n, "rep1 reading their own rules", &own, 200, None);
    assert_eq!(
        own.body,
        no_rules(),
        "[{n}] rep1's rules before any were set"
    );
    let others = api.get("rep1", "/api/v1/users/rep2/access").await;
    expect(
        n,
        "rep1 reading rep2's rules",
        &others,
        403,
        Some("forbidden"),
    );
    let self_service = api
        .request(
            Method::PUT,
            "/api/v1/users/rep1/access",
            Some(rep1),
            Body::Json(json!({})),
        )
        .await;
    expect(
        n,
        "rep1 setting their own rules",
        &self_service,
        403,
        Some("forbidden"),
    );
    expect(
        n,
        "rep1 before the rule",
        &customers(api, rep1, &[]).await,
        200,
        None,
    );

    let set = set_user_rules(api, "rep1", json!({"ip_allow": [OFFICE]})).await;
    assert_eq!(set.body["ip_allow"], json!([OFFICE]), "[{n}] {}", set.text);
    let refused = customers(api, rep1, &[]).await;
    expect(
        n,
        "rep1's issued token outside the allow-list",
        &refused,
        403,
        Some("ip_not_allowed"),
    );
    let me = api.get("rep1", "/api/v1/me").await;
    expect(
        n,
        "rep1: GET /api/v1/me outside the allow-list",
        &me,
        403,
        Some("ip_not_allowed"),
    );
    let spoofed = customers(api, rep1, &[("x-forwarded-for", "203.0.113.5")]).await;
    expect(
        n,
        "rep1 with a spoofed X-Forwarded-For",
        &spoofed,
        403,
        Some("ip_not_allowed"),
    );
    let login = api.login("rep1", PASSWORD).await;
    expect(
        n,
        "rep1 logging in outside the allow-list",
        &login,
        403,
        Some("ip_not_allowed"),
    );
    let login = login_with(
        api,
        json!({"username": "rep1", "password": PASSWORD}),
        &[("x-forwarded-for", "203.0.113.5")],
    )
    .await;
    expect(
        n,
        "rep1 logging in with a spoofed X-Forwarded-For",
        &login,
        403,
        Some("ip_not_allowed"),
    );
    expect(
        n,
        "rep2 (no rule)",
        &customers(api, api.token("rep2"), &[]).await,
        200,
        None,
    );

    // Single addresses count as /32; any entry of the list allows.
    let set = set_user_rules(
        api,
        "rep1",
        json!({"ip_allow": ["198.51.100.0/24", "127.0.0.1"]}),
    )
    .await;
    assert_eq!(
        set.body["ip_allow"],
        json!(["198.51.100.0/24", "127.0.0.1/32"]),
        "[{n}] {}",
        set.text
    );
    expect(
        n,
        "rep1 allowed by the second entry",
        &customers(api, rep1, &[]).await,
        200,
        None,
    );

    let cleared = set_user_rules(api, "rep1", json!({})).await;
    assert_eq!(cleared.body, no_rules(), "[{n}] after PUT {{}}");
    expect(
        n,
        "rep1 after the rule is removed",
        &customers(api, rep1, &[]).await,
        200,
        None,
    );

    // The same rule on the role: every Sales Rep is refused, nobody else.
    set_role_rules(api, sales_rep, json!({"ip_allow": [OFFICE]})).await;
    for rep in ["rep1", "rep3"] {
        let reply = customers(api, api.token(rep), &[]).await;
        expect(
            n,
            &format!("{rep} under the role's allow-list"),
            &reply,
            403,
            Some("ip_not_allowed"),
        );
    }
    let supervisor = customers(api, api.token("supervisor1"), &[]).await;
    expect(n, "supervisor1 (another role)", &supervisor, 200, None);
    let read = api
        .get("supervisor1", &format!("/api/v1/roles/{sales_rep}/access"))
        .await;
    expect(
        n,
        "supervisor1 reading a role's rules",
        &read,
        403,
        Some("forbidden"),
    );
    set_role_rules(api, sales_rep, json!({})).await;
    expect(
        n,
        "rep3 after the role's rule is removed",
        &customers(api, api.token("rep3"), &[]).await,
        200,
        None,
    );
}

/// Login hours that exclude now refuse rep1's issued token and a new login; the time zone and
/// the days count; removing the rule restores access.
async fn login_hours(api: &Api) {
    let n = api.name;
    let rep1 = api.token("rep1");
    // Not within a few seconds of a UTC midnight: the day-of-week check below reads the date.
    let into_day = unix_seconds() % 86_400;
    if into_day > 86_400 - 5 {
        tokio::time::sleep(Duration::from_secs(86_400 - into_day + 1)).await;
    }
    let now = unix_seconds();
    let hour = now / 3600 % 24;
    let hours = |zone: &str, from: u64, to: u64, days: &[&str]| json!({"login_hours": {"time_zone": zone, "days": days, "from": clock(from), "to": clock(to)}});

    // A one-hour window twelve hours away.
    let away = hours("UTC", hour + 12, hour + 13, &ALL_DAYS);
    let set = set_user_rules(api, "rep1", away.clone()).await;
    assert_eq!(
        set.body["login_hours"]["from"],
        clock(hour + 12),
        "[{n}] {}",
        set.text
    );
    assert_eq!(
        set.body["login_hours"]["days"],
        json!(ALL_DAYS),
        "[{n}] {}",
        set.text
    );
    let refused = customers(api, rep1, &[]).await;
    expect(
        n,
        "rep1's issued token outside login hours",
        &refused,
        403,
        Some("outside_login_hours"),
    );
    let login = api.login("rep1", PASSWORD).await;
    expect(
        n,
        "rep1 logging in outside login hours",
        &login,
        403,
        Some("outside_login_hours"),
    );

    // Now to two hours on, in Shanghai's time (UTC+8 all year): allowed; the same clock
    // times in UTC are eight hours away: refused.
    set_user_rules(
        api,
        "rep1",
        hours("Asia/Shanghai", hour + 8, hour + 10, &ALL_DAYS),
    )
    .await;
    expect(
        n,
        "rep1 within Shanghai login hours",
        &customers(api, rep1, &[]).await,
        200,
        None,
    );
    set_user_rules(api, "rep1", hours("UTC", hour + 8, hour + 10, &ALL_DAYS)).await;
    expect(
        n,
        "rep1 when the same clock times are UTC",
        &customers(api, rep1, &[]).await,
        403,
        Some("outside_login_hours"),
    );

    // All day, every day but today (1970-01-01 was a Thursday).
    let today = ((now / 86_400 + 3) % 7) as usize;
    let other_days: Vec<&str> = (0..7)
        .filter(|d| *d != today)
        .map(|d| ALL_DAYS[d])
        .collect();
    let whole_day = json!({"login_hours": {"time_zone": "UTC", "days": other_days, "from": "00:00", "to": "24:00"}});
    set_user_rules(api, "rep1", whole_day).await;
    expect(
        n,
        &format!("rep1 on {} when it is not a login day", ALL_DAYS[today]),
        &customers(api, rep1, &[]).await,
        403,
        Some("outside_login_hours"),
    );
    let whole_day = json!({"login_hours": {"time_zone": "UTC", "days": [ALL_DAYS[today]], "from": "00:00", "to": "24:00"}});
    set_user_rules(api, "rep1", whole_day).await;
    expect(
        n,
        "rep1 all day today",
        &customers(api, rep1, &[]).await,
        200,
        None,
    );

    set_user_rules(api, "rep1", away).await;
    expect(
        n,
        "rep1 outside login hours again",
        &customers(api, rep1, &[]).await,
        403,
        Some("outside_login_hours"),
    );
    set_user_rules(api, "rep1", json!({})).await;
    expect(
        n,
        "rep1 after the rule is removed",
        &customers(api, rep1, &[]).await,
        200,
        None,
    );
    token_of(
        n,
        "rep1 logging in after the rule is removed",
        &api.login("rep1", PASSWORD).await,
    );
}

/// A role with `mfa_required`: its users without a second factor may only enrol (403
/// `mfa_required` elsewhere), users with one and other roles' users are unaffected, and an
/// address refusal takes precedence.
async fn role_requires_mfa(api: &Api, sales_rep: i64) {
    let n = api.name;
    let rep1 = api.token("rep1");
    let set = set_role_rules(api, sales_rep, json!({"mfa_required": true})).await;
    assert_eq!(set.body["mfa_required"], true, "[{n}] {}", set.text);

    let refused = customers(api, rep1, &[]).await;
    expect(
        n,
        "rep1 (no second factor) under a role requiring one",
        &refused,
        403,
        Some("mfa_required"),
    );
    let tokens = api.get("rep1", "/api/v1/me/tokens").await;
    expect(
        n,
        "rep1: GET /api/v1/me/tokens before enrolling",
        &tokens,
        403,
        Some("mfa_required"),
    );
    let me = api.get("rep1", "/api/v1/me").await;
    expect(n, "rep1: GET /api/v1/me before enrolling", &me, 200, None);
    expect(
        n,
        "rep2 (enrolled) under the same role",
        &customers(api, api.token("rep2"), &[]).await,
        200,
        None,
    );
    expect(
        n,
        "supervisor1 (another role)",
        &customers(api, api.token("supervisor1"), &[]).await,
        200,
        None,
    );

    // Login still works (to enrol), and the new session is held to the same rule.
    let login = api.login("rep1", PASSWORD).await;
    let fresh = token_of(
        n,
        "rep1 logging in under a role requiring a second factor",
        &login,
    );
    expect(
        n,
        "rep1's new session",
        &customers(api, &fresh, &[]).await,
        403,
        Some("mfa_required"),
    );
    let start = api.post("rep1", "/api/v1/me/mfa/totp", json!({})).await;
    expect(
        n,
        "rep1 starting enrolment while it is required",
        &start,
        200,
        None,
    );
    assert!(start.body["secret"].is_string(), "[{n}] {}", start.text);

    // rep4 enrols under the requirement and goes on with the same token.
    let rep4 = api.token("rep4");
    expect(
        n,
        "rep4 before enrolling",
        &customers(api, rep4, &[]).await,
        403,
        Some("mfa_required"),
    );
    enrol(api, "rep4", rep4).await;
    expect(
        n,
        "rep4 after enrolling, same token",
        &customers(api, rep4, &[]).await,
        200,
        None,
    );

    // An address refusal comes before the missing factor.
    set_user_rules(api, "rep1", json!({"ip_allow": [OFFICE]})).await;
    expect(
        n,
        "rep1 outside the allow-list and without MFA",
        &customers(api, rep1, &[]).await,
        403,
        Some("ip_not_allowed"),
    );
    set_user_rules(api, "rep1", json!({})).await;

    set_role_rules(api, sales_rep, json!({})).await;
    expect(
        n,
        "rep1 after the role's rule is removed",
        &customers(api, rep1, &[]).await,
        200,
        None,
    );
    expect(
        n,
        "rep1's new session after the rule is removed",
        &customers(api, &fresh, &[]).await,
        200,
        None,
    );
}

/// A disabled user's issued token is refused on the next request.
async fn disabled_user(api: &Api) {
    let n = api.name;
    let finance = api.token("finance");
    expect(
        n,
        "finance before being disabled",
        &customers(api, finance, &[]).await,
        200,
        None,
    );
    let disabled = api
        .patch("admin", "/api/v1/users/finance", json!({"disabled": true}))
        .await;
    expect(n, "disabling finance", &disabled, 200, None);
    let refused = customers(api, finance, &[]).await;
    expect(
        n,
        "finance's token after being disabled",
        &refused,
        401,
        Some("unauthenticated"),
    );
    let login = api.login("finance", PASSWORD).await;
    expect(
        n,
        "finance logging in while disabled",
        &login,
        401,
        Some("unauthenticated"),
    );
    let enabled = api
        .patch("admin", "/api/v1/users/finance", json!({"disabled": false}))
        .await;
    expect(n, "enabling finance", &enabled, 200, None);
    token_of(
        n,
        "finance logging in again",
        &api.login("finance", PASSWORD).await,
    );
}

/// API tokens: shown once at creation, listed without the secret, usable as Bearer, revoked
/// at once; nobody else can revoke them.
async fn api_tokens(api: &Api) {
    let n = api.name;
    let created = api
        .post(
            "manager",
            "/api/v1/me/tokens",
            json!({"name": "e2e integration"}),
        )
        .await;
    expect(n, "manager creating an API token", &created, 201, None);
    let secret = created.body["token"]
        .as_str()
        .unwrap_or_else(|| panic!("[{n}] no token: {}", created.text))
        .to_owned();
    let id = created.body["id"]
        .as_str()
        .unwrap_or_else(|| panic!("[{n}] no id: {}", created.text))
        .to_owned();
    assert_eq!(
        created.body["name"], "e2e integration",
        "[{n}] {}",
        created.text
    );
    assert!(
        created.body["expires_at"].is_string(),
        "[{n}] {}",
        created.text
    );
    assert_ne!(
        secret,
        api.token("manager"),
        "[{n}] the API token is the login session"
    );
    assert!(
        !secret.contains(&id) && !id.is_empty(),
        "[{n}] the id gives the secret away"
    );

    let list = api.get("manager", "/api/v1/me/tokens").await;
    expect(n, "manager listing API tokens", &list, 200, None);
    let items = list.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("[{n}] no items: {}", list.text));
    assert_eq!(items.len(), 1, "[{n}] {}", list.text);
    assert_eq!(items[0]["id"], id.as_str(), "[{n}] {}", list.text);
    assert_eq!(items[0]["name"], "e2e integration", "[{n}] {}", list.text);
    assert!(
        items[0].get("token").is_none(),
        "[{n}] the list shows a secret: {}",
        list.text
    );
    assert!(
        !list.text.contains(&secret),
        "[{n}] the list shows the secret: {}",
        list.text
    );

    let me = with_token(api, &secret, Method::GET, "/api/v1/me", Body::None).await;
    expect(n, "the API token as Bearer", &me, 200, None);
    assert_eq!(me.body["username"], "manager", "[{n}] {}", me.text);
    expect(
        n,
        "the API token listing customers",
        &customers(api, &secret, &[]).await,
        200,
        None,
    );

    let unnamed = api
        .post("manager", "/api/v1/me/tokens", json!({"name": " "}))
        .await;
    assert_invalid(n, "an API token without a name", &unnamed, "name");
    let forever = api
        .post(
            "manager",
            "/api/v1/me/tokens",
            json!({"name": "forever", "expires_at": "2999-01-01T00:00:00Z"}),
        )
        .await;
    assert_invalid(
        n,
        "an API token for a thousand years",
        &forever,
        "expires_at",
    );

    let path = format!("/api/v1/me/tokens/{id}");
    let by_other = api.delete("rep2", &path).await;
    expect(n, "rep2 revoking manager's token", &by_other, 404, None);
    expect(
        n,
        "the API token after rep2's attempt",
        &customers(api, &secret, &[]).await,
        200,
        None,
    );
    let revoked = api.delete("manager", &path).await;
    expect(n, "manager revoking the API token", &revoked, 204, None);
    let dead = customers(api, &secret, &[]).await;
    expect(
        n,
        "the revoked API token",
        &dead,
        401,
        Some("unauthenticated"),
    );
    let twice = api.delete("manager", &path).await;
    expect(n, "revoking twice", &twice, 404, None);
    let list = api.get("manager", "/api/v1/me/tokens").await;
    assert_eq!(
        list.body["items"],
        json!([]),
        "[{n}] after revoking: {}",
        list.text
    );
    expect(
        n,
        "manager's login session",
        &customers(api, api.token("manager"), &[]).await,
        200,
        None,
    );
}

/// A password change needs the current password and a good new one, ends the user's other
/// sessions and keeps the current one.
async fn password_change(api: &Api) {
    let n = api.name;
    let current = api.token("supervisor2");
    let other = token_of(
        n,
        "supervisor2's second login",
        &api.login("supervisor2", PASSWORD).await,
    );
    let change = |current_password: &str, new_password: &str| {
        with_token(
            api,
            current,
            Method::POST,
            "/api/v1/me/password",
            Body::Json(json!({"current_password": current_password, "new_password": new_password})),
        )
    };
    let good = "quiet harbour lanterns 7";
    let wrong = change("not-my-password-at-all", good).await;
    assert_invalid(n, "a wrong current password", &wrong, "current_password");
    for (bad, why) in [
        ("short", "a short password"),
        ("password12345678", "a common password"),
        (
            "Sunshine!!!!2024",
            "a common password with symbols and digits appended",
        ),
        (
            "my-supervisor2-password",
            "a password containing the username",
        ),
    ] {
        let reply = change(PASSWORD, bad).await;
        assert_invalid(n, why, &reply, "password");
    }
    expect(
        n,
        "supervisor2's other session after refused changes",
        &customers(api, &other, &[]).await,
        200,
        None,
    );

    let changed = change(PASSWORD, good).await;
    expect(n, "a good password change", &changed, 204, None);
    let ended = customers(api, &other, &[]).await;
    expect(
        n,
        "supervisor2's other session after the change",
        &ended,
        401,
        Some("unauthenticated"),
    );
    expect(
        n,
        "supervisor2's current session after the change",
        &customers(api, current, &[]).await,
        200,
        None,
    );
    let old = api.login("supervisor2", PASSWORD).await;
    expect(n, "the old password", &old, 401, Some("unauthenticated"));
    let new = token_of(n, "the new password", &api.login("supervisor2", good).await);
    expect(
        n,
        "a session of the new password",
        &customers(api, &new, &[]).await,
        200,
        None,
    );
}

/// Bad access rules are 422 naming the field, for users and roles; nothing changes.
async fn bad_access_rules(api: &Api, sales_rep: i64) {
    let n = api.name;
    let hours = |zone: &str, days: Value, from: &str, to: &str| json!({"login_hours": {"time_zone": zone, "days": days, "from": from, "to": to}});
    let all = json!(ALL_DAYS);
    let cases = [
        (json!({"ip_allow": ["nonsense"]}), "ip_allow[0]"),
        (json!({"ip_allow": [OFFICE, "300.1.2.3"]}), "ip_allow[1]"),
        (json!({"ip_allow": ["203.0.113.0/33"]}), "ip_allow[0]"),
        (
            hours("Mars/Olympus", all.clone(), "09:00", "18:00"),
            "login_hours.time_zone",
        ),
        (
            hours("UTC", all.clone(), "9am", "18:00"),
            "login_hours.from",
        ),
        (
            hours("UTC", all.clone(), "25:00", "18:00"),
            "login_hours.from",
        ),
        (
            hours("UTC", all.clone(), "09:00", "18:60"),
            "login_hours.to",
        ),
        (
            hours("UTC", all.clone(), "09:00", "09:00"),
            "login_hours.to",
        ),
        (
            hours("UTC", json!(["funday"]), "09:00", "18:00"),
            "login_hours.days",
        ),
        (
            hours("UTC", json!([]), "09:00", "18:00"),
            "login_hours.days",
        ),
    ];
    for (body, field) in &cases {
        for path in [
            "/api/v1/users/rep2/access".to_owned(),
            format!("/api/v1/roles/{sales_rep}/access"),
        ] {
            let reply = api
                .request(
                    Method::PUT,
                    &path,
                    Some(api.token("admin")),
                    Body::Json(body.clone()),
                )
                .await;
            assert_invalid(n, &format!("PUT {path} {body}"), &reply, field);
        }
    }
    let unknown_user = api
        .request(
            Method::PUT,
            "/api/v1/users/nobody-at-all/access",
            Some(api.token("admin")),
            Body::Json(json!({})),
        )
        .await;
    expect(n, "rules for an unknown user", &unknown_user, 404, None);
    let unknown_role = api
        .request(
            Method::PUT,
            "/api/v1/roles/987654/access",
            Some(api.token("admin")),
            Body::Json(json!({})),
        )
        .await;
    expect(n, "rules for an unknown role", &unknown_role, 404, None);
    let by_rep = api
        .request(
            Method::PUT,
            &format!("/api/v1/roles/{sales_rep}/access"),
            Some(api.token("rep2")),
            Body::Json(json!({"mfa_required": false})),
        )
        .await;
    expect(
        n,
        "rep2 setting a role's rules",
        &by_rep,
        403,
        Some("forbidden"),
    );

    let rules = api.get("admin", "/api/v1/users/rep2/access").await;
    assert_eq!(
        rules.body,
        no_rules(),
        "[{n}] rep2's rules after refused changes"
    );
    let rules = api
        .get("admin", &format!("/api/v1/roles/{sales_rep}/access"))
        .await;
    assert_eq!(
        rules.body,
        no_rules(),
        "[{n}] the role's rules after refused changes"
    );
    expect(
        n,
        "rep2 after refused changes",
        &customers(api, api.token("rep2"), &[]).await,
        200,
        None,
    );
}

/// On a server started with `--trusted-proxy 127.0.0.1/32`, the right-most address of
/// `X-Forwarded-For` that is not a trusted proxy is the client's.
pub async fn behind_a_trusted_proxy(server: &Server) {
    let api = Api::login_everyone(server).await;
    let api = &api;
    let n = api.name;
    step(api, "X-Forwarded-For from a trusted proxy", async {
        let rep1 = api.token("rep1");
        set_user_rules(api, "rep1", json!({"ip_allow": [OFFICE]})).await;
        let cases = [
            (None, 403),
            (Some("203.0.113.5"), 200),
            (Some("198.51.100.1"), 403),
            // The proxy appends what it saw: an entry further left is the client's say-so.
            (Some("203.0.113.5, 198.51.100.1"), 403),
            (Some("198.51.100.1, 203.0.113.5"), 200),
            // Trusted hops on the right are skipped.
            (Some("203.0.113.5, 127.0.0.1"), 200),
        ];
        for (forwarded, status) in cases {
            let headers: Vec<(&str, &str)> = forwarded
                .map(|f| ("x-forwarded-for", f))
                .into_iter()
                .collect();
            let reply = customers(api, rep1, &headers).await;
            let what = format!("rep1 with X-Forwarded-For {forwarded:?}");
            let error = (status == 403).then_some("ip_not_allowed");
            expect(n, &what, &reply, status, error);
        }
        let login = |forwarded: &'static str| async move {
            login_with(
                api,
                json!({"username": "rep1", "password": PASSWORD}),
                &[("x-forwarded-for", forwarded)],
            )
            .await
        };
        let token = token_of(
            n,
            "rep1 logging in from the office",
            &login("203.0.113.5").await,
        );
        let office = customers(api, &token, &[("x-forwarded-for", "203.0.113.5")]).await;
        expect(
            n,
            "rep1's office session from the office",
            &office,
            200,
            None,
        );
        let elsewhere = customers(api, &token, &[]).await;
        expect(
            n,
            "rep1's office session from the proxy itself",
            &elsewhere,
            403,
            Some("ip_not_allowed"),
        );
        let refused = login("198.51.100.1").await;
        expect(
            n,
            "rep1 logging in from elsewhere",
            &refused,
            403,
            Some("ip_not_allowed"),
        );
        set_user_rules(api, "rep1", json!({})).await;
        expect(
            n,
            "rep1 after the rule is removed",
            &customers(api, rep1, &[]).await,
            200,
            None,
        );
    })
    .await;
}
