//! Key names.
//!
//! - `{prefix}s:{<name>}`: a session's record (one string, see `record.rs`),
//!   where `<name>` is the session's [`StoredName`], a digest of its id. The
//!   name is the hash tag, so sessions spread over a cluster's slots and
//!   `resolve` touches one key on one node.
//! - `{prefix}{<prefix>idx}:all`, `…:owner`, `…:users`: the index. One hash
//!   tag for all three, so that the scripts that keep the caps see all of
//!   them atomically, on one node.

use sha2::{Digest, Sha256};

use crate::SessionId;
use crate::id::SESSION_ID_LEN;

/// What Redis knows a session by: the first 128 bits of SHA-256 over the id's
/// bytes, as 32 hex digits. Whoever reads Redis (a dump, `KEYS`, `MONITOR`,
/// a replica) sees names, and a name is no session id: the layer accepts
/// only the id, and the id cannot be recovered from its digest.
#[derive(Clone, Copy)]
pub(super) struct StoredName([u8; SESSION_ID_LEN]);

impl StoredName {
    /// Separates these digests from any other use of SHA-256 over the id.
    const DOMAIN: &'static [u8] = b"tower-cis session key v1\0";

    /// The name of the session `id`.
    pub(super) fn of(id: &SessionId) -> Self {
        let digest = Sha256::new().chain_update(Self::DOMAIN).chain_update(id.as_bytes()).finalize();
        let mut half = [0u8; 16];
        half.copy_from_slice(&digest[..16]);
        StoredName(SessionId::from_bytes(half).to_hex())
    }

    /// The name as text.
    pub(super) fn as_str(&self) -> &str {
        // The digits are ASCII by construction.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

/// The key names of one store.
#[derive(Debug, Clone)]
pub(super) struct Keys {
    prefix: Box<str>,
    /// Zset: session name → expiry hint (ms), the earliest the session can end.
    pub(super) all: Box<str>,
    /// Hash: session name → user name.
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

    /// The record's key of the session named `name`.
    pub(super) fn session(&self, name: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + name.len() + 4);
        key.push_str(&self.prefix);
        key.push_str("s:{");
        key.push_str(name);
        key.push('}');
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_keys_are_tagged_by_name_and_index_keys_share_one_tag() {
        let keys = Keys::new("app:");
        assert_eq!(keys.session("00112233445566778899aabbccddeeff"), "app:s:{00112233445566778899aabbccddeeff}");
        assert_eq!(&*keys.all, "app:{app:idx}:all");
        assert_eq!(&*keys.owner, "app:{app:idx}:owner");
        assert_eq!(&*keys.users, "app:{app:idx}:users");
    }

    #[test]
    fn stored_name_is_a_fixed_digest_that_shares_nothing_with_the_id() {
        let id = SessionId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let name = StoredName::of(&id);
        assert_eq!(name.as_str().len(), 32);
        assert!(name.as_str().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        assert_ne!(name.as_str(), "0123456789abcdef0123456789abcdef");
        // Deterministic: every instance names a session alike.
        assert_eq!(name.as_str(), StoredName::of(&id).as_str());
        let other = SessionId::parse("0123456789abcdef0123456789abcdee").unwrap();
        assert_ne!(StoredName::of(&other).as_str(), name.as_str());
    }
}
