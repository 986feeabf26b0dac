//! `Authorization: SIGN` (a SAML token from a vSphere STS), parsed strictly
//! and decompressed within hard limits.
//!
//! A bearer request carries `SIGN token="<base64(gzip(assertion XML))>"`. Its
//! parameters may be split across several `Authorization` headers (HTTP lets
//! a client send a comma-separated list as several fields), so the values are
//! joined with commas before parsing. A holder-of-key request adds
//! `signature=`, `signature_alg=`, `nonce=` and `bodyhash=`; this crate does
//! not verify request signatures, so such a request is refused
//! ([`SignError::HolderOfKey`]) rather than treated as a bearer one.

use std::fmt;
use std::io::Read;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::HeaderMap;
use http::header::AUTHORIZATION;

use super::{AuthError, Credential};

/// The longest `Authorization: SIGN` accepted, all fields together, in bytes.
pub const MAX_SIGN_HEADER_LEN: usize = 96 * 1024;
/// The largest decompressed token accepted, in bytes of XML.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;
/// The highest compression ratio accepted (decompressed / compressed bytes).
/// Real tokens compress about 3:1; a gzip bomb compresses 1000:1.
pub const MAX_INFLATE_RATIO: usize = 50;

/// A SAML token decoded from `Authorization: SIGN`: the assertion's XML,
/// not yet verified.
///
/// ```
/// use std::io::Write;
/// use base64::Engine as _;
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use tower_cis::auth::{Credential, sign_from_headers};
///
/// let xml = "<saml2:Assertion/>";
/// let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
/// gzip.write_all(xml.as_bytes()).unwrap();
/// let token = base64::engine::general_purpose::STANDARD.encode(gzip.finish().unwrap());
///
/// let mut headers = HeaderMap::new();
/// headers.append(AUTHORIZATION, HeaderValue::from_str(&format!("SIGN token=\"{token}\"")).unwrap());
/// let sign = sign_from_headers(&headers).unwrap();
/// assert_eq!(sign.token(), xml);
/// assert!(matches!(sign.as_credential(), Credential::SamlBearer { token } if token == xml));
/// ```
#[derive(Clone)]
pub struct SignCredentials {
    token: String,
}

impl SignCredentials {
    /// The assertion's XML, as the client sent it (not verified).
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The credential to hand to an [`Authenticator`](super::Authenticator).
    pub fn as_credential(&self) -> Credential<'_> {
        Credential::SamlBearer { token: &self.token }
    }
}

impl fmt::Debug for SignCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignCredentials").field("token_len", &self.token.len()).finish()
    }
}

/// Why the `Authorization` headers hold no usable SIGN credentials.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SignError {
    /// The request has no `Authorization` header.
    Missing,
    /// The scheme of the first `Authorization` header is not `SIGN`.
    NotSign,
    /// The headers, joined, are longer than [`MAX_SIGN_HEADER_LEN`].
    TooLong,
    /// The parameters are not a comma-separated list of `name=value` or
    /// `name="value"` (or a header is not visible ASCII).
    Malformed,
    /// A parameter appears more than once.
    DuplicateParameter,
    /// There is no `token` parameter, or it is empty.
    MissingToken,
    /// `signature=` is present: a holder-of-key request, which this crate
    /// does not verify.
    HolderOfKey,
    /// The token is not base64.
    InvalidBase64,
    /// The decoded token is not a well-formed gzip stream.
    NotGzip,
    /// The token decompresses to more than [`MAX_TOKEN_LEN`] bytes.
    TooLarge,
    /// The token decompresses more than [`MAX_INFLATE_RATIO`] times its size.
    RatioExceeded,
    /// The decompressed token is not UTF-8.
    NotUtf8,
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SignError::Missing => "no Authorization header",
            SignError::NotSign => "the Authorization scheme is not SIGN",
            SignError::TooLong => "the SIGN credentials are too long",
            SignError::Malformed => "the SIGN parameters are malformed",
            SignError::DuplicateParameter => "a SIGN parameter appears more than once",
            SignError::MissingToken => "the SIGN credentials have no token",
            SignError::HolderOfKey => {
                "holder-of-key SIGN requests (signature=) are not supported: present a bearer token"
            }
            SignError::InvalidBase64 => "the SIGN token is not valid base64",
            SignError::NotGzip => "the SIGN token is not gzip",
            SignError::TooLarge => "the SIGN token decompresses beyond the size limit",
            SignError::RatioExceeded => "the SIGN token decompresses beyond the ratio limit",
            SignError::NotUtf8 => "the SIGN token is not UTF-8",
        })
    }
}

impl std::error::Error for SignError {}

impl From<SignError> for AuthError {
    /// Every unusable SIGN header is a rejected login (401).
    fn from(error: SignError) -> Self {
        AuthError::rejected(format!("malformed credentials: {error}"))
    }
}

/// Whether the request's first `Authorization` header uses the `SIGN` scheme.
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use tower_cis::auth::is_sign;
/// let mut headers = HeaderMap::new();
/// headers.append(AUTHORIZATION, HeaderValue::from_static("SIGN token=\"abc\""));
/// assert!(is_sign(&headers));
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic dXNlcjpwYXNz"));
/// assert!(!is_sign(&headers));
/// ```
pub fn is_sign(headers: &HeaderMap) -> bool {
    headers.get(AUTHORIZATION).is_some_and(|value| scheme_rest(value.as_bytes()).is_some())
}

/// Parses the request's `Authorization` headers as SIGN credentials.
///
/// The first header must start with the scheme `SIGN` (any case); every
/// header's parameters are joined with commas, so parameters may be split
/// across headers. Parameters are `name=value` or `name="value"` (backslash
/// escapes allowed), separated by commas with optional spaces; names are
/// case-insensitive, unknown ones ignored, repeated ones refused. The
/// `token` is standard base64 of a gzip stream, decompressed to at most
/// [`MAX_TOKEN_LEN`] bytes and at most [`MAX_INFLATE_RATIO`] times its
/// compressed size.
///
/// ```
/// use http::{HeaderMap, HeaderValue, header::AUTHORIZATION};
/// use tower_cis::auth::{SignError, sign_from_headers};
/// let mut headers = HeaderMap::new();
/// headers.append(AUTHORIZATION, HeaderValue::from_static("SIGN token=\"H4sI\", signature=\"abc\""));
/// assert_eq!(sign_from_headers(&headers).unwrap_err(), SignError::HolderOfKey);
/// headers.insert(AUTHORIZATION, HeaderValue::from_static("SIGN nonce=\"1:2\""));
/// assert_eq!(sign_from_headers(&headers).unwrap_err(), SignError::MissingToken);
/// ```
pub fn sign_from_headers(headers: &HeaderMap) -> Result<SignCredentials, SignError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let first = values.next().ok_or(SignError::Missing)?;
    let mut joined = scheme_rest(first.as_bytes()).ok_or(SignError::NotSign)?.to_vec();
    for value in values {
        joined.push(b',');
        joined.extend_from_slice(value.as_bytes());
        if joined.len() > MAX_SIGN_HEADER_LEN {
            return Err(SignError::TooLong);
        }
    }
    if joined.len() > MAX_SIGN_HEADER_LEN {
        return Err(SignError::TooLong);
    }
    let params = parse_params(&joined)?;
    if params.iter().any(|(name, _)| name.eq_ignore_ascii_case("signature")) {
        return Err(SignError::HolderOfKey);
    }
    let token = params
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("token"))
        .map(|(_, value)| value.as_str())
        .filter(|token| !token.is_empty())
        .ok_or(SignError::MissingToken)?;
    let compressed = STANDARD.decode(token).map_err(|_| SignError::InvalidBase64)?;
    let xml = gunzip(&compressed)?;
    String::from_utf8(xml).map(|token| SignCredentials { token }).map_err(|_| SignError::NotUtf8)
}

/// Decompresses one gzip member within [`MAX_TOKEN_LEN`] and
/// [`MAX_INFLATE_RATIO`], reading no more than one byte past the limit.
fn gunzip(compressed: &[u8]) -> Result<Vec<u8>, SignError> {
    if !compressed.starts_with(&[0x1f, 0x8b]) {
        return Err(SignError::NotGzip);
    }
    let limit = MAX_TOKEN_LEN.min(compressed.len().saturating_mul(MAX_INFLATE_RATIO));
    let mut out = Vec::new();
    let decoder = flate2::read::GzDecoder::new(compressed);
    decoder.take(limit as u64 + 1).read_to_end(&mut out).map_err(|_| SignError::NotGzip)?;
    if out.len() > limit {
        return Err(if out.len() > MAX_TOKEN_LEN { SignError::TooLarge } else { SignError::RatioExceeded });
    }
    Ok(out)
}

/// The bytes after `SIGN` and its whitespace, if the value uses that scheme.
fn scheme_rest(value: &[u8]) -> Option<&[u8]> {
    let value = trim(value);
    let split = value.iter().position(|&b| b == b' ' || b == b'\t').unwrap_or(value.len());
    let (scheme, rest) = value.split_at(split);
    scheme.eq_ignore_ascii_case(b"sign").then_some(rest)
}

/// Parses `name=value, name="quoted \"value\""` into pairs.
fn parse_params(input: &[u8]) -> Result<Vec<(String, String)>, SignError> {
    let mut params: Vec<(String, String)> = Vec::new();
    let mut rest = trim(input);
    if rest.is_empty() {
        return Err(SignError::MissingToken);
    }
    loop {
        let eq = rest.iter().position(|&b| b == b'=').ok_or(SignError::Malformed)?;
        let name = trim(&rest[..eq]);
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(SignError::Malformed);
        }
        rest = trim_start(&rest[eq + 1..]);
        let mut value = Vec::new();
        if let Some(quoted) = rest.strip_prefix(b"\"") {
            let mut i = 0;
            loop {
                match quoted.get(i) {
                    None => return Err(SignError::Malformed),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        let escaped = *quoted.get(i + 1).ok_or(SignError::Malformed)?;
                        value.push(escaped);
                        i += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        i += 1;
                    }
                }
            }
            rest = trim_start(&quoted[i + 1..]);
        } else {
            let end = rest.iter().position(|&b| b == b',' || b == b' ' || b == b'\t').unwrap_or(rest.len());
            value.extend_from_slice(&rest[..end]);
            if value.is_empty() || !value.iter().all(|&b| is_tchar(b) || b == b'/' || b == b'=') {
                return Err(SignError::Malformed);
            }
            rest = trim_start(&rest[end..]);
        }
        if !value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
            return Err(SignError::Malformed);
        }
        let name = String::from_utf8(name.to_vec()).map_err(|_| SignError::Malformed)?;
        let value = String::from_utf8(value).map_err(|_| SignError::Malformed)?;
        if params.iter().any(|(seen, _)| seen.eq_ignore_ascii_case(&name)) {
            return Err(SignError::DuplicateParameter);
        }
        params.push((name, value));
        match rest.split_first() {
            None => return Ok(params),
            Some((b',', after)) => {
                rest = trim_start(after);
                if rest.is_empty() {
                    return Err(SignError::Malformed);
                }
            }
            Some(_) => return Err(SignError::Malformed),
        }
    }
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

fn trim_start(bytes: &[u8]) -> &[u8] {
    let start = bytes.iter().position(|&b| b != b' ' && b != b'\t').unwrap_or(bytes.len());
    &bytes[start..]
}

fn trim(bytes: &[u8]) -> &[u8] {
    let bytes = trim_start(bytes);
    let end = bytes.iter().rposition(|&b| b != b' ' && b != b'\t').map_or(0, |i| i + 1);
    &bytes[..end]
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use http::HeaderValue;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    fn token(xml: &str) -> String {
        STANDARD.encode(gzip(xml.as_bytes()))
    }

    #[test]
    fn bearer_token_quoted_and_bare() {
        let t = token("<a/>");
        assert_eq!(sign_from_headers(&headers(&[&format!("SIGN token=\"{t}\"")])).unwrap().token(), "<a/>");
        assert_eq!(sign_from_headers(&headers(&[&format!("sign  token={t}")])).unwrap().token(), "<a/>");
        assert_eq!(sign_from_headers(&headers(&[&format!("SIGN Token = \"{t}\" ")])).unwrap().token(), "<a/>");
    }

    #[test]
    fn parameters_split_across_headers_and_unknown_ones_ignored() {
        let t = token("<a/>");
        let split = headers(&["SIGN realm=\"x\"", &format!("token=\"{t}\""), "service=\"VAPI endpoint\""]);
        assert_eq!(sign_from_headers(&split).unwrap().token(), "<a/>");
    }

    #[test]
    fn malformed_parameter_lists() {
        let t = token("<a/>");
        for bad in [
            format!("SIGN token=\"{t}"),
            format!("SIGN token=\"{t}\" x"),
            format!("SIGN token=\"{t}\","),
            format!("SIGN ,token=\"{t}\""),
            format!("SIGN =\"{t}\""),
            format!("SIGN tok en=\"{t}\""),
            "SIGN token".to_owned(),
            "SIGN token=".to_owned(),
        ] {
            assert_eq!(sign_from_headers(&headers(&[&bad])).unwrap_err(), SignError::Malformed, "{bad}");
        }
        assert_eq!(sign_from_headers(&headers(&["SIGN"])).unwrap_err(), SignError::MissingToken);
        assert_eq!(sign_from_headers(&headers(&["SIGN token=\"\""])).unwrap_err(), SignError::MissingToken);
        let twice = format!("SIGN token=\"{t}\", TOKEN=\"{t}\"");
        assert_eq!(sign_from_headers(&headers(&[&twice])).unwrap_err(), SignError::DuplicateParameter);
        assert_eq!(sign_from_headers(&headers(&["Basic dXNlcjpwYXNz"])).unwrap_err(), SignError::NotSign);
        assert_eq!(sign_from_headers(&HeaderMap::new()).unwrap_err(), SignError::Missing);
        let mixed = headers(&[&format!("SIGN token=\"{t}\""), "Basic dXNlcjpwYXNz"]);
        assert_eq!(sign_from_headers(&mixed).unwrap_err(), SignError::Malformed);
    }

    #[test]
    fn token_encoding_errors() {
        assert_eq!(sign_from_headers(&headers(&["SIGN token=\"!!!\""])).unwrap_err(), SignError::InvalidBase64);
        let mut raw = HeaderMap::new();
        raw.append(AUTHORIZATION, HeaderValue::from_bytes(b"SIGN token=\"\xff\"").unwrap());
        assert_eq!(sign_from_headers(&raw).unwrap_err(), SignError::Malformed);
        assert_eq!(sign_from_headers(&headers(&["SIGN token=\"a$b\""])).unwrap_err(), SignError::InvalidBase64);
        let plain = STANDARD.encode("<a/>");
        assert_eq!(sign_from_headers(&headers(&[&format!("SIGN token=\"{plain}\"")])).unwrap_err(), SignError::NotGzip);
        let mut truncated = gzip(b"<assertion/>");
        truncated.truncate(truncated.len() - 6);
        let truncated = STANDARD.encode(truncated);
        assert_eq!(
            sign_from_headers(&headers(&[&format!("SIGN token=\"{truncated}\"")])).unwrap_err(),
            SignError::NotGzip
        );
        let latin1 = STANDARD.encode(gzip(&[0xe9, 0xe9]));
        assert_eq!(
            sign_from_headers(&headers(&[&format!("SIGN token=\"{latin1}\"")])).unwrap_err(),
            SignError::NotUtf8
        );
    }

    #[test]
    fn decompression_is_bounded_by_size_and_ratio() {
        let big = STANDARD.encode(gzip(&vec![b'a'; MAX_TOKEN_LEN + 1]));
        let error = sign_from_headers(&headers(&[&format!("SIGN token=\"{big}\"")])).unwrap_err();
        assert!(matches!(error, SignError::TooLarge | SignError::RatioExceeded), "{error:?}");
        // Within the size limit but far beyond the ratio.
        let dense = STANDARD.encode(gzip(&vec![b'a'; MAX_TOKEN_LEN / 2]));
        assert_eq!(
            sign_from_headers(&headers(&[&format!("SIGN token=\"{dense}\"")])).unwrap_err(),
            SignError::RatioExceeded
        );
    }

    #[test]
    fn joined_headers_are_bounded() {
        let long = format!("x=\"{}\"", "a".repeat(MAX_SIGN_HEADER_LEN / 2));
        let headers = headers(&["SIGN token=\"H4sI\"", &long, &long]);
        assert_eq!(sign_from_headers(&headers).unwrap_err(), SignError::TooLong);
    }
}
