//! VMware's official Python SDK (from PyPI, unmodified) against the example
//! server: login, session info, tasks get/list/cancel, logout.
//!
//! The SDK is installed by this test into a virtual environment under
//! `target/`, pinned to the version whose wire format the spec captured.

#[path = "../examples/server/app.rs"]
#[allow(dead_code)]
mod app;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tower_cis::auth::{HashCost, UserDirectory};
use tower_cis::{Cis, CisConfig, SystemClock};

const SDK: [&str; 2] = ["vmware-vapi-runtime==9.1.1.0", "vmware-vapi-common-client==9.1.1.0"];

fn target_dir() -> PathBuf {
    // tests run from target/<profile>/deps/<binary>
    let exe = std::env::current_exe().expect("no test binary path");
    exe.ancestors().nth(3).expect("the test binary is not under target/").to_path_buf()
}

fn run(command: &mut Command) {
    let output = command.output().unwrap_or_else(|e| panic!("could not run {command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The virtual environment with the SDK, made on first use.
fn sdk_python() -> PathBuf {
    let venv = target_dir().join("sdk-venv");
    let python = venv.join("bin/python");
    let marker = venv.join(format!("installed-{}", SDK.join("+")));
    if !marker.exists() {
        run(Command::new("python3").args(["-m", "venv", "--clear"]).arg(&venv));
        run(Command::new(&python).args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check"]).args(SDK));
        std::fs::write(&marker, b"").expect("could not mark the venv");
    }
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_official_python_sdk_logs_in_reads_its_session_manages_tasks_and_logs_out() {
    let python = tokio::task::spawn_blocking(sdk_python).await.unwrap();
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
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_session_tasks.py");
    let output = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("http://{address}"))
        .args(["administrator@vsphere.local", "VMware1!"])
        .env_remove("REQUESTS_CA_BUNDLE")
        .output()
        .await
        .expect("could not run the SDK script");
    let _ = stop.send(());
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), server).await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("SDK checks passed"),
        "the SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
