//! Session ids: 128 bits from the operating system's CSPRNG, written as 32
//! lowercase hex characters like vCenter's.

use std::fmt;
use std::str::FromStr;

/// The number of characters in the text form of a [`SessionId`].
pub const SESSION_ID_LEN: usize = 32;

/// A session token.
///
/// The text form is exactly 32 lowercase hex characters. Anything else is
/// refused by [`SessionId::parse`] before any store is asked, without
/// allocating. `Debug` shows only a short prefix, so ids do not leak into logs;
/// `Display` writes the whole id and is meant for the wire only.
///
/// ```
/// use tower_cis::SessionId;
/// let id = SessionId::generate().unwrap();
/// let text = id.to_string();
/// assert_eq!(text.len(), 32);
/// assert_eq!(SessionId::parse(&text), Some(id));
/// assert!(format!("{id:?}").len() < 20);
/// assert_eq!(SessionId::parse("B00DB39F948D13EA1E59B4D6FCE56389"), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionId([u8; 16]);

/// The operating system's random number generator failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RandomUnavailable;

impl fmt::Display for RandomUnavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the operating system's random number generator is unavailable")
    }
}

impl std::error::Error for RandomUnavailable {}

impl SessionId {
    /// A fresh id from the operating system's CSPRNG.
    pub fn generate() -> Result<Self, RandomUnavailable> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes).map_err(|_| RandomUnavailable)?;
        Ok(SessionId(bytes))
    }

    /// Parses the 32-character lowercase hex form; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        Self::parse_bytes(text.as_bytes())
    }

    /// Parses the 32-character lowercase hex form from raw bytes (a header
    /// value, say); `None` for anything else.
    pub fn parse_bytes(text: &[u8]) -> Option<Self> {
        if text.len() != SESSION_ID_LEN {
            return None;
        }
        // Branch-free: ids are random, so a branch per digit would be
        // mispredicted half the time. Invalid characters map to 0xff, whose
        // high nibble survives the OR.
        let mut bytes = [0u8; 16];
        let mut invalid = 0u8;
        for (byte, pair) in bytes.iter_mut().zip(text.chunks_exact(2)) {
            let (high, low) = (HEX_VALUE[usize::from(pair[0])], HEX_VALUE[usize::from(pair[1])]);
            invalid |= high | low;
            *byte = (high << 4) | (low & 0x0f);
        }
        (invalid & 0xf0 == 0).then_some(SessionId(bytes))
    }

    /// The id's 16 bytes.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }

    /// The id made of these 16 bytes. Use [`SessionId::generate`] for new
    /// sessions; this is for stores that keep ids in binary form.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        SessionId(bytes)
    }

    /// The text form, on the stack.
    pub fn to_hex(&self) -> [u8; SESSION_ID_LEN] {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; SESSION_ID_LEN];
        for (pair, byte) in out.chunks_exact_mut(2).zip(self.0) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0x0f)];
        }
        out
    }

    /// A short, non-secret tag for logs: the first four hex characters.
    pub fn log_tag(&self) -> LogTag {
        LogTag(u16::from_be_bytes([self.0[0], self.0[1]]))
    }
}

/// The value of each lowercase hex digit; 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut digit = 0;
    while digit < 10 {
        table[b'0' as usize + digit] = digit as u8;
        digit += 1;
    }
    let mut letter = 0;
    while letter < 6 {
        table[b'a' as usize + letter] = 10 + letter as u8;
        letter += 1;
    }
    table
};

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hex = self.to_hex();
        // The digits are ASCII by construction.
        f.write_str(std::str::from_utf8(&hex).map_err(|_| fmt::Error)?)
    }
}

impl fmt::Debug for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionId({}…)", self.log_tag())
    }
}

impl FromStr for SessionId {
    type Err = InvalidSessionId;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text).ok_or(InvalidSessionId)
    }
}

/// A string that is not a well-formed session id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidSessionId;

impl fmt::Display for InvalidSessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a well-formed session id")
    }
}

impl std::error::Error for InvalidSessionId {}

/// The first four hex characters of a session id: enough to correlate log
/// lines, far too little to use the session.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct LogTag(u16);

impl fmt::Display for LogTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}", self.0)
    }
}

impl fmt::Debug for LogTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}
