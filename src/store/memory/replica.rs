//! Per-thread copies of the stored principals, handed out by `resolve`.
//!
//! Every resolved session holds its principal for the request's lifetime: a
//! reference-count increment when it is resolved and a decrement when the
//! request ends. With one shared `Arc` per user, threads serving the same
//! user's requests take turns owning that count's cache line, which on two
//! cores cost a third of each request. Each thread instead keeps its own
//! copy (an equal `Principal`, its own count) of the principals it recently
//! handed out, in a small direct-mapped table.
//!
//! A table entry knows its stored principal by a `Weak` reference: while the
//! entry lives, that allocation cannot be freed and reused for another
//! principal, so the same address means the same principal (principals are
//! immutable). An entry whose stored principal was dropped is replaced on
//! its next use.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use crate::Principal;

/// Entries per thread.
const SLOTS: usize = 64;

struct Replica {
    stored: Weak<Principal>,
    local: Arc<Principal>,
}

thread_local! {
    static REPLICAS: RefCell<[Option<Replica>; SLOTS]> = const { RefCell::new([const { None }; SLOTS]) };
}

/// This thread's copy of `stored`, made on first use.
pub(super) fn of(stored: &Arc<Principal>) -> Arc<Principal> {
    let address = Arc::as_ptr(stored);
    let slot = ((address as usize as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SLOTS;
    REPLICAS
        .try_with(|replicas| {
            let mut replicas = replicas.borrow_mut();
            match &replicas[slot] {
                Some(replica) if replica.stored.as_ptr() == address && replica.stored.strong_count() > 0 => {
                    Arc::clone(&replica.local)
                }
                _ => {
                    let local = Arc::new(Principal::clone(stored));
                    replicas[slot] = Some(Replica { stored: Arc::downgrade(stored), local: Arc::clone(&local) });
                    local
                }
            }
        })
        // A thread being torn down: the stored principal itself.
        .unwrap_or_else(|_| Arc::clone(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_reuses_its_own_equal_copy() {
        let stored = Arc::new(Principal::new("alice").with_groups(["ops"]));
        let first = of(&stored);
        let second = of(&stored);
        assert!(Arc::ptr_eq(&first, &second), "a second copy on the same thread");
        assert!(!Arc::ptr_eq(&first, &stored), "the shared count is still touched");
        assert_eq!(*first, *stored);
        let elsewhere = std::thread::scope(|scope| scope.spawn(|| of(&stored)).join().unwrap());
        assert!(!Arc::ptr_eq(&elsewhere, &first), "two threads share one copy");
        assert_eq!(*elsewhere, *stored);
    }

    #[test]
    fn a_dropped_principal_is_never_mistaken_for_a_new_one() {
        for i in 0..1_000 {
            let stored = Arc::new(Principal::new(format!("user{i}")));
            assert_eq!(of(&stored).name(), format!("user{i}"));
            // Dropped here; the next one may be allocated anywhere, even in
            // the same place if the table no longer holds this one.
        }
    }
}
