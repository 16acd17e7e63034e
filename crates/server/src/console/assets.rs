//! The console's static assets, compiled into the binary: one stylesheet and one script
//! (the CSP allows scripts only from files like this one, never inline).

use axum::extract::Path;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};

use crate::error::AppError;

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

/// Pages link assets with `?v=` of their content's hash ([`VERSION`]), so a day of caching
/// never serves a stale file after an upgrade.
const CACHE: &str = "public, max-age=86400";

/// FNV-1a of the assets, computed at compile time: changes whenever either file changes.
pub(crate) const VERSION: u64 = fnv1a(JS.as_bytes(), fnv1a(CSS.as_bytes(), 0xcbf2_9ce4_8422_2325));

const fn fnv1a(bytes: &[u8], mut hash: u64) -> u64 {
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `GET /static/{file}`.
pub(super) async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "console.css" => (CSS, "text/css; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        _ => return AppError::not_found().into_response(),
    };
    ([(CONTENT_TYPE, kind), (CACHE_CONTROL, CACHE)], body).into_response()
}
