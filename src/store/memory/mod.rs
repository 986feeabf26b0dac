//! The embedded in-memory session store.

mod index;
mod lock;
mod replica;
mod shard;
mod sweeper;
mod users;

use std::fmt;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use self::lock::ShardLock;
use self::shard::{Insert, Lookup, Shard, due_bucket};
use self::users::Users;
use super::{Resolution, SessionStore, StoreError, StoreErrorKind, StoreStats};
use crate::clock::SharedClock;
use crate::{ExpiryPolicy, Principal, Session, SessionId, SystemClock, Timestamp};

/// Keeps each shard's lock on its own cache lines, so that threads working on
/// different shards never contend.
#[repr(align(128))]
struct Padded<T>(T);

/// Sessions in this process's memory: zero set-up, the default store.
///
/// - No global lock: sessions are spread over shards by id; `resolve` takes a
///   shard's read lock (a lock per thread, so cores reading one shard do not
///   contend) and refreshes the idle timer with one atomic store. It reads
///   the clock's [`recent`](crate::Clock::recent) time (on Linux, the
///   system clock as of the last timer tick), so an idle or absolute expiry
///   takes effect up to a tick (usually 4 ms) late; creation reads the exact
///   time.
/// - A background sweeper (a thread that ends when the last handle is
///   dropped) removes expired sessions. It looks only at sessions whose expiry
///   has come, so its cost follows the number of sessions that expire, not
///   the number held.
/// - Caps on sessions in total and per user; a full store refuses to create,
///   it never evicts a live session.
/// - A user's sessions share one stored [`Principal`]. A resolved session
///   carries this thread's copy of it (equal, with a reference count of its
///   own), so that cores serving one user do not contend for one count.
///
/// Clones are handles to the same store.
///
/// ```
/// use tower_cis::{MemoryStore, Principal, SessionStore, store::Resolution};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let store = MemoryStore::builder().max_sessions_per_user(10).build();
/// let session = store.create(Principal::new("alice"), None).await.unwrap();
/// assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Active(_))));
/// store.delete(session.id()).await.unwrap();
/// assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Unknown)));
/// # });
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[ShardLock<Shard>]>,
    users: Users,
    sessions: AtomicU64,
    max_sessions: u64,
    policy: ExpiryPolicy,
    clock: SharedClock,
    granularity: u64,
    _sweeper: Option<sweeper::Stop>,
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore")
            .field("sessions", &self.inner.sessions.load(Ordering::Relaxed))
            .field("shards", &self.inner.shards.len())
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

/// What a purge did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PurgeReport {
    /// Sessions removed because they had expired.
    pub removed: u64,
    /// Sessions looked at: the expired ones, plus those whose earlier expiry
    /// had come but that were used since (each is looked at again at most
    /// once per idle timeout). Sessions whose expiry lies ahead are not
    /// looked at.
    pub examined: u64,
}

/// Configures a [`MemoryStore`].
#[derive(Debug)]
pub struct MemoryStoreBuilder {
    policy: ExpiryPolicy,
    clock: SharedClock,
    max_sessions: u64,
    max_sessions_per_user: u64,
    shards: usize,
    sweep_interval: Option<Duration>,
}

impl Default for MemoryStoreBuilder {
    fn default() -> Self {
        MemoryStoreBuilder {
            policy: ExpiryPolicy::default(),
            clock: Arc::new(SystemClock),
            max_sessions: 1_000_000,
            max_sessions_per_user: 1_000,
            shards: 64,
            sweep_interval: Some(Duration::from_secs(1)),
        }
    }
}

impl MemoryStoreBuilder {
    /// The expiry policy (default: 30 minutes idle, 24 hours at most).
    pub fn policy(mut self, policy: ExpiryPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The clock (default: the system clock). Look-ups read its
    /// [`recent`](crate::Clock::recent) time, everything else its `now`.
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

    /// The number of shards, rounded up to a power of two (default 64).
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards.clamp(1, 1 << 16).next_power_of_two();
        self
    }

    /// How often the background sweeper runs (default every second), or
    /// `None` for no sweeper thread: expired sessions are then refused by
    /// `resolve` and removed only by [`MemoryStore::purge_expired`].
    pub fn sweep_interval(mut self, interval: Option<Duration>) -> Self {
        self.sweep_interval = interval;
        self
    }

    /// Builds the store and starts its sweeper.
    pub fn build(self) -> MemoryStore {
        let granularity = self.sweep_interval.map_or(1000, |i| i.as_millis().clamp(1, 60_000) as u64);
        let make_inner = |stop| Inner {
            shards: (0..self.shards).map(|_| ShardLock::new(Shard::default())).collect(),
            users: Users::new(self.shards, self.max_sessions_per_user),
            sessions: AtomicU64::new(0),
            max_sessions: self.max_sessions,
            policy: self.policy,
            clock: Arc::clone(&self.clock),
            granularity,
            _sweeper: stop,
        };
        let inner = match self.sweep_interval {
            Some(interval) => sweeper::start(interval, make_inner, |inner: &Inner| inner.purge().removed),
            None => Arc::new(make_inner(None)),
        };
        MemoryStore { inner }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    /// A store with the default policy, caps and system clock.
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// Configures a store.
    pub fn builder() -> MemoryStoreBuilder {
        MemoryStoreBuilder::default()
    }

    /// The store's expiry policy.
    pub fn policy(&self) -> ExpiryPolicy {
        self.inner.policy
    }

    /// The store's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// Removes every session that has expired by now; what the sweeper does.
    pub fn purge_expired(&self) -> PurgeReport {
        self.inner.purge()
    }

    fn shard(&self, id: &SessionId) -> &ShardLock<Shard> {
        // Bytes 0..8 place the id within the shard; the last byte picks the shard.
        let index = usize::from(id.as_bytes()[15]) & (self.inner.shards.len() - 1);
        &self.inner.shards[index]
    }

    fn create_now(&self, principal: Principal, credential_expiry: Option<Timestamp>) -> Result<Session, StoreError> {
        let inner = &*self.inner;
        let principal = self.admit(principal).map_err(|kind| {
            let message = match kind {
                StoreErrorKind::TooManySessions => "the store is full",
                _ => "the user has too many sessions",
            };
            StoreError::new(kind, message)
        })?;
        let now = inner.clock.now();
        let deadline = inner.policy.deadline(now, credential_expiry);
        let due = due_bucket(inner.policy.expiry(now, deadline), inner.granularity);
        loop {
            let id = match SessionId::generate() {
                Ok(id) => id,
                Err(error) => {
                    inner.users.release(principal.name());
                    inner.sessions.fetch_sub(1, Ordering::AcqRel);
                    return Err(StoreError::unavailable(error.to_string()));
                }
            };
            let session = Session::new(id, Arc::clone(&principal), now, now, deadline);
            match self.shard(&id).write().insert(&session, due) {
                Insert::Done => return Ok(session),
                Insert::IdTaken => continue,
                Insert::ShardFull => {
                    inner.users.release(principal.name());
                    inner.sessions.fetch_sub(1, Ordering::AcqRel);
                    return Err(StoreError::new(StoreErrorKind::TooManySessions, "a store shard is full"));
                }
            }
        }
    }

    /// Takes one place under the user's cap and one under the total cap, or
    /// neither. At a cap, purges expired sessions once and tries again:
    /// expired sessions that the sweeper has not reached yet must not keep a
    /// new one out.
    fn admit(&self, principal: Principal) -> Result<Arc<Principal>, StoreErrorKind> {
        let inner = &*self.inner;
        match inner.users.admit(principal, &inner.sessions, inner.max_sessions) {
            Ok(principal) => Ok(principal),
            Err((principal, _)) => {
                inner.purge();
                inner.users.admit(principal, &inner.sessions, inner.max_sessions).map_err(|(_, kind)| kind)
            }
        }
    }
}

impl Inner {
    /// Sweeps every shard whose earliest bucket is due.
    fn purge(&self) -> PurgeReport {
        let now = self.clock.now();
        let mut removed = Vec::new();
        let mut examined = 0;
        for shard in self.shards.iter() {
            let due = shard.read().next_due().is_some_and(|first| first <= now.as_millis());
            if due {
                examined += shard.write().sweep(now, &self.policy, self.granularity, &mut removed);
            }
        }
        let report = PurgeReport { removed: removed.len() as u64, examined };
        if report.removed > 0 {
            self.sessions.fetch_sub(report.removed, Ordering::AcqRel);
            for principal in &removed {
                self.users.release(principal.name());
            }
            tracing::debug!(removed = report.removed, examined, "purged expired sessions");
        }
        report
    }
}

impl SessionStore for MemoryStore {
    type ResolveFuture = Ready<Result<Resolution, StoreError>>;

    async fn create(&self, principal: Principal, credential_expiry: Option<Timestamp>) -> Result<Session, StoreError> {
        self.create_now(principal, credential_expiry)
    }

    fn resolve(&self, id: &SessionId) -> Self::ResolveFuture {
        let now = self.inner.clock.recent();
        let lookup = self.shard(id).read().resolve(id, now, &self.inner.policy);
        ready(Ok(match lookup {
            Lookup::Active(session) => Resolution::Active(session),
            Lookup::Expired => Resolution::Expired,
            Lookup::Unknown => Resolution::Unknown,
        }))
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        let removed = self.shard(id).write().remove(id);
        match removed {
            Some(principal) => {
                self.inner.sessions.fetch_sub(1, Ordering::AcqRel);
                self.inner.users.release(principal.name());
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        let sessions = self.inner.shards.iter().map(|shard| shard.read().len() as u64).sum();
        Ok(StoreStats { sessions, users: self.inner.users.count() })
    }

    async fn user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        Ok(self.inner.users.sessions_of(user))
    }
}
