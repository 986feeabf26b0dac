//! The memory store passes the store conformance suite.

use std::sync::Arc;

use tower_cis::MemoryStore;
use tower_cis::store::conformance::{Settings, StoreFactory};

struct Memory;

impl StoreFactory for Memory {
    type Store = MemoryStore;

    async fn build(&self, settings: Settings) -> MemoryStore {
        MemoryStore::builder()
            .policy(settings.policy)
            .clock(Arc::new(settings.clock))
            .max_sessions(settings.max_sessions)
            .max_sessions_per_user(settings.max_sessions_per_user)
            // The suite purges explicitly; no thread races its manual clock.
            .sweep_interval(None)
            .build()
    }

    async fn purge(&self, store: &MemoryStore) {
        store.purge_expired();
    }
}

tower_cis::store_conformance_tests!(Memory);
