//! The vAPI value codec: `DataValue::from_json` on arbitrary JSON (bounded
//! depth, strict shapes), and `to_json` then `from_json` is the identity on
//! every value it decodes, in memory and through JSON text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower_cis::jsonrpc::DataValue;
use tower_cis::jsonrpc::MAX_VALUE_DEPTH;

fn depth(value: &DataValue) -> usize {
    match value {
        DataValue::Optional(Some(inner)) => 1 + depth(inner),
        DataValue::List(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        DataValue::Structure(s) | DataValue::Error(s) => 1 + s.fields.iter().map(|(_, v)| depth(v)).max().unwrap_or(0),
        _ => 0,
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<Value>(data) else { return };
    let Ok(value) = DataValue::from_json(&json) else { return };
    assert!(depth(&value) <= MAX_VALUE_DEPTH + 1, "decoded deeper than the limit");
    let encoded = value.to_json();
    assert_eq!(DataValue::from_json(&encoded).as_ref(), Ok(&value), "in-memory round trip");
    let text = serde_json::to_vec(&encoded).expect("a value that cannot be written");
    let reread: Value = serde_json::from_slice(&text).expect("written JSON that cannot be read");
    assert_eq!(DataValue::from_json(&reread).as_ref(), Ok(&value), "round trip through text");
});
