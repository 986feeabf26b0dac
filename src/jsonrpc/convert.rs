//! Between the crate's types and vAPI data values: errors, messages,
//! session info, TaskInfo, filter and get specs, and generic JSON.

use base64::Engine;
use serde_json::{Map, Value};

use super::{DataValue, StructValue};
use crate::error::{ErrorType, LocalizableMessage, VapiError};
use crate::tasks::{DynamicId, FilterSpec, GetSpec, Progress, Status, TaskInfo};
use crate::{Session, Timestamp};

/// An `INVALID_ARGUMENT` error about the input.
pub fn invalid_input(detail: impl Into<String>) -> VapiError {
    VapiError::new(ErrorType::InvalidArgument, LocalizableMessage::new("vapi.data.structure.invalid", detail.into()))
}

/// A `com.vmware.vapi.std.localizable_message`.
pub fn message(message: &LocalizableMessage) -> DataValue {
    DataValue::Structure(
        StructValue::new("com.vmware.vapi.std.localizable_message")
            .with("id", DataValue::string(message.id.clone()))
            .with("default_message", DataValue::string(message.default_message.clone()))
            .with("args", DataValue::List(message.args.iter().map(|a| DataValue::string(a.clone())).collect()))
            .with("params", DataValue::NONE)
            .with("localized", DataValue::NONE),
    )
}

/// A vAPI standard error as an error value: its name picks the client's
/// exception class.
pub fn error(error: &VapiError) -> DataValue {
    let kind = error.error_type();
    let mut value = StructValue::new(kind.qualified_name())
        .with("messages", DataValue::List(error.messages().iter().map(message).collect()))
        .with("data", error.data().map_or(DataValue::NONE, |data| DataValue::some(from_json(data))))
        .with("error_type", DataValue::some(DataValue::string(kind.as_str())));
    if matches!(kind, ErrorType::Unauthenticated | ErrorType::Unauthorized) {
        value = value.with("challenge", DataValue::NONE);
    }
    DataValue::Error(value)
}

/// `com.vmware.cis.session.info`.
pub fn session_info(session: &Session) -> DataValue {
    DataValue::Structure(
        StructValue::new("com.vmware.cis.session.info")
            .with("user", DataValue::string(session.user()))
            .with("created_time", time(session.created()))
            .with("last_accessed_time", time(session.last_accessed())),
    )
}

fn time(time: Timestamp) -> DataValue {
    DataValue::string(time.to_string())
}

fn optional_time(value: Option<Timestamp>) -> DataValue {
    value.map_or(DataValue::NONE, |t| DataValue::some(time(t)))
}

fn progress(progress: &Progress) -> DataValue {
    DataValue::Structure(
        StructValue::new("com.vmware.cis.task.progress")
            .with("total", DataValue::Integer(progress.total))
            .with("completed", DataValue::Integer(progress.completed))
            .with("message", message(&progress.message)),
    )
}

fn dynamic_id(target: &DynamicId) -> DataValue {
    DataValue::Structure(
        StructValue::new("com.vmware.vapi.std.dynamic_ID")
            .with("type", DataValue::string(target.kind.clone()))
            .with("id", DataValue::string(target.id.clone())),
    )
}

/// `com.vmware.cis.task.info`, with every optional field present (unset
/// where the status rules want it absent).
pub fn task_info(info: &TaskInfo, exclude_result: bool) -> DataValue {
    let fields = info.state.fields();
    let result = fields.result.filter(|_| !exclude_result);
    DataValue::Structure(
        StructValue::new("com.vmware.cis.task.info")
            .with("description", message(&info.description))
            .with("service", DataValue::string(info.service.clone()))
            .with("operation", DataValue::string(info.operation.clone()))
            .with(
                "parent",
                info.parent.as_ref().map_or(DataValue::NONE, |p| DataValue::some(DataValue::string(p.as_str()))),
            )
            .with("target", info.target.as_ref().map_or(DataValue::NONE, |t| DataValue::some(dynamic_id(t))))
            .with("status", DataValue::string(info.status().as_str()))
            .with("cancelable", DataValue::Boolean(info.cancelable))
            .with("error", fields.error.map_or(DataValue::NONE, |e| DataValue::some(error(e))))
            .with("start_time", optional_time(fields.start_time))
            .with("end_time", optional_time(fields.end_time))
            .with("user", DataValue::some(DataValue::string(info.owner.name())))
            .with("progress", fields.progress.map_or(DataValue::NONE, |p| DataValue::some(progress(p))))
            .with("result", result.map_or(DataValue::NONE, |r| DataValue::some(from_json(r)))),
    )
}

/// Plain JSON as a data value: objects become structures (named
/// `dynamic_structure`), numbers integers or doubles, `null` void.
pub fn from_json(json: &Value) -> DataValue {
    match json {
        Value::Null => DataValue::Void,
        Value::Bool(b) => DataValue::Boolean(*b),
        Value::Number(n) => n.as_i64().map_or_else(|| DataValue::Double(n.as_f64().unwrap_or(0.0)), DataValue::Integer),
        Value::String(s) => DataValue::string(s.clone()),
        Value::Array(items) => DataValue::List(items.iter().map(from_json).collect()),
        Value::Object(map) => DataValue::Structure(StructValue {
            name: "dynamic_structure".into(),
            fields: map.iter().map(|(k, v)| (k.clone(), from_json(v))).collect(),
        }),
    }
}

/// A data value as plain JSON (how a task keeps an operation's result):
/// structures become objects, optionals their value or `null`, secrets and
/// binaries strings.
pub fn to_json(value: &DataValue) -> Value {
    match value {
        DataValue::Void | DataValue::Optional(None) => Value::Null,
        DataValue::Boolean(b) => Value::Bool(*b),
        DataValue::Integer(i) => Value::Number((*i).into()),
        DataValue::Double(d) => serde_json::Number::from_f64(*d).map_or(Value::Null, Value::Number),
        DataValue::String(s) | DataValue::Secret(s) => Value::String(s.clone()),
        DataValue::Blob(bytes) => Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)),
        DataValue::Optional(Some(inner)) => to_json(inner),
        DataValue::List(items) => Value::Array(items.iter().map(to_json).collect()),
        DataValue::Structure(s) | DataValue::Error(s) => {
            Value::Object(s.fields.iter().map(|(k, v)| (k.clone(), to_json(v))).collect::<Map<_, _>>())
        }
    }
}

/// Reads an `operation-input` structure.
pub fn operation_input(input: &DataValue) -> Result<&StructValue, VapiError> {
    match input {
        DataValue::Structure(input) => Ok(input),
        _ => Err(invalid_input("The operation input must be a structure.")),
    }
}

/// A required string field.
pub fn required_string<'a>(input: &'a StructValue, field: &str) -> Result<&'a str, VapiError> {
    match input.field(field) {
        Some(DataValue::String(s)) => Ok(s),
        Some(_) => Err(invalid_input(format!("The field {field} must be a string."))),
        None => Err(invalid_input(format!("The field {field} is required."))),
    }
}

/// An optional field: absent or `{"OPTIONAL":null}` is `None`; a bare value
/// in an optional slot is refused, as the SDK refuses it.
pub fn optional<'a>(input: &'a StructValue, field: &str) -> Result<Option<&'a DataValue>, VapiError> {
    match input.field(field) {
        None | Some(DataValue::Optional(None)) => Ok(None),
        Some(DataValue::Optional(Some(value))) => Ok(Some(value)),
        Some(_) => Err(invalid_input(format!("The field {field} must be an optional value."))),
    }
}

fn structure<'a>(value: &'a DataValue, what: &str) -> Result<&'a StructValue, VapiError> {
    match value {
        DataValue::Structure(s) => Ok(s),
        _ => Err(invalid_input(format!("{what} must be a structure."))),
    }
}

fn optional_bool(input: &StructValue, field: &str) -> Result<Option<bool>, VapiError> {
    match optional(input, field)? {
        None => Ok(None),
        Some(DataValue::Boolean(b)) => Ok(Some(*b)),
        Some(_) => Err(invalid_input(format!("The field {field} must be a boolean."))),
    }
}

fn optional_strings(input: &StructValue, field: &str) -> Result<Option<Vec<String>>, VapiError> {
    match optional(input, field)? {
        None => Ok(None),
        Some(DataValue::List(items)) => items
            .iter()
            .map(|item| match item {
                DataValue::String(s) => Ok(s.clone()),
                _ => Err(invalid_input(format!("The field {field} must be a list of strings."))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid_input(format!("The field {field} must be a list."))),
    }
}

/// `com.vmware.cis.tasks.get_spec`, from an optional slot's value.
pub fn get_spec(value: Option<&DataValue>) -> Result<GetSpec, VapiError> {
    let Some(value) = value else { return Ok(GetSpec::default()) };
    let spec = structure(value, "The get spec")?;
    Ok(GetSpec {
        return_all: optional_bool(spec, "return_all")?,
        exclude_result: optional_bool(spec, "exclude_result")?,
    })
}

/// `com.vmware.cis.tasks.filter_spec`, from an optional slot's value.
pub fn filter_spec(value: Option<&DataValue>) -> Result<FilterSpec, VapiError> {
    let Some(value) = value else { return Ok(FilterSpec::default()) };
    let spec = structure(value, "The filter spec")?;
    let set = |field: &str| optional_strings(spec, field).map(|list| list.map(|l| l.into_iter().collect()));
    let status = match optional_strings(spec, "status")? {
        None => None,
        Some(list) => Some(
            list.iter()
                .map(|s| Status::parse(s).ok_or_else(|| invalid_input(format!("Unknown task status {s}."))))
                .collect::<Result<_, _>>()?,
        ),
    };
    let targets = match optional(spec, "targets")? {
        None => None,
        Some(DataValue::List(items)) => Some(
            items
                .iter()
                .map(|item| {
                    let target = structure(item, "A target")?;
                    Ok(DynamicId {
                        kind: required_string(target, "type")?.to_owned(),
                        id: required_string(target, "id")?.to_owned(),
                    })
                })
                .collect::<Result<Vec<_>, VapiError>>()?,
        ),
        Some(_) => return Err(invalid_input("The field targets must be a list.")),
    };
    Ok(FilterSpec {
        tasks: set("tasks")?,
        services: set("services")?,
        operations: set("operations")?,
        status,
        targets,
        users: set("users")?,
    })
}
