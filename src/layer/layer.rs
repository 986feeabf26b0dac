//! The `Layer` that wraps services in [`SessionAuth`].

use std::sync::Arc;

use http::HeaderValue;
use tower_layer::Layer;

use super::config::{Config, DEFAULT_CHALLENGE};
use super::service::SessionAuth;
use crate::SessionStore;

/// Authenticates every request by its `vmware-api-session-id`.
///
/// ```
/// use std::convert::Infallible;
/// use http::{Request, Response};
/// use tower::{Service, ServiceExt, service_fn};
/// use tower_cis::{MemoryStore, Principal, Session, SessionAuthLayer, SessionStore};
/// use tower_layer::Layer;
///
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::new();
/// let app = service_fn(|request: Request<String>| async move {
///     let session = request.extensions().get::<Session>().unwrap();
///     Ok::<_, Infallible>(Response::new(format!("hello {}", session.user())))
/// });
/// let mut app = SessionAuthLayer::new(store.clone()).layer(app);
///
/// let session = store.create(Principal::new("alice"), None).await.unwrap();
/// let request = Request::get("/api/vcenter/vm")
///     .header("vmware-api-session-id", session.id().to_string())
///     .body(String::new())
///     .unwrap();
/// let response = app.ready().await.unwrap().call(request).await.unwrap();
/// assert_eq!(response.status(), 200);
///
/// let anonymous = Request::get("/api/vcenter/vm").body(String::new()).unwrap();
/// let response = app.ready().await.unwrap().call(anonymous).await.unwrap();
/// assert_eq!(response.status(), 401);
/// # });
/// ```
#[derive(Debug)]
pub struct SessionAuthLayer<St> {
    store: St,
    config: Arc<Config>,
}

impl<St: Clone> Clone for SessionAuthLayer<St> {
    fn clone(&self) -> Self {
        SessionAuthLayer { store: self.store.clone(), config: Arc::clone(&self.config) }
    }
}

impl<St: SessionStore> SessionAuthLayer<St> {
    /// A layer that resolves sessions in `store`; legacy bodies and the cookie
    /// for paths under `/rest/`, challenge `Basic realm="VAPI endpoint"`.
    pub fn new(store: St) -> Self {
        let config = Config::new(Some("/rest/".into()), HeaderValue::from_static(DEFAULT_CHALLENGE), false);
        SessionAuthLayer { store, config: Arc::new(config) }
    }

    /// Paths under this prefix belong to the legacy API: their rejections use
    /// the legacy body and their session id may come from the
    /// `vmware-api-session-id` cookie. `None` treats every path as modern.
    pub fn with_legacy_prefix(self, prefix: Option<&str>) -> Self {
        self.reconfigure(|legacy, _, _| *legacy = prefix.map(Into::into))
    }

    /// The `WWW-Authenticate` challenge sent with every 401, e.g. vCenter's
    /// `Basic realm="VAPI endpoint",SIGN realm=…,service="VAPI endpoint",sts="…"`.
    pub fn with_challenge(self, challenge: HeaderValue) -> Self {
        self.reconfigure(|_, current, _| *current = challenge)
    }

    /// Also refresh the idle timer when the inner service has produced its
    /// response, so a long request does not leave its session idle-expired
    /// right after. Costs a second store call per request; never recreates a
    /// session deleted meanwhile.
    pub fn refresh_on_completion(self, enabled: bool) -> Self {
        self.reconfigure(|_, _, refresh| *refresh = enabled)
    }

    /// The store sessions are resolved in.
    pub fn store(&self) -> &St {
        &self.store
    }

    pub(crate) fn config(&self) -> &Arc<Config> {
        &self.config
    }

    fn reconfigure(self, change: impl FnOnce(&mut Option<Box<str>>, &mut HeaderValue, &mut bool)) -> Self {
        let config = Arc::new(self.config.with(change));
        SessionAuthLayer { store: self.store, config }
    }
}

impl<S, St: SessionStore> Layer<S> for SessionAuthLayer<St> {
    type Service = SessionAuth<S, St>;

    fn layer(&self, inner: S) -> Self::Service {
        SessionAuth::new(inner, self.store.clone(), Arc::clone(&self.config))
    }
}
