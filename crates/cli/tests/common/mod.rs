//! The test harness: boots a real platform (`gatehouse up --port-base 0`) in a temporary `GATEHOUSE_HOME` and drives
//! it through the real CLI binary and the REST API. No component is mocked.

#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_gatehouse");

pub struct Platform {
    pub home: tempfile::TempDir,
    /// What `up` printed before its ready line (and that line).
    pub banner: Vec<String>,
    child: Option<Child>,
    pub api: String,
    pub gateway: String,
    pub project_number: String,
    /// The binary `up` runs from (the built one, unless a test moved it).
    daemon: PathBuf,
}

/// The result of one CLI run.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Platform {
    pub fn start() -> Platform {
        Self::start_with(&[])
    }

    pub fn start_with(extra: &[&str]) -> Platform {
        Self::start_in(&std::env::temp_dir(), extra)
    }

    /// A platform whose `GATEHOUSE_HOME` is a new directory in `parent`.
    pub fn start_in(parent: &Path, extra: &[&str]) -> Platform {
        let home = tempfile::tempdir_in(parent).expect("temporary GATEHOUSE_HOME");
        let mut p = Platform {
            home,
            banner: Vec::new(),
            child: None,
            api: String::new(),
            gateway: String::new(),
            project_number: String::new(),
            daemon: PathBuf::from(BIN),
        };
        p.boot(extra);
        p
    }

    /// A platform whose `up` runs from a copy of the binary at `daemon` (the CLI commands still run the built one).
    pub fn start_from(daemon: &Path) -> Platform {
        std::fs::copy(BIN, daemon).expect("copy the gatehouse binary");
        let mut p = Platform {
            home: tempfile::tempdir().expect("temporary GATEHOUSE_HOME"),
            banner: Vec::new(),
            child: None,
            api: String::new(),
            gateway: String::new(),
            project_number: String::new(),
            daemon: daemon.to_path_buf(),
        };
        p.boot(&[]);
        p
    }

    /// Starts `up` on this home and waits for its `ready` line.
    pub fn boot(&mut self, extra: &[&str]) {
        let mut child = Command::new(&self.daemon)
            .arg("up")
            .args(["--port-base", "0"])
            .args(extra)
            .env("GATEHOUSE_HOME", self.home.path())
            .env("GATEHOUSE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gatehouse up");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("ready") => {
                    self.banner.push(line);
                    break;
                }
                Ok(line) => self.banner.push(line),
                Err(_) => panic!("`gatehouse up` did not print a ready line within 30 s"),
            }
        }
        let info = self.daemon_json();
        self.api = info["api"].as_str().expect("api url").to_owned();
        self.gateway = info["gateway"].as_str().expect("gateway url").to_owned();
        self.project_number = info["projectNumber"].as_str().expect("project number").to_owned();
        self.child = Some(child);
    }

    pub fn daemon_json(&self) -> Value {
        let text = std::fs::read_to_string(self.home.path().join("daemon.json")).expect("daemon.json");
        serde_json::from_str(&text).expect("daemon.json is JSON")
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().expect("kill");
        child.wait().expect("wait")
    }

    /// SIGKILL and nothing else: whatever the platform left behind stays (for tests of its own cleanup).
    pub fn kill9_alone(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().expect("kill -9");
        let _ = child.wait();
    }

    /// SIGKILL: no chance to clean up. The instances it ran (children in process groups of their own) are killed
    /// too, so that a crash test leaves nothing running behind it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let instances = children_of(child.id());
        child.kill().expect("kill -9");
        let _ = child.wait();
        for pid in instances {
            let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pid}")]).status();
        }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        self.cmd_with(BIN, args)
    }

    pub fn cmd_with(&self, bin: impl AsRef<Path>, args: &[&str]) -> Command {
        let mut c = Command::new(bin.as_ref());
        c.args(args).env("GATEHOUSE_HOME", self.home.path()).stdin(Stdio::null());
        c
    }

    /// Runs the CLI and returns what it did.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().expect("run gatehouse"))
    }

    /// Runs the CLI, asserting success; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_eq!(r.code, 0, "`gatehouse {}` failed:\nstdout: {}\nstderr: {}", args.join(" "), r.stdout, r.stderr);
        r.stdout
    }

    /// Runs the CLI, asserting failure; returns stderr.
    pub fn fail(&self, args: &[&str]) -> String {
        let r = self.run(args);
        assert_ne!(r.code, 0, "`gatehouse {}` succeeded but should fail:\nstdout: {}", args.join(" "), r.stdout);
        r.stderr
    }

    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--format=json");
        let out = self.ok(&all);
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("`{}` printed no JSON ({e}): {out}", args.join(" ")))
    }

    pub fn token(&self) -> String {
        self.ok(&["auth", "print-access-token"]).trim().to_owned()
    }

    /// The operator's refresh credential, as `up` stored it for the CLI.
    pub fn owner_refresh_token(&self) -> String {
        let text = std::fs::read_to_string(self.home.path().join("credentials.json")).expect("credentials.json");
        let creds: Value = serde_json::from_str(&text).expect("credentials.json is JSON");
        creds["owner@localhost"]["refresh_token"].as_str().expect("owner credential").to_owned()
    }

    /// Lets the operator impersonate `sa`: Token Creator is never a basic-role right, so it takes an explicit grant.
    pub fn let_owner_impersonate(&self, sa: &str) {
        self.ok(&[
            "iam",
            "service-accounts",
            "add-iam-policy-binding",
            sa,
            "--member=user:owner@localhost",
            "--role=roles/iam.serviceAccountTokenCreator",
        ]);
    }

    pub fn compute_sa(&self) -> String {
        format!("{}-compute@developer.gserviceaccount.com", self.project_number)
    }

    pub fn db_path(&self) -> PathBuf {
        self.home.path().join("state.db")
    }
}

impl Drop for Platform {
    /// A clean stop (SIGTERM: `up` stops its instances), SIGKILL after 10 s.
    fn drop(&mut self) {
        let Some(mut c) = self.child.take() else { return };
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if let Ok(Some(_)) = c.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child = Some(c);
        self.kill9();
    }
}

/// Processes below `pid`: children, their children, and so on.
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let kids = children_of(p);
        todo.extend(&kids);
        out.extend(kids);
    }
    out
}

/// Processes whose parent is `pid`.
pub fn children_of(pid: u32) -> Vec<u32> {
    let parent = format!("PPid:\t{pid}");
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| std::fs::read_to_string(format!("/proc/{p}/status")).is_ok_and(|s| s.lines().any(|l| l == parent)))
        .collect()
}

/// A blocking HTTP client for REST checks.
pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().expect("http client")
}

/// Bindings of `policy` as (role, members).
pub fn members_of(policy: &Value, role: &str) -> Vec<String> {
    policy["bindings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|b| b["role"] == role)
        .flat_map(|b| b["members"].as_array().cloned().unwrap_or_default())
        .filter_map(|m| m.as_str().map(str::to_owned))
        .collect()
}

/// The Python interpreter of the pinned interop clients (`.venv`, created by the README's test command).
pub fn python() -> PathBuf {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let python = std::env::var_os("GATEHOUSE_TEST_PYTHON").map(PathBuf::from).unwrap_or(venv);
    assert!(
        python.exists(),
        "interop tests need the pinned Python clients: run the README's test command (scripts/test), which creates .venv, or set GATEHOUSE_TEST_PYTHON"
    );
    python
}

/// A script under `tests/python/`.
pub fn script(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/python").join(name)
}

/// Whether the sandbox can be tested here (root: namespaces, cgroups, nftables). Without root the calling test fails
/// with the reason, unless GATEHOUSE_TEST_NO_SANDBOX=1 says on purpose that this machine has no sandbox.
pub fn sandbox_available() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let root = status.lines().any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"));
    if !root {
        assert!(
            std::env::var_os("GATEHOUSE_TEST_NO_SANDBOX").is_some_and(|v| v == "1"),
            "the sandbox and network tests need root (namespaces, cgroups, nftables): run them as root, as CI does, \
             or set GATEHOUSE_TEST_NO_SANDBOX=1 on purpose"
        );
    }
    root
}

/// A service's URL (`status.url`), in the platform's default region.
pub fn url(p: &Platform, service: &str) -> String {
    p.ok(&["run", "services", "describe", service, "--region=us-central1", "--format=value(status.url)"])
        .trim()
        .to_owned()
}

/// GET through the gateway, with an optional bearer token: (status, body).
pub fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let mut req = http().get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().unwrap();
    (resp.status().as_u16(), resp.text().unwrap_or_default())
}

/// An ID token of the operator for `aud`.
pub fn user_token(p: &Platform, aud: &str) -> String {
    p.ok(&["auth", "print-identity-token", &format!("--audiences={aud}")]).trim().to_owned()
}

/// An ID token of `sa` for `aud` (the operator must be able to impersonate it).
pub fn sa_token(p: &Platform, sa: &str, aud: &str) -> String {
    p.ok(&[
        "auth",
        "print-identity-token",
        &format!("--impersonate-service-account={sa}"),
        &format!("--audiences={aud}"),
    ])
    .trim()
    .to_owned()
}
