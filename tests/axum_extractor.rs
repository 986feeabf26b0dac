//! The resolved session as an axum extractor.

mod support;

use axum::Router;
use axum::body::Body;
use axum::routing::get;
use http::{Request, StatusCode};
use support::*;
use tower::ServiceExt;
use tower_cis::{MemoryStore, Principal, Session, SessionAuthLayer, SessionStore};

async fn whoami(session: Session) -> String {
    session.user().to_owned()
}

async fn maybe(session: Option<Session>) -> String {
    session.map_or_else(|| "anonymous".to_owned(), |s| s.user().to_owned())
}

#[tokio::test]
async fn handlers_extract_the_session_behind_the_layer() {
    let store = MemoryStore::new();
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let app = Router::new().route("/api/whoami", get(whoami)).layer(SessionAuthLayer::new(store));
    let request = Request::get("/api/whoami")
        .header("vmware-api-session-id", session.id().to_string())
        .body(Body::empty())
        .unwrap();
    let (status, _, body) = read(app.clone().oneshot(request).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "alice"));
    let anonymous = Request::get("/api/whoami").body(Body::empty()).unwrap();
    let (status, _, body) = read(app.oneshot(anonymous).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, UNAUTHENTICATED_MODERN));
}

#[tokio::test]
async fn optional_session_is_none_without_the_layer() {
    let app = Router::new().route("/open", get(maybe));
    let (status, _, body) = read(app.oneshot(Request::get("/open").body(Body::empty()).unwrap()).await.unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "anonymous"));
}

#[tokio::test]
async fn required_session_without_the_layer_is_a_500_configuration_error() {
    let app = Router::new().route("/misconfigured", get(whoami));
    let request = Request::get("/misconfigured").body(Body::empty()).unwrap();
    let (status, _, body) = read(app.oneshot(request).await.unwrap()).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(body.starts_with(r#"{"error_type":"INTERNAL_SERVER_ERROR""#), "{body}");
}
