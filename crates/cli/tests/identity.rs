//! Runtime identity: ID tokens, impersonation, the metadata server through `gatehouse exec`, key rotation, and the
//! refusal of key files — checked with google-auth and PyJWT from pinned versions.

mod common;

use common::{http, python, script, Platform};
use serde_json::Value;
use std::process::Command;

const SA: &str = "caller-sa@local-project.iam.gserviceaccount.com";
const AUD: &str = "https://hello-abc123-uc.a.run.app";

fn setup() -> Platform {
    let p = Platform::start();
    p.ok(&["iam", "service-accounts", "create", "caller-sa", "--display-name=Caller"]);
    p
}

fn exec_python(p: &Platform, args: &[&str]) -> common::Run {
    let py = python();
    let mut all = vec!["exec", &format!("--impersonate-service-account={SA}"), "--", py.to_str().unwrap()]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
    all.extend(args.iter().map(|a| a.to_string()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    p.run(&refs)
}

fn decode_claims(token: &str) -> Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[test]
fn impersonation_needs_token_creator_and_names_the_permission() {
    let p = setup();
    // Not even the project owner may mint tokens as an account without an explicit grant.
    let e = p.fail(&["auth", "print-identity-token", &format!("--impersonate-service-account={SA}"), "--audiences=x"]);
    assert!(e.contains("iam.serviceAccounts.getOpenIdToken"), "{e}");
    let r = p.run(&["exec", &format!("--impersonate-service-account={SA}"), "--", "true"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("iam.serviceAccounts.getOpenIdToken"), "{}", r.stderr);
    let e = p.fail(&["auth", "print-access-token", &format!("--impersonate-service-account={SA}")]);
    assert!(e.contains("iam.serviceAccounts.getAccessToken"), "{e}");

    p.let_owner_impersonate(SA);
    let token = p.ok(&[
        "auth",
        "print-identity-token",
        &format!("--impersonate-service-account={SA}"),
        &format!("--audiences={AUD}"),
        "--include-email",
    ]);
    let claims = decode_claims(token.trim());
    assert_eq!(claims["aud"], AUD);
    assert_eq!(claims["email"], SA);
    assert_eq!(claims["iss"], "https://accounts.google.com");
    let sa = p.json(&["iam", "service-accounts", "describe", SA]);
    assert_eq!(claims["sub"], sa["uniqueId"]);
    assert_eq!(claims["azp"], sa["uniqueId"]);
    let without_email = p.ok(&[
        "auth",
        "print-identity-token",
        &format!("--impersonate-service-account={SA}"),
        &format!("--audiences={AUD}"),
    ]);
    assert!(decode_claims(without_email.trim()).get("email").is_none());

    // The exit status of the command is exec's.
    let r = p.run(&["exec", &format!("--impersonate-service-account={SA}"), "--", "sh", "-c", "exit 7"]);
    assert_eq!(r.code, 7, "{}", r.stderr);

    // The REST call exactly as Google's docs write it (`includeEmail` as the string "true", as google-auth sends it).
    let api = p.daemon_json()["api"].as_str().unwrap().to_owned();
    let url = format!("{api}/v1/projects/-/serviceAccounts/{SA}:generateIdToken");
    let r = http()
        .post(&url)
        .bearer_auth(p.token())
        .header("content-type", "application/json")
        .body(format!(r#"{{"audience":"{AUD}","includeEmail":"true"}}"#))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().unwrap();
    assert_eq!(decode_claims(v["token"].as_str().unwrap())["email"], SA);
    let r =
        http().post(&url).bearer_auth(p.token()).body(format!(r#"{{"audience":"{AUD}","includeEmail":"yes"}}"#)).send();
    assert_eq!(r.unwrap().status(), 400, "only true and false, as text or not");
    // The current reference's `organizationNumberIncluded` is taken (projects here are in no organization).
    let body = format!(r#"{{"audience":"{AUD}","organizationNumberIncluded":true}}"#);
    assert_eq!(http().post(&url).bearer_auth(p.token()).body(body).send().unwrap().status(), 200);
    let e =
        p.fail(&["auth", "print-identity-token", &format!("--impersonate-service-account={SA}"), "--audiences=a,b"]);
    assert!(e.contains("only one audience can be specified"), "{e}");
    // Which of their own permissions hold on the account: anyone may ask, as on Google.
    p.ok(&["auth", "login", "nobody@example.com"]);
    let nobody = p.ok(&["auth", "print-access-token", "--account=nobody@example.com"]);
    let r = http()
        .post(format!("{api}/v1/projects/local-project/serviceAccounts/{SA}:testIamPermissions"))
        .bearer_auth(nobody.trim())
        .json(&serde_json::json!({"permissions": ["iam.serviceAccounts.actAs"]}))
        .send()
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().unwrap(), serde_json::json!({}));
}

#[test]
fn google_auth_runs_as_the_service_account_under_exec() {
    let p = setup();
    p.let_owner_impersonate(SA);
    let info = p.daemon_json();
    let (jwks, certs) = (info["jwks"].as_str().unwrap(), info["certs"].as_str().unwrap());
    let args = |expect: &'static str| {
        [
            script("identity_interop.py").to_str().unwrap().to_owned(),
            AUD.into(),
            jwks.into(),
            certs.into(),
            p.api.clone(),
            SA.into(),
            "local-project".into(),
            expect.into(),
        ]
    };
    // The account holds no role yet: listing service accounts is denied.
    let a = args("denied");
    let r = exec_python(&p, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("identity ok"));
    // Once it may, the same code lists them.
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/iam.serviceAccountViewer",
    ]);
    let a = args("allowed");
    let r = exec_python(&p, &a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);

    // Every mint is in the audit log, by the caller, for the account.
    let mints = p.json(&["logging", "read", "protoPayload.methodName=\"GenerateAccessToken\""]);
    assert!(!mints.as_array().unwrap().is_empty());
    assert_eq!(mints[0]["protoPayload"]["authenticationInfo"]["principalEmail"], "owner@localhost");
}

#[test]
fn metadata_server_refuses_what_gce_refuses() {
    let p = setup();
    p.let_owner_impersonate(SA);
    let s = script("metadata_contract.py");
    let r = exec_python(&p, &[s.to_str().unwrap()]);
    assert_eq!(r.code, 0, "stdout: {}\nstderr: {}", r.stdout, r.stderr);
    assert!(r.stdout.contains("metadata ok"));
}

#[test]
fn rotation_keeps_earlier_tokens_valid_and_publishes_both_keys() {
    let p = setup();
    p.let_owner_impersonate(SA);
    let mint = || {
        p.ok(&[
            "auth",
            "print-identity-token",
            &format!("--impersonate-service-account={SA}"),
            &format!("--audiences={AUD}"),
        ])
        .trim()
        .to_owned()
    };
    let before = mint();
    let jwks_url = p.daemon_json()["jwks"].as_str().unwrap().to_owned();
    let keys = |url: &str| -> Vec<String> {
        let v: Value = http().get(url).send().unwrap().json().unwrap();
        v["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
    };
    assert_eq!(keys(&jwks_url).len(), 1);
    p.ok(&["keys", "rotate"]);
    let after = mint();
    let published = keys(&jwks_url);
    assert_eq!(published.len(), 2, "{published:?}");
    let kid = |t: &str| {
        use base64::Engine;
        let h: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(t.split('.').next().unwrap()).unwrap(),
        )
        .unwrap();
        h["kid"].as_str().unwrap().to_owned()
    };
    assert_ne!(kid(&before), kid(&after));
    assert!(published.contains(&kid(&before)) && published.contains(&kid(&after)));
    let certs = p.daemon_json()["certs"].as_str().unwrap().to_owned();
    let out = Command::new(python())
        .arg(script("verify_token.py"))
        .args([AUD, &jwks_url, &certs, &before, &after])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Survives a restart: the same keys are served.
    let mut p = p;
    p.stop();
    p.boot(&[]);
    assert_eq!(keys(p.daemon_json()["jwks"].as_str().unwrap()), published);
    let mode = std::fs::metadata(p.home.path().join("signing-keys.json"))
        .map(|m| std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o777)
        .unwrap();
    assert_eq!(mode, 0o600);
}

#[test]
fn service_account_tokens_are_authorized_through_iam() {
    let p = setup();
    p.let_owner_impersonate(SA);
    let imp = format!("--impersonate-service-account={SA}");
    let e = p.fail(&["projects", "get-iam-policy", "local-project", &imp]);
    assert!(e.contains("resourcemanager.projects.getIamPolicy"), "{e}");
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/viewer",
    ]);
    p.ok(&["projects", "get-iam-policy", "local-project", &imp]);
    // A disabled account's tokens stop working at once, even one the API has just authenticated (and cached).
    let token = p.ok(&["auth", "print-access-token", &imp]).trim().to_owned();
    let ask =
        || http().post(format!("{}/v1/projects/local-project:getIamPolicy", p.api)).bearer_auth(&token).send().unwrap();
    assert_eq!(ask().status(), 200);
    assert_eq!(ask().status(), 200);
    // Its ID tokens too, at Cloud Run's front door, though one was minted before and has not expired.
    p.ok(&["run", "deploy", "hello", "--image=us-docker.pkg.dev/cloudrun/container/hello", "--region=us-central1"]);
    let url = common::url(&p, "hello");
    p.ok(&[
        "run",
        "services",
        "add-iam-policy-binding",
        "hello",
        "--region=us-central1",
        &format!("--member=serviceAccount:{SA}"),
        "--role=roles/run.invoker",
    ]);
    let id = common::sa_token(&p, SA, &url);
    // Twice on one connection: the second request reuses the first admission, until the account changes.
    let client = http();
    let invoke = || client.get(&url).bearer_auth(&id).send().unwrap().status().as_u16();
    assert_eq!((invoke(), invoke()), (200, 200));
    p.ok(&["iam", "service-accounts", "disable", SA]);
    assert_eq!(ask().status(), 401);
    assert_eq!(invoke(), 403, "a disabled account's unexpired ID token acts for nobody");
    // The troubleshooter says the same, and why.
    let why = p.json(&[
        "policy-troubleshoot",
        "invoke",
        "hello",
        "--region=us-central1",
        &format!("--principal-email={SA}"),
        &format!("--audience={url}"),
    ]);
    assert_eq!(why["status"], 403, "{why}");
    assert!(why.to_string().contains("is disabled: its tokens act for nobody"), "{why}");
    p.ok(&["iam", "service-accounts", "enable", SA]);
    assert_eq!(invoke(), 200);
}

#[test]
fn key_files_are_refused_by_the_constraint() {
    let p = setup();
    let out = p.home.path().join("key.json");
    let e =
        p.fail(&["iam", "service-accounts", "keys", "create", out.to_str().unwrap(), &format!("--iam-account={SA}")]);
    assert!(e.contains("constraints/iam.disableServiceAccountKeyCreation") && e.contains("FAILED_PRECONDITION"), "{e}");
    assert!(!out.exists(), "a key file was written");
}

#[test]
fn users_get_id_tokens_for_gcloud_and_discovery_points_at_the_keys() {
    let p = setup();
    let token = p.ok(&["auth", "print-identity-token"]);
    let claims = decode_claims(token.trim());
    assert_eq!(claims["email"], "owner@localhost");
    assert_eq!(claims["aud"], "32555940559.apps.googleusercontent.com");
    let sub = claims["sub"].as_str().unwrap().to_owned();
    assert!(sub.chars().all(|c| c.is_ascii_digit()) && sub.len() == 21, "{sub}");
    let again = decode_claims(p.ok(&["auth", "print-identity-token"]).trim());
    assert_eq!(again["sub"], sub.as_str(), "a user's sub must be stable");
    let scoped = decode_claims(p.ok(&["auth", "print-identity-token", "--audiences=https://x.example"]).trim());
    assert_eq!(scoped["aud"], "https://x.example");
    assert_eq!(scoped["sub"], sub.as_str());
    // The account as gcloud takes it: positional, or the global --account.
    p.ok(&["auth", "login", "bob@example.com"]);
    p.ok(&["config", "set", "account", "owner@localhost"]);
    for args in [
        ["auth", "print-identity-token", "bob@example.com"],
        ["auth", "print-identity-token", "--account=bob@example.com"],
    ] {
        assert_eq!(decode_claims(p.ok(&args).trim())["email"], "bob@example.com", "{args:?}");
    }
    assert!(p.ok(&["auth", "print-access-token", "--account=bob@example.com"]).starts_with("ya29."));
    let e = p.fail(&["auth", "print-identity-token", "--account=nobody@example.com"]);
    assert!(e.contains("auth login nobody@example.com"), "{e}");
    // An access token for an empty scope is refused, as Google refuses it.
    p.let_owner_impersonate(SA);
    let url = format!("{}/v1/projects/-/serviceAccounts/{SA}:generateAccessToken", p.api);
    let r = http().post(url).bearer_auth(p.token()).json(&serde_json::json!({"scope": [""]})).send().unwrap();
    assert_eq!(r.status(), 400);
    assert!(r.text().unwrap().contains("empty scope"));

    let doc: Value = http().get(format!("{}/.well-known/openid-configuration", p.api)).send().unwrap().json().unwrap();
    assert_eq!(doc["issuer"], "https://accounts.google.com");
    assert_eq!(doc["jwks_uri"], p.daemon_json()["jwks"]);
    assert_eq!(doc["id_token_signing_alg_values_supported"], serde_json::json!(["RS256"]));
}

#[test]
fn keys_rotate_on_schedule() {
    let p = Platform::start_with(&["--key-rotation=2s"]);
    let jwks_url = p.daemon_json()["jwks"].as_str().unwrap().to_owned();
    let count = || {
        let v: Value = http().get(&jwks_url).send().unwrap().json().unwrap();
        v["keys"].as_array().unwrap().len()
    };
    assert_eq!(count(), 1);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while count() < 2 {
        assert!(std::time::Instant::now() < deadline, "no scheduled rotation within 20 s at a 2 s period");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let e = p.run(&["up", "--key-rotation=0s"]);
    assert!(e.stderr.contains("longer than zero"), "{}", e.stderr);
}
