//! VMware's official Python SDK (from PyPI, unmodified) against the example
//! server: login, session info, tasks get/list/cancel, logout.

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;
mod sdk_support;

use std::sync::Arc;

use tower_cis::auth::{HashCost, UserDirectory};
use tower_cis::{Cis, CisConfig, SystemClock};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_logs_in_reads_its_session_manages_tasks_and_logs_out() {
    let users = UserDirectory::new()
        .with_cost(HashCost::insecure_fast_for_tests())
        .with_user("administrator@vsphere.local", "VMware1!")
        .unwrap();
    let cis = Cis::in_memory(users, CisConfig { clock: Arc::new(SystemClock), ..CisConfig::default() });
    let (listener, address) = app::bind(([127, 0, 0, 1], 0).into()).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app::serve(listener, cis, async {
        let _ = stopped.await;
    }));
    let args = [format!("http://{address}"), "administrator@vsphere.local".into(), "VMware1!".into()];
    sdk_support::run_script(&sdk_support::script("sdk_session_tasks.py"), &args).await;
    let _ = stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
}
