//! The seed flow end to end with VMware's own STS client: pyVmomi's
//! `SsoAuthenticator.get_bearer_saml_assertion` gets a bearer token from the
//! example server's development STS, the token creates a session over REST
//! (`Authorization: SIGN`), and the session's absolute deadline is the
//! token's NotOnOrAfter.
//!
//! The Python side runs in a virtualenv under the target directory
//! (`target/tmp/pyvenv-sts`, made once with `python3 -m venv` and
//! `pip install pyvmomi[sso]` from PyPI, then reused). Nothing is skipped: if
//! the virtualenv or pip fails, the test fails and says why.

#[allow(dead_code)]
#[path = "../examples/server/app.rs"]
mod app;
#[allow(dead_code)]
#[path = "../examples/server/sts.rs"]
mod sts;
#[allow(dead_code)]
#[path = "../examples/server/tls.rs"]
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower_cis::auth::saml::{SamlAuthenticator, SamlVerifier};
use tower_cis::auth::{CompositeAuthenticator, HashCost, PasswordAuthenticator, UserDirectory};
use tower_cis::store::Resolution;
use tower_cis::{Cis, ExpiryPolicy, ManualClock, MemoryStore, SessionId, SessionStore, SharedClock};

const USER: &str = "administrator@vsphere.local";
const PASSWORD: &str = "VMware1!";
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

type Login = CompositeAuthenticator<Arc<PasswordAuthenticator>, SamlAuthenticator>;

/// Serialises the virtualenv's creation between the tests of this file.
static VENV: Mutex<()> = Mutex::new(());

fn run(command: &mut Command, what: &str) -> Output {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: cannot run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The virtualenv's python, with pyVmomi and its `sso` extra installed.
fn python() -> PathBuf {
    let _one_at_a_time = VENV.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("pyvenv-sts");
    let python = venv.join("bin").join("python");
    let ready = python.exists()
        && Command::new(&python).args(["-c", "import pyVim.sso"]).output().is_ok_and(|o| o.status.success());
    if !ready {
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv), "python3 -m venv");
        run(
            Command::new(venv.join("bin").join("pip")).args([
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "pyvmomi[sso]",
            ]),
            "pip install pyvmomi[sso]",
        );
        run(Command::new(&python).args(["-c", "import pyVim.sso"]), "import pyVim.sso");
    }
    python
}

/// The example application with password and SAML login and the dev STS, on
/// a manual clock standing at the system time.
struct Server {
    cis: Cis<MemoryStore, Login>,
    clock: ManualClock,
    verifier: SamlVerifier,
    stop: oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
}

async fn start(listener: TcpListener, tls: Option<tls::Tls>) -> Server {
    let clock = ManualClock::starting_now();
    let shared: SharedClock = Arc::new(clock.clone());
    let store = MemoryStore::builder()
        .policy(ExpiryPolicy::default().with_max_lifetime(MAX_LIFETIME))
        .clock(Arc::clone(&shared))
        .sweep_interval(None)
        .build();
    let users = UserDirectory::new().with_cost(HashCost::insecure_fast_for_tests()).with_user(USER, PASSWORD).unwrap();
    let passwords = Arc::new(PasswordAuthenticator::new(users));
    let issuer = "https://localhost/websso/SAML2/Metadata/vsphere.local".to_owned();
    let dev_sts = sts::DevSts::generate(Arc::clone(&passwords), Arc::clone(&shared), issuer.clone()).unwrap();
    let verifier = SamlVerifier::new()
        .with_trusted_certificates_pem(dev_sts.certificate_pem())
        .unwrap()
        .with_issuer(issuer)
        .with_clock(Arc::clone(&shared));
    let login = CompositeAuthenticator::new(passwords, SamlAuthenticator::new(verifier.clone()));
    let cis = Cis::new(store, login, shared);
    let app = app::application_with(&cis, app::demo_tasks(cis.clock()), Arc::new(dev_sts).router());
    let (stop, stopped) = oneshot::channel::<()>();
    let acceptor = tls.map(|tls| tls.acceptor);
    let served = tokio::spawn(app::serve_app(listener, acceptor, app, async move {
        let _ = stopped.await;
    }));
    Server { cis, clock, verifier, stop, served }
}

/// Runs tests/python/sts_seed.py; returns its JSON report.
async fn seed_flow(args: Vec<String>) -> serde_json::Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sts_seed.py");
    tokio::task::spawn_blocking(move || {
        let python = python();
        let output = run(Command::new(python).arg(script).args(&args), "tests/python/sts_seed.py");
        serde_json::from_slice(&output.stdout).expect("the script prints one JSON object")
    })
    .await
    .unwrap()
}

/// What every run must show: a token for the user, a session capped by it,
/// the STS's fault for a wrong password.
async fn check(server: &Server, report: &serde_json::Value) {
    assert_eq!(report["wrong_password_fault"], "wst:FailedAuthentication", "{report}");
    assert_eq!(report["status"], 201, "{report}");
    let token = report["token"].as_str().unwrap();
    let assertion = server.verifier.verify(token).expect("pyVmomi's copy of the token verifies");
    assert_eq!(assertion.subject, USER);
    // pyVmomi asked for token_duration=600.
    assert_eq!(assertion.not_on_or_after.duration_since(assertion.not_before), Duration::from_secs(600));

    let body = report["body"].as_str().unwrap();
    let id = SessionId::parse(body.trim_matches('"')).unwrap_or_else(|| panic!("not a session id: {body}"));
    let Resolution::Active(session) = server.cis.store().resolve(&id).await.unwrap() else {
        panic!("the session is not active")
    };
    assert_eq!(session.user(), USER);
    // min(created + 24 h, NotOnOrAfter): the token caps the session.
    assert_eq!(session.deadline(), assertion.not_on_or_after);
    assert!(session.deadline() < session.created().saturating_add(MAX_LIFETIME));
    server.clock.set(assertion.not_on_or_after.saturating_sub(Duration::from_millis(1)));
    assert!(matches!(server.cis.store().resolve(&id).await.unwrap(), Resolution::Active(_)));
    server.clock.set(assertion.not_on_or_after);
    assert!(matches!(server.cis.store().resolve(&id).await.unwrap(), Resolution::Expired | Resolution::Unknown));
}

async fn stop(server: Server) {
    let _ = server.stop.send(());
    tokio::time::timeout(Duration::from_secs(10), server.served).await.expect("shutdown").unwrap();
}

/// Plain http at the one address pyVmomi accepts for it: localhost:1080.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyvmomi_bearer_token_over_plain_http_at_localhost_1080() {
    let started = Instant::now();
    let address: SocketAddr = "127.0.0.1:1080".parse().unwrap();
    let listener = TcpListener::bind(address).await.unwrap_or_else(|e| {
        panic!("cannot listen on {address} ({e}): pyVmomi accepts a plain-http STS only at http://localhost:1080")
    });
    let server = start(listener, None).await;
    let sts_url = format!("http://{}{}", sts::PYVMOMI_PLAIN_HTTP_ADDRESS, sts::STS_PATH);
    let report = seed_flow(vec![sts_url, "localhost".into(), "1080".into(), USER.into(), PASSWORD.into()]).await;
    check(&server, &report).await;
    stop(server).await;
    eprintln!("plain-http seed flow with pyVmomi: {:?}", started.elapsed());
}

/// HTTPS on any port, the self-signed certificate pinned by pyVmomi.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyvmomi_bearer_token_over_https_with_a_pinned_certificate() {
    let started = Instant::now();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let tls = tls::Tls::self_signed(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
    let pinned = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("sts-pyvmomi-{}.pem", address.port()));
    std::fs::write(&pinned, &tls.certificate_pem).unwrap();
    let server = start(listener, Some(tls)).await;
    let sts_url = format!("https://{address}{}", sts::STS_PATH);
    let args = vec![
        sts_url,
        address.ip().to_string(),
        address.port().to_string(),
        USER.into(),
        PASSWORD.into(),
        pinned.display().to_string(),
    ];
    let report = seed_flow(args).await;
    check(&server, &report).await;
    stop(server).await;
    let _ = std::fs::remove_file(pinned);
    eprintln!("https seed flow with pyVmomi: {:?}", started.elapsed());
}
