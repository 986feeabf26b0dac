//! The Tasks service: long operations run as tasks with progress; clients
//! get, list and cancel them.
//!
//! - [`TaskManager`] starts operations as tasks and answers for them;
//! - [`TaskInfo`] carries the status rules of VMware's client in its types;
//! - [`TaskStore`] is where tasks live ([`MemoryTaskStore`] by default;
//!   `RedisTaskStore`, feature `redis`, shares them between instances);
//! - [`TaskLayer`] lets any handler run as a task when the query says
//!   `vmw-task=true`.

mod filter;
mod id;
mod info;
mod layer;
mod manager;
mod store;

pub use filter::{FilterSpec, GetSpec, MAX_LIST_RESULTS, NeitherTasksNorServices};
pub use id::{MAX_SERVICE_ID_LEN, TaskId};
pub use info::{DynamicId, Progress, Refused, StateFields, Status, TaskInfo, TaskState, Transition, canceled};
pub use layer::{MAX_TASK_RESULT_BYTES, TaskLayer, TaskService};
pub use manager::{TaskContext, TaskManager, TaskSpec};
pub use store::{Applied, MemoryTaskStore, TaskStore};

#[cfg(feature = "redis")]
pub use crate::store::redis::{RedisTaskStore, RedisTaskStoreBuilder};
