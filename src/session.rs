//! A session as handlers see it, its wire view, and the expiry policy.

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

use crate::{Principal, SessionId, Timestamp};

/// When sessions end, besides an explicit delete.
///
/// A session is valid at time `t` iff `t < last_access + idle_timeout` and
/// `t < deadline`, where the absolute deadline is fixed at create as
/// `min(created + max_lifetime, credential expiry)`.
///
/// ```
/// use std::time::Duration;
/// use tower_cis::ExpiryPolicy;
/// let policy = ExpiryPolicy::default().with_idle_timeout(Duration::from_secs(600));
/// assert_eq!(policy.idle_timeout(), Duration::from_secs(600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiryPolicy {
    idle_timeout: Duration,
    max_lifetime: Duration,
}

impl Default for ExpiryPolicy {
    /// vCenter's long-standing defaults: 30 minutes idle, and a generous
    /// 24-hour absolute lifetime.
    fn default() -> Self {
        ExpiryPolicy { idle_timeout: Duration::from_secs(30 * 60), max_lifetime: Duration::from_secs(24 * 60 * 60) }
    }
}

impl ExpiryPolicy {
    /// The policy with this idle timeout (at least one millisecond).
    pub fn with_idle_timeout(mut self, idle_timeout: Duration) -> Self {
        self.idle_timeout = idle_timeout.max(Duration::from_millis(1));
        self
    }

    /// The policy with this maximum lifetime (at least one millisecond).
    pub fn with_max_lifetime(mut self, max_lifetime: Duration) -> Self {
        self.max_lifetime = max_lifetime.max(Duration::from_millis(1));
        self
    }

    /// How long a session may go unused.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// How long a session may live at most, however busy.
    pub fn max_lifetime(&self) -> Duration {
        self.max_lifetime
    }

    /// The absolute deadline of a session created at `created` with a
    /// credential that expires at `credential_expiry` (if it does).
    pub fn deadline(&self, created: Timestamp, credential_expiry: Option<Timestamp>) -> Timestamp {
        let by_policy = created.saturating_add(self.max_lifetime);
        credential_expiry.map_or(by_policy, |expiry| expiry.min(by_policy))
    }

    /// When a session last used at `last_access` with this `deadline` ends.
    pub fn expiry(&self, last_access: Timestamp, deadline: Timestamp) -> Timestamp {
        last_access.saturating_add(self.idle_timeout).min(deadline)
    }
}

/// An active session, as a store resolved it.
///
/// The session layer puts one into the request extensions of every request it
/// admits; handlers read the principal and the times from it. It is a
/// snapshot: deleting the session does not change it, and a request that
/// holds one runs to completion.
#[derive(Clone, Debug)]
pub struct Session {
    id: SessionId,
    principal: Arc<Principal>,
    created: Timestamp,
    last_accessed: Timestamp,
    deadline: Timestamp,
}

impl Session {
    /// A snapshot of a session; stores build these.
    pub fn new(
        id: SessionId,
        principal: Arc<Principal>,
        created: Timestamp,
        last_accessed: Timestamp,
        deadline: Timestamp,
    ) -> Self {
        Session { id, principal, created, last_accessed, deadline }
    }

    /// The session token. Handle with care: it is the bearer credential.
    pub fn id(&self) -> &SessionId {
        &self.id
    }

    /// The user the session belongs to.
    pub fn principal(&self) -> &Arc<Principal> {
        &self.principal
    }

    /// The user name.
    pub fn user(&self) -> &str {
        self.principal.name()
    }

    /// When the session was created.
    pub fn created(&self) -> Timestamp {
        self.created
    }

    /// The last access, this request's included.
    pub fn last_accessed(&self) -> Timestamp {
        self.last_accessed
    }

    /// The absolute deadline, fixed at create.
    pub fn deadline(&self) -> Timestamp {
        self.deadline
    }

    /// The wire view returned by the session service's `get`.
    pub fn info(&self) -> SessionInfo<'_> {
        SessionInfo { user: self.principal.name(), created_time: self.created, last_accessed_time: self.last_accessed }
    }
}

/// The `com.vmware.cis.session.info` structure: who, created when, last used when.
///
/// ```
/// use std::sync::Arc;
/// use tower_cis::{Principal, Session, SessionId, Timestamp};
/// let t = Timestamp::from_millis(1_796_413_098_110);
/// let session = Session::new(
///     SessionId::generate().unwrap(),
///     Arc::new(Principal::new("Administrator@vsphere.local")),
///     t, t, Timestamp::MAX,
/// );
/// assert_eq!(
///     serde_json::to_string(&session.info()).unwrap(),
///     r#"{"user":"Administrator@vsphere.local","created_time":"2026-12-04T19:38:18.110Z","last_accessed_time":"2026-12-04T19:38:18.110Z"}"#
/// );
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SessionInfo<'a> {
    /// The user name.
    pub user: &'a str,
    /// When the session was created.
    pub created_time: Timestamp,
    /// When the session was last used.
    pub last_accessed_time: Timestamp,
}
