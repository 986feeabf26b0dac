//! Authenticated requests per second through `SessionAuthLayer` with
//! `RedisStore`, against a raw `GETEX` loop with the same client crate (the
//! `redis` crate's `ConnectionManager`, one multiplexed connection, as the
//! store uses), both with 64 requests in flight, against a `redis-server`
//! this bench starts on a free port of 127.0.0.1.
//!
//! The store runs its resolve script about once per refresh granularity (1 s)
//! per session and reads the record with a plain `GET` in between; two more
//! loops show what the script alone would cost: the store's own `resolve.lua`
//! sent raw (EVALSHA, no layer), and a script that does nothing but the same
//! `GETEX` (the floor of any design that resolves with a script every time).
//!
//! Run: `cargo bench --features redis --bench redis`. Criterion reports each
//! figure (time per request; the throughput line is requests per second);
//! then all are run in alternation, a few rounds each, and a table gives
//! each round's rates and the ratio layer / raw GETEX (the target is at least
//! 90 %), with the median. `TOWER_CIS_BENCH_WORKERS` sets the client
//! runtime's threads (default 1: on a 2-core machine Redis needs the other
//! core; with two client threads the three contend, and each round's result
//! depends on where the scheduler happens to put them).
//! `TOWER_CIS_BENCH_GRANULARITY_MS` sets the store's refresh granularity
//! (default the store's, 1 s; 0 runs the resolve script on every request).

#[path = "../tests/redis_support/mod.rs"]
mod redis_support;

mod common;

use std::convert::Infallible;
use std::future::poll_fn;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::Bare;
use criterion::{Criterion, Throughput};
use http::{HeaderValue, Request, Response, StatusCode};
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis_support::RedisServer;
use tokio::runtime::Runtime;
use tower_cis::layer::SESSION_HEADER;
use tower_cis::{Principal, RedisStore, SessionAuthLayer, SessionStore};
use tower_layer::Layer;
use tower_service::Service;

/// Requests in flight at any time.
const IN_FLIGHT: u64 = 64;
/// Sessions (and raw keys) the requests cycle through.
const SESSIONS: usize = 10_000;
/// Alternating rounds after criterion, and how long each side runs per round.
const ROUNDS: usize = 9;
const ROUND: Duration = Duration::from_secs(2);
/// The raw loop's TTL refresh, like a session's idle timeout.
const IDLE_MS: u64 = 30 * 60 * 1000;

/// One side of the comparison: does request number `n` of worker `worker`.
trait Side: Clone + Send + 'static {
    fn request(&mut self, worker: u64, n: u64) -> impl Future<Output = ()> + Send;
}

/// Session-authenticated requests through the layer.
#[derive(Clone)]
struct Layered<S> {
    service: S,
    ids: Arc<Vec<HeaderValue>>,
}

impl<S> Side for Layered<S>
where
    S: Service<Request<()>, Error = Infallible> + Clone + Send + 'static,
    S::Response: Status,
    S::Future: Send,
{
    async fn request(&mut self, worker: u64, n: u64) {
        let id = &self.ids[pick(worker, n, self.ids.len())];
        let mut request = Request::new(());
        request.headers_mut().insert(SESSION_HEADER, id.clone());
        poll_fn(|cx| self.service.poll_ready(cx)).await.unwrap();
        let response = self.service.call(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "a request was refused");
        black_box(response);
    }
}

/// The status of a response, whatever its body.
trait Status {
    fn status(&self) -> StatusCode;
}

impl<B> Status for Response<B> {
    fn status(&self) -> StatusCode {
        Response::status(self)
    }
}

/// The raw loop: `GETEX key PX idle` on one of the keys.
#[derive(Clone)]
struct RawGetex {
    connection: ConnectionManager,
    keys: Arc<Vec<String>>,
}

impl Side for RawGetex {
    async fn request(&mut self, worker: u64, n: u64) {
        let key = &self.keys[pick(worker, n, self.keys.len())];
        let value: Option<Vec<u8>> =
            redis::cmd("GETEX").arg(key).arg("PX").arg(IDLE_MS).query_async(&mut self.connection).await.unwrap();
        assert!(value.is_some(), "a raw key is missing");
        black_box(value);
    }
}

/// A script sent raw on one of the keys, with the arguments `args` makes.
#[derive(Clone)]
struct RawScript {
    connection: ConnectionManager,
    script: Arc<Script>,
    keys: Arc<Vec<String>>,
    args: fn() -> Vec<u64>,
}

impl Side for RawScript {
    async fn request(&mut self, worker: u64, n: u64) {
        let key = &self.keys[pick(worker, n, self.keys.len())];
        let mut invocation = self.script.key(key);
        for arg in (self.args)() {
            invocation.arg(arg);
        }
        let reply: redis::Value = invocation.invoke_async(&mut self.connection).await.unwrap();
        assert!(!matches!(reply, redis::Value::Nil | redis::Value::Int(0)), "a key is missing or expired");
        black_box(reply);
    }
}

/// `resolve.lua`'s arguments as the store sends them: now, idle timeout, TTL
/// margin and granularity (ms).
fn resolve_args() -> Vec<u64> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    vec![now, IDLE_MS, 2_000, 1_000]
}

/// A header value that the workers clone into their requests without
/// sharing a reference count: a server gets each request's headers from its
/// own connection's buffer, while one `HeaderValue::from_str` cloned by every
/// worker would measure them contending for its count. Leaked: made once.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::from_static(Box::leak(text.into_boxed_str()))
}

/// Which session worker `worker` uses for its request number `n`.
fn pick(worker: u64, n: u64, len: usize) -> usize {
    ((worker * 7_919 + n * 104_729) % len as u64) as usize
}

/// Runs `total` requests, `IN_FLIGHT` at a time; the wall time taken.
async fn run<S: Side>(side: &S, total: u64) -> Duration {
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..IN_FLIGHT.min(total))
        .map(|worker| {
            let (mut side, next) = (side.clone(), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    if n >= total {
                        return;
                    }
                    side.request(worker, n).await;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    started.elapsed()
}

/// Requests per second over about `duration`.
async fn rate<S: Side>(side: &S, duration: Duration) -> f64 {
    // Size a batch from a short probe, then run one batch of about `duration`.
    let probe = 2_000;
    let per_request = run(side, probe).await.as_secs_f64() / probe as f64;
    let total = ((duration.as_secs_f64() / per_request) as u64).max(probe);
    total as f64 / run(side, total).await.as_secs_f64()
}

/// The store's refresh granularity: `TOWER_CIS_BENCH_GRANULARITY_MS`, else
/// the store's default (0: the resolve script on every request).
fn granularity() -> Duration {
    std::env::var("TOWER_CIS_BENCH_GRANULARITY_MS")
        .ok()
        .and_then(|ms| ms.parse().ok())
        .map_or(tower_cis::store::redis::DEFAULT_REFRESH_GRANULARITY, Duration::from_millis)
}

fn runtime() -> Runtime {
    let workers = std::env::var("TOWER_CIS_BENCH_WORKERS").ok().and_then(|w| w.parse().ok()).unwrap_or(1);
    tokio::runtime::Builder::new_multi_thread().worker_threads(workers).enable_all().build().unwrap()
}

fn main() {
    let server = RedisServer::start();
    let runtime = runtime();
    let store = RedisStore::builder()
        .url(server.url())
        .max_sessions(SESSIONS as u64 + 1)
        .max_sessions_per_user(u64::MAX)
        .refresh_granularity(granularity())
        .build()
        .unwrap();
    let (ids, connection) = runtime.block_on(async {
        let mut ids = Vec::with_capacity(SESSIONS);
        for i in 0..SESSIONS {
            let user = Principal::new(format!("user{}@vsphere.local", i % 1_000)).with_groups(["vsphere.local\\Users"]);
            let session = store.create(user, None).await.unwrap();
            ids.push(header_value(session.id().to_string()));
        }
        let client = redis::Client::open(server.url()).unwrap();
        let config = ConnectionManagerConfig::new().set_response_timeout(Some(Duration::from_secs(2)));
        let mut connection = ConnectionManager::new_with_config(client, config).await.unwrap();
        // Raw values the size of a session record's fields.
        let value = format!("user1@vsphere.local|[\"vsphere.local\\\\Users\"]|{}", "0".repeat(40));
        for i in 0..SESSIONS {
            let _: () = redis::cmd("SET")
                .arg(format!("raw:{i}"))
                .arg(&value)
                .arg("PX")
                .arg(IDLE_MS)
                .query_async(&mut connection)
                .await
                .unwrap();
        }
        (ids, connection)
    });
    // Redis knows sessions by a digest of their ids: ask it for the keys.
    let session_keys: Vec<String> = runtime.block_on(async {
        redis::cmd("KEYS").arg("tower-cis:s:*").query_async(&mut connection.clone()).await.unwrap()
    });
    assert_eq!(session_keys.len(), ids.len(), "the store's session keys");
    let session_keys = Arc::new(session_keys);
    let raw_keys = Arc::new((0..SESSIONS).map(|i| format!("raw:{i}")).collect::<Vec<_>>());
    let layered = Layered { service: SessionAuthLayer::new(store).layer(Bare), ids: Arc::new(ids) };
    let raw = RawGetex { connection: connection.clone(), keys: Arc::clone(&raw_keys) };
    let resolve = RawScript {
        connection: connection.clone(),
        script: Arc::new(Script::new(include_str!("../src/store/redis/lua/resolve.lua"))),
        keys: session_keys,
        args: resolve_args,
    };
    let getex_script = RawScript {
        connection,
        script: Arc::new(Script::new("return redis.call('GETEX', KEYS[1], 'PX', ARGV[1])")),
        keys: raw_keys,
        args: || vec![IDLE_MS],
    };

    let mut criterion = Criterion::default().configure_from_args();
    {
        let mut group = criterion.benchmark_group(format!("redis, {IN_FLIGHT} in flight"));
        group.throughput(Throughput::Elements(1));
        group.sample_size(20).measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
        group.bench_function("raw GETEX", |b| b.iter_custom(|n| runtime.block_on(run(&raw, n))));
        group
            .bench_function("SessionAuthLayer + RedisStore", |b| b.iter_custom(|n| runtime.block_on(run(&layered, n))));
        group.bench_function("raw EVALSHA resolve.lua", |b| b.iter_custom(|n| runtime.block_on(run(&resolve, n))));
        group.bench_function("raw EVALSHA of a GETEX-only script", |b| {
            b.iter_custom(|n| runtime.block_on(run(&getex_script, n)))
        });
        group.finish();
    }
    criterion.final_summary();

    println!("\nAlternating rounds, {IN_FLIGHT} in flight, {SESSIONS} sessions, about {ROUND:?} per side:");
    println!("| round | raw GETEX | layer + RedisStore | layer / raw GETEX | raw resolve.lua | GETEX-only script |");
    println!("|---|---|---|---|---|---|");
    let mut ratios = Vec::with_capacity(ROUNDS);
    let mut shares = (Vec::with_capacity(ROUNDS), Vec::with_capacity(ROUNDS));
    for round in 1..=ROUNDS {
        let raw_rate = runtime.block_on(rate(&raw, ROUND));
        let layer_rate = runtime.block_on(rate(&layered, ROUND));
        let resolve_rate = runtime.block_on(rate(&resolve, ROUND));
        let script_rate = runtime.block_on(rate(&getex_script, ROUND));
        let ratio = layer_rate / raw_rate;
        ratios.push(ratio);
        shares.0.push(resolve_rate / raw_rate);
        shares.1.push(script_rate / raw_rate);
        println!(
            "| {round} | {raw_rate:.0}/s | {layer_rate:.0}/s | {:.1} % | {resolve_rate:.0}/s | {script_rate:.0}/s |",
            ratio * 100.0
        );
    }
    let median = |values: &mut Vec<f64>| {
        values.sort_by(f64::total_cmp);
        values[values.len() / 2] * 100.0
    };
    println!("median layer / raw GETEX: {:.1} % (target: at least 90 %)", median(&mut ratios));
    println!(
        "median raw resolve.lua / raw GETEX: {:.1} %; GETEX-only script / raw GETEX: {:.1} %",
        median(&mut shares.0),
        median(&mut shares.1)
    );
}
