//! SAML 2.0 bearer tokens from a vSphere Secure Token Service (feature `saml`).
//!
//! A client obtains a signed assertion from the STS (WS-Trust, `POST
//! /sts/STSService/vsphere.local`) and presents it to `Session.create` as
//! `Authorization: SIGN token="<base64(gzip(xml))>"`
//! ([`sign_from_headers`](super::sign_from_headers)). [`SamlVerifier`] checks
//! it against the STS certificates the server is configured with, and
//! [`SamlAuthenticator`] turns it into a principal whose credential expires
//! with the token, so that the session's absolute deadline is
//! `min(now + max lifetime, token NotOnOrAfter)`.
//!
//! Signatures are verified by [bergshamra](https://docs.rs/bergshamra) (pure
//! Rust XML-DSig and exclusive c14n); this module adds the SAML policy around
//! it: see [`SamlVerifier`] for every rule. Holder-of-key tokens are refused.
//!
//! ```
//! use std::sync::Arc;
//! use tower_cis::auth::saml::{SamlAuthenticator, SamlVerifier};
//! use tower_cis::auth::{AuthErrorKind, Authenticator, ClientInfo, CompositeAuthenticator, Credential};
//! use tower_cis::auth::{HashCost, PasswordAuthenticator, UserDirectory};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let sts_pem = include_str!("../../../tests/saml_support/sts-cert.pem");
//! let verifier = SamlVerifier::new().with_trusted_certificates_pem(sts_pem)?.with_issuer("https://vc.example/websso");
//! let users = UserDirectory::new().with_cost(HashCost::insecure_fast_for_tests()).with_user("alice", "pw")?;
//! // Basic logins go to the password authenticator, SIGN tokens to the SAML one.
//! let auth = CompositeAuthenticator::new(PasswordAuthenticator::new(users), SamlAuthenticator::new(verifier));
//!
//! let forged = Credential::SamlBearer { token: "<saml2:Assertion/>" };
//! let refused = auth.authenticate(forged, &ClientInfo::default()).await.unwrap_err();
//! assert_eq!(refused.kind(), AuthErrorKind::Rejected);
//! # Ok(())
//! # }
//! ```

mod verify;

use std::fmt;

pub use verify::{
    CertificateError, DEFAULT_CLOCK_SKEW, DEFAULT_MAX_TOKEN_LEN, GROUP_IDENTITY, SamlError, SamlErrorKind,
    SamlVerifier, VerifiedAssertion,
};

use super::{AuthError, Authenticated, Authenticator, ClientInfo, Credential};

/// Logs in with SAML bearer tokens ([`Credential::SamlBearer`]), verified by
/// a [`SamlVerifier`]; other credentials are rejected.
///
/// The principal is the token's `NameID` (full text), with the groups of its
/// `GroupIdentity` attribute; the credential expires at the token's
/// `NotOnOrAfter`, which caps the session's absolute deadline. Refusals are
/// logged at `info` with their kind; the token itself is never logged.
#[derive(Clone)]
pub struct SamlAuthenticator {
    verifier: SamlVerifier,
}

impl SamlAuthenticator {
    /// Authenticates with `verifier`.
    pub fn new(verifier: SamlVerifier) -> Self {
        SamlAuthenticator { verifier }
    }

    /// The verifier.
    pub fn verifier(&self) -> &SamlVerifier {
        &self.verifier
    }

    /// The check behind [`authenticate`](Authenticator::authenticate), on the
    /// calling thread (an RSA verification: well under a millisecond in
    /// release builds).
    pub fn authenticate_token(&self, token: &str) -> Result<Authenticated, AuthError> {
        match self.verifier.verify(token) {
            Ok(assertion) => {
                tracing::debug!(user = %assertion.subject, id = %assertion.id, "SAML token accepted");
                Ok(Authenticated::new(assertion.principal()).with_expiry(assertion.not_on_or_after))
            }
            Err(error) => {
                tracing::info!(kind = ?error.kind(), detail = error.detail(), "SAML token refused");
                Err(AuthError::rejected(error.to_string()))
            }
        }
    }
}

impl fmt::Debug for SamlAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SamlAuthenticator").field("verifier", &self.verifier).finish()
    }
}

impl Authenticator for SamlAuthenticator {
    async fn authenticate(&self, credential: Credential<'_>, _client: &ClientInfo) -> Result<Authenticated, AuthError> {
        match credential {
            Credential::SamlBearer { token } => self.authenticate_token(token),
            Credential::Basic { .. } => Err(AuthError::rejected("SAML authentication takes SAML tokens only")),
        }
    }
}
