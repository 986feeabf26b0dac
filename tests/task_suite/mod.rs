//! TaskManager behaviours every task store must show: lifecycle, cancel,
//! ownership, retention, caps, filters and many tasks at once. Each case is
//! generic over a [`TaskStoreFactory`]; `task_manager_tests!` turns them all
//! into tests for one store.
#![allow(dead_code)]

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::sync::oneshot;
use tower_cis::error::{ErrorType, LocalizableMessage, VapiError};
use tower_cis::tasks::{
    FilterSpec, Status, TaskContext, TaskId, TaskInfo, TaskManager, TaskSpec, TaskState, TaskStore,
};
use tower_cis::{Clock, ManualClock, Principal, Timestamp};

pub const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);
pub const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Builds fresh, empty task stores.
pub trait TaskStoreFactory: Sync {
    /// The store under test.
    type Store: TaskStore;

    /// A fresh store that keeps finished tasks for `retention`, holds at most
    /// `max_tasks` and reads time from `clock`.
    fn build(
        &self,
        retention: Duration,
        max_tasks: usize,
        clock: ManualClock,
    ) -> impl Future<Output = Self::Store> + Send;
}

/// A manager over a fresh store on a manual clock at [`T0`], retention a day.
pub async fn manager<F: TaskStoreFactory>(factory: &F, max_tasks: usize) -> (TaskManager<F::Store>, ManualClock) {
    let clock = ManualClock::new(T0);
    let store = factory.build(DAY, max_tasks, clock.clone()).await;
    (TaskManager::new(store, Arc::new(clock.clone())).with_administrators("vsphere.local\\Administrators"), clock)
}

pub fn spec(operation: &str) -> TaskSpec {
    TaskSpec::new("com.example.vm", operation, LocalizableMessage::new(format!("com.example.vm.{operation}"), "Demo"))
}

pub fn alice() -> Arc<Principal> {
    Arc::new(Principal::new("alice"))
}

pub fn bob() -> Arc<Principal> {
    Arc::new(Principal::new("bob"))
}

pub fn admin() -> Arc<Principal> {
    Arc::new(Principal::new("root").with_groups(["vsphere.local\\Administrators"]))
}

/// Starts a task that reports half way, then waits for `release`; returns
/// once it runs.
pub async fn gated<T: TaskStore>(
    tasks: &TaskManager<T>,
    owner: Arc<Principal>,
    cancelable: bool,
) -> (TaskId, oneshot::Sender<()>) {
    let (release, released) = oneshot::channel::<()>();
    let (running, is_running) = oneshot::channel::<()>();
    let id = tasks
        .start(spec("gated").cancelable(cancelable), owner, move |ctx: TaskContext<T>| async move {
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

/// Starts a task that succeeds at once with `1`.
pub async fn quick<T: TaskStore>(tasks: &TaskManager<T>, spec: TaskSpec, owner: Arc<Principal>) -> TaskId {
    tasks.start(spec, owner, |_ctx: TaskContext<T>| async { Ok(json!(1)) }).await.unwrap()
}

pub async fn task_runs_then_succeeds_with_its_result<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
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

pub async fn failing_operation_ends_failed_with_its_error<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let id = tasks
        .start(spec("fail"), alice(), |_ctx: TaskContext<F::Store>| async {
            Err(VapiError::new(ErrorType::NotFound, LocalizableMessage::new("x.vm", "No such VM")))
        })
        .await
        .unwrap();
    let TaskState::Failed { error, .. } = tasks.wait(&id).await.unwrap().state else { panic!() };
    assert_eq!(error.error_type(), ErrorType::NotFound);
    assert_eq!(error.messages()[0].default_message, "No such VM");
}

pub async fn panicking_operation_ends_failed_not_stuck_running<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let id = tasks
        .start(spec("panic"), alice(), |_ctx: TaskContext<F::Store>| async {
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

pub struct SetOnDrop(pub Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Polls `flag` for up to `within`.
pub async fn becomes_true(flag: &AtomicBool, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        if flag.load(Ordering::SeqCst) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    flag.load(Ordering::SeqCst)
}

pub async fn cancel_ends_the_task_failed_canceled_and_drops_the_operation<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = SetOnDrop(Arc::clone(&dropped));
    let (running, is_running) = oneshot::channel::<()>();
    let id = tasks
        .start(spec("long"), alice(), move |_ctx: TaskContext<F::Store>| async move {
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
    assert!(becomes_true(&dropped, Duration::from_secs(1)).await, "the cancelled operation kept running");
}

pub async fn cancel_of_a_finished_task_is_not_allowed_and_a_second_cancel_too<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let id = quick(&tasks, spec("quick"), alice()).await;
    tasks.wait(&id).await.unwrap();
    let error = tasks.cancel(&id, &alice()).await.unwrap_err();
    assert_eq!(error.error_type(), ErrorType::NotAllowedInCurrentState);

    let (id, _release) = gated(&tasks, alice(), true).await;
    tasks.cancel(&id, &alice()).await.unwrap();
    let error = tasks.cancel(&id, &alice()).await.unwrap_err();
    assert_eq!(error.error_type(), ErrorType::NotAllowedInCurrentState);
}

pub async fn cancel_of_a_non_cancelable_task_is_unsupported<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let (id, release) = gated(&tasks, alice(), false).await;
    let error = tasks.cancel(&id, &alice()).await.unwrap_err();
    assert_eq!(error.error_type(), ErrorType::Unsupported);
    release.send(()).unwrap();
    assert_eq!(tasks.wait(&id).await.unwrap().status(), Status::Succeeded);
}

/// Checks that the cancel's answer and the task's final state agree: either
/// the cancel won (FAILED, CANCELED) or the completion did (SUCCEEDED, and
/// the cancel was refused). Returns whether the cancel won.
pub fn one_winner(outcome: Result<(), VapiError>, info: &TaskInfo) -> bool {
    match (outcome, &info.state) {
        (Ok(()), TaskState::Failed { error, .. }) if error.error_type() == ErrorType::Canceled => true,
        (Err(e), TaskState::Succeeded { .. }) if e.error_type() == ErrorType::NotAllowedInCurrentState => false,
        (outcome, state) => panic!("inconsistent outcome: cancel {outcome:?}, final {state:?}"),
    }
}

pub async fn cancel_racing_completion_has_exactly_one_winner<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 10_000).await;
    let (mut cancelled, mut completed) = (0, 0);
    for _ in 0..300 {
        let id = quick(&tasks, spec("race"), alice()).await;
        let outcome = tasks.cancel(&id, &alice()).await;
        let info = tasks.wait(&id).await.unwrap();
        if one_winner(outcome, &info) {
            cancelled += 1;
        } else {
            completed += 1;
        }
    }
    assert_eq!(cancelled + completed, 300);
}

pub async fn unknown_task_is_not_found<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let id = TaskId::generate("com.example.vm").unwrap();
    assert_eq!(tasks.get(&id, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
    assert_eq!(tasks.cancel(&id, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
}

pub async fn another_users_task_answers_as_if_it_did_not_exist<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let (id, _release) = gated(&tasks, alice(), true).await;
    assert_eq!(tasks.get(&id, &bob()).await.unwrap_err().error_type(), ErrorType::NotFound);
    assert_eq!(tasks.cancel(&id, &bob()).await.unwrap_err().error_type(), ErrorType::NotFound);
    let filter = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };
    assert!(tasks.list(&filter, &bob()).await.unwrap().is_empty());
    assert_eq!(tasks.get(&id, &alice()).await.unwrap().status(), Status::Running);
}

pub async fn administrators_see_and_cancel_every_users_tasks<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let (id, _release) = gated(&tasks, alice(), true).await;
    assert_eq!(tasks.get(&id, &admin()).await.unwrap().owner.name(), "alice");
    tasks.cancel(&id, &admin()).await.unwrap();
    assert_eq!(tasks.get(&id, &alice()).await.unwrap().status(), Status::Failed);
}

pub async fn finished_tasks_are_forgotten_after_the_retention_time<F: TaskStoreFactory>(factory: &F) {
    let (tasks, clock) = manager(factory, 100).await;
    let id = quick(&tasks, spec("quick"), alice()).await;
    tasks.wait(&id).await.unwrap();
    let services = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };
    clock.advance(DAY - Duration::from_millis(1));
    assert!(tasks.get(&id, &alice()).await.is_ok(), "forgotten before the retention time");
    assert_eq!(tasks.list(&services, &alice()).await.unwrap().len(), 1);
    clock.advance(Duration::from_millis(1));
    assert_eq!(tasks.get(&id, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
    assert!(tasks.list(&services, &alice()).await.unwrap().is_empty(), "a forgotten task is listed");
    assert_eq!(tasks.cancel(&id, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
}

pub async fn running_tasks_are_never_forgotten<F: TaskStoreFactory>(factory: &F) {
    let (tasks, clock) = manager(factory, 100).await;
    let (id, _release) = gated(&tasks, alice(), true).await;
    clock.advance(DAY * 10);
    assert_eq!(tasks.get(&id, &alice()).await.unwrap().status(), Status::Running);
}

pub async fn the_cap_evicts_the_oldest_finished_and_refuses_when_all_run<F: TaskStoreFactory>(factory: &F) {
    let (tasks, clock) = manager(factory, 3).await;
    let first = quick(&tasks, spec("quick"), alice()).await;
    tasks.wait(&first).await.unwrap();
    clock.advance(Duration::from_secs(1));
    let (_a, _ra) = gated(&tasks, alice(), true).await;
    let (_b, _rb) = gated(&tasks, alice(), true).await;
    let (_c, _rc) = gated(&tasks, alice(), true).await;
    assert_eq!(tasks.get(&first, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
    let refused =
        tasks.start(spec("more"), alice(), |_ctx: TaskContext<F::Store>| async { Ok(json!(1)) }).await.unwrap_err();
    assert_eq!(refused.error_type(), ErrorType::UnableToAllocateResource);
}

pub async fn block_and_unblock_show_in_the_status<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let (blocked, is_blocked) = oneshot::channel::<()>();
    let (go_on, going_on) = oneshot::channel::<()>();
    let id = tasks
        .start(spec("blocking"), alice(), move |ctx: TaskContext<F::Store>| async move {
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
    let done = tasks.wait(&id).await.unwrap();
    let TaskState::Succeeded { result, .. } = done.state else { panic!("{done:?}") };
    assert_eq!(result, Some(json!(null)), "a null result is still a result");
}

pub async fn list_filters_by_every_field<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let finished = |op: &'static str, owner| {
        let tasks = tasks.clone();
        async move {
            let id = quick(&tasks, spec(op).with_target("VirtualMachine", format!("vm-{op}")), owner).await;
            tasks.wait(&id).await.unwrap();
            id
        }
    };
    let a = finished("a", alice()).await;
    let b = finished("b", bob()).await;
    let (running, _release) = gated(&tasks, alice(), true).await;
    let services = Some(HashSet::from(["com.example.vm".to_owned()]));
    let ids = |found: Vec<TaskInfo>| found.into_iter().map(|i| i.id).collect::<HashSet<_>>();

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
    let id_and_other_service = FilterSpec { tasks: Some(HashSet::from([a.to_string()])), ..other_service };
    assert!(tasks.list(&id_and_other_service, &admin()).await.unwrap().is_empty());
    assert_eq!(ids(tasks.list(&all, &alice()).await.unwrap()), HashSet::from([a, running]), "alice sees only hers");
}

pub async fn list_needs_tasks_or_services<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 100).await;
    let error = tasks.list(&FilterSpec::default(), &alice()).await.unwrap_err();
    assert_eq!(error.error_type(), ErrorType::InvalidArgument);
    let only_status = FilterSpec { status: Some(HashSet::from([Status::Running])), ..Default::default() };
    assert_eq!(tasks.list(&only_status, &alice()).await.unwrap_err().error_type(), ErrorType::InvalidArgument);
}

pub async fn list_over_1000_matches_is_resource_inaccessible<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 5_000).await;
    for _ in 0..1001 {
        quick(&tasks, spec("many"), alice()).await;
    }
    let all = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };
    assert_eq!(tasks.list(&all, &alice()).await.unwrap_err().error_type(), ErrorType::ResourceInaccessible);
    let one = FilterSpec { operations: Some(HashSet::from(["none".to_owned()])), ..all };
    assert!(tasks.list(&one, &alice()).await.unwrap().is_empty());
}

pub async fn thousands_of_concurrent_tasks_report_progress_and_finish<F: TaskStoreFactory>(factory: &F) {
    let (tasks, _clock) = manager(factory, 10_000).await;
    let mut ids = Vec::new();
    for i in 0..5_000 {
        let id = tasks
            .start(spec("bulk"), alice(), move |ctx: TaskContext<F::Store>| async move {
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

pub async fn tasks_keep_their_owner_not_a_session<F: TaskStoreFactory>(factory: &F) {
    // Ownership is by principal: a new principal value with the same name
    // (a new session of the same user) sees the task.
    let (tasks, clock) = manager(factory, 100).await;
    let (id, release) = gated(&tasks, alice(), true).await;
    clock.advance(Duration::from_secs(3600));
    release.send(()).unwrap();
    assert_eq!(tasks.wait(&id).await.unwrap().status(), Status::Succeeded);
    let same_user_again = Arc::new(Principal::new("alice"));
    assert_eq!(tasks.get(&id, &same_user_again).await.unwrap().status(), Status::Succeeded);
    assert!(clock.now() > T0);
}

/// Every case above as a `#[tokio::test]` for the factory `$factory`.
macro_rules! task_manager_tests {
    ($factory:expr) => {
        task_manager_tests!(@cases $factory; current_thread;
            task_runs_then_succeeds_with_its_result,
            failing_operation_ends_failed_with_its_error,
            panicking_operation_ends_failed_not_stuck_running,
            cancel_ends_the_task_failed_canceled_and_drops_the_operation,
            cancel_of_a_finished_task_is_not_allowed_and_a_second_cancel_too,
            cancel_of_a_non_cancelable_task_is_unsupported,
            unknown_task_is_not_found,
            another_users_task_answers_as_if_it_did_not_exist,
            administrators_see_and_cancel_every_users_tasks,
            finished_tasks_are_forgotten_after_the_retention_time,
            running_tasks_are_never_forgotten,
            the_cap_evicts_the_oldest_finished_and_refuses_when_all_run,
            block_and_unblock_show_in_the_status,
            list_filters_by_every_field,
            list_needs_tasks_or_services,
            list_over_1000_matches_is_resource_inaccessible,
            tasks_keep_their_owner_not_a_session,
        );
        task_manager_tests!(@cases $factory; multi_thread;
            cancel_racing_completion_has_exactly_one_winner,
            thousands_of_concurrent_tasks_report_progress_and_finish,
        );
    };
    (@cases $factory:expr; current_thread; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $case() {
                crate::task_suite::$case(&$factory).await;
            }
        )*
    };
    (@cases $factory:expr; multi_thread; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                crate::task_suite::$case(&$factory).await;
            }
        )*
    };
}
