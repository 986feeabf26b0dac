//! The task manager: starts operations as tasks and answers get, list and
//! cancel for the principals allowed to see them.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::Value;

use super::store::{Applied, MemoryTaskStore, TaskStore};
use super::{DynamicId, FilterSpec, MAX_LIST_RESULTS, Progress, Refused, TaskId, TaskInfo, TaskState, Transition};
use crate::clock::SharedClock;
use crate::error::{ErrorType, LocalizableMessage, VapiError};
use crate::{Principal, StoreError, StoreErrorKind, SystemClock};

/// What a new task is.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskSpec {
    /// The service, e.g. `com.vmware.vcenter.vm`.
    pub service: String,
    /// The operation, e.g. `clone`.
    pub operation: String,
    /// What the task does, for people.
    pub description: LocalizableMessage,
    /// The resource it works on.
    pub target: Option<DynamicId>,
    /// The task it is part of.
    pub parent: Option<TaskId>,
    /// Whether clients may cancel it.
    pub cancelable: bool,
}

impl TaskSpec {
    /// A cancelable task of `service`'s `operation`.
    pub fn new(service: impl Into<String>, operation: impl Into<String>, description: LocalizableMessage) -> Self {
        TaskSpec {
            service: service.into(),
            operation: operation.into(),
            description,
            target: None,
            parent: None,
            cancelable: true,
        }
    }

    /// The spec with `cancelable` set.
    pub fn cancelable(mut self, cancelable: bool) -> Self {
        self.cancelable = cancelable;
        self
    }

    /// The spec with a target.
    pub fn with_target(mut self, kind: impl Into<String>, id: impl Into<String>) -> Self {
        self.target = Some(DynamicId { kind: kind.into(), id: id.into() });
        self
    }
}

/// Runs operations as tasks.
///
/// A task belongs to the principal that started it and keeps running when
/// that principal's session ends. Users see and cancel only their own tasks,
/// members of the administrators group everyone's; another user's task
/// answers as if it did not exist.
///
/// ```
/// use serde_json::json;
/// use tower_cis::Principal;
/// use tower_cis::error::LocalizableMessage;
/// use tower_cis::tasks::{Status, TaskManager, TaskSpec};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tasks = TaskManager::in_memory();
/// let alice = std::sync::Arc::new(Principal::new("alice"));
/// let spec = TaskSpec::new("com.example.vm", "clone", LocalizableMessage::new("com.example.vm.clone", "Clone a VM"));
/// let id = tasks
///     .start(spec, alice.clone(), |ctx| async move {
///         ctx.progress(2, 1, LocalizableMessage::new("com.example.vm.clone.half", "Half way")).await;
///         Ok(json!({"vm": "vm-44"}))
///     })
///     .await
///     .unwrap();
/// let info = tasks.wait(&id).await.unwrap();
/// assert_eq!(info.status(), Status::Succeeded);
/// # });
/// ```
pub struct TaskManager<T = MemoryTaskStore> {
    store: T,
    clock: SharedClock,
    administrators: Option<Arc<str>>,
    per_user: Option<Arc<PerUser>>,
}

/// How many tasks each user has running, against a cap.
struct PerUser {
    max: usize,
    running: Mutex<HashMap<Box<str>, usize>>,
}

/// One running task's place in its owner's count; given back on drop, when
/// the task ends (or is cancelled, or could not be stored).
struct Slot {
    per_user: Arc<PerUser>,
    user: Box<str>,
}

impl PerUser {
    fn take(self: &Arc<Self>, user: &str) -> Option<Slot> {
        let mut running = self.running.lock();
        let count = running.entry(user.into()).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(Slot { per_user: Arc::clone(self), user: user.into() })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut running = self.per_user.running.lock();
        if let Some(count) = running.get_mut(&self.user) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                running.remove(&self.user);
            }
        }
    }
}

impl<T: Clone> Clone for TaskManager<T> {
    fn clone(&self) -> Self {
        TaskManager {
            store: self.store.clone(),
            clock: Arc::clone(&self.clock),
            administrators: self.administrators.clone(),
            per_user: self.per_user.clone(),
        }
    }
}

impl<T> fmt::Debug for TaskManager<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskManager").field("administrators", &self.administrators).finish_non_exhaustive()
    }
}

impl TaskManager<MemoryTaskStore> {
    /// Tasks in memory, on the system clock, retained 24 hours.
    pub fn in_memory() -> Self {
        TaskManager::new(MemoryTaskStore::default(), Arc::new(SystemClock))
    }
}

/// Handed to an operation running as a task, to report progress and to
/// notice cancellation.
pub struct TaskContext<T = MemoryTaskStore> {
    id: TaskId,
    store: T,
    clock: SharedClock,
}

impl<T: Clone> Clone for TaskContext<T> {
    fn clone(&self) -> Self {
        TaskContext { id: self.id.clone(), store: self.store.clone(), clock: Arc::clone(&self.clock) }
    }
}

impl<T> fmt::Debug for TaskContext<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext").field("id", &self.id).finish_non_exhaustive()
    }
}

impl<T: TaskStore> TaskContext<T> {
    /// The task's id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// Reports `completed` out of `total`.
    pub async fn progress(&self, total: i64, completed: i64, message: LocalizableMessage) {
        self.report(Transition::Progress(Progress::new(total, completed, message))).await;
    }

    /// Marks the task BLOCKED (waiting on something outside itself).
    pub async fn block(&self) {
        self.report(Transition::Block).await;
    }

    /// Marks a blocked task RUNNING again.
    pub async fn unblock(&self) {
        self.report(Transition::Unblock).await;
    }

    /// Resolves when a client cancels the task. (A cancelled operation is
    /// also dropped at its next await, so most operations need not watch.)
    pub fn cancelled(&self) -> impl Future<Output = ()> + Send + 'static {
        self.store.cancelled(&self.id)
    }

    async fn report(&self, transition: Transition) {
        if let Err(error) = self.store.apply(&self.id, transition, self.clock.now()).await {
            tracing::warn!(task = %self.id, %error, "could not record task progress");
        }
    }
}

impl<T: TaskStore> TaskManager<T> {
    /// A manager over `store`, reading time from `clock`.
    pub fn new(store: T, clock: SharedClock) -> Self {
        TaskManager { store, clock, administrators: None, per_user: None }
    }

    /// Refuses to start a task for a user who already has `max` tasks
    /// running (`UNABLE_TO_ALLOCATE_RESOURCE`), so that one user cannot fill
    /// the task store. Counted by this manager and its clones, in this
    /// process; the store's own cap still bounds all instances together.
    pub fn with_max_running_per_user(mut self, max: usize) -> Self {
        self.per_user = Some(Arc::new(PerUser { max, running: Mutex::new(HashMap::new()) }));
        self
    }

    /// Members of `group` see and cancel every user's tasks.
    pub fn with_administrators(mut self, group: impl Into<Arc<str>>) -> Self {
        self.administrators = Some(group.into());
        self
    }

    /// The task store.
    pub fn store(&self) -> &T {
        &self.store
    }

    /// Starts `operation` as a task owned by `owner`, on the tokio runtime,
    /// and answers its id at once. The task is PENDING until the operation
    /// starts, then RUNNING; it ends SUCCEEDED with the operation's value or
    /// FAILED with its error (or `INTERNAL_SERVER_ERROR` if it panics). A
    /// cancel ends it FAILED with `CANCELED` and drops the operation.
    pub async fn start<F, Fut>(&self, spec: TaskSpec, owner: Arc<Principal>, operation: F) -> Result<TaskId, VapiError>
    where
        F: FnOnce(TaskContext<T>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Value, VapiError>> + Send + 'static,
    {
        let slot = match &self.per_user {
            Some(per_user) => Some(per_user.take(owner.name()).ok_or_else(user_limit)?),
            None => None,
        };
        let id = TaskId::generate(&spec.service).map_err(|_| unavailable())?;
        let info = TaskInfo {
            id: id.clone(),
            description: spec.description,
            service: spec.service,
            operation: spec.operation,
            parent: spec.parent,
            target: spec.target,
            cancelable: spec.cancelable,
            owner,
            state: TaskState::Pending,
        };
        self.store.insert(info).await.map_err(|error| store_error(&error))?;
        let context = TaskContext { id: id.clone(), store: self.store.clone(), clock: Arc::clone(&self.clock) };
        let cancelled = self.store.cancelled(&id);
        tokio::spawn(async move {
            let _slot = slot;
            run(context, cancelled, operation).await;
        });
        Ok(id)
    }

    /// The task, if `principal` may see it.
    pub async fn get(&self, id: &TaskId, principal: &Principal) -> Result<TaskInfo, VapiError> {
        match self.store.get(id).await.map_err(|error| store_error(&error))? {
            Some(info) if self.may_see(&info, principal) => Ok(info),
            _ => Err(not_found(id)),
        }
    }

    /// The tasks matching `filter` that `principal` may see.
    pub async fn list(&self, filter: &FilterSpec, principal: &Principal) -> Result<Vec<TaskInfo>, VapiError> {
        if filter.validate().is_err() {
            return Err(VapiError::new(
                ErrorType::InvalidArgument,
                LocalizableMessage::new(
                    "com.vmware.cis.tasks.list.filter.missing",
                    "The filter must name at least one of tasks and services.",
                ),
            ));
        }
        let mut found = self.store.list(filter).await.map_err(|error| store_error(&error))?;
        found.retain(|info| self.may_see(info, principal));
        if found.len() > MAX_LIST_RESULTS {
            return Err(VapiError::new(
                ErrorType::ResourceInaccessible,
                LocalizableMessage::new(
                    "com.vmware.cis.tasks.list.too_many",
                    "More than 1000 tasks match the filter; narrow it.",
                ),
            ));
        }
        Ok(found)
    }

    /// Cancels the task for `principal`.
    pub async fn cancel(&self, id: &TaskId, principal: &Principal) -> Result<(), VapiError> {
        self.get(id, principal).await?;
        match self.store.apply(id, Transition::Cancel, self.clock.now()).await.map_err(|error| store_error(&error))? {
            Applied::Done => {
                tracing::info!(task = %id, user = principal.name(), "task cancelled");
                Ok(())
            }
            Applied::NotFound => Err(not_found(id)),
            Applied::Refused(Refused::NotCancelable) => Err(VapiError::new(
                ErrorType::Unsupported,
                LocalizableMessage::new("com.vmware.cis.tasks.cancel.unsupported", "The task cannot be canceled."),
            )),
            Applied::Refused(Refused::Finished | Refused::NotApplicable) => Err(VapiError::new(
                ErrorType::NotAllowedInCurrentState,
                LocalizableMessage::new("com.vmware.cis.tasks.cancel.finished", "The task has already finished."),
            )),
        }
    }

    /// Waits until the task has ended and returns its final info (for tests
    /// and for callers that run a task synchronously). Polls the store.
    pub async fn wait(&self, id: &TaskId) -> Result<TaskInfo, VapiError> {
        loop {
            match self.store.get(id).await.map_err(|error| store_error(&error))? {
                Some(info) if info.state.is_finished() => return Ok(info),
                Some(_) => tokio::time::sleep(std::time::Duration::from_millis(5)).await,
                None => return Err(not_found(id)),
            }
        }
    }

    fn may_see(&self, info: &TaskInfo, principal: &Principal) -> bool {
        info.owner.name() == principal.name()
            || self.administrators.as_deref().is_some_and(|group| principal.is_member_of(group))
    }
}

/// Runs the operation to its end, or until the task is cancelled.
async fn run<T, F, Fut>(context: TaskContext<T>, cancelled: impl Future<Output = ()>, operation: F)
where
    T: TaskStore,
    F: FnOnce(TaskContext<T>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Value, VapiError>> + Send + 'static,
{
    context.report(Transition::Start).await;
    let mut running = tokio::spawn(operation(context.clone()));
    let outcome = tokio::select! {
        joined = &mut running => joined,
        () = cancelled => {
            running.abort();
            return;
        }
    };
    let transition = match outcome {
        Ok(Ok(result)) => Transition::Succeed(Some(result)),
        Ok(Err(error)) => Transition::Fail(error),
        Err(join_error) => {
            tracing::error!(task = %context.id, error = %join_error, "task operation failed abnormally");
            Transition::Fail(VapiError::new(
                ErrorType::InternalServerError,
                LocalizableMessage::new("com.vmware.cis.tasks.operation.aborted", "The operation ended abnormally."),
            ))
        }
    };
    // A cancel that won the race has already ended the task; this is then refused.
    context.report(transition).await;
}

fn not_found(id: &TaskId) -> VapiError {
    VapiError::new(
        ErrorType::NotFound,
        LocalizableMessage::new("com.vmware.cis.tasks.not_found", "The task was not found.")
            .with_args([id.to_string()]),
    )
}

fn unavailable() -> VapiError {
    VapiError::service_unavailable(LocalizableMessage::new(
        "com.vmware.cis.tasks.unavailable",
        "The task service is temporarily unavailable. Retry later.",
    ))
}

fn user_limit() -> VapiError {
    VapiError::new(
        ErrorType::UnableToAllocateResource,
        LocalizableMessage::new(
            "com.vmware.cis.tasks.user_limit",
            "You have the maximum number of running tasks. Retry when some have finished.",
        ),
    )
}

fn store_error(error: &StoreError) -> VapiError {
    tracing::warn!(%error, "task store failed");
    match error.kind() {
        StoreErrorKind::TooManyTasks => VapiError::new(
            ErrorType::UnableToAllocateResource,
            LocalizableMessage::new("com.vmware.cis.tasks.limit", "Too many tasks are running. Retry later."),
        ),
        _ => unavailable(),
    }
}
