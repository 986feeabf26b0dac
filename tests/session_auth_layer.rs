//! SessionAuthLayer: who gets in, who is refused and with what, and what
//! happens to requests already admitted.

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::{HeaderValue, Request, Response, StatusCode};
use support::*;
use tokio::sync::{Semaphore, mpsc};
use tower::{Service, ServiceExt, service_fn};
use tower_cis::{ExpiryPolicy, MemoryStore, Principal, Session, SessionAuthLayer, SessionId, SessionStore};
use tower_layer::Layer;

const CHALLENGE: &str = "Basic realm=\"VAPI endpoint\"";

fn echo_user() -> impl Service<
    Request<String>,
    Response = Response<http_body_util::Full<bytes::Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(|request: Request<String>| async move {
        let session = request.extensions().get::<Session>().expect("no session in the extensions");
        let body = format!("{} {}", session.user(), session.last_accessed());
        Ok::<_, Infallible>(Response::new(http_body_util::Full::from(body)))
    })
}

async fn call<S>(service: &mut S, request: Request<String>) -> (StatusCode, http::HeaderMap, String)
where
    S: Service<
            Request<String>,
            Response = Response<tower_cis::layer::ResponseBody<http_body_util::Full<bytes::Bytes>>>,
        >,
    S::Error: std::fmt::Debug,
{
    read(service.ready().await.unwrap().call(request).await.unwrap()).await
}

fn policy() -> ExpiryPolicy {
    ExpiryPolicy::default().with_idle_timeout(Duration::from_secs(60)).with_max_lifetime(Duration::from_secs(600))
}

#[tokio::test]
async fn active_session_reaches_the_handler_with_its_principal() {
    let (store, _clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let mut app = SessionAuthLayer::new(store).layer(echo_user());
    let (status, _, body) = call(&mut app, get_with("/api/vcenter/vm", session.id())).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, format!("alice {}", T0));
}

async fn assert_refused_before_the_store(request: Request<String>, expected_body: &str) {
    let store = Counting::new(MemoryStore::new());
    let mut app = SessionAuthLayer::new(store.clone()).layer(echo_user());
    let (status, headers, body) = call(&mut app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, expected_body);
    assert_eq!(headers["www-authenticate"], CHALLENGE);
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(store.resolves(), 0, "the store was asked about an id that could not be valid");
}

#[tokio::test]
async fn missing_session_header_is_401_without_asking_the_store() {
    let request = Request::get("/api/vcenter/vm").body(String::new()).unwrap();
    assert_refused_before_the_store(request, UNAUTHENTICATED_MODERN).await;
}

#[tokio::test]
async fn malformed_session_header_is_401_without_asking_the_store() {
    for bad in ["", "xyz", "B00DB39F948D13EA1E59B4D6FCE56389", "b00db39f948d13ea1e59b4d6fce56389aa"] {
        let request = Request::get("/api/vcenter/vm").header("vmware-api-session-id", bad).body(String::new()).unwrap();
        assert_refused_before_the_store(request, UNAUTHENTICATED_MODERN).await;
    }
}

#[tokio::test]
async fn repeated_session_header_is_401_without_asking_the_store() {
    let id = SessionId::generate().unwrap().to_string();
    let request = Request::get("/api/vcenter/vm")
        .header("vmware-api-session-id", &id)
        .header("vmware-api-session-id", &id)
        .body(String::new())
        .unwrap();
    assert_refused_before_the_store(request, UNAUTHENTICATED_MODERN).await;
}

#[tokio::test]
async fn legacy_paths_get_the_legacy_error_body() {
    let request = Request::post("/rest/com/vmware/cis/session?~action=get").body(String::new()).unwrap();
    assert_refused_before_the_store(request, UNAUTHENTICATED_LEGACY).await;
}

async fn assert_unauthenticated<S>(app: &mut S, id: &SessionId)
where
    S: Service<
            Request<String>,
            Response = Response<tower_cis::layer::ResponseBody<http_body_util::Full<bytes::Bytes>>>,
        >,
    S::Error: std::fmt::Debug,
{
    let (status, headers, body) = call(app, get_with("/api/vcenter/vm", id)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, UNAUTHENTICATED_MODERN);
    assert_eq!(headers["www-authenticate"], CHALLENGE);
}

#[tokio::test]
async fn unknown_session_is_401() {
    let mut app = SessionAuthLayer::new(MemoryStore::new()).layer(echo_user());
    assert_unauthenticated(&mut app, &SessionId::generate().unwrap()).await;
}

#[tokio::test]
async fn deleted_session_is_401() {
    let (store, _clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let mut app = SessionAuthLayer::new(store.clone()).layer(echo_user());
    store.delete(session.id()).await.unwrap();
    assert_unauthenticated(&mut app, session.id()).await;
}

#[tokio::test]
async fn idle_expired_session_is_401() {
    let (store, clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let mut app = SessionAuthLayer::new(store.clone()).layer(echo_user());
    clock.advance(Duration::from_secs(60));
    assert_unauthenticated(&mut app, session.id()).await;
}

#[tokio::test]
async fn absolute_expired_session_is_401_however_busy() {
    let (store, clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let mut app = SessionAuthLayer::new(store.clone()).layer(echo_user());
    for _ in 0..19 {
        clock.advance(Duration::from_secs(30));
        assert_eq!(call(&mut app, get_with("/api/x", session.id())).await.0, StatusCode::OK);
    }
    clock.advance(Duration::from_secs(30));
    assert_unauthenticated(&mut app, session.id()).await;
}

#[tokio::test]
async fn each_request_refreshes_the_idle_timer() {
    let (store, clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let mut app = SessionAuthLayer::new(store.clone()).layer(echo_user());
    for _ in 0..4 {
        clock.advance(Duration::from_secs(59));
        let (status, _, body) = call(&mut app, get_with("/api/x", session.id())).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, format!("alice {}", tower_cis::Clock::now(&clock)));
    }
}

#[tokio::test]
async fn unreachable_store_is_503_never_401_never_a_pass_through() {
    let mut app = SessionAuthLayer::new(Unreachable).layer(echo_user());
    let (status, headers, body) = call(&mut app, get_with("/api/x", &SessionId::generate().unwrap())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(headers.get("www-authenticate").is_none());
    assert_eq!(
        body,
        r#"{"error_type":"SERVICE_UNAVAILABLE","messages":[{"args":[],"default_message":"The session service is temporarily unavailable. Retry later.","id":"com.vmware.cis.session.store.unavailable"}]}"#
    );
    let (status, _, body) = call(&mut app, get_with("/rest/x", &SessionId::generate().unwrap())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(body.starts_with(r#"{"type":"com.vmware.vapi.std.errors.service_unavailable","value":{"messages":["#));
}

#[tokio::test]
async fn legacy_paths_accept_the_session_cookie_and_modern_paths_do_not() {
    let (store, _clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let mut app = SessionAuthLayer::new(store.clone()).layer(echo_user());
    let cookie = format!("other=1; vmware-api-session-id={}; x=y", session.id());
    let legacy = Request::get("/rest/vcenter/vm").header("cookie", &cookie).body(String::new()).unwrap();
    assert_eq!(call(&mut app, legacy).await.0, StatusCode::OK);
    let modern = Request::get("/api/vcenter/vm").header("cookie", &cookie).body(String::new()).unwrap();
    assert_eq!(call(&mut app, modern).await.0, StatusCode::UNAUTHORIZED);
    // Two different ids in cookies are ambiguous.
    let other = SessionId::generate().unwrap();
    let ambiguous = format!("vmware-api-session-id={}; vmware-api-session-id={other}", session.id());
    let request = Request::get("/rest/vcenter/vm").header("cookie", ambiguous).body(String::new()).unwrap();
    assert_eq!(call(&mut app, request).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn challenge_and_legacy_prefix_are_configurable() {
    let challenge = "Basic realm=\"VAPI endpoint\",SIGN realm=ab12,service=\"VAPI endpoint\"";
    let layer = SessionAuthLayer::new(MemoryStore::new())
        .with_challenge(HeaderValue::from_static(challenge))
        .with_legacy_prefix(None);
    let mut app = layer.layer(echo_user());
    let request = Request::get("/rest/x").body(String::new()).unwrap();
    let (status, headers, body) = call(&mut app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(headers["www-authenticate"], challenge);
    assert_eq!(body, UNAUTHENTICATED_MODERN);
}

/// An inner service that tells when it started and then waits for a permit.
fn gated(
    started: mpsc::UnboundedSender<()>,
    gate: Arc<Semaphore>,
) -> impl Service<
    Request<String>,
    Response = Response<http_body_util::Full<bytes::Bytes>>,
    Error = Infallible,
    Future = impl Send,
> + Clone {
    service_fn(move |_request: Request<String>| {
        let (started, gate) = (started.clone(), Arc::clone(&gate));
        async move {
            started.send(()).unwrap();
            let _permit = gate.acquire().await.unwrap();
            Ok::<_, Infallible>(Response::new(http_body_util::Full::from("finished")))
        }
    })
}

#[tokio::test]
async fn request_in_flight_finishes_after_its_session_is_deleted() {
    let (store, _clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let (started, mut has_started) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let app = SessionAuthLayer::new(store.clone()).layer(gated(started, Arc::clone(&gate)));

    let in_flight = tokio::spawn(app.clone().oneshot(get_with("/api/demo/wait", session.id())));
    has_started.recv().await.unwrap();
    assert!(store.delete(session.id()).await.unwrap());
    gate.add_permits(1);
    let (status, _, body) = read(in_flight.await.unwrap().unwrap()).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "finished"));

    gate.add_permits(1);
    let (status, _, _) = read(app.oneshot(get_with("/api/demo/wait", session.id())).await.unwrap()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn request_in_flight_finishes_after_its_session_expires() {
    let (store, clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let (started, mut has_started) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let app = SessionAuthLayer::new(store.clone()).layer(gated(started, Arc::clone(&gate)));

    let in_flight = tokio::spawn(app.clone().oneshot(get_with("/api/demo/wait", session.id())));
    has_started.recv().await.unwrap();
    clock.advance(Duration::from_secs(600));
    gate.add_permits(2);
    assert_eq!(read(in_flight.await.unwrap().unwrap()).await.0, StatusCode::OK);
    assert_eq!(read(app.oneshot(get_with("/api/x", session.id())).await.unwrap()).await.0, StatusCode::UNAUTHORIZED);
}

async fn long_request_then_idle(refresh_on_completion: bool) -> StatusCode {
    let (store, clock) = manual_store(policy());
    long_request_then_idle_on(store, clock, refresh_on_completion, || {}).await
}

/// A request that takes 50 s (and answers 200, asserted), then 30 s idle:
/// the status of the next request. `while_in_flight` runs during the first.
async fn long_request_then_idle_on<St: SessionStore + Clone>(
    store: St,
    clock: tower_cis::ManualClock,
    refresh_on_completion: bool,
    while_in_flight: impl FnOnce(),
) -> StatusCode {
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let (started, mut has_started) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let layer = SessionAuthLayer::new(store.clone()).refresh_on_completion(refresh_on_completion);
    let app = layer.layer(gated(started, Arc::clone(&gate)));

    let in_flight = tokio::spawn(app.clone().oneshot(get_with("/api/demo/wait", session.id())));
    has_started.recv().await.unwrap();
    clock.advance(Duration::from_secs(50));
    while_in_flight();
    gate.add_permits(2);
    assert_eq!(read(in_flight.await.unwrap().unwrap()).await.0, StatusCode::OK);
    clock.advance(Duration::from_secs(30));
    read(app.oneshot(get_with("/api/x", session.id())).await.unwrap()).await.0
}

#[tokio::test]
async fn refresh_on_completion_restarts_the_idle_timer_when_the_response_is_ready() {
    assert_eq!(long_request_then_idle(true).await, StatusCode::OK);
}

#[tokio::test]
async fn refresh_on_completion_waits_for_a_store_that_answers_later() {
    let (store, clock) = manual_store(policy());
    assert_eq!(long_request_then_idle_on(Remote::new(store), clock, true, || {}).await, StatusCode::OK);
    let (store, clock) = manual_store(policy());
    assert_eq!(long_request_then_idle_on(Remote::new(store), clock, false, || {}).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_refresh_that_fails_after_the_response_keeps_the_response() {
    let (store, clock) = manual_store(policy());
    let store = Remote::new(store);
    let down = Arc::clone(&store.down);
    // The in-flight request still answers 200 (asserted by the helper); the
    // store is still down for the next one.
    let next = long_request_then_idle_on(store, clock, true, move || down.store(true, Ordering::SeqCst)).await;
    assert_eq!(next, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn without_refresh_on_completion_the_idle_timer_runs_from_admission() {
    assert_eq!(long_request_then_idle(false).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn refresh_on_completion_never_recreates_a_deleted_session() {
    let (store, _clock) = manual_store(policy());
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let (started, mut has_started) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let layer = SessionAuthLayer::new(store.clone()).refresh_on_completion(true);
    let app = layer.layer(gated(started, Arc::clone(&gate)));
    let in_flight = tokio::spawn(app.clone().oneshot(get_with("/api/x", session.id())));
    has_started.recv().await.unwrap();
    store.delete(session.id()).await.unwrap();
    gate.add_permits(1);
    assert_eq!(read(in_flight.await.unwrap().unwrap()).await.0, StatusCode::OK);
    assert_eq!(store.stats().await.unwrap().sessions, 0);
    assert!(matches!(store.resolve(session.id()).await, Ok(tower_cis::store::Resolution::Unknown)));
}

#[tokio::test]
async fn remote_store_admits_and_rejects_like_an_immediate_one() {
    let (memory, clock) = manual_store(policy());
    let store = Remote::new(memory);
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let mut app = SessionAuthLayer::new(store.clone()).layer(echo_user());
    let (status, _, body) = call(&mut app, get_with("/api/x", session.id())).await;
    assert_eq!((status, body), (StatusCode::OK, format!("alice {T0}")));
    assert_unauthenticated(&mut app, &SessionId::generate().unwrap()).await;
    clock.advance(Duration::from_secs(60));
    assert_unauthenticated(&mut app, session.id()).await;
    let (status, _, body) = call(&mut app, get_with("/rest/x", &SessionId::generate().unwrap())).await;
    assert_eq!((status, body.as_str()), (StatusCode::UNAUTHORIZED, UNAUTHENTICATED_LEGACY));

    let mut down = SessionAuthLayer::new(unreachable_remote()).layer(echo_user());
    let (status, _, _) = call(&mut down, get_with("/api/x", session.id())).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn remote_store_request_in_flight_finishes_after_delete() {
    let (memory, _clock) = manual_store(policy());
    let store = Remote::new(memory);
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let (started, mut has_started) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(0));
    let app = SessionAuthLayer::new(store.clone()).refresh_on_completion(true).layer(gated(started, Arc::clone(&gate)));
    let in_flight = tokio::spawn(app.clone().oneshot(get_with("/api/demo/wait", session.id())));
    has_started.recv().await.unwrap();
    store.delete(session.id()).await.unwrap();
    gate.add_permits(2);
    assert_eq!(read(in_flight.await.unwrap().unwrap()).await.0, StatusCode::OK);
    assert_eq!(read(app.oneshot(get_with("/api/x", session.id())).await.unwrap()).await.0, StatusCode::UNAUTHORIZED);
}
