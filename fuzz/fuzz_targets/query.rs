//! REST query strings and path segments: `pairs`, `single` and
//! `decode_segment` on arbitrary text, and percent-decoding as the inverse
//! of percent-encoding.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tower_cis::rest::query::{MAX_QUERY_LEN, MAX_QUERY_PARAMS, decode_segment, pairs, single};

#[derive(Arbitrary, Debug)]
struct Input {
    query: String,
    name: String,
    raw: String,
}

/// Percent-encodes every byte that is not unreserved.
fn encode(text: &str, plus_for_space: bool) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(char::from(byte)),
            b' ' if plus_for_space => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let query = input.query.as_str();
    match pairs(Some(query)) {
        Ok(found) => {
            assert!(query.len() <= MAX_QUERY_LEN);
            assert!(found.len() <= MAX_QUERY_PARAMS);
            assert!(found.len() <= query.split('&').filter(|p| !p.is_empty()).count());
            for name in found.iter().map(|(name, _)| name.clone()).chain([input.name.clone().into()]) {
                let matching: Vec<_> = found.iter().filter(|(key, _)| *key == name).collect();
                match (single(Some(query), &name), matching.as_slice()) {
                    (Ok(None), []) => {}
                    (Ok(Some(value)), [(_, expected)]) => assert_eq!(&value, expected),
                    (Err(_), [_, _, ..]) => {}
                    (got, expected) => panic!("single {name:?} is {got:?}, pairs say {expected:?}"),
                }
            }
        }
        Err(_) => assert!(single(Some(query), &input.name).is_err()),
    }
    assert_eq!(pairs(None), Ok(Vec::new()));
    // Decoding undoes encoding, for any name and value.
    let encoded = format!("{}={}", encode(&input.name, true), encode(&input.raw, false));
    if encoded.len() <= MAX_QUERY_LEN && !input.name.is_empty() {
        let found = pairs(Some(&encoded)).expect("a well-encoded pair is refused");
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0.as_ref(), found[0].1.as_ref()), (input.name.as_str(), input.raw.as_str()));
    }
    assert_eq!(decode_segment(&encode(&input.raw, false)).as_deref(), Ok(input.raw.as_str()));
    if !input.raw.contains('%') {
        assert_eq!(decode_segment(&input.raw).as_deref(), Ok(input.raw.as_str()), "a segment without escapes changed");
    }
});
