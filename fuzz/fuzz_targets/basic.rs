//! `Authorization: Basic`: `parse_basic` on arbitrary header bytes, and on
//! well-encoded credentials of arbitrary user and password bytes.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_cis::auth::{
    BasicCredentials, BasicError, MAX_ENCODED_LEN, MAX_PASSWORD_LEN, MAX_USER_LEN, basic_from_headers, parse_basic,
};

#[derive(Arbitrary, Debug)]
enum Input {
    /// The header value as sent.
    Raw(Vec<u8>),
    /// `<scheme> base64(<credentials>)`.
    Encoded { scheme: String, credentials: Vec<u8> },
    /// Several `Authorization` headers.
    Several(Vec<Vec<u8>>),
}

fn check(credentials: &BasicCredentials) {
    let (user, password) = (credentials.user(), credentials.password());
    assert!(!user.is_empty() && user.len() <= MAX_USER_LEN);
    assert!(!user.contains(':') && !user.chars().any(char::is_control));
    assert!(password.len() <= MAX_PASSWORD_LEN);
    let debug = format!("{credentials:?}");
    assert_eq!(debug, format!("BasicCredentials {{ user: {user:?}, password: \"<redacted>\" }}"));
    // What was accepted reads back the same when encoded again.
    let again = HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(format!("{user}:{password}")))).unwrap();
    let reread = parse_basic(&again).expect("re-encoded credentials are refused");
    assert_eq!((reread.user(), reread.password()), (user, password));
}

fuzz_target!(|input: Input| match input {
    Input::Raw(bytes) => {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else { return };
        if let Ok(credentials) = parse_basic(&value) {
            check(&credentials);
        }
    }
    Input::Encoded { scheme, credentials } => {
        let encoded = STANDARD.encode(&credentials);
        let Ok(value) = HeaderValue::from_str(&format!("{scheme} {encoded}")) else { return };
        match parse_basic(&value) {
            Ok(parsed) => {
                check(&parsed);
                assert_eq!(format!("{}:{}", parsed.user(), parsed.password()).as_bytes(), credentials);
            }
            Err(BasicError::TooLong) => assert!(encoded.len() > MAX_ENCODED_LEN),
            Err(_) => {}
        }
    }
    Input::Several(values) => {
        let mut headers = HeaderMap::new();
        for value in values {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                headers.append(AUTHORIZATION, value);
            }
        }
        let count = headers.get_all(AUTHORIZATION).iter().count();
        match basic_from_headers(&headers) {
            Ok(credentials) => {
                assert_eq!(count, 1);
                check(&credentials);
            }
            Err(BasicError::Missing) => assert_eq!(count, 0),
            Err(BasicError::Multiple) => assert!(count > 1),
            Err(_) => assert_eq!(count, 1),
        }
    }
});
