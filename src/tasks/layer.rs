//! `vmw-task=true`: any handler runs as a task when the query asks for it.

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Limited};
use pin_project_lite::pin_project;
use serde_json::Value;
use tower_layer::Layer;
use tower_service::Service;

use super::{TaskContext, TaskManager, TaskSpec, TaskStore};
use crate::Session;
use crate::error::{ApiFlavor, ErrorType, LocalizableMessage, VapiError};
use crate::layer::ResponseBody;

/// The most bytes of a handler's response kept as a task's result.
pub const MAX_TASK_RESULT_BYTES: usize = 1 << 20;

/// Lets the wrapped handler run as a task when its query string has
/// `vmw-task=true`: the call then answers at once, 202 with the task id as a
/// bare JSON string, and the handler's response becomes the task's outcome (a
/// 2xx JSON body its result, an error status its vAPI error). Without the
/// flag the handler answers as usual. While running as a task the handler
/// finds a [`TaskContext`] in its request extensions to report progress.
///
/// Put it inside the [`SessionAuthLayer`](crate::SessionAuthLayer): the task's
/// owner is the request's session principal.
pub struct TaskLayer<T> {
    manager: TaskManager<T>,
    spec: Arc<TaskSpec>,
}

impl<T: Clone> Clone for TaskLayer<T> {
    fn clone(&self) -> Self {
        TaskLayer { manager: self.manager.clone(), spec: Arc::clone(&self.spec) }
    }
}

impl<T> fmt::Debug for TaskLayer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskLayer").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl<T: TaskStore> TaskLayer<T> {
    /// Runs the handler as a task described by `spec` when asked.
    pub fn new(manager: TaskManager<T>, spec: TaskSpec) -> Self {
        TaskLayer { manager, spec: Arc::new(spec) }
    }
}

impl<S, T: Clone> Layer<S> for TaskLayer<T> {
    type Service = TaskService<S, T>;

    fn layer(&self, inner: S) -> Self::Service {
        TaskService { inner, manager: self.manager.clone(), spec: Arc::clone(&self.spec) }
    }
}

/// A handler wrapped by [`TaskLayer`].
pub struct TaskService<S, T> {
    inner: S,
    manager: TaskManager<T>,
    spec: Arc<TaskSpec>,
}

impl<S: Clone, T: Clone> Clone for TaskService<S, T> {
    fn clone(&self) -> Self {
        TaskService { inner: self.inner.clone(), manager: self.manager.clone(), spec: Arc::clone(&self.spec) }
    }
}

impl<S, T> fmt::Debug for TaskService<S, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskService").field("spec", &self.spec).finish_non_exhaustive()
    }
}

/// Whether the query string asks for `vmw-task=true`.
fn wants_task(query: Option<&str>) -> bool {
    matches!(crate::rest::query::single(query, "vmw-task"), Ok(Some(value)) if value == "true")
}

type Starting = Pin<Box<dyn Future<Output = Response<Bytes>> + Send>>;

pin_project! {
    /// The future of [`TaskService`]'s responses.
    pub struct TaskFuture<F> {
        #[pin]
        kind: Kind<F>,
    }
}

pin_project! {
    #[project = KindProj]
    enum Kind<F> {
        Inner { #[pin] future: F },
        Starting { future: Starting },
    }
}

impl<S, T, ReqBody, ResBody> Service<Request<ReqBody>> for TaskService<S, T>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: fmt::Display + Send,
    T: TaskStore,
    ReqBody: Send + 'static,
    ResBody: Body<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<ResponseBody<ResBody>>;
    type Error = S::Error;
    type Future = TaskFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        if !wants_task(request.uri().query()) {
            return TaskFuture { kind: Kind::Inner { future: self.inner.call(request) } };
        }
        let Some(owner) = request.extensions().get::<Session>().map(|s| Arc::clone(s.principal())) else {
            let error = VapiError::new(
                ErrorType::InternalServerError,
                LocalizableMessage::new(
                    "com.vmware.cis.tasks.layer.no_session",
                    "The server is misconfigured: tasks need the session layer in front of them.",
                ),
            );
            let response = error.response(ApiFlavor::Modern, None);
            return TaskFuture { kind: Kind::Starting { future: Box::pin(std::future::ready(response)) } };
        };
        let fresh = self.inner.clone();
        let handler = std::mem::replace(&mut self.inner, fresh);
        let (manager, spec) = (self.manager.clone(), TaskSpec::clone(&self.spec));
        let future = Box::pin(async move {
            let started = manager.start(spec, owner, move |context| run_handler(handler, request, context)).await;
            match started {
                Ok(id) => {
                    let mut response = Response::new(Bytes::from(serde_json::to_vec(&id).unwrap_or_default()));
                    *response.status_mut() = StatusCode::ACCEPTED;
                    response
                        .headers_mut()
                        .insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
                    response
                }
                Err(error) => error.response(ApiFlavor::Modern, None),
            }
        });
        TaskFuture { kind: Kind::Starting { future } }
    }
}

impl<F, B, E> Future for TaskFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<ResponseBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Inner { future } => future.poll(cx).map_ok(|response| response.map(ResponseBody::inner)),
            KindProj::Starting { future } => future.as_mut().poll(cx).map(|r| Ok(r.map(ResponseBody::full))),
        }
    }
}

/// Calls the handler with the task context in its extensions and turns its
/// response into the task's outcome.
async fn run_handler<S, T, ReqBody, ResBody>(
    mut handler: S,
    mut request: Request<ReqBody>,
    context: TaskContext<T>,
) -> Result<Value, VapiError>
where
    S: Service<Request<ReqBody>, Response = Response<ResBody>>,
    S::Error: fmt::Display,
    T: TaskStore,
    ResBody: Body<Data = Bytes>,
    ResBody::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let failed = |what: String| {
        VapiError::new(ErrorType::Error, LocalizableMessage::new("com.vmware.cis.tasks.operation.failed", what))
    };
    request.extensions_mut().insert(context);
    poll_fn(|cx| handler.poll_ready(cx)).await.map_err(|e| failed(format!("The operation could not start: {e}")))?;
    let response = handler.call(request).await.map_err(|e| failed(format!("The operation failed: {e}")))?;
    let (parts, body) = response.into_parts();
    let bytes = Limited::new(body, MAX_TASK_RESULT_BYTES)
        .collect()
        .await
        .map_err(|e| failed(format!("The operation's result could not be read: {e}")))?
        .to_bytes();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    if parts.status.is_success() {
        Ok(value)
    } else {
        Err(VapiError::from_json(&value)
            .unwrap_or_else(|| failed(format!("The operation failed with HTTP status {}.", parts.status))))
    }
}
