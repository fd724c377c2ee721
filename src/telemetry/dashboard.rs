//! The dashboard: a page at `/` of the telemetry endpoint that draws the
//! store's series through the query API (`query_range`), the alerts API
//! and `/checks`, all from the same origin. The assets under `dashboard/`
//! are compiled into the binary with `include_bytes!` (five files, so a
//! crate such as rust-embed would add a dependency and a derive for
//! nothing), so the page works offline and with no files beside the
//! binary. Charts are uPlot, vendored from npm (`dashboard/vendor/`).

use std::sync::Arc;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::Telemetry;

/// `(file name, content type, bytes)` of every asset under `/dashboard/`.
const ASSETS: &[(&str, &str, &[u8])] = &[
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/app.js"),
    ),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_bytes!("dashboard/style.css"),
    ),
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_bytes!("dashboard/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_bytes!("dashboard/vendor/uPlot.min.css"),
    ),
];

const INDEX: &[u8] = include_bytes!("dashboard/index.html");

/// Everything the page loads comes from this endpoint: the policy makes
/// the browser refuse anything else, so "no CDN" is enforced, not hoped.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'";

pub fn routes() -> axum::Router<Arc<Telemetry>> {
    axum::Router::new()
        .route("/", get(index))
        .route("/dashboard/{file}", get(asset))
}

fn respond(content_type: &str, body: &'static [u8]) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY),
            // The assets change with the binary, not with a version in
            // their name: revalidate on every load.
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    respond("text/html; charset=utf-8", INDEX)
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => respond(content_type, body),
        None => (StatusCode::NOT_FOUND, "no such dashboard asset").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_names_only_assets_that_are_served() {
        let page = std::str::from_utf8(INDEX).unwrap();
        for reference in page.split("/dashboard/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                ASSETS.iter().any(|(file, _, _)| *file == name),
                "index.html loads {name}, which is not embedded"
            );
        }
    }
}
