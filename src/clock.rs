//! Where "now" comes from: the system clock in production, a manual clock in
//! tests, so that expiry is tested without sleeping.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use crate::Timestamp;

/// A source of the current time. Stores, the layer and the services read time
/// only through a `Clock`.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current time.
    fn now(&self) -> Timestamp;

    /// The current time to within a few milliseconds, never ahead of `now`:
    /// for reads on every request that compare against timeouts of minutes
    /// (the memory store's look-ups). The default is [`now`](Clock::now).
    fn recent(&self) -> Timestamp {
        self.now()
    }
}

/// The operating system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_system_time(SystemTime::now())
    }

    /// On Linux, the kernel's coarse real-time clock: the time of the last
    /// timer tick (4 ms old at most on most kernels, 10 ms at worst), read
    /// without reading the hardware clock, which on a virtual machine is the
    /// larger part of a look-up in the memory store. Elsewhere the default,
    /// [`now`](Clock::now).
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn recent(&self) -> Timestamp {
        use rustix::time::{ClockId, clock_gettime};
        let time = clock_gettime(ClockId::RealtimeCoarse);
        // Before 1970, like `Timestamp::from_system_time`: the epoch.
        let seconds = u64::try_from(time.tv_sec).unwrap_or(0);
        let millis = u64::try_from(time.tv_nsec).unwrap_or(0) / 1_000_000;
        Timestamp::from_millis(seconds.saturating_mul(1000).saturating_add(millis))
    }
}

/// A clock that moves only when told to. Clones share the same time.
///
/// ```
/// use std::time::Duration;
/// use tower_cis::{Clock, ManualClock, Timestamp};
/// let clock = ManualClock::new(Timestamp::from_millis(1_000));
/// let seen_by_store = clock.clone();
/// clock.advance(Duration::from_secs(2));
/// assert_eq!(seen_by_store.now(), Timestamp::from_millis(3_000));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ManualClock {
    millis: Arc<AtomicU64>,
}

impl ManualClock {
    /// A manual clock standing at `start`.
    pub fn new(start: Timestamp) -> Self {
        ManualClock { millis: Arc::new(AtomicU64::new(start.as_millis())) }
    }

    /// A manual clock standing at the system clock's current time.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward by `step`.
    pub fn advance(&self, step: Duration) {
        let millis = u64::try_from(step.as_millis()).unwrap_or(u64::MAX);
        self.millis.fetch_add(millis, Ordering::SeqCst);
    }

    /// Sets the clock to `time` (which may be earlier than it stands).
    pub fn set(&self, time: Timestamp) {
        self.millis.store(time.as_millis(), Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_millis(self.millis.load(Ordering::SeqCst))
    }
}

/// A shared clock, as the stores and services hold it.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_clocks_recent_time_is_never_ahead_and_at_most_a_tick_behind() {
        for _ in 0..10_000 {
            let recent = SystemClock.recent();
            let now = SystemClock.now();
            assert!(recent <= now, "recent {recent:?} ahead of now {now:?}");
            // A tick is 1 to 10 ms; the bound leaves room for a preempted test.
            assert!(now.as_millis() - recent.as_millis() < 1_000, "recent {recent:?}, now {now:?}");
        }
    }

    #[test]
    fn a_manual_clocks_recent_time_is_its_time() {
        let clock = ManualClock::new(Timestamp::from_millis(1_234));
        assert_eq!(clock.recent(), clock.now());
    }
}
