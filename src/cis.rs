//! [`Cis`]: the one entry point that owns the session store, the
//! authenticator and the clock, and hands out the layer and the services.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower_layer::Layer;
use tower_service::Service;

#[cfg(feature = "memory-store")]
use crate::MemoryStore;
use crate::auth::{Authenticator, ThrottlePolicy};
#[cfg(feature = "memory-store")]
use crate::auth::{LoginThrottle, PasswordAuthenticator, UserDirectory};
use crate::layer::{ResponseBody, ResponseFuture, SessionAuth};
use crate::rest::{LEGACY_SESSION_PATH, MODERN_SESSION_PATH, SessionService};
use crate::{ExpiryPolicy, SessionAuthLayer, SessionStore, SharedClock, SystemClock};

/// The cis services of one application.
///
/// - [`Cis::layer`]: the [`SessionAuthLayer`] for the application's own routes;
/// - [`Cis::session_service`]: the Session service, for `/api/session` and
///   `/rest/com/vmware/cis/session`;
/// - [`Cis::wrap`]: both at once around any tower service (plain hyper).
///
/// With axum, mount the session service beside the layered routes:
///
/// ```
/// use axum::{Extension, Router, routing::get};
/// use tower_cis::auth::{HashCost, UserDirectory};
/// use tower_cis::rest::{LEGACY_SESSION_PATH, MODERN_SESSION_PATH};
/// use tower_cis::{Cis, CisConfig, Session};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let users = UserDirectory::new()
///     .with_cost(HashCost::insecure_fast_for_tests())
///     .with_user("administrator@vsphere.local", "VMware1!")?;
/// let cis = Cis::in_memory(users, CisConfig::default());
///
/// let app: Router = Router::new()
///     .route("/api/demo/whoami", get(|Extension(session): Extension<Session>| async move { session.user().to_owned() }))
///     .layer(cis.layer())
///     .route_service(MODERN_SESSION_PATH, cis.session_service())
///     .route_service(LEGACY_SESSION_PATH, cis.session_service());
/// # Ok(())
/// # }
/// ```
///
/// With plain hyper, wrap the application: requests to the session paths go
/// to the Session service, every other request through the layer.
///
/// ```
/// # use std::convert::Infallible;
/// # use http::{Request, Response};
/// # use tower::service_fn;
/// # use tower_cis::{Cis, CisConfig, auth::UserDirectory};
/// let cis = Cis::in_memory(UserDirectory::new(), CisConfig::default());
/// let app = service_fn(|_: Request<hyper::body::Incoming>| async {
///     Ok::<_, Infallible>(Response::new(http_body_util::Full::new(bytes::Bytes::from("hello"))))
/// });
/// let service = hyper_util::service::TowerToHyperService::new(cis.wrap(app));
/// // hyper::server::conn::http1::Builder::new().serve_connection(io, service)
/// # let _ = service;
/// ```
pub struct Cis<St, A> {
    layer: SessionAuthLayer<St>,
    authenticator: Arc<A>,
    clock: SharedClock,
    sessions: SessionService<St, Arc<A>>,
}

impl<St: Clone, A> Clone for Cis<St, A> {
    fn clone(&self) -> Self {
        Cis {
            layer: self.layer.clone(),
            authenticator: Arc::clone(&self.authenticator),
            clock: Arc::clone(&self.clock),
            sessions: self.sessions.clone(),
        }
    }
}

impl<St, A> fmt::Debug for Cis<St, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cis").field("clock", &self.clock).finish_non_exhaustive()
    }
}

/// Settings of [`Cis::in_memory`].
#[derive(Debug, Clone)]
pub struct CisConfig {
    /// Idle timeout and maximum lifetime of sessions.
    pub policy: ExpiryPolicy,
    /// The clock shared by the store and the login throttle.
    pub clock: SharedClock,
    /// At most this many sessions in total.
    pub max_sessions: u64,
    /// At most this many sessions per user.
    pub max_sessions_per_user: u64,
    /// The login throttle's policy.
    pub throttle: ThrottlePolicy,
}

impl Default for CisConfig {
    fn default() -> Self {
        CisConfig {
            policy: ExpiryPolicy::default(),
            clock: Arc::new(SystemClock),
            max_sessions: 1_000_000,
            max_sessions_per_user: 1_000,
            throttle: ThrottlePolicy::default(),
        }
    }
}

#[cfg(feature = "memory-store")]
impl Cis<MemoryStore, PasswordAuthenticator> {
    /// Password login against `users`, sessions in a [`MemoryStore`].
    pub fn in_memory(users: UserDirectory, config: CisConfig) -> Self {
        let store = MemoryStore::builder()
            .policy(config.policy)
            .clock(Arc::clone(&config.clock))
            .max_sessions(config.max_sessions)
            .max_sessions_per_user(config.max_sessions_per_user)
            .build();
        let throttle = LoginThrottle::new(config.throttle, Arc::clone(&config.clock));
        let authenticator = PasswordAuthenticator::new(users).with_throttle(throttle);
        Cis::new(store, authenticator, config.clock)
    }
}

impl<St: SessionStore, A: Authenticator> Cis<St, A> {
    /// The cis services over `store` and `authenticator`; `clock` is the one
    /// both were built with.
    pub fn new(store: St, authenticator: A, clock: SharedClock) -> Self {
        let layer = SessionAuthLayer::new(store);
        Self::assemble(layer, Arc::new(authenticator), clock)
    }

    fn assemble(layer: SessionAuthLayer<St>, authenticator: Arc<A>, clock: SharedClock) -> Self {
        let sessions =
            SessionService::new(layer.store().clone(), Arc::clone(&authenticator), Arc::clone(layer.config()));
        Cis { layer, authenticator, clock, sessions }
    }

    /// The `WWW-Authenticate` challenge on every 401.
    pub fn with_challenge(self, challenge: HeaderValue) -> Self {
        Self::assemble(self.layer.with_challenge(challenge), self.authenticator, self.clock)
    }

    /// See [`SessionAuthLayer::refresh_on_completion`].
    pub fn refresh_on_completion(self, enabled: bool) -> Self {
        Self::assemble(self.layer.refresh_on_completion(enabled), self.authenticator, self.clock)
    }

    /// The layer for the application's routes.
    pub fn layer(&self) -> SessionAuthLayer<St> {
        self.layer.clone()
    }

    /// The Session service.
    pub fn session_service(&self) -> SessionService<St, Arc<A>> {
        self.sessions.clone()
    }

    /// The Session service on its paths, and `app` behind the layer.
    pub fn wrap<S>(&self, app: S) -> CisService<S, St, A> {
        CisService { app: self.layer.layer(app), sessions: self.sessions.clone() }
    }

    /// The session store.
    pub fn store(&self) -> &St {
        self.layer.store()
    }

    #[cfg(feature = "tasks")]
    pub(crate) fn shared_authenticator(&self) -> &Arc<A> {
        &self.authenticator
    }

    /// The authenticator.
    pub fn authenticator(&self) -> &A {
        &self.authenticator
    }

    /// The clock.
    pub fn clock(&self) -> &SharedClock {
        &self.clock
    }
}

/// An application wrapped by [`Cis::wrap`].
pub struct CisService<S, St, A> {
    app: SessionAuth<S, St>,
    sessions: SessionService<St, Arc<A>>,
}

impl<S: Clone, St: Clone, A> Clone for CisService<S, St, A> {
    fn clone(&self) -> Self {
        CisService { app: self.app.clone(), sessions: self.sessions.clone() }
    }
}

impl<S, St, A> fmt::Debug for CisService<S, St, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CisService").finish_non_exhaustive()
    }
}

type SessionResponse = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// The future of [`CisService`]'s responses.
    pub struct CisFuture<S, St, ReqBody>
    where
        S: Service<Request<ReqBody>>,
        St: SessionStore,
    {
        #[pin]
        kind: Kind<ResponseFuture<S, St, ReqBody>>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<App> {
        Session { response: SessionResponse },
        App { #[pin] response: App },
    }
}

impl<S, St, A, ReqBody, ResBody> Service<Request<ReqBody>> for CisService<S, St, A>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: SessionStore,
    A: Authenticator,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = CisFuture<S, St, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.app.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let path = request.uri().path();
        if path == MODERN_SESSION_PATH || path == LEGACY_SESSION_PATH {
            let (parts, _unread) = request.into_parts();
            CisFuture { kind: Kind::Session { response: Box::pin(self.sessions.respond(parts)) } }
        } else {
            CisFuture { kind: Kind::App { response: self.app.call(request) } }
        }
    }
}

impl<S, St, ReqBody, ResBody> Future for CisFuture<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: SessionStore,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Session { response } => {
                response.as_mut().poll(cx).map(|response| Ok(response.map(ResponseBody::full)))
            }
            KindProj::App { response } => response.poll(cx),
        }
    }
}
