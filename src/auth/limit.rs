//! A bound on password checks running at once, so that a burst of logins
//! cannot take every thread of the machine.

use std::fmt;
use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{Semaphore, SemaphorePermit};

/// How many password checks may run at once, and how many more may wait.
///
/// An argon2 check takes tens of milliseconds of one core. Without a bound,
/// a thousand simultaneous logins start a thousand checks (each on a thread
/// of its own) and every request of the server waits behind them. With it,
/// at most [`max_running`](Self::max_running) checks run; up to
/// [`max_waiting`](Self::max_waiting) more wait their turn without holding a
/// thread; beyond that a login is refused at once as
/// [`Unavailable`](super::AuthErrorKind::Unavailable) (503), which clients
/// retry. A waiting login that its client abandons leaves the queue.
///
/// The default runs one check per core and lets 64 wait: at the default cost
/// a full queue drains in well under a second on two cores.
///
/// ```
/// use tower_cis::auth::LoginLimit;
/// let limit = LoginLimit::new(2, 16);
/// assert_eq!((limit.max_running(), limit.max_waiting()), (2, 16));
/// ```
pub struct LoginLimit {
    running: Semaphore,
    max_running: usize,
    waiting: AtomicUsize,
    max_waiting: usize,
}

/// A login found the limit's queue full.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginsBusy;

impl fmt::Display for LoginsBusy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("too many logins at once")
    }
}

impl std::error::Error for LoginsBusy {}

impl LoginLimit {
    /// At most `max_running` checks at once (at least one) and `max_waiting`
    /// logins waiting for their turn.
    pub fn new(max_running: usize, max_waiting: usize) -> Self {
        let max_running = max_running.clamp(1, Semaphore::MAX_PERMITS);
        LoginLimit { running: Semaphore::new(max_running), max_running, waiting: AtomicUsize::new(0), max_waiting }
    }

    /// How many checks may run at once.
    pub fn max_running(&self) -> usize {
        self.max_running
    }

    /// How many logins may wait for a check to finish.
    pub fn max_waiting(&self) -> usize {
        self.max_waiting
    }

    /// How many logins are waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Waits for a turn to check a password: at once while fewer than
    /// `max_running` checks run, in line while fewer than `max_waiting` wait,
    /// refused otherwise. The turn ends when the returned permit is dropped.
    pub async fn enter(&self) -> Result<SemaphorePermit<'_>, LoginsBusy> {
        if let Ok(permit) = self.running.try_acquire() {
            return Ok(permit);
        }
        let queued = self.waiting.fetch_add(1, Ordering::AcqRel);
        let _place = InLine(&self.waiting);
        if queued >= self.max_waiting {
            return Err(LoginsBusy);
        }
        // The semaphore is never closed.
        self.running.acquire().await.map_err(|_| LoginsBusy)
    }
}

impl Default for LoginLimit {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        LoginLimit::new(cores, 64)
    }
}

impl fmt::Debug for LoginLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginLimit")
            .field("max_running", &self.max_running)
            .field("running", &(self.max_running - self.running.available_permits()))
            .field("max_waiting", &self.max_waiting)
            .field("waiting", &self.waiting())
            .finish()
    }
}

/// A place in the queue, given up when the login gets its turn, is refused
/// or is abandoned.
struct InLine<'a>(&'a AtomicUsize);

impl Drop for InLine<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}
