//! The walk through the demo, as functions of a running server so that every backend runs the
//! same checks. Each check asserts exact sets and exact statuses, and says in its messages
//! which backend, which user and which request failed.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Instant;

use reqwest::Method;
use serde_json::{json, Value};

use crate::harness::{id, ids, Api, Body, Reply, Server, Truth, CUSTOMERS, PASSWORD, REPS, USERS};

/// Runs one named check, saying on stderr when it starts and how long it took.
async fn step<T>(api: &Api, name: &str, check: impl Future<Output = T>) -> T {
    eprintln!("e2e [{}] {name} …", api.name);
    let started = Instant::now();
    let out = check.await;
    eprintln!(
        "e2e [{}] {name}: ok ({} ms)",
        api.name,
        started.elapsed().as_millis()
    );
    out
}

/// The whole walk: the read-only checks first, then the ones that change the organisation.
pub async fn everything(server: &Server) {
    let api = step_login(server).await;
    let truth = step(&api, "visibility", visibility(&api)).await;
    step(
        &api,
        "single reads agree with lists",
        single_reads_agree(&api, &truth),
    )
    .await;
    step(
        &api,
        "cross-team reads are 404",
        cross_team_reads_are_404(&api, &truth),
    )
    .await;
    step(
        &api,
        "stale version is 409",
        stale_version_is_409(&api, &truth),
    )
    .await;
    step(&api, "bad input is 422 or 400", bad_input(&api, &truth)).await;
    step(&api, "create and delete", create_and_delete(&api, &truth)).await;
    step(
        &api,
        "field security",
        crate::fields::everything(&api, &truth),
    )
    .await;
    step(&api, "unauthenticated is 401", unauthenticated_is_401(&api)).await;
    step(&api, "the admin API needs manage_users", admin_api(&api)).await;
    step(&api, "explain", explain(&api, &truth)).await;
    step(&api, "openapi", openapi(&api)).await;
    // These change the organisation: last.
    step(&api, "what-if", what_if(&api)).await;
    step(&api, "moving a rep", moving_a_rep(&api, &truth)).await;
    step(&api, "disabling a user", disabling_a_user(&api)).await;
}

async fn step_login(server: &Server) -> Api {
    let started = Instant::now();
    let api = Api::login_everyone(server).await;
    eprintln!(
        "e2e [{}] logged in {} users in {} ms",
        api.name,
        USERS.len(),
        started.elapsed().as_millis()
    );
    api
}

fn owners(items: &[Value]) -> BTreeMap<i64, String> {
    items
        .iter()
        .map(|item| {
            (
                id(item),
                item["owner"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn customer(id: i64) -> String {
    format!("/api/v1/customers/{id}")
}

/// Which users' customers each demo user sees right after seeding.
fn seeded_visibility() -> Vec<(&'static str, Option<&'static [&'static str]>)> {
    vec![
        ("rep1", Some(&["rep1"][..])),
        ("rep2", Some(&["rep2"][..])),
        ("rep3", Some(&["rep3"][..])),
        ("rep4", Some(&["rep4"][..])),
        ("supervisor1", Some(&["rep1", "rep2"][..])),
        ("supervisor2", Some(&["rep3", "rep4"][..])),
        ("manager", Some(REPS)),
        // None: every customer.
        ("admin", None),
        ("admin2", None),
        ("support", None),
        ("finance", None),
        ("auditor", Some(&[][..])),
        // portal-acme sees Acme Trading alone: checked in `visibility`.
    ]
}

/// Every user sees exactly the customers of their scope, over every page.
pub async fn visibility(api: &Api) -> Truth {
    let n = api.name;
    // The administrator sees all of them: that is the map of owners the rest is checked on.
    let all = api.all_customers("admin", 7).await;
    let truth = Truth {
        owner_of: owners(&all),
    };
    assert_eq!(
        truth.owner_of.len(),
        CUSTOMERS,
        "[{n}] admin sees {} customers, not all {CUSTOMERS}",
        truth.owner_of.len()
    );
    for rep in REPS {
        assert_eq!(
            truth.owned_by(&[rep]).len(),
            CUSTOMERS / REPS.len(),
            "[{n}] the demo spreads the customers evenly over the reps; {rep} owns a different share"
        );
    }
    assert_eq!(
        truth.owned_by(REPS).len(),
        CUSTOMERS,
        "[{n}] every seeded customer is owned by a rep: {:?}",
        truth.owner_of.values().collect::<BTreeSet<_>>()
    );
    let acme: Vec<&Value> = all.iter().filter(|c| c["name"] == "Acme Trading").collect();
    assert_eq!(acme.len(), 1, "[{n}] exactly one Acme Trading");
    assert_eq!(acme[0]["owner"], "rep1", "[{n}] Acme Trading is rep1's");
    let portal = api.all_customers("portal-acme", 50).await;
    assert_eq!(
        ids(&portal),
        [acme[0]["id"].as_i64().expect("an id")]
            .into_iter()
            .collect(),
        "[{n}] portal-acme sees its own account, Acme Trading, and nothing else"
    );
    for item in &all {
        for key in ["id", "name", "owner", "version"] {
            assert!(
                item.get(key).is_some_and(|v| !v.is_null()),
                "[{n}] a customer without `{key}`: {item}"
            );
        }
    }
    // The same list in one page.
    assert_eq!(
        ids(&api.all_customers("admin", 200).await),
        truth.all(),
        "[{n}] admin: pages of 200 and pages of 7 differ"
    );

    for (user, owners_seen) in seeded_visibility() {
        let expected = match owners_seen {
            Some(owners_seen) => truth.owned_by(owners_seen),
            None => truth.all(),
        };
        for limit in [50, 13] {
            let items = api.all_customers(user, limit).await;
            let seen = ids(&items);
            assert_eq!(
                items.len(),
                seen.len(),
                "[{n}] {user} (limit {limit}): a customer listed twice"
            );
            let extra: Vec<_> = seen.difference(&expected).collect();
            let missing: Vec<_> = expected.difference(&seen).collect();
            assert!(
                extra.is_empty() && missing.is_empty(),
                "[{n}] {user} (limit {limit}) should see the customers of {owners_seen:?}: \
                 {} extra {extra:?}, {} missing {missing:?}",
                extra.len(),
                missing.len()
            );
            for item in &items {
                assert_eq!(
                    Some(item["owner"].as_str().unwrap_or_default()),
                    truth.owner_of.get(&id(item)).map(String::as_str),
                    "[{n}] {user}: the owner of customer {} differs from the admin's view",
                    id(item)
                );
                if let Some([only]) = owners_seen {
                    assert_eq!(item["owner"], *only, "[{n}] {user}: {item}");
                }
            }
        }
    }
    truth
}

/// A single read answers 200 exactly for the customers the user's list holds, 404 otherwise.
pub async fn single_reads_agree(api: &Api, truth: &Truth) {
    let n = api.name;
    let sample: Vec<i64> = REPS.iter().flat_map(|rep| truth.some_of(rep, 2)).collect();
    for (user, owners_seen) in seeded_visibility() {
        for &customer_id in &sample {
            let visible = match owners_seen {
                Some(owners_seen) => owners_seen.contains(&truth.owner_of[&customer_id].as_str()),
                None => true,
            };
            let reply = api.get(user, &customer(customer_id)).await;
            let expected = if visible { 200 } else { 404 };
            assert_eq!(
                reply.status, expected,
                "[{n}] {user} reading customer {customer_id} of {}: {}",
                truth.owner_of[&customer_id], reply.text
            );
            if visible {
                assert_eq!(id(&reply.body), customer_id, "[{n}] {user}: {}", reply.text);
                assert_eq!(
                    reply.body["owner"], truth.owner_of[&customer_id],
                    "[{n}] {user}: {}",
                    reply.text
                );
            }
        }
    }
}

/// Reading, changing or deleting another team's customer is answered exactly like a missing id.
pub async fn cross_team_reads_are_404(api: &Api, truth: &Truth) {
    let n = api.name;
    let rep1_customer = truth.some_of("rep1", 1)[0];
    let missing = 999_999;
    assert!(!truth.owner_of.contains_key(&missing));
    for user in ["rep3", "supervisor2", "rep2"] {
        let absent = api.get(user, &customer(missing)).await;
        assert_eq!(
            absent.status, 404,
            "[{n}] {user} reading a missing id: {}",
            absent.text
        );
        assert_eq!(absent.body["error"], "not_found", "[{n}] {}", absent.text);
        let hidden = api.get(user, &customer(rep1_customer)).await;
        assert_eq!(
            (hidden.status, &hidden.body),
            (absent.status, &absent.body),
            "[{n}] {user} reading rep1's customer {rep1_customer} must look exactly like a missing id"
        );
        let patched = api
            .patch(
                user,
                &customer(rep1_customer),
                json!({"phone": "+1 555", "version": 1}),
            )
            .await;
        assert_eq!(
            (patched.status, &patched.body),
            (absent.status, &absent.body),
            "[{n}] {user} patching rep1's customer {rep1_customer}"
        );
        let deleted = api.delete(user, &customer(rep1_customer)).await;
        assert_eq!(
            (deleted.status, &deleted.body),
            (absent.status, &absent.body),
            "[{n}] {user} deleting rep1's customer {rep1_customer}"
        );
    }
    // Not a path that is not an id either.
    let odd = api.get("rep3", "/api/v1/customers/not-a-number").await;
    assert_eq!(odd.status, 404, "[{n}] a non-numeric id: {}", odd.text);
    // And the customer is untouched.
    let still = api.get("rep1", &customer(rep1_customer)).await;
    assert_eq!(
        still.status, 200,
        "[{n}] rep1's customer after the attempts: {}",
        still.text
    );
    assert_eq!(
        still.body["version"], 1,
        "[{n}] rep1's customer was changed: {}",
        still.text
    );
}

/// A patch with the version read wins once; the same version again is 409 and changes nothing.
pub async fn stale_version_is_409(api: &Api, truth: &Truth) {
    let n = api.name;
    let target = truth.some_of("rep1", 3)[2];
    let path = customer(target);
    let read = api.get("rep1", &path).await;
    assert_eq!(
        read.status, 200,
        "[{n}] rep1 reading {target}: {}",
        read.text
    );
    let version = read.body["version"].as_i64().expect("a version");

    let first = api
        .patch(
            "rep1",
            &path,
            json!({"phone": "+86 21 0000 0001", "version": version}),
        )
        .await;
    assert_eq!(
        first.status, 200,
        "[{n}] the first patch of {target}: {}",
        first.text
    );
    assert_eq!(first.body["version"], version + 1, "[{n}] {}", first.text);
    assert_eq!(
        first.body["phone"], "+86 21 0000 0001",
        "[{n}] {}",
        first.text
    );
    assert_eq!(
        first.body["name"], read.body["name"],
        "[{n}] an unnamed field changed"
    );
    assert_eq!(first.body["owner"], "rep1", "[{n}] {}", first.text);

    let stale = api
        .patch(
            "rep1",
            &path,
            json!({"phone": "+86 21 0000 0002", "version": version}),
        )
        .await;
    assert_eq!(
        stale.status, 409,
        "[{n}] the second patch with the old version: {}",
        stale.text
    );
    assert_eq!(stale.body["error"], "conflict", "[{n}] {}", stale.text);

    // A stale delete is refused the same way (by the administrator, whose deletes need no
    // approval).
    let stale_delete = api
        .delete("admin", &format!("{path}?version={version}"))
        .await;
    assert_eq!(
        stale_delete.status, 409,
        "[{n}] a delete at the old version: {}",
        stale_delete.text
    );

    let after = api.get("rep1", &path).await;
    assert_eq!(
        after.status, 200,
        "[{n}] {target} after the stale writes: {}",
        after.text
    );
    assert_eq!(
        after.body, first.body,
        "[{n}] the refused writes changed customer {target}"
    );
}

fn assert_invalid(n: &str, what: &str, reply: &Reply, field: &str) {
    assert_eq!(reply.status, 422, "[{n}] {what}: {}", reply.text);
    assert_eq!(
        reply.body["error"], "invalid",
        "[{n}] {what}: {}",
        reply.text
    );
    assert_eq!(
        reply.field(),
        field,
        "[{n}] {what} names the wrong field: {}",
        reply.text
    );
    assert!(
        reply.body["message"]
            .as_str()
            .is_some_and(|m| m.contains(field)),
        "[{n}] {what}: the message does not name `{field}`: {}",
        reply.text
    );
}

/// Bad input: 422 naming the field, 400 for broken JSON; nothing changes.
pub async fn bad_input(api: &Api, truth: &Truth) {
    let n = api.name;
    let rep1_before = ids(&api.all_customers("rep1", 200).await);
    let target = truth.some_of("rep1", 4)[3];
    let path = customer(target);
    let read = api.get("rep1", &path).await;
    assert_eq!(
        read.status, 200,
        "[{n}] rep1 reading {target}: {}",
        read.text
    );
    let version = read.body["version"].clone();

    let creates = [
        (json!({"name": ""}), "name"),
        (json!({"name": "   "}), "name"),
        (json!({}), "name"),
        // (Fields rep1 may write: a field rep1 may not write is 403, see e2e/fields.rs.)
        (json!({"name": "Ok Ltd", "phone": 12345}), "phone"),
        (json!({"name": "x".repeat(201)}), "name"),
        (json!({"name": "Ok Ltd", "colour": "red"}), "colour"),
        (
            json!({"name": "Ok Ltd", "email": "not an address"}),
            "email",
        ),
        (json!({"name": "Ok Ltd", "status": "asleep"}), "status"),
        (json!({"name": "Ok Ltd", "version": "x"}), "version"),
        (json!({"name": "Ok Ltd", "id": 5}), "id"),
        (json!({"name": "Ok Ltd", "owner": "nobody"}), "owner"),
        (json!(["name"]), "body"),
    ];
    for (body, field) in creates {
        let reply = api.post("rep1", "/api/v1/customers", body.clone()).await;
        assert_invalid(n, &format!("POST {body}"), &reply, field);
    }
    let patches = [
        (json!({"name": "", "version": version}), "name"),
        (json!({"phone": true, "version": version}), "phone"),
        (json!({"colour": "red", "version": version}), "colour"),
        (json!({"version": "x"}), "version"),
        (json!({"name": "No Version Ltd"}), "version"),
        (
            json!({"updated_at": "2020-01-01T00:00:00Z", "version": version}),
            "updated_at",
        ),
    ];
    for (body, field) in patches {
        let reply = api.patch("rep1", &path, body.clone()).await;
        assert_invalid(n, &format!("PATCH {body}"), &reply, field);
    }
    for query in [
        "limit=0",
        "limit=abc",
        "limit=201",
        "limit=-1",
        "cursor=abc",
    ] {
        let field = query.split('=').next().unwrap_or_default();
        let reply = api.get("rep1", &format!("/api/v1/customers?{query}")).await;
        assert_invalid(n, &format!("GET /api/v1/customers?{query}"), &reply, field);
    }
    for (method, path) in [
        (Method::POST, "/api/v1/customers".to_owned()),
        (Method::PATCH, path.clone()),
    ] {
        for raw in [r#"{"name": "#, "not json", r#"{"name": "A" "#] {
            let reply = api
                .request(
                    method.clone(),
                    &path,
                    Some(api.token("rep1")),
                    Body::Raw(raw),
                )
                .await;
            assert_eq!(
                reply.status, 400,
                "[{n}] {method} {path} with {raw:?}: {}",
                reply.text
            );
            assert_eq!(reply.body["error"], "bad_request", "[{n}] {}", reply.text);
        }
    }
    let after = api.get("rep1", &path).await;
    assert_eq!(
        after.body, read.body,
        "[{n}] bad input changed customer {target}"
    );
    assert_eq!(
        ids(&api.all_customers("rep1", 200).await),
        rep1_before,
        "[{n}] bad input created or removed customers"
    );
}

/// A body with only a name creates a customer of the caller; deleting follows the rules.
pub async fn create_and_delete(api: &Api, truth: &Truth) {
    let n = api.name;
    let created = api
        .post(
            "rep1",
            "/api/v1/customers",
            json!({"name": "E2E Created Ltd"}),
        )
        .await;
    assert_eq!(
        created.status, 201,
        "[{n}] rep1 creating a customer: {}",
        created.text
    );
    let new_id = id(&created.body);
    assert!(
        !truth.owner_of.contains_key(&new_id),
        "[{n}] a reused id {new_id}"
    );
    assert_eq!(created.body["owner"], "rep1", "[{n}] {}", created.text);
    assert_eq!(created.body["version"], 1, "[{n}] {}", created.text);
    assert_eq!(
        created.body["name"], "E2E Created Ltd",
        "[{n}] {}",
        created.text
    );
    let path = customer(new_id);

    let read = api.get("rep1", &path).await;
    assert_eq!(
        read.status, 200,
        "[{n}] rep1 reading the new customer: {}",
        read.text
    );
    assert_eq!(
        read.body, created.body,
        "[{n}] the created record and the read differ"
    );
    assert!(
        ids(&api.all_customers("rep1", 200).await).contains(&new_id),
        "[{n}] the new customer is not in rep1's list"
    );
    for (user, status) in [
        ("supervisor1", 200),
        ("manager", 200),
        ("admin", 200),
        ("rep2", 404),
        ("supervisor2", 404),
    ] {
        let reply = api.get(user, &path).await;
        assert_eq!(
            reply.status, status,
            "[{n}] {user} reading rep1's new customer: {}",
            reply.text
        );
    }

    // Another rep: not visible, so 404; support: visible but no delete grant, so 403.
    let by_rep3 = api.delete("rep3", &path).await;
    assert_eq!(
        by_rep3.status, 404,
        "[{n}] rep3 deleting rep1's customer: {}",
        by_rep3.text
    );
    let seeded = truth.some_of("rep1", 5)[4];
    let by_rep2 = api.delete("rep2", &customer(seeded)).await;
    assert_eq!(
        by_rep2.status, 404,
        "[{n}] rep2 deleting rep1's customer {seeded}: {}",
        by_rep2.text
    );
    let by_support = api.delete("support", &path).await;
    assert_eq!(
        by_support.status, 403,
        "[{n}] support deleting a customer: {}",
        by_support.text
    );
    assert_eq!(
        by_support.body["error"], "forbidden",
        "[{n}] {}",
        by_support.text
    );
    for still in [new_id, seeded] {
        let reply = api.get("admin", &customer(still)).await;
        assert_eq!(
            reply.status, 200,
            "[{n}] customer {still} after refused deletes: {}",
            reply.text
        );
    }

    // A rep's delete waits for their superior (the demo's approval policy): 202, still there
    // until supervisor1 approves.
    let held = api.delete("rep1", &path).await;
    assert_eq!(
        held.status, 202,
        "[{n}] rep1 deleting their own customer: {}",
        held.text
    );
    let request = held.body["approval"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("[{n}] a 202 without the approval's id: {}", held.text));
    assert_eq!(
        api.get("rep1", &path).await.status,
        200,
        "[{n}] held, not deleted"
    );
    let approved = api
        .post(
            "supervisor1",
            &format!("/api/v1/approvals/{request}/approve"),
            json!({}),
        )
        .await;
    assert_eq!(approved.body["state"], "applied", "[{n}] {}", approved.text);
    for user in ["rep1", "admin"] {
        let gone = api.get(user, &path).await;
        assert_eq!(
            gone.status, 404,
            "[{n}] {user} reading a deleted customer: {}",
            gone.text
        );
    }
    let again = api.delete("rep1", &path).await;
    assert_eq!(again.status, 404, "[{n}] deleting twice: {}", again.text);
    // Nobody's policy catches the administrator's delete: 204 at once.
    let created = api
        .post(
            "admin",
            "/api/v1/customers",
            json!({"name": "E2E Deleted At Once"}),
        )
        .await;
    let at_once = api.delete("admin", &customer(id(&created.body))).await;
    assert_eq!(at_once.status, 204, "[{n}] admin deletes: {}", at_once.text);
    assert!(
        at_once.text.is_empty(),
        "[{n}] a 204 with a body: {}",
        at_once.text
    );
}

/// No token, a bad token, a wrong password and an unknown user: the same 401.
pub async fn unauthenticated_is_401(api: &Api) {
    let n = api.name;
    let no_token = api
        .request(Method::GET, "/api/v1/customers", None, Body::None)
        .await;
    assert_eq!(no_token.status, 401, "[{n}] no token: {}", no_token.text);
    assert_eq!(
        no_token.body["error"], "unauthenticated",
        "[{n}] {}",
        no_token.text
    );
    assert_eq!(
        no_token.www_authenticate.as_deref(),
        Some("Bearer"),
        "[{n}] no token"
    );
    let tries = [
        (
            "a bad token",
            api.request(
                Method::GET,
                "/api/v1/customers",
                Some("not-a-token"),
                Body::None,
            )
            .await,
        ),
        (
            "a bad token on a single read",
            api.request(
                Method::GET,
                "/api/v1/customers/1",
                Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
                Body::None,
            )
            .await,
        ),
        (
            "a bad token on the admin API",
            api.request(Method::GET, "/api/v1/users", Some("nope"), Body::None)
                .await,
        ),
        (
            "no token on the admin API",
            api.request(Method::GET, "/api/v1/users", None, Body::None)
                .await,
        ),
        (
            "a wrong password",
            api.login("rep1", "wrong-password-123").await,
        ),
        ("an unknown user", api.login("nobody", PASSWORD).await),
        ("an empty password", api.login("admin", "").await),
    ];
    for (what, reply) in tries {
        assert_eq!(
            (reply.status, &reply.body),
            (no_token.status, &no_token.body),
            "[{n}] {what} must get the same 401 as no token"
        );
    }
    let logged_in = api.login("rep1", PASSWORD).await;
    assert_eq!(
        logged_in.status, 200,
        "[{n}] rep1 logging in: {}",
        logged_in.text
    );
}

/// The admin API: 403 for everyone but the administrator.
pub async fn admin_api(api: &Api) {
    let n = api.name;
    // The patch restates rep3's manager: harmless even if it were wrongly allowed.
    let no_op = json!({"manager": "supervisor2"});
    let role = |name: &str| json!({"name": name, "grants": [{"object": "customers", "action": "read", "scope": "all"}]});
    for user in USERS.iter().filter(|u| !["admin", "admin2"].contains(*u)) {
        let list = api.get(user, "/api/v1/users").await;
        assert_eq!(
            list.status, 403,
            "[{n}] {user}: GET /api/v1/users: {}",
            list.text
        );
        assert_eq!(list.body["error"], "forbidden", "[{n}] {}", list.text);
        let patch = api.patch(user, "/api/v1/users/rep3", no_op.clone()).await;
        assert_eq!(
            patch.status, 403,
            "[{n}] {user}: PATCH /api/v1/users/rep3: {}",
            patch.text
        );
        let create = api
            .post(user, "/api/v1/roles", role(&format!("Sneaky {user}")))
            .await;
        assert_eq!(
            create.status, 403,
            "[{n}] {user}: POST /api/v1/roles: {}",
            create.text
        );
    }
    let list = api.get("admin", "/api/v1/users").await;
    assert_eq!(
        list.status, 200,
        "[{n}] admin: GET /api/v1/users: {}",
        list.text
    );
    let mut listed: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("[{n}] no items: {}", list.text))
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    listed.sort_unstable();
    let mut demo = USERS.to_vec();
    demo.sort_unstable();
    assert_eq!(listed, demo, "[{n}] the users admin lists");
    let patch = api.patch("admin", "/api/v1/users/rep3", no_op).await;
    assert_eq!(
        patch.status, 200,
        "[{n}] admin: PATCH /api/v1/users/rep3: {}",
        patch.text
    );
    assert_eq!(patch.body["manager"], "supervisor2", "[{n}] {}", patch.text);
    let create = api.post("admin", "/api/v1/roles", role("E2E Reader")).await;
    assert_eq!(
        create.status, 201,
        "[{n}] admin: POST /api/v1/roles: {}",
        create.text
    );
    assert_eq!(create.body["name"], "E2E Reader", "[{n}] {}", create.text);
    // Nothing of the refused attempts exists.
    let roles = api.get("admin", "/api/v1/roles").await;
    assert_eq!(
        roles.status, 200,
        "[{n}] admin: GET /api/v1/roles: {}",
        roles.text
    );
    assert!(
        !roles.text.contains("Sneaky"),
        "[{n}] a refused role creation left a role: {}",
        roles.text
    );
}

/// The read reasons of an explain answer.
fn read_action(n: &str, reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "[{n}] explain: {}", reply.text);
    reply.body["actions"]
        .as_array()
        .and_then(|actions| actions.iter().find(|a| a["action"] == "read"))
        .unwrap_or_else(|| panic!("[{n}] explain without a read action: {}", reply.text))
        .clone()
}

/// Explain names the role, the scope and the reporting path.
pub async fn explain(api: &Api, truth: &Truth) {
    let n = api.name;
    let target = truth.some_of("rep1", 1)[0];
    let url =
        |user: &str| format!("/api/v1/access/explain?user={user}&object=customers&id={target}");

    let reply = api.get("admin", &url("supervisor1")).await;
    assert_eq!(reply.body["owner"], "rep1", "[{n}] {}", reply.text);
    let read = read_action(n, &reply);
    assert_eq!(
        read["allowed"], true,
        "[{n}] supervisor1 may read {target}: {read}"
    );
    let reasons = read["reasons"].as_array().cloned().unwrap_or_default();
    assert_eq!(reasons.len(), 1, "[{n}] one reason for supervisor1: {read}");
    assert_eq!(reasons[0]["role"], "Sales Supervisor", "[{n}] {read}");
    assert_eq!(reasons[0]["scope"], "subordinates", "[{n}] {read}");
    assert_eq!(
        reasons[0]["reporting_path"],
        json!(["supervisor1", "rep1"]),
        "[{n}] {read}"
    );

    let reply = api.get("admin", &url("rep3")).await;
    let read = read_action(n, &reply);
    assert_eq!(
        read["allowed"], false,
        "[{n}] rep3 may not read {target}: {read}"
    );
    assert_eq!(read["reasons"], json!([]), "[{n}] {read}");
    assert!(
        read["denied_because"].is_string(),
        "[{n}] a denial without a reason: {read}"
    );

    // Anyone may ask about themselves, nobody without the right about someone else.
    let reply = api.get("rep1", &url("rep1")).await;
    let read = read_action(n, &reply);
    assert_eq!(read["allowed"], true, "[{n}] rep1 about themselves: {read}");
    assert_eq!(read["reasons"][0]["role"], "Sales Rep", "[{n}] {read}");
    assert_eq!(read["reasons"][0]["scope"], "own", "[{n}] {read}");
    let reply = api.get("rep1", &url("supervisor1")).await;
    assert_eq!(
        reply.status, 403,
        "[{n}] rep1 asking about supervisor1: {}",
        reply.text
    );
    // Explain does not reveal a record the caller cannot read.
    let reply = api.get("rep3", &url("rep3")).await;
    assert_eq!(
        reply.status, 404,
        "[{n}] rep3 explaining rep1's customer: {}",
        reply.text
    );
}

/// The OpenAPI document is JSON and names the main paths.
pub async fn openapi(api: &Api) {
    let n = api.name;
    let reply = api
        .request(Method::GET, "/api/v1/openapi.json", None, Body::None)
        .await;
    assert_eq!(
        reply.status, 200,
        "[{n}] GET /api/v1/openapi.json: {}",
        reply.text
    );
    let document: Value = serde_json::from_str(&reply.text)
        .unwrap_or_else(|e| panic!("[{n}] the OpenAPI document is not JSON: {e}"));
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with('3')),
        "[{n}] no `openapi` version: {}",
        document["openapi"]
    );
    let paths = document["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("[{n}] the OpenAPI document has no paths"));
    for (path, methods) in [
        ("/api/v1/login", &["post"][..]),
        ("/api/v1/customers", &["get", "post"][..]),
        ("/api/v1/customers/{id}", &["get", "patch", "delete"][..]),
        ("/api/v1/users/{username}", &["get", "patch"][..]),
        ("/api/v1/access/explain", &["get"][..]),
    ] {
        let item = paths.get(path).unwrap_or_else(|| {
            panic!(
                "[{n}] the OpenAPI document lacks {path}; it has {:?}",
                paths.keys().collect::<Vec<_>>()
            )
        });
        for method in methods {
            assert!(
                item.get(*method).is_some(),
                "[{n}] the OpenAPI document lacks {method} {path}: {item}"
            );
        }
    }
    // Operation ids are unique, as OpenAPI requires.
    let mut operation_ids: Vec<&str> = paths
        .values()
        .filter_map(Value::as_object)
        .flat_map(|item| item.values())
        .filter_map(|operation| operation["operationId"].as_str())
        .collect();
    let count = operation_ids.len();
    operation_ids.sort_unstable();
    operation_ids.dedup();
    assert_eq!(
        operation_ids.len(),
        count,
        "[{n}] repeated operationIds in the OpenAPI document"
    );
}

/// The customers of `owner` as admin sees them: id → (version, updated_at).
async fn stamps(api: &Api, owner: &str) -> BTreeMap<i64, (Value, Value)> {
    api.all_customers("admin", 200)
        .await
        .iter()
        .filter(|c| c["owner"] == owner)
        .map(|c| (id(c), (c["version"].clone(), c["updated_at"].clone())))
        .collect()
}

async fn assert_sees(api: &Api, user: &str, expected: &BTreeSet<i64>, why: &str) {
    let seen = ids(&api.all_customers(user, 50).await);
    assert!(
        &seen == expected,
        "[{}] {why}: {user} sees {} customers, {} expected; extra {:?}, missing {:?}",
        api.name,
        seen.len(),
        expected.len(),
        seen.difference(expected).collect::<Vec<_>>(),
        expected.difference(&seen).collect::<Vec<_>>()
    );
}

/// Moving rep3 under supervisor1 holds on the very next request and rewrites no customer.
/// What-if a rep moved to another supervisor: exact counts for the supervisors, nobody else
/// touched; then the same payload applies it.
pub async fn what_if(api: &Api) {
    let n = api.name;
    let rep3 = api.all_customers("rep3", 200).await.len() as u64;
    let change = json!({"move_user": {"user": "rep3", "manager": "supervisor1"}});
    let refused = api
        .post("rep1", "/api/v1/access/whatif", change.clone())
        .await;
    assert_eq!(refused.status, 403, "[{n}] {}", refused.text);
    let reply = api
        .post("admin", "/api/v1/access/whatif", change.clone())
        .await;
    assert_eq!(reply.status, 200, "[{n}] {}", reply.text);
    let changes = reply.body["changes"].as_array().unwrap();
    let supervisor_actions = [
        "read", "create", "update", "delete", "export", "share", "approve",
    ];
    for (user, gained, lost) in [("supervisor1", rep3, 0), ("supervisor2", 0, rep3)] {
        for action in supervisor_actions {
            let found = changes
                .iter()
                .find(|c| c["user"] == user && c["action"] == action)
                .unwrap_or_else(|| panic!("[{n}] no {user} {action}: {}", reply.text));
            assert_eq!(found["gained"], gained, "[{n}] {user} {action}: {found}");
            assert_eq!(found["lost"], lost, "[{n}] {user} {action}: {found}");
            let samples = if gained > 0 {
                &found["gained_samples"]
            } else {
                &found["lost_samples"]
            };
            assert!(!samples.as_array().unwrap().is_empty(), "[{n}] {found}");
        }
    }
    assert!(
        changes
            .iter()
            .all(|c| c["user"] == "supervisor1" || c["user"] == "supervisor2"),
        "[{n}] nobody else's access changes: {}",
        reply.text
    );
    // Nothing was applied.
    let sample = changes[0]["gained_samples"][0]
        .as_i64()
        .or(changes[0]["lost_samples"][0].as_i64())
        .unwrap();
    assert_eq!(
        api.get("supervisor1", &customer(sample)).await.status,
        404,
        "[{n}] not applied"
    );
    // A role's grants: a rep given read on all customers gains every customer not theirs.
    let all = api.all_customers("admin", 200).await.len() as u64;
    let rep1 = api.all_customers("rep1", 200).await.len() as u64;
    let roles = api.get("admin", "/api/v1/roles").await;
    let rep_role = roles.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "Sales Rep")
        .unwrap()
        .clone();
    let mut grants = rep_role["grants"].as_array().unwrap().clone();
    grants.push(json!({"object": "customers", "action": "read", "scope": "all"}));
    let reply = api
        .post(
            "admin",
            "/api/v1/access/whatif",
            json!({"update_role": {
            "id": rep_role["id"], "name": "Sales Rep", "grants": grants,
            "fields": rep_role["fields"], "permissions": rep_role["permissions"]}}),
        )
        .await;
    assert_eq!(reply.status, 200, "[{n}] {}", reply.text);
    let read = reply.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user"] == "rep1" && c["action"] == "read")
        .cloned();
    assert_eq!(
        read.map(|c| c["gained"].clone()),
        Some(json!(all - rep1)),
        "[{n}] {}",
        reply.text
    );
    // Apply the move with the same payload.
    let applied = api
        .post("admin", "/api/v1/access/whatif/apply", change)
        .await;
    assert_eq!(applied.status, 204, "[{n}] {}", applied.text);
    assert_eq!(
        api.get("supervisor1", &customer(sample)).await.status,
        200,
        "[{n}] applied"
    );
}

pub async fn moving_a_rep(api: &Api, truth: &Truth) {
    let n = api.name;
    let before = stamps(api, "rep3").await;
    assert_eq!(
        before.keys().copied().collect::<BTreeSet<_>>(),
        truth.owned_by(&["rep3"]),
        "[{n}] rep3's customers before the move"
    );
    let rep3_customer = truth.some_of("rep3", 1)[0];

    let moved = api
        .patch(
            "admin",
            "/api/v1/users/rep3",
            json!({"manager": "supervisor1"}),
        )
        .await;
    assert_eq!(
        moved.status, 200,
        "[{n}] moving rep3 under supervisor1: {}",
        moved.text
    );
    assert_eq!(moved.body["manager"], "supervisor1", "[{n}] {}", moved.text);
    // The very next request.
    let reply = api.get("supervisor1", &customer(rep3_customer)).await;
    assert_eq!(
        reply.status, 200,
        "[{n}] supervisor1 reading rep3's customer after the move: {}",
        reply.text
    );
    let reply = api.get("supervisor2", &customer(rep3_customer)).await;
    assert_eq!(
        reply.status, 404,
        "[{n}] supervisor2 reading rep3's customer after the move: {}",
        reply.text
    );
    let after_move = "after rep3 moved under supervisor1";
    assert_sees(
        api,
        "supervisor1",
        &truth.owned_by(&["rep1", "rep2", "rep3"]),
        after_move,
    )
    .await;
    assert_sees(api, "supervisor2", &truth.owned_by(&["rep4"]), after_move).await;
    assert_sees(api, "manager", &truth.owned_by(REPS), after_move).await;
    assert_sees(api, "rep3", &truth.owned_by(&["rep3"]), after_move).await;
    let why = api
        .get(
            "admin",
            &format!("/api/v1/access/explain?user=supervisor1&object=customers&id={rep3_customer}"),
        )
        .await;
    let read = read_action(n, &why);
    assert_eq!(
        read["reasons"][0]["reporting_path"],
        json!(["supervisor1", "rep3"]),
        "[{n}] {read}"
    );
    assert_eq!(
        stamps(api, "rep3").await,
        before,
        "[{n}] moving rep3 rewrote customer rows (version or updated_at changed)"
    );

    let back = api
        .patch(
            "admin",
            "/api/v1/users/rep3",
            json!({"manager": "supervisor2"}),
        )
        .await;
    assert_eq!(back.status, 200, "[{n}] moving rep3 back: {}", back.text);
    let after_back = "after rep3 moved back under supervisor2";
    assert_sees(
        api,
        "supervisor1",
        &truth.owned_by(&["rep1", "rep2"]),
        after_back,
    )
    .await;
    assert_sees(
        api,
        "supervisor2",
        &truth.owned_by(&["rep3", "rep4"]),
        after_back,
    )
    .await;
    assert_eq!(
        stamps(api, "rep3").await,
        before,
        "[{n}] moving rep3 back rewrote customer rows"
    );
}

/// A disabled user's token dies on the next request and their login fails like any other.
pub async fn disabling_a_user(api: &Api) {
    let n = api.name;
    let reply = api.get("rep4", "/api/v1/customers?limit=1").await;
    assert_eq!(
        reply.status, 200,
        "[{n}] rep4 before being disabled: {}",
        reply.text
    );
    let unauthenticated = api
        .request(Method::GET, "/api/v1/customers", None, Body::None)
        .await;

    let disabled = api
        .patch("admin", "/api/v1/users/rep4", json!({"disabled": true}))
        .await;
    assert_eq!(
        disabled.status, 200,
        "[{n}] disabling rep4: {}",
        disabled.text
    );
    assert_eq!(disabled.body["disabled"], true, "[{n}] {}", disabled.text);
    let reply = api.get("rep4", "/api/v1/customers?limit=1").await;
    assert_eq!(
        (reply.status, &reply.body),
        (401, &unauthenticated.body),
        "[{n}] rep4's token after rep4 was disabled"
    );
    let login = api.login("rep4", PASSWORD).await;
    assert_eq!(
        (login.status, &login.body),
        (401, &unauthenticated.body),
        "[{n}] a disabled user logging in"
    );
    // Others are unaffected.
    let reply = api.get("rep3", "/api/v1/customers?limit=1").await;
    assert_eq!(
        reply.status, 200,
        "[{n}] rep3 after rep4 was disabled: {}",
        reply.text
    );

    // Enabled again: the old session stays dead, a new login works.
    let enabled = api
        .patch("admin", "/api/v1/users/rep4", json!({"disabled": false}))
        .await;
    assert_eq!(enabled.status, 200, "[{n}] enabling rep4: {}", enabled.text);
    let reply = api.get("rep4", "/api/v1/customers?limit=1").await;
    assert_eq!(
        reply.status, 401,
        "[{n}] rep4's old token after re-enabling: {}",
        reply.text
    );
    let login = api.login("rep4", PASSWORD).await;
    assert_eq!(
        login.status, 200,
        "[{n}] rep4 logging in again: {}",
        login.text
    );
    let token = login.body["token"].as_str().expect("a token");
    let reply = api
        .request(
            Method::GET,
            "/api/v1/customers?limit=1",
            Some(token),
            Body::None,
        )
        .await;
    assert_eq!(reply.status, 200, "[{n}] rep4's new token: {}", reply.text);

    // The administrator cannot disable themselves.
    let own = api
        .patch("admin", "/api/v1/users/admin", json!({"disabled": true}))
        .await;
    assert_eq!(
        own.status, 422,
        "[{n}] admin disabling themselves: {}",
        own.text
    );
}
