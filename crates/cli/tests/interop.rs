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

#[test]
fn google_cloud_secret_manager_client_round_trips_over_rest() {
    let p = Platform::start();
    p.ok(&["auth", "login", "reader@example.com"]);
    let text = std::fs::read_to_string(p.home.path().join("credentials.json")).unwrap();
    let creds: serde_json::Value = serde_json::from_str(&text).unwrap();
    let other = creds["reader@example.com"]["refresh_token"].as_str().unwrap().to_owned();
    let out = std::process::Command::new(python())
        .arg(script("secretmanager_interop.py"))
        .args([&p.api, &p.owner_refresh_token(), &other, "reader@example.com", "local-project"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "secret manager interop failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("secretmanager interop ok"));
}
