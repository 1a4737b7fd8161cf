//! The init step of an instance with secrets: `gatehouse instance-init -- PROGRAM ARGS…`, a fresh single-threaded
//! process that the runtime starts in the instance's place (same process group, environment and working directory).
//!
//! It reads its [`InitPayload`] from stdin (written by the runtime and closed), then:
//! 1. when there are file secrets: enters a mount namespace of its own (`unshare(CLONE_NEWNS)`, all mounts made
//!    private so nothing propagates back to the host), mounts a small tmpfs on each mount directory and writes each
//!    file there with its mode (0444 by default). The directory is created on the host if missing (empty; the
//!    sandbox issue replaces the host root with the instance's own);
//! 2. `exec`s PROGRAM with the secret env vars added and stdin on `/dev/null`.
//!
//! Everything is safe Rust (nix's wrappers and `CommandExt::exec`): the namespace work happens in a process of
//! its own, not between `fork` and `exec` of the daemon. File secrets need root (mount namespaces); without it the
//! instance fails to start with a message that says so.

use std::ffi::OsString;
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStringExt as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, Stdio};

use base64::Engine as _;
use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use zeroize::Zeroizing;

use crate::secrets::InitPayload;

/// The subcommand the runtime runs the init step as.
pub const SUBCOMMAND: &str = "instance-init";

/// Prepares the instance and `exec`s `argv`; returns only on failure, with the reason (for the instance's log).
pub fn instance_init(argv: &[OsString]) -> String {
    let Some((program, args)) = argv.split_first() else {
        return "instance-init: no program to run".into();
    };
    let mut raw = Zeroizing::new(Vec::new());
    if let Err(e) = std::io::stdin().read_to_end(&mut raw) {
        return format!("instance-init: cannot read the instance's secrets: {e}");
    }
    let payload: InitPayload = match serde_json::from_slice(&raw) {
        Ok(p) => p,
        // No detail: a parse error can quote the input, which holds secret values.
        Err(_) => return "instance-init: the secrets payload is malformed".into(),
    };
    drop(raw);
    if !payload.files.is_empty() {
        if let Err(why) = mount_files(&payload) {
            return why;
        }
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut command = Command::new(program);
    command.args(args).stdin(Stdio::null());
    for (name, value) in &payload.env {
        match b64.decode(value) {
            Ok(bytes) => {
                command.env(name, OsString::from_vec(bytes));
            }
            Err(_) => return format!("instance-init: the value of `{name}` is malformed"),
        }
    }
    let err = command.exec();
    format!("cannot run `{}`: {err}", Path::new(program).display())
}

fn mount_files(payload: &InitPayload) -> Result<(), String> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| {
        format!(
            "file secrets need a mount namespace of the instance's own, which needs root (`gatehouse up` as root): {e}"
        )
    })?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
        .map_err(|e| format!("cannot make the instance's mounts private: {e}"))?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut mounted: Vec<&Path> = Vec::new();
    for f in &payload.files {
        let path = Path::new(&f.path);
        let dir = path.parent().ok_or_else(|| format!("secret path `{}` has no directory", f.path))?;
        if !mounted.contains(&dir) {
            std::fs::create_dir_all(dir).map_err(|e| format!("cannot create `{}`: {e}", dir.display()))?;
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
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(f.mode))
            .map_err(|e| format!("cannot set the mode of `{}`: {e}", f.path))?;
    }
    Ok(())
}
