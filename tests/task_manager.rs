//! TaskManager over the in-memory task store: lifecycle, cancel, ownership,
//! retention, caps, filters and many tasks at once (the shared cases of
//! `task_suite`, which the Redis task store runs too).

#[macro_use]
mod task_suite;

use std::sync::Arc;
use std::time::Duration;

use task_suite::TaskStoreFactory;
use tower_cis::ManualClock;
use tower_cis::tasks::MemoryTaskStore;

struct Memory;

impl TaskStoreFactory for Memory {
    type Store = MemoryTaskStore;

    async fn build(&self, retention: Duration, max_tasks: usize, clock: ManualClock) -> MemoryTaskStore {
        MemoryTaskStore::new(retention, max_tasks, Arc::new(clock))
    }
}

task_manager_tests!(Memory);
