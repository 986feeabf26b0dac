//! Finding the session id a request presents: the `vmware-api-session-id`
//! header, or on the legacy API also the cookie of that name. Pure parsing,
//! no allocation, done before any store is asked.

use http::header::COOKIE;
use http::{HeaderMap, HeaderName};

use crate::SessionId;

/// The header (and legacy cookie) that carries the session id.
pub const SESSION_HEADER: HeaderName = HeaderName::from_static("vmware-api-session-id");

const SESSION_COOKIE: &[u8] = b"vmware-api-session-id";

/// Why a request presents no usable session id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdProblem {
    /// No id at all.
    Missing,
    /// More than one id.
    Repeated,
    /// Something that is not a well-formed id.
    Malformed,
}

impl IdProblem {
    /// A short word for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            IdProblem::Missing => "missing",
            IdProblem::Repeated => "repeated",
            IdProblem::Malformed => "malformed",
        }
    }
}

/// The session id in the `vmware-api-session-id` header; if `cookie_too` and
/// the header is absent, the one in the cookie of that name.
///
/// ```
/// use http::HeaderMap;
/// use tower_cis::layer::{presented_session_id, IdProblem};
/// let mut headers = HeaderMap::new();
/// assert_eq!(presented_session_id(&headers, false), Err(IdProblem::Missing));
/// headers.insert("vmware-api-session-id", "not-an-id".parse().unwrap());
/// assert_eq!(presented_session_id(&headers, false), Err(IdProblem::Malformed));
/// ```
pub fn presented_session_id(headers: &HeaderMap, cookie_too: bool) -> Result<SessionId, IdProblem> {
    let mut values = headers.get_all(&SESSION_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => SessionId::parse_bytes(value.as_bytes()).ok_or(IdProblem::Malformed),
        (Some(_), Some(_)) => Err(IdProblem::Repeated),
        (None, _) if cookie_too => from_cookies(headers),
        (None, _) => Err(IdProblem::Missing),
    }
}

fn from_cookies(headers: &HeaderMap) -> Result<SessionId, IdProblem> {
    let mut found: Option<&[u8]> = None;
    let pairs = headers.get_all(COOKIE).iter().flat_map(|value| value.as_bytes().split(|&b| b == b';'));
    for pair in pairs {
        let pair = pair.trim_ascii();
        let Some(value) = pair.strip_prefix(SESSION_COOKIE).and_then(|rest| rest.strip_prefix(b"=")) else {
            continue;
        };
        let value = value.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")).unwrap_or(value);
        match found {
            // The same cookie set twice (two paths, say) is harmless; two
            // different ids are ambiguous.
            Some(previous) if previous != value => return Err(IdProblem::Repeated),
            _ => found = Some(value),
        }
    }
    let value = found.ok_or(IdProblem::Missing)?;
    SessionId::parse_bytes(value).ok_or(IdProblem::Malformed)
}
