//! Every limit on hostile input, hit on purpose: each answers a clean 4xx
//! (or 503, or the documented vAPI error), never a panic, a stack overflow or
//! an unbounded allocation. Header values far beyond what hyper itself lets
//! through (about 400 KiB of head, answered 431) are sent straight to the
//! tower services, so that our own parsers are what is tested.

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;
#[cfg(feature = "saml")]
mod saml_support;
mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use support::{Counting, UNAUTHENTICATED_LEGACY, UNAUTHENTICATED_MODERN, read};
use tower::{ServiceExt, service_fn};
use tower_cis::auth::{
    BasicError, HashCost, MAX_ENCODED_LEN, MAX_PASSWORD_LEN, MAX_USER_LEN, UserDirectory, parse_basic,
};
use tower_cis::error::{ErrorType, LocalizableMessage};
use tower_cis::jsonrpc::{DataValue, MAX_REQUEST_BYTES, MAX_VALUE_DEPTH};
use tower_cis::rest::tasks::MAX_LIST_BODY_BYTES;
use tower_cis::tasks::{MemoryTaskStore, TaskManager, TaskSpec};
use tower_cis::{Cis, CisConfig, MemoryStore, Principal, SessionAuthLayer, SessionStore, SystemClock};
use tower_layer::Layer;

const MIB: usize = 1 << 20;

// ---------------------------------------------------------------- fixtures

fn users() -> UserDirectory {
    UserDirectory::new()
        .with_cost(HashCost::insecure_fast_for_tests())
        .with_user("alice", "alice-pw")
        .unwrap()
        .with_user("bob", "bob-pw")
        .unwrap()
}

fn cis_with(max_sessions: u64, max_sessions_per_user: u64) -> app::ExampleCis {
    Cis::in_memory(users(), CisConfig { max_sessions, max_sessions_per_user, ..CisConfig::default() })
}

fn basic(user: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{user}-pw")))
}

async fn call(app: &axum::Router, request: Request<Body>) -> (StatusCode, String) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(body.to_vec()).unwrap())
}

async fn login(app: &axum::Router, user: &str) -> (StatusCode, String) {
    call(app, Request::post("/api/session").header("authorization", basic(user)).body(Body::empty()).unwrap()).await
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// The id of the first message of a modern error body.
fn message_id(body: &str) -> String {
    json(body)["messages"][0]["id"].as_str().unwrap_or_default().to_owned()
}

/// A service behind the layer that counts the requests that reach it.
fn counted() -> (
    Arc<AtomicUsize>,
    impl tower::Service<Request<String>, Response = Response<Full<Bytes>>, Error = Infallible, Future = impl Send> + Clone,
) {
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&reached);
    let service = service_fn(move |_: Request<String>| {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(Full::from("reached"))) }
    });
    (reached, service)
}

// ------------------------------------------------------------ header sizes

#[tokio::test]
async fn a_one_mebibyte_session_header_is_401_through_the_layer_before_the_store() {
    let store = Counting::new(MemoryStore::new());
    let (reached, inner) = counted();
    let app = SessionAuthLayer::new(store.clone()).layer(inner);
    for value in
        ["a".repeat(MIB), "0".repeat(MIB), format!("{}{}", "b00db39f948d13ea1e59b4d6fce56389", " ".repeat(MIB))]
    {
        let request =
            Request::get("/api/vcenter/vm").header("vmware-api-session-id", value).body(String::new()).unwrap();
        let (status, _, body) = read(app.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, UNAUTHENTICATED_MODERN);
    }
    assert_eq!(store.resolves(), 0, "an oversized id reached the store");
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_one_mebibyte_cookie_is_401_through_the_layer_on_the_legacy_api() {
    let store = Counting::new(MemoryStore::new());
    let (reached, inner) = counted();
    let app = SessionAuthLayer::new(store.clone()).layer(inner);
    let many_pairs = "k=v; ".repeat(MIB / 5);
    let one_huge_value = format!("vmware-api-session-id={}", "a".repeat(MIB));
    let many_ids: String =
        (0..MIB / 60).map(|i| format!("vmware-api-session-id={:032x}; ", i)).collect::<Vec<_>>().concat();
    for cookie in [many_pairs, one_huge_value, many_ids] {
        let request = Request::get("/rest/vcenter/vm").header("cookie", cookie).body(String::new()).unwrap();
        let (status, _, body) = read(app.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body, UNAUTHENTICATED_LEGACY);
    }
    assert_eq!(store.resolves(), 0);
    assert_eq!(reached.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn huge_session_headers_and_cookies_are_401_at_the_session_service() {
    let cis = cis_with(100, 10);
    let service = cis.session_service();
    let requests = [
        Request::get("/api/session").header("vmware-api-session-id", "f".repeat(MIB)).body(()).unwrap(),
        Request::delete("/api/session").header("vmware-api-session-id", "f".repeat(MIB)).body(()).unwrap(),
        Request::post("/rest/com/vmware/cis/session?~action=get")
            .header("cookie", format!("vmware-api-session-id={}", "f".repeat(MIB)))
            .body(())
            .unwrap(),
        Request::delete("/rest/com/vmware/cis/session").header("cookie", "x=y; ".repeat(MIB / 5)).body(()).unwrap(),
    ];
    for request in requests {
        let (status, headers, body) = read(service.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body == UNAUTHENTICATED_MODERN || body == UNAUTHENTICATED_LEGACY, "{body}");
        assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    }
}

#[tokio::test]
async fn a_huge_authorization_header_is_401_at_create() {
    let cis = cis_with(100, 10);
    let service = cis.session_service();
    let huge_token = format!("Basic {}", "QUFB".repeat(MIB / 4));
    let huge_credentials = format!("Basic {}", STANDARD.encode(format!("alice:{}", "p".repeat(MIB))));
    let huge_scheme = "B".repeat(MIB);
    for value in [huge_token, huge_credentials, huge_scheme] {
        let request = Request::post("/api/session").header("authorization", value).body(()).unwrap();
        let (status, _, body) = read(service.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(json(&body)["error_type"], "UNAUTHENTICATED");
    }
    // Nothing was created.
    assert_eq!(cis.store().user_sessions("alice").await.unwrap(), 0);
}

#[test]
fn basic_credentials_are_bounded_at_exactly_their_limits() {
    let header = |user: &str, password: &str| {
        http::HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))).unwrap()
    };
    let (user, password) = ("u".repeat(MAX_USER_LEN), "p".repeat(MAX_PASSWORD_LEN));
    let at_limits = parse_basic(&header(&user, &password)).unwrap();
    assert_eq!((at_limits.user().len(), at_limits.password().len()), (MAX_USER_LEN, MAX_PASSWORD_LEN));
    assert_eq!(parse_basic(&header(&format!("{user}u"), "p")).unwrap_err(), BasicError::UserTooLong);
    assert_eq!(parse_basic(&header("u", &format!("{password}p"))).unwrap_err(), BasicError::PasswordTooLong);
    let over = http::HeaderValue::from_str(&format!("Basic {}", "A".repeat(MAX_ENCODED_LEN + 4))).unwrap();
    assert_eq!(parse_basic(&over).unwrap_err(), BasicError::TooLong);
    let at = http::HeaderValue::from_str(&format!("Basic {}", "A".repeat(MAX_ENCODED_LEN))).unwrap();
    assert_ne!(parse_basic(&at).unwrap_err(), BasicError::TooLong);
}

// -------------------------------------------------------------- body sizes

struct Demo {
    app: axum::Router,
    session: String,
}

async fn demo_with(tasks: TaskManager) -> Demo {
    let cis = cis_with(1000, 100);
    let app = app::application(&cis, tasks);
    let (status, body) = login(&app, "alice").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    Demo { app, session: serde_json::from_str(&body).unwrap() }
}

async fn demo() -> Demo {
    demo_with(app::demo_tasks(&(Arc::new(SystemClock) as tower_cis::SharedClock))).await
}

impl Demo {
    async fn list(&self, body: Vec<u8>) -> (StatusCode, String) {
        let request = Request::post("/api/cis/tasks?action=list")
            .header("vmware-api-session-id", &self.session)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap();
        call(&self.app, request).await
    }

    /// Starts the demo operation as a task (`vmw-task=true`).
    async fn start_wait_task(&self) -> (StatusCode, String) {
        let request = Request::post("/api/demo/wait?seconds=0&vmw-task=true")
            .header("vmware-api-session-id", &self.session)
            .body(Body::empty())
            .unwrap();
        call(&self.app, request).await
    }

    async fn json_rpc(&self, body: Vec<u8>) -> (StatusCode, Value) {
        let (status, body) = call(&self.app, Request::post("/api").body(Body::from(body)).unwrap()).await;
        (status, json(&body))
    }
}

/// `json` followed by spaces up to exactly `len` bytes.
fn padded(json: &Value, len: usize) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(json).unwrap();
    assert!(bytes.len() <= len);
    bytes.resize(len, b' ');
    bytes
}

#[tokio::test]
async fn a_tasks_list_body_over_64_kib_is_400() {
    let demo = demo().await;
    let request = json!({"filter_spec": {"services": ["com.vmware.cis.demo"]}});
    let (status, body) = demo.list(padded(&request, MAX_LIST_BODY_BYTES)).await;
    assert_eq!(status, StatusCode::OK, "a body of exactly 64 KiB is read: {body}");
    let (status, body) = demo.list(padded(&request, MAX_LIST_BODY_BYTES + 1)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(json(&body)["error_type"], "INVALID_ARGUMENT");
    let (status, _) = demo.list(vec![b'x'; 16 * MIB]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn rpc(service: &str, operation: &str, input: Value, security: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": "7", "method": "invoke", "params": {
        "serviceId": service, "operationId": operation, "input": input, "ctx": {"securityCtx": security},
    }})
}

#[tokio::test]
async fn a_json_rpc_body_over_1_mib_is_413() {
    let demo = demo().await;
    let security = json!({"schemeId": "com.vmware.vapi.std.security.session_id", "sessionId": demo.session});
    let request = rpc("com.vmware.cis.session", "get", json!({"STRUCTURE": {"operation-input": {}}}), security);
    let (status, answer) = demo.json_rpc(padded(&request, MAX_REQUEST_BYTES)).await;
    assert_eq!(status, StatusCode::OK, "a body of exactly 1 MiB is read: {answer}");
    assert!(answer["result"]["output"].is_object(), "{answer}");
    let (status, answer) = demo.json_rpc(padded(&request, MAX_REQUEST_BYTES + 1)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer["error"]["code"], -32600);
    let (status, _) = demo.json_rpc(vec![b'['; 32 * MIB]).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

// ------------------------------------------------------------ JSON nesting

/// `depth` arrays around `1`: `[[[1]]]` is depth 3.
fn nested_arrays(depth: usize) -> Value {
    (0..depth).fold(json!(1), |inner, _| json!([inner]))
}

#[test]
fn vapi_values_nest_at_most_max_value_depth() {
    assert!(DataValue::from_json(&nested_arrays(MAX_VALUE_DEPTH)).is_ok());
    assert!(DataValue::from_json(&nested_arrays(MAX_VALUE_DEPTH + 1)).is_err());
    let optionals = (0..MAX_VALUE_DEPTH + 1).fold(json!(1), |inner, _| json!({"OPTIONAL": inner}));
    assert!(DataValue::from_json(&optionals).is_err());
    let structures = (0..MAX_VALUE_DEPTH + 1).fold(json!(1), |inner, _| json!({"STRUCTURE": {"s": {"f": inner}}}));
    assert!(DataValue::from_json(&structures).is_err());
}

#[tokio::test]
async fn deeply_nested_json_rpc_input_is_invalid_params_and_deeper_json_a_parse_error() {
    let demo = demo().await;
    let security = json!({"schemeId": "com.vmware.vapi.std.security.session_id", "sessionId": demo.session});
    // Within serde_json's recursion limit (128), beyond MAX_VALUE_DEPTH (64).
    let input = json!({"STRUCTURE": {"operation-input": {"spec": nested_arrays(100)}}});
    let request = rpc("com.vmware.cis.tasks", "list", input, security);
    let (status, answer) = demo.json_rpc(serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["error"]["code"], -32602, "{answer}");
    assert_eq!(answer["id"], "7");
    // Far beyond serde_json's limit: refused as a parse error, no stack overflow.
    let mut deep = br#"{"jsonrpc":"2.0","id":"7","method":"invoke","params":{"input":"#.to_vec();
    deep.extend(std::iter::repeat_n(b'[', 500_000));
    deep.extend(std::iter::repeat_n(b']', 500_000));
    deep.extend(b"}}");
    let (status, answer) = demo.json_rpc(deep).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    let objects = "{\"a\":".repeat(150_000).into_bytes();
    let (_, answer) = demo.json_rpc(objects).await;
    assert_eq!(answer["error"]["code"], -32700);
}

#[tokio::test]
async fn a_deeply_nested_tasks_list_body_is_400() {
    let demo = demo().await;
    // Within the size limit, far beyond serde_json's recursion limit.
    let mut deep = br#"{"filter_spec":{"services":"#.to_vec();
    deep.extend(std::iter::repeat_n(b'[', 60_000));
    assert!(deep.len() <= MAX_LIST_BODY_BYTES);
    let (status, body) = demo.list(deep).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = demo.list(padded(&nested_arrays(200), 4096)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

// ------------------------------------------------------- SAML (feature saml)

#[cfg(feature = "saml")]
mod saml {
    use std::io::Write;

    use http::HeaderMap;
    use http::header::AUTHORIZATION;
    use tower_cis::ManualClock;
    use tower_cis::auth::saml::{DEFAULT_MAX_TOKEN_LEN, SamlErrorKind};
    use tower_cis::auth::{MAX_INFLATE_RATIO, MAX_SIGN_HEADER_LEN, MAX_TOKEN_LEN, SignError, sign_from_headers};

    use super::*;
    use crate::saml_support::{self as s, T0, Token};

    fn gzip_at(bytes: &[u8], level: u32) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn sign(compressed: &[u8]) -> String {
        format!("SIGN token=\"{}\"", STANDARD.encode(compressed))
    }

    fn headers(values: &[String]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, value.parse().unwrap());
        }
        headers
    }

    /// Text that gzip cannot shrink much: hex of a simple generator.
    fn incompressible(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            out.extend(format!("{state:016x}").bytes());
        }
        out.truncate(len);
        out
    }

    async fn create_with_sign(value: String) -> (StatusCode, String) {
        let clock = ManualClock::new(T0);
        let cis = s::cis(s::verifier(&clock), &clock, Duration::from_secs(3600));
        let request = Request::post("/api/session").header("authorization", value).body(()).unwrap();
        let (status, _, body) = read(cis.session_service().oneshot(request).await.unwrap()).await;
        (status, body)
    }

    #[test]
    fn a_gzip_bomb_is_refused_without_inflating_it() {
        // 64 MiB of zeros, 64 KiB compressed: a ratio of 1000.
        let bomb = gzip_at(&vec![0u8; 64 * MIB], 9);
        assert!(bomb.len() * 4 / 3 < MAX_SIGN_HEADER_LEN, "the bomb must fit the header to reach gunzip");
        let error = sign_from_headers(&headers(&[sign(&bomb)])).unwrap_err();
        assert!(matches!(error, SignError::TooLarge | SignError::RatioExceeded), "{error:?}");
        // Within the size limit, beyond the ratio.
        let dense = gzip_at(&vec![b'a'; MAX_TOKEN_LEN], 9);
        assert!(MAX_TOKEN_LEN > dense.len() * MAX_INFLATE_RATIO);
        assert_eq!(sign_from_headers(&headers(&[sign(&dense)])).unwrap_err(), SignError::RatioExceeded);
    }

    #[test]
    fn a_token_beyond_64_kib_decompressed_is_too_large() {
        let big = gzip_at(&incompressible(MAX_TOKEN_LEN + 1), 9);
        assert!(MAX_TOKEN_LEN < big.len() * MAX_INFLATE_RATIO, "the ratio must not be what refuses it");
        assert_eq!(sign_from_headers(&headers(&[sign(&big)])).unwrap_err(), SignError::TooLarge);
        let fits = gzip_at(&incompressible(MAX_TOKEN_LEN), 9);
        assert_eq!(sign_from_headers(&headers(&[sign(&fits)])).unwrap().token().len(), MAX_TOKEN_LEN);
    }

    #[test]
    fn sign_headers_beyond_96_kib_are_too_long_however_they_are_split() {
        let one = format!("SIGN token=\"{}\"", "A".repeat(MAX_SIGN_HEADER_LEN));
        assert_eq!(sign_from_headers(&headers(&[one])).unwrap_err(), SignError::TooLong);
        let mut many = vec!["SIGN realm=\"x\"".to_owned()];
        many.extend((0..10_000).map(|i| format!("p{i}=\"{}\"", "v".repeat(20))));
        assert_eq!(sign_from_headers(&headers(&many)).unwrap_err(), SignError::TooLong);
    }

    #[tokio::test]
    async fn oversized_sign_credentials_are_401_at_create() {
        for value in [
            sign(&gzip_at(&vec![0u8; 64 * MIB], 9)),
            sign(&gzip_at(&incompressible(MAX_TOKEN_LEN + 1), 9)),
            format!("SIGN token=\"{}\"", "A".repeat(MIB)),
        ] {
            let (status, body) = create_with_sign(value).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
            assert_eq!(json(&body)["error_type"], "UNAUTHENTICATED");
        }
    }

    #[test]
    fn the_verifier_refuses_tokens_beyond_its_size_limit_before_parsing() {
        let clock = ManualClock::new(T0);
        let verifier = s::verifier(&clock);
        let genuine = Token::default().signed();
        assert!(verifier.verify(&genuine).is_ok());
        let padded = format!("{genuine}{}", " ".repeat(DEFAULT_MAX_TOKEN_LEN + 1 - genuine.len()));
        assert_eq!(verifier.verify(&padded).unwrap_err().kind(), SamlErrorKind::TooLarge);
        let small = verifier.clone().with_max_token_len(genuine.len() - 1);
        assert_eq!(small.verify(&genuine).unwrap_err().kind(), SamlErrorKind::TooLarge);
    }

    #[test]
    fn deeply_nested_xml_is_malformed_without_a_stack_overflow() {
        let clock = ManualClock::new(T0);
        let verifier = s::verifier(&clock);
        for depth in [33, 9_000] {
            let xml = format!(
                "<saml2:Assertion xmlns:saml2=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_a\" Version=\"2.0\">{}{}</saml2:Assertion>",
                "<a>".repeat(depth),
                "</a>".repeat(depth)
            );
            assert!(xml.len() <= DEFAULT_MAX_TOKEN_LEN);
            assert_eq!(verifier.verify(&xml).unwrap_err().kind(), SamlErrorKind::Malformed, "depth {depth}");
        }
    }
}

// ------------------------------------------------------- numbers of sessions

fn limit_of(body: &str, flavor_legacy: bool) -> String {
    let value = json(body);
    let messages = if flavor_legacy { &value["value"]["messages"] } else { &value["messages"] };
    messages[0]["id"].as_str().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn sessions_per_user_are_capped_with_503_through_rest_create() {
    let cis = cis_with(1000, 3);
    let app = app::application(&cis, app::demo_tasks(cis.clock()));
    let mut first = String::new();
    for i in 0..3 {
        let (status, body) = login(&app, "alice").await;
        assert_eq!(status, StatusCode::CREATED, "session {i}: {body}");
        if i == 0 {
            first = serde_json::from_str(&body).unwrap();
        }
    }
    let (status, body) = login(&app, "alice").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(json(&body)["error_type"], "SERVICE_UNAVAILABLE");
    assert_eq!(limit_of(&body, false), "com.vmware.cis.session.user_limit");
    let legacy = Request::post("/rest/com/vmware/cis/session").header("authorization", basic("alice"));
    let (status, body) = call(&app, legacy.body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(json(&body)["type"], "com.vmware.vapi.std.errors.service_unavailable");
    assert_eq!(limit_of(&body, true), "com.vmware.cis.session.user_limit");
    // Another user is not affected; a deleted session frees its place.
    assert_eq!(login(&app, "bob").await.0, StatusCode::CREATED);
    let delete = Request::delete("/api/session").header("vmware-api-session-id", &first).body(Body::empty()).unwrap();
    assert_eq!(call(&app, delete).await.0, StatusCode::NO_CONTENT);
    assert_eq!(login(&app, "alice").await.0, StatusCode::CREATED);
}

#[tokio::test]
async fn the_total_number_of_sessions_is_capped_with_503_through_rest_create() {
    let cis = cis_with(3, 1000);
    let app = app::application(&cis, app::demo_tasks(cis.clock()));
    for user in ["alice", "bob", "alice"] {
        assert_eq!(login(&app, user).await.0, StatusCode::CREATED);
    }
    for user in ["alice", "bob"] {
        let (status, body) = login(&app, user).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(message_id(&body), "com.vmware.cis.session.limit");
    }
    // JSON-RPC answers the same limit in band.
    let security =
        json!({"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": "bob", "password": "bob-pw"});
    let request = rpc("com.vmware.cis.session", "create", json!({"STRUCTURE": {"operation-input": {}}}), security);
    let (status, body) =
        call(&app, Request::post("/api").body(Body::from(serde_json::to_vec(&request).unwrap())).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let error = &json(&body)["result"]["error"]["ERROR"]["com.vmware.vapi.std.errors.service_unavailable"];
    let message = &error["messages"][0]["STRUCTURE"]["com.vmware.vapi.std.localizable_message"]["id"];
    assert_eq!(message, "com.vmware.cis.session.limit", "{body}");
}

// ----------------------------------------------------------------- tasks

fn spec() -> TaskSpec {
    TaskSpec::new("com.example.vm", "clone", LocalizableMessage::new("com.example.vm.clone", "Clone"))
}

/// Starts a task for `user` that runs until cancelled.
async fn start_forever<T: tower_cis::tasks::TaskStore>(
    tasks: &TaskManager<T>,
    user: &str,
) -> Result<tower_cis::tasks::TaskId, tower_cis::error::VapiError> {
    tasks
        .start(spec(), Arc::new(Principal::new(user)), |_| async {
            std::future::pending::<()>().await;
            Ok(Value::Null)
        })
        .await
}

/// Tries `start` every 5 ms, up to 200 times, until it starts a task (as a
/// place under a cap is given back).
async fn retry_until_started<F, Fut>(mut start: F) -> Option<tower_cis::tasks::TaskId>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<tower_cis::tasks::TaskId, tower_cis::error::VapiError>>,
{
    for _ in 0..200 {
        match start().await {
            Ok(id) => return Some(id),
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    None
}

#[tokio::test]
async fn a_full_task_store_is_unable_to_allocate_resource() {
    let store = MemoryTaskStore::new(Duration::from_secs(3600), 2, Arc::new(SystemClock));
    let tasks = TaskManager::new(store, Arc::new(SystemClock));
    start_forever(&tasks, "alice").await.unwrap();
    start_forever(&tasks, "bob").await.unwrap();
    let refused = start_forever(&tasks, "carol").await.unwrap_err();
    assert_eq!(refused.error_type(), ErrorType::UnableToAllocateResource);
    // Through REST: the vAPI error, with its documented status.
    let (status, body) = demo_with(tasks).await.start_wait_task().await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(json(&body)["error_type"], "UNABLE_TO_ALLOCATE_RESOURCE");
    assert_eq!(message_id(&body), "com.vmware.cis.tasks.limit");
}

#[tokio::test]
async fn running_tasks_per_user_are_capped() {
    let tasks = TaskManager::in_memory().with_max_running_per_user(2);
    let first = start_forever(&tasks, "alice").await.unwrap();
    start_forever(&tasks, "alice").await.unwrap();
    let refused = start_forever(&tasks, "alice").await.unwrap_err();
    assert_eq!(refused.error_type(), ErrorType::UnableToAllocateResource);
    assert_eq!(refused.messages()[0].id, "com.vmware.cis.tasks.user_limit");
    start_forever(&tasks, "bob").await.expect("another user is not affected");
    // A cancelled task gives its place back.
    tasks.cancel(&first, &Principal::new("alice")).await.unwrap();
    let restarted = retry_until_started(|| start_forever(&tasks, "alice")).await;
    assert!(restarted.is_some(), "the cancelled task's place was not given back");
    // A finished one too.
    let quick = TaskManager::in_memory().with_max_running_per_user(1);
    for round in 0..3 {
        let started = retry_until_started(|| {
            quick.start(spec(), Arc::new(Principal::new("alice")), |_| async { Ok(Value::Null) })
        })
        .await;
        let id = started.unwrap_or_else(|| panic!("round {round}: the finished task's place was not given back"));
        quick.wait(&id).await.unwrap();
    }
}

#[tokio::test]
async fn the_example_server_caps_running_tasks_per_user() {
    let tasks = app::demo_tasks(&(Arc::new(SystemClock) as tower_cis::SharedClock));
    for _ in 0..app::MAX_RUNNING_TASKS_PER_USER {
        start_forever(&tasks, "alice").await.unwrap();
    }
    let (status, body) = demo_with(tasks).await.start_wait_task().await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert_eq!(json(&body)["error_type"], "UNABLE_TO_ALLOCATE_RESOURCE");
    assert_eq!(message_id(&body), "com.vmware.cis.tasks.user_limit");
}

#[tokio::test]
async fn a_task_result_over_1_mib_fails_the_task_instead_of_being_kept() {
    use tower_cis::tasks::{MAX_TASK_RESULT_BYTES, TaskLayer, TaskState};
    let tasks = TaskManager::in_memory();
    let handler = service_fn(|request: Request<Body>| async move {
        let len: usize =
            request.uri().query().and_then(|q| q.split("len=").nth(1)?.split('&').next()?.parse().ok()).unwrap_or(0);
        // A JSON string of exactly `len` bytes.
        let body = format!("\"{}\"", "x".repeat(len - 2));
        Ok::<_, Infallible>(Response::new(Full::from(body)))
    });
    let service = TaskLayer::new(tasks.clone(), spec()).layer(handler);
    let now = tower_cis::Timestamp::from_system_time(std::time::SystemTime::now());
    let session = tower_cis::Session::new(
        tower_cis::SessionId::generate().unwrap(),
        Arc::new(Principal::new("alice")),
        now,
        now,
        now.saturating_add(Duration::from_secs(60)),
    );
    for (len, kept) in [(MAX_TASK_RESULT_BYTES, true), (MAX_TASK_RESULT_BYTES + 1, false), (16 * MIB, false)] {
        let mut request = Request::post(format!("/big?vmw-task=true&len={len}")).body(Body::empty()).unwrap();
        request.extensions_mut().insert(session.clone());
        let (status, _, body) = read(service.clone().oneshot(request).await.unwrap()).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        let id = tower_cis::tasks::TaskId::parse(&serde_json::from_str::<String>(&body).unwrap()).unwrap();
        match tasks.wait(&id).await.unwrap().state {
            TaskState::Succeeded { result: Some(Value::String(text)), .. } if kept => assert_eq!(text.len(), len - 2),
            TaskState::Failed { error, .. } if !kept => {
                assert_eq!(error.messages()[0].id, "com.vmware.cis.tasks.operation.failed", "{error:?}")
            }
            other => panic!("a result of {len} bytes: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_list_matching_more_than_1000_tasks_is_refused() {
    use tower_cis::tasks::{FilterSpec, MAX_LIST_RESULTS};
    let tasks = TaskManager::in_memory();
    for _ in 0..=MAX_LIST_RESULTS {
        start_forever(&tasks, "alice").await.unwrap();
    }
    let filter = FilterSpec { services: Some(["com.example.vm".to_owned()].into()), ..FilterSpec::default() };
    let refused = tasks.list(&filter, &Principal::new("alice")).await.unwrap_err();
    assert_eq!(refused.error_type(), ErrorType::ResourceInaccessible);
    assert_eq!(refused.messages()[0].id, "com.vmware.cis.tasks.list.too_many");
}

#[tokio::test]
async fn query_strings_beyond_8_kib_or_256_parameters_are_400() {
    use tower_cis::rest::query::{MAX_QUERY_LEN, MAX_QUERY_PARAMS};
    let demo = demo().await;
    let long = format!("a={}", "b".repeat(MAX_QUERY_LEN));
    let many = vec!["a=b"; MAX_QUERY_PARAMS + 1].join("&");
    for query in [long, many] {
        let session = Request::post(format!("/rest/com/vmware/cis/session?{query}"))
            .header("authorization", basic("alice"))
            .body(Body::empty())
            .unwrap();
        let (status, body) = call(&demo.app, session).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json(&body)["type"], "com.vmware.vapi.std.errors.invalid_request");
        let tasks = Request::get(format!("/rest/cis/tasks?{query}"))
            .header("vmware-api-session-id", &demo.session)
            .body(Body::empty())
            .unwrap();
        let (status, body) = call(&demo.app, tasks).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(json(&body)["type"], "com.vmware.vapi.std.errors.invalid_argument");
    }
    // At the limits, the query is read (and the legacy list refuses the unknown parameter `a`).
    let at_limit = vec!["a=b"; MAX_QUERY_PARAMS].join("&");
    let (status, body) = call(
        &demo.app,
        Request::get(format!("/api/cis/tasks?{at_limit}"))
            .header("vmware-api-session-id", &demo.session)
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_ne!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(json(&body)["error_type"], "OPERATION_NOT_FOUND", "a readable query naming no operation: {body}");
}

/// Over real HTTP, hyper's own limit comes first: a head beyond its buffer
/// (about 400 KiB) is answered 431 before any of our code runs.
#[tokio::test]
async fn over_http_a_one_mebibyte_header_is_431_from_hyper() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let cis = cis_with(100, 10);
    let app = app::application(&cis, app::demo_tasks(cis.clock()));
    let (listener, address) = app::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::serve_app(listener, None, app, async {
        let _ = stopped.await;
    }));
    for header in ["vmware-api-session-id", "authorization", "cookie"] {
        let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
        let head = format!("GET /api/session HTTP/1.1\r\nhost: localhost\r\n{header}: {}\r\n\r\n", "a".repeat(MIB));
        let (mut reader, mut writer) = stream.split();
        // The server stops reading once its buffer is full: write and read at once.
        let write = async {
            let _ = writer.write_all(head.as_bytes()).await;
        };
        let read = async {
            let mut answer = Vec::new();
            let mut chunk = [0u8; 4096];
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match reader.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&chunk[..n]),
                }
            }
            answer
        };
        let ((), answer) = tokio::time::timeout(Duration::from_secs(30), async { tokio::join!(write, read) })
            .await
            .expect("no answer to an oversized head");
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 431"), "{header}: {answer}");
    }
    let _ = stop.send(());
    server.await.unwrap();
}

/// Passwords beyond MAX_PASSWORD_LEN are refused before argon2 sees them, on
/// both surfaces: a long password costs no hashing time.
#[tokio::test]
async fn an_oversized_password_is_refused_before_hashing() {
    let demo = demo().await;
    let password = "p".repeat(MAX_PASSWORD_LEN * 512);
    let security =
        json!({"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": "alice", "password": password});
    let request = rpc("com.vmware.cis.session", "create", json!({"STRUCTURE": {"operation-input": {}}}), security);
    let started = std::time::Instant::now();
    let (status, answer) = demo.json_rpc(serde_json::to_vec(&request).unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(answer["result"]["error"]["ERROR"]["com.vmware.vapi.std.errors.unauthenticated"].is_object(), "{answer}");
    let user = "u".repeat(MAX_USER_LEN + 1);
    let security = json!({"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": user, "password": "pw"});
    let request = rpc("com.vmware.cis.session", "create", json!({"STRUCTURE": {"operation-input": {}}}), security);
    let (_, answer) = demo.json_rpc(serde_json::to_vec(&request).unwrap()).await;
    assert!(answer["result"]["error"]["ERROR"]["com.vmware.vapi.std.errors.unauthenticated"].is_object(), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(5), "refusing took {:?}", started.elapsed());
}
