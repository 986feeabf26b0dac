//! The vAPI JSON-RPC endpoint (`POST /api`): the Session and Tasks services
//! and the application's own operations, each with its `$task` variant.

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::{Map, Value};

use super::convert::{self, invalid_input, operation_input, optional, required_string};
use super::envelope::{self, Invoke, ProtocolError};
use super::{DataValue, StructValue};
use crate::auth::{Authenticator, ClientInfo, Credential};
use crate::error::{ErrorType, LocalizableMessage, VapiError};
use crate::layer::SESSION_HEADER;
use crate::layer::config::store_unavailable;
use crate::store::Resolution;
use crate::tasks::{TaskContext, TaskId, TaskManager, TaskSpec, TaskStore};
use crate::{Cis, Session, SessionId, SessionStore, StoreErrorKind};

/// The largest request body the endpoint reads.
pub const MAX_REQUEST_BYTES: usize = 1 << 20;

const USER_PASS: &str = "com.vmware.vapi.std.security.user_pass";
const SESSION_ID: &str = "com.vmware.vapi.std.security.session_id";
const SAML_BEARER: &str = "com.vmware.vapi.std.security.saml_bearer_token";
const SAML_HOK: &str = "com.vmware.vapi.std.security.saml_hok_token";

/// One call of an application operation.
pub struct Invocation<T> {
    /// The `operation-input` structure.
    pub input: StructValue,
    /// The caller's session.
    pub session: Session,
    /// The task context, when the call is the operation's `$task` variant.
    pub task: Option<TaskContext<T>>,
}

type Output = Pin<Box<dyn Future<Output = Result<DataValue, VapiError>> + Send>>;
type Handler<T> = Arc<dyn Fn(Invocation<T>) -> Output + Send + Sync>;

struct Operation<T> {
    spec: TaskSpec,
    handler: Handler<T>,
}

/// The vAPI JSON-RPC endpoint: mount it at `POST /api`, outside the session
/// layer (credentials travel in the request body).
///
/// Built in: `com.vmware.cis.session` (`create`, `get`, `delete`) and
/// `com.vmware.cis.tasks` (`get`, `list`, `cancel`). Applications register
/// their own operations with [`JsonRpcEndpoint::operation`]; each also
/// answers as `<operation>$task`, started through the task manager.
///
/// Every vAPI error is answered in band with HTTP 200 (the SDK raises on any
/// other status before reading the body); JSON-RPC protocol errors are kept
/// for malformed envelopes.
pub struct JsonRpcEndpoint<St, A, T> {
    inner: Arc<Inner<St, A, T>>,
}

struct Inner<St, A, T> {
    store: St,
    authenticator: Arc<A>,
    tasks: TaskManager<T>,
    operations: HashMap<(String, String), Operation<T>>,
}

impl<St, A, T> Clone for JsonRpcEndpoint<St, A, T> {
    fn clone(&self) -> Self {
        JsonRpcEndpoint { inner: Arc::clone(&self.inner) }
    }
}

impl<St, A, T> fmt::Debug for JsonRpcEndpoint<St, A, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut operations: Vec<_> = self.inner.operations.keys().collect();
        operations.sort();
        f.debug_struct("JsonRpcEndpoint").field("operations", &operations).finish_non_exhaustive()
    }
}

impl<St: SessionStore, A: Authenticator, T: TaskStore> JsonRpcEndpoint<St, A, T> {
    /// The endpoint of `cis`'s sessions and `tasks`.
    pub fn new(cis: &Cis<St, A>, tasks: TaskManager<T>) -> Self {
        let inner = Inner {
            store: cis.store().clone(),
            authenticator: Arc::clone(cis.shared_authenticator()),
            tasks,
            operations: HashMap::new(),
        };
        JsonRpcEndpoint { inner: Arc::new(inner) }
    }

    /// Registers `handler` as `spec.service`/`spec.operation`, and as
    /// `spec.operation$task`, which answers the task id at once and keeps the
    /// handler's output as the task's result. Must be called before the
    /// endpoint is cloned.
    ///
    /// # Panics
    ///
    /// If the endpoint was already cloned (register everything first).
    pub fn operation<F, Fut>(mut self, spec: TaskSpec, handler: F) -> Self
    where
        F: Fn(Invocation<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<DataValue, VapiError>> + Send + 'static,
    {
        let handler: Handler<T> = Arc::new(move |invocation| Box::pin(handler(invocation)));
        let inner = Arc::get_mut(&mut self.inner).expect("register operations before cloning the endpoint");
        inner.operations.insert((spec.service.clone(), spec.operation.clone()), Operation { spec, handler });
        self
    }

    async fn respond<B>(self, request: Request<B>) -> Response<Bytes>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        if request.method() != Method::POST {
            let mut response = reply(
                StatusCode::METHOD_NOT_ALLOWED,
                &ProtocolError {
                    code: -32600,
                    message: "Invalid Request: vAPI JSON-RPC calls are POSTs",
                    id: Value::Null,
                }
                .to_json(),
            );
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
        let (parts, body) = request.into_parts();
        let Ok(body) = Limited::new(body, MAX_REQUEST_BYTES).collect().await.map(|b| b.to_bytes()) else {
            let error = ProtocolError { code: -32600, message: "Invalid Request: body too large", id: Value::Null };
            return reply(StatusCode::PAYLOAD_TOO_LARGE, &error.to_json());
        };
        let call = match envelope::parse(&body) {
            Ok(call) => call,
            Err(error) => return reply(StatusCode::OK, &error.to_json()),
        };
        let header_session = parts.headers.get(SESSION_HEADER).map(|value| value.as_bytes().to_vec());
        let client = parts.extensions.get::<ClientInfo>().cloned().unwrap_or_default();
        let outcome = self.invoke(&call, header_session.as_deref(), &client).await;
        if let Err(error) = &outcome {
            tracing::debug!(service = call.service, operation = call.operation, %error, "vAPI call failed");
        }
        let outcome = outcome.map_err(|error| convert::error(&error));
        reply(StatusCode::OK, &envelope::result(&call.id, outcome))
    }

    async fn invoke(
        &self,
        call: &Invoke,
        header_session: Option<&[u8]>,
        client: &ClientInfo,
    ) -> Result<DataValue, VapiError> {
        let input = operation_input(&call.input)?;
        match (call.service.as_str(), call.operation.as_str()) {
            ("com.vmware.cis.session", "create") => self.create(call.security.as_ref(), client).await,
            ("com.vmware.cis.session", "get") => {
                let session = self.session(call.security.as_ref(), header_session).await?;
                Ok(convert::session_info(&session))
            }
            ("com.vmware.cis.session", "delete") => {
                let session = self.session(call.security.as_ref(), header_session).await?;
                self.inner.store.delete(session.id()).await.map_err(|_| store_unavailable())?;
                Ok(DataValue::Void)
            }
            ("com.vmware.cis.tasks", operation) => {
                let session = self.session(call.security.as_ref(), header_session).await?;
                self.tasks(operation, input, &session).await
            }
            (service, operation) => {
                let (operation, as_task) = match operation.strip_suffix("$task") {
                    Some(operation) => (operation, true),
                    None => (operation, false),
                };
                let Some(registered) = self.inner.operations.get(&(service.to_owned(), operation.to_owned())) else {
                    return Err(operation_not_found(service, operation));
                };
                let session = self.session(call.security.as_ref(), header_session).await?;
                let invocation = Invocation { input: input.clone(), session, task: None };
                if !as_task {
                    return (registered.handler)(invocation).await;
                }
                let handler = Arc::clone(&registered.handler);
                let owner = Arc::clone(invocation.session.principal());
                let id: TaskId = self
                    .inner
                    .tasks
                    .start(registered.spec.clone(), owner, move |context| async move {
                        let output = handler(Invocation { task: Some(context), ..invocation }).await?;
                        Ok(convert::to_json(&output))
                    })
                    .await?;
                Ok(DataValue::string(id.as_str()))
            }
        }
    }

    async fn create(&self, security: Option<&Map<String, Value>>, client: &ClientInfo) -> Result<DataValue, VapiError> {
        let security = security.ok_or_else(VapiError::unauthenticated)?;
        let text = |key: &str| security.get(key).and_then(Value::as_str).ok_or_else(VapiError::unauthenticated);
        let credential = match text("schemeId")? {
            USER_PASS => Credential::Basic { user: text("userName")?, password: text("password")? },
            SAML_BEARER => Credential::SamlBearer { token: text("samlToken")? },
            SAML_HOK => {
                tracing::info!("holder-of-key SAML login refused: not supported");
                return Err(VapiError::unauthenticated());
            }
            _ => return Err(VapiError::unauthenticated()),
        };
        let authenticated = self.inner.authenticator.authenticate(credential, client).await.map_err(|error| {
            tracing::info!(%error, "login refused");
            error.to_vapi()
        })?;
        let (principal, expires) = authenticated.into_parts();
        let session = self.inner.store.create(principal, expires).await.map_err(|error| {
            tracing::warn!(%error, "session store refused or failed");
            match error.kind() {
                StoreErrorKind::TooManySessions | StoreErrorKind::TooManyUserSessions => {
                    VapiError::service_unavailable(LocalizableMessage::new(
                        "com.vmware.cis.session.limit",
                        "The maximum number of sessions has been reached. Delete unused sessions or retry later.",
                    ))
                }
                _ => store_unavailable(),
            }
        })?;
        tracing::info!(user = session.user(), session = %session.id().log_tag(), "session created");
        Ok(DataValue::Secret(session.id().to_string()))
    }

    /// The active session of the call: the `vmware-api-session-id` header if
    /// present (it overrides the body), else the `session_id` security context.
    async fn session(
        &self,
        security: Option<&Map<String, Value>>,
        header: Option<&[u8]>,
    ) -> Result<Session, VapiError> {
        let presented = match header {
            Some(header) => Some(header),
            None => security
                .filter(|s| s.get("schemeId").and_then(Value::as_str) == Some(SESSION_ID))
                .and_then(|s| s.get("sessionId"))
                .and_then(Value::as_str)
                .map(str::as_bytes),
        };
        let id = presented.and_then(SessionId::parse_bytes).ok_or_else(VapiError::unauthenticated)?;
        match self.inner.store.resolve(&id).await {
            Ok(Resolution::Active(session)) => Ok(session),
            Ok(Resolution::Unknown | Resolution::Expired) => Err(VapiError::unauthenticated()),
            Err(error) => {
                tracing::warn!(%error, "session store failed");
                Err(store_unavailable())
            }
        }
    }

    async fn tasks(&self, operation: &str, input: &StructValue, session: &Session) -> Result<DataValue, VapiError> {
        let tasks = &self.inner.tasks;
        let principal = session.principal();
        let task_id = |input: &StructValue| -> Result<TaskId, VapiError> {
            let text = required_string(input, "task")?;
            TaskId::parse(text).ok_or_else(|| {
                VapiError::new(
                    ErrorType::NotFound,
                    LocalizableMessage::new("com.vmware.cis.tasks.not_found", "The task was not found.")
                        .with_args([text.to_owned()]),
                )
            })
        };
        match operation {
            "get" => {
                let spec = convert::get_spec(optional(input, "spec")?)?;
                let info = tasks.get(&task_id(input)?, principal).await?;
                Ok(convert::task_info(&info, spec.excludes_result()))
            }
            "list" => {
                let filter = convert::filter_spec(optional(input, "filter_spec")?)?;
                let spec = convert::get_spec(optional(input, "result_spec")?)?;
                let found = tasks.list(&filter, principal).await?;
                Ok(DataValue::map(found.iter().map(|info| {
                    (DataValue::string(info.id.as_str()), convert::task_info(info, spec.excludes_result()))
                })))
            }
            "cancel" => {
                tasks.cancel(&task_id(input)?, principal).await?;
                Ok(DataValue::Void)
            }
            other => Err(operation_not_found("com.vmware.cis.tasks", other)),
        }
    }
}

fn operation_not_found(service: &str, operation: &str) -> VapiError {
    VapiError::new(
        ErrorType::OperationNotFound,
        LocalizableMessage::new("vapi.method.input.invalid.interface", "No such service or operation.")
            .with_args([service.to_owned(), operation.to_owned()]),
    )
}

fn reply(status: StatusCode, body: &Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(serde_json::to_vec(body).unwrap_or_default()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The future of [`JsonRpcEndpoint`]'s responses.
pub type JsonRpcFuture = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl<St, A, T, B> tower_service::Service<Request<B>> for JsonRpcEndpoint<St, A, T>
where
    St: SessionStore,
    A: Authenticator,
    T: TaskStore,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = JsonRpcFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let endpoint = self.clone();
        Box::pin(async move { Ok(endpoint.respond(request).await.map(Full::new)) })
    }
}

/// An input error for application operations.
pub fn bad_input(detail: impl Into<String>) -> VapiError {
    invalid_input(detail)
}
