//! HTTPS for the example server (rustls, ring) and an accept loop that serves
//! plain or TLS connections with graceful shutdown.
//!
//! `--tls` alone generates a self-signed certificate for `localhost` and
//! `127.0.0.1` at start; `--tls-cert`/`--tls-key` load a PEM certificate chain
//! and its private key instead.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::ServiceBuilder;
use tower_cis::auth::{Authenticator, ClientInfo};
use tower_cis::tasks::{MemoryTaskStore, TaskManager};
use tower_cis::{Cis, MemoryStore};
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

/// How long a client may take to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS server configuration and the certificate it presents.
pub struct Tls {
    /// Accepts TLS connections.
    pub acceptor: TlsAcceptor,
    /// The leaf certificate, PEM, for clients that pin it.
    pub certificate_pem: String,
}

impl Tls {
    /// A self-signed certificate (ECDSA P-256) for `names`, made now.
    pub fn self_signed(names: Vec<String>) -> Result<Self, Box<dyn std::error::Error>> {
        let generated = rcgen::generate_simple_self_signed(names)?;
        let key = PrivateKeyDer::try_from(generated.signing_key.serialize_der())?;
        let chain = vec![generated.cert.der().clone()];
        Ok(Tls { acceptor: acceptor(chain, key)?, certificate_pem: generated.cert.pem() })
    }

    /// The certificate chain in `cert` (PEM, leaf first) and the private key
    /// in `key` (PEM: PKCS#8, PKCS#1 or SEC1).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, Box<dyn std::error::Error>> {
        let certificate_pem = std::fs::read_to_string(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
        let chain = CertificateDer::pem_slice_iter(certificate_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{}: {e}", cert.display()))?;
        if chain.is_empty() {
            return Err(format!("{}: no CERTIFICATE block", cert.display()).into());
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
        Ok(Tls { acceptor: acceptor(chain, key)?, certificate_pem })
    }
}

fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, Box<dyn std::error::Error>> {
    let mut config = rustls::ServerConfig::builder().with_no_client_auth().with_single_cert(chain, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The example application: `routes` (e.g. the dev STS) outside the session
/// layer, then the cis services around the demo routes and the Tasks
/// service, all traced. Works for any authenticator (`app::serve` takes the
/// password-only `ExampleCis`).
pub fn application<A: Authenticator>(cis: &Cis<MemoryStore, A>, routes: Router) -> Router {
    // The task manager of `app::demo_tasks`, on this `cis`'s clock.
    let store = MemoryTaskStore::new(Duration::from_secs(24 * 60 * 60), 100_000, Arc::clone(cis.clock()));
    let tasks = TaskManager::new(store, Arc::clone(cis.clock())).with_administrators("vsphere.local\\Administrators");
    routes.fallback_service(cis.wrap(crate::app::demo_routes_with(tasks))).layer(
        TraceLayer::new_for_http()
            .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
            .on_response(DefaultOnResponse::new().level(Level::INFO)),
    )
}

/// Serves `app` on `listener`, over TLS when `tls` is given, until
/// `shutdown` completes; then stops accepting and returns once every request
/// in flight has been answered. Each request carries the peer's
/// [`ClientInfo`].
pub async fn serve(listener: TcpListener, tls: Option<TlsAcceptor>, app: Router, shutdown: impl Future<Output = ()>) {
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
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let tls = tls.clone();
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
