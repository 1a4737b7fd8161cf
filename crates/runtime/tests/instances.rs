//! Real child processes through the runtime: readiness, failures, scaling limits, queueing, idling, minimum
//! instances, crash replacement, redeploys, removal and shutdown.

mod common;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use runtime::{AcquireError, DeployError, Stream};

#[tokio::test]
async fn deploy_waits_for_readiness_and_serves() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    rt.deploy(server_spec("svc", "svc-00001", dir.path())).await.expect("deploy");
    let status = rt.status("svc").expect("status");
    assert_eq!((status.revision.as_str(), status.ready_instances, status.starting_instances), ("svc-00001", 1, 0));

    let lease = rt.acquire("svc").await.expect("lease");
    assert_eq!(lease.revision, "svc-00001");
    assert_eq!(rt.status("svc").unwrap().in_flight, 1);
    let body = get_json(lease.addr, "/hello").await;
    assert_eq!(body["path"], "/hello");
    drop(lease);
    assert_eq!(rt.status("svc").unwrap().in_flight, 0);

    // stdout and stderr lines land in the service's log, newest last.
    assert!(
        eventually(Duration::from_secs(5), || {
            let logs = rt.logs("svc", 100);
            logs.iter().any(|l| l.stream == Stream::Stdout && l.text.starts_with("server starting on"))
                && logs.iter().any(|l| l.stream == Stream::Stderr && l.text == "a line on stderr")
        })
        .await
    );
    rt.record("svc", runtime::LogLine::now("svc-00001", "i", Stream::Request, "GET / 200"));
    assert_eq!(rt.logs("svc", 1)[0].text, "GET / 200");
    rt.shutdown().await;
}

#[tokio::test]
async fn unknown_service_has_no_revision() {
    let rt = runtime(config());
    assert!(matches!(rt.acquire("nope").await, Err(AcquireError::NoRevision)));
    assert!(rt.status("nope").is_none());
    assert!(rt.logs("nope", 10).is_empty());
}

#[tokio::test]
async fn a_container_that_never_listens_fails_with_its_last_lines() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.startup_timeout = Duration::from_millis(800);
    let rt = runtime(cfg);
    let argv = ["python3", "-u", "-c", "import time\nprint('booting')\nprint('still booting')\ntime.sleep(60)"];
    let err = rt.deploy(spec("slow", "slow-00001", dir.path(), &argv)).await.expect_err("never listens");
    let DeployError::NotReady { reason, last_logs } = &err else { panic!("{err:?}") };
    assert!(reason.contains("did not listen on PORT="), "{reason}");
    assert!(reason.contains("failed to start and listen on the port defined provided by the PORT="), "{reason}");
    assert_eq!(last_logs, &["booting", "still booting"]);
    assert!(err.to_string().contains("still booting"), "{err}");
    assert!(rt.status("slow").is_none(), "a failed first deploy serves nothing");
    assert!(matches!(rt.acquire("slow").await, Err(AcquireError::NoRevision)));
    assert!(rt.logs("slow", 10).iter().any(|l| l.stream == Stream::System && l.text.contains("failed to start")));
}

#[tokio::test]
async fn a_container_that_exits_fails_quickly_with_its_status() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.startup_timeout = Duration::from_secs(60);
    let rt = runtime(cfg);
    let argv = ["sh", "-c", "echo 'bad config: FOO is missing' >&2; exit 3"];
    let began = Instant::now();
    let err = rt.deploy(spec("exits", "exits-00001", dir.path(), &argv)).await.expect_err("exits");
    assert!(began.elapsed() < Duration::from_secs(30), "waited for the startup timeout instead of the exit");
    let DeployError::NotReady { reason, last_logs } = &err else { panic!("{err:?}") };
    assert!(reason.contains("the container exited with status 3 before listening on PORT="), "{reason}");
    assert_eq!(last_logs, &["bad config: FOO is missing"]);
}

#[tokio::test]
async fn a_missing_program_is_a_spawn_error() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    let err = rt.deploy(spec("missing", "missing-1", dir.path(), &["/nonexistent/program"])).await.unwrap_err();
    assert!(matches!(&err, DeployError::Spawn(m) if m.contains("/nonexistent/program")), "{err:?}");
    let err = rt.deploy(spec("missing", "missing-1", dir.path(), &[])).await.unwrap_err();
    assert!(matches!(err, DeployError::Spawn(_)), "{err:?}");
}

#[tokio::test]
async fn max_instances_is_never_exceeded_and_everyone_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    let mut spec = server_spec("busy", "busy-00001", dir.path());
    spec.max_instances = 2;
    spec.concurrency = 1;
    spec.request_timeout = Duration::from_secs(60);
    rt.deploy(spec).await.expect("deploy");

    // Watch the counts while the burst runs.
    let peak_instances = Arc::new(AtomicU32::new(0));
    let peak_in_flight = Arc::new(AtomicU32::new(0));
    let peak_queued = Arc::new(AtomicU32::new(0));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (rt, pi, pf, pq, stop) =
            (rt.clone(), peak_instances.clone(), peak_in_flight.clone(), peak_queued.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some(s) = rt.status("busy") {
                    pi.fetch_max(s.ready_instances + s.starting_instances, Ordering::SeqCst);
                    pf.fetch_max(s.in_flight, Ordering::SeqCst);
                    pq.fetch_max(s.queued, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };

    let instances = Arc::new(Mutex::new(HashSet::new()));
    let holding = Arc::new(AtomicU32::new(0));
    let max_holding = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let (rt, instances, holding, max_holding) =
            (rt.clone(), instances.clone(), holding.clone(), max_holding.clone());
        tasks.push(tokio::spawn(async move {
            let lease = rt.acquire("busy").await.expect("every request is eventually served");
            let now = holding.fetch_add(1, Ordering::SeqCst) + 1;
            max_holding.fetch_max(now, Ordering::SeqCst);
            instances.lock().unwrap().insert(lease.instance.clone());
            let body = get_json(lease.addr, "/sleep?ms=150").await;
            assert_eq!(body["path"], "/sleep");
            holding.fetch_sub(1, Ordering::SeqCst);
            drop(lease);
        }));
    }
    for task in tasks {
        task.await.expect("request task");
    }
    stop.store(true, Ordering::SeqCst);
    watcher.await.unwrap();

    let distinct = instances.lock().unwrap().len();
    assert!(distinct <= 2, "{distinct} distinct instances served with max_instances=2");
    assert!(max_holding.load(Ordering::SeqCst) <= 2, "more leases at once than max × concurrency");
    assert!(peak_instances.load(Ordering::SeqCst) <= 2, "more than two instances existed");
    assert!(peak_in_flight.load(Ordering::SeqCst) <= 2);
    assert!(peak_queued.load(Ordering::SeqCst) >= 1, "with 10 requests and 2 slots some must have queued");
    assert_eq!(distinct, 2, "the burst should have scaled to the maximum");
    let status = rt.status("busy").unwrap();
    assert_eq!((status.in_flight, status.queued), (0, 0));
    rt.shutdown().await;
}

#[tokio::test]
async fn a_request_that_finds_no_slot_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    let mut spec = server_spec("full", "full-00001", dir.path());
    spec.request_timeout = Duration::from_millis(400);
    rt.deploy(spec).await.expect("deploy");
    let held = rt.acquire("full").await.expect("first lease");

    let waiter = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.acquire("full").await })
    };
    assert!(eventually(Duration::from_secs(2), || rt.status("full").unwrap().queued == 1).await);
    let err = waiter.await.unwrap().expect_err("no slot");
    let AcquireError::Timeout { waited } = err else { panic!("{err:?}") };
    assert!(waited >= Duration::from_millis(400), "{waited:?}");
    assert_eq!(rt.status("full").unwrap().queued, 0, "a timed-out request leaves the queue");
    assert_eq!(rt.status("full").unwrap().ready_instances, 1, "max_instances=1: no second instance");

    // A slot that frees while a request waits goes to it.
    let waiter = {
        let rt = rt.clone();
        tokio::spawn(async move { rt.acquire("full").await })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let instance = held.instance.clone();
    drop(held);
    let lease = waiter.await.unwrap().expect("the freed slot");
    assert_eq!(lease.instance, instance);
    rt.shutdown().await;
}

#[tokio::test]
async fn idle_instances_scale_to_zero_and_back() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.idle_timeout = Duration::from_millis(400);
    let rt = runtime(cfg);
    rt.deploy(server_spec("idle", "idle-00001", dir.path())).await.expect("deploy");
    let lease = rt.acquire("idle").await.unwrap();
    let first = lease.instance.clone();
    let pid = get_json(lease.addr, "/").await["pid"].as_u64().unwrap();
    drop(lease);

    assert!(
        eventually(Duration::from_secs(10), || rt.status("idle").unwrap().ready_instances == 0).await,
        "the idle instance was not stopped"
    );
    assert!(eventually(Duration::from_secs(10), || gone(pid)).await, "the idle instance's process lives on");

    // Scale from zero: the request waits for a new instance.
    let lease = rt.acquire("idle").await.expect("scale from zero");
    assert_ne!(lease.instance, first);
    assert_eq!(get_json(lease.addr, "/").await["path"], "/");
    rt.shutdown().await;
}

#[tokio::test]
async fn min_instances_stay_warm() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config();
    cfg.idle_timeout = Duration::from_millis(200);
    let rt = runtime(cfg);
    let mut spec = server_spec("warm", "warm-00001", dir.path());
    spec.min_instances = 2;
    spec.max_instances = 3;
    rt.deploy(spec).await.expect("deploy");
    assert!(eventually(Duration::from_secs(10), || rt.status("warm").unwrap().ready_instances == 2).await);
    tokio::time::sleep(Duration::from_millis(1200)).await; // several idle periods and reaper passes
    let status = rt.status("warm").unwrap();
    assert_eq!((status.ready_instances, status.starting_instances), (2, 0));
    rt.shutdown().await;
}

#[tokio::test]
async fn a_crashed_instance_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    let mut spec = server_spec("crashy", "crashy-00001", dir.path());
    spec.min_instances = 1;
    rt.deploy(spec).await.expect("deploy");
    let lease = rt.acquire("crashy").await.unwrap();
    let crashed = lease.instance.clone();
    let _ = reqwest::Client::new().get(format!("http://{}/exit?code=7", lease.addr)).send().await;
    drop(lease);

    let text = format!("instance {crashed} exited with status 7");
    assert!(
        eventually(Duration::from_secs(10), || rt
            .logs("crashy", 100)
            .iter()
            .any(|l| l.stream == Stream::System && l.text == text))
        .await,
        "no system line for the crash: {:?}",
        rt.logs("crashy", 100)
    );
    assert!(
        eventually(Duration::from_secs(10), || rt.status("crashy").unwrap().ready_instances == 1).await,
        "no replacement"
    );
    let lease = rt.acquire("crashy").await.expect("served by the replacement");
    assert_ne!(lease.instance, crashed);
    assert_eq!(get_json(lease.addr, "/").await["path"], "/");
    rt.shutdown().await;
}

#[tokio::test]
async fn a_failed_scale_up_is_reported_to_the_waiting_request() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    // The first instance serves; every later one finds the marker and exits 4.
    let script = "if [ -e started ]; then echo 'second start refused'; exit 4; fi; \
                  touch started; exec python3 -u -c \"$SERVER\"";
    let mut spec = spec("scale", "scale-00001", dir.path(), &["sh", "-c", script]);
    spec.env.push(("SERVER".into(), SERVER.into()));
    spec.max_instances = 2;
    rt.deploy(spec).await.expect("deploy");
    let _held = rt.acquire("scale").await.unwrap();
    let err = rt.acquire("scale").await.expect_err("the second instance cannot start");
    let AcquireError::Failed { reason, last_logs } = &err else { panic!("{err:?}") };
    assert!(reason.contains("exited with status 4"), "{reason}");
    assert_eq!(last_logs, &["second start refused"]);
    let status = rt.status("scale").unwrap();
    assert_eq!((status.ready_instances, status.starting_instances, status.queued), (1, 0, 0));
    rt.shutdown().await;
}

#[tokio::test]
async fn a_redeploy_drains_the_old_revision() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    let mut v1 = server_spec("roll", "roll-00001", dir.path());
    v1.request_timeout = Duration::from_millis(500);
    rt.deploy(v1).await.unwrap();
    let old = rt.acquire("roll").await.unwrap();
    let old_pid = get_json(old.addr, "/").await["pid"].as_u64().unwrap();

    // A failing deploy keeps the old revision serving.
    let bad = spec("roll", "roll-00002", dir.path(), &["sh", "-c", "exit 1"]);
    assert!(rt.deploy(bad).await.is_err());
    assert_eq!(rt.status("roll").unwrap().revision, "roll-00001");

    rt.deploy(server_spec("roll", "roll-00003", dir.path())).await.unwrap();
    assert_eq!(rt.status("roll").unwrap().revision, "roll-00003");
    let new = rt.acquire("roll").await.unwrap();
    assert_eq!(new.revision, "roll-00003");
    // The old instance finishes its request...
    assert_eq!(get_json(old.addr, "/sleep?ms=10").await["path"], "/sleep");
    assert!(!gone(old_pid));
    // ...and stops once it is done.
    drop(old);
    assert!(eventually(Duration::from_secs(10), || gone(old_pid)).await, "the drained instance lives on");
    drop(new);
    rt.shutdown().await;
}

#[tokio::test]
async fn remove_stops_the_service() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    rt.deploy(server_spec("gone", "gone-00001", dir.path())).await.unwrap();
    let lease = rt.acquire("gone").await.unwrap();
    let pid = get_json(lease.addr, "/").await["pid"].as_u64().unwrap();
    drop(lease);
    rt.remove("gone").await;
    assert!(rt.status("gone").is_none());
    assert!(matches!(rt.acquire("gone").await, Err(AcquireError::NoRevision)));
    assert!(eventually(Duration::from_secs(5), || gone(pid)).await);
}

#[tokio::test]
async fn shutdown_leaves_no_process_behind() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    // A shell that leaves a background child, then becomes the server: both are in the instance's process group.
    let script = "sleep 300 & echo $! > sleep.pid; exec python3 -u -c \"$SERVER\"";
    let mut spec = spec("tree", "tree-00001", dir.path(), &["sh", "-c", script]);
    spec.env.push(("SERVER".into(), SERVER.into()));
    rt.deploy(spec).await.unwrap();
    let lease = rt.acquire("tree").await.unwrap();
    let pid = get_json(lease.addr, "/").await["pid"].as_u64().unwrap();
    drop(lease);
    let sleep_pid: u64 = std::fs::read_to_string(dir.path().join("sleep.pid")).unwrap().trim().parse().unwrap();
    assert!(!gone(pid) && !gone(sleep_pid));

    rt.shutdown().await;
    assert!(gone(pid), "the server survived shutdown");
    assert!(eventually(Duration::from_secs(5), || gone(sleep_pid)).await, "the shell's child survived shutdown");
    assert!(matches!(rt.acquire("tree").await, Err(AcquireError::NoRevision)));
    let again = server_spec("tree", "tree-00002", dir.path());
    assert!(matches!(rt.deploy(again).await, Err(DeployError::Spawn(_))));
}

/// Attaches nothing inside an instance's namespace.
struct NoListeners;

impl runtime::Attach for NoListeners {
    fn attach(
        &self,
        _: &Arc<network::netns::Netns>,
        _: &runtime::RevisionSpec,
    ) -> Result<Box<dyn std::any::Any + Send + Sync>, String> {
        Ok(Box::new(()))
    }
}

#[tokio::test]
async fn a_sandboxed_instance_that_cannot_be_spawned_leaves_no_cgroup_behind() {
    let root = nix::unistd::Uid::effective().is_root();
    assert!(
        root || std::env::var_os("GATEHOUSE_TEST_NO_SANDBOX").is_some(),
        "this test needs root (cgroups and network namespaces); run as root or set GATEHOUSE_TEST_NO_SANDBOX=1 on purpose"
    );
    if !root {
        return;
    }
    let cgroups = runtime::Cgroups::discover().expect("a cgroup hierarchy with memory and cpu");
    let mut cfg = config();
    // The sandbox launches every workload through the gatehouse binary's init step: absent here, so the spawn
    // itself fails after the cgroup, the namespace and the listeners were made.
    cfg.sandbox = Some(runtime::SandboxConfig {
        cgroups: cgroups.clone(),
        hide: vec![],
        attach: Arc::new(NoListeners),
        home_files: vec![],
    });
    let rt = runtime(cfg);
    let dir = tempfile::tempdir().unwrap();
    let err = rt.deploy(server_spec("nospawn", "nospawn-00001", dir.path())).await.expect_err("cannot spawn");
    assert!(matches!(&err, DeployError::Spawn(m) if m.contains("cannot run")), "{err:?}");
    let instances = || -> Vec<String> {
        let dirs = cgroups.dirs().into_iter().flat_map(|d| std::fs::read_dir(d).expect("the daemon's cgroup"));
        dirs.flatten().filter(|e| e.path().is_dir()).map(|e| e.path().display().to_string()).collect()
    };
    assert!(eventually(Duration::from_secs(3), || instances().is_empty()).await, "left behind: {:?}", instances());
    rt.shutdown().await;
    cgroups.close();
}
