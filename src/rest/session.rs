//! The Session service over REST: create, get and delete, on the modern and
//! the legacy API.
//!
//! | call | modern | legacy |
//! |---|---|---|
//! | create | `POST /api/session` → 201 `"<id>"` | `POST /rest/com/vmware/cis/session` → 200 `{"value":"<id>"}` + cookie |
//! | get | `GET /api/session` → 200 info | `POST …?~action=get` → 200 `{"value":info}` |
//! | delete | `DELETE /api/session` → 204 | `DELETE …` or `POST …?~action=delete` → 200 |

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use tower_service::Service;

use super::reply::{empty, error_response, json};
use super::{LEGACY_SESSION_PATH, MODERN_SESSION_PATH, query};
use crate::auth::{AuthErrorKind, Authenticator, ClientInfo, Presented};
use crate::error::{ApiFlavor, ErrorType, LocalizableMessage, VapiError};
use crate::layer::config::{Config, admit, store_unavailable};
use crate::layer::presented_session_id;
use crate::{Session, SessionStore, StoreError, StoreErrorKind};

/// The header with which a legacy client asks for no cookie.
const USE_HEADER_AUTHN: &str = "vmware-use-header-authn";

/// The Session service, serving [`MODERN_SESSION_PATH`] and
/// [`LEGACY_SESSION_PATH`]. Build it with [`Cis::session_service`](crate::Cis::session_service).
///
/// `create` reads `Authorization: Basic` or, with the `saml` feature,
/// `Authorization: SIGN` (a SAML bearer token); a `vmware-api-session-id` sent
/// along (a client logging in again) is ignored. `get` and `delete` resolve
/// the session themselves, so the service is mounted outside the
/// [`SessionAuthLayer`](crate::SessionAuthLayer). The client address for
/// login throttling is read from a [`ClientInfo`] request extension.
pub struct SessionService<St, A> {
    shared: Arc<Shared<St, A>>,
}

struct Shared<St, A> {
    store: St,
    authenticator: A,
    config: Arc<Config>,
}

impl<St, A> Clone for SessionService<St, A> {
    fn clone(&self) -> Self {
        SessionService { shared: Arc::clone(&self.shared) }
    }
}

impl<St, A> fmt::Debug for SessionService<St, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionService").finish_non_exhaustive()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Operation {
    Create,
    Get,
    Delete,
}

impl<St: SessionStore, A: Authenticator> SessionService<St, A> {
    pub(crate) fn new(store: St, authenticator: A, config: Arc<Config>) -> Self {
        SessionService { shared: Arc::new(Shared { store, authenticator, config }) }
    }

    /// Answers one request; the body is never read.
    pub(crate) fn respond(&self, parts: Parts) -> impl Future<Output = Response<Bytes>> + Send + 'static {
        let shared = Arc::clone(&self.shared);
        async move { shared.respond(parts).await }
    }
}

impl<St: SessionStore, A: Authenticator> Shared<St, A> {
    async fn respond(&self, parts: Parts) -> Response<Bytes> {
        let (operation, flavor) = match route(&parts) {
            Ok(found) => found,
            Err(refusal) => return refusal.response(),
        };
        match operation {
            Operation::Create => self.create(&parts, flavor).await,
            Operation::Get => match self.resolve(&parts, flavor).await {
                Ok(session) => json(StatusCode::OK, flavor, &session.info()),
                Err(response) => response,
            },
            Operation::Delete => match self.resolve(&parts, flavor).await {
                Ok(session) => match self.store.delete(session.id()).await {
                    Ok(_) => {
                        tracing::info!(user = session.user(), session = %session.id().log_tag(), "session deleted");
                        empty(if flavor == ApiFlavor::Modern { StatusCode::NO_CONTENT } else { StatusCode::OK })
                    }
                    Err(error) => self.store_failed(&error, flavor),
                },
                Err(response) => response,
            },
        }
    }

    async fn create(&self, parts: &Parts, flavor: ApiFlavor) -> Response<Bytes> {
        let credentials = match Presented::from_headers(&parts.headers) {
            Ok(credentials) => credentials,
            Err(unusable) => {
                tracing::debug!(problem = %unusable.error, "login without usable credentials");
                return self.unauthenticated(&unusable.to_vapi(), flavor);
            }
        };
        let client = parts.extensions.get::<ClientInfo>().cloned().unwrap_or_default();
        let authenticated = match self.authenticator.authenticate(credentials.as_credential(), &client).await {
            Ok(authenticated) => authenticated,
            Err(error) => {
                match error.kind() {
                    AuthErrorKind::Unavailable => tracing::warn!(%error, "authentication unavailable"),
                    _ => tracing::info!(%error, "login refused"),
                }
                return self.unauthenticated(&error.to_vapi(), flavor);
            }
        };
        let (principal, expires) = authenticated.into_parts();
        let session = match self.store.create(principal, expires).await {
            Ok(session) => session,
            Err(error) => return self.store_failed(&error, flavor),
        };
        tracing::info!(user = session.user(), session = %session.id().log_tag(), "session created");
        created(&session, flavor, wants_cookie(parts))
    }

    /// The active session the request presents, or the response refusing it.
    async fn resolve(&self, parts: &Parts, flavor: ApiFlavor) -> Result<Session, Response<Bytes>> {
        let refuse = |rejection| {
            let mut response = self.config.response(rejection, flavor);
            response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        };
        let id = presented_session_id(&parts.headers, flavor == ApiFlavor::Legacy).map_err(|problem| {
            tracing::debug!(reason = problem.as_str(), "session rejected");
            refuse(crate::layer::config::Rejection::Unauthenticated)
        })?;
        admit(self.store.resolve(&id).await).map_err(refuse)
    }

    fn unauthenticated(&self, error: &VapiError, flavor: ApiFlavor) -> Response<Bytes> {
        error_response(error, flavor, Some(&self.config.challenge))
    }

    fn store_failed(&self, error: &StoreError, flavor: ApiFlavor) -> Response<Bytes> {
        let vapi = match error.kind() {
            StoreErrorKind::TooManySessions => VapiError::service_unavailable(LocalizableMessage::new(
                "com.vmware.cis.session.limit",
                "The maximum number of sessions has been reached. Delete unused sessions or retry later.",
            )),
            StoreErrorKind::TooManyUserSessions => VapiError::service_unavailable(LocalizableMessage::new(
                "com.vmware.cis.session.user_limit",
                "This user holds the maximum number of sessions. Delete unused sessions or retry later.",
            )),
            _ => store_unavailable(),
        };
        tracing::warn!(%error, "session store refused or failed");
        error_response(&vapi, flavor, None)
    }
}

/// The 201 (modern) or 200 plus cookie (legacy) answer to a create.
fn created(session: &Session, flavor: ApiFlavor, cookie: bool) -> Response<Bytes> {
    let id = session.id().to_string();
    match flavor {
        ApiFlavor::Modern => json(StatusCode::CREATED, flavor, &id),
        ApiFlavor::Legacy => {
            let mut response = json(StatusCode::OK, flavor, &id);
            if cookie {
                let cookie = format!("vmware-api-session-id={id};Path=/rest");
                if let Ok(value) = HeaderValue::from_str(&cookie) {
                    response.headers_mut().insert(header::SET_COOKIE, value);
                }
            }
            response
        }
    }
}

/// Legacy clients get the cookie unless they send `vmware-use-header-authn: true`.
fn wants_cookie(parts: &Parts) -> bool {
    !parts
        .headers
        .get_all(USE_HEADER_AUTHN)
        .iter()
        .any(|value| value.to_str().is_ok_and(|v| v.trim().eq_ignore_ascii_case("true")))
}

/// Why a request names no Session operation.
enum Refusal {
    UnknownOperation(ApiFlavor),
    MethodNotAllowed(ApiFlavor, &'static str),
    BadQuery(ApiFlavor),
}

/// Which operation a request asks for.
fn route(parts: &Parts) -> Result<(Operation, ApiFlavor), Refusal> {
    let method = &parts.method;
    match parts.uri.path() {
        MODERN_SESSION_PATH => {
            let operation = match *method {
                Method::POST => Operation::Create,
                Method::GET => Operation::Get,
                Method::DELETE => Operation::Delete,
                _ => return Err(Refusal::MethodNotAllowed(ApiFlavor::Modern, "GET, POST, DELETE")),
            };
            Ok((operation, ApiFlavor::Modern))
        }
        LEGACY_SESSION_PATH => {
            let flavor = ApiFlavor::Legacy;
            let action = query::single(parts.uri.query(), "~action").map_err(|_| Refusal::BadQuery(flavor))?;
            let operation = match (method, action.as_deref()) {
                (&Method::POST, None | Some("create")) => Operation::Create,
                (&Method::POST, Some("get")) => Operation::Get,
                (&Method::POST, Some("delete")) | (&Method::DELETE, None) => Operation::Delete,
                (&Method::POST | &Method::DELETE, Some(_)) => return Err(Refusal::UnknownOperation(flavor)),
                _ => return Err(Refusal::MethodNotAllowed(flavor, "POST, DELETE")),
            };
            Ok((operation, flavor))
        }
        _ => Err(Refusal::UnknownOperation(ApiFlavor::Modern)),
    }
}

impl Refusal {
    fn response(self) -> Response<Bytes> {
        let (flavor, error_type, id, text) = match self {
            Refusal::UnknownOperation(flavor) | Refusal::MethodNotAllowed(flavor, _) => (
                flavor,
                ErrorType::OperationNotFound,
                "com.vmware.vapi.rest.operation_not_found",
                "No such operation on the Session service.",
            ),
            Refusal::BadQuery(flavor) => {
                (flavor, ErrorType::InvalidRequest, "com.vmware.vapi.rest.bad_query", "The query string is malformed.")
            }
        };
        let mut response = error_response(&VapiError::new(error_type, LocalizableMessage::new(id, text)), flavor, None);
        if let Refusal::MethodNotAllowed(_, allow) = self {
            *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

/// The future of [`SessionService`]'s responses.
pub type SessionFuture = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl<St, A, B> Service<Request<B>> for SessionService<St, A>
where
    St: SessionStore,
    A: Authenticator,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = SessionFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, _unread) = request.into_parts();
        let response = self.respond(parts);
        Box::pin(async move { Ok(response.await.map(Full::new)) })
    }
}
