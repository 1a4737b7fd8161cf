//! Starting an instance's process, and stopping it. The one module a later sandbox issue wraps (namespaces,
//! cgroups, mounts): everything else sees only [`Proc`].
//!
//! Each instance runs in its own process group (`process_group(0)`), so that stopping it — SIGTERM to the group,
//! SIGKILL after a grace period — also stops the children a shell or a process manager started. When the main
//! process exits on its own, whatever is left of its group is killed too (the container is over).
//!
//! stdout and stderr are read line by line into the service's [`LogRing`] and to `tracing` at debug level.

use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use tempfile::TempDir;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::watch;

use crate::logs::{LogRing, MAX_LINE_BYTES};
use crate::{LogLine, Stream};

/// What to run, already resolved from the workload and the contract.
pub(crate) struct Launch {
    pub(crate) program: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) cwd: PathBuf,
    /// The complete environment (see `contract`); nothing is inherited.
    pub(crate) env: Vec<(String, String)>,
    /// Written to the process's stdin (the init step's payload); `None`: stdin is /dev/null.
    pub(crate) stdin: Option<zeroize::Zeroizing<Vec<u8>>>,
    /// Keep stdin open until the process exits, as the sandbox's lifeline (see `crate::init`); else close it after
    /// the payload.
    pub(crate) lifeline: bool,
}

/// Where the process's output goes.
pub(crate) struct Output {
    pub(crate) ring: Arc<LogRing>,
    pub(crate) service: String,
    pub(crate) revision: String,
    pub(crate) instance: String,
}

/// Called once, from the task that reaped the process, with its exit status.
pub(crate) type OnExit = Box<dyn FnOnce(ExitStatus) + Send>;

/// A running (or exited) instance process.
pub(crate) struct Proc {
    pid: u32,
    exit: watch::Receiver<Option<ExitStatus>>,
    drained: watch::Receiver<bool>,
    /// The instance's `HOME` (and cwd for the sample) on the host, without a sandbox; removed when the last
    /// reference goes.
    _home: Option<TempDir>,
}

/// Spawns `launch` in a new process group. `on_exit` runs after the process exited and its group was killed.
pub(crate) fn spawn(launch: Launch, home: Option<TempDir>, output: Output, on_exit: OnExit) -> io::Result<Arc<Proc>> {
    let mut command = tokio::process::Command::new(&launch.program);
    command
        .args(&launch.args)
        .env_clear()
        .envs(launch.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(&launch.cwd)
        .stdin(if launch.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(false);
    let mut child = command.spawn()?;
    let pid = child.id().ok_or_else(|| io::Error::other("the process exited before it could be tracked"))?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (exit_tx, exit) = watch::channel(None);
    if let (Some(mut pipe), Some(bytes)) = (child.stdin.take(), launch.stdin) {
        let mut exited = exit.clone();
        let lifeline = launch.lifeline;
        tokio::spawn(async move {
            use tokio::io::AsyncWriteExt as _;
            if let Err(err) = pipe.write_all(&bytes).await {
                tracing::warn!(pid, %err, "runtime: cannot hand an instance its payload");
            }
            drop(bytes);
            if lifeline {
                let _ = exited.wait_for(Option::is_some).await;
            }
            // Dropping the pipe closes it.
        });
    }

    let (drained_tx, drained) = watch::channel(false);
    let output = Arc::new(output);
    tokio::spawn(async move {
        tokio::join!(pump(stdout, Stream::Stdout, &output), pump(stderr, Stream::Stderr, &output));
        let _ = drained_tx.send(true);
    });

    tokio::spawn(async move {
        let status = match child.wait().await {
            Ok(status) => status,
            Err(err) => {
                tracing::warn!(pid, %err, "runtime: cannot wait for an instance process");
                ExitStatus::from_raw(1 << 8)
            }
        };
        signal_group(pid, Signal::SIGKILL);
        let _ = exit_tx.send(Some(status));
        on_exit(status);
    });

    Ok(Arc::new(Proc { pid, exit, drained, _home: home }))
}

async fn pump(reader: Option<impl AsyncRead + Unpin>, stream: Stream, output: &Output) {
    let Some(reader) = reader else { return };
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        // Bounded: a line longer than MAX_LINE_BYTES is split rather than buffered whole.
        match (&mut reader).take(MAX_LINE_BYTES as u64).read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        while matches!(buf.last(), Some(b'\n' | b'\r')) {
            buf.pop();
        }
        let text = String::from_utf8_lossy(&buf).into_owned();
        tracing::debug!(service = %output.service, instance = %output.instance, ?stream, "{text}");
        output.ring.push(LogLine::now(&output.revision, &output.instance, stream, text));
    }
}

fn signal_group(pid: u32, signal: Signal) {
    let Ok(pgid) = i32::try_from(pid) else { return };
    match killpg(Pid::from_raw(pgid), signal) {
        Ok(()) | Err(Errno::ESRCH) => {}
        Err(err) => tracing::debug!(pid, %err, ?signal, "runtime: cannot signal an instance's process group"),
    }
}

impl Proc {
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        *self.exit.borrow()
    }

    /// Waits for the main process to exit.
    pub(crate) async fn wait(&self) -> ExitStatus {
        let mut rx = self.exit.clone();
        let status = match rx.wait_for(Option::is_some).await {
            Ok(status) => *status,
            Err(_) => None,
        };
        status.unwrap_or_else(|| ExitStatus::from_raw(1 << 8))
    }

    /// Waits (at most `limit`) until stdout and stderr are closed, so that the last lines are in the ring.
    pub(crate) async fn drained(&self, limit: Duration) {
        let mut rx = self.drained.clone();
        let _ = tokio::time::timeout(limit, rx.wait_for(|done| *done)).await;
    }

    /// SIGKILL to the whole group, without waiting (for `Drop` paths).
    pub(crate) fn kill_now(&self) {
        if self.exit_status().is_none() {
            signal_group(self.pid, Signal::SIGKILL);
        }
    }

    /// SIGTERM to the group, SIGKILL after `grace`; returns once the main process has exited.
    pub(crate) async fn stop(&self, grace: Duration) -> ExitStatus {
        if self.exit_status().is_none() {
            signal_group(self.pid, Signal::SIGTERM);
            if tokio::time::timeout(grace, self.wait()).await.is_err() {
                signal_group(self.pid, Signal::SIGKILL);
            }
        }
        self.wait().await
    }
}

/// "status 3", or "signal 9" for a process killed by a signal.
pub(crate) fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "unknown status".to_string(),
    }
}
