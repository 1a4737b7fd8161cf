//! Google's Python client libraries (google-auth, requests) against the real platform.

mod common;

use common::Platform;
use std::path::PathBuf;

fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let python = std::env::var_os("GATEHOUSE_TEST_PYTHON").map(PathBuf::from).unwrap_or(venv);
    assert!(
        python.exists(),
        "interop tests need the pinned Python clients: run the README's test command (scripts/test), which creates .venv, or set GATEHOUSE_TEST_PYTHON"
    );
    python
}

#[test]
fn google_auth_refreshes_and_calls_the_api() {
    let p = Platform::start();
    let creds: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(p.home.path().join("credentials.json")).unwrap()).unwrap();
    let refresh = creds["owner@localhost"]["refresh_token"].as_str().expect("owner credential").to_owned();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python/iam_interop.py");
    let out =
        std::process::Command::new(python()).arg(script).args([&p.api, &refresh, "local-project"]).output().unwrap();
    assert!(
        out.status.success(),
        "interop script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interop ok"));
}
