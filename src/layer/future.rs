//! The response future of [`SessionAuth`](super::SessionAuth): the inner
//! service's future once the session is resolved, the layer's own answer, or
//! (for stores that must wait) the pending look-up. Nothing is boxed on the
//! path of a store that answers at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use super::ResponseBody;
use super::config::{Config, admit};
use crate::error::ApiFlavor;
use crate::{SessionId, SessionStore};

pin_project! {
    /// The future of [`SessionAuth`](super::SessionAuth)'s responses.
    pub struct ResponseFuture<S, St, ReqBody>
    where
        S: Service<Request<ReqBody>>,
        St: SessionStore,
    {
        #[pin]
        state: State<S::Future, Box<Pending<S, St, ReqBody>>, Box<(St::ResolveFuture, S::Response)>>,
        refresh: Option<(St, SessionId)>,
    }
}

/// A request waiting for a store that could not answer at once.
pub(super) struct Pending<S, St: SessionStore, ReqBody> {
    pub(super) resolve: St::ResolveFuture,
    pub(super) inner: S,
    pub(super) request: Request<ReqBody>,
    pub(super) config: Arc<Config>,
    pub(super) flavor: ApiFlavor,
}

pin_project! {
    #[project = StateProj]
    enum State<Inner, Waiting, Refresh> {
        /// Waiting for the store.
        Resolving { waiting: Option<Waiting> },
        /// The request was admitted and runs to completion, whatever happens
        /// to its session meanwhile.
        Running { #[pin] inner: Inner },
        /// The response is ready; the idle timer is refreshed once more, by a
        /// store that could not answer at once (boxed, so that this rare
        /// state does not make every request's future bigger).
        Refreshing { refresh: Option<Refresh> },
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
        ResponseFuture { state: State::Rejected { response: Some(response) }, refresh: None }
    }

    pub(super) fn running(inner: S::Future, refresh: Option<(St, SessionId)>) -> Self {
        ResponseFuture { state: State::Running { inner }, refresh }
    }

    pub(super) fn pending(pending: Pending<S, St, ReqBody>, refresh: Option<(St, SessionId)>) -> Self {
        ResponseFuture { state: State::Resolving { waiting: Some(Box::new(pending)) }, refresh }
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
                StateProj::Resolving { waiting } => {
                    let pending = waiting.as_mut().expect(POLLED_AFTER_COMPLETION);
                    let outcome = ready!(Pin::new(&mut pending.resolve).poll(cx));
                    let Pending { mut inner, mut request, config, flavor, .. } =
                        *waiting.take().expect(POLLED_AFTER_COMPLETION);
                    match admit(outcome) {
                        Ok(session) => {
                            request.extensions_mut().insert(session);
                            this.state.set(State::Running { inner: inner.call(request) });
                        }
                        Err(rejection) => {
                            let response = config.response(rejection, flavor);
                            this.state.set(State::Rejected { response: Some(response) });
                        }
                    }
                }
                StateProj::Running { inner } => {
                    let response = ready!(inner.poll(cx))?;
                    let Some((store, id)) = this.refresh.take() else {
                        return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                    };
                    let mut resolve = store.resolve(&id);
                    match Pin::new(&mut resolve).poll(cx) {
                        Poll::Ready(outcome) => {
                            refreshed(outcome);
                            return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                        }
                        Poll::Pending => {
                            this.state.set(State::Refreshing { refresh: Some(Box::new((resolve, response))) });
                        }
                    }
                }
                StateProj::Refreshing { refresh } => {
                    let (resolve, _) = &mut **refresh.as_mut().expect(POLLED_AFTER_COMPLETION);
                    refreshed(ready!(Pin::new(resolve).poll(cx)));
                    let (_, response) = *refresh.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok(response.map(ResponseBody::inner)));
                }
                StateProj::Rejected { response } => {
                    let response = response.take().expect(POLLED_AFTER_COMPLETION);
                    return Poll::Ready(Ok(response.map(ResponseBody::full)));
                }
            }
        }
    }
}

/// Whatever the store says after the response, the response stands: the
/// request was admitted. A failed refresh is only logged.
fn refreshed(outcome: Result<crate::store::Resolution, crate::StoreError>) {
    if let Err(error) = outcome {
        tracing::warn!(%error, "could not refresh the session after the response");
    }
}
