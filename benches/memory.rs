//! Bytes per session in the memory store at one million sessions, from the
//! process's resident memory before and after creating them.
//!
//! Run: `cargo bench --bench memory`.

use std::time::Instant;

use tower_cis::{MemoryStore, Principal, SessionStore};

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
}
