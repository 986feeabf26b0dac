//! One shard of the memory store: a slab of session records, an index from id
//! to slot, and an expiry wheel that tells the sweeper which slots to look at.
//!
//! Readers (`resolve`) take the shard's read lock and touch only the slot's
//! atomic last-access time; writers (create, delete, sweep) take the write
//! lock. The index stores 3-byte slot numbers with a byte of the id, and the
//! slot holds the id, so a session costs one slot plus 5 to 11 bytes of
//! index.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::index::{Index, MAX_SLOTS, hash};
use super::replica;

use crate::{ExpiryPolicy, Principal, Session, SessionId, Timestamp};

/// The last-access value of a session seen expired: no refresh moves it
/// (`fetch_max` keeps it) and every look-up answers expired.
const EXPIRED: u64 = u64::MAX;

/// One session record. A vacant slot has no principal.
struct Slot {
    id: SessionId,
    principal: Option<Arc<Principal>>,
    created: Timestamp,
    deadline: Timestamp,
    last_access: AtomicU64,
    /// The wheel bucket this slot is filed under; entries of other buckets
    /// that name this slot are stale and skipped.
    due: u64,
}

/// What an insert did.
pub(super) enum Insert {
    Done,
    /// Another session has this id; nothing changed.
    IdTaken,
    /// The shard has no slot number left; nothing changed.
    ShardFull,
}

/// What a look-up found.
pub(super) enum Lookup {
    Active(Session),
    Expired,
    Unknown,
}

#[derive(Default)]
pub(super) struct Shard {
    index: Index,
    slots: Vec<Slot>,
    vacant: Vec<u32>,
    /// Bucket time (ms, a multiple of the granularity) → slots to check then.
    wheel: BTreeMap<u64, Vec<u32>>,
}

impl Shard {
    fn find(&self, id: &SessionId) -> Option<u32> {
        let slots = &self.slots;
        self.index.find(hash(id), |i| slots[i as usize].id == *id)
    }

    pub(super) fn len(&self) -> usize {
        self.index.len()
    }

    pub(super) fn contains(&self, id: &SessionId) -> bool {
        self.find(id).is_some()
    }

    /// Looks up `id` at `now` and refreshes its idle timer if it is active.
    /// Takes `&self`: the refresh is an atomic store on the slot.
    pub(super) fn resolve(&self, id: &SessionId, now: Timestamp, policy: &ExpiryPolicy) -> Lookup {
        let Some(index) = self.find(id) else { return Lookup::Unknown };
        let slot = &self.slots[index as usize];
        let Some(principal) = &slot.principal else { return Lookup::Unknown };
        let mut raw = slot.last_access.load(Ordering::Acquire);
        let last = loop {
            if raw == EXPIRED {
                return Lookup::Expired;
            }
            let last = Timestamp::from_millis(raw);
            if now < policy.expiry(last, slot.deadline) {
                break last;
            }
            // An expiry once seen is final: a clock that steps back later
            // must not revive the session. If a request refreshed it in time
            // meanwhile, look again with that refresh.
            match slot.last_access.compare_exchange(raw, EXPIRED, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Lookup::Expired,
                Err(current) => raw = current,
            }
        };
        // Write only when the millisecond moved: concurrent requests on one
        // session then mostly read a shared cache line instead of bouncing it.
        let last_accessed = if now > last {
            let previous = slot.last_access.fetch_max(now.as_millis(), Ordering::AcqRel);
            if previous == EXPIRED {
                return Lookup::Expired;
            }
            now.max(Timestamp::from_millis(previous))
        } else {
            last
        };
        Lookup::Active(Session::new(*id, replica::of(principal), slot.created, last_accessed, slot.deadline))
    }

    /// Inserts a new session, never over an existing one.
    pub(super) fn insert(&mut self, session: &Session, due: u64) -> Insert {
        if self.contains(session.id()) {
            return Insert::IdTaken;
        }
        let slot = Slot {
            id: *session.id(),
            principal: Some(Arc::clone(session.principal())),
            created: session.created(),
            deadline: session.deadline(),
            last_access: AtomicU64::new(session.last_accessed().as_millis()),
            due,
        };
        let index = match self.vacant.pop() {
            Some(index) => {
                self.slots[index as usize] = slot;
                index
            }
            None => {
                let index = match u32::try_from(self.slots.len()) {
                    Ok(index) if index < MAX_SLOTS => index,
                    _ => return Insert::ShardFull,
                };
                self.slots.push(slot);
                index
            }
        };
        let slots = &self.slots;
        self.index.insert(hash(session.id()), index, |i| hash(&slots[i as usize].id));
        self.wheel.entry(due).or_default().push(index);
        Insert::Done
    }

    /// Removes the session; its principal, if it was there.
    pub(super) fn remove(&mut self, id: &SessionId) -> Option<Arc<Principal>> {
        let slots = &self.slots;
        let index = self.index.remove(hash(id), |i| slots[i as usize].id == *id, |i| hash(&slots[i as usize].id))?;
        self.vacate(index)
    }

    fn vacate(&mut self, index: u32) -> Option<Arc<Principal>> {
        let principal = self.slots[index as usize].principal.take();
        self.vacant.push(index);
        principal
    }

    /// The earliest wheel bucket, if any.
    pub(super) fn next_due(&self) -> Option<u64> {
        self.wheel.keys().next().copied()
    }

    /// Removes every session that has expired at `now`, looking only at the
    /// slots filed under buckets that are due; slots that were used since are
    /// filed again under their new expiry. Pushes the principals of removed
    /// sessions onto `removed`; returns how many slots it examined.
    pub(super) fn sweep(
        &mut self,
        now: Timestamp,
        policy: &ExpiryPolicy,
        granularity: u64,
        removed: &mut Vec<Arc<Principal>>,
    ) -> u64 {
        let mut examined = 0;
        // Slots whose expiry falls in the bucket that is due now but lies a
        // little ahead: filed again after the loop, looked at next time.
        let mut not_yet = Vec::new();
        while let Some(entry) = self.wheel.first_entry() {
            if *entry.key() > now.as_millis() {
                break;
            }
            let (bucket, due_slots) = entry.remove_entry();
            for index in due_slots {
                let slot = &mut self.slots[index as usize];
                if slot.principal.is_none() || slot.due != bucket {
                    continue;
                }
                examined += 1;
                let raw = *slot.last_access.get_mut();
                let expiry = match raw {
                    EXPIRED => now,
                    raw => policy.expiry(Timestamp::from_millis(raw), slot.deadline),
                };
                if expiry <= now {
                    let id = slot.id;
                    if let Some(principal) = self.remove(&id) {
                        removed.push(principal);
                    }
                } else {
                    slot.due = due_bucket(expiry, granularity);
                    if slot.due <= now.as_millis() {
                        not_yet.push(index);
                    } else {
                        self.wheel.entry(slot.due).or_default().push(index);
                    }
                }
            }
        }
        for index in not_yet {
            let due = self.slots[index as usize].due;
            self.wheel.entry(due).or_default().push(index);
        }
        examined
    }
}

/// The wheel bucket for an expiry: the granularity step it falls in.
pub(super) fn due_bucket(expiry: Timestamp, granularity: u64) -> u64 {
    expiry.as_millis() / granularity * granularity
}
