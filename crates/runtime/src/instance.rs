//! Starting one instance: its metadata server, its process (through `spawn`), and the readiness check that Cloud
//! Run's deploy health check performs — a TCP connect to `PORT` succeeds within the startup timeout.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::ExitStatus;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::contract;
use crate::logs::LogRing;
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
    /// The secrets payload for the init step (`crate::init`), when the revision has secrets.
    pub(crate) secrets: Option<zeroize::Zeroizing<Vec<u8>>>,
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
    let spawn_err = |what: &str, err: std::io::Error| StartFailure::Spawn(format!("{what}: {err}"));
    let (program, args) = match &spec.workload {
        Workload::Sample => (config.sample_program.clone(), vec!["sample-hello".to_string()]),
        Workload::Process { argv, .. } => match argv.split_first() {
            Some((program, args)) => (program.into(), args.to_vec()),
            None => return Err(StartFailure::Spawn("the container command is empty".to_string())),
        },
    };

    let md_listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
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
        Workload::Sample => home.path().to_path_buf(),
    };
    let daemon_path = std::env::var("PATH").ok();
    let env = contract::environment(spec, port, md_addr, home.path(), daemon_path.as_deref());

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
        on_exit(status);
    });

    // With secrets, the init step runs first (same process: it execs the workload).
    let (program, args) = match &ctx.secrets {
        Some(_) => {
            let mut init = vec![crate::init::SUBCOMMAND.to_string(), "--".to_string(), program.display().to_string()];
            init.extend(args);
            (config.sample_program.clone(), init)
        }
        None => (program, args),
    };
    let launch = Launch { program: program.clone(), args, cwd, env, stdin: ctx.secrets };
    let output = Output {
        ring: ctx.ring.clone(),
        service: spec.service.clone(),
        revision: spec.revision.clone(),
        instance: ctx.instance_id.clone(),
    };
    let proc = spawn::spawn(launch, home, output, on_exit)
        .map_err(|e| StartFailure::Spawn(format!("cannot run `{}`: {e}", program.display())))?;
    if !(ctx.register)(&proc) {
        proc.stop(FAILED_START_GRACE).await;
        return Err(StartFailure::Spawn("the runtime is shutting down".to_string()));
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
        if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(200), TcpStream::connect(addr)).await {
            return Ok(Started { proc, addr });
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
