//! Shared helpers for the runtime's integration tests: a fixed token source, revision specs that run a tiny Python
//! HTTP server, HTTP and /proc helpers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use metadata::{IdFormat, Identity, MintedToken, SourceError, TokenSource};
use runtime::{RevisionSpec, Runtime, RuntimeConfig, SourceFactory, Workload};

pub const EMAIL: &str = "runner@test-project.iam.gserviceaccount.com";

/// A Python HTTP server on `0.0.0.0:$PORT`. Every answer is JSON `{"env", "pid", "cwd", "path"}`;
/// `/sleep?ms=N` answers after N ms, `/exit?code=N` ends the process at once.
pub const SERVER: &str = r#"
import http.server, json, os, socketserver, sys, time, urllib.parse
port = int(os.environ["PORT"])
print("server starting on", port, flush=True)
print("a line on stderr", file=sys.stderr, flush=True)
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        u = urllib.parse.urlparse(self.path)
        q = urllib.parse.parse_qs(u.query)
        if u.path == "/exit":
            os._exit(int(q.get("code", ["3"])[0]))
        if u.path == "/sleep":
            time.sleep(int(q.get("ms", ["0"])[0]) / 1000)
        body = json.dumps({"env": dict(os.environ), "pid": os.getpid(), "cwd": os.getcwd(), "path": u.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
S(("0.0.0.0", port), H).serve_forever()
"#;

pub struct FixedSource;

impl TokenSource for FixedSource {
    async fn id_token(&self, audience: &str, _format: IdFormat) -> Result<MintedToken, SourceError> {
        Ok(MintedToken {
            token: format!("id-token-for-{audience}"),
            expires_at: SystemTime::now() + Duration::from_secs(3600),
        })
    }
    async fn access_token(&self, _scopes: &[String]) -> Result<MintedToken, SourceError> {
        Ok(MintedToken { token: "access-token".into(), expires_at: SystemTime::now() + Duration::from_secs(3600) })
    }
}

pub struct Fixed;

impl SourceFactory for Fixed {
    type Source = FixedSource;
    fn source(&self, _email: &str) -> Arc<FixedSource> {
        Arc::new(FixedSource)
    }
    async fn read_secret(&self, _: &str, secret: &str, _: &str) -> Result<runtime::SecretRead, String> {
        Err(format!("no secret `{secret}` in these tests"))
    }
    async fn secret_version(&self, _: &str, secret: &str, _: &str) -> Result<String, String> {
        Err(format!("no secret `{secret}` in these tests"))
    }
}

pub fn identity() -> Identity {
    Identity {
        email: EMAIL.into(),
        project_id: "test-project".into(),
        project_number: "123456789012".into(),
        region: "us-central1".into(),
        zone: "us-central1-1".into(),
        instance_id: "0".into(),
        scopes: Identity::default_scopes(),
    }
}

pub fn config() -> RuntimeConfig {
    RuntimeConfig {
        sample_program: PathBuf::from("/nonexistent/gatehouse"),
        idle_timeout: Duration::from_secs(600),
        startup_timeout: Duration::from_secs(20),
        log_lines: 200,
        sandbox: None,
    }
}

pub fn runtime(config: RuntimeConfig) -> Arc<Runtime<Fixed>> {
    Runtime::new(config, Fixed)
}

/// A revision running `argv` in `dir`: max 1 instance, concurrency 1, 20 s request timeout.
pub fn spec(service: &str, revision: &str, dir: &Path, argv: &[&str]) -> RevisionSpec {
    RevisionSpec {
        service: service.into(),
        revision: revision.into(),
        configuration: service.into(),
        workload: Workload::Process { dir: dir.to_path_buf(), argv: argv.iter().map(|s| s.to_string()).collect() },
        env: vec![("GREETING".into(), "hello world".into())],
        secret_env: vec![],
        secret_files: vec![],
        min_instances: 0,
        max_instances: 1,
        concurrency: 1,
        request_timeout: Duration::from_secs(20),
        identity: identity(),
        port: 8080,
        limits: runtime::Limits::default(),
        egress: runtime::Egress::default(),
    }
}

/// A revision running [`SERVER`].
pub fn server_spec(service: &str, revision: &str, dir: &Path) -> RevisionSpec {
    spec(service, revision, dir, &["python3", "-u", "-c", SERVER])
}

pub async fn get_json(addr: std::net::SocketAddr, path: &str) -> serde_json::Value {
    reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {path}: {e}"))
        .json()
        .await
        .expect("a JSON answer")
}

/// Whether a process is gone (absent, or a zombie waiting for a reaper that is not us).
pub fn gone(pid: u64) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')).unwrap_or(false),
    }
}

/// Polls `cond` every 20 ms until it holds or `limit` passes; returns whether it held.
pub async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        if cond() {
            return true;
        }
        if start.elapsed() > limit {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
