//! HTTPS for the example server (rustls, ring): the certificate and key it
//! serves with (`app::serve_app` runs the accept loop).
//!
//! `--tls` alone generates a self-signed certificate for `localhost` and
//! `127.0.0.1` at start; `--tls-cert`/`--tls-key` load a PEM certificate chain
//! and its private key instead.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

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
