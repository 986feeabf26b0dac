//! The memory store's background sweeper: a thread that wakes at an interval,
//! purges what has expired, and ends when the store it serves is dropped.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Weak};
use std::thread;
use std::time::Duration;

/// Held by the store; dropping it (with the store) wakes the sweeper, which
/// then ends.
pub(super) struct Stop(#[allow(dead_code)] mpsc::Sender<()>);

/// Builds the store with `make` and starts a sweeper that calls `work` on it
/// every `interval` for as long as the store lives. The sweeper holds only a
/// weak reference, so it never keeps the store alive.
pub(super) fn start<T, M, W>(interval: Duration, make: M, work: W) -> Arc<T>
where
    T: Send + Sync + 'static,
    M: FnOnce(Option<Stop>) -> T,
    W: Fn(&T) -> u64 + Send + 'static,
{
    let (stop, stopped) = mpsc::channel::<()>();
    let store = Arc::new(make(Some(Stop(stop))));
    let weak: Weak<T> = Arc::downgrade(&store);
    let spawned = thread::Builder::new().name("tower-cis-sweeper".into()).spawn(move || {
        loop {
            match stopped.recv_timeout(interval) {
                Err(RecvTimeoutError::Timeout) => {}
                Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
            }
            let Some(store) = weak.upgrade() else { return };
            work(&store);
        }
    });
    if let Err(error) = spawned {
        // Expired sessions are still refused by `resolve` and purged when a
        // cap is reached; only memory is reclaimed later.
        tracing::warn!(%error, "could not start the session sweeper thread");
    }
    store
}
