//! Which tasks a `list` returns: the `FilterSpec` and its rules.

use std::collections::HashSet;

use serde::Deserialize;

use super::{DynamicId, Status, TaskId, TaskInfo};

/// The most tasks one `list` returns; more matches are an error.
pub const MAX_LIST_RESULTS: usize = 1000;

/// `com.vmware.cis.tasks.filter_spec`. Every given field must match; within a
/// field any value may. At least one of `tasks` and `services` must be given.
#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterSpec {
    /// Task ids.
    pub tasks: Option<HashSet<String>>,
    /// Service ids.
    pub services: Option<HashSet<String>>,
    /// Operation names.
    pub operations: Option<HashSet<String>>,
    /// Statuses.
    pub status: Option<HashSet<Status>>,
    /// Resources the tasks work on.
    pub targets: Option<Vec<DynamicId>>,
    /// Users that started the tasks.
    pub users: Option<HashSet<String>>,
}

/// `com.vmware.cis.tasks.get_spec`: what each returned TaskInfo holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetSpec {
    /// Return operation-specific data too (this crate's TaskInfo has none
    /// beyond the standard fields, so this changes nothing).
    pub return_all: Option<bool>,
    /// Leave out the operation's result.
    pub exclude_result: Option<bool>,
}

impl GetSpec {
    /// Whether to leave out the result.
    pub fn excludes_result(&self) -> bool {
        self.exclude_result.unwrap_or(false)
    }
}

/// A `FilterSpec` that names neither tasks nor services.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NeitherTasksNorServices;

impl FilterSpec {
    /// Checks the rule that `tasks` or `services` is given (and not empty).
    pub fn validate(&self) -> Result<(), NeitherTasksNorServices> {
        let given = |set: &Option<HashSet<String>>| set.as_ref().is_some_and(|s| !s.is_empty());
        if given(&self.tasks) || given(&self.services) { Ok(()) } else { Err(NeitherTasksNorServices) }
    }

    /// Whether `task` matches every given field.
    pub fn matches(&self, task: &TaskInfo) -> bool {
        let within = |set: &Option<HashSet<String>>, value: &str| set.as_ref().is_none_or(|s| s.contains(value));
        within(&self.tasks, task.id.as_str())
            && within(&self.services, &task.service)
            && within(&self.operations, &task.operation)
            && within(&self.users, task.owner.name())
            && self.status.as_ref().is_none_or(|s| s.contains(&task.status()))
            && self.targets.as_ref().is_none_or(|targets| task.target.as_ref().is_some_and(|t| targets.contains(t)))
    }

    /// The task ids named, parsed; ids that cannot be task ids are dropped
    /// (they match nothing).
    pub fn task_ids(&self) -> Option<Vec<TaskId>> {
        self.tasks.as_ref().map(|tasks| tasks.iter().filter_map(|t| TaskId::parse(t)).collect())
    }
}
