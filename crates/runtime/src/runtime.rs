//! The state machine: services → serving and draining revisions → instance slots; deploy, acquire/release, crash
//! handling, the idle reaper, removal and shutdown.
//!
//! All bookkeeping sits behind one mutex that is never held across an `.await`; process starts and stops run in
//! tasks. Waiting requests sleep on the service's `Notify`, which is pinged whenever a slot frees, an instance
//! becomes ready or goes away, or the serving revision changes.
//!
//! **Architecture Invariant:** nothing here looks at the caller; access was decided before `acquire`.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::{oneshot, Notify};
use tokio::time::Instant;

use crate::contract::new_instance_id;
use crate::instance::{self, StartContext, StartFailure, Started};
use crate::logs::LogRing;
use crate::scaling::{self, Phase, Slot};
use crate::spawn::{self, Proc};
use crate::{AcquireError, DeployError, LogLine, RevisionSpec, RuntimeConfig, ServiceStatus, SourceFactory, Stream};

/// Grace between SIGTERM and SIGKILL when an instance is stopped.
const STOP_GRACE: Duration = Duration::from_secs(5);
/// How often the reaper looks for idle instances and missing minimum instances.
const REAP_EVERY: Duration = Duration::from_millis(250);
/// After a minimum instance failed to start, wait this long before the reaper tries again.
const MIN_RETRY: Duration = Duration::from_secs(5);

struct State {
    services: HashMap<String, Service>,
    closed: bool,
}

struct Service {
    serving: Option<Revision>,
    /// Replaced revisions whose instances still finish requests.
    draining: Vec<Revision>,
    notify: Arc<Notify>,
    /// Requests waiting in `acquire` (a counter the waiters decrement themselves when they leave).
    queued: Arc<AtomicUsize>,
    ring: Arc<LogRing>,
}

struct Revision {
    spec: Arc<RevisionSpec>,
    slots: Vec<Slot>,
    /// No minimum-instance start before this instant (set after one failed).
    retry_min_after: Option<Instant>,
}

impl Revision {
    fn new(spec: Arc<RevisionSpec>) -> Revision {
        Revision { spec, slots: Vec::new(), retry_min_after: None }
    }
}

/// Every live instance process, so that shutdown finds even the ones still starting.
struct Procs {
    live: HashMap<String, Arc<Proc>>,
    closed: bool,
}

/// An instance the state already counts (a `Starting` slot) and that a task must now launch.
struct PlannedStart {
    spec: Arc<RevisionSpec>,
    id: String,
}

/// Runs revisions as instances. See the crate docs.
pub struct Runtime<F: SourceFactory> {
    me: Weak<Runtime<F>>,
    config: RuntimeConfig,
    factory: Arc<F>,
    handle: tokio::runtime::Handle,
    state: Mutex<State>,
    procs: Mutex<Procs>,
}

/// A process run by [`Runtime::run_host`]. Dropping it kills the process.
pub struct Host {
    proc: Arc<Proc>,
    ring: Arc<LogRing>,
}

impl Host {
    /// SIGTERM, SIGKILL after a grace period.
    pub async fn stop(&self) {
        self.proc.stop(Duration::from_secs(2)).await;
    }

    /// Its output and exit, oldest first.
    pub fn logs(&self, limit: usize) -> Vec<LogLine> {
        self.ring.tail(limit)
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.proc.kill_now();
    }
}

/// A slot on a ready instance. Dropping it frees the slot and marks the instance used now.
pub struct Lease {
    pub addr: SocketAddr,
    /// The instance's network namespace, when it runs in a sandbox: `addr` is an address inside it.
    pub netns: Option<Arc<network::netns::Netns>>,
    pub revision: String,
    pub instance: String,
    _guard: LeaseGuard,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("addr", &self.addr)
            .field("revision", &self.revision)
            .field("instance", &self.instance)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// The instance refused a connection to its port: take it out of service now, as if it had exited (it has
    /// crashed and not been reaped yet, or it closed its listener and cannot serve again), and stop it. The next
    /// [`Runtime::acquire`] picks another instance or starts one. Frees the slot as dropping does.
    pub fn refused(self) {
        if let Some(owner) = self._guard.owner.upgrade() {
            owner.refused(&self._guard.service, &self._guard.instance);
        }
    }
}

/// Lets a [`Lease`] (which is not generic) give its slot back.
trait Release: Send + Sync {
    fn release(&self, service: &str, instance: &str);
    fn refused(&self, service: &str, instance: &str);
}

struct LeaseGuard {
    owner: Weak<dyn Release>,
    service: String,
    instance: String,
}

impl Drop for LeaseGuard {
    fn drop(&mut self) {
        if let Some(owner) = self.owner.upgrade() {
            owner.release(&self.service, &self.instance);
        }
    }
}

/// Counts one waiting request for as long as it lives.
struct Queued(Arc<AtomicUsize>);

impl Queued {
    fn enter(counter: &Arc<AtomicUsize>) -> Queued {
        counter.fetch_add(1, Ordering::SeqCst);
        Queued(counter.clone())
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl<F: SourceFactory> Runtime<F> {
    /// A runtime with no services. Spawns the idle reaper on the current tokio runtime (panics outside one).
    pub fn new(config: RuntimeConfig, factory: F) -> Arc<Self> {
        let handle = tokio::runtime::Handle::current();
        let runtime = Arc::new_cyclic(|me| Runtime {
            me: me.clone(),
            config,
            factory: Arc::new(factory),
            handle: handle.clone(),
            state: Mutex::new(State { services: HashMap::new(), closed: false }),
            procs: Mutex::new(Procs { live: HashMap::new(), closed: false }),
        });
        let weak = Arc::downgrade(&runtime);
        handle.spawn(async move {
            let mut tick = tokio::time::interval(REAP_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(runtime) = weak.upgrade() else { return };
                if runtime.reap() {
                    return;
                }
            }
        });
        runtime
    }

    /// Makes `spec` the serving revision of its service once one instance of it is ready; the previous revision's
    /// instances then drain and stop. On failure the previous revision keeps serving.
    pub async fn deploy(&self, spec: RevisionSpec) -> Result<(), DeployError> {
        let spec = Arc::new(spec);
        let ring = {
            let mut state = lock(&self.state);
            if state.closed {
                return Err(DeployError::Spawn("the runtime is shutting down".to_string()));
            }
            let log_lines = self.config.log_lines;
            state.services.entry(spec.service.clone()).or_insert_with(|| Service::new(log_lines)).ring.clone()
        };
        let id = new_instance_id();
        let started = match self.launch(&spec, &id, ring.clone()).await {
            Ok(started) => started,
            Err(failure) => {
                ring.push(start_failed_line(&spec.revision, &id, &failure));
                return Err(match failure {
                    StartFailure::NotReady { reason, last_logs } => DeployError::NotReady { reason, last_logs },
                    StartFailure::Spawn(reason) => DeployError::Spawn(reason),
                });
            }
        };

        let installed = {
            let mut state = lock(&self.state);
            let closed = state.closed;
            match state.services.get_mut(&spec.service) {
                Some(service) if !closed => {
                    let mut revision = Revision::new(spec.clone());
                    revision.slots.push(ready_slot(id.clone(), started));
                    if let Some(old) = service.serving.replace(revision) {
                        service.draining.push(old);
                    }
                    let stops = service.drain_idle();
                    let starts = service.plan_min();
                    service.notify.notify_waiters();
                    Ok((stops, starts))
                }
                _ => Err(started),
            }
        };
        let (stops, starts) = match installed {
            Ok(planned) => planned,
            Err(started) => {
                started.proc.stop(STOP_GRACE).await;
                return Err(DeployError::Spawn(format!(
                    "the service `{}` was removed while its revision was starting",
                    spec.service
                )));
            }
        };
        tracing::info!(service = %spec.service, revision = %spec.revision, instance = %id, "runtime: revision serving");
        self.stop_detached(stops);
        self.start_all(starts);
        Ok(())
    }

    /// Serves `spec` without starting an instance first: what a platform restart does for every service's serving
    /// revision, which was ready when it was deployed. Its instances start as for any revision at zero (the first
    /// request waits for one; `min_instances` start now), and a start that fails is answered then, with its reason.
    pub fn restore(&self, spec: RevisionSpec) {
        let (stops, starts) = {
            let mut state = lock(&self.state);
            if state.closed {
                return;
            }
            let log_lines = self.config.log_lines;
            let service = state.services.entry(spec.service.clone()).or_insert_with(|| Service::new(log_lines));
            if let Some(old) = service.serving.replace(Revision::new(Arc::new(spec))) {
                service.draining.push(old);
            }
            let stops = service.drain_idle();
            let starts = service.plan_min();
            service.notify.notify_waiters();
            (stops, starts)
        };
        self.stop_detached(stops);
        self.start_all(starts);
    }

    /// A slot on a ready instance of the service's serving revision; see the crate docs for the scaling rules.
    pub async fn acquire(&self, service: &str) -> Result<Lease, AcquireError> {
        let began = Instant::now();
        let mut deadline: Option<Instant> = None;
        let mut pending: Option<oneshot::Receiver<Result<(), StartFailure>>> = None;
        let mut failure: Option<StartFailure> = None;
        let mut queued: Option<Queued> = None;
        loop {
            let notify = {
                let state = lock(&self.state);
                match state.services.get(service) {
                    Some(svc) if !state.closed && svc.serving.is_some() => svc.notify.clone(),
                    _ => return Err(AcquireError::NoRevision),
                }
            };
            // Registered before looking at the state, so no wake-up between the look and the wait is lost.
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();

            let (until, start) = {
                let mut state = lock(&self.state);
                let Some(svc) = state.services.get_mut(service) else { return Err(AcquireError::NoRevision) };
                let Some(rev) = svc.serving.as_mut() else { return Err(AcquireError::NoRevision) };
                let until = *deadline.get_or_insert(began + rev.spec.request_timeout);
                if let Some(i) = scaling::pick(&rev.slots, rev.spec.concurrency) {
                    let slot = &mut rev.slots[i];
                    slot.in_flight += 1;
                    slot.last_used = Instant::now();
                    let owner: Weak<dyn Release> = self.me.clone();
                    return Ok(Lease {
                        addr: slot.addr.expect("a ready slot has an address"),
                        netns: slot.netns.clone(),
                        revision: rev.spec.revision.clone(),
                        instance: slot.id.clone(),
                        _guard: LeaseGuard { owner, service: service.to_string(), instance: slot.id.clone() },
                    });
                }
                if let Some(failure) = failure.take() {
                    return Err(match failure {
                        StartFailure::NotReady { reason, last_logs } => AcquireError::Failed { reason, last_logs },
                        StartFailure::Spawn(reason) => AcquireError::Failed { reason, last_logs: Vec::new() },
                    });
                }
                if queued.is_none() {
                    queued = Some(Queued::enter(&svc.queued));
                }
                let waiting = svc.queued.load(Ordering::SeqCst);
                let mut start = None;
                if pending.is_none()
                    && scaling::should_start(&rev.slots, rev.spec.concurrency, rev.spec.max_instances, waiting)
                {
                    let id = new_instance_id();
                    rev.slots.push(Slot::starting(id.clone(), Instant::now()));
                    start = Some(PlannedStart { spec: rev.spec.clone(), id });
                }
                (until, start)
            };
            if let Some(start) = start {
                pending = Some(self.spawn_start(start));
            }

            tokio::select! {
                _ = &mut notified => {}
                result = async { pending.as_mut().expect("guarded by the branch condition").await }, if pending.is_some() => {
                    pending = None;
                    if let Ok(Err(f)) = result {
                        failure = Some(f);
                    }
                }
                _ = tokio::time::sleep_until(until) => {
                    return Err(AcquireError::Timeout { waited: began.elapsed() });
                }
            }
        }
    }

    /// Stops every instance of the service and forgets it (its logs too).
    pub async fn remove(&self, service: &str) {
        let removed = lock(&self.state).services.remove(service);
        let Some(removed) = removed else { return };
        removed.notify.notify_waiters();
        let procs = removed
            .serving
            .iter()
            .chain(removed.draining.iter())
            .flat_map(|rev| rev.slots.iter().filter_map(|s| s.proc.clone()))
            .collect();
        stop_all(procs).await;
    }

    /// The serving revision and its instance counts; `None` when the service has no serving revision.
    pub fn status(&self, service: &str) -> Option<ServiceStatus> {
        let state = lock(&self.state);
        let svc = state.services.get(service)?;
        let rev = svc.serving.as_ref()?;
        let count = |phase| rev.slots.iter().filter(|s| s.phase == phase).count() as u32;
        let in_flight =
            svc.serving.iter().chain(svc.draining.iter()).flat_map(|r| r.slots.iter()).map(|s| s.in_flight).sum();
        Some(ServiceStatus {
            revision: rev.spec.revision.clone(),
            ready_instances: count(Phase::Ready),
            starting_instances: count(Phase::Starting),
            in_flight,
            queued: svc.queued.load(Ordering::SeqCst) as u32,
        })
    }

    /// The service's newest `limit` log lines, newest last.
    pub fn logs(&self, service: &str, limit: usize) -> Vec<LogLine> {
        let ring = lock(&self.state).services.get(service).map(|s| s.ring.clone());
        ring.map(|r| r.tail(limit)).unwrap_or_default()
    }

    /// Appends a line (the gateway's request lines) to the service's log; ignored for unknown services.
    pub fn record(&self, service: &str, line: LogLine) {
        let ring = lock(&self.state).services.get(service).map(|s| s.ring.clone());
        if let Some(ring) = ring {
            ring.push(line);
        }
    }

    /// Stops every instance (SIGTERM to each process group, SIGKILL after 5 s) and waits for them. Afterwards
    /// deploys fail and acquires find no revision.
    pub async fn shutdown(&self) {
        {
            let mut state = lock(&self.state);
            state.closed = true;
            for (_, svc) in state.services.drain() {
                svc.notify.notify_waiters();
            }
        }
        let procs = {
            let mut procs = lock(&self.procs);
            procs.closed = true;
            procs.live.values().cloned().collect()
        };
        stop_all(procs).await;
    }

    /// Runs `spec` (port 0, one process, no scaling) in a sandbox of its own: a VPC host. It runs until it exits or
    /// the [`Host`] is stopped or dropped; nothing restarts it.
    pub async fn run_host(&self, spec: RevisionSpec) -> Result<Host, String> {
        let ring = Arc::new(LogRing::new(self.config.log_lines));
        let id = crate::contract::new_instance_id();
        let (log, revision, instance) = (ring.clone(), spec.revision.clone(), id.clone());
        let on_exit: spawn::OnExit = Box::new(move |status| {
            let text = format!("exited with {}", spawn::describe(status));
            log.push(LogLine::now(&revision, &instance, Stream::System, text));
        });
        let ctx = StartContext {
            instance_id: id,
            source: self.factory.source(&spec.identity.email),
            ring: ring.clone(),
            on_exit,
            register: Box::new(|_| true),
            secrets: None,
        };
        let spec = RevisionSpec { port: 0, ..spec };
        let started = instance::start(&spec, &self.config, ctx).await.map_err(|f| f.reason().to_string())?;
        Ok(Host { proc: started.proc, ring })
    }

    /// Launches one instance of `spec` with its metadata server and waits for readiness.
    async fn launch(&self, spec: &RevisionSpec, id: &str, ring: Arc<LogRing>) -> Result<Started, StartFailure> {
        let me = self.me.clone();
        let service = spec.service.clone();
        let instance = id.to_string();
        let on_exit: spawn::OnExit = Box::new(move |status| {
            if let Some(runtime) = me.upgrade() {
                runtime.instance_exited(&service, &instance, status);
            }
        });
        let me = self.me.clone();
        let instance = id.to_string();
        let register = Box::new(move |proc: &Arc<Proc>| match me.upgrade() {
            Some(runtime) => {
                let mut procs = lock(&runtime.procs);
                if procs.closed || proc.exit_status().is_some() {
                    !procs.closed
                } else {
                    procs.live.insert(instance, proc.clone());
                    true
                }
            }
            None => false,
        });
        let (secrets, followed) = if spec.secret_env.is_empty() && spec.secret_files.is_empty() {
            (None, Vec::new())
        } else {
            match crate::secrets::resolve(&*self.factory, spec).await {
                Ok((payload, followed)) => (Some(payload), followed),
                Err(reason) => {
                    ring.push(LogLine::now(&spec.revision, id, Stream::System, reason.clone()));
                    return Err(StartFailure::Spawn(reason));
                }
            }
        };
        let ctx = StartContext {
            instance_id: id.to_string(),
            source: self.factory.source(&spec.identity.email),
            ring: ring.clone(),
            on_exit,
            register,
            secrets,
        };
        let started = instance::start(spec, &self.config, ctx).await?;
        if !followed.is_empty() {
            let (factory, account, pid) = (self.factory.clone(), spec.identity.email.clone(), started.proc.pid());
            let proc = started.proc.clone();
            let (revision, instance) = (spec.revision.clone(), id.to_string());
            tokio::spawn(async move {
                let exited = async move {
                    proc.wait().await;
                };
                let log = |text: String| ring.push(LogLine::now(&revision, &instance, Stream::System, text));
                crate::secrets::follow(factory, account, pid, followed, exited, log).await;
            });
        }
        Ok(started)
    }

    /// Launches a planned instance in a task; the receiver learns whether it became ready.
    fn spawn_start(&self, planned: PlannedStart) -> oneshot::Receiver<Result<(), StartFailure>> {
        let (tx, rx) = oneshot::channel();
        let Some(runtime) = self.me.upgrade() else { return rx };
        let ring = lock(&self.state).services.get(&planned.spec.service).map(|s| s.ring.clone());
        let Some(ring) = ring else {
            let _ = tx.send(Err(StartFailure::Spawn("the service was removed".to_string())));
            return rx;
        };
        self.handle.spawn(async move {
            let result = runtime.launch(&planned.spec, &planned.id, ring).await;
            let outcome = runtime.finish_start(&planned, result);
            let _ = tx.send(outcome);
        });
        rx
    }

    fn start_all(&self, starts: Vec<PlannedStart>) {
        for planned in starts {
            drop(self.spawn_start(planned));
        }
    }

    /// Records the outcome of a launch in its slot (if the slot still exists).
    fn finish_start(&self, planned: &PlannedStart, result: Result<Started, StartFailure>) -> Result<(), StartFailure> {
        let service_name = &planned.spec.service;
        let mut stops = Vec::new();
        let outcome = {
            let mut state = lock(&self.state);
            let Some(svc) = state.services.get_mut(service_name) else {
                drop(state);
                if let Ok(started) = result {
                    self.stop_detached(vec![started.proc]);
                }
                return Ok(());
            };
            let serving = svc.serving.as_mut().and_then(|rev| {
                let i = rev.slots.iter().position(|s| s.id == planned.id)?;
                Some((rev, i))
            });
            let outcome = match (serving, result) {
                (Some((rev, i)), Ok(started)) => {
                    rev.slots[i] = ready_slot(planned.id.clone(), started);
                    Ok(())
                }
                (Some((rev, i)), Err(failure)) => {
                    rev.slots.remove(i);
                    rev.retry_min_after = Some(Instant::now() + MIN_RETRY);
                    svc.ring.push(start_failed_line(&planned.spec.revision, &planned.id, &failure));
                    Err(failure)
                }
                // Not (or no longer) in the serving revision: a replaced revision's or a removed slot.
                (None, Ok(started)) => {
                    for rev in &mut svc.draining {
                        rev.slots.retain(|s| s.id != planned.id);
                    }
                    stops.push(started.proc);
                    Ok(())
                }
                (None, Err(failure)) => {
                    for rev in &mut svc.draining {
                        rev.slots.retain(|s| s.id != planned.id);
                    }
                    Err(failure)
                }
            };
            svc.draining.retain(|r| !r.slots.is_empty());
            svc.notify.notify_waiters();
            outcome
        };
        self.stop_detached(stops);
        outcome
    }

    /// A ready slot gives its request back.
    fn release_slot(&self, service: &str, instance: &str) {
        let mut stops = Vec::new();
        {
            let mut state = lock(&self.state);
            let Some(svc) = state.services.get_mut(service) else { return };
            let now = Instant::now();
            if let Some(slot) = svc.serving.as_mut().and_then(|r| r.slots.iter_mut().find(|s| s.id == instance)) {
                slot.in_flight = slot.in_flight.saturating_sub(1);
                slot.last_used = now;
            } else {
                for rev in &mut svc.draining {
                    if let Some(slot) = rev.slots.iter_mut().find(|s| s.id == instance) {
                        slot.in_flight = slot.in_flight.saturating_sub(1);
                        slot.last_used = now;
                    }
                }
                stops = svc.drain_idle();
            }
            svc.notify.notify_waiters();
        }
        self.stop_detached(stops);
    }

    /// The process of an instance exited. A ready instance that exits on its own has crashed: remove it, log it,
    /// and start a replacement if the revision is below its minimum. Starting instances are handled by their launch.
    fn instance_exited(&self, service: &str, instance: &str, status: std::process::ExitStatus) {
        lock(&self.procs).live.remove(instance);
        let starts = {
            let mut state = lock(&self.state);
            let Some(svc) = state.services.get_mut(service) else { return };
            let mut crashed = None;
            for rev in svc.serving.iter_mut().chain(svc.draining.iter_mut()) {
                if let Some(i) = rev.slots.iter().position(|s| s.id == instance && s.phase == Phase::Ready) {
                    rev.slots.remove(i);
                    crashed = Some(rev.spec.revision.clone());
                    break;
                }
            }
            let Some(revision) = crashed else { return };
            let text = format!("instance {instance} exited with {}", spawn::describe(status));
            tracing::info!(%service, %revision, "runtime: {text}");
            svc.ring.push(LogLine::now(&revision, instance, Stream::System, text));
            svc.draining.retain(|r| !r.slots.is_empty());
            svc.notify.notify_waiters();
            svc.plan_min()
        };
        self.start_all(starts);
    }

    /// One reaper pass: stop idle instances (down to the minimum), start missing minimum instances. Returns whether
    /// the runtime is shut down (then the reaper ends).
    fn reap(&self) -> bool {
        let now = Instant::now();
        let mut stops = Vec::new();
        let mut starts = Vec::new();
        {
            let mut state = lock(&self.state);
            if state.closed {
                return true;
            }
            for (name, svc) in state.services.iter_mut() {
                stops.extend(svc.drain_idle());
                if let Some(rev) = svc.serving.as_mut() {
                    let mut victims =
                        scaling::idle_victims(&rev.slots, now, self.config.idle_timeout, rev.spec.min_instances);
                    victims.sort_unstable_by(|a, b| b.cmp(a));
                    for i in victims {
                        let slot = rev.slots.remove(i);
                        tracing::debug!(service = %name, instance = %slot.id, "runtime: stopping idle instance");
                        stops.extend(slot.proc);
                    }
                }
                starts.extend(svc.plan_min());
            }
        }
        self.stop_detached(stops);
        self.start_all(starts);
        false
    }

    fn stop_detached(&self, procs: Vec<Arc<Proc>>) {
        for proc in procs {
            self.handle.spawn(async move {
                proc.stop(STOP_GRACE).await;
            });
        }
    }
}

impl<F: SourceFactory> Release for Runtime<F> {
    fn release(&self, service: &str, instance: &str) {
        self.release_slot(service, instance);
    }

    fn refused(&self, service: &str, instance: &str) {
        let (stop, starts) = {
            let mut state = lock(&self.state);
            let Some(svc) = state.services.get_mut(service) else { return };
            let mut removed = None;
            for rev in svc.serving.iter_mut().chain(svc.draining.iter_mut()) {
                if let Some(i) = rev.slots.iter().position(|s| s.id == instance && s.phase == Phase::Ready) {
                    removed = Some((rev.slots.remove(i), rev.spec.revision.clone(), rev.spec.port));
                    break;
                }
            }
            // Already gone: it exited, or another request reported it first.
            let Some((slot, revision, port)) = removed else { return };
            let text =
                format!("instance {instance} refused a connection on port {port}: taken out of service and stopped");
            tracing::info!(%service, %revision, "runtime: {text}");
            svc.ring.push(LogLine::now(&revision, instance, Stream::System, text));
            svc.draining.retain(|r| !r.slots.is_empty());
            svc.notify.notify_waiters();
            (slot.proc, svc.plan_min())
        };
        self.stop_detached(stop.into_iter().collect());
        self.start_all(starts);
    }
}

/// A dropped runtime leaves no process behind (a safety net; [`Runtime::shutdown`] is the graceful way).
impl<F: SourceFactory> Drop for Runtime<F> {
    fn drop(&mut self) {
        for proc in lock(&self.procs).live.values() {
            proc.kill_now();
        }
    }
}

impl Service {
    fn new(log_lines: usize) -> Service {
        Service {
            serving: None,
            draining: Vec::new(),
            notify: Arc::new(Notify::new()),
            queued: Arc::new(AtomicUsize::new(0)),
            ring: Arc::new(LogRing::new(log_lines)),
        }
    }

    /// Takes the idle instances of replaced revisions out (their processes are returned to be stopped) and forgets
    /// revisions with no instance left. Starting slots are forgotten; their launch stops them when it finishes.
    fn drain_idle(&mut self) -> Vec<Arc<Proc>> {
        let mut stops = Vec::new();
        for rev in &mut self.draining {
            rev.slots.retain_mut(|slot| {
                if slot.in_flight > 0 {
                    return true;
                }
                stops.extend(slot.proc.take());
                false
            });
        }
        self.draining.retain(|r| !r.slots.is_empty());
        stops
    }

    /// Reserves `Starting` slots for the serving revision's missing minimum instances.
    fn plan_min(&mut self) -> Vec<PlannedStart> {
        let Some(rev) = self.serving.as_mut() else { return Vec::new() };
        let now = Instant::now();
        if rev.retry_min_after.is_some_and(|t| now < t) {
            return Vec::new();
        }
        (0..scaling::missing_for_min(&rev.slots, rev.spec.min_instances))
            .map(|_| {
                let id = new_instance_id();
                rev.slots.push(Slot::starting(id.clone(), now));
                PlannedStart { spec: rev.spec.clone(), id }
            })
            .collect()
    }
}

fn ready_slot(id: String, started: Started) -> Slot {
    Slot {
        id,
        phase: Phase::Ready,
        in_flight: 0,
        last_used: Instant::now(),
        addr: Some(started.addr),
        netns: started.netns,
        proc: Some(started.proc),
    }
}

fn start_failed_line(revision: &str, instance: &str, failure: &StartFailure) -> LogLine {
    LogLine::now(
        revision,
        instance,
        Stream::System,
        format!("instance {instance} failed to start: {}", failure.reason()),
    )
}

async fn stop_all(procs: Vec<Arc<Proc>>) {
    let mut set = tokio::task::JoinSet::new();
    for proc in procs {
        set.spawn(async move {
            proc.stop(STOP_GRACE).await;
        });
    }
    while set.join_next().await.is_some() {}
}
