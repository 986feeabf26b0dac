//! The Tasks service over REST, and `vmw-task=true`, through the example
//! server's application (in process, no sockets).

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_cis::auth::{HashCost, UserDirectory};
use tower_cis::{Cis, CisConfig, ExpiryPolicy, ManualClock, Timestamp};

const T0: Timestamp = Timestamp::from_millis(1_796_413_098_110);

struct Fixture {
    cis: app::ExampleCis,
    tasks: tower_cis::tasks::TaskManager,
    clock: ManualClock,
}

fn fixture() -> Fixture {
    let users = UserDirectory::new()
        .with_cost(HashCost::insecure_fast_for_tests())
        .with_user("alice", "alice-pw")
        .unwrap()
        .with_user("bob", "bob-pw")
        .unwrap()
        .with_hashed_user(
            "root",
            &tower_cis::auth::hash_password("root-pw", HashCost::insecure_fast_for_tests()).unwrap(),
            ["vsphere.local\\Administrators"],
        )
        .unwrap();
    let clock = ManualClock::new(T0);
    let policy = ExpiryPolicy::default().with_idle_timeout(Duration::from_secs(60));
    let cis = Cis::in_memory(users, CisConfig { policy, clock: Arc::new(clock.clone()), ..CisConfig::default() });
    let tasks = app::demo_tasks(cis.clock());
    Fixture { cis, tasks, clock }
}

impl Fixture {
    async fn call(&self, request: Request<Body>) -> (StatusCode, String) {
        let app = app::application(&self.cis, self.tasks.clone());
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    async fn login(&self, user: &str) -> String {
        let basic = base64_basic(user, &format!("{user}-pw"));
        let request = Request::post("/api/session").header("authorization", basic).body(Body::empty()).unwrap();
        let (status, body) = self.call(request).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn send(&self, method: &str, path: &str, session: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(path).header("vmware-api-session-id", session);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        let (status, text) = self.call(request.body(body).unwrap()).await;
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) })
    }

    async fn start(&self, path: &str, session: &str) -> String {
        let (status, id) = self.send("POST", path, session, None).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{id}");
        id.as_str().expect("a task id as a bare JSON string").to_owned()
    }

    async fn wait_status(&self, id: &str, session: &str, status: &str) -> Value {
        for _ in 0..400 {
            let (code, info) = self.send("GET", &format!("/api/cis/tasks/{id}"), session, None).await;
            assert_eq!(code, StatusCode::OK, "{info}");
            if info["status"] == status {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("task {id} never reached {status}");
    }
}

fn base64_basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")))
}

#[tokio::test]
async fn vmw_task_true_answers_at_once_with_a_task_that_succeeds_with_the_result() {
    let f = fixture();
    let alice = f.login("alice").await;
    let id = f.start("/api/demo/wait?seconds=0&vmw-task=true", &alice).await;
    assert!(id.ends_with(":com.vmware.cis.demo"), "{id}");
    let info = f.wait_status(&id, &alice, "SUCCEEDED").await;
    assert_eq!(info["result"], json!({"waited_seconds": 0}));
    assert_eq!(info["operation"], "wait");
    assert_eq!(info["user"], "alice");
    assert_eq!(info["progress"]["completed"], info["progress"]["total"]);
}

#[tokio::test]
async fn the_same_handler_without_the_flag_answers_synchronously() {
    let f = fixture();
    let alice = f.login("alice").await;
    let (status, body) = f.send("POST", "/api/demo/wait?seconds=0", &alice, None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"waited_seconds": 0})));
    let (status, body) = f.send("POST", "/api/demo/fail?seconds=0", &alice, None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body["error_type"], "ERROR");
}

#[tokio::test]
async fn failing_operation_as_a_task_ends_failed_with_its_error() {
    let f = fixture();
    let alice = f.login("alice").await;
    let id = f.start("/api/demo/fail?seconds=0&vmw-task=true", &alice).await;
    let info = f.wait_status(&id, &alice, "FAILED").await;
    assert_eq!(info["error"]["error_type"], "ERROR");
    assert_eq!(info["error"]["messages"][0]["id"], "com.vmware.cis.demo.fail");
    assert_eq!(info["cancelable"], false);
}

#[tokio::test]
async fn cancel_stops_the_demo_wait_at_once() {
    let f = fixture();
    let alice = f.login("alice").await;
    let id = f.start("/api/demo/wait?seconds=300&vmw-task=true", &alice).await;
    f.wait_status(&id, &alice, "RUNNING").await;
    let (status, body) = f.send("POST", &format!("/api/cis/tasks/{id}?action=cancel"), &alice, None).await;
    assert_eq!((status, body), (StatusCode::NO_CONTENT, Value::Null));
    let (_, info) = f.send("GET", &format!("/api/cis/tasks/{id}"), &alice, None).await;
    assert_eq!(info["status"], "FAILED");
    assert_eq!(info["error"]["error_type"], "CANCELED");
    let (status, body) = f.send("POST", &format!("/api/cis/tasks/{id}?action=cancel"), &alice, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_type"], "NOT_ALLOWED_IN_CURRENT_STATE");
}

#[tokio::test]
async fn cancel_of_a_non_cancelable_task_is_400_unsupported() {
    let f = fixture();
    let alice = f.login("alice").await;
    let id = f.start("/api/demo/fail?seconds=300&vmw-task=true", &alice).await;
    f.wait_status(&id, &alice, "RUNNING").await;
    let (status, body) = f.send("POST", &format!("/api/cis/tasks/{id}?action=cancel"), &alice, None).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error_type"], "UNSUPPORTED");
}

#[tokio::test]
async fn unknown_and_malformed_task_ids_are_404() {
    let f = fixture();
    let alice = f.login("alice").await;
    for path in [
        "/api/cis/tasks/8dcf9711-bb6d-47c5-892d-a0e6bef98249:com.vmware.cis.demo",
        "/api/cis/tasks/not-a-task",
        "/rest/cis/tasks/not-a-task",
    ] {
        let (status, body) = f.send("GET", path, &alice, None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        let kind = body.get("error_type").or_else(|| body.get("type")).unwrap();
        assert!(kind == "NOT_FOUND" || kind == "com.vmware.vapi.std.errors.not_found", "{body}");
    }
}

#[tokio::test]
async fn another_users_task_is_404_and_administrators_see_it() {
    let f = fixture();
    let (alice, bob, root) = (f.login("alice").await, f.login("bob").await, f.login("root").await);
    let id = f.start("/api/demo/wait?seconds=300&vmw-task=true", &alice).await;
    let (status, _) = f.send("GET", &format!("/api/cis/tasks/{id}"), &bob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = f.send("POST", &format!("/api/cis/tasks/{id}?action=cancel"), &bob, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, info) = f.send("GET", &format!("/api/cis/tasks/{id}"), &root, None).await;
    assert_eq!((status, &info["user"]), (StatusCode::OK, &json!("alice")));
    let (status, _) = f.send("POST", &format!("/api/cis/tasks/{id}?action=cancel"), &root, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_task_outlives_the_session_that_started_it() {
    let f = fixture();
    let first = f.login("alice").await;
    let id = f.start("/api/demo/wait?seconds=0&vmw-task=true", &first).await;
    let (status, _) = f.send("DELETE", "/api/session", &first, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let second = f.login("alice").await;
    f.wait_status(&id, &second, "SUCCEEDED").await;
    // And after the first session would have idle-expired.
    f.clock.advance(Duration::from_secs(120));
    let third = f.login("alice").await;
    let (status, info) = f.send("GET", &format!("/api/cis/tasks/{id}"), &third, None).await;
    assert_eq!((status, &info["status"]), (StatusCode::OK, &json!("SUCCEEDED")));
}

#[tokio::test]
async fn get_can_exclude_the_result_and_rejects_bad_flags() {
    let f = fixture();
    let alice = f.login("alice").await;
    let id = f.start("/api/demo/wait?seconds=0&vmw-task=true", &alice).await;
    f.wait_status(&id, &alice, "SUCCEEDED").await;
    let (_, info) =
        f.send("GET", &format!("/api/cis/tasks/{id}?exclude_result=true&return_all=true"), &alice, None).await;
    assert!(info.get("result").is_none(), "{info}");
    let (status, body) = f.send("GET", &format!("/api/cis/tasks/{id}?exclude_result=maybe"), &alice, None).await;
    assert_eq!((status, &body["error_type"]), (StatusCode::BAD_REQUEST, &json!("INVALID_ARGUMENT")));
}

#[tokio::test]
async fn modern_list_takes_a_filter_spec_and_answers_a_map() {
    let f = fixture();
    let alice = f.login("alice").await;
    let done = f.start("/api/demo/wait?seconds=0&vmw-task=true", &alice).await;
    f.wait_status(&done, &alice, "SUCCEEDED").await;
    let running = f.start("/api/demo/wait?seconds=300&vmw-task=true", &alice).await;
    f.wait_status(&running, &alice, "RUNNING").await;
    let body = json!({"filter_spec": {"services": ["com.vmware.cis.demo"], "status": ["RUNNING"]},
                      "result_spec": {"exclude_result": true}});
    let (status, map) = f.send("POST", "/api/cis/tasks?action=list", &alice, Some(body)).await;
    assert_eq!(status, StatusCode::OK);
    let map = map.as_object().unwrap();
    assert_eq!(map.keys().collect::<Vec<_>>(), [&running]);
    assert_eq!(map[&running]["status"], "RUNNING");
    let body = json!({"filter_spec": {"tasks": [done.clone()]}});
    let (_, map) = f.send("POST", "/api/cis/tasks?action=list", &alice, Some(body)).await;
    assert_eq!(map[&done]["result"], json!({"waited_seconds": 0}));
}

#[tokio::test]
async fn modern_list_refuses_bad_requests_with_400() {
    let f = fixture();
    let alice = f.login("alice").await;
    for body in [
        json!({}),
        json!({"filter_spec": {"status": ["RUNNING"]}}),
        json!({"filter_spec": {"services": ["x"], "colour": ["red"]}}),
        json!({"filter_spec": {"services": ["x"], "status": ["SLEEPING"]}}),
        json!({"filter_spec": {"services": "not a list"}}),
    ] {
        let (status, answer) = f.send("POST", "/api/cis/tasks?action=list", &alice, Some(body.clone())).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        assert_eq!(answer["error_type"], "INVALID_ARGUMENT");
    }
    let huge = json!({"filter_spec": {"services": vec!["x".repeat(1000); 100]}});
    let (status, _) = f.send("POST", "/api/cis/tasks?action=list", &alice, Some(huge)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a body over 64 KiB");
    let request = Request::post("/api/cis/tasks?action=list")
        .header("vmware-api-session-id", &alice)
        .body(Body::from("{not json"))
        .unwrap();
    assert_eq!(f.call(request).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn legacy_tasks_get_list_and_cancel() {
    let f = fixture();
    let alice = f.login("alice").await;
    let id = f.start("/api/demo/wait?seconds=300&vmw-task=true", &alice).await;
    f.wait_status(&id, &alice, "RUNNING").await;
    let (status, body) = f.send("GET", &format!("/rest/cis/tasks/{id}"), &alice, None).await;
    assert_eq!((status, &body["value"]["status"]), (StatusCode::OK, &json!("RUNNING")));
    let query = "filter_spec.services.1=com.vmware.cis.demo&filter_spec.status.1=RUNNING&filter_spec.status.2=PENDING";
    let (status, body) = f.send("GET", &format!("/rest/cis/tasks?{query}"), &alice, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["value"][0]["key"], json!(id));
    assert_eq!(body["value"][0]["value"]["status"], "RUNNING");
    let (status, body) = f.send("GET", "/rest/cis/tasks?filter_spec.colour.1=red", &alice, None).await;
    assert_eq!(
        (status, &body["type"]),
        (StatusCode::BAD_REQUEST, &json!("com.vmware.vapi.std.errors.invalid_argument"))
    );
    let (status, body) = f.send("POST", &format!("/rest/cis/tasks/{id}?action=cancel"), &alice, None).await;
    assert_eq!((status, body), (StatusCode::OK, Value::Null));
    let (_, body) = f.send("GET", &format!("/rest/cis/tasks/{id}"), &alice, None).await;
    assert_eq!(body["value"]["error"]["type"], "com.vmware.vapi.std.errors.canceled");
}

#[tokio::test]
async fn tasks_need_a_session() {
    let f = fixture();
    let request = Request::get("/api/cis/tasks/x").body(Body::empty()).unwrap();
    assert_eq!(f.call(request).await.0, StatusCode::UNAUTHORIZED);
    let request = Request::post("/api/demo/wait?seconds=0&vmw-task=true").body(Body::empty()).unwrap();
    assert_eq!(f.call(request).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn task_progress_is_reported_while_it_runs() {
    let f = fixture();
    let alice = f.login("alice").await;
    let id = f.start("/api/demo/wait?seconds=1&vmw-task=true", &alice).await;
    f.wait_status(&id, &alice, "RUNNING").await;
    let mut seen = std::collections::BTreeSet::new();
    loop {
        let (_, info) = f.send("GET", &format!("/api/cis/tasks/{id}"), &alice, None).await;
        if info["progress"]["total"] == 10 {
            seen.insert(info["progress"]["completed"].as_i64().unwrap());
        }
        if info["status"] == "SUCCEEDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(seen.len() >= 3, "progress moved in steps: {seen:?}");
}
