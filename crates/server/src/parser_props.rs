//! Property tests that feed arbitrary JSON, bytes and query strings to every parser of the
//! wire format (the always-run form of the fuzz targets in `fuzz/`): none may panic; each
//! answers a value or an error.

use proptest::prelude::*;
use serde_json::{Map, Value as Json};

use crate::fuzzing::{every_body, every_query};

/// Keys that reach deeper into the parsers than random ones: field and attribute names.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "name", "version", "owner", "unit", "id", "customer_id", "created_at", "credit_limit",
            "bank_account", "email", "status", "vip", "username", "password", "roles", "manager",
            "disabled", "person", "portal_account", "grants", "object", "action", "scope", "depth",
            "permissions", "fields", "field", "access", "description", "operations", "when",
            "requesters", "approvers", "required", "escalate", "share_with", "owned_by_unit",
            "applies_to", "actions", "only", "all", "any", "not", "eq", "ne", "lt", "gt", "in",
            "contains", "role", "user", "ip_allow", "login_hours", "time_zone", "days", "from",
            "to", "mfa_required", "kind", "with", "record", "rule", "expires_after_hours",
        ]).prop_map(str::to_owned),
        1 => "[a-z_]{0,12}",
        1 => any::<String>(),
    ]
}

fn json() -> impl Strategy<Value = Json> {
    let leaf = prop_oneof![
        Just(Json::Null),
        any::<bool>().prop_map(Json::Bool),
        any::<i64>().prop_map(Json::from),
        any::<u64>().prop_map(Json::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Json::Null, Json::Number)),
        prop::sample::select(vec![
            "read",
            "own",
            "all",
            "customers",
            "subordinates",
            "Sales Rep",
            "rep1",
            "keep",
            "2027-01-31T18:00:00Z",
            "09:00",
            "Europe/Berlin",
            "10.0.0.0/8",
            "mon",
            "",
        ])
        .prop_map(|s| Json::String(s.to_owned())),
        any::<String>().prop_map(Json::String),
    ];
    leaf.prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Json::Array),
            prop::collection::vec((key(), inner), 0..8)
                .prop_map(|pairs| Json::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Valid bodies of the deep body types: mutated below, they reach the conversions behind
/// serde, which random JSON seldom does.
fn samples() -> Vec<Json> {
    vec![
        serde_json::json!({"name": "R", "description": "d", "version": 1,
            "grants": [{"object": "customers", "action": "read", "scope": "own"},
                       {"object": "deals", "action": "update", "scope": "subordinates", "depth": 2}],
            "permissions": ["manage_users"],
            "fields": [{"object": "customers", "field": "credit_limit", "access": "masked"}]}),
        serde_json::json!({"username": "u", "password": "a-long-password-1", "unit": "Sales",
            "roles": ["Sales Rep"], "manager": "rep1", "person": "E1", "portal_account": 1}),
        serde_json::json!({"name": "p", "object": "customers", "operations": ["delete", "update"],
            "fields": ["credit_limit"], "when": {"region": "EMEA", "credit_limit": {"gt": 5}},
            "requesters": {"role": "Sales Rep"}, "approvers": {"role": "Administrator"},
            "required": 1, "expires_after_hours": 72, "escalate": true, "version": 1}),
        serde_json::json!({"name": "s", "object": "customers", "when": {"any": [{"region": "EMEA"}, {"not": {"vip": true}}]},
            "share_with": {"role": "Auditor"}, "access": "edit"}),
        serde_json::json!({"name": "r", "object": "customers", "applies_to": {"role": "Auditor"},
            "actions": ["read"], "only": {"in": {"status": ["active"]}}}),
        serde_json::json!({"ip_allow": ["10.0.0.0/8", "203.0.113.5"], "mfa_required": true,
            "login_hours": {"time_zone": "Europe/Berlin", "days": ["mon", "fri"], "from": "09:00", "to": "17:30"}}),
        serde_json::json!({"name": "n", "email": "a@example.com", "credit_limit": 5, "vip": true,
            "owner": "rep1", "customer_id": 1, "version": 1}),
        serde_json::json!({"with": {"unit": "Sales"}, "access": "edit"}),
    ]
}

/// Replaces (or removes, when `with` is `None`) the node that `path` leads to.
fn mutate(value: &mut Json, path: &[usize], with: Option<Json>) {
    let Some((&step, rest)) = path.split_first() else {
        if let Some(with) = with {
            *value = with;
        }
        return;
    };
    match value {
        Json::Object(map) if !map.is_empty() => {
            let key = map
                .keys()
                .nth(step % map.len())
                .cloned()
                .unwrap_or_default();
            if rest.is_empty() && with.is_none() {
                map.remove(&key);
            } else if let Some(child) = map.get_mut(&key) {
                mutate(child, rest, with);
            }
        }
        Json::Array(items) if !items.is_empty() => {
            let len = items.len();
            mutate(&mut items[step % len], rest, with);
        }
        _ => {
            if let Some(with) = with {
                *value = with;
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_json_body_panics_a_parser(value in json()) {
        every_body(&value);
    }

    #[test]
    fn no_mutated_body_panics_a_parser(
        sample in 0usize..8,
        mutations in prop::collection::vec(
            (prop::collection::vec(any::<usize>(), 0..5), prop::option::of(json())),
            0..4,
        ),
    ) {
        let mut value = samples()[sample].clone();
        for (path, with) in mutations {
            mutate(&mut value, &path, with);
        }
        every_body(&value);
    }

    #[test]
    fn no_bytes_panic_a_parser(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        crate::fuzzing::body_bytes(&bytes);
        every_query(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn no_query_string_panics_a_parser(
        pairs in prop::collection::vec((key(), any::<String>()), 0..6),
        raw in "[a-z=&%0-9A-F+_.-]{0,80}",
    ) {
        let encoded = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        every_query(&encoded);
        every_query(&raw);
    }
}
