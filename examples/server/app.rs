//! The example server's application, shared with the end-to-end tests: the
//! demo endpoints behind the cis services, and the accept loop with graceful
//! shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde::Deserialize;
use serde_json::json;
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_cis::auth::{ClientInfo, PasswordAuthenticator};
use tower_cis::error::{ApiFlavor, ErrorType, LocalizableMessage, VapiError};
use tower_cis::{Cis, MemoryStore, Session};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// The cis services of the example server.
pub type ExampleCis = Cis<MemoryStore, PasswordAuthenticator>;

/// The longest `/api/demo/wait`.
pub const MAX_WAIT_SECONDS: u64 = 300;

/// The demo application, without the cis services.
pub fn demo_routes() -> Router {
    Router::new().route("/api/demo/whoami", get(whoami)).route("/api/demo/wait", get(wait)).fallback(not_found)
}

async fn whoami(axum::Extension(session): axum::Extension<Session>) -> Response {
    axum::Json(json!({ "user": session.user() })).into_response()
}

#[derive(Deserialize)]
struct WaitQuery {
    seconds: Option<String>,
}

async fn wait(query: Result<Query<WaitQuery>, axum::extract::rejection::QueryRejection>) -> Response {
    let seconds = query.ok().and_then(|q| q.0.seconds).and_then(|s| s.parse::<u64>().ok());
    match seconds {
        Some(seconds) if seconds <= MAX_WAIT_SECONDS => {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            axum::Json(json!({ "waited_seconds": seconds })).into_response()
        }
        _ => vapi(
            ErrorType::InvalidArgument,
            "com.vmware.cis.demo.wait.seconds",
            "The query parameter seconds must be a whole number from 0 to 300.",
        ),
    }
}

async fn not_found() -> Response {
    vapi(ErrorType::NotFound, "com.vmware.vapi.rest.not_found", "No such resource.")
}

fn vapi(error_type: ErrorType, id: &'static str, text: &'static str) -> Response {
    let error = VapiError::new(error_type, LocalizableMessage::new(id, text));
    error.response(ApiFlavor::Modern, None).map(axum::body::Body::from)
}

/// Serves `cis` around the demo routes on `listener` until `shutdown`
/// completes; then stops accepting and returns once every request in flight
/// has been answered.
pub async fn serve(listener: TcpListener, cis: ExampleCis, shutdown: impl Future<Output = ()>) {
    let app = ServiceBuilder::new()
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_response(DefaultOnResponse::new().level(Level::INFO)),
        )
        .service(cis.wrap(demo_routes()));
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
        let connection =
            builder.serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(service));
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            if let Err(error) = connection.await {
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
