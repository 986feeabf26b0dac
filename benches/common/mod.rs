//! What the benches share: the handler every stack wraps.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::task::{Context, Poll};

use http::{Request, Response};
use tower_service::Service;

/// The handler: answers at once with an empty body.
#[derive(Clone, Copy)]
pub struct Bare;

impl Service<Request<()>> for Bare {
    type Response = Response<http_body_util::Empty<bytes::Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(http_body_util::Empty::new())))
    }
}
