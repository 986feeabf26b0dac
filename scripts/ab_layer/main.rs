//! In-process A/B of the layer's added cost: `SessionAuthLayer` +
//! `MemoryStore` of a base revision (crate `base`) against the working tree
//! (crate `candidate`), over the same bare service, in alternating batches of
//! about 50 ms in one process, so that a drifting machine hits both alike.
//! Prints, per run, the median over rounds of candidate added / base added
//! (1.00 = no change, below 1 = the candidate is cheaper).
//!
//! Built and run by `scripts/ab_layer.sh`, which supplies both crates and
//! the benches' `common` (the bare service) and `paired` modules.

mod common;
mod paired;

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use common::Bare;
use http::{HeaderValue, Request};
use paired::{counts, median, rotated};
use tower_layer::Layer;
use tower_service::Service;

/// A store of one revision with `sessions` live sessions, the layer over
/// `Bare`, and the session ids as header values.
macro_rules! populate {
    ($krate:ident, $sessions:expr) => {{
        use $krate::SessionStore as _;
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let store =
            $krate::MemoryStore::builder().max_sessions($sessions as u64 + 1).max_sessions_per_user(u64::MAX).build();
        let ids: Vec<HeaderValue> = (0..$sessions)
            .map(|i| {
                let user = $krate::Principal::new(format!("user{}@vsphere.local", i % 1000));
                let session = runtime.block_on(store.create(user, None)).unwrap();
                HeaderValue::from_str(&session.id().to_string()).unwrap()
            })
            .collect();
        ($krate::SessionAuthLayer::new(store.clone()).layer(Bare), ids, store)
    }};
}

/// Nanoseconds per request over `threads` threads, cycling through `ids`;
/// every response must be a 200.
fn ns_per_request<S>(service: &S, ids: &[HeaderValue], threads: usize, requests: u64) -> f64
where
    S: Service<Request<()>> + Clone + Send,
    S::Response: 'static,
    S::Future: Send,
{
    let per_thread = requests / threads as u64;
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let mut service = service.clone();
            scope.spawn(move || {
                let mut cx = Context::from_waker(Waker::noop());
                let mut i = t * 7919;
                for _ in 0..per_thread {
                    i = (i + 104_729) % ids.len();
                    let mut request = Request::new(());
                    // Copied, as a server parses it, not shared with `ids`.
                    let id = HeaderValue::from_bytes(ids[i].as_bytes()).unwrap();
                    request.headers_mut().insert("vmware-api-session-id", id);
                    let mut future = pin!(service.call(request));
                    match future.as_mut().poll(&mut cx) {
                        Poll::Ready(response) => drop(black_box(response)),
                        Poll::Pending => panic!("the memory store answers at once"),
                    }
                }
            });
        }
    });
    start.elapsed().as_nanos() as f64 / (per_thread * threads as u64) as f64
}

fn main() {
    let rounds = counts("ROUNDS", &[41])[0];
    let runs = counts("RUNS", &[3])[0];
    println!("sessions threads | candidate added / base added, median of {rounds} rounds, per run");
    for sessions in counts("SESSIONS", &[1]) {
        let (base, base_ids, _base_store) = populate!(base, sessions);
        let (candidate, candidate_ids, _candidate_store) = populate!(candidate, sessions);
        for threads in counts("THREADS", &[1]) {
            let probe = ns_per_request(&base, &base_ids, threads, 20_000);
            let requests = ((50e6 / probe) as u64).max(10_000);
            let mut ratios = Vec::new();
            for _ in 0..runs {
                let mut per_round = Vec::new();
                for round in 0..rounds {
                    let [bare, base, candidate] = rotated(round, |stack| match stack {
                        0 => ns_per_request(&Bare, &base_ids, threads, requests),
                        1 => ns_per_request(&base, &base_ids, threads, requests),
                        _ => ns_per_request(&candidate, &candidate_ids, threads, requests),
                    });
                    per_round.push((candidate - bare) / (base - bare));
                }
                ratios.push(format!("{:.2}", median(&mut per_round)));
            }
            println!("{sessions:>8} {threads:>7} | {}", ratios.join(" "));
        }
    }
}
