//! Password logins against a [`UserDirectory`], throttled by a
//! [`LoginThrottle`].

use std::fmt;
use std::sync::Arc;

use super::basic::{MAX_PASSWORD_LEN, MAX_USER_LEN};
use super::{
    AuthError, Authenticated, Authenticator, ClientInfo, Credential, LoginLimit, LoginThrottle, UserDirectory,
};

/// Checks Basic credentials against a [`UserDirectory`], behind a
/// [`LoginThrottle`].
///
/// A login goes through three steps:
///
/// 1. The throttle admits it, or refuses it as
///    [`Throttled`](super::AuthErrorKind::Throttled) while the user name or
///    the client address is locked; the password is then not checked at all.
/// 2. The directory checks the password (case-insensitive user name; unknown
///    users cost the same argon2 work as known ones).
/// 3. The throttle learns the outcome: a failure counts against the name and
///    the address, a success clears the name's failures.
///
/// A wrong password, an unknown user and a malformed credential are all
/// [`Rejected`](super::AuthErrorKind::Rejected), which clients see as the same
/// 401. Other kinds of credential (SAML tokens) are rejected too.
///
/// The principal is named as the directory has it (`Administrator@vsphere.local`
/// for a login as `administrator@VSPHERE.LOCAL`) and carries its groups.
///
/// # Blocking and concurrency
///
/// argon2 is deliberately slow: tens of milliseconds of one core at the
/// default cost. [`authenticate`](Authenticator::authenticate) first waits
/// for a turn under its [`LoginLimit`] (by default one check per core, 64
/// waiting, the rest refused as `Unavailable`, 503), then checks the password:
/// on a multi-threaded tokio runtime inside `block_in_place`, so the worker's
/// other requests move to another thread; elsewhere inline. A server with a
/// pool of its own can call [`authenticate_blocking`] on it instead (see its
/// example); that call is not counted by the limit.
///
/// [`authenticate_blocking`]: PasswordAuthenticator::authenticate_blocking
///
/// # Logging
///
/// Outcomes are logged at `debug` with the user name; passwords are never
/// logged.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower_cis::auth::{
///     AuthErrorKind, Authenticator, ClientInfo, Credential, HashCost, LoginThrottle, PasswordAuthenticator,
///     ThrottlePolicy, UserDirectory,
/// };
/// use tower_cis::{ManualClock, Timestamp};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
/// let users = UserDirectory::new().with_cost(HashCost::insecure_fast_for_tests()).with_user("alice", "right")?;
/// let auth = PasswordAuthenticator::new(users)
///     .with_throttle(LoginThrottle::new(ThrottlePolicy::default(), Arc::new(clock.clone())));
/// let client = ClientInfo::default();
///
/// for _ in 0..5 {
///     let wrong = auth.authenticate(Credential::Basic { user: "alice", password: "wrong" }, &client).await;
///     assert_eq!(wrong.unwrap_err().kind(), AuthErrorKind::Rejected);
/// }
/// let right = Credential::Basic { user: "alice", password: "right" };
/// assert_eq!(auth.authenticate(right, &client).await.unwrap_err().kind(), AuthErrorKind::Throttled);
/// clock.advance(Duration::from_secs(300));
/// assert_eq!(auth.authenticate(right, &client).await?.principal().name(), "alice");
/// # Ok(())
/// # }
/// ```
pub struct PasswordAuthenticator {
    directory: UserDirectory,
    throttle: Arc<LoginThrottle>,
    limit: Arc<LoginLimit>,
}

impl PasswordAuthenticator {
    /// Checks logins against `directory`, throttled by the default policy on
    /// the system clock.
    ///
    /// Makes the directory's decoy hash now, so the first login of an unknown
    /// user takes no longer than any other. Warns when stored hashes use a
    /// cost other than the directory's, which would let timing tell known
    /// users from unknown ones.
    pub fn new(directory: UserDirectory) -> Self {
        directory.prepare();
        let mismatches = directory.cost_mismatches();
        if mismatches > 0 {
            tracing::warn!(
                users = mismatches,
                cost = ?directory.cost(),
                "password hashes with a cost other than the directory's; login timing may reveal which users exist"
            );
        }
        PasswordAuthenticator {
            directory,
            throttle: Arc::new(LoginThrottle::default()),
            limit: Arc::new(LoginLimit::default()),
        }
    }

    /// The same authenticator behind `throttle`, which may be shared with
    /// other authenticators (pass an `Arc<LoginThrottle>`).
    pub fn with_throttle(mut self, throttle: impl Into<Arc<LoginThrottle>>) -> Self {
        self.throttle = throttle.into();
        self
    }

    /// The same authenticator with `limit` on the checks it runs at once,
    /// which may be shared with other authenticators (pass an
    /// `Arc<LoginLimit>`).
    pub fn with_limit(mut self, limit: impl Into<Arc<LoginLimit>>) -> Self {
        self.limit = limit.into();
        self
    }

    /// The bound on checks running at once.
    pub fn limit(&self) -> &Arc<LoginLimit> {
        &self.limit
    }

    /// The users.
    pub fn directory(&self) -> &UserDirectory {
        &self.directory
    }

    /// The throttle, e.g. to unlock a user.
    pub fn throttle(&self) -> &Arc<LoginThrottle> {
        &self.throttle
    }

    /// The check behind [`authenticate`](Authenticator::authenticate), run on
    /// the calling thread: for servers that move argon2 off their async
    /// workers.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use tower_cis::auth::{ClientInfo, Credential, HashCost, PasswordAuthenticator, UserDirectory};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let users = UserDirectory::new().with_cost(HashCost::insecure_fast_for_tests()).with_user("alice", "pw")?;
    /// let auth = Arc::new(PasswordAuthenticator::new(users));
    /// let (user, password) = (String::from("alice"), String::from("pw"));
    /// let worker = Arc::clone(&auth);
    /// let who = tokio::task::spawn_blocking(move || {
    ///     worker.authenticate_blocking(Credential::Basic { user: &user, password: &password }, &ClientInfo::default())
    /// })
    /// .await??;
    /// assert_eq!(who.principal().name(), "alice");
    /// # Ok(())
    /// # }
    /// ```
    pub fn authenticate_blocking(
        &self,
        credential: Credential<'_>,
        client: &ClientInfo,
    ) -> Result<Authenticated, AuthError> {
        let (user, password) = match credential {
            Credential::Basic { user, password } => (user, password),
            Credential::SamlBearer { .. } => {
                return Err(AuthError::rejected("password authentication takes Basic credentials only"));
            }
        };
        if user.is_empty() || user.len() > MAX_USER_LEN || password.len() > MAX_PASSWORD_LEN {
            tracing::debug!(user_len = user.len(), "login rejected: user name or password out of bounds");
            return Err(AuthError::rejected("user name or password out of bounds"));
        }
        let attempt = match self.throttle.begin(user, client.address) {
            Ok(attempt) => attempt,
            Err(throttled) => {
                tracing::debug!(user, address = ?client.address, %throttled, "login throttled");
                return Err(AuthError::throttled(throttled.to_string()));
            }
        };
        match self.directory.verify(user, password) {
            Some(principal) => {
                attempt.succeeded();
                tracing::debug!(user, address = ?client.address, "login succeeded");
                Ok(Authenticated::new(principal))
            }
            None => {
                attempt.failed();
                tracing::debug!(user, address = ?client.address, "login rejected: unknown user or wrong password");
                Err(AuthError::rejected("unknown user or wrong password"))
            }
        }
    }
}

impl Authenticator for PasswordAuthenticator {
    /// Waits for a turn under the [`LoginLimit`], then runs
    /// [`authenticate_blocking`](PasswordAuthenticator::authenticate_blocking)
    /// in one poll. On a multi-threaded tokio runtime (feature `tasks`) it
    /// runs inside `block_in_place`, so the argon2 work does not hold up the
    /// other requests of the worker thread; elsewhere it runs inline.
    async fn authenticate(&self, credential: Credential<'_>, client: &ClientInfo) -> Result<Authenticated, AuthError> {
        let _turn = self.limit.enter().await.map_err(|busy| {
            tracing::warn!(waiting = self.limit.waiting(), "login refused: {busy}");
            AuthError::unavailable(busy.to_string())
        })?;
        #[cfg(feature = "tasks")]
        if tokio::runtime::Handle::try_current()
            .is_ok_and(|runtime| runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread)
        {
            return tokio::task::block_in_place(|| self.authenticate_blocking(credential, client));
        }
        self.authenticate_blocking(credential, client)
    }
}

impl fmt::Debug for PasswordAuthenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordAuthenticator")
            .field("directory", &self.directory)
            .field("throttle", &self.throttle)
            .field("limit", &self.limit)
            .finish()
    }
}
