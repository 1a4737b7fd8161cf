//! Where caller connections run: thread per core.
//!
//! [`Workers::start`] runs `n` threads, each with a current-thread tokio runtime of its own; the accept loop
//! ([`crate::serve_on`]) hands each new connection to the next one in turn, and the connection — its requests, its
//! instance connection, its response bodies — stays on that thread for its whole life. Compared with one
//! work-stealing runtime this removes the cross-thread wake-ups (futex calls, cache-line traffic) from every request:
//! on this 2-core machine it was the difference between about 0.7× and 1.0× nginx's throughput (`bench/README.md`).
//! A connection's future is `Send`, so it could run anywhere; it simply never needs to move.
//!
//! [`Workers::current`] runs connections as ordinary tasks of the caller's runtime instead (tests, embedders).
//!
//! Must not: run anything but connections. Work that outlives a connection (starting instances, audit writes) is
//! spawned by the control plane on its own runtime, so stopping the workers loses nothing but open connections.

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Runtimes that run caller connections, chosen round-robin.
pub struct Workers {
    handles: Vec<Handle>,
    next: AtomicUsize,
    /// Stop signals and threads of the runtimes [`Workers::start`] made; empty for [`Workers::current`].
    threads: Mutex<Vec<(oneshot::Sender<()>, JoinHandle<()>)>>,
}

impl Workers {
    /// `n` (at least 1) threads named `gateway-N`, each with its own current-thread runtime.
    pub fn start(n: usize) -> io::Result<Workers> {
        let mut handles = Vec::new();
        let mut threads = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            handles.push(rt.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            let thread = std::thread::Builder::new().name(format!("gateway-{i}")).spawn(move || {
                rt.block_on(async move {
                    let _ = stopped.await;
                });
                // Dropping the runtime drops the connections still on it.
            })?;
            threads.push((stop, thread));
        }
        Ok(Workers { handles, next: AtomicUsize::new(0), threads: Mutex::new(threads) })
    }

    /// One thread per core this process may use.
    pub fn per_core() -> io::Result<Workers> {
        Workers::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// Connections run as tasks of the current tokio runtime (panics outside one).
    pub fn current() -> Workers {
        Workers { handles: vec![Handle::current()], next: AtomicUsize::new(0), threads: Mutex::new(Vec::new()) }
    }

    /// How many runtimes connections are spread over.
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Runs `connection` on the next runtime in turn.
    pub(crate) fn spawn(&self, connection: impl Future<Output = ()> + Send + 'static) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[i].spawn(connection);
    }
}

impl Drop for Workers {
    /// Stops the threads [`Workers::start`] made (their remaining connections are dropped) and waits for them.
    fn drop(&mut self) {
        let threads = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for (stop, thread) in threads {
            let _ = stop.send(());
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn spreads_connections_round_robin_over_its_threads() {
        let workers = Workers::start(2).unwrap();
        assert_eq!(workers.len(), 2);
        let (tx, rx) = std::sync::mpsc::channel();
        for _ in 0..4 {
            let tx = tx.clone();
            workers.spawn(async move {
                tx.send(std::thread::current().name().map(str::to_owned)).unwrap();
            });
        }
        let mut names: Vec<_> = (0..4).map(|_| rx.recv().unwrap().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["gateway-0", "gateway-0", "gateway-1", "gateway-1"]);
        let alive = Arc::new(());
        let held = Arc::clone(&alive);
        workers.spawn(async move {
            let _held = held;
            std::future::pending::<()>().await;
        });
        drop(workers);
        assert_eq!(Arc::strong_count(&alive), 1, "stopping the workers drops their connections");
    }
}
