//! End-to-end: the real `warden` binary, seeded with the demo organisation and served on a
//! free port, walked over HTTP as every demo user — on SQLite always, and on PostgreSQL when
//! `WARDEN_TEST_POSTGRES_URL` is set. One server per backend runs every check in turn
//! (read-only checks first, the ones that move or disable users last). The access-control
//! checks (`e2e/security.rs`) lock accounts and set rules: they get servers of their own, one
//! of them started with `--trusted-proxy`. Every server's guard runs `warden check` on its
//! database when the test ends (`e2e/harness.rs`). The crash rounds (`e2e/crash.rs`,
//! `WARDEN_CRASH_ROUNDS`) and the two-node revocations on PostgreSQL (`e2e/two_nodes.rs`) run
//! here too.

#![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

#[path = "e2e/approvals.rs"]
mod approvals;
#[path = "e2e/audit.rs"]
mod audit;
#[path = "e2e/backup.rs"]
mod backup;
#[path = "e2e/crash.rs"]
mod crash;
#[path = "e2e/fields.rs"]
mod fields;
#[path = "e2e/harness.rs"]
mod harness;
#[path = "e2e/hostile.rs"]
mod hostile;
#[path = "e2e/idor.rs"]
mod idor;
#[path = "e2e/keys.rs"]
mod keys;
#[path = "e2e/security.rs"]
mod security;
#[path = "e2e/sharing.rs"]
mod sharing;
#[path = "e2e/two_nodes.rs"]
mod two_nodes;
#[path = "e2e/walk.rs"]
mod walk;

use harness::{Backend, Server};

#[tokio::test]
async fn the_demo_walk_on_sqlite() {
    let server = Server::start(Backend::Sqlite).await;
    walk::everything(&server).await;
}

#[tokio::test]
async fn the_demo_walk_on_postgres() {
    let Some(url) =
        warden_store::testing::fresh_postgres_database("the_demo_walk_on_postgres").await
    else {
        return;
    };
    let server = Server::start(Backend::Postgres(url)).await;
    walk::everything(&server).await;
}

/// Approvals on a server of their own: they delete customers and change credit limits.
#[tokio::test]
async fn approvals_on_sqlite() {
    let server = Server::start(Backend::Sqlite).await;
    approvals::everything(&harness::Api::login_everyone(&server).await).await;
}

#[tokio::test]
async fn approvals_on_postgres() {
    let Some(url) = warden_store::testing::fresh_postgres_database("approvals_on_postgres").await
    else {
        return;
    };
    let server = Server::start(Backend::Postgres(url)).await;
    approvals::everything(&harness::Api::login_everyone(&server).await).await;
}

/// Sharing on a server of its own: it shares records, sets rules and restrictions.
#[tokio::test]
async fn sharing_on_sqlite() {
    let server = Server::start(Backend::Sqlite).await;
    sharing::everything(&harness::Api::login_everyone(&server).await).await;
}

#[tokio::test]
async fn sharing_on_postgres() {
    let Some(url) = warden_store::testing::fresh_postgres_database("sharing_on_postgres").await
    else {
        return;
    };
    let server = Server::start(Backend::Postgres(url)).await;
    sharing::everything(&harness::Api::login_everyone(&server).await).await;
}

/// Approval events posted to a webhook: signed, and retried after a refusal.
#[tokio::test]
async fn approval_webhooks_on_sqlite() {
    const SECRET: &str = "e2e-webhook-secret-0123456789";
    let (url, deliveries) = approvals::webhook_receiver().await;
    let server = Server::start_with_env(
        Backend::Sqlite,
        &["--webhook-url", &url, "--background-every-ms", "200"],
        &[("WARDEN_WEBHOOK_SECRET", SECRET)],
    )
    .await;
    let api = harness::Api::login_everyone(&server).await;
    approvals::webhooks(&api, &deliveries, SECRET).await;
}

/// Access control on a server of its own: it locks accounts and sets rules.
#[tokio::test]
async fn security_on_sqlite() {
    let server = Server::start(Backend::Sqlite).await;
    security::everything(&server).await;
}

#[tokio::test]
async fn security_on_postgres() {
    let Some(url) = warden_store::testing::fresh_postgres_database("security_on_postgres").await
    else {
        return;
    };
    let server = Server::start(Backend::Postgres(url)).await;
    security::everything(&server).await;
}

/// `X-Forwarded-For` is read only from a trusted proxy: a server started with one.
#[tokio::test]
async fn security_behind_a_trusted_proxy_on_sqlite() {
    let server = Server::start_with(Backend::Sqlite, &["--trusted-proxy", "127.0.0.1/32"]).await;
    security::behind_a_trusted_proxy(&server).await;
}

#[tokio::test]
async fn security_behind_a_trusted_proxy_on_postgres() {
    let Some(url) = warden_store::testing::fresh_postgres_database(
        "security_behind_a_trusted_proxy_on_postgres",
    )
    .await
    else {
        return;
    };
    let server =
        Server::start_with(Backend::Postgres(url), &["--trusted-proxy", "127.0.0.1/32"]).await;
    security::behind_a_trusted_proxy(&server).await;
}

/// Backup and restore on a server of its own: online backup under concurrent writes, verify,
/// restore and every refusal, the restored database served, scheduled backups.
#[tokio::test]
async fn backup_and_restore_on_sqlite() {
    let server =
        Server::start_with_env(Backend::Sqlite, &[], &[("WARDEN_MASTER_KEY", backup::KEY)]).await;
    backup::everything(&server).await;
}

/// PostgreSQL: `warden export` into the backup container, verified.
#[tokio::test]
async fn export_on_postgres() {
    let Some(url) = warden_store::testing::fresh_postgres_database("export_on_postgres").await
    else {
        return;
    };
    backup::postgres_export(&url).await;
}

/// `warden keys rotate --reencrypt` killed mid-way, then run again to the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reencryption_killed_and_resumed_on_sqlite() {
    keys::reencryption_killed_and_resumed().await;
}

/// The access log: what is logged, who reads it, tampering found by `warden audit verify`,
/// and a log that cannot be written failing the request.
#[tokio::test]
async fn access_log_on_sqlite() {
    let server =
        Server::start_with_env(Backend::Sqlite, &[], &[("WARDEN_MASTER_KEY", audit::KEY)]).await;
    audit::what_is_logged(&server).await;
    let data = server.data_dir().to_owned();
    audit::tampering(&server, audit::Db::Sqlite(&data)).await;
    audit::a_log_failure_fails_the_request(&server, audit::Db::Sqlite(&data)).await;
}

#[tokio::test]
async fn access_log_on_postgres() {
    let Some(url) = warden_store::testing::fresh_postgres_database("access_log_on_postgres").await
    else {
        return;
    };
    let server = Server::start_with_env(
        Backend::Postgres(url.clone()),
        &[],
        &[("WARDEN_MASTER_KEY", audit::KEY)],
    )
    .await;
    audit::what_is_logged(&server).await;
    audit::tampering(&server, audit::Db::Postgres(&url)).await;
    audit::a_log_failure_fails_the_request(&server, audit::Db::Postgres(&url)).await;
}

/// Access reviews: a campaign whose revocation holds at close, on the next request.
#[tokio::test]
async fn access_reviews_on_sqlite() {
    let server = Server::start(Backend::Sqlite).await;
    audit::access_reviews(&server).await;
    let server = Server::start(Backend::Sqlite).await;
    audit::review_reports(&server).await;
}

#[tokio::test]
async fn access_reviews_on_postgres() {
    let Some(url) =
        warden_store::testing::fresh_postgres_database("access_reviews_on_postgres").await
    else {
        return;
    };
    let server = Server::start(Backend::Postgres(url)).await;
    audit::access_reviews(&server).await;
    let Some(url) =
        warden_store::testing::fresh_postgres_database("review_reports_on_postgres").await
    else {
        return;
    };
    let server = Server::start(Backend::Postgres(url)).await;
    audit::review_reports(&server).await;
}

/// SIGKILL at random moments under writers; every acknowledged write survives
/// (`WARDEN_CRASH_ROUNDS`, default 3; `WARDEN_CRASH_ROUNDS=50` by hand).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_rounds_on_sqlite() {
    crash::rounds().await;
}

/// Two `warden` processes on one PostgreSQL database: a revocation through one is refused by
/// the other on the next request.
#[tokio::test]
async fn two_nodes_on_postgres() {
    let Some(url) = warden_store::testing::fresh_postgres_database("two_nodes_on_postgres").await
    else {
        return;
    };
    let node_a = Server::start(Backend::Postgres(url)).await;
    two_nodes::revocations(&node_a).await;
}

/// Hostile input on SQLite: the IDOR matrix (every operation × every demo user × own, other,
/// missing), then mass assignment and the body limit on the same server.
#[tokio::test]
async fn idor_matrix_and_mass_assignment_on_sqlite() {
    let server = Server::start(Backend::Sqlite).await;
    let api = harness::Api::login_everyone(&server).await;
    let customers = api.all_customers("admin", 200).await;
    let acme = customers
        .iter()
        .find(|c| c["name"] == "Acme Trading")
        .map(harness::id)
        .expect("Acme Trading");
    let rep1s = customers
        .iter()
        .filter(|c| c["owner"] == "rep1" && c["name"] != "Acme Trading")
        .map(harness::id)
        .next_back()
        .expect("a customer of rep1");
    hostile::mass_assignment(&api, rep1s, acme).await;
    hostile::body_limit(&api).await;
    idor::matrix(&api).await;
}

/// The IDOR matrix on PostgreSQL.
#[tokio::test]
async fn idor_matrix_on_postgres() {
    let Some(url) = warden_store::testing::fresh_postgres_database("idor_matrix_on_postgres").await
    else {
        return;
    };
    let server = Server::start(Backend::Postgres(url)).await;
    idor::matrix(&harness::Api::login_everyone(&server).await).await;
}

/// Every operation of the OpenAPI document sent malformed and hostile requests: never a 5xx,
/// always a JSON error.
#[tokio::test]
async fn malformed_request_sweep_on_sqlite() {
    let server = Server::start(Backend::Sqlite).await;
    hostile::sweep(&server).await;
}

/// The login throttle per client address, kept in the database.
#[tokio::test]
async fn login_throttle_per_address_on_sqlite() {
    let server = Server::start_with(Backend::Sqlite, &["--trusted-proxy", "127.0.0.1/32"]).await;
    hostile::address_throttle(&server).await;
}
