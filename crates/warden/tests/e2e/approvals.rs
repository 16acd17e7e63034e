//! Approvals end to end on the demo's policy: a rep's delete waits for their direct superior;
//! any change of `credit_limit` waits for an Administrator other than the requester. Every
//! check starts from its own customers, so the order of the checks does not matter.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{id, Api, Body, Reply, PASSWORD};

fn customer(id: i64) -> String {
    format!("/api/v1/customers/{id}")
}

fn approval_path(id: i64, verb: &str) -> String {
    format!("/api/v1/approvals/{id}/{verb}")
}

/// The request of a 202.
fn held(api: &Api, what: &str, reply: &Reply) -> Value {
    assert_eq!(reply.status, 202, "[{}] {what}: {}", api.name, reply.text);
    let approval = reply.body["approval"].clone();
    assert!(
        approval["id"].as_i64().is_some(),
        "[{}] {what}: {}",
        api.name,
        reply.text
    );
    assert_eq!(approval["state"], "pending", "[{}] {what}", api.name);
    approval
}

fn approvers(approval: &Value) -> BTreeSet<String> {
    approval["approvers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|n| (*n).to_owned()).collect()
}

/// rep1's customers, in id order, but for Acme Trading (the portal's account, which the
/// sharing tests use and a delete would be refused for while its portal user exists).
async fn rep1_customers(api: &Api) -> Vec<i64> {
    api.all_customers("rep1", 200)
        .await
        .iter()
        .filter(|c| c["name"] != "Acme Trading")
        .map(id)
        .collect()
}

pub async fn everything(api: &Api) {
    let ids = rep1_customers(api).await;
    assert!(ids.len() >= 20, "[{}] rep1 has customers", api.name);
    a_reps_delete_waits_for_their_superior(api, ids[0]).await;
    a_change_after_the_request_ends_in_conflict(api, ids[1], ids[2]).await;
    a_rejected_request_changes_nothing(api, ids[3]).await;
    credit_limits_need_a_second_administrator(api, ids[4]).await;
    no_approving_through_a_second_account(api, ids[5]).await;
    withdrawing(api, ids[6]).await;
    two_approvers_at_once_apply_once(api, &ids[7..12]).await;
    policies_through_the_api(api, ids[12]).await;
    four_eyes_on_permission_changes(api).await;
    four_eyes_on_persons(api).await;
}

async fn a_reps_delete_waits_for_their_superior(api: &Api, c: i64) {
    let n = api.name;
    let reply = api.delete("rep1", &customer(c)).await;
    let approval = held(api, "rep1 deletes a customer", &reply);
    let request = approval["id"].as_i64().unwrap();
    assert_eq!(
        approvers(&approval),
        set(&["supervisor1"]),
        "[{n}] {approval}"
    );
    assert_eq!(approval["operation"], "delete");
    assert_eq!(approval["record_id"], c);
    // The record stays as it was, and readable.
    assert_eq!(
        api.get("rep1", &customer(c)).await.status,
        200,
        "[{n}] still there"
    );

    let own = api
        .post("rep1", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(
        own.status, 403,
        "[{n}] rep1 approves their own request: {}",
        own.text
    );
    // supervisor2 is not rep1's superior and cannot see rep1's customers: the request does not
    // exist for them. The manager is two levels up: not an approver of this policy either.
    for outsider in ["supervisor2", "manager", "rep2"] {
        let reply = api
            .post(outsider, &approval_path(request, "approve"), json!({}))
            .await;
        assert_eq!(
            reply.status, 404,
            "[{n}] {outsider} approves: {}",
            reply.text
        );
    }
    assert_eq!(api.get("supervisor1", &customer(c)).await.status, 200);

    // supervisor1's inbox holds it, and /me counts it.
    let inbox = api
        .get("supervisor1", "/api/v1/approvals?state=pending")
        .await;
    assert_eq!(inbox.status, 200, "[{n}] {}", inbox.text);
    let item = inbox.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == request)
        .unwrap_or_else(|| panic!("[{n}] not in supervisor1's inbox: {}", inbox.text))
        .clone();
    assert_eq!(item["can_decide"], true);
    let me = api.get("supervisor1", "/api/v1/me").await;
    assert!(
        me.body["approvals_inbox"].as_u64().unwrap() >= 1,
        "[{n}] {}",
        me.text
    );
    // rep1 sees their own request, and cannot decide it.
    let mine = api
        .get("rep1", "/api/v1/approvals?state=pending&role=mine")
        .await;
    let item = mine.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == request)
        .unwrap_or_else(|| panic!("[{n}] not among rep1's requests: {}", mine.text))
        .clone();
    assert_eq!(item["can_decide"], false);
    let outsider_inbox = api
        .get("supervisor2", "/api/v1/approvals?state=pending")
        .await;
    assert!(
        !outsider_inbox.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["id"] == request),
        "[{n}] supervisor2 sees rep1's request: {}",
        outsider_inbox.text
    );

    let approved = api
        .post(
            "supervisor1",
            &approval_path(request, "approve"),
            json!({"comment": "duplicate account"}),
        )
        .await;
    assert_eq!(
        approved.status, 200,
        "[{n}] supervisor1 approves: {}",
        approved.text
    );
    assert_eq!(approved.body["state"], "applied", "[{n}] {}", approved.text);
    for user in ["rep1", "supervisor1", "admin"] {
        assert_eq!(
            api.get(user, &customer(c)).await.status,
            404,
            "[{n}] {user}: gone"
        );
    }
    let again = api
        .post("supervisor1", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(again.status, 409, "[{n}] approving twice: {}", again.text);
    // The history: who, when, why.
    let history = api
        .get("rep1", &format!("/api/v1/approvals/{request}"))
        .await;
    let events: Vec<(String, String)> = history.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_owned(),
                e["actor"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        events,
        vec![
            ("requested".to_owned(), "rep1".to_owned()),
            ("approved".to_owned(), "supervisor1".to_owned()),
            ("applied".to_owned(), "supervisor1".to_owned()),
        ],
        "[{n}] {}",
        history.text
    );
    assert_eq!(history.body["events"][1]["comment"], "duplicate account");
}

async fn a_change_after_the_request_ends_in_conflict(api: &Api, c: i64, d: i64) {
    let n = api.name;
    // A delete, then an edit of the record: the approval applies nothing.
    let approval = held(api, "rep1 deletes", &api.delete("rep1", &customer(c)).await);
    let request = approval["id"].as_i64().unwrap();
    let before = api.get("rep1", &customer(c)).await.body;
    let edit = api
        .patch(
            "rep1",
            &customer(c),
            json!({"phone": "+86 21 0000 0001", "version": before["version"]}),
        )
        .await;
    assert_eq!(
        edit.status, 200,
        "[{n}] rep1 edits meanwhile: {}",
        edit.text
    );
    let decided = api
        .post("supervisor1", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(decided.status, 200, "[{n}] {}", decided.text);
    assert_eq!(decided.body["state"], "conflict", "[{n}] {}", decided.text);
    assert!(
        decided.body["reason"].as_str().unwrap().contains("changed"),
        "[{n}] {}",
        decided.text
    );
    let after = api.get("rep1", &customer(c)).await;
    assert_eq!(
        after.status, 200,
        "[{n}] the customer survives a conflicting approval"
    );
    assert_eq!(after.body, edit.body, "[{n}] and is as edited");

    // An update: finance raises a credit limit, the admin renames the customer meanwhile.
    let before = api.get("admin", &customer(d)).await.body;
    let raise = api
        .patch(
            "finance",
            &customer(d),
            json!({"credit_limit": 777_000, "version": before["version"]}),
        )
        .await;
    let approval = held(api, "finance raises a credit limit", &raise);
    assert_eq!(
        approvers(&approval),
        set(&["admin", "admin2"]),
        "[{n}] {approval}"
    );
    let renamed = api
        .patch(
            "admin",
            &customer(d),
            json!({"name": "Renamed Meanwhile Ltd", "version": before["version"]}),
        )
        .await;
    assert_eq!(renamed.status, 200, "[{n}] {}", renamed.text);
    let decided = api
        .post(
            "admin2",
            &approval_path(approval["id"].as_i64().unwrap(), "approve"),
            json!({}),
        )
        .await;
    assert_eq!(decided.body["state"], "conflict", "[{n}] {}", decided.text);
    let after = api.get("admin", &customer(d)).await.body;
    assert_eq!(
        after["credit_limit"], before["credit_limit"],
        "[{n}] nothing applied"
    );
    assert_eq!(after["name"], "Renamed Meanwhile Ltd");
}

async fn a_rejected_request_changes_nothing(api: &Api, c: i64) {
    let n = api.name;
    let before = api.get("rep1", &customer(c)).await.body;
    let approval = held(api, "rep1 deletes", &api.delete("rep1", &customer(c)).await);
    let request = approval["id"].as_i64().unwrap();
    let rejected = api
        .post(
            "supervisor1",
            &approval_path(request, "reject"),
            json!({"comment": "still a customer"}),
        )
        .await;
    assert_eq!(rejected.status, 200, "[{n}] {}", rejected.text);
    assert_eq!(rejected.body["state"], "rejected");
    assert_eq!(rejected.body["reason"], "still a customer");
    assert_eq!(
        api.get("rep1", &customer(c)).await.body,
        before,
        "[{n}] unchanged"
    );
    let late = api
        .post("supervisor1", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(
        late.status, 409,
        "[{n}] approving a rejected request: {}",
        late.text
    );
}

async fn credit_limits_need_a_second_administrator(api: &Api, c: i64) {
    let n = api.name;
    // The same value written again changes nothing and waits for nobody.
    let before = api.get("admin", &customer(c)).await.body;
    let same = api
        .patch(
            "finance",
            &customer(c),
            json!({"credit_limit": before["credit_limit"], "version": before["version"]}),
        )
        .await;
    assert_eq!(
        same.status, 200,
        "[{n}] an unchanged credit limit: {}",
        same.text
    );
    let before = api.get("admin", &customer(c)).await.body;
    let reply = api
        .patch(
            "admin",
            &customer(c),
            json!({"credit_limit": 1_234_000, "version": before["version"]}),
        )
        .await;
    let approval = held(api, "admin changes a credit limit", &reply);
    let request = approval["id"].as_i64().unwrap();
    assert_eq!(
        approvers(&approval),
        set(&["admin2"]),
        "[{n}] not the requester: {approval}"
    );
    assert_eq!(
        approval["changes"],
        json!([{"field": "credit_limit", "value": 1_234_000, "access": "write"}]),
        "[{n}] the requester sees what they asked for"
    );
    assert_eq!(
        api.get("admin", &customer(c)).await.body,
        before,
        "[{n}] held, not applied"
    );
    // Support may not see credit limits: their view of the request (none: they are not
    // involved) — and a rep's view of a request on their own customer hides nothing they may
    // not read. The request never carries a value in its summary.
    assert!(!approval["summary"].as_str().unwrap().contains("1234000"));
    let own = api
        .post("admin", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(own.status, 403, "[{n}] {}", own.text);
    let approved = api
        .post("admin2", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(approved.body["state"], "applied", "[{n}] {}", approved.text);
    let after = api.get("admin", &customer(c)).await.body;
    assert_eq!(after["credit_limit"], 1_234_000, "[{n}] applied");
    assert_eq!(
        after["version"],
        before["version"].as_i64().unwrap() + 1,
        "[{n}] once"
    );
}

async fn no_approving_through_a_second_account(api: &Api, c: i64) {
    let n = api.name;
    // finance gets a second account that is an Administrator: the same person.
    let link = api
        .patch(
            "admin",
            "/api/v1/users/finance",
            json!({"person": "E-1001"}),
        )
        .await;
    assert_eq!(link.status, 200, "[{n}] {}", link.text);
    assert_eq!(link.body["person"], "E-1001");
    let alt = api
        .post(
            "admin",
            "/api/v1/users",
            json!({"username": "finance.alt", "password": PASSWORD, "unit": "Finance",
                   "roles": ["Administrator"], "person": "E-1001"}),
        )
        .await;
    assert_eq!(alt.status, 201, "[{n}] {}", alt.text);
    let token = api.login("finance.alt", PASSWORD).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();

    let before = api.get("admin", &customer(c)).await.body;
    let reply = api
        .patch(
            "finance",
            &customer(c),
            json!({"credit_limit": 55_000, "version": before["version"]}),
        )
        .await;
    let approval = held(api, "finance changes a credit limit", &reply);
    assert_eq!(
        approvers(&approval),
        set(&["admin", "admin2"]),
        "[{n}] finance's other account is not an approver: {approval}"
    );
    let request = approval["id"].as_i64().unwrap();
    let through_alt = api
        .request(
            Method::POST,
            &approval_path(request, "approve"),
            Some(&token),
            Body::Json(json!({})),
        )
        .await;
    assert_eq!(through_alt.status, 403, "[{n}] {}", through_alt.text);
    assert_eq!(
        api.get("admin", &customer(c)).await.body,
        before,
        "[{n}] nothing applied"
    );
    let approved = api
        .post("admin", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(approved.body["state"], "applied", "[{n}] {}", approved.text);
}

async fn withdrawing(api: &Api, c: i64) {
    let n = api.name;
    let approval = held(api, "rep1 deletes", &api.delete("rep1", &customer(c)).await);
    let request = approval["id"].as_i64().unwrap();
    let by_other = api
        .post("rep2", &approval_path(request, "withdraw"), json!({}))
        .await;
    assert_eq!(by_other.status, 404, "[{n}] {}", by_other.text);
    let by_approver = api
        .post(
            "supervisor1",
            &approval_path(request, "withdraw"),
            json!({}),
        )
        .await;
    assert_eq!(by_approver.status, 403, "[{n}] {}", by_approver.text);
    let withdrawn = api
        .post(
            "rep1",
            &approval_path(request, "withdraw"),
            json!({"comment": "wrong one"}),
        )
        .await;
    assert_eq!(withdrawn.status, 200, "[{n}] {}", withdrawn.text);
    assert_eq!(withdrawn.body["state"], "withdrawn");
    let late = api
        .post("supervisor1", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(late.status, 409, "[{n}] {}", late.text);
    assert_eq!(
        api.get("rep1", &customer(c)).await.status,
        200,
        "[{n}] still there"
    );
}

/// admin and admin2 approve finance's change at the same moment: exactly one applies it.
async fn two_approvers_at_once_apply_once(api: &Api, customers: &[i64]) {
    let n = api.name;
    for (round, &c) in customers.iter().enumerate() {
        let before = api.get("admin", &customer(c)).await.body;
        let value = 600_000 + round as i64;
        let reply = api
            .patch(
                "finance",
                &customer(c),
                json!({"credit_limit": value, "version": before["version"]}),
            )
            .await;
        let request = held(api, "finance changes a credit limit", &reply)["id"]
            .as_i64()
            .unwrap();
        let path = approval_path(request, "approve");
        let (a, b) = tokio::join!(
            api.post("admin", &path, json!({})),
            api.post("admin2", &path, json!({}))
        );
        let mut statuses = [a.status, b.status];
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 409],
            "[{n}] round {round}: {} / {}",
            a.text,
            b.text
        );
        let winner = if a.status == 200 { &a } else { &b };
        assert_eq!(winner.body["state"], "applied", "[{n}] {}", winner.text);
        let after = api.get("admin", &customer(c)).await.body;
        assert_eq!(after["credit_limit"], value, "[{n}] round {round}");
        assert_eq!(
            after["version"],
            before["version"].as_i64().unwrap() + 1,
            "[{n}] round {round}: applied exactly once"
        );
    }
}

async fn policies_through_the_api(api: &Api, c: i64) {
    let n = api.name;
    let listed = api.get("rep1", "/api/v1/approval-policies").await;
    assert_eq!(listed.status, 200, "[{n}] {}", listed.text);
    assert_eq!(
        listed.body["items"].as_array().unwrap().len(),
        2,
        "[{n}] the demo's two"
    );
    let policy = json!({
        "name": "East customers going inactive",
        "object": "customers",
        "operations": ["update"],
        "fields": ["status"],
        "when": {"all": [{"region": "East"}, {"status": "inactive"}]},
        "requesters": {"role": "Sales Rep"},
        "approvers": {"users": ["supervisor1", "manager"]},
        "required": 2,
    });
    let refused = api
        .post("rep1", "/api/v1/approval-policies", policy.clone())
        .await;
    assert_eq!(refused.status, 403, "[{n}] {}", refused.text);
    let bad = api
        .post(
            "admin",
            "/api/v1/approval-policies",
            json!({"name": "x", "object": "customers",
            "operations": ["update"], "when": {"colour": "red"}, "approvers": {"superior": 1}}),
        )
        .await;
    assert_eq!(bad.status, 422, "[{n}] {}", bad.text);
    let created = api.post("admin", "/api/v1/approval-policies", policy).await;
    assert_eq!(created.status, 201, "[{n}] {}", created.text);
    let policy_id = created.body["id"].as_i64().unwrap();

    // A rep1 customer made East: status to inactive now needs supervisor1 AND manager.
    let before = api.get("rep1", &customer(c)).await.body;
    let east = api
        .patch(
            "rep1",
            &customer(c),
            json!({"region": "East", "status": "active", "version": before["version"]}),
        )
        .await;
    assert_eq!(
        east.status, 200,
        "[{n}] not caught (status stays active): {}",
        east.text
    );
    let reply = api
        .patch(
            "rep1",
            &customer(c),
            json!({"status": "inactive", "version": east.body["version"]}),
        )
        .await;
    let approval = held(api, "rep1 sets an East customer inactive", &reply);
    assert_eq!(
        approvers(&approval),
        set(&["manager", "supervisor1"]),
        "[{n}] {approval}"
    );
    let request = approval["id"].as_i64().unwrap();
    let first = api
        .post("manager", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(
        first.body["state"], "pending",
        "[{n}] one of two: {}",
        first.text
    );
    assert_eq!(api.get("rep1", &customer(c)).await.body["status"], "active");
    let second = api
        .post("supervisor1", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(
        second.body["state"], "applied",
        "[{n}] two of two: {}",
        second.text
    );
    assert_eq!(
        api.get("rep1", &customer(c)).await.body["status"],
        "inactive"
    );
    let deleted = api
        .delete("admin", &format!("/api/v1/approval-policies/{policy_id}"))
        .await;
    assert_eq!(deleted.status, 204, "[{n}] {}", deleted.text);

    // A condition on a field the requester may not read counts as met: whether their change
    // waits must not tell them the field's value. No credit limit is above a trillion.
    let created = api
        .post(
            "admin",
            "/api/v1/approval-policies",
            json!({"name": "Trillion-limit accounts", "object": "customers", "operations": ["update"],
                   "when": {"credit_limit": {"gt": 1_000_000_000_000_i64}},
                   "approvers": {"role": "Administrator"}}),
        )
        .await;
    assert_eq!(created.status, 201, "[{n}] {}", created.text);
    let c2 = api.get("rep1", &customer(c)).await.body;
    let by_rep = api
        .patch(
            "rep1",
            &customer(c),
            json!({"phone": "+86 21 0000 0002", "version": c2["version"]}),
        )
        .await;
    assert_eq!(
        by_rep.status, 200,
        "[{n}] rep1 reads credit_limit: not caught: {}",
        by_rep.text
    );
    let by_support = api
        .patch(
            "support",
            &customer(c),
            json!({"phone": "+86 21 0000 0003", "version": by_rep.body["version"]}),
        )
        .await;
    let held_for_support = held(api, "support, who may not read credit_limit", &by_support);
    let withdrawn = api
        .post(
            "support",
            &approval_path(held_for_support["id"].as_i64().unwrap(), "withdraw"),
            json!({}),
        )
        .await;
    assert_eq!(withdrawn.status, 200, "[{n}] {}", withdrawn.text);
    let id = created.body["id"].as_i64().unwrap();
    let deleted = api
        .delete("admin", &format!("/api/v1/approval-policies/{id}"))
        .await;
    assert_eq!(deleted.status, 204, "[{n}] {}", deleted.text);
}

/// With four eyes on, a role assignment waits for a second administrator; so does turning
/// four eyes off.
async fn four_eyes_on_permission_changes(api: &Api) {
    let n = api.name;
    let on = api
        .request(
            Method::PUT,
            "/api/v1/settings/four-eyes",
            Some(api.token("admin")),
            Body::Json(json!({"on": true})),
        )
        .await;
    assert_eq!(on.status, 200, "[{n}] {}", on.text);
    let reply = api
        .patch(
            "admin",
            "/api/v1/users/rep4",
            json!({"roles": ["Sales Supervisor"]}),
        )
        .await;
    let approval = held(api, "admin changes rep4's roles", &reply);
    assert!(approvers(&approval).contains("admin2"), "[{n}] {approval}");
    assert!(!approvers(&approval).contains("admin"), "[{n}] {approval}");
    let roles = |reply: Reply| reply.body["roles"].clone();
    assert_eq!(
        roles(api.get("admin", "/api/v1/users/rep4").await),
        json!(["Sales Rep"]),
        "[{n}] held"
    );
    let request = approval["id"].as_i64().unwrap();
    let own = api
        .post("admin", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(own.status, 403, "[{n}] {}", own.text);
    let approved = api
        .post("admin2", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(approved.body["state"], "applied", "[{n}] {}", approved.text);
    assert_eq!(
        roles(api.get("admin", "/api/v1/users/rep4").await),
        json!(["Sales Supervisor"])
    );
    // Put it back (through four eyes again), then turn four eyes off (which waits too).
    let back = api
        .patch(
            "admin2",
            "/api/v1/users/rep4",
            json!({"roles": ["Sales Rep"]}),
        )
        .await;
    let back = held(api, "admin2 restores rep4", &back)["id"]
        .as_i64()
        .unwrap();
    let done = api
        .post("admin", &approval_path(back, "approve"), json!({}))
        .await;
    assert_eq!(done.body["state"], "applied", "[{n}] {}", done.text);
    let off = api
        .request(
            Method::PUT,
            "/api/v1/settings/four-eyes",
            Some(api.token("admin")),
            Body::Json(json!({"on": false})),
        )
        .await;
    let off = held(api, "turning four eyes off", &off)["id"]
        .as_i64()
        .unwrap();
    let done = api
        .post("admin2", &approval_path(off, "approve"), json!({}))
        .await;
    assert_eq!(done.body["state"], "applied", "[{n}] {}", done.text);
    let listed = api.get("admin", "/api/v1/approval-policies").await;
    assert_eq!(listed.body["four_eyes"], false, "[{n}] {}", listed.text);
}

/// Under four eyes, unlinking an account from its person waits too, the account concerned
/// cannot approve it, and approvers see what the change is.
async fn four_eyes_on_persons(api: &Api) {
    let n = api.name;
    let on = api
        .request(
            Method::PUT,
            "/api/v1/settings/four-eyes",
            Some(api.token("admin")),
            Body::Json(json!({"on": true})),
        )
        .await;
    assert_eq!(on.status, 200, "[{n}] {}", on.text);
    let mixed = api
        .patch(
            "admin",
            "/api/v1/users/finance.alt",
            json!({"person": null, "display_name": "x"}),
        )
        .await;
    assert_eq!(
        mixed.status, 422,
        "[{n}] a person change must come alone: {}",
        mixed.text
    );
    let reply = api
        .patch(
            "admin",
            "/api/v1/users/finance.alt",
            json!({"person": null}),
        )
        .await;
    let approval = held(api, "admin unlinks finance.alt", &reply);
    assert_eq!(
        approval["organisation_change"]["op"], "user.person",
        "[{n}] {approval}"
    );
    assert!(
        !approvers(&approval).contains("finance.alt"),
        "[{n}] {approval}"
    );
    assert!(!approvers(&approval).contains("admin"), "[{n}] {approval}");
    let token = api.login("finance.alt", PASSWORD).await.body["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let request = approval["id"].as_i64().unwrap();
    let by_self = api
        .request(
            Method::POST,
            &approval_path(request, "approve"),
            Some(&token),
            Body::Json(json!({})),
        )
        .await;
    assert!(
        by_self.status == 403 || by_self.status == 404,
        "[{n}] {}",
        by_self.text
    );
    let rejected = api
        .post("admin2", &approval_path(request, "reject"), json!({}))
        .await;
    assert_eq!(
        rejected.body["state"], "rejected",
        "[{n}] {}",
        rejected.text
    );
    assert_eq!(
        api.get("admin", "/api/v1/users/finance.alt").await.body["person"],
        "E-1001"
    );
    let off = api
        .request(
            Method::PUT,
            "/api/v1/settings/four-eyes",
            Some(api.token("admin")),
            Body::Json(json!({"on": false})),
        )
        .await;
    let off = held(api, "turning four eyes off", &off)["id"]
        .as_i64()
        .unwrap();
    let done = api
        .post("admin2", &approval_path(off, "approve"), json!({}))
        .await;
    assert_eq!(done.body["state"], "applied", "[{n}] {}", done.text);
}

/// What the webhook receiver got: (event, signature header, body).
type Deliveries = std::sync::Arc<std::sync::Mutex<Vec<(String, String, String)>>>;

/// A webhook receiver on a free port that refuses its first delivery (500), so the retry is
/// exercised, and records every delivery after it.
pub async fn webhook_receiver() -> (String, Deliveries) {
    use axum::http::{HeaderMap, StatusCode};
    let deliveries: Deliveries = Default::default();
    let refused_once = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = deliveries.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: String| {
            let seen = seen.clone();
            let refused_once = refused_once.clone();
            async move {
                if !refused_once.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    return StatusCode::INTERNAL_SERVER_ERROR;
                }
                let event = serde_json::from_str::<Value>(&body).unwrap()["event"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let signature = headers
                    .get("x-warden-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                seen.lock().unwrap().push((event, signature, body));
                StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, deliveries)
}

/// Every state change reaches the webhook, signed with HMAC-SHA256 over the timestamp and
/// the body; a refused delivery is retried.
pub async fn webhooks(api: &Api, deliveries: &Deliveries, secret: &str) {
    use hmac::{Hmac, Mac};
    let n = api.name;
    let c = rep1_customers(api).await[0];
    let request = held(api, "rep1 deletes", &api.delete("rep1", &customer(c)).await)["id"]
        .as_i64()
        .unwrap();
    let approved = api
        .post("supervisor1", &approval_path(request, "approve"), json!({}))
        .await;
    assert_eq!(approved.body["state"], "applied", "[{n}] {}", approved.text);
    let wanted = [
        "approval.requested",
        "approval.approved",
        "approval.applied",
    ];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let got: Vec<String> = deliveries
            .lock()
            .unwrap()
            .iter()
            .map(|d| d.0.clone())
            .collect();
        if wanted.iter().all(|w| got.iter().any(|g| g == w)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "[{n}] the webhook got only {got:?} (the first attempt is refused, then retried)"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    for (event, signature, body) in deliveries.lock().unwrap().iter() {
        let (t, v1) = signature
            .strip_prefix("t=")
            .and_then(|rest| rest.split_once(",v1="))
            .unwrap_or_else(|| panic!("[{n}] {event}: signature header {signature:?}"));
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.{body}").as_bytes());
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            v1,
            "[{n}] {event}: the signature does not match"
        );
        let body: Value = serde_json::from_str(body).unwrap();
        assert_eq!(body["approval"]["id"], request, "[{n}] {body}");
        assert_eq!(body["approval"]["object"], "customers");
    }
}
