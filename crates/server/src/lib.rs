//! Warden's HTTP edge: the JSON API under `/api/v1`, its OpenAPI document, the web console at
//! `/` (server-rendered, calling the same use cases), and `/healthz`.
//!
//! The server owns the wire format and the clock: it reads the time once per request and hands
//! it to the service, converts JSON to the service's types and back, and maps each
//! [`warden_service::ServiceError`] to one status code ([`error::AppError`]). It decides
//! nothing about permissions itself.

mod admin;
mod approvals;
mod audit;
mod auth;
pub mod background;
mod console;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod json;
mod openapi;
#[cfg(test)]
mod parser_props;
mod records;
mod reviews;
mod security;
mod sharing;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;
use warden_service::Warden;

pub use error::AppError;

/// Largest request body accepted (bytes).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler shares.
#[derive(Clone, Debug)]
pub struct AppState {
    pub warden: Warden,
    pub config: Arc<ServerConfig>,
}

/// Settings of the HTTP edge.
#[derive(Clone, Debug, Default)]
pub struct ServerConfig {
    /// Proxies whose `X-Forwarded-For` is believed. From any other peer the header is ignored,
    /// so a client cannot choose its own address.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

/// Milliseconds since the Unix epoch: the only clock read on the request path.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// The whole application with default settings, testable without a socket.
pub fn app(warden: Warden) -> Router {
    app_with(warden, ServerConfig::default())
}

/// The whole application.
pub fn app_with(warden: Warden, config: ServerConfig) -> Router {
    let state = AppState {
        warden,
        config: Arc::new(config),
    };
    let api = Router::new()
        .merge(auth::router())
        .merge(security::router())
        .merge(admin::router())
        .merge(audit::router())
        .merge(approvals::router())
        .merge(records::router())
        .merge(reviews::router())
        .merge(sharing::router())
        .merge(openapi::router())
        // axum's own refusals (a path or query that does not parse, a method not allowed, a
        // body over the limit) are plain text; a client of the API always gets JSON.
        .layer(axum::middleware::from_fn(error::json_errors));
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .nest("/api/v1", api)
        .merge(console::router(state.clone()))
        .fallback(|| async { AppError::not_found() })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        // A panic in a handler would drop the connection; answer it as an internal error.
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves the application with default settings on `listener` until `shutdown` completes.
pub async fn serve(
    warden: Warden,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(warden, ServerConfig::default(), listener, shutdown).await
}

/// Serves the application on `listener` until `shutdown` completes.
pub async fn serve_with(
    warden: Warden,
    config: ServerConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = app_with(warden, config).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}
