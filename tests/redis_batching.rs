//! The Redis store sends the look-ups of concurrent requests together, as
//! one pipeline, and still answers each on its own.

mod redis_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::Commands;
use redis_support::{RedisServer, shared_server, unique_prefix};
use tower_cis::store::Resolution;
use tower_cis::{ManualClock, Principal, RedisStore, Session, SessionStore, StoreErrorKind, Timestamp};

const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);

/// A store on a clock that stands still: every look-up after the create is a
/// plain `GET` (within the refresh granularity).
fn store(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::builder()
        .url(server.url())
        .key_prefix(prefix)
        .clock(Arc::new(ManualClock::new(T0)))
        .build()
        .expect("bad configuration")
}

async fn sessions(store: &RedisStore, count: usize) -> Vec<Session> {
    let mut sessions = Vec::with_capacity(count);
    for i in 0..count {
        sessions.push(store.create(Principal::new(format!("user{i}")), None).await.expect("create failed"));
    }
    sessions
}

/// Resolves every session at once, each from a task of its own.
async fn resolve_all(store: &RedisStore, sessions: &[Session]) -> Vec<Result<Resolution, StoreErrorKind>> {
    let tasks: Vec<_> = sessions
        .iter()
        .map(|session| {
            let (store, id) = (store.clone(), *session.id());
            tokio::spawn(async move { store.resolve(&id).await.map_err(|error| error.kind()) })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(tasks.len());
    for task in tasks {
        outcomes.push(task.await.expect("a task panicked"));
    }
    outcomes
}

/// How many times Redis has read from its clients' sockets.
fn reads_processed(server: &RedisServer) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(&mut server.connection()).expect("INFO failed");
    info.lines()
        .find_map(|line| line.strip_prefix("total_reads_processed:"))
        .and_then(|count| count.trim().parse().ok())
        .expect("no total_reads_processed in INFO")
}

// One worker: the scheduler runs a task that was just woken right after the
// one that woke it, which, without batching, sends each look-up in a write
// of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn concurrent_look_ups_reach_redis_together() {
    const REQUESTS: usize = 64;
    let server = RedisServer::start();
    let store = store(&server, "batched:");
    let sessions = sessions(&store, REQUESTS).await;
    // Connected, and the batching task started.
    assert!(resolve_all(&store, &sessions[..1]).await.iter().all(|o| matches!(o, Ok(Resolution::Active(_)))));

    let before = reads_processed(&server);
    let outcomes = resolve_all(&store, &sessions).await;
    // Minus the read of the second INFO itself.
    let reads = reads_processed(&server) - before - 1;
    assert!(outcomes.iter().all(|outcome| matches!(outcome, Ok(Resolution::Active(_)))), "{outcomes:?}");
    // Sent one by one, they take 36 to 63 reads here; together, 4 or 5 (the
    // tasks start one after the other).
    assert!(reads <= REQUESTS as u64 / 5, "{REQUESTS} concurrent look-ups took {reads} reads by Redis");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn each_look_up_in_a_batch_gets_its_own_answer() {
    let server = shared_server();
    let prefix = unique_prefix();
    let store = store(server, &prefix);
    let sessions = sessions(&store, 20).await;
    let deleted = &sessions[3];
    store.delete(deleted.id()).await.unwrap();
    // Two records damaged behind the store's back: an unreadable string, and
    // a key of another type (Redis answers that `GET` with an error).
    let mut connection = server.connection();
    let keys: Vec<String> = connection.keys(format!("{prefix}s:*")).unwrap();
    assert_eq!(keys.len(), 19);
    let _: () = connection.set(&keys[0], "garbage").unwrap();
    let _: () = connection.del(&keys[1]).unwrap();
    let _: () = connection.hset(&keys[1], "u", "user").unwrap();

    let outcomes = resolve_all(&store, &sessions).await;
    let active = outcomes.iter().filter(|outcome| matches!(outcome, Ok(Resolution::Active(_)))).count();
    let unavailable = outcomes.iter().filter(|outcome| matches!(outcome, Err(StoreErrorKind::Unavailable))).count();
    assert!(matches!(outcomes[3], Ok(Resolution::Unknown)), "the deleted session: {:?}", outcomes[3]);
    assert_eq!((active, unavailable), (17, 2), "{outcomes:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn the_batching_task_ends_with_the_store() {
    let metrics = tokio::runtime::Handle::current().metrics();
    let server = shared_server();
    let before = metrics.num_alive_tasks();
    let store = store(server, &unique_prefix());
    let sessions = sessions(&store, 3).await;
    assert!(resolve_all(&store, &sessions).await.iter().all(|o| matches!(o, Ok(Resolution::Active(_)))));
    assert!(metrics.num_alive_tasks() > before, "no task runs the batches");
    drop(store);
    let deadline = Instant::now() + Duration::from_secs(5);
    while metrics.num_alive_tasks() > before {
        assert!(Instant::now() < deadline, "{} tasks outlived the store", metrics.num_alive_tasks() - before);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn batched_script_calls_survive_a_redis_that_lost_its_scripts() {
    let server = RedisServer::start();
    let clock = ManualClock::new(T0);
    let store =
        RedisStore::builder().url(server.url()).clock(Arc::new(clock.clone())).build().expect("bad configuration");
    let sessions = sessions(&store, 32).await;
    for _ in 0..2 {
        // A granularity later every look-up runs the resolve script; Redis
        // forgot it in between, as after a restart.
        clock.advance(Duration::from_secs(1));
        let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut server.connection()).unwrap();
        let outcomes = resolve_all(&store, &sessions).await;
        assert!(outcomes.iter().all(|outcome| matches!(outcome, Ok(Resolution::Active(_)))), "{outcomes:?}");
    }
    let loaded: Vec<bool> = redis::cmd("SCRIPT")
        .arg("EXISTS")
        .arg(redis::Script::new(include_str!("../src/store/redis/lua/resolve.lua")).get_hash())
        .query(&mut server.connection())
        .unwrap();
    assert_eq!(loaded, [true], "the script was not loaded again");
}
