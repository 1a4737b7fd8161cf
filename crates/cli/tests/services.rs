//! Services and the front door, from a fresh home with commands as in Google's docs: deploy, invoke through the
//! gateway with and without tokens, service-to-service calls with unmodified google-auth code, scaling.

mod common;

use common::{get, http, python, sa_token, script, url, user_token, Platform};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const HELLO: &str = "--image=us-docker.pkg.dev/cloudrun/container/hello";
const CALLER: &str = "caller-sa@local-project.iam.gserviceaccount.com";

#[test]
fn public_and_private_services_answer_as_cloud_run() {
    let p = Platform::start();
    p.ok(&["run", "deploy", "my-public-api", HELLO, "--region=us-central1", "--allow-unauthenticated"]);
    let public = url(&p, "my-public-api");
    assert!(public.starts_with("http://127.0.0.1:"), "{public}");
    let (status, body) = get(&public, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("my-public-api"), "{body}");

    p.ok(&["run", "deploy", "my-private-api", HELLO, "--region=us-central1", "--no-allow-unauthenticated"]);
    let private = url(&p, "my-private-api");
    let (status, body) = get(&private, None);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("The request was not authenticated"), "{body}");
    assert_eq!(get(&private, Some(&user_token(&p, &private))).0, 200);
    assert_eq!(get(&format!("{private}/"), Some(&user_token(&p, &format!("{private}/")))).0, 200);
    let (status, body) = get(&private, Some(&user_token(&p, &format!("{private}/api/v1/endpoint"))));
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("401 Unauthorized"), "{body}");

    p.ok(&["iam", "service-accounts", "create", "caller-sa"]);
    p.ok(&[
        "iam",
        "service-accounts",
        "add-iam-policy-binding",
        CALLER,
        "--member=user:owner@localhost",
        "--role=roles/iam.serviceAccountTokenCreator",
    ]);
    let token = sa_token(&p, CALLER, &private);
    let (status, body) = get(&private, Some(&token));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("does not have permission to get URL"), "{body}");
    p.ok(&[
        "run",
        "services",
        "add-iam-policy-binding",
        "my-private-api",
        "--region=us-central1",
        &format!("--member=serviceAccount:{CALLER}"),
        "--role=roles/run.invoker",
    ]);
    assert_eq!(get(&private, Some(&token)).0, 200);

    // X-Serverless-Authorization is checked instead of Authorization and reaches the app without its signature.
    let resp = http()
        .get(format!("{private}/whoami"))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .header("x-serverless-authorization", format!("Bearer {token}"))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let who: Value = resp.json().unwrap();
    let sa = p.json(&["iam", "service-accounts", "describe", CALLER]);
    assert_eq!(who["serverlessAuthorization"]["sub"], sa["uniqueId"], "{who}");
    assert_eq!(who["serverlessAuthorization"]["aud"], private.as_str(), "{who}");
    assert_eq!(who["signatureRemoved"]["serverlessAuthorization"], true, "{who}");
    assert_eq!(who["serviceAccount"], p.compute_sa(), "{who}");

    // The denial above is in the audit log with the decision trace.
    let denied = p.json(&[
        "logging",
        "read",
        "protoPayload.authorizationInfo.permission=\"run.routes.invoke\" AND severity=ERROR",
    ]);
    assert!(!denied.as_array().unwrap().is_empty(), "no audited invocation denial");
    let logs = p.ok(&["run", "services", "logs", "read", "my-private-api", "--region=us-central1"]);
    assert!(logs.contains("403") && logs.contains("200"), "{logs}");
}

#[test]
fn deploying_as_an_account_you_cannot_act_as_is_refused() {
    let p = Platform::start();
    p.ok(&["iam", "service-accounts", "create", "caller-sa"]);
    p.ok(&[
        "projects",
        "add-iam-policy-binding",
        "local-project",
        "--member=user:dev@example.com",
        "--role=roles/run.developer",
    ]);
    p.ok(&["auth", "login", "dev@example.com"]);
    let e = p.fail(&["run", "deploy", "svc", HELLO, "--region=us-central1", &format!("--service-account={CALLER}")]);
    assert!(e.to_lowercase().contains("iam.serviceaccounts.actas") && e.contains("PERMISSION_DENIED"), "{e}");
    // --allow-unauthenticated without run.services.setIamPolicy: deployed, but left private, and said so.
    p.ok(&["config", "set", "account", "owner@localhost"]);
    p.ok(&[
        "iam",
        "service-accounts",
        "add-iam-policy-binding",
        CALLER,
        "--member=user:dev@example.com",
        "--role=roles/iam.serviceAccountUser",
    ]);
    p.ok(&["config", "set", "account", "dev@example.com"]);
    let r = p.run(&[
        "run",
        "deploy",
        "svc",
        HELLO,
        "--region=us-central1",
        &format!("--service-account={CALLER}"),
        "--allow-unauthenticated",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("left private"), "{}", r.stderr);
    let (status, _) = get(&url(&p, "svc"), None);
    assert_eq!(status, 403);
}

#[test]
fn a_workload_that_never_listens_fails_the_deploy_with_its_logs() {
    let p = Platform::start_with(&["--instance-startup-timeout=2s"]);
    let dir = tempfile::tempdir().unwrap();
    let r = p.run(&[
        "run",
        "deploy",
        "sleepy",
        &format!("--source={}", dir.path().display()),
        "--command=sh",
        "--args=-c,echo warming up the flux capacitor; sleep 600",
        "--region=us-central1",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("is not ready and cannot serve traffic"), "{}", r.stderr);
    assert!(r.stderr.contains("warming up the flux capacitor"), "{}", r.stderr);
    let r = p.run(&[
        "run",
        "deploy",
        "crashy",
        &format!("--source={}", dir.path().display()),
        "--command=sh",
        "--args=-c,echo bad config >&2; exit 3",
        "--region=us-central1",
        "--allow-unauthenticated",
    ]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("bad config"), "{}", r.stderr);
    // As gcloud: the service exists, and --allow-unauthenticated was applied to it though its revision failed.
    let policy = p.json(&["run", "services", "get-iam-policy", "crashy", "--region=us-central1"]);
    assert_eq!(common::members_of(&policy, "roles/run.invoker"), ["allUsers"], "{policy}");
    let e = p.fail(&["run", "deploy", "envy", HELLO, "--set-env-vars=PORT=1", "--region=us-central1"]);
    assert!(e.contains("reserved env names"), "{e}");
}

/// An app that stops listening on `/close` but keeps running: to the gateway it is an instance that has just
/// crashed (nothing accepts on its port) and that the runtime has not seen exit.
const CLOSES_ITS_PORT: &str = r#"
import http.server, os, threading
ME = os.urandom(8).hex().encode()
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ME
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        if self.path == "/close":
            server.socket.close()
            threading.Thread(target=server.shutdown).start()
server = http.server.HTTPServer(("0.0.0.0", int(os.environ["PORT"])), H)
server.serve_forever()
threading.Event().wait()
"#;

#[test]
fn an_instance_that_stops_listening_is_replaced_without_failing_a_request() {
    let p = Platform::start();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("main.py"), CLOSES_ITS_PORT).unwrap();
    p.ok(&[
        "run",
        "deploy",
        "closer",
        &format!("--source={}", dir.path().display()),
        &format!("--command={},main.py", python().display()),
        "--region=us-central1",
        "--allow-unauthenticated",
        "--max-instances=1",
    ]);
    let base = url(&p, "closer");
    let (status, first) = get(&format!("{base}/close"), None);
    assert_eq!(status, 200);
    // The only instance no longer accepts connections and is still running: the next request must not fail.
    let (status, second) = get(&format!("{base}/after"), None);
    assert_eq!(status, 200, "{second}");
    assert_ne!(first, second, "a new instance answered (each instance answers with its own random id)");
    let logs = p.ok(&["run", "services", "logs", "read", "closer", "--region=us-central1", "--limit=50"]);
    assert!(
        logs.contains("refused a connection on port") && logs.contains("taken out of service and stopped"),
        "{logs}"
    );
    assert!(logs.contains("GET /after 200"), "{logs}");
    assert!(!logs.contains(" 503 "), "no request failed: {logs}");
}

/// Children of the daemon running the sample server.
fn sample_instances(daemon_pid: u32) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().chars().all(|c| c.is_ascii_digit()))
        .filter(|e| {
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let cmdline = std::fs::read_to_string(e.path().join("cmdline")).unwrap_or_default();
            status.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == ["PPid:", &daemon_pid.to_string()])
                && cmdline.contains("sample-hello")
        })
        .count()
}

#[test]
fn max_instances_is_never_exceeded_and_idle_services_scale_to_zero() {
    let p = Platform::start_with(&["--instance-idle-timeout=2s"]);
    p.ok(&[
        "run",
        "deploy",
        "slow",
        HELLO,
        "--region=us-central1",
        "--allow-unauthenticated",
        "--max-instances=2",
        "--concurrency=1",
    ]);
    let base = url(&p, "slow");
    let pid = p.daemon_json()["pid"].as_u64().unwrap() as u32;
    let workers: Vec<_> = (0..10)
        .map(|_| {
            let u = format!("{base}/sleep?ms=400");
            std::thread::spawn(move || http().get(u).send().map(|r| r.status().as_u16()).unwrap_or(0))
        })
        .collect();
    let mut peak = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while workers.iter().any(|w| !w.is_finished()) && Instant::now() < deadline {
        peak = peak.max(sample_instances(pid));
        std::thread::sleep(Duration::from_millis(20));
    }
    let statuses: Vec<u16> = workers.into_iter().map(|w| w.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert!(peak <= 2, "{peak} instances ran at once with --max-instances=2");
    assert!(peak >= 1);
    // Idle: back to zero; the next request starts one again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sample_instances(pid) > 0 {
        assert!(Instant::now() < deadline, "the idle service did not scale to zero");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(get(&base, None).0, 200);
    assert_eq!(sample_instances(pid), 1);
}

#[test]
fn service_to_service_with_unmodified_google_auth() {
    let p = Platform::start();
    p.ok(&["iam", "service-accounts", "create", "caller-sa"]);
    p.ok(&["run", "deploy", "target", HELLO, "--region=us-central1"]);
    let target = url(&p, "target");
    let py = python();
    let src = script("s2s");
    p.ok(&[
        "run",
        "deploy",
        "caller",
        &format!("--source={}", src.display()),
        &format!("--command={}", py.display()),
        "--args=main.py",
        &format!("--service-account={CALLER}"),
        "--allow-unauthenticated",
        "--region=us-central1",
    ]);
    let caller = url(&p, "caller");
    let call =
        || -> Value { http().get(format!("{caller}/call")).query(&[("url", &target)]).send().unwrap().json().unwrap() };
    let v = call();
    assert_eq!(v["status"], 403, "{v}");
    p.ok(&[
        "run",
        "services",
        "add-iam-policy-binding",
        "target",
        "--region=us-central1",
        &format!("--member=serviceAccount:{CALLER}"),
        "--role=roles/run.invoker",
    ]);
    let v = call();
    assert_eq!(v["status"], 200, "{v}");
}

#[test]
fn services_proxy_adds_the_callers_token() {
    let p = Platform::start();
    p.ok(&["run", "deploy", "private", HELLO, "--region=us-central1"]);
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = p
        .cmd(&["run", "services", "proxy", "private", "--region=us-central1", &format!("--port={port}")])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        if let Ok(r) = http().get(format!("http://127.0.0.1:{port}/whoami")).send() {
            break r;
        }
        assert!(Instant::now() < deadline, "the proxy did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(answer.status(), 200);
    let who: Value = answer.json().unwrap();
    assert_eq!(who["authorization"]["email"], "owner@localhost", "{who}");
}

#[test]
fn export_then_replace_round_trips_and_describe_shows_plain_env() {
    let p = Platform::start();
    p.ok(&[
        "run",
        "deploy",
        "svc",
        HELLO,
        "--region=us-central1",
        "--set-env-vars=DB_PASSWORD=hunter2,MODE=prod",
        "--max-instances=3",
    ]);
    let described = p.ok(&["run", "services", "describe", "svc", "--region=us-central1"]);
    assert!(described.contains("hunter2"), "describe must show plain env values in full, as Google's console does");
    let export = p.ok(&["run", "services", "describe", "svc", "--region=us-central1", "--format=export"]);
    assert!(!export.contains("status:") && export.contains("serving.knative.dev/v1"), "{export}");
    let file = p.home.path().join("svc.yaml");
    std::fs::write(&file, export.replace("value: prod", "value: staging")).unwrap();
    p.ok(&["run", "services", "replace", file.to_str().unwrap(), "--region=us-central1"]);
    let svc = p.json(&["run", "services", "describe", "svc", "--region=us-central1"]);
    let env = &svc["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env.as_array().unwrap().iter().any(|e| e["name"] == "MODE" && e["value"] == "staging"), "{env}");
    assert_eq!(svc["spec"]["template"]["metadata"]["annotations"]["autoscaling.knative.dev/maxScale"], "3");
    assert!(svc["spec"]["template"]["metadata"]["name"].as_str().unwrap().starts_with("svc-00002-"), "{svc}");
    let revisions = p.json(&["run", "revisions", "list", "--service=svc", "--region=us-central1"]);
    assert_eq!(revisions.as_array().unwrap().len(), 2);
    // Values with commas, with gcloud's alternate delimiter (`gcloud topic escaping`), as Cloud Run's docs show.
    p.ok(&["run", "services", "update", "svc", "--region=us-central1", "--update-env-vars=^@^HOSTS=a,b,c@MODE=x"]);
    let svc = p.json(&["run", "services", "describe", "svc", "--region=us-central1"]);
    let env = &svc["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(env.as_array().unwrap().iter().any(|e| e["name"] == "HOSTS" && e["value"] == "a,b,c"), "{env}");
    assert!(env.as_array().unwrap().iter().any(|e| e["name"] == "MODE" && e["value"] == "x"), "{env}");
    let e = p.fail(&["run", "services", "update", "svc", "--region=us-central1", "--update-env-vars=HOSTS=a,b"]);
    assert!(e.contains("invalid `--update-env-vars` item `b`") && e.contains("^DELIM^"), "{e}");
    // An update that changes nothing is refused, as gcloud does, instead of rolling a new revision.
    let e = p.fail(&["run", "services", "update", "svc", "--region=us-central1"]);
    assert!(e.contains("No configuration change requested"), "{e}");
    assert_eq!(
        p.json(&["run", "revisions", "list", "--service=svc", "--region=us-central1"]).as_array().unwrap().len(),
        3
    );
}

#[test]
fn stopping_up_stops_every_instance() {
    let mut p = Platform::start();
    p.ok(&["run", "deploy", "warm", HELLO, "--region=us-central1", "--allow-unauthenticated", "--min-instances=2"]);
    let pid = p.daemon_json()["pid"].as_u64().unwrap() as u32;
    assert_eq!(get(&url(&p, "warm"), None).0, 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    while sample_instances(pid) < 2 {
        assert!(Instant::now() < deadline, "--min-instances=2 did not keep two instances warm");
        std::thread::sleep(Duration::from_millis(50));
    }
    let children: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.chars().all(|c| c.is_ascii_digit()))
        .filter(|n| {
            let cmd = std::fs::read_to_string(format!("/proc/{n}/cmdline")).unwrap_or_default();
            let status = std::fs::read_to_string(format!("/proc/{n}/status")).unwrap_or_default();
            cmd.contains("sample-hello") && status.contains(&format!("PPid:\t{pid}\n"))
        })
        .collect();
    assert!(p.stop().success());
    for c in children {
        let state = std::fs::read_to_string(format!("/proc/{c}/status")).unwrap_or_default();
        assert!(state.is_empty() || state.contains("State:\tZ"), "instance {c} outlived `up`");
    }
}

#[test]
fn requests_longer_than_the_timeout_get_504() {
    let p = Platform::start();
    p.ok(&["run", "deploy", "quick", HELLO, "--region=us-central1", "--allow-unauthenticated", "--timeout=1"]);
    let base = url(&p, "quick");
    let started = Instant::now();
    let (status, body) = get(&format!("{base}/sleep?ms=5000"), None);
    assert_eq!(status, 504, "{body}");
    assert!(started.elapsed() < Duration::from_secs(4), "the timeout was not enforced");
    assert_eq!(get(&format!("{base}/sleep?ms=10"), None).0, 200);
}

#[test]
fn every_refusal_is_in_the_log_read_right_after_it() {
    let p = Platform::start();
    p.ok(&["run", "deploy", "vault", HELLO, "--region=us-central1", "--no-allow-unauthenticated"]);
    let base = url(&p, "vault");
    // Refusals are answered at once and written in batches behind them; a read of the log waits for those queued
    // before it, so none of these is missing even when the read follows the last refusal immediately.
    const N: usize = 1200;
    let client = http();
    for i in 0..N {
        let status = client.get(format!("{base}/attempt-{i}")).send().unwrap().status();
        assert_eq!(status, 403, "request {i}");
    }
    let filter = "protoPayload.authorizationInfo.permission=\"run.routes.invoke\" AND \
                  protoPayload.resourceName:\"services/vault\"";
    // Without --limit, every matching entry: more than one page (1,000) of them.
    let denied = p.json(&["logging", "read", filter]);
    let paths: Vec<String> = denied
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["protoPayload"]["request"]["path"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(paths.len(), N, "one entry per refusal");
    let seen: std::collections::HashSet<&String> = paths.iter().collect();
    let missing: Vec<usize> = (0..N).filter(|i| !seen.contains(&format!("/attempt-{i}"))).collect();
    assert!(missing.is_empty(), "refusals not in the log: {missing:?}");
    // Newest first by default, as gcloud; --limit across pages.
    assert_eq!(paths[0], format!("/attempt-{}", N - 1));
    let limited = p.json(&["logging", "read", filter, "--limit=1100", "--order=asc"]);
    let limited = limited.as_array().unwrap();
    assert_eq!(limited.len(), 1100);
    assert_eq!(limited[1099]["protoPayload"]["request"]["path"], "/attempt-1099");
}

#[test]
fn long_running_operations_can_be_read_back_as_client_libraries_poll_them() {
    let p = Platform::start();
    let base = format!("{}/v2/projects/local-project/locations/us-central1", p.api);
    let body = serde_json::json!({
        "template": { "containers": [{ "image": "us-docker.pkg.dev/cloudrun/container/hello" }] }
    });
    let op: Value = http()
        .post(format!("{base}/services?serviceId=ops"))
        .bearer_auth(p.token())
        .json(&body)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(op["done"], true, "{op}");
    let name = op["name"].as_str().unwrap().to_string();
    assert!(name.starts_with("projects/local-project/locations/us-central1/operations/"), "{name}");
    let got: Value = http().get(format!("{}/v2/{name}", p.api)).bearer_auth(p.token()).send().unwrap().json().unwrap();
    assert_eq!(got, op, "operations.get answers the operation as it was returned");
    let list: Value = http().get(format!("{base}/operations")).bearer_auth(p.token()).send().unwrap().json().unwrap();
    assert_eq!(list["operations"][0], op);
    let missing = http().get(format!("{base}/operations/0000")).bearer_auth(p.token()).send().unwrap();
    assert_eq!(missing.status(), 404);
    // Reading operations is IAM-checked like the rest: a user without a role is refused.
    p.ok(&["auth", "login", "nobody@example.com"]);
    let nobody = p.ok(&["auth", "print-access-token", "nobody@example.com"]).trim().to_string();
    let refused = http().get(format!("{}/v2/{name}", p.api)).bearer_auth(nobody).send().unwrap();
    assert_eq!(refused.status(), 403);
}

#[test]
fn the_v1_knative_api_reads_and_writes_services_in_knative_shapes() {
    let p = Platform::start();
    p.ok(&["run", "deploy", "kn", "--image=us-docker.pkg.dev/cloudrun/container/hello", "--region=us-central1"]);
    let base = format!("{}/apis/serving.knative.dev/v1/namespaces/local-project/services", p.api);
    let call = |method: reqwest::Method, url: &str, body: Option<&Value>| -> (u16, Value) {
        let mut r = http().request(method, url).bearer_auth(p.token());
        if let Some(b) = body {
            r = r.json(b);
        }
        let resp = r.send().unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    };
    // GET answers what `describe` shows (the same v1 form), also by project number.
    let (code, doc) = call(reqwest::Method::GET, &format!("{base}/kn"), None);
    assert_eq!(code, 200, "{doc}");
    assert_eq!(doc, p.json(&["run", "services", "describe", "kn", "--region=us-central1"]));
    let by_number = format!("{}/apis/serving.knative.dev/v1/namespaces/{}/services/kn", p.api, p.project_number);
    assert_eq!(call(reqwest::Method::GET, &by_number, None).1, doc);
    // PUT replaces the service from its v1 document.
    let mut changed = doc.clone();
    changed["spec"]["template"]["spec"]["containers"][0]["env"] =
        serde_json::json!([{ "name": "GREETING", "value": "hi" }]);
    let (code, put) = call(reqwest::Method::PUT, &format!("{base}/kn"), Some(&changed));
    assert_eq!(code, 200, "{put}");
    assert_eq!(put["kind"], "Service");
    let described = p.json(&["run", "services", "describe", "kn", "--region=us-central1"]);
    assert_eq!(described["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"], "hi");
    // The version it was read at is checked, as Kubernetes does: `changed` was read before that PUT.
    let (code, stale) = call(reqwest::Method::PUT, &format!("{base}/kn"), Some(&changed));
    assert_eq!((code, stale["error"]["status"].as_str()), (409, Some("ABORTED")), "{stale}");
    // Values of the wrong type, and another region, are refused rather than dropped.
    let mut fresh = described.clone();
    fresh["metadata"]["resourceVersion"] = serde_json::json!("");
    for (path, value, why) in [
        ("/spec/template/spec/containers/0/env", serde_json::json!([{"name": "NUM", "value": 5}]), "must be a string"),
        ("/spec/template/spec/timeoutSeconds", serde_json::json!("600"), "must be a whole number"),
        (
            "/spec/template/metadata/annotations",
            serde_json::json!({"autoscaling.knative.dev/maxScale": "lots"}),
            "maxScale",
        ),
        ("/metadata/labels", serde_json::json!({"cloud.googleapis.com/location": "europe-west1"}), "europe-west1"),
    ] {
        let mut bad = fresh.clone();
        *bad.pointer_mut(path).unwrap_or_else(|| panic!("{path} in {fresh}")) = value;
        let (code, err) = call(reqwest::Method::PUT, &format!("{base}/kn"), Some(&bad));
        assert_eq!(code, 400, "{path}: {err}");
        assert!(err.to_string().contains(why), "{path}: {err}");
    }
    // POST creates one; the list holds both; a name that disagrees with the path is refused.
    let mut other = changed.clone();
    other["metadata"]["name"] = serde_json::json!("kn-two");
    let (code, created) = call(reqwest::Method::POST, &base, Some(&other));
    assert_eq!(code, 200, "{created}");
    let (_, list) = call(reqwest::Method::GET, &base, None);
    assert_eq!(list["kind"], "ServiceList");
    let names: Vec<&str> =
        list["items"].as_array().unwrap().iter().filter_map(|i| i["metadata"]["name"].as_str()).collect();
    assert!(names.contains(&"kn") && names.contains(&"kn-two"), "{names:?}");
    let (code, err) = call(reqwest::Method::PUT, &format!("{base}/kn"), Some(&other));
    assert_eq!(code, 400, "{err}");
    assert!(err.to_string().contains("does not match"), "{err}");
    let (code, _) = call(reqwest::Method::POST, &base, Some(&serde_json::json!({ "kind": "Pod" })));
    assert_eq!(code, 400);
    // DELETE answers a Status; the service is gone.
    let (code, status) = call(reqwest::Method::DELETE, &format!("{base}/kn-two"), None);
    assert_eq!((code, status["status"].as_str()), (200, Some("Success")), "{status}");
    assert_eq!(call(reqwest::Method::GET, &format!("{base}/kn-two"), None).0, 404);
}

#[test]
fn revisions_print_in_the_knative_shape_for_one_or_every_service() {
    let p = Platform::start();
    // `svc` and `svc-a`: the revisions of the second start with the first's name.
    p.ok(&["run", "deploy", "svc", HELLO, "--region=us-central1"]);
    p.ok(&["run", "deploy", "svc-a", HELLO, "--region=us-central1"]);
    p.ok(&["run", "services", "update", "svc-a", "--region=us-central1", "--update-env-vars=MODE=x"]);

    // `value(metadata.name)` prints the short names, newest first.
    let names =
        p.ok(&["run", "revisions", "list", "--service=svc-a", "--region=us-central1", "--format=value(metadata.name)"]);
    let names: Vec<&str> = names.lines().collect();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].starts_with("svc-a-00002-") && names[1].starts_with("svc-a-00001-"), "{names:?}");

    // Without --service: every service's revisions, as Knative v1 Revisions.
    let all = p.json(&["run", "revisions", "list", "--region=us-central1"]);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 3, "{all:?}");
    for r in all {
        assert_eq!((r["apiVersion"].as_str(), r["kind"].as_str()), (Some("serving.knative.dev/v1"), Some("Revision")));
        let service = r["metadata"]["labels"]["serving.knative.dev/service"].as_str().unwrap();
        assert!(r["metadata"]["name"].as_str().unwrap().starts_with(&format!("{service}-0000")), "{r}");
        assert_eq!(r["metadata"]["labels"]["serving.knative.dev/configuration"], service, "{r}");
    }
    let table = p.ok(&["run", "revisions", "list", "--region=us-central1"]);
    let mut lines = table.lines();
    let head = lines.next().unwrap();
    for column in ["REVISION", "ACTIVE", "SERVICE", "DEPLOYED", "DEPLOYED BY"] {
        assert!(head.contains(column), "{table}");
    }
    let active: Vec<&str> = lines.filter(|l| l.contains(" yes ")).collect();
    assert_eq!(active.len(), 2, "the serving revision of each service is active:\n{table}");
    assert!(
        active.iter().any(|l| l.starts_with(&format!("✔  {}", names[0])) && l.contains("owner@localhost")),
        "{table}"
    );

    // Describe: the Knative v1 Revision, for a service whose name holds a hyphen.
    let rev = p.json(&["run", "revisions", "describe", names[0], "--region=us-central1"]);
    assert_eq!(rev["kind"], "Revision", "{rev}");
    assert_eq!(rev["metadata"]["name"], names[0], "{rev}");
    assert_eq!(rev["metadata"]["namespace"], p.project_number.as_str(), "{rev}");
    assert_eq!(rev["metadata"]["labels"]["serving.knative.dev/service"], "svc-a", "{rev}");
    assert_eq!(rev["spec"]["serviceAccountName"], p.compute_sa(), "{rev}");
    assert_eq!(rev["spec"]["containerConcurrency"], 80, "{rev}");
    assert_eq!(rev["spec"]["timeoutSeconds"], 300, "{rev}");
    let env = &rev["spec"]["containers"][0]["env"];
    assert!(env.as_array().unwrap().iter().any(|e| e["name"] == "MODE" && e["value"] == "x"), "{rev}");
    let ready = rev["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap();
    assert_eq!(ready["status"], "True", "{rev}");

    // A name that is no revision answers NOT_FOUND naming it, never another service.
    for missing in ["svc-a-00002", "svc-a-00009-abc", "nope-00001-abc", "svc-a"] {
        let e = p.fail(&["run", "revisions", "describe", missing, "--region=us-central1"]);
        assert!(e.contains("NOT_FOUND") && e.contains(&format!("'{missing}' of kind 'REVISION'")), "{e}");
    }
    // As gcloud, --service narrows the list by label: a service without revisions has none.
    let none =
        p.ok(&["run", "revisions", "list", "--service=nope", "--region=us-central1", "--format=value(metadata.name)"]);
    assert_eq!(none, "");
    // Each revision records who deployed it: still known for one that is neither the first nor the latest.
    p.ok(&["run", "services", "update", "svc-a", "--region=us-central1", "--update-env-vars=MODE=y"]);
    let middle = p.json(&["run", "revisions", "describe", names[0], "--region=us-central1"]);
    assert_eq!(middle["metadata"]["annotations"]["serving.knative.dev/creator"], "owner@localhost", "{middle}");
}

#[test]
fn format_projections_print_only_the_listed_keys() {
    let p = Platform::start();
    p.ok(&["run", "deploy", "svc", HELLO, "--region=us-central1", "--set-env-vars=MODE=prod"]);
    let out = p.ok(&[
        "run",
        "services",
        "describe",
        "svc",
        "--region=us-central1",
        "--format=yaml(spec.template.spec.containers)",
    ]);
    assert!(out.starts_with("spec:\n  template:\n    spec:\n      containers:\n"), "{out}");
    assert!(out.contains("MODE") && !out.contains("metadata") && !out.contains("status"), "{out}");
    let v: Value = serde_json::from_str(&p.ok(&[
        "run",
        "services",
        "describe",
        "svc",
        "--region=us-central1",
        "--format=json(metadata.name,status.url,metadata.nothing)",
    ]))
    .unwrap();
    assert_eq!(v["metadata"].as_object().unwrap().len(), 1, "{v}");
    assert_eq!(v["metadata"]["name"], "svc", "{v}");
    assert!(v["status"]["url"].as_str().unwrap().starts_with("http://"), "{v}");
    assert_eq!(v.as_object().unwrap().len(), 2, "{v}");
    let listed = p.ok(&["run", "services", "list", "--region=us-central1", "--format=json(metadata.name)"]);
    assert_eq!(serde_json::from_str::<Value>(&listed).unwrap(), serde_json::json!([{ "metadata": { "name": "svc" } }]));
    assert_eq!(p.ok(&["run", "services", "list", "--region=us-central1", "--format=value(metadata.name)"]), "svc\n");
    assert_eq!(
        p.ok(&["run", "services", "list", "--region=us-central1", "--format=csv(metadata.name)"]),
        "NAME\nsvc\n"
    );
}

#[test]
fn deleting_a_service_leaves_the_revisions_of_services_named_after_it() {
    let p = Platform::start();
    p.ok(&["run", "deploy", "svc", HELLO, "--region=us-central1", "--allow-unauthenticated"]);
    p.ok(&["run", "deploy", "svc-a", HELLO, "--region=us-central1", "--allow-unauthenticated"]);
    p.ok(&["run", "services", "delete", "svc", "--region=us-central1", "--quiet"]);
    // svc-a's revision names start with `svc-`: they are not svc's.
    let names =
        p.ok(&["run", "revisions", "list", "--service=svc-a", "--region=us-central1", "--format=value(metadata.name)"]);
    assert_eq!(names.lines().count(), 1, "{names}");
    let name = names.trim();
    assert!(p.json(&["run", "revisions", "describe", name, "--region=us-central1"])["metadata"]["name"] == name);
    assert_eq!(get(&url(&p, "svc-a"), None).0, 200);
    assert!(p.fail(&["run", "services", "describe", "svc", "--region=us-central1"]).contains("NOT_FOUND"));
}

#[test]
fn the_v2_api_validates_only_when_asked_refuses_stale_etags_and_never_revives_a_deleted_service() {
    let p = Platform::start();
    let (api, token) = (p.api.clone(), p.token());
    let v2 = format!("{api}/v2/projects/local-project/locations/us-central1");
    let call = |method: reqwest::Method, url: &str, body: Option<Value>| -> (u16, Value) {
        let mut req = http().request(method, url).bearer_auth(&token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().unwrap();
        (resp.status().as_u16(), resp.json().unwrap_or(Value::Null))
    };
    use reqwest::Method;
    let hello =
        serde_json::json!({"template": {"containers": [{"image": "us-docker.pkg.dev/cloudrun/container/hello"}]}});

    // validateOnly / dryRun: checked, answered, nothing made.
    let (s, v) = call(Method::POST, &format!("{v2}/services?serviceId=dry&validateOnly=true"), Some(hello.clone()));
    assert_eq!(s, 200, "{v}");
    assert_eq!(call(Method::GET, &format!("{v2}/services/dry"), None).0, 404);
    let (s, v) = call(Method::POST, &format!("{v2}/services?serviceId=dry&validateOnly=true"), Some(json!({})));
    assert_eq!(s, 400, "still validated: {v}");
    let knative = json!({"apiVersion": "serving.knative.dev/v1", "kind": "Service", "metadata": {"name": "dry-k"},
        "spec": {"template": {"spec": {"containers": [{"image": "us-docker.pkg.dev/cloudrun/container/hello"}]}}}});
    let ns = format!("{api}/apis/serving.knative.dev/v1/namespaces/local-project/services");
    assert_eq!(call(Method::POST, &format!("{ns}?dryRun=All"), Some(knative)).0, 200);
    assert_eq!(call(Method::GET, &format!("{v2}/services/dry-k"), None).0, 404);

    // A field Google's Service does not have is refused, not ignored (a typo must not leave ingress open).
    let mut typo = hello.clone();
    typo["ingres"] = json!("INGRESS_TRAFFIC_INTERNAL_ONLY");
    let (s, v) = call(Method::POST, &format!("{v2}/services?serviceId=typo"), Some(typo));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains(r#"Unknown name "ingres""#), "{v}");
    assert_eq!(call(Method::GET, &format!("{v2}/services/typo"), None).0, 404);
    let mut reserved = hello.clone();
    reserved["annotations"] = json!({"run.googleapis.com/ingress": "internal"});
    let (s, v) = call(Method::POST, &format!("{v2}/services?serviceId=typo"), Some(reserved));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("reserved for the system"), "{v}");

    p.ok(&["run", "deploy", "svc", HELLO, "--region=us-central1"]);
    let svc = format!("{v2}/services/svc");
    let mut body = call(Method::GET, &svc, None).1;
    body["invokerIamDisabled"] = json!(true);
    assert_eq!(call(Method::PATCH, &format!("{svc}?validateOnly=true"), Some(body)).0, 200);
    assert_ne!(call(Method::GET, &svc, None).1["invokerIamDisabled"], true, "validateOnly changed the service");
    assert_eq!(call(Method::DELETE, &format!("{svc}?validateOnly=true"), None).0, 200);
    let (s, v) = call(Method::DELETE, &format!("{svc}?etag=%22stale%22"), None);
    assert_eq!((s, v["error"]["status"].as_str()), (409, Some("ABORTED")), "{v}");
    assert_eq!(call(Method::GET, &svc, None).0, 200, "still there");

    // 20 writers with the same etag: exactly one wins.
    let read = call(Method::GET, &svc, None).1;
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let writers: Vec<_> = (0..20)
            .map(|i| {
                let mut body = read.clone();
                body["labels"] = json!({ "writer": i.to_string() });
                let (call, svc) = (&call, &svc);
                s.spawn(move || call(Method::PATCH, svc, Some(body)).0)
            })
            .collect();
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 19, "{statuses:?}");

    // IAM methods only by their own HTTP method; an updateMask without bindings leaves them alone.
    p.ok(&[
        "run",
        "services",
        "add-iam-policy-binding",
        "svc",
        "--region=us-central1",
        "--member=allAuthenticatedUsers",
        "--role=roles/run.invoker",
    ]);
    let public = json!({"policy": {"bindings": [{"role": "roles/run.invoker", "members": ["allUsers"]}]}});
    for m in [Method::DELETE, Method::GET, Method::PUT] {
        assert_eq!(call(m.clone(), &format!("{svc}:setIamPolicy"), Some(public.clone())).0, 404, "{m}");
    }
    let masked = json!({"policy": {"bindings": []}, "updateMask": "auditConfigs"});
    assert_eq!(call(Method::POST, &format!("{svc}:setIamPolicy"), Some(masked)).0, 200);
    let policy = call(Method::GET, &format!("{svc}:getIamPolicy"), None).1;
    assert_eq!(common::members_of(&policy, "roles/run.invoker"), ["allAuthenticatedUsers"], "{policy}");
    let too_many: Vec<String> = (0..1501).map(|i| format!("user:u{i}@example.com")).collect();
    let big = json!({"policy": {"bindings": [{"role": "roles/run.invoker", "members": too_many}]}});
    let (s, v) = call(Method::POST, &format!("{svc}:setIamPolicy"), Some(big));
    assert_eq!(s, 400, "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("maximum allowed size 1500"), "{v}");

    // `-` lists every location; another region has nothing here.
    let all = call(Method::GET, &format!("{api}/v2/projects/local-project/locations/-/services"), None).1;
    assert_eq!(all["services"].as_array().map(Vec::len), Some(1), "{all}");
    let (s, none) =
        call(Method::GET, &format!("{api}/v2/projects/local-project/locations/europe-west1/services"), None);
    assert_eq!((s, none), (200, json!({})));

    // Lists page: pageSize, then the token; a bad token is 400.
    let ops = format!("{v2}/operations");
    let first = call(Method::GET, &format!("{ops}?pageSize=1"), None).1;
    assert_eq!(first["operations"].as_array().map(Vec::len), Some(1), "{first}");
    let token = first["nextPageToken"].as_str().expect("more operations follow").to_owned();
    let second = call(Method::GET, &format!("{ops}?pageSize=1&pageToken={token}"), None).1;
    assert_ne!(second["operations"][0]["name"], first["operations"][0]["name"]);
    assert_eq!(call(Method::GET, &format!("{ops}?pageToken=zzz"), None).0, 400);
    assert_eq!(call(Method::GET, &format!("{v2}/services?pageSize=-1"), None).0, 400);

    // An update racing a delete never brings the service back.
    for round in 0..5 {
        let name = format!("gone-{round}");
        p.ok(&["run", "deploy", &name, HELLO, "--region=us-central1"]);
        let url = format!("{v2}/services/{name}");
        let mut body = call(Method::GET, &url, None).1;
        body["labels"] = json!({ "late": "write" });
        body["etag"] = json!("");
        std::thread::scope(|s| {
            let (call, url) = (&call, &url);
            let patch = s.spawn(move || call(Method::PATCH, url, Some(body)).0);
            let delete = s.spawn(move || call(Method::DELETE, url, None).0);
            assert_eq!(delete.join().unwrap(), 200);
            assert!([200, 404].contains(&patch.join().unwrap()));
        });
        assert_eq!(call(Method::GET, &url, None).0, 404, "round {round}: the deleted service came back");
    }
}

/// Runs the `websockets` client against `url`: what it printed.
fn websocket(url: &str, token: &str, idle: Option<f64>) -> Value {
    let mut cmd = std::process::Command::new(python());
    cmd.arg(script("ws_client.py")).arg(url).arg(token);
    if let Some(seconds) = idle {
        cmd.arg(format!("--idle={seconds}"));
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[test]
fn websockets_work_through_the_gateway_with_a_real_client_and_invocation_is_enforced_at_the_handshake() {
    let p = Platform::start();
    let source = format!("--source={}", script("ws_echo").display());
    let command = format!("--command={}", python().display());
    let deploy = |name: &str, extra: &[&str]| {
        let mut args = vec!["run", "deploy", name, &source, &command, "--args=main.py", "--region=us-central1"];
        args.extend(extra);
        p.ok(&args);
        url(&p, name)
    };
    let public = deploy("chat", &["--allow-unauthenticated"]);
    let v = websocket(&public, "", None);
    assert_eq!(v["status"], 101, "{v}");
    assert_eq!(v["greeting"], json!({"path": "/chat", "authorization": false}), "{v}");
    assert_eq!(v["echoes"], json!(["echo: one", "echo: two"]), "{v}");

    // A private service: the handshake is a request like any other, refused before it reaches the instance.
    let private = deploy("private-chat", &["--no-allow-unauthenticated", "--timeout=2"]);
    let v = websocket(&private, "", None);
    assert_eq!(v["status"], 403, "{v}");
    assert!(v["body"].as_str().unwrap().contains("The request was not authenticated"), "{v}");
    let v = websocket(&private, &user_token(&p, &format!("{private}/other")), None);
    assert_eq!(v["status"], 401, "a token for another audience: {v}");
    let v = websocket(&private, &user_token(&p, &private), None);
    assert_eq!(v["status"], 101, "{v}");
    assert_eq!(v["greeting"]["authorization"], true, "{v}");
    assert_eq!(v["echoes"], json!(["echo: one", "echo: two"]), "{v}");

    // A session lasts at most the request timeout (2 s here), as on Cloud Run: the gateway then closes it.
    let v = websocket(&private, &user_token(&p, &private), Some(3.0));
    assert_eq!(v["echoes"], json!(["echo: one", "echo: two"]), "{v}");
    assert_eq!(v["after_idle"], "closed", "{v}");
}

#[test]
fn logging_and_beta_commands_from_google_s_docs_read_as_gcloud() {
    let p = Platform::start();
    // `gcloud beta run …`, as the docs often write it, is the same command.
    p.ok(&["run", "deploy", "hello", HELLO, "--region=us-central1"]);
    let listed = p.ok(&["run", "services", "list", "--region=us-central1"]);
    assert!(listed.contains("hello"), "{listed}");
    assert_eq!(p.ok(&["beta", "run", "services", "list", "--region=us-central1"]), listed);
    // gcloud's list flags.
    p.ok(&["run", "deploy", "world", HELLO, "--region=us-central1"]);
    let args = ["run", "services", "list", "--region=us-central1", "--format=value(metadata.name)"];
    assert_eq!(p.ok(&[&args[..], &["--sort-by=~metadata.name", "--limit=1"]].concat()), "world\n");
    assert_eq!(p.ok(&[&args[..], &["--sort-by=metadata.name"]].concat()), "hello\nworld\n");
    // Cloud Run's logs are read elsewhere here: an empty answer says where, rather than nothing.
    let docs = "resource.type=cloud_run_revision AND resource.labels.service_name=hello";
    let r = p.run(&["logging", "read", docs, "--project=local-project", "--limit=10"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("gatehouse run services logs read SERVICE"), "{}", r.stderr);
    // --freshness as gcloud: recent entries are read; a bad duration is refused with the forms that work.
    assert!(!p.json(&["logging", "read", "--freshness=1h", "--limit=5"]).as_array().unwrap().is_empty());
    let e = p.fail(&["logging", "read", "--freshness=soon"]);
    assert!(e.contains("invalid --freshness `soon`") && e.contains("1d"), "{e}");
}

#[test]
fn usage_errors_read_as_gcloud_s_and_exit_2() {
    let p = Platform::start();
    let cases: [(&[&str], &str); 6] = [
        (
            &["--project", "local-project", "beta", "run", "services", "list", "--limt=1"],
            "ERROR: (gatehouse.run.services.list) unrecognized arguments: --limt",
        ),
        (
            &["run", "services", "list", "--limt=1"],
            "ERROR: (gatehouse.run.services.list) unrecognized arguments: --limt",
        ),
        (&["run", "servces", "list"], "ERROR: (gatehouse.run) Invalid choice: 'servces'. (did you mean 'services'?)"),
        (
            &["secrets", "versions", "add", "s"],
            "ERROR: (gatehouse.secrets.versions.add) argument --data-file: Must be specified.",
        ),
        (&["run", "deploy", "--image=x"], "ERROR: (gatehouse.run.deploy) argument SERVICE: Must be specified."),
        (&["secrets"], "ERROR: (gatehouse.secrets) Command name argument expected."),
    ];
    for (args, want) in cases {
        let r = p.run(args);
        assert_eq!(r.code, 2, "{args:?}: {}", r.stderr);
        assert!(r.stderr.starts_with(want), "{args:?}: {}", r.stderr);
        assert!(r.stderr.contains(" --help` for its commands and flags."), "{args:?}: {}", r.stderr);
    }
}
