//! Accepting connections and driving each request through the flow: [`route`](crate::route) →
//! [`invoke`](crate::invoke) → [`Plane::acquire`] → forwarding, with a page for every refusal.
//!
//! Each connection runs on one of the [`Workers`] (thread per core) from accept to close, first on the HTTP/1.1
//! fast path ([`crate::h1`]), then — from its first request that is not plain — on hyper's HTTP/1.1 server
//! (keep-alive, 30 s header-read timeout) with [`proxy`](crate::proxy). Both run steps 1–3 through [`admit`]. Every
//! refusal is reported with [`Plane::denied`]; every request that named a service with [`Plane::served`] (a URL that
//! names no service is in no service's request log, as on Cloud Run).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::proxy::{self, page, Body};
use crate::{
    h1, invoke, pages, route, Denial, Endpoint, Plane, RequestRecord, RouteBy, Source, Unavailable, Upstream, Workers,
};

/// How long open connections get to finish after `shutdown` resolves.
const DRAIN: Duration = Duration::from_secs(10);

/// How long a caller connection may take to send a request head, counted from when the gateway starts waiting for
/// one (so an idle keep-alive connection is closed after it too). As hyper's `header_read_timeout`.
pub(crate) const HEAD_TIMEOUT: Duration = Duration::from_secs(30);

pub(crate) struct Shared<P> {
    pub(crate) plane: Arc<P>,
    pub(crate) by: RouteBy,
    /// Where this listener's requests come from, for ingress.
    pub(crate) source: Source,
    /// The service account of the instance (or VPC host) this listener is inside, if it is inside one: who is
    /// calling, as the network sees it, whatever token the request carries.
    pub(crate) from: Option<crate::Origin>,
    hyper: http1::Builder,
}

/// Serves the gateway on `listener` until `shutdown` resolves, then lets open requests finish (up to 10 s).
/// Connections run as tasks of the current runtime; [`serve_on`] runs them on [`Workers`].
pub async fn serve<P: Plane>(
    listener: TcpListener,
    plane: Arc<P>,
    by: RouteBy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_on(Arc::new(Workers::current()), listener, plane, by, shutdown).await
}

/// As [`serve`], with each accepted connection handed to the next of `workers` for its whole life.
pub async fn serve_on<P: Plane>(
    workers: Arc<Workers>,
    listener: TcpListener,
    plane: Arc<P>,
    by: RouteBy,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_from(workers, listener, plane, by, Source::External, None, shutdown).await
}

/// As [`serve_on`], for a listener whose callers count as `source` for ingress (the host's listeners are
/// external; the load balancer's and those inside instances and VPC hosts say otherwise). `from`: the instance or
/// VPC host the listener is inside (its account, and its service), recorded with its requests and denials.
pub async fn serve_from<P: Plane>(
    workers: Arc<Workers>,
    listener: TcpListener,
    plane: Arc<P>,
    by: RouteBy,
    source: Source,
    from: Option<crate::Origin>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mut hyper = http1::Builder::new();
    hyper.timer(TokioTimer::new()).keep_alive(true).header_read_timeout(HEAD_TIMEOUT);
    let shared = Arc::new(Shared { plane, by, source, from, hyper });
    // Every connection holds a receiver: `send` tells them to stop, `closed` says they all have.
    let (stop, stopping) = watch::channel(());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let shared = Arc::clone(&shared);
                    let ip = peer.ip().to_string();
                    let caller = Arc::new(Caller {
                        // INVARIANT: an IP address is a valid header value.
                        forwarded_for: HeaderValue::try_from(&ip).expect("INVARIANT: an IP address is ASCII"),
                        ip,
                        affinity: Arc::new(proxy::Affinity::default()),
                        memo: invoke::Memo::default(),
                    });
                    let stopping = stopping.clone();
                    // The accepted stream is registered with this runtime's reactor; its readiness must come from the
                    // worker's own, or every request costs a cross-thread wake-up (an eventfd write and a context
                    // switch). So it moves as a plain socket and registers again on the worker.
                    let Ok(stream) = stream.into_std() else { continue };
                    workers.spawn(async move {
                        match TcpStream::from_std(stream) {
                            Ok(stream) => connection(stream, peer, shared, caller, stopping).await,
                            Err(e) => tracing::warn!(%peer, error = %e, "gateway could not register a connection"),
                        }
                    });
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "gateway accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            },
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    drop(stopping);
    let _ = stop.send(());
    if tokio::time::timeout(DRAIN, stop.closed()).await.is_err() {
        tracing::warn!("gateway connections still open after {DRAIN:?}; dropping them");
    }
    Ok(())
}

/// One caller connection from accept to close: the HTTP/1.1 fast path ([`h1`]) while its requests are plain, then
/// hyper's server for the rest of the connection's life when one is not (see [`h1`] for which).
async fn connection<P: Plane>(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared<P>>,
    caller: Arc<Caller>,
    mut stopping: watch::Receiver<()>,
) {
    let Some(buffered) = h1::serve(&mut stream, &shared, &caller, &mut stopping).await else {
        return;
    };
    let svc = {
        let shared = Arc::clone(&shared);
        service_fn(move |req| handle(Arc::clone(&shared), Arc::clone(&caller), req))
    };
    // With upgrades: a WebSocket handshake the instance accepts (101) becomes a tunnel ([`proxy::tunnel`]).
    let conn = shared.hyper.serve_connection(TokioIo::new(h1::Prefixed::new(buffered, stream)), svc).with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        result = conn.as_mut() => result,
        _ = stopping.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "gateway connection ended with an error");
    }
}

/// One caller connection: its address (formatted once, not per request), the instance connection it used last and
/// its last admission.
pub(crate) struct Caller {
    pub(crate) ip: String,
    /// `ip` as the `X-Forwarded-For` value the instance gets (when the caller sent none).
    pub(crate) forwarded_for: HeaderValue,
    affinity: Arc<proxy::Affinity>,
    pub(crate) memo: invoke::Memo,
}

/// What the request log needs from a request, kept from its start.
pub(crate) struct Served<'a, P> {
    pub(crate) plane: &'a P,
    pub(crate) service: &'a str,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) caller_ip: &'a str,
    pub(crate) from: Option<&'a crate::Origin>,
    pub(crate) start: Instant,
}

impl<P: Plane> Served<'_, P> {
    pub(crate) fn record(&self, status: StatusCode, revision: Option<&str>, principal: Option<&str>) {
        self.plane.served(RequestRecord {
            service: self.service,
            revision,
            status: status.as_u16(),
            latency: self.start.elapsed(),
            principal,
            method: self.method,
            path: self.path,
            caller_ip: self.caller_ip,
            from: self.from.map(|o| &*o.account),
            from_service: self.from.and_then(|o| o.service.as_deref()),
        })
    }
}

/// A request that may go to an instance: steps 1–3 passed.
pub(crate) struct Admission {
    pub(crate) route: Arc<crate::Route>,
    pub(crate) admitted: invoke::Admitted,
    pub(crate) upstream: Upstream,
}

/// Steps 1–3 for one request, on either connection path: find the route, run the invocation check, get an
/// instance slot. A refusal is recorded here (request log, and the denial for the troubleshooter) and comes back
/// as the status and page to answer with.
pub(crate) async fn admit<P: Plane, H: invoke::Credentials + ?Sized>(
    shared: &Shared<P>,
    caller: &Caller,
    host: Option<&str>,
    headers: &H,
    method: &str,
    path: &str,
    start: Instant,
) -> Result<Admission, (StatusCode, String)> {
    let plane = &*shared.plane;
    let Some(route) = route::find_host(&plane.routes(), shared.by, host) else {
        return Err((StatusCode::NOT_FOUND, pages::NOT_FOUND_PAGE.to_owned()));
    };
    // A refusal's record for the troubleshooter: which control said no, and why.
    let deny = |status: StatusCode, reason: String, principal: Option<String>, explanation| {
        plane.denied(Denial {
            service: route.service.clone(),
            resource: route.resource.clone(),
            status: status.as_u16(),
            reason,
            principal,
            explanation,
            caller_ip: caller.ip.clone(),
            source_account: shared.from.as_ref().map(|o| o.account.to_string()),
            source_service: shared.from.as_ref().and_then(|o| o.service.as_deref()).map(str::to_owned),
            method: method.to_owned(),
            path: path.to_owned(),
        })
    };
    if !route.ingress.admits(shared.source) {
        // Cloud Run answers 404 and leaves no request log entry; the denial is kept for the troubleshooter.
        let reason =
            format!("ingress `{}` does not admit requests from {}", route.ingress.flag(), shared.source.words());
        deny(StatusCode::NOT_FOUND, reason, None, None);
        return Err((StatusCode::NOT_FOUND, pages::NOT_FOUND_PAGE.to_owned()));
    }
    let from = shared.from.as_ref();
    let served = Served { plane, service: &route.service, method, path, caller_ip: &caller.ip, from, start };
    let checked = {
        let (iam, verifier) = (plane.iam(), plane.verifier());
        let resolve = |sub: &str| plane.principal_for_subject(sub);
        caller.memo.check(&route, headers, &iam, &verifier, resolve, SystemTime::now())
    };
    let admitted = match checked {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let (status, body) = match refusal.status {
                401 => (StatusCode::UNAUTHORIZED, pages::unauthorized(path)),
                _ if refusal.is_unauthenticated() => (StatusCode::FORBIDDEN, pages::not_authenticated()),
                _ => (StatusCode::FORBIDDEN, pages::forbidden(path)),
            };
            let email = refusal.principal.as_ref().and_then(|p| p.email()).map(str::to_owned);
            served.record(status, None, email.as_deref());
            deny(status, refusal.reason, email, refusal.explanation);
            return Err((status, body));
        }
    };
    match plane.acquire(&route.service).await {
        Ok(upstream) => Ok(Admission { route, admitted, upstream }),
        Err(why) => {
            let (status, body) = unavailable_page(why);
            served.record(status, None, admitted.principal.as_ref().and_then(|p| p.email()));
            Err((status, body))
        }
    }
}

/// The answer when no instance could take the request.
fn unavailable_page(why: Unavailable) -> (StatusCode, String) {
    match why {
        Unavailable::Timeout => (StatusCode::TOO_MANY_REQUESTS, pages::RATE_EXCEEDED.to_owned()),
        Unavailable::NoRevision => (StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(None)),
        Unavailable::Failed(reason) => (StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(Some(&reason))),
    }
}

/// Why [`reach`] found no instance to connect to: what to log and answer.
pub(crate) struct Unreached {
    pub(crate) revision: String,
    pub(crate) status: StatusCode,
    pub(crate) page: String,
}

/// A new connection to the admitted instance, for a request that has none to reuse. When the instance refuses it
/// (it has just crashed and the control plane has not seen it exit yet, or it closed its port), nothing has been
/// sent, so the request is not lost: the slot is reported ([`crate::Slot::refused`]) and the request goes to the
/// instance [`Plane::acquire`] gives next, started if need be. Once: a second refusal is 503.
pub(crate) async fn reach<P: Plane>(
    plane: &P,
    service: &str,
    upstream: Upstream,
) -> Result<(Upstream, TcpStream), Unreached> {
    let refused = match proxy::dial(&upstream.endpoint).await {
        Ok(stream) => return Ok((upstream, stream)),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => e,
        Err(e) => {
            tracing::debug!(endpoint = %upstream.endpoint, error = %e, "instance connection failed");
            return Err(Unreached::unavailable(upstream.revision));
        }
    };
    tracing::info!(%service, endpoint = %upstream.endpoint, error = %refused, "instance refused a connection; trying another");
    let Upstream { revision, guard, .. } = upstream;
    guard.refused();
    let upstream = plane.acquire(service).await.map_err(|why| {
        let (status, page) = unavailable_page(why);
        Unreached { revision: revision.clone(), status, page }
    })?;
    match proxy::dial_or_503(&upstream.endpoint).await {
        Ok(stream) => Ok((upstream, stream)),
        Err(_) => Err(Unreached::unavailable(upstream.revision)),
    }
}

impl Unreached {
    fn unavailable(revision: String) -> Unreached {
        Unreached::failed(revision, StatusCode::SERVICE_UNAVAILABLE)
    }

    /// An exchange with an instance of `revision` that failed with `status`.
    pub(crate) fn failed(revision: String, status: StatusCode) -> Unreached {
        Unreached { revision, status, page: exchange_failed_page(status) }
    }
}

/// The page for a failed exchange with an instance (`status` from the forwarding step).
pub(crate) fn exchange_failed_page(status: StatusCode) -> String {
    match status {
        StatusCode::SERVICE_UNAVAILABLE => pages::unavailable(None),
        StatusCode::GATEWAY_TIMEOUT => pages::UPSTREAM_TIMEOUT.to_owned(),
        StatusCode::BAD_REQUEST => pages::BAD_REQUEST_PAGE.to_owned(),
        _ => pages::BAD_GATEWAY.to_owned(),
    }
}

/// A request on hyper's path (see [`connection`]).
async fn handle<P: Plane>(
    shared: Arc<Shared<P>>,
    caller: Arc<Caller>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    // CONNECT asks for a tunnel to somewhere else: a Cloud Run URL is no proxy.
    if req.method() == http::Method::CONNECT {
        return Ok(page(StatusCode::BAD_REQUEST, pages::BAD_REQUEST_PAGE));
    }
    // A transfer coding other than chunked would be lost on the way (the body is re-framed): RFC 9112 §6.1's 501.
    let codings = req.headers().get_all(http::header::TRANSFER_ENCODING).iter();
    let mut codings = codings.flat_map(|v| v.to_str().unwrap_or("?").split(',')).map(str::trim);
    if codings.any(|c| !c.eq_ignore_ascii_case("chunked")) {
        return Ok(page(StatusCode::NOT_IMPLEMENTED, "Not Implemented"));
    }
    // One Host (RFC 9112 §3.2): two would let the gateway route by one and the app read the other; HTTP/1.1
    // requires one even with an absolute-form target, HTTP/1.0 may go without.
    let mut hosts = req.headers().get_all(http::header::HOST).iter();
    let header = hosts.next();
    if hosts.next().is_some() || (header.is_none() && req.version() == http::Version::HTTP_11) {
        return Ok(page(StatusCode::BAD_REQUEST, pages::BAD_REQUEST_PAGE));
    }
    // An absolute-form target names its host itself, and that one counts (RFC 9112 §3.2.2).
    let host = match req.uri().authority() {
        Some(authority) => Some(authority.as_str()),
        None => header.and_then(|v| v.to_str().ok()),
    };
    // What the request log needs from the request, owned here because the request itself moves on to the instance.
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let Admission { route, admitted, upstream } =
        match admit(&shared, &caller, host, req.headers(), method.as_str(), &path, start).await {
            Ok(admission) => admission,
            Err((status, body)) => return Ok(page(status, body)),
        };
    let served = Served {
        plane: &*shared.plane,
        service: &route.service,
        method: method.as_str(),
        path: &path,
        caller_ip: &caller.ip,
        from: shared.from.as_ref(),
        start,
    };
    let invoke::Admitted { principal, rewrite } = admitted;
    let email = principal.as_ref().and_then(|p| p.email());
    // A WebSocket handshake never rides a kept connection: it gets its own, through `reach` like any new one.
    let upgrade = proxy::is_upgrade(&req);
    let kept = if upgrade { None } else { proxy::take_link(&caller.affinity, &upstream.endpoint) };
    let (upstream, conn) = match kept {
        Some(kept) => (upstream, proxy::Conn::Kept(kept)),
        None => match reach(&*shared.plane, &route.service, upstream).await {
            Ok((upstream, stream)) => (upstream, proxy::Conn::Fresh(stream)),
            Err(u) => {
                served.record(u.status, Some(&u.revision), email);
                return Ok(page(u.status, u.page));
            }
        },
    };
    let conn = match (upgrade, conn) {
        // A tunnel for the rest of the session, bounded by the request timeout as on Cloud Run.
        (true, proxy::Conn::Fresh(stream)) => {
            let Upstream { endpoint, revision, guard } = upstream;
            let outcome =
                proxy::tunnel(stream, req, &endpoint, &caller.forwarded_for, rewrite, route.timeout, guard).await;
            return Ok(match outcome {
                Ok(resp) => {
                    served.record(resp.status(), Some(&revision), email);
                    resp
                }
                Err(status) => {
                    served.record(status, Some(&revision), email);
                    page(status, exchange_failed_page(status))
                }
            });
        }
        (_, conn) => conn,
    };
    // The timeout covers the response body too (`proxy::Body` cuts it there), as on the fast path.
    let deadline = route.timeout.map(|limit| tokio::time::Instant::now() + limit);
    let forwarded = proxy::forward(conn, req, &upstream.endpoint, &caller.forwarded_for, rewrite);
    let outcome = match before(deadline, forwarded).await {
        Some(Ok((resp, link))) => Ok((resp, link, upstream)),
        // A kept connection closed under the request: it goes on a new one, through `reach` (the instance may have
        // gone, and then another takes the request).
        Some(Err(proxy::NoResponse::Unsent(req))) => {
            let endpoint = &upstream.endpoint;
            tracing::debug!(%endpoint, "a kept instance connection closed under the request; sending it again");
            resend(&*shared.plane, &route.service, upstream, deadline, |stream, endpoint| async move {
                proxy::resend(stream, *req, &endpoint).await
            })
            .await
        }
        Some(Err(proxy::NoResponse::Failed(status))) => Err(Unreached::failed(upstream.revision, status)),
        None => Err(Unreached::failed(upstream.revision, StatusCode::GATEWAY_TIMEOUT)),
    };
    match outcome {
        Ok((resp, link, Upstream { revision, guard, .. })) => {
            served.record(resp.status(), Some(&revision), email);
            Ok(resp.map(|body| Body::proxied(body, deadline, guard, link, Arc::clone(&caller.affinity))))
        }
        Err(u) => {
            served.record(u.status, Some(&u.revision), email);
            Ok(page(u.status, u.page))
        }
    }
}

/// `work`, unless `deadline` passes first (`None`).
pub(crate) async fn before<T>(deadline: Option<tokio::time::Instant>, work: impl Future<Output = T>) -> Option<T> {
    match deadline {
        Some(at) => tokio::time::timeout_at(at, work).await.ok(),
        None => Some(work.await),
    }
}

/// Sends a request once more, after the kept connection it went on closed under it: on a new connection, through
/// [`reach`] (the instance may have gone: then it is reported, and another takes the request), by `send`, which
/// gets the connection and the instance's endpoint. Both paths use it, each with its own `send`.
pub(crate) async fn resend<P: Plane, T, E, F>(
    plane: &P,
    service: &str,
    upstream: Upstream,
    deadline: Option<tokio::time::Instant>,
    send: impl FnOnce(TcpStream, Endpoint) -> F,
) -> Result<(T, E, Upstream), Unreached>
where
    F: Future<Output = Result<(T, E), StatusCode>>,
{
    // Rare (a kept connection failed under a request): the revision is kept for the log should the deadline pass.
    let revision = upstream.revision.clone();
    let (upstream, stream) = before(deadline, reach(plane, service, upstream))
        .await
        .unwrap_or_else(|| Err(Unreached::failed(revision, StatusCode::GATEWAY_TIMEOUT)))?;
    match before(deadline, send(stream, upstream.endpoint.clone())).await {
        Some(Ok((response, link))) => Ok((response, link, upstream)),
        Some(Err(status)) => Err(Unreached::failed(upstream.revision, status)),
        None => Err(Unreached::failed(upstream.revision, StatusCode::GATEWAY_TIMEOUT)),
    }
}
