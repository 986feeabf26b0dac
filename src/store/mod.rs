//! The pluggable session store.
//!
//! A store keeps session records and answers one question per request,
//! [`SessionStore::resolve`]: is this id an active session, and if so, mark it
//! used now. Look-up and idle refresh are one atomic operation, so a remote
//! store costs one round trip and a refresh can never race a delete.
//!
//! There is deliberately no method that writes an existing record back: only
//! `create` makes records, so nothing after a delete or an expiry can bring a
//! session back.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;

use crate::{Principal, Session, SessionId, Timestamp};

#[cfg(feature = "memory-store")]
pub mod memory;

#[cfg(feature = "conformance")]
pub mod conformance;

#[cfg(feature = "redis")]
pub mod redis;

/// What a store knows about a session id at this moment.
#[derive(Debug, Clone)]
pub enum Resolution {
    /// The session is active; its idle timer now starts again.
    Active(Session),
    /// No such session: never created, deleted, or expired and already purged.
    Unknown,
    /// The session exists but has passed its idle timeout or absolute deadline.
    Expired,
}

/// Why a store could not answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store cannot be reached or failed internally; the request should be
    /// retried later (503, never 401).
    Unavailable,
    /// The store holds as many sessions as it is allowed to.
    TooManySessions,
    /// The user holds as many sessions as one user is allowed to.
    TooManyUserSessions,
    /// The task store holds as many running tasks as it is allowed to.
    TooManyTasks,
}

/// A store failure. The message is for operators and never holds a session id.
#[derive(Clone, Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: Cow<'static, str>,
}

impl StoreError {
    /// An error of this kind with a message for the logs.
    pub fn new(kind: StoreErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        StoreError { kind, message: message.into() }
    }

    /// The store is unreachable or failed.
    pub fn unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StoreErrorKind::Unavailable, message)
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message for operators.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self.kind {
            StoreErrorKind::Unavailable => "session store unavailable",
            StoreErrorKind::TooManySessions => "session limit reached",
            StoreErrorKind::TooManyUserSessions => "per-user session limit reached",
            StoreErrorKind::TooManyTasks => "task limit reached",
        };
        write!(f, "{what}: {}", self.message)
    }
}

impl std::error::Error for StoreError {}

/// Counts for admin views.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Sessions held, including expired ones not yet purged.
    pub sessions: u64,
    /// Distinct users holding at least one session.
    pub users: u64,
}

/// Where sessions live.
///
/// Implementations are cheap handles (`Clone`) shared by every service of an
/// application. They own the [`ExpiryPolicy`](crate::ExpiryPolicy) and the
/// [`Clock`](crate::Clock), so that every instance sharing a store applies the
/// same rules. The conformance suite (feature `conformance`) checks a store
/// against every invariant.
pub trait SessionStore: Clone + Send + Sync + 'static {
    /// The future of [`resolve`](SessionStore::resolve). A named, `Unpin`
    /// type: the session layer polls it once while handling the call, so a
    /// store that answers at once (like [`std::future::Ready`]) costs no
    /// allocation and no extra state; a remote store returns a boxed future.
    type ResolveFuture: Future<Output = Result<Resolution, StoreError>> + Send + Unpin + 'static;

    /// Creates a session for `principal`, with an absolute deadline of
    /// `min(now + max_lifetime, credential_expiry)`. Never overwrites an
    /// existing session. Fails with `TooManySessions` or `TooManyUserSessions`
    /// when a cap is reached; never evicts a live session to make room.
    fn create(
        &self,
        principal: Principal,
        credential_expiry: Option<Timestamp>,
    ) -> impl Future<Output = Result<Session, StoreError>> + Send;

    /// Looks the session up and, if it is active, sets its last access to now:
    /// one atomic operation that never creates a record.
    fn resolve(&self, id: &SessionId) -> Self::ResolveFuture;

    /// Deletes the session. Idempotent: answers whether a session was there
    /// (an expired one not yet purged counts as there).
    fn delete(&self, id: &SessionId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// How many sessions the store holds, and for how many users.
    fn stats(&self) -> impl Future<Output = Result<StoreStats, StoreError>> + Send;

    /// How many sessions `user` holds (counted against the per-user cap).
    fn user_sessions(&self, user: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;
}
