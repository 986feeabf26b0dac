//! The example server's application, shared with the end-to-end tests: the
//! demo endpoints behind the cis services, and the accept loop with graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use std::sync::Arc;

use axum::extract::Query;
use axum::handler::Handler;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;
use tower_cis::auth::{Authenticator, ClientInfo, PasswordAuthenticator};
use tower_cis::error::{ApiFlavor, ErrorType, LocalizableMessage, VapiError};
use tower_cis::jsonrpc::{DataValue, JsonRpcEndpoint, StructValue, bad_input, convert};
use tower_cis::rest::tasks::{LEGACY_TASKS_PATH, MODERN_TASKS_PATH, TasksService};
use tower_cis::rest::{LEGACY_SESSION_PATH, MODERN_SESSION_PATH};
use tower_cis::tasks::{MemoryTaskStore, TaskContext, TaskLayer, TaskManager, TaskSpec, TaskStore};
use tower_cis::{Cis, MemoryStore, Session, SessionStore, SharedClock};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

#[path = "openapi.rs"]
mod openapi;

/// The cis services of the example server.
pub type ExampleCis = Cis<MemoryStore, PasswordAuthenticator>;

/// The longest `/api/demo/wait`.
pub const MAX_WAIT_SECONDS: u64 = 300;

/// The task manager of the example server: in memory, on `clock`, finished
/// tasks kept 24 hours; members of `vsphere.local\Administrators` see all.
pub fn demo_tasks(clock: &SharedClock) -> TaskManager {
    let store = MemoryTaskStore::new(Duration::from_secs(24 * 60 * 60), 100_000, Arc::clone(clock));
    tasks_in(store, clock)
}

/// The most tasks one user may have running on the example server.
pub const MAX_RUNNING_TASKS_PER_USER: usize = 1_000;

/// The example server's task manager over `store`, on `clock`: at most
/// [`MAX_RUNNING_TASKS_PER_USER`] running tasks per user.
pub fn tasks_in<T: TaskStore>(store: T, clock: &SharedClock) -> TaskManager<T> {
    TaskManager::new(store, Arc::clone(clock))
        .with_administrators("vsphere.local\\Administrators")
        .with_max_running_per_user(MAX_RUNNING_TASKS_PER_USER)
}

/// Sessions (expiring by `policy`, capped like [`Cis::in_memory`]'s) and
/// tasks (kept 24 hours) in the Redis at `url`, on `clock`: every instance
/// given the same URL shares them.
#[cfg(feature = "redis")]
pub fn redis_stores(
    url: &str,
    policy: tower_cis::ExpiryPolicy,
    clock: &SharedClock,
) -> Result<(tower_cis::RedisStore, TaskManager<tower_cis::tasks::RedisTaskStore>), tower_cis::RedisConfigError> {
    let defaults = tower_cis::CisConfig::default();
    let sessions = tower_cis::RedisStore::builder()
        .url(url)
        .policy(policy)
        .clock(Arc::clone(clock))
        .max_sessions(defaults.max_sessions)
        .max_sessions_per_user(defaults.max_sessions_per_user)
        .build()?;
    let tasks = tower_cis::tasks::RedisTaskStore::builder().url(url).clock(Arc::clone(clock)).build()?;
    Ok((sessions, tasks_in(tasks, clock)))
}

/// Every minute, removes from `store`'s index the sessions that have expired.
/// Redis drops their records by itself; the index behind the caps and counts
/// would otherwise shrink only when a create meets a cap or stats are read.
/// A failed purge is logged and tried again the next minute.
#[cfg(feature = "redis")]
pub async fn purge_expired_every_minute(store: tower_cis::RedisStore) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match store.purge_expired().await {
            Ok(report) => tracing::debug!(removed = report.removed, "purged the index of expired sessions"),
            Err(error) => tracing::warn!(%error, "could not purge expired sessions; trying again in a minute"),
        }
    }
}

/// The whole application: the vAPI JSON-RPC endpoint at `POST /api` and the
/// Session service (both authenticate by themselves), and behind the session
/// layer the demo endpoints and the Tasks service; every request traced.
pub fn application<St: SessionStore, A: Authenticator, T: TaskStore>(
    cis: &Cis<St, A>,
    tasks: TaskManager<T>,
) -> Router {
    application_with(cis, tasks, Router::new())
}

/// [`application`] with `public` routes (such as the dev STS) that need no
/// session.
pub fn application_with<St: SessionStore, A: Authenticator, T: TaskStore>(
    cis: &Cis<St, A>,
    tasks: TaskManager<T>,
    public: Router,
) -> Router {
    let jsonrpc = JsonRpcEndpoint::new(cis, tasks.clone())
        .operation(wait_spec(), |call| async move {
            let seconds = match convert::optional(&call.input, "seconds")? {
                None => 1,
                Some(DataValue::Integer(n)) if (0..=MAX_WAIT_SECONDS as i64).contains(n) => *n as u64,
                Some(_) => return Err(bad_input("seconds must be a whole number from 0 to 300")),
            };
            pace(seconds, call.task.as_ref()).await;
            Ok(DataValue::Structure(
                StructValue::new("com.vmware.cis.demo.wait_result")
                    .with("waited_seconds", DataValue::Integer(seconds as i64)),
            ))
        })
        .operation(fail_spec(), |_call| async move {
            Err(VapiError::new(ErrorType::Error, LocalizableMessage::new("com.vmware.cis.demo.fail", FAIL_TEXT)))
        });
    public
        .merge(openapi::router())
        .route_service("/api", jsonrpc)
        .route_service(MODERN_SESSION_PATH, cis.session_service())
        .route_service(LEGACY_SESSION_PATH, cis.session_service())
        .fallback_service(demo_routes_with(tasks).layer(cis.layer()))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
}

const FAIL_TEXT: &str = "The demo operation failed, as it always does.";

fn wait_spec() -> TaskSpec {
    TaskSpec::new("com.vmware.cis.demo", "wait", LocalizableMessage::new("com.vmware.cis.demo.wait", "Wait"))
}

fn fail_spec() -> TaskSpec {
    TaskSpec::new("com.vmware.cis.demo", "fail", LocalizableMessage::new("com.vmware.cis.demo.fail", "Fail"))
        .cancelable(false)
}

/// Waits `seconds`; as a task, reports progress every tenth of the way.
async fn pace<T: TaskStore>(seconds: u64, task: Option<&TaskContext<T>>) {
    match task {
        Some(task) => {
            let step = Duration::from_secs(seconds) / 10;
            for tenth in 1..=10 {
                tokio::time::sleep(step).await;
                let message =
                    LocalizableMessage::new("com.vmware.cis.demo.wait.progress", format!("{}% done", tenth * 10));
                task.progress(10, tenth, message).await;
            }
        }
        None => tokio::time::sleep(Duration::from_secs(seconds)).await,
    }
}

/// The demo application (without the Session service): the demo endpoints,
/// some of which run as tasks with `vmw-task=true`, and the Tasks service.
pub fn demo_routes_with<T: TaskStore>(tasks: TaskManager<T>) -> Router {
    let wait_task = TaskLayer::new(tasks.clone(), wait_spec());
    let fail_task = TaskLayer::new(tasks.clone(), fail_spec());
    let tasks_service = TasksService::new(tasks);
    Router::new()
        .route("/api/demo/whoami", get(whoami))
        .route("/api/demo/wait", get(wait::<T>).post(wait::<T>.layer(wait_task)))
        .route("/api/demo/fail", post(fail.layer(fail_task)))
        .route_service(MODERN_TASKS_PATH, tasks_service.clone())
        .route_service(&format!("{MODERN_TASKS_PATH}/{{task}}"), tasks_service.clone())
        .route_service(LEGACY_TASKS_PATH, tasks_service.clone())
        .route_service(&format!("{LEGACY_TASKS_PATH}/{{task}}"), tasks_service)
        .fallback(not_found)
}

async fn whoami(Extension(session): Extension<Session>) -> Response {
    axum::Json(json!({ "user": session.user() })).into_response()
}

#[derive(Deserialize)]
struct WaitQuery {
    seconds: Option<String>,
}

/// Waits `seconds`; as a task, reports progress every tenth of the way.
async fn wait<T: TaskStore>(
    query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>,
    task: Option<Extension<TaskContext<T>>>,
) -> Response {
    let Some(seconds) = seconds(query) else {
        return vapi(
            ErrorType::InvalidArgument,
            "com.vmware.cis.demo.wait.seconds",
            "The query parameter seconds must be a whole number from 0 to 300.",
        );
    };
    pace(seconds, task.as_ref().map(|Extension(task)| task)).await;
    axum::Json(json!({ "waited_seconds": seconds })).into_response()
}

/// Works for `seconds` (default 1), then fails, as it always does.
async fn fail(query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let Some(seconds) = seconds(query) else {
        return vapi(
            ErrorType::InvalidArgument,
            "com.vmware.cis.demo.wait.seconds",
            "The query parameter seconds must be a whole number from 0 to 300.",
        );
    };
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    vapi(ErrorType::Error, "com.vmware.cis.demo.fail", FAIL_TEXT)
}

fn seconds(query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>) -> Option<u64> {
    let text = query.ok()?.0.seconds;
    let seconds = match text {
        Some(text) => text.parse::<u64>().ok()?,
        None => 1,
    };
    (seconds <= MAX_WAIT_SECONDS).then_some(seconds)
}

async fn not_found(uri: http::Uri) -> Response {
    let flavor = if uri.path().starts_with("/rest/") { ApiFlavor::Legacy } else { ApiFlavor::Modern };
    let error = VapiError::new(
        ErrorType::NotFound,
        LocalizableMessage::new("com.vmware.vapi.rest.not_found", "No such resource."),
    );
    error.response(flavor, None).map(axum::body::Body::from)
}

fn vapi(error_type: ErrorType, id: &'static str, text: &'static str) -> Response {
    let error = VapiError::new(error_type, LocalizableMessage::new(id, text));
    error.response(ApiFlavor::Modern, None).map(axum::body::Body::from)
}

/// Serves the example application for `cis` on `listener` (plain http)
/// until `shutdown` completes; see [`serve_app`].
pub async fn serve(listener: TcpListener, cis: ExampleCis, shutdown: impl Future<Output = ()>) {
    let tasks = demo_tasks(cis.clock());
    serve_app(listener, None, application(&cis, tasks), shutdown).await;
}

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `app` on `listener`, over TLS when `tls` is given, until
/// `shutdown` completes; then stops accepting and returns once every request
/// in flight has been answered. Each request carries the peer's
/// [`ClientInfo`] (for login throttling per address).
pub async fn serve_app(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()>,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = ServiceBuilder::new()
            .map_request(move |mut request: http::Request<Incoming>| {
                request.extensions_mut().insert(ClientInfo::with_address(peer.ip()));
                request
            })
            .service(app.clone());
        let service = TowerToHyperService::new(service);
        let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
        tokio::spawn(async move {
            let result = match tls {
                None => {
                    watcher
                        .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                        .await
                }
                Some(acceptor) => match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        watcher
                            .watch(builder.serve_connection_with_upgrades(TokioIo::new(stream), service).into_owned())
                            .await
                    }
                    Ok(Err(error)) => return tracing::debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => return tracing::debug!(%peer, "TLS handshake timed out"),
                },
            };
            if let Err(error) = result {
                tracing::debug!(%peer, error = %error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tracing::info!("shutting down: waiting for requests in flight");
    graceful.shutdown().await;
    tracing::info!("all requests answered");
}

/// Binds `address`, returning the listener and the address it got.
pub async fn bind(address: SocketAddr) -> std::io::Result<(TcpListener, SocketAddr)> {
    let listener = TcpListener::bind(address).await?;
    let local = listener.local_addr()?;
    Ok((listener, local))
}
