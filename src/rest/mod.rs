//! The REST surfaces of the cis services: the modern API under `/api` and the
//! legacy API under `/rest`, as tower services.

pub mod query;
mod reply;
pub mod session;
#[cfg(feature = "tasks")]
pub mod tasks;

pub use session::SessionService;
#[cfg(feature = "tasks")]
pub use tasks::TasksService;

/// The modern API's session path.
pub const MODERN_SESSION_PATH: &str = "/api/session";
/// The legacy API's session path.
pub const LEGACY_SESSION_PATH: &str = "/rest/com/vmware/cis/session";
