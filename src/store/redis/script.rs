//! The Lua scripts (see `lua/`), loaded once per process. `redis::Script`
//! sends EVALSHA and falls back to loading the script on NOSCRIPT, so a
//! restarted (empty) Redis needs nothing from us.

use std::sync::LazyLock;

use ::redis::Script;

/// Look-up and idle refresh: the one command of an authenticated request.
pub(super) static RESOLVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/resolve.lua")));
/// Counts a new session against the caps.
pub(super) static ADMIT: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/admit.lua")));
/// Deletes a session if it has expired.
pub(super) static REAP: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/reap.lua")));
/// Updates the index after reaps and deletes.
pub(super) static SETTLE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/settle.lua")));
/// Sessions and users in the index.
pub(super) static STATS: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/stats.lua")));

/// What `admit.lua` decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Admission {
    Admitted,
    StoreFull,
    UserFull,
    /// The id is indexed already (a leftover of a session with the same id).
    IdTaken,
}

impl Admission {
    pub(super) fn from_status(status: i64) -> Option<Self> {
        match status {
            1 => Some(Admission::Admitted),
            -1 => Some(Admission::StoreFull),
            -2 => Some(Admission::UserFull),
            -3 => Some(Admission::IdTaken),
            _ => None,
        }
    }
}

/// What `reap.lua` found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reaped {
    /// No such key (deleted, expired in Redis, or never written).
    Gone,
    /// The session had expired and is deleted now.
    Expired,
    /// The session is live until this time (ms).
    Live(u64),
}

impl Reaped {
    pub(super) fn from_reply(reply: i64) -> Self {
        match u64::try_from(reply) {
            Err(_) => Reaped::Gone,
            Ok(0) => Reaped::Expired,
            Ok(expiry) => Reaped::Live(expiry),
        }
    }
}
