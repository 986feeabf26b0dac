//! `axum` extractors for the session the layer resolved (feature `axum`).
//!
//! ```
//! use axum::{Router, routing::get};
//! use tower_cis::{MemoryStore, Session, SessionAuthLayer};
//!
//! async fn whoami(session: Session) -> String {
//!     session.user().to_owned()
//! }
//!
//! let app: Router = Router::new()
//!     .route("/api/demo/whoami", get(whoami))
//!     .layer(SessionAuthLayer::new(MemoryStore::new()));
//! ```

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use bytes::Bytes;
use http::request::Parts;

use crate::Session;
use crate::error::{ApiFlavor, ErrorType, LocalizableMessage, VapiError};

/// The handler asked for a [`Session`] but no [`SessionAuthLayer`](crate::SessionAuthLayer)
/// runs in front of it: a configuration error, answered with 500.
#[derive(Debug, Clone, Copy)]
pub struct MissingSessionLayer;

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        let error = VapiError::new(
            ErrorType::InternalServerError,
            LocalizableMessage::new(
                "com.vmware.cis.session.layer.missing",
                "The server is misconfigured: this operation needs a session but no session layer is installed.",
            ),
        );
        error.response(ApiFlavor::Modern, None).map(|body: Bytes| axum_core::body::Body::from(body))
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Session {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Session>().cloned().ok_or(MissingSessionLayer)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Session {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Session>().cloned())
    }
}
