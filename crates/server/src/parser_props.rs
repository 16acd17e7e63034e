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

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn no_json_body_panics_a_parser(value in json()) {
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
