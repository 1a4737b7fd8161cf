//! The instance sandbox, daemon side: what an instance's init step is told to build ([`Plan`]), the cgroups that
//! hold `--memory` and `--cpu`, and the network namespace the instance starts in.
//!
//! One sandbox per instance (Linux, root):
//! - **network**: an unnamed namespace of its own ([`network::netns::Netns`]) with only `lo`, on which the metadata
//!   server answers at `169.254.169.254:80` and the platform's listeners (API, gateway, every service URL) are
//!   bound by the daemon at the same `127.0.0.1:PORT` as on the host — so the URLs in `daemon.json` work unchanged
//!   inside. The gateway reaches the app at `127.0.0.1:PORT` inside the namespace (`PORT` is the revision's
//!   container port: each instance has its own).
//! - **mount, PID, UTS, IPC** namespaces, made by the init step (`crate::init`): the host's filesystem read-only,
//!   a private `/tmp` and `/dev/shm`, `$GATEHOUSE_HOME` hidden under an empty tmpfs, its own `/etc/hosts` and
//!   `/etc/resolv.conf`, a fresh `/proc`, the `--source` directory copied into a tmpfs at its own path (a revision is
//!   an image: the app may write to it, the host directory never changes), secrets in tmpfs mounts;
//! - the app runs as an unprivileged uid with `no_new_privs`, as PID 2 under a minimal init;
//! - **cgroups** (v2 when its controllers are available, else v1's `memory` and `cpu` hierarchies) under
//!   `gatehouse/<daemon pid>/<instance>`.
//!
//! Cleanup: the instance's processes die with its PID namespace (whose init dies when the init step does, and the
//! init step dies when the daemon's end of its stdin closes — also after `kill -9` of the daemon); mounts live in
//! the instance's mount namespace; the network namespace is unnamed; only cgroup directories outlive a crash, and
//! [`Cgroups::discover`] removes those of daemons that are gone.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use network::netns::Netns;
use serde::{Deserialize, Serialize};

/// Daemon-wide sandbox settings.
#[derive(Clone)]
pub struct SandboxConfig {
    pub cgroups: Cgroups,
    /// Hidden inside every instance (`$GATEHOUSE_HOME`).
    pub hide: Vec<PathBuf>,
    /// Binds the platform's listeners inside each new instance's network namespace.
    pub attach: Arc<dyn Attach>,
    /// Files written into every instance's `HOME` (relative path, content; no secrets): how the CLI inside finds
    /// the platform.
    pub home_files: Vec<(PathBuf, String)>,
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("cgroups", &self.cgroups)
            .field("hide", &self.hide)
            .finish_non_exhaustive()
    }
}

/// What the platform serves inside an instance's network namespace besides its metadata server: the API, the
/// gateway and every service URL, at the same addresses as on the host.
pub trait Attach: Send + Sync + 'static {
    /// Called before the instance's process starts, on a runtime thread; what it returns is dropped once the
    /// instance has exited (closing those listeners). The revision's own `port` stays the app's; its `egress` says
    /// whether its requests count as internal.
    fn attach(
        &self,
        netns: &Arc<Netns>,
        revision: &crate::RevisionSpec,
    ) -> Result<Box<dyn std::any::Any + Send + Sync>, String>;
}

/// The uid and gid apps run as (`nobody` / `nogroup` on Debian).
pub const APP_UID: u32 = 65534;
pub const APP_GID: u32 = 65534;

/// What the init step builds inside the instance's namespaces (sent on its stdin with the secrets).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Plan {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    pub(crate) hostname: String,
    /// Hidden under an empty read-only tmpfs (`$GATEHOUSE_HOME`).
    pub(crate) hide: Vec<PathBuf>,
    /// `cgroup.procs` files the init step joins before it creates anything.
    pub(crate) cgroup_procs: Vec<PathBuf>,
    /// Copied into a tmpfs at the same path, owned by the app (the `--source` directory).
    pub(crate) source: Option<PathBuf>,
    /// Paths the workload needs (its program, resolved); when a directory on the way is closed to the app's uid
    /// (`/root` is 0700), its child on the way is revealed read-only under a tmpfs that shows nothing else.
    pub(crate) needs: Vec<PathBuf>,
    pub(crate) hosts: String,
    pub(crate) resolv: String,
    /// The app's `HOME` and working directory when there is no source: inside the private `/tmp`.
    pub(crate) home: PathBuf,
    /// Written under `home`, owned by the app.
    #[serde(default)]
    pub(crate) home_files: Vec<(PathBuf, String)>,
}

/// The app's `HOME` inside a sandbox.
pub(crate) const SANDBOX_HOME: &str = "/tmp";

/// `/etc/hosts` inside every sandbox.
pub(crate) fn hosts_file() -> String {
    format!(
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n{ip}\tmetadata.google.internal metadata\n",
        ip = network::netns::METADATA_IP
    )
}

/// `/etc/resolv.conf` inside every sandbox: the platform's resolver on `127.0.0.1` (served by the daemon inside the
/// namespace, see `network::dns`), Compute Engine's search domains.
pub(crate) fn resolv_file(zone: &str, project: &str) -> String {
    format!(
        "nameserver 127.0.0.1\nsearch {}\noptions timeout:1 attempts:2\n",
        network::dns::search_domains(zone, project)
    )
}

/// Resolves `program` the way `execvp` would with `path` (the instance's `PATH`), then follows symlinks: every
/// path on the way is something the sandbox must let the app reach.
pub(crate) fn program_paths(program: &Path, path: &str) -> Vec<PathBuf> {
    let found = if program.components().count() > 1 || program.is_absolute() {
        Some(program.to_path_buf())
    } else {
        path.split(':').filter(|d| !d.is_empty()).map(|d| Path::new(d).join(program)).find(|p| p.is_file())
    };
    let mut out = Vec::new();
    if let Some(p) = found {
        if let Ok(real) = std::fs::canonicalize(&p) {
            if real != p {
                out.push(real);
            }
        }
        out.push(p);
    }
    out
}

/// Where the instance cgroups of this daemon live, and which files hold the limits.
#[derive(Clone, Debug)]
pub struct Cgroups {
    kind: CgroupKind,
}

#[derive(Clone, Debug)]
enum CgroupKind {
    /// cgroup v2: `<root>/gatehouse/<pid>`, with `memory` and `cpu` enabled down to the instances.
    V2 { dir: PathBuf },
    /// cgroup v1: the same path under the `memory` and the `cpu` hierarchies.
    V1 { memory: PathBuf, cpu: PathBuf },
}

/// Limits of one instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub memory_bytes: u64,
    /// Thousandths of a CPU.
    pub cpu_millis: u32,
}

impl Default for Limits {
    /// Cloud Run's defaults: 512 MiB, 1 CPU.
    fn default() -> Limits {
        Limits { memory_bytes: 512 << 20, cpu_millis: 1000 }
    }
}

const CPU_PERIOD_US: u64 = 100_000;

impl Cgroups {
    /// Finds the cgroup hierarchy, creates this daemon's directory and removes those of daemons that are gone
    /// (after a crash). Err: why limits cannot be enforced here.
    pub fn discover() -> Result<Cgroups, String> {
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
        let pid = std::process::id().to_string();
        let kind = if has("memory") && has("cpu") {
            let base = v2.join("gatehouse");
            enable_v2(v2)?;
            mkdir(&base)?;
            enable_v2(&base)?;
            sweep(&base);
            let dir = base.join(&pid);
            mkdir(&dir)?;
            enable_v2(&dir)?;
            CgroupKind::V2 { dir }
        } else {
            let (memory, cpu) = (v2.join("memory"), v2.join("cpu"));
            if !memory.join("memory.limit_in_bytes").exists() || !cpu.join("cpu.cfs_quota_us").exists() {
                return Err("no cgroup hierarchy with the memory and cpu controllers is mounted".into());
            }
            let (memory, cpu) = (memory.join("gatehouse"), cpu.join("gatehouse"));
            for base in [&memory, &cpu] {
                mkdir(base)?;
                sweep(base);
                mkdir(&base.join(&pid))?;
            }
            CgroupKind::V1 { memory: memory.join(&pid), cpu: cpu.join(&pid) }
        };
        Ok(Cgroups { kind })
    }

    /// Creates the cgroup of one instance with `limits`. It is removed when the returned [`InstanceCgroup`] is
    /// dropped — also when creating it fails halfway, so nothing is left behind.
    pub(crate) fn create(&self, instance: &str, limits: Limits) -> Result<InstanceCgroup, String> {
        let quota = u64::from(limits.cpu_millis) * CPU_PERIOD_US / 1000;
        let dirs: Vec<PathBuf> = match &self.kind {
            CgroupKind::V2 { dir } => vec![dir.join(instance)],
            CgroupKind::V1 { memory, cpu } => vec![memory.join(instance), cpu.join(instance)],
        };
        let cgroup = InstanceCgroup { dirs };
        match &self.kind {
            CgroupKind::V2 { .. } => {
                let d = &cgroup.dirs[0];
                mkdir(d)?;
                write(&d.join("memory.max"), &limits.memory_bytes.to_string())?;
                // No swap: an instance over its memory is stopped, as on Cloud Run (absent without swap support).
                let _ = std::fs::write(d.join("memory.swap.max"), "0");
                write(&d.join("cpu.max"), &format!("{quota} {CPU_PERIOD_US}"))?;
            }
            CgroupKind::V1 { .. } => {
                let (m, c) = (&cgroup.dirs[0], &cgroup.dirs[1]);
                mkdir(m)?;
                mkdir(c)?;
                write(&m.join("memory.limit_in_bytes"), &limits.memory_bytes.to_string())?;
                let _ = std::fs::write(m.join("memory.swappiness"), "0");
                write(&c.join("cpu.cfs_period_us"), &CPU_PERIOD_US.to_string())?;
                write(&c.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        Ok(cgroup)
    }

    /// This daemon's directories, one per hierarchy; each instance's cgroup is a directory inside each.
    pub fn dirs(&self) -> Vec<&Path> {
        match &self.kind {
            CgroupKind::V2 { dir } => vec![dir],
            CgroupKind::V1 { memory, cpu } => vec![memory, cpu],
        }
    }

    /// Removes this daemon's directories (at stop, after every instance is gone).
    pub fn close(&self) {
        for dir in self.dirs() {
            remove_tree(dir);
        }
    }
}

/// One instance's cgroup (one directory per hierarchy). Dropping it removes the directories: the instance's
/// processes have exited, or the instance never started. The kernel may still be tearing the last process down, so
/// removal retries for up to a second, off the caller's thread.
#[derive(Debug)]
pub(crate) struct InstanceCgroup {
    dirs: Vec<PathBuf>,
}

impl InstanceCgroup {
    /// The `cgroup.procs` files the instance's init step joins before it creates anything.
    pub(crate) fn procs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.join("cgroup.procs")).collect()
    }
}

impl Drop for InstanceCgroup {
    fn drop(&mut self) {
        let dirs = std::mem::take(&mut self.dirs);
        let remove = move || {
            for dir in dirs {
                remove_retrying(&dir);
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => drop(runtime.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// rmdir, retried every 20 ms for up to a second while the directory is still busy.
fn remove_retrying(dir: &Path) {
    for attempt in 0..50 {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
            Err(e) if attempt == 49 => {
                tracing::warn!(dir = %dir.display(), error = %e, "runtime: cannot remove an instance's cgroup")
            }
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
        }
    }
}

fn mkdir(dir: &Path) -> Result<(), String> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(format!("cannot create the cgroup {}: {e}", dir.display())),
    }
}

fn write(file: &Path, value: &str) -> Result<(), String> {
    std::fs::write(file, value).map_err(|e| format!("cannot set {} to {value}: {e}", file.display()))
}

/// Enables `memory` and `cpu` for the children of a v2 cgroup.
fn enable_v2(dir: &Path) -> Result<(), String> {
    let current = std::fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap_or_default();
    if ["memory", "cpu"].iter().all(|c| current.split_whitespace().any(|x| x == *c)) {
        return Ok(());
    }
    write(&dir.join("cgroup.subtree_control"), "+memory +cpu")
}

/// Removes the directories of daemons that are no longer running (left by a crash).
fn sweep(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_tree(&entry.path());
        }
    }
}

/// rmdir, children first (cgroup directories cannot be removed recursively).
fn remove_tree(dir: &Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&entry.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(dir = %dir.display(), error = %e, "runtime: cannot remove a cgroup");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_on_path_and_their_links_followed() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::write(&real, "#!/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let path = format!("/nonexistent:{}", dir.path().display());
        let found = program_paths(Path::new("link"), &path);
        let real = std::fs::canonicalize(&real).unwrap();
        assert_eq!(found, vec![real.clone(), dir.path().join("link")]);
        assert!(program_paths(Path::new("missing-program"), &path).is_empty());
        assert_eq!(program_paths(&real, ""), vec![real]);
    }
}
