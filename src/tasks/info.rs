//! `TaskInfo`: what a task is and where it stands, with the status rules of
//! VMware's client built into the types. Each status carries exactly the
//! fields it requires or allows, so a TaskInfo that breaks the rules cannot
//! be built.
//!
//! | status | required | allowed | absent |
//! |---|---|---|---|
//! | PENDING | — | — | progress, result, error, start_time, end_time |
//! | RUNNING, BLOCKED | progress, start_time | result | error, end_time |
//! | SUCCEEDED | progress, start_time, end_time | result | error |
//! | FAILED | progress, start_time, end_time | result, error | — |

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use super::TaskId;
use crate::error::{ApiFlavor, ErrorType, LocalizableMessage, VapiError};
use crate::{Principal, Timestamp};

/// A `com.vmware.vapi.std.dynamic_ID`: the resource a task works on.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
pub struct DynamicId {
    /// The resource type, e.g. `VirtualMachine`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The resource id, e.g. `vm-43`.
    pub id: String,
}

/// A task's progress: `completed` out of `total`, with a message.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Progress {
    /// The amount of work in all.
    pub total: i64,
    /// The amount done, from 0 to `total`.
    pub completed: i64,
    /// What is happening.
    pub message: LocalizableMessage,
}

impl Progress {
    /// Progress of `completed` out of `total` (clamped to `0..=total`).
    pub fn new(total: i64, completed: i64, message: LocalizableMessage) -> Self {
        let total = total.max(0);
        Progress { total, completed: completed.clamp(0, total), message }
    }
}

/// The task's status, with the fields each status carries.
#[derive(Clone, Debug, PartialEq)]
pub enum TaskState {
    /// Not started yet.
    Pending,
    /// Running.
    Running {
        /// When it started.
        start_time: Timestamp,
        /// How far it is.
        progress: Progress,
    },
    /// Waiting on something outside itself.
    Blocked {
        /// When it started.
        start_time: Timestamp,
        /// How far it is.
        progress: Progress,
    },
    /// Finished well.
    Succeeded {
        /// When it started.
        start_time: Timestamp,
        /// When it ended.
        end_time: Timestamp,
        /// The final progress.
        progress: Progress,
        /// The operation's result.
        result: Option<Value>,
    },
    /// Finished with an error (a cancelled task ends here with `CANCELED`).
    Failed {
        /// When it started.
        start_time: Timestamp,
        /// When it ended.
        end_time: Timestamp,
        /// The progress when it failed.
        progress: Progress,
        /// Why it failed.
        error: VapiError,
    },
}

/// The status names of the wire format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Not started.
    Pending,
    /// Running.
    Running,
    /// Blocked.
    Blocked,
    /// Succeeded.
    Succeeded,
    /// Failed.
    Failed,
}

impl Status {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Blocked => "BLOCKED",
            Status::Succeeded => "SUCCEEDED",
            Status::Failed => "FAILED",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        [Status::Pending, Status::Running, Status::Blocked, Status::Succeeded, Status::Failed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }
}

impl TaskState {
    /// The status.
    pub fn status(&self) -> Status {
        match self {
            TaskState::Pending => Status::Pending,
            TaskState::Running { .. } => Status::Running,
            TaskState::Blocked { .. } => Status::Blocked,
            TaskState::Succeeded { .. } => Status::Succeeded,
            TaskState::Failed { .. } => Status::Failed,
        }
    }

    /// Whether the task has ended.
    pub fn is_finished(&self) -> bool {
        matches!(self, TaskState::Succeeded { .. } | TaskState::Failed { .. })
    }

    /// When it ended, if it has.
    pub fn end_time(&self) -> Option<Timestamp> {
        self.fields().end_time
    }

    /// The state's fields, each `None` where this status has none: the view
    /// every rendering of a TaskInfo is made from.
    pub fn fields(&self) -> StateFields<'_> {
        let none = StateFields { start_time: None, end_time: None, progress: None, result: None, error: None };
        match self {
            TaskState::Pending => none,
            TaskState::Running { start_time, progress } | TaskState::Blocked { start_time, progress } => {
                StateFields { start_time: Some(*start_time), progress: Some(progress), ..none }
            }
            TaskState::Succeeded { start_time, end_time, progress, result } => StateFields {
                start_time: Some(*start_time),
                end_time: Some(*end_time),
                progress: Some(progress),
                result: result.as_ref(),
                error: None,
            },
            TaskState::Failed { start_time, end_time, progress, error } => StateFields {
                start_time: Some(*start_time),
                end_time: Some(*end_time),
                progress: Some(progress),
                result: None,
                error: Some(error),
            },
        }
    }
}

/// The fields of a [`TaskState`], as [`TaskState::fields`] lists them.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StateFields<'a> {
    /// When the task started.
    pub start_time: Option<Timestamp>,
    /// When it ended.
    pub end_time: Option<Timestamp>,
    /// Its progress.
    pub progress: Option<&'a Progress>,
    /// Its result.
    pub result: Option<&'a Value>,
    /// Its error.
    pub error: Option<&'a VapiError>,
}

/// What the operation reports or the client asks: each changes the state by
/// the rules in [`TaskInfo::apply`].
#[derive(Clone, Debug, PartialEq)]
pub enum Transition {
    /// The operation starts.
    Start,
    /// The operation reports progress.
    Progress(Progress),
    /// The operation waits on something outside itself.
    Block,
    /// The operation goes on.
    Unblock,
    /// The operation finished with this result.
    Succeed(Option<Value>),
    /// The operation failed.
    Fail(VapiError),
    /// A client cancels the task.
    Cancel,
}

/// Why a transition was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refused {
    /// The task has already ended (`NOT_ALLOWED_IN_CURRENT_STATE` for a cancel).
    Finished,
    /// The task cannot be cancelled (`UNSUPPORTED`).
    NotCancelable,
    /// The transition does not apply in this state (e.g. unblock while running).
    NotApplicable,
}

/// A task: what it is, who started it, where it stands.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskInfo {
    /// The task's id.
    pub id: TaskId,
    /// What the task does.
    pub description: LocalizableMessage,
    /// The service, e.g. `com.vmware.vcenter.vm`.
    pub service: String,
    /// The operation, e.g. `clone`.
    pub operation: String,
    /// The parent task.
    pub parent: Option<TaskId>,
    /// The resource the task works on.
    pub target: Option<DynamicId>,
    /// Whether clients may cancel it.
    pub cancelable: bool,
    /// The principal that started it (the owner).
    pub owner: Arc<Principal>,
    /// Where it stands.
    pub state: TaskState,
}

impl TaskInfo {
    /// The status.
    pub fn status(&self) -> Status {
        self.state.status()
    }

    /// Applies `transition` at `now` by the status rules; on refusal nothing changes.
    ///
    /// - `Start` moves PENDING to RUNNING; `Progress`, `Succeed` and `Fail`
    ///   on a PENDING task start it first.
    /// - `Block`/`Unblock` move between RUNNING and BLOCKED.
    /// - `Succeed` and `Fail` end a task that has not ended; `Cancel` ends a
    ///   cancelable one as FAILED with a `CANCELED` error.
    pub fn apply(&mut self, transition: Transition, now: Timestamp) -> Result<(), Refused> {
        if self.state.is_finished() {
            return Err(Refused::Finished);
        }
        if transition == Transition::Cancel && !self.cancelable {
            return Err(Refused::NotCancelable);
        }
        let (start_time, progress) = match &self.state {
            TaskState::Pending => (now, Progress::new(100, 0, self.description.clone())),
            TaskState::Running { start_time, progress } | TaskState::Blocked { start_time, progress } => {
                (*start_time, progress.clone())
            }
            TaskState::Succeeded { .. } | TaskState::Failed { .. } => return Err(Refused::Finished),
        };
        let blocked = matches!(self.state, TaskState::Blocked { .. });
        self.state = match transition {
            Transition::Start if matches!(self.state, TaskState::Pending) => {
                TaskState::Running { start_time, progress }
            }
            Transition::Start => return Err(Refused::NotApplicable),
            Transition::Progress(progress) if blocked => TaskState::Blocked { start_time, progress },
            Transition::Progress(progress) => TaskState::Running { start_time, progress },
            Transition::Block if !blocked => TaskState::Blocked { start_time, progress },
            Transition::Unblock if blocked => TaskState::Running { start_time, progress },
            Transition::Block | Transition::Unblock => return Err(Refused::NotApplicable),
            Transition::Succeed(result) => {
                let done = Progress { completed: progress.total, ..progress };
                TaskState::Succeeded { start_time, end_time: now, progress: done, result }
            }
            Transition::Fail(error) => TaskState::Failed { start_time, end_time: now, progress, error },
            Transition::Cancel => TaskState::Failed { start_time, end_time: now, progress, error: canceled() },
        };
        Ok(())
    }

    /// The REST rendering: a JSON object with exactly the fields the status
    /// requires or allows; `result` left out when `exclude_result`.
    pub fn to_rest(&self, flavor: ApiFlavor, exclude_result: bool) -> Value {
        let fields = self.state.fields();
        let rendered = RestTaskInfo {
            description: &self.description,
            service: &self.service,
            operation: &self.operation,
            parent: self.parent.as_ref(),
            target: self.target.as_ref(),
            status: self.status(),
            cancelable: self.cancelable,
            error: fields.error.map(|error| error.to_json(flavor)),
            start_time: fields.start_time,
            end_time: fields.end_time,
            user: self.owner.name(),
            progress: fields.progress,
            result: fields.result.filter(|_| !exclude_result),
        };
        serde_json::to_value(rendered).unwrap_or(Value::Null)
    }
}

#[derive(Serialize)]
struct RestTaskInfo<'a> {
    description: &'a LocalizableMessage,
    service: &'a str,
    operation: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    parent: Option<&'a TaskId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a DynamicId>,
    status: Status,
    cancelable: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    start_time: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    end_time: Option<Timestamp>,
    user: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    progress: Option<&'a Progress>,
    #[serde(skip_serializing_if = "Option::is_none")]
    result: Option<&'a Value>,
}

/// The error a cancelled task ends with.
pub fn canceled() -> VapiError {
    VapiError::new(
        ErrorType::Canceled,
        LocalizableMessage::new("com.vmware.cis.tasks.canceled", "The task was canceled."),
    )
}
