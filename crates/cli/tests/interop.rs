//! Google's Python client libraries (google-auth, requests) against the real platform.

mod common;

use common::{python, script, Platform};

#[test]
fn google_auth_refreshes_and_calls_the_api() {
    let p = Platform::start();
    let refresh = p.owner_refresh_token();
    let out = std::process::Command::new(python())
        .arg(script("iam_interop.py"))
        .args([&p.api, &refresh, "local-project"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "interop script failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("interop ok"));
}

#[test]
fn google_cloud_run_client_manages_services_over_rest() {
    let p = Platform::start();
    let refresh = p.owner_refresh_token();
    let out = std::process::Command::new(python())
        .arg(script("run_interop.py"))
        .args([&p.api, &refresh, "local-project", "us-central1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "run interop failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("run interop ok"));
}
