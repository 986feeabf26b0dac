//! The tower-cis example server: vCenter's cis Session service with password
//! login (and, with `--features saml`, SAML token login and a development
//! STS), sessions and tasks in memory (or, with `--features redis` and
//! `--redis URL`, in Redis, shared by every instance), and demo endpoints
//! behind the session layer.
//!
//! `cargo run --example server -- --help` lists the flags; README.md explains them.

mod app;
#[cfg(feature = "saml")]
mod sts;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tower_cis::auth::{HashCost, LoginThrottle, PasswordAuthenticator, ThrottlePolicy, UserDirectory};
use tower_cis::tasks::{TaskManager, TaskStore};
use tower_cis::{Cis, CisConfig, ExpiryPolicy, MemoryStore, SessionStore, SharedClock, SystemClock};

/// The user created when neither --user nor --users-file is given.
const DEMO_USER: &str = "administrator@vsphere.local";

#[derive(Parser, Debug)]
#[command(about = "vSphere Automation cis services (sessions) on tower: the tower-cis example server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// A user as NAME:PASSWORD (repeatable). Without --user and --users-file,
    /// a demo user administrator@vsphere.local gets a random password.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// A users file: `name:argon2id-PHC-hash[:group,group]` per line.
    #[arg(long, value_name = "PATH")]
    users_file: Option<PathBuf>,
    /// Idle timeout of sessions, e.g. 30m, 90s.
    #[arg(long, default_value = "30m", value_parser = humantime::parse_duration)]
    idle_timeout: Duration,
    /// Absolute lifetime of sessions, e.g. 24h.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    max_lifetime: Duration,
    /// Trust this STS signing certificate (PEM file) for `Authorization: SIGN`
    /// logins (repeatable). Needs `--features saml`.
    #[arg(long = "saml-cert", value_name = "PATH")]
    saml_certs: Vec<PathBuf>,
    /// Accept only SAML tokens from this Issuer (the dev STS issues with it).
    #[arg(long, value_name = "ISSUER")]
    saml_issuer: Option<String>,
    /// Clock skew tolerated on SAML token times, e.g. 10m, 30s.
    #[arg(long, default_value = "10m", value_parser = humantime::parse_duration)]
    clock_skew: Duration,
    /// Serve a development STS at /sts/STSService/vsphere.local that signs
    /// bearer tokens for the users above with a key made at start (trusted
    /// for SIGN logins). pyVmomi reaches it over plain http only at
    /// http://localhost:1080 (--listen 127.0.0.1:1080), otherwise use --tls.
    #[arg(long)]
    dev_sts: bool,
    /// Serve HTTPS (rustls) with a self-signed certificate made at start,
    /// unless --tls-cert and --tls-key are given.
    #[arg(long)]
    tls: bool,
    /// The TLS certificate chain (PEM); implies --tls.
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The TLS private key (PEM); implies --tls.
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Keep sessions and tasks in the Redis at URL (e.g. redis://127.0.0.1:6379),
    /// shared by every instance given the same URL. Needs `--features redis`.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

impl Args {
    fn saml(&self) -> bool {
        self.dev_sts || !self.saml_certs.is_empty()
    }

    fn tls(&self) -> bool {
        self.tls || self.tls_cert.is_some()
    }
}

fn users(args: &Args) -> Result<(UserDirectory, Option<String>), Box<dyn std::error::Error>> {
    let mut directory = match &args.users_file {
        Some(path) => UserDirectory::from_file(path)?.with_cost(HashCost::default()),
        None => UserDirectory::new(),
    };
    for user in &args.users {
        let (name, password) = user.split_once(':').ok_or("--user takes NAME:PASSWORD")?;
        directory = directory.with_user(name, password)?;
    }
    if args.users.is_empty() && args.users_file.is_none() {
        let password = random_password()?;
        return Ok((directory.with_user(DEMO_USER, &password)?, Some(password)));
    }
    Ok((directory, None))
}

fn random_password() -> Result<String, Box<dyn std::error::Error>> {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes.iter().map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()])).collect())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .init();
    let args = Args::parse();
    let (users, demo_password) = users(&args)?;
    let policy = ExpiryPolicy::default().with_idle_timeout(args.idle_timeout).with_max_lifetime(args.max_lifetime);
    let (listener, address) = app::bind(args.listen).await?;
    if !args.saml() && !args.tls() && args.redis.is_none() {
        let cis = Cis::in_memory(users, CisConfig { policy, clock: Arc::new(SystemClock), ..CisConfig::default() });
        greet(&format!("http://{address}"), demo_password.as_deref());
        app::serve(listener, cis, shutdown()).await;
        return Ok(());
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(tls::Tls::from_files(cert, key)?),
        _ if args.tls => Some(tls::Tls::self_signed(vec!["localhost".into(), address.ip().to_string()])?),
        _ => None,
    };
    let base = format!("{}://{address}", if tls.is_some() { "https" } else { "http" });
    let clock: SharedClock = Arc::new(SystemClock);
    let throttle = LoginThrottle::new(ThrottlePolicy::default(), Arc::clone(&clock));
    let passwords = Arc::new(PasswordAuthenticator::new(users).with_throttle(throttle));
    greet(&base, demo_password.as_deref());
    if let Some(tls) = &tls {
        println!("TLS certificate (self-signed unless --tls-cert):\n{}", tls.certificate_pem);
    }
    let server = Server { listener, tls: tls.map(|tls| tls.acceptor), passwords, clock, base, address };
    #[cfg(feature = "redis")]
    if let Some(url) = &args.redis {
        let (store, tasks) = app::redis_stores(url, policy, &server.clock)?;
        match store.ping().await {
            Ok(()) => println!("Sessions and tasks in Redis, shared by every instance given the same --redis URL"),
            Err(error) => println!("Redis does not answer yet ({error}): requests get 503 until it does"),
        }
        tokio::spawn(app::purge_expired_every_minute(store.clone()));
        return server.run(&args, store, tasks).await;
    }
    #[cfg(not(feature = "redis"))]
    if args.redis.is_some() {
        return Err("--redis needs the redis feature: cargo run --features redis --example server".into());
    }
    let defaults = CisConfig::default();
    let store = MemoryStore::builder()
        .policy(policy)
        .clock(Arc::clone(&server.clock))
        .max_sessions(defaults.max_sessions)
        .max_sessions_per_user(defaults.max_sessions_per_user)
        .build();
    let tasks = app::demo_tasks(&server.clock);
    server.run(&args, store, tasks).await
}

/// Everything but the stores.
struct Server {
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    passwords: Arc<PasswordAuthenticator>,
    clock: SharedClock,
    base: String,
    address: SocketAddr,
}

impl Server {
    /// Serves with password logins (and SAML ones when asked) over `store`
    /// and `tasks` until Ctrl-C.
    #[cfg_attr(not(feature = "saml"), allow(unused_variables))]
    async fn run<St: SessionStore, T: TaskStore>(
        self,
        args: &Args,
        store: St,
        tasks: TaskManager<T>,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let Server { listener, tls, passwords, clock, base, address } = self;
        #[cfg(feature = "saml")]
        if args.saml() {
            let (authenticator, routes) = saml(args, passwords, &clock, &base, address)?;
            let cis = Cis::new(store, authenticator, clock);
            app::serve_app(listener, tls, app::application_with(&cis, tasks, routes), shutdown()).await;
            return Ok(());
        }
        #[cfg(not(feature = "saml"))]
        if args.saml() {
            return Err(
                "--saml-cert and --dev-sts need the saml feature: cargo run --features saml --example server".into()
            );
        }
        let cis = Cis::new(store, passwords, clock);
        app::serve_app(listener, tls, app::application(&cis, tasks), shutdown()).await;
        Ok(())
    }
}

/// Password and SAML logins.
#[cfg(feature = "saml")]
type SamlLogin =
    tower_cis::auth::CompositeAuthenticator<Arc<PasswordAuthenticator>, tower_cis::auth::saml::SamlAuthenticator>;

/// The SAML verifier (pinned certificates, the dev STS's too) beside password
/// login, and the dev STS's route when asked for.
#[cfg(feature = "saml")]
fn saml(
    args: &Args,
    passwords: Arc<PasswordAuthenticator>,
    clock: &SharedClock,
    base: &str,
    address: SocketAddr,
) -> Result<(SamlLogin, axum::Router), Box<dyn std::error::Error>> {
    use tower_cis::auth::CompositeAuthenticator;
    use tower_cis::auth::saml::{SamlAuthenticator, SamlVerifier};
    let mut verifier = SamlVerifier::new().with_clock(Arc::clone(clock)).with_clock_skew(args.clock_skew);
    for path in &args.saml_certs {
        let pem = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        verifier = verifier.with_trusted_certificates_pem(&pem).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    if let Some(issuer) = &args.saml_issuer {
        verifier = verifier.with_issuer(issuer.clone());
    }
    let mut routes = axum::Router::new();
    if args.dev_sts {
        let issuer = args.saml_issuer.clone().unwrap_or_else(|| format!("{base}/websso/SAML2/Metadata/vsphere.local"));
        let sts = sts::DevSts::generate(Arc::clone(&passwords), Arc::clone(clock), issuer)?;
        verifier = verifier.with_trusted_certificates_pem(sts.certificate_pem())?;
        println!("Development STS: {base}{}", sts::STS_PATH);
        println!("STS signing certificate (trusted for SIGN logins):\n{}", sts.certificate_pem());
        if base.starts_with("http:") && !(address.ip().is_loopback() && address.port() == 1080) {
            println!(
                "Note: pyVmomi refuses a plain-http STS except at http://{}; use --listen 127.0.0.1:1080 or --tls",
                sts::PYVMOMI_PLAIN_HTTP_ADDRESS
            );
        }
        routes = Arc::new(sts).router();
    }
    println!("SAML logins: POST {base}/api/session with Authorization: SIGN token=\"<base64(gzip(assertion))>\"");
    Ok((CompositeAuthenticator::new(passwords, SamlAuthenticator::new(verifier)), routes))
}

fn greet(base: &str, demo_password: Option<&str>) {
    println!("tower-cis example server listening on {base}");
    let insecure = if base.starts_with("https") { "-k " } else { "" };
    match demo_password {
        Some(password) => {
            println!("Demo user {DEMO_USER}, password {password}");
            println!("Log in:");
            println!("  curl {insecure}-i -X POST -u '{DEMO_USER}:{password}' {base}/api/session");
        }
        None => {
            println!("Log in:");
            println!("  curl {insecure}-i -X POST -u 'NAME:PASSWORD' {base}/api/session");
        }
    }
    println!("Then use the id it returns:");
    println!("  curl {insecure}-H 'vmware-api-session-id: ID' {base}/api/session");
    println!("  curl {insecure}-H 'vmware-api-session-id: ID' {base}/api/demo/whoami");
    println!("  curl {insecure}-X DELETE -H 'vmware-api-session-id: ID' {base}/api/session");
}

/// Completes at the first Ctrl-C; a second one exits at once.
async fn shutdown() {
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
    tracing::info!("Ctrl-C: no new connections; press Ctrl-C again to stop at once");
    tokio::spawn(async {
        let _ = tokio::signal::ctrl_c().await;
        std::process::exit(130);
    });
}
