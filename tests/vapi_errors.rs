//! The vAPI standard errors: names, HTTP statuses and the two REST bodies.

use tower_cis::error::{ALL_ERROR_TYPES, ApiFlavor, ErrorType, LocalizableMessage, VapiError};

#[test]
fn every_error_type_of_the_spec_exists_and_parses_back() {
    let spec = "ALREADY_EXISTS, ALREADY_IN_DESIRED_STATE, CANCELED, CONCURRENT_CHANGE, ERROR, FEATURE_IN_USE, \
                INTERNAL_SERVER_ERROR, INVALID_ARGUMENT, INVALID_ELEMENT_CONFIGURATION, INVALID_ELEMENT_TYPE, \
                INVALID_REQUEST, NOT_ALLOWED_IN_CURRENT_STATE, NOT_FOUND, OPERATION_NOT_FOUND, RESOURCE_BUSY, \
                RESOURCE_IN_USE, RESOURCE_INACCESSIBLE, SERVICE_UNAVAILABLE, TIMED_OUT, UNABLE_TO_ALLOCATE_RESOURCE, \
                UNAUTHENTICATED, UNAUTHORIZED, UNEXPECTED_INPUT, UNSUPPORTED, UNVERIFIED_PEER";
    let names: Vec<&str> = spec.split(", ").collect();
    assert_eq!(names.len(), ALL_ERROR_TYPES.len());
    for name in names {
        let kind = ErrorType::parse(name).unwrap_or_else(|| panic!("{name} is missing"));
        assert_eq!(kind.as_str(), name);
        assert_eq!(kind.qualified_name(), format!("com.vmware.vapi.std.errors.{}", name.to_lowercase()));
    }
    assert_eq!(ErrorType::parse("unauthenticated"), None);
}

#[test]
fn http_statuses_follow_the_spec_table() {
    let table = [
        (ErrorType::Unauthenticated, 401),
        (ErrorType::Unauthorized, 403),
        (ErrorType::NotFound, 404),
        (ErrorType::InvalidArgument, 400),
        (ErrorType::NotAllowedInCurrentState, 400),
        (ErrorType::Unsupported, 400),
        (ErrorType::AlreadyExists, 400),
        (ErrorType::InvalidRequest, 400),
        (ErrorType::ConcurrentChange, 409),
        (ErrorType::Error, 500),
        (ErrorType::InternalServerError, 500),
        (ErrorType::ResourceInaccessible, 500),
        (ErrorType::TimedOut, 500),
        (ErrorType::ServiceUnavailable, 503),
    ];
    for (kind, status) in table {
        assert_eq!(kind.status().as_u16(), status, "{kind}");
    }
}

#[test]
fn bodies_have_the_modern_and_legacy_shapes_and_read_back() {
    let error = VapiError::new(ErrorType::NotFound, LocalizableMessage::new("x.y", "No such thing."))
        .with_data(serde_json::json!({"id": "vm-1"}));
    let modern = String::from_utf8(error.body(ApiFlavor::Modern).to_vec()).unwrap();
    assert_eq!(
        modern,
        r#"{"error_type":"NOT_FOUND","messages":[{"args":[],"default_message":"No such thing.","id":"x.y"}],"data":{"id":"vm-1"}}"#
    );
    let legacy = String::from_utf8(error.body(ApiFlavor::Legacy).to_vec()).unwrap();
    assert_eq!(
        legacy,
        r#"{"type":"com.vmware.vapi.std.errors.not_found","value":{"messages":[{"args":[],"default_message":"No such thing.","id":"x.y"}],"data":{"id":"vm-1"}}}"#
    );
    assert_eq!(VapiError::from_json(&error.to_json(ApiFlavor::Modern)), Some(error));
}
