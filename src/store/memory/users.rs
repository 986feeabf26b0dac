//! The per-user side of the memory store: one shared `Principal` per user (so
//! a user's sessions share the name instead of copying it) and the count that
//! the per-user cap is checked against. Sharded by user name; never touched by
//! `resolve`.

use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use std::collections::HashMap;

use super::Padded;
use crate::Principal;
use crate::store::StoreErrorKind;

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

    /// Counts one more session for the principal's user and takes one place
    /// under the store's total cap (`total` sessions held of `max_total`), or
    /// neither; returns the shared principal. Both happen under the user's
    /// lock, so a create refused by one cap never holds a place under the
    /// other for a moment (which would make a concurrent create fail for
    /// nothing). A full store is reported before a full user.
    pub(super) fn admit(
        &self,
        principal: Principal,
        total: &AtomicU64,
        max_total: u64,
    ) -> Result<Arc<Principal>, (Principal, StoreErrorKind)> {
        let mut users = self.shard(principal.name()).lock();
        if total.load(Ordering::Acquire) >= max_total {
            return Err((principal, StoreErrorKind::TooManySessions));
        }
        if users.get(principal.name()).map_or(0, |entry| entry.sessions) >= self.max_per_user {
            return Err((principal, StoreErrorKind::TooManyUserSessions));
        }
        let reserved = total.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max_total).then_some(n + 1));
        if reserved.is_err() {
            return Err((principal, StoreErrorKind::TooManySessions));
        }
        match users.get_mut(principal.name()) {
            Some(entry) => {
                entry.sessions += 1;
                // A user whose groups changed gets a new shared principal;
                // older sessions keep the one they were created with.
                if *entry.principal != principal {
                    entry.principal = Arc::new(principal);
                }
                Ok(Arc::clone(&entry.principal))
            }
            None => {
                let shared = Arc::new(principal);
                let name: Box<str> = shared.name().into();
                users.insert(name, UserEntry { principal: Arc::clone(&shared), sessions: 1 });
                Ok(shared)
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

    pub(super) fn sessions_of(&self, user: &str) -> u64 {
        self.shard(user).lock().get(user).map_or(0, |entry| entry.sessions)
    }

    pub(super) fn count(&self) -> u64 {
        self.shards.iter().map(|shard| shard.0.lock().len() as u64).sum()
    }
}
