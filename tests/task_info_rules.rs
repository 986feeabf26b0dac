//! TaskInfo: every status renders exactly the fields VMware's client
//! requires or allows, and transitions follow the rules.

use std::sync::Arc;

use serde_json::{Value, json};
use tower_cis::error::{ApiFlavor, ErrorType, LocalizableMessage, VapiError};
use tower_cis::tasks::{Progress, Refused, Status, TaskId, TaskInfo, TaskState, Transition};
use tower_cis::{Principal, Timestamp};

const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);

fn at(ms: u64) -> Timestamp {
    Timestamp::from_millis(T0.as_millis() + ms)
}

fn pending(cancelable: bool) -> TaskInfo {
    TaskInfo {
        id: TaskId::generate("com.vmware.vcenter.vm").unwrap(),
        description: LocalizableMessage::new("com.vmware.vcenter.vm.clone", "Clone a VM"),
        service: "com.vmware.vcenter.vm".into(),
        operation: "clone".into(),
        parent: None,
        target: None,
        cancelable,
        owner: Arc::new(Principal::new("Administrator@vsphere.local")),
        state: TaskState::Pending,
    }
}

fn message(text: &str) -> LocalizableMessage {
    LocalizableMessage::new("x.progress", text.to_owned())
}

/// The rules table of tasks.md, checked on a rendered TaskInfo.
fn assert_follows_the_rules(rendered: &Value) {
    let object = rendered.as_object().expect("TaskInfo renders as an object");
    let has = |field: &str| object.contains_key(field);
    for field in ["description", "service", "operation", "status", "cancelable"] {
        assert!(has(field), "{field} is required: {rendered}");
    }
    let status = object["status"].as_str().unwrap();
    let (required, absent): (&[&str], &[&str]) = match status {
        "PENDING" => (&[], &["progress", "result", "error", "start_time", "end_time"]),
        "RUNNING" | "BLOCKED" => (&["progress", "start_time"], &["error", "end_time"]),
        "SUCCEEDED" => (&["progress", "start_time", "end_time"], &["error"]),
        "FAILED" => (&["progress", "start_time", "end_time"], &[]),
        other => panic!("unknown status {other}"),
    };
    for field in required {
        assert!(has(field), "{status} requires {field}: {rendered}");
    }
    for field in absent {
        assert!(!has(field), "{status} must not have {field}: {rendered}");
    }
    if let Some(progress) = object.get("progress") {
        assert!(progress["completed"].as_i64().unwrap() <= progress["total"].as_i64().unwrap());
    }
}

fn render_both(info: &TaskInfo) {
    for flavor in [ApiFlavor::Modern, ApiFlavor::Legacy] {
        assert_follows_the_rules(&info.to_rest(flavor, false));
        assert_follows_the_rules(&info.to_rest(flavor, true));
    }
}

#[test]
fn pending_renders_no_progress_result_error_or_times() {
    let info = pending(true);
    render_both(&info);
    assert_eq!(
        info.to_rest(ApiFlavor::Modern, false),
        json!({
            "description": {"args": [], "default_message": "Clone a VM", "id": "com.vmware.vcenter.vm.clone"},
            "service": "com.vmware.vcenter.vm",
            "operation": "clone",
            "status": "PENDING",
            "cancelable": true,
            "user": "Administrator@vsphere.local",
        })
    );
}

#[test]
fn running_has_progress_and_start_time() {
    let mut info = pending(true);
    info.apply(Transition::Start, at(10)).unwrap();
    info.apply(Transition::Progress(Progress::new(100, 40, message("40% done"))), at(20)).unwrap();
    render_both(&info);
    let rendered = info.to_rest(ApiFlavor::Modern, false);
    assert_eq!(rendered["status"], "RUNNING");
    assert_eq!(rendered["start_time"], at(10).to_string());
    assert_eq!(
        rendered["progress"],
        json!({"total": 100, "completed": 40, "message": {"args": [], "default_message": "40% done", "id": "x.progress"}})
    );
}

#[test]
fn blocked_and_back_keeps_progress_and_start_time() {
    let mut info = pending(true);
    info.apply(Transition::Start, at(1)).unwrap();
    info.apply(Transition::Block, at(2)).unwrap();
    assert_eq!(info.status(), Status::Blocked);
    render_both(&info);
    assert_eq!(info.apply(Transition::Block, at(3)), Err(Refused::NotApplicable));
    info.apply(Transition::Progress(Progress::new(10, 3, message("3"))), at(3)).unwrap();
    assert_eq!(info.status(), Status::Blocked, "progress while blocked stays blocked");
    info.apply(Transition::Unblock, at(4)).unwrap();
    assert_eq!(info.status(), Status::Running);
    assert_eq!(info.apply(Transition::Unblock, at(5)), Err(Refused::NotApplicable));
    render_both(&info);
}

#[test]
fn succeeded_has_end_time_full_progress_and_its_result_unless_excluded() {
    let mut info = pending(true);
    info.apply(Transition::Start, at(1)).unwrap();
    info.apply(Transition::Progress(Progress::new(10, 4, message("4"))), at(2)).unwrap();
    info.apply(Transition::Succeed(Some(json!({"vm": "vm-44"}))), at(3)).unwrap();
    render_both(&info);
    let rendered = info.to_rest(ApiFlavor::Modern, false);
    assert_eq!(rendered["status"], "SUCCEEDED");
    assert_eq!(rendered["end_time"], at(3).to_string());
    assert_eq!(rendered["progress"]["completed"], 10);
    assert_eq!(rendered["result"], json!({"vm": "vm-44"}));
    assert!(info.to_rest(ApiFlavor::Modern, true).get("result").is_none());
}

#[test]
fn failed_has_its_error_in_each_surface_shape() {
    let mut info = pending(true);
    info.apply(Transition::Start, at(1)).unwrap();
    let error = VapiError::new(ErrorType::NotFound, LocalizableMessage::new("x.missing", "No such VM"));
    info.apply(Transition::Fail(error), at(2)).unwrap();
    render_both(&info);
    let modern = info.to_rest(ApiFlavor::Modern, false);
    assert_eq!(
        modern["error"],
        json!({"error_type": "NOT_FOUND", "messages": [{"args": [], "default_message": "No such VM", "id": "x.missing"}]})
    );
    let legacy = info.to_rest(ApiFlavor::Legacy, false);
    assert_eq!(legacy["error"]["type"], "com.vmware.vapi.std.errors.not_found");
}

#[test]
fn cancel_ends_failed_with_canceled() {
    let mut info = pending(true);
    info.apply(Transition::Start, at(1)).unwrap();
    info.apply(Transition::Cancel, at(5)).unwrap();
    render_both(&info);
    let TaskState::Failed { error, end_time, .. } = &info.state else { panic!("not failed: {info:?}") };
    assert_eq!(error.error_type(), ErrorType::Canceled);
    assert_eq!(*end_time, at(5));
}

#[test]
fn cancel_of_a_pending_task_still_renders_start_time_and_progress() {
    let mut info = pending(true);
    info.apply(Transition::Cancel, at(7)).unwrap();
    render_both(&info);
    let rendered = info.to_rest(ApiFlavor::Modern, false);
    assert_eq!(rendered["start_time"], rendered["end_time"]);
}

#[test]
fn finished_tasks_refuse_every_transition() {
    let mut succeeded = pending(true);
    succeeded.apply(Transition::Succeed(None), at(1)).unwrap();
    let mut failed = pending(true);
    failed.apply(Transition::Fail(tower_cis::tasks::canceled()), at(1)).unwrap();
    for info in [&mut succeeded, &mut failed] {
        let before = info.clone();
        for transition in [
            Transition::Start,
            Transition::Progress(Progress::new(1, 1, message("x"))),
            Transition::Block,
            Transition::Unblock,
            Transition::Succeed(None),
            Transition::Fail(tower_cis::tasks::canceled()),
            Transition::Cancel,
        ] {
            assert_eq!(info.apply(transition, at(9)), Err(Refused::Finished));
        }
        assert_eq!(*info, before, "a refused transition changed the task");
    }
}

#[test]
fn cancel_of_a_non_cancelable_task_is_refused() {
    let mut info = pending(false);
    info.apply(Transition::Start, at(1)).unwrap();
    assert_eq!(info.apply(Transition::Cancel, at(2)), Err(Refused::NotCancelable));
    assert_eq!(info.status(), Status::Running);
}

#[test]
fn start_twice_is_refused_and_progress_is_clamped() {
    let mut info = pending(true);
    info.apply(Transition::Start, at(1)).unwrap();
    assert_eq!(info.apply(Transition::Start, at(2)), Err(Refused::NotApplicable));
    assert_eq!(Progress::new(10, 15, message("x")).completed, 10);
    assert_eq!(Progress::new(-1, -5, message("x")), Progress::new(0, 0, message("x")));
}

#[test]
fn task_ids_have_vmware_format() {
    let id = TaskId::generate("com.vmware.vcenter.vm").unwrap();
    let (uuid, service) = id.as_str().split_once(':').unwrap();
    assert_eq!(service, "com.vmware.vcenter.vm");
    assert_eq!(uuid.len(), 36);
    assert_eq!(&uuid[14..15], "4", "a version 4 UUID");
    assert!(TaskId::parse("8dcf9711-bb6d-47c5-892d-a0e6bef98249:com.vmware.vcenter.vm.evc_mode").is_some());
    for bad in [
        "",
        "x:y",
        "8dcf9711-bb6d-47c5-892d-a0e6bef98249",
        "8dcf9711-bb6d-47c5-892d-a0e6bef98249:",
        "8DCF9711-bb6d-47c5-892d-a0e6bef98249:a",
        "8dcf9711-bb6d-47c5-892d-a0e6bef98249:a b",
    ] {
        assert!(TaskId::parse(bad).is_none(), "{bad:?}");
    }
}
