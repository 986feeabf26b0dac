//! Every input on which a fuzz target (fuzz/fuzz_targets/) failed, replayed
//! with that target's property, in the normal test suite. Each test names
//! the target and the artifact it came from.

use serde_json::Value;
use tower_cis::jsonrpc::DataValue;

/// The property of the `vapi_value` target: a value decoded from JSON text
/// survives `to_json`, then JSON text, then `from_json`, unchanged.
fn vapi_value_round_trip(text: &[u8]) {
    let json: Value = serde_json::from_slice(text).expect("the input is JSON");
    let value = DataValue::from_json(&json).expect("the input is a vAPI value");
    assert_eq!(DataValue::from_json(&value.to_json()).as_ref(), Ok(&value), "in-memory round trip");
    let written = serde_json::to_vec(&value.to_json()).unwrap();
    let reread: Value = serde_json::from_slice(&written).unwrap();
    assert_eq!(DataValue::from_json(&reread).as_ref(), Ok(&value), "round trip through text");
}

/// `vapi_value`, crash-79c60a6a91cc9ad5d0e35b69e92fced53fe1a786: an integer
/// beyond i64 decodes as a double, written back as `1.7999999999924087e19`;
/// serde_json's default float parser read that one ulp off
/// (`1.7999999999924089e19`). The JSON-RPC endpoint read doubles with the
/// same parser, so a client's double could arrive changed. Fixed by serde_json's
/// `float_roundtrip` feature (correctly rounded parsing).
#[test]
fn vapi_value_a_double_beyond_i64_survives_a_text_round_trip() {
    vapi_value_round_trip(b"17999999999924086163");
    let read: Value = serde_json::from_str("1.7999999999924087e19").unwrap();
    assert_eq!(read.as_f64(), Some(1.7999999999924087e19));
    // The shortest form of a double reads back as that double.
    for double in [1.7999999999924087e19, 0.1, 2.2250738585072014e-308, 9007199254740993.0, 1.0e300] {
        let text = serde_json::to_string(&serde_json::json!(double)).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap().as_f64(), Some(double), "{text}");
        vapi_value_round_trip(text.as_bytes());
    }
}
