//! The response future of [`SessionAuth`](super::SessionAuth): resolve the
//! session, then run the inner service's future to completion (and, if asked,
//! refresh the idle timer once more). A plain state machine: nothing is boxed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::ResponseBody;
use super::config::{Config, Rejection};
use crate::error::ApiFlavor;
use crate::store::Resolution;
use crate::{SessionId, SessionStore};

pin_project! {
    /// The future of [`SessionAuth`](super::SessionAuth)'s responses.
    pub struct ResponseFuture<S, St, ReqBody>
    where
        S: Service<Request<ReqBody>>,
        St: SessionStore,
    {
        #[pin]
        state: State<St::ResolveFuture, S::Future, S, Request<ReqBody>, S::Response>,
        config: Option<Arc<Config>>,
        flavor: ApiFlavor,
        refresh: Option<(St, SessionId)>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<Resolve, Inner, S, Req, Res> {
        /// Waiting for the store; the ready inner service and the request wait too.
        Resolving { #[pin] resolve: Resolve, admit: Option<(S, Req)> },
        /// The request was admitted and runs to completion, whatever happens
        /// to its session meanwhile.
        Running { #[pin] inner: Inner },
        /// The response is ready; the idle timer is refreshed once more.
        Refreshing { #[pin] resolve: Resolve, response: Option<Res> },
        /// The layer answers itself.
        Rejected { response: Option<Response<Bytes>> },
    }
}

impl<S, St, ReqBody> ResponseFuture<S, St, ReqBody>
where
    S: Service<Request<ReqBody>>,
    St: SessionStore,
{
    pub(super) fn rejected(response: Response<Bytes>) -> Self {
        ResponseFuture {
            state: State::Rejected { response: Some(response) },
            config: None,
            flavor: ApiFlavor::Modern,
            refresh: None,
        }
    }

    pub(super) fn resolving(
        resolve: St::ResolveFuture,
        inner: S,
        request: Request<ReqBody>,
        config: Arc<Config>,
        flavor: ApiFlavor,
        refresh: Option<(St, SessionId)>,
    ) -> Self {
        ResponseFuture {
            state: State::Resolving { resolve, admit: Some((inner, request)) },
            config: Some(config),
            flavor,
            refresh,
        }
    }
}

const POLLED_AFTER_COMPLETION: &str = "SessionAuth's ResponseFuture polled after completion";

impl<S, St, ReqBody, ResBody> Future for ResponseFuture<S, St, ReqBody>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    St: SessionStore,
{
    type Output = Result<Response<ResponseBody<ResBody>>, S::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            match this.state.as_mut().project() {
                StateProj::Resolving { resolve, admit } => {
                    let rejection = match ready!(resolve.poll(cx)) {
                        Ok(Resolution::Active(session)) => {
                            let (mut inner, mut request) = admit.take().expect(POLLED_AFTER_COMPLETION);
                            request.extensions_mut().insert(session);
                            let inner = inner.call(request);
                            this.state.set(State::Running { inner });
                            continue;
                        }
                        Ok(Resolution::Unknown) => {
                            tracing::debug!(reason = "unknown", "session rejected");
                            Rejection::Unauthenticated
                        }
                        Ok(Resolution::Expired) => {
                            tracing::debug!(reason = "expired", "session rejected");
                            Rejection::Unauthenticated
                        }
                        Err(error) => {
                            tracing::warn!(%error, "session store failed; answering 503");
                            Rejection::Unavailable
                        }
                    };
                    let config = this.config.as_ref().expect(POLLED_AFTER_COMPLETION);
                    let response = config.response(rejection, *this.flavor);
                    this.state.set(State::Rejected { response: Some(response) });
                }
                StateProj::Running { inner } => {
                    let response = ready!(inner.poll(cx))?;
                    match this.refresh.take() {
                        Some((store, id)) => {
                            let resolve = store.resolve(&id);
                            this.state.set(State::Refreshing { resolve, response: Some(response) });
                        }
                        None => return Poll::Ready(Ok(response.map(ResponseBody::inner))),
                    }
                }
                StateProj::Refreshing { resolve, response } => {
                    // Whatever the store says now, the response stands: the
                    // request was admitted. A failed refresh is only logged.
                    if let Err(error) = ready!(resolve.poll(cx)) {
                        tracing::warn!(%error, "could not refresh the session after the response");
                    }
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok(response.map(ResponseBody::rejection)));
                }
            }
        }
    }
}
