//! The whole example application (examples/server/app.rs) with arbitrary
//! requests: any method, path, query, headers (session ids, Basic and SIGN,
//! cookies) and body (raw bytes or vAPI JSON-RPC calls). It never panics and
//! every answer is well formed: no 5xx except 503 (a store or limit) and the
//! 500s that are the documented answer of a vAPI error (the demo `fail`
//! operation, the task store being full, a list matching too many tasks);
//! every JSON body parses. Time is tokio's paused clock, so `wait` and
//! tasks finish without sleeping.
#![no_main]

#[path = "../../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::body::Body;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderName, HeaderValue, Method, Request, header};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_cis::auth::{HashCost, UserDirectory};
use tower_cis::tasks::{MemoryTaskStore, TaskId, TaskManager};
use tower_cis::{Cis, CisConfig, MemoryStore, Principal, SessionId, SessionStore, SystemClock};

const USER: &str = "alice";
const PASSWORD: &str = "alice-pw";
const ADMINS: &str = "vsphere.local\\Administrators";

struct Fixture {
    runtime: tokio::runtime::Runtime,
    cis: app::ExampleCis,
    app: axum::Router,
    /// Task ids seen in answers, for later requests to name.
    tasks: Mutex<Vec<String>>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
    let users = UserDirectory::new().with_cost(HashCost::insecure_fast_for_tests()).with_user(USER, PASSWORD).unwrap();
    let config = CisConfig { max_sessions: 10_000, max_sessions_per_user: 100, ..CisConfig::default() };
    let cis = Cis::in_memory(users, config);
    let store = MemoryTaskStore::new(Duration::from_secs(600), 200, Arc::new(SystemClock));
    let tasks = TaskManager::new(store, Arc::new(SystemClock)).with_administrators(ADMINS);
    let app = runtime.block_on(async { app::application(&cis, tasks) });
    Fixture { runtime, cis, app, tasks: Mutex::new(Vec::new()) }
});

#[derive(Arbitrary, Debug)]
enum PathChoice {
    Api,
    Session,
    LegacySession,
    Tasks,
    LegacyTasks,
    Task(TaskRef),
    LegacyTask(TaskRef),
    Whoami,
    Wait,
    Fail,
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum TaskRef {
    Seen(u16),
    Raw(String),
}

#[derive(Arbitrary, Debug)]
enum Credentials {
    /// The session made for this request.
    Session,
    /// A well-formed id of no session.
    Stale,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Field {
    SessionHeader(Credentials),
    SessionCookie(Credentials),
    Cookie(Vec<u8>),
    /// `Authorization: Basic` for the real user.
    Basic,
    BasicOf {
        user: String,
        password: String,
    },
    /// `Authorization: SIGN token="<base64(gzip(xml))>"`.
    Sign(String),
    Authorization(Vec<u8>),
    UseHeaderAuthn(bool),
    ContentType(Vec<u8>),
    Raw {
        name: String,
        value: Vec<u8>,
    },
}

#[derive(Arbitrary, Debug)]
enum Leaf {
    Null,
    Bool(bool),
    Int(i64),
    Text(String),
    Task(TaskRef),
    Secret(String),
    Optional(Option<i64>),
    Texts(Vec<String>),
    Json(String),
}

#[derive(Arbitrary, Debug)]
enum Security {
    None,
    Password,
    UserPass { user: String, password: String },
    Session(Credentials),
    Saml(String),
    HolderOfKey,
    Json(String),
}

#[derive(Arbitrary, Debug)]
enum Call {
    SessionCreate,
    SessionGet,
    SessionDelete,
    TasksGet,
    TasksList,
    TasksCancel,
    Wait,
    WaitTask,
    Fail,
    FailTask,
    Raw { service: String, operation: String },
}

#[derive(Arbitrary, Debug)]
enum BodyChoice {
    Empty,
    Raw(Vec<u8>),
    Json(String),
    JsonRpc { call: Call, fields: Vec<(String, Leaf)>, security: Security, id: Option<i64> },
}

#[derive(Arbitrary, Debug)]
struct Input {
    method: u8,
    path: PathChoice,
    query: Option<String>,
    fields: Vec<Field>,
    body: BodyChoice,
}

fn task(fixture: &Fixture, task: &TaskRef) -> String {
    match task {
        TaskRef::Seen(i) => {
            let seen = fixture.tasks.lock().unwrap();
            if seen.is_empty() {
                "00000000-0000-4000-8000-000000000000:com.vmware.cis.demo".into()
            } else {
                seen[usize::from(*i) % seen.len()].clone()
            }
        }
        TaskRef::Raw(text) => text.clone(),
    }
}

fn credentials(choice: &Credentials, session: &SessionId) -> Vec<u8> {
    match choice {
        Credentials::Session => session.to_string().into_bytes(),
        Credentials::Stale => SessionId::from_bytes([0x5a; 16]).to_string().into_bytes(),
        Credentials::Raw(bytes) => bytes.clone(),
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn leaf(fixture: &Fixture, leaf: &Leaf) -> Value {
    match leaf {
        Leaf::Null => Value::Null,
        Leaf::Bool(b) => json!(b),
        Leaf::Int(i) => json!(i),
        Leaf::Text(text) => json!(text),
        Leaf::Task(t) => json!(task(fixture, t)),
        Leaf::Secret(text) => json!({"SECRET": text}),
        Leaf::Optional(value) => json!({"OPTIONAL": value}),
        Leaf::Texts(texts) => json!(texts),
        Leaf::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
    }
}

fn json_rpc(
    fixture: &Fixture,
    session: &SessionId,
    call: &Call,
    fields: &[(String, Leaf)],
    security: &Security,
    id: Option<i64>,
) -> Vec<u8> {
    let (service, operation) = match call {
        Call::SessionCreate => ("com.vmware.cis.session", "create"),
        Call::SessionGet => ("com.vmware.cis.session", "get"),
        Call::SessionDelete => ("com.vmware.cis.session", "delete"),
        Call::TasksGet => ("com.vmware.cis.tasks", "get"),
        Call::TasksList => ("com.vmware.cis.tasks", "list"),
        Call::TasksCancel => ("com.vmware.cis.tasks", "cancel"),
        Call::Wait => ("com.vmware.cis.demo", "wait"),
        Call::WaitTask => ("com.vmware.cis.demo", "wait$task"),
        Call::Fail => ("com.vmware.cis.demo", "fail"),
        Call::FailTask => ("com.vmware.cis.demo", "fail$task"),
        Call::Raw { service, operation } => (service.as_str(), operation.as_str()),
    };
    let fields: serde_json::Map<String, Value> =
        fields.iter().map(|(name, value)| (name.clone(), leaf(fixture, value))).collect();
    let security = match security {
        Security::None => Value::Null,
        Security::Password => {
            json!({"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": USER, "password": PASSWORD})
        }
        Security::UserPass { user, password } => {
            json!({"schemeId": "com.vmware.vapi.std.security.user_pass", "userName": user, "password": password})
        }
        Security::Session(choice) => json!({
            "schemeId": "com.vmware.vapi.std.security.session_id",
            "sessionId": String::from_utf8_lossy(&credentials(choice, session)),
        }),
        Security::Saml(token) => {
            json!({"schemeId": "com.vmware.vapi.std.security.saml_bearer_token", "samlToken": token})
        }
        Security::HolderOfKey => {
            json!({"schemeId": "com.vmware.vapi.std.security.saml_hok_token", "samlToken": "<a/>"})
        }
        Security::Json(text) => serde_json::from_str(text).unwrap_or(Value::Null),
    };
    let request = json!({
        "jsonrpc": "2.0",
        "method": "invoke",
        "id": id.map_or(json!("1"), |id| json!(id)),
        "params": {
            "serviceId": service,
            "operationId": operation,
            "input": {"STRUCTURE": {"operation-input": fields}},
            "ctx": {"appCtx": {}, "securityCtx": security},
        },
    });
    serde_json::to_vec(&request).unwrap()
}

/// Every string in `value` that is a task id.
fn collect_tasks(value: &Value, found: &mut Vec<String>) {
    match value {
        Value::String(text) if TaskId::parse(text).is_some() => found.push(text.clone()),
        Value::Array(items) => items.iter().for_each(|item| collect_tasks(item, found)),
        Value::Object(map) => map.iter().for_each(|(key, item)| {
            if TaskId::parse(key).is_some() {
                found.push(key.clone());
            }
            collect_tasks(item, found)
        }),
        _ => {}
    }
}

/// The request `input` describes, presenting the session `id` where it says so.
fn request(fixture: &Fixture, input: &Input, id: &SessionId) -> Option<Request<Body>> {
    let methods =
        [Method::GET, Method::POST, Method::DELETE, Method::PUT, Method::PATCH, Method::HEAD, Method::OPTIONS];
    let method = methods[usize::from(input.method) % methods.len()].clone();
    let mut uri = match &input.path {
        PathChoice::Api => "/api".to_owned(),
        PathChoice::Session => "/api/session".to_owned(),
        PathChoice::LegacySession => "/rest/com/vmware/cis/session".to_owned(),
        PathChoice::Tasks => "/api/cis/tasks".to_owned(),
        PathChoice::LegacyTasks => "/rest/cis/tasks".to_owned(),
        PathChoice::Task(t) => format!("/api/cis/tasks/{}", task(fixture, t)),
        PathChoice::LegacyTask(t) => format!("/rest/cis/tasks/{}", task(fixture, t)),
        PathChoice::Whoami => "/api/demo/whoami".to_owned(),
        PathChoice::Wait => "/api/demo/wait".to_owned(),
        PathChoice::Fail => "/api/demo/fail".to_owned(),
        PathChoice::Raw(raw) => raw.clone(),
    };
    if let Some(query) = &input.query {
        uri.push('?');
        uri.push_str(query);
    }
    let uri = uri.parse::<http::Uri>().ok()?;
    let mut request = Request::builder().method(method).uri(uri);
    for field in &input.fields {
        let (name, value): (HeaderName, Vec<u8>) = match field {
            Field::SessionHeader(choice) => (HeaderName::from_static("vmware-api-session-id"), credentials(choice, id)),
            Field::SessionCookie(choice) => {
                let mut cookie = b"vmware-api-session-id=".to_vec();
                cookie.extend(credentials(choice, id));
                (header::COOKIE, cookie)
            }
            Field::Cookie(value) => (header::COOKIE, value.clone()),
            Field::Basic => {
                (header::AUTHORIZATION, format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}"))).into_bytes())
            }
            Field::BasicOf { user, password } => {
                (header::AUTHORIZATION, format!("Basic {}", STANDARD.encode(format!("{user}:{password}"))).into_bytes())
            }
            Field::Sign(xml) => (
                header::AUTHORIZATION,
                format!("SIGN token=\"{}\"", STANDARD.encode(gzip(xml.as_bytes()))).into_bytes(),
            ),
            Field::Authorization(value) => (header::AUTHORIZATION, value.clone()),
            Field::UseHeaderAuthn(on) => {
                (HeaderName::from_static("vmware-use-header-authn"), on.to_string().into_bytes())
            }
            Field::ContentType(value) => (header::CONTENT_TYPE, value.clone()),
            Field::Raw { name, value } => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => (name, value.clone()),
                Err(_) => continue,
            },
        };
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            request = request.header(name, value);
        }
    }
    let body = match &input.body {
        BodyChoice::Empty => Vec::new(),
        BodyChoice::Raw(bytes) => bytes.clone(),
        BodyChoice::Json(text) => text.clone().into_bytes(),
        BodyChoice::JsonRpc { call, fields, security, id: rpc_id } => {
            json_rpc(fixture, id, call, fields, security, *rpc_id)
        }
    };
    request.body(Body::from(body)).ok()
}

/// The 500s that are a documented vAPI error, not a failure of the server.
const DOCUMENTED_500: [&str; 3] =
    ["com.vmware.cis.demo.fail", "com.vmware.cis.tasks.limit", "com.vmware.cis.tasks.list.too_many"];

fuzz_target!(|input: Input| {
    let fixture = &*FIXTURE;
    let store: &MemoryStore = fixture.cis.store();
    let operator = Principal::new("operator").with_groups([ADMINS]);
    let session = match fixture.runtime.block_on(store.create(operator, None)) {
        Ok(session) => session,
        Err(error) => panic!("the fixture's store refused a session: {error}"),
    };
    let id = *session.id();

    let Some(request) = request(fixture, &input, &id) else {
        fixture.runtime.block_on(store.delete(&id)).unwrap();
        return;
    };
    let uri = request.uri().clone();
    let is_head = request.method() == Method::HEAD;
    let app = fixture.app.clone();
    let (status, headers, body) = fixture.runtime.block_on(async move {
        let response = app.oneshot(request).await.unwrap();
        let (parts, body) = response.into_parts();
        (parts.status, parts.headers, body.collect().await.unwrap().to_bytes())
    });
    // Whatever the request started (tasks, waits) runs to its end, on the
    // paused clock, before the next input; this request's session goes.
    fixture.runtime.block_on(async {
        tokio::time::sleep(Duration::from_secs(400)).await;
        let _ = store.delete(&id).await;
    });

    let text = String::from_utf8_lossy(&body);
    if status.is_server_error() && status != http::StatusCode::SERVICE_UNAVAILABLE {
        let documented =
            status == http::StatusCode::INTERNAL_SERVER_ERROR && DOCUMENTED_500.iter().any(|id| text.contains(id));
        assert!(documented, "{status} for {uri}: {text}");
    }
    let json_body = headers.get(header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if json_body && !is_head {
        let parsed: Value = match serde_json::from_slice(&body) {
            Ok(parsed) => parsed,
            Err(error) => panic!("{status} for {uri}: a JSON body that does not parse ({error}): {text}"),
        };
        let mut found = Vec::new();
        collect_tasks(&parsed, &mut found);
        let mut seen = fixture.tasks.lock().unwrap();
        for task in found {
            if seen.len() < 256 && !seen.contains(&task) {
                seen.push(task);
            }
        }
    }
    if uri.path() == "/api" && input.method % 7 == 1 {
        let expected = [http::StatusCode::OK, http::StatusCode::PAYLOAD_TOO_LARGE];
        assert!(expected.contains(&status), "JSON-RPC answers 200 (or 413), not {status}: {text}");
    }
});
