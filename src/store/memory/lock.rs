//! The lock of one shard, built so that readers on different threads write
//! different cache lines.
//!
//! Every `resolve` takes its shard's read lock. With one lock word per
//! shard, two cores resolving sessions of the same shard keep pulling that
//! word's cache line from each other, and a store shared by every core of a
//! server scales poorly. `crossbeam_utils::sync::ShardedLock` gives each
//! thread (by a per-thread index) a lock of its own to read under; a writer
//! (create, delete, sweep) takes them all, which costs creates a little.

use std::sync::PoisonError;

use crossbeam_utils::sync::{ShardedLock, ShardedLockReadGuard, ShardedLockWriteGuard};

/// A reader-sharded lock around one shard of the store.
pub(super) struct ShardLock<T>(ShardedLock<T>);

impl<T> ShardLock<T> {
    pub(super) fn new(value: T) -> Self {
        ShardLock(ShardedLock::new(value))
    }

    /// Shared access. The store never panics while it holds a lock; should
    /// that change, a poisoned lock still serves its (consistent) data.
    pub(super) fn read(&self) -> ShardedLockReadGuard<'_, T> {
        self.0.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Exclusive access.
    pub(super) fn write(&self) -> ShardedLockWriteGuard<'_, T> {
        self.0.write().unwrap_or_else(PoisonError::into_inner)
    }
}
