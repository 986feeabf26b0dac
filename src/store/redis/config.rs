//! Configuring a [`RedisStore`].

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::connection::{Connector, Link};
use super::keys::Keys;
use super::principals::Principals;
use super::recent::Recent;
use super::{Inner, MAX_SAFE_MILLIS, RedisStore};
use crate::clock::SharedClock;
use crate::{ExpiryPolicy, SystemClock};

/// The key prefix when none is set.
pub const DEFAULT_KEY_PREFIX: &str = "tower-cis:";

/// The per-call timeout when none is set.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// How late Redis may record a session's last access, when not set.
pub const DEFAULT_REFRESH_GRANULARITY: Duration = Duration::from_secs(1);

/// Where the store connects.
#[derive(Clone)]
pub(super) enum Target {
    Single(String),
    Cluster(Vec<String>),
}

impl Default for Target {
    fn default() -> Self {
        Target::Single(String::from("redis://127.0.0.1:6379"))
    }
}

impl Target {
    /// How many node URLs (URLs may hold passwords: show only this).
    pub(super) fn nodes(&self) -> usize {
        match self {
            Target::Single(_) => 1,
            Target::Cluster(nodes) => nodes.len(),
        }
    }

    /// The link to the target, after checking the settings every store shares.
    pub(super) fn link(&self, key_prefix: &str, timeout: Duration) -> Result<Link, RedisConfigError> {
        if key_prefix.contains(['{', '}']) {
            return Err(RedisConfigError::new("the key prefix may not hold `{` or `}`"));
        }
        if timeout.is_zero() {
            return Err(RedisConfigError::new("the timeout must be longer than zero"));
        }
        let connector = match self {
            Target::Single(url) => Connector::single(url, timeout),
            Target::Cluster(nodes) if nodes.is_empty() => {
                return Err(RedisConfigError::new("a cluster needs at least one node URL"));
            }
            Target::Cluster(nodes) => Connector::cluster(nodes, timeout),
        }
        .map_err(|error| RedisConfigError::new(format!("invalid Redis configuration: {error}")))?;
        Ok(Link::new(connector, timeout))
    }
}

/// Configures a [`RedisStore`]; made by [`RedisStore::builder`].
pub struct RedisStoreBuilder {
    target: Target,
    policy: ExpiryPolicy,
    clock: SharedClock,
    max_sessions: u64,
    max_sessions_per_user: u64,
    key_prefix: String,
    timeout: Duration,
    refresh_granularity: Duration,
}

impl fmt::Debug for RedisStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStoreBuilder")
            .field("cluster", &matches!(self.target, Target::Cluster(_)))
            .field("nodes", &self.target.nodes())
            .field("policy", &self.policy)
            .field("max_sessions", &self.max_sessions)
            .field("max_sessions_per_user", &self.max_sessions_per_user)
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("refresh_granularity", &self.refresh_granularity)
            .finish_non_exhaustive()
    }
}

impl Default for RedisStoreBuilder {
    fn default() -> Self {
        RedisStoreBuilder {
            target: Target::default(),
            policy: ExpiryPolicy::default(),
            clock: Arc::new(SystemClock),
            max_sessions: 1_000_000,
            max_sessions_per_user: 1_000,
            key_prefix: String::from(DEFAULT_KEY_PREFIX),
            timeout: DEFAULT_TIMEOUT,
            refresh_granularity: DEFAULT_REFRESH_GRANULARITY,
        }
    }
}

impl RedisStoreBuilder {
    /// One Redis server (default `redis://127.0.0.1:6379`), reached through a
    /// connection manager that reconnects by itself. Any `redis://`,
    /// `rediss://` or `redis+unix://` URL the `redis` crate accepts.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.target = Target::Single(url.into());
        self
    }

    /// A Redis Cluster, given the URLs of some of its nodes; the store learns
    /// the rest from them.
    pub fn cluster<I, U>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        self.target = Target::Cluster(nodes.into_iter().map(Into::into).collect());
        self
    }

    /// The expiry policy (default: 30 minutes idle, 24 hours at most). Every
    /// instance sharing the sessions should use the same one.
    pub fn policy(mut self, policy: ExpiryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The clock (default: the system clock). Expiry is decided against this
    /// clock, never against Redis's.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// At most this many sessions in the store (default 1,000,000).
    pub fn max_sessions(mut self, max: u64) -> Self {
        self.max_sessions = max;
        self
    }

    /// At most this many sessions per user (default 1,000).
    pub fn max_sessions_per_user(mut self, max: u64) -> Self {
        self.max_sessions_per_user = max;
        self
    }

    /// The prefix of every key (default `tower-cis:`); stores with different
    /// prefixes share nothing. It may not hold `{` or `}`, which would change
    /// how keys are spread over a cluster.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one Redis call may take before the store answers
    /// `Unavailable` (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How late Redis may record a session's last access (default 1 s,
    /// at most half the idle timeout). A session this instance refreshed
    /// less than this long ago is looked up with a plain `GET` instead of
    /// the resolve script: the `GET` still sees a delete or an expiry by any
    /// instance at once, and the absolute deadline, but leaves the last
    /// access as it was. So an idle timeout may end a session up to this
    /// much early, and Redis does far less work per request. Zero runs the
    /// script on every request: the idle timer to the millisecond.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_cis::RedisStore;
    ///
    /// let exact = RedisStore::builder().refresh_granularity(Duration::ZERO).build().unwrap();
    /// # drop(exact);
    /// ```
    pub fn refresh_granularity(mut self, granularity: Duration) -> Self {
        self.refresh_granularity = granularity;
        self
    }

    /// Builds the store. Connects lazily, on the first call: a store built
    /// while Redis is down answers `Unavailable` until Redis is reachable.
    /// Needs no runtime; the calls need a Tokio runtime with timers enabled.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_cis::RedisStore;
    ///
    /// let store = RedisStore::builder()
    ///     .url("redis://127.0.0.1:6379")
    ///     .timeout(Duration::from_millis(500))
    ///     .build()
    ///     .unwrap();
    /// assert_eq!(store.key_prefix(), "tower-cis:");
    /// assert!(RedisStore::builder().key_prefix("{app}").build().is_err());
    /// assert!(RedisStore::builder().url("http://example.com").build().is_err());
    /// ```
    pub fn build(self) -> Result<RedisStore, RedisConfigError> {
        let link = self.target.link(&self.key_prefix, self.timeout)?;
        let idle_ms = u64::try_from(self.policy.idle_timeout().as_millis()).unwrap_or(u64::MAX).min(MAX_SAFE_MILLIS);
        let granularity_ms = u64::try_from(self.refresh_granularity.as_millis()).unwrap_or(u64::MAX).min(idle_ms / 2);
        Ok(RedisStore {
            inner: Arc::new(Inner {
                link,
                keys: Keys::new(&self.key_prefix),
                policy: self.policy,
                clock: self.clock,
                idle_ms,
                max_sessions: self.max_sessions,
                max_sessions_per_user: self.max_sessions_per_user,
                principals: Principals::new(),
                recent: Recent::new(granularity_ms),
            }),
        })
    }
}

/// A [`RedisStoreBuilder`] setting that cannot work.
#[derive(Clone, Debug)]
pub struct RedisConfigError {
    message: String,
}

impl RedisConfigError {
    pub(super) fn new(message: impl Into<String>) -> Self {
        RedisConfigError { message: message.into() }
    }
}

impl fmt::Display for RedisConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for RedisConfigError {}
