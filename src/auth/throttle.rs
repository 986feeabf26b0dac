//! Login throttling modelled on vCenter SSO's lockout policy: too many failed
//! logins for one user name, or from one client address, lock further
//! attempts out for a while.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use super::basic::MAX_USER_LEN;
use super::directory::fold_name;
use crate::{SharedClock, SystemClock, Timestamp};

/// A lockout rule: `failures` failed logins within `within` of the first of
/// them lock further logins out for `lock_for`.
///
/// ```
/// use std::time::Duration;
/// use tower_cis::auth::FailureLimit;
/// let limit = FailureLimit::new(3, Duration::from_secs(60), Duration::from_secs(600));
/// assert_eq!(limit.failures(), 3);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FailureLimit {
    failures: u32,
    within: Duration,
    lock_for: Duration,
}

impl FailureLimit {
    /// The rule "`failures` failures within `within` lock for `lock_for`";
    /// `failures` of 0 counts as 1.
    pub const fn new(failures: u32, within: Duration, lock_for: Duration) -> Self {
        FailureLimit { failures: if failures == 0 { 1 } else { failures }, within, lock_for }
    }

    /// How many failures lock.
    pub const fn failures(&self) -> u32 {
        self.failures
    }

    /// The window, from the first failure, in which they must happen.
    pub const fn within(&self) -> Duration {
        self.within
    }

    /// How long the lock lasts.
    pub const fn lock_for(&self) -> Duration {
        self.lock_for
    }
}

/// How [`LoginThrottle`] limits failed logins.
///
/// The default follows vCenter SSO's lockout policy for user names (5 failures
/// within 180 s lock for 300 s) and adds a higher limit per client address (20
/// failures within 180 s lock the address for 300 s), so that one client's
/// typos do not lock other clients out of an account while one address still
/// cannot try passwords against many accounts. At most 100 000 user names and
/// addresses are tracked.
///
/// ```
/// use std::time::Duration;
/// use tower_cis::auth::{FailureLimit, ThrottlePolicy};
/// let policy = ThrottlePolicy::default()
///     .with_per_user(FailureLimit::new(3, Duration::from_secs(900), Duration::from_secs(900)))
///     .with_max_tracked(10_000);
/// assert_eq!(policy.per_address().failures(), 20);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ThrottlePolicy {
    per_user: FailureLimit,
    per_address: FailureLimit,
    max_tracked: usize,
}

impl Default for ThrottlePolicy {
    fn default() -> Self {
        ThrottlePolicy {
            per_user: FailureLimit::new(5, Duration::from_secs(180), Duration::from_secs(300)),
            per_address: FailureLimit::new(20, Duration::from_secs(180), Duration::from_secs(300)),
            max_tracked: 100_000,
        }
    }
}

impl ThrottlePolicy {
    /// The same policy with this limit per user name.
    pub fn with_per_user(mut self, limit: FailureLimit) -> Self {
        self.per_user = limit;
        self
    }

    /// The same policy with this limit per client address.
    pub fn with_per_address(mut self, limit: FailureLimit) -> Self {
        self.per_address = limit;
        self
    }

    /// The same policy tracking at most `max` user names and addresses
    /// together (at least 2).
    pub fn with_max_tracked(mut self, max: usize) -> Self {
        self.max_tracked = max.max(2);
        self
    }

    /// The limit per user name.
    pub fn per_user(&self) -> FailureLimit {
        self.per_user
    }

    /// The limit per client address.
    pub fn per_address(&self) -> FailureLimit {
        self.per_address
    }

    /// How many user names and addresses are tracked at most.
    pub fn max_tracked(&self) -> usize {
        self.max_tracked
    }

    fn limit(&self, key: &Key) -> &FailureLimit {
        match key {
            Key::User(_) => &self.per_user,
            Key::Address(_) => &self.per_address,
        }
    }
}

/// Why a login was throttled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ThrottleReason {
    /// The user name is locked after too many failures.
    UserLocked,
    /// The client address is locked after too many failures.
    AddressLocked,
    /// As many attempts for this user name are being checked as failures
    /// remain before the lock; this one would exceed the limit if they fail.
    TooManyConcurrent,
    /// The throttle tracks as many names and addresses as it may, all with
    /// recent failures; new ones are refused until some expire.
    Saturated,
}

/// A login refused by [`LoginThrottle`], for the logs: the reason and, for a
/// lock, when it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Throttled {
    reason: ThrottleReason,
    until: Option<Timestamp>,
}

impl Throttled {
    /// Why the login was refused.
    pub fn reason(&self) -> ThrottleReason {
        self.reason
    }

    /// When the lock ends; `None` when the refusal is not a lock.
    pub fn until(&self) -> Option<Timestamp> {
        self.until
    }
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason {
            ThrottleReason::UserLocked => f.write_str("the user name is locked after repeated failures")?,
            ThrottleReason::AddressLocked => f.write_str("the client address is locked after repeated failures")?,
            ThrottleReason::TooManyConcurrent => f.write_str("too many concurrent attempts for the user name")?,
            ThrottleReason::Saturated => f.write_str("too many user names and addresses with recent failures")?,
        }
        if let Some(until) = self.until {
            write!(f, " until {until}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Throttled {}

#[derive(Clone, PartialEq, Eq, Hash)]
enum Key {
    /// A user name, lowercased as the directory looks it up.
    User(Box<str>),
    /// A client address; IPv6 by its /64 prefix.
    Address(IpAddr),
}

#[derive(Default)]
struct Entry {
    window_start: Timestamp,
    failures: u32,
    locked_until: Timestamp,
    in_flight: u32,
}

impl Entry {
    /// Forgets a lock that has ended and failures outside the window.
    fn settle(&mut self, now: Timestamp, limit: &FailureLimit) {
        if self.locked_until != Timestamp::EPOCH && now >= self.locked_until {
            self.locked_until = Timestamp::EPOCH;
            self.failures = 0;
        }
        if self.failures > 0 && now >= self.window_start.saturating_add(limit.within) {
            self.failures = 0;
        }
    }

    fn is_locked(&self, now: Timestamp) -> bool {
        now < self.locked_until
    }

    /// Whether the entry holds nothing worth remembering.
    fn is_idle(&mut self, now: Timestamp, limit: &FailureLimit) -> bool {
        self.settle(now, limit);
        self.in_flight == 0 && self.failures == 0 && !self.is_locked(now)
    }

    /// Counts a failure; answers whether it locked the entry.
    fn fail(&mut self, now: Timestamp, limit: &FailureLimit) -> bool {
        self.settle(now, limit);
        if self.is_locked(now) {
            // An attempt admitted before the lock: the lock is not extended.
            return false;
        }
        if self.failures == 0 {
            self.window_start = now;
        }
        self.failures += 1;
        if self.failures >= limit.failures {
            self.locked_until = now.saturating_add(limit.lock_for);
            self.failures = 0;
            return true;
        }
        false
    }
}

struct State {
    entries: HashMap<Key, Entry>,
    next_prune: Timestamp,
}

impl State {
    /// Drops every idle entry, at most once per window.
    fn prune(&mut self, now: Timestamp, policy: &ThrottlePolicy, force: bool) {
        if !force && now < self.next_prune {
            return;
        }
        self.entries.retain(|key, entry| !entry.is_idle(now, policy.limit(key)));
        let every = policy.per_user.within.min(policy.per_address.within).max(Duration::from_secs(1));
        self.next_prune = now.saturating_add(every);
    }

    /// Makes room for `needed` new entries, keeping `keep`: drops idle
    /// entries, then unlocked ones with no attempt in flight, oldest window
    /// first. Answers whether there is room.
    fn make_room(&mut self, needed: usize, keep: [Option<&Key>; 2], now: Timestamp, policy: &ThrottlePolicy) -> bool {
        if self.entries.len() + needed <= policy.max_tracked {
            return true;
        }
        self.prune(now, policy, true);
        while self.entries.len() + needed > policy.max_tracked {
            let victim = self
                .entries
                .iter()
                .filter(|(key, entry)| entry.in_flight == 0 && !entry.is_locked(now) && !keep.contains(&Some(*key)))
                .min_by_key(|(_, entry)| entry.window_start)
                .map(|(key, _)| key.clone());
            match victim {
                Some(key) => {
                    self.entries.remove(&key);
                }
                None => return false,
            }
        }
        true
    }
}

enum Outcome {
    Succeeded,
    Failed,
    Abandoned,
}

/// Counts failed logins per user name and per client address and refuses
/// logins while either is locked.
///
/// - User names are compared case-insensitively (and only by their first
///   [`MAX_USER_LEN`](super::MAX_USER_LEN) bytes), like
///   [`UserDirectory`](super::UserDirectory) looks them up, and names that
///   exist nowhere are tracked like real ones, so a lock says nothing about
///   whether a user exists.
/// - IPv6 clients are tracked by their /64 prefix (one host usually owns a
///   whole /64); IPv4-mapped IPv6 addresses count as the IPv4 address.
/// - Failures are counted in a fixed window that starts at the first failure.
///   When a lock ends, counting starts afresh. A failure reported for an
///   attempt that was admitted before the lock does not extend it.
/// - A success clears the user name's failures but not the address's, so an
///   attacker with one valid account cannot reset their address's count.
/// - Attempts being checked count against the per-user limit, so parallel
///   guesses cannot outrun it: with 5 allowed failures, at most 5 attempts
///   for one name are checked at once.
/// - Memory is bounded by [`ThrottlePolicy::max_tracked`]: entries with
///   nothing left to remember are dropped, and when the table is full the
///   unlocked entry with the oldest failures makes room. If every entry is
///   locked or in use, new names and addresses are refused
///   ([`ThrottleReason::Saturated`]), failing closed.
///
/// Time comes from the clock given at construction, so tests move it by hand.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use tower_cis::auth::{LoginThrottle, ThrottlePolicy, ThrottleReason};
/// use tower_cis::{ManualClock, Timestamp};
///
/// let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
/// let throttle = LoginThrottle::new(ThrottlePolicy::default(), Arc::new(clock.clone()));
/// for _ in 0..5 {
///     throttle.begin("mallory", None).unwrap().failed();
/// }
/// let refused = throttle.begin("Mallory", None).unwrap_err();
/// assert_eq!(refused.reason(), ThrottleReason::UserLocked);
/// clock.advance(Duration::from_secs(300));
/// throttle.begin("mallory", None).unwrap().succeeded();
/// ```
pub struct LoginThrottle {
    policy: ThrottlePolicy,
    clock: SharedClock,
    state: Mutex<State>,
}

impl LoginThrottle {
    /// A throttle applying `policy`, reading time from `clock`.
    pub fn new(policy: ThrottlePolicy, clock: SharedClock) -> Self {
        LoginThrottle {
            policy,
            clock,
            state: Mutex::new(State { entries: HashMap::new(), next_prune: Timestamp::EPOCH }),
        }
    }

    /// The policy applied.
    pub fn policy(&self) -> &ThrottlePolicy {
        &self.policy
    }

    /// Admits a login attempt for `user` from `address`, or refuses it while
    /// the user name or the address is locked. Report the outcome on the
    /// returned [`LoginAttempt`]; dropping it reports nothing.
    pub fn begin(&self, user: &str, address: Option<IpAddr>) -> Result<LoginAttempt<'_>, Throttled> {
        let now = self.clock.now();
        let user_key = user_key(user);
        let address_key = address.map(|address| Key::Address(address_key(address)));
        let mut state = self.state.lock();
        state.prune(now, &self.policy, false);

        let limit = &self.policy.per_user;
        if let Some(entry) = state.entries.get_mut(&user_key) {
            entry.settle(now, limit);
            if entry.is_locked(now) {
                return Err(Throttled { reason: ThrottleReason::UserLocked, until: Some(entry.locked_until) });
            }
            if entry.failures + entry.in_flight >= limit.failures {
                return Err(Throttled { reason: ThrottleReason::TooManyConcurrent, until: None });
            }
        }
        if let Some(key) = &address_key
            && let Some(entry) = state.entries.get_mut(key)
        {
            entry.settle(now, &self.policy.per_address);
            if entry.is_locked(now) {
                return Err(Throttled { reason: ThrottleReason::AddressLocked, until: Some(entry.locked_until) });
            }
        }

        let needed = usize::from(!state.entries.contains_key(&user_key))
            + address_key.as_ref().map_or(0, |key| usize::from(!state.entries.contains_key(key)));
        if !state.make_room(needed, [Some(&user_key), address_key.as_ref()], now, &self.policy) {
            tracing::warn!(tracked = state.entries.len(), "login throttle is full of recent failures; refusing logins");
            return Err(Throttled { reason: ThrottleReason::Saturated, until: None });
        }
        state.entries.entry(user_key.clone()).or_default().in_flight += 1;
        if let Some(key) = &address_key {
            state.entries.entry(key.clone()).or_default().in_flight += 1;
        }
        drop(state);
        Ok(LoginAttempt { throttle: self, user: user_key, address: address_key, finished: false })
    }

    /// When `user`'s lock ends, if the name is locked now.
    pub fn user_locked_until(&self, user: &str) -> Option<Timestamp> {
        self.locked_until(&user_key(user))
    }

    /// When `address`'s lock ends, if the address is locked now.
    pub fn address_locked_until(&self, address: IpAddr) -> Option<Timestamp> {
        self.locked_until(&Key::Address(address_key(address)))
    }

    /// Lifts `user`'s lock and forgets its failures (an administrator's unlock).
    pub fn unlock_user(&self, user: &str) {
        self.unlock(&user_key(user));
    }

    /// Lifts `address`'s lock and forgets its failures.
    pub fn unlock_address(&self, address: IpAddr) {
        self.unlock(&Key::Address(address_key(address)));
    }

    /// How many user names and addresses are tracked now.
    pub fn tracked(&self) -> usize {
        self.state.lock().entries.len()
    }

    fn locked_until(&self, key: &Key) -> Option<Timestamp> {
        let now = self.clock.now();
        let state = self.state.lock();
        state.entries.get(key).filter(|entry| entry.is_locked(now)).map(|entry| entry.locked_until)
    }

    fn unlock(&self, key: &Key) {
        let mut state = self.state.lock();
        if let Some(entry) = state.entries.get_mut(key) {
            entry.locked_until = Timestamp::EPOCH;
            entry.failures = 0;
            if entry.in_flight == 0 {
                state.entries.remove(key);
            }
        }
    }

    fn finish(&self, user: &Key, address: Option<&Key>, outcome: &Outcome) {
        let now = self.clock.now();
        let mut state = self.state.lock();
        for key in std::iter::once(user).chain(address) {
            let limit = self.policy.limit(key);
            let Some(entry) = state.entries.get_mut(key) else { continue };
            entry.in_flight = entry.in_flight.saturating_sub(1);
            match (outcome, key) {
                (Outcome::Succeeded, Key::User(_)) => entry.failures = 0,
                (Outcome::Failed, Key::User(name)) => {
                    if entry.fail(now, limit) {
                        tracing::info!(lock_for = ?limit.lock_for, "user name locked after repeated login failures");
                        tracing::debug!(user = %name, "locked user name");
                    }
                }
                (Outcome::Failed, Key::Address(address)) => {
                    if entry.fail(now, limit) {
                        tracing::warn!(%address, lock_for = ?limit.lock_for, "client address locked after repeated login failures");
                    }
                }
                (Outcome::Succeeded | Outcome::Abandoned, _) => {}
            }
            if entry.is_idle(now, limit) {
                state.entries.remove(key);
            }
        }
    }
}

impl Default for LoginThrottle {
    /// The default policy on the system clock.
    fn default() -> Self {
        Self::new(ThrottlePolicy::default(), Arc::new(SystemClock))
    }
}

impl fmt::Debug for LoginThrottle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginThrottle").field("policy", &self.policy).finish_non_exhaustive()
    }
}

/// A login attempt admitted by [`LoginThrottle::begin`]. Report how it ended
/// with [`succeeded`](LoginAttempt::succeeded) or
/// [`failed`](LoginAttempt::failed); dropped without either (the check could
/// not be made), it counts as neither.
#[must_use = "report the outcome with `succeeded` or `failed`"]
pub struct LoginAttempt<'a> {
    throttle: &'a LoginThrottle,
    user: Key,
    address: Option<Key>,
    finished: bool,
}

impl LoginAttempt<'_> {
    /// The credential was right: the user name's failures are forgotten.
    pub fn succeeded(mut self) {
        self.finish(&Outcome::Succeeded);
    }

    /// The credential was wrong or unknown: one failure for the user name and
    /// for the address.
    pub fn failed(mut self) {
        self.finish(&Outcome::Failed);
    }

    fn finish(&mut self, outcome: &Outcome) {
        if !self.finished {
            self.finished = true;
            self.throttle.finish(&self.user, self.address.as_ref(), outcome);
        }
    }
}

impl Drop for LoginAttempt<'_> {
    fn drop(&mut self) {
        self.finish(&Outcome::Abandoned);
    }
}

impl fmt::Debug for LoginAttempt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginAttempt").field("finished", &self.finished).finish_non_exhaustive()
    }
}

/// The key a user name is tracked by: at most its first [`MAX_USER_LEN`]
/// bytes (longer names are no user's), lowercased.
fn user_key(user: &str) -> Key {
    let mut end = user.len().min(MAX_USER_LEN);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    Key::User(fold_name(&user[..end]).into_boxed_str())
}

/// The address a client is tracked by: IPv4 as is (also when IPv4-mapped),
/// IPv6 by its /64 prefix.
fn address_key(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}
