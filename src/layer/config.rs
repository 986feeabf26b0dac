//! What the layer's rejections look like, decided once when the layer is built.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

use crate::error::{ApiFlavor, LocalizableMessage, VapiError};
use crate::store::Resolution;
use crate::{Session, StoreError};

/// The default `WWW-Authenticate` challenge.
pub(super) const DEFAULT_CHALLENGE: &str = "Basic realm=\"VAPI endpoint\"";

/// Why the layer answers a request itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Rejection {
    Unauthenticated,
    Unavailable,
}

#[derive(Debug)]
pub(crate) struct Config {
    pub(super) legacy_prefix: Option<Box<str>>,
    pub(crate) challenge: HeaderValue,
    pub(super) refresh_on_completion: bool,
    /// Pre-rendered bodies: [modern, legacy] for each rejection.
    unauthenticated: [Bytes; 2],
    unavailable: [Bytes; 2],
}

impl Config {
    pub(super) fn new(legacy_prefix: Option<Box<str>>, challenge: HeaderValue, refresh_on_completion: bool) -> Self {
        let render = |error: VapiError| [error.body(ApiFlavor::Modern), error.body(ApiFlavor::Legacy)];
        Config {
            legacy_prefix,
            challenge,
            refresh_on_completion,
            unauthenticated: render(VapiError::unauthenticated()),
            unavailable: render(store_unavailable()),
        }
    }

    pub(super) fn with(&self, change: impl FnOnce(&mut Option<Box<str>>, &mut HeaderValue, &mut bool)) -> Self {
        let (mut prefix, mut challenge, mut refresh) =
            (self.legacy_prefix.clone(), self.challenge.clone(), self.refresh_on_completion);
        change(&mut prefix, &mut challenge, &mut refresh);
        Config::new(prefix, challenge, refresh)
    }

    pub(crate) fn is_legacy(&self, path: &str) -> bool {
        self.legacy_prefix.as_deref().is_some_and(|prefix| path.starts_with(prefix))
    }

    pub(crate) fn response(&self, rejection: Rejection, flavor: ApiFlavor) -> Response<Bytes> {
        let index = usize::from(flavor == ApiFlavor::Legacy);
        let (status, body) = match rejection {
            Rejection::Unauthenticated => (StatusCode::UNAUTHORIZED, &self.unauthenticated[index]),
            Rejection::Unavailable => (StatusCode::SERVICE_UNAVAILABLE, &self.unavailable[index]),
        };
        let mut response = Response::new(body.clone());
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        if rejection == Rejection::Unauthenticated {
            headers.insert(header::WWW_AUTHENTICATE, self.challenge.clone());
        }
        response
    }
}

/// The 503 answered when the session store cannot be reached.
pub(crate) fn store_unavailable() -> VapiError {
    VapiError::service_unavailable(LocalizableMessage::new(
        "com.vmware.cis.session.store.unavailable",
        "The session service is temporarily unavailable. Retry later.",
    ))
}

/// What to do with a store's answer: the session to admit, or the rejection
/// to answer with.
pub(crate) fn admit(outcome: Result<Resolution, StoreError>) -> Result<Session, Rejection> {
    match outcome {
        Ok(Resolution::Active(session)) => Ok(session),
        Ok(Resolution::Unknown) => {
            tracing::debug!(reason = "unknown", "session rejected");
            Err(Rejection::Unauthenticated)
        }
        Ok(Resolution::Expired) => {
            tracing::debug!(reason = "expired", "session rejected");
            Err(Rejection::Unauthenticated)
        }
        Err(error) => {
            tracing::warn!(%error, "session store failed; answering 503");
            Err(Rejection::Unavailable)
        }
    }
}
