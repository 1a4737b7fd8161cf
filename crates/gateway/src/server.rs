//! Accepting connections and driving each request through the flow: [`route`](crate::route) →
//! [`invoke`](crate::invoke) → [`Plane::acquire`] → [`proxy`](crate::proxy), with a page for every refusal.
//!
//! hyper's HTTP/1.1 server directly (keep-alive, 30 s header-read timeout), no router: one service function per
//! connection, run on one of the [`Workers`] (thread per core) from accept to close. Every refusal is reported with
//! [`Plane::denied`]; every request that named a service with [`Plane::served`] (a URL that names no service is in
//! no service's request log, as on Cloud Run).

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{HeaderValue, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::proxy::{self, page, Body};
use crate::{invoke, pages, route, Denial, Plane, RequestRecord, RouteBy, Unavailable, Upstream, Workers};

/// How long open connections get to finish after `shutdown` resolves.
const DRAIN: Duration = Duration::from_secs(10);

struct Shared<P> {
    plane: Arc<P>,
    by: RouteBy,
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
    let shared = Arc::new(Shared { plane, by });
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).keep_alive(true).header_read_timeout(Duration::from_secs(30));
    let graceful = GracefulShutdown::new();
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
                    let svc = service_fn(move |req| handle(Arc::clone(&shared), Arc::clone(&caller), req));
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                    workers.spawn(async move {
                        if let Err(e) = conn.await {
                            tracing::debug!(%peer, error = %e, "gateway connection ended with an error");
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
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!("gateway connections still open after {DRAIN:?}; dropping them");
    }
    Ok(())
}

/// One caller connection: its address (formatted once, not per request), the instance connection it used last and
/// its last admission.
struct Caller {
    ip: String,
    /// `ip` as the `X-Forwarded-For` value the instance gets (when the caller sent none).
    forwarded_for: HeaderValue,
    affinity: Arc<proxy::Affinity>,
    memo: invoke::Memo,
}

async fn handle<P: Plane>(
    shared: Arc<Shared<P>>,
    caller: Arc<Caller>,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    let plane = &*shared.plane;
    let Some(route) = route::find(&plane.routes(), shared.by, req.headers(), req.uri()) else {
        return Ok(page(StatusCode::NOT_FOUND, pages::NOT_FOUND_PAGE));
    };
    // What the request log needs from the request, owned here because the request itself moves on to the instance.
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let served = |status: StatusCode, revision: Option<&str>, principal: Option<&str>| {
        plane.served(RequestRecord {
            service: &route.service,
            revision,
            status: status.as_u16(),
            latency: start.elapsed(),
            principal,
            method: method.as_str(),
            path: &path,
            caller_ip: &caller.ip,
        })
    };

    let checked = {
        let (iam, verifier) = (plane.iam(), plane.verifier());
        let resolve = |sub: &str| plane.principal_for_subject(sub);
        caller.memo.check(&route, req.headers(), &iam, &verifier, resolve, SystemTime::now())
    };
    let admitted = match checked {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let (status, body) = match refusal.status {
                401 => (StatusCode::UNAUTHORIZED, pages::unauthorized(&path)),
                _ if refusal.is_unauthenticated() => (StatusCode::FORBIDDEN, pages::not_authenticated()),
                _ => (StatusCode::FORBIDDEN, pages::forbidden(&path)),
            };
            let email = refusal.principal.as_ref().and_then(|p| p.email()).map(str::to_owned);
            served(status, None, email.as_deref());
            plane.denied(Denial {
                service: route.service.clone(),
                resource: route.resource.clone(),
                status: status.as_u16(),
                reason: refusal.reason,
                principal: email,
                explanation: refusal.explanation,
                caller_ip: caller.ip.clone(),
                method: method.as_str().to_owned(),
                path,
            });
            return Ok(page(status, body));
        }
    };
    let email = admitted.principal.as_ref().and_then(|p| p.email());

    let Upstream { addr, revision, guard } = match plane.acquire(&route.service).await {
        Ok(upstream) => upstream,
        Err(why) => {
            let (status, body) = match why {
                Unavailable::Timeout => (StatusCode::TOO_MANY_REQUESTS, pages::RATE_EXCEEDED.to_owned()),
                Unavailable::NoRevision => (StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(None)),
                Unavailable::Failed(reason) => (StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(Some(&reason))),
            };
            served(status, None, email);
            return Ok(page(status, body));
        }
    };

    let forwarded = proxy::forward(&caller.affinity, req, addr, &caller.forwarded_for, admitted.rewrite);
    let outcome = match route.timeout {
        Some(limit) => tokio::time::timeout(limit, forwarded).await.unwrap_or(Err(StatusCode::GATEWAY_TIMEOUT)),
        None => forwarded.await,
    };
    match outcome {
        Ok((resp, link)) => {
            served(resp.status(), Some(&revision), email);
            Ok(resp.map(|body| Body::proxied(body, guard, link, Arc::clone(&caller.affinity))))
        }
        Err(status) => {
            drop(guard);
            let body = match status {
                StatusCode::SERVICE_UNAVAILABLE => pages::unavailable(None),
                StatusCode::GATEWAY_TIMEOUT => pages::UPSTREAM_TIMEOUT.to_owned(),
                _ => pages::BAD_GATEWAY.to_owned(),
            };
            served(status, Some(&revision), email);
            Ok(page(status, body))
        }
    }
}
