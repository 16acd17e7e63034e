//! The condition language's JSON form (sharing, restriction and approval conditions) fed
//! arbitrary JSON: parsing never panics, what parses checks and evaluates without panicking,
//! and reads back from its own JSON as the same condition.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

use proptest::prelude::*;
use serde_json::{Map, Value as Json};
use warden_policy::schema::{schema, Value};
use warden_policy::ObjectType;
use warden_store::{criteria_from_json, criteria_to_json};

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "all", "any", "not", "changed", "increased", "decreased", "in", "eq", "ne", "lt", "le",
            "gt", "ge", "contains", "name", "region", "status", "credit_limit", "vip", "amount",
            "stage", "done", "email",
        ]).prop_map(str::to_owned),
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
        prop::sample::select(vec!["region", "EMEA", "active", "credit_limit", ""])
            .prop_map(|s| Json::String(s.to_owned())),
        any::<String>().prop_map(Json::String),
    ];
    leaf.prop_recursive(6, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Json::Array),
            prop::collection::vec((key(), inner), 0..5)
                .prop_map(|pairs| Json::Object(pairs.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<String>().prop_map(Value::Text),
        prop::sample::select(vec!["EMEA", "active", "won", ""])
            .prop_map(|s| Value::Text(s.to_owned())),
        any::<i64>().prop_map(Value::Integer),
        any::<bool>().prop_map(Value::Bool),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn conditions_parse_check_and_evaluate_without_panics(
        condition in json(),
        values in prop::collection::vec(value(), 0..12),
    ) {
        if let Ok(criteria) = criteria_from_json(&condition) {
            let again = criteria_from_json(&criteria_to_json(&criteria));
            prop_assert_eq!(again.as_ref(), Ok(&criteria), "{} does not read back", condition);
            for object in ObjectType::ALL {
                if criteria.check_for_records(*object).is_ok() {
                    let mut row = values.clone();
                    row.resize(schema(*object).fields.len(), Value::Null);
                    let _ = criteria.holds(*object, &row);
                }
            }
        }
    }

    #[test]
    fn no_bytes_panic_the_condition_parser(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(condition) = serde_json::from_slice::<Json>(&bytes) {
            let _ = criteria_from_json(&condition);
        }
    }
}
