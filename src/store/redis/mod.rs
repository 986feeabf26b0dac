//! Sessions in Redis, shared by every instance of an application (feature
//! `redis`). Works against one Redis server and against a Redis Cluster.
//!
//! # Keys
//!
//! With the default prefix `tower-cis:` (any prefix without `{` or `}`):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `tower-cis:s:{<name>}` | string | one session: last access, the expiry its TTL was written for, absolute deadline, created (ms since the epoch by the store's clock, fixed width), user, groups (JSON); layout in `record.rs` |
//! | `tower-cis:{tower-cis:idx}:all` | zset | every session name, scored by an *expiry hint*: the earliest time the session can end |
//! | `tower-cis:{tower-cis:idx}:owner` | hash | session name → user |
//! | `tower-cis:{tower-cis:idx}:users` | hash | user → sessions held |
//!
//! A session's *name* is the first 128 bits of SHA-256 over its id, in hex:
//! Redis never holds a session id, so reading Redis (a dump, `KEYS`,
//! `MONITOR`, a replica) yields no usable credential. A session's key is
//! tagged by its name, so sessions spread over a cluster and
//! a request touches one key on one node. The three index keys share one hash
//! tag, so the scripts that keep the caps see them together, atomically; the
//! index lives on one node, and only create, delete and clean-up touch it.
//!
//! # One round trip per request
//!
//! [`SessionStore::resolve`] is one command on the session's key, with `now`
//! from the store's clock; which one depends on when this instance last
//! refreshed the session.
//!
//! *The resolve script.* One EVALSHA of `resolve.lua`. The script returns
//! nothing for a missing key (it never creates one); checks `now >=
//! min(last access + idle timeout, deadline)` and, if so, deletes the key and
//! answers "expired", so that no instance can use the session again;
//! otherwise sets the last access to `max(last access, now)` and returns the
//! record. It also sets the key's TTL to the session's remaining life plus a
//! margin of 2 s, but writes it only when it moves by more than 1 s. Redis
//! expires keys by its own clock, so the TTL only cleans up: validity is
//! decided by the script, against the store's clock.
//!
//! *A plain `GET`, within the refresh granularity.* When this instance
//! refreshed the session less than the granularity ago (default 1 s, see
//! [`RedisStoreBuilder::refresh_granularity`]), Redis's last access is at
//! least that recent, so the session cannot have idled out: the store reads
//! the record with a `GET` and checks the deadline itself. A delete or an
//! expiry by any instance removed the key, so the `GET` sees it at once; a
//! session past its deadline goes to the script, which deletes it. The `GET`
//! leaves the last access as it was: Redis records it at most one
//! granularity late, and the idle timeout may end a session that much early.
//! Redis does a fraction of the script's work, and a busy session runs the
//! script about once per granularity per instance. The store remembers
//! recently refreshed sessions in a bounded map (at most 65,536).
//!
//! On one node, the commands of concurrent requests (`GET`s and script
//! calls alike) travel together: a task of the store's sends whatever has
//! queued up as one pipeline, so that under load one write carries many
//! look-ups (and Redis reads them in one go), instead of one system call on
//! each side per request. Each look-up still is one command with its own
//! answer; a script call that finds Redis without its scripts (after a
//! restart) loads them and is sent again.
//!
//! The record is one string whose times come first, in fixed width: the
//! script reads them with one `GET` and writes the new last access in place
//! with one `SETRANGE` (plus a `PEXPIRE` when the TTL moves), which costs
//! Redis much less than a hash read and written field by field.
//!
//! # Caps and counts
//!
//! `create` costs two round trips: `SET … NX PX` writes the record under a
//! fresh id, refusing an existing key (a new id is drawn on collision); then
//! `admit.lua` counts it against both caps and adds it to the index, in one
//! atomic step on the index's slot, so concurrent creates never exceed a cap.
//! When a cap is reached, the store first removes what has expired (below)
//! and tries once more; a refused create deletes its record again. A live
//! session is never evicted.
//!
//! The index learns of idle refreshes lazily. An id's expiry hint is a lower
//! bound of its real expiry, so ids whose hint lies ahead are live; ids whose
//! hint has come are *due*: `reap.lua` looks at each one's record (deleting it
//! if it has expired, atomically with the check) and `settle.lua` then drops
//! the id from the index or raises its hint to the session's real expiry. The
//! cost follows the sessions whose expiry came, not the sessions held; each
//! session is looked at again at most once per idle timeout. `admit.lua`
//! returns up to 32 due ids with every create, so that clean-up keeps pace
//! with creates; `stats`, `user_sessions` and [`RedisStore::purge_expired`]
//! clean up everything due first, so that expired sessions never count.
//!
//! `delete` is a `DEL` of the record (its answer says whether the session was
//! there) and `settle.lua` on its id: two round trips, idempotent. Nothing but
//! create's `SET … NX` writes a record that is not there, so a delete racing resolves
//! can never be undone.
//!
//! # Failures
//!
//! Every Redis call is bounded by the store's timeout (default 2 s). A Redis
//! error or a timeout is a [`StoreError`] of kind `Unavailable` (a 503 from
//! the session layer, never a 401). The connection manager reconnects by
//! itself after Redis restarts; scripts are loaded again on NOSCRIPT. A create
//! that fails half-way leaves at most a record nobody knows the id of, which
//! its TTL removes, or an index entry, which clean-up removes once due.
//!
//! In a cluster, a node that is down makes its own sessions unavailable;
//! while the index's node is down, `create`, `stats` and `user_sessions`
//! are unavailable and `delete` still deletes (the index catches up later).
//!
//! The connection is made on the Tokio runtime of the store's first call and
//! lives on it; use the store from that runtime. Redis 5 or later; Redis
//! Cluster with every node reachable by the address it announces.

mod batch;
mod config;
mod connection;
mod keys;
mod principals;
mod recent;
mod record;
mod script;
#[cfg(feature = "tasks")]
mod tasks;

use std::fmt;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use ::redis::{Value, cmd};

pub use self::config::{
    DEFAULT_KEY_PREFIX, DEFAULT_REFRESH_GRANULARITY, DEFAULT_TIMEOUT, RedisConfigError, RedisStoreBuilder,
};
use self::connection::Link;
use self::keys::{Keys, StoredName};
use self::principals::{Principals, encode_groups};
use self::recent::Recent;
use self::script::{ADMIT, Admission, REAP, RESOLVE, Reaped, SETTLE, STATS};
#[cfg(feature = "tasks")]
pub use self::tasks::{RedisTaskStore, RedisTaskStoreBuilder};
use super::{Resolution, SessionStore, StoreError, StoreErrorKind, StoreStats};
use crate::clock::SharedClock;
use crate::{ExpiryPolicy, Principal, Session, SessionId, Timestamp};

/// Times beyond 2^53 ms (year 287,000) are clamped, so that Lua's numbers
/// hold them exactly.
const MAX_SAFE_MILLIS: u64 = (1 << 53) - 1;
/// Added to a key's TTL beyond the session's remaining life.
const TTL_MARGIN_MS: u64 = 2_000;
/// A key's TTL is written again only when it would move by more than this.
const TTL_GRANULARITY_MS: u64 = 1_000;
/// Due ids cleaned up along with each create.
const CLEAN_UP_PER_CREATE: u64 = 32;
/// Due ids looked at per step of a full clean-up.
const CLEAN_UP_BATCH: u64 = 256;
/// Fresh ids tried before a create gives up (a collision of 128-bit random
/// ids means the random source is broken).
const ID_ATTEMPTS: usize = 4;

/// Sessions in Redis, shared by every instance of an application.
///
/// One Redis round trip per authenticated request; works against one server
/// or a Redis Cluster; caps on sessions in total and per user, kept
/// atomically; fails closed (`Unavailable`, a 503) when Redis cannot be
/// reached within the timeout. See the [module docs](self) for the keys and
/// scripts. Clones are handles to the same store.
///
/// ```no_run
/// use tower_cis::{Principal, RedisStore, SessionAuthLayer, SessionStore, store::Resolution};
/// # #[tokio::main] async fn main() {
/// let store = RedisStore::builder().url("redis://127.0.0.1:6379").build().unwrap();
/// let session = store.create(Principal::new("alice"), None).await.unwrap();
/// // Another instance, with its own store on the same Redis, sees it.
/// let elsewhere = RedisStore::builder().url("redis://127.0.0.1:6379").build().unwrap();
/// assert!(matches!(elsewhere.resolve(session.id()).await, Ok(Resolution::Active(_))));
/// let layer = SessionAuthLayer::new(elsewhere);
/// # let _ = layer;
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    keys: Keys,
    policy: ExpiryPolicy,
    clock: SharedClock,
    idle_ms: u64,
    max_sessions: u64,
    max_sessions_per_user: u64,
    principals: Principals,
    recent: Recent,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RedisStore")
            .field("cluster", &inner.link.connector().is_cluster())
            .field("key_prefix", &inner.keys.prefix())
            .field("policy", &inner.policy)
            .field("timeout", &inner.link.timeout())
            .finish_non_exhaustive()
    }
}

/// What a clean-up of expired sessions did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RedisPurgeReport {
    /// Ids removed from the index: their sessions had expired (and are
    /// deleted now) or were gone already.
    pub removed: u64,
    /// Ids looked at: those whose expiry hint had come. Sessions whose
    /// expiry lies ahead are not looked at.
    pub examined: u64,
}

impl RedisStore {
    /// Configures a store.
    pub fn builder() -> RedisStoreBuilder {
        RedisStoreBuilder::default()
    }

    /// The store's expiry policy.
    pub fn policy(&self) -> ExpiryPolicy {
        self.inner.policy
    }

    /// The store's clock.
    pub fn clock(&self) -> &SharedClock {
        &self.inner.clock
    }

    /// The prefix of every key of this store.
    pub fn key_prefix(&self) -> &str {
        self.inner.keys.prefix()
    }

    /// Whether Redis answers within the timeout; for readiness checks.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let ping = cmd("PING");
        self.inner.link.run(|connection| connection.query::<()>(&ping)).await
    }

    /// Removes from the index every session that has expired by now (and its
    /// record, if Redis still holds it). `stats`, `user_sessions` and creates
    /// at a cap do this by themselves; call it to reclaim memory on a
    /// schedule, say.
    pub async fn purge_expired(&self) -> Result<RedisPurgeReport, StoreError> {
        self.inner.clean_up(self.inner.clock.now()).await
    }
}

/// Clamps a time so that Lua's numbers hold it exactly.
fn safe(time: Timestamp) -> u64 {
    time.as_millis().min(MAX_SAFE_MILLIS)
}

impl Inner {
    async fn resolve(&self, id: SessionId, now: Timestamp) -> Result<Resolution, StoreError> {
        // Refreshed by this instance less than the granularity ago: a plain
        // read sees a delete or an expiry by any instance, and the deadline.
        let now_ms = safe(now);
        if let Some(read) = self.recent.read(&id, now_ms) {
            let reply = self.link.query_batched(read).await?;
            match reply {
                Value::Nil => {
                    self.recent.forget(&id);
                    return Ok(Resolution::Unknown);
                }
                Value::BulkString(bytes) => {
                    let record = record::parse(&bytes).ok_or_else(malformed)?;
                    // Past its time only at the deadline (or when the clock
                    // jumped): then the script decides, and deletes it.
                    if now < self.policy.expiry(record.last_access, record.deadline) {
                        return self.session(id, now, &record).map(Resolution::Active);
                    }
                }
                _ => return Err(malformed()),
            }
        }
        let key = self.keys.session(StoredName::of(&id).as_str());
        let args = [now_ms, self.idle_ms, TTL_MARGIN_MS, TTL_GRANULARITY_MS];
        let reply = self.link.invoke_batched(&RESOLVE, &key, &args).await?;
        let resolution = match reply {
            Value::Nil => Resolution::Unknown,
            Value::Int(0) => Resolution::Expired,
            Value::BulkString(bytes) => {
                let record = record::parse(&bytes).ok_or_else(malformed)?;
                let session = self.session(id, now, &record)?;
                // The script recorded `now` as the last access (or kept a
                // later one, by another instance's clock).
                self.recent.confirm(id, &key, now_ms);
                return Ok(Resolution::Active(session));
            }
            _ => return Err(malformed()),
        };
        self.recent.forget(&id);
        Ok(resolution)
    }

    /// The active session a record describes, as accessed at `now`.
    fn session(&self, id: SessionId, now: Timestamp, record: &record::Record<'_>) -> Result<Session, StoreError> {
        let principal = self.principals.decode(record.user, record.groups)?;
        Ok(Session::new(id, principal, record.created, record.last_access.max(now), record.deadline))
    }

    async fn create(&self, principal: Principal, credential_expiry: Option<Timestamp>) -> Result<Session, StoreError> {
        let now = Timestamp::from_millis(safe(self.clock.now()));
        let deadline = Timestamp::from_millis(safe(self.policy.deadline(now, credential_expiry)));
        let expiry = now.as_millis().saturating_add(self.idle_ms).min(deadline.as_millis());
        let ttl = expiry.saturating_sub(now.as_millis()) + TTL_MARGIN_MS;
        let groups = encode_groups(&principal);
        let user = principal.name();
        let record = record::encode(now.as_millis(), deadline.as_millis(), expiry, user, &groups);
        for _ in 0..ID_ATTEMPTS {
            let id = SessionId::generate().map_err(|error| StoreError::unavailable(error.to_string()))?;
            let name = StoredName::of(&id);
            let key = self.keys.session(name.as_str());
            let mut write = cmd("SET");
            write.arg(&key).arg(&record).arg("NX").arg("PX").arg(ttl);
            let written: Value = self.link.run(|connection| connection.query(&write)).await?;
            match written {
                Value::Okay => {}
                Value::Nil => continue,
                _ => return Err(malformed()),
            }
            let admitted = match self.admit(&name, user, expiry, now).await {
                Ok(Admission::Admitted) => Ok(()),
                Ok(Admission::IdTaken) => {
                    self.forget(&key).await;
                    continue;
                }
                Ok(Admission::StoreFull) => {
                    Err(StoreError::new(StoreErrorKind::TooManySessions, "the session store is full"))
                }
                Ok(Admission::UserFull) => {
                    Err(StoreError::new(StoreErrorKind::TooManyUserSessions, "the user has too many sessions"))
                }
                Err(error) => Err(error),
            };
            if let Err(error) = admitted {
                self.forget(&key).await;
                return Err(error);
            }
            let principal = self.principals.intern(principal, groups.as_bytes());
            self.recent.confirm(id, &key, now.as_millis());
            return Ok(Session::new(id, principal, now, now, deadline));
        }
        Err(StoreError::unavailable("could not draw an unused session id"))
    }

    /// Counts a written session against the caps. At a cap, cleans up what
    /// has expired and tries once more. Cleans up a few due ids along.
    async fn admit(&self, name: &StoredName, user: &str, expiry: u64, now: Timestamp) -> Result<Admission, StoreError> {
        let mut retried = false;
        loop {
            let clean_up = if retried { 0 } else { CLEAN_UP_PER_CREATE };
            let mut admit = ADMIT.key(&*self.keys.all);
            admit.key(&*self.keys.owner).key(&*self.keys.users);
            admit
                .arg(name.as_str())
                .arg(user)
                .arg(expiry)
                .arg(self.max_sessions)
                .arg(self.max_sessions_per_user)
                .arg(safe(now))
                .arg(clean_up);
            let (status, due): (i64, Vec<String>) = self.link.run(|connection| connection.invoke(&admit)).await?;
            let admission = Admission::from_status(status).ok_or_else(malformed)?;
            match admission {
                Admission::StoreFull | Admission::UserFull if !retried => {
                    self.clean_up(now).await?;
                    retried = true;
                }
                _ => {
                    if !due.is_empty() {
                        // The session is made; a failed clean-up is retried
                        // by later creates and must not fail this one.
                        if let Err(error) = self.reap_and_settle(&due, now).await {
                            tracing::debug!(%error, "clean-up along a create failed");
                        }
                    }
                    return Ok(admission);
                }
            }
        }
    }

    /// Deletes the record of a create that did not complete; best effort (the
    /// record's TTL removes it otherwise, and nobody knows its id).
    async fn forget(&self, key: &str) {
        let mut del = cmd("DEL");
        del.arg(key);
        if let Err(error) = self.link.run(|connection| connection.query::<i64>(&del)).await {
            tracing::debug!(%error, "could not delete the record of a refused create");
        }
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.recent.forget(id);
        let mut del = cmd("DEL");
        let name = StoredName::of(id);
        del.arg(self.keys.session(name.as_str()));
        let existed: i64 = self.link.run(|connection| connection.query(&del)).await?;
        if let Err(error) = self.settle(&[(name.as_str(), None)]).await {
            // The session is gone; its index entry is removed once due.
            tracing::warn!(%error, "a deleted session is still counted until it would have expired");
        }
        Ok(existed > 0)
    }

    /// Cleans up every id whose expiry hint has come by `now`.
    async fn clean_up(&self, now: Timestamp) -> Result<RedisPurgeReport, StoreError> {
        let mut report = RedisPurgeReport::default();
        loop {
            let mut range = cmd("ZRANGEBYSCORE");
            range.arg(&*self.keys.all).arg("-inf").arg(safe(now)).arg("LIMIT").arg(0).arg(CLEAN_UP_BATCH);
            let due: Vec<String> = self.link.run(|connection| connection.query(&range)).await?;
            if due.is_empty() {
                break;
            }
            report.examined += due.len() as u64;
            report.removed += self.reap_and_settle(&due, now).await?;
            // Every due id was removed or got a hint beyond `now`: progress.
            if (due.len() as u64) < CLEAN_UP_BATCH {
                break;
            }
        }
        if report.removed > 0 {
            tracing::debug!(removed = report.removed, examined = report.examined, "purged expired sessions");
        }
        Ok(report)
    }

    /// Reaps the sessions of the due ids (concurrently, one key each), then
    /// updates the index; returns how many ids left the index.
    async fn reap_and_settle(&self, due: &[String], now: Timestamp) -> Result<u64, StoreError> {
        let reaps = due.iter().map(|name| async move {
            let mut reap = REAP.key(self.keys.session(name));
            reap.arg(safe(now)).arg(self.idle_ms);
            let reply: i64 = self.link.run(|connection| connection.invoke(&reap)).await?;
            Ok::<_, StoreError>(Reaped::from_reply(reply))
        });
        let outcomes = join_all(reaps.collect()).await;
        let mut changes = Vec::with_capacity(due.len());
        for (name, outcome) in due.iter().zip(outcomes) {
            let expiry = match outcome? {
                Reaped::Gone | Reaped::Expired => None,
                Reaped::Live(expiry) => Some(expiry),
            };
            changes.push((name.as_str(), expiry));
        }
        self.settle(&changes).await
    }

    /// Removes ids from the index (`None`) or raises their expiry hints.
    async fn settle(&self, changes: &[(&str, Option<u64>)]) -> Result<u64, StoreError> {
        let mut settle = SETTLE.key(&*self.keys.all);
        settle.key(&*self.keys.owner).key(&*self.keys.users);
        for (name, expiry) in changes {
            settle.arg(*name);
            match expiry {
                Some(expiry) => settle.arg(*expiry),
                None => settle.arg("-"),
            };
        }
        self.link.run(|connection| connection.invoke(&settle)).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.clean_up(self.clock.now()).await?;
        let mut stats = STATS.key(&*self.keys.all);
        stats.key(&*self.keys.users);
        let (sessions, users): (u64, u64) = self.link.run(|connection| connection.invoke(&stats)).await?;
        Ok(StoreStats { sessions, users })
    }

    async fn user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        self.clean_up(self.clock.now()).await?;
        let mut held = cmd("HGET");
        held.arg(&*self.keys.users).arg(user);
        let held: Option<u64> = self.link.run(|connection| connection.query(&held)).await?;
        Ok(held.unwrap_or(0))
    }
}

/// Polls every future to completion, concurrently; the outputs in order.
async fn join_all<F: Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    poll_fn(|cx| {
        let mut pending = false;
        for (future, output) in futures.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    Poll::Ready(value) => *output = Some(value),
                    Poll::Pending => pending = true,
                }
            }
        }
        if pending { Poll::Pending } else { Poll::Ready(()) }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

fn malformed() -> StoreError {
    StoreError::unavailable("unexpected reply from Redis")
}

impl SessionStore for RedisStore {
    type ResolveFuture = Pin<Box<dyn Future<Output = Result<Resolution, StoreError>> + Send>>;

    async fn create(&self, principal: Principal, credential_expiry: Option<Timestamp>) -> Result<Session, StoreError> {
        self.inner.create(principal, credential_expiry).await
    }

    fn resolve(&self, id: &SessionId) -> Self::ResolveFuture {
        let inner = Arc::clone(&self.inner);
        let now = inner.clock.now();
        let id = *id;
        Box::pin(async move { inner.resolve(id, now).await })
    }

    async fn delete(&self, id: &SessionId) -> Result<bool, StoreError> {
        self.inner.delete(id).await
    }

    async fn stats(&self) -> Result<StoreStats, StoreError> {
        self.inner.stats().await
    }

    async fn user_sessions(&self, user: &str) -> Result<u64, StoreError> {
        self.inner.user_sessions(user).await
    }
}
