//! Accepting connections and driving each request through the flow: [`route`](crate::route) →
//! [`invoke`](crate::invoke) → [`Plane::acquire`] → [`proxy`](crate::proxy), with a page for every refusal.
//!
//! hyper's HTTP/1.1 server directly (keep-alive, 30 s header-read timeout), no router: one service function per
//! connection. Every refusal is reported with [`Plane::denied`]; every request that named a service with
//! [`Plane::served`] (a URL that names no service is in no service's request log, as on Cloud Run).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::proxy::{self, page, Body};
use crate::{invoke, pages, route, Denial, Plane, RequestRecord, RouteBy, Unavailable, Upstream};

/// How long open connections get to finish after `shutdown` resolves.
const DRAIN: Duration = Duration::from_secs(10);

struct Shared<P> {
    plane: Arc<P>,
    by: RouteBy,
}

/// Serves the gateway on `listener` until `shutdown` resolves, then lets open requests finish (up to 10 s).
pub async fn serve<P: Plane>(
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
                    let caller = Arc::new(Caller {
                        peer,
                        ip: peer.ip().to_string(),
                        affinity: Arc::new(proxy::Affinity::default()),
                    });
                    let svc = service_fn(move |req| handle(Arc::clone(&shared), Arc::clone(&caller), req));
                    let conn = graceful.watch(builder.serve_connection(TokioIo::new(stream), svc));
                    tokio::spawn(async move {
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

/// One caller connection: its address (formatted once, not per request) and the instance connection it used last.
struct Caller {
    peer: SocketAddr,
    ip: String,
    affinity: Arc<proxy::Affinity>,
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
    let record = |status: StatusCode, revision: Option<String>, principal: Option<String>| RequestRecord {
        service: route.service.clone(),
        revision,
        status: status.as_u16(),
        latency: start.elapsed(),
        principal,
        method: req.method().as_str().to_owned(),
        path: req.uri().path().to_owned(),
        caller_ip: caller.ip.clone(),
    };

    let checked = {
        let (iam, verifier) = (plane.iam(), plane.verifier());
        invoke::check(&route, req.headers(), &iam, &verifier, |sub| plane.principal_for_subject(sub), SystemTime::now())
    };
    let admitted = match checked {
        Ok(admitted) => admitted,
        Err(refusal) => {
            let path = req.uri().path();
            let (status, body) = match refusal.status {
                401 => (StatusCode::UNAUTHORIZED, pages::unauthorized(path)),
                _ if refusal.is_unauthenticated() => (StatusCode::FORBIDDEN, pages::not_authenticated()),
                _ => (StatusCode::FORBIDDEN, pages::forbidden(path)),
            };
            let email = refusal.principal.as_ref().and_then(|p| p.email()).map(str::to_owned);
            let rec = record(status, None, email.clone());
            plane.denied(Denial {
                service: rec.service.clone(),
                resource: route.resource.clone(),
                status: rec.status,
                reason: refusal.reason,
                principal: email,
                explanation: refusal.explanation,
                caller_ip: rec.caller_ip.clone(),
                method: rec.method.clone(),
                path: rec.path.clone(),
            });
            plane.served(rec);
            return Ok(page(status, body));
        }
    };
    let email = admitted.principal.as_ref().and_then(|p| p.email()).map(str::to_owned);

    let Upstream { addr, revision, guard } = match plane.acquire(&route.service).await {
        Ok(upstream) => upstream,
        Err(why) => {
            let (status, body) = match why {
                Unavailable::Timeout => (StatusCode::TOO_MANY_REQUESTS, pages::RATE_EXCEEDED.to_owned()),
                Unavailable::NoRevision => (StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(None)),
                Unavailable::Failed(reason) => (StatusCode::SERVICE_UNAVAILABLE, pages::unavailable(Some(&reason))),
            };
            plane.served(record(status, None, email));
            return Ok(page(status, body));
        }
    };

    let rec = record(StatusCode::OK, Some(revision), email);
    let forwarded = proxy::forward(&caller.affinity, req, addr, caller.peer.ip(), admitted.rewrite);
    let outcome = match route.timeout {
        Some(limit) => tokio::time::timeout(limit, forwarded).await.unwrap_or(Err(StatusCode::GATEWAY_TIMEOUT)),
        None => forwarded.await,
    };
    match outcome {
        Ok((resp, link)) => {
            plane.served(RequestRecord { status: resp.status().as_u16(), latency: start.elapsed(), ..rec });
            Ok(resp.map(|body| Body::proxied(body, guard, link, Arc::clone(&caller.affinity))))
        }
        Err(status) => {
            drop(guard);
            let body = match status {
                StatusCode::SERVICE_UNAVAILABLE => pages::unavailable(None),
                StatusCode::GATEWAY_TIMEOUT => pages::UPSTREAM_TIMEOUT.to_owned(),
                _ => pages::BAD_GATEWAY.to_owned(),
            };
            plane.served(RequestRecord { status: status.as_u16(), latency: start.elapsed(), ..rec });
            Ok(page(status, body))
        }
    }
}
