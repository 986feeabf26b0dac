//! Per-thread copies of the stored principals, handed out by `resolve`.
//!
//! Every resolved session holds its principal for the request's lifetime: a
//! reference-count increment when it is resolved and a decrement when the
//! request ends. With one shared `Arc` per user, threads serving the same
//! user's requests take turns owning that count's cache line, which on two
//! cores cost a third of each request. Each thread instead keeps its own
//! copy (an equal `Principal`, its own count) of the principals it hands out
//! again and again, in a small direct-mapped table.
//!
//! A copy costs allocations, so it is made only for a principal seen twice
//! in a row in its table entry: requests spread over many users keep using
//! the stored principals (whose counts they rarely share), and a busy user's
//! requests get a copy from their second on.
//!
//! A table entry knows its stored principal by a `Weak` reference: while the
//! entry lives, that allocation cannot be freed and reused for another
//! principal, so the same address means the same principal (principals are
//! immutable). A principal dropped by the store is never at that address
//! again, so its entry matches no look-up and is replaced by the next
//! principal that needs it.

use std::cell::RefCell;
use std::sync::{Arc, Weak};

use crate::Principal;

/// Entries per thread.
const SLOTS: usize = 64;

enum Entry {
    Empty,
    /// The address of the principal handed out last from this entry, not
    /// copied (yet).
    Seen(usize),
    /// This thread's copy of a stored principal.
    Copied {
        stored: Weak<Principal>,
        local: Arc<Principal>,
    },
}

thread_local! {
    static REPLICAS: RefCell<[Entry; SLOTS]> = const { RefCell::new([const { Entry::Empty }; SLOTS]) };
}

/// This thread's copy of `stored`, made on first use.
pub(super) fn of(stored: &Arc<Principal>) -> Arc<Principal> {
    let address = Arc::as_ptr(stored);
    let slot = ((address as usize as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 58) as usize % SLOTS;
    REPLICAS
        .try_with(|replicas| {
            let entry = &mut replicas.borrow_mut()[slot];
            match entry {
                Entry::Copied { stored: copied, local } if copied.as_ptr() == address => Arc::clone(local),
                // Seen twice in a row (an address reused since only makes
                // the copy one request early: it is made from `stored`).
                Entry::Seen(seen) if *seen == address as usize => {
                    let local = Arc::new(Principal::clone(stored));
                    *entry = Entry::Copied { stored: Arc::downgrade(stored), local: Arc::clone(&local) };
                    local
                }
                _ => {
                    *entry = Entry::Seen(address as usize);
                    Arc::clone(stored)
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
    fn a_principal_handed_out_again_and_again_gets_a_copy_of_this_threads_own() {
        let stored = Arc::new(Principal::new("alice").with_groups(["ops"]));
        assert!(Arc::ptr_eq(&of(&stored), &stored), "copied on first sight");
        let first = of(&stored);
        let second = of(&stored);
        assert!(Arc::ptr_eq(&first, &second), "a second copy on the same thread");
        assert!(!Arc::ptr_eq(&first, &stored), "the shared count is still touched");
        assert_eq!(*first, *stored);
        let elsewhere = std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    of(&stored);
                    of(&stored)
                })
                .join()
                .unwrap()
        });
        assert!(!Arc::ptr_eq(&elsewhere, &first), "two threads share one copy");
        assert_eq!(*elsewhere, *stored);
    }

    #[test]
    fn principals_taking_turns_keep_the_stored_ones() {
        let users: Vec<_> = (0..SLOTS * 4).map(|i| Arc::new(Principal::new(format!("user{i}")))).collect();
        let mut copies = 0;
        for _ in 0..3 {
            copies = users.iter().filter(|user| !Arc::ptr_eq(&of(user), user)).count();
        }
        // Only a user alone in its table entry is seen twice in a row (about
        // 2 % of them).
        assert!(copies < users.len() / 8, "{copies} of {} users got copies", users.len());
    }

    #[test]
    fn a_dropped_principal_is_never_mistaken_for_a_new_one() {
        for i in 0..1_000 {
            let stored = Arc::new(Principal::new(format!("user{i}")));
            for _ in 0..3 {
                assert_eq!(of(&stored).name(), format!("user{i}"));
            }
            // Dropped here; the next one may be allocated anywhere, even in
            // the same place if the table no longer holds this one.
        }
    }
}
