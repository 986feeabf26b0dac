//! `SessionId::parse_bytes` on arbitrary bytes: it accepts exactly the 32
//! lowercase hex characters, and `Display` writes back what was parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_cis::{SESSION_ID_LEN, SessionId};

fuzz_target!(|data: &[u8]| {
    let parsed = SessionId::parse_bytes(data);
    let well_formed = data.len() == SESSION_ID_LEN && data.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    assert_eq!(parsed.is_some(), well_formed, "parse_bytes disagrees with the definition on {data:?}");
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(SessionId::parse(text), parsed);
        assert_eq!(text.parse::<SessionId>().ok(), parsed);
    }
    if let Some(id) = parsed {
        let text = id.to_string();
        assert_eq!(text.as_bytes(), data, "Display is not the parsed text");
        assert_eq!(&id.to_hex()[..], data);
        assert_eq!(SessionId::from_bytes(*id.as_bytes()), id);
        assert!(text.starts_with(&id.log_tag().to_string()));
        assert!(!format!("{id:?}").contains(&text), "Debug leaks the whole id");
    }
});
