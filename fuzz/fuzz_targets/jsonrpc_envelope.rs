//! The JSON-RPC envelope: `envelope::parse` on arbitrary bodies. Every
//! refusal is a JSON-RPC protocol error with a known code; every accepted
//! call has a string or number id, and its input survives a round trip
//! through the value codec.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_cis::jsonrpc::DataValue;
use tower_cis::jsonrpc::envelope::{self, parse};

fuzz_target!(|data: &[u8]| {
    match parse(data) {
        Ok(call) => {
            assert!(matches!(call.id, Value::String(_) | Value::Number(_)));
            let encoded = call.input.to_json();
            assert_eq!(DataValue::from_json(&encoded).as_ref(), Ok(&call.input));
            // The answer echoes the id and is itself valid JSON.
            let answer = envelope::result(&call.id, Ok(call.input.clone()));
            assert_eq!(answer["id"], call.id);
            assert!(serde_json::from_slice::<Value>(&serde_json::to_vec(&answer).unwrap()).is_ok());
        }
        Err(error) => {
            assert!([-32700, -32600, -32601, -32602].contains(&error.code), "unknown code {}", error.code);
            let body = error.to_json();
            assert_eq!(body["error"]["code"], error.code);
            assert!(matches!(error.id, Value::Null | Value::String(_) | Value::Number(_)));
        }
    }
});
