//! The JSON-RPC 2.0 envelope of vAPI calls: what a request must look like,
//! and the two kinds of answer (an in-band result, or a protocol error).

use serde_json::{Map, Value, json};

use super::DataValue;

/// A JSON-RPC protocol error: the envelope itself is malformed.
#[derive(Clone, Debug, PartialEq)]
pub struct ProtocolError {
    /// The JSON-RPC error code (-32700, -32600, -32601, -32602).
    pub code: i64,
    /// What was wrong.
    pub message: &'static str,
    /// The request id, when it could be read.
    pub id: Value,
}

impl ProtocolError {
    /// The body: `{"jsonrpc":"2.0","id":…,"error":{"code":…,"message":…}}`.
    pub fn to_json(&self) -> Value {
        json!({"jsonrpc": "2.0", "id": self.id, "error": {"code": self.code, "message": self.message}})
    }
}

/// A well-formed `invoke` call.
#[derive(Clone, Debug, PartialEq)]
pub struct Invoke {
    /// The request id, echoed in the answer.
    pub id: Value,
    /// `serviceId`.
    pub service: String,
    /// `operationId`.
    pub operation: String,
    /// The decoded `input`.
    pub input: DataValue,
    /// `ctx.securityCtx`, if any.
    pub security: Option<Map<String, Value>>,
}

fn invalid(code: i64, message: &'static str, id: &Value) -> ProtocolError {
    ProtocolError { code, message, id: id.clone() }
}

/// Reads a request body.
pub fn parse(body: &[u8]) -> Result<Invoke, ProtocolError> {
    let request: Value = serde_json::from_slice(body).map_err(|_| invalid(-32700, "Parse error", &Value::Null))?;
    let Value::Object(mut request) = request else { return Err(invalid(-32600, "Invalid Request", &Value::Null)) };
    let id = match request.remove("id") {
        Some(id @ (Value::String(_) | Value::Number(_))) => id,
        _ => return Err(invalid(-32600, "Invalid Request: a string or number id is required", &Value::Null)),
    };
    if request.get("jsonrpc") != Some(&Value::String("2.0".into())) {
        return Err(invalid(-32600, "Invalid Request: jsonrpc must be \"2.0\"", &id));
    }
    match request.get("method") {
        Some(Value::String(method)) if method == "invoke" => {}
        Some(Value::String(_)) => return Err(invalid(-32601, "Method not found", &id)),
        _ => return Err(invalid(-32600, "Invalid Request: method must be a string", &id)),
    }
    let Some(Value::Object(mut params)) = request.remove("params") else {
        return Err(invalid(-32602, "Invalid params", &id));
    };
    let text = |params: &mut Map<String, Value>, key: &str| match params.remove(key) {
        Some(Value::String(text)) => Ok(text),
        _ => Err(invalid(-32602, "Invalid params: serviceId and operationId are strings", &id)),
    };
    let service = text(&mut params, "serviceId")?;
    let operation = text(&mut params, "operationId")?;
    let input = params.remove("input").ok_or_else(|| invalid(-32602, "Invalid params: input is required", &id))?;
    let input =
        DataValue::from_json(&input).map_err(|_| invalid(-32602, "Invalid params: input is not a vAPI value", &id))?;
    let security = match params.remove("ctx") {
        None | Some(Value::Null) => None,
        Some(Value::Object(mut ctx)) => match ctx.remove("securityCtx") {
            None | Some(Value::Null) => None,
            Some(Value::Object(security)) => Some(security),
            Some(_) => return Err(invalid(-32602, "Invalid params: securityCtx must be an object", &id)),
        },
        Some(_) => return Err(invalid(-32602, "Invalid params: ctx must be an object", &id)),
    };
    Ok(Invoke { id, service, operation, input, security })
}

/// An in-band answer: `{"jsonrpc":"2.0","id":…,"result":{"output":…}}` or
/// `{"result":{"error":…}}`.
pub fn result(id: &Value, outcome: Result<DataValue, DataValue>) -> Value {
    let result = match outcome {
        Ok(output) => json!({"output": output.to_json()}),
        Err(error) => json!({"error": error.to_json()}),
    };
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}
