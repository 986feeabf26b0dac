//! The Redis task store: the shared TaskManager cases (`task_suite`) on one
//! server and on a three-node cluster; then what sharing adds: two instances
//! (a manager and a store each) on one Redis see each other's tasks with live
//! progress, a cancel from either reaches the operation where it runs (over
//! pub/sub, and by polling without it), a cancel racing a completion has one
//! winner across instances, retention by key expiry, the index instead of
//! scans, and SERVICE_UNAVAILABLE within the timeout while Redis is down.

#[macro_use]
mod task_suite;
mod redis_support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use redis::Commands;
use redis_support::{RedisServer, raw_command, shared_cluster, shared_server, unique_prefix};
use serde_json::json;
use task_suite::{SetOnDrop, TaskStoreFactory, admin, alice, becomes_true, bob, gated, one_winner, quick, spec};
use tokio::sync::{mpsc, oneshot};
use tower_cis::error::{ErrorType, LocalizableMessage};
use tower_cis::tasks::{
    Applied, FilterSpec, Progress, RedisTaskStore, Status, TaskContext, TaskId, TaskManager, TaskState, TaskStore,
    Transition,
};
use tower_cis::{Clock, ManualClock, SystemClock};

/// The per-call timeout of the fault tests.
const TIMEOUT: Duration = Duration::from_millis(300);
/// How much longer than the timeout a refused call may take.
const SLACK: Duration = Duration::from_millis(700);
/// How soon a cancel must reach the operation on the other instance.
const PROMPTLY: Duration = Duration::from_secs(2);

struct SingleNode;

impl TaskStoreFactory for SingleNode {
    type Store = RedisTaskStore;

    async fn build(&self, retention: Duration, max_tasks: usize, clock: ManualClock) -> RedisTaskStore {
        configure(retention, max_tasks, clock).url(shared_server().url()).build().expect("bad configuration")
    }
}

struct Cluster;

impl TaskStoreFactory for Cluster {
    type Store = RedisTaskStore;

    async fn build(&self, retention: Duration, max_tasks: usize, clock: ManualClock) -> RedisTaskStore {
        configure(retention, max_tasks, clock).cluster(shared_cluster().urls()).build().expect("bad configuration")
    }
}

fn configure(retention: Duration, max_tasks: usize, clock: ManualClock) -> tower_cis::tasks::RedisTaskStoreBuilder {
    RedisTaskStore::builder()
        .key_prefix(unique_prefix())
        .retention(retention)
        .max_tasks(max_tasks as u64)
        .clock(Arc::new(clock))
        .timeout(Duration::from_secs(5))
}

mod single_node {
    use super::SingleNode;
    task_manager_tests!(SingleNode);
}

mod cluster {
    use super::Cluster;
    task_manager_tests!(Cluster);
}

/// A store of one instance, on the system clock. (A generous timeout: the
/// suite's cases load the shared server meanwhile.)
fn store(url: &str, prefix: &str) -> RedisTaskStore {
    RedisTaskStore::builder()
        .url(url)
        .key_prefix(prefix)
        .timeout(Duration::from_secs(5))
        .build()
        .expect("bad configuration")
}

fn manager(store: RedisTaskStore) -> TaskManager<RedisTaskStore> {
    TaskManager::new(store, Arc::new(SystemClock)).with_administrators("vsphere.local\\Administrators")
}

/// Two instances (a store and a manager each) sharing `prefix` on `url`.
fn instances(url: &str, prefix: &str) -> (TaskManager<RedisTaskStore>, TaskManager<RedisTaskStore>) {
    (manager(store(url, prefix)), manager(store(url, prefix)))
}

/// Starts on `tasks` an operation that runs until dropped; returns its id
/// (once it runs) and the flag its drop sets.
async fn endless(tasks: &TaskManager<RedisTaskStore>) -> (TaskId, Arc<AtomicBool>) {
    let dropped = Arc::new(AtomicBool::new(false));
    let guard = SetOnDrop(Arc::clone(&dropped));
    let (running, is_running) = oneshot::channel::<()>();
    let id = tasks
        .start(spec("endless"), alice(), move |ctx: TaskContext<RedisTaskStore>| async move {
            let _guard = guard;
            ctx.progress(100, 1, LocalizableMessage::new("x", "started")).await;
            let _ = running.send(());
            std::future::pending::<()>().await;
            Ok(json!(null))
        })
        .await
        .unwrap();
    is_running.await.unwrap();
    (id, dropped)
}

fn assert_cancelled(info: &tower_cis::tasks::TaskInfo) {
    let TaskState::Failed { error, .. } = &info.state else { panic!("not failed: {info:?}") };
    assert_eq!(error.error_type(), ErrorType::Canceled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_started_on_one_instance_shows_live_progress_on_the_other() {
    let (a, b) = instances(&shared_server().url(), &unique_prefix());
    let (go, mut going) = mpsc::unbounded_channel::<()>();
    let (done, mut step_done) = mpsc::unbounded_channel::<()>();
    let id = a
        .start(spec("steps"), alice(), move |ctx: TaskContext<RedisTaskStore>| async move {
            for step in 1..=3 {
                going.recv().await;
                ctx.progress(3, step, LocalizableMessage::new("x.step", format!("step {step}"))).await;
                let _ = done.send(());
            }
            going.recv().await;
            Ok(json!({"steps": 3}))
        })
        .await
        .unwrap();
    for step in 1..=3 {
        go.send(()).unwrap();
        step_done.recv().await.unwrap();
        let seen = b.get(&id, &alice()).await.unwrap();
        let TaskState::Running { progress, .. } = &seen.state else { panic!("{seen:?}") };
        assert_eq!((progress.total, progress.completed), (3, step));
        assert_eq!(progress.message.default_message, format!("step {step}"));
        assert_eq!(seen.owner.name(), "alice");
    }
    go.send(()).unwrap();
    let finished = b.wait(&id).await.unwrap();
    let TaskState::Succeeded { result, progress, .. } = &finished.state else { panic!("{finished:?}") };
    assert_eq!(result, &Some(json!({"steps": 3})));
    assert_eq!(progress.completed, 3);
    assert_eq!(a.get(&id, &alice()).await.unwrap(), finished);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancel_on_one_instance_drops_the_operation_running_on_the_other_promptly() {
    let (a, b) = instances(&shared_server().url(), &unique_prefix());
    for _ in 0..3 {
        let (id, dropped) = endless(&a).await;
        let started = Instant::now();
        b.cancel(&id, &alice()).await.unwrap();
        assert!(becomes_true(&dropped, PROMPTLY).await, "the operation on A kept running after B cancelled");
        eprintln!("cancel on B reached A's operation in {:?}", started.elapsed());
        assert_cancelled(&a.get(&id, &alice()).await.unwrap());
        assert_cancelled(&b.get(&id, &alice()).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_cancel_reaches_the_other_instance_too() {
    let prefix = unique_prefix();
    let build = || {
        RedisTaskStore::builder()
            .cluster(shared_cluster().urls())
            .key_prefix(&prefix)
            .build()
            .expect("bad configuration")
    };
    let (a, b) = (manager(build()), manager(build()));
    let (id, dropped) = endless(&a).await;
    let seen = b.get(&id, &alice()).await.unwrap();
    assert_eq!(seen.status(), Status::Running);
    b.cancel(&id, &alice()).await.unwrap();
    assert!(becomes_true(&dropped, PROMPTLY).await, "the operation kept running after a cancel on the cluster");
    assert_cancelled(&a.get(&id, &alice()).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_racing_completion_across_instances_has_one_winner_both_see() {
    let (a, b) = instances(&shared_server().url(), &unique_prefix());
    let (mut cancelled, mut completed) = (0, 0);
    for _ in 0..200 {
        let id = quick(&a, spec("race"), alice()).await;
        let outcome = b.cancel(&id, &alice()).await;
        let on_a = a.wait(&id).await.unwrap();
        if one_winner(outcome, &on_a) {
            cancelled += 1;
        } else {
            completed += 1;
        }
        assert_eq!(b.get(&id, &alice()).await.unwrap(), on_a, "the instances disagree");
    }
    eprintln!("cancel won {cancelled}, completion won {completed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_cancels_from_both_instances_succeed_exactly_once() {
    let (a, b) = instances(&shared_server().url(), &unique_prefix());
    for _ in 0..50 {
        let (id, _release) = gated(&a, alice(), true).await;
        let (owner, root) = (alice(), admin());
        let (on_a, on_b) = tokio::join!(a.cancel(&id, &owner), b.cancel(&id, &root));
        let refused = match (on_a, on_b) {
            (Ok(()), Err(refused)) | (Err(refused), Ok(())) => refused,
            (on_a, on_b) => panic!("not exactly one cancel succeeded: {on_a:?}, {on_b:?}"),
        };
        assert_eq!(refused.error_type(), ErrorType::NotAllowedInCurrentState);
        assert_cancelled(&a.get(&id, &alice()).await.unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_holds_across_instances() {
    let (a, b) = instances(&shared_server().url(), &unique_prefix());
    let (id, _release) = gated(&a, alice(), true).await;
    assert_eq!(b.get(&id, &bob()).await.unwrap_err().error_type(), ErrorType::NotFound);
    assert_eq!(b.cancel(&id, &bob()).await.unwrap_err().error_type(), ErrorType::NotFound);
    let services = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };
    assert!(b.list(&services, &bob()).await.unwrap().is_empty());
    assert_eq!(b.get(&id, &alice()).await.unwrap().status(), Status::Running);
    let (bobs, _release_bob) = gated(&b, bob(), true).await;
    let listed: HashSet<TaskId> = a.list(&services, &admin()).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, HashSet::from([id.clone(), bobs]));
    b.cancel(&id, &admin()).await.unwrap();
    assert_cancelled(&a.get(&id, &alice()).await.unwrap());
}

/// `<prefix>{<prefix>tasks}:<rest>`.
fn key(prefix: &str, rest: &str) -> String {
    format!("{prefix}{{{prefix}tasks}}:{rest}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_tasks_expire_from_redis_after_the_retention_and_leave_the_index() {
    let server = shared_server();
    let prefix = unique_prefix();
    let store = RedisTaskStore::builder()
        .url(server.url())
        .key_prefix(&prefix)
        .retention(Duration::from_millis(500))
        .build()
        .unwrap();
    let tasks = manager(store.clone());
    let (running, _release) = gated(&tasks, alice(), true).await;
    let id = quick(&tasks, spec("quick"), alice()).await;
    tasks.wait(&id).await.unwrap();
    let mut redis = server.connection();
    let record = key(&prefix, &format!("t:{id}"));
    let ttl: i64 = redis.pttl(&record).unwrap();
    assert!((1..=1_500).contains(&ttl), "a finished record's TTL is {ttl} ms");
    let running_ttl: i64 = redis.pttl(key(&prefix, &format!("t:{running}"))).unwrap();
    assert_eq!(running_ttl, -1, "a running task has a TTL");

    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(tasks.get(&id, &alice()).await.unwrap_err().error_type(), ErrorType::NotFound);
    let services = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };
    let listed: Vec<TaskId> = tasks.list(&services, &alice()).await.unwrap().into_iter().map(|t| t.id).collect();
    assert_eq!(listed, vec![running.clone()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.exists::<_, bool>(&record).unwrap() {
        assert!(Instant::now() < deadline, "Redis kept the record past its TTL");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(store.purge_expired().await.unwrap(), 1);
    let indexed: Vec<String> = redis.zrange(key(&prefix, "all"), 0, -1).unwrap();
    assert_eq!(indexed, vec![running.to_string()]);
    let by_service: Vec<String> = redis.zrange(key(&prefix, "s:com.example.vm"), 0, -1).unwrap();
    assert_eq!(by_service, vec![running.to_string()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trips_per_call_and_list_reads_the_index_never_the_keyspace() {
    let server = RedisServer::start();
    let store = store(&server.url(), "monitored:");
    let tasks = manager(store.clone());
    let (id, _release) = gated(&tasks, alice(), true).await;
    for service in ["com.example.vm", "com.example.other"] {
        let spec = tower_cis::tasks::TaskSpec::new(service, "op", LocalizableMessage::new("x", "x"));
        let finished = quick(&tasks, spec, bob()).await;
        tasks.wait(&finished).await.unwrap();
    }
    let services = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };

    let mut monitor = server.monitor();
    let mut measure = |what: &str| {
        let marker = format!("end-of-{what}-{}", unique_prefix());
        raw_command(server.port(), &["ECHO", &marker]).unwrap();
        let lines = monitor.lines_until(&marker);
        let (in_scripts, sent): (Vec<String>, Vec<String>) =
            lines.into_iter().filter(|line| !line.contains("\"PING\"")).partition(|line| line.contains(" lua] "));
        for line in sent.iter().chain(&in_scripts) {
            let line = line.to_ascii_uppercase();
            assert!(!line.contains("\"KEYS\"") && !line.contains("\"SCAN\""), "{what} scanned the keyspace: {line}");
        }
        sent
    };
    store.get(&id).await.unwrap().unwrap();
    assert_eq!(measure("get").len(), 1);
    let progress = Progress::new(2, 2, LocalizableMessage::new("x", "all"));
    let applied = store.apply(&id, Transition::Progress(progress), SystemClock.now()).await.unwrap();
    assert_eq!(applied, Applied::Done);
    assert_eq!(measure("apply").len(), 2);
    let listed = store.list(&services).await.unwrap();
    assert_eq!(listed.len(), 2);
    let sent = measure("list");
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert!(sent[0].contains("\"ZRANGEBYSCORE\""), "{sent:#?}");
    let spec = spec("one-more");
    let another = quick(&tasks, spec, alice()).await;
    tasks.wait(&another).await.unwrap();
    let sent = measure("a whole task");
    eprintln!("a whole quick task (start, run, wait): {} commands: {sent:#?}", sent.len());
}

/// Subscribers of `prefix`'s cancel channel.
fn subscribers(server: &RedisServer, prefix: &str) -> i64 {
    let (_, count): (String, i64) = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(format!("{prefix}tasks:cancelled"))
        .query(&mut server.connection())
        .unwrap();
    count
}

/// Waits up to 5 s for `prefix`'s cancel channel to have `count` subscribers.
async fn await_subscribers(server: &RedisServer, prefix: &str, count: i64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while subscribers(server, prefix) != count {
        assert!(Instant::now() < deadline, "the cancel channel does not have {count} subscribers");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_subscription_is_made_again_and_no_cancel_is_lost() {
    let server = RedisServer::start();
    let prefix = "resubscribe:";
    let (a, b) = instances(&server.url(), prefix);
    for _ in 0..3 {
        let (id, dropped) = endless(&a).await;
        await_subscribers(&server, prefix, 1).await;
        // The cancel is published while A has no subscription: A must find
        // it when it subscribes again.
        assert!(raw_command(server.port(), &["CLIENT", "KILL", "TYPE", "pubsub"]).unwrap().starts_with(':'));
        b.cancel(&id, &alice()).await.unwrap();
        assert!(becomes_true(&dropped, PROMPTLY).await, "a cancel was lost with the subscription");
    }
    await_subscribers(&server, prefix, 1).await;
    // A healthy subscription is kept: its heartbeats do not make it reconnect.
    let subscription = pubsub_clients(&server);
    assert_eq!(subscription.len(), 1);
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    assert_eq!(pubsub_clients(&server), subscription, "the subscription was made again without cause");
}

/// The ids of the server's pub/sub clients.
fn pubsub_clients(server: &RedisServer) -> Vec<String> {
    let list: String =
        redis::cmd("CLIENT").arg(&["LIST", "TYPE", "pubsub"][..]).query(&mut server.connection()).unwrap();
    list.lines().filter_map(|line| line.split(' ').next()).map(str::to_owned).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_pub_sub_a_cancel_still_arrives_by_polling() {
    let server = RedisServer::start();
    // A's Redis user may run every command but use no channel.
    redis::cmd("ACL")
        .arg(&["SETUSER", "nosub", "on", ">secret", "~*", "resetchannels", "+@all"][..])
        .exec(&mut server.connection())
        .unwrap();
    let prefix = "polling:";
    let a = RedisTaskStore::builder()
        .url(format!("redis://nosub:secret@127.0.0.1:{}", server.port()))
        .key_prefix(prefix)
        .cancel_poll_interval(Duration::from_millis(200))
        .build()
        .unwrap();
    let (a, b) = (manager(a), manager(store(&server.url(), prefix)));
    for _ in 0..3 {
        let (id, dropped) = endless(&a).await;
        let started = Instant::now();
        b.cancel(&id, &alice()).await.unwrap();
        assert!(becomes_true(&dropped, PROMPTLY).await, "without pub/sub the cancel never arrived");
        eprintln!("cancel arrived by polling in {:?}", started.elapsed());
        assert_eq!(subscribers(&server, prefix), 0, "the user without channels subscribed");
    }
}

/// Asserts that `call` fails with SERVICE_UNAVAILABLE within the timeout.
async fn assert_unavailable<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, tower_cis::error::VapiError>>,
) {
    let started = Instant::now();
    let outcome = call.await;
    let elapsed = started.elapsed();
    let error = outcome.expect_err(what);
    assert_eq!(error.error_type(), ErrorType::ServiceUnavailable, "{what}: {error}");
    assert!(elapsed < TIMEOUT + SLACK, "{what} took {elapsed:?}");
}

async fn every_call_is_unavailable(tasks: &TaskManager<RedisTaskStore>, id: &TaskId) {
    let services = FilterSpec { services: Some(HashSet::from(["com.example.vm".to_owned()])), ..Default::default() };
    assert_unavailable("get", tasks.get(id, &alice())).await;
    assert_unavailable("list", tasks.list(&services, &alice())).await;
    assert_unavailable("cancel", tasks.cancel(id, &alice())).await;
    assert_unavailable("start", quick_start(tasks)).await;
}

async fn quick_start(tasks: &TaskManager<RedisTaskStore>) -> Result<TaskId, tower_cis::error::VapiError> {
    tasks.start(spec("quick"), alice(), |_ctx: TaskContext<RedisTaskStore>| async { Ok(json!(1)) }).await
}

/// Retries `call` until it succeeds, for up to 10 s.
async fn recovers<T, F, Fut>(what: &str, mut call: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, tower_cis::error::VapiError>>,
{
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) => {
                assert_eq!(error.error_type(), ErrorType::ServiceUnavailable, "{what}: {error}");
                assert!(Instant::now() < deadline, "{what} did not recover: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_or_down_is_service_unavailable_within_the_timeout_then_service_resumes() {
    let mut server = RedisServer::start();
    let store = RedisTaskStore::builder().url(server.url()).key_prefix("faults:").timeout(TIMEOUT).build().unwrap();
    let tasks = manager(store);
    let (id, release) = gated(&tasks, alice(), true).await;
    let owner = alice();

    server.pause();
    every_call_is_unavailable(&tasks, &id).await;
    server.resume();
    let seen = recovers("get after resume", || tasks.get(&id, &owner)).await;
    assert_eq!(seen.status(), Status::Running);
    // The operation finishes while Redis is away: its outcome is recorded
    // once Redis is back.
    server.pause();
    release.send(()).unwrap();
    tokio::time::sleep(TIMEOUT * 2).await;
    server.resume();
    let finished = recovers("wait after resume", || tasks.wait(&id)).await;
    assert_eq!(finished.status(), Status::Succeeded);

    server.kill();
    every_call_is_unavailable(&tasks, &id).await;
    server.restart();
    let id = recovers("start after restart", || quick_start(&tasks)).await;
    assert_eq!(tasks.wait(&id).await.unwrap().status(), Status::Succeeded);
    let (id, dropped) = endless(&tasks).await;
    tasks.cancel(&id, &alice()).await.unwrap();
    assert!(becomes_true(&dropped, PROMPTLY).await, "cancels no longer arrive after a restart");
}
