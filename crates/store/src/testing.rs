//! Test support: a throw-away PostgreSQL database per test, from `WARDEN_TEST_POSTGRES_URL`.

use sqlx::{Connection, Executor};

/// The PostgreSQL server to test against, if configured.
pub fn postgres_url() -> Option<String> {
    std::env::var("WARDEN_TEST_POSTGRES_URL")
        .ok()
        .filter(|url| !url.is_empty())
}

/// Creates a new, empty database on the test server and returns its URL; `None` (after
/// saying so on stderr) when `WARDEN_TEST_POSTGRES_URL` is unset.
pub async fn fresh_postgres_database(test: &str) -> Option<String> {
    let Some(base) = postgres_url() else {
        eprintln!("{test}: skipped on PostgreSQL: WARDEN_TEST_POSTGRES_URL is not set");
        return None;
    };
    sqlx::any::install_default_drivers();
    let name = format!(
        "warden_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mut conn = sqlx::AnyConnection::connect(&base)
        .await
        .unwrap_or_else(|e| panic!("{test}: cannot connect to {base}: {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .unwrap_or_else(|e| panic!("{test}: cannot create a database: {e}"));
    let (head, query) = match base.split_once('?') {
        Some((head, query)) => (head, format!("?{query}")),
        None => (base.as_str(), String::new()),
    };
    let prefix = match head.rfind('/') {
        Some(slash) if slash > "postgres://".len() => &head[..slash],
        _ => head,
    };
    Some(format!("{prefix}/{name}{query}"))
}
