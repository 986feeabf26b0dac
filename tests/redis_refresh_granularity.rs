//! The Redis store's refresh granularity: a session this instance refreshed
//! less than the granularity ago is looked up with a plain `GET`, which sees
//! deletes, expiries and the deadline at once but leaves the last access as
//! Redis recorded it.

mod redis_support;

use std::sync::Arc;
use std::time::Duration;

use redis::Commands;
use redis_support::{shared_server, unique_prefix};
use tower_cis::store::Resolution;
use tower_cis::{ExpiryPolicy, ManualClock, Principal, RedisStore, Session, SessionStore, Timestamp};

const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);
const IDLE: Duration = Duration::from_secs(60);

fn store(prefix: &str, clock: &ManualClock, idle: Duration, granularity: Option<Duration>) -> RedisStore {
    let policy = ExpiryPolicy::default().with_idle_timeout(idle).with_max_lifetime(Duration::from_secs(600));
    let builder = RedisStore::builder()
        .url(shared_server().url())
        .key_prefix(prefix)
        .policy(policy)
        .clock(Arc::new(clock.clone()));
    match granularity {
        Some(granularity) => builder.refresh_granularity(granularity),
        None => builder,
    }
    .build()
    .unwrap()
}

fn alice() -> Principal {
    Principal::new("alice@vsphere.local")
}

/// The last access Redis holds for the one session under `prefix` (ms).
fn stored_last_access(prefix: &str) -> u64 {
    let mut connection = shared_server().connection();
    let keys: Vec<String> = connection.keys(format!("{prefix}s:*")).unwrap();
    assert_eq!(keys.len(), 1, "session keys: {keys:?}");
    let record: String = connection.get(&keys[0]).unwrap();
    record[..16].parse().unwrap()
}

async fn active(store: &RedisStore, session: &Session) -> Option<Session> {
    match store.resolve(session.id()).await.unwrap() {
        Resolution::Active(active) => Some(active),
        Resolution::Unknown | Resolution::Expired => None,
    }
}

fn at(offset_ms: u64) -> u64 {
    T0.as_millis() + offset_ms
}

#[tokio::test]
async fn within_the_granularity_a_request_reads_the_record_and_leaves_the_last_access() {
    let (prefix, clock) = (unique_prefix(), ManualClock::new(T0));
    let store = store(&prefix, &clock, IDLE, None);
    let session = store.create(alice(), None).await.unwrap();
    clock.advance(Duration::from_millis(999));
    let seen = active(&store, &session).await.expect("session gone");
    assert_eq!(
        seen.last_accessed(),
        Timestamp::from_millis(at(999)),
        "the request itself is the last access it reports"
    );
    assert_eq!(stored_last_access(&prefix), at(0), "Redis was written within the granularity");
    clock.advance(Duration::from_millis(1));
    active(&store, &session).await.expect("session gone");
    assert_eq!(stored_last_access(&prefix), at(1_000), "a granularity after the last refresh, Redis is written");
}

#[tokio::test]
async fn the_idle_timeout_may_end_a_session_up_to_one_granularity_early_and_zero_is_exact() {
    let clock = ManualClock::new(T0);
    let coarse = store(&unique_prefix(), &clock, IDLE, None);
    let exact = store(&unique_prefix(), &clock, IDLE, Some(Duration::ZERO));
    let (a, b) = (coarse.create(alice(), None).await.unwrap(), exact.create(alice(), None).await.unwrap());
    clock.advance(Duration::from_millis(500));
    assert!(active(&coarse, &a).await.is_some() && active(&exact, &b).await.is_some());
    // Idle since T0 + 500 ms; the coarse store recorded T0.
    clock.set(Timestamp::from_millis(at(60_000)));
    assert!(active(&coarse, &a).await.is_none(), "the coarse store kept its refresh of T0 + 500 ms");
    assert!(active(&exact, &b).await.is_some(), "the exact store ended a session used 59.5 s ago");
    clock.set(Timestamp::from_millis(at(120_000)));
    assert!(active(&exact, &b).await.is_none(), "idle since T0 + 60 s");
}

#[tokio::test]
async fn a_delete_or_an_expiry_by_another_instance_is_seen_at_once_within_the_granularity() {
    let prefix = unique_prefix();
    let (clock_a, clock_b) = (ManualClock::new(T0), ManualClock::new(T0));
    let (a, b) = (store(&prefix, &clock_a, IDLE, None), store(&prefix, &clock_b, IDLE, None));
    let deleted = a.create(alice(), None).await.unwrap();
    let expired = a.create(alice(), None).await.unwrap();
    clock_a.advance(Duration::from_millis(10));
    assert!(active(&a, &deleted).await.is_some() && active(&a, &expired).await.is_some());

    assert!(b.delete(deleted.id()).await.unwrap());
    // B's clock runs ahead: by it, the session idled out.
    clock_b.set(Timestamp::from_millis(at(IDLE.as_millis() as u64 + 10)));
    assert!(matches!(b.resolve(expired.id()).await, Ok(Resolution::Expired)));

    clock_a.advance(Duration::from_millis(10));
    assert!(matches!(a.resolve(deleted.id()).await, Ok(Resolution::Unknown)), "A missed B's delete");
    assert!(matches!(a.resolve(expired.id()).await, Ok(Resolution::Unknown)), "A missed B's expiry");
}

#[tokio::test]
async fn the_absolute_deadline_holds_to_the_millisecond_within_the_granularity() {
    let (prefix, clock) = (unique_prefix(), ManualClock::new(T0));
    let store = store(&prefix, &clock, IDLE, None);
    let credential_expiry = Timestamp::from_millis(at(1_500));
    let session = store.create(alice(), Some(credential_expiry)).await.unwrap();
    clock.advance(Duration::from_millis(1_000));
    assert!(active(&store, &session).await.is_some());
    clock.advance(Duration::from_millis(499));
    assert!(active(&store, &session).await.is_some(), "ended a millisecond early");
    clock.advance(Duration::from_millis(1));
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Expired)), "lived past its deadline");
    let held: Vec<String> = shared_server().connection().keys(format!("{prefix}s:*")).unwrap();
    assert!(held.is_empty(), "the expired record was kept: {held:?}");
}

#[tokio::test]
async fn the_granularity_is_at_most_half_the_idle_timeout() {
    let (prefix, clock) = (unique_prefix(), ManualClock::new(T0));
    // An idle timeout of 1 s with the default granularity of 1 s: 500 ms.
    let store = store(&prefix, &clock, Duration::from_secs(1), None);
    let session = store.create(alice(), None).await.unwrap();
    clock.advance(Duration::from_millis(499));
    assert!(active(&store, &session).await.is_some());
    assert_eq!(stored_last_access(&prefix), at(0));
    clock.advance(Duration::from_millis(1));
    assert!(active(&store, &session).await.is_some());
    assert_eq!(stored_last_access(&prefix), at(500));
    clock.advance(Duration::from_millis(999));
    assert!(active(&store, &session).await.is_some(), "a session used every 500 ms idled out");
}
