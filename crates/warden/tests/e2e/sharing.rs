//! Sharing beyond the hierarchy, over HTTP: shares and record teams, sharing rules,
//! restriction rules, portal users, and explain naming each of them.

use serde_json::{json, Value};

use crate::harness::{id, ids, Api};

/// A customer of `owner`'s other than Acme Trading (the portal's account), by position.
async fn customer_of(api: &Api, owner: &str, nth: usize) -> Value {
    api.all_customers(owner, 200)
        .await
        .into_iter()
        .filter(|c| c["name"] != "Acme Trading")
        .nth(nth)
        .unwrap_or_else(|| panic!("[{}] {owner} has {} customers", api.name, nth + 1))
}

pub async fn everything(api: &Api) {
    a_read_share_opens_a_record_and_nothing_more(api).await;
    an_edit_share_reaches_the_customers_contacts(api).await;
    a_record_team_is_managed_by_the_owner_and_superiors(api).await;
    portal_users_see_their_own_account_only(api).await;
    a_sharing_rule_opens_a_region_and_explain_names_it(api).await;
    a_restriction_rule_narrows_every_grant_and_explain_names_it(api).await;
    view_as_sees_what_the_user_sees_and_only_reads(api).await;
}

async fn view_as_sees_what_the_user_sees_and_only_reads(api: &Api) {
    use reqwest::Method;

    use crate::harness::Body;
    let n = api.name;
    assert_eq!(
        api.post(
            "supervisor1",
            "/api/v1/access/view-as",
            json!({"user": "rep1"})
        )
        .await
        .status,
        403,
        "[{n}] only administrators view as someone else"
    );
    let issued = api
        .post(
            "admin",
            "/api/v1/access/view-as",
            json!({"user": "rep2", "minutes": 5}),
        )
        .await;
    assert_eq!(issued.status, 201, "[{n}] {}", issued.text);
    assert_eq!(issued.body["read_only"], true);
    let token = issued.body["token"].as_str().unwrap().to_owned();
    let through = api
        .request(
            Method::GET,
            "/api/v1/customers?limit=200",
            Some(&token),
            Body::None,
        )
        .await;
    assert_eq!(through.status, 200, "[{n}] {}", through.text);
    let seen: Vec<i64> = through.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    let own: Vec<i64> = api.get("rep2", "/api/v1/customers?limit=200").await.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(id)
        .collect();
    assert_eq!(
        seen, own,
        "[{n}] the view-as token sees exactly rep2's customers"
    );
    let first = seen[0];
    let write = api
        .request(
            Method::PATCH,
            &format!("/api/v1/customers/{first}"),
            Some(&token),
            Body::Json(json!({"version": 1, "phone": "1"})),
        )
        .await;
    assert_eq!(
        write.status, 403,
        "[{n}] view-as is read-only: {}",
        write.text
    );
    let log = api
        .get(
            "auditor",
            &format!("/api/v1/audit?object=customers&record={first}"),
        )
        .await;
    assert!(
        log.body["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["actor"] == "admin (as rep2)" && e["action"] == "read"),
        "[{n}] reads through view-as are logged under the administrator: {}",
        log.text
    );
}

fn explain_reasons(reply: &Value, action: &str) -> Vec<Value> {
    reply["actions"]
        .as_array()
        .and_then(|actions| actions.iter().find(|a| a["action"] == action))
        .and_then(|a| a["reasons"].as_array().cloned())
        .unwrap_or_default()
}

fn explain_action<'a>(reply: &'a Value, action: &str) -> &'a Value {
    reply["actions"]
        .as_array()
        .and_then(|actions| actions.iter().find(|a| a["action"] == action))
        .unwrap_or(&Value::Null)
}

async fn a_read_share_opens_a_record_and_nothing_more(api: &Api) {
    let n = api.name;
    let customer = customer_of(api, "rep1", 1).await;
    let c = id(&customer);
    let path = format!("/api/v1/customers/{c}");
    assert_eq!(
        api.get("rep3", &path).await.status,
        404,
        "[{n}] before the share"
    );

    // Someone without `share` on it cannot share it; rep1 can.
    let refused = api
        .post(
            "rep3",
            &format!("{path}/shares"),
            json!({"with": {"user": "rep3"}}),
        )
        .await;
    assert_eq!(
        refused.status, 404,
        "[{n}] rep3 cannot even see it: {}",
        refused.text
    );
    let shared = api
        .post(
            "rep1",
            &format!("{path}/shares"),
            json!({"with": {"user": "rep3"}, "access": "read"}),
        )
        .await;
    assert_eq!(shared.status, 201, "[{n}] rep1 shares: {}", shared.text);
    assert_eq!(shared.body["kind"], "share");
    assert_eq!(shared.body["with"]["user"], "rep3");
    let share_id = shared.body["id"].as_i64().unwrap();

    // rep3 reads it, on its own and in the list; changing it is refused.
    let read = api.get("rep3", &path).await;
    assert_eq!(
        read.status, 200,
        "[{n}] rep3 reads the shared customer: {}",
        read.text
    );
    assert!(
        read.body.get("credit_limit").is_some() && read.body.get("bank_account").is_none(),
        "[{n}] a share opens the record, not more fields than rep3's role shows: {}",
        read.text
    );
    assert!(
        ids(&api.all_customers("rep3", 50).await).contains(&c),
        "[{n}] the shared customer is in rep3's list"
    );
    let update = api
        .patch(
            "rep3",
            &path,
            json!({"version": read.body["version"], "phone": "+86 21 5555 0000"}),
        )
        .await;
    assert_eq!(update.status, 403, "[{n}] a read share: {}", update.text);
    // rep4, the other rep of Sales Team 2, still sees nothing.
    assert_eq!(api.get("rep4", &path).await.status, 404, "[{n}] rep4");

    // Explain names the share (rep3 about themselves).
    let explained = api
        .get(
            "rep3",
            &format!("/api/v1/access/explain?user=rep3&object=customers&id={c}"),
        )
        .await;
    assert_eq!(explained.status, 200, "[{n}] {}", explained.text);
    let reasons = explain_reasons(&explained.body, "read");
    assert!(
        reasons.iter().any(|r| r["source"] == "share"
            && r["principal"] == "user rep3"
            && r["access"] == "read"),
        "[{n}] explain names the share: {}",
        explained.text
    );
    assert_eq!(explain_action(&explained.body, "update")["allowed"], false);

    // The owner sees the share; taking it back closes the record again.
    let listed = api.get("rep1", &format!("{path}/shares")).await;
    assert_eq!(listed.status, 200, "[{n}] {}", listed.text);
    assert_eq!(listed.body["items"].as_array().unwrap().len(), 1);
    let revoked = api
        .delete("rep1", &format!("{path}/shares/{share_id}"))
        .await;
    assert_eq!(revoked.status, 204, "[{n}] {}", revoked.text);
    assert_eq!(
        api.get("rep3", &path).await.status,
        404,
        "[{n}] after the revocation"
    );

    // Every step is in the access log.
    let log = api
        .get(
            "auditor",
            &format!("/api/v1/audit?object=customers&record={c}"),
        )
        .await;
    let actions: Vec<&str> = log.body["items"]
        .as_array()
        .map(|items| items.iter().filter_map(|e| e["action"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        actions.contains(&"share.give") && actions.contains(&"share.revoke"),
        "[{n}] the share and its revocation are logged: {}",
        log.text
    );
}

async fn an_edit_share_reaches_the_customers_contacts(api: &Api) {
    let n = api.name;
    // A customer of rep1's that has a contact (the demo gives the first 200 customers one).
    let contacts = api.get("rep1", "/api/v1/contacts?limit=20").await;
    let contact = contacts.body["items"]
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .find(|c| c["customer_id"].as_i64().is_some_and(|id| id > 1))
                .cloned()
        })
        .unwrap_or_else(|| panic!("[{n}] rep1 has contacts: {}", contacts.text));
    let c = contact["customer_id"].as_i64().unwrap();
    let contact_path = format!("/api/v1/contacts/{}", id(&contact));
    assert_eq!(api.get("rep4", &contact_path).await.status, 404, "[{n}]");
    // A Sales Rep may share their own customers; for `edit` they must be able to change it.
    let shared = api
        .post(
            "rep1",
            &format!("/api/v1/customers/{c}/shares"),
            json!({"with": {"unit": "Sales Team 2"}, "access": "edit"}),
        )
        .await;
    assert_eq!(shared.status, 201, "[{n}] {}", shared.text);
    // Contacts are decided by their customer: the customer's share reaches them.
    let read = api.get("rep4", &contact_path).await;
    assert_eq!(
        read.status, 200,
        "[{n}] the share cascades to contacts: {}",
        read.text
    );
    let updated = api
        .patch(
            "rep4",
            &contact_path,
            json!({"version": read.body["version"], "title": "Buyer (shared)"}),
        )
        .await;
    assert_eq!(updated.status, 200, "[{n}] an edit share: {}", updated.text);
    // But no delete: shares give read or edit, never the owner's rights.
    assert_eq!(
        api.delete("rep4", &format!("/api/v1/customers/{c}"))
            .await
            .status,
        403,
        "[{n}] a share never gives delete"
    );
    let share_id = shared.body["id"].as_i64().unwrap();
    assert_eq!(
        api.delete("rep1", &format!("/api/v1/customers/{c}/shares/{share_id}"))
            .await
            .status,
        204
    );
}

async fn a_record_team_is_managed_by_the_owner_and_superiors(api: &Api) {
    let n = api.name;
    let customer = customer_of(api, "rep1", 2).await;
    let c = id(&customer);
    let team = format!("/api/v1/customers/{c}/team");
    // rep2 may not manage rep1's record's team (not the owner, not above rep1); to rep2 the
    // record does not even exist.
    let refused = api
        .post("rep2", &team, json!({"user": "rep4", "access": "read"}))
        .await;
    assert_eq!(refused.status, 404, "[{n}] {}", refused.text);
    let added = api
        .post("rep1", &team, json!({"user": "rep4", "access": "edit"}))
        .await;
    assert_eq!(
        added.status, 201,
        "[{n}] the owner adds a member: {}",
        added.text
    );
    assert_eq!(added.body["kind"], "team");
    assert_eq!(
        api.get("rep4", &format!("/api/v1/customers/{c}"))
            .await
            .status,
        200,
        "[{n}] the team member reads it"
    );
    let explained = api
        .get(
            "rep4",
            &format!("/api/v1/access/explain?user=rep4&object=customers&id={c}"),
        )
        .await;
    assert!(
        explain_reasons(&explained.body, "update")
            .iter()
            .any(|r| r["source"] == "team"),
        "[{n}] explain names the team place: {}",
        explained.text
    );
    // The owner's superior removes the member.
    let member = added.body["id"].as_i64().unwrap();
    let removed = api.delete("supervisor1", &format!("{team}/{member}")).await;
    assert_eq!(
        removed.status, 204,
        "[{n}] the superior removes: {}",
        removed.text
    );
    assert_eq!(
        api.get("rep4", &format!("/api/v1/customers/{c}"))
            .await
            .status,
        404
    );
}

async fn portal_users_see_their_own_account_only(api: &Api) {
    let n = api.name;
    let all = api.all_customers("admin", 200).await;
    let acme = all
        .iter()
        .find(|c| c["name"] == "Acme Trading")
        .map(id)
        .unwrap_or_else(|| panic!("[{n}] Acme Trading exists"));
    let listed = api.all_customers("portal-acme", 50).await;
    assert_eq!(
        ids(&listed),
        [acme].into_iter().collect(),
        "[{n}] portal-acme lists Acme Trading alone"
    );
    let acme_record = &listed[0];
    for hidden in ["credit_limit", "bank_account", "vip"] {
        assert!(
            acme_record.get(hidden).is_none(),
            "[{n}] `{hidden}` is not portal-visible: {acme_record}"
        );
    }
    // Any other id is simply not there, whatever the object.
    for other in all.iter().map(id).filter(|i| *i != acme).take(5) {
        assert_eq!(
            api.get("portal-acme", &format!("/api/v1/customers/{other}"))
                .await
                .status,
            404,
            "[{n}] customer {other}"
        );
    }
    for object in ["contacts", "deals"] {
        let everyone = api
            .get("admin", &format!("/api/v1/{object}?limit=200"))
            .await;
        let items = everyone.body["items"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let mine = api
            .get("portal-acme", &format!("/api/v1/{object}?limit=200"))
            .await;
        assert_eq!(mine.status, 200, "[{n}] {}", mine.text);
        for item in mine.body["items"].as_array().unwrap() {
            assert_eq!(item["customer_id"], acme, "[{n}] {object}: {item}");
        }
        for item in items.iter().filter(|i| i["customer_id"] != acme).take(3) {
            assert_eq!(
                api.get("portal-acme", &format!("/api/v1/{object}/{}", id(item)))
                    .await
                    .status,
                404,
                "[{n}] another account's {object}"
            );
        }
    }
    // Read-only portal role: no change, no share, no administration.
    let update = api
        .patch(
            "portal-acme",
            &format!("/api/v1/customers/{acme}"),
            json!({"version": acme_record["version"], "phone": "1"}),
        )
        .await;
    assert_eq!(update.status, 403, "[{n}] {}", update.text);
    assert_eq!(api.get("portal-acme", "/api/v1/users").await.status, 403);
    // Even a share from inside cannot reach a portal user outside their account.
    let other = customer_of(api, "rep1", 3).await;
    let refused = api
        .post(
            "rep1",
            &format!("/api/v1/customers/{}/shares", id(&other)),
            json!({"with": {"user": "portal-acme"}}),
        )
        .await;
    assert_eq!(refused.status, 422, "[{n}] {}", refused.text);
    // Explain names the account scope.
    let explained = api
        .get(
            "portal-acme",
            &format!("/api/v1/access/explain?user=portal-acme&object=customers&id={acme}"),
        )
        .await;
    assert_eq!(explained.status, 200, "[{n}] {}", explained.text);
    assert!(
        explain_reasons(&explained.body, "read")
            .iter()
            .any(|r| r["scope"] == "account"),
        "[{n}] {}",
        explained.text
    );
}

async fn a_sharing_rule_opens_a_region_and_explain_names_it(api: &Api) {
    let n = api.name;
    let east: Vec<i64> = api
        .all_customers("rep1", 200)
        .await
        .iter()
        .filter(|c| c["region"] == "East")
        .map(id)
        .collect();
    assert!(!east.is_empty(), "[{n}] rep1 has customers in the East");
    let created = api
        .post(
            "admin",
            "/api/v1/sharing-rules",
            json!({"name": "East to Sales Team 2", "object": "customers",
                   "when": {"region": "East"}, "share_with": {"unit": "Sales Team 2"},
                   "access": "read"}),
        )
        .await;
    assert_eq!(created.status, 201, "[{n}] {}", created.text);
    let rule = created.body["id"].as_i64().unwrap();
    // A condition on an encrypted field is refused, naming it.
    let refused = api
        .post(
            "admin",
            "/api/v1/sharing-rules",
            json!({"name": "bad", "object": "customers", "when": {"credit_limit": {"gt": 5}},
                   "share_with": {"unit": "Sales Team 2"}}),
        )
        .await;
    assert_eq!(refused.status, 422, "[{n}] {}", refused.text);
    assert_eq!(
        refused.body["field"], "when.credit_limit",
        "[{n}] {}",
        refused.text
    );
    assert_eq!(
        api.post(
            "rep1",
            "/api/v1/sharing-rules",
            json!({"name": "x", "object": "customers",
            "when": {"region": "East"}, "share_with": {"user": "rep1"}})
        )
        .await
        .status,
        403,
        "[{n}] rules need manage_roles"
    );

    let seen = ids(&api.all_customers("rep3", 200).await);
    for c in &east {
        assert!(seen.contains(c), "[{n}] rep3 sees rep1's East customer {c}");
    }
    let explained = api
        .get(
            "rep3",
            &format!(
                "/api/v1/access/explain?user=rep3&object=customers&id={}",
                east[0]
            ),
        )
        .await;
    assert!(
        explain_reasons(&explained.body, "read")
            .iter()
            .any(|r| r["source"] == "sharing_rule" && r["rule"] == "East to Sales Team 2"),
        "[{n}] explain names the rule: {}",
        explained.text
    );
    assert_eq!(
        api.delete("admin", &format!("/api/v1/sharing-rules/{rule}"))
            .await
            .status,
        204
    );
    assert_eq!(
        api.get("rep3", &format!("/api/v1/customers/{}", east[0]))
            .await
            .status,
        404,
        "[{n}] the rule is gone"
    );
}

async fn a_restriction_rule_narrows_every_grant_and_explain_names_it(api: &Api) {
    let n = api.name;
    let all = api.all_customers("admin", 200).await;
    let inactive = all
        .iter()
        .find(|c| c["status"] == "inactive")
        .map(id)
        .unwrap_or_else(|| panic!("[{n}] an inactive customer"));
    let path = format!("/api/v1/customers/{inactive}");
    assert_eq!(api.get("support", &path).await.status, 200, "[{n}] before");
    let created = api
        .post(
            "admin",
            "/api/v1/restriction-rules",
            json!({"name": "Support sees active customers", "object": "customers",
                   "applies_to": {"role": "Customer Support"}, "only": {"status": "active"}}),
        )
        .await;
    assert_eq!(created.status, 201, "[{n}] {}", created.text);
    let rule = created.body["id"].as_i64().unwrap();
    assert_eq!(
        api.get("support", &path).await.status,
        404,
        "[{n}] restricted"
    );
    assert!(
        !ids(&api.all_customers("support", 200).await).contains(&inactive),
        "[{n}] nor listed"
    );
    assert_eq!(
        api.get("finance", &path).await.status,
        200,
        "[{n}] others keep it"
    );
    let explained = api
        .get(
            "admin",
            &format!("/api/v1/access/explain?user=support&object=customers&id={inactive}"),
        )
        .await;
    assert_eq!(explained.status, 200, "[{n}] {}", explained.text);
    let read = explain_action(&explained.body, "read");
    assert_eq!(read["allowed"], false, "[{n}] {}", explained.text);
    assert_eq!(
        read["restricted_by"],
        json!(["Support sees active customers"]),
        "[{n}] {}",
        explained.text
    );
    assert!(
        read["denied_because"]
            .as_str()
            .is_some_and(|d| d.contains("Support sees active customers")),
        "[{n}] {}",
        explained.text
    );
    assert!(
        !explain_reasons(&explained.body, "read").is_empty(),
        "[{n}] the grant that the rule overrides is still shown"
    );
    let listed = api.get("auditor", "/api/v1/restriction-rules").await;
    assert_eq!(listed.status, 200, "[{n}] {}", listed.text);
    assert_eq!(
        api.delete("admin", &format!("/api/v1/restriction-rules/{rule}"))
            .await
            .status,
        204
    );
    assert_eq!(api.get("support", &path).await.status, 200, "[{n}] after");
}
