//! Two nodes on one PostgreSQL database (the new-enemy problem): `warden demo` seeds and
//! serves it as node A, `warden serve` on the same database is node B. Every revocation
//! committed through A — a user disabled, a role taken away, a share taken back, a session
//! ended — is refused by B on its very next request, B having just served the same request
//! (so its snapshot was warm). Sessions made on one node hold on the other, and login
//! failures on both nodes count towards one lockout.

use reqwest::Method;
use serde_json::json;

use crate::harness::{id, Api, Body, Reply, Server, PASSWORD};

fn expect(what: &str, reply: &Reply, status: u16) {
    assert_eq!(reply.status, status, "[two nodes] {what}: {}", reply.text);
}

pub async fn revocations(node_a: &Server) {
    let node_b = node_a.second_node().await;
    // Every token is made on A; B honours them (sessions live in the database).
    let a = Api::login_everyone(node_a).await;
    let b = a.on(&node_b);
    expect(
        "rep1 on B with a session made on A",
        &b.get("rep1", "/api/v1/customers?limit=5").await,
        200,
    );

    // A user disabled through A.
    expect(
        "rep3 on B before",
        &b.get("rep3", "/api/v1/customers?limit=5").await,
        200,
    );
    expect(
        "admin disables rep3 on A",
        &a.patch("admin", "/api/v1/users/rep3", json!({"disabled": true}))
            .await,
        200,
    );
    expect(
        "rep3 on B right after",
        &b.get("rep3", "/api/v1/customers?limit=5").await,
        401,
    );

    // A role taken away through A: supervisor1 reads rep1's customer by the team grant of
    // "Sales Supervisor"; as a mere "Sales Rep" (owning nothing) not any more.
    let customer = id(&a.all_customers("rep1", 200).await[0]);
    let path = format!("/api/v1/customers/{customer}");
    expect(
        "supervisor1 on B before",
        &b.get("supervisor1", &path).await,
        200,
    );
    expect(
        "admin takes supervisor1's role on A",
        &a.patch(
            "admin",
            "/api/v1/users/supervisor1",
            json!({"roles": ["Sales Rep"]}),
        )
        .await,
        200,
    );
    expect(
        "supervisor1 on B right after",
        &b.get("supervisor1", &path).await,
        404,
    );

    // A share taken back through A.
    let other = a.all_customers("rep1", 200).await;
    let shared = id(&other[1]);
    let shared_path = format!("/api/v1/customers/{shared}");
    expect(
        "rep4 on B before the share",
        &b.get("rep4", &shared_path).await,
        404,
    );
    let share = a
        .post(
            "rep1",
            &format!("{shared_path}/shares"),
            json!({"with": {"user": "rep4"}, "access": "read"}),
        )
        .await;
    expect("rep1 shares with rep4 on A", &share, 201);
    expect(
        "rep4 on B with the share",
        &b.get("rep4", &shared_path).await,
        200,
    );
    let share_id = share.body["id"].as_i64().expect("a share id");
    expect(
        "rep1 takes the share back on A",
        &a.delete("rep1", &format!("{shared_path}/shares/{share_id}"))
            .await,
        204,
    );
    expect(
        "rep4 on B right after",
        &b.get("rep4", &shared_path).await,
        404,
    );

    // A session ended on A.
    let login = a.login("rep2", PASSWORD).await;
    expect("rep2 logs in on A", &login, 200);
    let token = login.body["token"].as_str().expect("a token").to_owned();
    let before = b
        .request(Method::GET, "/api/v1/me", Some(&token), Body::None)
        .await;
    expect("rep2's new session on B", &before, 200);
    let logout = a
        .request(Method::POST, "/api/v1/logout", Some(&token), Body::None)
        .await;
    assert!(
        logout.status == 204 || logout.status == 200,
        "[two nodes] logout on A: {} {}",
        logout.status,
        logout.text
    );
    expect(
        "rep2's ended session on B",
        &b.request(Method::GET, "/api/v1/me", Some(&token), Body::None)
            .await,
        401,
    );

    // Login failures on both nodes count towards one lockout (five in all).
    for attempt in 1..=5 {
        let node = if attempt % 2 == 0 { &a } else { &b };
        expect(
            &format!("wrong password {attempt} for manager"),
            &node.login("manager", &format!("wrong-{attempt}")).await,
            401,
        );
    }
    expect(
        "manager's right password on A after failures on both",
        &a.login("manager", PASSWORD).await,
        429,
    );
    expect(
        "manager's right password on B",
        &b.login("manager", PASSWORD).await,
        429,
    );
    drop(node_b);
}
