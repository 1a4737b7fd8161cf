//! A gateway for load tests (see `bench/README.md`), in front of one upstream as a private service: every request
//! runs the full invocation check (token verified through the cache, then `iam::decide` on a policy of 101
//! bindings) and is proxied.
//!
//! Two ways to run it:
//!
//! - `bench_gateway UPSTREAM_ADDR PORT`: serves `http://127.0.0.1:PORT` with its own key ring; the invoker is
//!   `user:alice@example.com`, and a valid ID token for her is printed on stdout.
//! - `bench_gateway --listen 127.0.0.1:28087 --upstream 127.0.0.1:28080 --jwks PATH --audience URL --invoker MEMBER
//!   [--issuer URL] [--cache N] [--threads N]`: the server under test of the peers harness (`bench/gateway.sh`),
//!   trusting the keys of the JWKS at PATH for tokens of `--issuer` (default `https://accounts.google.com`) with
//!   `aud` = `--audience`; IAM grants `roles/run.invoker` to MEMBER (e.g. `serviceAccount:x@p.iam.gserviceaccount.com`).
//!
//! `GW_THREADS` (or `--threads`) sets the gateway worker threads (one current-thread runtime each), default 2.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use gateway::{Denial, Plane, RequestRecord, Route, RouteBy, Routes, Unavailable, Upstream};
use iam::{Catalogue, Principal, ProjectRef, Snapshot};
use model::{Binding, Policy};
use tokens::{CachingVerifier, IdClaims, KeyRing, Verifier};

const SVC: &str = "//run.googleapis.com/projects/local-project/locations/us-central1/services/api";
const GOOGLE: &str = "https://accounts.google.com";
/// As the daemon's (`api::issuer`).
const CACHE: usize = 16_384;

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
        let up = Upstream {
            endpoint: gateway::Endpoint::host(self.upstream),
            revision: "api-00001-abc".into(),
            guard: Box::new(()),
        };
        async move { Ok(up) }
    }
    fn denied(&self, _: Denial) {}
    fn served(&self, _: RequestRecord<'_>) {}
}

struct Config {
    listen: SocketAddr,
    upstream: SocketAddr,
    audience: String,
    invoker: String,
    verifier: Verifier,
    cache: usize,
    threads: usize,
}

fn usage() -> ! {
    eprintln!(
        "usage: bench_gateway UPSTREAM_ADDR PORT\n   or: bench_gateway --listen ADDR --upstream ADDR --jwks PATH \
         --audience URL --invoker MEMBER [--issuer URL] [--cache N] [--threads N]"
    );
    std::process::exit(2)
}

fn parse<T: std::str::FromStr>(what: &str, v: Option<String>) -> T {
    let v = v.unwrap_or_else(|| usage());
    v.parse().unwrap_or_else(|_| {
        eprintln!("bench_gateway: bad {what} `{v}`");
        std::process::exit(2)
    })
}

fn config() -> Config {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let threads = std::env::var("GW_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(2);
    if args.first().is_some_and(|a| !a.starts_with("--")) {
        // Legacy form: own key ring, a token for alice on stdout.
        let mut args = args.into_iter();
        let upstream = parse("UPSTREAM_ADDR", args.next());
        let port: u16 = parse("PORT", args.next());
        let audience = format!("http://127.0.0.1:{port}");
        let now = SystemTime::now();
        let ring = KeyRing::generate(now).expect("key generation");
        let claims = IdClaims::for_account(GOOGLE, &audience, "1", Some("alice@example.com"), now);
        println!("{}", ring.sign(&claims).expect("signing"));
        return Config {
            listen: SocketAddr::from(([127, 0, 0, 1], port)),
            upstream,
            audience,
            invoker: "user:alice@example.com".into(),
            verifier: ring.verifier(GOOGLE),
            cache: CACHE,
            threads,
        };
    }
    let (mut listen, mut upstream, mut jwks, mut audience, mut invoker) = (None, None, None, None, None);
    let (mut issuer, mut cache, mut threads) = (GOOGLE.to_owned(), CACHE, threads);
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        match flag.as_str() {
            "--listen" => listen = Some(parse::<SocketAddr>("--listen", args.next())),
            "--upstream" => upstream = Some(parse::<SocketAddr>("--upstream", args.next())),
            "--jwks" => jwks = Some(args.next().unwrap_or_else(|| usage())),
            "--audience" => audience = Some(args.next().unwrap_or_else(|| usage())),
            "--invoker" => invoker = Some(args.next().unwrap_or_else(|| usage())),
            "--issuer" => issuer = args.next().unwrap_or_else(|| usage()),
            "--cache" => cache = parse("--cache", args.next()),
            "--threads" => threads = parse("--threads", args.next()),
            _ => usage(),
        }
    }
    let (Some(listen), Some(upstream), Some(jwks), Some(audience), Some(invoker)) =
        (listen, upstream, jwks, audience, invoker)
    else {
        usage()
    };
    let doc = std::fs::read(&jwks).unwrap_or_else(|e| {
        eprintln!("bench_gateway: cannot read {jwks}: {e}");
        std::process::exit(1)
    });
    let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap_or_else(|e| {
        eprintln!("bench_gateway: {jwks} is not JSON: {e}");
        std::process::exit(1)
    });
    let verifier = Verifier::from_jwks(&issuer, &doc).unwrap_or_else(|e| {
        eprintln!("bench_gateway: {jwks}: {e}");
        std::process::exit(1)
    });
    Config { listen, upstream, audience, invoker, verifier, cache, threads }
}

fn main() {
    let cfg = config();
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
    policy.bindings.push(Binding { role: "roles/run.invoker".into(), members: vec![cfg.invoker], condition: None });
    iam.set_policy(SVC, &policy).expect("policy");
    let audiences = match cfg.audience.strip_suffix('/') {
        Some(bare) => vec![bare.to_owned(), cfg.audience.clone()],
        None => vec![cfg.audience.clone(), format!("{}/", cfg.audience)],
    };
    let route = Arc::new(Route {
        service: "api".into(),
        resource: SVC.into(),
        audiences,
        invoker_iam_disabled: false,
        timeout: None,
        ingress: gateway::Ingress::All,
    });
    let port = cfg.listen.port();
    let mut routes = Routes::default();
    routes.by_port.insert(port, route);
    let plane = Arc::new(BenchPlane {
        routes: Arc::new(routes),
        iam: Arc::new(iam),
        verifier: Arc::new(CachingVerifier::new(cfg.verifier, cfg.cache)),
        upstream: cfg.upstream,
    });
    // The accept loop on a small runtime of its own; connections on `threads` worker threads, as `gatehouse up` does.
    let workers = Arc::new(gateway::Workers::start(cfg.threads).expect("gateway worker threads"));
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(cfg.listen).await.expect("bind");
        let shutdown = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        let stop = async move {
            tokio::select! {
                () = shutdown => {}
                () = tokio::time::sleep(Duration::from_secs(3600)) => {}
            }
        };
        gateway::serve_on(workers, listener, plane, RouteBy::Port(port), stop).await.unwrap();
    });
}
