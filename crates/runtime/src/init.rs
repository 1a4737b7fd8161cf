//! The init step of an instance: `gatehouse instance-init -- PROGRAM ARGS…`, a fresh single-threaded process that
//! the runtime starts in the instance's place (same process group and environment). It reads its [`InitPayload`]
//! — one JSON line — from stdin.
//!
//! **Without a sandbox**: when there are file secrets it enters a mount namespace of its own (which needs root),
//! makes the mount directories the host lacks without writing to the host (`make_mount_points`), mounts a small
//! tmpfs on each and writes each file there; then it `exec`s PROGRAM with the secret env vars added. The daemon
//! closes stdin after the payload.
//!
//! **In a sandbox** (see `crate::sandbox`), two stages:
//! 1. `instance-init` (already inside the instance's network namespace) joins the instance's cgroups, unshares the
//!    mount, PID, UTS and IPC namespaces, sets the hostname, and starts stage 2 — PID 1 of the new PID namespace.
//!    It then waits for it and exits with its status. The daemon keeps the other end of stdin open for the
//!    instance's life: when it closes (the daemon stopped, or was killed) stage 1 kills stage 2, and with it every
//!    process of the instance. Stage 1 blocks SIGTERM/SIGINT/SIGHUP so that stopping the instance (SIGTERM to the
//!    process group) reaches the app, which decides when the instance is over.
//! 2. `instance-init-pid1` builds the instance's filesystem view (`build_root`), mounts a fresh `/proc`, and runs the
//!    app as PID 2 with the app's uid and gid, `no_new_privs`, and signals unblocked; it reaps orphans until the
//!    app exits, then exits with the app's status (the kernel then kills whatever is left in the namespace).
//!
//! Everything is safe Rust (nix's wrappers, `std::process::Command`): the namespace work happens in processes of
//! their own, never between `fork` and `exec` of the daemon.

use std::ffi::OsString;
use std::io::{BufRead as _, Read as _, Write as _};
use std::os::fd::{AsFd as _, AsRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{MetadataExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::{Component, Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::Pid;
use zeroize::Zeroizing;

use crate::sandbox::Plan;
use crate::secrets::InitPayload;

/// The subcommand the runtime runs the init step as.
pub const SUBCOMMAND: &str = "instance-init";
/// Stage 2 of a sandboxed init step (started by stage 1, never by hand).
pub const SUBCOMMAND_PID1: &str = "instance-init-pid1";

/// The largest `--source` directory copied into an instance.
const SOURCE_LIMIT_BYTES: u64 = 64 << 20;
const SOURCE_LIMIT_ENTRIES: usize = 20_000;

/// Runs the init step; `Ok(code)` is the exit status to end with, `Err` the reason it failed (for the instance's
/// log). Without a sandbox it returns only on failure (the workload replaced it).
pub fn instance_init(argv: &[OsString]) -> Result<u8, String> {
    let (line, payload) = read_payload()?;
    match &payload.sandbox {
        None => {
            if !payload.files.is_empty() {
                enter_private_mounts().map_err(|e| {
                    format!("file secrets need a mount namespace of the instance's own, which needs root: {e}")
                })?;
                let mount_points = make_mount_points(&secret_dirs(&payload, |_| true), false)?;
                // The working directory again by its path: one under a shadowed directory would stay on the
                // host's, hidden, copy (the app starts here).
                if let Ok(cwd) = std::env::current_dir() {
                    std::env::set_current_dir(&cwd).map_err(|e| format!("cannot enter `{}`: {e}", cwd.display()))?;
                }
                mount_files(&payload, None, |_| false)?;
                mount_points.finish()?;
            }
            let mut command = workload(argv, &payload)?;
            Err(format!("cannot run `{}`: {}", program_name(argv), command.exec()))
        }
        Some(plan) => stage1(plan, &line, argv),
    }
}

/// Stage 2: see the module documentation.
pub fn instance_init_pid1(argv: &[OsString]) -> Result<u8, String> {
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("instance-init: {e}"))?;
    let (_, payload) = read_payload()?;
    let plan = payload.sandbox.as_ref().ok_or("instance-init-pid1: no sandbox plan")?;
    build_root(plan, &payload)?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| format!("instance-init: cannot set no_new_privs: {e}"))?;
    SigSet::all().thread_unblock().map_err(|e| format!("instance-init: {e}"))?;
    let mut command = workload(argv, &payload)?;
    let cwd = plan.source.clone().unwrap_or_else(|| plan.home.clone());
    command.current_dir(cwd).uid(plan.uid).gid(plan.gid);
    let app = command.spawn().map_err(|e| format!("cannot run `{}`: {e}", program_name(argv)))?;
    let app = Pid::from_raw(app.id() as i32);
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == app => return Ok(u8::try_from(code).unwrap_or(1)),
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == app => return Ok(128u8.saturating_add(signal as u8)),
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("instance-init: cannot wait for the app: {e}")),
        }
    }
}

fn read_payload() -> Result<(Zeroizing<Vec<u8>>, InitPayload), String> {
    let mut line = Zeroizing::new(Vec::new());
    std::io::stdin()
        .lock()
        .read_until(b'\n', &mut line)
        .map_err(|e| format!("instance-init: cannot read the instance's payload: {e}"))?;
    // No detail: a parse error can quote the input, which holds secret values.
    let payload = serde_json::from_slice(&line).map_err(|_| "instance-init: the payload is malformed".to_string())?;
    Ok((line, payload))
}

fn program_name(argv: &[OsString]) -> String {
    argv.first().map(|p| Path::new(p).display().to_string()).unwrap_or_default()
}

/// The workload's command: PROGRAM ARGS with the secret env vars added and stdin on `/dev/null`.
fn workload(argv: &[OsString], payload: &InitPayload) -> Result<Command, String> {
    let (program, args) = argv.split_first().ok_or("instance-init: no program to run")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    for (name, value) in &payload.env {
        let bytes = b64.decode(value).map_err(|_| format!("instance-init: the value of `{name}` is malformed"))?;
        command.env(name, OsString::from_vec(bytes));
    }
    Ok(command)
}

fn stage1(plan: &Plan, line: &[u8], argv: &[OsString]) -> Result<u8, String> {
    let me = std::process::id().to_string();
    for procs in &plan.cgroup_procs {
        std::fs::write(procs, &me).map_err(|e| format!("instance-init: cannot join {}: {e}", procs.display()))?;
    }
    let flags =
        CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS | CloneFlags::CLONE_NEWIPC;
    unshare(flags).map_err(|e| format!("instance-init: cannot create the instance's namespaces: {e}"))?;
    nix::unistd::sethostname(&plan.hostname).map_err(|e| format!("instance-init: cannot set the hostname: {e}"))?;
    make_mounts_private()?;
    let mut stop = SigSet::empty();
    for sig in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        stop.add(sig);
    }
    stop.thread_block().map_err(|e| format!("instance-init: {e}"))?;
    let exe = std::env::current_exe().map_err(|e| format!("instance-init: cannot find its own program: {e}"))?;
    let mut child = Command::new(exe)
        .arg(SUBCOMMAND_PID1)
        .arg("--")
        .args(argv)
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| format!("instance-init: cannot start the instance's init: {e}"))?;
    if let Some(mut pipe) = child.stdin.take() {
        pipe.write_all(line).map_err(|e| format!("instance-init: cannot pass on the payload: {e}"))?;
    }
    let pid1 = Pid::from_raw(child.id() as i32);
    // No threads here (a process that unshared its PID namespace cannot make any): one poll loop watches both the
    // lifeline — the daemon's end of stdin closes when it stops or dies — and the init's exit (SIGCHLD).
    let mut chld = SigSet::empty();
    chld.add(Signal::SIGCHLD);
    chld.thread_block().map_err(|e| format!("instance-init: {e}"))?;
    let signals = nix::sys::signalfd::SignalFd::new(&chld).map_err(|e| format!("instance-init: {e}"))?;
    let stdin = std::io::stdin();
    let mut lifeline_open = true;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(status.code().map_or(137, |c| u8::try_from(c).unwrap_or(1)));
        }
        let mut fds = vec![nix::poll::PollFd::new(signals.as_fd(), nix::poll::PollFlags::POLLIN)];
        if lifeline_open {
            fds.push(nix::poll::PollFd::new(stdin.as_fd(), nix::poll::PollFlags::POLLIN));
        }
        match nix::poll::poll(&mut fds, nix::poll::PollTimeout::NONE) {
            Ok(_) | Err(nix::errno::Errno::EINTR) => {}
            Err(e) => return Err(format!("instance-init: {e}")),
        }
        let ready = |i: usize| fds.get(i).and_then(|f| f.revents()).is_some_and(|r| !r.is_empty());
        if ready(0) {
            let _ = signals.read_signal();
        }
        if ready(1) {
            let mut sink = [0u8; 64];
            if matches!(stdin.lock().read(&mut sink), Ok(0) | Err(_)) {
                lifeline_open = false;
                let _ = kill(pid1, Signal::SIGKILL);
            }
        }
    }
}

fn enter_private_mounts() -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| e.to_string())?;
    make_mounts_private()
}

/// Nothing mounted in the instance propagates back to the host, nor the other way.
fn make_mounts_private() -> Result<(), String> {
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| format!("instance-init: cannot make the instance's mounts private: {e}"))
}

/// Builds the instance's view of the filesystem (stage 2, inside its mount namespace).
fn build_root(plan: &Plan, payload: &InitPayload) -> Result<(), String> {
    // Read what must come from the host before anything hides it.
    let source = plan.source.as_deref().map(Tree::read).transpose()?;
    let reveals = Reveal::plan(&plan.needs, plan.uid, plan.gid)?;
    let carried = Carry::plan(&plan.needs)?;

    remount_all_read_only()?;
    // Mount points for secret volumes that the image (the host) lacks, made without writing to the host.
    let mount_points = make_mount_points(&secret_dirs(payload, |d| !in_private_dir(d)), true)?;
    // The world-writable directories a container image has, private and in memory (charged to the instance's
    // memory cgroup, as Cloud Run counts its in-memory filesystem against the memory limit).
    for dir in private_dirs() {
        tmpfs(dir, "mode=1777")?;
    }
    for carry in &carried {
        carry.mount()?;
    }
    for hidden in plan.hide.iter().filter(|p| p.exists()) {
        tmpfs(hidden, "mode=0000,size=4k")?;
        read_only(hidden)?;
    }
    for reveal in &reveals {
        reveal.mount()?;
    }
    if let (Some(dir), Some(tree)) = (&plan.source, source) {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        tmpfs(dir, &format!("mode=0755,size={}", SOURCE_LIMIT_BYTES * 2))?;
        tree.write(dir, plan.uid, plan.gid)?;
    }
    if !payload.files.is_empty() {
        mount_files(payload, Some((plan.uid, plan.gid)), in_private_dir)?;
    }
    etc_file("hosts", &plan.hosts)?;
    etc_file("resolv.conf", &plan.resolv)?;
    std::fs::create_dir_all(&plan.home).map_err(|e| format!("cannot create `{}`: {e}", plan.home.display()))?;
    if plan.home != Path::new("/tmp") {
        std::os::unix::fs::chown(&plan.home, Some(plan.uid), Some(plan.gid))
            .map_err(|e| format!("cannot hand `{}` to the app: {e}", plan.home.display()))?;
    }
    for (rel, content) in &plan.home_files {
        let path = plan.home.join(rel.strip_prefix("/").unwrap_or(rel));
        let fail = |e: std::io::Error| format!("cannot write `{}`: {e}", path.display());
        if let Some(dir) = path.parent().filter(|d| !d.exists()) {
            std::fs::create_dir_all(dir).map_err(fail)?;
            std::os::unix::fs::chown(dir, Some(plan.uid), Some(plan.gid)).map_err(fail)?;
        }
        std::fs::write(&path, content).map_err(fail)?;
        std::os::unix::fs::chown(&path, Some(plan.uid), Some(plan.gid)).map_err(fail)?;
    }
    mount_points.finish()?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(Some("proc"), "/proc", Some("proc"), flags, None::<&str>)
        .map_err(|e| format!("cannot mount the instance's /proc: {e}"))
}

fn tmpfs(dir: &Path, options: &str) -> Result<(), String> {
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some(options))
        .map_err(|e| format!("cannot mount a tmpfs on `{}`: {e}", dir.display()))
}

/// Makes the mount at `path` read-only (only this mount: the flags of the mount, not of its filesystem).
fn read_only(path: &Path) -> Result<(), String> {
    remount(path, MsFlags::MS_NOSUID | MsFlags::MS_NODEV)
        .map_err(|e| format!("cannot make `{}` read-only: {e}", path.display()))
}

fn remount(path: &Path, keep: MsFlags) -> nix::Result<()> {
    let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | keep;
    mount(None::<&str>, path, None::<&str>, flags, None::<&str>)
}

/// Every mount of the instance's namespace becomes read-only, keeping its nosuid/nodev/noexec/atime flags.
fn remount_all_read_only() -> Result<(), String> {
    let info = std::fs::read_to_string("/proc/self/mountinfo").map_err(|e| format!("cannot read mountinfo: {e}"))?;
    for line in info.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let (Some(point), Some(options)) = (fields.get(4), fields.get(5)) else { continue };
        let point = PathBuf::from(unescape(point));
        let mut keep = MsFlags::MS_NOSUID;
        for option in options.split(',') {
            keep |= match option {
                "ro" => MsFlags::MS_RDONLY,
                "nodev" => MsFlags::MS_NODEV,
                "noexec" => MsFlags::MS_NOEXEC,
                "noatime" => MsFlags::MS_NOATIME,
                "nodiratime" => MsFlags::MS_NODIRATIME,
                _ => MsFlags::empty(),
            };
        }
        if let Err(e) = remount(&point, keep) {
            if point == Path::new("/") {
                return Err(format!("cannot make the host filesystem read-only in the instance: {e}"));
            }
            // Overmounted or vanished mounts cannot be reached by the app either.
            if e != nix::errno::Errno::ENOENT && e != nix::errno::Errno::EINVAL {
                eprintln!("gatehouse sandbox: `{}` stays as it is: {e}", point.display());
            }
        }
    }
    Ok(())
}

/// mountinfo's octal escapes (`\040` for a space, ...).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b.get(i + 1..i + 4).is_some_and(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        if b[i] == b'\\' && octal {
            let value = b[i + 1..i + 4].iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0'));
            out.push(u8::try_from(value).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Binds a file of the instance's own over `/etc/NAME` (read-only).
fn etc_file(name: &str, content: &str) -> Result<(), String> {
    let target = Path::new("/etc").join(name);
    if !target.exists() {
        return Ok(());
    }
    let staging = Path::new("/tmp").join(format!(".gatehouse-{name}"));
    std::fs::write(&staging, content).map_err(|e| format!("cannot write the instance's /etc/{name}: {e}"))?;
    std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(0o644)).map_err(|e| e.to_string())?;
    mount(Some(&staging), &target, None::<&str>, MsFlags::MS_BIND, None::<&str>)
        .map_err(|e| format!("cannot bind the instance's /etc/{name}: {e}"))?;
    read_only(&target)?;
    std::fs::remove_file(&staging).map_err(|e| e.to_string())
}

/// A directory closed to the app (`/root`, 0700) on the way to something the workload needs: a tmpfs over it
/// shows only the children on the way, bound read-only from the host.
struct Reveal {
    dir: PathBuf,
    children: Vec<(PathBuf, OwnedFd, bool)>,
}

impl Reveal {
    fn plan(needs: &[PathBuf], uid: u32, gid: u32) -> Result<Vec<Reveal>, String> {
        let mut out: Vec<Reveal> = Vec::new();
        for need in needs {
            let mut at = PathBuf::from("/");
            for component in need.components() {
                let Component::Normal(name) = component else { continue };
                let next = at.join(name);
                if !searchable(&at, uid, gid) {
                    if at != Path::new("/") && !at.starts_with("/tmp") {
                        let reveal = match out.iter_mut().position(|r| r.dir == at) {
                            Some(i) => &mut out[i],
                            None => {
                                out.push(Reveal { dir: at.clone(), children: Vec::new() });
                                out.last_mut().expect("just pushed")
                            }
                        };
                        if !reveal.children.iter().any(|(c, _, _)| *c == next) {
                            reveal.children.push((next.clone(), hold(&next)?, next.is_dir()));
                        }
                    }
                    break;
                }
                at = next;
            }
        }
        Ok(out)
    }

    fn mount(&self) -> Result<(), String> {
        tmpfs(&self.dir, "mode=0755,size=4k")?;
        for (child, fd, is_dir) in &self.children {
            let made = if *is_dir { std::fs::create_dir(child) } else { std::fs::write(child, b"") };
            made.map_err(|e| format!("cannot create `{}`: {e}", child.display()))?;
            bind_held(fd, None, child, true)
                .map_err(|e| format!("cannot reveal `{}` to the app: {e}", child.display()))?;
            read_only(child)?;
        }
        read_only(&self.dir)
    }
}

/// The directories every instance gets empty and private (a tmpfs each): a program the instance needs that lives in
/// one (the `gatehouse` binary built under /tmp, say) would vanish with the host's copy.
const PRIVATE_DIRS: [&str; 3] = ["/tmp", "/var/tmp", "/dev/shm"];

/// A program (or file it needs) from a directory the instance gets empty: bound, read-only, at the same path in the
/// instance's own copy of that directory. A program of a Python virtual environment brings the whole environment
/// (its `pyvenv.cfg` and packages), which is what makes it that environment's interpreter.
struct Carry {
    /// What is bound, where the kernel finds it (`a/../b` and `b` are one file, bound once): none when the name
    /// leads out of the private directories (through a symlink), where the host's file is seen as it is.
    bind: Option<Bound>,
    /// The directories and symlinks on the way to each name the workload gives it, made again in the instance's
    /// copy (`…/crates/cli/../../tests/x.py` passes through `…/crates/cli`; `/tmp/current/prog` through the link
    /// `/tmp/current`), outermost first.
    ways: Vec<Way>,
}

struct Bound {
    path: PathBuf,
    /// Held open: once the tmpfs hides the host's entry, /proc/self/fd/N still names it.
    fd: OwnedFd,
    is_dir: bool,
}

/// A directory, or a symlink to `link`, on the way to a carried name.
#[derive(Debug, PartialEq)]
struct Way {
    path: PathBuf,
    link: Option<PathBuf>,
}

impl Carry {
    fn plan(needs: &[PathBuf]) -> Result<Vec<Carry>, String> {
        let private = |p: &Path| private_dir_of(p).is_some_and(|d| d != p);
        // The last component is kept as named: a symlink there is how a virtual environment names its interpreter.
        let located = |n: &Path| match (n.parent().map(std::fs::canonicalize), n.file_name()) {
            (Some(Ok(dir)), Some(name)) => dir.join(name),
            _ => n.to_path_buf(),
        };
        let mut wanted: Vec<(PathBuf, &PathBuf)> = needs
            .iter()
            .filter(|n| private(n) && n.is_file())
            .map(|n| {
                let at = located(n);
                (python_environment(&at).unwrap_or(at), n)
            })
            .collect();
        // Outermost first, so that what lies inside a carried directory is not carried again.
        wanted.sort();
        let mut out: Vec<Carry> = Vec::new();
        for (path, name) in wanted {
            let ways = ways_to(name, &private);
            let outer = out.iter_mut().find(|c| c.bind.as_ref().is_some_and(|b| path.starts_with(&b.path)));
            if let Some(outer) = outer.filter(|_| private(&path)) {
                outer.ways.extend(ways);
                continue;
            }
            let bind = match private(&path) {
                true => Some(Bound { is_dir: path.is_dir(), fd: hold(&path)?, path }),
                false => None,
            };
            out.push(Carry { bind, ways });
        }
        Ok(out)
    }

    fn mount(&self) -> Result<(), String> {
        for way in &self.ways {
            let fail = |e: std::io::Error| format!("cannot make `{}` in the instance: {e}", way.path.display());
            if std::fs::symlink_metadata(&way.path).is_ok() {
                continue;
            }
            match &way.link {
                Some(target) => std::os::unix::fs::symlink(target, &way.path).map_err(fail)?,
                None => std::fs::create_dir_all(&way.path).map_err(fail)?,
            }
        }
        let Some(b) = &self.bind else { return Ok(()) };
        let fail = |e: std::io::Error| format!("cannot carry `{}` into the instance: {e}", b.path.display());
        if b.is_dir {
            std::fs::create_dir_all(&b.path).map_err(fail)?;
        } else {
            if let Some(dir) = b.path.parent() {
                std::fs::create_dir_all(dir).map_err(fail)?;
            }
            std::fs::write(&b.path, b"").map_err(fail)?;
        }
        bind_held(&b.fd, None, &b.path, true).map_err(|e| fail(e.into()))?;
        read_only(&b.path)
    }
}

/// The directories and symlinks inside the private directories on the way to `name`, as the host has them,
/// outermost first (`..` and `.` steps are left to the kernel).
fn ways_to(name: &Path, private: &dyn Fn(&Path) -> bool) -> Vec<Way> {
    let Some(parent) = name.parent() else { return Vec::new() };
    let mut ways: Vec<Way> = Vec::new();
    for at in parent.ancestors().collect::<Vec<_>>().into_iter().rev() {
        if !private(at) || matches!(at.components().next_back(), Some(Component::ParentDir | Component::CurDir)) {
            continue;
        }
        match std::fs::symlink_metadata(at) {
            Ok(m) if m.file_type().is_symlink() => {
                ways.push(Way { path: at.to_path_buf(), link: std::fs::read_link(at).ok() });
            }
            Ok(m) if m.is_dir() => ways.push(Way { path: at.to_path_buf(), link: None }),
            _ => {}
        }
    }
    ways
}

/// `path` held open (`O_PATH`): once a tmpfs hides the host's entry, `/proc/self/fd/N` still names it.
fn hold(path: &Path) -> Result<OwnedFd, String> {
    let fd = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_PATH)
        .open(path)
        .map_err(|e| format!("cannot open `{}`: {e}", path.display()))?;
    Ok(OwnedFd::from(fd))
}

/// Binds what `held` names (or its entry `child`) at `target`, with what is mounted under it when `recursive`.
fn bind_held(held: &OwnedFd, child: Option<&Path>, target: &Path, recursive: bool) -> nix::Result<()> {
    let mut from = Path::new("/proc/self/fd").join(held.as_raw_fd().to_string());
    if let Some(child) = child {
        from.push(child);
    }
    let flags = if recursive { MsFlags::MS_BIND | MsFlags::MS_REC } else { MsFlags::MS_BIND };
    mount(Some(&from), target, None::<&str>, flags, None::<&str>)
}

/// The directories of the file secrets, each once, that `keep` keeps.
fn secret_dirs(payload: &InitPayload, keep: fn(&Path) -> bool) -> Vec<&Path> {
    let mut dirs: Vec<&Path> =
        payload.files.iter().filter_map(|f| Path::new(&f.path).parent()).filter(|d| keep(d)).collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

/// Whether `path` lies in one of the instance's private in-memory directories, or is one.
fn in_private_dir(path: &Path) -> bool {
    private_dir_of(path).is_some()
}

/// The private in-memory directory ([`PRIVATE_DIRS`], those the host has: `/tmp` always) that `path` lies in or is.
fn private_dir_of(path: &Path) -> Option<&'static Path> {
    private_dirs().find(|d| path.starts_with(d))
}

/// The instance's private in-memory directories: those of [`PRIVATE_DIRS`] the host has, and `/tmp` always.
fn private_dirs() -> impl Iterator<Item = &'static Path> {
    PRIVATE_DIRS.into_iter().map(Path::new).filter(|d| *d == Path::new("/tmp") || d.is_dir())
}

/// Makes each of `dirs` exist in the instance without writing to the host's filesystem (which the instance's
/// filesystem is): the nearest directory that does exist is shadowed by a tmpfs holding the same entries, each bound
/// from the host, plus the missing directories. When that directory is `/`, the instance's root becomes such a
/// tmpfs. Runs before anything else is mounted over the host's view, so the entries bound carry only the host's own
/// mounts; with `read_only_shadows` the tmpfs become read-only (the new root in [`MountPoints::finish`]).
fn make_mount_points(dirs: &[&Path], read_only_shadows: bool) -> Result<MountPoints, String> {
    // The shadows, and the directories made in them: where more can be made without shadowing again.
    let mut shadows: Vec<PathBuf> = Vec::new();
    let mut ours: Vec<PathBuf> = Vec::new();
    for dir in dirs.iter().filter(|d| !d.is_dir()) {
        let missing: Vec<&Path> = dir.ancestors().take_while(|a| !a.exists()).collect();
        let existing = dir.ancestors().nth(missing.len()).unwrap_or(Path::new("/"));
        if !ours.iter().any(|o| o == existing) {
            shadow(existing)?;
            shadows.push(existing.to_path_buf());
            ours.push(existing.to_path_buf());
        }
        for made in missing.into_iter().rev() {
            std::fs::create_dir(made).map_err(|e| format!("cannot create `{}`: {e}", made.display()))?;
            ours.push(made.to_path_buf());
        }
    }
    let new_root = shadows.iter().any(|s| s == Path::new("/"));
    if read_only_shadows {
        // Now, while each is still the top mount at its path (a later step may mount over one: `--source`). The
        // new root waits for `finish`, which still removes the old root's directory from it.
        shadows.iter().filter(|s| *s != Path::new("/")).try_for_each(|s| read_only(s))?;
    }
    Ok(MountPoints { new_root, read_only: read_only_shadows })
}

/// Where the old root stays while the instance's view is built on a new one: what was opened before (the programs
/// [`Carry`] and [`Reveal`] bind) lies in its mounts, which must stay attached until then.
const OLD_ROOT: &str = "/.gatehouse-old-root";

/// What [`make_mount_points`] leaves to do once the instance's view is complete.
struct MountPoints {
    /// The root was rebuilt; the old one waits at [`OLD_ROOT`].
    new_root: bool,
    /// The tmpfs are made read-only (in a sandbox, where the whole host is read-only; without one, a shadowed
    /// directory stays writable, in memory, as the host's was).
    read_only: bool,
}

impl MountPoints {
    /// The instance's view is complete: the old root goes, and the new one becomes read-only.
    fn finish(self) -> Result<(), String> {
        if self.new_root {
            nix::mount::umount2(OLD_ROOT, nix::mount::MntFlags::MNT_DETACH)
                .map_err(|e| format!("cannot detach the old root: {e}"))?;
            std::fs::remove_dir(OLD_ROOT).map_err(|e| format!("cannot remove `{OLD_ROOT}`: {e}"))?;
            if self.read_only {
                read_only(Path::new("/"))?;
            }
        }
        Ok(())
    }
}

/// Covers `dir` with a tmpfs of the same mode and owner, holding the same entries: each bound (with what is mounted
/// under it) from the host's `dir`, read through a descriptor opened before the tmpfs hides it; symlinks copied.
/// The tmpfs is writable until [`read_only`]. For `/` the tmpfs is built over `/tmp` (which the instance gets empty
/// anyway) and then becomes the root.
fn shadow(dir: &Path) -> Result<(), String> {
    let fail = |what: &str, path: &Path, e: std::io::Error| format!("cannot {what} `{}`: {e}", path.display());
    let meta = std::fs::metadata(dir).map_err(|e| fail("read", dir, e))?;
    let host = hold(dir)?;
    let mut entries = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| fail("list", dir, e))? {
        let entry = entry.map_err(|e| fail("list", dir, e))?;
        let kind = entry.file_type().map_err(|e| fail("read", &entry.path(), e))?;
        let link = kind.is_symlink().then(|| std::fs::read_link(entry.path())).transpose();
        entries.push((entry.file_name(), kind, link.map_err(|e| fail("read", &entry.path(), e))?));
    }
    let root = dir == Path::new("/");
    let base = if root { Path::new("/tmp") } else { dir };
    // For `/`, the host's `/tmp` itself, before the tmpfs that becomes the root covers it.
    let tmp = if root { Some(hold(base)?) } else { None };
    let options = format!("mode={:o},uid={},gid={}", meta.mode() & 0o7777, meta.uid(), meta.gid());
    tmpfs(base, &options)?;
    for (name, kind, link) in entries {
        let at = base.join(&name);
        if let Some(target) = link {
            std::os::unix::fs::symlink(&target, &at).map_err(|e| fail("create", &at, e))?;
            continue;
        }
        let made = if kind.is_dir() { std::fs::create_dir(&at) } else { std::fs::write(&at, b"") };
        made.map_err(|e| fail("create", &at, e))?;
        // `/tmp` alone, not with what is mounted in it: that now includes the tmpfs being built, on top.
        let bound = match &tmp {
            Some(tmp) if name == "tmp" => bind_held(tmp, None, &at, false),
            _ => bind_held(&host, Some(Path::new(&name)), &at, true),
        };
        bound.map_err(|e| fail("bind", &at, e.into()))?;
    }
    if root {
        // The new root for every process of the namespace (stage 1 too: the daemon writes refreshed secret files
        // through its /proc/PID/root); the old one waits at `OLD_ROOT` for `MountPoints::finish`.
        let old = base.join(OLD_ROOT.trim_start_matches('/'));
        std::fs::create_dir(&old).map_err(|e| fail("create", &old, e))?;
        // The working directory, the same path in the new root (the app starts there, without a sandbox).
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
        std::env::set_current_dir(base).map_err(|e| fail("enter", base, e))?;
        nix::unistd::pivot_root(".", &old).map_err(|e| fail("make the new root of", base, e.into()))?;
        std::env::set_current_dir(&cwd).map_err(|e| fail("enter", &cwd, e))?;
    }
    Ok(())
}

/// The virtual environment a Python interpreter belongs to: where Python itself looks for `pyvenv.cfg` (PEP 405),
/// beside the program or one directory up — inside a private directory, never one itself (anyone may write a
/// `/tmp/pyvenv.cfg`, which must not bring the host's `/tmp` into every instance).
fn python_environment(program: &Path) -> Option<PathBuf> {
    if !program.file_name().is_some_and(|n| n.to_string_lossy().starts_with("python")) {
        return None;
    }
    let env = program.ancestors().skip(1).take(2).find(|dir| dir.join("pyvenv.cfg").is_file())?;
    private_dir_of(env).is_some_and(|d| d != env).then(|| env.to_path_buf())
}

/// Whether `uid`/`gid` may search (traverse) `dir`.
fn searchable(dir: &Path, uid: u32, gid: u32) -> bool {
    let Ok(meta) = std::fs::metadata(dir) else { return true };
    let mode = meta.mode();
    if meta.uid() == uid {
        mode & 0o100 != 0
    } else if meta.gid() == gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

/// A copy of a directory tree in memory (the `--source` directory; `.git` is left out).
struct Tree {
    entries: Vec<(PathBuf, Entry)>,
}

enum Entry {
    Dir(u32),
    File(u32, Vec<u8>),
    Link(PathBuf),
}

impl Tree {
    fn read(root: &Path) -> Result<Tree, String> {
        let mut tree = Tree { entries: Vec::new() };
        let mut bytes = 0u64;
        let mut stack = vec![PathBuf::new()];
        while let Some(rel) = stack.pop() {
            let dir = root.join(&rel);
            let listing = std::fs::read_dir(&dir).map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
            for entry in listing {
                let entry = entry.map_err(|e| format!("cannot read `{}`: {e}", dir.display()))?;
                let name = entry.file_name();
                if name == ".git" {
                    continue;
                }
                let path = rel.join(&name);
                let meta = std::fs::symlink_metadata(entry.path()).map_err(|e| e.to_string())?;
                let kind = meta.file_type();
                let item = if kind.is_symlink() {
                    Entry::Link(std::fs::read_link(entry.path()).map_err(|e| e.to_string())?)
                } else if kind.is_dir() {
                    stack.push(path.clone());
                    Entry::Dir(meta.mode() & 0o7777)
                } else if kind.is_file() {
                    bytes += meta.len();
                    if bytes > SOURCE_LIMIT_BYTES {
                        return Err(format!(
                            "the source directory `{}` holds more than {} MiB; deploy a smaller directory",
                            root.display(),
                            SOURCE_LIMIT_BYTES >> 20
                        ));
                    }
                    let data = std::fs::read(entry.path())
                        .map_err(|e| format!("cannot read `{}`: {e}", entry.path().display()))?;
                    Entry::File(meta.mode() & 0o7777, data)
                } else {
                    continue;
                };
                tree.entries.push((path, item));
                if tree.entries.len() > SOURCE_LIMIT_ENTRIES {
                    return Err(format!(
                        "the source directory `{}` holds more than {SOURCE_LIMIT_ENTRIES} entries",
                        root.display()
                    ));
                }
            }
        }
        Ok(tree)
    }

    fn write(self, root: &Path, uid: u32, gid: u32) -> Result<(), String> {
        let own = |p: &Path| {
            std::os::unix::fs::lchown(p, Some(uid), Some(gid))
                .map_err(|e| format!("cannot hand `{}` over: {e}", p.display()))
        };
        own(root)?;
        // Parents come before their children: a directory is listed before what the walk finds in it.
        for (rel, entry) in self.entries {
            let path = root.join(&rel);
            let fail = |e: std::io::Error| format!("cannot copy `{}` into the instance: {e}", path.display());
            match entry {
                Entry::Dir(mode) => {
                    std::fs::create_dir(&path).map_err(fail)?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
                }
                Entry::File(mode, data) => {
                    std::fs::write(&path, data).map_err(fail)?;
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).map_err(fail)?;
                }
                Entry::Link(target) => std::os::unix::fs::symlink(target, &path).map_err(fail)?,
            }
            own(&path)?;
        }
        Ok(())
    }
}

/// Writes each file secret into a small tmpfs of its own on its directory — or, where the directory is already the
/// instance's own (`private`: inside one of its private tmpfs directories), straight into it, so that a secret under
/// `/tmp` does not hide the rest of `/tmp`. `owner`: hand them to the app.
fn mount_files(payload: &InitPayload, owner: Option<(u32, u32)>, private: fn(&Path) -> bool) -> Result<(), String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut mounted: Vec<&Path> = Vec::new();
    for f in &payload.files {
        let path = Path::new(&f.path);
        let dir = path.parent().ok_or_else(|| format!("secret path `{}` has no directory", f.path))?;
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
        if !private(dir) && !mounted.contains(&dir) {
            let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
            mount(Some("tmpfs"), dir, Some("tmpfs"), flags, Some("mode=0755,size=4m"))
                .map_err(|e| format!("cannot mount a tmpfs on `{}`: {e}", dir.display()))?;
            mounted.push(dir);
        }
        let data = Zeroizing::new(b64.decode(&f.data).map_err(|_| format!("secret `{}` is malformed", f.path))?);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| format!("cannot create `{}`: {e}", f.path))?;
        file.write_all(&data).map_err(|e| format!("cannot write `{}`: {e}", f.path))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(path, Some(uid), Some(gid))
                .map_err(|e| format!("cannot hand `{}` to the app: {e}", f.path))?;
        }
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(f.mode))
            .map_err(|e| format!("cannot set the mode of `{}`: {e}", f.path))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_named_two_ways_is_carried_once_with_both_ways_made() {
        let dir = tempfile::Builder::new().prefix("gatehouse-carry-").tempdir_in("/tmp").unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(dir.join("crates/cli")).unwrap();
        std::fs::write(dir.join("main.py"), "").unwrap();
        let by_way = dir.join("crates/cli/../../main.py");
        let carried = Carry::plan(&[by_way.clone(), dir.join("main.py"), Path::new("/usr/bin/env").into()]).unwrap();
        assert_eq!(carried.len(), 1, "outside the private directories nothing is carried");
        let bound = carried[0].bind.as_ref().unwrap();
        assert_eq!((bound.path.clone(), bound.is_dir), (dir.join("main.py"), false));
        let ways: Vec<&Path> = carried[0].ways.iter().map(|w| w.path.as_path()).collect();
        assert_eq!(ways, [&*dir, &dir.join("crates"), &dir.join("crates/cli"), &*dir]);
    }

    #[test]
    fn a_virtual_environment_is_carried_whole_once() {
        let dir = tempfile::Builder::new().prefix("gatehouse-carry-").tempdir_in("/tmp").unwrap();
        let venv = std::fs::canonicalize(dir.path()).unwrap().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(venv.join("pyvenv.cfg"), "home = /usr/bin\n").unwrap();
        std::fs::write(venv.join("bin/python"), "").unwrap();
        std::fs::write(venv.join("bin/tool"), "").unwrap();
        let carried = Carry::plan(&[venv.join("bin/tool"), venv.join("bin/python")]).unwrap();
        assert_eq!(carried.len(), 1);
        let bound = carried[0].bind.as_ref().unwrap();
        assert_eq!((bound.path.clone(), bound.is_dir), (venv.clone(), true));
        // Another program of the environment is only itself: the environment is Python's.
        let carried = Carry::plan(&[venv.join("bin/tool")]).unwrap();
        assert_eq!((carried.len(), carried[0].bind.as_ref().unwrap().path.clone()), (1, venv.join("bin/tool")));
    }

    #[test]
    fn a_name_through_a_symlink_keeps_the_symlink_and_one_leading_out_binds_nothing() {
        let dir = tempfile::Builder::new().prefix("gatehouse-carry-").tempdir_in("/tmp").unwrap();
        let dir = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir_all(dir.join("rel-42")).unwrap();
        std::fs::write(dir.join("rel-42/prog"), "").unwrap();
        std::os::unix::fs::symlink("rel-42", dir.join("current")).unwrap();
        std::os::unix::fs::symlink("/usr/bin", dir.join("host-bin")).unwrap();
        let carried = Carry::plan(&[dir.join("current/prog"), dir.join("host-bin/env")]).unwrap();
        assert_eq!(carried.len(), 2, "{:?}", carried.iter().map(|c| &c.ways).collect::<Vec<_>>());
        let through = carried.iter().find(|c| c.bind.is_some()).unwrap();
        assert_eq!(through.bind.as_ref().unwrap().path, dir.join("rel-42/prog"));
        assert!(through.ways.contains(&Way { path: dir.join("current"), link: Some("rel-42".into()) }));
        let out = carried.iter().find(|c| c.bind.is_none()).unwrap();
        assert!(out.ways.contains(&Way { path: dir.join("host-bin"), link: Some("/usr/bin".into()) }));
    }

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape(r"/mnt/a\040b"), "/mnt/a b");
        assert_eq!(unescape(r"/x\134y"), r"/x\y");
        assert_eq!(unescape(r"/plain"), "/plain");
        assert_eq!(unescape(r"/end\04"), r"/end\04");
    }

    #[test]
    fn a_directory_is_searchable_by_its_owner_or_by_everyone_when_open() {
        let dir = tempfile::tempdir().unwrap();
        let closed = dir.path().join("closed");
        std::fs::create_dir_all(closed.join("tool/bin")).unwrap();
        std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
        // Owned by the test's uid: a different uid cannot search it, the owner can.
        let me = nix::unistd::Uid::effective().as_raw();
        assert!(searchable(&closed, me, u32::MAX));
        assert!(!searchable(&closed, me.wrapping_add(1), u32::MAX));
        let open = dir.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert!(searchable(&open, me.wrapping_add(1), u32::MAX));
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o750)).unwrap();
        assert!(!searchable(&open, me.wrapping_add(1), u32::MAX), "group bits do not help another group");
    }
}
