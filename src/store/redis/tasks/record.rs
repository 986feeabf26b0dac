//! A `TaskInfo` as its record holds it: JSON, times in milliseconds, the
//! error in the modern REST shape.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ApiFlavor, LocalizableMessage, VapiError};
use crate::store::StoreError;
use crate::tasks::{DynamicId, Progress, Status, TaskId, TaskInfo, TaskState};
use crate::{Principal, Timestamp};

#[derive(Serialize, Deserialize)]
struct Record<'a> {
    description: Cow<'a, LocalizableMessage>,
    service: Cow<'a, str>,
    operation: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    parent: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    target: Option<Cow<'a, DynamicId>>,
    cancelable: bool,
    user: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    groups: Vec<Cow<'a, str>>,
    status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    progress: Option<Steps<'a>>,
    /// Wrapped, so that a `null` result stays a result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    result: Option<Held<'a>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<Value>,
}

#[derive(Serialize, Deserialize)]
struct Steps<'a> {
    total: i64,
    completed: i64,
    message: Cow<'a, LocalizableMessage>,
}

#[derive(Serialize, Deserialize)]
struct Held<'a> {
    value: Cow<'a, Value>,
}

impl<'a> From<&'a Progress> for Steps<'a> {
    fn from(progress: &'a Progress) -> Self {
        Steps { total: progress.total, completed: progress.completed, message: Cow::Borrowed(&progress.message) }
    }
}

impl From<Steps<'_>> for Progress {
    fn from(steps: Steps<'_>) -> Self {
        Progress { total: steps.total, completed: steps.completed, message: steps.message.into_owned() }
    }
}

/// The record of `task`.
pub(super) fn encode(task: &TaskInfo) -> Result<Vec<u8>, StoreError> {
    let fields = task.state.fields();
    let record = Record {
        description: Cow::Borrowed(&task.description),
        service: Cow::Borrowed(&task.service),
        operation: Cow::Borrowed(&task.operation),
        parent: task.parent.as_ref().map(|parent| Cow::Borrowed(parent.as_str())),
        target: task.target.as_ref().map(Cow::Borrowed),
        cancelable: task.cancelable,
        user: Cow::Borrowed(task.owner.name()),
        groups: task.owner.groups().map(Cow::Borrowed).collect(),
        status: task.status(),
        start: fields.start_time.map(Timestamp::as_millis),
        end: fields.end_time.map(Timestamp::as_millis),
        progress: fields.progress.map(Steps::from),
        result: fields.result.map(|value| Held { value: Cow::Borrowed(value) }),
        error: fields.error.map(|error| error.to_json(ApiFlavor::Modern)),
    };
    serde_json::to_vec(&record).map_err(|error| StoreError::unavailable(format!("cannot encode a task: {error}")))
}

/// The task `id` from its record.
pub(super) fn decode(id: TaskId, bytes: &[u8]) -> Result<TaskInfo, StoreError> {
    let malformed = || StoreError::unavailable("a task record in Redis is malformed");
    let record: Record<'_> = serde_json::from_slice(bytes).map_err(|_| malformed())?;
    let start = record.start.map(Timestamp::from_millis);
    let end = record.end.map(Timestamp::from_millis);
    let progress = record.progress.map(Progress::from);
    let state = match record.status {
        Status::Pending => TaskState::Pending,
        Status::Running => {
            TaskState::Running { start_time: start.ok_or_else(malformed)?, progress: progress.ok_or_else(malformed)? }
        }
        Status::Blocked => {
            TaskState::Blocked { start_time: start.ok_or_else(malformed)?, progress: progress.ok_or_else(malformed)? }
        }
        Status::Succeeded => TaskState::Succeeded {
            start_time: start.ok_or_else(malformed)?,
            end_time: end.ok_or_else(malformed)?,
            progress: progress.ok_or_else(malformed)?,
            result: record.result.map(|held| held.value.into_owned()),
        },
        Status::Failed => TaskState::Failed {
            start_time: start.ok_or_else(malformed)?,
            end_time: end.ok_or_else(malformed)?,
            progress: progress.ok_or_else(malformed)?,
            error: record.error.as_ref().and_then(VapiError::from_json).ok_or_else(malformed)?,
        },
    };
    let parent = match record.parent {
        Some(parent) => Some(TaskId::parse(&parent).ok_or_else(malformed)?),
        None => None,
    };
    let owner = Principal::new(record.user.into_owned()).with_groups(record.groups.into_iter().map(Cow::into_owned));
    Ok(TaskInfo {
        id,
        description: record.description.into_owned(),
        service: record.service.into_owned(),
        operation: record.operation.into_owned(),
        parent,
        target: record.target.map(Cow::into_owned),
        cancelable: record.cancelable,
        owner: Arc::new(owner),
        state,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::error::ErrorType;
    use crate::tasks::Transition;

    fn task() -> TaskInfo {
        TaskInfo {
            id: TaskId::generate("com.example.vm").unwrap(),
            description: LocalizableMessage::new("com.example.vm.clone", "Clone").with_args(["vm-1".into()]),
            service: "com.example.vm".into(),
            operation: "clone".into(),
            parent: Some(TaskId::generate("com.example.folder").unwrap()),
            target: Some(DynamicId { kind: "VirtualMachine".into(), id: "vm-1".into() }),
            cancelable: true,
            owner: Arc::new(Principal::new("alice").with_groups(["ops", "a\"b"])),
            state: TaskState::Pending,
        }
    }

    fn round_trip(task: &TaskInfo) -> TaskInfo {
        decode(task.id.clone(), &encode(task).unwrap()).unwrap()
    }

    #[test]
    fn every_status_round_trips() {
        let at = |ms: u64| Timestamp::from_millis(1_796_413_098_110 + ms);
        let mut pending = task();
        pending.parent = None;
        pending.target = None;
        assert_eq!(round_trip(&pending), pending);
        let mut running = task();
        assert_eq!(round_trip(&running), running);
        running.apply(Transition::Start, at(1)).unwrap();
        assert_eq!(round_trip(&running), running);
        running
            .apply(Transition::Progress(Progress::new(4, 3, LocalizableMessage::new("x", "3 of 4"))), at(2))
            .unwrap();
        assert_eq!(round_trip(&running), running);
        let mut blocked = running.clone();
        blocked.apply(Transition::Block, at(3)).unwrap();
        assert_eq!(round_trip(&blocked), blocked);
        for result in [None, Some(Value::Null), Some(json!({"vm": "vm-2", "n": [1, 2.5]}))] {
            let mut succeeded = running.clone();
            succeeded.apply(Transition::Succeed(result), at(4)).unwrap();
            assert_eq!(round_trip(&succeeded), succeeded);
        }
        let mut failed = running.clone();
        let error = VapiError::new(ErrorType::NotFound, LocalizableMessage::new("x.vm", "No VM")).with_data(json!(7));
        failed.apply(Transition::Fail(error), at(5)).unwrap();
        assert_eq!(round_trip(&failed), failed);
        let mut cancelled = running;
        cancelled.apply(Transition::Cancel, at(6)).unwrap();
        assert_eq!(round_trip(&cancelled), cancelled);
    }

    #[test]
    fn records_that_break_the_status_rules_are_refused() {
        let id = TaskId::generate("com.example.vm").unwrap();
        let mut record: Value = serde_json::from_slice(&encode(&task()).unwrap()).unwrap();
        record["status"] = json!("RUNNING");
        assert!(decode(id.clone(), record.to_string().as_bytes()).is_err());
        assert!(decode(id, b"not json").is_err());
    }
}
