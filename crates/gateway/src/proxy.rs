//! Step 3 on hyper's path (see [`crate::h1`] for the fast path, which makes the same edits): forwarding an admitted
//! request to an instance over HTTP/1.1, streaming both bodies.
//!
//! On the way in: hop-by-hop headers go, the checked token loses its signature where Cloud Run removes it
//! ([`crate::invoke::Rewrite`]), `X-Forwarded-For` gains the caller's address, `X-Forwarded-Proto` is `http`, `Host`
//! stays the caller's. On the way out: hop-by-hop headers go, and a response that sets a cookie is made
//! `Cache-Control: private` (PROTOCOL §10.1). The instance slot ([`crate::Upstream::guard`]) lives in the response
//! [`Body`] until the last byte is sent, or the exchange fails.
//!
//! Connections to instances: each caller connection keeps the instance connection it used last ([`Affinity`]) and
//! reuses it for its next request to the same instance. HTTP/1.1 carries one request at a time, so this needs no
//! shared pool and no background task: the instance connection ([`Link`]) is driven inside the caller connection's
//! own task — while the request is sent by [`forward`], then by the response [`Body`] while it streams — so a
//! request costs no cross-task wake-up. Measured against hyper-util's pooled client it costs about 10% less CPU per
//! request, and driving the link in the caller's task saves a little more (see `bench/README.md`).

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::invoke::Rewrite;
use crate::{Endpoint, Slot};

/// The instance connection a caller connection used last, kept for its next request.
pub type Affinity = Mutex<Option<Link>>;

/// One connection to an instance: the request handle and the connection future, which whoever uses the link polls
/// (there is no task of its own).
pub struct Link {
    endpoint: Endpoint,
    sender: SendRequest<Incoming>,
    /// `None` once the connection future has finished (closed, or failed): the link cannot carry another request.
    /// It is dropped then, as it holds the queue a request waits in: a request queued just as the instance closed the
    /// idle connection is answered (given back, unsent) only when the queue goes.
    conn: Option<Pin<Box<InstanceConnection>>>,
}

/// hyper's half of a connection to an instance that does the I/O.
type InstanceConnection = Connection<TokioIo<TcpStream>, Incoming>;

/// Why [`Link::send`] failed.
enum SendError {
    /// Nothing was written: the request can go on another connection.
    Unsent(Box<Request<Incoming>>),
    Failed(hyper::Error),
}

impl Link {
    /// Lets the connection make progress (write the request, read the response, feed the body); registers `cx` for
    /// its I/O.
    fn drive(&mut self, cx: &mut Context<'_>) {
        let Some(conn) = &mut self.conn else { return };
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            self.conn = None;
            if let Err(e) = result {
                tracing::debug!(endpoint = %self.endpoint, error = %e, "instance connection ended with an error");
            }
        }
    }

    fn usable(&self) -> bool {
        self.conn.is_some() && !self.sender.is_closed()
    }

    /// Sends `req` and waits for the response head, driving the connection meanwhile.
    async fn send(&mut self, req: Request<Incoming>) -> Result<Response<Incoming>, SendError> {
        let ready = poll_fn(|cx| match self.sender.poll_ready(cx) {
            Poll::Pending => {
                self.drive(cx);
                self.sender.poll_ready(cx)
            }
            ready => ready,
        })
        .await;
        if ready.is_err() {
            return Err(SendError::Unsent(Box::new(req)));
        }
        let mut response = std::pin::pin!(self.sender.try_send_request(req));
        let result = poll_fn(|cx| match response.as_mut().poll(cx) {
            Poll::Pending => {
                self.drive(cx);
                response.as_mut().poll(cx)
            }
            done => done,
        })
        .await;
        result.map_err(|mut e| match e.take_message() {
            Some(back) => SendError::Unsent(Box::new(back)),
            None => SendError::Failed(e.into_error()),
        })
    }
}

/// How long connecting to an instance may take before the request fails with 503.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
const PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// The connection a request goes out on: the caller connection's kept one ([`take_link`]), or a new one.
pub enum Conn {
    Kept(Link),
    Fresh(TcpStream),
}

/// Why [`forward`] has no response.
pub enum NoResponse {
    /// The kept connection was closed before the request was written (the instance closed it while idle, or has
    /// gone). The request, as the instance gets it, can go on a new connection: [`resend`].
    Unsent(Box<Request<Incoming>>),
    /// The status of the page to answer with: 503 when the instance could not be reached, 502 when it broke the
    /// exchange.
    Failed(StatusCode),
}

/// Sends `req` to the instance at `endpoint` over `conn`. The instance connection travels with the response: hand
/// both to [`Body::proxied`], which returns the connection to the caller's affinity once the body is done.
pub async fn forward(
    conn: Conn,
    mut req: Request<Incoming>,
    endpoint: &Endpoint,
    caller: &HeaderValue,
    rewrite: Option<Rewrite>,
) -> Result<(Response<Incoming>, Link), NoResponse> {
    // Origin-form request target; an absolute-form one (`GET http://host/path`) is rewritten.
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let pq = req.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
    *req.version_mut() = Version::HTTP_11;
    prepare_head(req.headers_mut(), endpoint, caller, rewrite);

    match conn {
        Conn::Fresh(stream) => resend(stream, req, endpoint).await.map_err(NoResponse::Failed),
        Conn::Kept(mut link) => match link.send(req).await {
            Ok(resp) => Ok((finish(resp), link)),
            Err(SendError::Unsent(back)) => Err(NoResponse::Unsent(back)),
            Err(SendError::Failed(e)) => Err(NoResponse::Failed(failed(endpoint, &e))),
        },
    }
}

/// Sends `req`, already edited for the instance by [`forward`], over `stream`, a new connection to `endpoint`.
pub async fn resend(
    stream: TcpStream,
    req: Request<Incoming>,
    endpoint: &Endpoint,
) -> Result<(Response<Incoming>, Link), StatusCode> {
    let mut link = handshake(endpoint, stream).await?;
    match link.send(req).await {
        Ok(resp) => Ok((finish(resp), link)),
        Err(SendError::Unsent(_)) => {
            tracing::debug!(%endpoint, "a fresh instance connection closed before the request was written");
            Err(StatusCode::BAD_GATEWAY)
        }
        Err(SendError::Failed(e)) => Err(failed(endpoint, &e)),
    }
}

/// The request headers as the instance gets them: no hop-by-hop or spoofed-credential headers, the credential
/// rewrite, `X-Forwarded-For` and `-Proto`, a `Host`.
fn prepare_head(headers: &mut HeaderMap, endpoint: &Endpoint, caller: &HeaderValue, rewrite: Option<Rewrite>) {
    strip_hop_by_hop(headers);
    let spoofed: Vec<HeaderName> =
        headers.keys().filter(|k| is_spoofed_credential(k.as_str().as_bytes())).cloned().collect();
    for name in spoofed {
        headers.remove(name);
    }
    if let Some(Rewrite { header, value }) = rewrite {
        headers.insert(header, value);
    }
    append_forwarded_for(headers, caller);
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    if !headers.contains_key(header::HOST) {
        // HTTP/1.0 callers may omit it; HTTP/1.1 requires one.
        if let Ok(v) = HeaderValue::try_from(endpoint.addr.to_string()) {
            headers.insert(header::HOST, v);
        }
    }
}

/// A protocol upgrade request (a WebSocket handshake): `Connection: upgrade` and an `Upgrade` header.
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    let upgrade_option = req
        .headers()
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|o| o.trim().eq_ignore_ascii_case("upgrade"));
    upgrade_option && req.headers().contains_key(header::UPGRADE)
}

/// Forwards an upgrade request over `stream` (a connection of its own). When the instance switches protocols
/// (101), the caller gets the 101 and both connections are joined byte for byte until either side closes or
/// `timeout` passes (Cloud Run's request timeout bounds a WebSocket session); `guard` is the slot, held meanwhile.
/// Any other answer is passed on as it is.
pub async fn tunnel(
    stream: TcpStream,
    mut req: Request<Incoming>,
    endpoint: &Endpoint,
    caller: &HeaderValue,
    rewrite: Option<Rewrite>,
    timeout: Option<Duration>,
    guard: Box<dyn Slot>,
) -> Result<Response<Body>, StatusCode> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let upgrade = req.headers().get(header::UPGRADE).cloned();
    let from_caller = hyper::upgrade::on(&mut req);
    if req.uri().scheme().is_some() || req.uri().authority().is_some() {
        let pq = req.uri().path_and_query().cloned().unwrap_or_else(|| PathAndQuery::from_static("/"));
        *req.uri_mut() = Uri::from(pq);
    }
    *req.version_mut() = Version::HTTP_11;
    prepare_head(req.headers_mut(), endpoint, caller, rewrite);
    // The upgrade is asked of the instance again: these two are hop-by-hop.
    if let Some(u) = upgrade {
        req.headers_mut().insert(header::UPGRADE, u);
        req.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| {
        tracing::debug!(%endpoint, error = %e, "instance handshake failed");
        StatusCode::SERVICE_UNAVAILABLE
    })?;
    tokio::spawn(conn.with_upgrades());
    let sent = sender.send_request(req);
    let mut resp = match deadline {
        Some(at) => tokio::time::timeout_at(at, sent).await.map_err(|_| StatusCode::GATEWAY_TIMEOUT)?,
        None => sent.await,
    }
    .map_err(|e| failed(endpoint, &e))?;
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        let resp = finish(resp);
        // Not upgraded: an ordinary answer, its body streamed with the slot held (no connection to keep).
        return Ok(resp.map(|body| Body::unlinked(body, deadline, guard)));
    }
    let from_instance = hyper::upgrade::on(&mut resp);
    let mut answer = Response::new(Body::page(Bytes::new()));
    *answer.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    for (name, value) in resp.headers() {
        answer.headers_mut().append(name, value.clone());
    }
    let endpoint = endpoint.clone();
    tokio::spawn(async move {
        let _slot = guard;
        let joined = async {
            let (caller_io, instance_io) = tokio::try_join!(from_caller, from_instance).map_err(|e| e.to_string())?;
            let (mut a, mut b) = (TokioIo::new(caller_io), TokioIo::new(instance_io));
            tokio::io::copy_bidirectional(&mut a, &mut b).await.map_err(|e| e.to_string())?;
            Ok::<(), String>(())
        };
        let result = match deadline {
            Some(at) => {
                tokio::time::timeout_at(at, joined).await.unwrap_or_else(|_| Err("the request timeout passed".into()))
            }
            None => joined.await,
        };
        if let Err(e) = result {
            tracing::debug!(%endpoint, error = %e, "a tunnelled session ended");
        }
    });
    Ok(answer)
}

fn failed(endpoint: &Endpoint, e: &hyper::Error) -> StatusCode {
    tracing::debug!(%endpoint, error = %e, "instance request failed");
    // The caller's own body broke (a malformed chunk, say) while it was being passed on: the caller's fault, 400,
    // as Google's front end answers; anything else is the instance's, 502.
    if e.is_user() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::BAD_GATEWAY
    }
}

/// A new connection to the instance at `endpoint` (Nagle off), for either connection path. Err of kind
/// `ConnectionRefused` when nothing listens on the instance's port (see [`crate::Slot::refused`]); `TimedOut` after
/// [`CONNECT_TIMEOUT`].
pub(crate) async fn dial(endpoint: &Endpoint) -> std::io::Result<TcpStream> {
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, endpoint.connect()).await {
        Ok(connected) => connected?,
        Err(_) => return Err(std::io::ErrorKind::TimedOut.into()),
    };
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// [`dial`] for a request that has no other instance to go to: every failure is 503.
pub(crate) async fn dial_or_503(endpoint: &Endpoint) -> Result<TcpStream, StatusCode> {
    dial(endpoint).await.map_err(|e| {
        tracing::debug!(%endpoint, error = %e, "instance connection failed");
        StatusCode::SERVICE_UNAVAILABLE
    })
}

/// A link over `stream`, a fresh connection to the instance at `endpoint`.
async fn handshake(endpoint: &Endpoint, stream: TcpStream) -> Result<Link, StatusCode> {
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.map_err(|e| {
        tracing::debug!(%endpoint, error = %e, "instance handshake failed");
        StatusCode::SERVICE_UNAVAILABLE
    })?;
    Ok(Link { endpoint: endpoint.clone(), sender, conn: Some(Box::pin(conn)) })
}

/// The caller connection's kept instance connection, if it can carry a request to `endpoint` (else it is dropped).
pub(crate) fn take_link(affinity: &Affinity, endpoint: &Endpoint) -> Option<Link> {
    let kept = affinity.lock().unwrap_or_else(|e| e.into_inner()).take();
    kept.filter(|l| l.endpoint == *endpoint && l.usable())
}

/// Cleans the response head.
fn finish(mut resp: Response<Incoming>) -> Response<Incoming> {
    let headers = resp.headers_mut();
    strip_hop_by_hop(headers);
    if headers.contains_key(header::SET_COOKIE) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private"));
    }
    resp
}

/// `caller` (an IP address, formatted once per connection) appended to the caller's own `X-Forwarded-For`, if any.
fn append_forwarded_for(headers: &mut HeaderMap, caller: &HeaderValue) {
    // Every line of the caller's own list (RFC 9110 §5.3: several lines are one list), then the caller.
    let priors: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    let value = if priors.is_empty() {
        caller.clone()
    } else {
        let mut joined = priors.join(", ").into_bytes();
        joined.extend_from_slice(b", ");
        joined.extend_from_slice(caller.as_bytes());
        // INVARIANT: visible ASCII plus an IP address.
        match HeaderValue::from_bytes(&joined) {
            Ok(v) => v,
            Err(_) => return,
        }
    };
    headers.insert(X_FORWARDED_FOR, value);
}

/// The headers that belong to one connection (RFC 9110 §7.6.1), besides those `Connection` names. Both connection
/// paths drop them.
pub(crate) const HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    KEEP_ALIVE,
    PROXY_CONNECTION,
    header::PROXY_AUTHORIZATION,
    header::PROXY_AUTHENTICATE,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Whether `name` is one of [`HOP_BY_HOP`], in any case: one length match and at most two comparisons, for the fast
/// path's per-header loops.
pub(crate) fn is_hop_by_hop(name: &[u8]) -> bool {
    let is = |n: &HeaderName| name.eq_ignore_ascii_case(n.as_str().as_bytes());
    match name.len() {
        2 => is(&header::TE),
        7 => is(&header::TRAILER) || is(&header::UPGRADE),
        10 => is(&header::CONNECTION) || is(&KEEP_ALIVE),
        16 => is(&PROXY_CONNECTION),
        17 => is(&header::TRANSFER_ENCODING),
        18 => is(&header::PROXY_AUTHENTICATE),
        19 => is(&header::PROXY_AUTHORIZATION),
        _ => false,
    }
}

/// `X_Serverless_Authorization` and its other underscore spellings: the gateway checks only the hyphenated name, but
/// CGI, WSGI and PHP apps read the underscore one as the same variable, so a forged token under it would reach them as
/// if Google had verified it. Never forwarded.
pub(crate) fn is_spoofed_credential(name: &[u8]) -> bool {
    let xsa = crate::invoke::X_SERVERLESS_AUTHORIZATION;
    let xsa = xsa.as_str().as_bytes();
    name.len() == xsa.len()
        && name.contains(&b'_')
        && name.iter().zip(xsa).all(|(c, x)| c.to_ascii_lowercase() == *x || (*c == b'_' && *x == b'-'))
}

/// Removes the headers that belong to one connection, including those `Connection` names. One pass over the
/// (few) header names finds which are present (a bit per [`HOP_BY_HOP`] entry: no allocation); usually none, or
/// `Connection: keep-alive` alone.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let mut present = 0u16;
    for k in headers.keys() {
        if let Some(i) = HOP_BY_HOP.iter().position(|h| h == k) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // Names listed in `Connection` (other than the hop-by-hop ones removed below, and `close`) go too.
    let mut named: Vec<String> = Vec::new();
    for conn in headers.get_all(header::CONNECTION) {
        for token in conn.to_str().unwrap_or("").split(',').map(str::trim) {
            let listed = token.is_empty() || token.eq_ignore_ascii_case("close") || is_hop_by_hop(token.as_bytes());
            if !listed {
                named.push(token.to_ascii_lowercase());
            }
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    for name in named {
        if let Ok(name) = HeaderName::from_bytes(name.as_bytes()) {
            headers.remove(name);
        }
    }
}

/// Every response body the gateway sends: a page, or an instance's body streamed through with the slot it holds.
pub struct Body(Kind);

enum Kind {
    Page(Option<Bytes>),
    Proxied {
        inner: Incoming,
        /// The end of the route's request timeout: the body is cut there (and the slot freed).
        deadline: Option<Pin<Box<tokio::time::Sleep>>>,
        guard: Option<Box<dyn Slot>>,
        /// The instance connection the body arrives on, driven from here; back to the caller connection's affinity
        /// when the body is done.
        link: Option<(Link, Arc<Affinity>)>,
    },
}

impl Body {
    pub fn page(bytes: impl Into<Bytes>) -> Body {
        Body(Kind::Page(Some(bytes.into())))
    }

    /// `inner`, holding `guard` until it ends or fails, and driving `link` (the connection `inner` arrives on),
    /// which goes back to `affinity` once `inner` has ended.
    pub fn proxied(
        inner: Incoming,
        deadline: Option<tokio::time::Instant>,
        guard: Box<dyn Slot>,
        link: Link,
        affinity: Arc<Affinity>,
    ) -> Body {
        let deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
        let mut body = Body(Kind::Proxied { inner, deadline, guard: Some(guard), link: Some((link, affinity)) });
        if hyper::body::Body::is_end_stream(&body) {
            body.ended();
        }
        body
    }

    /// `inner` on a connection of its own (driven elsewhere, not kept), holding `guard` until it ends, fails or
    /// `deadline` passes.
    pub fn unlinked(inner: Incoming, deadline: Option<tokio::time::Instant>, guard: Box<dyn Slot>) -> Body {
        let deadline = deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
        let mut body = Body(Kind::Proxied { inner, deadline, guard: Some(guard), link: None });
        if hyper::body::Body::is_end_stream(&body) {
            body.ended();
        }
        body
    }

    /// The instance's body is complete: free the slot, keep the connection for the caller's next request.
    fn ended(&mut self) {
        if let Kind::Proxied { guard, link, .. } = &mut self.0 {
            *guard = None;
            if let Some((link, affinity)) = link.take() {
                if link.usable() {
                    *affinity.lock().unwrap_or_else(|e| e.into_inner()) = Some(link);
                }
            }
        }
    }

    /// The exchange failed: free the slot, drop the connection.
    fn failed(&mut self) {
        if let Kind::Proxied { guard, link, .. } = &mut self.0 {
            *guard = None;
            *link = None;
        }
    }
}

/// Why a proxied body was cut.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the instance's response body failed: {0}")]
    Instance(#[from] hyper::Error),
    #[error("the request timeout passed while the response body was still being sent")]
    Timeout,
}

impl hyper::body::Body for Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if let Kind::Proxied { deadline: Some(deadline), .. } = &mut this.0 {
            if deadline.as_mut().poll(cx).is_ready() {
                this.failed();
                this.0 = Kind::Page(None);
                return Poll::Ready(Some(Err(BodyError::Timeout)));
            }
        }
        let polled = match &mut this.0 {
            Kind::Page(bytes) => return Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            Kind::Proxied { inner, link, .. } => match Pin::new(&mut *inner).poll_frame(cx) {
                Poll::Pending => match link {
                    Some((link, _)) => {
                        link.drive(cx);
                        Pin::new(&mut *inner).poll_frame(cx)
                    }
                    None => Poll::Pending,
                },
                polled => polled,
            },
        };
        match &polled {
            Poll::Ready(None) => this.ended(),
            Poll::Ready(Some(Err(_))) => this.failed(),
            Poll::Ready(Some(Ok(_))) if this.is_end_stream() => this.ended(),
            _ => {}
        }
        polled.map(|frame| frame.map(|r| r.map_err(BodyError::from)))
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Kind::Page(bytes) => bytes.is_none(),
            Kind::Proxied { inner, .. } => inner.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Kind::Page(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::Proxied { inner, .. } => inner.size_hint(),
        }
    }
}

/// A page response with the gateway's content type.
pub fn page(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Body::page(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(crate::pages::HTML));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_hop_by_hop_knows_exactly_the_list_in_any_case() {
        for name in &HOP_BY_HOP {
            assert!(is_hop_by_hop(name.as_str().as_bytes()), "{name}");
            assert!(is_hop_by_hop(name.as_str().to_ascii_uppercase().as_bytes()), "{name}");
        }
        for other in ["", "t", "tf", "host", "trailers", "upgrades", "keep-alive2", "connectio", "content-length"] {
            assert!(!is_hop_by_hop(other.as_bytes()), "{other}");
        }
    }

    #[test]
    fn strips_hop_by_hop_and_connection_named_headers() {
        let mut h = HeaderMap::new();
        h.insert(header::CONNECTION, "keep-alive, x-secret-hop".parse().unwrap());
        h.insert("x-secret-hop", "1".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert(header::TRANSFER_ENCODING, "chunked".parse().unwrap());
        h.insert("x-kept", "1".parse().unwrap());
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn appends_forwarded_for() {
        let mut h = HeaderMap::new();
        append_forwarded_for(&mut h, &HeaderValue::from_static("10.0.0.1"));
        append_forwarded_for(&mut h, &HeaderValue::from_static("::1"));
        assert_eq!(h[X_FORWARDED_FOR], "10.0.0.1, ::1");
    }
}
