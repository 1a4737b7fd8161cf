//! Network namespaces: the one module of this crate that touches the kernel (Linux, root).
//!
//! A [`Netns`] is an *unnamed* namespace, held by a file descriptor: it exists exactly as long as the daemon holds
//! the descriptor, a socket made inside it, or a process running in it — so nothing of it outlives a crash of the
//! daemon (no `/run/netns` bind mount to clean up, and the veth pairs inside it go with it).
//!
//! The daemon never moves a long-lived thread into a namespace. It creates one on a short-lived thread of its own
//! ([`Netns::create`]), runs blocking work such as spawning the instance on another ([`Netns::run`]: the process
//! starts inside), and makes sockets inside it by switching the calling thread in and straight back
//! ([`Netns::enter`]): a socket belongs to the namespace it was created in for its whole life.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::process::{Command, Stdio};

use nix::sched::{setns, unshare, CloneFlags};

/// The link-local address the metadata server answers on, inside every sandbox (`169.254.169.254`).
pub const METADATA_IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(169, 254, 169, 254);

/// An unnamed network namespace.
#[derive(Debug)]
pub struct Netns {
    fd: OwnedFd,
}

thread_local! {
    /// The namespace this thread started in, opened once; [`Netns::enter`] returns to it.
    static HOME: Result<OwnedFd, String> = File::open("/proc/thread-self/ns/net")
        .map(OwnedFd::from)
        .map_err(|e| format!("cannot open this thread's network namespace: {e}"));
}

impl Netns {
    /// Creates a namespace with `lo` up and [`METADATA_IP`] on it. `ip` (iproute2) configures the interfaces.
    pub fn create() -> io::Result<Netns> {
        let thread = std::thread::Builder::new().name("netns".into()).spawn(move || -> io::Result<Netns> {
            unshare(CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("cannot create a network namespace (needs root): {e}")))?;
            let fd = OwnedFd::from(File::open("/proc/thread-self/ns/net")?);
            // A child forked while this thread is inside the namespace starts inside it.
            ip_batch(&format!("link set lo up\naddress add {METADATA_IP}/32 dev lo\n"))?;
            Ok(Netns { fd })
        })?;
        thread.join().map_err(|_| io::Error::other("the network namespace thread panicked"))?
    }

    /// Runs `f` with the calling thread inside this namespace, then moves it back. `f` must not block or await:
    /// it is meant for creating sockets.
    pub fn enter<R>(&self, f: impl FnOnce() -> R) -> io::Result<R> {
        HOME.with(|home| {
            let home = home.as_ref().map_err(|e| io::Error::other(e.clone()))?;
            setns(self.fd.as_fd(), CloneFlags::CLONE_NEWNET)
                .map_err(|e| io::Error::other(format!("cannot enter a network namespace: {e}")))?;
            let value = f();
            // INVARIANT: returning to the namespace the thread came from cannot fail while we hold its descriptor;
            // if it ever did, this thread would make its later sockets in the wrong namespace, so stop here.
            if let Err(e) = setns(home.as_fd(), CloneFlags::CLONE_NEWNET) {
                panic!("INVARIANT: cannot return to the daemon's network namespace: {e}");
            }
            Ok(value)
        })
    }

    /// A TCP listener bound to `addr` inside the namespace, non-blocking (for tokio's `from_std`).
    pub fn listen(&self, addr: std::net::SocketAddr) -> io::Result<std::net::TcpListener> {
        let listener = self.enter(|| std::net::TcpListener::bind(addr))??;
        listener.set_nonblocking(true)?;
        Ok(listener)
    }

    /// A UDP socket bound to `addr` inside the namespace, non-blocking.
    pub fn udp(&self, addr: std::net::SocketAddr) -> io::Result<std::net::UdpSocket> {
        let socket = self.enter(|| std::net::UdpSocket::bind(addr))??;
        socket.set_nonblocking(true)?;
        Ok(socket)
    }

    /// Runs `f` on a fresh thread inside the namespace and returns its result: processes spawned there start
    /// inside it. For blocking work (unlike [`Netns::enter`]).
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> io::Result<T> + Send + 'static) -> io::Result<T> {
        let fd = self.fd.try_clone()?;
        std::thread::Builder::new()
            .name("netns".into())
            .spawn(move || -> io::Result<T> {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWNET)
                    .map_err(|e| io::Error::other(format!("cannot enter a network namespace: {e}")))?;
                f()
            })?
            .join()
            .map_err(|_| io::Error::other("the network namespace thread panicked"))?
    }

    /// Runs `ip -batch -` with `commands` inside the namespace.
    pub fn ip(&self, commands: &str) -> io::Result<()> {
        self.command("ip", &["-batch", "-"], commands)
    }

    /// Runs `program args` inside the namespace with `input` on its stdin; Err carries its stderr.
    pub fn command(&self, program: &str, args: &[&str], input: &str) -> io::Result<()> {
        let (program, input) = (program.to_string(), input.to_string());
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        self.run(move || run_command(&program, &args, &input))
    }
}

impl AsFd for Netns {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether network namespaces can be made here (Linux, with the privilege to do so); `Err` says why not.
pub fn available() -> Result<(), String> {
    std::thread::spawn(|| {
        unshare(CloneFlags::CLONE_NEWNET)
            .map_err(|e| format!("cannot create network namespaces ({e}); run as root"))?;
        // Both tools every sandbox needs: `ip` links it, `nft` filters what it accepts (and NATs VPC routers).
        for (program, flag, package) in [("ip", "-V", "iproute2"), ("nft", "--version", "nftables")] {
            let out = Command::new(program).arg(flag).stdout(Stdio::null()).stderr(Stdio::null()).status();
            if !out.is_ok_and(|s| s.success()) {
                return Err(format!("`{program}` ({package}) is not installed"));
            }
        }
        Ok(())
    })
    .join()
    .unwrap_or_else(|_| Err("the probe thread panicked".into()))
}

/// Runs `ip -batch -` in the calling thread's namespace.
fn ip_batch(commands: &str) -> io::Result<()> {
    run_command("ip", &["-batch".to_string(), "-".to_string()], commands)
}

/// Runs `program` in the calling thread's namespace, `input` on its stdin.
fn run_command(program: &str, args: &[String], input: &str) -> io::Result<()> {
    use std::io::Write as _;
    let package = match program {
        "ip" => "iproute2",
        "nft" => "nftables",
        other => other,
    };
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| io::Error::other(format!("cannot run `{program}` (install {package}): {e}")))?;
    // The child is always waited for (no zombie), and its own complaint wins over a broken pipe.
    let written = child.stdin.take().map_or(Ok(()), |mut stdin| stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output()?;
    if out.status.success() {
        written?;
        return Ok(());
    }
    Err(io::Error::other(format!(
        "`{program}` failed configuring a network namespace: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> bool {
        nix::unistd::Uid::effective().is_root()
    }

    #[test]
    fn a_namespace_has_its_own_loopback_and_the_metadata_address() {
        assert!(
            root() || std::env::var_os("GATEHOUSE_TEST_NO_SANDBOX").is_some(),
            "this test needs root (network namespaces); run as root or set GATEHOUSE_TEST_NO_SANDBOX=1 on purpose"
        );
        if !root() {
            return;
        }
        let ns = Netns::create().unwrap();
        let listener = ns.listen((METADATA_IP, 80).into()).unwrap();
        let port = ns.listen(([127, 0, 0, 1], 0).into()).unwrap().local_addr().unwrap().port();
        // The host does not see the namespace's listeners, the namespace does.
        assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
        let inside = ns.enter(|| std::net::TcpStream::connect((METADATA_IP, 80))).unwrap();
        assert!(inside.is_ok(), "{inside:?}");
        drop(listener);
        // No route off the namespace: only loopback exists.
        let out = ns.enter(|| std::net::TcpStream::connect(("192.0.2.1", 80))).unwrap();
        assert_eq!(out.unwrap_err().raw_os_error(), Some(nix::libc::ENETUNREACH));
    }
}
