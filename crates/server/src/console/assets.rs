//! The console's static assets, compiled into the binary: one stylesheet and one script
//! (the CSP allows scripts only from files like this one, never inline).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// Pages link assets with `?v=` of the release, so a day of caching never serves a stale file
/// after an upgrade.
const CACHE: &str = "public, max-age=86400";

/// `GET /static/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return AppError::not_found().into_response(),
    };
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, CACHE)], body).into_response()
}
