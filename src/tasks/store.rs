//! Where tasks live: the `TaskStore` trait and the in-memory store.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use tokio::sync::watch;

use super::{FilterSpec, MAX_LIST_RESULTS, Refused, TaskId, TaskInfo, Transition};
use crate::clock::SharedClock;
use crate::{StoreError, StoreErrorKind, SystemClock, Timestamp};

/// What [`TaskStore::apply`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The transition took effect.
    Done,
    /// The rules refused it; nothing changed.
    Refused(Refused),
    /// No such task (never started, or finished and no longer retained).
    NotFound,
}

/// Where tasks live. Every change goes through [`TaskStore::apply`], which
/// applies the status rules atomically, so a cancel racing a completion has
/// exactly one winner, on every instance sharing the store.
pub trait TaskStore: Clone + Send + Sync + 'static {
    /// Adds a new task. Fails with `TooManyTasks` when the store is full of
    /// tasks that are still running.
    fn insert(&self, task: TaskInfo) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The task, if it is retained.
    fn get(&self, id: &TaskId) -> impl Future<Output = Result<Option<TaskInfo>, StoreError>> + Send;

    /// Tasks matching `filter` (ownership is checked by the caller): at most
    /// [`MAX_LIST_RESULTS`] + 1, so the caller can tell there were too many.
    fn list(&self, filter: &FilterSpec) -> impl Future<Output = Result<Vec<TaskInfo>, StoreError>> + Send;

    /// Applies `transition` at `now` by the rules of [`TaskInfo::apply`].
    fn apply(
        &self,
        id: &TaskId,
        transition: Transition,
        now: Timestamp,
    ) -> impl Future<Output = Result<Applied, StoreError>> + Send;

    /// Resolves once the task has been cancelled, wherever the cancel came
    /// from; never, if it is not.
    fn cancelled(&self, id: &TaskId) -> impl Future<Output = ()> + Send + 'static;
}

/// Tasks in this process's memory.
///
/// Progress updates lock only their own task; finished tasks are kept for
/// the retention time (default 24 hours, like vCenter) and removed without
/// scanning the running ones; when the cap is reached the oldest finished
/// tasks make room, and a store full of running tasks refuses new ones.
#[derive(Clone)]
pub struct MemoryTaskStore {
    inner: Arc<Inner>,
}

struct Inner {
    shards: Box<[Shard]>,
    hasher: std::collections::hash_map::RandomState,
    /// Finished tasks by the time they are forgotten.
    expiry: Mutex<BTreeSet<(Timestamp, TaskId)>>,
    retention: Duration,
    max_tasks: usize,
    clock: SharedClock,
}

type Shard = RwLock<HashMap<TaskId, Arc<Cell>>>;

struct Cell {
    info: Mutex<TaskInfo>,
    cancelled: watch::Sender<bool>,
}

impl std::fmt::Debug for MemoryTaskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryTaskStore")
            .field("retention", &self.inner.retention)
            .field("max_tasks", &self.inner.max_tasks)
            .finish_non_exhaustive()
    }
}

impl Default for MemoryTaskStore {
    fn default() -> Self {
        Self::new(Duration::from_secs(24 * 60 * 60), 100_000, Arc::new(SystemClock))
    }
}

impl MemoryTaskStore {
    /// A store that keeps finished tasks for `retention`, holds at most
    /// `max_tasks`, and reads time from `clock`.
    pub fn new(retention: Duration, max_tasks: usize, clock: SharedClock) -> Self {
        MemoryTaskStore {
            inner: Arc::new(Inner {
                shards: (0..16).map(|_| RwLock::new(HashMap::new())).collect(),
                hasher: Default::default(),
                expiry: Mutex::new(BTreeSet::new()),
                retention,
                max_tasks: max_tasks.max(1),
                clock,
            }),
        }
    }

    fn shard(&self, id: &TaskId) -> &Shard {
        let index = self.inner.hasher.hash_one(id) as usize % self.inner.shards.len();
        &self.inner.shards[index]
    }

    fn cell(&self, id: &TaskId) -> Option<Arc<Cell>> {
        self.shard(id).read().get(id).cloned()
    }

    fn len(&self) -> usize {
        self.inner.shards.iter().map(|shard| shard.read().len()).sum()
    }

    /// Forgets finished tasks whose retention has passed; returns how many.
    pub fn purge_expired(&self) -> usize {
        let now = self.inner.clock.now();
        let mut forgotten = 0;
        loop {
            let due = {
                let mut expiry = self.inner.expiry.lock();
                match expiry.first() {
                    Some((at, _)) if *at <= now => expiry.pop_first(),
                    _ => None,
                }
            };
            let Some((_, id)) = due else { return forgotten };
            self.shard(&id).write().remove(&id);
            forgotten += 1;
        }
    }

    /// Forgets the finished task that would be forgotten first; `false` if
    /// no task has finished.
    fn evict_oldest_finished(&self) -> bool {
        let oldest = self.inner.expiry.lock().pop_first();
        match oldest {
            Some((_, id)) => {
                self.shard(&id).write().remove(&id);
                true
            }
            None => false,
        }
    }
}

impl TaskStore for MemoryTaskStore {
    async fn insert(&self, task: TaskInfo) -> Result<(), StoreError> {
        self.purge_expired();
        while self.len() >= self.inner.max_tasks {
            if !self.evict_oldest_finished() {
                return Err(StoreError::new(StoreErrorKind::TooManyTasks, "the task store is full of running tasks"));
            }
        }
        let id = task.id.clone();
        let (cancelled, _) = watch::channel(false);
        let cell = Arc::new(Cell { info: Mutex::new(task), cancelled });
        self.shard(&id).write().insert(id, cell);
        Ok(())
    }

    async fn get(&self, id: &TaskId) -> Result<Option<TaskInfo>, StoreError> {
        self.purge_expired();
        Ok(self.cell(id).map(|cell| cell.info.lock().clone()))
    }

    async fn list(&self, filter: &FilterSpec) -> Result<Vec<TaskInfo>, StoreError> {
        self.purge_expired();
        let mut found = Vec::new();
        let mut take = |cell: &Cell| {
            let info = cell.info.lock();
            if filter.matches(&info) {
                found.push(info.clone());
            }
            found.len() > MAX_LIST_RESULTS
        };
        if let Some(ids) = filter.task_ids() {
            for id in ids {
                if let Some(cell) = self.cell(&id)
                    && take(&cell)
                {
                    break;
                }
            }
        } else {
            'shards: for shard in self.inner.shards.iter() {
                for cell in shard.read().values() {
                    if take(cell) {
                        break 'shards;
                    }
                }
            }
        }
        Ok(found)
    }

    async fn apply(&self, id: &TaskId, transition: Transition, now: Timestamp) -> Result<Applied, StoreError> {
        let Some(cell) = self.cell(id) else { return Ok(Applied::NotFound) };
        let cancel = transition == Transition::Cancel;
        let mut info = cell.info.lock();
        if let Err(refused) = info.apply(transition, now) {
            return Ok(Applied::Refused(refused));
        }
        if let Some(end_time) = info.state.end_time() {
            drop(info);
            let forget_at = end_time.saturating_add(self.inner.retention);
            self.inner.expiry.lock().insert((forget_at, id.clone()));
        }
        if cancel {
            cell.cancelled.send_replace(true);
        }
        Ok(Applied::Done)
    }

    fn cancelled(&self, id: &TaskId) -> impl Future<Output = ()> + Send + 'static {
        let receiver = self.cell(id).map(|cell| cell.cancelled.subscribe());
        async move {
            match receiver {
                Some(mut receiver) => {
                    if receiver.wait_for(|cancelled| *cancelled).await.is_err() {
                        // The task was forgotten: it can no longer be cancelled.
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
    }
}
