//! What the Redis store adds to the conformance suite: sessions shared by
//! instances, failing closed (503) while Redis is paused or down and
//! recovering by itself, caps under concurrency, key TTLs, and one Redis
//! command per authenticated request.

mod redis_support;

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use redis::Commands;
use redis_support::{RedisServer, free_port, raw_command, shared_server, unique_prefix};
use tower::{Service, ServiceExt, service_fn};
use tower_cis::layer::ResponseBody;
use tower_cis::store::Resolution;
use tower_cis::{
    ExpiryPolicy, ManualClock, Principal, RedisStore, Session, SessionAuthLayer, SessionId, SessionStore,
    StoreErrorKind, Timestamp,
};
use tower_layer::Layer;

/// The per-call timeout of the fault tests.
const TIMEOUT: Duration = Duration::from_millis(200);
/// How much longer than the timeout a refused request may take.
const SLACK: Duration = Duration::from_millis(600);
/// How long a store may take to recover after Redis is back.
const RECOVERY: Duration = Duration::from_secs(10);
const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);

fn alice() -> Principal {
    Principal::new("alice@vsphere.local").with_groups(["vsphere.local\\Users", "ops"])
}

fn store_for(server: &RedisServer, prefix: &str) -> RedisStore {
    RedisStore::builder().url(server.url()).key_prefix(prefix).timeout(TIMEOUT).build().expect("bad configuration")
}

/// The application behind the layer: answers the user's name and counts
/// how often it was called.
fn app(
    store: RedisStore,
    calls: Arc<AtomicUsize>,
) -> impl Service<Request<String>, Response = Response<ResponseBody<Full<Bytes>>>, Error = Infallible, Future = impl Send>
+ Clone {
    SessionAuthLayer::new(store).layer(service_fn(move |request: Request<String>| {
        let calls = Arc::clone(&calls);
        async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let user = request.extensions().get::<Session>().map(|s| s.user().to_owned()).unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::from(user)))
        }
    }))
}

struct Reply {
    status: StatusCode,
    challenged: bool,
    body: String,
    elapsed: Duration,
}

async fn get<S>(app: &S, id: &SessionId) -> Reply
where
    S: Service<Request<String>, Response = Response<ResponseBody<Full<Bytes>>>, Error = Infallible> + Clone,
{
    let request = Request::get("/api/vcenter/vm").header("vmware-api-session-id", id.to_string()).body(String::new());
    let started = Instant::now();
    let response = app.clone().oneshot(request.unwrap()).await.unwrap();
    let elapsed = started.elapsed();
    let (parts, body) = response.into_parts();
    let body = body.collect().await.expect("body failed").to_bytes();
    Reply {
        status: parts.status,
        challenged: parts.headers.contains_key("www-authenticate"),
        body: String::from_utf8(body.to_vec()).expect("body is not UTF-8"),
        elapsed,
    }
}

/// A request that Redis cannot answer: 503 with the vAPI body, no challenge,
/// the application not called, and no longer than the timeout allows.
fn assert_unavailable(reply: &Reply) {
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE, "expected 503, body {}", reply.body);
    assert!(reply.body.contains("SERVICE_UNAVAILABLE"), "unexpected body {}", reply.body);
    assert!(!reply.challenged, "a 503 carried a challenge");
    assert!(reply.elapsed < TIMEOUT + SLACK, "the request hung for {:?}", reply.elapsed);
}

/// The first answer for `id` once Redis answers again: retries while the
/// layer says 503, failing with `what` after the recovery time.
async fn first_answer_after_recovery<S>(app: &S, id: &SessionId, what: &str) -> Reply
where
    S: Service<Request<String>, Response = Response<ResponseBody<Full<Bytes>>>, Error = Infallible> + Clone,
{
    let deadline = Instant::now() + RECOVERY;
    loop {
        let reply = get(app, id).await;
        if reply.status != StatusCode::SERVICE_UNAVAILABLE {
            return reply;
        }
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_sessions_and_a_delete_on_one_is_seen_at_once_by_the_other() {
    let prefix = unique_prefix();
    let (a, b) = (store_for(shared_server(), &prefix), store_for(shared_server(), &prefix));
    let (calls_a, calls_b) = (Arc::default(), Arc::default());
    let (app_a, app_b) = (app(a.clone(), Arc::clone(&calls_a)), app(b.clone(), Arc::clone(&calls_b)));
    let session = a.create(alice(), None).await.unwrap();

    let Ok(Resolution::Active(seen)) = b.resolve(session.id()).await else { panic!("B does not see A's session") };
    assert_eq!(**seen.principal(), alice());
    assert_eq!((seen.created(), seen.deadline()), (session.created(), session.deadline()));
    let reply = get(&app_b, session.id()).await;
    assert_eq!((reply.status, reply.body.as_str()), (StatusCode::OK, "alice@vsphere.local"));
    assert_eq!(get(&app_a, session.id()).await.status, StatusCode::OK);

    assert!(b.delete(session.id()).await.unwrap());
    assert!(matches!(a.resolve(session.id()).await, Ok(Resolution::Unknown)));
    let reply = get(&app_a, session.id()).await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.challenged);
    assert_eq!(calls_a.load(Ordering::SeqCst), 1, "a rejected request reached the application");
    assert!(!a.delete(session.id()).await.unwrap(), "a second delete found the session");
    assert_eq!(a.user_sessions("alice@vsphere.local").await.unwrap(), 0);
    assert_eq!(b.stats().await.unwrap().sessions, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paused_redis_is_503_within_the_timeout_and_the_same_session_is_valid_after_resume() {
    let server = RedisServer::start();
    let store = store_for(&server, "paused:");
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(store.clone(), Arc::clone(&calls));
    let session = store.create(alice(), None).await.unwrap();
    assert_eq!(get(&app, session.id()).await.status, StatusCode::OK);

    server.pause();
    for _ in 0..3 {
        assert_unavailable(&get(&app, session.id()).await);
    }
    let refused = store.create(alice(), None).await.expect_err("create succeeded against a paused Redis");
    assert_eq!(refused.kind(), StoreErrorKind::Unavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a request passed through while Redis was paused");

    server.resume();
    let reply = first_answer_after_recovery(&app, session.id(), "no recovery after resume").await;
    assert_eq!(reply.status, StatusCode::OK, "answered {} while Redis came back", reply.status);
    assert_eq!(get(&app, session.id()).await.body, "alice@vsphere.local");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_redis_is_503_and_the_store_recovers_by_itself_after_a_restart() {
    let mut server = RedisServer::start();
    let store = store_for(&server, "killed:");
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(store.clone(), Arc::clone(&calls));
    let session = store.create(alice(), None).await.unwrap();
    assert_eq!(get(&app, session.id()).await.status, StatusCode::OK);

    server.kill();
    for _ in 0..3 {
        assert_unavailable(&get(&app, session.id()).await);
    }
    assert_eq!(store.create(alice(), None).await.unwrap_err().kind(), StoreErrorKind::Unavailable);
    assert_eq!(store.delete(session.id()).await.unwrap_err().kind(), StoreErrorKind::Unavailable);
    assert_eq!(calls.load(Ordering::SeqCst), 1, "a request passed through while Redis was down");

    server.restart();
    // The restarted Redis is empty: the old session is gone.
    let reply = first_answer_after_recovery(&app, session.id(), "no recovery after restart").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "answered {} for a session the restart lost", reply.status);
    let fresh = store.create(alice(), None).await.expect("create failed after the restart");
    assert_eq!(get(&app, fresh.id()).await.status, StatusCode::OK);
    assert_eq!(store.user_sessions("alice@vsphere.local").await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_built_while_redis_is_down_is_503_until_redis_starts() {
    let port = free_port();
    let store = RedisStore::builder()
        .url(format!("redis://127.0.0.1:{port}"))
        .timeout(TIMEOUT)
        .build()
        .expect("bad configuration");
    let app = app(store.clone(), Arc::default());
    assert_unavailable(&get(&app, &SessionId::generate().unwrap()).await);
    assert_eq!(store.ping().await.unwrap_err().kind(), StoreErrorKind::Unavailable);

    let _server = RedisServer::start_on(port);
    let deadline = Instant::now() + RECOVERY;
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "the store never reached the new server");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let session = store.create(alice(), None).await.unwrap();
    assert_eq!(get(&app, session.id()).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_session_never_comes_back_after_faults() {
    let server = RedisServer::start();
    let store = store_for(&server, "faults:");
    let app = app(store.clone(), Arc::default());
    let deleted = store.create(alice(), None).await.unwrap();
    let doomed = store.create(alice(), None).await.unwrap();
    assert!(store.delete(deleted.id()).await.unwrap());

    server.pause();
    // Requests time out, but their commands wait in the socket and run when
    // Redis resumes; so does a delete that was reported as failed.
    assert_unavailable(&get(&app, deleted.id()).await);
    assert_unavailable(&get(&app, doomed.id()).await);
    assert_eq!(store.delete(doomed.id()).await.unwrap_err().kind(), StoreErrorKind::Unavailable);
    assert_unavailable(&get(&app, doomed.id()).await);
    server.resume();

    first_answer_after_recovery(&app, deleted.id(), "no recovery after resume").await;
    for _ in 0..3 {
        assert_eq!(get(&app, deleted.id()).await.status, StatusCode::UNAUTHORIZED, "a deleted session came back");
        assert_eq!(
            get(&app, doomed.id()).await.status,
            StatusCode::UNAUTHORIZED,
            "the delete sent while paused was lost"
        );
    }
    // Retrying the delete finds nothing, and leaves the counts exact.
    assert!(!store.delete(doomed.id()).await.unwrap());
    assert_eq!(store.user_sessions("alice@vsphere.local").await.unwrap(), 0);
    assert_eq!(store.stats().await.unwrap().sessions, 0);
}

/// How many session records the store holds in Redis.
fn session_keys(server: &RedisServer, prefix: &str) -> usize {
    let keys: Vec<String> = server.connection().keys(format!("{prefix}s:*")).unwrap();
    keys.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_on_two_instances_never_exceed_the_per_user_cap() {
    let prefix = unique_prefix();
    let build = || {
        RedisStore::builder().url(shared_server().url()).key_prefix(&prefix).max_sessions_per_user(10).build().unwrap()
    };
    let (a, b) = (build(), build());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.create(alice(), None).await })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(error) => {
                assert_eq!(error.kind(), StoreErrorKind::TooManyUserSessions);
                refused += 1;
            }
        }
    }
    assert_eq!((created, refused), (10, 40));
    assert_eq!(a.user_sessions("alice@vsphere.local").await.unwrap(), 10);
    assert_eq!(session_keys(shared_server(), &prefix), 10, "a refused create left its record behind");
    b.create(Principal::new("bob"), None).await.expect("another user was refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_on_two_instances_never_exceed_the_total_cap() {
    let prefix = unique_prefix();
    let build =
        || RedisStore::builder().url(shared_server().url()).key_prefix(&prefix).max_sessions(20).build().unwrap();
    let (a, b) = (build(), build());
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move { store.create(Principal::new(format!("user{i}")), None).await })
        })
        .collect();
    let (mut created, mut refused) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => created += 1,
            Err(error) => {
                assert_eq!(error.kind(), StoreErrorKind::TooManySessions);
                refused += 1;
            }
        }
    }
    assert_eq!((created, refused), (20, 30));
    let stats = b.stats().await.unwrap();
    assert_eq!((stats.sessions, stats.users), (20, 20));
    assert_eq!(session_keys(shared_server(), &prefix), 20, "a refused create left its record behind");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_redis_command_per_authenticated_request() {
    const REQUESTS: usize = 50;
    let server = RedisServer::start();
    let (store, clock) = manual_store(&server, "monitored:");
    let app = app(store.clone(), Arc::default());
    let session = store.create(alice(), None).await.unwrap();
    // A granularity after the create, the request runs the script; the
    // first one loads it (NOSCRIPT, SCRIPT LOAD, EVALSHA).
    clock.advance(Duration::from_secs(1));
    assert_eq!(get(&app, session.id()).await.status, StatusCode::OK);

    let mut monitor = server.monitor();
    for _ in 0..REQUESTS {
        clock.advance(Duration::from_millis(100));
        assert_eq!(get(&app, session.id()).await.status, StatusCode::OK);
    }
    let marker = format!("end-of-requests-{}", unique_prefix());
    assert_eq!(raw_command(server.port(), &["ECHO", &marker]).unwrap(), format!("${}", marker.len()));
    let lines = monitor.lines_until(&marker);
    // Commands that a script runs are reported with a `lua` client.
    let (in_scripts, sent): (Vec<&String>, Vec<&String>) = lines.iter().partition(|line| line.contains(" lua] "));
    assert_eq!(sent.len(), REQUESTS, "commands sent: {sent:#?}");
    // Every tenth request comes a granularity (1 s) after the last refresh:
    // the script refreshes the last access. The others read the record.
    let named = |name: &str| sent.iter().filter(|line| line.to_ascii_lowercase().contains(name)).count();
    assert_eq!((named("\"evalsha\""), named("\"get\"")), (REQUESTS / 10, REQUESTS - REQUESTS / 10), "{sent:#?}");
    let reads_in_scripts = in_scripts.iter().filter(|line| line.to_ascii_lowercase().contains("\"get\"")).count();
    assert_eq!(reads_in_scripts, REQUESTS / 10, "one GET in each script: {in_scripts:#?}");
}

fn manual_store(server: &RedisServer, prefix: &str) -> (RedisStore, ManualClock) {
    let clock = ManualClock::new(T0);
    let policy =
        ExpiryPolicy::default().with_idle_timeout(Duration::from_secs(60)).with_max_lifetime(Duration::from_secs(600));
    let store = RedisStore::builder()
        .url(server.url())
        .key_prefix(prefix)
        .policy(policy)
        .clock(Arc::new(clock.clone()))
        .build()
        .unwrap();
    (store, clock)
}

/// The key of the one session stored under `prefix`.
fn only_session_key(server: &RedisServer, prefix: &str) -> String {
    let mut keys: Vec<String> = server.connection().keys(format!("{prefix}s:*")).unwrap();
    assert_eq!(keys.len(), 1, "session keys: {keys:?}");
    keys.pop().unwrap()
}

fn pttl(server: &RedisServer, key: &str) -> i64 {
    server.connection().pttl(key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_ttl_follows_the_session_and_is_written_only_when_it_moves() {
    let server = shared_server();
    let prefix = unique_prefix();
    let (store, clock) = manual_store(server, &prefix);
    let session = store.create(alice(), None).await.unwrap();
    let key = only_session_key(server, &prefix);
    // Idle timeout plus a margin of 2 s.
    assert!((61_000..=62_000).contains(&pttl(server, &key)), "TTL {}", pttl(server, &key));

    // Within the granularity (the expiry moves by 0.5 s): not written again.
    let _: () = server.connection().pexpire(&key, 61_500).unwrap();
    clock.advance(Duration::from_millis(500));
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Active(_))));
    assert!(pttl(server, &key) <= 61_500, "TTL rewritten for a move under the granularity");

    // Further off (1.5 s since it was written): written again.
    let _: () = server.connection().pexpire(&key, 30_000).unwrap();
    clock.advance(Duration::from_secs(1));
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Active(_))));
    assert!(pttl(server, &key) > 61_000, "TTL not rewritten");

    // Near the absolute deadline (T0 + 600 s) the TTL shrinks to what is left.
    for _ in 0..11 {
        clock.advance(Duration::from_secs(50));
        assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Active(_))));
    }
    // At T0 + 551.5 s: 48.5 s left, plus the margin.
    assert!((49_500..=50_500).contains(&pttl(server, &key)), "TTL {}", pttl(server, &key));
    clock.advance(Duration::from_millis(48_500));
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Expired)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_session_is_refused_by_the_store_clock_and_deleted_though_redis_still_holds_it() {
    let server = shared_server();
    let prefix = unique_prefix();
    let (store, clock) = manual_store(server, &prefix);
    let session = store.create(alice(), None).await.unwrap();
    let key = only_session_key(server, &prefix);
    clock.advance(Duration::from_secs(60));
    // Redis's clock has hardly moved: the key is still there, with its TTL.
    assert!(pttl(server, &key) > 50_000);
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Expired)));
    let exists: bool = server.connection().exists(&key).unwrap();
    assert!(!exists, "the expired record was kept");
    assert!(matches!(store.resolve(session.id()).await, Ok(Resolution::Unknown)));
    assert_eq!(store.user_sessions("alice@vsphere.local").await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_of_one_user_share_one_principal() {
    let store = store_for(shared_server(), &unique_prefix());
    let a = store.create(alice(), None).await.unwrap();
    let b = store.create(alice(), None).await.unwrap();
    assert!(Arc::ptr_eq(a.principal(), b.principal()));
    let Ok(Resolution::Active(resolved)) = store.resolve(b.id()).await else { panic!("session gone") };
    assert!(Arc::ptr_eq(a.principal(), resolved.principal()));
    let other = store.create(Principal::new("alice@vsphere.local").with_groups(["new"]), None).await.unwrap();
    let Ok(Resolution::Active(other)) = store.resolve(other.id()).await else { panic!("session gone") };
    assert!(other.principal().is_member_of("new") && !other.principal().is_member_of("ops"));
}

/// Everything Redis holds under `prefix`, keys and values, as text.
fn dump(server: &RedisServer, prefix: &str) -> String {
    let mut connection = server.connection();
    let keys: Vec<String> = connection.keys(format!("{prefix}*")).unwrap();
    let mut text = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE").arg(&key).query(&mut connection).unwrap();
        let content: Vec<String> = match kind.as_str() {
            "hash" => connection.hgetall(&key).unwrap(),
            "zset" => connection.zrange_withscores(&key, 0, -1).unwrap(),
            "string" => vec![connection.get(&key).unwrap()],
            other => panic!("unexpected key type {other} for {key}"),
        };
        text.push_str(&format!("{key} {kind} {content:?}\n"));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_never_sees_a_session_id_in_its_keys_values_or_commands() {
    let server = RedisServer::start();
    let store = store_for(&server, "sealed:");
    let app = app(store.clone(), Arc::default());
    let mut monitor = server.monitor();
    let kept = store.create(alice(), None).await.unwrap();
    let deleted = store.create(alice(), None).await.unwrap();
    assert_eq!(get(&app, kept.id()).await.status, StatusCode::OK);
    assert_eq!(get(&app, deleted.id()).await.status, StatusCode::OK);
    let stored = dump(&server, "sealed:");
    assert!(store.delete(deleted.id()).await.unwrap());
    assert_eq!(get(&app, deleted.id()).await.status, StatusCode::UNAUTHORIZED);
    store.purge_expired().await.unwrap();
    let marker = format!("end-of-requests-{}", unique_prefix());
    raw_command(server.port(), &["ECHO", &marker]).unwrap();
    let commands = monitor.lines_until(&marker).join("\n");

    // The dump really shows the sessions: two records and their index entries.
    assert_eq!(stored.matches("sealed:s:{").count(), 2, "{stored}");
    assert!(stored.contains("alice@vsphere.local"), "{stored}");
    for id in [kept.id(), deleted.id()] {
        let hex = id.to_string();
        assert!(!stored.contains(&hex), "Redis holds a session id:\n{stored}");
        assert!(!commands.contains(&hex), "a command carried a session id:\n{commands}");
    }
    assert!(commands.to_ascii_lowercase().contains("evalsha"), "MONITOR saw no resolve:\n{commands}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupted_record_is_a_503_and_never_lets_the_request_through() {
    let server = shared_server();
    let prefix = unique_prefix();
    let store = store_for(server, &prefix);
    let calls = Arc::new(AtomicUsize::new(0));
    let app = app(store.clone(), Arc::clone(&calls));
    let session = store.create(alice(), None).await.unwrap();
    let key = only_session_key(server, &prefix);
    let record: String = server.connection().get(&key).unwrap();
    // The times the script reads; then a record whose times read well but
    // whose user part does not; then a key of another type.
    let broken_times = format!("x{}", &record[1..]);
    let broken_tail = format!("{} 99999 alice", &record[..67]);
    for corrupt in [broken_times, broken_tail, String::from("garbage")] {
        let _: () = server.connection().set(&key, &corrupt).unwrap();
        assert_unavailable(&get(&app, session.id()).await);
    }
    let _: () = server.connection().del(&key).unwrap();
    let _: () = server.connection().hset(&key, "u", "alice").unwrap();
    assert_unavailable(&get(&app, session.id()).await);
    assert_eq!(calls.load(Ordering::SeqCst), 0, "a corrupted record let a request through");
}
