//! The id → slot index of one shard: open addressing with linear probing
//! over 4-byte entries.
//!
//! A look-up at a million sessions misses the cache on every structure it
//! touches, one after the other. A general hash table (`hashbrown`) keeps its
//! control bytes and its buckets apart: two dependent misses before the
//! session's slot is even known. Here an entry holds the slot number next to
//! 8 bits of the id, so one cache line (16 entries) answers where the slot
//! is, and the slot is the only other memory touched. Small entries keep the
//! whole index of a million sessions (8 MiB) within reach of the caches.
//!
//! Ids are uniformly random, so their first eight bytes are the hash: its low
//! bits pick the home position and its top byte is the entry's tag. Attackers
//! choose the ids they present but never the ids that are stored, so they
//! cannot build long probe runs. Removal shifts the following entries back
//! (no tombstones), so runs never outlive the sessions that made them; moving
//! and growing need the home positions, which the caller's `hash_of` gives
//! from the slots.

use crate::SessionId;

/// The hash of an id: its first eight bytes.
pub(super) fn hash(id: &SessionId) -> u64 {
    let b = id.as_bytes();
    u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]])
}

/// The most slots an index can name.
pub(super) const MAX_SLOTS: u32 = (1 << 24) - 1;

/// One position: the slot number plus one in the low 24 bits (zero marks an
/// empty position, so a new table is zeroed memory) and the tag on top.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Entry(u32);

impl Entry {
    const EMPTY: Entry = Entry(0);

    fn new(hash: u64, slot: u32) -> Self {
        Entry(tag(hash) | (slot + 1))
    }

    fn slot(self) -> u32 {
        (self.0 & MAX_SLOTS) - 1
    }

    fn tag(self) -> u32 {
        self.0 & !MAX_SLOTS
    }
}

fn tag(hash: u64) -> u32 {
    ((hash >> 56) as u32) << 24
}

/// Open-addressing index from id hashes to slot numbers. The caller confirms
/// a tag match by comparing the slot's id, through the `is` closures.
#[derive(Default)]
pub(super) struct Index {
    entries: Box<[Entry]>,
    len: usize,
}

/// The smallest table allocated.
const MIN_CAPACITY: usize = 16;

impl Index {
    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.entries.len() - 1
    }

    /// The position of the entry with `hash` whose slot satisfies `is`.
    fn position(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let (mask, tag) = (self.mask(), tag(hash));
        let mut at = hash as usize & mask;
        loop {
            let entry = self.entries[at];
            if entry == Entry::EMPTY {
                return None;
            }
            if entry.tag() == tag && is(entry.slot()) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The slot of the id with `hash` for which `is(slot)` holds.
    pub(super) fn find(&self, hash: u64, is: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(hash, is).map(|at| self.entries[at].slot())
    }

    /// Adds `slot` (below [`MAX_SLOTS`]) under `hash`; the caller knows the id
    /// is not indexed yet. `hash_of` gives the hash of an indexed slot's id,
    /// for growing.
    pub(super) fn insert(&mut self, hash: u64, slot: u32, hash_of: impl Fn(u32) -> u64) {
        debug_assert!(slot < MAX_SLOTS);
        // At most three quarters full: a look-up then probes 2.5 entries on
        // average, an unknown id 8.5 (both mostly within one cache line).
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow(&hash_of);
        }
        Self::place(&mut self.entries, hash, Entry::new(hash, slot));
        self.len += 1;
    }

    fn place(entries: &mut [Entry], hash: u64, entry: Entry) {
        let mask = entries.len() - 1;
        let mut at = hash as usize & mask;
        while entries[at] != Entry::EMPTY {
            at = (at + 1) & mask;
        }
        entries[at] = entry;
    }

    fn grow(&mut self, hash_of: impl Fn(u32) -> u64) {
        let capacity = (self.entries.len() * 2).max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.entries, vec![Entry::EMPTY; capacity].into_boxed_slice());
        for entry in old.iter().filter(|entry| **entry != Entry::EMPTY) {
            Self::place(&mut self.entries, hash_of(entry.slot()), *entry);
        }
    }

    /// Removes the entry with `hash` whose slot satisfies `is`; its slot.
    /// `hash_of` gives the hash of an indexed slot's id.
    pub(super) fn remove(
        &mut self,
        hash: u64,
        is: impl FnMut(u32) -> bool,
        hash_of: impl Fn(u32) -> u64,
    ) -> Option<u32> {
        let mut hole = self.position(hash, is)?;
        let slot = self.entries[hole].slot();
        let mask = self.mask();
        // Backward shift: an entry further along the run moves into the hole
        // if the hole lies between its home and where it is now.
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let entry = self.entries[at];
            if entry == Entry::EMPTY {
                break;
            }
            let home = hash_of(entry.slot()) as usize & mask;
            if at.wrapping_sub(home) & mask >= at.wrapping_sub(hole) & mask {
                self.entries[hole] = entry;
                hole = at;
            }
        }
        self.entries[hole] = Entry::EMPTY;
        self.len -= 1;
        Some(slot)
    }

    /// Positions in the table.
    #[cfg(test)]
    fn capacity(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// A deterministic stream of hashes, with many colliding home positions
    /// (and tags) when `spread` is small.
    fn hashes(n: usize, spread: u64) -> Vec<u64> {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let h = x % spread;
                // Spread the low bits over the tag too, so that small spreads
                // also collide in tags.
                h | (h << 56)
            })
            .collect()
    }

    /// Inserts and removes against a `HashMap` model; slots are the keys, so
    /// equal hashes (collisions) are told apart by the `is` closure.
    #[test]
    fn agrees_with_a_map_through_inserts_and_removals() {
        for spread in [16, 1 << 10, u64::MAX] {
            let all = hashes(5_000, spread);
            let mut index = Index::default();
            let mut model: HashMap<u32, u64> = HashMap::new();
            let hash_of = |slot: u32| all[slot as usize];
            for (round, chunk) in all.chunks(500).enumerate() {
                for (i, &hash) in chunk.iter().enumerate() {
                    let slot = (round * 500 + i) as u32;
                    index.insert(hash, slot, hash_of);
                    model.insert(slot, hash);
                }
                // Remove every third slot present so far.
                let mut doomed: Vec<u32> = model.keys().copied().filter(|slot| slot % 3 == round as u32 % 3).collect();
                doomed.sort_unstable();
                for slot in doomed {
                    let hash = model.remove(&slot).unwrap();
                    assert_eq!(index.remove(hash, |s| s == slot, hash_of), Some(slot));
                    assert_eq!(index.remove(hash, |s| s == slot, hash_of), None, "removed twice");
                }
                assert_eq!(index.len(), model.len());
                for (&slot, &hash) in &model {
                    assert_eq!(index.find(hash, |s| s == slot), Some(slot), "spread {spread}, slot {slot} lost");
                }
            }
            assert!(index.len() * 4 <= index.capacity() * 3);
        }
    }

    #[test]
    fn an_absent_id_is_not_found_in_a_full_run() {
        let mut index = Index::default();
        // Twelve entries all at home position 0 of a 16-entry table, with
        // one tag.
        let hash_of = |slot: u32| u64::from(slot) * 16;
        for slot in 0..12 {
            index.insert(hash_of(slot), slot, hash_of);
        }
        assert_eq!(index.capacity(), 16);
        assert_eq!(index.find(16 * 99, |_| true), Some(0), "a tag match is the caller's to confirm");
        assert_eq!(index.find(16 * 99, |_| false), None);
        assert_eq!(index.find(1 << 60, |_| true), None, "another tag is not a match");
        assert_eq!(Index::default().find(0, |_| true), None);
    }

    #[test]
    fn removal_across_the_wrap_keeps_every_entry_reachable() {
        let mut index = Index::default();
        // Homes 14 and 15 of a 16-entry table, so runs wrap to 0, 1, 2.
        let homes = [14, 15, 14, 15, 14];
        let hash_of = |slot: u32| homes[slot as usize];
        for slot in 0..5 {
            index.insert(hash_of(slot), slot, hash_of);
        }
        for slot in 0..5 {
            assert_eq!(index.remove(hash_of(slot), |s| s == slot, hash_of), Some(slot));
            for rest in slot + 1..5 {
                assert_eq!(index.find(hash_of(rest), |s| s == rest), Some(rest));
            }
        }
        assert_eq!(index.len(), 0);
    }

    #[test]
    fn the_slot_number_and_the_tag_do_not_overlap() {
        let entry = Entry::new(u64::MAX, MAX_SLOTS - 1);
        assert_eq!(entry.slot(), MAX_SLOTS - 1);
        assert_eq!(entry.tag(), 0xff00_0000);
        assert_eq!(Entry::new(0, 0).slot(), 0);
        assert_ne!(Entry::new(0, 0), Entry::EMPTY);
    }
}
