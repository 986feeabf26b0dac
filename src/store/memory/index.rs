//! The id → slot index of one shard: open addressing with linear probing
//! over 8-byte entries.
//!
//! A look-up at a million sessions misses the cache on every structure it
//! touches, one after the other. A general hash table (`hashbrown`) keeps its
//! control bytes and its buckets apart: two dependent misses before the
//! session's slot is even known. Here an entry holds the slot number next to
//! 32 bits of the id, so one cache line answers where the slot is (probes
//! rarely leave it), and the slot is the only other memory touched.
//!
//! Ids are uniformly random, so their first four bytes are the hash: its low
//! bits pick the home position and all 32 are kept as the entry's tag, which
//! also lets the table grow without looking at the slots. Attackers choose
//! the ids they present but never the ids that are stored, so they cannot
//! build long probe runs. Removal shifts the following entries back (no
//! tombstones), so runs never outlive the sessions that made them.

use crate::SessionId;

/// The tag of an id: its first four bytes.
pub(super) fn tag(id: &SessionId) -> u32 {
    let b = id.as_bytes();
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// One position: a slot number plus one (zero marks an empty position, so a
/// new table is zeroed memory) and the tag of that slot's id.
#[derive(Clone, Copy, Default)]
struct Entry {
    tag: u32,
    slot_plus_one: u32,
}

/// Open-addressing index from id tags to slot numbers. The caller confirms a
/// tag match by comparing the slot's id, through the `is` closures.
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

    /// The position of the entry with `tag` whose slot satisfies `is`.
    fn position(&self, tag: u32, mut is: impl FnMut(u32) -> bool) -> Option<usize> {
        if self.entries.is_empty() {
            return None;
        }
        let mask = self.mask();
        let mut at = tag as usize & mask;
        loop {
            let entry = self.entries[at];
            if entry.slot_plus_one == 0 {
                return None;
            }
            if entry.tag == tag && is(entry.slot_plus_one - 1) {
                return Some(at);
            }
            at = (at + 1) & mask;
        }
    }

    /// The slot of the id with `tag` for which `is(slot)` holds.
    pub(super) fn find(&self, tag: u32, is: impl FnMut(u32) -> bool) -> Option<u32> {
        self.position(tag, is).map(|at| self.entries[at].slot_plus_one - 1)
    }

    /// Adds `slot` under `tag`; the caller knows the id is not indexed yet.
    /// `slot` must be below `u32::MAX`.
    pub(super) fn insert(&mut self, tag: u32, slot: u32) {
        debug_assert!(slot < u32::MAX);
        // At most three quarters full: a look-up then probes 2.5 entries on
        // average, an unknown id 8.5 (both within one or two cache lines).
        if (self.len + 1) * 4 > self.entries.len() * 3 {
            self.grow();
        }
        Self::place(&mut self.entries, Entry { tag, slot_plus_one: slot + 1 });
        self.len += 1;
    }

    fn place(entries: &mut [Entry], entry: Entry) {
        let mask = entries.len() - 1;
        let mut at = entry.tag as usize & mask;
        while entries[at].slot_plus_one != 0 {
            at = (at + 1) & mask;
        }
        entries[at] = entry;
    }

    fn grow(&mut self) {
        let capacity = (self.entries.len() * 2).max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.entries, vec![Entry::default(); capacity].into_boxed_slice());
        for entry in old.iter().filter(|entry| entry.slot_plus_one != 0) {
            Self::place(&mut self.entries, *entry);
        }
    }

    /// Removes the entry with `tag` whose slot satisfies `is`; its slot.
    pub(super) fn remove(&mut self, tag: u32, is: impl FnMut(u32) -> bool) -> Option<u32> {
        let mut hole = self.position(tag, is)?;
        let slot = self.entries[hole].slot_plus_one - 1;
        let mask = self.mask();
        // Backward shift: an entry further along the run moves into the hole
        // if the hole lies between its home and where it is now.
        let mut at = hole;
        loop {
            at = (at + 1) & mask;
            let entry = self.entries[at];
            if entry.slot_plus_one == 0 {
                break;
            }
            let home = entry.tag as usize & mask;
            if at.wrapping_sub(home) & mask >= at.wrapping_sub(hole) & mask {
                self.entries[hole] = entry;
                hole = at;
            }
        }
        self.entries[hole] = Entry::default();
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

    /// A deterministic stream of tags, with many colliding home positions.
    fn tags(n: usize, spread: u32) -> Vec<u32> {
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x as u32) % spread
            })
            .collect()
    }

    /// Inserts and removes against a `HashMap` model; slots are the keys, so
    /// equal tags (collisions) are told apart by the `is` closure.
    #[test]
    fn agrees_with_a_map_through_inserts_and_removals() {
        for spread in [16, 1 << 10, u32::MAX] {
            let tags = tags(5_000, spread);
            let mut index = Index::default();
            let mut model: HashMap<u32, u32> = HashMap::new();
            for (round, chunk) in tags.chunks(500).enumerate() {
                for (i, &tag) in chunk.iter().enumerate() {
                    let slot = (round * 500 + i) as u32;
                    index.insert(tag, slot);
                    model.insert(slot, tag);
                }
                // Remove every third slot present so far.
                let mut doomed: Vec<u32> = model.keys().copied().filter(|slot| slot % 3 == round as u32 % 3).collect();
                doomed.sort_unstable();
                for slot in doomed {
                    let tag = model.remove(&slot).unwrap();
                    assert_eq!(index.remove(tag, |s| s == slot), Some(slot));
                    assert_eq!(index.remove(tag, |s| s == slot), None, "removed twice");
                }
                assert_eq!(index.len(), model.len());
                for (&slot, &tag) in &model {
                    assert_eq!(index.find(tag, |s| s == slot), Some(slot), "spread {spread}, slot {slot} lost");
                }
            }
            assert!(index.len() * 4 <= index.capacity() * 3);
        }
    }

    #[test]
    fn an_absent_tag_is_not_found_in_a_full_run() {
        let mut index = Index::default();
        // Twelve entries all at home position 0 of a 16-entry table.
        for slot in 0..12 {
            index.insert(16 * slot, slot);
        }
        assert_eq!(index.capacity(), 16);
        assert_eq!(index.find(16 * 99, |_| true), None);
        assert_eq!(index.find(0, |s| s == 5), None, "a tag match the caller rejects is not a hit");
        assert_eq!(Index::default().find(0, |_| true), None);
    }

    #[test]
    fn removal_across_the_wrap_keeps_every_entry_reachable() {
        let mut index = Index::default();
        // Homes 14 and 15 of a 16-entry table, so runs wrap to 0, 1, 2.
        let entries = [(14, 0), (15, 1), (14, 2), (15, 3), (14, 4)];
        for (tag, slot) in entries {
            index.insert(tag, slot);
        }
        for (i, (tag, slot)) in entries.iter().enumerate() {
            assert_eq!(index.remove(*tag, |s| s == *slot), Some(*slot));
            for (tag, slot) in &entries[i + 1..] {
                assert_eq!(index.find(*tag, |s| s == *slot), Some(*slot));
            }
        }
        assert_eq!(index.len(), 0);
    }
}
