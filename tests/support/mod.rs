//! Shared test helpers: stores that count or fail, and request helpers.
#![allow(dead_code)]

use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use tower_cis::store::{Resolution, StoreStats};
use tower_cis::{MemoryStore, Principal, Session, SessionId, SessionStore, StoreError, Timestamp};

pub const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);

/// Wraps a store and counts its `resolve` calls.
#[derive(Clone)]
pub struct Counting<S> {
    pub inner: S,
    pub resolves: Arc<AtomicU64>,
}

impl<S> Counting<S> {
    pub fn new(inner: S) -> Self {
        Counting { inner, resolves: Arc::default() }
    }

    pub fn resolves(&self) -> u64 {
        self.resolves.load(Ordering::SeqCst)
    }
}

impl<S: SessionStore> SessionStore for Counting<S> {
    type ResolveFuture = S::ResolveFuture;

    fn create(
        &self,
        principal: Principal,
        expiry: Option<Timestamp>,
    ) -> impl Future<Output = Result<Session, StoreError>> + Send {
        self.inner.create(principal, expiry)
    }

    fn resolve(&self, id: &SessionId) -> Self::ResolveFuture {
        self.resolves.fetch_add(1, Ordering::SeqCst);
        self.inner.resolve(id)
    }

    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner.delete(id)
    }

    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send {
        self.inner.stats()
    }

    fn user_sessions(&self, user: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner.user_sessions(user)
    }
}

/// A store that cannot be reached.
#[derive(Clone, Default)]
pub struct Unreachable;

impl SessionStore for Unreachable {
    type ResolveFuture = Ready<Result<Resolution, StoreError>>;

    async fn create(&self, _: Principal, _: Option<Timestamp>) -> Result<Session, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }

    fn resolve(&self, _: &SessionId) -> Self::ResolveFuture {
        ready(Err(StoreError::unavailable("connection refused")))
    }

    async fn delete(&self, _: &SessionId) -> Result<bool, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }

    async fn user_sessions(&self, _: &str) -> Result<u64, StoreError> {
        Err(StoreError::unavailable("connection refused"))
    }
}

/// A memory store on a manual clock, without a sweeper thread.
pub fn manual_store(policy: tower_cis::ExpiryPolicy) -> (MemoryStore, tower_cis::ManualClock) {
    let clock = tower_cis::ManualClock::new(T0);
    let store = MemoryStore::builder().policy(policy).clock(Arc::new(clock.clone())).sweep_interval(None).build();
    (store, clock)
}

/// The status, headers and whole body of a response.
pub async fn read<B>(response: Response<B>) -> (http::StatusCode, http::HeaderMap, String)
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::fmt::Debug,
{
    let (parts, body) = response.into_parts();
    let bytes = body.collect().await.expect("body failed").to_bytes();
    (parts.status, parts.headers, String::from_utf8(bytes.to_vec()).expect("body is not UTF-8"))
}

/// A GET request with the session header.
pub fn get_with(path: &str, id: &SessionId) -> Request<String> {
    Request::get(path).header("vmware-api-session-id", id.to_string()).body(String::new()).unwrap()
}

/// The exact 401 body of the modern API.
pub const UNAUTHENTICATED_MODERN: &str = r#"{"error_type":"UNAUTHENTICATED","messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}"#;

/// The exact 401 body of the legacy API.
pub const UNAUTHENTICATED_LEGACY: &str = r#"{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}}"#;

/// Wraps a store so that `resolve` first returns `Pending` once, as a remote
/// store would while its round trip is under way; once `down` is set, it
/// then answers that the store is unavailable.
#[derive(Clone)]
pub struct Remote<S> {
    pub inner: S,
    pub down: Arc<std::sync::atomic::AtomicBool>,
}

impl<S> Remote<S> {
    pub fn new(inner: S) -> Self {
        Remote { inner, down: Arc::default() }
    }
}

impl<S: SessionStore> SessionStore for Remote<S> {
    type ResolveFuture = std::pin::Pin<Box<dyn Future<Output = Result<Resolution, StoreError>> + Send>>;

    fn create(
        &self,
        principal: Principal,
        expiry: Option<Timestamp>,
    ) -> impl Future<Output = Result<Session, StoreError>> + Send {
        self.inner.create(principal, expiry)
    }

    fn resolve(&self, id: &SessionId) -> Self::ResolveFuture {
        let answer = (!self.down.load(Ordering::SeqCst)).then(|| self.inner.resolve(id));
        Box::pin(async move {
            tokio::task::yield_now().await;
            match answer {
                Some(answer) => answer.await,
                None => Err(StoreError::unavailable("connection refused")),
            }
        })
    }

    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<bool, StoreError>> + Send {
        self.inner.delete(id)
    }

    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send {
        self.inner.stats()
    }

    fn user_sessions(&self, user: &str) -> impl Future<Output = Result<u64, StoreError>> + Send {
        self.inner.user_sessions(user)
    }
}

/// A remote store that cannot be reached: `Pending` first, then an error.
pub fn unreachable_remote() -> Remote<Unreachable> {
    Remote::new(Unreachable)
}
