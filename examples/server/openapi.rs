//! The example server's OpenAPI 3.1 description (`openapi/tower-cis.json`),
//! served at `GET /api/openapi.json` without a session.

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};

/// Where the document is served.
pub const OPENAPI_PATH: &str = "/api/openapi.json";

/// The document: every REST endpoint of the example server.
pub const OPENAPI_DOCUMENT: &str = include_str!("../../openapi/tower-cis.json");

/// The route that serves the document; merge it into the public routes.
pub fn router() -> Router {
    Router::new().route(OPENAPI_PATH, get(document))
}

async fn document() -> Response {
    ([(CONTENT_TYPE, "application/json"), (CACHE_CONTROL, "no-cache")], OPENAPI_DOCUMENT).into_response()
}
