//! The session-authenticating `Service`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use tower_service::Service;

use super::ResponseBody;
use super::config::{Config, Rejection, admit};

use super::future::{Pending, ResponseFuture};
use super::presented::presented_session_id;
use crate::SessionStore;
use crate::error::ApiFlavor;

/// The service [`SessionAuthLayer`](super::SessionAuthLayer) wraps around an
/// application: resolves the request's session, then calls the application
/// with the [`Session`](crate::Session) in the request extensions, or answers
/// 401/503 itself.
#[derive(Debug)]
pub struct SessionAuth<S, St> {
    inner: S,
    store: St,
    config: Arc<Config>,
}

impl<S: Clone, St: Clone> Clone for SessionAuth<S, St> {
    fn clone(&self) -> Self {
        SessionAuth { inner: self.inner.clone(), store: self.store.clone(), config: Arc::clone(&self.config) }
    }
}

impl<S, St> SessionAuth<S, St> {
    pub(super) fn new(inner: S, store: St, config: Arc<Config>) -> Self {
        SessionAuth { inner, store, config }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }
}

impl<S, St, ReqBody, ResBody> Service<Request<ReqBody>> for SessionAuth<S, St>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone,
    St: SessionStore,
    ResBody: Body<Data = Bytes>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, St, ReqBody>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<ReqBody>) -> Self::Future {
        let legacy = self.config.is_legacy(request.uri().path());
        let flavor = if legacy { ApiFlavor::Legacy } else { ApiFlavor::Modern };
        match presented_session_id(request.headers(), legacy) {
            Err(problem) => {
                tracing::debug!(reason = problem.as_str(), "session rejected");
                ResponseFuture::rejected(self.config.response(Rejection::Unauthenticated, flavor))
            }
            Ok(id) => {
                let refresh = self.config.refresh_on_completion.then(|| (self.store.clone(), id));
                let mut resolve = self.store.resolve(&id);
                // Stores that answer at once are answered here, without
                // parking the request in the future.
                let mut quick = Context::from_waker(Waker::noop());
                match Pin::new(&mut resolve).poll(&mut quick) {
                    Poll::Ready(outcome) => match admit(outcome) {
                        Ok(session) => {
                            request.extensions_mut().insert(session);
                            ResponseFuture::running(self.inner.call(request), refresh)
                        }
                        Err(rejection) => ResponseFuture::rejected(self.config.response(rejection, flavor)),
                    },
                    Poll::Pending => {
                        // The service that was driven to readiness handles
                        // this request; a fresh clone waits for the next one.
                        let fresh = self.inner.clone();
                        let inner = std::mem::replace(&mut self.inner, fresh);
                        let config = Arc::clone(&self.config);
                        ResponseFuture::pending(Pending { resolve, inner, request, config, flavor }, refresh)
                    }
                }
            }
        }
    }
}
