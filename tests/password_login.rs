//! Password login: Basic header parsing, the users directory and file, the
//! login throttle, and how refusals reach the wire.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::header::AUTHORIZATION;
use http::{HeaderMap, HeaderValue};
use tower_cis::auth::{
    AuthError, AuthErrorKind, Authenticated, Authenticator, BasicError, ClientInfo, Credential, DirectoryErrorKind,
    FailureLimit, HashCost, LoginLimit, LoginThrottle, PasswordAuthenticator, ThrottlePolicy, ThrottleReason,
    UserDirectory, basic_from_headers, hash_password, parse_basic,
};
use tower_cis::error::{ErrorType, VapiError};
use tower_cis::{Clock, ManualClock, Timestamp};

const CHEAP: HashCost = HashCost::insecure_fast_for_tests();
const ADMIN: &str = "Administrator@vsphere.local";
const ADMIN_PASSWORD: &str = "VMware1!";

fn directory() -> UserDirectory {
    let admin = hash_password(ADMIN_PASSWORD, CHEAP).unwrap();
    UserDirectory::new()
        .with_cost(CHEAP)
        .with_hashed_user(ADMIN, &admin, ["vsphere.local\\Administrators", "vsphere.local\\Users"])
        .unwrap()
        .with_user("alice", "alice-password")
        .unwrap()
        .with_user("bob", "bob-password")
        .unwrap()
}

fn setup_with(policy: ThrottlePolicy) -> (ManualClock, PasswordAuthenticator) {
    let clock = ManualClock::new(Timestamp::from_millis(1_800_000_000_000));
    let auth =
        PasswordAuthenticator::new(directory()).with_throttle(LoginThrottle::new(policy, Arc::new(clock.clone())));
    (clock, auth)
}

fn setup() -> (ManualClock, PasswordAuthenticator) {
    setup_with(ThrottlePolicy::default())
}

fn from(address: &str) -> ClientInfo {
    ClientInfo::with_address(address.parse().unwrap())
}

async fn login(
    auth: &impl Authenticator,
    user: &str,
    password: &str,
    client: &ClientInfo,
) -> Result<Authenticated, AuthError> {
    auth.authenticate(Credential::Basic { user, password }, client).await
}

async fn kind(auth: &impl Authenticator, user: &str, password: &str, client: &ClientInfo) -> Result<(), AuthErrorKind> {
    login(auth, user, password, client).await.map(drop).map_err(|error| error.kind())
}

fn basic_header(raw: &[u8]) -> HeaderValue {
    HeaderValue::from_str(&format!("Basic {}", STANDARD.encode(raw))).unwrap()
}

// ---------------------------------------------------------------- logins

#[tokio::test]
async fn right_password_logs_in_as_the_configured_name_with_groups() {
    let (_, auth) = setup();
    let who = login(&auth, ADMIN, ADMIN_PASSWORD, &ClientInfo::default()).await.unwrap();
    assert_eq!(who.principal().name(), ADMIN);
    assert!(who.principal().is_member_of("vsphere.local\\Administrators"));
    assert_eq!(who.principal().groups().len(), 2);
    assert_eq!(who.expires(), None, "a password does not cap the session");
}

#[tokio::test]
async fn user_names_are_case_insensitive_and_the_principal_keeps_the_configured_case() {
    let (_, auth) = setup();
    for typed in ["administrator@VSPHERE.LOCAL", "ADMINISTRATOR@vsphere.local", ADMIN] {
        let who = login(&auth, typed, ADMIN_PASSWORD, &ClientInfo::default()).await.unwrap();
        assert_eq!(who.principal().name(), ADMIN);
    }
}

#[tokio::test]
async fn passwords_are_case_sensitive() {
    let (_, auth) = setup();
    assert_eq!(kind(&auth, ADMIN, "vmware1!", &ClientInfo::default()).await, Err(AuthErrorKind::Rejected));
}

#[tokio::test]
async fn wrong_password_is_rejected() {
    let (_, auth) = setup();
    let error = login(&auth, "alice", "not-alice-password", &ClientInfo::default()).await.unwrap_err();
    assert_eq!(error.kind(), AuthErrorKind::Rejected);
    assert_eq!(error.to_vapi(), VapiError::unauthenticated());
    assert_eq!(error.to_vapi().error_type().status(), 401);
}

#[tokio::test]
async fn unknown_user_is_rejected_like_a_wrong_password() {
    let (_, auth) = setup();
    let wrong_password = login(&auth, "alice", "guess", &ClientInfo::default()).await.unwrap_err();
    let unknown_user = login(&auth, "mallory", "guess", &ClientInfo::default()).await.unwrap_err();
    assert_eq!(unknown_user, wrong_password, "same kind and same message");
    assert_eq!(unknown_user.to_vapi(), VapiError::unauthenticated());
}

#[tokio::test]
async fn empty_and_oversized_credentials_are_rejected() {
    let (_, auth) = setup();
    let client = ClientInfo::default();
    assert_eq!(kind(&auth, "", "x", &client).await, Err(AuthErrorKind::Rejected));
    assert_eq!(kind(&auth, "alice", "", &client).await, Err(AuthErrorKind::Rejected));
    assert_eq!(kind(&auth, &"a".repeat(257), "x", &client).await, Err(AuthErrorKind::Rejected));
    assert_eq!(kind(&auth, "alice", &"p".repeat(1025), &client).await, Err(AuthErrorKind::Rejected));
}

#[tokio::test]
async fn an_arc_of_an_authenticator_is_an_authenticator() {
    let (_, auth) = setup();
    let shared = Arc::new(auth);
    assert!(login(&shared, "bob", "bob-password", &ClientInfo::default()).await.is_ok());
}

#[tokio::test]
async fn the_blocking_check_runs_on_a_blocking_thread() {
    let (_, auth) = setup();
    let auth = Arc::new(auth);
    let worker = Arc::clone(&auth);
    let who = tokio::task::spawn_blocking(move || {
        worker.authenticate_blocking(Credential::Basic { user: "bob", password: "bob-password" }, &from("192.0.2.1"))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(who.principal().name(), "bob");
}

// ---------------------------------------------------------------- limit

#[tokio::test]
async fn logins_beyond_the_running_and_waiting_limits_are_refused_as_unavailable() {
    let (_, auth) = setup();
    let limit = Arc::new(LoginLimit::new(1, 1));
    let auth = Arc::new(auth.with_limit(Arc::clone(&limit)));
    // The one turn is taken, as by a check in progress.
    let turn = limit.enter().await.unwrap();

    let waiting = tokio::spawn({
        let auth = Arc::clone(&auth);
        async move { login(&auth, "bob", "bob-password", &ClientInfo::default()).await }
    });
    while limit.waiting() == 0 {
        tokio::task::yield_now().await;
    }
    // The queue is full: refused at once, without checking the password.
    let refused = login(&auth, "alice", "alice-password", &ClientInfo::default()).await.unwrap_err();
    assert_eq!(refused.kind(), AuthErrorKind::Unavailable);
    assert_eq!(refused.to_vapi().error_type(), ErrorType::ServiceUnavailable);
    assert!(!waiting.is_finished());

    drop(turn);
    assert_eq!(waiting.await.unwrap().unwrap().principal().name(), "bob");
    assert_eq!(limit.waiting(), 0);
    login(&auth, "alice", "alice-password", &ClientInfo::default()).await.expect("the limit did not recover");
}

#[tokio::test]
async fn an_abandoned_login_leaves_the_queue() {
    let (_, auth) = setup();
    let limit = Arc::new(LoginLimit::new(1, 1));
    let auth = auth.with_limit(Arc::clone(&limit));
    let turn = limit.enter().await.unwrap();
    let client = ClientInfo::default();
    let abandoned = tokio::time::timeout(Duration::from_millis(20), login(&auth, "bob", "bob-password", &client));
    assert!(abandoned.await.is_err(), "the login did not wait for its turn");
    assert_eq!(limit.waiting(), 0, "the abandoned login kept its place");
    drop(turn);
    assert!(login(&auth, "bob", "bob-password", &client).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_that_fits_the_queue_is_checked_in_turns_without_refusals() {
    // The logins finish in any order, so five wrong passwords can land with
    // no success between them and lock the user (the default limit); the
    // limit is raised, as this test is about the queue, not the throttle.
    let lenient = FailureLimit::new(100, Duration::from_secs(180), Duration::from_secs(300));
    let (_, auth) = setup_with(ThrottlePolicy::default().with_per_user(lenient));
    let limit = Arc::new(LoginLimit::new(2, 1000));
    let auth = Arc::new(auth.with_limit(Arc::clone(&limit)));
    let logins: Vec<_> = (0..40)
        .map(|i| {
            let auth = Arc::clone(&auth);
            tokio::spawn(async move {
                let password = if i % 2 == 0 { "bob-password" } else { "wrong" };
                login(&auth, "bob", password, &from(&format!("192.0.2.{i}"))).await.map(|_| ())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for login in logins {
        outcomes.push(login.await.unwrap().map_err(|error| error.kind()));
    }
    // Every login was checked (none refused as busy), in turns.
    assert!(outcomes.iter().all(|outcome| !matches!(outcome, Err(AuthErrorKind::Unavailable))), "{outcomes:?}");
    assert_eq!(outcomes.iter().filter(|outcome| outcome.is_ok()).count(), 20);
    assert_eq!(limit.waiting(), 0);
    // All turns are free again.
    let (first, second) = (limit.enter().await.unwrap(), limit.enter().await.unwrap());
    drop((first, second));
}

#[test]
fn the_default_limit_runs_one_check_per_core() {
    let limit = LoginLimit::default();
    assert_eq!(limit.max_running(), std::thread::available_parallelism().unwrap().get());
    assert_eq!(limit.max_waiting(), 64);
    assert!(format!("{limit:?}").contains("max_running"));
}

// ---------------------------------------------------------------- throttle

#[tokio::test]
async fn fifth_failure_locks_the_user_for_five_minutes() {
    let (clock, auth) = setup();
    let client = from("192.0.2.10");
    for attempt in 1..=5 {
        // The fifth wrong password is still checked, and rejected.
        assert_eq!(kind(&auth, "alice", "wrong", &client).await, Err(AuthErrorKind::Rejected), "attempt {attempt}");
    }
    let locked_at = clock.now();
    assert_eq!(auth.throttle().user_locked_until("alice"), Some(locked_at.saturating_add(Duration::from_secs(300))));
    // Locked: even the right password is refused, without being checked.
    assert_eq!(kind(&auth, "alice", "alice-password", &client).await, Err(AuthErrorKind::Throttled));
    // For every client, not only the one that failed.
    assert_eq!(kind(&auth, "ALICE", "alice-password", &from("198.51.100.1")).await, Err(AuthErrorKind::Throttled));
    // Other users are not affected.
    assert!(login(&auth, "bob", "bob-password", &client).await.is_ok());
}

#[tokio::test]
async fn four_failures_do_not_lock() {
    let (_, auth) = setup();
    for _ in 0..4 {
        assert_eq!(kind(&auth, "alice", "wrong", &ClientInfo::default()).await, Err(AuthErrorKind::Rejected));
    }
    assert!(login(&auth, "alice", "alice-password", &ClientInfo::default()).await.is_ok());
}

#[tokio::test]
async fn lock_expires_after_300_seconds() {
    let (clock, auth) = setup();
    let client = ClientInfo::default();
    for _ in 0..5 {
        let _ = login(&auth, "alice", "wrong", &client).await;
    }
    clock.advance(Duration::from_millis(299_999));
    assert_eq!(kind(&auth, "alice", "alice-password", &client).await, Err(AuthErrorKind::Throttled));
    clock.advance(Duration::from_millis(1));
    assert_eq!(auth.throttle().user_locked_until("alice"), None);
    assert!(login(&auth, "alice", "alice-password", &client).await.is_ok());
}

#[tokio::test]
async fn after_a_lock_the_count_starts_afresh() {
    let (clock, auth) = setup();
    let client = ClientInfo::default();
    for _ in 0..5 {
        let _ = login(&auth, "alice", "wrong", &client).await;
    }
    clock.advance(Duration::from_secs(300));
    // One more failure does not lock again at once.
    assert_eq!(kind(&auth, "alice", "wrong", &client).await, Err(AuthErrorKind::Rejected));
    assert!(login(&auth, "alice", "alice-password", &client).await.is_ok());
}

#[tokio::test]
async fn locked_attempts_do_not_extend_the_lock() {
    let (clock, auth) = setup();
    let client = ClientInfo::default();
    for _ in 0..5 {
        let _ = login(&auth, "alice", "wrong", &client).await;
    }
    for _ in 0..10 {
        clock.advance(Duration::from_secs(29));
        assert_eq!(kind(&auth, "alice", "wrong", &client).await, Err(AuthErrorKind::Throttled));
    }
    clock.advance(Duration::from_secs(10));
    assert!(login(&auth, "alice", "alice-password", &client).await.is_ok());
}

#[tokio::test]
async fn failures_spread_beyond_the_window_do_not_lock() {
    let (clock, auth) = setup();
    let client = ClientInfo::default();
    for _ in 0..4 {
        let _ = login(&auth, "alice", "wrong", &client).await;
    }
    clock.advance(Duration::from_secs(180));
    for _ in 0..4 {
        assert_eq!(kind(&auth, "alice", "wrong", &client).await, Err(AuthErrorKind::Rejected));
    }
    assert!(login(&auth, "alice", "alice-password", &client).await.is_ok());
}

#[tokio::test]
async fn unknown_names_are_locked_like_known_ones() {
    let (_, auth) = setup();
    let client = ClientInfo::default();
    for _ in 0..5 {
        assert_eq!(kind(&auth, "nobody", "guess", &client).await, Err(AuthErrorKind::Rejected));
    }
    let throttled = login(&auth, "nobody", "guess", &client).await.unwrap_err();
    assert_eq!(throttled.kind(), AuthErrorKind::Throttled);
    assert!(auth.throttle().user_locked_until("nobody").is_some());
}

#[tokio::test]
async fn changing_the_case_of_the_name_does_not_buy_more_guesses() {
    let (_, auth) = setup();
    let client = ClientInfo::default();
    for name in ["alice", "Alice", "ALICE", "aLiCe", "alicE"] {
        assert_eq!(kind(&auth, name, "wrong", &client).await, Err(AuthErrorKind::Rejected));
    }
    assert_eq!(kind(&auth, "AlIcE", "alice-password", &client).await, Err(AuthErrorKind::Throttled));
}

#[tokio::test]
async fn success_resets_failures() {
    let (_, auth) = setup();
    let client = ClientInfo::default();
    for _ in 0..4 {
        let _ = login(&auth, "alice", "wrong", &client).await;
    }
    assert!(login(&auth, "alice", "alice-password", &client).await.is_ok());
    for _ in 0..4 {
        assert_eq!(kind(&auth, "alice", "wrong", &client).await, Err(AuthErrorKind::Rejected));
    }
    assert!(login(&auth, "alice", "alice-password", &client).await.is_ok());
    assert_eq!(auth.throttle().tracked(), 0, "nothing left to remember");
}

#[tokio::test]
async fn address_limit_is_higher_than_user_limit() {
    let (clock, auth) = setup();
    let attacker = from("203.0.113.66");
    // 4 failures for each of 5 names: no name reaches its limit of 5, the
    // address reaches its limit of 20 with the last one.
    for round in 0..4 {
        for name in ["alice", "carol", "dave", "erin", "frank"] {
            assert_eq!(kind(&auth, name, "guess", &attacker).await, Err(AuthErrorKind::Rejected), "{name} {round}");
        }
    }
    assert_eq!(auth.throttle().user_locked_until("alice"), None);
    assert!(auth.throttle().address_locked_until("203.0.113.66".parse().unwrap()).is_some());
    assert_eq!(auth.throttle().user_locked_until("bob"), None);
    // The address is locked, whatever the name and password.
    assert_eq!(kind(&auth, "bob", "bob-password", &attacker).await, Err(AuthErrorKind::Throttled));
    // Other clients still log in as bob.
    assert!(login(&auth, "bob", "bob-password", &from("192.0.2.20")).await.is_ok());
    clock.advance(Duration::from_secs(300));
    assert!(login(&auth, "bob", "bob-password", &attacker).await.is_ok());
}

#[tokio::test]
async fn one_clients_typos_do_not_lock_other_clients_out_of_other_accounts() {
    let (_, auth) = setup();
    let typist = from("192.0.2.30");
    for _ in 0..5 {
        let _ = login(&auth, "alice", "typo", &typist).await;
    }
    // The typist's address is far from its limit: the typist can still log in
    // as another user, and nobody else is affected.
    assert!(login(&auth, "bob", "bob-password", &typist).await.is_ok());
    assert!(login(&auth, ADMIN, ADMIN_PASSWORD, &from("192.0.2.31")).await.is_ok());
}

#[tokio::test]
async fn success_does_not_reset_the_address_count() {
    let policy = ThrottlePolicy::default().with_per_address(FailureLimit::new(
        3,
        Duration::from_secs(180),
        Duration::from_secs(300),
    ));
    let (_, auth) = setup_with(policy);
    let client = from("192.0.2.40");
    let _ = login(&auth, "carol", "guess", &client).await;
    let _ = login(&auth, "dave", "guess", &client).await;
    // A valid account of the attacker's own does not clear the address's count.
    assert!(login(&auth, "bob", "bob-password", &client).await.is_ok());
    let _ = login(&auth, "erin", "guess", &client).await;
    assert_eq!(kind(&auth, "bob", "bob-password", &client).await, Err(AuthErrorKind::Throttled));
}

#[tokio::test]
async fn ipv6_clients_are_tracked_by_their_64_prefix() {
    let (_, auth) = setup();
    for host in 0..20 {
        let client = from(&format!("2001:db8:1:2::{host:x}"));
        let _ = login(&auth, &format!("user{host}"), "guess", &client).await;
    }
    let neighbour: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
    assert!(auth.throttle().address_locked_until(neighbour).is_some());
    assert_eq!(
        kind(&auth, "bob", "bob-password", &ClientInfo::with_address(neighbour)).await,
        Err(AuthErrorKind::Throttled)
    );
    assert!(login(&auth, "bob", "bob-password", &from("2001:db8:1:3::1")).await.is_ok());
}

#[test]
fn ipv4_mapped_addresses_count_as_ipv4() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let throttle = LoginThrottle::new(ThrottlePolicy::default(), Arc::new(clock));
    for i in 0..20 {
        throttle.begin(&format!("u{i}"), Some("::ffff:192.0.2.50".parse().unwrap())).unwrap().failed();
    }
    assert!(throttle.address_locked_until("192.0.2.50".parse().unwrap()).is_some());
}

#[test]
fn concurrent_attempts_cannot_outrun_the_user_limit() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let throttle = LoginThrottle::new(ThrottlePolicy::default(), Arc::new(clock));
    let first = throttle.begin("alice", None).unwrap();
    first.failed();
    let in_flight: Vec<_> = (0..4).map(|_| throttle.begin("alice", None).unwrap()).collect();
    let refused = throttle.begin("alice", None).unwrap_err();
    assert_eq!(refused.reason(), ThrottleReason::TooManyConcurrent);
    assert_eq!(refused.until(), None);
    // Other names are not held up.
    throttle.begin("bob", None).unwrap().succeeded();
    // Attempts that end without an outcome free their place.
    drop(in_flight);
    throttle.begin("alice", None).unwrap().succeeded();
}

#[test]
fn very_long_names_are_tracked_by_their_first_256_bytes() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let throttle = LoginThrottle::new(ThrottlePolicy::default(), Arc::new(clock));
    let prefix = "é".repeat(128);
    for i in 0..5 {
        throttle.begin(&format!("{prefix}{}", "x".repeat(10_000 + i)), None).unwrap().failed();
    }
    assert_eq!(throttle.tracked(), 1);
    assert!(throttle.user_locked_until(&prefix.to_uppercase()).is_some());
}

#[test]
fn an_administrator_can_unlock_a_user() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let throttle = LoginThrottle::new(ThrottlePolicy::default(), Arc::new(clock));
    for _ in 0..5 {
        throttle.begin("alice", None).unwrap().failed();
    }
    assert_eq!(throttle.begin("alice", None).unwrap_err().reason(), ThrottleReason::UserLocked);
    throttle.unlock_user("ALICE");
    throttle.begin("alice", None).unwrap().succeeded();
}

#[test]
fn tracked_names_and_addresses_are_bounded() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let policy = ThrottlePolicy::default().with_max_tracked(100);
    let throttle = LoginThrottle::new(policy, Arc::new(clock.clone()));
    for i in 0..1_000 {
        throttle.begin(&format!("spray{i}"), None).unwrap().failed();
        assert!(throttle.tracked() <= 100);
    }
    // Everything expires with the window.
    clock.advance(Duration::from_secs(180));
    throttle.begin("alice", None).unwrap().succeeded();
    assert_eq!(throttle.tracked(), 0);
}

#[test]
fn a_full_table_of_locks_fails_closed_and_keeps_the_locks() {
    let clock = ManualClock::new(Timestamp::from_millis(1_000_000));
    let policy = ThrottlePolicy::default()
        .with_per_user(FailureLimit::new(1, Duration::from_secs(180), Duration::from_secs(300)))
        .with_max_tracked(10);
    let throttle = LoginThrottle::new(policy, Arc::new(clock.clone()));
    for i in 0..10 {
        throttle.begin(&format!("locked{i}"), None).unwrap().failed();
    }
    assert_eq!(throttle.begin("newcomer", None).unwrap_err().reason(), ThrottleReason::Saturated);
    assert!(throttle.user_locked_until("locked0").is_some(), "no lock was evicted");
    clock.advance(Duration::from_secs(300));
    throttle.begin("newcomer", None).unwrap().succeeded();
}

// ---------------------------------------------------------------- wire

#[tokio::test]
async fn a_throttled_login_is_a_401_with_its_own_message() {
    let (_, auth) = setup();
    for _ in 0..5 {
        let _ = login(&auth, "alice", "wrong", &ClientInfo::default()).await;
    }
    let right = login(&auth, "alice", "alice-password", &ClientInfo::default()).await.unwrap_err();
    let wrong = login(&auth, "alice", "wrong", &ClientInfo::default()).await.unwrap_err();
    assert_eq!(right, wrong, "a locked account does not tell whether the password was right");
    let vapi = right.to_vapi();
    assert_eq!(vapi.error_type(), ErrorType::Unauthenticated);
    assert_eq!(vapi.error_type().status(), 401);
    assert_eq!(vapi.messages()[0].id, "com.vmware.cis.session.authentication.throttled");
    assert_eq!(vapi.messages()[0].default_message, "Too many failed login attempts. Try again later.");
}

#[test]
fn unavailable_is_a_503() {
    let vapi = AuthError::unavailable("identity provider unreachable").to_vapi();
    assert_eq!(vapi.error_type(), ErrorType::ServiceUnavailable);
    assert_eq!(vapi.error_type().status(), 503);
    assert!(!vapi.to_string().contains("identity provider"), "operator messages stay in the logs");
}

#[test]
fn malformed_basic_headers_are_rejected_logins() {
    let error: AuthError = BasicError::MissingColon.into();
    assert_eq!(error.kind(), AuthErrorKind::Rejected);
    assert_eq!(error.to_vapi(), VapiError::unauthenticated());
}

// ---------------------------------------------------------------- Basic header

#[test]
fn basic_header_round_trips_user_and_password() {
    let parsed = parse_basic(&basic_header(b"Administrator@vsphere.local:VMware1!")).unwrap();
    assert_eq!(parsed.user(), ADMIN);
    assert_eq!(parsed.password(), ADMIN_PASSWORD);
    assert!(matches!(parsed.as_credential(), Credential::Basic { user: ADMIN, password: ADMIN_PASSWORD }));
}

#[test]
fn basic_header_password_may_contain_colons() {
    let parsed = parse_basic(&basic_header(b"alice:a:b::c:")).unwrap();
    assert_eq!((parsed.user(), parsed.password()), ("alice", "a:b::c:"));
}

#[test]
fn basic_header_scheme_is_case_insensitive() {
    for scheme in ["basic", "BASIC", "bAsIc"] {
        let value = HeaderValue::from_str(&format!("{scheme} {}", STANDARD.encode("alice:pw"))).unwrap();
        assert_eq!(parse_basic(&value).unwrap().user(), "alice", "{scheme}");
    }
    let spaced = HeaderValue::from_str(&format!("Basic   {}  ", STANDARD.encode("alice:pw"))).unwrap();
    assert_eq!(parse_basic(&spaced).unwrap().password(), "pw");
}

#[test]
fn basic_header_with_bad_base64_is_rejected() {
    for token in ["not base64!", "YWxpY2U6cHc", "YWxpY2U6cHc=x", "YW=xpY2U6cHc="] {
        let value = HeaderValue::from_str(&format!("Basic {token}")).unwrap();
        assert_eq!(parse_basic(&value).unwrap_err(), BasicError::InvalidBase64, "{token}");
    }
}

#[test]
fn basic_header_without_colon_is_rejected() {
    assert_eq!(parse_basic(&basic_header(b"alicepassword")).unwrap_err(), BasicError::MissingColon);
}

#[test]
fn basic_header_with_empty_user_is_rejected() {
    assert_eq!(parse_basic(&basic_header(b":password")).unwrap_err(), BasicError::EmptyUser);
}

#[test]
fn basic_header_may_carry_an_empty_password() {
    assert_eq!(parse_basic(&basic_header(b"alice:")).unwrap().password(), "");
}

#[test]
fn basic_header_must_be_utf8() {
    assert_eq!(parse_basic(&basic_header(b"j\xf6rg:passw\xf6rd")).unwrap_err(), BasicError::NotUtf8);
    let utf8 = parse_basic(&basic_header("jörg:pässwörd".as_bytes())).unwrap();
    assert_eq!((utf8.user(), utf8.password()), ("jörg", "pässwörd"));
}

#[test]
fn basic_header_user_must_not_hold_control_characters() {
    assert_eq!(parse_basic(&basic_header(b"ali\nce:pw")).unwrap_err(), BasicError::ControlCharacterInUser);
    assert_eq!(parse_basic(&basic_header(b"alice\x00:pw")).unwrap_err(), BasicError::ControlCharacterInUser);
}

#[test]
fn basic_header_oversized_parts_are_rejected() {
    let long_token = HeaderValue::from_str(&format!("Basic {}", "A".repeat(4100))).unwrap();
    assert_eq!(parse_basic(&long_token).unwrap_err(), BasicError::TooLong);
    let long_user = format!("{}:pw", "u".repeat(257));
    assert_eq!(parse_basic(&basic_header(long_user.as_bytes())).unwrap_err(), BasicError::UserTooLong);
    let long_password = format!("alice:{}", "p".repeat(1025));
    assert_eq!(parse_basic(&basic_header(long_password.as_bytes())).unwrap_err(), BasicError::PasswordTooLong);
    let at_limits = format!("{}:{}", "u".repeat(256), "p".repeat(1024));
    assert!(parse_basic(&basic_header(at_limits.as_bytes())).is_ok());
}

#[test]
fn basic_header_other_schemes_and_empty_tokens_are_refused() {
    assert_eq!(parse_basic(&HeaderValue::from_static("SIGN token=\"abc\"")).unwrap_err(), BasicError::NotBasic);
    assert_eq!(parse_basic(&HeaderValue::from_static("Basically dXNlcjpwYXNz")).unwrap_err(), BasicError::NotBasic);
    assert_eq!(parse_basic(&HeaderValue::from_static("Basic")).unwrap_err(), BasicError::Empty);
    assert_eq!(parse_basic(&HeaderValue::from_static("Basic   ")).unwrap_err(), BasicError::Empty);
    assert_eq!(parse_basic(&HeaderValue::from_static("")).unwrap_err(), BasicError::NotBasic);
}

#[test]
fn basic_header_exactly_one_authorization_header_is_required() {
    let mut headers = HeaderMap::new();
    assert_eq!(basic_from_headers(&headers).unwrap_err(), BasicError::Missing);
    headers.append(AUTHORIZATION, basic_header(b"alice:pw"));
    assert_eq!(basic_from_headers(&headers).unwrap().user(), "alice");
    headers.append(AUTHORIZATION, basic_header(b"bob:pw"));
    assert_eq!(basic_from_headers(&headers).unwrap_err(), BasicError::Multiple);
}

// ---------------------------------------------------------------- redaction

#[tokio::test]
async fn debug_output_never_contains_the_password() {
    let secret = "Sup3r-Secret-Pa55";
    let parsed = parse_basic(&basic_header(format!("alice:{secret}").as_bytes())).unwrap();
    let credential = parsed.as_credential();
    let users = UserDirectory::new().with_cost(CHEAP).with_user("alice", secret).unwrap();
    let auth = PasswordAuthenticator::new(users.clone());
    let error = login(&auth, "alice", &format!("{secret}x"), &ClientInfo::default()).await.unwrap_err();

    let rendered = [
        format!("{parsed:?}"),
        format!("{parsed:#?}"),
        format!("{credential:?}"),
        format!("{credential:#?}"),
        format!("{users:?}"),
        format!("{auth:?}"),
        format!("{error:?}"),
        error.to_string(),
        users.verify("alice", "wrong").map(|p| format!("{p:?}")).unwrap_or_default(),
    ];
    for text in &rendered {
        assert!(!text.contains(secret), "leaked in {text}");
        assert!(!text.contains("argon2"), "hash leaked in {text}");
    }
    assert!(rendered[0].contains("alice") && rendered[0].contains("<redacted>"));
    assert!(rendered[2].contains("<redacted>"));
}

// ---------------------------------------------------------------- directory

#[test]
fn default_hash_cost_is_owasps() {
    let cost = HashCost::default();
    assert_eq!((cost.memory_kib(), cost.iterations(), cost.parallelism()), (19_456, 2, 1));
    assert_eq!(UserDirectory::new().cost(), cost);
    assert!(HashCost::new(HashCost::MAX_MEMORY_KIB + 1, 1, 1).is_err());
    assert!(HashCost::new(8, 1, 2).is_err(), "argon2 needs 8 KiB per lane");
}

#[test]
fn hashes_are_salted_argon2id_phc_strings() {
    let a = hash_password("same", CHEAP).unwrap();
    let b = hash_password("same", CHEAP).unwrap();
    assert!(a.starts_with("$argon2id$v=19$m=8,t=1,p=1$"), "{a}");
    assert_ne!(a, b, "a fresh salt every time");
}

#[test]
fn only_argon2id_hashes_within_limits_are_accepted() {
    let good = hash_password("pw", CHEAP).unwrap();
    let argon2i = good.replacen("argon2id", "argon2i", 1);
    let old_version = good.replacen("v=19", "v=16", 1);
    let greedy = good.replacen("m=8,", "m=4194304,", 1);
    let bcrypt = "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW";
    for bad in [argon2i.as_str(), old_version.as_str(), greedy.as_str(), bcrypt, "", "plaintext"] {
        let error = UserDirectory::new().with_hashed_user("u", bad, [""; 0]).unwrap_err();
        assert_eq!(error.kind(), DirectoryErrorKind::InvalidHash, "{bad}: {error}");
    }
    assert!(UserDirectory::new().with_hashed_user("u", &good, [""; 0]).is_ok());
}

#[test]
fn user_and_group_names_are_checked() {
    let phc = hash_password("pw", CHEAP).unwrap();
    for name in ["", "a:b", " padded", "padded ", "new\nline"] {
        let error = UserDirectory::new().with_hashed_user(name, &phc, [""; 0]).unwrap_err();
        assert_eq!(error.kind(), DirectoryErrorKind::InvalidName, "{name:?}");
    }
    for group in ["", "a,b", "tab\there"] {
        let error = UserDirectory::new().with_hashed_user("u", &phc, [group]).unwrap_err();
        assert_eq!(error.kind(), DirectoryErrorKind::InvalidGroup, "{group:?}");
    }
    let duplicate =
        UserDirectory::new().with_hashed_user("Bob", &phc, [""; 0]).unwrap().with_hashed_user("bOB", &phc, [""; 0]);
    assert_eq!(duplicate.unwrap_err().kind(), DirectoryErrorKind::DuplicateUser);
}

#[test]
fn users_file_round_trip() {
    let original = directory();
    let text = original.to_users_file();
    let reparsed: UserDirectory = text.parse::<UserDirectory>().unwrap().with_cost(CHEAP);
    assert_eq!(reparsed.len(), 3);
    assert_eq!(reparsed.to_users_file(), text);
    let admin = reparsed.verify("administrator@vsphere.local", ADMIN_PASSWORD).unwrap();
    assert_eq!(admin.name(), ADMIN);
    assert_eq!(admin.groups().collect::<Vec<_>>(), ["vsphere.local\\Administrators", "vsphere.local\\Users"]);
    assert!(reparsed.verify("alice", "alice-password").is_some());
    assert!(reparsed.verify("alice", "bob-password").is_none());

    // And through a file on disk.
    let path = std::env::temp_dir().join(format!("tower-cis-users-{}.txt", std::process::id()));
    std::fs::write(&path, &text).unwrap();
    let from_disk = UserDirectory::from_file(&path);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(from_disk.unwrap().to_users_file(), text);
}

#[test]
fn users_file_format_allows_comments_blank_lines_crlf_bom_and_odd_names() {
    let phc = hash_password("pw", CHEAP).unwrap();
    let text = format!(
        "\u{feff}# users for the lab\r\n\r\n   # indented comment\r\nCORP\\svc backup:{phc}\r\n\
         Administrator@vsphere.local:{phc}: vsphere.local\\Administrators , Domain Admins ,ns:group\r\n\
         carol:{phc}:\n"
    );
    let users: UserDirectory = text.parse::<UserDirectory>().unwrap().with_cost(CHEAP);
    assert_eq!(users.len(), 3);
    assert_eq!(users.verify("corp\\SVC BACKUP", "pw").unwrap().name(), "CORP\\svc backup");
    let admin = users.verify(ADMIN, "pw").unwrap();
    assert_eq!(admin.groups().collect::<Vec<_>>(), ["vsphere.local\\Administrators", "Domain Admins", "ns:group"]);
    assert_eq!(users.verify("carol", "pw").unwrap().groups().len(), 0);
}

#[test]
fn users_file_errors_name_the_line() {
    let phc = hash_password("pw", CHEAP).unwrap();
    let cases = [
        (format!("# ok\nalice:{phc}\nno-colon-here\n"), 3, DirectoryErrorKind::Syntax),
        (format!("alice:{phc}\n\n\nbob:not-a-hash\n"), 4, DirectoryErrorKind::InvalidHash),
        (format!("alice:{phc}\nALICE:{phc}\n"), 2, DirectoryErrorKind::DuplicateUser),
        (format!(":{phc}\n"), 1, DirectoryErrorKind::InvalidName),
        ("alice:\n".to_owned(), 1, DirectoryErrorKind::Syntax),
        (format!("alice:{phc}:admins,,users\n"), 1, DirectoryErrorKind::InvalidGroup),
        (format!("#\n#\nalice:{phc}:{}\n", "g".repeat(17_000)), 3, DirectoryErrorKind::TooLarge),
    ];
    for (text, line, kind) in cases {
        let error = text.parse::<UserDirectory>().unwrap_err();
        assert_eq!((error.line(), error.kind()), (Some(line), kind), "{error}");
        let message = error.to_string();
        assert!(message.starts_with(&format!("users file line {line}: ")), "{message}");
        assert!(!message.contains(&phc), "no hash in {message}");
    }
}

#[test]
fn users_file_that_is_not_utf8_names_the_line() {
    let phc = hash_password("pw", CHEAP).unwrap();
    let mut bytes = format!("alice:{phc}\n").into_bytes();
    bytes.extend_from_slice(b"j\xf6rg:x\n");
    let path = std::env::temp_dir().join(format!("tower-cis-users-latin1-{}.txt", std::process::id()));
    std::fs::write(&path, bytes).unwrap();
    let error = UserDirectory::from_file(&path).unwrap_err();
    std::fs::remove_file(&path).unwrap();
    assert_eq!((error.kind(), error.line()), (DirectoryErrorKind::Syntax, Some(2)));
}

#[test]
fn a_missing_users_file_is_an_io_error() {
    let error = UserDirectory::from_file("/nonexistent/tower-cis/users").unwrap_err();
    assert_eq!(error.kind(), DirectoryErrorKind::Io);
    assert_eq!(error.line(), None);
}
