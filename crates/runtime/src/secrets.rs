//! Secrets in instances (PROTOCOL.md §10.2): read when an instance starts, as the revision's service account, and
//! handed to the instance's init step ([`crate::init`]) on a pipe — never on a command line, never in the daemon's
//! own environment, never on disk outside the instance's private tmpfs.
//!
//! - **Env secrets** are resolved once, at instance start. If any read fails (no permission, disabled, destroyed)
//!   the instance does not start; the failure names the env var's field and quotes Secret Manager's words.
//! - **File secrets** are written into a tmpfs mounted at the mount directory in the instance's own mount namespace
//!   (mode 0444), so only that instance sees them. A file whose version is `latest` is kept current: every
//!   [`REFRESH`] the runtime asks which version `latest` is now (a metadata read, not an access) and, when it moved,
//!   reads the new one and replaces the file through `/proc/PID/root`.
//!
//! Must not: log, format or keep a payload beyond handing it to the init step (buffers are zeroized on drop).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{RevisionSpec, SourceFactory};

/// How often a `latest` file secret is checked for a newer version.
pub const REFRESH: Duration = Duration::from_secs(5);

/// An env var whose value comes from a secret version (`valueSource.secretKeyRef`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretEnv {
    pub name: String,
    /// Secret id in the platform's project, or `projects/P/secrets/S`.
    pub secret: String,
    /// `latest`, a number or an alias.
    pub version: String,
    /// The field the value is in, for error messages: `spec.template.spec.containers[0].env[3]`.
    pub field: String,
}

/// A file whose content is a secret version (a secret volume item at its mount path).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretFile {
    /// Absolute: mount directory + item path, e.g. `/secrets/credentials`.
    pub path: String,
    pub secret: String,
    pub version: String,
    /// Permission bits; 0o444 by default.
    pub mode: u32,
    /// The field the reference is in, for error messages.
    pub field: String,
}

/// A secret version's payload, read as some account.
pub struct SecretRead {
    /// The resolved full name, `projects/NUMBER/secrets/S/versions/N`.
    pub version: String,
    pub payload: Zeroizing<Vec<u8>>,
}

/// What the init step receives on its stdin (one JSON line; values base64). Zeroized when dropped.
#[derive(Clone, Serialize, Deserialize, Default)]
pub(crate) struct InitPayload {
    pub(crate) env: Vec<(String, String)>,
    pub(crate) files: Vec<InitFile>,
    /// What to build around the workload, when it runs in a sandbox.
    #[serde(default)]
    pub(crate) sandbox: Option<crate::sandbox::Plan>,
}

#[derive(Clone, Serialize, Deserialize)]
pub(crate) struct InitFile {
    pub(crate) path: String,
    pub(crate) mode: u32,
    pub(crate) data: String,
}

/// A file secret that follows `latest`: what is in the instance now.
pub(crate) struct Followed {
    pub(crate) file: SecretFile,
    pub(crate) version: String,
}

/// Reads every secret of `spec` as its service account. Err is the reason the instance cannot start.
pub(crate) async fn resolve<F: SourceFactory>(
    factory: &F,
    spec: &RevisionSpec,
) -> Result<(InitPayload, Vec<Followed>), String> {
    let account = &spec.identity.email;
    let mut payload = InitPayload::default();
    let mut followed = Vec::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    for e in &spec.secret_env {
        let read = factory.read_secret(account, &e.secret, &e.version).await.map_err(|why| failed(e, &why))?;
        if read.payload.contains(&0) {
            return Err(format!(
                "{}.value_source.secret_key_ref.name: secret version {} contains a NUL byte, which an environment \
                 variable cannot hold; mount it as a file instead",
                e.field, read.version
            ));
        }
        payload.env.push((e.name.clone(), b64.encode(&*read.payload)));
    }
    for f in &spec.secret_files {
        let read = factory.read_secret(account, &f.secret, &f.version).await.map_err(|why| failed_file(f, &why))?;
        payload.files.push(InitFile { path: f.path.clone(), mode: f.mode, data: b64.encode(&*read.payload) });
        if f.version == "latest" {
            followed.push(Followed { file: f.clone(), version: read.version });
        }
    }
    Ok((payload, followed))
}

impl InitPayload {
    /// The payload as the init step reads it: one JSON line. Zeroized when dropped.
    pub(crate) fn to_line(&self) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut bytes = Zeroizing::new(
            serde_json::to_vec(self).map_err(|e| format!("cannot prepare the instance's payload: {e}"))?,
        );
        bytes.push(b'\n');
        Ok(bytes)
    }
}

impl Drop for InitPayload {
    fn drop(&mut self) {
        for (_, v) in &mut self.env {
            zeroize::Zeroize::zeroize(v);
        }
        for f in &mut self.files {
            zeroize::Zeroize::zeroize(&mut f.data);
        }
    }
}

/// Google's revision error for an env secret that cannot be read.
fn failed(e: &SecretEnv, why: &str) -> String {
    format!(
        "{}.value_source.secret_key_ref.name: Failed to access secret {}: {why}",
        e.field,
        reference(&e.secret, &e.version)
    )
}

fn failed_file(f: &SecretFile, why: &str) -> String {
    format!("{}: Failed to access secret {} for {}: {why}", f.field, reference(&f.secret, &f.version), f.path)
}

fn reference(secret: &str, version: &str) -> String {
    if secret.starts_with("projects/") {
        format!("{secret}/versions/{version}")
    } else {
        format!("{secret}:{version}")
    }
}

/// Keeps the `latest` files of the instance `pid` current until `exited` resolves.
pub(crate) async fn follow<F: SourceFactory>(
    factory: Arc<F>,
    account: String,
    pid: u32,
    mut files: Vec<Followed>,
    exited: impl std::future::Future<Output = ()>,
    log: impl Fn(String),
) {
    tokio::pin!(exited);
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    loop {
        tokio::select! {
            () = &mut exited => return,
            () = tokio::time::sleep(REFRESH) => {}
        }
        for f in &mut files {
            let now = match factory.secret_version(&account, &f.file.secret, "latest").await {
                Ok(v) => v,
                Err(why) => {
                    log(format!("cannot check {} for a new version: {why}; keeping {}", f.file.path, f.version));
                    continue;
                }
            };
            if now == f.version {
                continue;
            }
            // Read exactly the version just seen (`latest` could move again in between).
            let number = now.rsplit('/').next().unwrap_or(&now);
            match factory.read_secret(&account, &f.file.secret, number).await {
                Ok(read) => match replace(&root, &f.file, &read.payload) {
                    Ok(()) => {
                        log(format!("{} now holds {}", f.file.path, read.version));
                        f.version = read.version;
                    }
                    Err(e) => log(format!("cannot update {}: {e}", f.file.path)),
                },
                Err(why) => log(format!("cannot read {} for {}: {why}; keeping {}", now, f.file.path, f.version)),
            }
        }
    }
}

/// Writes `data` to `file` inside the instance whose root is `root`: a new file beside it, then a rename, so a
/// reader sees the old content or the new, never a part.
///
/// This runs as root on the host, in a directory the app may write to (a secret in its `/tmp`): every name is
/// resolved inside the instance's root and no symlink is followed (`openat2`), the new file is created, never
/// reused, and its owner and mode are set through its descriptor. A symlink the app planted cannot lead outside.
fn replace(root: &Path, file: &SecretFile, data: &[u8]) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags};
    use std::io::Write as _;
    let path = Path::new(&file.path);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Err(std::io::Error::new(std::io::ErrorKind::InvalidInput, "a secret file needs a directory"));
    };
    let inside = ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let root = rustix::fs::open(root, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    let dir = match dir.strip_prefix("/").unwrap_or(dir) {
        rel if rel.as_os_str().is_empty() => Path::new("."),
        rel => rel,
    };
    let dir =
        rustix::fs::openat2(&root, dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty(), inside)?;
    let tmp = format!(".{}.new", name.to_string_lossy());
    match rustix::fs::unlinkat(&dir, tmp.as_str(), AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let created = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat2(&dir, tmp.as_str(), created, Mode::from_raw_mode(0o600), inside)?;
    let mut f = std::fs::File::from(fd);
    f.write_all(data)?;
    f.sync_all()?;
    // The file keeps its owner (the app's uid, in a sandbox).
    if let Ok(now) = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        let (uid, gid) = (rustix::fs::Uid::from_raw(now.st_uid), rustix::fs::Gid::from_raw(now.st_gid));
        rustix::fs::fchown(&f, Some(uid), Some(gid))?;
    }
    rustix::fs::fchmod(&f, Mode::from_raw_mode(file.mode))?;
    rustix::fs::renameat(&dir, tmp.as_str(), &dir, name)?;
    Ok(())
}
