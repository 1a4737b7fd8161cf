//! Starting one instance: its sandbox when there is one (`crate::sandbox`), its metadata server, its process
//! (through `spawn`), and the readiness check that Cloud Run's deploy health check performs — a TCP connect to
//! `PORT` succeeds within the startup timeout.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use std::path::{Path, PathBuf};

use network::netns::Netns;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::time::Instant;

use crate::contract;
use crate::logs::LogRing;
use crate::sandbox::{self, Plan, SandboxConfig};
use crate::secrets::InitPayload;
use crate::spawn::{self, Launch, Output, Proc};
use crate::{RevisionSpec, RuntimeConfig, Workload};

/// How often readiness is polled: every millisecond at first (a cold start's first byte waits on this), backing
/// off to 20 ms for slow starters.
const POLL_FIRST: Duration = Duration::from_millis(1);
const POLL: Duration = Duration::from_millis(20);
/// Lines of the instance's output quoted in a failure.
pub(crate) const FAILURE_LOG_LINES: usize = 20;
/// Grace for an instance that failed its startup check.
const FAILED_START_GRACE: Duration = Duration::from_secs(1);
/// How long to wait for the last output lines of a failed instance.
const DRAIN_WAIT: Duration = Duration::from_millis(500);

pub(crate) struct Started {
    pub(crate) proc: Arc<Proc>,
    pub(crate) addr: SocketAddr,
    pub(crate) netns: Option<Arc<Netns>>,
}

/// Why an instance did not become ready.
#[derive(Clone, Debug)]
pub(crate) enum StartFailure {
    /// It ran but did not listen (exited, or timed out).
    NotReady { reason: String, last_logs: Vec<String> },
    /// It could not be run at all.
    Spawn(String),
}

impl StartFailure {
    pub(crate) fn reason(&self) -> &str {
        match self {
            StartFailure::NotReady { reason, .. } | StartFailure::Spawn(reason) => reason,
        }
    }
}

/// Everything [`start`] needs besides the revision.
pub(crate) struct StartContext<S> {
    pub(crate) instance_id: String,
    pub(crate) source: Arc<S>,
    pub(crate) ring: Arc<LogRing>,
    /// Runs once the process has exited (after the metadata server was told to stop).
    pub(crate) on_exit: spawn::OnExit,
    /// Records the process with the runtime; `false` means the runtime is shutting down.
    pub(crate) register: Register,
    /// The secrets for the init step (`crate::init`), when the revision has secrets.
    pub(crate) secrets: Option<InitPayload>,
}

/// See [`StartContext::register`].
pub(crate) type Register = Box<dyn FnOnce(&Arc<Proc>) -> bool + Send>;

fn failed_to_listen(port: u16) -> String {
    format!(
        "The user-provided container failed to start and listen on the port defined provided by the PORT={port} \
         environment variable"
    )
}

/// Starts one instance of `spec` and waits until it listens on its `PORT` (or fails).
pub(crate) async fn start<S: metadata::TokenSource>(
    spec: &RevisionSpec,
    config: &RuntimeConfig,
    ctx: StartContext<S>,
) -> Result<Started, StartFailure> {
    let (program, args) = match &spec.workload {
        Workload::Sample => (config.sample_program.clone(), vec!["sample-hello".to_string()]),
        Workload::Process { argv, .. } | Workload::Command { argv } => match argv.split_first() {
            Some((program, args)) => (program.into(), args.to_vec()),
            None => return Err(StartFailure::Spawn("the container command is empty".to_string())),
        },
    };
    // What a spawn failure names: the program itself, whether or not the init step wraps it.
    let shown = program.display().to_string();
    let prepared = match &config.sandbox {
        Some(sandbox) => {
            // Namespaces, cgroups, `ip` runs and listeners: blocking work, kept off the runtime's threads.
            let (spec, config, sandbox) = (spec.clone(), config.clone(), sandbox.clone());
            let (id, secrets) = (ctx.instance_id.clone(), ctx.secrets.clone());
            tokio::task::spawn_blocking(move || {
                sandboxed(&spec, &config, &sandbox, &id, secrets.as_ref(), program, args)
            })
            .await
            .map_err(|e| StartFailure::Spawn(format!("preparing the instance's sandbox failed: {e}")))??
        }
        None => plain(spec, config, ctx.secrets.as_ref(), program, args).await?,
    };
    let Prepared { launch, home, port, md_listener, netns, attached, cgroup } = prepared;

    // The metadata server lives exactly as long as the process: it stops when the process exits (or never ran).
    let (md_stop, md_stopped) = tokio::sync::oneshot::channel::<()>();
    let mut identity = spec.identity.clone();
    identity.instance_id = ctx.instance_id.clone();
    tokio::spawn(async move {
        let shutdown = async move {
            let _ = md_stopped.await;
        };
        if let Err(err) = metadata::serve(md_listener, identity, ctx.source, shutdown).await {
            tracing::warn!(%err, "runtime: instance metadata server failed");
        }
    });
    let on_exit = ctx.on_exit;
    let on_exit: spawn::OnExit = Box::new(move |status: ExitStatus| {
        let _ = md_stop.send(());
        drop(attached);
        drop(cgroup);
        on_exit(status);
    });

    let output = Output {
        ring: ctx.ring.clone(),
        service: spec.service.clone(),
        revision: spec.revision.clone(),
        instance: ctx.instance_id.clone(),
    };
    let proc = match &netns {
        // The process starts inside the namespace: it is forked from a thread that is in it.
        Some(ns) => {
            let handle = tokio::runtime::Handle::current();
            ns.run(move || {
                let _runtime = handle.enter();
                spawn::spawn(launch, home, output, on_exit)
            })
        }
        None => spawn::spawn(launch, home, output, on_exit),
    }
    .map_err(|e| StartFailure::Spawn(format!("cannot run `{shown}`: {e}")))?;
    if !(ctx.register)(&proc) {
        proc.stop(FAILED_START_GRACE).await;
        return Err(StartFailure::Spawn("the runtime is shutting down".to_string()));
    }
    if port == 0 {
        // Nothing to wait for: a process that serves no requests (a VPC host).
        return Ok(Started { proc, addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)), netns });
    }

    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let started = Instant::now();
    let deadline = started + config.startup_timeout;
    loop {
        if let Some(status) = proc.exit_status() {
            proc.drained(DRAIN_WAIT).await;
            let reason = format!(
                "{}: the container exited with {} before listening on PORT={port}",
                failed_to_listen(port),
                spawn::describe(status)
            );
            return Err(not_ready(reason, &ctx.ring, &ctx.instance_id));
        }
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), connect(netns.as_deref(), addr)).await {
            return Ok(Started { proc, addr, netns });
        }
        if Instant::now() >= deadline {
            proc.stop(FAILED_START_GRACE).await;
            proc.drained(DRAIN_WAIT).await;
            let reason = format!(
                "{} within the allocated timeout: the container did not listen on PORT={port} within {}s",
                failed_to_listen(port),
                seconds(config.startup_timeout)
            );
            return Err(not_ready(reason, &ctx.ring, &ctx.instance_id));
        }
        let poll = if started.elapsed() < Duration::from_millis(200) { POLL_FIRST } else { POLL };
        tokio::time::sleep(poll).await;
    }
}

/// A connection to `addr`, from inside `netns` when there is one.
async fn connect(netns: Option<&Netns>, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = match netns {
        Some(ns) => ns.enter(TcpSocket::new_v4)??,
        None => TcpSocket::new_v4()?,
    };
    socket.connect(addr).await
}

/// Everything ready for the process to start.
struct Prepared {
    launch: Launch,
    home: Option<tempfile::TempDir>,
    port: u16,
    md_listener: TcpListener,
    netns: Option<Arc<Netns>>,
    /// The platform's listeners inside the namespace; dropped when the process has exited.
    attached: Option<Box<dyn std::any::Any + Send + Sync>>,
    /// Removed when the process has exited, or when it never starts (dropped with the exit callback).
    cgroup: Option<crate::sandbox::InstanceCgroup>,
}

fn spawn_err(what: &str, err: impl std::fmt::Display) -> StartFailure {
    StartFailure::Spawn(format!("{what}: {err}"))
}

/// An instance on the host's network: a free loopback port, the metadata server on another, told through env vars.
async fn plain(
    spec: &RevisionSpec,
    config: &RuntimeConfig,
    secrets: Option<&InitPayload>,
    program: PathBuf,
    args: Vec<String>,
) -> Result<Prepared, StartFailure> {
    let md_listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| spawn_err("cannot bind the instance's metadata server", e))?;
    let md_addr = md_listener.local_addr().map_err(|e| spawn_err("cannot bind the instance's metadata server", e))?;
    let port = free_port().map_err(|e| spawn_err("cannot find a free port", e))?;
    let home = tempfile::Builder::new()
        .prefix("gatehouse-instance-")
        .tempdir()
        .map_err(|e| spawn_err("cannot create the instance's home directory", e))?;
    let cwd = match &spec.workload {
        Workload::Process { dir, .. } => dir.clone(),
        Workload::Sample | Workload::Command { .. } => home.path().to_path_buf(),
    };
    let daemon_path = std::env::var("PATH").ok();
    let env = contract::environment(spec, port, Some(md_addr), home.path(), daemon_path.as_deref());
    // With secrets, the init step runs first (same process: it execs the workload).
    let (program, args, stdin) = match secrets {
        Some(payload) => {
            let line = payload.to_line().map_err(StartFailure::Spawn)?;
            (config.sample_program.clone(), init_args(&program, args), Some(line))
        }
        None => (program, args, None),
    };
    let launch = Launch { program, args, cwd, env, stdin, lifeline: false };
    Ok(Prepared { launch, home: Some(home), port, md_listener, netns: None, attached: None, cgroup: None })
}

/// `instance-init -- PROGRAM ARGS…`
fn init_args(program: &Path, args: Vec<String>) -> Vec<String> {
    let mut init = vec![crate::init::SUBCOMMAND.to_string(), "--".to_string(), program.display().to_string()];
    init.extend(args);
    init
}

/// An instance in a sandbox (`crate::sandbox`): its cgroup, its network namespace with the metadata server at
/// 169.254.169.254:80 and the platform's listeners, and the init step's plan.
fn sandboxed(
    spec: &RevisionSpec,
    config: &RuntimeConfig,
    sandbox: &SandboxConfig,
    instance_id: &str,
    secrets: Option<&InitPayload>,
    program: PathBuf,
    args: Vec<String>,
) -> Result<Prepared, StartFailure> {
    let port = spec.port;
    let daemon_path = std::env::var("PATH").ok();
    let mut env = contract::environment(spec, port, None, Path::new(sandbox::SANDBOX_HOME), daemon_path.as_deref());
    if port == 0 {
        // Not a Cloud Run instance: no container contract.
        env.retain(|(k, _)| k != "PORT" && !k.starts_with("K_"));
    }
    let path = env.iter().rev().find(|(k, _)| k == "PATH").map(|(_, v)| v.clone()).unwrap_or_default();
    let mut needs = sandbox::program_paths(&program, &path);
    needs.extend(sandbox::program_paths(&config.sample_program, ""));
    if let Workload::Command { argv } = &spec.workload {
        // A startup script names its programs and files by absolute path: those must be reachable too.
        let words = argv.iter().flat_map(|a| a.split(|c: char| c.is_whitespace() || matches!(c, '\'' | '"' | '=')));
        for word in words.filter(|w| w.starts_with('/') && Path::new(w).exists()) {
            needs.extend(sandbox::program_paths(Path::new(word), ""));
        }
    }
    let source = match &spec.workload {
        Workload::Process { dir, .. } => Some(dir.clone()),
        Workload::Sample | Workload::Command { .. } => None,
    };
    // Every early return below drops the cgroup, which removes it.
    let cgroup = sandbox
        .cgroups
        .create(instance_id, spec.limits)
        .map_err(|e| spawn_err("cannot create the instance's cgroup", e))?;
    let plan = Plan {
        uid: sandbox::APP_UID,
        gid: sandbox::APP_GID,
        hostname: "localhost".to_string(),
        hide: sandbox.hide.clone(),
        cgroup_procs: cgroup.procs(),
        source,
        needs,
        hosts: sandbox::hosts_file(),
        resolv: sandbox::resolv_file(&spec.identity.zone, &spec.identity.project_id),
        home: PathBuf::from(sandbox::SANDBOX_HOME),
        home_files: sandbox.home_files.clone(),
    };
    let mut payload = match secrets {
        Some(p) => InitPayload { env: p.env.clone(), files: p.files.clone(), sandbox: None },
        None => InitPayload::default(),
    };
    payload.sandbox = Some(plan);
    let line = payload.to_line().map_err(StartFailure::Spawn)?;
    drop(payload);

    let netns = Arc::new(Netns::create().map_err(|e| spawn_err("cannot create the instance's network namespace", e))?);
    let md_listener = netns
        .listen(SocketAddr::from((network::netns::METADATA_IP, 80)))
        .and_then(TcpListener::from_std)
        .map_err(|e| spawn_err("cannot bind the instance's metadata server", e))?;
    let attached = sandbox
        .attach
        .attach(&netns, spec)
        .map_err(|e| spawn_err("cannot serve the platform inside the instance", e))?;
    let launch = Launch {
        program: config.sample_program.clone(),
        args: init_args(&program, args),
        cwd: PathBuf::from("/"),
        env,
        stdin: Some(line),
        lifeline: true,
    };
    let cgroup = Some(cgroup);
    Ok(Prepared { launch, home: None, port, md_listener, netns: Some(netns), attached: Some(attached), cgroup })
}

fn not_ready(reason: String, ring: &LogRing, instance: &str) -> StartFailure {
    StartFailure::NotReady { reason, last_logs: ring.instance_output(instance, FAILURE_LOG_LINES) }
}

fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:.1}", d.as_secs_f64())
    }
}

/// A loopback port nobody listens on right now. The instance binds it a moment later; until the sandbox gives each
/// instance its own network namespace, another process could take it in between (then readiness fails or succeeds
/// against the wrong listener — rare, and gone with the sandbox).
fn free_port() -> std::io::Result<u16> {
    let listener = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
