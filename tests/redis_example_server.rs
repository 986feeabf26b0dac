//! Two example servers (the application `cargo run --features redis
//! --example server -- --redis URL` serves, built by the same
//! `app::redis_stores`) on different ports of 127.0.0.1 share sessions and
//! tasks through one Redis: a session made on A works on B, deleted on B it
//! is refused on A at once; a task started on A is seen and cancelled from B.

#[path = "../examples/server/app.rs"]
#[allow(dead_code, reason = "shared with the example's main.rs, which may use items these tests do not")]
mod app;
#[allow(dead_code, reason = "the shared end-to-end harness; these tests use its client")]
mod e2e;
mod redis_support;

use std::net::SocketAddr;
use std::sync::Arc;

use e2e::{
    ADMIN, ADMIN_PASSWORD, ALICE, ALICE_PASSWORD, Http, SESSION, UNAUTHENTICATED_MODERN, assert_unauthenticated, basic,
    modern_id,
};
use http::{Method, StatusCode};
use redis_support::RedisServer;
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_cis::auth::{HashCost, PasswordAuthenticator, UserDirectory};
use tower_cis::{Cis, ExpiryPolicy, SharedClock, SystemClock};

/// One example server on a port of its own, its stores in the Redis at `url`.
struct Instance {
    http: Http,
    stop: Option<oneshot::Sender<()>>,
    served: Option<JoinHandle<()>>,
}

impl Instance {
    async fn start(url: &str) -> Instance {
        let users = UserDirectory::new()
            .with_cost(HashCost::insecure_fast_for_tests())
            .with_user(ADMIN, ADMIN_PASSWORD)
            .unwrap()
            .with_user(ALICE, ALICE_PASSWORD)
            .unwrap();
        let clock: SharedClock = Arc::new(SystemClock);
        let (store, tasks) = app::redis_stores(url, ExpiryPolicy::default(), &clock).expect("bad Redis configuration");
        let cis = Cis::new(store, PasswordAuthenticator::new(users), clock);
        let (listener, addr) = app::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await.unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let served = tokio::spawn(app::serve_app(listener, None, app::application(&cis, tasks), async move {
            let _ = stopped.await;
        }));
        Instance { http: Http::new(&addr.to_string()), stop: Some(stop), served: Some(served) }
    }

    async fn login(&self, user: &str, password: &str) -> String {
        let (status, _, body) =
            self.http.send(Method::POST, "/api/session", &[("authorization", &basic(user, password))]).await;
        assert_eq!(status, StatusCode::CREATED, "login as {user}: {body}");
        modern_id(&body)
    }

    async fn send(&self, method: Method, path: &str, session: &str) -> (StatusCode, String) {
        let (status, _, body) = self.http.send(method, path, &[(SESSION, session)]).await;
        (status, body)
    }

    async fn task(&self, id: &str, session: &str) -> Value {
        let (status, body) = self.send(Method::GET, &format!("/api/cis/tasks/{id}"), session).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn shut_down(mut self) {
        let _ = self.stop.take().expect("stopped twice").send(());
        self.served.take().expect("stopped twice").await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_made_on_one_server_works_on_the_other_and_a_delete_there_is_seen_at_once() {
    let redis = RedisServer::start();
    let (a, b) = (Instance::start(&redis.url()).await, Instance::start(&redis.url()).await);
    let session = a.login(ALICE, ALICE_PASSWORD).await;

    let (status, body) = b.send(Method::GET, "/api/demo/whoami", &session).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"user":"alice"}"#));
    let (status, body) = b.send(Method::GET, "/api/session", &session).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["user"], ALICE);
    assert_eq!(a.send(Method::GET, "/api/demo/whoami", &session).await.0, StatusCode::OK);

    let (status, body) = b.send(Method::DELETE, "/api/session", &session).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for (server, name) in [(&a, "A"), (&b, "B")] {
        let reply = server.http.send(Method::GET, "/api/demo/whoami", &[(SESSION, &session)]).await;
        assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, &format!("the deleted session on {name}"));
    }
    // Another user's session on A is unaffected, and works on B.
    let admin = a.login(ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(b.send(Method::GET, "/api/demo/whoami", &admin).await.0, StatusCode::OK);
    a.shut_down().await;
    b.shut_down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_started_on_one_server_is_cancelled_from_the_other_and_both_show_it_failed_canceled() {
    let redis = RedisServer::start();
    let (a, b) = (Instance::start(&redis.url()).await, Instance::start(&redis.url()).await);
    let session = a.login(ALICE, ALICE_PASSWORD).await;
    let (status, body) = a.send(Method::POST, "/api/demo/wait?seconds=300&vmw-task=true", &session).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let id: String = serde_json::from_str(&body).expect("a task id as a bare JSON string");

    let seen = b.task(&id, &session).await;
    assert!(matches!(seen["status"].as_str(), Some("PENDING" | "RUNNING")), "{seen}");
    assert_eq!(seen["user"], ALICE);
    assert_eq!(seen["operation"], "wait");
    let admin = b.login(ADMIN, ADMIN_PASSWORD).await;
    let (status, _) = b.send(Method::GET, &format!("/api/cis/tasks/{id}"), &admin).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user sees alice's task");

    let (status, body) = b.send(Method::POST, &format!("/api/cis/tasks/{id}?action=cancel"), &session).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for (server, name) in [(&a, "A"), (&b, "B")] {
        let info = server.task(&id, &session).await;
        assert_eq!(info["status"], "FAILED", "on {name}: {info}");
        assert_eq!(info["error"]["error_type"], "CANCELED", "on {name}: {info}");
        assert!(info.get("end_time").is_some(), "on {name}: {info}");
    }
    let (status, body) = a.send(Method::POST, &format!("/api/cis/tasks/{id}?action=cancel"), &session).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body.contains("NOT_ALLOWED_IN_CURRENT_STATE"), "{body}");
    a.shut_down().await;
    b.shut_down().await;
}
