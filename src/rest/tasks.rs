//! The Tasks service over REST (modern `/api/cis/tasks`, legacy
//! `/rest/cis/tasks`). Mount it behind the [`SessionAuthLayer`](crate::SessionAuthLayer):
//! it answers for the request's session principal.
//!
//! | call | modern | legacy |
//! |---|---|---|
//! | get | `GET /api/cis/tasks/{task}?return_all=&exclude_result=` → 200 TaskInfo | `GET /rest/cis/tasks/{task}` → 200 `{"value":TaskInfo}` |
//! | list | `POST /api/cis/tasks?action=list` with `{"filter_spec":…,"result_spec":…}` → 200 `{id: TaskInfo}` | `GET /rest/cis/tasks?filter_spec.services.1=…` → 200 `{"value":[{"key":id,"value":TaskInfo}]}` |
//! | cancel | `POST /api/cis/tasks/{task}?action=cancel` → 204 | `POST /rest/cis/tasks/{task}?action=cancel` → 200 |

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::request::Parts;
use http::{Method, Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::{Value, json};
use tower_service::Service;

use super::query::{self, BadQuery};
use super::reply::{empty, error_response, json};
use crate::Session;
use crate::error::{ApiFlavor, ErrorType, LocalizableMessage, VapiError};
use crate::tasks::{DynamicId, FilterSpec, GetSpec, Status, TaskId, TaskManager, TaskStore};

/// The modern API's tasks path.
pub const MODERN_TASKS_PATH: &str = "/api/cis/tasks";
/// The legacy API's tasks path.
pub const LEGACY_TASKS_PATH: &str = "/rest/cis/tasks";
/// The largest `list` request body.
pub const MAX_LIST_BODY_BYTES: usize = 64 * 1024;

/// The Tasks service.
pub struct TasksService<T> {
    manager: TaskManager<T>,
}

impl<T: Clone> Clone for TasksService<T> {
    fn clone(&self) -> Self {
        TasksService { manager: self.manager.clone() }
    }
}

impl<T> fmt::Debug for TasksService<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TasksService").finish_non_exhaustive()
    }
}

impl<T: TaskStore> TasksService<T> {
    /// The Tasks service over `manager`.
    pub fn new(manager: TaskManager<T>) -> Self {
        TasksService { manager }
    }

    /// Whether `path` is one this service answers.
    pub fn serves(path: &str) -> bool {
        [MODERN_TASKS_PATH, LEGACY_TASKS_PATH]
            .iter()
            .any(|base| path.strip_prefix(base).is_some_and(|rest| rest.is_empty() || rest.starts_with('/')))
    }
}

/// The operation a request names.
enum Call {
    Get(String),
    List,
    Cancel(String),
}

fn invalid(id: &'static str, text: impl Into<std::borrow::Cow<'static, str>>) -> VapiError {
    VapiError::new(ErrorType::InvalidArgument, LocalizableMessage::new(id, text))
}

fn unknown_operation() -> VapiError {
    VapiError::new(
        ErrorType::OperationNotFound,
        LocalizableMessage::new("com.vmware.vapi.rest.operation_not_found", "No such operation on the Tasks service."),
    )
}

/// Why a request names no call, and on which surface.
enum Refusal {
    /// No such operation: 404 `OPERATION_NOT_FOUND`.
    UnknownOperation(ApiFlavor),
    /// A method the path does not serve: 405 with the methods it does in
    /// `Allow`, as the Session service answers.
    MethodNotAllowed(ApiFlavor, &'static str),
    /// A query string that cannot be read: 400 `INVALID_ARGUMENT`.
    BadQuery(ApiFlavor),
}

impl Refusal {
    fn response(self) -> Response<Bytes> {
        match self {
            Refusal::UnknownOperation(flavor) => error_response(&unknown_operation(), flavor, None),
            Refusal::MethodNotAllowed(flavor, allow) => {
                let mut response = error_response(&unknown_operation(), flavor, None);
                *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
                response.headers_mut().insert(http::header::ALLOW, http::HeaderValue::from_static(allow));
                response
            }
            Refusal::BadQuery(flavor) => error_response(
                &invalid("com.vmware.vapi.rest.bad_query", "The query string is malformed."),
                flavor,
                None,
            ),
        }
    }
}

/// Which call a request makes, and on which surface.
fn route(parts: &Parts) -> Result<(Call, ApiFlavor), Refusal> {
    let path = parts.uri.path();
    let (flavor, rest) = if let Some(rest) = path.strip_prefix(MODERN_TASKS_PATH) {
        (ApiFlavor::Modern, rest)
    } else if let Some(rest) = path.strip_prefix(LEGACY_TASKS_PATH) {
        (ApiFlavor::Legacy, rest)
    } else {
        return Err(Refusal::UnknownOperation(ApiFlavor::Modern));
    };
    // The methods each path serves: a list and a task on the modern API, the
    // list (GET) and a task on the legacy one.
    let allow = match (rest.is_empty(), flavor) {
        (true, ApiFlavor::Modern) => "POST",
        (true, ApiFlavor::Legacy) => "GET",
        (false, _) => "GET, POST",
    };
    if !allow.split(", ").any(|method| method == parts.method.as_str()) {
        return Err(Refusal::MethodNotAllowed(flavor, allow));
    }
    let query = parts.uri.query();
    let action = |name: &str| -> Result<Option<String>, Refusal> {
        query::single(query, name).map(|v| v.map(|v| v.into_owned())).map_err(|BadQuery| Refusal::BadQuery(flavor))
    };
    let action = match flavor {
        ApiFlavor::Modern => action("action")?,
        ApiFlavor::Legacy => action("action")?.or(action("~action")?),
    };
    let task = match rest {
        "" => None,
        rest => {
            let segment = rest.strip_prefix('/').filter(|s| !s.is_empty() && !s.contains('/'));
            let decoded = segment.and_then(|s| query::decode_segment(s).ok()).map(|s| s.into_owned());
            Some(decoded.ok_or(Refusal::UnknownOperation(flavor))?)
        }
    };
    let call = match (&parts.method, task, action.as_deref(), flavor) {
        (&Method::GET, Some(task), None, _) => Call::Get(task),
        (&Method::POST, Some(task), Some("cancel"), _) => Call::Cancel(task),
        (&Method::POST, None, Some("list"), ApiFlavor::Modern) => Call::List,
        (&Method::GET, None, None, ApiFlavor::Legacy) => Call::List,
        _ => return Err(Refusal::UnknownOperation(flavor)),
    };
    Ok((call, flavor))
}

/// The body of a modern `list`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListRequest {
    filter_spec: Option<FilterSpec>,
    result_spec: Option<GetSpec>,
}

/// A bool query parameter: absent, `true` or `false`.
fn flag(query: Option<&str>, name: &str) -> Result<Option<bool>, VapiError> {
    let bad =
        || invalid("com.vmware.vapi.rest.bad_query", format!("The query parameter {name} must be true or false."));
    match query::single(query, name).map_err(|_| bad())?.as_deref() {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(bad()),
    }
}

/// The legacy list query: `filter_spec.services.1=…`, `filter_spec.targets.1.type=…`,
/// `result_spec.exclude_result=true`.
fn legacy_list_query(query: Option<&str>) -> Result<(FilterSpec, GetSpec), VapiError> {
    let bad = |detail: String| invalid("com.vmware.vapi.rest.bad_query", detail);
    let pairs = query::pairs(query).map_err(|_| bad("The query string is malformed.".into()))?;
    let mut filter = FilterSpec::default();
    let mut spec = GetSpec::default();
    let mut targets: BTreeMap<u32, (Option<String>, Option<String>)> = BTreeMap::new();
    let add = |set: &mut Option<HashSet<String>>, value: &str| {
        set.get_or_insert_with(HashSet::new).insert(value.to_owned());
    };
    for (key, value) in &pairs {
        let parts: Vec<&str> = key.split('.').collect();
        match parts.as_slice() {
            ["filter_spec", field, index] if index.parse::<u32>().is_ok() => match *field {
                "tasks" => add(&mut filter.tasks, value),
                "services" => add(&mut filter.services, value),
                "operations" => add(&mut filter.operations, value),
                "users" => add(&mut filter.users, value),
                "status" => {
                    let status = Status::parse(value).ok_or_else(|| bad(format!("Unknown task status {value}.")))?;
                    filter.status.get_or_insert_with(HashSet::new).insert(status);
                }
                _ => return Err(bad(format!("Unknown query parameter {key}."))),
            },
            ["filter_spec", "targets", index, part] => {
                let index = index.parse::<u32>().map_err(|_| bad(format!("Unknown query parameter {key}.")))?;
                let entry = targets.entry(index).or_default();
                match *part {
                    "type" => entry.0 = Some(value.to_string()),
                    "id" => entry.1 = Some(value.to_string()),
                    _ => return Err(bad(format!("Unknown query parameter {key}."))),
                }
            }
            ["result_spec", field @ ("return_all" | "exclude_result")] => {
                let flag = match value.as_ref() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(format!("The query parameter {key} must be true or false."))),
                };
                match *field {
                    "return_all" => spec.return_all = Some(flag),
                    _ => spec.exclude_result = Some(flag),
                }
            }
            _ => return Err(bad(format!("Unknown query parameter {key}."))),
        }
    }
    if !targets.is_empty() {
        let mut list = Vec::new();
        for (_, target) in targets {
            match target {
                (Some(kind), Some(id)) => list.push(DynamicId { kind, id }),
                _ => return Err(bad("Each target needs both type and id.".into())),
            }
        }
        filter.targets = Some(list);
    }
    Ok((filter, spec))
}

impl<T: TaskStore> TasksService<T> {
    async fn respond<B>(self, parts: Parts, body: B) -> Response<Bytes>
    where
        B: Body<Data = Bytes>,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (call, flavor) = match route(&parts) {
            Ok(found) => found,
            Err(refusal) => return refusal.response(),
        };
        let Some(session) = parts.extensions.get::<Session>() else {
            let error = VapiError::new(
                ErrorType::InternalServerError,
                LocalizableMessage::new(
                    "com.vmware.cis.tasks.layer.no_session",
                    "The server is misconfigured: the Tasks service needs the session layer in front of it.",
                ),
            );
            return error_response(&error, flavor, None);
        };
        let principal = session.principal();
        let query = parts.uri.query();
        let outcome: Result<Response<Bytes>, VapiError> = async {
            match call {
                Call::Get(task) => {
                    let exclude = flag(query, "exclude_result")?.unwrap_or(false);
                    flag(query, "return_all")?;
                    let id = TaskId::parse(&task).ok_or_else(|| not_found(&task))?;
                    let info = self.manager.get(&id, principal).await?;
                    Ok(json(StatusCode::OK, flavor, &info.to_rest(flavor, exclude)))
                }
                Call::Cancel(task) => {
                    let id = TaskId::parse(&task).ok_or_else(|| not_found(&task))?;
                    self.manager.cancel(&id, principal).await?;
                    Ok(empty(if flavor == ApiFlavor::Modern { StatusCode::NO_CONTENT } else { StatusCode::OK }))
                }
                Call::List => {
                    let (filter, spec) = match flavor {
                        ApiFlavor::Modern => read_list_body(body).await?,
                        ApiFlavor::Legacy => legacy_list_query(query)?,
                    };
                    let found = self.manager.list(&filter, principal).await?;
                    let exclude = spec.excludes_result();
                    Ok(match flavor {
                        ApiFlavor::Modern => {
                            let map: serde_json::Map<String, Value> =
                                found.iter().map(|info| (info.id.to_string(), info.to_rest(flavor, exclude))).collect();
                            json(StatusCode::OK, ApiFlavor::Modern, &map)
                        }
                        ApiFlavor::Legacy => {
                            let list: Vec<Value> = found
                                .iter()
                                .map(|info| json!({"key": info.id.as_str(), "value": info.to_rest(flavor, exclude)}))
                                .collect();
                            json(StatusCode::OK, ApiFlavor::Legacy, &list)
                        }
                    })
                }
            }
        }
        .await;
        outcome.unwrap_or_else(|error| error_response(&error, flavor, None))
    }
}

fn not_found(task: &str) -> VapiError {
    VapiError::new(
        ErrorType::NotFound,
        LocalizableMessage::new("com.vmware.cis.tasks.not_found", "The task was not found.")
            .with_args([task.to_owned()]),
    )
}

async fn read_list_body<B>(body: B) -> Result<(FilterSpec, GetSpec), VapiError>
where
    B: Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bytes = Limited::new(body, MAX_LIST_BODY_BYTES).collect().await.map_err(|_| {
        invalid("com.vmware.vapi.rest.body", "The request body is too large or could not be read (64 KiB at most).")
    })?;
    let bytes = bytes.to_bytes();
    let request: ListRequest = if bytes.is_empty() {
        ListRequest::default()
    } else {
        let bad = |detail: &dyn std::fmt::Display| {
            invalid("com.vmware.vapi.rest.body", format!("The request body is not a valid list request: {detail}"))
        };
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| bad(&e))?;
        if !structures_are_objects(&value) {
            return Err(bad(&"its structures must be JSON objects"));
        }
        serde_json::from_value(value).map_err(|e| bad(&e))?
    };
    Ok((request.filter_spec.unwrap_or_default(), request.result_spec.unwrap_or_default()))
}

/// serde reads a structure from a JSON array too (its fields in order), but
/// the wire format has objects only: the request, its two specs and each
/// target.
fn structures_are_objects(request: &Value) -> bool {
    let object_or_null = |value: Option<&Value>| value.is_none_or(|v| v.is_object() || v.is_null());
    let Some(request) = request.as_object() else { return false };
    let filter = request.get("filter_spec");
    let targets = filter.and_then(|f| f.get("targets")).and_then(Value::as_array);
    object_or_null(filter)
        && object_or_null(request.get("result_spec"))
        && targets.is_none_or(|targets| targets.iter().all(Value::is_object))
}

/// The future of [`TasksService`]'s responses.
pub type TasksFuture = Pin<Box<dyn Future<Output = Result<Response<Full<Bytes>>, Infallible>> + Send>>;

impl<T, B> Service<Request<B>> for TasksService<T>
where
    T: TaskStore,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    type Response = Response<Full<Bytes>>;
    type Error = Infallible;
    type Future = TasksFuture;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let (parts, body) = request.into_parts();
        let service = self.clone();
        Box::pin(async move { Ok(service.respond(parts, body).await.map(Full::new)) })
    }
}
