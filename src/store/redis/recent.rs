//! Sessions this instance saw refreshed lately, so that a session used again
//! within the refresh granularity costs a plain `GET` instead of the
//! resolve script.
//!
//! An entry says: at `confirmed` (by the store's clock), Redis recorded this
//! session's last access as `confirmed` or later. The last access only
//! grows, so until `confirmed + granularity` (less than the idle timeout) the
//! session cannot have idled out, and a `GET` that finds the record is enough:
//! it sees a delete or an expiry by any instance (the key is gone) and the
//! absolute deadline (in the record). What the `GET` does not do is move the
//! last access: Redis records it at most one granularity late.
//!
//! Bounded: sharded maps of at most `PER_SHARD` entries each. A shard drops
//! its entries past the granularity whenever it has doubled since it last
//! did (so it holds about twice the sessions refreshed within a
//! granularity), and while it is full, new sessions are not remembered
//! (they take the script, as without this).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use ::redis::Cmd;
use parking_lot::RwLock;

use crate::SessionId;

const SHARDS: usize = 16;
const PER_SHARD: usize = 4_096;
/// The size at which an empty shard first drops stale entries.
const FIRST_SWEEP: usize = 64;

struct Confirmed {
    /// The session's key in Redis.
    key: Box<str>,
    /// When Redis's last access was known to be this late (ms).
    at: u64,
}

/// Ids are uniformly random, so their bits are the hash. Attackers choose
/// the ids they present, but only ids Redis holds are ever stored here.
#[derive(Default)]
struct IdBits(u64);

impl Hasher for IdBits {
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(byte);
        }
    }

    fn write_u128(&mut self, bits: u128) {
        self.0 = bits as u64;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type ByIdBits = BuildHasherDefault<IdBits>;

/// Sessions by their id's bits.
struct Entries {
    map: HashMap<u128, Confirmed, ByIdBits>,
    /// At this size, drop the stale entries.
    sweep_at: usize,
}

type Shard = RwLock<Entries>;

fn bits(id: &SessionId) -> u128 {
    u128::from_le_bytes(*id.as_bytes())
}

pub(super) struct Recent {
    shards: Box<[Shard]>,
    granularity_ms: u64,
}

impl Recent {
    /// Remembers sessions for `granularity_ms`; zero remembers none.
    pub(super) fn new(granularity_ms: u64) -> Self {
        let shards = if granularity_ms == 0 { 0 } else { SHARDS };
        let empty = || RwLock::new(Entries { map: HashMap::default(), sweep_at: FIRST_SWEEP });
        Recent { shards: (0..shards).map(|_| empty()).collect(), granularity_ms }
    }

    fn shard(&self, id: &SessionId) -> Option<&Shard> {
        match self.shards.len() {
            0 => None,
            // The top bits: the map's buckets use the low ones.
            shards => Some(&self.shards[(bits(id) >> 120) as usize % shards]),
        }
    }

    fn fresh(&self, confirmed: &Confirmed, now: u64) -> bool {
        now.saturating_sub(confirmed.at) < self.granularity_ms
    }

    /// A `GET` of the session's record, if its last access was recorded less
    /// than the granularity before `now`.
    pub(super) fn read(&self, id: &SessionId, now: u64) -> Option<Cmd> {
        let shard = self.shard(id)?.read();
        let confirmed = shard.map.get(&bits(id)).filter(|confirmed| self.fresh(confirmed, now))?;
        let mut get = Cmd::with_capacity(2, 3 + confirmed.key.len());
        get.arg("GET").arg(&*confirmed.key);
        Some(get)
    }

    /// Redis recorded the session's last access as `now` or later.
    pub(super) fn confirm(&self, id: SessionId, key: &str, now: u64) {
        let Some(shard) = self.shard(&id) else { return };
        let mut shard = shard.write();
        let Entries { map, sweep_at } = &mut *shard;
        if let Some(confirmed) = map.get_mut(&bits(&id)) {
            confirmed.at = confirmed.at.max(now);
            return;
        }
        if map.len() >= *sweep_at {
            map.retain(|_, confirmed| self.fresh(confirmed, now));
            *sweep_at = (map.len() * 2).clamp(FIRST_SWEEP, PER_SHARD);
            if map.len() >= PER_SHARD {
                return;
            }
        }
        map.insert(bits(&id), Confirmed { key: key.into(), at: now });
    }

    /// The session is gone (deleted, expired, or not found).
    pub(super) fn forget(&self, id: &SessionId) {
        if let Some(shard) = self.shard(id) {
            shard.write().map.remove(&bits(id));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.read().map.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> SessionId {
        SessionId::generate().unwrap()
    }

    fn key_of(command: &Cmd) -> Vec<u8> {
        match command.args_iter().nth(1) {
            Some(::redis::Arg::Simple(key)) => key.to_vec(),
            _ => panic!("no key"),
        }
    }

    #[test]
    fn a_session_is_read_plainly_only_within_the_granularity() {
        let recent = Recent::new(1_000);
        let session = id();
        assert!(recent.read(&session, 5_000).is_none(), "never confirmed");
        recent.confirm(session, "p:s:{abc}", 5_000);
        assert_eq!(key_of(&recent.read(&session, 5_999).unwrap()), b"p:s:{abc}");
        assert!(recent.read(&session, 6_000).is_none(), "a granularity later");
        assert!(recent.read(&session, 4_000).is_some(), "a clock that stepped back");
        recent.confirm(session, "p:s:{abc}", 5_800);
        assert!(recent.read(&session, 6_700).is_some(), "confirmed again");
        recent.forget(&session);
        assert!(recent.read(&session, 5_000).is_none(), "forgotten");
    }

    #[test]
    fn a_zero_granularity_remembers_nothing() {
        let recent = Recent::new(0);
        let session = id();
        recent.confirm(session, "k", 1);
        assert!(recent.read(&session, 1).is_none());
        assert_eq!(recent.len(), 0);
    }

    #[test]
    fn stale_entries_go_as_new_ones_come() {
        let recent = Recent::new(1_000);
        // A steady 100 new sessions per granularity, for 100 granularities.
        for step in 0..10_000u64 {
            recent.confirm(id(), "k", step * 10);
        }
        assert!(recent.len() < 2 * SHARDS * FIRST_SWEEP + 200, "{} entries held", recent.len());
    }

    #[test]
    fn it_stays_bounded_and_makes_room_from_stale_entries() {
        let recent = Recent::new(1_000);
        for _ in 0..SHARDS * PER_SHARD * 2 {
            recent.confirm(id(), "k", 0);
        }
        assert!(recent.len() <= SHARDS * PER_SHARD);
        // A granularity later every entry is stale: new ones find room.
        let late = id();
        recent.confirm(late, "k", 1_000);
        assert!(recent.read(&late, 1_000).is_some());
    }
}
