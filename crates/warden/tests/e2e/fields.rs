//! Field-level security end to end: the matrix of demo users × customer fields × read and
//! write, masks and the logged reveal, lists filtered by fields, and explain's field part.

use serde_json::{json, Value};

use crate::harness::{id, Api, Truth};

/// The demo's customer fields.
const FIELDS: &[&str] = &[
    "name",
    "email",
    "phone",
    "industry",
    "region",
    "status",
    "credit_limit",
    "bank_account",
];
const FINANCIAL: &[&str] = &["credit_limit", "bank_account"];

/// What a user gets of a field, as the brief's demo says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sees {
    Absent,
    Masked,
    Plain,
}

/// The expected matrix: (user, field) → what a read shows and whether a write is allowed.
fn expected(user: &str, field: &str) -> (Sees, bool) {
    let financial = FINANCIAL.contains(&field);
    match (user, field) {
        ("admin", _) => (Sees::Plain, true),
        ("finance", _) => (Sees::Plain, financial),
        ("manager", "bank_account") => (Sees::Masked, false),
        ("manager" | "supervisor1" | "rep1", "credit_limit") => (Sees::Plain, false),
        ("supervisor1" | "rep1" | "support", "bank_account") => (Sees::Absent, false),
        ("support", "credit_limit") => (Sees::Absent, false),
        (_, _) => (Sees::Plain, true),
    }
}

/// The matrix users: every demo user who reads rep1's customers.
const READERS: &[&str] = &[
    "admin",
    "manager",
    "supervisor1",
    "rep1",
    "support",
    "finance",
];

pub async fn everything(api: &Api, truth: &Truth) {
    let customer = truth.some_of("rep1", 1)[0];
    let path = format!("/api/v1/customers/{customer}");
    let full = api.get("admin", &path).await;
    assert_eq!(
        full.status, 200,
        "[{}] admin reads {path}: {}",
        api.name, full.text
    );
    for field in FIELDS {
        assert!(
            !full.body[*field].is_null(),
            "[{}] the demo customer has every field: {field} is empty",
            api.name
        );
    }
    reads(api, &path, &full.body).await;
    lists_hide_the_same_fields(api).await;
    writes(api, &path, &full.body).await;
    a_mixed_write_changes_nothing(api, &path).await;
    creates(api).await;
    reveal(api, customer, &full.body).await;
    filters(api).await;
    explain(api, customer).await;
    roles_show_field_rules(api).await;
}

/// Single reads: each field present, masked or absent (absent, not null) per the matrix.
async fn reads(api: &Api, path: &str, full: &Value) {
    for user in READERS {
        let reply = api.get(user, path).await;
        assert_eq!(
            reply.status, 200,
            "[{}] {user} reads {path}: {}",
            api.name, reply.text
        );
        let record = reply.body.as_object().expect("a record is an object");
        let mut masked_expected = Vec::new();
        for field in FIELDS {
            let (sees, _) = expected(user, field);
            let got = record.get(*field);
            match sees {
                Sees::Absent => assert!(
                    got.is_none(),
                    "[{}] {user} must not see {field}, got {got:?}",
                    api.name
                ),
                Sees::Plain => assert_eq!(
                    got,
                    Some(&full[*field]),
                    "[{}] {user} sees {field} in full",
                    api.name
                ),
                Sees::Masked => {
                    masked_expected.push(json!(field));
                    let full_text = match &full[*field] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    let tail: String = full_text
                        .chars()
                        .rev()
                        .take(4)
                        .collect::<Vec<_>>()
                        .into_iter()
                        .rev()
                        .collect();
                    assert_eq!(
                        got,
                        Some(&json!(format!("••••{tail}"))),
                        "[{}] {user} sees {field} masked to its last four characters",
                        api.name
                    );
                }
            }
        }
        let masked = record.get("masked_fields").cloned().unwrap_or(json!([]));
        assert_eq!(
            masked,
            Value::Array(masked_expected),
            "[{}] {user}: masked_fields",
            api.name
        );
        // The plain value of a hidden or masked field appears nowhere in the answer.
        for field in FINANCIAL {
            if expected(user, field).0 != Sees::Plain {
                let secret = match &full[*field] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                assert!(
                    !reply.text.contains(&secret),
                    "[{}] {user}'s answer holds {field}'s value",
                    api.name
                );
            }
        }
    }
}

/// Lists show each item with the same fields as a single read.
async fn lists_hide_the_same_fields(api: &Api) {
    for user in READERS {
        let reply = api.get(user, "/api/v1/customers?limit=20").await;
        assert_eq!(
            reply.status, 200,
            "[{}] {user} lists: {}",
            api.name, reply.text
        );
        let items = reply.body["items"].as_array().expect("items");
        assert!(!items.is_empty(), "[{}] {user} sees customers", api.name);
        for item in items {
            for field in FIELDS {
                let present = item.get(*field).is_some();
                assert_eq!(
                    present,
                    expected(user, field).0 != Sees::Absent,
                    "[{}] {user}: list item {} field {field}",
                    api.name,
                    id(item)
                );
            }
        }
    }
}

/// Writes: each field alone, by each user; allowed ones succeed, the others are 403 naming
/// the field. Values written are the ones already there, so the data stays as seeded.
async fn writes(api: &Api, path: &str, full: &Value) {
    for user in READERS {
        for field in FIELDS {
            let (_, may_write) = expected(user, field);
            let version = api.get("admin", path).await.body["version"].clone();
            let reply = api
                .patch(
                    user,
                    path,
                    json!({ *field: full[*field].clone(), "version": version }),
                )
                .await;
            if may_write {
                assert_eq!(
                    reply.status, 200,
                    "[{}] {user} writes {field}: {}",
                    api.name, reply.text
                );
            } else {
                assert_eq!(
                    reply.status, 403,
                    "[{}] {user} must not write {field}: {}",
                    api.name, reply.text
                );
                assert_eq!(
                    reply.field(),
                    *field,
                    "[{}] the 403 names the field",
                    api.name
                );
            }
        }
    }
}

/// A write touching one forbidden field is refused whole: the allowed field is unchanged.
async fn a_mixed_write_changes_nothing(api: &Api, path: &str) {
    for (user, allowed, forbidden, value) in [
        ("support", "phone", "credit_limit", json!(999_000)),
        (
            "finance",
            "credit_limit",
            "name",
            json!("Renamed by finance"),
        ),
        ("rep1", "phone", "bank_account", json!("CN00 0000")),
    ] {
        let before = api.get("admin", path).await.body;
        let reply = api
            .patch(
                user,
                path,
                json!({ allowed: if allowed == "phone" { json!("+1 555 0100") } else { json!(123_000) },
                        forbidden: value, "version": before["version"] }),
            )
            .await;
        assert_eq!(reply.status, 403, "[{}] {user}: {}", api.name, reply.text);
        assert_eq!(reply.field(), forbidden, "[{}] {user}", api.name);
        let after = api.get("admin", path).await.body;
        assert_eq!(
            before, after,
            "[{}] {user}'s refused write changed the record",
            api.name
        );
    }
}

/// Creating: a rep may not set a field they only read; without it the create succeeds.
async fn creates(api: &Api) {
    let reply = api
        .post(
            "rep1",
            "/api/v1/customers",
            json!({"name": "Field Test Co.", "credit_limit": 10_000}),
        )
        .await;
    assert_eq!(reply.status, 403, "[{}] {}", api.name, reply.text);
    assert_eq!(reply.field(), "credit_limit");
    let reply = api
        .post(
            "rep1",
            "/api/v1/customers",
            json!({"name": "Field Test Co."}),
        )
        .await;
    assert_eq!(reply.status, 201, "[{}] {}", api.name, reply.text);
    assert!(reply.body.get("bank_account").is_none());
    assert_eq!(
        reply.body["credit_limit"],
        Value::Null,
        "rep1 reads credit_limit: empty"
    );
    let created = id(&reply.body);
    let reply = api
        .delete("admin", &format!("/api/v1/customers/{created}"))
        .await;
    assert_eq!(reply.status, 204, "[{}] {}", api.name, reply.text);
}

/// Reveal: the manager gets bank_account in full, and the access log says so; a user the
/// field is hidden from gets 403; an unreadable record is 404.
async fn reveal(api: &Api, customer: i64, full: &Value) {
    let path = format!("/api/v1/customers/{customer}/fields/bank_account/reveal");
    let reply = api.post("manager", &path, json!({})).await;
    assert_eq!(reply.status, 200, "[{}] {}", api.name, reply.text);
    assert_eq!(reply.body["value"], full["bank_account"]);
    for user in ["rep1", "support"] {
        let reply = api.post(user, &path, json!({})).await;
        assert_eq!(reply.status, 403, "[{}] {user}: {}", api.name, reply.text);
        assert_eq!(reply.field(), "bank_account");
    }
    // rep3 cannot read rep1's customer at all.
    let reply = api.post("rep3", &path, json!({})).await;
    assert_eq!(reply.status, 404, "[{}] {}", api.name, reply.text);
    let reply = api
        .post(
            "manager",
            &format!("/api/v1/customers/{customer}/fields/colour/reveal"),
            json!({}),
        )
        .await;
    assert_eq!(reply.status, 422, "[{}] {}", api.name, reply.text);

    let log = api
        .get(
            "auditor",
            &format!("/api/v1/audit?object=customers&id={customer}"),
        )
        .await;
    assert_eq!(log.status, 200, "[{}] {}", api.name, log.text);
    let reveals: Vec<&Value> = log.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter(|e| e["action"] == "reveal")
        .collect();
    assert_eq!(
        reveals.len(),
        1,
        "[{}] one reveal logged: {}",
        api.name,
        log.text
    );
    assert_eq!(reveals[0]["actor"], "manager");
    assert_eq!(reveals[0]["fields"], json!(["bank_account"]));
    assert!(
        !log.text
            .contains(full["bank_account"].as_str().unwrap_or("?")),
        "the log names the field, never its value"
    );
    let reply = api
        .get(
            "rep1",
            &format!("/api/v1/audit?object=customers&id={customer}"),
        )
        .await;
    assert_eq!(reply.status, 403, "[{}] the log needs view_audit", api.name);
}

/// Lists narrowed by a field: allowed only on fields readable on every visible record, never
/// on encrypted ones.
async fn filters(api: &Api) {
    let reply = api
        .get("support", "/api/v1/customers?region=East&limit=200")
        .await;
    assert_eq!(reply.status, 200, "[{}] {}", api.name, reply.text);
    let items = reply.body["items"].as_array().expect("items");
    assert!(!items.is_empty());
    assert!(items.iter().all(|i| i["region"] == "East"), "only East");
    let all = api.all_customers("support", 200).await;
    let east = all.iter().filter(|i| i["region"] == "East").count();
    let mut seen = items.len();
    let mut next = reply.body["next_cursor"].clone();
    while let Value::String(cursor) = next {
        let page = api
            .get(
                "support",
                &format!("/api/v1/customers?region=East&limit=200&cursor={cursor}"),
            )
            .await;
        seen += page.body["items"].as_array().map_or(0, Vec::len);
        next = page.body["next_cursor"].clone();
    }
    assert_eq!(
        seen, east,
        "[{}] the filter keeps exactly the East customers",
        api.name
    );

    for (user, query, status, field) in [
        ("support", "credit_limit=5000", 403, "credit_limit"),
        ("rep1", "bank_account=x", 403, "bank_account"),
        ("manager", "bank_account=x", 403, "bank_account"),
        ("admin", "credit_limit=5000", 422, "credit_limit"),
        ("support", "sort=credit_limit", 403, "credit_limit"),
        ("admin", "sort=name", 422, "sort"),
        ("admin", "colour=red", 422, "colour"),
        ("admin", "status=bogus", 422, "status"),
    ] {
        let reply = api.get(user, &format!("/api/v1/customers?{query}")).await;
        assert_eq!(
            reply.status, status,
            "[{}] {user} ?{query}: {}",
            api.name, reply.text
        );
        assert_eq!(reply.field(), field, "[{}] {user} ?{query}", api.name);
    }
}

/// Explain says, per field, what the user gets and which role says so.
async fn explain(api: &Api, customer: i64) {
    let reply = api
        .get(
            "admin",
            &format!("/api/v1/access/explain?user=support&object=customers&id={customer}"),
        )
        .await;
    assert_eq!(reply.status, 200, "[{}] {}", api.name, reply.text);
    let fields = reply.body["fields"].as_array().expect("fields");
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["field"] == name)
            .unwrap_or_else(|| panic!("explain lists {name}"))
            .clone()
    };
    let credit = field("credit_limit");
    assert_eq!(credit["read"], "hidden");
    assert_eq!(credit["writable"], false);
    assert_eq!(credit["sensitive"], true);
    assert!(credit["because"]
        .as_str()
        .unwrap_or_default()
        .contains("sensitive"));
    let phone = field("phone");
    assert_eq!(phone["read"], "write");
    assert_eq!(phone["writable"], true);
    assert_eq!(phone["write_by"], "Customer Support");

    let reply = api
        .get(
            "admin",
            &format!("/api/v1/access/explain?user=manager&object=customers&id={customer}"),
        )
        .await;
    let fields = reply.body["fields"].as_array().expect("fields").clone();
    let bank = fields
        .iter()
        .find(|f| f["field"] == "bank_account")
        .expect("bank_account");
    assert_eq!(bank["read"], "masked");
    assert_eq!(bank["read_by"], "Sales Manager");
    assert!(bank["because"]
        .as_str()
        .unwrap_or_default()
        .contains("masked"));
}

async fn roles_show_field_rules(api: &Api) {
    let reply = api.get("admin", "/api/v1/roles").await;
    assert_eq!(reply.status, 200);
    let finance = reply.body["items"]
        .as_array()
        .expect("roles")
        .iter()
        .find(|r| r["name"] == "Finance")
        .expect("Finance")
        .clone();
    let rules = finance["fields"].as_array().expect("fields");
    let rule = |object: &str, field: &str| {
        rules
            .iter()
            .find(|r| r["object"] == object && r["field"] == field)
            .map(|r| r["access"].clone())
    };
    assert_eq!(rule("customers", "credit_limit"), Some(json!("write")));
    assert_eq!(rule("customers", "name"), Some(json!("read")));
    // An unknown field in a rule is refused by name.
    let reply = api
        .post(
            "admin",
            "/api/v1/roles",
            json!({"name": "Bad fields", "fields": [{"object": "customers", "field": "colour", "access": "read"}]}),
        )
        .await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(reply.field(), "fields[0].field");
}
