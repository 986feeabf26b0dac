//! VMware's official Python SDK, installed from PyPI into a virtual
//! environment under `target/` on first use, pinned to the version whose wire
//! format the spec captured.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

const SDK: [&str; 2] = ["vmware-vapi-runtime==9.1.1.0", "vmware-vapi-common-client==9.1.1.0"];

fn target_dir() -> PathBuf {
    // Tests run from target/<profile>/deps/<binary>.
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

/// The Python of the virtual environment with the SDK, made on first use.
/// Installing needs PyPI; a failure fails the test with pip's output.
pub fn sdk_python() -> PathBuf {
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

/// A script under tests/python/.
pub fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python").join(name)
}

/// Runs `script` with `args` in the SDK's Python; panics with its output
/// unless it succeeds and prints `SDK checks passed`.
pub async fn run_script(script: &Path, args: &[String]) {
    let python = tokio::task::spawn_blocking(sdk_python).await.expect("venv set-up panicked");
    let output = tokio::process::Command::new(&python)
        .arg(script)
        .args(args)
        .env_remove("REQUESTS_CA_BUNDLE")
        .output()
        .await
        .expect("could not run the SDK script");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success() && stdout.contains("SDK checks passed"),
        "the SDK script failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
