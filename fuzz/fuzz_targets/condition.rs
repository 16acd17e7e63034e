//! Fuzz target: bytes as the JSON form of a sharing, restriction or approval condition; what
//! parses is checked against every object, evaluated on an empty record, and must read back
//! from its own JSON.
#![no_main]

use warden_policy::schema::{schema, Value};
use warden_policy::ObjectType;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(criteria) = warden_store::criteria_from_json(&json) else {
        return;
    };
    let again = warden_store::criteria_from_json(&warden_store::criteria_to_json(&criteria));
    assert_eq!(again.as_ref(), Ok(&criteria), "{json} does not read back");
    for object in ObjectType::ALL {
        if criteria.check_for_records(*object).is_ok() {
            let row = vec![Value::Null; schema(*object).fields.len()];
            let _ = criteria.holds(*object, &row);
        }
    }
});
