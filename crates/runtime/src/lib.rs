//! Revisions → instances: the part of Gatehouse that runs user code.
//!
//! A [`Runtime`] keeps, per service, one *serving* revision and the instances that run it. An instance is a child
//! process that follows the container contract (PROTOCOL.md §10: `PORT`, `K_SERVICE`, `K_REVISION`,
//! `K_CONFIGURATION`, the user's env) and has its own metadata server (the `metadata` crate) answering for the
//! revision's service account. Instances are scaled per request: from zero (the request waits for readiness), up to
//! `max_instances`, at most `concurrency` requests each with queueing, down to `min_instances` after an idle period;
//! crashed instances are replaced.
//!
//! **Architecture Invariant:** the runtime decides no access. It never looks at who is calling; the gateway has
//! already decided before it calls [`Runtime::acquire`].
//!
//! **Architecture Invariant:** an instance never sees the daemon's environment (no `GATEHOUSE_HOME`): it gets a
//! clean environment built in `contract`.
//!
//! **API boundary:** [`Runtime`] (deploy / acquire / remove / status / logs / record / shutdown) and the
//! [`sample`] server that the `gatehouse sample-hello` subcommand runs.
//!
//! Modules, in the order an instance meets them: `contract` (its environment), `spawn` (the child process in its
//! own process group — the one place a later sandbox wraps), `instance` (metadata server, readiness), `scaling`
//! (pure bookkeeping: which instance takes a request, when to start or idle one), `runtime` (the state machine),
//! `logs` (the per-service ring of recent lines), `secrets` (env and file secrets read at start, `latest` files kept
//! current) and `init` (the `gatehouse instance-init` step that mounts file secrets and execs the workload).
//!
//! With a [`sandbox`] (Linux, root) each instance has its own namespaces and cgroups, listens on the revision's
//! container port inside its own network namespace, and finds its metadata server at `169.254.169.254:80`.
//! Without one (not root), instances share the host network: `PORT` is a free loopback port chosen per instance,
//! and the metadata server is at `127.0.0.1:MDPORT`, given through `GCE_METADATA_HOST`.

#![forbid(unsafe_code)]

mod contract;
mod instance;
mod logs;
mod runtime;
mod scaling;
mod spawn;

pub mod sandbox;

pub mod init;
pub mod sample;
pub mod secrets;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;

pub use runtime::{Host, Lease, Runtime};
pub use sandbox::{Attach, Cgroups, Limits, SandboxConfig};
pub use secrets::{SecretEnv, SecretFile, SecretRead};

/// What an instance runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Workload {
    /// The built-in hello server (`us-docker.pkg.dev/cloudrun/container/hello`): `sample_program sample-hello`.
    Sample,
    /// `argv` (program and arguments) run in `dir`.
    Process { dir: PathBuf, argv: Vec<String> },
    /// `argv` run in the instance's `HOME`, with no source directory (a VPC host's startup script).
    Command { argv: Vec<String> },
}

/// One revision of a service, as the runtime needs it.
#[derive(Clone, Debug)]
pub struct RevisionSpec {
    pub service: String,
    pub revision: String,
    pub configuration: String,
    pub workload: Workload,
    /// User env vars, already validated by the API (never `PORT` or `K_*`).
    pub env: Vec<(String, String)>,
    /// Env vars read from Secret Manager when an instance starts.
    pub secret_env: Vec<SecretEnv>,
    /// Files from Secret Manager, in the instance's private tmpfs mounts.
    pub secret_files: Vec<SecretFile>,
    pub min_instances: u32,
    /// At least 1.
    pub max_instances: u32,
    /// Requests per instance at once; at least 1.
    pub concurrency: u32,
    /// How long a request may wait for a slot (its total time is enforced by the gateway).
    pub request_timeout: Duration,
    /// The revision's service account; `instance_id` is replaced per instance.
    pub identity: metadata::Identity,
    /// The container port (`PORT`): where the app listens inside its sandbox. Without a sandbox instances share
    /// the host's network and get a free port instead.
    pub port: u16,
    /// `--memory` and `--cpu`, enforced as cgroup limits in a sandbox.
    pub limits: sandbox::Limits,
    /// Where its outbound traffic goes.
    pub egress: Egress,
}

/// Where an instance's outbound traffic goes (PROTOCOL.md §5).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Egress {
    /// The Serverless VPC Access connector its traffic enters the VPC through (`projects/P/locations/L/connectors/C`).
    pub connector: Option<String>,
    /// Direct VPC egress: the network and subnetwork its traffic enters the VPC on.
    pub network: Option<(String, String)>,
    /// `all-traffic`: everything goes through the VPC; else only private ranges do.
    pub all_traffic: bool,
    /// A fixed address on the Direct VPC subnet (a VPC host's `networkIP`).
    pub address: Option<std::net::Ipv4Addr>,
}

impl Egress {
    /// Whether its requests to other services arrive through the VPC — internal, for ingress: only when all of its
    /// traffic enters the VPC (a `run.app` URL is not a private address).
    pub fn arrives_internal(&self) -> bool {
        self.all_traffic && (self.connector.is_some() || self.network.is_some())
    }
}

/// Where instances' metadata servers get their tokens: one source per service-account email.
pub trait SourceFactory: Send + Sync + 'static {
    type Source: metadata::TokenSource;
    fn source(&self, email: &str) -> Arc<Self::Source>;
    /// Reads `version` of `secret` as `account` (audited as that account). Err: why not, in Secret Manager's words.
    fn read_secret(
        &self,
        account: &str,
        secret: &str,
        version: &str,
    ) -> impl std::future::Future<Output = Result<SecretRead, String>> + Send;
    /// The full name `version` of `secret` resolves to now, as `account`, without reading the payload.
    fn secret_version(
        &self,
        account: &str,
        secret: &str,
        version: &str,
    ) -> impl std::future::Future<Output = Result<String, String>> + Send;
}

/// Runtime-wide settings.
#[derive(Clone, Debug)]
pub struct RuntimeConfig {
    /// The `gatehouse` binary, run as `sample_program sample-hello` for [`Workload::Sample`].
    pub sample_program: PathBuf,
    /// An instance with no request for this long is stopped (down to `min_instances`).
    pub idle_timeout: Duration,
    /// How long a new instance may take to listen on `PORT`.
    pub startup_timeout: Duration,
    /// Lines kept per service.
    pub log_lines: usize,
    /// Run instances in sandboxes (Linux, root); `None`: plain child processes on the host's network.
    pub sandbox: Option<sandbox::SandboxConfig>,
}

impl RuntimeConfig {
    /// Cloud Run-like defaults: 15 min idle, 240 s startup (the default startup probe), 1000 log lines.
    pub fn with_defaults(sample_program: PathBuf) -> RuntimeConfig {
        RuntimeConfig {
            sample_program,
            idle_timeout: Duration::from_secs(15 * 60),
            startup_timeout: Duration::from_secs(240),
            log_lines: 1000,
            sandbox: None,
        }
    }
}

/// Where a log line came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    Stdout,
    Stderr,
    /// One line per request, appended by the gateway through [`Runtime::record`].
    Request,
    /// The runtime's own lines about an instance (exits, failed starts).
    System,
}

/// One line of a service's log.
#[derive(Clone, Debug, Serialize)]
pub struct LogLine {
    /// RFC 3339, UTC.
    pub time: String,
    pub revision: String,
    pub instance: String,
    pub stream: Stream,
    pub text: String,
}

impl LogLine {
    /// A line stamped now.
    pub fn now(revision: &str, instance: &str, stream: Stream, text: impl Into<String>) -> LogLine {
        LogLine {
            time: logs::rfc3339_now(),
            revision: revision.to_string(),
            instance: instance.to_string(),
            stream,
            text: text.into(),
        }
    }
}

/// A snapshot of a service's instances.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceStatus {
    /// The serving revision.
    pub revision: String,
    pub ready_instances: u32,
    pub starting_instances: u32,
    /// Requests holding a slot, on the serving revision and on revisions still draining.
    pub in_flight: u32,
    /// Requests waiting for a slot.
    pub queued: u32,
}

/// Why [`Runtime::deploy`] did not make a revision serve.
#[derive(Clone, Debug, thiserror::Error)]
pub enum DeployError {
    /// The first instance did not become ready (Cloud Run's failed deploy health check).
    #[error("{}", with_logs(.reason, .last_logs))]
    NotReady { reason: String, last_logs: Vec<String> },
    /// The process could not be started at all (missing program, runtime shutting down, ...).
    #[error("cannot start the container: {0}")]
    Spawn(String),
}

/// Why [`Runtime::acquire`] gave no slot.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AcquireError {
    #[error("the service has no serving revision")]
    NoRevision,
    /// No slot freed within the revision's request timeout.
    #[error("the request was aborted because there was no available instance (waited {:.1}s)", .waited.as_secs_f64())]
    Timeout { waited: std::time::Duration },
    /// The instance started for this request failed to start.
    #[error("{}", with_logs(.reason, .last_logs))]
    Failed { reason: String, last_logs: Vec<String> },
}

fn with_logs(reason: &str, last_logs: &[String]) -> String {
    if last_logs.is_empty() {
        return reason.to_string();
    }
    let mut out = format!("{reason}\nlast log lines:");
    for line in last_logs {
        out.push_str("\n  ");
        out.push_str(line);
    }
    out
}
