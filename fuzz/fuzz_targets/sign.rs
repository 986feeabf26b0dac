//! `Authorization: SIGN`: `sign_from_headers` on arbitrary header values, on
//! tokens that are base64 of arbitrary bytes (the gzip decoder on hostile
//! streams), and on tokens that are base64 of gzip of arbitrary bytes (the
//! size and ratio limits, UTF-8).
#![no_main]

use std::io::Write;

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_cis::auth::{MAX_INFLATE_RATIO, MAX_SIGN_HEADER_LEN, MAX_TOKEN_LEN, SignError, is_sign, sign_from_headers};

#[derive(Arbitrary, Debug)]
enum Token {
    /// `token="<base64(bytes)>"`: arbitrary compressed streams.
    Compressed(Vec<u8>),
    /// `token="<base64(gzip(bytes))>"`, gzip at `level` (0 to 9).
    Plain { bytes: Vec<u8>, level: u8, repeat: u16 },
}

#[derive(Arbitrary, Debug)]
enum Input {
    /// The `Authorization` values as sent.
    Raw(Vec<Vec<u8>>),
    /// `SIGN <before>token="…"<after>`, then more raw values.
    Built { before: Vec<u8>, token: Token, quoted: bool, after: Vec<u8>, more: Vec<Vec<u8>> },
}

fn headers(values: impl IntoIterator<Item = Vec<u8>>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for value in values {
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.append(AUTHORIZATION, value);
        }
    }
    headers
}

fn gzip(bytes: &[u8], level: u8) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(u32::from(level % 10)));
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fuzz_target!(|input: Input| {
    let (headers, plain, alone) = match input {
        Input::Raw(values) => (headers(values), None, false),
        Input::Built { before, token, quoted, after, more } => {
            let alone = before.is_empty() && after.is_empty() && more.is_empty();
            let (encoded, plain) = match token {
                Token::Compressed(bytes) => (STANDARD.encode(bytes), None),
                Token::Plain { bytes, level, repeat } => {
                    // Repetition makes large, highly compressible tokens.
                    let bytes = bytes.repeat(usize::from(repeat % 2048).max(1));
                    let compressed = gzip(&bytes, level);
                    (STANDARD.encode(&compressed), Some((bytes, compressed.len())))
                }
            };
            let mut first = b"SIGN ".to_vec();
            first.extend_from_slice(&before);
            first.extend_from_slice(if quoted { b"token=\"" } else { b"token=" });
            first.extend_from_slice(encoded.as_bytes());
            if quoted {
                first.push(b'"');
            }
            first.extend_from_slice(&after);
            (headers(std::iter::once(first).chain(more)), plain, alone)
        }
    };
    let result = sign_from_headers(&headers);
    if result.is_ok() {
        assert!(is_sign(&headers), "SIGN credentials from a request that is not SIGN");
    }
    if let (true, Some((bytes, compressed))) = (alone, &plain) {
        // A lone, well-formed token within the limits reads back as sent.
        let within = bytes.len() <= MAX_TOKEN_LEN && bytes.len() <= compressed * MAX_INFLATE_RATIO;
        if within && !bytes.is_empty() && std::str::from_utf8(bytes).is_ok() {
            assert_eq!(result.as_ref().map(|c| c.token().as_bytes()), Ok(bytes.as_slice()));
        }
    }
    match (&result, plain) {
        (Ok(credentials), _) => assert!(credentials.token().len() <= MAX_TOKEN_LEN),
        (Err(SignError::TooLong), _) => {
            let total: usize = headers.get_all(AUTHORIZATION).iter().map(|v| v.len() + 1).sum();
            assert!(total > MAX_SIGN_HEADER_LEN);
        }
        (Err(SignError::TooLarge), Some((bytes, _))) => assert!(bytes.len() > MAX_TOKEN_LEN),
        (Err(SignError::RatioExceeded), Some((bytes, compressed))) => {
            assert!(bytes.len() > compressed * MAX_INFLATE_RATIO)
        }
        (Err(SignError::NotUtf8), Some((bytes, _))) => assert!(std::str::from_utf8(&bytes).is_err()),
        (Err(SignError::NotGzip), Some(_)) => panic!("a well-formed gzip stream refused as not gzip"),
        _ => {}
    }
});
