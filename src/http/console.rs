//! The web console at `/console`: one page and its script and style, compiled into the
//! binary (no build step, nothing to install). The page signs in with an API key kept in the
//! browser tab's session storage and reads the same HTTP API as any client, so it shows only
//! what that key may see.

use axum::http::header;
use axum::response::{IntoResponse, Response};

const INDEX: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");
const STYLE: &str = include_str!("console/app.css");

/// Only this origin's script and style run; the page is never framed.
const POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, POLICY),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /console`: the console's page (no token: it asks for one).
#[utoipa::path(
    get,
    path = "/console",
    operation_id = "console",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The web console's page.", content_type = "text/html")),
)]
pub async fn page() -> Response {
    asset("text/html; charset=utf-8", INDEX)
}

/// `GET /console/app.js`: the console's script.
#[utoipa::path(
    get,
    path = "/console/app.js",
    operation_id = "console_script",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The web console's script.", content_type = "text/javascript")),
)]
pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// `GET /console/app.css`: the console's style.
#[utoipa::path(
    get,
    path = "/console/app.css",
    operation_id = "console_style",
    tag = "operations",
    security(()),
    responses((status = 200, description = "The web console's style.", content_type = "text/css")),
)]
pub async fn style() -> Response {
    asset("text/css; charset=utf-8", STYLE)
}
