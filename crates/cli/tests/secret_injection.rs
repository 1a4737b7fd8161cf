//! Secrets reach instances as Google documents it (issue: secrets, item 5): `--set-secrets` env vars read at
//! instance start as the runtime service account, files in the instance's private tmpfs (root: mount namespaces),
//! `latest` files refreshed, deploy-time access checks, and values never in `describe`.

mod common;

use common::*;
use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

const PASSWORD: &str = "my-database-password";
const CREDENTIAL_V1: &str = "credential-one-7f3a";
const CREDENTIAL_V2: &str = "credential-two-91cc";

/// A server that answers `GET /` with its `DB_PASSWORD` and the content of `/secrets/credentials`.
const APP: &str = r#"
import http.server, json, os
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        try:
            with open("/secrets/credentials") as f:
                cred = f.read()
        except OSError as e:
            cred = "unreadable: %s" % e
        try:
            mode = oct(os.stat("/secrets/credentials").st_mode & 0o777)
        except OSError:
            mode = None
        body = json.dumps({"env": os.environ.get("DB_PASSWORD"), "file": cred, "mode": mode}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Uid:"))
        .is_some_and(|l| l.split_whitespace().nth(2) == Some("0"))
}

fn secret(p: &Platform, dir: &Path, name: &str, value: &str) {
    let file = dir.join(format!("{name}.txt"));
    std::fs::write(&file, value).unwrap();
    p.ok(&["secrets", "create", name, &format!("--data-file={}", file.display())]);
}

fn add_version(p: &Platform, dir: &Path, name: &str, value: &str) {
    let file = dir.join(format!("{name}-next.txt"));
    std::fs::write(&file, value).unwrap();
    p.ok(&["secrets", "versions", "add", name, &format!("--data-file={}", file.display())]);
}

/// A work directory (outside /tmp: without a sandbox the instance's /tmp is the host's) with `app/main.py` holding
/// `code`: the directory and the app's source.
fn app_source(code: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let work = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let src = work.path().join("app");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("main.py"), code).unwrap();
    (work, src)
}

/// A secret that services running as the default compute account may read.
fn secret_for_the_default_account(p: &Platform, dir: &Path, name: &str, value: &str) {
    secret(p, dir, name, value);
    p.ok(&[
        "secrets",
        "add-iam-policy-binding",
        name,
        &format!("--member=serviceAccount:{}", p.compute_sa()),
        "--role=roles/secretmanager.secretAccessor",
    ]);
}

fn get_json(url: &str) -> Value {
    let r = http().get(url).send().expect("GET the service");
    assert_eq!(r.status(), 200, "{url}");
    r.json().expect("the app answers JSON")
}

#[test]
fn secrets_reach_instances_as_env_vars_and_private_files_never_in_describe() {
    assert!(is_root(), "file secrets mount a tmpfs in a mount namespace of the instance's own: run the tests as root");
    let p = Platform::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("app");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("main.py"), APP).unwrap();
    secret(&p, work.path(), "db-password", PASSWORD);
    secret(&p, work.path(), "my-credential", CREDENTIAL_V1);
    p.ok(&["iam", "service-accounts", "create", "my-api-sa"]);
    let sa = "my-api-sa@local-project.iam.gserviceaccount.com";
    let deploy = |name: &str, secrets: &str| {
        p.run(&[
            "run",
            "deploy",
            name,
            &format!("--source={}", src.display()),
            "--command=python3",
            "--args=main.py",
            "--region=us-central1",
            &format!("--service-account={sa}"),
            "--allow-unauthenticated",
            &format!("--set-secrets={secrets}"),
        ])
    };
    let both = "DB_PASSWORD=db-password:latest,/secrets/credentials=my-credential:latest";

    // Without access the deploy fails, naming the secret and the account.
    let r = deploy("my-api", both);
    assert_ne!(r.code, 0, "deploy without access succeeded: {}", r.stdout);
    assert!(r.stderr.contains("db-password") && r.stderr.contains(sa), "{}", r.stderr);
    assert!(r.stderr.contains("roles/secretmanager.secretAccessor"), "{}", r.stderr);

    for s in ["db-password", "my-credential"] {
        p.ok(&[
            "secrets",
            "add-iam-policy-binding",
            s,
            &format!("--member=serviceAccount:{sa}"),
            "--role=roles/secretmanager.secretAccessor",
        ]);
    }
    let r = deploy("my-api", both);
    assert_eq!(r.code, 0, "deploy failed: {}", r.stderr);
    let url = p.ok(&["run", "services", "describe", "my-api", "--region=us-central1", "--format=value(status.url)"]);
    let url = url.trim().to_owned();
    let seen = get_json(&url);
    assert_eq!(seen["env"], PASSWORD, "{seen}");
    assert_eq!(seen["file"], CREDENTIAL_V1, "{seen}");
    assert_eq!(seen["mode"], "0o444", "{seen}");
    // The file is the instance's alone: not on the host's disk.
    assert!(!Path::new("/secrets/credentials").exists(), "the secret file is visible on the host");

    // References, never values, in every view of the service.
    for format in ["json", "yaml", "default", "export"] {
        let out = match format {
            "default" => p.ok(&["run", "services", "describe", "my-api", "--region=us-central1"]),
            f => p.ok(&["run", "services", "describe", "my-api", "--region=us-central1", &format!("--format={f}")]),
        };
        assert!(!out.contains(PASSWORD) && !out.contains(CREDENTIAL_V1), "{format} shows a value:\n{out}");
        assert!(out.contains("db-password"), "{format} does not show the reference:\n{out}");
    }
    let api = p.daemon_json()["api"].as_str().unwrap().to_owned();
    let raw = http()
        .get(format!("{api}/v2/projects/local-project/locations/us-central1/services/my-api"))
        .bearer_auth(p.token())
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(!raw.contains(PASSWORD) && raw.contains("secretKeyRef"), "{raw}");

    // A file mounted from `latest` follows a new version within 10 seconds.
    add_version(&p, work.path(), "my-credential", CREDENTIAL_V2);
    let deadline = Instant::now() + Duration::from_secs(12);
    loop {
        let seen = get_json(&url);
        if seen["file"] == CREDENTIAL_V2 {
            break;
        }
        if Instant::now() > deadline {
            let logs = p.ok(&["run", "services", "logs", "read", "my-api", "--region=us-central1"]);
            panic!("the file still holds the old version: {seen}\n{logs}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }

    // Every read at instance start is on record as the runtime account, with the resolved version.
    let entries = p.json(&["logging", "read", "protoPayload.methodName:\"AccessSecretVersion\"", "--limit=100"]);
    let reads: Vec<&Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["protoPayload"]["authenticationInfo"]["principalEmail"] == sa)
        .collect();
    assert!(
        reads
            .iter()
            .any(|e| e["protoPayload"]["resourceName"].as_str().is_some_and(|r| r.ends_with("db-password/versions/1"))),
        "no DATA_READ entry for db-password version 1 by {sa}: {entries}"
    );

    // A pinned version that is disabled: the next instance does not start, in Secret Manager's words.
    let r = deploy("pinned", "DB_PASSWORD=db-password:1");
    assert_eq!(r.code, 0, "{}", r.stderr);
    p.ok(&["secrets", "versions", "disable", "1", "--secret=db-password"]);
    let r = p.run(&["run", "services", "update", "pinned", "--region=us-central1", "--update-env-vars=ROLL=1"]);
    assert_ne!(r.code, 0, "an instance started with a disabled secret: {}", r.stdout);
    assert!(r.stderr.contains("is in DISABLED state"), "{}", r.stderr);
    assert!(r.stderr.contains("secret_key_ref"), "{}", r.stderr);
    let logs = p.ok(&["run", "services", "logs", "read", "pinned", "--region=us-central1"]);
    assert!(logs.contains("is in DISABLED state"), "{logs}");
    let described = p.ok(&["run", "services", "describe", "pinned", "--region=us-central1", "--format=yaml"]);
    assert!(described.contains("is in DISABLED state"), "describe does not say why:\n{described}");
}

#[test]
fn secret_flags_follow_gcloud_rules() {
    let p = Platform::start();
    let hello = "--image=us-docker.pkg.dev/cloudrun/container/hello";
    let cases: &[(&str, &str)] = &[
        ("--set-secrets=DB_PASSWORD=db-password", "No secret version specified"),
        ("--set-secrets=/secrets/a=one:1,/secrets/b=two:1", "Multiple secrets are specified for directory"),
        ("--set-secrets=/proc/x=one:1", "which Cloud Run reserves"),
        ("--set-secrets=PORT=one:1", "reserved"),
        ("--set-secrets=A=bad name:1", "is not a valid secret name"),
    ];
    for (flag, expect) in cases {
        let e = p.fail(&["run", "deploy", "svc", hello, "--region=us-central1", flag]);
        assert!(e.contains(expect), "{flag}: expected `{expect}` in:\n{e}");
    }
    // A reference to a secret that does not exist fails the deploy; nothing is created.
    let e = p.fail(&["run", "deploy", "svc", hello, "--region=us-central1", "--set-secrets=TOKEN=missing:latest"]);
    assert!(e.contains("missing"), "{e}");
    let e = p.fail(&["run", "services", "describe", "svc", "--region=us-central1"]);
    assert!(e.contains("svc"), "{e}");

    // --update-secrets, --remove-secrets and --clear-secrets change the references, and nothing else.
    let work = tempfile::tempdir().unwrap();
    secret(&p, work.path(), "one", "first");
    let member = format!("--member=serviceAccount:{}", p.compute_sa());
    p.ok(&["secrets", "add-iam-policy-binding", "one", &member, "--role=roles/secretmanager.secretAccessor"]);
    let region = "--region=us-central1";
    p.ok(&["run", "deploy", "svc", hello, region, "--set-secrets=A=one:latest", "--set-env-vars=PLAIN=1"]);
    let refs = |p: &Platform| -> Vec<String> {
        let svc = p.json(&["run", "services", "describe", "svc", region]);
        let env = svc["spec"]["template"]["spec"]["containers"][0]["env"].clone();
        env.as_array()
            .into_iter()
            .flatten()
            .map(|e| match e["valueFrom"]["secretKeyRef"].as_object() {
                Some(r) => format!(
                    "{}={}:{}",
                    e["name"].as_str().unwrap(),
                    r["name"].as_str().unwrap(),
                    r["key"].as_str().unwrap()
                ),
                None => format!("{}={}", e["name"].as_str().unwrap(), e["value"].as_str().unwrap_or_default()),
            })
            .collect()
    };
    assert_eq!(refs(&p), ["PLAIN=1", "A=one:latest"]);
    p.ok(&["run", "services", "update", "svc", region, "--update-secrets=B=one:1"]);
    assert_eq!(refs(&p), ["PLAIN=1", "A=one:latest", "B=one:1"]);
    p.ok(&["run", "services", "update", "svc", region, "--remove-secrets=A"]);
    assert_eq!(refs(&p), ["PLAIN=1", "B=one:1"]);
    let e = p.fail(&["run", "services", "update", "svc", region, "--update-env-vars=B=plain"]);
    assert!(e.contains("both as a plain environment variable and as a secret"), "{e}");
    // The v1 form carries the references through export and replace (a file secret too).
    p.ok(&["run", "services", "update", "svc", region, "--update-secrets=/etc/app/token=one:1"]);
    let export = p.ok(&["run", "services", "describe", "svc", region, "--format=export"]);
    assert!(export.contains("secretKeyRef") && export.contains("secretName: one"), "{export}");
    let file = work.path().join("svc.yaml");
    std::fs::write(&file, export.replace("value: '1'", "value: '2'").replace("value: \"1\"", "value: \"2\"")).unwrap();
    p.ok(&["run", "services", "replace", file.to_str().unwrap(), region]);
    assert_eq!(refs(&p), ["PLAIN=2", "B=one:1"]);
    let svc = p.json(&["run", "services", "describe", "svc", region]);
    let mounts = &svc["spec"]["template"]["spec"]["containers"][0]["volumeMounts"];
    assert_eq!(mounts[0]["mountPath"], "/etc/app", "{svc}");
    p.ok(&["run", "services", "update", "svc", region, "--clear-secrets"]);
    assert_eq!(refs(&p), ["PLAIN=2"]);
}

/// Inside an instance, unmodified `google-cloud-secret-manager` (REST, credentials from `google.auth.default()`, so
/// from the instance's metadata server) reads the secret its account may read and gets `Forbidden` for another.
#[test]
fn the_secret_manager_client_inside_an_instance_reads_as_the_runtime_account() {
    let p = Platform::start();
    let work = tempfile::tempdir().unwrap();
    secret(&p, work.path(), "allowed-secret", "s3cr3t-for-the-reader");
    secret(&p, work.path(), "other-secret", "not-for-the-reader");
    p.ok(&["iam", "service-accounts", "create", "reader-sa"]);
    let sa = "reader-sa@local-project.iam.gserviceaccount.com";
    p.ok(&[
        "secrets",
        "add-iam-policy-binding",
        "allowed-secret",
        &format!("--member=serviceAccount:{sa}"),
        "--role=roles/secretmanager.secretAccessor",
    ]);
    let api = p.daemon_json()["api"].as_str().unwrap().to_owned();
    let py = python();
    p.ok(&[
        "run",
        "deploy",
        "reader",
        &format!("--source={}", script("secret_reader").display()),
        &format!("--command={}", py.display()),
        "--args=main.py",
        &format!("--service-account={sa}"),
        &format!("--set-env-vars=SECRET_MANAGER_ENDPOINT={api}"),
        "--allow-unauthenticated",
        "--region=us-central1",
    ]);
    let url = p.ok(&["run", "services", "describe", "reader", "--region=us-central1", "--format=value(status.url)"]);
    let read = |s: &str| -> Value {
        http().get(url.trim()).query(&[("secret", s)]).send().unwrap().json().expect("the reader answers JSON")
    };
    let ok = read("allowed-secret");
    assert_eq!(ok["value"], "s3cr3t-for-the-reader", "{ok}");
    assert!(ok["name"].as_str().is_some_and(|n| n.ends_with("/secrets/allowed-secret/versions/1")), "{ok}");
    let denied = read("other-secret");
    assert_eq!(denied["error"], "Forbidden", "{denied}");
    assert!(denied["message"].as_str().is_some_and(|m| m.contains("(or it may not exist)")), "{denied}");
    let missing = read("no-such-secret");
    assert_eq!(missing["error"], "Forbidden", "a missing secret looks the same as a forbidden one: {missing}");
}

/// A server that answers `GET /` with what it finds at the paths its secrets were mounted at, and around them.
const MOUNTS_APP: &str = r#"
import http.server, json, os, sys
def attempt(f):
    try:
        return f()
    except OSError as e:
        return "error: %s" % os.strerror(e.errno)
def write_root():
    with open("/gatehouse-probe", "w") as f:
        f.write("x")
    return "written"
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        seen = {p: attempt(lambda p=p: open(p).read()) for p in sys.argv[1:]}
        seen["/etc/passwd"] = attempt(lambda: open("/etc/passwd").read())
        seen["write /"] = attempt(write_root)
        seen["/tmp"] = sorted(os.listdir("/tmp"))
        body = json.dumps(seen).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn secret_volumes_at_paths_the_host_lacks_leave_the_host_untouched() {
    if !sandbox_available() {
        return;
    }
    // In a sandbox, and without one (where the instance still gets a mount namespace for its file secrets).
    for sandboxed in [true, false] {
        secret_volumes_leave_the_host_untouched(sandboxed);
    }
}

fn secret_volumes_leave_the_host_untouched(sandboxed: bool) {
    let p = if sandboxed { Platform::start() } else { Platform::start_with(&["--no-sandbox"]) };
    let (work, src) = app_source(MOUNTS_APP);
    secret_for_the_default_account(&p, work.path(), "token", PASSWORD);
    // Directories the host does not have: at the top (the instance's root is rebuilt), under an existing directory
    // (`/etc` is rebuilt), and in a sandbox under the instance's private /tmp (written there, the rest of /tmp kept;
    // without a sandbox /tmp is the host's, which a secret volume there would hide, so `/var` is rebuilt instead).
    let unique = format!("gatehouse-test-{}-{sandboxed}", std::process::id());
    let top = format!("/{unique}/deep/token");
    let under_etc = format!("/etc/{unique}/token");
    let under_tmp = if sandboxed { format!("/tmp/{unique}-token") } else { format!("/var/{unique}/token") };
    let python = python();
    p.ok(&[
        "run",
        "deploy",
        "mounts",
        &format!("--source={}", src.display()),
        &format!("--command={}", python.display()),
        &format!("--args=main.py,{top},{under_etc},{under_tmp}"),
        "--region=us-central1",
        "--allow-unauthenticated",
        &format!("--set-secrets={top}=token:1,{under_etc}=token:1,{under_tmp}=token:1"),
    ]);
    let url = p.ok(&["run", "services", "describe", "mounts", "--region=us-central1", "--format=value(status.url)"]);
    let seen = get_json(url.trim());
    for path in [&top, &under_etc, &under_tmp] {
        assert_eq!(seen[path.as_str()], PASSWORD, "sandboxed: {sandboxed}: {path}: {seen}");
    }
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    assert_eq!(seen["/etc/passwd"], passwd, "the rest of /etc is the host's: {seen}");
    // In a sandbox the host is read-only; without one, the rebuilt root is the instance's own, in memory.
    let wrote = if sandboxed { "error: Read-only file system" } else { "written" };
    assert_eq!(seen["write /"], wrote, "{seen}");
    assert!(!Path::new("/gatehouse-probe").exists(), "the instance wrote to the host's root");
    // In a sandbox the secret under /tmp joins what is there (the CLI's config), rather than hiding it.
    let tmp: Vec<&str> = seen["/tmp"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    if sandboxed {
        assert!(tmp.contains(&format!("{unique}-token").as_str()) && tmp.contains(&".gatehouse"), "{seen}");
    } else {
        // The host's /tmp, as it is (the root the instance got was rebuilt around it).
        let host: BTreeSet<String> =
            std::fs::read_dir("/tmp").unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        assert!(tmp.iter().any(|t| host.contains(*t)), "{seen}");
    }
    // Nothing was made on the host.
    let third = if sandboxed { under_tmp.clone() } else { format!("/var/{unique}") };
    for made in [format!("/{unique}"), format!("/etc/{unique}"), third] {
        assert!(!Path::new(&made).exists(), "`{made}` was created on the host");
    }
}

/// A server that first plants a symlink where the platform writes a refreshed secret (`/tmp/.key.new`, pointing at the
/// host file named in argv[1]), then answers `GET /` with `/tmp/key`.
const PLANTING_APP: &str = r#"
import http.server, os, sys
os.symlink(sys.argv[1], "/tmp/.key.new")
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = open("/tmp/key", "rb").read()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn a_refreshed_secret_file_never_follows_a_symlink_the_app_planted() {
    if !sandbox_available() {
        return;
    }
    let p = Platform::start();
    let (work, src) = app_source(PLANTING_APP);
    // A host file the app must not be able to have the platform (root) overwrite.
    let victim = work.path().join("victim");
    std::fs::write(&victim, "untouched").unwrap();
    secret_for_the_default_account(&p, work.path(), "key", CREDENTIAL_V1);
    p.ok(&[
        "run",
        "deploy",
        "planter",
        &format!("--source={}", src.display()),
        &format!("--command={}", python().display()),
        &format!("--args=main.py,{}", victim.display()),
        "--region=us-central1",
        "--allow-unauthenticated",
        "--set-secrets=/tmp/key=key:latest",
    ]);
    let url = p.ok(&["run", "services", "describe", "planter", "--region=us-central1", "--format=value(status.url)"]);
    let read = || get(url.trim(), None).1;
    assert_eq!(read(), CREDENTIAL_V1);
    add_version(&p, work.path(), "key", CREDENTIAL_V2);
    let deadline = Instant::now() + Duration::from_secs(12);
    while read() != CREDENTIAL_V2 {
        assert!(Instant::now() < deadline, "the file was not refreshed");
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "untouched", "the platform followed the app's symlink");
    assert_eq!(std::fs::symlink_metadata(&victim).unwrap().permissions().mode() & 0o777, 0o644, "nor changed its mode");
}
