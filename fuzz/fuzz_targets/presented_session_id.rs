//! `presented_session_id` on arbitrary `vmware-api-session-id` and `Cookie`
//! headers (and others around them), with and without cookies.
#![no_main]

use arbitrary::Arbitrary;
use http::header::COOKIE;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use tower_cis::layer::{IdProblem, SESSION_HEADER, presented_session_id};

#[derive(Arbitrary, Debug)]
enum Field {
    Session(Vec<u8>),
    Cookie(Vec<u8>),
    /// A cookie `vmware-api-session-id=<value>` among others.
    SessionCookie {
        before: Vec<u8>,
        value: Vec<u8>,
        quoted: bool,
        after: Vec<u8>,
    },
    Other(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
struct Input {
    fields: Vec<Field>,
}

fuzz_target!(|input: Input| {
    let mut headers = HeaderMap::new();
    for field in input.fields {
        let (name, value) = match field {
            Field::Session(value) => (SESSION_HEADER, value),
            Field::Cookie(value) => (COOKIE, value),
            Field::SessionCookie { before, value, quoted, after } => {
                let mut cookie = before;
                cookie.extend_from_slice(b"; vmware-api-session-id=");
                if quoted {
                    cookie.push(b'"');
                }
                cookie.extend_from_slice(&value);
                if quoted {
                    cookie.push(b'"');
                }
                cookie.extend_from_slice(b"; ");
                cookie.extend_from_slice(&after);
                (COOKIE, cookie)
            }
            Field::Other(value) => (HeaderName::from_static("x-other"), value),
        };
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.append(name, value);
        }
    }
    let header_only = presented_session_id(&headers, false);
    let with_cookie = presented_session_id(&headers, true);
    let session_headers: Vec<&HeaderValue> = headers.get_all(&SESSION_HEADER).iter().collect();
    match session_headers.as_slice() {
        [] => {
            assert_eq!(header_only, Err(IdProblem::Missing));
            if let Ok(id) = with_cookie {
                let text = id.to_string();
                let found =
                    headers.get_all(COOKIE).iter().any(|v| v.as_bytes().windows(32).any(|w| w == text.as_bytes()));
                assert!(found, "an id that is in no cookie");
            }
        }
        [one] => {
            // The header wins over cookies, whatever they say.
            assert_eq!(header_only, with_cookie);
            if let Ok(id) = header_only {
                assert_eq!(id.to_string().as_bytes(), one.as_bytes());
            }
        }
        _ => {
            assert_eq!(header_only, Err(IdProblem::Repeated));
            assert_eq!(with_cookie, Err(IdProblem::Repeated));
        }
    }
});
