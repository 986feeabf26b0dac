//! Session ids: format, parsing and redaction.

use tower_cis::SessionId;

#[test]
fn generated_ids_are_32_lowercase_hex_characters() {
    for _ in 0..100 {
        let text = SessionId::generate().unwrap().to_string();
        assert_eq!(text.len(), 32);
        assert!(text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{text}");
    }
}

#[test]
fn parse_round_trips_and_accepts_vcenter_ids() {
    let vcenter = "b00db39f948d13ea1e59b4d6fce56389";
    let id = SessionId::parse(vcenter).expect("a vCenter id must parse");
    assert_eq!(id.to_string(), vcenter);
    assert_eq!(vcenter.parse::<SessionId>().unwrap(), id);
}

#[test]
fn parse_refuses_everything_else() {
    for bad in [
        "",
        "b00db39f948d13ea1e59b4d6fce5638",
        "b00db39f948d13ea1e59b4d6fce563899",
        "B00DB39F948D13EA1E59B4D6FCE56389",
        "g00db39f948d13ea1e59b4d6fce56389",
        " b00db39f948d13ea1e59b4d6fce5638",
        "b00db39f948d13ea1e59b4d6fce5638\n",
        "b00db39f-948d-13ea-1e59-b4d6fce56389",
        "ÿ00db39f948d13ea1e59b4d6fce5638",
    ] {
        assert_eq!(SessionId::parse(bad), None, "{bad:?} parsed");
    }
    assert_eq!(SessionId::parse_bytes(&[0xff; 32]), None);
}

#[test]
fn debug_shows_only_a_short_prefix() {
    let id = SessionId::generate().unwrap();
    let full = id.to_string();
    let debug = format!("{id:?}");
    assert!(!debug.contains(&full[..8]), "{debug} leaks the id");
    assert!(debug.contains(&full[..4]));
    assert_eq!(id.log_tag().to_string(), full[..4]);
}
