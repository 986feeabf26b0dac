//! The tower-cis example server: vCenter's cis Session service with password
//! login, sessions in memory, and demo endpoints behind the session layer.
//!
//! `cargo run --example server -- --help` lists the flags; README.md explains them.

mod app;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use tower_cis::auth::{HashCost, UserDirectory};
use tower_cis::{Cis, CisConfig, ExpiryPolicy, SystemClock};

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
    let cis = Cis::in_memory(users, CisConfig { policy, clock: Arc::new(SystemClock), ..CisConfig::default() });
    let (listener, address) = app::bind(args.listen).await?;

    println!("tower-cis example server listening on http://{address}");
    match &demo_password {
        Some(password) => {
            println!("Demo user {DEMO_USER}, password {password}");
            println!("Log in:");
            println!("  curl -i -X POST -u '{DEMO_USER}:{password}' http://{address}/api/session");
        }
        None => {
            println!("Log in:");
            println!("  curl -i -X POST -u 'NAME:PASSWORD' http://{address}/api/session");
        }
    }
    println!("Then use the id it returns:");
    println!("  curl -H 'vmware-api-session-id: ID' http://{address}/api/session");
    println!("  curl -H 'vmware-api-session-id: ID' http://{address}/api/demo/whoami");
    println!("  curl -X DELETE -H 'vmware-api-session-id: ID' http://{address}/api/session");

    let shutdown = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("Ctrl-C: no new connections; press Ctrl-C again to stop at once");
        tokio::spawn(async {
            let _ = tokio::signal::ctrl_c().await;
            std::process::exit(130);
        });
    };
    app::serve(listener, cis, shutdown).await;
    Ok(())
}
