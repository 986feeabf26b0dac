//! VMware's official Python SDK creates a session with a SAML bearer token
//! (the `saml_bearer_token` security context of JSON-RPC).

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;
mod saml_support;
mod sdk_support;

use std::time::Duration;

use saml_support::{ADMIN, T0, Token};
use tower_cis::ManualClock;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_logs_in_with_a_saml_bearer_token() {
    let clock = ManualClock::new(T0);
    let cis = saml_support::cis(saml_support::verifier(&clock), &clock, Duration::from_secs(3600));
    let application = app::application(&cis, app::demo_tasks(cis.clock()));
    let (listener, address) = app::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::serve_app(listener, None, application, async {
        let _ = stopped.await;
    }));
    let token_file = std::env::temp_dir().join(format!("tower-cis-sdk-token-{}.xml", std::process::id()));
    std::fs::write(&token_file, Token::default().signed()).unwrap();
    let args = [format!("http://{address}"), token_file.display().to_string(), ADMIN.to_owned()];
    sdk_support::run_script(&sdk_support::script("sdk_saml_bearer.py"), &args).await;
    let _ = std::fs::remove_file(&token_file);
    let _ = stop.send(());
    let _ = tokio::time::timeout(Duration::from_secs(10), server).await;
}
