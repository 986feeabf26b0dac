//! What the memory store adds to the conformance suite: shared principals,
//! look-ups on the clock's recent time, the background sweeper, and its cost
//! following the expired sessions only.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tower_cis::store::Resolution;
use tower_cis::{Clock, ExpiryPolicy, ManualClock, MemoryStore, Principal, PurgeReport, SessionStore, Timestamp};

fn policy() -> ExpiryPolicy {
    ExpiryPolicy::default().with_idle_timeout(Duration::from_secs(60))
}

#[tokio::test]
async fn sessions_of_one_user_share_one_principal() {
    let (store, _clock) = manual_store(policy());
    let a = store.create(Principal::new("alice").with_groups(["g"]), None).await.unwrap();
    let b = store.create(Principal::new("alice").with_groups(["g"]), None).await.unwrap();
    assert!(Arc::ptr_eq(a.principal(), b.principal()));
}

#[tokio::test]
async fn changed_groups_apply_to_new_sessions_only() {
    let (store, _clock) = manual_store(policy());
    let old = store.create(Principal::new("alice").with_groups(["old"]), None).await.unwrap();
    let new = store.create(Principal::new("alice").with_groups(["new"]), None).await.unwrap();
    let Ok(Resolution::Active(old)) = store.resolve(old.id()).await else { panic!("old session gone") };
    let Ok(Resolution::Active(new)) = store.resolve(new.id()).await else { panic!("new session gone") };
    assert!(old.principal().is_member_of("old"));
    assert!(new.principal().is_member_of("new"));
    assert_eq!(store.user_sessions("alice").await.unwrap(), 2);
}

/// A clock whose recent time lags its exact time, as the coarse system clock
/// does by up to a tick.
#[derive(Debug)]
struct LaggingClock {
    exact: ManualClock,
    lag: Duration,
}

impl Clock for LaggingClock {
    fn now(&self) -> Timestamp {
        self.exact.now()
    }
    fn recent(&self) -> Timestamp {
        Timestamp::from_millis(self.exact.now().as_millis() - self.lag.as_millis() as u64)
    }
}

#[tokio::test]
async fn look_ups_read_the_recent_time_and_never_move_the_last_access_back() {
    let exact = ManualClock::new(T0);
    let lag = Duration::from_millis(4);
    let store = MemoryStore::builder()
        .policy(policy())
        .clock(Arc::new(LaggingClock { exact: exact.clone(), lag }))
        .sweep_interval(None)
        .build();
    let created = store.create(Principal::new("alice"), None).await.unwrap();
    assert_eq!(created.created(), T0, "create reads the exact time");

    // The recent time is before the creation: the last access stays put.
    let Ok(Resolution::Active(first)) = store.resolve(created.id()).await else { panic!("session gone") };
    assert_eq!(first.last_accessed(), T0);

    exact.advance(Duration::from_secs(10));
    let Ok(Resolution::Active(later)) = store.resolve(created.id()).await else { panic!("session gone") };
    assert_eq!(later.last_accessed(), Timestamp::from_millis(T0.as_millis() + 10_000 - 4));

    // Idle expiry counts from that access, on the recent time.
    exact.advance(Duration::from_secs(60) - Duration::from_millis(1));
    assert!(matches!(store.resolve(created.id()).await, Ok(Resolution::Active(_))));
    exact.advance(Duration::from_secs(60));
    assert!(matches!(store.resolve(created.id()).await, Ok(Resolution::Expired)));
}

#[tokio::test]
async fn background_sweeper_removes_expired_sessions_by_itself() {
    let clock = ManualClock::new(T0);
    let store = MemoryStore::builder()
        .policy(policy())
        .clock(Arc::new(clock.clone()))
        .sweep_interval(Some(Duration::from_millis(10)))
        .build();
    let expiring = store.create(Principal::new("alice"), None).await.unwrap();
    clock.advance(Duration::from_secs(30));
    let kept = store.create(Principal::new("bob"), None).await.unwrap();
    clock.advance(Duration::from_secs(30));
    // The sweeper thread runs on its own; wait (bounded) for it to act.
    let deadline = Instant::now() + Duration::from_secs(5);
    while store.stats().await.unwrap().sessions != 1 {
        assert!(Instant::now() < deadline, "the sweeper did not remove the expired session");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(matches!(store.resolve(expiring.id()).await, Ok(Resolution::Unknown)));
    assert!(matches!(store.resolve(kept.id()).await, Ok(Resolution::Active(_))));
    assert_eq!(store.user_sessions("alice").await.unwrap(), 0);
}

#[tokio::test]
async fn sweep_cost_follows_the_expired_sessions_not_the_sessions_held() {
    // 20,000 sessions and 100 with a credential that expires sooner: a purge
    // after the short ones expire examines only those.
    let (store, clock) = manual_store(policy());
    for i in 0..20_000 {
        store.create(Principal::new(format!("user{}", i % 100)), None).await.unwrap();
    }
    let soon = tower_cis::Clock::now(&clock).saturating_add(Duration::from_secs(5));
    for _ in 0..100 {
        store.create(Principal::new("short"), Some(soon)).await.unwrap();
    }
    clock.advance(Duration::from_secs(5));
    let report = store.purge_expired();
    assert_eq!(report, PurgeReport { removed: 100, examined: 100 }, "the purge looked at live sessions");
    assert_eq!(store.stats().await.unwrap().sessions, 20_000);
    // A purge when nothing is due looks at no session at all.
    assert_eq!(store.purge_expired(), PurgeReport::default());
    clock.advance(Duration::from_secs(55));
    let report = store.purge_expired();
    assert_eq!(report, PurgeReport { removed: 20_000, examined: 20_000 });
}

#[tokio::test]
async fn dropping_the_store_frees_every_session() {
    let clock = ManualClock::new(T0);
    let store = MemoryStore::builder()
        .policy(policy())
        .clock(Arc::new(clock))
        .sweep_interval(Some(Duration::from_millis(1)))
        .build();
    let session = store.create(Principal::new("alice"), None).await.unwrap();
    let principal = Arc::clone(session.principal());
    drop(session);
    assert!(Arc::strong_count(&principal) > 1);
    drop(store);
    // The sweeper holds only a weak reference; at most it finishes a pass.
    let deadline = Instant::now() + Duration::from_secs(5);
    while Arc::strong_count(&principal) != 1 {
        assert!(Instant::now() < deadline, "the sweeper kept the store alive");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}
