//! Entry points for fuzzing the wire format's parsers (the cargo-fuzz targets in `fuzz/` and
//! the property tests call them): every JSON body type with its conversion to the service's
//! input, record bodies of every object, and the query strings of the list and filter
//! endpoints. Each returns nothing: only a panic is a finding.

use serde::de::DeserializeOwned;
use serde_json::Value as Json;
use warden_policy::ObjectType;

use crate::json::{parse_timestamp, parse_value, record_input};

/// Bytes as a request body: parsed as the JSON extractor parses it, then as every body type.
pub fn body_bytes(bytes: &[u8]) {
    if let Ok(value) = serde_json::from_slice::<Json>(bytes) {
        every_body(&value);
    }
}

/// Parses `value` as `T` and, when it parses, runs `convert` on it; the result is ignored:
/// only a panic fails.
fn through<T: DeserializeOwned, R>(value: &Json, convert: impl FnOnce(T) -> R) {
    if let Ok(body) = parse_value::<T>(value.clone()) {
        let _ = convert(body);
    }
}

/// A JSON value as the body of every operation, and through each body's conversion.
pub fn every_body(value: &Json) {
    for object in ObjectType::ALL {
        let _ = record_input(*object, value.clone());
    }
    through::<crate::admin::CreateUser, _>(value, |b| crate::admin::role_refs(b.roles));
    through::<crate::admin::PatchUser, _>(value, |b| b.roles.map(crate::admin::role_refs));
    through::<crate::admin::CreateUnit, _>(value, |_| ());
    through::<crate::admin::PatchUnit, _>(value, |_| ());
    through::<crate::admin::RoleBody, _>(value, crate::admin::role_input);
    through::<crate::admin::ControlBody, _>(value, |_| ());
    through::<crate::admin::WhatIfBody, _>(value, crate::admin::what_if_change);
    through::<crate::approvals::PolicyBody, _>(value, crate::approvals::policy_input);
    through::<crate::approvals::DecisionBody, _>(value, |_| ());
    through::<crate::approvals::FourEyesBody, _>(value, |_| ());
    through::<crate::reviews::NewCampaign, _>(value, |_| ());
    through::<crate::reviews::Decision, _>(value, |_| ());
    through::<crate::security::PasswordChange, _>(value, |_| ());
    through::<crate::security::TotpConfirm, _>(value, |_| ());
    through::<crate::security::NewToken, _>(value, |_| ());
    through::<crate::security::ViewAsBody, _>(value, |_| ());
    through::<crate::security::AccessRulesJson, _>(value, crate::security::rules_from_body);
    through::<crate::auth::LoginRequest, _>(value, |_| ());
    through::<crate::sharing::ShareBody, _>(value, |b| {
        let _ = crate::sharing::principal(&b.with, "with");
        crate::sharing::access(b.access.as_deref(), "access")
    });
    through::<crate::sharing::TeamBody, _>(value, |_| ());
    through::<crate::sharing::SharingRuleBody, _>(value, crate::sharing::sharing_rule_input);
    through::<crate::sharing::RestrictionRuleBody, _>(
        value,
        crate::sharing::restriction_rule_input,
    );
    if let Json::String(text) = value {
        let _ = parse_timestamp("at", text);
    }
}

/// A query string as each endpoint's query extractor reads it.
pub fn every_query(query: &str) {
    let _ = serde_urlencoded::from_str::<Vec<(String, String)>>(query);
    let _ = serde_urlencoded::from_str::<crate::audit::AuditQuery>(query);
    let _ = serde_urlencoded::from_str::<crate::approvals::ApprovalsQuery>(query);
    let _ = serde_urlencoded::from_str::<crate::admin::ExplainQuery>(query);
    let _ = serde_urlencoded::from_str::<crate::reviews::DormantQuery>(query);
    let _ = serde_urlencoded::from_str::<crate::reviews::SodQuery>(query);
}
