//! vAPI JSON-RPC, the protocol VMware's official SDK speaks on `POST /api`.
//!
//! - [`DataValue`]: vAPI values and their JSON encoding;
//! - [`JsonRpcEndpoint`]: the endpoint, with the Session and Tasks services
//!   built in and room for the application's own operations.

pub mod convert;
mod endpoint;
pub mod envelope;
mod value;

pub use endpoint::{Invocation, JsonRpcEndpoint, JsonRpcFuture, MAX_REQUEST_BYTES, bad_input};
pub use value::{BadValue, DataValue, MAX_VALUE_DEPTH, StructValue};
