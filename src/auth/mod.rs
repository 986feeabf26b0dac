//! Authentication for the Session service: turning the credentials a client
//! presents to `create` into a [`Principal`].
//!
//! - [`Authenticator`]: the pluggable check, one async call per login.
//! - [`PasswordAuthenticator`]: user names and argon2id password hashes from a
//!   [`UserDirectory`], guarded by a [`LoginThrottle`] modelled on vCenter
//!   SSO's lockout policy and a [`LoginLimit`] on checks running at once.
//! - [`parse_basic`] and [`basic_from_headers`]: strict parsing of
//!   `Authorization: Basic` (RFC 7617).
#![cfg_attr(
    feature = "saml",
    doc = "- With the `saml` feature: [`SamlAuthenticator`](saml::SamlAuthenticator),
  which verifies SAML bearer tokens from a vSphere STS, and
  [`sign_from_headers`], which reads them from `Authorization: SIGN`."
)]
#![cfg_attr(
    not(feature = "saml"),
    doc = "- With the `saml` feature: `saml::SamlAuthenticator`, which verifies
  SAML bearer tokens from a vSphere STS, and `sign_from_headers`, which reads
  them from `Authorization: SIGN`."
)]
//! - [`CompositeAuthenticator`]: one authenticator per kind of credential, so
//!   that one server accepts passwords and SAML tokens.
//!
//! Every refusal is an [`AuthError`]; [`AuthError::to_vapi`] renders it as the
//! vAPI error a client sees: 401 `UNAUTHENTICATED` for a wrong credential and
//! for a throttled login alike, 503 `SERVICE_UNAVAILABLE` when the
//! authenticator cannot answer.
//!
//! ```
//! use std::sync::Arc;
//! use tower_cis::auth::{Authenticator, ClientInfo, Credential, HashCost, PasswordAuthenticator, UserDirectory};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let users = UserDirectory::new()
//!     .with_cost(HashCost::insecure_fast_for_tests())
//!     .with_user("Administrator@vsphere.local", "VMware1!")?;
//! let auth = Arc::new(PasswordAuthenticator::new(users));
//!
//! let login = Credential::Basic { user: "administrator@VSPHERE.LOCAL", password: "VMware1!" };
//! let who = auth.authenticate(login, &ClientInfo::default()).await?;
//! assert_eq!(who.principal().name(), "Administrator@vsphere.local");
//! # Ok(())
//! # }
//! ```

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use crate::error::{ErrorType, LocalizableMessage, VapiError};
use crate::{Principal, Timestamp};

mod basic;
mod directory;
mod limit;
mod password;
#[cfg(feature = "saml")]
pub mod saml;
#[cfg(feature = "saml")]
mod sign;
mod throttle;

pub use basic::{
    BasicCredentials, BasicError, MAX_ENCODED_LEN, MAX_PASSWORD_LEN, MAX_USER_LEN, basic_from_headers, parse_basic,
};
pub use directory::{DirectoryError, DirectoryErrorKind, HashCost, UserDirectory, hash_password};
pub use limit::{LoginLimit, LoginsBusy};
pub use password::PasswordAuthenticator;
#[cfg(feature = "saml")]
pub use sign::{
    MAX_INFLATE_RATIO, MAX_SIGN_HEADER_LEN, MAX_TOKEN_LEN, SignCredentials, SignError, is_sign, sign_from_headers,
};
pub use throttle::{FailureLimit, LoginAttempt, LoginThrottle, ThrottlePolicy, ThrottleReason, Throttled};

/// What a client presents to log in.
///
/// `Debug` never shows a password. There is deliberately no `PartialEq`:
/// secrets are compared by an [`Authenticator`], in constant time.
#[derive(Clone, Copy)]
#[non_exhaustive]
pub enum Credential<'a> {
    /// A user name and password, as sent in `Authorization: Basic`.
    Basic {
        /// The user name, as typed by the user.
        user: &'a str,
        /// The password.
        password: &'a str,
    },
    /// A SAML bearer token (the assertion's XML), as decoded from
    /// `Authorization: SIGN` or a JSON-RPC `samlToken`; not yet verified.
    SamlBearer {
        /// The assertion's XML.
        token: &'a str,
    },
}

impl Credential<'_> {
    /// The kind of credential, for logs: `"basic"` or `"saml-bearer"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::Basic { .. } => "basic",
            Credential::SamlBearer { .. } => "saml-bearer",
        }
    }
}

impl fmt::Debug for Credential<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credential::Basic { user, .. } => {
                f.debug_struct("Basic").field("user", user).field("password", &"<redacted>").finish()
            }
            Credential::SamlBearer { token } => f.debug_struct("SamlBearer").field("token_len", &token.len()).finish(),
        }
    }
}

/// The credentials a login request presents, read from its `Authorization`
/// headers: Basic, or (with the `saml` feature) SIGN.
pub(crate) enum Presented {
    Basic(BasicCredentials),
    #[cfg(feature = "saml")]
    Sign(SignCredentials),
}

/// A login request refused before its credentials reach an authenticator.
pub(crate) struct Unusable {
    /// What to log.
    pub(crate) error: AuthError,
    /// A holder-of-key SIGN request, which gets its own 401 message.
    holder_of_key: bool,
}

impl Unusable {
    /// What the client sees: [`VapiError::unauthenticated`], or for a
    /// holder-of-key request, a 401 saying that holder-of-key is not supported.
    pub(crate) fn to_vapi(&self) -> VapiError {
        if self.holder_of_key {
            VapiError::new(
                ErrorType::Unauthenticated,
                LocalizableMessage::new(
                    HOLDER_OF_KEY_MESSAGE_ID,
                    "Holder-of-key SAML tokens are not supported. Present a bearer token.",
                ),
            )
        } else {
            VapiError::unauthenticated()
        }
    }
}

impl Presented {
    /// Reads `Authorization: Basic` or, when the first header uses that
    /// scheme, `Authorization: SIGN`.
    pub(crate) fn from_headers(headers: &http::HeaderMap) -> Result<Self, Unusable> {
        #[cfg(feature = "saml")]
        if is_sign(headers) {
            return sign_from_headers(headers)
                .map(Presented::Sign)
                .map_err(|error| Unusable { holder_of_key: error == SignError::HolderOfKey, error: error.into() });
        }
        basic_from_headers(headers)
            .map(Presented::Basic)
            .map_err(|error| Unusable { error: error.into(), holder_of_key: false })
    }

    pub(crate) fn as_credential(&self) -> Credential<'_> {
        match self {
            Presented::Basic(basic) => basic.as_credential(),
            #[cfg(feature = "saml")]
            Presented::Sign(sign) => sign.as_credential(),
        }
    }
}

/// What is known about the client that attempts a login, for throttling and
/// auditing.
///
/// ```
/// use tower_cis::auth::ClientInfo;
/// let client = ClientInfo::with_address("192.0.2.7".parse().unwrap());
/// assert_eq!(client.address, Some("192.0.2.7".parse().unwrap()));
/// assert_eq!(ClientInfo::default().address, None);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientInfo {
    /// The client's network address, when the server knows it (the peer
    /// address, or the address a trusted proxy reported).
    pub address: Option<IpAddr>,
}

impl ClientInfo {
    /// A client known by its address.
    pub fn with_address(address: IpAddr) -> Self {
        ClientInfo { address: Some(address) }
    }
}

/// The outcome of a successful login: who the client is and, for credentials
/// that expire (SAML tokens), until when. A session created from it never
/// outlives `expires`.
///
/// ```
/// use tower_cis::auth::Authenticated;
/// use tower_cis::{Principal, Timestamp};
/// let who = Authenticated::new(Principal::new("alice")).with_expiry(Timestamp::from_millis(60_000));
/// assert_eq!(who.principal().name(), "alice");
/// assert_eq!(who.expires(), Some(Timestamp::from_millis(60_000)));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authenticated {
    principal: Principal,
    expires: Option<Timestamp>,
}

impl Authenticated {
    /// A principal whose credential does not expire (a password).
    pub fn new(principal: Principal) -> Self {
        Authenticated { principal, expires: None }
    }

    /// The same outcome for a credential that is valid until `expires`.
    pub fn with_expiry(mut self, expires: Timestamp) -> Self {
        self.expires = Some(expires);
        self
    }

    /// Who logged in.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// When the credential stops being valid; `None` for passwords.
    pub fn expires(&self) -> Option<Timestamp> {
        self.expires
    }

    /// The principal and the credential expiry, as a store's `create` takes them.
    pub fn into_parts(self) -> (Principal, Option<Timestamp>) {
        (self.principal, self.expires)
    }
}

/// Why a login was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AuthErrorKind {
    /// The credential is missing, malformed, unknown or wrong (401).
    Rejected,
    /// Too many recent failures for this user name or client address; the
    /// credential was not checked (401, with its own message).
    Throttled,
    /// The authenticator cannot answer now, e.g. its identity provider is
    /// unreachable (503).
    Unavailable,
}

/// A refused login: its kind and a message for operators.
///
/// The message goes to logs only; clients see [`AuthError::to_vapi`], which
/// never says which part of a credential was wrong.
///
/// ```
/// use tower_cis::auth::{AuthError, AuthErrorKind};
/// use tower_cis::error::VapiError;
/// let error = AuthError::rejected("wrong password");
/// assert_eq!(error.kind(), AuthErrorKind::Rejected);
/// assert_eq!(error.to_vapi(), VapiError::unauthenticated());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthError {
    kind: AuthErrorKind,
    message: Cow<'static, str>,
}

/// The message id of a throttled login. It is this crate's own id, not one
/// vCenter sends: vCenter clients act on `error_type` (`UNAUTHENTICATED`),
/// while a person reading the message learns to wait instead of retyping.
pub const THROTTLED_MESSAGE_ID: &str = "com.vmware.cis.session.authentication.throttled";

/// The message id of the 401 answering a holder-of-key `Authorization: SIGN`
/// request (one with `signature=`), which this crate does not verify.
pub const HOLDER_OF_KEY_MESSAGE_ID: &str = "com.vmware.cis.session.authentication.holder_of_key_unsupported";

/// The message id of an authenticator that cannot answer (503).
pub const UNAVAILABLE_MESSAGE_ID: &str = "com.vmware.cis.session.authentication.unavailable";

impl AuthError {
    /// An error of this kind with a message for the logs.
    pub fn new(kind: AuthErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        AuthError { kind, message: message.into() }
    }

    /// The credential is missing, malformed, unknown or wrong.
    pub fn rejected(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::Rejected, message)
    }

    /// The login is refused, unchecked, after too many failures.
    pub fn throttled(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::Throttled, message)
    }

    /// The authenticator cannot answer now.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(AuthErrorKind::Unavailable, message)
    }

    /// Why the login was refused.
    pub fn kind(&self) -> AuthErrorKind {
        self.kind
    }

    /// The message for operators.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The vAPI error the client sees.
    ///
    /// - `Rejected`: exactly [`VapiError::unauthenticated`], whatever the cause.
    /// - `Throttled`: also `UNAUTHENTICATED` (401), so that a client cannot
    ///   tell a locked account from a wrong password by the status, with the
    ///   message [`THROTTLED_MESSAGE_ID`], "Too many failed login attempts. Try
    ///   again later.". A throttled login is refused before its password is
    ///   checked, and unknown user names are locked like known ones, so the
    ///   message reveals neither whether the password was right nor whether
    ///   the user exists.
    /// - `Unavailable`: `SERVICE_UNAVAILABLE` (503), message
    ///   [`UNAVAILABLE_MESSAGE_ID`].
    ///
    /// ```
    /// use tower_cis::auth::AuthError;
    /// use tower_cis::error::ErrorType;
    /// let throttled = AuthError::throttled("user locked").to_vapi();
    /// assert_eq!(throttled.error_type(), ErrorType::Unauthenticated);
    /// assert_eq!(throttled.messages()[0].id, "com.vmware.cis.session.authentication.throttled");
    /// assert_eq!(AuthError::unavailable("LDAP down").to_vapi().error_type().status(), 503);
    /// ```
    pub fn to_vapi(&self) -> VapiError {
        match self.kind {
            AuthErrorKind::Rejected => VapiError::unauthenticated(),
            AuthErrorKind::Throttled => VapiError::new(
                ErrorType::Unauthenticated,
                LocalizableMessage::new(THROTTLED_MESSAGE_ID, "Too many failed login attempts. Try again later."),
            ),
            AuthErrorKind::Unavailable => VapiError::service_unavailable(LocalizableMessage::new(
                UNAVAILABLE_MESSAGE_ID,
                "The authentication service is temporarily unavailable. Retry later.",
            )),
        }
    }
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            AuthErrorKind::Rejected => "login rejected",
            AuthErrorKind::Throttled => "login throttled",
            AuthErrorKind::Unavailable => "authentication unavailable",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for AuthError {}

impl From<AuthError> for VapiError {
    fn from(error: AuthError) -> Self {
        error.to_vapi()
    }
}

/// Checks a credential and says who presented it.
///
/// Implementations must not reveal, by their answer or their timing, whether
/// a user name exists, and must never log a password.
///
/// ```
/// use tower_cis::Principal;
/// use tower_cis::auth::{AuthError, Authenticated, Authenticator, ClientInfo, Credential};
///
/// /// Lets in one fixed account (a sketch; use `PasswordAuthenticator`).
/// struct OneUser;
///
/// impl Authenticator for OneUser {
///     async fn authenticate(&self, credential: Credential<'_>, _: &ClientInfo) -> Result<Authenticated, AuthError> {
///         match credential {
///             Credential::Basic { user: "demo", password: "demo" } => Ok(Authenticated::new(Principal::new("demo"))),
///             _ => Err(AuthError::rejected("not the demo account")),
///         }
///     }
/// }
/// ```
pub trait Authenticator: Send + Sync + 'static {
    /// Checks `credential`, presented by `client`.
    fn authenticate(
        &self,
        credential: Credential<'_>,
        client: &ClientInfo,
    ) -> impl Future<Output = Result<Authenticated, AuthError>> + Send;
}

impl<A: Authenticator> Authenticator for Arc<A> {
    fn authenticate(
        &self,
        credential: Credential<'_>,
        client: &ClientInfo,
    ) -> impl Future<Output = Result<Authenticated, AuthError>> + Send {
        (**self).authenticate(credential, client)
    }
}

/// Hands each credential to the authenticator for its kind: passwords
/// (`Basic`) to `password`, SAML tokens to `saml`. One server then accepts
/// both `Authorization: Basic` and `Authorization: SIGN`.
///
/// ```
/// use tower_cis::Principal;
/// use tower_cis::auth::{
///     AuthError, Authenticated, Authenticator, ClientInfo, CompositeAuthenticator, Credential, HashCost,
///     PasswordAuthenticator, UserDirectory,
/// };
///
/// /// Stands in for `SamlAuthenticator` (feature `saml`).
/// struct AnyToken;
/// impl Authenticator for AnyToken {
///     async fn authenticate(&self, credential: Credential<'_>, _: &ClientInfo) -> Result<Authenticated, AuthError> {
///         match credential {
///             Credential::SamlBearer { .. } => Ok(Authenticated::new(Principal::new("token-user"))),
///             _ => Err(AuthError::rejected("tokens only")),
///         }
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let users = UserDirectory::new().with_cost(HashCost::insecure_fast_for_tests()).with_user("alice", "pw")?;
/// let auth = CompositeAuthenticator::new(PasswordAuthenticator::new(users), AnyToken);
/// let client = ClientInfo::default();
/// let alice = auth.authenticate(Credential::Basic { user: "alice", password: "pw" }, &client).await?;
/// assert_eq!(alice.principal().name(), "alice");
/// let token = auth.authenticate(Credential::SamlBearer { token: "<Assertion/>" }, &client).await?;
/// assert_eq!(token.principal().name(), "token-user");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct CompositeAuthenticator<P, S> {
    password: P,
    saml: S,
}

impl<P, S> CompositeAuthenticator<P, S> {
    /// Passwords go to `password`, SAML tokens to `saml`.
    pub fn new(password: P, saml: S) -> Self {
        CompositeAuthenticator { password, saml }
    }

    /// The authenticator for passwords.
    pub fn password(&self) -> &P {
        &self.password
    }

    /// The authenticator for SAML tokens.
    pub fn saml(&self) -> &S {
        &self.saml
    }
}

impl<P: Authenticator, S: Authenticator> Authenticator for CompositeAuthenticator<P, S> {
    async fn authenticate(&self, credential: Credential<'_>, client: &ClientInfo) -> Result<Authenticated, AuthError> {
        match credential {
            Credential::Basic { .. } => self.password.authenticate(credential, client).await,
            Credential::SamlBearer { .. } => self.saml.authenticate(credential, client).await,
        }
    }
}
