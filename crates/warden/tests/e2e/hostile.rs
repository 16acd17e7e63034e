//! Hostile input against the real server: a sweep of malformed requests over every operation
//! of the OpenAPI document (bad JSON, wrong types, unknown and missing fields, huge and deeply
//! nested bodies, invalid UTF-8, bad query strings and path ids, SQL and script injection in
//! every string, wrong content types), the request body limit, mass assignment of protected
//! attributes, and the login throttle per client address kept in the database.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::harness::{Api, Server, PASSWORD};

/// Strings an attacker puts in every field and parameter.
pub const INJECTIONS: &[&str] = &[
    "' OR '1'='1",
    "1; DROP TABLE customers; --",
    "\" OR 1=1 --",
    "') UNION SELECT password_hash FROM users --",
    "<script>alert(1)</script>",
    "\"><img src=x onerror=alert(1)>",
    "${jndi:ldap://example.invalid/a}",
    "{{7*7}}",
    "../../../../etc/passwd",
    "\u{0}nul",
    "\u{202e}\u{fe0f}😀𝕏",
    "",
    " ",
    "9223372036854775808",
    "-1",
    "null",
];

/// What may never appear in an answer: stack traces, SQL, driver and file names.
const TELLTALES: &[&str] = &[
    "panicked",
    "stack backtrace",
    "RUST_BACKTRACE",
    "SELECT ",
    "INSERT INTO",
    "UPDATE ",
    "sqlx",
    "SQLITE_",
    "syntax error",
    "error returned from database",
    "src/",
    ".rs:",
];

/// Path segments that are not ids, or ids that overflow, or are crafted.
const BAD_PATH_IDS: &[&str] = &[
    "abc",
    "-1",
    "0",
    "1.5",
    "1e3",
    "99999999999999999999999",
    "9223372036854775807",
    "%FF%FE",
    "%00",
    "%27%20OR%20%271%27%3D%271",
    "%3Cscript%3Ealert(1)%3C%2Fscript%3E",
    "..%2F..%2Fetc%2Fpasswd",
    "%E2%80%AE%F0%9F%98%80",
];

/// Query values that are out of range, not numbers, garbage cursors, injections.
const BAD_QUERY_VALUES: &[&str] = &[
    "-1",
    "0",
    "99999999999999999999",
    "4294967296",
    "abc",
    "%FF%FE",
    "%27%20OR%201%3D1--",
    "%3Cscript%3E",
    "",
    "!!!!",
    "eyJpZCI6LTF9",
    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "2027-13-45T99:99:99Z",
];

/// A body size over the server's limit (1 MiB).
const OVER_LIMIT: usize = 2 * 1024 * 1024;

/// An answer as the sweep sees it.
pub struct Answer {
    pub status: u16,
    pub text: String,
    pub content_type: String,
}

/// A client of its own: the sweep sends bytes and content types the harness's client does not.
pub struct Raw {
    http: reqwest::Client,
    base: String,
}

impl Raw {
    pub fn new(base: &str) -> Raw {
        Raw {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("an HTTP client"),
            base: base.to_owned(),
        }
    }

    /// `path` is sent as written (already percent-encoded where it needs to be).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> Answer {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: no answer: {e}"));
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let text = response
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: reading the body: {e}"));
        Answer {
            status,
            text,
            content_type,
        }
    }
}

/// How an answer must look.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// A refusal: 4xx with a JSON error.
    Refusal,
    /// Exactly this status, with a JSON error.
    Status(u16),
    /// Anything but a server error (a well-formed request that may succeed).
    NoServerError,
}

/// The failures of a sweep, and how many inputs it tried.
#[derive(Default)]
struct Tally {
    tried: usize,
    server_errors: Vec<String>,
    failures: Vec<String>,
}

impl Tally {
    fn check(&mut self, what: &str, answer: &Answer, want: Want) {
        self.tried += 1;
        let status = answer.status;
        let excerpt: String = answer.text.chars().take(300).collect();
        if status >= 500 {
            self.server_errors
                .push(format!("{what}: {status} {excerpt}"));
            return;
        }
        let refused = (400..500).contains(&status);
        match want {
            Want::Refusal if !refused => {
                self.failures
                    .push(format!("{what}: {status}, not a refusal: {excerpt}"));
            }
            Want::Status(wanted) if status != wanted => {
                self.failures
                    .push(format!("{what}: {status}, not {wanted}: {excerpt}"));
            }
            _ => {}
        }
        if refused {
            let body: Value = serde_json::from_str(&answer.text).unwrap_or(Value::Null);
            let well_formed = answer.content_type.starts_with("application/json")
                && body["error"].as_str().is_some_and(|e| !e.is_empty())
                && body["message"].as_str().is_some_and(|m| !m.is_empty());
            if !well_formed {
                self.failures.push(format!(
                    "{what}: {status} without a JSON error and message ({}): {excerpt}",
                    answer.content_type
                ));
            }
        }
        // An answer may quote the input back (a name that does not exist): what the sweep sent
        // is not a telltale.
        let mut scrubbed = answer.text.clone();
        for injection in INJECTIONS.iter().filter(|i| !i.trim().is_empty()) {
            let quoted = serde_json::to_string(injection).unwrap_or_default();
            scrubbed = scrubbed
                .replace(&quoted[1..quoted.len() - 1], "")
                .replace(injection, "");
        }
        if let Some(telltale) = TELLTALES.iter().find(|t| scrubbed.contains(**t)) {
            self.failures
                .push(format!("{what}: {status} shows {telltale:?}: {excerpt}"));
        }
    }
}

/// One operation of the OpenAPI document.
struct Operation {
    method: Method,
    /// The path template, e.g. `/api/v1/customers/{id}`.
    path: String,
    /// Path parameters in order.
    path_params: Vec<String>,
    query_params: Vec<String>,
    /// The request body's schema (resolved), if the operation takes one.
    body: Option<Value>,
}

fn resolve<'a>(document: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let name = reference.rsplit('/').next().unwrap_or_default();
            &document["components"]["schemas"][name]
        }
        None => schema,
    }
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut out = Vec::new();
    let paths = document["paths"].as_object().expect("paths");
    for (path, item) in paths {
        for (method, operation) in item.as_object().expect("a path item") {
            let method = match method.as_str() {
                "get" => Method::GET,
                "post" => Method::POST,
                "put" => Method::PUT,
                "patch" => Method::PATCH,
                "delete" => Method::DELETE,
                _ => continue,
            };
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let named = |place: &str| -> Vec<String> {
                parameters
                    .iter()
                    .filter(|p| p["in"] == place)
                    .filter_map(|p| p["name"].as_str().map(str::to_owned))
                    .collect()
            };
            let mut path_params = named("path");
            // The document's order of path parameters is not the path's: take the path's.
            path_params.sort_by_key(|p| path.find(&format!("{{{p}}}")));
            let body = operation["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|s| resolve(document, &Value::Object(s.clone())).clone());
            out.push(Operation {
                method,
                path: path.clone(),
                path_params,
                query_params: named("query"),
                body,
            });
        }
    }
    out
}

/// A value of `schema`'s shape with `text` in every string.
fn shaped(document: &Value, schema: &Value, text: &str, depth: usize) -> Value {
    let schema = resolve(document, schema);
    if depth > 6 {
        return Value::String(text.to_owned());
    }
    for combinator in ["oneOf", "anyOf", "allOf"] {
        if let Some(first) = schema[combinator]
            .as_array()
            .and_then(|a| a.iter().find(|s| s["type"] != "null").or_else(|| a.first()))
        {
            return shaped(document, first, text, depth + 1);
        }
    }
    let kind = match &schema["type"] {
        Value::String(kind) => kind.clone(),
        Value::Array(kinds) => kinds
            .iter()
            .filter_map(Value::as_str)
            .find(|k| *k != "null")
            .unwrap_or("string")
            .to_owned(),
        _ if schema["properties"].is_object() => "object".to_owned(),
        _ => "string".to_owned(),
    };
    match kind.as_str() {
        "object" => {
            let mut map = Map::new();
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    map.insert(name.clone(), shaped(document, property, text, depth + 1));
                }
            }
            Value::Object(map)
        }
        "array" => Value::Array(vec![shaped(document, &schema["items"], text, depth + 1)]),
        "integer" | "number" => json!(1),
        // Never `true`: a sweep must not disable users or switch settings on by accident.
        "boolean" => json!(false),
        _ => Value::String(text.to_owned()),
    }
}

/// Values of the wrong type for a property.
fn wrong_types() -> Vec<Value> {
    vec![
        json!(12345678901234567890u64),
        json!(-1.5),
        json!(true),
        json!([1, "two", null]),
        json!({"nested": {"deeper": ["x"]}}),
        json!(1e300),
    ]
}

/// The sweep's concrete stand-ins for path parameters that must exist for a body to be read.
struct Stand {
    customer: i64,
    role: i64,
}

fn valid_param(stand: &Stand, path: &str, param: &str) -> String {
    match param {
        "object" => "customers".to_owned(),
        "username" => "rep4".to_owned(),
        "name" => "Sales%20Team%202".to_owned(),
        "field" => "credit_limit".to_owned(),
        "id" if path.starts_with("/api/v1/roles") => stand.role.to_string(),
        "id" if path.starts_with("/api/v1/customers") => stand.customer.to_string(),
        _ => "1".to_owned(),
    }
}

fn fill(template: &str, params: &[String], values: &[String]) -> String {
    let mut path = template.to_owned();
    for (param, value) in params.iter().zip(values) {
        path = path.replace(&format!("{{{param}}}"), value);
    }
    path
}

/// Every operation in the OpenAPI document, sent every kind of malformed request as the
/// administrator (who gets furthest into every use case). Returns how many inputs were tried.
pub async fn sweep(server: &Server) -> usize {
    let api = Api::login_everyone(server).await;
    let raw = Raw::new(&api.base);
    let n = api.name;
    let admin = api.token("admin").to_owned();
    let document: Value = serde_json::from_str(
        &raw.send(Method::GET, "/api/v1/openapi.json", None, None, None)
            .await
            .text,
    )
    .expect("the OpenAPI document is JSON");
    let objects = api.get("admin", "/api/v1/objects").await;
    let fields_of = |object: &str| -> Vec<String> {
        objects.body["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["object"] == object)
            .flat_map(|o| o["fields"].as_array().cloned().unwrap_or_default())
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect()
    };
    let customer =
        crate::harness::id(&api.get("admin", "/api/v1/customers?limit=1").await.body["items"][0]);
    let roles = api.get("admin", "/api/v1/roles").await;
    let role = roles.body["items"]
        .as_array()
        .or(roles.body.as_array())
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "Sales Rep")
        .and_then(|r| r["id"].as_i64())
        .unwrap_or_else(|| panic!("[{n}] no Sales Rep role: {}", roles.text));
    let stand = Stand { customer, role };

    let mut operations = operations(&document);
    // Logging in with injected names counts failures against this address: last, so that the
    // address's lock hurts nothing after it. Logging out would end the administrator's session.
    operations.retain(|op| op.path != "/api/v1/logout");
    operations.sort_by_key(|op| op.path == "/api/v1/login");
    assert!(
        operations.len() > 50,
        "[{n}] only {} operations",
        operations.len()
    );

    let mut tally = Tally::default();
    let deep_array = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let huge = {
        let filler = "x".repeat(OVER_LIMIT);
        format!("{{\"name\": \"{filler}\"}}")
    };
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("truncated", b"{".to_vec()),
        ("missing value", b"{\"a\":}".to_vec()),
        ("trailing comma", b"{\"a\":1,}".to_vec()),
        ("trailing garbage", b"{} x".to_vec()),
        ("two documents", b"{}{}".to_vec()),
        ("single quotes", b"{'a': 1}".to_vec()),
        ("NaN", b"{\"a\": NaN}".to_vec()),
        ("huge number", b"{\"a\": 1e999}".to_vec()),
        ("array", b"[]".to_vec()),
        ("null", b"null".to_vec()),
        ("string", b"\"x\"".to_vec()),
        ("number", b"42".to_vec()),
        (
            "invalid UTF-8",
            b"{\"name\": \"\xff\xfe\xc3\x28\"}".to_vec(),
        ),
        ("lone surrogate", b"{\"name\": \"\\ud800\"}".to_vec()),
        ("byte order mark", b"\xef\xbb\xbf{}".to_vec()),
        ("deep array", deep_array.into_bytes()),
        ("deep object", deep_object.into_bytes()),
        ("empty object", b"{}".to_vec()),
        ("unknown field", b"{\"zz_unknown_field\": 1}".to_vec()),
    ];

    for op in &operations {
        let valid: Vec<String> = op
            .path_params
            .iter()
            .map(|p| valid_param(&stand, &op.path, p))
            .collect();
        let path = fill(&op.path, &op.path_params, &valid);
        let token = Some(admin.as_str());
        let label = |what: &str| format!("[{n}] {} {} {what}", op.method, op.path);

        // Bad path parameters, each in turn.
        for (i, param) in op.path_params.iter().enumerate() {
            for bad in BAD_PATH_IDS.iter().copied().chain(
                INJECTIONS
                    .iter()
                    .copied()
                    .filter(|s| !s.is_empty() && !s.contains('/')),
            ) {
                let mut values = valid.clone();
                values[i] = if bad.contains('%') {
                    bad.to_owned()
                } else {
                    urlencoding(bad)
                };
                let bad_path = fill(&op.path, &op.path_params, &values);
                let body = op.body.as_ref().map(|_| b"{}".to_vec());
                let answer = raw
                    .send(
                        op.method.clone(),
                        &bad_path,
                        token,
                        Some("application/json"),
                        body,
                    )
                    .await;
                tally.check(&label(&format!("{param}={bad:?}")), &answer, Want::Refusal);
            }
        }

        // Bad query values, each parameter in turn, and ones nobody declared.
        let mut query_params = op.query_params.clone();
        if op.method == Method::GET || op.method == Method::DELETE {
            query_params.push("zz_unknown".to_owned());
        }
        for param in &query_params {
            for bad in BAD_QUERY_VALUES
                .iter()
                .map(|s| (*s).to_owned())
                .chain(INJECTIONS.iter().map(|s| urlencoding(s)))
            {
                let answer = raw
                    .send(
                        op.method.clone(),
                        &format!("{path}?{param}={bad}"),
                        token,
                        None,
                        None,
                    )
                    .await;
                // An unknown parameter is a field filter on lists, refused elsewhere; a filter
                // may match nothing (200): only server errors and shapeless refusals fail.
                tally.check(
                    &label(&format!("?{param}={bad}")),
                    &answer,
                    Want::NoServerError,
                );
            }
        }
        if op.method == Method::GET {
            for query in [
                "limit=1&limit=2",
                "cursor",
                "=1",
                "&&&",
                "limit=%",
                "a[b][c]=1",
            ] {
                let answer = raw
                    .send(
                        op.method.clone(),
                        &format!("{path}?{query}"),
                        token,
                        None,
                        None,
                    )
                    .await;
                tally.check(&label(&format!("?{query}")), &answer, Want::NoServerError);
            }
        }

        // Records' bodies are free-form objects (their fields come from /objects).
        let record_body = matches!(op.method, Method::POST | Method::PATCH)
            && op.path.split('/').count() <= 5
            && ["customers", "contacts", "deals", "contracts", "activities"]
                .iter()
                .any(|o| op.path.starts_with(&format!("/api/v1/{o}")));
        let takes_body = op.body.is_some() || record_body;
        if !takes_body {
            continue;
        }
        for (what, bytes) in &malformed {
            let answer = raw
                .send(
                    op.method.clone(),
                    &path,
                    token,
                    Some("application/json"),
                    Some(bytes.clone()),
                )
                .await;
            // An empty object or an unknown field may be a valid no-op for some operations
            // (a decision without a comment): those must only not fail the server.
            let want = match *what {
                "empty object" | "unknown field" => Want::NoServerError,
                _ => Want::Refusal,
            };
            tally.check(&label(what), &answer, want);
        }
        for content_type in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/xml",
        ] {
            let answer = raw
                .send(
                    op.method.clone(),
                    &path,
                    token,
                    Some(content_type),
                    Some(b"{}".to_vec()),
                )
                .await;
            tally.check(&label(content_type), &answer, Want::Refusal);
        }
        let answer =
            socket_request(&api.base, &op.method, &path, &admin, huge.as_bytes(), false).await;
        tally.check(&label("a body over the limit"), &answer, Want::Status(413));

        // Bodies of the right shape: every string an injection, then each property of the
        // wrong type in turn.
        let schema = match &op.body {
            Some(schema) if schema["properties"].is_object() => schema.clone(),
            _ => {
                let object = op.path.split('/').nth(3).unwrap_or("customers");
                let mut properties = Map::new();
                for field in fields_of(object) {
                    properties.insert(field, json!({"type": "string"}));
                }
                json!({"type": "object", "properties": properties})
            }
        };
        for injection in INJECTIONS {
            let mut body = shaped(&document, &schema, injection, 0);
            if op.method == Method::PATCH && op.path.starts_with("/api/v1/customers") {
                body["version"] = json!(1);
            }
            let answer = raw
                .send(
                    op.method.clone(),
                    &path,
                    token,
                    Some("application/json"),
                    Some(body.to_string().into_bytes()),
                )
                .await;
            tally.check(
                &label(&format!("every string {injection:?}")),
                &answer,
                Want::NoServerError,
            );
        }
        let base = shaped(&document, &schema, "sweep", 0);
        if let Some(properties) = base.as_object() {
            for name in properties.keys() {
                for wrong in wrong_types() {
                    let mut body = base.clone();
                    body[name] = wrong.clone();
                    let answer = raw
                        .send(
                            op.method.clone(),
                            &path,
                            token,
                            Some("application/json"),
                            Some(body.to_string().into_bytes()),
                        )
                        .await;
                    tally.check(
                        &label(&format!("{name}={wrong}")),
                        &answer,
                        Want::NoServerError,
                    );
                }
            }
        }
    }

    // Methods the API does not route, and paths it does not have.
    for (method, path) in [
        (Method::PUT, "/api/v1/customers".to_owned()),
        (Method::OPTIONS, "/api/v1/customers".to_owned()),
        (Method::TRACE, "/api/v1/login".to_owned()),
        (Method::GET, "/api/v1/no-such-thing".to_owned()),
        (Method::GET, format!("/api/v1/{}", "a/".repeat(500))),
        (
            Method::GET,
            format!("/api/v1/customers/{}", "9".repeat(5_000)),
        ),
    ] {
        let answer = raw
            .send(method.clone(), &path, Some(&admin), None, None)
            .await;
        let what = format!("[{n}] {method} {}", &path[..path.len().min(60)]);
        tally.check(&what, &answer, Want::Refusal);
    }

    let alive = raw.send(Method::GET, "/healthz", None, None, None).await;
    assert_eq!(
        alive.status, 200,
        "[{n}] the server is not healthy after the sweep"
    );
    let output = server.output();
    assert!(
        !output.contains("panicked"),
        "[{n}] the server panicked during the sweep:\n{output}"
    );
    eprintln!(
        "e2e [{n}] malformed request sweep: {} operations, {} inputs tried, {} server errors, {} shapeless or wrong answers",
        operations.len(),
        tally.tried,
        tally.server_errors.len(),
        tally.failures.len()
    );
    assert!(
        tally.server_errors.is_empty() && tally.failures.is_empty(),
        "[{n}] the sweep found {} server errors and {} other failures:\n{}\n{}",
        tally.server_errors.len(),
        tally.failures.len(),
        tally.server_errors.join("\n"),
        tally
            .failures
            .iter()
            .take(200)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
    tally.tried
}

/// Percent-encodes everything but unreserved characters.
pub fn urlencoding(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body limit: a body over 1 MiB is 413 with a JSON error, whether or not it declares its
/// length, and nothing is created; a body just under it is read (and judged on its content).
pub async fn body_limit(api: &Api) {
    let n = api.name;
    let raw = Raw::new(&api.base);
    let rep1 = api.token("rep1");
    let before = api.all_customers("admin", 200).await.len();
    let name = "x".repeat(OVER_LIMIT);
    let body = format!("{{\"name\": \"{name}\"}}").into_bytes();
    let answer = socket_request(
        &api.base,
        &Method::POST,
        "/api/v1/customers",
        rep1,
        &body,
        false,
    )
    .await;
    assert_eq!(
        answer.status,
        413,
        "[{n}] a 2 MiB body: {}",
        &answer.text[..answer.text.len().min(300)]
    );
    let error: Value = serde_json::from_str(&answer.text).expect("a JSON error");
    assert_eq!(error["error"], "payload_too_large", "[{n}] {error}");
    // Sent in chunks without a Content-Length: the limit holds on what arrives.
    let chunked = socket_request(
        &api.base,
        &Method::POST,
        "/api/v1/customers",
        rep1,
        &body,
        true,
    )
    .await;
    assert_eq!(
        chunked.status, 413,
        "[{n}] a chunked 2 MiB body: {}",
        chunked.text
    );
    // Just under the limit: read, and refused for what it says (a name that is too long).
    let under = format!("{{\"name\": \"{}\"}}", "x".repeat(1024 * 1024 - 64));
    let answer = raw
        .send(
            Method::POST,
            "/api/v1/customers",
            Some(rep1),
            Some("application/json"),
            Some(under.into_bytes()),
        )
        .await;
    assert_eq!(
        answer.status,
        422,
        "[{n}] a body under the limit with a long name: {}",
        &answer.text[..answer.text.len().min(300)]
    );
    assert_eq!(
        api.all_customers("admin", 200).await.len(),
        before,
        "[{n}] a refused body created something"
    );
}

/// Sends `body` over a plain socket (chunked, or with its length) and reads whatever answer
/// comes, even when the server closes before taking the whole body, as it may after a 413.
pub async fn socket_request(
    base: &str,
    method: &Method,
    path: &str,
    token: &str,
    body: &[u8],
    chunked: bool,
) -> Answer {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let address = base.trim_start_matches("http://");
    let socket = tokio::net::TcpStream::connect(address)
        .await
        .expect("connect to the server");
    let (mut reader, mut writer) = socket.into_split();
    let framing = if chunked {
        "Transfer-Encoding: chunked".to_owned()
    } else {
        format!("Content-Length: {}", body.len())
    };
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n{framing}\r\nConnection: close\r\n\r\n"
    );
    let body = body.to_vec();
    // Written beside the reading: the server may answer and close before the whole body is
    // sent, which is the point.
    let write = tokio::spawn(async move {
        writer.write_all(head.as_bytes()).await?;
        for chunk in body.chunks(64 * 1024) {
            if chunked {
                writer
                    .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                    .await?;
            }
            writer.write_all(chunk).await?;
            if chunked {
                writer.write_all(b"\r\n").await?;
            }
        }
        if chunked {
            writer.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), reader.read_to_end(&mut answer)).await;
    write.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            panic!(
                "{method} {path}: no HTTP status in {:?}",
                &text[..text.len().min(200)]
            )
        });
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Answer {
        status,
        text: body.to_owned(),
        content_type,
    }
}

/// What a refused mass assignment must leave as it was: a customer as the administrator
/// reads it, every field and stamp.
async fn customer_as_admin(api: &Api, id: i64) -> Value {
    let reply = api.get("admin", &format!("/api/v1/customers/{id}")).await;
    assert_eq!(
        reply.status, 200,
        "[{}] admin reads customer {id}: {}",
        api.name, reply.text
    );
    reply.body
}

/// Mass assignment: protected attributes in create and update bodies — of customers, users
/// and roles — are refused whole with a 4xx naming the attribute, and change nothing.
pub async fn mass_assignment(api: &Api, rep1_customer: i64, acme: i64) {
    let n = api.name;
    let path = format!("/api/v1/customers/{rep1_customer}");
    let before = customer_as_admin(api, rep1_customer).await;
    let version = before["version"].clone();
    let probe = "mass-assignment-probe";
    let customers_before = api.all_customers("admin", 200).await.len();
    // (who, body, status, the field named by the refusal)
    let creates: Vec<(&str, Value, u16, &str)> = vec![
        ("rep1", json!({"name": probe, "id": 999_999}), 422, "id"),
        (
            "rep1",
            json!({"name": probe, "unit": "Sales Team 2"}),
            422,
            "unit",
        ),
        ("rep1", json!({"name": probe, "version": 7}), 422, "version"),
        (
            "rep1",
            json!({"name": probe, "created_at": "2020-01-01T00:00:00Z"}),
            422,
            "created_at",
        ),
        (
            "rep1",
            json!({"name": probe, "updated_at": "2020-01-01T00:00:00Z"}),
            422,
            "updated_at",
        ),
        (
            "rep1",
            json!({"name": probe, "masked_fields": ["credit_limit"]}),
            422,
            "masked_fields",
        ),
        ("rep1", json!({"name": probe, "owner": "rep3"}), 403, ""),
        (
            "rep1",
            json!({"name": probe, "credit_limit": 1_000_000}),
            403,
            "credit_limit",
        ),
        (
            "rep1",
            json!({"name": probe, "bank_account": "DE89370400440532013000"}),
            403,
            "bank_account",
        ),
        ("support", json!({"name": probe}), 403, ""),
        (
            "finance",
            json!({"name": probe, "credit_limit": 5}),
            403,
            "",
        ),
        ("portal-acme", json!({"name": probe}), 403, ""),
    ];
    for (who, body, status, field) in creates {
        let reply = api.post(who, "/api/v1/customers", body.clone()).await;
        assert_eq!(
            reply.status, status,
            "[{n}] {who} POST /customers {body}: {}",
            reply.text
        );
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "[{n}] {who} POST {body}: no message: {}",
            reply.text
        );
        if !field.is_empty() {
            assert_eq!(
                reply.field(),
                field,
                "[{n}] {who} POST {body}: {}",
                reply.text
            );
        }
    }
    assert_eq!(
        api.all_customers("admin", 200).await.len(),
        customers_before,
        "[{n}] a refused create made a customer"
    );

    let updates: Vec<(&str, Value, u16, &str)> = vec![
        ("rep1", json!({"version": version, "id": 1}), 422, "id"),
        (
            "rep1",
            json!({"version": version, "unit": "Sales Team 2"}),
            422,
            "unit",
        ),
        (
            "rep1",
            json!({"version": version, "created_at": "2020-01-01T00:00:00Z"}),
            422,
            "created_at",
        ),
        (
            "rep1",
            json!({"version": version, "updated_at": "2020-01-01T00:00:00Z"}),
            422,
            "updated_at",
        ),
        (
            "rep1",
            json!({"version": version, "customer_id": acme}),
            422,
            "customer_id",
        ),
        (
            "rep1",
            json!({"version": version, "version_": 1}),
            422,
            "version_",
        ),
        (
            "rep1",
            json!({"version": version, "owner": "rep3"}),
            403,
            "",
        ),
        (
            "rep1",
            json!({"version": version, "credit_limit": 1_000_000}),
            403,
            "credit_limit",
        ),
        (
            "rep1",
            json!({"version": version, "bank_account": "DE89370400440532013000"}),
            403,
            "bank_account",
        ),
        (
            "rep1",
            json!({"version": version, "name": "ok", "credit_limit": 1}),
            403,
            "credit_limit",
        ),
        (
            "supervisor1",
            json!({"version": version, "bank_account": "x"}),
            403,
            "bank_account",
        ),
        (
            "manager",
            json!({"version": version, "bank_account": "x"}),
            403,
            "bank_account",
        ),
        (
            "support",
            json!({"version": version, "credit_limit": 1}),
            403,
            "credit_limit",
        ),
        (
            "finance",
            json!({"version": version, "name": "renamed by finance"}),
            403,
            "name",
        ),
        (
            "supervisor2",
            json!({"version": version, "name": "x"}),
            404,
            "",
        ),
        (
            "rep2",
            json!({"version": version, "owner": "rep2"}),
            404,
            "",
        ),
    ];
    for (who, body, status, field) in updates {
        let reply = api.patch(who, &path, body.clone()).await;
        assert_eq!(
            reply.status, status,
            "[{n}] {who} PATCH {path} {body}: {}",
            reply.text
        );
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "[{n}] {who} PATCH {body}: no message: {}",
            reply.text
        );
        if !field.is_empty() {
            assert_eq!(
                reply.field(),
                field,
                "[{n}] {who} PATCH {body}: {}",
                reply.text
            );
        }
        assert_eq!(
            customer_as_admin(api, rep1_customer).await,
            before,
            "[{n}] {who} PATCH {body} was refused but changed the customer"
        );
    }
    // The portal user reads Acme but may change nothing of it.
    let acme_before = customer_as_admin(api, acme).await;
    let reply = api
        .patch(
            "portal-acme",
            &format!("/api/v1/customers/{acme}"),
            json!({"version": acme_before["version"], "name": "Acme (pwned)"}),
        )
        .await;
    assert_eq!(
        reply.status, 403,
        "[{n}] portal-acme renames Acme: {}",
        reply.text
    );
    assert_eq!(
        customer_as_admin(api, acme).await,
        acme_before,
        "[{n}] portal-acme changed Acme"
    );

    // Users: no id, stamps or portal account by update, no self-promotion.
    let rep1_before = api.get("admin", "/api/v1/users/rep1").await;
    assert_eq!(
        rep1_before.status, 200,
        "[{n}] admin reads rep1: {}",
        rep1_before.text
    );
    let user_cases: Vec<(&str, &str, Method, Value, u16)> = vec![
        (
            "rep1",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"roles": ["Administrator"]}),
            403,
        ),
        (
            "rep1",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"manager": null}),
            403,
        ),
        (
            "rep1",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"unit": "Head Office"}),
            403,
        ),
        (
            "rep1",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"disabled": false}),
            403,
        ),
        (
            "manager",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"roles": ["Administrator"]}),
            403,
        ),
        (
            "admin",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"id": 1}),
            422,
        ),
        (
            "admin",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"username": "rep1-renamed"}),
            422,
        ),
        (
            "admin",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"created_at": "2020-01-01T00:00:00Z"}),
            422,
        ),
        (
            "admin",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"portal_account": 1}),
            422,
        ),
        (
            "admin",
            "/api/v1/users/rep1",
            Method::PATCH,
            json!({"password_hash": "$argon2id$v=19$x"}),
            422,
        ),
        (
            "admin",
            "/api/v1/users",
            Method::POST,
            json!({"username": "mass-probe", "password": "a-long-enough-password-1", "unit": "Sales", "id": 1}),
            422,
        ),
        (
            "admin",
            "/api/v1/users",
            Method::POST,
            json!({"username": "mass-probe", "password": "a-long-enough-password-1", "unit": "Sales", "password_hash": "x"}),
            422,
        ),
        (
            "admin",
            "/api/v1/users",
            Method::POST,
            json!({"username": "mass-probe", "password": "a-long-enough-password-1", "unit": "Sales", "created_at": "2020-01-01T00:00:00Z"}),
            422,
        ),
        (
            "rep1",
            "/api/v1/users",
            Method::POST,
            json!({"username": "mass-probe", "password": "a-long-enough-password-1", "unit": "Sales", "roles": ["Administrator"]}),
            403,
        ),
    ];
    for (who, path, method, body, status) in user_cases {
        let reply = api
            .request(
                method.clone(),
                path,
                Some(api.token(who)),
                crate::harness::Body::Json(body.clone()),
            )
            .await;
        assert_eq!(
            reply.status, status,
            "[{n}] {who} {method} {path} {body}: {}",
            reply.text
        );
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "[{n}] {who} {method} {path} {body}: no message: {}",
            reply.text
        );
    }
    let rep1_after = api.get("admin", "/api/v1/users/rep1").await;
    assert_eq!(
        rep1_after.body, rep1_before.body,
        "[{n}] a refused change moved rep1"
    );
    assert_eq!(
        api.get("admin", "/api/v1/users/mass-probe").await.status,
        404,
        "[{n}] a refused create made a user"
    );
    let me = api.get("rep1", "/api/v1/customers?limit=200").await;
    assert_eq!(me.status, 200);
    assert!(
        me.body["items"]
            .as_array()
            .is_some_and(|items| items.iter().all(|c| c["owner"] == "rep1")),
        "[{n}] rep1 sees others' customers after the refused self-promotion"
    );

    // Roles: the id, version stamps and unknown attributes are not writable.
    let roles = api.get("admin", "/api/v1/roles").await;
    let rep_role = roles.body["items"]
        .as_array()
        .or(roles.body.as_array())
        .into_iter()
        .flatten()
        .find(|r| r["name"] == "Sales Rep")
        .cloned()
        .unwrap_or_else(|| panic!("[{n}] no Sales Rep role: {}", roles.text));
    let role_path = format!("/api/v1/roles/{}", rep_role["id"]);
    let mut with_id = rep_role.clone();
    with_id["id"] = json!(1);
    let mut body = rep_role.clone();
    if let Some(map) = body.as_object_mut() {
        map.remove("id");
    }
    let role_cases: Vec<(&str, &str, Method, Value, u16)> = vec![
        ("admin", role_path.as_str(), Method::PUT, with_id, 422),
        (
            "admin",
            role_path.as_str(),
            Method::PUT,
            json!({"name": "Sales Rep", "created_at": 1}),
            422,
        ),
        (
            "admin",
            "/api/v1/roles",
            Method::POST,
            json!({"name": "mass-probe-role", "id": 1}),
            422,
        ),
        (
            "manager",
            role_path.as_str(),
            Method::PUT,
            body.clone(),
            403,
        ),
        (
            "rep1",
            role_path.as_str(),
            Method::PUT,
            json!({"name": "Sales Rep", "grants": [{"object": "customers", "action": "read", "scope": "all"}], "version": rep_role["version"]}),
            403,
        ),
        (
            "rep1",
            "/api/v1/roles",
            Method::POST,
            json!({"name": "mass-probe-role"}),
            403,
        ),
    ];
    for (who, path, method, body, status) in role_cases {
        let reply = api
            .request(
                method.clone(),
                path,
                Some(api.token(who)),
                crate::harness::Body::Json(body.clone()),
            )
            .await;
        assert_eq!(
            reply.status, status,
            "[{n}] {who} {method} {path} {body}: {}",
            reply.text
        );
        assert!(
            reply.body["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "[{n}] {who} {method} {path}: no message: {}",
            reply.text
        );
    }
    let after = api.get("admin", &role_path).await;
    assert_eq!(
        after.body, rep_role,
        "[{n}] a refused change altered the Sales Rep role"
    );
}

/// The login throttle per client address: failures spread over many usernames from one
/// address lock that address (not the usernames, not other addresses), and the lock is a row
/// of the database, so every server process behind a load balancer sees it. Needs a server
/// started with `--trusted-proxy 127.0.0.1/32` so each case has an address of its own.
pub async fn address_throttle(server: &Server) {
    let api = Api::login_everyone(server).await;
    let n = api.name;
    let spray = "198.51.100.77";
    let elsewhere = "198.51.100.78";
    let login = |username: String, password: &'static str, from: &'static str| {
        let api = &api;
        async move {
            api.request_with_headers(
                Method::POST,
                "/api/v1/login",
                None,
                crate::harness::Body::Json(json!({"username": username, "password": password})),
                &[("x-forwarded-for", from)],
            )
            .await
        }
    };
    // 30 failures from one address, each on another (unknown) username: no username reaches
    // its own threshold of 5.
    let mut locked_after = None;
    for i in 0..40 {
        let reply = login(format!("sprayed-{i}"), "wrong-password-123", spray).await;
        match reply.status {
            401 => {}
            429 => {
                assert!(reply.retry_after.is_some(), "[{n}] 429 without Retry-After");
                locked_after = Some(i);
                break;
            }
            other => panic!("[{n}] spray login {i}: {other} {}", reply.text),
        }
    }
    assert_eq!(
        locked_after,
        Some(30),
        "[{n}] the address was locked after {locked_after:?} failures, not 30"
    );
    // Locked: even the right password of a real user from that address.
    let reply = login("rep2".to_owned(), PASSWORD, spray).await;
    assert_eq!(
        reply.status, 429,
        "[{n}] rep2 from the locked address: {}",
        reply.text
    );
    // The same user from another address is let in: the lock is the address's.
    let reply = login("rep2".to_owned(), PASSWORD, elsewhere).await;
    assert_eq!(
        reply.status, 200,
        "[{n}] rep2 from another address: {}",
        reply.text
    );
    // The lock is kept in the database, where another process reads it.
    let url = format!("sqlite://{}", server.data_dir().join("warden.db").display());
    sqlx::any::install_default_drivers();
    let mut db = <sqlx::AnyConnection as sqlx::Connection>::connect(&url)
        .await
        .expect("open the database");
    let (failures, locked_until): (i64, i64) =
        sqlx::query_as("SELECT failures, locked_until FROM login_throttle WHERE key = $1")
            .bind(format!("ip:{spray}"))
            .fetch_one(&mut db)
            .await
            .expect("the address's throttle row");
    assert!(
        failures >= 30 && locked_until > 0,
        "[{n}] throttle row: {failures} failures, locked until {locked_until}"
    );
    eprintln!("e2e [{n}] login throttle per address: locked after 30 failures over 30 usernames; kept in login_throttle");
}
