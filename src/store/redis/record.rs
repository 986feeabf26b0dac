//! A session's record in Redis: one string whose times come first, in fixed
//! width, so that the scripts read them with `string.sub` and update them in
//! place with `SETRANGE`, and a request costs one `GET` and at most one small
//! write inside its script.
//!
//! ```text
//! LLLLLLLLLLLLLLLL TTTTTTTTTTTTTTTT DDDDDDDDDDDDDDDD CCCCCCCCCCCCCCCC <n> <user><groups>
//! ```
//!
//! `L` last access, `T` the expiry the key's TTL was last written for, `D`
//! the absolute deadline, `C` created: milliseconds since the epoch by the
//! store's clock, 16 zero-padded decimal digits each (times are clamped to
//! 2^53, which Lua's numbers hold exactly). Then the user name's length in
//! bytes, a space, the name, and the groups as a JSON array of strings.

use crate::Timestamp;

/// Digits of each time field.
const TIME_DIGITS: usize = 16;
/// Where the fixed-width fields end (four fields and a space after each).
const HEADER_LEN: usize = 4 * (TIME_DIGITS + 1);
/// The longest user name a record may carry (the layer's own limits are far
/// below).
const MAX_USER_LEN: usize = 64 * 1024;

/// The fields of a record, borrowed from Redis's reply.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Record<'a> {
    pub(super) last_access: Timestamp,
    pub(super) deadline: Timestamp,
    pub(super) created: Timestamp,
    pub(super) user: &'a [u8],
    pub(super) groups: &'a [u8],
}

/// The record of a session created at `created`, whose key's TTL is written
/// for `ttl_expiry`.
pub(super) fn encode(created: u64, deadline: u64, ttl_expiry: u64, user: &str, groups: &str) -> String {
    let mut record = String::with_capacity(HEADER_LEN + 8 + user.len() + groups.len());
    for time in [created, ttl_expiry, deadline, created] {
        record.push_str(&format!("{time:0width$} ", width = TIME_DIGITS));
    }
    record.push_str(&user.len().to_string());
    record.push(' ');
    record.push_str(user);
    record.push_str(groups);
    record
}

/// Reads a record; `None` for anything not written by [`encode`] (or the
/// scripts' in-place updates).
pub(super) fn parse(bytes: &[u8]) -> Option<Record<'_>> {
    let header = bytes.get(..HEADER_LEN)?;
    let mut times = header.chunks_exact(TIME_DIGITS + 1).map(|field| {
        let (digits, space) = field.split_at(TIME_DIGITS);
        (space == b" ").then(|| number(digits)).flatten()
    });
    let last_access = times.next()??;
    let _ttl_expiry = times.next()??;
    let deadline = times.next()??;
    let created = times.next()??;
    let rest = &bytes[HEADER_LEN..];
    let space = rest.iter().take(8).position(|&b| b == b' ')?;
    let user_len = usize::try_from(number(&rest[..space])?).ok().filter(|&len| len <= MAX_USER_LEN)?;
    let tail = &rest[space + 1..];
    let user = tail.get(..user_len)?;
    Some(Record {
        last_access: Timestamp::from_millis(last_access),
        deadline: Timestamp::from_millis(deadline),
        created: Timestamp::from_millis(created),
        user,
        groups: &tail[user_len..],
    })
}

/// A non-empty run of ASCII digits, as a number.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > TIME_DIGITS || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0, |value, digit| value * 10 + u64::from(digit - b'0')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_reads_back_what_was_written() {
        let record =
            encode(1_796_413_098_110, 1_796_499_498_110, 1_796_414_898_110, "alice@vsphere.local", "[\"ops\"]");
        assert_eq!(
            record,
            "0001796413098110 0001796414898110 0001796499498110 0001796413098110 19 alice@vsphere.local[\"ops\"]"
        );
        let parsed = parse(record.as_bytes()).unwrap();
        assert_eq!(parsed.last_access, Timestamp::from_millis(1_796_413_098_110));
        assert_eq!(parsed.deadline, Timestamp::from_millis(1_796_499_498_110));
        assert_eq!(parsed.created, Timestamp::from_millis(1_796_413_098_110));
        assert_eq!(parsed.user, b"alice@vsphere.local");
        assert_eq!(parsed.groups, b"[\"ops\"]");
    }

    #[test]
    fn names_with_spaces_digits_and_multibyte_characters_round_trip() {
        for user in ["", "a b", "12 34", "Zoë Ünal", "x".repeat(300).as_str()] {
            let record = encode(1, 2, 3, user, "[]");
            let parsed = parse(record.as_bytes()).unwrap();
            assert_eq!(parsed.user, user.as_bytes());
            assert_eq!(parsed.groups, b"[]");
        }
    }

    #[test]
    fn the_scripts_in_place_update_of_the_first_fields_is_read() {
        let mut record = encode(1_000, 9_000, 2_000, "bob", "[]").into_bytes();
        record[..33].copy_from_slice(b"0000000000001500 0000000000002500");
        assert_eq!(parse(&record).unwrap().last_access, Timestamp::from_millis(1_500));
    }

    #[test]
    fn anything_else_is_refused_without_panicking() {
        let good = encode(1, 2, 3, "bob", "[]");
        for bad in [
            "",
            "0001",
            "hello",
            &good[..40],
            &good.replace("0000000000000002", "000000000000000x"),
            &good.replacen(' ', "_", 1),
            &good.replace(" 3 bob", " 9 bob"),
            &good.replace(" 3 bob", " 99999999 bob"),
            &good.replace(" 3 bob", " bob"),
            &good.replace(" 3 bob", " -3 bob"),
        ] {
            assert_eq!(parse(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
