//! `Authorization: Basic` credentials (RFC 7617), parsed strictly and within
//! hard size limits.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};

use super::{AuthError, Credential};

/// The longest base64 token accepted after `Basic `, in bytes.
pub const MAX_ENCODED_LEN: usize = 4096;
/// The longest user name accepted, in bytes of UTF-8.
pub const MAX_USER_LEN: usize = 256;
/// The longest password accepted, in bytes of UTF-8.
pub const MAX_PASSWORD_LEN: usize = 1024;

/// A user name and password decoded from `Authorization: Basic`.
///
/// `Debug` shows the user name and `"<redacted>"` for the password. On drop
/// the password's bytes are overwritten, as a best effort: copies the
/// allocator or the caller made are out of reach.
///
/// ```
/// use http::HeaderValue;
/// use tower_cis::auth::{Credential, parse_basic};
/// // base64("alice:s3cret:with:colons")
/// let header = HeaderValue::from_static("Basic YWxpY2U6czNjcmV0OndpdGg6Y29sb25z");
/// let basic = parse_basic(&header).unwrap();
/// assert_eq!(basic.user(), "alice");
/// assert_eq!(basic.password(), "s3cret:with:colons");
/// assert!(matches!(basic.as_credential(), Credential::Basic { user: "alice", .. }));
/// assert!(!format!("{basic:?}").contains("s3cret"));
/// ```
pub struct BasicCredentials {
    user: String,
    password: String,
}

impl BasicCredentials {
    /// The user name, as sent.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The password, as sent.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The credential to hand to an [`Authenticator`](super::Authenticator).
    pub fn as_credential(&self) -> Credential<'_> {
        Credential::Basic { user: &self.user, password: &self.password }
    }
}

impl fmt::Debug for BasicCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BasicCredentials").field("user", &self.user).field("password", &"<redacted>").finish()
    }
}

impl Drop for BasicCredentials {
    fn drop(&mut self) {
        wipe(std::mem::take(&mut self.password).into_bytes());
    }
}

/// Overwrites a buffer that held secret bytes before freeing it.
fn wipe(mut bytes: Vec<u8>) {
    bytes.fill(0);
    // Keeps the compiler from dropping the writes as dead stores.
    std::hint::black_box(&bytes);
}

/// Why an `Authorization` header holds no usable Basic credentials. The
/// messages never contain the password.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum BasicError {
    /// The request has no `Authorization` header.
    Missing,
    /// The request has more than one `Authorization` header.
    Multiple,
    /// The scheme is not `Basic` (e.g. `SIGN` or `Bearer`).
    NotBasic,
    /// `Basic` with nothing after it.
    Empty,
    /// The base64 token is longer than [`MAX_ENCODED_LEN`].
    TooLong,
    /// The token is not base64 (standard alphabet, with padding).
    InvalidBase64,
    /// The decoded credentials are not UTF-8.
    NotUtf8,
    /// The decoded credentials have no `:` between user and password.
    MissingColon,
    /// The user name is empty.
    EmptyUser,
    /// The user name is longer than [`MAX_USER_LEN`].
    UserTooLong,
    /// The password is longer than [`MAX_PASSWORD_LEN`].
    PasswordTooLong,
    /// The user name contains a control character.
    ControlCharacterInUser,
}

impl fmt::Display for BasicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BasicError::Missing => "no Authorization header",
            BasicError::Multiple => "more than one Authorization header",
            BasicError::NotBasic => "the Authorization scheme is not Basic",
            BasicError::Empty => "Basic credentials are empty",
            BasicError::TooLong => "Basic credentials are too long",
            BasicError::InvalidBase64 => "Basic credentials are not valid base64",
            BasicError::NotUtf8 => "Basic credentials are not UTF-8",
            BasicError::MissingColon => "Basic credentials have no ':' separator",
            BasicError::EmptyUser => "the user name is empty",
            BasicError::UserTooLong => "the user name is too long",
            BasicError::PasswordTooLong => "the password is too long",
            BasicError::ControlCharacterInUser => "the user name contains a control character",
        })
    }
}

impl std::error::Error for BasicError {}

impl From<BasicError> for AuthError {
    /// Every malformed Basic header is a rejected login (401).
    fn from(error: BasicError) -> Self {
        AuthError::rejected(format!("malformed credentials: {error}"))
    }
}

/// Parses one `Authorization` header value as Basic credentials.
///
/// The scheme is matched case-insensitively (`Basic`, `basic`, `BASIC`) and
/// followed by spaces or tabs; the token is standard base64 with padding, as
/// RFC 7617 clients send it, and at most [`MAX_ENCODED_LEN`] bytes. The
/// decoded text must be UTF-8 and is split at its **first** `:`, so a password
/// may contain colons and a user name cannot. The user name must be non-empty,
/// at most [`MAX_USER_LEN`] bytes and free of control characters; the
/// password may be empty and at most [`MAX_PASSWORD_LEN`] bytes.
///
/// ```
/// use http::HeaderValue;
/// use tower_cis::auth::{BasicError, parse_basic};
/// let ok = parse_basic(&HeaderValue::from_static("basic dXNlcjpwYXNz")).unwrap();
/// assert_eq!((ok.user(), ok.password()), ("user", "pass"));
/// assert_eq!(parse_basic(&HeaderValue::from_static("Basic dXNlcnBhc3M=")).unwrap_err(), BasicError::MissingColon);
/// assert_eq!(parse_basic(&HeaderValue::from_static("Bearer abc")).unwrap_err(), BasicError::NotBasic);
/// ```
pub fn parse_basic(header: &HeaderValue) -> Result<BasicCredentials, BasicError> {
    let value = trim_whitespace(header.as_bytes());
    let split = value.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(split);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return Err(BasicError::NotBasic);
    }
    let token = trim_whitespace(rest);
    if token.is_empty() {
        return Err(BasicError::Empty);
    }
    if token.len() > MAX_ENCODED_LEN {
        return Err(BasicError::TooLong);
    }
    let decoded = STANDARD.decode(token).map_err(|_| BasicError::InvalidBase64)?;
    let text = match String::from_utf8(decoded) {
        Ok(text) => text,
        Err(error) => {
            wipe(error.into_bytes());
            return Err(BasicError::NotUtf8);
        }
    };
    let credentials = split_credentials(&text);
    wipe(text.into_bytes());
    credentials
}

/// Finds the one `Authorization` header of a request and parses it with
/// [`parse_basic`]. Several `Authorization` headers are refused
/// ([`BasicError::Multiple`]) rather than guessing which one counts.
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use tower_cis::auth::{BasicError, basic_from_headers};
/// let mut headers = HeaderMap::new();
/// assert_eq!(basic_from_headers(&headers).unwrap_err(), BasicError::Missing);
/// headers.append(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
/// assert_eq!(basic_from_headers(&headers).unwrap().user(), "user");
/// headers.append(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
/// assert_eq!(basic_from_headers(&headers).unwrap_err(), BasicError::Multiple);
/// ```
pub fn basic_from_headers(headers: &HeaderMap) -> Result<BasicCredentials, BasicError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    match (values.next(), values.next()) {
        (None, _) => Err(BasicError::Missing),
        (Some(value), None) => parse_basic(value),
        (Some(_), Some(_)) => Err(BasicError::Multiple),
    }
}

fn split_credentials(text: &str) -> Result<BasicCredentials, BasicError> {
    let (user, password) = text.split_once(':').ok_or(BasicError::MissingColon)?;
    if user.is_empty() {
        return Err(BasicError::EmptyUser);
    }
    if user.len() > MAX_USER_LEN {
        return Err(BasicError::UserTooLong);
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(BasicError::PasswordTooLong);
    }
    if user.chars().any(char::is_control) {
        return Err(BasicError::ControlCharacterInUser);
    }
    Ok(BasicCredentials { user: user.to_owned(), password: password.to_owned() })
}

fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(bytes.len());
    let end = bytes.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(start, |i| i + 1);
    &bytes[start..end]
}
