//! Builds the audit entry of an API call: every mutation (`ADMIN_WRITE`, in the same transaction as the change) and
//! every denied call. Request bodies recorded here never contain secret material.

use crate::auth::Caller;
use crate::state::App;
use audit::{EntryBuilder, PermissionType};
use model::ApiError;
use serde_json::Value;
use std::time::SystemTime;

/// One API call, as the audit log describes it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub service: &'static str,
    pub method: &'static str,
    /// The resource name as Google's logs show it (relative, e.g. `projects/p/serviceAccounts/x`).
    pub resource_name: String,
    /// Full resource name the permission was checked on.
    pub full_resource_name: String,
    pub permission: String,
    pub permission_type: PermissionType,
    pub granted: bool,
    pub request: Option<Value>,
}

impl Call {
    pub fn new(service: &'static str, method: &'static str, resource_name: impl Into<String>) -> Call {
        Call {
            service,
            method,
            resource_name: resource_name.into(),
            full_resource_name: String::new(),
            permission: String::new(),
            permission_type: PermissionType::AdminWrite,
            granted: true,
            request: None,
        }
    }

    pub fn reading(mut self) -> Call {
        self.permission_type = PermissionType::AdminRead;
        self
    }

    /// The permission the call needs on `full_resource_name`.
    pub fn needs(mut self, permission: &str, full_resource_name: &str) -> Call {
        self.permission = permission.to_owned();
        self.full_resource_name = full_resource_name.to_owned();
        self
    }

    pub fn with_request(mut self, request: Value) -> Call {
        self.request = Some(request);
        self
    }

    pub(crate) fn denied(&self, permission: &str, full_resource_name: &str) -> Call {
        let mut c = self.clone().needs(permission, full_resource_name);
        c.granted = false;
        c
    }

    /// The serialized LogEntry; `error` is the call's failure, if any.
    pub fn entry(&self, app: &App, caller: &Caller, error: Option<&ApiError>) -> String {
        let kind = self.permission_type.log_kind();
        let mut b = EntryBuilder::new(
            &app.project.project_id,
            self.service,
            self.method,
            &self.resource_name,
            SystemTime::now(),
        )
        .caller(&caller.ip, &caller.user_agent)
        .kind(kind);
        if let Some(email) = caller.email() {
            b = b.principal(email);
        }
        if !self.permission.is_empty() {
            let resource = self.full_resource_name.trim_start_matches("//");
            let resource = resource.split_once('/').map(|(_, r)| r).unwrap_or(resource);
            b = b.authorization(resource, &self.permission, self.granted, self.permission_type);
        }
        if let Some(e) = error {
            b = b.status(e.code.rpc_code(), &e.message);
        }
        if let Some(r) = &self.request {
            b = b.request(r.clone());
        }
        let entry = b.build(audit::new_insert_id(tokens::random_u64()));
        serde_json::to_string(&entry).expect("a LogEntry always serializes")
    }
}

/// Group commit for audit entries that are not part of a mutation (Data Access reads, denials).
///
/// One writer thread appends whatever is queued in one transaction, and under load it never sleeps: the next batch
/// queues while the current one is being written. Each caller is told once its own entry is committed: an async
/// waiter ([`AuditQueue::submit`], so the request's thread is free meanwhile) or a blocking one
/// ([`AuditQueue::append`]). Callers answer only after that, so "every call is recorded before it is answered" stays
/// true.
///
/// The commits are [`store::Store::write_unflushed`]: in the WAL, so they survive a crash or `kill -9` of the daemon,
/// and flushed by the next durable write or checkpoint. The trade-off, chosen for the volume of Data Access entries
/// (one per secret read): a crash of the whole machine can lose the entries of the last few reads, as Cloud Audit Logs'
/// own asynchronous delivery can. An fsync per batch cost about 290 µs per read at one connection (bench/README.md).
///
/// The gateway's refusals are recorded without a waiter ([`AuditQueue::record`]): the refusal is answered at once and
/// its entry follows in the next batch. Those are bounded ([`MAX_UNWAITED`]), so a flood of refused requests cannot
/// grow the daemon's memory without limit; readers of the log call [`AuditQueue::settle`] first, so an entry queued
/// before a read is in that read.
pub(crate) struct AuditQueue {
    shared: std::sync::Arc<Shared>,
}

/// Entries queued without a waiter ([`AuditQueue::record`]) that may wait for the writer at once; more are dropped
/// and counted (about 1 KB each: at most ~20 MB).
pub(crate) const MAX_UNWAITED: usize = 20_000;

struct Shared {
    state: std::sync::Mutex<Queued>,
    /// The writer waits here for entries.
    wake: std::sync::Condvar,
    /// [`AuditQueue::settle`] waits here for batches to commit.
    committed: std::sync::Condvar,
}

#[derive(Default)]
struct Queued {
    pending: Vec<(String, Waiter)>,
    /// Of `pending`, the entries without a waiter.
    unwaited: usize,
    /// Entries ever queued, and of those how many the writer has finished with (committed or failed).
    queued: u64,
    done: u64,
    /// Entries without a waiter dropped since the writer last reported it.
    dropped: u64,
    closed: bool,
}

/// Who learns the outcome of an entry's transaction: `true` once it committed.
enum Waiter {
    Async(tokio::sync::oneshot::Sender<bool>),
    Blocking(std::sync::mpsc::SyncSender<bool>),
    /// Nobody: [`AuditQueue::record`].
    Nobody,
}

impl AuditQueue {
    /// Starts the writer thread over `store`; it stops when the queue is dropped, after writing what was queued.
    pub fn start(store: std::sync::Arc<store::Store>) -> AuditQueue {
        let queue = AuditQueue::idle();
        queue.start_writer(store);
        queue
    }

    /// A queue with no writer yet.
    fn idle() -> AuditQueue {
        AuditQueue {
            shared: std::sync::Arc::new(Shared {
                state: Default::default(),
                wake: std::sync::Condvar::new(),
                committed: std::sync::Condvar::new(),
            }),
        }
    }

    fn start_writer(&self, store: std::sync::Arc<store::Store>) {
        let writer = self.shared.clone();
        std::thread::Builder::new()
            .name("audit-writer".into())
            .spawn(move || writer.run(&store))
            .expect("the audit writer thread starts");
    }

    /// Queues `entry`; the receiver reports whether it is durable (`true`) or its transaction failed (`false`).
    pub fn submit(&self, entry: String) -> tokio::sync::oneshot::Receiver<bool> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.shared.push(entry, Waiter::Async(tx));
        rx
    }

    /// Queues `entry` and blocks until it is durable. `Err` when its transaction failed (logged by the writer).
    pub fn append(&self, entry: String) -> Result<(), ()> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.shared.push(entry, Waiter::Blocking(tx));
        match rx.recv() {
            Ok(true) => Ok(()),
            _ => Err(()),
        }
    }

    /// Queues `entry` without waiting for it. `false` when [`MAX_UNWAITED`] such entries are already waiting for
    /// the writer: the entry is dropped, and the writer reports how many were in the daemon's log.
    pub fn record(&self, entry: String) -> bool {
        let mut q = self.shared.lock();
        if q.unwaited >= MAX_UNWAITED {
            q.dropped += 1;
            return false;
        }
        q.unwaited += 1;
        self.shared.push_locked(&mut q, entry, Waiter::Nobody);
        true
    }

    /// Waits (up to `limit`) until every entry queued before this call has been written: what a reader of the log
    /// calls first. `false` if the limit passed first.
    pub fn settle(&self, limit: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let mut q = self.shared.lock();
        let target = q.queued;
        while q.done < target {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            q = self.shared.committed.wait_timeout(q, left).unwrap_or_else(|p| p.into_inner()).0;
        }
        true
    }
}

impl Drop for AuditQueue {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
    }
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queued> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn push(&self, entry: String, waiter: Waiter) {
        let mut q = self.lock();
        self.push_locked(&mut q, entry, waiter);
    }

    fn push_locked(&self, q: &mut Queued, entry: String, waiter: Waiter) {
        q.pending.push((entry, waiter));
        q.queued += 1;
        // The writer sleeps only on an empty queue.
        if q.pending.len() == 1 {
            self.wake.notify_one();
        }
    }

    fn run(&self, store: &store::Store) {
        loop {
            let batch = {
                let mut q = self.lock();
                while q.pending.is_empty() && !q.closed {
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                if q.pending.is_empty() {
                    return;
                }
                if q.dropped > 0 {
                    tracing::warn!(
                        dropped = q.dropped,
                        "audit: requests were refused faster than the audit log could record them; that many refusals \
                         were not recorded"
                    );
                    q.dropped = 0;
                }
                q.unwaited = 0;
                std::mem::take(&mut q.pending)
            };
            let written = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                store.write_unflushed(|tx| tx.append_audit_all(batch.iter().map(|(entry, _)| entry.as_str())))
            }));
            let ok = match written {
                Ok(Ok(())) => true,
                Ok(Err(e)) => {
                    tracing::error!(error = %e, entries = batch.len(), "could not record calls in the audit log");
                    false
                }
                Err(_) => {
                    tracing::error!(entries = batch.len(), "the audit writer panicked; the calls were not recorded");
                    false
                }
            };
            let written = batch.len() as u64;
            for (_, waiter) in batch {
                match waiter {
                    Waiter::Async(tx) => {
                        let _ = tx.send(ok);
                    }
                    Waiter::Blocking(tx) => {
                        let _ = tx.try_send(ok);
                    }
                    Waiter::Nobody => {}
                }
            }
            self.lock().done += written;
            self.committed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unwaited_entries_are_bounded_and_a_reader_settles_after_them() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(store::Store::open(&dir.path().join("state.db")).unwrap());
        // No writer yet: everything queued stays queued.
        let queue = AuditQueue::idle();
        for i in 0..MAX_UNWAITED {
            assert!(queue.record(format!("{{\"i\":{i}}}")), "entry {i} was refused below the bound");
        }
        assert!(!queue.record("{\"i\":\"over\"}".into()), "the bound let one more in");
        assert!(!queue.settle(std::time::Duration::from_millis(50)), "settled with nothing written");
        queue.start_writer(store.clone());
        assert!(queue.settle(std::time::Duration::from_secs(30)));
        // Settled means written: every entry queued before `settle` is in the log, the dropped one is not.
        let rows = store.read(|tx| tx.audit_rows(0, usize::MAX)).unwrap();
        assert_eq!(rows.len(), MAX_UNWAITED);
        assert!(rows.iter().all(|r| !r.entry.contains("over")));
        // Room again once the writer has taken the batch.
        assert!(queue.record("{\"i\":\"after\"}".into()));
        assert!(queue.settle(std::time::Duration::from_secs(5)));
        let last = store.read(|tx| tx.audit_rows(MAX_UNWAITED as i64, 10)).unwrap();
        assert_eq!(last.iter().map(|r| r.entry.as_str()).collect::<Vec<_>>(), ["{\"i\":\"after\"}"]);
    }

    #[test]
    fn group_commit_records_every_entry_once_in_one_chain() {
        let dir = tempfile::tempdir().unwrap();
        let store = std::sync::Arc::new(store::Store::open(&dir.path().join("state.db")).unwrap());
        let queue = AuditQueue::start(store.clone());
        std::thread::scope(|s| {
            for t in 0..16 {
                let (store, queue) = (&store, &queue);
                s.spawn(move || {
                    for i in 0..50 {
                        let entry = format!("{{\"t\":{t},\"i\":{i}}}");
                        if i % 2 == 0 {
                            queue.append(entry).unwrap();
                        } else {
                            assert!(queue.submit(entry).blocking_recv().unwrap());
                        }
                        // Committed and visible the moment `append` returns.
                        let rows = store.read(|tx| tx.audit_rows(0, usize::MAX)).unwrap();
                        assert!(rows.iter().any(|r| r.entry == format!("{{\"t\":{t},\"i\":{i}}}")));
                    }
                });
            }
        });
        let rows = store.read(|tx| tx.audit_rows(0, usize::MAX)).unwrap();
        assert_eq!(rows.len(), 16 * 50);
        let mut entries: Vec<&str> = rows.iter().map(|r| r.entry.as_str()).collect();
        entries.sort_unstable();
        entries.dedup();
        assert_eq!(entries.len(), 16 * 50, "an entry was written twice");
        let mut prev = audit::GENESIS.to_owned();
        for r in &rows {
            assert_eq!(r.hash, audit::chain_hash(&prev, r.entry.as_bytes()), "the chain breaks at {}", r.seq);
            prev.clone_from(&r.hash);
        }
    }
}
