//! A password login on a multi-threaded runtime does not hold up the other
//! tasks of its worker thread while argon2 works.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tower_cis::auth::{Authenticator, ClientInfo, Credential, HashCost, PasswordAuthenticator, UserDirectory};

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn argon2_work_leaves_the_worker_free_for_other_requests() {
    // A deliberately slow hash: about a tenth of a second or more.
    let cost = HashCost::new(64 * 1024, 4, 1).unwrap();
    let users = UserDirectory::new().with_cost(cost).with_user("alice", "pw").unwrap();
    let auth = Arc::new(PasswordAuthenticator::new(users));
    let ticks = Arc::new(AtomicU64::new(0));
    let ticker = {
        let ticks = Arc::clone(&ticks);
        tokio::spawn(async move {
            loop {
                ticks.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let before = ticks.load(Ordering::SeqCst);
    // The login runs as a task on the one worker, as a request would.
    let worker = Arc::clone(&auth);
    let (login, took) = tokio::spawn(async move {
        let started = Instant::now();
        let credential = Credential::Basic { user: "alice", password: "pw" };
        let login = worker.authenticate(credential, &ClientInfo::default()).await;
        (login, started.elapsed())
    })
    .await
    .unwrap();
    let during = ticks.load(Ordering::SeqCst) - before;
    ticker.abort();
    assert_eq!(login.unwrap().principal().name(), "alice");
    // With one worker, an inline hash stops the ticker for the whole hash
    // (0 ticks seen); with the worker freed it keeps ticking.
    assert!(took >= Duration::from_millis(40), "the hash was too quick to tell ({took:?})");
    assert!(during >= 3, "the worker was blocked: {during} ticks in {took:?}");
}
