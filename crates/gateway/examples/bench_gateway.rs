//! A gateway for load tests (see `bench/README.md`): `bench_gateway UPSTREAM_ADDR PORT` serves
//! `http://127.0.0.1:PORT` in front of `UPSTREAM_ADDR` as a private service whose invoker is `alice@example.com`,
//! and prints a valid ID token for her on stdout.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway::{Denial, Plane, RequestRecord, Route, RouteBy, Routes, Unavailable, Upstream};
use iam::{Catalogue, Principal, ProjectRef, Snapshot};
use model::{Binding, Policy};
use tokens::{CachingVerifier, IdClaims, KeyRing};

const SVC: &str = "//run.googleapis.com/projects/local-project/locations/us-central1/services/api";

struct BenchPlane {
    routes: Arc<Routes>,
    iam: Arc<Snapshot>,
    verifier: Arc<CachingVerifier>,
    upstream: SocketAddr,
}

impl Plane for BenchPlane {
    fn routes(&self) -> Arc<Routes> {
        Arc::clone(&self.routes)
    }
    fn iam(&self) -> Arc<Snapshot> {
        Arc::clone(&self.iam)
    }
    fn verifier(&self) -> Arc<CachingVerifier> {
        Arc::clone(&self.verifier)
    }
    fn principal_for_subject(&self, _: &str) -> Option<Principal> {
        None
    }
    fn acquire(&self, _: &str) -> impl Future<Output = Result<Upstream, Unavailable>> + Send {
        let up = Upstream { addr: self.upstream, revision: "api-00001-abc".into(), guard: Box::new(()) };
        async move { Ok(up) }
    }
    fn denied(&self, _: Denial) {}
    fn served(&self, _: RequestRecord) {}
}

fn main() {
    let mut args = std::env::args().skip(1);
    let upstream: SocketAddr = args.next().expect("UPSTREAM_ADDR").parse().unwrap();
    let port: u16 = args.next().expect("PORT").parse().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let now = SystemTime::now();
    let ring = KeyRing::generate(now).unwrap();
    let token = ring
        .sign(&IdClaims::for_account("https://accounts.google.com", &url, "1", Some("alice@example.com"), now))
        .unwrap();
    println!("{token}");

    let mut iam =
        Snapshot::new(Catalogue::predefined(), vec![ProjectRef { id: "local-project".into(), number: "1".into() }]);
    let mut policy = Policy::default();
    for i in 0..100 {
        policy.bindings.push(Binding {
            role: "roles/run.invoker".into(),
            members: vec![format!("user:u{i}@example.com")],
            condition: None,
        });
    }
    policy.bindings.push(Binding {
        role: "roles/run.invoker".into(),
        members: vec!["user:alice@example.com".into()],
        condition: None,
    });
    iam.set_policy(SVC, &policy).unwrap();
    let route = Arc::new(Route {
        service: "api".into(),
        resource: SVC.into(),
        audiences: vec![url.clone(), format!("{url}/")],
        invoker_iam_disabled: false,
    });
    let mut routes = Routes::default();
    routes.by_port.insert(port, route);
    let plane = Arc::new(BenchPlane {
        routes: Arc::new(routes),
        iam: Arc::new(iam),
        verifier: Arc::new(CachingVerifier::new(ring.verifier("https://accounts.google.com"), 10_000)),
        upstream,
    });
    let threads = std::env::var("GW_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        gateway::serve(listener, plane, RouteBy::Port(port), tokio::time::sleep(Duration::from_secs(3600)))
            .await
            .unwrap();
    });
}
