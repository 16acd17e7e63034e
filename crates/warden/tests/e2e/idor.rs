//! The IDOR matrix: every operation of the OpenAPI document × every demo user (and nobody
//! logged in) × the caller's own record, another's and a missing one, each cell with the
//! status written down here from the product's rules (PRODUCT.md, "Demo organisation"), never
//! taken from the server. A record the caller may not see is 404 (never a 403 that tells it
//! exists); an action on a record they may see but not do is 403; no credentials is 401.
//!
//! Requests that would change something are made so that a permitted caller is stopped after
//! every permission check and before any write: a stale `version` (409), a principal or value
//! that does not exist (422). The few that do write (revoking a share, taking a token back,
//! deleting a policy or rule) are put back before the next cell or say in the table what the
//! earlier columns did.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{id, Api, Body, Reply};

/// The columns: nobody, then every demo user.
const WHO: [&str; 14] = [
    "anonymous",
    "admin",
    "admin2",
    "manager",
    "supervisor1",
    "supervisor2",
    "rep1",
    "rep2",
    "rep3",
    "rep4",
    "support",
    "finance",
    "auditor",
    "portal-acme",
];

/// A record id no table reaches.
const MISSING: i64 = 987_654_321;

/// What the path's parameter is, and so what "own", "other" and "missing" mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Target {
    /// No parameter: one cell per user.
    None,
    /// A record of the object: Acme Trading's (rep1's, Sales Team 1 — the portal user's
    /// account), rep3's (Sales Team 2), missing. "Own" for rep1, supervisor1 and the portal
    /// user is the first; for rep3 and supervisor2 the second.
    Record(&'static str),
    /// A share (given by admin to `finance`) of such a record: `{id}` and `{share}`.
    Share(&'static str),
    /// A team place (admin adds `finance`) of such a record.
    Team(&'static str),
    /// A username: the caller themself, another user, nobody.
    User,
    /// A role id: the caller's role, another role, missing.
    Role,
    /// A unit name: the caller's unit, another unit, missing.
    Unit,
    /// An approval request: rep1's (decided by supervisor1), rep3's (by supervisor2), missing.
    Approval,
    /// An approval policy made for the matrix, another, missing.
    Policy,
    /// A sharing rule made for the matrix, another, missing.
    SharingRule,
    /// A restriction rule made for the matrix, another, missing.
    RestrictionRule,
    /// An API token: the caller's own, admin2's (admin's for admin2), missing.
    Token,
    /// A review campaign: its id for all three is the campaign, the campaign, missing.
    Campaign,
    /// A review item: rep1's role assignment (reviewer supervisor1), rep3's (supervisor2),
    /// missing.
    ReviewItem,
}

/// One row: an operation, its target, its body, and the expected status per column.
struct Row {
    method: Method,
    /// The OpenAPI path (with `{…}` parameters).
    path: String,
    /// Query string appended (may name `{id}` of a record target).
    query: &'static str,
    target: Target,
    body: Option<Value>,
    /// 14 groups separated by `|`: one status for every target, or three (own other missing).
    expect: &'static str,
}

fn row(
    method: Method,
    path: &str,
    target: Target,
    body: Option<Value>,
    expect: &'static str,
) -> Row {
    Row {
        method,
        path: path.to_owned(),
        query: "",
        target,
        body,
        expect,
    }
}

/// The expected statuses of a record object's operations. `read` is who reads Acme's and
/// rep3's records; the rest follow from the demo's roles (see each table).
struct RecordTables {
    list: &'static str,
    create: &'static str,
    read: &'static str,
    update: &'static str,
    delete: &'static str,
    reveal: &'static str,
    share: &'static str,
    unshare: &'static str,
    team: &'static str,
    unteam: &'static str,
    /// A create body refused after the permission check (a required field empty).
    create_body: Value,
}

// Who reads what (customers, and by their customer every other object): admin, admin2,
// manager, support, finance: both; supervisor1, rep1, portal-acme: Acme's; supervisor2, rep3:
// rep3's; rep2, rep4, auditor: neither.

/// Rows whose body is checked before the caller's permission: every caller gets the same 422
/// (for their own, another's and a missing thing alike), so nothing leaks, but the permission
/// is not what answers. Found by this matrix; see docs/reliability.md.
const VALIDATED_FIRST: &str =
    "401 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422";

const LIST: &str =
    "401 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200";
const READ: &str = "401 | 200 200 404 | 200 200 404 | 200 200 404 | 200 404 404 | 404 200 404 | 200 404 404 | 404 | 404 200 404 | 404 | 200 200 404 | 200 200 404 | 404 | 200 404 404";

/// Customers: reps, supervisors, the manager and admins create; support and finance update
/// every customer but delete none; the portal user only reads. `credit_limit` is hidden from
/// support and the portal user. Sharing needs `share` (sales and admins); a team is managed by
/// the owner and those above them (admin2 is above nobody).
fn customers() -> RecordTables {
    RecordTables {
        list: LIST,
        create: VALIDATED_FIRST,
        read: READ,
        update: "401 | 409 409 404 | 409 409 404 | 409 409 404 | 409 404 404 | 404 409 404 | 409 404 404 | 404 | 404 409 404 | 404 | 409 409 404 | 409 409 404 | 404 | 403 404 404",
        delete: "401 | 409 409 404 | 409 409 404 | 409 409 404 | 409 404 404 | 404 409 404 | 409 404 404 | 404 | 404 409 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        reveal: "401 | 200 200 404 | 200 200 404 | 200 200 404 | 200 404 404 | 404 200 404 | 200 404 404 | 404 | 404 200 404 | 404 | 403 403 404 | 200 200 404 | 404 | 403 404 404",
        share: "401 | 422 422 404 | 422 422 404 | 422 422 404 | 422 404 404 | 404 422 404 | 422 404 404 | 404 | 404 422 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        unshare: "401 | 204 204 404 | 204 204 404 | 204 204 404 | 204 404 404 | 404 204 404 | 204 404 404 | 404 | 404 204 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        team: "401 | 422 422 404 | 403 403 404 | 422 422 404 | 422 404 404 | 404 422 404 | 422 404 404 | 404 | 404 422 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        unteam: "401 | 204 204 404 | 403 403 404 | 204 204 404 | 204 404 404 | 404 204 404 | 204 404 404 | 404 | 404 204 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        create_body: json!({"name": ""}),
    }
}

/// A contact, deal, contract or activity is decided by its customer: reading it needs reading
/// the customer; creating, changing and deleting it need `update` on the customer (so support
/// and finance may delete one, and the portal user may not); sharing follows the customer.
/// Creating one names a customer: `customer_id` of a customer the caller may not update is
/// refused the same way whether or not it exists (422).
fn children(reveal: &'static str) -> RecordTables {
    RecordTables {
        list: LIST,
        create: VALIDATED_FIRST,
        read: READ,
        update: "401 | 409 409 404 | 409 409 404 | 409 409 404 | 409 404 404 | 404 409 404 | 409 404 404 | 404 | 404 409 404 | 404 | 409 409 404 | 409 409 404 | 404 | 403 404 404",
        delete: "401 | 409 409 404 | 409 409 404 | 409 409 404 | 409 404 404 | 404 409 404 | 409 404 404 | 404 | 404 409 404 | 404 | 409 409 404 | 409 409 404 | 404 | 403 404 404",
        reveal,
        share: "401 | 422 422 404 | 422 422 404 | 422 422 404 | 422 404 404 | 404 422 404 | 422 404 404 | 404 | 404 422 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        unshare: "401 | 204 204 404 | 204 204 404 | 204 204 404 | 204 404 404 | 404 204 404 | 204 404 404 | 404 | 404 204 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        team: "401 | 422 422 404 | 403 403 404 | 422 422 404 | 422 404 404 | 404 422 404 | 422 404 404 | 404 | 404 422 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        unteam: "401 | 204 204 404 | 403 403 404 | 204 204 404 | 204 404 404 | 404 204 404 | 204 404 404 | 404 | 404 204 404 | 404 | 403 403 404 | 403 403 404 | 404 | 403 404 404",
        create_body: json!({"name": "", "customer_id": MISSING}),
    }
}

/// A field nobody is denied among those who read the record.
const REVEAL_PLAIN: &str = READ_AS_REVEAL;
const READ_AS_REVEAL: &str = "401 | 200 200 404 | 200 200 404 | 200 200 404 | 200 404 404 | 404 200 404 | 200 404 404 | 404 | 404 200 404 | 404 | 200 200 404 | 200 200 404 | 404 | 200 404 404";
/// A contract's `value`: sensitive, so hidden from support and the portal user (no rule
/// shows it to them); finance reads every field; sales roles write contract values.
const REVEAL_CONTRACT_VALUE: &str = "401 | 200 200 404 | 200 200 404 | 200 200 404 | 200 404 404 | 404 200 404 | 200 404 404 | 404 | 404 200 404 | 404 | 403 403 404 | 200 200 404 | 404 | 403 404 404";
/// An activity's `notes`: internal, so never shown to the portal user.
const REVEAL_ACTIVITY_NOTES: &str = "401 | 200 200 404 | 200 200 404 | 200 200 404 | 200 404 404 | 404 200 404 | 200 404 404 | 404 | 404 200 404 | 404 | 200 200 404 | 200 200 404 | 404 | 403 404 404";

fn record_rows(object: &'static str, t: RecordTables) -> Vec<Row> {
    let base = format!("/api/v1/{object}");
    let one = format!("{base}/{{id}}");
    vec![
        row(Method::GET, &base, Target::None, None, t.list),
        row(
            Method::POST,
            &base,
            Target::None,
            Some(t.create_body),
            t.create,
        ),
        row(Method::GET, &one, Target::Record(object), None, t.read),
        row(
            Method::PATCH,
            &one,
            Target::Record(object),
            Some(json!({"version": 0})),
            t.update,
        ),
        Row {
            query: "?version=0",
            ..row(Method::DELETE, &one, Target::Record(object), None, t.delete)
        },
        row(
            Method::POST,
            &format!("{one}/fields/{{field}}/reveal"),
            Target::Record(object),
            None,
            t.reveal,
        ),
        row(
            Method::GET,
            &format!("{one}/shares"),
            Target::Record(object),
            None,
            t.read,
        ),
        row(
            Method::POST,
            &format!("{one}/shares"),
            Target::Record(object),
            Some(json!({"with": {"user": "no-such-user"}})),
            t.share,
        ),
        row(
            Method::DELETE,
            &format!("{one}/shares/{{share}}"),
            Target::Share(object),
            None,
            t.unshare,
        ),
        row(
            Method::POST,
            &format!("{one}/team"),
            Target::Record(object),
            Some(json!({"user": "no-such-user"})),
            t.team,
        ),
        row(
            Method::DELETE,
            &format!("{one}/team/{{share}}"),
            Target::Team(object),
            None,
            t.unteam,
        ),
    ]
}

/// Every other operation. Functional permissions: the Administrator role holds them all
/// (manage users, roles, settings; view the audit); the auditor holds `view_audit`; nobody
/// else holds any. A permission is checked before the thing named is looked up, so a caller
/// without it gets 403 for their own, another's and a missing thing alike (nothing leaks).
fn other_rows() -> Vec<Row> {
    const ADMINS_ONLY: &str =
        "401 | 200 | 200 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403";
    const ADMINS_ONLY_422: &str =
        "401 | 422 | 422 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403";
    const ADMINS_TARGET_200: &str = "401 | 200 200 404 | 200 200 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403";
    const ADMINS_TARGET_422: &str = "401 | 422 422 404 | 422 422 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403";
    const AUDIT: &str =
        "401 | 200 | 200 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 200 | 403";
    const EVERYONE: &str =
        "401 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200";
    let bad_rules = json!({"ip_allow": ["not an address"]});
    vec![
        // Sessions.
        row(Method::GET, "/api/v1/me", Target::None, None, EVERYONE),
        row(
            Method::POST,
            "/api/v1/login",
            Target::None,
            Some(json!({"username": "no-such-user", "password": "not-the-password-1"})),
            // The fifth failure locks the username (known or not): 429 from the sixth on.
            "401 | 401 | 401 | 401 | 401 | 429 | 429 | 429 | 429 | 429 | 429 | 429 | 429 | 429",
        ),
        row(Method::GET, "/api/v1/openapi.json", Target::None, None, "200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200 | 200"),
        // The caller's own security settings: everyone, for themself only.
        row(
            Method::POST,
            "/api/v1/me/password",
            Target::None,
            Some(json!({"current_password": "not-the-password-1", "new_password": "a-new-password-1234"})),
            "401 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422",
        ),
        row(
            Method::POST,
            "/api/v1/me/mfa/totp/confirm",
            Target::None,
            Some(json!({"code": "000000"})),
            "401 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422",
        ),
        row(Method::GET, "/api/v1/me/tokens", Target::None, None, EVERYONE),
        row(
            Method::POST,
            "/api/v1/me/tokens",
            Target::None,
            Some(json!({"name": "matrix", "expires_at": "not a time"})),
            "401 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422 | 422",
        ),
        row(
            Method::DELETE,
            "/api/v1/me/tokens/{id}",
            Target::Token,
            None,
            "401 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404 | 204 404 404",
        ),
        row(
            Method::POST,
            "/api/v1/access/view-as",
            Target::None,
            Some(json!({"user": "no-such-user"})),
            ADMINS_ONLY_422,
        ),
        // Users.
        row(Method::GET, "/api/v1/users", Target::None, None, ADMINS_ONLY),
        row(
            Method::POST,
            "/api/v1/users",
            Target::None,
            Some(json!({"username": "matrix-probe", "password": "short", "unit": "Sales"})),
            ADMINS_ONLY_422,
        ),
        row(
            Method::GET,
            "/api/v1/users/{username}",
            Target::User,
            None,
            "401 | 200 200 404 | 200 200 404 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403",
        ),
        row(
            Method::PATCH,
            "/api/v1/users/{username}",
            Target::User,
            Some(json!({"unit": "No Such Unit"})),
            ADMINS_TARGET_422,
        ),
        row(Method::POST, "/api/v1/users/{username}/unlock", Target::User, None, "401 | 204 204 404 | 204 204 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403"),
                // Everyone reads their own access rules.
        row(Method::GET, "/api/v1/users/{username}/access", Target::User, None, "401 | 200 200 404 | 200 200 404 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403 | 200 403 403"),
        row(Method::PUT, "/api/v1/users/{username}/access", Target::User, Some(bad_rules.clone()), VALIDATED_FIRST),
        // Units.
        row(Method::GET, "/api/v1/units", Target::None, None, EVERYONE),
        row(Method::POST, "/api/v1/units", Target::None, Some(json!({"name": "", "parent": null})), ADMINS_ONLY_422),
        row(
            Method::PATCH,
            "/api/v1/units/{name}",
            Target::Unit,
            Some(json!({"parent": "No Such Unit"})),
            ADMINS_TARGET_422,
        ),
        // Roles.
        row(Method::GET, "/api/v1/roles", Target::None, None, EVERYONE),
        row(Method::POST, "/api/v1/roles", Target::None, Some(json!({"name": ""})), ADMINS_ONLY_422),
        row(Method::GET, "/api/v1/roles/{id}", Target::Role, None, "401 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404"),
                // The stale version is refused before the name.
        row(Method::PUT, "/api/v1/roles/{id}", Target::Role, Some(json!({"name": "", "version": 0})), "401 | 409 409 404 | 409 409 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403"),
        row(Method::GET, "/api/v1/roles/{id}/access", Target::Role, None, ADMINS_TARGET_200),
        row(Method::PUT, "/api/v1/roles/{id}/access", Target::Role, Some(bad_rules), VALIDATED_FIRST),
        // The organisation's model.
        row(Method::GET, "/api/v1/objects", Target::None, None, EVERYONE),
        row(
            Method::PUT,
            "/api/v1/objects/{object}/control",
            Target::None,
            Some(json!({"control": "no-such-control"})),
            VALIDATED_FIRST,
        ),
        Row {
            query: "?user=rep1&object=customers&id={id}",
            ..row(
                Method::GET,
                "/api/v1/access/explain",
                Target::Record("customers"),
                None,
                // rep1 may explain their own access, to what they may read.
                "401 | 200 200 404 | 200 200 404 | 403 | 403 | 403 | 200 404 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403",
            )
        },
        row(Method::POST, "/api/v1/access/whatif", Target::None, Some(json!({"kind": "no-such-edit"})), VALIDATED_FIRST),
        row(Method::POST, "/api/v1/access/whatif/apply", Target::None, Some(json!({"kind": "no-such-edit"})), VALIDATED_FIRST),
        // The access log and reports.
        row(Method::GET, "/api/v1/audit", Target::None, None, AUDIT),
        row(Method::GET, "/api/v1/reports/privileged", Target::None, None, AUDIT),
        row(Method::GET, "/api/v1/reports/dormant", Target::None, None, AUDIT),
        row(Method::GET, "/api/v1/reports/sod", Target::None, None, AUDIT),
        // Approvals: a request is seen by its requester, its approvers and administrators;
        // both matrix requests are decided, so acting on one is a conflict for who may see it.
        row(Method::GET, "/api/v1/approvals", Target::None, None, EVERYONE),
        row(
            Method::GET,
            "/api/v1/approvals/{id}",
            Target::Approval,
            None,
            // The auditor reads every request too.
            "401 | 200 200 404 | 200 200 404 | 404 | 200 404 404 | 404 200 404 | 200 404 404 | 404 | 404 200 404 | 404 | 404 | 404 | 200 200 404 | 404",
        ),
        row(
            Method::POST,
            "/api/v1/approvals/{id}/approve",
            Target::Approval,
            None,
            // A requester may not decide their own request (403); for the auditor, who sees
            // every request, a decided one is a conflict first.
            "401 | 409 409 404 | 409 409 404 | 404 | 409 404 404 | 404 409 404 | 403 404 404 | 404 | 404 403 404 | 404 | 404 | 404 | 409 409 404 | 404",
        ),
        row(
            Method::POST,
            "/api/v1/approvals/{id}/reject",
            Target::Approval,
            None,
            // A requester may not decide their own request (403); for the auditor, who sees
            // every request, a decided one is a conflict first.
            "401 | 409 409 404 | 409 409 404 | 404 | 409 404 404 | 404 409 404 | 403 404 404 | 404 | 404 403 404 | 404 | 404 | 404 | 409 409 404 | 404",
        ),
        row(
            Method::POST,
            "/api/v1/approvals/{id}/withdraw",
            Target::Approval,
            None,
            // Only the requester withdraws; others who see the request get 403.
            "401 | 403 403 404 | 403 403 404 | 404 | 403 404 404 | 404 403 404 | 409 404 404 | 404 | 404 409 404 | 404 | 404 | 404 | 403 403 404 | 404",
        ),
        // Everyone may read the approval policies (they hold no customer data).
        row(Method::GET, "/api/v1/approval-policies", Target::None, None, EVERYONE),
        row(
            Method::POST,
            "/api/v1/approval-policies",
            Target::None,
            Some(json!({"name": "", "object": "no-such-object", "operations": [], "approvers": {}})),
            VALIDATED_FIRST,
        ),
        row(
            Method::PUT,
            "/api/v1/approval-policies/{id}",
            Target::Policy,
            Some(json!({"name": "", "object": "no-such-object", "operations": [], "approvers": {}})),
            VALIDATED_FIRST,
        ),
        // admin deletes both matrix policies; admin2 then finds neither.
        row(
            Method::DELETE,
            "/api/v1/approval-policies/{id}",
            Target::Policy,
            None,
            "401 | 204 204 404 | 404 404 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403",
        ),
        row(Method::PUT, "/api/v1/settings/four-eyes", Target::None, Some(json!({"on": false})), ADMINS_ONLY),
        // Sharing and restriction rules.
        row(Method::GET, "/api/v1/sharing-rules", Target::None, None, AUDIT),
        row(
            Method::POST,
            "/api/v1/sharing-rules",
            Target::None,
            Some(json!({"name": "", "object": "no-such-object", "share_with": {"user": "no-such-user"}})),
            VALIDATED_FIRST,
        ),
        row(
            Method::PUT,
            "/api/v1/sharing-rules/{id}",
            Target::SharingRule,
            Some(json!({"name": "", "object": "no-such-object", "share_with": {"user": "no-such-user"}})),
            VALIDATED_FIRST,
        ),
        row(
            Method::DELETE,
            "/api/v1/sharing-rules/{id}",
            Target::SharingRule,
            None,
            "401 | 204 204 404 | 404 404 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403",
        ),
        row(Method::GET, "/api/v1/restriction-rules", Target::None, None, AUDIT),
        row(
            Method::POST,
            "/api/v1/restriction-rules",
            Target::None,
            Some(json!({"name": "", "object": "no-such-object", "applies_to": {"user": "no-such-user"}, "actions": [], "only": {}})),
            VALIDATED_FIRST,
        ),
        row(
            Method::PUT,
            "/api/v1/restriction-rules/{id}",
            Target::RestrictionRule,
            Some(json!({"name": "", "object": "no-such-object", "applies_to": {"user": "no-such-user"}, "actions": [], "only": {}})),
            VALIDATED_FIRST,
        ),
        row(
            Method::DELETE,
            "/api/v1/restriction-rules/{id}",
            Target::RestrictionRule,
            None,
            "401 | 204 204 404 | 404 404 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403",
        ),
        // Access reviews: opened and closed by administrators; an item is decided by the
        // reviewer it was given to (the holder's manager).
        row(
            Method::POST,
            "/api/v1/reviews",
            Target::None,
            Some(json!({"name": "", "scope": {"all": true}, "due": "not a date", "undecided": "keep"})),
            VALIDATED_FIRST,
        ),
        row(
            Method::GET,
            "/api/v1/reviews/{id}/items",
            Target::Campaign,
            None,
            "401 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404 | 200 200 404",
        ),
        row(
            Method::POST,
            "/api/v1/reviews/{id}/items/{item}",
            Target::ReviewItem,
            Some(json!({"decision": "no-such-decision"})),
            VALIDATED_FIRST,
        ),
        row(Method::GET, "/api/v1/reviews/{id}/evidence", Target::Campaign, None, "401 | 200 200 404 | 200 200 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 200 200 404 | 403"),
        // admin closes the campaign; for admin2 it is closed already.
        row(
            Method::POST,
            "/api/v1/reviews/{id}/close",
            Target::Campaign,
            None,
            "401 | 200 409 404 | 409 409 404 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403 | 403",
        ),
        // The caller's second factor: enrolment starts for anyone (nothing changes until
        // confirmed). Last of all but logout.
        row(Method::POST, "/api/v1/me/mfa/totp", Target::None, None, EVERYONE),
        // Logging out ends each caller's session: the very last row.
        row(Method::POST, "/api/v1/logout", Target::None, None, "401 | 204 | 204 | 204 | 204 | 204 | 204 | 204 | 204 | 204 | 204 | 204 | 204 | 204"),
    ]
}

/// The expected statuses of one row: per column, one per target.
fn parse_expect(row: &Row) -> Vec<Vec<u16>> {
    let groups: Vec<Vec<u16>> = row
        .expect
        .split('|')
        .map(|g| {
            g.split_whitespace()
                .map(|s| {
                    s.parse()
                        .unwrap_or_else(|_| panic!("{} {}: bad status {s}", row.method, row.path))
                })
                .collect()
        })
        .collect();
    assert_eq!(
        groups.len(),
        WHO.len(),
        "{} {}: {} groups",
        row.method,
        row.path,
        groups.len()
    );
    let width = if row.target == Target::None { 1 } else { 3 };
    groups
        .into_iter()
        .map(|g| match g.len() {
            1 => vec![g[0]; width],
            n if n == width => g,
            n => panic!("{} {}: a group of {n}", row.method, row.path),
        })
        .collect()
}

/// What the matrix's targets are, found (as the administrator) before it runs.
struct World {
    /// Per object: Acme's record, rep3's record.
    records: BTreeMap<&'static str, (i64, i64)>,
    roles: BTreeMap<String, i64>,
    approvals: (i64, i64),
    policies: (i64, i64),
    sharing_rules: (i64, i64),
    restriction_rules: (i64, i64),
    /// Each user's own token id, and the victims' (admin2's, and admin's for admin2).
    tokens: BTreeMap<String, String>,
    victim_tokens: (String, String),
    campaign: i64,
    review_items: (i64, i64),
}

fn must(reply: &Reply, status: u16, what: &str) {
    assert_eq!(reply.status, status, "matrix setup: {what}: {}", reply.text);
}

fn items(reply: &Reply) -> Vec<Value> {
    reply.body["items"]
        .as_array()
        .or(reply.body.as_array())
        .cloned()
        .unwrap_or_default()
}

/// Makes what the matrix needs: children for every object under Acme and rep3's customer,
/// two decided approval requests, two policies and rules of each kind, a token per user and a
/// victim token, a review campaign.
async fn world(api: &Api) -> World {
    let admin_customers = api.all_customers("admin", 200).await;
    let acme = admin_customers
        .iter()
        .find(|c| c["name"] == "Acme Trading")
        .map(id)
        .expect("Acme Trading");
    let of = |owner: &str| -> Vec<i64> {
        admin_customers
            .iter()
            .filter(|c| c["owner"] == owner && c["name"] != "Acme Trading")
            .map(id)
            .collect()
    };
    let rep1s = of("rep1");
    let rep3s = of("rep3");
    let rep3 = rep3s[0];
    let mut records = BTreeMap::new();
    records.insert("customers", (acme, rep3));
    for (object, body) in [
        (
            "contacts",
            json!({"name": "Matrix Contact", "email": "matrix@example.com"}),
        ),
        ("deals", json!({"name": "Matrix Deal", "amount": 1000})),
        (
            "contracts",
            json!({"name": "Matrix Contract", "value": 5000}),
        ),
        (
            "activities",
            json!({"name": "Matrix Activity", "notes": "internal"}),
        ),
    ] {
        let mut pair = [0; 2];
        for (i, (customer, owner)) in [(acme, "rep1"), (rep3, "rep3")].into_iter().enumerate() {
            let mut body = body.clone();
            body["customer_id"] = json!(customer);
            body["owner"] = json!(owner);
            let reply = api.post("admin", &format!("/api/v1/{object}"), body).await;
            must(&reply, 201, &format!("admin creates a {object} record"));
            pair[i] = id(&reply.body);
        }
        records.insert(object, (pair[0], pair[1]));
    }

    let roles = api.get("admin", "/api/v1/roles").await;
    let roles: BTreeMap<String, i64> = items(&roles)
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["id"].as_i64().unwrap_or_default(),
            )
        })
        .collect();

    // Two approval requests, decided: rep1's delete (rejected by supervisor1) and rep3's
    // (rejected by supervisor2).
    let mut approvals = [0; 2];
    for (i, (rep, supervisor, customer)) in [
        ("rep1", "supervisor1", rep1s[1]),
        ("rep3", "supervisor2", rep3s[1]),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = api
            .delete(rep, &format!("/api/v1/customers/{customer}"))
            .await;
        must(&reply, 202, &format!("{rep} asks to delete a customer"));
        let request = reply.body["approval"]["id"]
            .as_i64()
            .expect("an approval id");
        let reply = api
            .post(
                supervisor,
                &format!("/api/v1/approvals/{request}/reject"),
                json!({"comment": "matrix"}),
            )
            .await;
        must(&reply, 200, &format!("{supervisor} rejects"));
        approvals[i] = request;
    }

    let mut policies = [0; 2];
    for (i, name) in ["Matrix policy A", "Matrix policy B"]
        .into_iter()
        .enumerate()
    {
        let reply = api
            .post(
                "admin",
                "/api/v1/approval-policies",
                json!({"name": name, "object": "contracts", "operations": ["delete"], "approvers": {"role": "Administrator"}}),
            )
            .await;
        must(&reply, 201, "admin makes an approval policy");
        policies[i] = reply.body["id"].as_i64().expect("a policy id");
    }
    let mut sharing_rules = [0; 2];
    for (i, name) in ["Matrix sharing A", "Matrix sharing B"]
        .into_iter()
        .enumerate()
    {
        let reply = api
            .post(
                "admin",
                "/api/v1/sharing-rules",
                json!({"name": name, "object": "customers", "when": {"region": "Nowhere-Matrix"}, "share_with": {"role": "Auditor"}}),
            )
            .await;
        must(&reply, 201, "admin makes a sharing rule");
        sharing_rules[i] = reply.body["id"].as_i64().expect("a rule id");
    }
    let mut restriction_rules = [0; 2];
    for (i, name) in ["Matrix restriction A", "Matrix restriction B"]
        .into_iter()
        .enumerate()
    {
        let reply = api
            .post(
                "admin",
                "/api/v1/restriction-rules",
                json!({"name": name, "object": "customers", "applies_to": {"role": "Auditor"}, "actions": ["read"], "only": {"region": "Nowhere-Matrix"}}),
            )
            .await;
        must(&reply, 201, "admin makes a restriction rule");
        restriction_rules[i] = reply.body["id"].as_i64().expect("a rule id");
    }

    let mut tokens = BTreeMap::new();
    for user in &WHO[1..] {
        let reply = api
            .post(user, "/api/v1/me/tokens", json!({"name": "matrix own"}))
            .await;
        must(&reply, 201, &format!("{user} makes a token"));
        tokens.insert(
            (*user).to_owned(),
            reply.body["id"].as_str().expect("a token id").to_owned(),
        );
    }
    let mut victims = Vec::new();
    for user in ["admin2", "admin"] {
        let reply = api
            .post(user, "/api/v1/me/tokens", json!({"name": "matrix victim"}))
            .await;
        must(&reply, 201, &format!("{user} makes a victim token"));
        victims.push(reply.body["id"].as_str().expect("a token id").to_owned());
    }

    let reply = api
        .post(
            "admin",
            "/api/v1/reviews",
            json!({"name": "Matrix review", "scope": {"role": "Sales Rep"}, "due": "2099-12-31", "undecided": "keep"}),
        )
        .await;
    must(&reply, 201, "admin opens a review");
    let campaign = reply.body["id"].as_i64().expect("a campaign id");
    // Each reviewer lists the items given to them: the reps' managers.
    let item_of = |reviewer: &'static str, user: &'static str| async move {
        let reply = api
            .get(reviewer, &format!("/api/v1/reviews/{campaign}/items"))
            .await;
        must(&reply, 200, &format!("{reviewer} lists the review's items"));
        items(&reply)
            .iter()
            .find(|item| item["user"] == user)
            .and_then(|item| item["id"].as_i64())
            .unwrap_or_else(|| panic!("no review item of {user} for {reviewer}: {}", reply.text))
    };
    let review_items = (
        item_of("supervisor1", "rep1").await,
        item_of("supervisor2", "rep3").await,
    );

    World {
        records,
        roles,
        approvals: (approvals[0], approvals[1]),
        policies: (policies[0], policies[1]),
        sharing_rules: (sharing_rules[0], sharing_rules[1]),
        restriction_rules: (restriction_rules[0], restriction_rules[1]),
        tokens,
        victim_tokens: (victims[0].clone(), victims[1].clone()),
        campaign,
        review_items,
    }
}

/// Each demo user's role and unit (PRODUCT.md).
fn role_and_unit(user: &str) -> (&'static str, &'static str) {
    match user {
        "admin" | "admin2" => ("Administrator", "Head Office"),
        "manager" => ("Sales Manager", "Sales"),
        "supervisor1" => ("Sales Supervisor", "Sales Team 1"),
        "supervisor2" => ("Sales Supervisor", "Sales Team 2"),
        "rep1" | "rep2" => ("Sales Rep", "Sales Team 1"),
        "rep3" | "rep4" => ("Sales Rep", "Sales Team 2"),
        "support" => ("Customer Support", "Customer Support"),
        "finance" => ("Finance", "Finance"),
        "auditor" => ("Auditor", "Audit"),
        _ => ("Portal Read-only", "Portal Users"),
    }
}

/// The field each object's reveal row asks for.
fn revealed_field(object: &str) -> &'static str {
    match object {
        "customers" => "credit_limit",
        "contacts" => "email",
        "deals" => "amount",
        "contracts" => "value",
        _ => "notes",
    }
}

/// Puts a share or team place (of `finance`, given by admin) on a record; its entry id.
async fn ensure_entry(api: &Api, object: &str, record: i64, team: bool) -> i64 {
    let (path, body) = if team {
        (
            format!("/api/v1/{object}/{record}/team"),
            json!({"user": "finance"}),
        )
    } else {
        (
            format!("/api/v1/{object}/{record}/shares"),
            json!({"with": {"user": "finance"}}),
        )
    };
    let reply = api.post("admin", &path, body).await;
    assert!(
        reply.status == 200 || reply.status == 201,
        "matrix: admin puts finance on {path}: {} {}",
        reply.status,
        reply.text
    );
    reply.body["id"].as_i64().expect("an entry id")
}

/// The three concrete paths (own, other, missing) of a row for `user`.
async fn paths_for(api: &Api, world: &World, row: &Row, user: &str) -> Vec<String> {
    let other_user = if user == "rep3" { "rep4" } else { "rep3" };
    let (role, unit) = role_and_unit(user);
    let other_role = if role == "Auditor" {
        "Finance"
    } else {
        "Auditor"
    };
    let other_unit = if unit == "Finance" {
        "Audit"
    } else {
        "Finance"
    };
    let with = |values: [String; 3], param: &str| -> Vec<String> {
        values
            .iter()
            .map(|v| {
                let path = row.path.replace(param, v).replace("{object}", "customers");
                format!("{path}{}", row.query.replace("{id}", v))
            })
            .collect()
    };
    match row.target {
        Target::None => vec![format!(
            "{}{}",
            row.path.replace("{object}", "customers"),
            row.query
        )],
        Target::Record(object) => {
            let (a, b) = world.records[object];
            with([a.to_string(), b.to_string(), MISSING.to_string()], "{id}")
                .into_iter()
                .map(|p| p.replace("{field}", revealed_field(object)))
                .collect()
        }
        Target::Share(object) | Target::Team(object) => {
            let (a, b) = world.records[object];
            let team = matches!(row.target, Target::Team(_));
            let ea = ensure_entry(api, object, a, team).await;
            let eb = ensure_entry(api, object, b, team).await;
            vec![
                row.path
                    .replace("{id}", &a.to_string())
                    .replace("{share}", &ea.to_string()),
                row.path
                    .replace("{id}", &b.to_string())
                    .replace("{share}", &eb.to_string()),
                // A real entry of Acme's record, asked for under a record that does not exist.
                row.path
                    .replace("{id}", &MISSING.to_string())
                    .replace("{share}", &ea.to_string()),
            ]
        }
        Target::User => with(
            [
                user.to_owned(),
                other_user.to_owned(),
                "no-such-user".to_owned(),
            ],
            "{username}",
        ),
        Target::Role => with(
            [
                world.roles[role].to_string(),
                world.roles[other_role].to_string(),
                MISSING.to_string(),
            ],
            "{id}",
        ),
        Target::Unit => with(
            [
                unit.replace(' ', "%20"),
                other_unit.to_owned(),
                "No%20Such%20Unit".to_owned(),
            ],
            "{name}",
        ),
        Target::Approval => with(
            [
                world.approvals.0.to_string(),
                world.approvals.1.to_string(),
                MISSING.to_string(),
            ],
            "{id}",
        ),
        Target::Policy => with(
            [
                world.policies.0.to_string(),
                world.policies.1.to_string(),
                MISSING.to_string(),
            ],
            "{id}",
        ),
        Target::SharingRule => with(
            [
                world.sharing_rules.0.to_string(),
                world.sharing_rules.1.to_string(),
                MISSING.to_string(),
            ],
            "{id}",
        ),
        Target::RestrictionRule => with(
            [
                world.restriction_rules.0.to_string(),
                world.restriction_rules.1.to_string(),
                MISSING.to_string(),
            ],
            "{id}",
        ),
        Target::Token => {
            let own = world
                .tokens
                .get(user)
                .cloned()
                .unwrap_or_else(|| "0000000000000000".to_owned());
            let victim = if user == "admin2" {
                &world.victim_tokens.1
            } else {
                &world.victim_tokens.0
            };
            with([own, victim.clone(), "ffffffffffffffff".to_owned()], "{id}")
        }
        Target::Campaign => with(
            [
                world.campaign.to_string(),
                world.campaign.to_string(),
                MISSING.to_string(),
            ],
            "{id}",
        ),
        Target::ReviewItem => {
            let c = world.campaign;
            let (a, b) = world.review_items;
            vec![
                row.path
                    .replace("{id}", &c.to_string())
                    .replace("{item}", &a.to_string()),
                row.path
                    .replace("{id}", &c.to_string())
                    .replace("{item}", &b.to_string()),
                row.path
                    .replace("{id}", &c.to_string())
                    .replace("{item}", &MISSING.to_string()),
            ]
        }
    }
}

/// Runs the matrix; panics listing every cell that differs from the table. Returns the
/// number of cells.
pub async fn matrix(api: &Api) -> usize {
    let n = api.name;
    let world = world(api).await;
    let mut rows = Vec::new();
    rows.extend(record_rows("customers", customers()));
    rows.extend(record_rows("contacts", children(REVEAL_PLAIN)));
    rows.extend(record_rows("deals", children(REVEAL_PLAIN)));
    rows.extend(record_rows("contracts", children(REVEAL_CONTRACT_VALUE)));
    rows.extend(record_rows("activities", children(REVEAL_ACTIVITY_NOTES)));
    rows.extend(other_rows());

    // Every operation of the OpenAPI document has a row, and every row an operation.
    let document = api
        .request(Method::GET, "/api/v1/openapi.json", None, Body::None)
        .await;
    let documented: BTreeSet<(String, String)> = document.body["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .into_iter()
                .flatten()
                .map(move |(method, _)| (method.to_uppercase(), path.clone()))
        })
        .collect();
    let covered: BTreeSet<(String, String)> = rows
        .iter()
        .map(|r| (r.method.to_string(), r.path.clone()))
        .collect();
    let missing: Vec<_> = documented.difference(&covered).collect();
    // The document itself is the one operation it does not list.
    let extra: Vec<_> = covered
        .difference(&documented)
        .filter(|(_, path)| path != "/api/v1/openapi.json")
        .collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "[{n}] the matrix and the OpenAPI document differ: without a row {missing:?}; not documented {extra:?}"
    );

    let mut cells = 0;
    let mut wrong = Vec::new();
    let mut leaks = Vec::new();
    for row in &rows {
        let expect = parse_expect(row);
        for (column, user) in WHO.iter().enumerate() {
            let token = (*user != "anonymous").then(|| api.token(user).to_owned());
            let paths = paths_for(api, &world, row, user).await;
            for (k, path) in paths.iter().enumerate() {
                let body = match &row.body {
                    Some(value) => Body::Json(value.clone()),
                    None => Body::None,
                };
                let reply = api
                    .request(row.method.clone(), path, token.as_deref(), body)
                    .await;
                cells += 1;
                let wanted = expect[column][k];
                if reply.status != wanted {
                    let kind = ["own", "other", "missing"][k];
                    let line = format!(
                        "{user:>12} {} {path} ({kind}): {} where the table says {wanted}: {}",
                        row.method,
                        reply.status,
                        reply.text.chars().take(160).collect::<String>()
                    );
                    // A leak: an answer other than 404 where the table hides the record, or
                    // a success where it refuses.
                    let leaked = (wanted == 404 && reply.status != 404)
                        || (wanted >= 400 && reply.status < 300);
                    if leaked {
                        leaks.push(line.clone());
                    }
                    wrong.push(line);
                }
                if reply.status >= 400 && !reply.body["error"].is_string() {
                    wrong.push(format!(
                        "{user} {} {path}: {} without a JSON error",
                        row.method, reply.status
                    ));
                }
            }
        }
    }
    eprintln!(
        "e2e [{n}] IDOR matrix: {} operations x {} callers x own/other/missing = {cells} cells; {} leaks, {} cells off the table",
        rows.len(),
        WHO.len(),
        leaks.len(),
        wrong.len()
    );
    assert!(
        wrong.is_empty(),
        "[{n}] IDOR matrix: {} leaks, {} cells differ from the table:\n{}",
        leaks.len(),
        wrong.len(),
        wrong.join("\n")
    );
    cells
}
