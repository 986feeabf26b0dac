//! End-to-end tests of the REST Session service over real TCP: the example
//! server's application (the very code `cargo run --example server` runs) on
//! 127.0.0.1, a manual clock for everything time-dependent, and hyper's client.
//! Statuses, bodies and headers are compared with the wire reference
//! (spec/rest.md), byte for byte where it gives bytes.

#[path = "../examples/server/app.rs"]
#[allow(dead_code, reason = "shared with the example's main.rs, which may use items these tests do not")]
mod app;
mod e2e;

use std::process::Stdio;
use std::time::Duration;

use e2e::*;
use http::{Method, StatusCode};
use tokio::io::{AsyncBufReadExt, BufReader};
use tower_cis::auth::{FailureLimit, ThrottlePolicy};
use tower_cis::{ExpiryPolicy, Timestamp};

const MODERN: &str = "/api/session";
const LEGACY: &str = "/rest/com/vmware/cis/session";
const LEGACY_GET: &str = "/rest/com/vmware/cis/session?~action=get";
const LEGACY_DELETE: &str = "/rest/com/vmware/cis/session?~action=delete";
const HEADER_AUTHN: (&str, &str) = ("vmware-use-header-authn", "true");

/// Long enough for a request sent on another connection to reach the
/// server and be admitted, well within the 1-second wait it makes.
const ADMISSION: Duration = Duration::from_millis(250);

/// Request headers, for tables of cases.
type Headers<'a> = Vec<(&'a str, &'a str)>;

fn ms(millis: u64) -> Duration {
    Duration::from_millis(millis)
}

// ---------------------------------------------------------------------------
// Modern API
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_create_answers_201_with_the_id_as_a_bare_json_string() {
    let server = TestServer::start().await;
    let (status, headers, body) =
        server.send(Method::POST, MODERN, &[("authorization", &basic(ADMIN, ADMIN_PASSWORD))]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert!(header(&headers, "set-cookie").is_none(), "the modern API sets no cookie");
    let id = modern_id(&body);
    assert_eq!(body, format!("\"{id}\""));

    let second = server.login(ADMIN, ADMIN_PASSWORD).await;
    assert_ne!(id, second, "every login gets its own session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_get_answers_user_created_and_last_accessed_in_order_at_the_manual_clock_times() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;

    let (status, headers, body) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(body, info(ADMIN, T0_TEXT, T0_TEXT));

    server.clock.advance(ms(1_500));
    let (status, _, body) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        r#"{"user":"administrator@vsphere.local","created_time":"2026-12-04T19:38:18.110Z","last_accessed_time":"2026-12-04T19:38:19.610Z"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_get_names_the_user_as_the_directory_has_it_whatever_case_the_login_used() {
    let server = TestServer::start().await;
    let id = server.login("ADMINISTRATOR@vsphere.LOCAL", ADMIN_PASSWORD).await;
    let (status, _, body) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, info(ADMIN, T0_TEXT, T0_TEXT));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_delete_answers_204_empty_then_the_session_gets_the_exact_401() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;

    let (status, headers, body) = server.send(Method::DELETE, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(body, "");
    assert!(header(&headers, "content-type").is_none());

    let after = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_unauthenticated(&after, UNAUTHENTICATED_MODERN, "get after delete");
    let again = server.send(Method::DELETE, MODERN, &[(SESSION, &id)]).await;
    assert_unauthenticated(&again, UNAUTHENTICATED_MODERN, "second delete");
    let demo = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &id)]).await;
    assert_unauthenticated(&demo, UNAUTHENTICATED_MODERN, "demo endpoint after delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modern_get_and_delete_without_a_usable_session_id_answer_the_exact_401() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let never_issued = "0123456789abcdef0123456789abcdef";
    let cookie = format!("{SESSION}={id}");
    let cases: [(&str, Headers); 5] = [
        ("no id", vec![]),
        ("an id never issued", vec![(SESSION, never_issued)]),
        ("a malformed id", vec![(SESSION, "not-a-session-id")]),
        ("the id twice", vec![(SESSION, &id), (SESSION, &id)]),
        ("the id in a cookie, which only /rest reads", vec![("cookie", &cookie)]),
    ];
    for (what, headers) in &cases {
        for method in [Method::GET, Method::DELETE] {
            let reply = server.send(method.clone(), MODERN, headers).await;
            assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, &format!("{method} with {what}"));
        }
    }
    let (status, _, _) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK, "the session itself was never touched");
}

// ---------------------------------------------------------------------------
// Legacy API
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_create_answers_200_value_and_sets_the_cookie_on_path_rest() {
    let server = TestServer::start().await;
    let (status, headers, body) =
        server.send(Method::POST, LEGACY, &[("authorization", &basic(ADMIN, ADMIN_PASSWORD))]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let id = legacy_id(&body);
    assert_eq!(body, format!(r#"{{"value":"{id}"}}"#));
    assert_eq!(header(&headers, "set-cookie"), Some(format!("vmware-api-session-id={id};Path=/rest").as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_create_with_use_header_authn_true_sets_no_cookie() {
    let server = TestServer::start().await;
    let authorization = basic(ADMIN, ADMIN_PASSWORD);
    for value in ["true", "TRUE", "True"] {
        let (status, headers, body) = server
            .send(Method::POST, LEGACY, &[("authorization", &authorization), ("vmware-use-header-authn", value)])
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        legacy_id(&body);
        assert!(header(&headers, "set-cookie").is_none(), "vmware-use-header-authn: {value}");
    }
    let (_, headers, _) = server
        .send(Method::POST, LEGACY, &[("authorization", &authorization), ("vmware-use-header-authn", "false")])
        .await;
    assert!(header(&headers, "set-cookie").is_some(), "vmware-use-header-authn: false still gets the cookie");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_create_with_action_create_is_a_create() {
    let server = TestServer::start().await;
    let (status, _, body) = server
        .send(
            Method::POST,
            "/rest/com/vmware/cis/session?~action=create",
            &[("authorization", &basic(ADMIN, ADMIN_PASSWORD)), HEADER_AUTHN],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    legacy_id(&body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_get_with_the_header_answers_the_info_wrapped_in_value() {
    let server = TestServer::start().await;
    let id = server.login_legacy(ALICE, ALICE_PASSWORD).await;
    server.clock.advance(ms(42));
    let (status, headers, body) = server.send(Method::POST, LEGACY_GET, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(body, legacy_info(ALICE, T0_TEXT, "2026-12-04T19:38:18.152Z"));
    assert!(header(&headers, "set-cookie").is_none(), "get sets no cookie");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_get_with_only_the_cookie_answers_the_info() {
    let server = TestServer::start().await;
    let (status, headers, _) =
        server.send(Method::POST, LEGACY, &[("authorization", &basic(ADMIN, ADMIN_PASSWORD))]).await;
    assert_eq!(status, StatusCode::OK);
    let set_cookie = header(&headers, "set-cookie").expect("no cookie").to_owned();
    // What a cookie jar sends back: the name=value before the attributes.
    let cookie = set_cookie.split(';').next().expect("empty cookie").to_owned();

    let (status, _, body) = server.send(Method::POST, LEGACY_GET, &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, legacy_info(ADMIN, T0_TEXT, T0_TEXT));

    let among_others = format!("theme=dark; {cookie}; lang=en");
    let (status, _, body) = server.send(Method::POST, LEGACY_GET, &[("cookie", &among_others)]).await;
    assert_eq!(status, StatusCode::OK, "the session cookie among others: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_delete_by_action_answers_200_empty_and_ends_the_session() {
    let server = TestServer::start().await;
    let id = server.login_legacy(ADMIN, ADMIN_PASSWORD).await;
    let (status, headers, body) = server.send(Method::POST, LEGACY_DELETE, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "");
    assert!(header(&headers, "content-type").is_none());
    let after = server.send(Method::POST, LEGACY_GET, &[(SESSION, &id)]).await;
    assert_unauthenticated(&after, UNAUTHENTICATED_LEGACY, "legacy get after delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_delete_by_method_answers_200_empty_and_ends_the_session() {
    let server = TestServer::start().await;
    let id = server.login_legacy(ADMIN, ADMIN_PASSWORD).await;
    let (status, _, body) = server.send(Method::DELETE, LEGACY, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, "");
    let after = server.send(Method::POST, LEGACY_GET, &[(SESSION, &id)]).await;
    assert_unauthenticated(&after, UNAUTHENTICATED_LEGACY, "legacy get after delete");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_delete_with_only_the_cookie_ends_the_session() {
    let server = TestServer::start().await;
    let id = server.login_legacy(ADMIN, ADMIN_PASSWORD).await;
    let cookie = format!("{SESSION}={id}");
    let (status, _, body) = server.send(Method::DELETE, LEGACY, &[("cookie", &cookie)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let after = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_unauthenticated(&after, UNAUTHENTICATED_MODERN, "modern get after a legacy delete by cookie");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_refusals_carry_the_exact_legacy_unauthenticated_body() {
    let server = TestServer::start().await;
    let never_issued = "0123456789abcdef0123456789abcdef";
    let unknown_cookie = format!("{SESSION}={never_issued}");
    let wrong = basic(ADMIN, "wrong");
    let cases: [(&str, Method, &str, Headers); 8] = [
        ("get without an id", Method::POST, LEGACY_GET, vec![]),
        ("get with an id never issued", Method::POST, LEGACY_GET, vec![(SESSION, never_issued)]),
        ("get with a cookie never issued", Method::POST, LEGACY_GET, vec![("cookie", &unknown_cookie)]),
        ("delete by action without an id", Method::POST, LEGACY_DELETE, vec![]),
        ("delete by method without an id", Method::DELETE, LEGACY, vec![]),
        ("create with a wrong password", Method::POST, LEGACY, vec![("authorization", &wrong)]),
        ("create without credentials", Method::POST, LEGACY, vec![]),
        ("another /rest path without a session", Method::GET, "/rest/vcenter/vm", vec![]),
    ];
    for (what, method, path, headers) in &cases {
        let reply = server.send(method.clone(), path, headers).await;
        assert_unauthenticated(&reply, UNAUTHENTICATED_LEGACY, what);
        assert!(header(&reply.1, "set-cookie").is_none(), "{what}: a refusal sets no cookie");
    }
}

// ---------------------------------------------------------------------------
// One session, both APIs
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_modern_session_works_on_the_legacy_api_and_a_legacy_session_on_the_modern_api() {
    let server = TestServer::start().await;
    let modern = server.login(ADMIN, ADMIN_PASSWORD).await;
    server.clock.advance(ms(1));
    let legacy = server.login_legacy(ALICE, ALICE_PASSWORD).await;
    server.clock.advance(ms(1));
    let t1 = "2026-12-04T19:38:18.111Z";
    let t2 = "2026-12-04T19:38:18.112Z";

    let (status, _, body) = server.send(Method::POST, LEGACY_GET, &[(SESSION, &modern)]).await;
    assert_eq!((status, body), (StatusCode::OK, legacy_info(ADMIN, T0_TEXT, t2)));
    let (status, _, body) = server.send(Method::GET, MODERN, &[(SESSION, &legacy)]).await;
    assert_eq!((status, body), (StatusCode::OK, info(ALICE, t1, t2)));
    let (status, _, body) = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &legacy)]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"user":"alice"}"#));

    // Deleting on one API ends the session on the other.
    let (status, _, _) = server.send(Method::DELETE, MODERN, &[(SESSION, &legacy)]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let gone = server.send(Method::POST, LEGACY_GET, &[(SESSION, &legacy)]).await;
    assert_unauthenticated(&gone, UNAUTHENTICATED_LEGACY, "legacy session deleted on the modern API");
    let (status, _, _) = server.send(Method::POST, LEGACY_DELETE, &[(SESSION, &modern)]).await;
    assert_eq!(status, StatusCode::OK);
    let gone = server.send(Method::GET, MODERN, &[(SESSION, &modern)]).await;
    assert_unauthenticated(&gone, UNAUTHENTICATED_MODERN, "modern session deleted on the legacy API");
}

// ---------------------------------------------------------------------------
// Failed logins
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_failed_login_gets_the_identical_401_body_and_challenge_on_both_apis() {
    let server = TestServer::start().await;
    let good = basic(ADMIN, ADMIN_PASSWORD);
    let b64 =
        |text: &str| format!("Basic {}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, text));
    let cases: Vec<(&str, Vec<(&str, String)>)> = vec![
        ("a wrong password", vec![("authorization", basic(ADMIN, "VMware1?"))]),
        ("an unknown user", vec![("authorization", basic("mallory", ADMIN_PASSWORD))]),
        ("an empty password", vec![("authorization", basic(ADMIN, ""))]),
        ("no Authorization header", vec![]),
        ("the Bearer scheme", vec![("authorization", "Bearer abc.def.ghi".to_owned())]),
        ("the SIGN scheme", vec![("authorization", r#"SIGN token="H4sIAAAAAAAA""#.to_owned())]),
        ("Basic without a token", vec![("authorization", "Basic".to_owned())]),
        ("Basic with bad base64", vec![("authorization", "Basic !!not base64!!".to_owned())]),
        ("Basic without a colon", vec![("authorization", b64("administrator@vsphere.localVMware1!"))]),
        ("Basic with an empty user", vec![("authorization", b64(":VMware1!"))]),
        ("two Authorization headers", vec![("authorization", good.clone()), ("authorization", good.clone())]),
    ];
    for (what, headers) in &cases {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let modern = server.send(Method::POST, MODERN, &headers).await;
        assert_unauthenticated(&modern, UNAUTHENTICATED_MODERN, &format!("modern login with {what}"));
        let legacy = server.send(Method::POST, LEGACY, &headers).await;
        assert_unauthenticated(&legacy, UNAUTHENTICATED_LEGACY, &format!("legacy login with {what}"));
        assert!(header(&legacy.1, "set-cookie").is_none(), "{what}: no cookie");
    }
    // Four failures for the admin name above (a wrong and an empty password,
    // on each API; malformed headers never reach the password check): not
    // locked yet, and the right password still works.
    server.login(ADMIN, ADMIN_PASSWORD).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relogin_with_a_stale_session_id_and_valid_basic_credentials_answers_201() {
    let server = TestServer::start().await;
    let authorization = basic(ADMIN, ADMIN_PASSWORD);
    let deleted = server.login(ADMIN, ADMIN_PASSWORD).await;
    let (status, _, _) = server.send(Method::DELETE, MODERN, &[(SESSION, &deleted)]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let live = server.login(ADMIN, ADMIN_PASSWORD).await;

    for (what, stale) in [
        ("a deleted id", deleted.as_str()),
        ("an id never issued", "0123456789abcdef0123456789abcdef"),
        ("a malformed id", "not-a-session-id"),
        ("a live id", live.as_str()),
    ] {
        let (status, _, body) =
            server.send(Method::POST, MODERN, &[(SESSION, stale), ("authorization", &authorization)]).await;
        assert_eq!(status, StatusCode::CREATED, "modern login with {what}: {body}");
        let id = modern_id(&body);
        assert_ne!(id, stale, "{what}: a new session, not the presented one");

        let (status, _, body) = server
            .send(Method::POST, LEGACY, &[(SESSION, stale), ("authorization", &authorization), HEADER_AUTHN])
            .await;
        assert_eq!(status, StatusCode::OK, "legacy login with {what}: {body}");
        assert_ne!(legacy_id(&body), stale);
    }
    let (status, _, _) = server.send(Method::GET, MODERN, &[(SESSION, &live)]).await;
    assert_eq!(status, StatusCode::OK, "logging in again leaves the presented live session alone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_wrong_passwords_lock_the_user_for_300_seconds_even_against_the_right_password() {
    let server = TestServer::start_with(Settings {
        throttle: ThrottlePolicy::default().with_per_user(FailureLimit::new(
            5,
            Duration::from_secs(180),
            Duration::from_secs(300),
        )),
        ..Settings::default()
    })
    .await;
    let wrong = basic(ALICE, "wrong");
    for attempt in 1..=5 {
        let reply = server.send(Method::POST, MODERN, &[("authorization", &wrong)]).await;
        assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, &format!("wrong password #{attempt}"));
    }
    let throttled_modern = modern_error(
        "UNAUTHENTICATED",
        "com.vmware.cis.session.authentication.throttled",
        "Too many failed login attempts. Try again later.",
    );
    let throttled_legacy = legacy_error(
        "UNAUTHENTICATED",
        "com.vmware.cis.session.authentication.throttled",
        "Too many failed login attempts. Try again later.",
    );
    let right = basic(ALICE, ALICE_PASSWORD);
    let reply = server.send(Method::POST, MODERN, &[("authorization", &right)]).await;
    assert_unauthenticated(&reply, &throttled_modern, "right password while locked");
    let reply = server.send(Method::POST, LEGACY, &[("authorization", &right)]).await;
    assert_unauthenticated(&reply, &throttled_legacy, "right password while locked, legacy");

    // The lock is the user's, not the address's: another user gets in.
    server.login(ADMIN, ADMIN_PASSWORD).await;

    server.clock.advance(Duration::from_secs(300) - ms(1));
    let reply = server.send(Method::POST, MODERN, &[("authorization", &right)]).await;
    assert_unauthenticated(&reply, &throttled_modern, "1 ms before the lock ends");
    server.clock.advance(ms(1));
    let id = server.login(ALICE, ALICE_PASSWORD).await;
    let (status, _, body) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, info(ALICE, "2026-12-04T19:43:18.110Z", "2026-12-04T19:43:18.110Z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_failures_from_one_address_lock_that_address_for_every_user() {
    // The example server tells the throttle each client's peer address.
    let server = TestServer::start().await;
    for attempt in 0..20 {
        let stranger = format!("stranger-{attempt}");
        let reply = server.send(Method::POST, MODERN, &[("authorization", &basic(&stranger, "guess"))]).await;
        assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, &format!("unknown user #{attempt}"));
    }
    let throttled = modern_error(
        "UNAUTHENTICATED",
        "com.vmware.cis.session.authentication.throttled",
        "Too many failed login attempts. Try again later.",
    );
    let reply = server.send(Method::POST, MODERN, &[("authorization", &basic(ADMIN, ADMIN_PASSWORD))]).await;
    assert_unauthenticated(&reply, &throttled, "a user without failures, from the locked address");
    server.clock.advance(Duration::from_secs(300));
    server.login(ADMIN, ADMIN_PASSWORD).await;
}

// ---------------------------------------------------------------------------
// Expiry, on the manual clock
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_used_within_its_idle_timeout_lives_on_and_ends_after_a_full_idle_timeout() {
    let idle = Duration::from_secs(30 * 60);
    let server = TestServer::start_with(Settings {
        policy: ExpiryPolicy::default().with_idle_timeout(idle).with_max_lifetime(Duration::from_secs(24 * 3600)),
        ..Settings::default()
    })
    .await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;

    server.clock.advance(idle - ms(1));
    let (status, _, body) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK, "1 ms before the idle timeout");
    assert_eq!(body, info(ADMIN, T0_TEXT, "2026-12-04T20:08:18.109Z"));

    server.clock.advance(idle - ms(1));
    let (status, _, body) = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK, "the get refreshed the idle timer: {body}");
    let (status, _, body) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, info(ADMIN, T0_TEXT, "2026-12-04T20:38:18.108Z"));

    server.clock.advance(idle);
    let reply = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, "after a full idle timeout");
    let reply = server.send(Method::POST, LEGACY_GET, &[(SESSION, &id)]).await;
    assert_unauthenticated(&reply, UNAUTHENTICATED_LEGACY, "after a full idle timeout, legacy");
    let reply = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &id)]).await;
    assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, "demo endpoint after a full idle timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_stays_refused_when_the_clock_steps_back() {
    let idle = Duration::from_secs(30 * 60);
    let server = TestServer::start_with(Settings {
        policy: ExpiryPolicy::default().with_idle_timeout(idle),
        ..Settings::default()
    })
    .await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    server.clock.advance(idle);
    let reply = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, "after a full idle timeout");
    // The wall clock steps back (an NTP correction, say) by a minute.
    server.clock.set(T0.saturating_add(idle - Duration::from_secs(60)));
    let reply = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, "after expiry, with the clock stepped back");
    let reply = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &id)]).await;
    assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, "demo endpoint after expiry, with the clock stepped back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_session_ends_at_its_maximum_lifetime() {
    let server = TestServer::start_with(Settings {
        policy: ExpiryPolicy::default()
            .with_idle_timeout(Duration::from_secs(30 * 60))
            .with_max_lifetime(Duration::from_secs(60 * 60)),
        ..Settings::default()
    })
    .await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    for (step, last) in [
        (Duration::from_secs(20 * 60), "2026-12-04T19:58:18.110Z"),
        (Duration::from_secs(20 * 60), "2026-12-04T20:18:18.110Z"),
        (Duration::from_secs(20 * 60) - ms(1), "2026-12-04T20:38:18.109Z"),
    ] {
        server.clock.advance(step);
        let (status, _, body) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
        assert_eq!(status, StatusCode::OK, "at {last}: {body}");
        assert_eq!(body, info(ADMIN, T0_TEXT, last));
    }
    server.clock.advance(ms(1));
    let reply = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, "at the maximum lifetime");
    let reply = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &id)]).await;
    assert_unauthenticated(&reply, UNAUTHENTICATED_MODERN, "demo endpoint at the maximum lifetime");
    // A new login starts a new lifetime.
    let fresh = server.login(ADMIN, ADMIN_PASSWORD).await;
    let (status, _, body) = server.send(Method::GET, MODERN, &[(SESSION, &fresh)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, info(ADMIN, "2026-12-04T20:38:18.110Z", "2026-12-04T20:38:18.110Z"));
}

// ---------------------------------------------------------------------------
// Requests in flight
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_completes_after_its_session_is_deleted_and_the_id_is_then_refused() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let http = server.http();
    let waiting = {
        let id = id.clone();
        tokio::spawn(async move { http.send(Method::GET, "/api/demo/wait?seconds=1", &[(SESSION, &id)]).await })
    };
    tokio::time::sleep(ADMISSION).await;

    let (status, _, _) = server.send(Method::DELETE, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(!waiting.is_finished(), "the wait request answered before the delete: not in flight");
    let refused = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &id)]).await;
    assert_unauthenticated(&refused, UNAUTHENTICATED_MODERN, "a new request with the deleted id");

    let (status, headers, body) = waiting.await.expect("wait task");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"waited_seconds":1}"#);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let refused = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_unauthenticated(&refused, UNAUTHENTICATED_MODERN, "the deleted id after the wait");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_answers_the_request_in_flight_then_serve_returns() {
    let mut server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let http = server.http();
    let waiting = {
        let id = id.clone();
        tokio::spawn(async move { http.send(Method::GET, "/api/demo/wait?seconds=1", &[(SESSION, &id)]).await })
    };
    tokio::time::sleep(ADMISSION).await;

    let served = server.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!served.is_finished(), "serve returned with a request in flight");

    let (status, _, body) = waiting.await.expect("wait task");
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, r#"{"waited_seconds":1}"#);
    tokio::time::timeout(Duration::from_secs(5), served)
        .await
        .expect("serve did not return after the last request was answered")
        .expect("serve panicked");

    // The listener is closed: a new client cannot connect.
    let fresh = Http::new(&server.addr.to_string());
    let refused = fresh.try_send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert!(refused.is_err(), "a request after shutdown was answered: {refused:?}");
}

// ---------------------------------------------------------------------------
// Demo endpoints behind the layer
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whoami_answers_the_session_user() {
    let server = TestServer::start().await;
    let admin = server.login("Administrator@VSPHERE.local", ADMIN_PASSWORD).await;
    let alice = server.login_legacy(ALICE, ALICE_PASSWORD).await;
    let (status, headers, body) = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &admin)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(body, r#"{"user":"administrator@vsphere.local"}"#);
    let (status, _, body) = server.send(Method::GET, "/api/demo/whoami", &[(SESSION, &alice)]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"user":"alice"}"#));
    let anonymous = server.send(Method::GET, "/api/demo/whoami", &[]).await;
    assert_unauthenticated(&anonymous, UNAUTHENTICATED_MODERN, "whoami without a session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_of_zero_seconds_answers_at_once() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let (status, _, body) = server.send(Method::GET, "/api/demo/wait?seconds=0", &[(SESSION, &id)]).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, r#"{"waited_seconds":0}"#));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_refuses_seconds_over_the_limit_or_not_a_number_with_400_invalid_argument() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let expected = modern_error(
        "INVALID_ARGUMENT",
        "com.vmware.cis.demo.wait.seconds",
        "The query parameter seconds must be a whole number from 0 to 300.",
    );
    let over = format!("/api/demo/wait?seconds={}", app::MAX_WAIT_SECONDS + 1);
    assert_eq!(over, "/api/demo/wait?seconds=301");
    for path in [over.as_str(), "/api/demo/wait?seconds=abc", "/api/demo/wait?seconds=-1"] {
        let (status, headers, body) = server.send(Method::GET, path, &[(SESSION, &id)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(body, expected, "{path}");
        assert_eq!(header(&headers, "content-type"), Some("application/json"), "{path}");
    }
    let anonymous = server.send(Method::GET, "/api/demo/wait?seconds=abc", &[]).await;
    assert_unauthenticated(&anonymous, UNAUTHENTICATED_MODERN, "a bad wait without a session is a 401 first");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_path_answers_404_not_found_with_a_session_and_401_without() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let expected = modern_error("NOT_FOUND", "com.vmware.vapi.rest.not_found", "No such resource.");
    for path in ["/api/vcenter/vm", "/api/session/extra", "/nothing/here"] {
        let (status, headers, body) = server.send(Method::GET, path, &[(SESSION, &id)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body, expected, "{path}");
        assert_eq!(header(&headers, "content-type"), Some("application/json"), "{path}");

        let anonymous = server.send(Method::GET, path, &[]).await;
        assert_unauthenticated(&anonymous, UNAUTHENTICATED_MODERN, &format!("{path} without a session"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_legacy_path_with_a_session_answers_404_with_the_legacy_body() {
    let server = TestServer::start().await;
    let id = server.login_legacy(ADMIN, ADMIN_PASSWORD).await;
    let (status, _, body) = server.send(Method::GET, "/rest/vcenter/vm", &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body, legacy_error("NOT_FOUND", "com.vmware.vapi.rest.not_found", "No such resource."));
}

// ---------------------------------------------------------------------------
// Methods and operations the Session service does not have
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_method_the_session_paths_do_not_serve_answers_405_with_allow() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let modern_body = modern_error(
        "OPERATION_NOT_FOUND",
        "com.vmware.vapi.rest.operation_not_found",
        "No such operation on the Session service.",
    );
    let legacy_body = legacy_error(
        "OPERATION_NOT_FOUND",
        "com.vmware.vapi.rest.operation_not_found",
        "No such operation on the Session service.",
    );
    for method in [Method::PUT, Method::PATCH] {
        let (status, headers, body) = server.send(method.clone(), MODERN, &[(SESSION, &id)]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {MODERN}");
        assert_eq!(header(&headers, "allow"), Some("GET, POST, DELETE"));
        assert_eq!(body, modern_body);
    }
    for method in [Method::GET, Method::PUT] {
        let (status, headers, body) = server.send(method.clone(), LEGACY, &[(SESSION, &id)]).await;
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {LEGACY}");
        assert_eq!(header(&headers, "allow"), Some("POST, DELETE"));
        assert_eq!(body, legacy_body);
    }
    let (status, _, _) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK, "the session survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_legacy_action_answers_404_with_a_vapi_body() {
    let server = TestServer::start().await;
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let expected = legacy_error(
        "OPERATION_NOT_FOUND",
        "com.vmware.vapi.rest.operation_not_found",
        "No such operation on the Session service.",
    );
    for (method, path) in [
        (Method::POST, "/rest/com/vmware/cis/session?~action=bogus"),
        (Method::DELETE, "/rest/com/vmware/cis/session?~action=get"),
    ] {
        let (status, headers, body) = server.send(method.clone(), path, &[(SESSION, &id)]).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{method} {path}");
        assert_eq!(body, expected, "{method} {path}");
        assert_eq!(header(&headers, "content-type"), Some("application/json"));
        assert!(header(&headers, "www-authenticate").is_none());
    }
    // The percent-encoded form of `~` is the same parameter.
    let (status, _, body) =
        server.send(Method::POST, "/rest/com/vmware/cis/session?%7Eaction=get", &[(SESSION, &id)]).await;
    assert_eq!((status, body), (StatusCode::OK, legacy_info(ADMIN, T0_TEXT, T0_TEXT)));
    // The action twice is a malformed request, not a guess.
    let (status, _, body) =
        server.send(Method::POST, "/rest/com/vmware/cis/session?~action=get&~action=delete", &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        legacy_error("INVALID_REQUEST", "com.vmware.vapi.rest.bad_query", "The query string is malformed.")
    );
    let (status, _, _) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK, "the session survives");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_calls_with_a_json_body_answer_as_without_and_keep_the_connection_usable() {
    let server = TestServer::start().await;
    let json = [("content-type", "application/json")];
    let authorization = basic(ADMIN, ADMIN_PASSWORD);
    let (status, _, body) =
        server.send_body(Method::POST, MODERN, &[json[0], ("authorization", &authorization)], r#"{"spec":{}}"#).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = modern_id(&body);
    let (status, _, body) = server.send_body(Method::POST, LEGACY_GET, &[json[0], (SESSION, &id)], "{}").await;
    assert_eq!((status, body), (StatusCode::OK, legacy_info(ADMIN, T0_TEXT, T0_TEXT)));
    for _ in 0..3 {
        let (status, _, _) = server.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
        assert_eq!(status, StatusCode::OK, "the connection is still usable");
    }
    // A large body that is not read is still answered. hyper reads what has
    // arrived of it and otherwise ends the connection after the response, so
    // whether a pooled client can reuse it is a race (it failed a CI run); a
    // new connection must work.
    let big = format!(r#"{{"padding":"{}"}}"#, "x".repeat(256 * 1024));
    let (status, _, _) = server.send_body(Method::POST, LEGACY_GET, &[json[0], (SESSION, &id)], &big).await;
    assert_eq!(status, StatusCode::OK, "a large unread body");
    let fresh = Http::new(&server.addr.to_string());
    let (status, _, _) = fresh.send(Method::GET, MODERN, &[(SESSION, &id)]).await;
    assert_eq!(status, StatusCode::OK);
}

// ---------------------------------------------------------------------------
// Headers on every Session service response
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_session_service_response_carries_cache_control_no_store() {
    let server = TestServer::start().await;
    let good = basic(ADMIN, ADMIN_PASSWORD);
    let bad = basic(ADMIN, "wrong");
    let id = server.login(ADMIN, ADMIN_PASSWORD).await;
    let legacy = server.login_legacy(ADMIN, ADMIN_PASSWORD).await;
    let modern_doomed = server.login(ADMIN, ADMIN_PASSWORD).await;
    let legacy_doomed = server.login_legacy(ADMIN, ADMIN_PASSWORD).await;
    let legacy_doomed_too = server.login_legacy(ADMIN, ADMIN_PASSWORD).await;
    let unknown = "0123456789abcdef0123456789abcdef";
    let cases: Vec<(Method, &str, Headers, StatusCode)> = vec![
        (Method::POST, MODERN, vec![("authorization", &good)], StatusCode::CREATED),
        (Method::POST, MODERN, vec![("authorization", &bad)], StatusCode::UNAUTHORIZED),
        (Method::POST, MODERN, vec![], StatusCode::UNAUTHORIZED),
        (Method::GET, MODERN, vec![(SESSION, &id)], StatusCode::OK),
        (Method::GET, MODERN, vec![(SESSION, unknown)], StatusCode::UNAUTHORIZED),
        (Method::GET, MODERN, vec![], StatusCode::UNAUTHORIZED),
        (Method::DELETE, MODERN, vec![(SESSION, &modern_doomed)], StatusCode::NO_CONTENT),
        (Method::DELETE, MODERN, vec![(SESSION, unknown)], StatusCode::UNAUTHORIZED),
        (Method::PUT, MODERN, vec![], StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, LEGACY, vec![("authorization", &good)], StatusCode::OK),
        (Method::POST, LEGACY, vec![("authorization", &good), HEADER_AUTHN], StatusCode::OK),
        (Method::POST, LEGACY, vec![("authorization", &bad)], StatusCode::UNAUTHORIZED),
        (Method::POST, LEGACY_GET, vec![(SESSION, &legacy)], StatusCode::OK),
        (Method::POST, LEGACY_GET, vec![], StatusCode::UNAUTHORIZED),
        (Method::POST, LEGACY_DELETE, vec![(SESSION, &legacy_doomed)], StatusCode::OK),
        (Method::DELETE, LEGACY, vec![(SESSION, &legacy_doomed_too)], StatusCode::OK),
        (Method::DELETE, LEGACY, vec![(SESSION, unknown)], StatusCode::UNAUTHORIZED),
        (Method::GET, LEGACY, vec![], StatusCode::METHOD_NOT_ALLOWED),
        (Method::POST, "/rest/com/vmware/cis/session?~action=bogus", vec![], StatusCode::NOT_FOUND),
        (Method::POST, "/rest/com/vmware/cis/session?~action=a&~action=b", vec![], StatusCode::BAD_REQUEST),
    ];
    for (method, path, headers, expected) in &cases {
        let (status, response_headers, body) = server.send(method.clone(), path, headers).await;
        assert_eq!(status, *expected, "{method} {path}: {body}");
        assert_eq!(header(&response_headers, "cache-control"), Some("no-store"), "{method} {path} ({status})");
    }
}

// ---------------------------------------------------------------------------
// The example binary itself
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_binary_prints_its_bound_address_and_a_login_command_that_works() {
    let exe = std::env::current_exe().expect("current_exe");
    // Tests run from target/<profile>/deps/; examples live in target/<profile>/examples/.
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).expect("target/<profile>");
    let binary = profile_dir.join("examples").join(format!("server{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.is_file(),
        "the example server binary is missing at {}: plain `cargo test` builds it, `cargo test --test rest_session` \
         does not; run `cargo build --example server` first",
        binary.display()
    );

    let mut child = tokio::process::Command::new(&binary)
        .args(["--listen", "127.0.0.1:0"])
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| panic!("cannot start {}: {error}", binary.display()));
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();

    let (mut listening, mut login) = (None, None);
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        while listening.is_none() || login.is_none() {
            let Some(line) = lines.next_line().await.expect("reading stdout") else { break };
            if let Some((_, address)) = line.split_once("listening on http://") {
                listening = Some(address.trim().to_owned());
            } else if line.contains("curl -i -X POST -u '") {
                login = Some(line);
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server printed no address and login command within 30 s");
    let address = listening.expect("no `listening on http://ADDR` line");
    let login = login.expect("no `curl -i -X POST -u 'USER:PASSWORD' URL` line");
    let port: u16 = address.rsplit_once(':').and_then(|(_, port)| port.parse().ok()).expect("address has no port");
    assert_ne!(port, 0, "the printed address is the bound one, not the requested port 0: {address}");

    // `curl -i -X POST -u 'USER:PASSWORD' URL`
    let (_, after) = login.split_once("-u '").expect("no -u");
    let (credentials, url) = after.split_once('\'').expect("unterminated credentials");
    let (user, password) = credentials.split_once(':').expect("credentials without ':'");
    let url = url.trim();
    let path = url.strip_prefix(&format!("http://{address}")).expect("the login URL is not on the printed address");
    assert_eq!(path, "/api/session");

    let http = Http::new(&address);
    let (status, headers, body) = http.send(Method::POST, path, &[("authorization", &basic(user, password))]).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    let id = modern_id(&body);
    let (status, _, body) = http.send(Method::GET, "/api/demo/whoami", &[(SESSION, &id)]).await;
    assert_eq!((status, body), (StatusCode::OK, format!(r#"{{"user":"{user}"}}"#)));

    child.kill().await.expect("kill the example server");
}

// ---------------------------------------------------------------------------
// The harness itself
// ---------------------------------------------------------------------------

#[test]
fn the_manual_clock_starts_at_the_spec_example_time() {
    assert_eq!(T0.to_string(), T0_TEXT);
    assert_eq!(Timestamp::parse_rfc3339(T0_TEXT), Some(T0));
}
