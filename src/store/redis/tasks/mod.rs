//! Tasks in Redis, shared by every instance of an application (features
//! `redis` and `tasks`): a task started on one instance is seen, with its
//! live progress, from every other, and cancelled from any of them.

mod cancel;
mod record;

use std::fmt;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

use ::redis::aio::MultiplexedConnection;
use ::redis::{PushInfo, Script, cmd};
use tokio::sync::mpsc::UnboundedSender;

use self::cancel::{Waiter, Waiters};
use super::config::{DEFAULT_KEY_PREFIX, DEFAULT_TIMEOUT, RedisConfigError, Target};
use super::connection::Link;
use super::safe;
use crate::clock::SharedClock;
use crate::store::{StoreError, StoreErrorKind};
use crate::tasks::{Applied, FilterSpec, MAX_LIST_RESULTS, TaskId, TaskInfo, TaskStore, Transition};
use crate::{SystemClock, Timestamp};

static INSERT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/task_insert.lua")));
static COMMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/task_commit.lua")));
static FETCH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/task_fetch.lua")));
static FORGET: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../lua/task_forget.lua")));

/// The index score of a task that has not finished: above every time.
const RUNNING: u64 = 1 << 53;
/// Forgotten tasks removed from the indexes along with each insert.
const FORGET_PER_INSERT: u64 = 64;
/// Forgotten tasks removed per step of a full purge.
const FORGET_BATCH: u64 = 256;
/// Records read per round trip by `list` and the cancel re-checks.
const FETCH_BATCH: usize = 256;
/// Added to a finished record's TTL beyond its retention.
const TTL_MARGIN_MS: u64 = 1_000;
/// Compare-and-set attempts before `apply` gives up.
const COMMIT_ATTEMPTS: usize = 64;
/// How long the operation's outcome is retried while Redis is unavailable.
const OUTCOME_RETRY: Duration = Duration::from_secs(60);

/// Tasks in Redis, shared by every instance of an application.
///
/// Every transition applies [`TaskInfo::apply`] atomically across instances
/// (compare-and-set on a version); a cancel from any instance reaches the
/// running operation at once through pub/sub (with a polling fallback);
/// finished tasks are kept for the retention time; at most `max_tasks` are
/// held. Clones are handles to the same store.
///
/// # Keys
///
/// With the default prefix `tower-cis:` (any prefix without `{` or `}`), every
/// key shares the hash tag `{tower-cis:tasks}`:
///
/// | key | type | holds |
/// |---|---|---|
/// | `tower-cis:{tower-cis:tasks}:t:<task id>` | hash | `v` version, `j` the TaskInfo (JSON), `f` when it is forgotten (ms, once finished), `x` `1` once cancelled |
/// | `tower-cis:{tower-cis:tasks}:all` | zset | every task id, scored by when it is forgotten; unfinished tasks by 2^53 |
/// | `tower-cis:{tower-cis:tasks}:s:<service>` | zset | the ids of one service's tasks (the service in the id), scored alike |
///
/// and the pub/sub channel `tower-cis:tasks:cancelled` carries the ids of
/// cancelled tasks. One hash tag, so that each script sees a record and the
/// indexes together, atomically. In a Redis Cluster the tasks therefore live
/// on the node of one slot: tasks are few and small beside sessions.
///
/// # Round trips
///
/// - `insert`: one EVALSHA of `task_insert.lua`, which removes tasks whose
///   retention has passed (a batch at a time), evicts the oldest finished
///   tasks at the cap or refuses when every task held is unfinished, then
///   writes the record and the indexes.
/// - `get`: one `HMGET`.
/// - `apply`: an `HMGET` of the version and the record; the status rules of
///   [`TaskInfo::apply`] in Rust (the one place they live); then
///   `task_commit.lua`, which writes only if the version is still the one
///   read (compare-and-set), sets the TTL and index scores of a finished
///   task, and flags and PUBLISHes a cancel. On a conflict it reads again and
///   applies the rules to what it finds, so a cancel racing a completion has
///   exactly one winner, whichever instances they come from.
/// - `list`: the `tasks` of the filter, or one `ZRANGEBYSCORE` per service of
///   the filter (the index, never a scan of the keyspace); then one
///   `task_fetch.lua` per 256 candidates. The other fields filter in Rust.
/// - `cancelled`: see below; one `HGET` when it starts.
///
/// # Cancel
///
/// Each store holds one subscriber connection (RESP3, Redis 6 or later) that
/// wakes the local waiters of a published id. A waiter reads the task's flag
/// once when it starts. After each (re)subscription, and every poll interval
/// (default 1 s) while it cannot subscribe, the store reads the flags of
/// every task waited on here, so that a cancel published meanwhile still
/// arrives; a PING every second finds a subscription that went quiet.
///
/// # Retention and time
///
/// Time comes from the store's clock: a finished task is gone for `get`,
/// `list` and `apply` once its end time plus the retention (default 24 h) has
/// passed; its key's TTL (the rest of the retention plus 1 s) removes it from
/// Redis, and inserts (or [`RedisTaskStore::purge_expired`]) from the indexes.
/// Unfinished tasks have no TTL: like the memory store's, they are never
/// forgotten, so a task whose instance stopped before it ended stays
/// unfinished (it can still be cancelled).
///
/// # Failures
///
/// Every Redis call is bounded by the store's timeout (default 2 s); an error
/// or a timeout is a [`StoreError`] of kind `Unavailable`, which the
/// [`TaskManager`](crate::tasks::TaskManager) answers with
/// `SERVICE_UNAVAILABLE`. The operation's own outcome (`Succeed`, `Fail`) is
/// retried for up to a minute while Redis is unavailable, so that a task does
/// not stay RUNNING because of a short outage; progress reports are not.
/// Without pub/sub (Redis 5, or a user without channel rights) cancels
/// arrive by polling. The connections and the cancel listener are made on
/// the Tokio runtime of the store's first calls and live on it; use the
/// store from that runtime.
///
/// ```no_run
/// use std::sync::Arc;
/// use tower_cis::SystemClock;
/// use tower_cis::tasks::{RedisTaskStore, TaskManager};
/// # #[tokio::main] async fn main() {
/// let store = RedisTaskStore::builder().url("redis://127.0.0.1:6379").build().unwrap();
/// let tasks = TaskManager::new(store, Arc::new(SystemClock));
/// # let _ = tasks;
/// # }
/// ```
#[derive(Clone)]
pub struct RedisTaskStore {
    inner: Arc<Inner>,
}

struct Inner {
    link: Link,
    keys: TaskKeys,
    clock: SharedClock,
    retention: Duration,
    max_tasks: u64,
    waiters: Waiters,
}

impl fmt::Debug for RedisTaskStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RedisTaskStore")
            .field("cluster", &inner.link.connector().is_cluster())
            .field("key_prefix", &inner.keys.prefix)
            .field("retention", &inner.retention)
            .field("max_tasks", &inner.max_tasks)
            .field("timeout", &inner.link.timeout())
            .finish_non_exhaustive()
    }
}

/// The key names of one task store.
struct TaskKeys {
    prefix: Box<str>,
    /// Prefix of the records: `<prefix>{<prefix>tasks}:t:`.
    record: Box<str>,
    /// Every task.
    all: Box<str>,
    /// Prefix of the service indexes.
    service: Box<str>,
    /// The pub/sub channel of cancels.
    channel: Box<str>,
}

impl TaskKeys {
    fn new(prefix: &str) -> Self {
        let tagged = format!("{prefix}{{{prefix}tasks}}:");
        TaskKeys {
            prefix: prefix.into(),
            record: format!("{tagged}t:").into(),
            all: format!("{tagged}all").into(),
            service: format!("{tagged}s:").into(),
            channel: format!("{prefix}tasks:cancelled").into(),
        }
    }

    fn record(&self, id: &TaskId) -> String {
        format!("{}{id}", self.record)
    }

    fn service(&self, service: &str) -> String {
        format!("{}{service}", self.service)
    }
}

impl RedisTaskStore {
    /// Configures a store.
    pub fn builder() -> RedisTaskStoreBuilder {
        RedisTaskStoreBuilder::default()
    }

    /// The prefix of every key of this store.
    pub fn key_prefix(&self) -> &str {
        &self.inner.keys.prefix
    }

    /// Removes from the indexes, with their records, the finished tasks
    /// whose retention has passed by the store's clock; returns how many.
    /// Inserts do this a batch at a time by themselves.
    pub async fn purge_expired(&self) -> Result<u64, StoreError> {
        let inner = &*self.inner;
        let now = safe(inner.clock.now());
        let mut removed = 0;
        loop {
            let mut forget = FORGET.key(&*inner.keys.all);
            forget.arg(now).arg(FORGET_BATCH).arg(&*inner.keys.record).arg(&*inner.keys.service);
            let count: u64 = inner.link.run(|connection| connection.invoke(&forget)).await?;
            removed += count;
            if count < FORGET_BATCH {
                return Ok(removed);
            }
        }
    }
}

/// Raw fields of one record, as `HMGET` answers them.
type Fields = Vec<Option<Vec<u8>>>;

impl Inner {
    /// The task from its record's `j` and `f`, unless its retention has passed.
    fn live(
        &self,
        id: &TaskId,
        json: Option<&[u8]>,
        forget: Option<&[u8]>,
        now: u64,
    ) -> Result<Option<TaskInfo>, StoreError> {
        let Some(json) = json else { return Ok(None) };
        if let Some(forget) = forget {
            let forget: u64 = std::str::from_utf8(forget)
                .ok()
                .and_then(|text| text.parse().ok())
                .ok_or_else(|| StoreError::unavailable("a task record in Redis is malformed"))?;
            if forget <= now {
                return Ok(None);
            }
        }
        record::decode(id.clone(), json).map(Some)
    }

    /// Reads `fields` of the records of `ids`, in one round trip.
    async fn fetch(&self, ids: &[TaskId], fields: &[&str]) -> Result<Vec<Fields>, StoreError> {
        let mut fetch = FETCH.prepare_invoke();
        for id in ids {
            fetch.key(self.keys.record(id));
        }
        for field in fields {
            fetch.arg(*field);
        }
        self.link.run(|connection| connection.invoke(&fetch)).await
    }

    async fn insert(&self, task: TaskInfo) -> Result<(), StoreError> {
        let now = safe(self.clock.now());
        let json = record::encode(&task)?;
        let mut insert = INSERT.key(&*self.keys.all);
        insert.key(self.keys.service(task.id.service())).key(self.keys.record(&task.id));
        insert
            .arg(task.id.as_str())
            .arg(json)
            .arg(now)
            .arg(self.max_tasks)
            .arg(RUNNING)
            .arg(&*self.keys.record)
            .arg(&*self.keys.service)
            .arg(FORGET_PER_INSERT);
        let added: i64 = self.link.run(|connection| connection.invoke(&insert)).await?;
        match added {
            1 => Ok(()),
            _ => Err(StoreError::new(StoreErrorKind::TooManyTasks, "the task store is full of running tasks")),
        }
    }

    async fn get(&self, id: &TaskId) -> Result<Option<TaskInfo>, StoreError> {
        let now = safe(self.clock.now());
        let mut read = cmd("HMGET");
        read.arg(self.keys.record(id)).arg("j").arg("f");
        let fields: Fields = self.link.run(|connection| connection.query(&read)).await?;
        let [json, forget] = <[Option<Vec<u8>>; 2]>::try_from(fields).map_err(|_| super::malformed())?;
        self.live(id, json.as_deref(), forget.as_deref(), now)
    }

    async fn list(&self, filter: &FilterSpec) -> Result<Vec<TaskInfo>, StoreError> {
        let now = safe(self.clock.now());
        let candidates = match filter.task_ids() {
            Some(ids) => ids,
            None => {
                let mut ids = Vec::new();
                for service in filter.services.iter().flatten() {
                    let mut range = cmd("ZRANGEBYSCORE");
                    range.arg(self.keys.service(service)).arg(format!("({now}")).arg("+inf");
                    let found: Vec<String> = self.link.run(|connection| connection.query(&range)).await?;
                    ids.extend(found.iter().filter_map(|id| TaskId::parse(id)));
                }
                ids
            }
        };
        let mut found = Vec::new();
        for chunk in candidates.chunks(FETCH_BATCH) {
            let records = self.fetch(chunk, &["j", "f"]).await?;
            for (id, fields) in chunk.iter().zip(records) {
                let [json, forget] = <[Option<Vec<u8>>; 2]>::try_from(fields).map_err(|_| super::malformed())?;
                if let Some(info) = self.live(id, json.as_deref(), forget.as_deref(), now)?
                    && filter.matches(&info)
                {
                    found.push(info);
                    if found.len() > MAX_LIST_RESULTS {
                        return Ok(found);
                    }
                }
            }
        }
        Ok(found)
    }

    /// Applies `transition`, retrying the operation's outcome while Redis is
    /// unavailable.
    async fn apply(&self, id: &TaskId, transition: Transition, now: Timestamp) -> Result<Applied, StoreError> {
        let outcome = matches!(transition, Transition::Succeed(_) | Transition::Fail(_));
        let give_up = Instant::now() + if outcome { OUTCOME_RETRY } else { Duration::ZERO };
        let mut pause = Duration::from_millis(50);
        loop {
            match self.apply_once(id, &transition, now).await {
                Err(error) if error.kind() == StoreErrorKind::Unavailable && Instant::now() + pause < give_up => {
                    tracing::debug!(task = %id, %error, "recording the task's outcome failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(2));
                }
                applied => return applied,
            }
        }
    }

    /// Reads, applies the rules, and commits if nothing changed meanwhile;
    /// otherwise again.
    async fn apply_once(&self, id: &TaskId, transition: &Transition, now: Timestamp) -> Result<Applied, StoreError> {
        let key = self.keys.record(id);
        let cancel = *transition == Transition::Cancel;
        for _ in 0..COMMIT_ATTEMPTS {
            let store_now = safe(self.clock.now());
            let mut read = cmd("HMGET");
            read.arg(&key).arg("v").arg("j").arg("f");
            let fields: Fields = self.link.run(|connection| connection.query(&read)).await?;
            let [version, json, forget] = <[Option<Vec<u8>>; 3]>::try_from(fields).map_err(|_| super::malformed())?;
            let (Some(version), Some(mut info)) =
                (version, self.live(id, json.as_deref(), forget.as_deref(), store_now)?)
            else {
                return Ok(Applied::NotFound);
            };
            if let Err(refused) = info.apply(transition.clone(), now) {
                return Ok(Applied::Refused(refused));
            }
            let mut commit = COMMIT.key(&key);
            commit.key(&*self.keys.all).key(self.keys.service(id.service()));
            commit.arg(version).arg(record::encode(&info)?).arg(id.as_str());
            match info.state.end_time() {
                Some(end) => {
                    let forget_at = safe(end.saturating_add(self.retention));
                    commit.arg(forget_at).arg(forget_at.saturating_sub(store_now).saturating_add(TTL_MARGIN_MS))
                }
                None => commit.arg("").arg(0),
            };
            commit.arg(if cancel { "1" } else { "" }).arg(&*self.keys.channel);
            let committed: i64 = self.link.run(|connection| connection.invoke(&commit)).await?;
            match committed {
                1 => return Ok(Applied::Done),
                -1 => return Ok(Applied::NotFound),
                _ => tokio::task::yield_now().await,
            }
        }
        Err(StoreError::unavailable("the task kept changing under a transition; gave up"))
    }

    /// Whether the task's record says it was cancelled.
    async fn is_cancelled(&self, id: &TaskId) -> Result<bool, StoreError> {
        let mut read = cmd("HGET");
        read.arg(self.keys.record(id)).arg("x");
        let flag: Option<Vec<u8>> = self.link.run(|connection| connection.query(&read)).await?;
        Ok(flag.as_deref() == Some(&b"1"[..]))
    }

    /// A subscriber connection, subscribed to the cancel channel.
    async fn subscribe(&self, pushes: UnboundedSender<PushInfo>) -> Result<MultiplexedConnection, StoreError> {
        let timeout = self.link.timeout();
        let attempt = async {
            let mut connection = self.link.connector().subscriber(pushes, timeout).await?;
            connection.subscribe(&*self.keys.channel).await?;
            Ok::<_, ::redis::RedisError>(connection)
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(Ok(connection)) => Ok(connection),
            Ok(Err(error)) => Err(StoreError::unavailable(format!("Redis failed: {error}"))),
            Err(_) => Err(StoreError::unavailable(format!("Redis did not answer within {timeout:?}"))),
        }
    }
}

impl TaskStore for RedisTaskStore {
    async fn insert(&self, task: TaskInfo) -> Result<(), StoreError> {
        self.inner.insert(task).await
    }

    async fn get(&self, id: &TaskId) -> Result<Option<TaskInfo>, StoreError> {
        self.inner.get(id).await
    }

    async fn list(&self, filter: &FilterSpec) -> Result<Vec<TaskInfo>, StoreError> {
        self.inner.list(filter).await
    }

    async fn apply(&self, id: &TaskId, transition: Transition, now: Timestamp) -> Result<Applied, StoreError> {
        self.inner.apply(id, transition, now).await
    }

    fn cancelled(&self, id: &TaskId) -> impl Future<Output = ()> + Send + 'static {
        Waiter::register(&self.inner, id).cancelled()
    }
}

/// Configures a [`RedisTaskStore`]; made by [`RedisTaskStore::builder`].
pub struct RedisTaskStoreBuilder {
    target: Target,
    key_prefix: String,
    timeout: Duration,
    retention: Duration,
    max_tasks: u64,
    clock: SharedClock,
    cancel_poll: Duration,
}

impl fmt::Debug for RedisTaskStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTaskStoreBuilder")
            .field("cluster", &matches!(self.target, Target::Cluster(_)))
            .field("nodes", &self.target.nodes())
            .field("key_prefix", &self.key_prefix)
            .field("timeout", &self.timeout)
            .field("retention", &self.retention)
            .field("max_tasks", &self.max_tasks)
            .field("cancel_poll", &self.cancel_poll)
            .finish_non_exhaustive()
    }
}

impl Default for RedisTaskStoreBuilder {
    fn default() -> Self {
        RedisTaskStoreBuilder {
            target: Target::default(),
            key_prefix: String::from(DEFAULT_KEY_PREFIX),
            timeout: DEFAULT_TIMEOUT,
            retention: Duration::from_secs(24 * 60 * 60),
            max_tasks: 100_000,
            clock: Arc::new(SystemClock),
            cancel_poll: Duration::from_secs(1),
        }
    }
}

impl RedisTaskStoreBuilder {
    /// One Redis server (default `redis://127.0.0.1:6379`); any URL the
    /// `redis` crate accepts.
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.target = Target::Single(url.into());
        self
    }

    /// A Redis Cluster, given the URLs of some of its nodes.
    pub fn cluster<I, U>(mut self, nodes: I) -> Self
    where
        I: IntoIterator<Item = U>,
        U: Into<String>,
    {
        self.target = Target::Cluster(nodes.into_iter().map(Into::into).collect());
        self
    }

    /// The prefix of every key (default `tower-cis:`, which a
    /// [`RedisStore`](crate::RedisStore) may share: their keys differ). It
    /// may not hold `{` or `}`.
    pub fn key_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.key_prefix = prefix.into();
        self
    }

    /// How long one Redis call may take before the store answers
    /// `Unavailable` (default 2 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long finished tasks are kept (default 24 hours, like vCenter).
    pub fn retention(mut self, retention: Duration) -> Self {
        self.retention = retention;
        self
    }

    /// At most this many tasks (default 100,000): at the cap the oldest
    /// finished tasks make room; a store full of unfinished tasks refuses.
    pub fn max_tasks(mut self, max: u64) -> Self {
        self.max_tasks = max.max(1);
        self
    }

    /// The clock (default: the system clock) of retention times.
    pub fn clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    /// How often the tasks waited on here are checked for cancels while the
    /// pub/sub subscription is down (default 1 s).
    pub fn cancel_poll_interval(mut self, interval: Duration) -> Self {
        self.cancel_poll = interval;
        self
    }

    /// Builds the store. Connects lazily, on the first call.
    ///
    /// ```
    /// use tower_cis::tasks::RedisTaskStore;
    ///
    /// let store = RedisTaskStore::builder().url("redis://127.0.0.1:6379").build().unwrap();
    /// assert_eq!(store.key_prefix(), "tower-cis:");
    /// assert!(RedisTaskStore::builder().key_prefix("{app}").build().is_err());
    /// assert!(RedisTaskStore::builder().cancel_poll_interval(Default::default()).build().is_err());
    /// ```
    pub fn build(self) -> Result<RedisTaskStore, RedisConfigError> {
        let link = self.target.link(&self.key_prefix, self.timeout)?;
        if self.cancel_poll.is_zero() {
            return Err(RedisConfigError::new("the cancel poll interval must be longer than zero"));
        }
        let retention = Duration::from_millis(self.retention.as_millis().min(u128::from(RUNNING - 1)) as u64);
        Ok(RedisTaskStore {
            inner: Arc::new(Inner {
                link,
                keys: TaskKeys::new(&self.key_prefix),
                clock: self.clock,
                retention,
                max_tasks: self.max_tasks,
                waiters: Waiters::new(self.cancel_poll),
            }),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_shares_one_hash_tag() {
        let keys = TaskKeys::new("app:");
        let id = TaskId::parse("8dcf9711-bb6d-47c5-892d-a0e6bef98249:com.vmware.vcenter.vm").unwrap();
        assert_eq!(keys.record(&id), "app:{app:tasks}:t:8dcf9711-bb6d-47c5-892d-a0e6bef98249:com.vmware.vcenter.vm");
        assert_eq!(&*keys.all, "app:{app:tasks}:all");
        assert_eq!(keys.service("com.vmware.vcenter.vm"), "app:{app:tasks}:s:com.vmware.vcenter.vm");
        assert_eq!(&*keys.channel, "app:tasks:cancelled");
    }
}
