//! The front door in front of every service: find the service a request names ([`route`]), run Cloud Run's
//! invocation check on the caller's ID token and the service's IAM policy ([`invoke`]), forward what is admitted to
//! an instance (`h1`, the HTTP/1.1 fast path, or hyper with [`proxy`]) and answer everything else with Google Front
//! End's error pages ([`pages`]). [`server`] accepts connections and drives the flow; the control plane behind it is
//! the [`Plane`] trait.
//!
//! Architecture Invariant: the hot path does no database query and no signing. It reads in-memory snapshots (routes,
//! IAM, verifier) once per request and verifies tokens through the verified-token cache.
//!
//! API boundary: [`serve`] / [`serve_on`] with [`Workers`], [`Plane`] and the types it exchanges; [`invoke::check`] is public so the table test (and
//! the troubleshooter) can drive the check without sockets.

#![forbid(unsafe_code)]

mod chunked;
mod h1;
pub mod invoke;
pub mod pages;
pub mod proxy;
pub mod route;
pub mod server;
pub mod workers;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use pages::NOT_FOUND_PAGE;
pub use server::{serve, serve_from, serve_on};
pub use workers::Workers;

/// Cloud Run accepts user tokens from gcloud on every service; their signature is removed before forwarding (§3.4 b).
pub use model::names::GCLOUD_CLIENT_ID;

/// The permission Cloud Run checks on every request to a private service.
pub const INVOKE_PERMISSION: &str = "run.routes.invoke";

/// One service as the gateway sees it.
#[derive(Clone, Debug)]
pub struct Route {
    /// The service id, e.g. `my-api`.
    pub service: String,
    /// Full resource name: `//run.googleapis.com/projects/local-project/locations/us-central1/services/my-api`.
    pub resource: String,
    /// The exact `aud` values accepted (the service URLs with and without `/`, custom audiences).
    pub audiences: Vec<String>,
    /// `invokerIamDisabled`: no `run.routes.invoke` check at all.
    pub invoker_iam_disabled: bool,
    /// The revision's request timeout, over the whole exchange: no response head within it → 504 `upstream request
    /// timeout`; a response body still running at it is cut (both connections closed, the slot freed).
    pub timeout: Option<Duration>,
    /// Where requests may come from (checked before anything else).
    pub ingress: Ingress,
}

pub use model::ingress::{Ingress, Source};

/// Every route, by the service's own loopback port and by host name (lowercase, without port).
#[derive(Default, Debug)]
pub struct Routes {
    pub by_port: HashMap<u16, Arc<Route>>,
    pub by_host: HashMap<String, Arc<Route>>,
}

/// How a listener finds the route: every service has its own loopback port (its URL is `http://127.0.0.1:PORT`),
/// and the main gateway port routes by `Host` header.
#[derive(Clone, Copy, Debug)]
pub enum RouteBy {
    Port(u16),
    Host,
    /// The load balancer: by host, or by the service URL given as the host.
    HostOrServiceUrl,
}

/// An instance slot handed out by the control plane.
pub struct Upstream {
    pub endpoint: Endpoint,
    pub revision: String,
    /// Dropped when the response body is finished (or the request fails): frees the instance slot.
    pub guard: Box<dyn Slot>,
}

/// The instance slot an [`Upstream`] holds. Dropping it frees the slot.
pub trait Slot: Send + 'static {
    /// The instance refused a connection to its port: it has crashed (and the control plane has not seen it exit
    /// yet) or closed its listener. Take it out of service; the slot is freed as on drop. The gateway then asks
    /// [`Plane::acquire`] once more, so the request goes to another instance instead of failing.
    fn refused(self: Box<Self>) {}
}

/// A slot with nothing to free (tests, benchmarks).
impl Slot for () {}

/// Where an instance listens: an address, inside the instance's own network namespace when it has one (then
/// every instance listens at the same `127.0.0.1:PORT`, so kept connections are told apart by the namespace too).
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub netns: Option<Arc<network::netns::Netns>>,
}

impl Endpoint {
    /// An address on the daemon's own network.
    pub fn host(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, netns: None }
    }

    /// A connection to the instance, made from inside its namespace when it has one.
    pub(crate) async fn connect(&self) -> std::io::Result<tokio::net::TcpStream> {
        let new = if self.addr.is_ipv4() { tokio::net::TcpSocket::new_v4 } else { tokio::net::TcpSocket::new_v6 };
        let socket = match &self.netns {
            Some(ns) => ns.enter(new)??,
            None => new()?,
        };
        socket.connect(self.addr).await
    }
}

impl PartialEq for Endpoint {
    fn eq(&self, other: &Endpoint) -> bool {
        self.addr == other.addr
            && match (&self.netns, &other.netns) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.netns {
            Some(_) => write!(f, "{} (in the instance's network namespace)", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Why no instance could take the request.
#[derive(Debug, Clone)]
pub enum Unavailable {
    /// The service has no ready revision: 503.
    NoRevision,
    /// No instance became free in time: 429 `Rate exceeded.`, as Cloud Run.
    Timeout,
    /// The instance could not be started: 503 with the reason.
    Failed(String),
}

/// Where a listener inside an instance or VPC host is: whose requests leave from there, as the network sees them.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The service account the instance or VPC host runs as.
    pub account: Arc<str>,
    /// The Cloud Run service of the instance (`None` for a VPC host).
    pub service: Option<Arc<str>>,
}

/// A request the invocation check refused, for the troubleshooter and the request log.
#[derive(Debug, Clone)]
pub struct Denial {
    pub service: String,
    pub resource: String,
    /// 404 (ingress), 401 or 403.
    pub status: u16,
    /// Why, e.g. `token expired at …`, `no token`, `` `user:x` lacks `run.routes.invoke` ``.
    pub reason: String,
    /// The caller's email when the token was valid.
    pub principal: Option<String>,
    /// `iam::Decision::explanation()` when IAM said no.
    pub explanation: Option<serde_json::Value>,
    pub caller_ip: String,
    /// The service account of the instance or VPC host the request came from, when it came from one.
    pub source_account: Option<String>,
    /// The Cloud Run service of the instance the request came from, when it came from one.
    pub source_service: Option<String>,
    pub method: String,
    pub path: String,
}

/// One request to a service, admitted or not (`run.googleapis.com/requests`). Borrowed from the request: building
/// one costs nothing; [`Plane::served`] copies what it keeps.
#[derive(Debug, Clone, Copy)]
pub struct RequestRecord<'a> {
    pub service: &'a str,
    pub revision: Option<&'a str>,
    pub status: u16,
    /// Until the response head was sent.
    pub latency: Duration,
    pub principal: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub caller_ip: &'a str,
    /// The service account of the instance or VPC host the request came from, when it came from one.
    pub from: Option<&'a str>,
    /// The Cloud Run service of the instance the request came from, when it came from one.
    pub from_service: Option<&'a str>,
}

/// What the gateway needs from the control plane. Every method is called on the hot path: snapshot getters are an
/// `ArcSwap` load, `denied` and `served` must not block.
pub trait Plane: Send + Sync + 'static {
    /// In-memory routes, swapped atomically by the control plane.
    fn routes(&self) -> Arc<Routes>;
    fn iam(&self) -> Arc<iam::Snapshot>;
    fn verifier(&self) -> Arc<tokens::CachingVerifier>;
    /// The principal behind a token without an `email` claim (`sub` = the service account's unique id).
    fn principal_for_subject(&self, sub: &str) -> Option<iam::Principal>;
    /// An instance slot of `service`.
    fn acquire(&self, service: &str) -> impl Future<Output = Result<Upstream, Unavailable>> + Send;
    fn denied(&self, denial: Denial);
    fn served(&self, record: RequestRecord<'_>);
}
