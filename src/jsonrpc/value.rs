//! vAPI data values and their JSON-RPC encoding: `{"STRUCTURE":{name:{…}}}`,
//! `{"OPTIONAL":…}`, `{"SECRET":…}`, `{"BINARY":…}`, `{"ERROR":{name:{…}}}`,
//! lists as arrays, maps as lists of `map-entry` structures, void as `null`.
//!
//! Decoding is strict (exactly the shapes the SDK writes, bounded depth);
//! encoding writes exactly what the SDK reads.

use std::fmt;

use base64::Engine;
use serde_json::{Map, Number, Value};

/// How deep values may nest.
pub const MAX_VALUE_DEPTH: usize = 64;

/// A structure or error value: a type name and ordered fields.
#[derive(Clone, Debug, PartialEq)]
pub struct StructValue {
    /// The type name, e.g. `com.vmware.cis.session.info`.
    pub name: String,
    /// The fields in order.
    pub fields: Vec<(String, DataValue)>,
}

impl StructValue {
    /// An empty structure of type `name`.
    pub fn new(name: impl Into<String>) -> Self {
        StructValue { name: name.into(), fields: Vec::new() }
    }

    /// The structure with one more field.
    pub fn with(mut self, field: impl Into<String>, value: DataValue) -> Self {
        self.fields.push((field.into(), value));
        self
    }

    /// The field's value.
    pub fn field(&self, name: &str) -> Option<&DataValue> {
        self.fields.iter().find(|(field, _)| field == name).map(|(_, value)| value)
    }
}

/// A vAPI data value.
#[derive(Clone, Debug, PartialEq)]
pub enum DataValue {
    /// `void`: `null`.
    Void,
    /// A boolean.
    Boolean(bool),
    /// An integer.
    Integer(i64),
    /// A double.
    Double(f64),
    /// A string (also ids, enums and date-times).
    String(String),
    /// A secret string.
    Secret(String),
    /// Binary data.
    Blob(Vec<u8>),
    /// An optional value.
    Optional(Option<Box<DataValue>>),
    /// A list (also sets, and maps as lists of `map-entry` structures).
    List(Vec<DataValue>),
    /// A structure.
    Structure(StructValue),
    /// An error.
    Error(StructValue),
}

/// A JSON value that is not a well-formed vAPI data value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadValue(pub String);

impl fmt::Display for BadValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "not a vAPI value: {}", self.0)
    }
}

impl std::error::Error for BadValue {}

impl DataValue {
    /// An optional holding `value`.
    pub fn some(value: DataValue) -> Self {
        DataValue::Optional(Some(Box::new(value)))
    }

    /// An unset optional.
    pub const NONE: DataValue = DataValue::Optional(None);

    /// A string value.
    pub fn string(text: impl Into<String>) -> Self {
        DataValue::String(text.into())
    }

    /// A map, as the list of `map-entry` structures the wire carries.
    pub fn map(entries: impl IntoIterator<Item = (DataValue, DataValue)>) -> Self {
        DataValue::List(
            entries
                .into_iter()
                .map(|(key, value)| {
                    DataValue::Structure(StructValue::new("map-entry").with("key", key).with("value", value))
                })
                .collect(),
        )
    }

    /// Decodes the JSON-RPC encoding.
    ///
    /// ```
    /// use serde_json::json;
    /// use tower_cis::jsonrpc::DataValue;
    /// let value = DataValue::from_json(&json!({"STRUCTURE":{"operation-input":{"task":"t"}}})).unwrap();
    /// assert_eq!(value.to_json(), json!({"STRUCTURE":{"operation-input":{"task":"t"}}}));
    /// assert!(DataValue::from_json(&json!({"STRUCTURE":{}, "OPTIONAL":null})).is_err());
    /// ```
    pub fn from_json(json: &Value) -> Result<Self, BadValue> {
        decode(json, 0)
    }

    /// The JSON-RPC encoding.
    pub fn to_json(&self) -> Value {
        match self {
            DataValue::Void => Value::Null,
            DataValue::Boolean(b) => Value::Bool(*b),
            DataValue::Integer(i) => Value::Number((*i).into()),
            // The SDK writes doubles in XML Schema canonical form (1.5E0);
            // a JSON number of that form reads back as the same double.
            DataValue::Double(d) => Number::from_f64(*d).map_or(Value::Null, Value::Number),
            DataValue::String(s) => Value::String(s.clone()),
            DataValue::Secret(s) => tagged("SECRET", Value::String(s.clone())),
            DataValue::Blob(bytes) => {
                tagged("BINARY", Value::String(base64::engine::general_purpose::STANDARD.encode(bytes)))
            }
            DataValue::Optional(value) => tagged("OPTIONAL", value.as_ref().map_or(Value::Null, |v| v.to_json())),
            DataValue::List(items) => Value::Array(items.iter().map(DataValue::to_json).collect()),
            DataValue::Structure(s) => tagged("STRUCTURE", structure(s)),
            DataValue::Error(s) => tagged("ERROR", structure(s)),
        }
    }
}

fn tagged(tag: &str, value: Value) -> Value {
    let mut map = Map::new();
    map.insert(tag.to_owned(), value);
    Value::Object(map)
}

fn structure(value: &StructValue) -> Value {
    let fields: Map<String, Value> = value.fields.iter().map(|(k, v)| (k.clone(), v.to_json())).collect();
    tagged(&value.name, Value::Object(fields))
}

fn decode(json: &Value, depth: usize) -> Result<DataValue, BadValue> {
    if depth > MAX_VALUE_DEPTH {
        return Err(BadValue("nested too deeply".into()));
    }
    Ok(match json {
        Value::Null => DataValue::Void,
        Value::Bool(b) => DataValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => DataValue::Integer(i),
            None => DataValue::Double(n.as_f64().ok_or_else(|| BadValue(format!("number {n}")))?),
        },
        Value::String(s) => DataValue::String(s.clone()),
        Value::Array(items) => {
            DataValue::List(items.iter().map(|item| decode(item, depth + 1)).collect::<Result<_, _>>()?)
        }
        Value::Object(map) => {
            let mut entries = map.iter();
            let (Some((tag, inner)), None) = (entries.next(), entries.next()) else {
                return Err(BadValue("a tagged value has exactly one key".into()));
            };
            match (tag.as_str(), inner) {
                ("SECRET", Value::String(s)) => DataValue::Secret(s.clone()),
                ("BINARY", Value::String(s)) => DataValue::Blob(
                    base64::engine::general_purpose::STANDARD
                        .decode(s)
                        .map_err(|_| BadValue("BINARY is not base64".into()))?,
                ),
                ("OPTIONAL", Value::Null) => DataValue::Optional(None),
                ("OPTIONAL", inner) => DataValue::some(decode(inner, depth + 1)?),
                ("STRUCTURE", inner) => DataValue::Structure(decode_struct(inner, depth)?),
                ("ERROR", inner) => DataValue::Error(decode_struct(inner, depth)?),
                (tag, _) => return Err(BadValue(format!("unknown or malformed tag {tag}"))),
            }
        }
    })
}

fn decode_struct(json: &Value, depth: usize) -> Result<StructValue, BadValue> {
    let Value::Object(named) = json else { return Err(BadValue("a structure is an object".into())) };
    let mut entries = named.iter();
    let (Some((name, Value::Object(fields))), None) = (entries.next(), entries.next()) else {
        return Err(BadValue("a structure has exactly one type name and an object of fields".into()));
    };
    let fields = fields
        .iter()
        .map(|(field, value)| Ok((field.clone(), decode(value, depth + 1)?)))
        .collect::<Result<_, BadValue>>()?;
    Ok(StructValue { name: name.clone(), fields })
}
