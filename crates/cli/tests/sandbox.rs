//! The instance sandbox through the real binary: what an app can see and reach from inside its instance, the
//! platform's URLs working unchanged there, `--memory` as a cgroup limit, and nothing left on the host after `up`
//! stops — or after `kill -9` of `up` and the next `up`. Needs root (namespaces, cgroups), as CI runs.

mod common;

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use common::{descendants_of, http, python, sandbox_available, script, url, Platform};
use serde_json::Value;

const REGION: &str = "--region=us-central1";
const HELLO: &str = "--image=us-docker.pkg.dev/cloudrun/container/hello";

/// What of the host a sandbox could leave behind: named network namespaces, links, mount points.
#[derive(Debug, PartialEq)]
struct HostState {
    netns: String,
    links: BTreeSet<String>,
    mounts: BTreeSet<String>,
}

fn host_state() -> HostState {
    let ip = |args: &[&str]| {
        let out = std::process::Command::new("ip").args(args).output().expect("ip (iproute2) is installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let links = ip(&["-o", "link", "show"])
        .lines()
        .filter_map(|l| l.split(": ").nth(1).map(|n| n.split('@').next().unwrap_or(n).to_string()))
        .collect();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo")
        .expect("mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_string))
        .collect();
    HostState { netns: ip(&["netns", "list"]), links, mounts }
}

/// This daemon's cgroup directories (v2, or v1's memory and cpu hierarchies).
fn cgroup_dirs(pid: u32) -> Vec<PathBuf> {
    ["/sys/fs/cgroup/gatehouse", "/sys/fs/cgroup/memory/gatehouse", "/sys/fs/cgroup/cpu/gatehouse"]
        .iter()
        .map(|base| Path::new(base).join(pid.to_string()))
        .collect()
}

fn wait_until_gone(pids: &[u32]) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let alive = || pids.iter().copied().filter(|p| Path::new(&format!("/proc/{p}")).exists()).collect::<Vec<_>>();
    while !alive().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(alive().is_empty(), "instance processes still running: {:?}", alive());
}

fn deploy_probe(p: &Platform, extra: &[&str]) {
    let source = script("sandbox_probe");
    let command = format!("--command={},main.py", python().display());
    let mut args = vec!["run", "deploy", "probe", REGION, "--allow-unauthenticated"];
    let source = format!("--source={}", source.display());
    args.extend([source.as_str(), command.as_str()]);
    args.extend(extra);
    p.ok(&args);
}

fn probe(url: &str, home: &Path, target: &str) -> Value {
    let r = http()
        .get(format!("{url}/probe"))
        .query(&[("home", home.display().to_string()), ("url", target.to_string())])
        .send()
        .expect("the probe answers");
    let status = r.status();
    let body = r.text().unwrap_or_default();
    if status != 200 {
        let logs = std::process::Command::new(common::BIN)
            .args(["run", "services", "logs", "read", "probe", REGION])
            .env("GATEHOUSE_HOME", home)
            .output()
            .unwrap();
        panic!("{status}: {body}\n{}{}", String::from_utf8_lossy(&logs.stdout), String::from_utf8_lossy(&logs.stderr));
    }
    serde_json::from_str(&body).expect("JSON")
}

fn errno(v: &Value) -> &str {
    assert_eq!(v["ok"], false, "expected a failure: {v}");
    v["errno"].as_str().unwrap_or("")
}

#[test]
fn an_instance_sees_only_its_sandbox_and_the_platform() {
    if !sandbox_available() {
        return;
    }
    // Something of the host's in /var/tmp, which the instance must not see.
    let host_var_tmp = tempfile::Builder::new().prefix("gatehouse-host-").tempfile_in("/var/tmp").unwrap();
    let before = host_state();
    // A home outside /tmp, so that it is hidden by the sandbox, not merely by the private /tmp.
    let parent = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut p = Platform::start_in(parent.path(), &[]);
    let home = p.home.path().to_path_buf();
    assert_eq!(p.daemon_json()["network_controls_enforced"], true);
    p.ok(&["run", "deploy", "hello", HELLO, REGION, "--allow-unauthenticated"]);
    deploy_probe(&p, &["--memory=256Mi"]);
    let (hello, probe_url) = (url(&p, "hello"), url(&p, "probe"));

    let r = probe(&probe_url, &home, &format!("{hello}/whoami"));
    // A private /tmp, holding only where the CLI inside finds the platform (HOME is /tmp), and the programs the
    // instance was given that live under the host's /tmp (this checkout's, when it was cloned there).
    let mut fresh_tmp = vec![".gatehouse".to_string()];
    for program in [Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf(), python(), PathBuf::from(common::BIN)] {
        if let Ok(Some(Component::Normal(top))) = program.strip_prefix("/tmp").map(|p| p.components().next()) {
            fresh_tmp.push(top.to_string_lossy().into_owned());
        }
    }
    fresh_tmp.sort();
    fresh_tmp.dedup();
    let fresh_tmp = serde_json::json!(fresh_tmp);
    assert_eq!(r["tmp_before"], fresh_tmp, "{r}");
    assert_eq!((r["uid"].as_u64(), r["gid"].as_u64()), (Some(65534), Some(65534)), "{r}");
    assert_eq!(r["hostname"], "localhost");
    assert_eq!(r["pids"], serde_json::json!([1, 2]), "only its init and itself are visible");
    let env: Vec<&str> = r["env"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert_eq!(env, ["HOME", "K_CONFIGURATION", "K_REVISION", "K_SERVICE", "LANG", "PATH", "PORT"]);
    // The platform's state is out of reach: hidden, or (in a checkout under /tmp) not there at all.
    let hidden = if home.starts_with("/tmp") { "ENOENT" } else { "EACCES" };
    assert_eq!(errno(&r["list_home"]), hidden, "{r}");
    assert!(!r["read_key"]["ok"].as_bool().unwrap(), "{r}");
    assert!(!r["read_db"]["ok"].as_bool().unwrap(), "{r}");
    // The host is read-only; the app's own copy of its source and /tmp are not.
    assert_eq!(errno(&r["write_etc"]), "EROFS");
    assert_eq!(r["write_cwd"]["ok"], true, "{r}");
    assert!(!script("sandbox_probe").join("probe-wrote-here").exists(), "the host's source directory is untouched");
    assert_eq!(r["write_tmp"]["ok"], true);
    // /var/tmp too, as in a container image, and private: not the host's file, and the host's stays untouched.
    assert_eq!(r["write_var_tmp"]["ok"], true, "{r}");
    assert_eq!(r["var_tmp_before"]["value"], serde_json::json!([]), "{r}");
    assert!(host_var_tmp.path().exists() && !Path::new("/var/tmp/probe").exists());
    // No route off the machine; the metadata server by its documented name; google-auth with an empty environment.
    assert!(["EHOSTUNREACH", "ENETUNREACH"].contains(&errno(&r["connect_out"])), "{r}");
    assert!(["EHOSTUNREACH", "ENETUNREACH"].contains(&errno(&r["connect_private"])), "no VPC access: {r}");
    assert_eq!(r["metadata_host"]["value"], "169.254.169.254");
    assert_eq!(r["id_token_empty_env"]["value"], 2, "a JWT from fetch_id_token: {r}");
    // A service URL, the same string as on the host, answers from inside.
    let fetched = &r["fetch"]["value"];
    assert_eq!(fetched["status"], 200, "{r}");
    let whoami: Value = serde_json::from_str(fetched["body"].as_str().unwrap()).unwrap();
    assert_eq!(whoami["service"], "hello");
    assert_eq!(whoami["serviceAccount"], p.compute_sa());
    // So does the API URL of daemon.json.
    let r = probe(&probe_url, &home, &format!("{}/oauth2/v3/certs", p.api));
    assert_eq!(r["fetch"]["value"]["status"], 200, "{r}");
    assert!(r["fetch"]["value"]["body"].as_str().unwrap().contains("keys"));

    // gcloud (the platform's CLI) inside, with no environment but HOME: it finds the platform and takes the
    // instance's service account from the metadata server, as on Cloud Run.
    let gcloud = |args: &[&str]| -> Value {
        let mut q: Vec<(&str, &str)> = vec![("bin", common::BIN)];
        q.extend(args.iter().map(|a| ("arg", *a)));
        http().get(format!("{probe_url}/gcloud")).query(&q).send().unwrap().json().unwrap()
    };
    let r = gcloud(&["auth", "print-identity-token", &format!("--audiences={hello}")]);
    assert_eq!(r["code"], 0, "{r}");
    let token = r["stdout"].as_str().unwrap().trim().to_string();
    let payload = token.split('.').nth(1).expect("a JWT");
    let claims: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap();
    assert_eq!(
        (claims["email"].as_str(), claims["aud"].as_str()),
        (Some(p.compute_sa().as_str()), Some(hello.as_str()))
    );
    let r = gcloud(&["run", "services", "list", REGION, "--format=value(metadata.name)"]);
    assert_eq!(r["code"], 0, "{r}");
    assert!(r["stdout"].as_str().unwrap().contains("hello"), "{r}");

    // A memory hog is stopped at --memory, and the instance replaced.
    let hog = http().get(format!("{probe_url}/hog")).send();
    assert!(hog.map(|r| r.status().as_u16()).unwrap_or(502) >= 500);
    let deadline = Instant::now() + Duration::from_secs(10);
    let exited = || p.ok(&["run", "services", "logs", "read", "probe", REGION]).contains("exited with status 137");
    while !exited() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(exited(), "{}", p.ok(&["run", "services", "logs", "read", "probe", REGION]));
    let r = probe(&probe_url, &home, "");
    assert_eq!(r["uid"], 65534);
    // The new instance has a /tmp of its own: nothing the previous one wrote there.
    assert_eq!(r["tmp_before"], fresh_tmp, "{r}");

    let daemon = p.pid();
    let processes = descendants_of(daemon);
    assert!(processes.len() >= 6, "two instances, three processes each: {processes:?}");
    assert!(cgroup_dirs(daemon).iter().any(|d| d.exists()));
    assert!(p.stop().success());
    wait_until_gone(&processes);
    assert!(cgroup_dirs(daemon).iter().all(|d| !d.exists()), "cgroups removed at stop");
    assert_eq!(host_state(), before);
}

#[test]
fn after_kill_9_of_up_nothing_is_left_once_up_starts_again() {
    if !sandbox_available() {
        return;
    }
    let before = host_state();
    let mut p = Platform::start();
    p.ok(&["run", "deploy", "hello", HELLO, REGION, "--allow-unauthenticated", "--min-instances=2"]);
    let hello = url(&p, "hello");
    assert_eq!(http().get(&hello).send().unwrap().status(), 200);
    let daemon = p.pid();
    let deadline = Instant::now() + Duration::from_secs(10);
    while descendants_of(daemon).len() < 6 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let processes = descendants_of(daemon);
    assert!(processes.len() >= 6, "two instances, three processes each: {processes:?}");
    p.kill9_alone();
    // The instances end themselves: their init steps notice the daemon is gone.
    wait_until_gone(&processes);
    // (A crash leaves the cgroup directories; any `up` that starts now removes them — perhaps another test's.)
    p.boot(&[]);
    assert!(cgroup_dirs(daemon).iter().all(|d| !d.exists()), "the next `up` removes them");
    // Revisions come back in the background after a start.
    let deadline = Instant::now() + Duration::from_secs(30);
    while http().get(&hello).send().unwrap().status() != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(http().get(&hello).send().unwrap().status(), 200, "and serves again");
    let daemon = p.pid();
    let processes = descendants_of(daemon);
    assert!(p.stop().success());
    wait_until_gone(&processes);
    assert_eq!(host_state(), before);
}

#[test]
fn without_the_sandbox_up_says_what_is_not_enforced_and_instances_still_run() {
    let p = Platform::start_with(&["--no-sandbox"]);
    let banner = p.banner.join("\n");
    assert!(banner.contains("sandbox  NOT ENFORCED (--no-sandbox)"), "{banner}");
    assert!(banner.contains("ingress, VPC egress and --memory/--cpu are stored and shown, not applied"), "{banner}");
    assert!(!banner.contains("enforced in network namespaces"), "nothing claims what it does not do: {banner}");
    assert!(p.daemon_json().get("internet_echo").is_none(), "no simulated internet without namespaces");
    assert_eq!(p.daemon_json()["network_controls_enforced"], false);
    p.ok(&["run", "deploy", "hello", HELLO, REGION, "--allow-unauthenticated", "--memory=256Mi"]);
    let whoami: Value = http().get(format!("{}/whoami", url(&p, "hello"))).send().unwrap().json().unwrap();
    assert_eq!(whoami["serviceAccount"], p.compute_sa(), "the metadata server still answers (through env vars)");
}

#[test]
fn without_nft_up_runs_with_the_sandbox_off_and_says_why() {
    if !sandbox_available() {
        return;
    }
    // A PATH with `ip` and nothing else: the probe must notice that `nft` is missing before any instance needs it.
    let bin = tempfile::tempdir().unwrap();
    let ip = std::process::Command::new("sh").args(["-c", "command -v ip"]).output().unwrap();
    let ip = String::from_utf8(ip.stdout).unwrap();
    std::os::unix::fs::symlink(ip.trim(), bin.path().join("ip")).unwrap();
    let home = tempfile::tempdir().unwrap();
    let mut up = std::process::Command::new(common::BIN)
        .args(["up", "--port-base", "0"])
        .env("GATEHOUSE_HOME", home.path())
        .env("PATH", bin.path())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let lines = std::io::BufRead::lines(std::io::BufReader::new(up.stdout.take().unwrap()));
    let mut banner = Vec::new();
    for line in lines.map_while(Result::ok) {
        let ready = line.contains("ready");
        banner.push(line);
        if ready {
            break;
        }
    }
    let _ = up.kill();
    let _ = up.wait();
    let banner = banner.join("\n");
    assert!(banner.contains("sandbox  NOT ENFORCED (`nft` (nftables) is not installed)"), "{banner}");
}

#[test]
fn the_sample_image_runs_when_the_binary_lives_in_tmp() {
    if !sandbox_available() {
        return;
    }
    // /tmp is empty and private inside every instance, and the sample image is the gatehouse binary itself: it is
    // carried into the instance, read-only, at the same path.
    let dir = tempfile::Builder::new().prefix("gatehouse-bin-").tempdir_in("/tmp").unwrap();
    let p = Platform::start_from(&dir.path().join("gatehouse"));
    p.ok(&["run", "deploy", "hello", HELLO, REGION, "--allow-unauthenticated"]);
    let (status, body) = common::get(&url(&p, "hello"), None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("hello"), "{body}");
}

#[test]
fn a_python_virtual_environment_under_tmp_is_carried_whole() {
    if !sandbox_available() {
        return;
    }
    // The interpreter of a virtual environment in the host's /tmp is that environment's only with its `pyvenv.cfg`
    // and packages beside it: the whole environment is carried in, read-only, or its imports fail.
    let dir = tempfile::Builder::new().prefix("gatehouse-venv-").tempdir_in("/tmp").unwrap();
    let venv = dir.path().join("venv");
    let made = std::process::Command::new(python()).args(["-m", "venv", "--without-pip"]).arg(&venv).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let interpreter = venv.join("bin/python");
    let purelib = std::process::Command::new(&interpreter)
        .args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
        .output()
        .unwrap();
    let purelib = PathBuf::from(String::from_utf8(purelib.stdout).unwrap().trim());
    assert!(purelib.starts_with(&venv), "{}", purelib.display());
    std::fs::write(purelib.join("carried_module.py"), "VALUE = 'from-the-environment'\n").unwrap();

    let source = tempfile::tempdir().unwrap();
    std::fs::write(
        source.path().join("main.py"),
        r#"import http.server, os, sys
import carried_module

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = f"{carried_module.VALUE} {sys.prefix}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("", int(os.environ["PORT"])), Handler).serve_forever()
"#,
    )
    .unwrap();
    let p = Platform::start();
    let source = format!("--source={}", source.path().display());
    let command = format!("--command={},main.py", interpreter.display());
    p.ok(&["run", "deploy", "venv-app", REGION, "--allow-unauthenticated", &source, &command]);
    let (status, body) = common::get(&url(&p, "venv-app"), None);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, format!("from-the-environment {}", venv.display()));
}
