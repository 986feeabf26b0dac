//! TaskManager: lifecycle, cancel, ownership, retention, filters and many
//! tasks at once.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::oneshot;
use tower_cis::error::{ErrorType, LocalizableMessage, VapiError};
use tower_cis::tasks::{FilterSpec, MemoryTaskStore, Status, TaskContext, TaskId, TaskManager, TaskSpec, TaskState};
use tower_cis::{Clock, ManualClock, Principal, Timestamp};

const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

fn manager(max_tasks: usize) -> (TaskManager, ManualClock) {
    let clock = ManualClock::new(T0);
    let store = MemoryTaskStore::new(DAY, max_tasks, Arc::new(clock.clone()));
    (TaskManager::new(store, Arc::new(clock.clone())).with_administrators("vsphere.local\\Administrators"), clock)
}

fn spec(operation: &str) -> TaskSpec {
    TaskSpec::new("com.example.vm", operation, LocalizableMessage::new(format!("com.example.vm.{operation}"), "Demo"))
}

fn alice() -> Arc<Principal> {
    Arc::new(Principal::new("alice"))
}

fn bob() -> Arc<Principal> {
    Arc::new(Principal::new("bob"))
}

fn admin() -> Arc<Principal> {
    Arc::new(Principal::new("root").with_groups(["vsphere.local\\Administrators"]))
}

/// Starts a task that waits for `release` and reports that it runs.
async fn gated(tasks: &TaskManager, owner: Arc<Principal>, cancelable: bool) -> (TaskId, oneshot::Sender<()>) {
    let (release, released) = oneshot::channel::<()>();
    let (running, is_running) = oneshot::channel::<()>();
    let id = tasks
        .start(spec("gated").cancelable(cancelable), owner, move |ctx: TaskContext| async move {
            ctx.progress(2, 1, LocalizableMessage::new("x", "half")).await;
            let _ = running.send(());
            let _ = released.await;
            Ok(json!("done"))
        })
        .await
        .unwrap();
    is_running.await.unwrap();
    (id, release)
}

#[tokio::test]
async fn task_runs_then_succeeds_with_its_result() {
    let (tasks, _clock) = manager(100);
    let (id, release) = gated(&tasks, alice(), true).await;
    let info = tasks.get(&id, &alice()).await.unwrap();
    assert_eq!(info.status(), Status::Running);
    let TaskState::Running { progress, .. } = &info.state else { panic!() };
    assert_eq!((progress.total, progress.completed), (2, 1));
    release.send(()).unwrap();
    let done = tasks.wait(&id).await.unwrap();
    let TaskState::Succeeded { result, .. } = done.state else { panic!("{done:?}") };
    assert_eq!(result, Some(json!("done")));
}

#[tokio::test]
async fn failing_operation_ends_failed_with_its_error() {
    let (tasks, _clock) = manager(100);
    let id = tasks
        .start(spec("fail"), alice(), |_ctx: TaskContext| async {
            Err(VapiError::new(ErrorType::NotFound, LocalizableMessage::new("x.vm", "No such VM")))
        })
        .await
        .unwrap();
    let TaskState::Failed { error, .. } = tasks.wait(&id).await.unwrap().state else { panic!() };
    assert_eq!(error.error_type(), ErrorType::NotFound);
}

#[tokio::test]
async fn panicking_operation_ends_failed_not_stuck_running() {
    let (tasks, _clock) = manager(100);
    let id = tasks
        .start(spec("panic"), alice(), |_ctx: TaskContext| async {
            if true {
                panic!("the operation broke");
            }
            Ok(json!(null))
        })
        .await
        .unwrap();
    let TaskState::Failed { error, .. } = tasks.wait(&id).await.unwrap().state else { panic!() };
    assert_eq!(error.error_type(), ErrorType::InternalServerError);
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

#[tokio::test]
async fn cancel_ends_the_task_failed_canceled_and_drops_the_operation() {
    let (tasks, _clock) = manager(100);
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = SetOnDrop(Arc::clone(&dropped));
    let (running, is_running) = oneshot::channel::<()>();
    let id = tasks
        .start(spec("long"), alice(), move |_ctx: TaskContext| async move {
            let _guard = guard;
            let _ = running.send(());
            std::future::pending::<()>().await;
            Ok(json!(null))
        })
        .await
        .unwrap();
    is_running.await.unwrap();
    tasks.cancel(&id, &alice()).await.unwrap();
    let info = tasks.get(&id, &alice()).await.unwrap();
    let TaskState::Failed { error, .. } = &info.state else { panic!("{info:?}") };
    assert_eq!(error.error_type(), ErrorType::Canceled);
    for _ in 0..200 {
        if dropped.load(Ordering::SeqCst) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("the cancelled operation kept running");
}

#[tokio::test]
async fn cancel_of_a_finished_task_is_not_allowed_and_a_second_cancel_too() {
    let (tasks, _clock) = manager(100);
    let id = tasks.start(spec("quick"), alice(), |_ctx: TaskContext| async { Ok(json!(1)) }).await.unwrap();
    tasks.wait(&id).await.unwrap();
    let error = tasks.cancel(&id, &alice()).await.unwrap_err();
    assert_eq!(error.error_type(), ErrorType::NotAllowedInCurrentState);

    let (id, _release) = gated(&tasks, alice(), true).await;
    tasks.cancel(&id, &alice()).await.unwrap();
    let error = tasks.cancel(&id, &alice()).await.unwrap_err();
    assert_eq!(error.error_type(), ErrorType::NotAllowedInCurrentState);
}

#[tokio::test]
async fn cancel_of_a_non_cancelable_task_is_unsupported() {
    let (tasks, _clock) = manager(100);
    let (id, release) = gated(&tasks, alice(), false).await;
    let error = tasks.cancel(&id, &alice()).await.unwrap_err();
    assert_eq!(error.error_type(), ErrorType::Unsupported);
    release.send(()).unwrap();
    assert_eq!(tasks.wait(&id).await.unwrap().status(), Status::Succeeded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_completion_has_exactly_one_winner() {
    let (tasks, _clock) = manager(10_000);
    let (mut cancelled, mut completed) = (0, 0);
    for _ in 0..300 {
        let id = tasks.start(spec("race"), alice(), |_ctx: TaskContext| async { Ok(json!(1)) }).await.unwrap();
        let outcome = tasks.cancel(&id, &alice()).await;
        let info = tasks.wait(&id).await.unwrap();
        match (outcome, &info.state) {
            (Ok(()), TaskState::Failed { error, .. }) if error.error_type() == ErrorType::Canceled => cancelled += 1,
            (Err(e), TaskState::Succeeded { .. }) if e.error_type() == ErrorType::NotAllowedInCurrentState => {
                completed += 1
            }
            (outcome, state) => panic!("inconsistent outcome: cancel {outcome:?}, final {state:?}"),
        }
    }
    assert_eq!(cancelled + completed, 300);
}

#[tokio::test]
async fn unknown_task_is_not_found() {
    let (tasks, _clock) = manager(100);
    let id = TaskId::generate("com.example.vm").unwrap();
    assert_eq!(tasks.get(&id, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
    assert_eq!(tasks.cancel(&id, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
}

#[tokio::test]
async fn another_users_task_answers_as_if_it_did_not_exist() {
    let (tasks, _clock) = manager(100);
    let (id, _release) = gated(&tasks, alice(), true).await;
    assert_eq!(tasks.get(&id, &bob()).await.unwrap_err().error_type(), ErrorType::NotFound);
    assert_eq!(tasks.cancel(&id, &bob()).await.unwrap_err().error_type(), ErrorType::NotFound);
    let filter = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };
    assert!(tasks.list(&filter, &bob()).await.unwrap().is_empty());
    assert_eq!(tasks.get(&id, &alice()).await.unwrap().status(), Status::Running);
}

#[tokio::test]
async fn administrators_see_and_cancel_every_users_tasks() {
    let (tasks, _clock) = manager(100);
    let (id, _release) = gated(&tasks, alice(), true).await;
    assert_eq!(tasks.get(&id, &admin()).await.unwrap().owner.name(), "alice");
    tasks.cancel(&id, &admin()).await.unwrap();
    assert_eq!(tasks.get(&id, &alice()).await.unwrap().status(), Status::Failed);
}

#[tokio::test]
async fn finished_tasks_are_forgotten_after_the_retention_time() {
    let (tasks, clock) = manager(100);
    let id = tasks.start(spec("quick"), alice(), |_ctx: TaskContext| async { Ok(json!(1)) }).await.unwrap();
    tasks.wait(&id).await.unwrap();
    clock.advance(DAY - Duration::from_millis(1));
    assert!(tasks.get(&id, &alice()).await.is_ok(), "forgotten before the retention time");
    clock.advance(Duration::from_millis(1));
    assert_eq!(tasks.get(&id, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
}

#[tokio::test]
async fn running_tasks_are_never_forgotten() {
    let (tasks, clock) = manager(100);
    let (id, _release) = gated(&tasks, alice(), true).await;
    clock.advance(DAY * 10);
    assert_eq!(tasks.get(&id, &alice()).await.unwrap().status(), Status::Running);
}

#[tokio::test]
async fn the_cap_evicts_the_oldest_finished_and_refuses_when_all_run() {
    let (tasks, clock) = manager(3);
    let first = tasks.start(spec("quick"), alice(), |_ctx: TaskContext| async { Ok(json!(1)) }).await.unwrap();
    tasks.wait(&first).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let (_a, _ra) = gated(&tasks, alice(), true).await;
    let (_b, _rb) = gated(&tasks, alice(), true).await;
    let (_c, _rc) = gated(&tasks, alice(), true).await;
    assert_eq!(tasks.get(&first, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
    let refused = tasks.start(spec("more"), alice(), |_ctx: TaskContext| async { Ok(json!(1)) }).await.unwrap_err();
    assert_eq!(refused.error_type(), ErrorType::UnableToAllocateResource);
}

#[tokio::test]
async fn block_and_unblock_show_in_the_status() {
    let (tasks, _clock) = manager(100);
    let (blocked, is_blocked) = oneshot::channel::<()>();
    let (go_on, going_on) = oneshot::channel::<()>();
    let id = tasks
        .start(spec("blocking"), alice(), move |ctx: TaskContext| async move {
            ctx.block().await;
            let _ = blocked.send(());
            let _ = going_on.await;
            ctx.unblock().await;
            Ok(json!(null))
        })
        .await
        .unwrap();
    is_blocked.await.unwrap();
    assert_eq!(tasks.get(&id, &alice()).await.unwrap().status(), Status::Blocked);
    go_on.send(()).unwrap();
    assert_eq!(tasks.wait(&id).await.unwrap().status(), Status::Succeeded);
}

#[tokio::test]
async fn list_filters_by_every_field() {
    let (tasks, _clock) = manager(100);
    let quick = |tasks: &TaskManager, op: &'static str, owner| {
        let tasks = tasks.clone();
        async move {
            let spec = spec(op).with_target("VirtualMachine", format!("vm-{op}"));
            let id = tasks.start(spec, owner, |_ctx: TaskContext| async { Ok(json!(1)) }).await.unwrap();
            tasks.wait(&id).await.unwrap();
            id
        }
    };
    let a = quick(&tasks, "a", alice()).await;
    let b = quick(&tasks, "b", bob()).await;
    let (running, _release) = gated(&tasks, alice(), true).await;
    let services = Some(HashSet::from(["com.example.vm".to_owned()]));
    let ids = |found: Vec<tower_cis::tasks::TaskInfo>| found.into_iter().map(|i| i.id).collect::<HashSet<_>>();

    let all = FilterSpec { services: services.clone(), ..Default::default() };
    assert_eq!(ids(tasks.list(&all, &admin()).await.unwrap()), HashSet::from([a.clone(), b.clone(), running.clone()]));
    let by_op = FilterSpec { operations: Some(HashSet::from(["a".to_owned()])), ..all.clone() };
    assert_eq!(ids(tasks.list(&by_op, &admin()).await.unwrap()), HashSet::from([a.clone()]));
    let by_status = FilterSpec { status: Some(HashSet::from([Status::Running])), ..all.clone() };
    assert_eq!(ids(tasks.list(&by_status, &admin()).await.unwrap()), HashSet::from([running.clone()]));
    let by_user = FilterSpec { users: Some(HashSet::from(["bob".to_owned()])), ..all.clone() };
    assert_eq!(ids(tasks.list(&by_user, &admin()).await.unwrap()), HashSet::from([b.clone()]));
    let target = tower_cis::tasks::DynamicId { kind: "VirtualMachine".into(), id: "vm-b".into() };
    let by_target = FilterSpec { targets: Some(vec![target]), ..all.clone() };
    assert_eq!(ids(tasks.list(&by_target, &admin()).await.unwrap()), HashSet::from([b.clone()]));
    let by_id = FilterSpec { tasks: Some(HashSet::from([a.to_string(), "junk".to_owned()])), ..Default::default() };
    assert_eq!(ids(tasks.list(&by_id, &admin()).await.unwrap()), HashSet::from([a.clone()]));
    let other_service = FilterSpec { services: Some(HashSet::from(["com.other".to_owned()])), ..Default::default() };
    assert!(tasks.list(&other_service, &admin()).await.unwrap().is_empty());
    assert_eq!(ids(tasks.list(&all, &alice()).await.unwrap()), HashSet::from([a, running]), "alice sees only hers");
}

#[tokio::test]
async fn list_needs_tasks_or_services() {
    let (tasks, _clock) = manager(100);
    let error = tasks.list(&FilterSpec::default(), &alice()).await.unwrap_err();
    assert_eq!(error.error_type(), ErrorType::InvalidArgument);
    let only_status = FilterSpec { status: Some(HashSet::from([Status::Running])), ..Default::default() };
    assert_eq!(tasks.list(&only_status, &alice()).await.unwrap_err().error_type(), ErrorType::InvalidArgument);
}

#[tokio::test]
async fn list_over_1000_matches_is_resource_inaccessible() {
    let (tasks, _clock) = manager(5_000);
    for _ in 0..1001 {
        tasks.start(spec("many"), alice(), |_ctx: TaskContext| async { Ok(json!(1)) }).await.unwrap();
    }
    let all = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };
    assert_eq!(tasks.list(&all, &alice()).await.unwrap_err().error_type(), ErrorType::ResourceInaccessible);
    let one = FilterSpec { operations: Some(HashSet::from(["none".to_owned()])), ..all };
    assert!(tasks.list(&one, &alice()).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_concurrent_tasks_report_progress_and_finish() {
    let (tasks, _clock) = manager(10_000);
    let mut ids = Vec::new();
    for i in 0..5_000 {
        let id = tasks
            .start(spec("bulk"), alice(), move |ctx: TaskContext| async move {
                for step in 1..=10 {
                    ctx.progress(10, step, LocalizableMessage::new("x", "step")).await;
                    tokio::task::yield_now().await;
                }
                Ok(json!(i))
            })
            .await
            .unwrap();
        ids.push(id);
    }
    for (i, id) in ids.iter().enumerate() {
        let TaskState::Succeeded { result, progress, .. } = tasks.wait(id).await.unwrap().state else { panic!() };
        assert_eq!(result, Some(json!(i)));
        assert_eq!(progress.completed, 10);
    }
}

#[tokio::test]
async fn tasks_keep_their_owner_not_a_session() {
    // Ownership is by principal: a new principal value with the same name
    // (a new session of the same user) sees the task.
    let (tasks, clock) = manager(100);
    let (id, release) = gated(&tasks, alice(), true).await;
    clock.advance(Duration::from_secs(3600));
    release.send(()).unwrap();
    assert_eq!(tasks.wait(&id).await.unwrap().status(), Status::Succeeded);
    let same_user_again = Arc::new(Principal::new("alice"));
    assert_eq!(tasks.get(&id, &same_user_again).await.unwrap().status(), Status::Succeeded);
    assert!(clock.now() > T0);
}
