//! Reading query strings: a bounded, allocation-light look-up of one
//! parameter, with percent-decoding (clients may send `~` as `%7E`).

use std::borrow::Cow;

/// At most this many parameters are looked at; a longer query is refused.
pub const MAX_QUERY_PARAMS: usize = 256;
/// At most this many bytes of query string.
pub const MAX_QUERY_LEN: usize = 8192;

/// A query string that breaks the limits or is not valid UTF-8 once decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadQuery;

/// One decoded `(name, value)` pair.
pub type Pair<'q> = (Cow<'q, str>, Cow<'q, str>);

/// Every `(name, value)` pair, decoded, in order.
///
/// ```
/// use tower_cis::rest::query::pairs;
/// let found: Vec<_> = pairs(Some("%7Eaction=get&a+b=c%20d&flag")).unwrap();
/// assert_eq!(found, [("~action".into(), "get".into()), ("a b".into(), "c d".into()), ("flag".into(), "".into())]);
/// ```
pub fn pairs(query: Option<&str>) -> Result<Vec<Pair<'_>>, BadQuery> {
    let Some(query) = query.filter(|q| !q.is_empty()) else { return Ok(Vec::new()) };
    if query.len() > MAX_QUERY_LEN {
        return Err(BadQuery);
    }
    let mut found = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        if found.len() == MAX_QUERY_PARAMS {
            return Err(BadQuery);
        }
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        found.push((decode(name)?, decode(value)?));
    }
    Ok(found)
}

/// The value of the one parameter `name`; `Ok(None)` if absent, an error if
/// it appears more than once or the query is malformed.
pub fn single<'q>(query: Option<&'q str>, name: &str) -> Result<Option<Cow<'q, str>>, BadQuery> {
    let mut value = None;
    for (key, found) in pairs(query)? {
        if key == name {
            if value.is_some() {
                return Err(BadQuery);
            }
            value = Some(found);
        }
    }
    Ok(value)
}

/// Percent-decodes `+` and `%XX` (application/x-www-form-urlencoded).
fn decode(text: &str) -> Result<Cow<'_, str>, BadQuery> {
    if !text.bytes().any(|b| b == b'%' || b == b'+') {
        return Ok(Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).filter(|h| h.iter().all(u8::is_ascii_hexdigit)).ok_or(BadQuery)?;
                let hex = std::str::from_utf8(hex).map_err(|_| BadQuery)?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| BadQuery)?);
                i += 2;
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8(out).map(Cow::Owned).map_err(|_| BadQuery)
}

/// Percent-decodes one path segment (`+` stays a plus).
pub fn decode_segment(text: &str) -> Result<Cow<'_, str>, BadQuery> {
    if !text.contains('%') {
        return Ok(Cow::Borrowed(text));
    }
    decode(&text.replace('+', "%2B")).map(|decoded| Cow::Owned(decoded.into_owned()))
}
