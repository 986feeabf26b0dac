//! The per-user side of the memory store: one shared `Principal` per user (so
//! a user's sessions share the name instead of copying it) and the count that
//! the per-user cap is checked against. Sharded by user name; never touched by
//! `resolve`.

use std::hash::BuildHasher;
use std::sync::Arc;

use parking_lot::Mutex;
use std::collections::HashMap;

use super::Padded;
use crate::Principal;

struct UserEntry {
    principal: Arc<Principal>,
    sessions: u64,
}

type UserShard = Mutex<HashMap<Box<str>, UserEntry>>;

pub(super) struct Users {
    shards: Box<[Padded<UserShard>]>,
    hasher: std::collections::hash_map::RandomState,
    max_per_user: u64,
}

impl Users {
    pub(super) fn new(shard_count: usize, max_per_user: u64) -> Self {
        Users {
            shards: (0..shard_count).map(|_| Padded(Mutex::new(HashMap::new()))).collect(),
            hasher: std::collections::hash_map::RandomState::new(),
            max_per_user,
        }
    }

    fn shard(&self, name: &str) -> &UserShard {
        let index = self.hasher.hash_one(name) as usize % self.shards.len();
        &self.shards[index].0
    }

    /// Counts one more session for the principal's user and returns the shared
    /// principal; `None` when the user is at the cap.
    pub(super) fn admit(&self, principal: Principal) -> Option<Arc<Principal>> {
        let mut users = self.shard(principal.name()).lock();
        match users.get_mut(principal.name()) {
            Some(entry) => {
                if entry.sessions >= self.max_per_user {
                    return None;
                }
                entry.sessions += 1;
                // A user whose groups changed gets a new shared principal;
                // older sessions keep the one they were created with.
                if *entry.principal != principal {
                    entry.principal = Arc::new(principal);
                }
                Some(Arc::clone(&entry.principal))
            }
            None => {
                if self.max_per_user == 0 {
                    return None;
                }
                let shared = Arc::new(principal);
                let name: Box<str> = shared.name().into();
                users.insert(name, UserEntry { principal: Arc::clone(&shared), sessions: 1 });
                Some(shared)
            }
        }
    }

    /// Counts one session less for `user`, forgetting users with none left.
    pub(super) fn release(&self, user: &str) {
        let mut users = self.shard(user).lock();
        if let Some(entry) = users.get_mut(user) {
            entry.sessions = entry.sessions.saturating_sub(1);
            if entry.sessions == 0 {
                users.remove(user);
            }
        }
    }

    pub(super) fn max_per_user(&self) -> u64 {
        self.max_per_user
    }

    pub(super) fn sessions_of(&self, user: &str) -> u64 {
        self.shard(user).lock().get(user).map_or(0, |entry| entry.sessions)
    }

    pub(super) fn count(&self) -> u64 {
        self.shards.iter().map(|shard| shard.0.lock().len() as u64).sum()
    }
}
