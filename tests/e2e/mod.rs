//! End-to-end harness: the example server's application (`crate::app`, which
//! the including test file declares with `#[path]`) served on a real TCP port
//! of 127.0.0.1, on a manual clock, and a hyper client to talk to it.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_cis::auth::{HashCost, ThrottlePolicy, UserDirectory};
use tower_cis::{Cis, CisConfig, ExpiryPolicy, ManualClock, Timestamp};

use crate::app;

/// Where the manual clock of every test server starts.
pub const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);
/// [`T0`] as the wire renders it.
pub const T0_TEXT: &str = "2026-12-04T19:38:18.110Z";

/// A user of every test server, named as its directory has it.
pub const ADMIN: &str = "administrator@vsphere.local";
/// [`ADMIN`]'s password.
pub const ADMIN_PASSWORD: &str = "VMware1!";
/// A second user of every test server.
pub const ALICE: &str = "alice";
/// [`ALICE`]'s password.
pub const ALICE_PASSWORD: &str = "correct horse battery staple";

/// The header that carries the session id.
pub const SESSION: &str = "vmware-api-session-id";

/// The exact 401 body of the modern API (rest.md, "Error body (modern API)").
pub const UNAUTHENTICATED_MODERN: &str = r#"{"error_type":"UNAUTHENTICATED","messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}"#;
/// The exact 401 body of the legacy API (rest.md, "Legacy error body").
pub const UNAUTHENTICATED_LEGACY: &str = r#"{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}}"#;
/// The challenge sent with every 401.
pub const CHALLENGE: &str = r#"Basic realm="VAPI endpoint""#;

/// Status, headers and the whole body (UTF-8) of a response.
pub type Reply = (StatusCode, HeaderMap, String);

/// How a test server is configured.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Idle timeout and maximum lifetime of sessions.
    pub policy: ExpiryPolicy,
    /// The login throttle.
    pub throttle: ThrottlePolicy,
}

/// A hyper client bound to one server's base URL.
#[derive(Clone, Debug)]
pub struct Http {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Http {
    /// A client for `http://{authority}`.
    pub fn new(authority: &str) -> Self {
        let client = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
        Http { base: format!("http://{authority}"), client }
    }

    /// Sends `method path` with `headers` (repeated names are sent as
    /// repeated header lines) and an empty body.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.try_send(method.clone(), path, headers).await.unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// [`Http::send`] with a request body.
    pub async fn send_body(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        self.try_send_body(method.clone(), path, headers, body)
            .await
            .unwrap_or_else(|error| panic!("{method} {path}: {error}"))
    }

    /// [`Http::send`], with transport errors returned rather than panicking.
    pub async fn try_send(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        self.try_send_body(method, path, headers, "").await
    }

    async fn try_send_body(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<Reply, Box<dyn std::error::Error + Send + Sync>> {
        let body = Full::new(Bytes::copy_from_slice(body.as_bytes()));
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base)).body(body)?;
        for (name, value) in headers {
            request.headers_mut().append(HeaderName::from_bytes(name.as_bytes())?, HeaderValue::from_str(value)?);
        }
        let response = self.client.request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok((parts.status, parts.headers, String::from_utf8(body.to_vec())?))
    }
}

/// The example application served on 127.0.0.1 with a manual clock. Dropping
/// it drops the shutdown sender, which stops the server.
pub struct TestServer {
    /// The address the server listens on.
    pub addr: SocketAddr,
    /// The clock of the session store and the login throttle.
    pub clock: ManualClock,
    http: Http,
    shutdown: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<()>>,
}

impl TestServer {
    /// A server with the default expiry and throttle policies.
    pub async fn start() -> Self {
        Self::start_with(Settings::default()).await
    }

    /// A server with `settings`, users [`ADMIN`] and [`ALICE`].
    pub async fn start_with(settings: Settings) -> Self {
        let users = UserDirectory::new()
            .with_cost(HashCost::insecure_fast_for_tests())
            .with_user(ADMIN, ADMIN_PASSWORD)
            .expect("admin user")
            .with_user(ALICE, ALICE_PASSWORD)
            .expect("alice user");
        let clock = ManualClock::new(T0);
        let config = CisConfig {
            policy: settings.policy,
            clock: Arc::new(clock.clone()),
            throttle: settings.throttle,
            ..CisConfig::default()
        };
        let cis = Cis::in_memory(users, config);
        let (listener, addr) = app::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.expect("bind 127.0.0.1:0");
        assert_ne!(addr.port(), 0, "bind reports the port it got");
        let (shutdown, stop) = oneshot::channel::<()>();
        // Stops on an explicit signal and when the sender is dropped.
        let served = tokio::spawn(app::serve(listener, cis, async move {
            let _ = stop.await;
        }));
        TestServer { addr, clock, http: Http::new(&addr.to_string()), shutdown: Some(shutdown), served: Some(served) }
    }

    /// A client of this server, e.g. for a spawned request.
    pub fn http(&self) -> Http {
        self.http.clone()
    }

    /// See [`Http::send`].
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Reply {
        self.http.send(method, path, headers).await
    }

    /// See [`Http::send_body`].
    pub async fn send_body(&self, method: Method, path: &str, headers: &[(&str, &str)], body: &str) -> Reply {
        self.http.send_body(method, path, headers, body).await
    }

    /// Logs in on the modern API and returns the session id.
    pub async fn login(&self, user: &str, password: &str) -> String {
        let (status, _, body) =
            self.send(Method::POST, "/api/session", &[("authorization", &basic(user, password))]).await;
        assert_eq!(status, StatusCode::CREATED, "login as {user}: {body}");
        modern_id(&body)
    }

    /// Logs in on the legacy API with `vmware-use-header-authn: true` and
    /// returns the session id.
    pub async fn login_legacy(&self, user: &str, password: &str) -> String {
        let headers = [("authorization", basic(user, password)), ("vmware-use-header-authn", "true".to_owned())];
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let (status, _, body) = self.send(Method::POST, "/rest/com/vmware/cis/session", &headers).await;
        assert_eq!(status, StatusCode::OK, "legacy login as {user}: {body}");
        legacy_id(&body)
    }

    /// Signals shutdown and returns the task running `serve`.
    pub fn shutdown(&mut self) -> JoinHandle<()> {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        self.served.take().expect("shut down twice")
    }
}

/// The `Authorization` value for Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))
}

/// The one value of header `name`, which must be text.
pub fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    assert!(values.next().is_none(), "header {name} is repeated: {headers:?}");
    Some(value.to_str().expect("header is not text"))
}

/// Whether `id` looks like a vCenter session id: 32 lowercase hex characters.
pub fn is_vcenter_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The id in a modern create's body, a bare JSON string.
pub fn modern_id(body: &str) -> String {
    let id = body.strip_prefix('"').and_then(|b| b.strip_suffix('"')).unwrap_or_else(|| panic!("not a string: {body}"));
    assert!(is_vcenter_id(id), "not a vCenter session id: {body}");
    id.to_owned()
}

/// The id in a legacy create's body, `{"value":"<id>"}`.
pub fn legacy_id(body: &str) -> String {
    let id = body
        .strip_prefix(r#"{"value":""#)
        .and_then(|b| b.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("not a legacy value: {body}"));
    assert!(is_vcenter_id(id), "not a vCenter session id: {body}");
    id.to_owned()
}

/// The exact session info body of the modern `get`.
pub fn info(user: &str, created: &str, last_accessed: &str) -> String {
    format!(r#"{{"user":"{user}","created_time":"{created}","last_accessed_time":"{last_accessed}"}}"#)
}

/// The exact session info body of the legacy `get`.
pub fn legacy_info(user: &str, created: &str, last_accessed: &str) -> String {
    format!(r#"{{"value":{}}}"#, info(user, created, last_accessed))
}

/// The exact modern body of a vAPI error with one message without arguments.
pub fn modern_error(error_type: &str, id: &str, text: &str) -> String {
    format!(r#"{{"error_type":"{error_type}","messages":[{{"args":[],"default_message":"{text}","id":"{id}"}}]}}"#)
}

/// The exact legacy body of a vAPI error with one message without arguments.
pub fn legacy_error(error_type: &str, id: &str, text: &str) -> String {
    let kind = error_type.to_ascii_lowercase();
    format!(
        r#"{{"type":"com.vmware.vapi.std.errors.{kind}","value":{{"messages":[{{"args":[],"default_message":"{text}","id":"{id}"}}]}}}}"#
    )
}

/// Asserts a 401 with exactly `body` and the challenge.
#[track_caller]
pub fn assert_unauthenticated(reply: &Reply, body: &str, what: &str) {
    let (status, headers, text) = reply;
    assert_eq!(*status, StatusCode::UNAUTHORIZED, "{what}: {text}");
    assert_eq!(text, body, "{what}");
    assert_eq!(header(headers, "www-authenticate"), Some(CHALLENGE), "{what}");
    assert_eq!(header(headers, "content-type"), Some("application/json"), "{what}");
}
