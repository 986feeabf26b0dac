//! Load and soak tool for the example server (issue 9, item 4).
//!
//! Holds `--sessions` live sessions against a running example server with
//! continuous churn — logins, `GET /api/session` and `GET /api/demo/whoami`
//! on held sessions, deletes, and sessions abandoned to expire by the
//! server's idle timeout — at a bounded request rate and concurrency, for
//! `--duration`; then deletes what it still holds and waits for the last
//! abandoned sessions to expire, and reports:
//!
//! * errors: any status other than the expected one, any transport error
//!   (must be 0);
//! * leaks: every deleted session must answer 401 right after its delete and
//!   every abandoned one 401 once the idle timeout has passed (must be 0);
//! * the server's RSS (`VmRSS` of `--server-pid`) sampled over time, and its
//!   growth after warm-up;
//! * latency percentiles per kind of request.
//!
//! Loopback only: the tool refuses a `--base` that is not 127.0.0.1/::1/localhost.
//! `scripts/soak.sh` starts the server (memory store or a redis-server of its
//! own) and runs this tool. `--write-users-file` writes a users file with
//! cheap argon2 hashes for the server's `--users-file`, so that the run
//! measures the session path rather than password hashing (which costs tens
//! of milliseconds a login by design).
//!
//! ```text
//! cargo run --release --example soak -- --base http://127.0.0.1:8080 \
//!     --users 20 --password soak --sessions 10000 --duration 10m \
//!     --idle-timeout 20s --rate 2000 --concurrency 32 --server-pid PID
//! ```
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHasher, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use base64::Engine;
use bytes::Bytes;
use clap::Parser;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use parking_lot::Mutex;

#[derive(Parser, Debug)]
#[command(about = "Load and soak tool for the tower-cis example server")]
struct Args {
    /// The server's base URL (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    base: String,
    /// Users soak0..soakN-1 share `--password` (the server's per-user session
    /// limit is 1000 by default: keep sessions/users well under it).
    #[arg(long, default_value_t = 20)]
    users: usize,
    /// The password of every soak user.
    #[arg(long, default_value = "soak-password")]
    password: String,
    /// Write a users file (`name:argon2id-PHC`, cheap hashes) for the users
    /// above to this path and exit.
    #[arg(long, value_name = "PATH")]
    write_users_file: Option<String>,
    /// Live sessions to hold.
    #[arg(long, default_value_t = 10_000)]
    sessions: usize,
    /// How long to churn, e.g. 10m, 90s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    duration: Duration,
    /// The server's --idle-timeout (the tool must know it to keep sessions
    /// alive and to check abandoned ones).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "20s")]
    idle_timeout: Duration,
    /// Most requests per second, all workers together.
    #[arg(long, default_value_t = 2_000)]
    rate: u32,
    /// Concurrent requests (workers).
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Per mille of requests on held sessions that delete them.
    #[arg(long, default_value_t = 20)]
    delete_permille: u32,
    /// Per mille of requests on held sessions that abandon them instead.
    #[arg(long, default_value_t = 20)]
    abandon_permille: u32,
    /// The server's pid, to sample its RSS from /proc/PID/status.
    #[arg(long)]
    server_pid: Option<u32>,
    /// RSS sampling period.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    rss_every: Duration,
    /// Part of the run, after the ramp to `--sessions`, counted as warm-up
    /// for the RSS growth figure, e.g. 60s.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    warm_up: Duration,
    /// Slack on the idle timeout when checking that abandoned sessions expired.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    grace: Duration,
}

/// Kinds of request, for the latency table and the error counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Login,
    GetSession,
    WhoAmI,
    Delete,
    DeletedCheck,
    ExpiredCheck,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Login => "POST /api/session (login)",
            Kind::GetSession => "GET /api/session",
            Kind::WhoAmI => "GET /api/demo/whoami",
            Kind::Delete => "DELETE /api/session",
            Kind::DeletedCheck => "GET after delete (401)",
            Kind::ExpiredCheck => "GET after idle timeout (401)",
        }
    }
}

struct Held {
    id: String,
    /// When the tool sent its last request on the session: the server's idle
    /// timer starts no earlier than that.
    last_used: Instant,
}

#[derive(Default)]
struct Counts {
    requests: u64,
    errors: BTreeMap<String, u64>,
    /// Deleted or abandoned sessions that still answered 200.
    leaks: u64,
    created: u64,
    deleted: u64,
    abandoned: u64,
    expired_verified: u64,
    deleted_verified: u64,
    /// Held sessions the tool failed to use within the idle timeout (the
    /// tool fell behind): a 401 then is no error, but the tool did not hold
    /// them.
    lapsed: u64,
    latencies: BTreeMap<Kind, Vec<u32>>,
}

struct State {
    live: VecDeque<Held>,
    abandoned: VecDeque<Held>,
    counts: Counts,
    peak_live: usize,
    ramped_at: Option<Instant>,
    /// (seconds since start, server VmRSS KiB).
    rss: Vec<(f64, u64)>,
}

struct Shared {
    args: Args,
    client: Client<HttpConnector, Empty<Bytes>>,
    users: Vec<String>,
    state: Mutex<State>,
    churning: AtomicBool,
    next_user: AtomicU64,
    rng: AtomicU64,
}

impl Shared {
    /// A xorshift step on a shared seed: cheap and good enough for mixes.
    fn roll(&self, below: u32) -> u32 {
        let mut x = self.rng.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng.store(x, Ordering::Relaxed);
        (x % u64::from(below)) as u32
    }

    fn error(&self, what: String) {
        let mut state = self.state.lock();
        *state.counts.errors.entry(what).or_default() += 1;
    }

    /// Sends one request; `Ok((status, body))` or a transport error.
    async fn send(
        &self,
        kind: Kind,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
    ) -> Option<(StatusCode, Bytes)> {
        let mut builder = Request::builder().method(method).uri(format!("{}{path}", self.args.base));
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        let request = builder.body(Empty::new()).expect("a valid request");
        let started = Instant::now();
        let result = async {
            let response = self.client.request(request).await.map_err(|e| format!("{e:?}"))?;
            let status = response.status();
            let body = response.into_body().collect().await.map_err(|e| format!("{e:?}"))?.to_bytes();
            Ok::<_, String>((status, body))
        }
        .await;
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        let mut state = self.state.lock();
        state.counts.requests += 1;
        state.counts.latencies.entry(kind).or_default().push(micros);
        match result {
            Ok(answer) => Some(answer),
            Err(error) => {
                *state.counts.errors.entry(format!("{}: transport error {error}", kind.name())).or_default() += 1;
                None
            }
        }
    }

    async fn login(&self) {
        let user = self.next_user.fetch_add(1, Ordering::Relaxed) as usize % self.users.len();
        let basic =
            base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", self.users[user], self.args.password));
        let authorization = format!("Basic {basic}");
        let Some((status, body)) =
            self.send(Kind::Login, Method::POST, "/api/session", &[("authorization", &authorization)]).await
        else {
            return;
        };
        if status != StatusCode::CREATED {
            return self.error(format!("{}: status {status}", Kind::Login.name()));
        }
        let Ok(id) = serde_json::from_slice::<String>(&body) else {
            return self.error(format!("{}: body is not a JSON string", Kind::Login.name()));
        };
        let mut state = self.state.lock();
        state.counts.created += 1;
        state.live.push_back(Held { id, last_used: Instant::now() });
        state.peak_live = state.peak_live.max(state.live.len());
        if state.ramped_at.is_none() && state.live.len() >= self.args.sessions {
            state.ramped_at = Some(Instant::now());
        }
    }

    /// Uses a held session; `true` if it is still held.
    async fn use_session(&self, held: &mut Held) -> bool {
        let (kind, path) =
            if self.roll(2) == 0 { (Kind::GetSession, "/api/session") } else { (Kind::WhoAmI, "/api/demo/whoami") };
        let sent = Instant::now();
        let age = sent - held.last_used;
        let Some((status, _)) = self.send(kind, Method::GET, path, &[("vmware-api-session-id", &held.id)]).await else {
            return true;
        };
        match status {
            StatusCode::OK => {
                held.last_used = sent;
                true
            }
            StatusCode::UNAUTHORIZED if age >= self.args.idle_timeout => {
                self.state.lock().counts.lapsed += 1;
                false
            }
            other => {
                self.error(format!("{}: status {other} (session idle {age:?})", kind.name()));
                other != StatusCode::UNAUTHORIZED
            }
        }
    }

    /// Deletes a held session and checks that it is gone.
    async fn delete(&self, held: Held) {
        let header = [("vmware-api-session-id", held.id.as_str())];
        let Some((status, _)) = self.send(Kind::Delete, Method::DELETE, "/api/session", &header).await else {
            return;
        };
        if status == StatusCode::UNAUTHORIZED && held.last_used.elapsed() >= self.args.idle_timeout {
            self.state.lock().counts.lapsed += 1;
            return;
        }
        if status != StatusCode::NO_CONTENT {
            return self.error(format!("{}: status {status}", Kind::Delete.name()));
        }
        self.state.lock().counts.deleted += 1;
        self.check_gone(Kind::DeletedCheck, &held.id).await;
    }

    /// Checks that a deleted or expired session answers 401.
    async fn check_gone(&self, kind: Kind, id: &str) {
        let Some((status, _)) = self.send(kind, Method::GET, "/api/session", &[("vmware-api-session-id", id)]).await
        else {
            return;
        };
        let mut state = self.state.lock();
        match status {
            StatusCode::UNAUTHORIZED if kind == Kind::DeletedCheck => state.counts.deleted_verified += 1,
            StatusCode::UNAUTHORIZED => state.counts.expired_verified += 1,
            StatusCode::OK => state.counts.leaks += 1,
            other => *state.counts.errors.entry(format!("{}: status {other}", kind.name())).or_default() += 1,
        }
    }

    /// One step of a worker; `false` when there is nothing left to do.
    async fn step(&self) -> bool {
        let churning = self.churning.load(Ordering::Relaxed);
        let expiry = self.args.idle_timeout + self.args.grace;
        enum Next {
            CheckExpired(Held),
            Login,
            Use(Held),
            Delete(Held),
            Idle,
            Done,
        }
        let next = {
            let mut state = self.state.lock();
            if state.abandoned.front().is_some_and(|held| held.last_used.elapsed() >= expiry) {
                Next::CheckExpired(state.abandoned.pop_front().expect("a front"))
            } else if !churning {
                match state.live.pop_front() {
                    Some(held) => Next::Delete(held),
                    None if state.abandoned.is_empty() => Next::Done,
                    None => Next::Idle,
                }
            } else if state.live.len() < self.args.sessions
                && (state.ramped_at.is_none() || self.roll(1000) < 2 * self.args.delete_permille)
            {
                Next::Login
            } else {
                match state.live.pop_front() {
                    None => Next::Login,
                    Some(held) => {
                        let roll = self.roll(1000);
                        if roll < self.args.delete_permille {
                            Next::Delete(held)
                        } else if roll < self.args.delete_permille + self.args.abandon_permille {
                            state.counts.abandoned += 1;
                            state.abandoned.push_back(held);
                            return true;
                        } else {
                            Next::Use(held)
                        }
                    }
                }
            }
        };
        match next {
            Next::CheckExpired(held) => self.check_gone(Kind::ExpiredCheck, &held.id).await,
            Next::Login => self.login().await,
            Next::Use(mut held) => {
                if self.use_session(&mut held).await {
                    self.state.lock().live.push_back(held);
                }
            }
            Next::Delete(held) => self.delete(held).await,
            Next::Idle => tokio::time::sleep(Duration::from_millis(100)).await,
            Next::Done => return false,
        }
        true
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// Least-squares slope of (seconds, KiB) in KiB per minute.
fn slope_kib_per_min(points: &[(f64, u64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return 0.0;
    }
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1 as f64).sum::<f64>() / n;
    let num: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 as f64 - mean_y)).sum();
    let den: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if den == 0.0 { 0.0 } else { num / den * 60.0 }
}

fn write_users_file(args: &Args, path: &str) -> Result<(), Box<dyn std::error::Error>> {
    // The cheapest argon2id cost: the soak measures sessions, not hashing.
    let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(8, 1, 1, None)?);
    let mut out = String::new();
    for user in 0..args.users {
        let mut salt = [0u8; 16];
        getrandom::fill(&mut salt)?;
        let salt = SaltString::encode_b64(&salt)?;
        let hash = argon2.hash_password(args.password.as_bytes(), &salt)?;
        out.push_str(&format!("soak{user}:{hash}\n"));
    }
    std::fs::write(path, out)?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(path) = &args.write_users_file {
        return write_users_file(&args, path);
    }
    let uri: http::Uri = args.base.parse()?;
    if uri.scheme_str() != Some("http") || !matches!(uri.host(), Some("127.0.0.1" | "[::1]" | "::1" | "localhost")) {
        return Err(format!("--base must be a plain http loopback URL, not {}", args.base).into());
    }
    if args.users == 0 || args.concurrency == 0 || args.rate == 0 {
        return Err("--users, --concurrency and --rate must be positive".into());
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(args.concurrency).build(connector);
    let users = (0..args.users).map(|user| format!("soak{user}")).collect();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_nanos() as u64 | 1;
    let shared = Arc::new(Shared {
        client,
        users,
        state: Mutex::new(State {
            live: VecDeque::new(),
            abandoned: VecDeque::new(),
            counts: Counts::default(),
            peak_live: 0,
            ramped_at: None,
            rss: Vec::new(),
        }),
        churning: AtomicBool::new(true),
        next_user: AtomicU64::new(0),
        rng: AtomicU64::new(seed),
        args,
    });
    let args = &shared.args;
    println!(
        "soak: {} sessions over {} users against {} for {:?} (idle timeout {:?}), at most {} req/s from {} workers",
        args.sessions, args.users, args.base, args.duration, args.idle_timeout, args.rate, args.concurrency
    );
    let started = Instant::now();
    let rss_start = args.server_pid.and_then(rss_kib);
    let sampler = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(shared.args.rss_every);
            let mut last_report = Instant::now();
            loop {
                ticker.tick().await;
                let rss = shared.args.server_pid.and_then(rss_kib);
                let (live, abandoned, requests, errors) = {
                    let state = shared.state.lock();
                    (
                        state.live.len(),
                        state.abandoned.len(),
                        state.counts.requests,
                        state.counts.errors.values().sum::<u64>(),
                    )
                };
                if let Some(rss) = rss {
                    shared.state.lock().rss.push((started.elapsed().as_secs_f64(), rss));
                }
                if last_report.elapsed() >= Duration::from_secs(30) {
                    last_report = Instant::now();
                    println!(
                        "  t={:>5.0}s live={live} abandoned-pending={abandoned} requests={requests} errors={errors} rss={}",
                        started.elapsed().as_secs_f64(),
                        rss.map_or("?".into(), |kib| format!("{kib} KiB"))
                    );
                }
                if shared.args.server_pid.is_some() && rss.is_none() {
                    println!("  the server (pid {:?}) is gone", shared.args.server_pid);
                    return;
                }
            }
        })
    };
    let period = Duration::from_secs_f64(args.concurrency as f64 / f64::from(args.rate));
    let workers: Vec<_> = (0..args.concurrency)
        .map(|_| {
            let shared = Arc::clone(&shared);
            tokio::spawn(async move {
                let mut ticker = tokio::time::interval(period);
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    ticker.tick().await;
                    if !shared.step().await {
                        break;
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(args.duration).await;
    let churn_time = started.elapsed();
    shared.churning.store(false, Ordering::Relaxed);
    let rss_end_of_churn = args.server_pid.and_then(rss_kib);
    println!("soak: churn over after {churn_time:?}; deleting held sessions and waiting out abandoned ones");
    for worker in workers {
        worker.await?;
    }
    let total_time = started.elapsed();
    // Let the server's sweeper run, then a last sample.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_final = args.server_pid.and_then(rss_kib);
    sampler.abort();
    let state = shared.state.lock();
    let samples = &state.rss;
    let counts = &state.counts;
    let errors: u64 = counts.errors.values().sum();
    println!();
    println!("== soak report ==");
    println!("churn {churn_time:.1?}, total {total_time:.1?} (incl. drain); {} requests", counts.requests);
    println!(
        "sessions: peak held {}, reached {} at {}, created {}, deleted {} (verified 401 {}), abandoned {} (verified expired {}), lapsed while held {}",
        state.peak_live,
        args.sessions,
        state.ramped_at.map_or("never".into(), |at| format!("{:.1?}", at - started)),
        counts.created,
        counts.deleted,
        counts.deleted_verified,
        counts.abandoned,
        counts.expired_verified,
        counts.lapsed
    );
    println!("errors: {errors}");
    for (what, n) in &counts.errors {
        println!("  {n} × {what}");
    }
    println!("leaked (deleted/abandoned sessions still answering 200): {}", counts.leaks);
    println!("latency (ms):         {:>8} {:>8} {:>8} {:>8} {:>9}", "p50", "p90", "p99", "max", "count");
    for (kind, values) in &counts.latencies {
        let mut sorted = values.clone();
        sorted.sort_unstable();
        println!(
            "  {:<28} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>9}",
            kind.name(),
            percentile(&sorted, 50.0),
            percentile(&sorted, 90.0),
            percentile(&sorted, 99.0),
            percentile(&sorted, 100.0),
            sorted.len()
        );
    }
    if args.server_pid.is_some() {
        let warm = state.ramped_at.map(|at| (at - started + args.warm_up).as_secs_f64());
        let after: Vec<_> = samples.iter().copied().filter(|(t, _)| warm.is_some_and(|w| *t >= w)).collect();
        let kib = |v: Option<u64>| v.map_or("?".into(), |v| format!("{v} KiB"));
        println!(
            "server RSS: start {}, end of churn {}, after drain {}, {} samples",
            kib(rss_start),
            kib(rss_end_of_churn),
            kib(rss_final),
            samples.len()
        );
        if let (Some(first), Some(max), Some(min)) =
            (after.first(), after.iter().map(|s| s.1).max(), after.iter().map(|s| s.1).min())
        {
            println!(
                "  after warm-up (t ≥ {:.0}s, {} samples): first {} KiB, min {min} KiB, max {max} KiB, last {} KiB, slope {:.1} KiB/min",
                warm.unwrap_or(0.0),
                after.len(),
                first.1,
                after.last().map_or(0, |s| s.1),
                slope_kib_per_min(&after)
            );
        } else {
            println!("  no RSS samples after warm-up (run longer than ramp + --warm-up)");
        }
        let timeline: Vec<String> =
            samples.iter().step_by((samples.len() / 20).max(1)).map(|(t, kib)| format!("{t:.0}s:{kib}")).collect();
        println!("  timeline (s:KiB): {}", timeline.join(" "));
    }
    let ok = errors == 0 && counts.leaks == 0;
    println!("result: {}", if ok { "PASS (0 errors, 0 leaks)" } else { "FAIL" });
    if !ok {
        std::process::exit(1);
    }
    Ok(())
}
