//! The store conformance suite: every [`SessionStore`] must pass it.
//!
//! Implement [`StoreFactory`] for your store and expand
//! [`store_conformance_tests!`](crate::store_conformance_tests) in a test
//! file; every case becomes its own `#[tokio::test]`:
//!
//! ```text
//! // tests/my_store_conformance.rs
//! tower_cis::store_conformance_tests!(MyStoreFactory::new());
//! ```
//!
//! `tests/store_conformance_memory.rs` and `tests/store_conformance_redis.rs`
//! in this crate are complete examples.
//!
//! Time is a [`ManualClock`], so expiry is tested without sleeping.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::store::{Resolution, StoreErrorKind};
use crate::{ExpiryPolicy, ManualClock, Principal, Session, SessionStore, Timestamp};

/// How a case wants its store.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The expiry policy.
    pub policy: ExpiryPolicy,
    /// The clock the store must read.
    pub clock: ManualClock,
    /// The cap on sessions in total.
    pub max_sessions: u64,
    /// The cap on sessions per user.
    pub max_sessions_per_user: u64,
}

/// Builds fresh, empty stores for the suite.
pub trait StoreFactory: Sync {
    /// The store under test.
    type Store: SessionStore;

    /// A fresh, empty store with these settings.
    fn build(&self, settings: Settings) -> impl Future<Output = Self::Store> + Send;

    /// Makes the store remove the sessions that have expired by the clock's
    /// time, as its background expiry would.
    fn purge(&self, store: &Self::Store) -> impl Future<Output = ()> + Send;
}

const IDLE: Duration = Duration::from_secs(60);
const LIFETIME: Duration = Duration::from_secs(600);
const MS: Duration = Duration::from_millis(1);

fn settings() -> Settings {
    Settings {
        policy: ExpiryPolicy::default().with_idle_timeout(IDLE).with_max_lifetime(LIFETIME),
        clock: ManualClock::new(Timestamp::from_millis(1_796_413_098_110)),
        max_sessions: 10_000,
        max_sessions_per_user: 1_000,
    }
}

async fn active<S: SessionStore>(store: &S, session: &Session) -> Option<Session> {
    match store.resolve(session.id()).await.expect("resolve failed") {
        Resolution::Active(active) => Some(active),
        Resolution::Unknown | Resolution::Expired => None,
    }
}

fn alice() -> Principal {
    Principal::new("alice@vsphere.local").with_groups(["vsphere.local\\Users"])
}

/// A new session resolves as active, with the creating principal and times.
pub async fn created_session_resolves_as_active<F: StoreFactory>(factory: &F) {
    let settings = settings();
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    let created = store.create(alice(), None).await.expect("create failed");
    assert_eq!(created.user(), "alice@vsphere.local");
    assert_eq!(created.created(), clock.now_ts());
    assert_eq!(created.last_accessed(), clock.now_ts());
    assert_eq!(created.deadline(), clock.now_ts().saturating_add(LIFETIME));
    clock.advance(Duration::from_secs(5));
    let resolved = active(&store, &created).await.expect("a new session must be active");
    assert_eq!(resolved.id(), created.id());
    assert_eq!(**resolved.principal(), alice());
    assert_eq!(resolved.created(), created.created());
    assert_eq!(resolved.last_accessed(), clock.now_ts());
}

/// An id that was never created is unknown.
pub async fn unknown_id_is_unknown<F: StoreFactory>(factory: &F) {
    let store = factory.build(settings()).await;
    let never = crate::SessionId::generate().expect("no randomness");
    assert!(matches!(store.resolve(&never).await, Ok(Resolution::Unknown)));
}

/// Ids are distinct and unpredictable enough not to collide.
pub async fn ids_are_distinct<F: StoreFactory>(factory: &F) {
    let store = factory.build(settings()).await;
    let mut ids = std::collections::HashSet::new();
    for _ in 0..500 {
        let session = store.create(alice(), None).await.expect("create failed");
        assert!(ids.insert(*session.id()), "a session id repeated");
    }
}

/// A session unused for the idle timeout expires, to the millisecond.
pub async fn idle_session_expires_at_the_idle_timeout<F: StoreFactory>(factory: &F) {
    let settings = settings();
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    let early = store.create(alice(), None).await.expect("create failed");
    let late = store.create(alice(), None).await.expect("create failed");
    clock.advance(IDLE - MS);
    assert!(active(&store, &early).await.is_some(), "expired a millisecond early");
    clock.advance(MS);
    assert!(matches!(store.resolve(late.id()).await, Ok(Resolution::Expired | Resolution::Unknown)));
}

/// Each resolve restarts the idle timer.
pub async fn resolve_refreshes_the_idle_timer<F: StoreFactory>(factory: &F) {
    let settings = settings();
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    let session = store.create(alice(), None).await.expect("create failed");
    for _ in 0..5 {
        clock.advance(IDLE - MS);
        assert!(active(&store, &session).await.is_some(), "a used session expired");
    }
    clock.advance(IDLE);
    assert!(active(&store, &session).await.is_none(), "an idle session stayed active");
}

/// A resolve of an expired session does not revive it.
pub async fn expired_session_stays_expired<F: StoreFactory>(factory: &F) {
    let settings = settings();
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    let session = store.create(alice(), None).await.expect("create failed");
    clock.advance(IDLE);
    for _ in 0..3 {
        assert!(active(&store, &session).await.is_none(), "an expired session came back");
        clock.advance(MS);
    }
    store.delete(session.id()).await.expect("delete of an expired session failed");
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Unknown)));
}

/// An expiry once seen is final: a clock that steps back (an NTP correction)
/// does not revive the session.
pub async fn expired_session_stays_expired_when_the_clock_steps_back<F: StoreFactory>(factory: &F) {
    let settings = settings();
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    let session = store.create(alice(), None).await.expect("create failed");
    clock.advance(IDLE);
    assert!(active(&store, &session).await.is_none());
    clock.set(session.created().saturating_add(IDLE / 2));
    assert!(active(&store, &session).await.is_none(), "a clock step back revived an expired session");
}

/// However busy, a session ends at its absolute deadline.
pub async fn busy_session_ends_at_the_max_lifetime<F: StoreFactory>(factory: &F) {
    let settings = settings();
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    let session = store.create(alice(), None).await.expect("create failed");
    let steps = LIFETIME.as_secs() / 30;
    for _ in 0..steps - 1 {
        clock.advance(Duration::from_secs(30));
        assert!(active(&store, &session).await.is_some());
    }
    clock.advance(Duration::from_secs(30) - MS);
    assert!(active(&store, &session).await.is_some(), "ended a millisecond before the deadline");
    clock.advance(MS);
    assert!(active(&store, &session).await.is_none(), "lived past the absolute deadline");
}

/// A credential's expiry caps the absolute deadline.
pub async fn credential_expiry_caps_the_deadline<F: StoreFactory>(factory: &F) {
    let settings = settings();
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    let expiry = clock.now_ts().saturating_add(Duration::from_secs(20));
    let session = store.create(alice(), Some(expiry)).await.expect("create failed");
    assert_eq!(session.deadline(), expiry);
    clock.advance(Duration::from_secs(20) - MS);
    assert!(active(&store, &session).await.is_some());
    clock.advance(MS);
    assert!(active(&store, &session).await.is_none(), "lived past its credential");
    // A credential that outlives the policy does not extend it.
    let long = clock.now_ts().saturating_add(LIFETIME * 10);
    let session = store.create(alice(), Some(long)).await.expect("create failed");
    assert_eq!(session.deadline(), clock.now_ts().saturating_add(LIFETIME));
}

/// Delete ends the session and is idempotent.
pub async fn delete_ends_the_session_and_is_idempotent<F: StoreFactory>(factory: &F) {
    let store = factory.build(settings()).await;
    let session = store.create(alice(), None).await.expect("create failed");
    let other = store.create(alice(), None).await.expect("create failed");
    assert!(store.delete(session.id()).await.expect("delete failed"));
    assert!(!store.delete(session.id()).await.expect("second delete failed"));
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Unknown)));
    assert!(active(&store, &other).await.is_some(), "delete touched another session");
    assert_eq!(store.user_sessions("alice@vsphere.local").await.expect("count failed"), 1);
}

/// Deleting a session while many tasks resolve it: every resolve that starts
/// after the delete returned finds nothing, and nothing brings it back.
pub async fn delete_racing_resolves_never_resurrects<F: StoreFactory>(factory: &F) {
    let store = factory.build(settings()).await;
    let session = store.create(alice(), None).await.expect("create failed");
    let deleted = Arc::new(AtomicBool::new(false));
    let after_delete = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let (store, id, deleted, after_delete) =
            (store.clone(), *session.id(), Arc::clone(&deleted), Arc::clone(&after_delete));
        tasks.push(tokio::spawn(async move {
            let mut resurrected = 0u64;
            for _ in 0..2_000 {
                let started_after_delete = deleted.load(Ordering::SeqCst);
                let outcome = store.resolve(&id).await.expect("resolve failed");
                if started_after_delete {
                    after_delete.fetch_add(1, Ordering::Relaxed);
                    if matches!(outcome, Resolution::Active(_)) {
                        resurrected += 1;
                    }
                }
                tokio::task::yield_now().await;
            }
            resurrected
        }));
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(store.delete(session.id()).await.expect("delete failed"));
    deleted.store(true, Ordering::SeqCst);
    let mut resurrected = 0;
    for task in tasks {
        resurrected += task.await.expect("a resolving task panicked");
    }
    assert_eq!(resurrected, 0, "a resolve after delete found the session active");
    assert!(after_delete.load(Ordering::Relaxed) > 0, "no resolve ran after the delete");
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Unknown)));
    assert_eq!(store.user_sessions("alice@vsphere.local").await.expect("count failed"), 0);
}

/// A user at the per-user cap cannot create more; others can; a delete
/// frees a place. No live session is evicted.
pub async fn per_user_cap_refuses_and_never_evicts<F: StoreFactory>(factory: &F) {
    let mut settings = settings();
    settings.max_sessions_per_user = 3;
    let store = factory.build(settings).await;
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(store.create(alice(), None).await.expect("create failed"));
    }
    let refused = store.create(alice(), None).await.expect_err("the cap did not hold");
    assert_eq!(refused.kind(), StoreErrorKind::TooManyUserSessions);
    for session in &sessions {
        assert!(active(&store, session).await.is_some(), "a live session was evicted");
    }
    store.create(Principal::new("bob"), None).await.expect("another user was refused");
    store.delete(sessions[0].id()).await.expect("delete failed");
    store.create(alice(), None).await.expect("a freed place was not reusable");
}

/// A full store refuses to create and never evicts.
pub async fn total_cap_refuses_and_never_evicts<F: StoreFactory>(factory: &F) {
    let mut settings = settings();
    settings.max_sessions = 4;
    let store = factory.build(settings).await;
    let mut sessions = Vec::new();
    for user in ["a", "b", "c", "d"] {
        sessions.push(store.create(Principal::new(user), None).await.expect("create failed"));
    }
    let refused = store.create(Principal::new("e"), None).await.expect_err("the cap did not hold");
    assert_eq!(refused.kind(), StoreErrorKind::TooManySessions);
    for session in &sessions {
        assert!(active(&store, session).await.is_some(), "a live session was evicted");
    }
    assert_eq!(store.user_sessions("e").await.expect("count failed"), 0, "a refused create was counted");
}

/// Expired sessions do not hold places under the caps.
pub async fn expired_sessions_free_their_places<F: StoreFactory>(factory: &F) {
    let mut settings = settings();
    settings.max_sessions = 2;
    settings.max_sessions_per_user = 2;
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    store.create(alice(), None).await.expect("create failed");
    store.create(alice(), None).await.expect("create failed");
    clock.advance(IDLE);
    store.create(alice(), None).await.expect("expired sessions kept a new one out");
}

/// Purging removes exactly the expired sessions and keeps every live one.
pub async fn purge_removes_exactly_the_expired<F: StoreFactory>(factory: &F) {
    let settings = settings();
    let clock = settings.clock.clone();
    let store = factory.build(settings).await;
    let mut kept = Vec::new();
    let mut dropped = Vec::new();
    for i in 0..40 {
        let session = store.create(Principal::new(format!("user{}", i % 4)), None).await.expect("create failed");
        if i % 2 == 0 { kept.push(session) } else { dropped.push(session) }
    }
    clock.advance(IDLE / 2);
    for session in &kept {
        assert!(active(&store, session).await.is_some());
    }
    clock.advance(IDLE / 2);
    factory.purge(&store).await;
    let stats = store.stats().await.expect("stats failed");
    assert_eq!(stats.sessions, kept.len() as u64, "purge removed the wrong number");
    assert_eq!(stats.users, 2, "users whose sessions all expired are still counted");
    for session in &kept {
        assert!(active(&store, session).await.is_some(), "purge removed a live session");
    }
    for session in &dropped {
        assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Unknown)));
    }
    // Even-numbered sessions (kept) belong to user0 and user2, odd ones to user1 and user3.
    assert_eq!(store.user_sessions("user0").await.expect("count failed"), 10);
    assert_eq!(store.user_sessions("user1").await.expect("count failed"), 0);
}

/// Stats count sessions and users.
pub async fn stats_count_sessions_and_users<F: StoreFactory>(factory: &F) {
    let store = factory.build(settings()).await;
    assert_eq!(store.stats().await.expect("stats failed"), crate::store::StoreStats::default());
    let a = store.create(alice(), None).await.expect("create failed");
    store.create(alice(), None).await.expect("create failed");
    store.create(Principal::new("bob"), None).await.expect("create failed");
    let stats = store.stats().await.expect("stats failed");
    assert_eq!((stats.sessions, stats.users), (3, 2));
    store.delete(a.id()).await.expect("delete failed");
    assert_eq!(store.stats().await.expect("stats failed").sessions, 2);
    assert_eq!(store.user_sessions("alice@vsphere.local").await.expect("count failed"), 1);
    assert_eq!(store.user_sessions("nobody").await.expect("count failed"), 0);
}

trait NowTs {
    fn now_ts(&self) -> Timestamp;
}

impl NowTs for ManualClock {
    fn now_ts(&self) -> Timestamp {
        crate::Clock::now(self)
    }
}

/// Expands to one `#[tokio::test]` per conformance case, each building its
/// stores with the given [`StoreFactory`] expression.
#[macro_export]
macro_rules! store_conformance_tests {
    ($factory:expr) => {
        $crate::store_conformance_tests!(@cases $factory;
            created_session_resolves_as_active,
            unknown_id_is_unknown,
            ids_are_distinct,
            idle_session_expires_at_the_idle_timeout,
            resolve_refreshes_the_idle_timer,
            expired_session_stays_expired,
            expired_session_stays_expired_when_the_clock_steps_back,
            busy_session_ends_at_the_max_lifetime,
            credential_expiry_caps_the_deadline,
            delete_ends_the_session_and_is_idempotent,
            delete_racing_resolves_never_resurrects,
            per_user_cap_refuses_and_never_evicts,
            total_cap_refuses_and_never_evicts,
            expired_sessions_free_their_places,
            purge_removes_exactly_the_expired,
            stats_count_sessions_and_users,
        );
    };
    (@cases $factory:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::store::conformance::$case(&$factory).await;
            }
        )*
    };
}
