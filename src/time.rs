//! Points in time as the cis services see them: milliseconds since the Unix
//! epoch, rendered as RFC 3339 UTC with milliseconds (`2026-12-04T19:38:18.110Z`).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A point in time with millisecond resolution, counted from the Unix epoch.
///
/// Every time the crate stores, compares or renders is a `Timestamp`, so that
/// expiry arithmetic is plain integer arithmetic and a whole record fits in a
/// few machine words.
///
/// ```
/// use tower_cis::Timestamp;
/// let t = Timestamp::from_millis(1_796_413_098_110);
/// assert_eq!(t.to_string(), "2026-12-04T19:38:18.110Z");
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(u64);

impl Timestamp {
    /// The Unix epoch.
    pub const EPOCH: Timestamp = Timestamp(0);
    /// The latest representable time; used for "never".
    pub const MAX: Timestamp = Timestamp(u64::MAX);

    /// The time `millis` milliseconds after the Unix epoch.
    pub const fn from_millis(millis: u64) -> Self {
        Timestamp(millis)
    }

    /// Milliseconds since the Unix epoch.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Converts a [`SystemTime`]; times before the epoch clamp to the epoch.
    pub fn from_system_time(time: SystemTime) -> Self {
        let millis = time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        Timestamp(millis)
    }

    /// This time plus `duration`, saturating at [`Timestamp::MAX`].
    pub fn saturating_add(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_add(millis))
    }

    /// This time minus `duration`, saturating at the epoch.
    pub fn saturating_sub(self, duration: Duration) -> Self {
        let millis = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        Timestamp(self.0.saturating_sub(millis))
    }

    /// The time from `earlier` to `self`, zero if `earlier` is later.
    pub fn duration_since(self, earlier: Timestamp) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Parses an RFC 3339 date-time (any offset, any fraction), rounding the
    /// fraction down to milliseconds. Times before the epoch are refused.
    ///
    /// ```
    /// use tower_cis::Timestamp;
    /// let t = Timestamp::parse_rfc3339("2026-12-04T20:38:18.110+01:00").unwrap();
    /// assert_eq!(t.to_string(), "2026-12-04T19:38:18.110Z");
    /// assert!(Timestamp::parse_rfc3339("yesterday").is_none());
    /// ```
    pub fn parse_rfc3339(text: &str) -> Option<Self> {
        let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()?;
        let millis = parsed.unix_timestamp_nanos() / 1_000_000;
        u64::try_from(millis).ok().map(Timestamp)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339, UTC, exactly three fraction digits, as vCenter renders times.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = i64::try_from(self.0 / 1000).unwrap_or(i64::MAX);
        let millis = self.0 % 1000;
        match time::OffsetDateTime::from_unix_timestamp(seconds) {
            Ok(t) => write!(
                f,
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}Z",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ),
            // Beyond year 9999: only `Timestamp::MAX`-like sentinels get here.
            Err(_) => f.write_str("9999-12-31T23:59:59.999Z"),
        }
    }
}

impl fmt::Debug for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Timestamp({self})")
    }
}

impl serde::Serialize for Timestamp {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}
