//! Building REST responses: JSON bodies in the modern or legacy shape, vAPI
//! errors, and the headers every cis response carries.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;

use crate::error::{ApiFlavor, VapiError};

/// `Cache-Control: no-store`: session responses carry credentials.
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// A JSON response: the value as is (modern) or wrapped in `{"value":…}` (legacy).
pub(crate) fn json<T: Serialize>(status: StatusCode, flavor: ApiFlavor, value: &T) -> Response<Bytes> {
    #[derive(Serialize)]
    struct Legacy<'a, T> {
        value: &'a T,
    }
    let body = match flavor {
        ApiFlavor::Modern => serde_json::to_vec(value),
        ApiFlavor::Legacy => serde_json::to_vec(&Legacy { value }),
    };
    match body {
        Ok(body) => with_headers(status, Bytes::from(body), true),
        Err(error) => {
            tracing::error!(%error, "could not serialise a response");
            error_response(
                &VapiError::new(
                    crate::error::ErrorType::InternalServerError,
                    crate::error::LocalizableMessage::new(
                        "com.vmware.cis.response.serialization",
                        "The response could not be produced.",
                    ),
                ),
                flavor,
                None,
            )
        }
    }
}

/// An empty response.
pub(crate) fn empty(status: StatusCode) -> Response<Bytes> {
    with_headers(status, Bytes::new(), false)
}

/// A vAPI error, with the challenge on 401s.
pub(crate) fn error_response(error: &VapiError, flavor: ApiFlavor, challenge: Option<&HeaderValue>) -> Response<Bytes> {
    let mut response = error.response(flavor, challenge);
    response.headers_mut().insert(header::CACHE_CONTROL, NO_STORE);
    response
}

fn with_headers(status: StatusCode, body: Bytes, is_json: bool) -> Response<Bytes> {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    if is_json {
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    }
    headers.insert(header::CACHE_CONTROL, NO_STORE);
    response
}
