//! The Tasks service over REST with arbitrary requests: the modern `list`
//! body (at most 64 KiB, JSON), the legacy list query
//! (`filter_spec.services.1=…`), task ids in the path, `action=`,
//! `exclude_result=`. Answers are never 5xx and their bodies are JSON.
#![no_main]

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_cis::error::LocalizableMessage;
use tower_cis::rest::tasks::TasksService;
use tower_cis::tasks::{MemoryTaskStore, TaskId, TaskManager, TaskSpec};
use tower_cis::{Principal, Session, SessionId, SystemClock, Timestamp};

struct Fixture {
    runtime: tokio::runtime::Runtime,
    service: TasksService<MemoryTaskStore>,
    session: Session,
    tasks: Vec<TaskId>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let store = MemoryTaskStore::new(Duration::from_secs(3600), 64, Arc::new(SystemClock));
    let manager = TaskManager::new(store, Arc::new(SystemClock)).with_administrators("admins");
    let alice = Arc::new(Principal::new("alice"));
    let bob = Arc::new(Principal::new("bob"));
    let tasks = runtime.block_on(async {
        let mut tasks = Vec::new();
        for (owner, service, finished) in
            [(&alice, "com.example.vm", false), (&alice, "com.example.vm", true), (&bob, "com.example.host", false)]
        {
            let spec = TaskSpec::new(service, "clone", LocalizableMessage::new("com.example.clone", "Clone"))
                .with_target("VM", "vm-1");
            let id = manager
                .start(spec, Arc::clone(owner), move |_| async move {
                    if !finished {
                        std::future::pending::<()>().await;
                    }
                    Ok(json!({"vm": "vm-2"}))
                })
                .await
                .unwrap();
            if finished {
                manager.wait(&id).await.unwrap();
            }
            tasks.push(id);
        }
        tasks
    });
    let now = Timestamp::from_system_time(std::time::SystemTime::now());
    let session =
        Session::new(SessionId::from_bytes([7; 16]), alice, now, now, now.saturating_add(Duration::from_secs(3600)));
    Fixture { runtime, service: TasksService::new(manager), session, tasks }
});

#[derive(Arbitrary, Debug)]
enum TaskRef {
    Known(u8),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum LegacyKey {
    Tasks,
    Services,
    Operations,
    Users,
    Status,
    TargetType,
    TargetId,
    ReturnAll,
    ExcludeResult,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Query {
    None,
    Raw(String),
    /// `action=<…>&<raw>`.
    Action {
        action: String,
        rest: String,
    },
    /// A legacy list query.
    Legacy(Vec<(LegacyKey, u8, TaskRef)>),
}

#[derive(Arbitrary, Debug)]
enum Body {
    Empty,
    Raw(Vec<u8>),
    /// A modern list request.
    List {
        tasks: Vec<TaskRef>,
        services: Vec<String>,
        status: Vec<String>,
        users: Vec<String>,
        exclude: Option<bool>,
    },
}

#[derive(Arbitrary, Debug)]
struct Input {
    legacy: bool,
    method: u8,
    task: Option<TaskRef>,
    query: Query,
    body: Body,
}

fn task_text(fixture: &Fixture, task: &TaskRef) -> String {
    match task {
        TaskRef::Known(i) => fixture.tasks[usize::from(*i) % fixture.tasks.len()].to_string(),
        TaskRef::Raw(text) => text.clone(),
    }
}

fn escape(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~:".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fuzz_target!(|input: Input| {
    let fixture = &*FIXTURE;
    let method =
        [Method::GET, Method::POST, Method::DELETE, Method::PUT, Method::PATCH][usize::from(input.method) % 5].clone();
    let mut uri = String::from(if input.legacy { "/rest/cis/tasks" } else { "/api/cis/tasks" });
    if let Some(task) = &input.task {
        uri.push('/');
        uri.push_str(&escape(&task_text(fixture, task)));
    }
    let query = match &input.query {
        Query::None => None,
        Query::Raw(raw) => Some(raw.clone()),
        Query::Action { action, rest } => Some(format!("action={}&{rest}", escape(action))),
        Query::Legacy(entries) => Some(
            entries
                .iter()
                .map(|(key, index, value)| {
                    let key = match key {
                        LegacyKey::Tasks => format!("filter_spec.tasks.{index}"),
                        LegacyKey::Services => format!("filter_spec.services.{index}"),
                        LegacyKey::Operations => format!("filter_spec.operations.{index}"),
                        LegacyKey::Users => format!("filter_spec.users.{index}"),
                        LegacyKey::Status => format!("filter_spec.status.{index}"),
                        LegacyKey::TargetType => format!("filter_spec.targets.{index}.type"),
                        LegacyKey::TargetId => format!("filter_spec.targets.{index}.id"),
                        LegacyKey::ReturnAll => "result_spec.return_all".to_owned(),
                        LegacyKey::ExcludeResult => "result_spec.exclude_result".to_owned(),
                        LegacyKey::Raw(raw) => escape(raw),
                    };
                    format!("{key}={}", escape(&task_text(fixture, value)))
                })
                .collect::<Vec<_>>()
                .join("&"),
        ),
    };
    if let Some(query) = query {
        uri.push('?');
        uri.push_str(&query);
    }
    let body = match input.body {
        Body::Empty => Bytes::new(),
        Body::Raw(bytes) => Bytes::from(bytes),
        Body::List { tasks, services, status, users, exclude } => {
            let tasks: Vec<String> = tasks.iter().map(|t| task_text(fixture, t)).collect();
            let mut filter = json!({"tasks": tasks, "services": services, "status": status, "users": users});
            if let Some(filter) = filter.as_object_mut() {
                filter.retain(|_, v| v.as_array().is_some_and(|a| !a.is_empty()));
            }
            let mut request = json!({"filter_spec": filter});
            if let Some(exclude) = exclude {
                request["result_spec"] = json!({"exclude_result": exclude});
            }
            Bytes::from(request.to_string())
        }
    };
    let Ok(mut request) = Request::builder().method(method).uri(uri.as_str()).body(Full::new(body)) else { return };
    request.extensions_mut().insert(fixture.session.clone());
    let service = fixture.service.clone();
    let (status, body) = fixture.runtime.block_on(async move {
        let response = service.oneshot(request).await.unwrap();
        let status = response.status();
        (status, response.into_body().collect().await.unwrap().to_bytes())
    });
    assert!(!status.is_server_error(), "{status} for {uri}: {}", String::from_utf8_lossy(&body));
    if !body.is_empty() {
        let parsed: Result<Value, _> = serde_json::from_slice(&body);
        assert!(parsed.is_ok(), "the body is not JSON: {}", String::from_utf8_lossy(&body));
    }
});
