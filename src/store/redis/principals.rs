//! One shared `Principal` per user name, so that resolving a session neither
//! parses its groups nor allocates when the user's groups have not changed.
//!
//! Bounded: sharded maps of at most `PER_SHARD` users each; a full shard is
//! emptied and refilled by use.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use parking_lot::RwLock;

use crate::Principal;
use crate::store::StoreError;

const SHARDS: usize = 16;
const PER_SHARD: usize = 256;

struct Interned {
    /// The groups as the record stores them (a JSON array).
    groups: Box<[u8]>,
    principal: Arc<Principal>,
}

type Shard = RwLock<HashMap<Box<[u8]>, Interned>>;

pub(super) struct Principals {
    shards: Box<[Shard]>,
    hasher: RandomState,
}

impl Principals {
    pub(super) fn new() -> Self {
        Principals { shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(), hasher: RandomState::new() }
    }

    fn shard(&self, name: &[u8]) -> &Shard {
        &self.shards[self.hasher.hash_one(name) as usize % SHARDS]
    }

    fn cached(&self, name: &[u8], groups: &[u8]) -> Option<Arc<Principal>> {
        let shard = self.shard(name).read();
        let interned = shard.get(name)?;
        (*interned.groups == *groups).then(|| Arc::clone(&interned.principal))
    }

    /// The principal of a stored record: its name and encoded groups.
    pub(super) fn decode(&self, name: &[u8], groups: &[u8]) -> Result<Arc<Principal>, StoreError> {
        if let Some(principal) = self.cached(name, groups) {
            return Ok(principal);
        }
        let corrupt = || StoreError::unavailable("a session record in Redis is malformed");
        let user = std::str::from_utf8(name).map_err(|_| corrupt())?;
        let list: Vec<Box<str>> = serde_json::from_slice(groups).map_err(|_| corrupt())?;
        Ok(self.remember(name, groups, Principal::new(user).with_groups(list)))
    }

    /// The shared principal for a new session of `principal`, whose groups
    /// encode as `groups`.
    pub(super) fn intern(&self, principal: Principal, groups: &[u8]) -> Arc<Principal> {
        let name = principal.name().as_bytes();
        match self.cached(name, groups) {
            Some(shared) => shared,
            None => {
                let name: Box<[u8]> = name.into();
                self.remember(&name, groups, principal)
            }
        }
    }

    fn remember(&self, name: &[u8], groups: &[u8], principal: Principal) -> Arc<Principal> {
        let mut shard = self.shard(name).write();
        if let Some(interned) = shard.get(name) {
            if *interned.groups == *groups {
                return Arc::clone(&interned.principal);
            }
        } else if shard.len() >= PER_SHARD {
            shard.clear();
        }
        let principal = Arc::new(principal);
        shard.insert(name.into(), Interned { groups: groups.into(), principal: Arc::clone(&principal) });
        principal
    }
}

/// The groups of `principal` as a record stores them: a JSON array.
pub(super) fn encode_groups(principal: &Principal) -> String {
    let groups: Vec<&str> = principal.groups().collect();
    serde_json::to_string(&groups).unwrap_or_else(|_| String::from("[]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_groups_share_one_principal_and_changed_groups_get_a_new_one() {
        let principals = Principals::new();
        let alice = Principal::new("alice").with_groups(["a\"b", "c\nd"]);
        let groups = encode_groups(&alice);
        let created = principals.intern(alice.clone(), groups.as_bytes());
        let resolved = principals.decode(b"alice", groups.as_bytes()).unwrap();
        assert!(Arc::ptr_eq(&created, &resolved));
        assert_eq!(*resolved, alice);
        let changed = principals.decode(b"alice", b"[\"e\"]").unwrap();
        assert!(changed.is_member_of("e") && !changed.is_member_of("a\"b"));
        assert!(principals.decode(b"alice", b"not json").is_err());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let principals = Principals::new();
        for i in 0..SHARDS * PER_SHARD * 3 {
            principals.decode(format!("user{i}").as_bytes(), b"[]").unwrap();
        }
        let held: usize = principals.shards.iter().map(|shard| shard.read().len()).sum();
        assert!(held <= SHARDS * PER_SHARD);
    }
}
