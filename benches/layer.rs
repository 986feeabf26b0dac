//! Added cost per request of `SessionAuthLayer` + `MemoryStore`, against the
//! bare service, tower-http's bearer check (a constant token: the floor of any
//! header check), tower-sessions with its `MemoryStore` refreshing idle expiry
//! on every request (load and save per request, the handler reads the user),
//! and a naive `RwLock<HashMap>` + atomic timestamp layer, at 1, 10k and 1M
//! live sessions, on one thread and on two. Every request carries all three
//! credentials (`vmware-api-session-id`, the tower-sessions cookie and
//! `authorization: Bearer`), whichever stack reads it, copied into the
//! request as a server would parse them (see `one_request`).
//!
//! Run: `cargo bench --bench layer`. Each figure is the wall time per request
//! (with two threads, the wall time for the whole batch divided by the number
//! of requests, so a lower figure means more throughput).
//!
//! Paired mode: `TOWER_CIS_BENCH_PAIRED=1 cargo bench --bench layer` skips
//! criterion and runs bare, naive and tower-cis in alternating batches of
//! about 50 ms (`TOWER_CIS_BENCH_ROUNDS` rounds, default 15; the order
//! rotates each round), then prints each stack's median time per request and
//! the medians of the per-round added costs. On a machine whose speed drifts
//! (a shared VM), stacks measured seconds apart by criterion see different
//! machines; batches a few milliseconds apart see the same one.
//!
//! `TOWER_CIS_BENCH_SESSIONS` and, in paired mode, `TOWER_CIS_BENCH_THREADS`
//! (comma-separated lists) pick the session and thread counts.

mod common;
#[path = "common/paired.rs"]
mod paired;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use common::Bare;
use criterion::{BenchmarkId, Criterion, criterion_group};
use http::{HeaderValue, Request, Response};
use paired::{counts, median, rotated};
use parking_lot::RwLock;
use tower_cis::{Clock, MemoryStore, Principal, SessionAuthLayer, SessionStore, SystemClock};
use tower_layer::Layer;
use tower_service::Service;
use tower_sessions::session::{Id, Record};
use tower_sessions::{Expiry, Session, SessionManagerLayer, SessionStore as _};

/// The constant token of the bearer check.
const BEARER: &str = "Bearer 0123456789abcdef0123456789abcdef";
/// The session counts measured unless `TOWER_CIS_BENCH_SESSIONS` says.
const SESSION_COUNTS: &[usize] = &[1, 10_000, 1_000_000];
/// The idle timeout of every stack: 30 minutes.
const IDLE: Duration = Duration::from_secs(1800);

/// The naive reference: one `RwLock<HashMap>` keyed by the id string, an
/// atomic last-access time, idle check and refresh.
#[derive(Clone)]
struct Naive {
    sessions: Arc<RwLock<NaiveMap>>,
}

type NaiveMap = HashMap<String, (Arc<str>, AtomicU64)>;

impl Service<Request<()>> for Naive {
    type Response = Response<http_body_util::Empty<bytes::Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<()>) -> Self::Future {
        let now = SystemClock.now().as_millis();
        let found = request.headers().get("vmware-api-session-id").and_then(|v| v.to_str().ok()).and_then(|id| {
            let sessions = self.sessions.read();
            let (user, last) = sessions.get(id)?;
            (now < last.load(Ordering::Relaxed) + 1_800_000).then(|| {
                last.store(now, Ordering::Relaxed);
                Arc::clone(user)
            })
        });
        match found {
            Some(user) => {
                request.extensions_mut().insert(user);
                Bare.call(request)
            }
            None => {
                let mut response = Response::new(http_body_util::Empty::new());
                *response.status_mut() = http::StatusCode::UNAUTHORIZED;
                ready(Ok(response))
            }
        }
    }
}

/// The handler behind tower-sessions: reads the user from the session (which
/// loads it from the store) and answers 401 without one, like `Naive`.
#[derive(Clone, Copy)]
struct TowerSessionsAuth;

type BoxFuture<T> = std::pin::Pin<Box<dyn Future<Output = T> + Send>>;

impl Service<Request<()>> for TowerSessionsAuth {
    type Response = Response<http_body_util::Empty<bytes::Bytes>>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<()>) -> Self::Future {
        let session = request.extensions().get::<Session>().cloned();
        Box::pin(async move {
            match session {
                Some(session) => match session.get::<Arc<str>>("user").await {
                    Ok(Some(user)) => {
                        request.extensions_mut().insert(user);
                        Bare.call(request).await
                    }
                    _ => Ok(unauthorized()),
                },
                None => Ok(unauthorized()),
            }
        })
    }
}

fn unauthorized() -> Response<http_body_util::Empty<bytes::Bytes>> {
    let mut response = Response::new(http_body_util::Empty::new());
    *response.status_mut() = http::StatusCode::UNAUTHORIZED;
    response
}

/// The credentials of one session, as request headers.
struct Credentials {
    session_id: HeaderValue,
    cookie: HeaderValue,
}

/// Wakes the benchmark thread parked on a pending future (tower-sessions'
/// store is behind a tokio `Mutex`, which is pending under contention).
struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Calls the service once with the given credentials (and the bearer token)
/// and drops the response. Services that answer at once complete in one poll;
/// the others park the thread until woken.
fn one_request<S>(service: &mut S, credentials: &Credentials, bearer: &HeaderValue, cx: &mut Context<'_>)
where
    S: Service<Request<()>>,
    S::Response: 'static,
{
    let mut request = Request::new(());
    let headers = request.headers_mut();
    // Copied, not cloned: a clone shares bytes that, at 1M sessions, sit cold
    // in memory, and only the stacks that read them would pay that miss. A
    // server reads them from a buffer it has just parsed; here the copy pays
    // the miss, in the harness, the same for every stack (bare included).
    headers.insert("vmware-api-session-id", HeaderValue::from_bytes(credentials.session_id.as_bytes()).unwrap());
    headers.insert(http::header::COOKIE, HeaderValue::from_bytes(credentials.cookie.as_bytes()).unwrap());
    headers.insert(http::header::AUTHORIZATION, bearer.clone());
    let mut future = pin!(service.call(request));
    loop {
        match future.as_mut().poll(cx) {
            Poll::Ready(response) => return drop(black_box(response)),
            Poll::Pending => std::thread::park(),
        }
    }
}

/// Asserts that the service lets the first session's request through (so no
/// stack is measured answering 401).
fn assert_authorized<S, B>(mut service: S, credentials: &Credentials)
where
    S: Service<Request<()>, Response = Response<B>>,
    S::Error: std::fmt::Debug,
{
    let mut request = Request::new(());
    let headers = request.headers_mut();
    headers.insert("vmware-api-session-id", credentials.session_id.clone());
    headers.insert(http::header::COOKIE, credentials.cookie.clone());
    headers.insert(http::header::AUTHORIZATION, HeaderValue::from_static(BEARER));
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = pin!(service.call(request));
    let response = loop {
        match future.as_mut().poll(&mut cx) {
            Poll::Ready(response) => break response.unwrap(),
            Poll::Pending => std::thread::park(),
        }
    };
    assert_eq!(response.status(), http::StatusCode::OK);
}

/// Runs `iterations` requests over `threads` threads, cycling through `ids`.
fn run<S>(service: &S, ids: &Arc<Vec<Credentials>>, threads: usize, iterations: u64) -> Duration
where
    S: Service<Request<()>> + Clone + Send + 'static,
    S::Response: 'static,
{
    let per_thread = iterations / threads as u64;
    let bearer = HeaderValue::from_static(BEARER);
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let mut service = service.clone();
            let ids = Arc::clone(ids);
            let bearer = bearer.clone();
            scope.spawn(move || {
                let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
                let mut cx = Context::from_waker(&waker);
                let mut i = t * 7919;
                for _ in 0..per_thread {
                    i = (i + 104_729) % ids.len();
                    one_request(&mut service, &ids[i], &bearer, &mut cx);
                }
            });
        }
    });
    start.elapsed()
}

/// The same `sessions` live sessions in our store, the naive map and
/// tower-sessions' store (the credentials of each).
struct Populated {
    store: MemoryStore,
    naive: Naive,
    ts_store: tower_sessions::MemoryStore,
    ids: Arc<Vec<Credentials>>,
}

fn populate(sessions: usize) -> Populated {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let store = MemoryStore::builder().max_sessions(sessions as u64 + 1).max_sessions_per_user(u64::MAX).build();
    let naive = Naive { sessions: Arc::default() };
    let ts_store = tower_sessions::MemoryStore::default();
    let mut ids = Vec::with_capacity(sessions);
    let now = SystemClock.now().as_millis();
    let expiry = time::OffsetDateTime::now_utc() + IDLE;
    for i in 0..sessions {
        let user = format!("user{}@vsphere.local", i % 1000);
        let session = runtime.block_on(store.create(Principal::new(user.clone()), None)).unwrap();
        let text = session.id().to_string();
        let mut record = Record { id: Id::default(), data: Default::default(), expiry_date: expiry };
        record.data.insert("user".to_owned(), serde_json::Value::String(user.clone()));
        runtime.block_on(ts_store.create(&mut record)).unwrap();
        naive.sessions.write().insert(text.clone(), (user.into(), AtomicU64::new(now)));
        ids.push(Credentials {
            session_id: HeaderValue::from_str(&text).unwrap(),
            cookie: HeaderValue::from_str(&format!("id={}", record.id)).unwrap(),
        });
    }
    Populated { store, naive, ts_store, ids: Arc::new(ids) }
}

fn layer_cost(c: &mut Criterion) {
    for sessions in counts("TOWER_CIS_BENCH_SESSIONS", SESSION_COUNTS) {
        let Populated { store, naive, ts_store, ids } = populate(sessions);
        let layered = SessionAuthLayer::new(store.clone()).layer(Bare);
        #[allow(deprecated)] // "too basic to be useful": exactly why it is the floor
        let bearer =
            tower_http::validate_request::ValidateRequestHeaderLayer::bearer(&BEARER["Bearer ".len()..]).layer(Bare);
        let tower_sessions = SessionManagerLayer::new(ts_store)
            .with_expiry(Expiry::OnInactivity(time::Duration::seconds(IDLE.as_secs() as i64)))
            .with_always_save(true)
            .layer(TowerSessionsAuth);
        assert_authorized(naive.clone(), &ids[0]);
        assert_authorized(bearer.clone(), &ids[0]);
        assert_authorized(tower_sessions.clone(), &ids[0]);
        assert_authorized(layered.clone(), &ids[0]);

        let mut group = c.benchmark_group(format!("sessions={sessions}"));
        group.sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
        for threads in [1, 2] {
            group
                .bench_function(BenchmarkId::new("bare", threads), |b| b.iter_custom(|n| run(&Bare, &ids, threads, n)));
            group.bench_function(BenchmarkId::new("tower_http_bearer", threads), |b| {
                b.iter_custom(|n| run(&bearer, &ids, threads, n))
            });
            group.bench_function(BenchmarkId::new("naive_rwlock_hashmap", threads), |b| {
                b.iter_custom(|n| run(&naive, &ids, threads, n))
            });
            group.bench_function(BenchmarkId::new("tower_sessions_memory_store", threads), |b| {
                b.iter_custom(|n| run(&tower_sessions, &ids, threads, n))
            });
            group.bench_function(BenchmarkId::new("session_auth_memory_store", threads), |b| {
                b.iter_custom(|n| run(&layered, &ids, threads, n))
            });
        }
        group.finish();
    }
}

/// Nanoseconds per request of `requests` requests through `service`.
fn ns_per_request<S>(service: &S, ids: &Arc<Vec<Credentials>>, threads: usize, requests: u64) -> f64
where
    S: Service<Request<()>> + Clone + Send + 'static,
    S::Response: 'static,
{
    run(service, ids, threads, requests).as_nanos() as f64 / requests as f64
}

/// Bare, naive and tower-cis in alternating batches; see the module docs.
fn paired() {
    let rounds: usize = std::env::var("TOWER_CIS_BENCH_ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(15);
    println!("paired: {rounds} rounds of alternating batches of about 50 ms; medians over rounds");
    println!(
        "sessions threads | bare ns | naive ns | tower-cis ns | naive added | tower-cis added | tower-cis/naive added"
    );
    for sessions in counts("TOWER_CIS_BENCH_SESSIONS", SESSION_COUNTS) {
        let Populated { store, naive, ids, .. } = populate(sessions);
        let layered = SessionAuthLayer::new(store.clone()).layer(Bare);
        assert_authorized(naive.clone(), &ids[0]);
        assert_authorized(layered.clone(), &ids[0]);
        for threads in counts("TOWER_CIS_BENCH_THREADS", &[1, 2]) {
            // Batches of about 50 ms, sized by a first batch of the naive stack.
            let probe = ns_per_request(&naive, &ids, threads, 20_000);
            let requests = ((50e6 / probe) as u64).max(10_000) / threads as u64 * threads as u64;
            let (mut bare_ns, mut naive_ns, mut ours_ns) = (Vec::new(), Vec::new(), Vec::new());
            let (mut naive_added, mut ours_added, mut ratio) = (Vec::new(), Vec::new(), Vec::new());
            for round in 0..rounds {
                let [bare, naive, ours] = rotated(round, |stack| match stack {
                    0 => ns_per_request(&Bare, &ids, threads, requests),
                    1 => ns_per_request(&naive, &ids, threads, requests),
                    _ => ns_per_request(&layered, &ids, threads, requests),
                });
                bare_ns.push(bare);
                naive_ns.push(naive);
                ours_ns.push(ours);
                naive_added.push(naive - bare);
                ours_added.push(ours - bare);
                ratio.push((ours - bare) / (naive - bare));
            }
            println!(
                "{sessions:>8} {threads:>7} | {:>7.0} | {:>8.0} | {:>12.0} | {:>+11.0} | {:>+15.0} | {:>21.2}",
                median(&mut bare_ns),
                median(&mut naive_ns),
                median(&mut ours_ns),
                median(&mut naive_added),
                median(&mut ours_added),
                median(&mut ratio),
            );
        }
    }
}

criterion_group!(benches, layer_cost);

fn main() {
    if std::env::var_os("TOWER_CIS_BENCH_PAIRED").is_some() {
        paired();
    } else {
        benches();
        Criterion::default().configure_from_args().final_summary();
    }
}
