//! The vAPI JSON-RPC endpoint: the codec on the captured samples, the
//! envelope rules, the Session and Tasks services in band, and application
//! operations with their `$task` variants.

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;
mod support;

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use tower_cis::auth::{HashCost, UserDirectory};
use tower_cis::jsonrpc::{DataValue, JsonRpcEndpoint, convert};
use tower_cis::tasks::TaskManager;
use tower_cis::{Cis, CisConfig, ManualClock};

const SPEC_ERROR: &str = r#"{"jsonrpc":"2.0","id":"6","result":{"error":{"ERROR":{"com.vmware.vapi.std.errors.unauthenticated":{"messages":[{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"com.vmware.vapi.endpoint.method.authentication.required","default_message":"Authentication required.","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}],"data":{"OPTIONAL":null},"error_type":{"OPTIONAL":"UNAUTHENTICATED"},"challenge":{"OPTIONAL":null}}}}}}"#;

const SPEC_LIST_INPUT: &str = r#"{"STRUCTURE":{"operation-input":{"filter_spec":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.tasks.filter_spec":{"tasks":{"OPTIONAL":null},"services":{"OPTIONAL":["com.vmware.vcenter.vm.evc_mode"]},"operations":{"OPTIONAL":null},"status":{"OPTIONAL":null},"targets":{"OPTIONAL":null},"users":{"OPTIONAL":null}}}}},"result_spec":{"OPTIONAL":null}}}}"#;

const SPEC_TASK_INFO: &str = r#"{"STRUCTURE":{"com.vmware.cis.task.info":{"description":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"com.vmware.vcenter.vm.evc_mode.set","default_message":"Set EVC mode of a VM","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}},"service":"com.vmware.vcenter.vm.evc_mode","operation":"set","parent":{"OPTIONAL":null},"target":{"OPTIONAL":{"STRUCTURE":{"com.vmware.vapi.std.dynamic_ID":{"type":"VirtualMachine","id":"vm-43"}}}},"status":"RUNNING","cancelable":true,"user":{"OPTIONAL":"VSPHERE.LOCAL\\Administrator"},"progress":{"OPTIONAL":{"STRUCTURE":{"com.vmware.cis.task.progress":{"total":100,"completed":40,"message":{"STRUCTURE":{"com.vmware.vapi.std.localizable_message":{"id":"x.progress","default_message":"40% done","args":[],"params":{"OPTIONAL":null},"localized":{"OPTIONAL":null}}}}}}}},"start_time":{"OPTIONAL":"2026-12-04T19:38:16.765Z"},"result":{"OPTIONAL":null}}}}"#;

#[test]
fn captured_samples_decode_and_encode_byte_for_byte() {
    for sample in [SPEC_LIST_INPUT, SPEC_TASK_INFO] {
        let json: Value = serde_json::from_str(sample).unwrap();
        let value = DataValue::from_json(&json).unwrap();
        assert_eq!(serde_json::to_string(&value.to_json()).unwrap(), sample);
    }
    let error: Value = serde_json::from_str(SPEC_ERROR).unwrap();
    let value = DataValue::from_json(&error["result"]["error"]).unwrap();
    assert_eq!(value, convert::error(&tower_cis::error::VapiError::unauthenticated()));
}

#[test]
fn the_list_sample_reads_as_a_filter_spec() {
    let json: Value = serde_json::from_str(SPEC_LIST_INPUT).unwrap();
    let value = DataValue::from_json(&json).unwrap();
    let input = convert::operation_input(&value).unwrap();
    let filter = convert::filter_spec(convert::optional(input, "filter_spec").unwrap()).unwrap();
    assert_eq!(filter.services.unwrap().into_iter().collect::<Vec<_>>(), ["com.vmware.vcenter.vm.evc_mode"]);
    assert!(filter.tasks.is_none() && filter.status.is_none());
}

#[test]
fn malformed_values_are_refused() {
    for bad in [
        json!({"STRUCTURE": {"a": {}, "b": {}}}),
        json!({"STRUCTURE": "x"}),
        json!({"OPTIONAL": null, "SECRET": "x"}),
        json!({"SECRET": 1}),
        json!({"BINARY": "not base64!"}),
        json!({"MYSTERY": 1}),
    ] {
        assert!(DataValue::from_json(&bad).is_err(), "{bad}");
    }
    let mut deep = json!(null);
    for _ in 0..100 {
        deep = json!({"OPTIONAL": deep});
    }
    assert!(DataValue::from_json(&deep).is_err(), "no depth limit");
    let all = json!([{"SECRET": "s"}, {"BINARY": "AAE="}, 1, 1.5, true, "x", null]);
    assert_eq!(DataValue::from_json(&all).unwrap().to_json(), all);
}

struct Fixture {
    app: axum::Router,
}

fn fixture() -> Fixture {
    let users = UserDirectory::new()
        .with_cost(HashCost::insecure_fast_for_tests())
        .with_user("administrator@vsphere.local", "VMware1!")
        .unwrap();
    let clock = ManualClock::new(support::T0);
    let cis = Cis::in_memory(users, CisConfig { clock: Arc::new(clock), ..CisConfig::default() });
    let tasks = app::demo_tasks(cis.clock());
    Fixture { app: app::application(&cis, tasks) }
}

impl Fixture {
    async fn raw(&self, request: Request<Body>) -> (StatusCode, Value) {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    async fn invoke(&self, service: &str, operation: &str, input: Value, security: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "method": "invoke", "id": "7", "params": {
            "serviceId": service, "operationId": operation,
            "input": {"STRUCTURE": {"operation-input": input}},
            "ctx": {"appCtx": {"opId": "x"}, "securityCtx": security}}});
        let (status, answer) = self.raw(Request::post("/api").body(Body::from(body.to_string())).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "vAPI answers are always HTTP 200: {answer}");
        assert_eq!((&answer["jsonrpc"], &answer["id"]), (&json!("2.0"), &json!("7")));
        answer["result"].clone()
    }

    async fn login(&self) -> String {
        let security = json!({"schemeId": "com.vmware.vapi.std.security.user_pass",
                              "userName": "administrator@vsphere.local", "password": "VMware1!"});
        let result = self.invoke("com.vmware.cis.session", "create", json!({}), security).await;
        result["output"]["SECRET"].as_str().expect("create answers a SECRET").to_owned()
    }
}

fn session(id: &str) -> Value {
    json!({"schemeId": "com.vmware.vapi.std.security.session_id", "sessionId": id})
}

fn error_name(result: &Value) -> String {
    result["error"]["ERROR"].as_object().and_then(|e| e.keys().next().cloned()).unwrap_or_default()
}

#[tokio::test]
async fn session_create_get_delete_in_band() {
    let f = fixture();
    let id = f.login().await;
    assert_eq!(id.len(), 32);
    let info = f.invoke("com.vmware.cis.session", "get", json!({}), session(&id)).await;
    let fields = &info["output"]["STRUCTURE"]["com.vmware.cis.session.info"];
    assert_eq!(fields["user"], "administrator@vsphere.local");
    assert_eq!(fields["created_time"], "2026-12-04T19:38:18.110Z");
    assert_eq!(fields.as_object().unwrap().keys().collect::<Vec<_>>(), ["user", "created_time", "last_accessed_time"]);
    let deleted = f.invoke("com.vmware.cis.session", "delete", json!({}), session(&id)).await;
    assert_eq!(deleted, json!({"output": null}), "the output key must be present");
    let after = f.invoke("com.vmware.cis.session", "get", json!({}), session(&id)).await;
    let expected: Value = serde_json::from_str(SPEC_ERROR).unwrap();
    assert_eq!(after, expected["result"], "get after delete: the spec's unauthenticated error");
}

#[tokio::test]
async fn wrong_password_and_missing_context_are_unauthenticated() {
    let f = fixture();
    let wrong = json!({"schemeId": "com.vmware.vapi.std.security.user_pass",
                       "userName": "administrator@vsphere.local", "password": "nope"});
    let result = f.invoke("com.vmware.cis.session", "create", json!({}), wrong).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.unauthenticated");
    let result = f.invoke("com.vmware.cis.session", "create", json!({}), Value::Null).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.unauthenticated");
    let hok = json!({"schemeId": "com.vmware.vapi.std.security.saml_hok_token", "signature": {}});
    let result = f.invoke("com.vmware.cis.session", "create", json!({}), hok).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.unauthenticated");
    let result = f.invoke("com.vmware.cis.session", "get", json!({}), session("not-an-id")).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.unauthenticated");
}

#[tokio::test]
async fn the_session_header_overrides_the_body_context() {
    let f = fixture();
    let id = f.login().await;
    let body = json!({"jsonrpc": "2.0", "method": "invoke", "id": "1", "params": {
        "serviceId": "com.vmware.cis.session", "operationId": "get",
        "input": {"STRUCTURE": {"operation-input": {}}},
        "ctx": {"securityCtx": session("00000000000000000000000000000000")}}});
    let request =
        Request::post("/api").header("vmware-api-session-id", &id).body(Body::from(body.to_string())).unwrap();
    let (_, answer) = f.raw(request).await;
    assert!(answer["result"]["output"].is_object(), "{answer}");
    let request = Request::post("/api")
        .header("vmware-api-session-id", "00000000000000000000000000000000")
        .body(Body::from(body.to_string().replace("00000000000000000000000000000000", &id)))
        .unwrap();
    let (_, answer) = f.raw(request).await;
    assert_eq!(error_name(&answer["result"]), "com.vmware.vapi.std.errors.unauthenticated");
}

#[tokio::test]
async fn one_session_serves_rest_and_json_rpc_alike() {
    let f = fixture();
    let id = f.login().await;
    let request = Request::get("/api/session").header("vmware-api-session-id", &id).body(Body::empty()).unwrap();
    let (status, info) = f.raw(request).await;
    assert_eq!((status, &info["user"]), (StatusCode::OK, &json!("administrator@vsphere.local")));
    let request = Request::delete("/api/session").header("vmware-api-session-id", &id).body(Body::empty()).unwrap();
    assert_eq!(f.raw(request).await.0, StatusCode::NO_CONTENT);
    let result = f.invoke("com.vmware.cis.session", "get", json!({}), session(&id)).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.unauthenticated");
}

#[tokio::test]
async fn malformed_envelopes_are_json_rpc_protocol_errors() {
    let f = fixture();
    let cases = [
        ("not json", -32700),
        ("[]", -32600),
        (r#"{"jsonrpc":"2.0","method":"invoke","params":{}}"#, -32600),
        (r#"{"jsonrpc":"1.0","method":"invoke","params":{},"id":"1"}"#, -32600),
        (r#"{"jsonrpc":"2.0","method":"destroy","params":{},"id":"1"}"#, -32601),
        (r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"a"},"id":"1"}"#, -32602),
        (
            r#"{"jsonrpc":"2.0","method":"invoke","params":{"serviceId":"a","operationId":"b","input":{"WHAT":1}},"id":"1"}"#,
            -32602,
        ),
    ];
    for (body, code) in cases {
        let (status, answer) = f.raw(Request::post("/api").body(Body::from(body)).unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(answer["error"]["code"], code, "{body}: {answer}");
        assert!(answer.get("result").is_none());
    }
    let huge = "x".repeat(tower_cis::jsonrpc::MAX_REQUEST_BYTES + 1);
    let (status, answer) = f.raw(Request::post("/api").body(Body::from(huge)).unwrap()).await;
    assert_eq!((status, &answer["error"]["code"]), (StatusCode::PAYLOAD_TOO_LARGE, &json!(-32600)));
    let (status, _) = f.raw(Request::get("/api").body(Body::empty()).unwrap()).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn unknown_services_and_operations_are_operation_not_found() {
    let f = fixture();
    let id = f.login().await;
    for (service, operation) in
        [("com.vmware.nothing", "get"), ("com.vmware.cis.tasks", "explode"), ("com.vmware.cis.demo", "nap$task")]
    {
        let result = f.invoke(service, operation, json!({}), session(&id)).await;
        assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.operation_not_found", "{service}.{operation}");
    }
}

#[tokio::test]
async fn bad_input_is_invalid_argument_in_band() {
    let f = fixture();
    let id = f.login().await;
    let result = f.invoke("com.vmware.cis.tasks", "get", json!({"task": 5}), session(&id)).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.invalid_argument");
    let result = f.invoke("com.vmware.cis.tasks", "list", json!({"filter_spec": "bare"}), session(&id)).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.invalid_argument");
    let result = f.invoke("com.vmware.cis.tasks", "list", json!({}), session(&id)).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.invalid_argument", "neither tasks nor services");
    let result = f.invoke("com.vmware.cis.demo", "wait", json!({"seconds": {"OPTIONAL": 301}}), session(&id)).await;
    assert_eq!(error_name(&result), "com.vmware.vapi.std.errors.invalid_argument");
}

#[tokio::test]
async fn application_operations_run_directly_and_as_tasks() {
    let f = fixture();
    let id = f.login().await;
    let direct = f.invoke("com.vmware.cis.demo", "wait", json!({"seconds": {"OPTIONAL": 0}}), session(&id)).await;
    assert_eq!(direct["output"], json!({"STRUCTURE": {"com.vmware.cis.demo.wait_result": {"waited_seconds": 0}}}));
    let started = f.invoke("com.vmware.cis.demo", "wait$task", json!({"seconds": {"OPTIONAL": 0}}), session(&id)).await;
    let task = started["output"].as_str().expect("$task answers the task id as a string").to_owned();
    assert!(task.ends_with(":com.vmware.cis.demo"));
    let mut info = Value::Null;
    for _ in 0..400 {
        let got = f
            .invoke("com.vmware.cis.tasks", "get", json!({"task": task, "spec": {"OPTIONAL": null}}), session(&id))
            .await;
        info = got["output"]["STRUCTURE"]["com.vmware.cis.task.info"].clone();
        if info["status"] == "SUCCEEDED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(info["status"], "SUCCEEDED", "{info}");
    assert_eq!(info["result"], json!({"OPTIONAL": {"STRUCTURE": {"dynamic_structure": {"waited_seconds": 0}}}}));
    assert_eq!(info["error"], json!({"OPTIONAL": null}));
    assert!(info["end_time"]["OPTIONAL"].is_string());

    let failed = f.invoke("com.vmware.cis.demo", "fail", json!({}), session(&id)).await;
    assert_eq!(error_name(&failed), "com.vmware.vapi.std.errors.error");
    let listed = f.invoke(
        "com.vmware.cis.tasks",
        "list",
        json!({"filter_spec": {"OPTIONAL": {"STRUCTURE": {"com.vmware.cis.tasks.filter_spec": {"tasks": {"OPTIONAL": [task]}}}}},
               "result_spec": {"OPTIONAL": null}}),
        session(&id),
    )
    .await;
    let entry = &listed["output"][0]["STRUCTURE"]["map-entry"];
    assert_eq!(entry["key"], json!(task));
    let cancel = f.invoke("com.vmware.cis.tasks", "cancel", json!({"task": task}), session(&id)).await;
    assert_eq!(error_name(&cancel), "com.vmware.vapi.std.errors.not_allowed_in_current_state");
}

#[tokio::test]
async fn store_failures_are_service_unavailable_in_band() {
    let cis = Cis::new(
        support::Unreachable,
        tower_cis::auth::PasswordAuthenticator::new(UserDirectory::new()),
        Arc::new(tower_cis::SystemClock),
    );
    let endpoint = JsonRpcEndpoint::new(&cis, TaskManager::in_memory());
    let body = json!({"jsonrpc": "2.0", "method": "invoke", "id": "1", "params": {
        "serviceId": "com.vmware.cis.session", "operationId": "get",
        "input": {"STRUCTURE": {"operation-input": {}}},
        "ctx": {"securityCtx": session("00000000000000000000000000000000")}}});
    let response = endpoint.oneshot(Request::post("/api").body(Body::from(body.to_string())).unwrap()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let answer: Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(error_name(&answer["result"]), "com.vmware.vapi.std.errors.service_unavailable");
}
