//! [`SessionAuthLayer`]: authenticates every request by its session token.
//!
//! For each request the layer reads the `vmware-api-session-id` header (and
//! on the legacy `/rest` API the cookie of that name), resolves it against the
//! [`SessionStore`](crate::SessionStore) in one atomic look-up-and-refresh, and
//! then either passes the request on with the [`Session`](crate::Session) in
//! its extensions or answers itself:
//!
//! | request | answer |
//! |---|---|
//! | active session | the inner service's response |
//! | id missing, repeated or malformed (the store is not asked) | 401 `UNAUTHENTICATED` |
//! | unknown, deleted or expired session | 401 `UNAUTHENTICATED` |
//! | store unavailable | 503 `SERVICE_UNAVAILABLE` |
//!
//! A request that was admitted runs to completion even if its session is
//! deleted or expires meanwhile.

mod body;
pub(crate) mod config;
mod future;
#[allow(clippy::module_inception)]
mod layer;
mod presented;
mod service;

pub use body::ResponseBody;
pub use future::ResponseFuture;
pub use layer::SessionAuthLayer;
pub use presented::{IdProblem, SESSION_HEADER, presented_session_id};
pub use service::SessionAuth;
