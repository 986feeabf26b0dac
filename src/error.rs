//! The vAPI standard errors (`com.vmware.vapi.std.errors.*`) and their wire
//! renderings: the modern REST body, the legacy `/rest` body and, through the
//! JSON-RPC module, the in-band JSON-RPC error.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use serde::Serialize;
use serde_json::Value;

/// Declares the error types once: the enum, the wire names, the list.
macro_rules! error_types {
    ($($variant:ident => $wire:literal,)*) => {
        /// The vAPI standard error types.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        #[allow(missing_docs)]
        pub enum ErrorType {
            $($variant,)*
        }

        /// Every error type, in the order of the enum.
        pub const ALL_ERROR_TYPES: &[ErrorType] = &[$(ErrorType::$variant,)*];

        impl ErrorType {
            /// The `error_type` value: `UNAUTHENTICATED`, `NOT_FOUND`, …
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorType::$variant => $wire,)*
                }
            }
        }
    };
}

error_types! {
    AlreadyExists => "ALREADY_EXISTS",
    AlreadyInDesiredState => "ALREADY_IN_DESIRED_STATE",
    Canceled => "CANCELED",
    ConcurrentChange => "CONCURRENT_CHANGE",
    Error => "ERROR",
    FeatureInUse => "FEATURE_IN_USE",
    InternalServerError => "INTERNAL_SERVER_ERROR",
    InvalidArgument => "INVALID_ARGUMENT",
    InvalidElementConfiguration => "INVALID_ELEMENT_CONFIGURATION",
    InvalidElementType => "INVALID_ELEMENT_TYPE",
    InvalidRequest => "INVALID_REQUEST",
    NotAllowedInCurrentState => "NOT_ALLOWED_IN_CURRENT_STATE",
    NotFound => "NOT_FOUND",
    OperationNotFound => "OPERATION_NOT_FOUND",
    ResourceBusy => "RESOURCE_BUSY",
    ResourceInUse => "RESOURCE_IN_USE",
    ResourceInaccessible => "RESOURCE_INACCESSIBLE",
    ServiceUnavailable => "SERVICE_UNAVAILABLE",
    TimedOut => "TIMED_OUT",
    UnableToAllocateResource => "UNABLE_TO_ALLOCATE_RESOURCE",
    Unauthenticated => "UNAUTHENTICATED",
    Unauthorized => "UNAUTHORIZED",
    UnexpectedInput => "UNEXPECTED_INPUT",
    Unsupported => "UNSUPPORTED",
    UnverifiedPeer => "UNVERIFIED_PEER",
}

impl ErrorType {
    /// Parses an `error_type` value (`"NOT_FOUND"`).
    pub fn parse(text: &str) -> Option<Self> {
        ALL_ERROR_TYPES.iter().copied().find(|t| t.as_str() == text)
    }

    /// The error's structure name: `com.vmware.vapi.std.errors.unauthenticated`, …
    pub fn qualified_name(self) -> String {
        format!("com.vmware.vapi.std.errors.{}", self.as_str().to_ascii_lowercase())
    }

    /// The HTTP status the REST APIs answer this error with.
    pub const fn status(self) -> StatusCode {
        use ErrorType::*;
        match self {
            Unauthenticated => StatusCode::UNAUTHORIZED,
            Unauthorized => StatusCode::FORBIDDEN,
            NotFound | OperationNotFound => StatusCode::NOT_FOUND,
            InvalidArgument
            | NotAllowedInCurrentState
            | Unsupported
            | AlreadyExists
            | InvalidRequest
            | AlreadyInDesiredState
            | InvalidElementConfiguration
            | InvalidElementType
            | UnexpectedInput
            | FeatureInUse
            | ResourceInUse
            | Canceled => StatusCode::BAD_REQUEST,
            ConcurrentChange => StatusCode::CONFLICT,
            ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error
            | InternalServerError
            | ResourceInaccessible
            | TimedOut
            | ResourceBusy
            | UnableToAllocateResource
            | UnverifiedPeer => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl fmt::Display for ErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `com.vmware.vapi.std.localizable_message`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LocalizableMessage {
    /// Arguments substituted into the message.
    pub args: Vec<String>,
    /// The English text.
    pub default_message: Cow<'static, str>,
    /// The message's identifier.
    pub id: Cow<'static, str>,
}

impl LocalizableMessage {
    /// A message without arguments.
    pub fn new(id: impl Into<Cow<'static, str>>, default_message: impl Into<Cow<'static, str>>) -> Self {
        LocalizableMessage { args: Vec::new(), default_message: default_message.into(), id: id.into() }
    }

    /// The message with these arguments.
    pub fn with_args<I: IntoIterator<Item = String>>(mut self, args: I) -> Self {
        self.args = args.into_iter().collect();
        self
    }
}

/// A vAPI standard error: its type, messages and optional data.
///
/// ```
/// use tower_cis::error::{ApiFlavor, VapiError};
/// let error = VapiError::unauthenticated();
/// assert_eq!(error.response(ApiFlavor::Modern, None).status(), 401);
/// assert_eq!(
///     String::from_utf8(error.body(ApiFlavor::Legacy).to_vec()).unwrap(),
///     r#"{"type":"com.vmware.vapi.std.errors.unauthenticated","value":{"messages":[{"args":[],"default_message":"Authentication required.","id":"com.vmware.vapi.endpoint.method.authentication.required"}]}}"#
/// );
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct VapiError {
    error_type: ErrorType,
    messages: Vec<LocalizableMessage>,
    data: Option<Value>,
}

/// Which REST surface an error is rendered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ApiFlavor {
    /// `/api`: `{"error_type":…,"messages":[…]}`.
    Modern,
    /// `/rest`: `{"type":"com.vmware.vapi.std.errors.…","value":{"messages":[…]}}`.
    Legacy,
}

#[derive(Serialize)]
struct ModernBody<'a> {
    error_type: &'static str,
    messages: &'a [LocalizableMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

#[derive(Serialize)]
struct LegacyBody<'a> {
    #[serde(rename = "type")]
    kind: String,
    value: LegacyValue<'a>,
}

#[derive(Serialize)]
struct LegacyValue<'a> {
    messages: &'a [LocalizableMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<&'a Value>,
}

impl VapiError {
    /// An error of this type with one message.
    pub fn new(error_type: ErrorType, message: LocalizableMessage) -> Self {
        VapiError { error_type, messages: vec![message], data: None }
    }

    /// The error with this `data` value.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }

    /// The error with one more message.
    pub fn with_message(mut self, message: LocalizableMessage) -> Self {
        self.messages.push(message);
        self
    }

    /// vCenter's answer to a request without a valid session or credentials.
    pub fn unauthenticated() -> Self {
        Self::new(
            ErrorType::Unauthenticated,
            LocalizableMessage::new(
                "com.vmware.vapi.endpoint.method.authentication.required",
                "Authentication required.",
            ),
        )
    }

    /// The session store or another internal service cannot answer now.
    pub fn service_unavailable(message: LocalizableMessage) -> Self {
        Self::new(ErrorType::ServiceUnavailable, message)
    }

    /// The error type.
    pub fn error_type(&self) -> ErrorType {
        self.error_type
    }

    /// The messages.
    pub fn messages(&self) -> &[LocalizableMessage] {
        &self.messages
    }

    /// The optional data value.
    pub fn data(&self) -> Option<&Value> {
        self.data.as_ref()
    }

    /// The error as a JSON value in the given surface's shape (as it appears
    /// in a body, or inside a `TaskInfo`).
    pub fn to_json(&self, flavor: ApiFlavor) -> Value {
        serde_json::from_slice(&self.body(flavor)).unwrap_or(Value::Null)
    }

    /// Reads a modern-API error body (`{"error_type":…,"messages":[…]}`).
    pub fn from_json(value: &Value) -> Option<Self> {
        let error_type = ErrorType::parse(value.get("error_type")?.as_str()?)?;
        let messages = serde_json::from_value(value.get("messages")?.clone()).ok()?;
        Some(VapiError { error_type, messages, data: value.get("data").cloned() })
    }

    /// The JSON body for the given surface.
    pub fn body(&self, flavor: ApiFlavor) -> Bytes {
        let rendered = match flavor {
            ApiFlavor::Modern => serde_json::to_vec(&ModernBody {
                error_type: self.error_type.as_str(),
                messages: &self.messages,
                data: self.data.as_ref(),
            }),
            ApiFlavor::Legacy => serde_json::to_vec(&LegacyBody {
                kind: self.error_type.qualified_name(),
                value: LegacyValue { messages: &self.messages, data: self.data.as_ref() },
            }),
        };
        // Serialising strings and `Value`s cannot fail.
        Bytes::from(rendered.unwrap_or_default())
    }

    /// The whole HTTP response: status, JSON body and, for
    /// `UNAUTHENTICATED`, the `WWW-Authenticate` challenge if one is given.
    pub fn response(&self, flavor: ApiFlavor, challenge: Option<&HeaderValue>) -> Response<Bytes> {
        let mut response = Response::new(self.body(flavor));
        *response.status_mut() = self.error_type.status();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let (ErrorType::Unauthenticated, Some(challenge)) = (self.error_type, challenge) {
            headers.insert(header::WWW_AUTHENTICATE, challenge.clone());
        }
        response
    }
}

impl fmt::Display for VapiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.error_type)?;
        if let Some(message) = self.messages.first() {
            write!(f, ": {}", message.default_message)?;
        }
        Ok(())
    }
}

impl std::error::Error for VapiError {}
