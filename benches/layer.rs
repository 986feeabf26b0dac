//! Added cost per request of `SessionAuthLayer` + `MemoryStore`, against the
//! bare service and a naive `RwLock<HashMap>` + atomic timestamp layer, at 1,
//! 10k and 1M live sessions, on one thread and on two.
//!
//! Run: `cargo bench --bench layer`. Each figure is the wall time per request
//! (with two threads, the wall time for the whole batch divided by the number
//! of requests, so a lower figure means more throughput).

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use http::{HeaderValue, Request, Response};
use parking_lot::RwLock;
use tower_cis::{Clock, MemoryStore, Principal, SessionAuthLayer, SessionStore, SystemClock};
use tower_layer::Layer;
use tower_service::Service;

/// The handler: answers at once with an empty body.
#[derive(Clone, Copy)]
struct Bare;

impl Service<Request<()>> for Bare {
    type Response = Response<http_body_util::Empty<bytes::Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<()>) -> Self::Future {
        ready(Ok(Response::new(http_body_util::Empty::new())))
    }
}

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

/// Calls the service once with the given id and drops the response. Every
/// service here answers without waiting, so one poll completes it.
fn one_request<S>(service: &mut S, id: &HeaderValue)
where
    S: Service<Request<()>>,
    S::Response: 'static,
{
    let mut request = Request::new(());
    request.headers_mut().insert("vmware-api-session-id", id.clone());
    let future = pin!(service.call(request));
    let mut cx = Context::from_waker(Waker::noop());
    match future.poll(&mut cx) {
        Poll::Ready(response) => drop(black_box(response)),
        Poll::Pending => unreachable!("the benchmarked services answer at once"),
    }
}

/// Runs `iterations` requests over `threads` threads, cycling through `ids`.
fn run<S>(service: &S, ids: &Arc<Vec<HeaderValue>>, threads: usize, iterations: u64) -> Duration
where
    S: Service<Request<()>> + Clone + Send + 'static,
    S::Response: 'static,
{
    let per_thread = iterations / threads as u64;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let mut service = service.clone();
            let ids = Arc::clone(ids);
            scope.spawn(move || {
                let mut i = t * 7919;
                for _ in 0..per_thread {
                    i = (i + 104_729) % ids.len();
                    one_request(&mut service, &ids[i]);
                }
            });
        }
    });
    start.elapsed()
}

fn session_counts() -> Vec<usize> {
    match std::env::var("TOWER_CIS_BENCH_SESSIONS") {
        Ok(list) => list.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) => vec![1, 10_000, 1_000_000],
    }
}

fn layer_cost(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    for sessions in session_counts() {
        let store = MemoryStore::builder().max_sessions(sessions as u64 + 1).max_sessions_per_user(u64::MAX).build();
        let naive = Naive { sessions: Arc::default() };
        let mut ids = Vec::with_capacity(sessions);
        let now = SystemClock.now().as_millis();
        for i in 0..sessions {
            let user = format!("user{}@vsphere.local", i % 1000);
            let session = runtime.block_on(store.create(Principal::new(user.clone()), None)).unwrap();
            let text = session.id().to_string();
            naive.sessions.write().insert(text.clone(), (user.into(), AtomicU64::new(now)));
            ids.push(HeaderValue::from_str(&text).unwrap());
        }
        let ids = Arc::new(ids);
        let layered = SessionAuthLayer::new(store.clone()).layer(Bare);

        let mut group = c.benchmark_group(format!("sessions={sessions}"));
        group.sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500));
        for threads in [1, 2] {
            group
                .bench_function(BenchmarkId::new("bare", threads), |b| b.iter_custom(|n| run(&Bare, &ids, threads, n)));
            group.bench_function(BenchmarkId::new("naive_rwlock_hashmap", threads), |b| {
                b.iter_custom(|n| run(&naive, &ids, threads, n))
            });
            group.bench_function(BenchmarkId::new("session_auth_memory_store", threads), |b| {
                b.iter_custom(|n| run(&layered, &ids, threads, n))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, layer_cost);
criterion_main!(benches);
