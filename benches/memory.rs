//! Bytes per session in the memory store at one million sessions, from the
//! process's resident memory before and after creating them; the create rate;
//! and the sweeper's cost when 1 % of a million sessions expire at once.
//!
//! Run: `cargo bench --bench memory`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tower_cis::{ExpiryPolicy, ManualClock, MemoryStore, Principal, SessionStore, Timestamp};

fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kb| kb.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sessions: u64 =
        std::env::var("TOWER_CIS_BENCH_SESSIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
    let users = 1_000;
    let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
    let principals: Vec<Principal> = (0..users).map(|i| Principal::new(format!("user{i}@vsphere.local"))).collect();
    let store = MemoryStore::builder().max_sessions(sessions).max_sessions_per_user(u64::MAX).build();
    let before = resident_bytes();
    let start = Instant::now();
    for i in 0..sessions {
        let principal = principals[(i % users) as usize].clone();
        runtime.block_on(store.create(principal, None)).expect("create failed");
    }
    let elapsed = start.elapsed();
    let after = resident_bytes();
    let per_session = (after.saturating_sub(before)) as f64 / sessions as f64;
    println!("memory store: {sessions} sessions over {users} users");
    println!("  resident growth: {:.1} MiB, {per_session:.1} bytes per session", (after - before) as f64 / 1048576.0);
    println!("  create rate: {:.0} sessions/s (one thread)", sessions as f64 / elapsed.as_secs_f64());
    drop(store);
    sweeper_cost(sessions, &principals, &runtime);
}

/// One purge (what the sweeper runs each interval) over `sessions` live
/// sessions when nothing is due, then when 1 % of them expire at once.
fn sweeper_cost(sessions: u64, principals: &[Principal], runtime: &tokio::runtime::Runtime) {
    let idle = Duration::from_secs(30 * 60);
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let store = MemoryStore::builder()
        .policy(ExpiryPolicy::default().with_idle_timeout(idle))
        .clock(Arc::new(clock.clone()))
        .sweep_interval(None)
        .max_sessions(sessions)
        .max_sessions_per_user(u64::MAX)
        .build();
    let expiring = sessions / 100;
    let create = |range: std::ops::Range<u64>| {
        for i in range {
            let principal = principals[i as usize % principals.len()].clone();
            runtime.block_on(store.create(principal, None)).expect("create failed");
        }
    };
    // 1 % made a minute before the rest: they expire a minute earlier.
    create(0..expiring);
    clock.advance(Duration::from_secs(60));
    create(expiring..sessions);

    clock.advance(idle - Duration::from_secs(61));
    let start = Instant::now();
    let nothing_due = store.purge_expired();
    let idle_purge = start.elapsed();
    assert_eq!(nothing_due.removed, 0);

    clock.advance(Duration::from_secs(2));
    let start = Instant::now();
    let report = store.purge_expired();
    let purge = start.elapsed();
    assert_eq!(report.removed, expiring, "the purge removed other than the expired sessions");
    println!("sweeper: {sessions} sessions, {expiring} (1 %) expire at once");
    println!(
        "  purge: removed {}, examined {}, {:.2} ms ({:.0} ns per expired session)",
        report.removed,
        report.examined,
        purge.as_secs_f64() * 1e3,
        purge.as_nanos() as f64 / expiring.max(1) as f64
    );
    println!("  purge with nothing due: examined {}, {:.3} ms", nothing_due.examined, idle_purge.as_secs_f64() * 1e3);
}
