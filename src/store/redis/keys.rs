//! Key names.
//!
//! - `{prefix}s:{<id>}`: a session's hash. The id is the hash tag, so sessions
//!   spread over a cluster's slots and `resolve` touches one key on one node.
//! - `{prefix}{<prefix>idx}:all`, `…:owner`, `…:users`: the index. One hash
//!   tag for all three, so that the scripts that keep the caps see all of
//!   them atomically, on one node.

use crate::SessionId;

/// The key names of one store.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: Box<str>,
    /// Zset: session id → expiry hint (ms), the earliest the session can end.
    pub(super) all: Box<str>,
    /// Hash: session id → user name.
    pub(super) owner: Box<str>,
    /// Hash: user name → sessions held.
    pub(super) users: Box<str>,
}

impl Keys {
    /// Key names under `prefix`, which holds no `{` or `}`.
    pub(super) fn new(prefix: &str) -> Self {
        let index = format!("{prefix}{{{prefix}idx}}:");
        Keys {
            prefix: prefix.into(),
            all: format!("{index}all").into(),
            owner: format!("{index}owner").into(),
            users: format!("{index}users").into(),
        }
    }

    /// The prefix every key starts with.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The hash of the session `id`.
    pub(super) fn session(&self, id: &SessionId) -> String {
        let hex = id.to_hex();
        // The digits are ASCII by construction.
        self.session_hex(std::str::from_utf8(&hex).unwrap_or_default())
    }

    /// The hash of the session whose id is written as `hex`.
    pub(super) fn session_hex(&self, hex: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + hex.len() + 4);
        key.push_str(&self.prefix);
        key.push_str("s:{");
        key.push_str(hex);
        key.push('}');
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_are_tagged_by_id_and_index_keys_share_one_tag() {
        let keys = Keys::new("app:");
        let id = SessionId::parse("0123456789abcdef0123456789abcdef").unwrap();
        assert_eq!(keys.session(&id), "app:s:{0123456789abcdef0123456789abcdef}");
        assert_eq!(&*keys.all, "app:{app:idx}:all");
        assert_eq!(&*keys.owner, "app:{app:idx}:owner");
        assert_eq!(&*keys.users, "app:{app:idx}:users");
    }
}
