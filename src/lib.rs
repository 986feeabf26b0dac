//! VMware vSphere Automation "cis" services for tower, hyper and axum:
//! sessions and tasks, wire-compatible with vCenter and VMware's SDK.
//!
//! - [`SessionAuthLayer`]: a tower layer that authenticates every request by
//!   its `vmware-api-session-id`, refreshes the session's idle timer and
//!   rejects unknown, deleted or expired sessions with vCenter's 401 body.
//! - [`SessionStore`]: the pluggable store, with one atomic
//!   look-up-and-refresh per request; `MemoryStore` is the embedded default,
//!   `RedisStore` shares sessions between instances.
//! - [`Cis`]: the entry point: the layer and the Session service (modern
//!   `/api`, legacy `/rest`) over one store, authenticator and clock.
//! - [`auth`]: password login (argon2id, lockout) and SAML bearer tokens.
//! - `tasks`: long operations as tasks; `jsonrpc`: the vAPI JSON-RPC
//!   endpoint VMware's SDK speaks.
//! - [`Clock`]: injectable time, so that expiry is tested without sleeping.
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `memory-store` | yes | `MemoryStore` |
//! | `tasks` | yes | the Tasks service, `TaskLayer` (`vmw-task=true`), the JSON-RPC endpoint |
//! | `redis` | no | `RedisStore` and, with `tasks`, `RedisTaskStore` (single node or Redis Cluster) |
//! | `saml` | no | `SamlAuthenticator`: SAML bearer tokens from a vSphere STS |
//! | `axum` | no | [`Session`] as an axum extractor (also as `Option<Session>`) |
//! | `conformance` | no | the store conformance suite, for your own stores |
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use tower_cis::{ExpiryPolicy, MemoryStore, SessionAuthLayer};
//!
//! let store = MemoryStore::builder()
//!     .policy(ExpiryPolicy::default().with_idle_timeout(Duration::from_secs(30 * 60)))
//!     .build();
//! let layer = SessionAuthLayer::new(store);
//! // `layer` wraps any tower service: an axum Router, a hyper service, ...
//! # let _ = layer;
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod auth;
mod cis;
mod clock;
pub mod error;
#[cfg(feature = "axum")]
pub mod extract;
mod id;
#[cfg(feature = "tasks")]
pub mod jsonrpc;
pub mod layer;
mod principal;
pub mod rest;
mod session;
pub mod store;
#[cfg(feature = "tasks")]
pub mod tasks;
mod time;

pub use cis::{Cis, CisConfig, CisFuture, CisService};
pub use clock::{Clock, ManualClock, SharedClock, SystemClock};
pub use id::{InvalidSessionId, LogTag, RandomUnavailable, SESSION_ID_LEN, SessionId};
pub use layer::SessionAuthLayer;
pub use principal::Principal;
pub use session::{ExpiryPolicy, Session, SessionInfo};
#[cfg(feature = "memory-store")]
pub use store::memory::{MemoryStore, MemoryStoreBuilder, PurgeReport};
#[cfg(feature = "redis")]
pub use store::redis::{RedisConfigError, RedisPurgeReport, RedisStore, RedisStoreBuilder};
pub use store::{SessionStore, StoreError, StoreErrorKind};
pub use time::Timestamp;

/// The README's examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
