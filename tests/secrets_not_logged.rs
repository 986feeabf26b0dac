//! Security review (issue 9, item 6): session ids and passwords never reach
//! the logs, failed logins do not tell an unknown user from a wrong password,
//! and session responses carry `Cache-Control: no-store`.
//!
//! The example server's application runs in-process on 127.0.0.1 under a
//! global TRACE subscriber that writes into a buffer (this file holds a
//! single test, so the global subscriber is its own), goes through logins,
//! gets, a delete and failed logins, and the buffer is then searched for
//! every secret.

#[path = "../examples/server/app.rs"]
#[allow(dead_code, reason = "shared with the example's main.rs, which may use items these tests do not")]
mod app;
#[allow(dead_code, reason = "the shared end-to-end harness; this test uses part of it")]
mod e2e;

use std::io::Write;
use std::sync::{Arc, Mutex};

use base64::Engine;
use e2e::*;
use http::{Method, StatusCode};

const WRONG_PASSWORD: &str = "Wr0ng-but-n3ar-VMware1!";
const UNKNOWN_USER: &str = "nobody@vsphere.local";
const UNKNOWN_PASSWORD: &str = "Unkn0wn-user-s3cret";

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_session_id_or_password_is_logged_at_trace_and_failed_logins_look_alike() {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let capture = Capture(Arc::clone(&buffer));
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || capture.clone())
        .finish();
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber of this test binary");

    let server = TestServer::start().await;
    let modern = server.login(ADMIN, ADMIN_PASSWORD).await;
    let legacy = server.login_legacy(ALICE, ALICE_PASSWORD).await;

    for path in ["/api/session", "/api/demo/whoami"] {
        let (status, headers, body) = server.send(Method::GET, path, &[(SESSION, &modern)]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        if path == "/api/session" {
            assert_eq!(header(&headers, "cache-control"), Some("no-store"), "{path}");
        }
    }
    let cookie = format!("vmware-api-session-id={legacy}");
    let (status, headers, body) =
        server.send(Method::POST, "/rest/com/vmware/cis/session?~action=get", &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));

    let (status, _, body) = server.send(Method::DELETE, "/api/session", &[(SESSION, &modern)]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, headers, body) = server.send(Method::GET, "/api/session", &[(SESSION, &modern)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"));
    assert!(!body.contains(&modern), "a refusal does not echo the id: {body}");
    // The session layer's refusal in front of the application, too.
    let (status, headers, body) = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &modern)]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(header(&headers, "cache-control"), Some("no-store"), "the layer's 401");
    assert!(!body.contains(&modern), "a refusal does not echo the id: {body}");

    // Failed logins: a wrong password and an unknown user answer alike.
    let wrong = server.send(Method::POST, "/api/session", &[("authorization", &basic(ADMIN, WRONG_PASSWORD))]).await;
    let unknown =
        server.send(Method::POST, "/api/session", &[("authorization", &basic(UNKNOWN_USER, UNKNOWN_PASSWORD))]).await;
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED, "{}", wrong.2);
    assert_eq!((wrong.0, &wrong.2), (unknown.0, &unknown.2), "an unknown user looks like a wrong password");
    for (name, value) in wrong.1.iter() {
        if name != "date" {
            assert_eq!(Some(value), unknown.1.get(name), "header {name} tells the failures apart");
        }
    }
    for body in [&wrong.2, &unknown.2] {
        for secret in [WRONG_PASSWORD, UNKNOWN_PASSWORD, ADMIN, UNKNOWN_USER] {
            assert!(!body.contains(secret), "a failed login's body reveals {secret:?}: {body}");
        }
    }

    // The logs.
    let logs = String::from_utf8(buffer.lock().unwrap().clone()).expect("UTF-8 logs");
    assert!(logs.contains("session created"), "the capture sees the library's events:\n{logs}");
    assert!(logs.contains("login refused"), "the capture sees failed logins:\n{logs}");
    let basic_token =
        |user: &str, password: &str| base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let secrets = [
        ("the modern session id", modern.clone()),
        ("the legacy session id", legacy.clone()),
        ("the admin password", ADMIN_PASSWORD.to_owned()),
        ("alice's password", ALICE_PASSWORD.to_owned()),
        ("a wrong password", WRONG_PASSWORD.to_owned()),
        ("an unknown user's password", UNKNOWN_PASSWORD.to_owned()),
        ("the admin's Basic credentials", basic_token(ADMIN, ADMIN_PASSWORD)),
        ("alice's Basic credentials", basic_token(ALICE, ALICE_PASSWORD)),
        ("the wrong Basic credentials", basic_token(ADMIN, WRONG_PASSWORD)),
        ("the unknown user's Basic credentials", basic_token(UNKNOWN_USER, UNKNOWN_PASSWORD)),
    ];
    for (what, secret) in &secrets {
        // Half an id (64 bits) is as bad as all of it.
        let probe = if secret.len() == 32 { &secret[..16] } else { secret.as_str() };
        assert!(!logs.contains(probe), "{what} is in the logs:\n{logs}");
    }
}
