//! `TaskId::parse` on arbitrary text: accepted ids are `<uuid>:<service>`,
//! and `Display` writes back exactly what was parsed.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tower_cis::tasks::{MAX_SERVICE_ID_LEN, TaskId};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let Some(id) = TaskId::parse(text) else { return };
    assert_eq!(id.to_string(), text, "Display is not the parsed text");
    assert_eq!(id.as_str(), text);
    assert_eq!(TaskId::parse(&id.to_string()), Some(id.clone()));
    let (uuid, service) = text.split_once(':').expect("an accepted id has a ':'");
    assert_eq!(id.service(), service);
    assert_eq!(uuid.len(), 36);
    assert!(!service.is_empty() && service.len() <= MAX_SERVICE_ID_LEN);
    assert!(service.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')));
});
