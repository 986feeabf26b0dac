//! HTTP-level load: a minimal hyper HTTP/1.1 server, bare and with
//! `SessionAuthLayer` + `MemoryStore` (10k live sessions), on loopback, driven
//! by a closed-loop load generator in this file (hyper client, N keep-alive
//! connections, one request in flight on each, a fixed duration per run).
//!
//! Both servers run side by side for the whole bench; the generator loads
//! them in alternation (bare, layer, bare, layer…) so that drifts of the
//! machine hit both alike, and reports per round the requests per second and
//! the p99 latency of each, with the ratios layer / bare, then the median
//! ratios. Every request carries a valid `vmware-api-session-id` (the bare
//! server ignores it), cycling through the sessions.
//!
//! Run: `cargo bench --bench http`. Environment: `TOWER_CIS_BENCH_SECONDS`
//! (per run, default 5), `TOWER_CIS_BENCH_ROUNDS` (default 5),
//! `TOWER_CIS_BENCH_CONNECTIONS` (default 16), `TOWER_CIS_BENCH_SERVER_THREADS`
//! (server runtime workers, default 1; the generator has one more),
//! `TOWER_CIS_BENCH_CSV` (a file to write the rounds to, for
//! `scripts/plot_benchmarks.py`). Without `--bench` (as under `cargo test
//! --benches`) it does one short round, as a smoke test.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower_cis::{MemoryStore, Principal, SessionAuthLayer, SessionStore};
use tower_layer::Layer;
use tower_service::Service;

/// The handler: a fixed three-byte body.
#[derive(Clone, Copy)]
struct Hello;

impl<B> Service<Request<B>> for Hello {
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = Ready<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<B>) -> Self::Future {
        ready(Ok(Response::new(Full::new(Bytes::from_static(b"ok\n")))))
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Serves `service` on a free loopback port, on the current runtime.
async fn serve<S, B>(service: S) -> SocketAddr
where
    S: Service<Request<hyper::body::Incoming>, Response = Response<B>, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            stream.set_nodelay(true).unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    address
}

/// One run: `connections` keep-alive connections to `address`, each sending
/// its next request as soon as the last answer arrived, for `duration`.
/// Returns the requests per second and the p99 latency.
async fn load(
    address: SocketAddr,
    ids: Arc<Vec<HeaderValue>>,
    connections: usize,
    duration: Duration,
) -> (f64, Duration) {
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(connections);
    for c in 0..connections {
        let ids = Arc::clone(&ids);
        tasks.push(tokio::spawn(async move {
            let stream = TcpStream::connect(address).await.unwrap();
            stream.set_nodelay(true).unwrap();
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::spawn(connection);
            let mut latencies = Vec::with_capacity(1 << 16);
            let mut i = c * 7919;
            while Instant::now() < deadline {
                i = (i + 104_729) % ids.len();
                let request = Request::get("/")
                    .header(http::header::HOST, "127.0.0.1")
                    .header("vmware-api-session-id", ids[i].clone())
                    .body(Empty::<Bytes>::new())
                    .unwrap();
                let sent = Instant::now();
                sender.ready().await.unwrap();
                let response = sender.send_request(request).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body().collect().await.unwrap();
                latencies.push(sent.elapsed().as_nanos() as u64);
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap());
    }
    let elapsed = start.elapsed();
    latencies.sort_unstable();
    let p99 = latencies.get(latencies.len() * 99 / 100).copied().unwrap_or(0);
    (latencies.len() as f64 / elapsed.as_secs_f64(), Duration::from_nanos(p99))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let full = args.iter().any(|a| a == "--bench");
    let seconds: f64 = if full { env_or("TOWER_CIS_BENCH_SECONDS", 5.0) } else { 0.2 };
    let rounds: usize = if full { env_or("TOWER_CIS_BENCH_ROUNDS", 5) } else { 1 };
    let connections: usize = env_or("TOWER_CIS_BENCH_CONNECTIONS", 16);
    let server_threads: usize = env_or("TOWER_CIS_BENCH_SERVER_THREADS", 1);
    let sessions: usize = if full { 10_000 } else { 100 };

    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(server_threads)
        .thread_name("server")
        .enable_all()
        .build()
        .unwrap();
    let client =
        tokio::runtime::Builder::new_multi_thread().worker_threads(1).thread_name("load").enable_all().build().unwrap();

    let store = MemoryStore::builder().max_sessions(sessions as u64 + 1).max_sessions_per_user(u64::MAX).build();
    let ids: Vec<HeaderValue> = (0..sessions)
        .map(|i| {
            let principal = Principal::new(format!("user{}@vsphere.local", i % 1000));
            let session = server.block_on(store.create(principal, None)).unwrap();
            HeaderValue::from_str(&session.id().to_string()).unwrap()
        })
        .collect();
    let ids = Arc::new(ids);
    let bare = server.block_on(async { serve(Hello).await });
    let layered = server.block_on(async { serve(SessionAuthLayer::new(store.clone()).layer(Hello)).await });

    let duration = Duration::from_secs_f64(seconds);
    println!(
        "http load: {connections} connections, {seconds} s per run, {rounds} rounds, {sessions} live sessions, \
         server {server_threads} worker(s), generator 1 worker, loopback"
    );
    // A short warm-up of each, not counted.
    for address in [bare, layered] {
        client.block_on(load(address, Arc::clone(&ids), connections, duration.min(Duration::from_millis(500))));
    }
    println!("round    bare req/s   layer req/s   ratio    bare p99   layer p99   ratio");
    let mut csv = String::from("round,bare_rps,layer_rps,bare_p99_us,layer_p99_us\n");
    let (mut throughput_ratios, mut p99_ratios) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let (bare_rps, bare_p99) = client.block_on(load(bare, Arc::clone(&ids), connections, duration));
        let (layer_rps, layer_p99) = client.block_on(load(layered, Arc::clone(&ids), connections, duration));
        let throughput = layer_rps / bare_rps;
        let p99 = layer_p99.as_secs_f64() / bare_p99.as_secs_f64();
        println!(
            "{round:>5} {bare_rps:>13.0} {layer_rps:>13.0} {:>6.1} % {:>8.0} µs {:>8.0} µs {p99:>6.2}x",
            throughput * 100.0,
            bare_p99.as_secs_f64() * 1e6,
            layer_p99.as_secs_f64() * 1e6,
        );
        csv.push_str(&format!(
            "{round},{bare_rps:.0},{layer_rps:.0},{:.1},{:.1}\n",
            bare_p99.as_secs_f64() * 1e6,
            layer_p99.as_secs_f64() * 1e6
        ));
        throughput_ratios.push(throughput);
        p99_ratios.push(p99);
    }
    println!(
        "median: layer throughput {:.1} % of bare (target >= 95 %), layer p99 {:.2}x bare",
        median(throughput_ratios) * 100.0,
        median(p99_ratios)
    );
    if let Ok(path) = std::env::var("TOWER_CIS_BENCH_CSV") {
        std::fs::write(&path, csv).unwrap();
        println!("rounds written to {path}");
    }
}
