//! The HTTP/1.1 fast path: plain requests go through without being turned into `http::Request`s and back.
//!
//! A caller connection starts here. Each request head is parsed in place (httparse, no allocation), checked
//! ([`crate::server::admit`]: route, invocation check, instance slot) and written to the instance with Cloud Run's
//! edits (the same as [`crate::proxy`]'s: hop-by-hop headers dropped, the checked token's signature removed where
//! Cloud Run removes it, `X-Forwarded-For` and `X-Forwarded-Proto`, a `Host` when there was none). The instance's
//! response head is parsed in place too and copied to the caller with hop-by-hop headers dropped, `Cache-Control:
//! private` when it sets a cookie and a `Date` when it has none; its body is passed through as it arrives, framing
//! and all — a chunked body stays chunked ([`Chunked`] only follows it to find its end), a body delimited by the
//! instance closing the connection ends the caller's connection too.
//!
//! A request is plain when it is HTTP/1.1, its target is a path (origin form), its head fits in 16 KiB and 64
//! headers, its body (if any) has one `Content-Length`, and it asks for nothing connection-level: no
//! `Transfer-Encoding`, `Expect`, `Upgrade`, or `Connection` option other than `keep-alive` / `close`. The first
//! request that is not plain (or does not parse) hands the connection, with every byte read so far, to hyper's
//! server ([`crate::server`]) for the rest of its life: hyper answers malformed requests and handles every HTTP/1
//! feature, and this path stays small. Why the fast path exists: hyper's client and server both build a `HeaderMap`
//! per message and re-encode it; passing heads through costs about a third of the user-space instructions per
//! proxied request (`bench/gateway_instructions.sh`).
//!
//! The instance connection the caller connection used last is kept for its next request (HTTP/1.1 carries one
//! request at a time, so there is no pool and no background task). A kept connection the instance has closed is
//! noticed before use from the readiness the runtime already has (no system call); if it fails before any byte of
//! the response, an idempotent request whose body was already read is sent once more on a fresh connection.

use std::io;
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::{Buf, BytesMut};
use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::chunked::Chunked;
use crate::invoke::Rewrite;
use crate::proxy::is_hop_by_hop;
use crate::server::{self, Admission, Caller, Served, Shared, Unreached, HEAD_TIMEOUT};
use crate::{pages, Endpoint, Plane, Upstream};

/// A head that has not ended within this many bytes goes to hyper (which answers 431 when it is too large).
const MAX_HEAD: usize = 16 * 1024;
/// Request headers the fast path takes; more go to hyper (which takes 100).
const MAX_HEADERS: usize = 64;
/// Response headers an instance may send (as hyper's client).
const MAX_RESPONSE_HEADERS: usize = 100;
/// Read buffers start at this size and grow only for larger heads.
const BUF: usize = 8 * 1024;

/// Serves `client` until it closes (`None`), or until a request the fast path does not take: then returns every
/// byte read from `client` and not yet consumed, for hyper to carry on from.
pub(crate) async fn serve<P: Plane>(
    client: &mut TcpStream,
    shared: &Shared<P>,
    caller: &Caller,
    stopping: &mut watch::Receiver<()>,
) -> Option<BytesMut> {
    let mut inbuf = BytesMut::with_capacity(BUF);
    let mut out = Vec::with_capacity(BUF);
    let mut link: Option<Link> = None;
    loop {
        // A complete head in `inbuf`.
        let mut scanned = 0;
        let deadline = tokio::time::Instant::now() + HEAD_TIMEOUT;
        let head_len = loop {
            if let Some(end) = head_end(&inbuf, &mut scanned) {
                break end;
            }
            if inbuf.len() > MAX_HEAD {
                return Some(inbuf);
            }
            if stopping.has_changed().unwrap_or(true) && inbuf.is_empty() {
                return None;
            }
            inbuf.reserve(BUF / 2);
            let read = tokio::select! {
                biased;
                read = tokio::time::timeout_at(deadline, client.read_buf(&mut inbuf)) => read,
                _ = stopping.changed(), if inbuf.is_empty() => return None,
            };
            match read {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
                Ok(Ok(_)) => {}
            }
        };

        // Uninitialised: parsing writes only the entries it fills (initialising all 64 cost 2 KB of stores).
        let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let parsed = req.parse_with_uninit_headers(&inbuf[..head_len], &mut headers);
        let plain = match parsed {
            Ok(httparse::Status::Complete(n)) if n == head_len => Plain::of(&req),
            _ => None,
        };
        let Some(plain) = plain else {
            return Some(inbuf);
        };
        let (method, target) = (req.method.unwrap_or_default(), req.path.unwrap_or_default());
        let headers: &[httparse::Header<'_>] = req.headers;
        let buffered = (inbuf.len() - head_len).min(plain.body);
        let request = Head {
            method,
            target,
            headers,
            body: &inbuf[head_len..head_len + buffered],
            body_left: plain.body - buffered,
        };

        let next = exchange(client, shared, caller, &request, &mut link, &mut out).await;
        if matches!(next, Next::Close) || plain.close {
            let _ = client.shutdown().await;
            return None;
        }
        inbuf.advance(head_len + buffered);
    }
}

/// What a plain request asks of the connection.
struct Plain {
    /// `Content-Length` (0 without one).
    body: usize,
    /// `Connection: close`.
    close: bool,
}

impl Plain {
    /// `Some` when the fast path takes the request (see the module doc).
    fn of(req: &httparse::Request<'_, '_>) -> Option<Plain> {
        if req.version != Some(1) || req.method == Some("CONNECT") || !req.path?.starts_with('/') {
            return None;
        }
        let (mut body, mut close) = (None, false);
        for h in req.headers.iter() {
            let name = h.name;
            if name.eq_ignore_ascii_case("content-length") {
                if body.is_some() {
                    return None;
                }
                body = Some(content_length(h.value)?);
            } else if name.eq_ignore_ascii_case("connection") {
                for option in std::str::from_utf8(h.value).ok()?.split(',').map(str::trim) {
                    if option.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if !(option.is_empty() || option.eq_ignore_ascii_case("keep-alive")) {
                        return None;
                    }
                }
            } else if ["transfer-encoding", "expect", "upgrade", "http2-settings"]
                .iter()
                .any(|n| name.eq_ignore_ascii_case(n))
            {
                return None;
            }
        }
        Some(Plain { body: body.unwrap_or(0), close })
    }
}

/// A `Content-Length` value: digits only, at most 18 of them.
fn content_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || value.len() > 18 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    value.iter().try_fold(0usize, |n, d| n.checked_mul(10)?.checked_add(usize::from(d - b'0')))
}

/// Where the head in `buf` ends (just past its empty line), if it has; `scanned` remembers how far earlier calls
/// looked, so a head arriving in pieces is scanned once.
fn head_end(buf: &[u8], scanned: &mut usize) -> Option<usize> {
    for lf in memchr::memchr_iter(b'\n', &buf[*scanned..]).map(|i| i + *scanned) {
        // The line after this LF is empty when it is `\n` or `\r\n`; a leading empty line is not an end.
        match (buf.get(lf + 1), buf.get(lf + 2)) {
            (Some(b'\n'), _) if lf > 1 => return Some(lf + 2),
            (Some(b'\r'), Some(b'\n')) if lf > 1 => return Some(lf + 3),
            (None, _) | (Some(b'\r'), None) => {
                *scanned = lf;
                return None;
            }
            _ => {}
        }
    }
    *scanned = buf.len();
    None
}

/// A parsed request, borrowed from the connection's buffer.
struct Head<'a> {
    method: &'a str,
    /// The origin-form target: path and query.
    target: &'a str,
    headers: &'a [httparse::Header<'a>],
    /// The part of the body that arrived with the head.
    body: &'a [u8],
    /// How much of the body is still to be read from the caller.
    body_left: usize,
}

impl Head<'_> {
    fn path(&self) -> &str {
        self.target.split_once('?').map_or(self.target, |(p, _)| p)
    }

    /// RFC 9110 §9.2.2: sending these twice is harmless.
    fn idempotent(&self) -> bool {
        matches!(self.method, "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE")
    }
}

/// What the caller connection does after an exchange.
enum Next {
    KeepAlive,
    Close,
}

/// One request: admitted and forwarded, or answered with a page.
async fn exchange<P: Plane>(
    client: &mut TcpStream,
    shared: &Shared<P>,
    caller: &Caller,
    req: &Head<'_>,
    link: &mut Option<Link>,
    out: &mut Vec<u8>,
) -> Next {
    let start = Instant::now();
    let path = req.path();
    // Exactly one Host (RFC 9112 §3.2: every request here is HTTP/1.1), found in the same scan that reads it.
    let Some((host, false)) = crate::invoke::Credentials::first(req.headers, &http::header::HOST) else {
        return answer_page(client, out, req, StatusCode::BAD_REQUEST, pages::BAD_REQUEST_PAGE).await;
    };
    let host = std::str::from_utf8(host).ok();
    let Admission { route, admitted, upstream } =
        match server::admit(shared, caller, host, req.headers, req.method, path, start).await {
            Ok(admission) => admission,
            Err((status, body)) => return answer_page(client, out, req, status, &body).await,
        };
    let served = Served {
        plane: &*shared.plane,
        service: &route.service,
        method: req.method,
        path,
        caller_ip: &caller.ip,
        from: shared.from.as_ref(),
        start,
    };
    let email = admitted.principal.as_ref().and_then(|p| p.email());
    // The kept instance connection if it can carry this request, else a new one (through `reach`, which replaces
    // an instance that refuses it).
    let (upstream, up, kept) = match link.take().filter(|l| l.reusable_for(&upstream.endpoint)) {
        Some(kept) => (upstream, kept, true),
        None => match server::reach(&*shared.plane, &route.service, upstream).await {
            Ok((upstream, stream)) => {
                let fresh = Link::new(upstream.endpoint.clone(), stream);
                (upstream, fresh, false)
            }
            Err(u) => {
                served.record(u.status, Some(&u.revision), email);
                return answer_page(client, out, req, u.status, &u.page).await;
            }
        },
    };
    request_head(out, req, upstream.endpoint.addr, caller.forwarded_for.as_bytes(), admitted.rewrite.as_ref());
    // The route's timeout covers the whole exchange, the response body too (as Cloud Run's request timeout): a
    // caller that stops reading must not hold the instance's slot for ever.
    let deadline = route.timeout.map(|limit| tokio::time::Instant::now() + limit);
    let sent = send(shared, &route.service, upstream, up, kept, deadline, req, client, out).await;
    let (response, mut up, Upstream { revision, guard, .. }) = match sent {
        Ok(sent) => sent,
        Err(u) => {
            served.record(u.status, Some(&u.revision), email);
            return answer_page(client, out, req, u.status, &u.page).await;
        }
    };
    served.record(response.status, Some(&revision), email);
    let body = pass_body(&mut up, client, out, response.framing);
    let body = match deadline {
        // Past it the head is already out: the connections are cut, as Cloud Run cuts a response that overruns.
        Some(at) => tokio::time::timeout_at(at, body).await.unwrap_or_else(|_| Err(io::ErrorKind::TimedOut.into())),
        None => body.await,
    };
    drop(guard);
    match body {
        Ok(()) if !response.close => {
            if response.reusable {
                *link = Some(up);
            }
            Next::KeepAlive
        }
        _ => Next::Close,
    }
}

/// One connection to an instance, and what has been read from it and not yet passed on.
struct Link {
    endpoint: Endpoint,
    stream: TcpStream,
    buf: BytesMut,
}

impl Link {
    fn new(endpoint: Endpoint, stream: TcpStream) -> Link {
        Link { endpoint, stream, buf: BytesMut::with_capacity(BUF) }
    }

    /// Can carry the next request to `endpoint`.
    fn reusable_for(&self, endpoint: &Endpoint) -> bool {
        self.endpoint == *endpoint && self.buf.is_empty() && self.idle_and_open()
    }

    /// Still open and silent, as far as the runtime knows (no system call unless the socket became readable: an
    /// idle instance connection has nothing to say, so readable means closed, or a protocol error).
    fn idle_and_open(&self) -> bool {
        let mut probe = [0u8; 1];
        matches!(self.stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Reads more from the instance into `buf`; `Ok(0)` is end of stream.
    async fn fill(&mut self) -> io::Result<usize> {
        self.buf.reserve(BUF / 2);
        self.stream.read_buf(&mut self.buf).await
    }
}

/// How a response body ends.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Framing {
    /// No body: a response to HEAD, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// Until the instance closes the connection.
    UntilClose,
}

/// A response head, already in `out` for the caller.
struct Response {
    status: StatusCode,
    framing: Framing,
    /// The instance connection can carry another request after this one.
    reusable: bool,
    /// The caller connection closes after this response (`Connection: close` was sent).
    close: bool,
}

/// The edited request head for the instance, in `out`.
fn request_head(out: &mut Vec<u8>, req: &Head<'_>, addr: SocketAddr, caller: &[u8], rewrite: Option<&Rewrite>) {
    out.clear();
    out.extend_from_slice(req.method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(req.target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut host = false;
    // The caller's own `X-Forwarded-For` lines (one list, RFC 9110 §5.3); usually none.
    let mut forwarded_for: Vec<&[u8]> = Vec::new();
    for h in req.headers {
        let name = h.name;
        if is_hop_by_hop(name.as_bytes())
            || name.eq_ignore_ascii_case("x-forwarded-proto")
            || crate::proxy::is_spoofed_credential(name.as_bytes())
            || rewrite.is_some_and(|r| name.eq_ignore_ascii_case(r.header.as_str()))
        {
            continue;
        }
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            forwarded_for.push(h.value);
            continue;
        }
        host |= name.eq_ignore_ascii_case("host");
        header(out, name.as_bytes(), h.value);
    }
    if let Some(Rewrite { header: name, value }) = rewrite {
        header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for prior in forwarded_for.into_iter().map(<[u8]>::trim_ascii).filter(|p| !p.is_empty()) {
        out.extend_from_slice(prior);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(caller);
    out.extend_from_slice(b"\r\nx-forwarded-proto: http\r\n");
    if !host {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(addr.to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(req.body);
}

fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Sends the request in `out` (and the rest of its body from `client`) on `up`, a connection to `upstream` — the
/// caller connection's kept instance connection when `kept`, else a new one — and reads the response head into
/// `out`, edited for the caller, by `deadline`. A kept connection the instance closed under a request that can be
/// repeated (no body, idempotent) is replaced once ([`server::resend`]: an instance that has gone meanwhile is
/// reported and the request goes to another). On success, the connection, with the start of the body in its buffer,
/// and the instance it reaches. Err is what to log and answer: 503 when no instance could be reached, 502 when one
/// broke the exchange, 504 past the deadline.
#[allow(clippy::too_many_arguments)]
async fn send<P: Plane>(
    shared: &Shared<P>,
    service: &str,
    upstream: Upstream,
    mut up: Link,
    kept: bool,
    deadline: Option<tokio::time::Instant>,
    req: &Head<'_>,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Result<(Response, Link, Upstream), Unreached> {
    match server::before(deadline, try_send(&mut up, req, client, out)).await {
        Some(Ok(response)) => Ok((response, up, upstream)),
        Some(Err(Failure::Silent)) if kept && req.body_left == 0 && req.idempotent() => {
            let endpoint = &upstream.endpoint;
            tracing::debug!(%endpoint, "a kept instance connection closed under the request; sending it again");
            // Boxed: rare, and large (it reaches an instance), it would otherwise grow every request's future.
            Box::pin(server::resend(&*shared.plane, service, upstream, deadline, |stream, endpoint| async move {
                let mut up = Link::new(endpoint, stream);
                match try_send(&mut up, req, client, out).await {
                    Ok(response) => Ok((response, up)),
                    Err(failure) => Err(failure.status(&up.endpoint)),
                }
            }))
            .await
        }
        Some(Err(failure)) => {
            let status = failure.status(&upstream.endpoint);
            Err(Unreached::failed(upstream.revision, status))
        }
        None => Err(Unreached::failed(upstream.revision, StatusCode::GATEWAY_TIMEOUT)),
    }
}

/// Why an exchange with an instance failed.
enum Failure {
    /// The connection failed before the instance sent a byte.
    Silent,
    /// It failed, or the instance sent something that is not an HTTP/1 response.
    Broken(String),
}

impl Failure {
    fn status(self, endpoint: &Endpoint) -> StatusCode {
        let why = match self {
            Failure::Silent => "the instance closed the connection before responding".to_owned(),
            Failure::Broken(why) => why,
        };
        tracing::debug!(%endpoint, why, "instance exchange failed");
        StatusCode::BAD_GATEWAY
    }
}

async fn try_send(
    up: &mut Link,
    req: &Head<'_>,
    client: &mut TcpStream,
    out: &mut Vec<u8>,
) -> Result<Response, Failure> {
    // The request head (still in `out` on a second attempt: it is only replaced once a response head arrives).
    if up.stream.write_all(out).await.is_err() {
        return Err(Failure::Silent);
    }
    if req.body_left > 0 {
        pass_request_body(up, client, req.body_left).await?;
    }
    let head_only = req.method == "HEAD";
    loop {
        let mut scanned = 0;
        let head_len = loop {
            if let Some(end) = head_end(&up.buf, &mut scanned) {
                break end;
            }
            if up.buf.len() > MAX_HEAD * 4 {
                return Err(Failure::Broken("response head too large".into()));
            }
            match up.fill().await {
                Ok(0) | Err(_) if up.buf.is_empty() => return Err(Failure::Silent),
                Ok(0) => return Err(Failure::Broken("the response head was cut off".into())),
                Err(e) => return Err(Failure::Broken(format!("reading the response: {e}"))),
                Ok(_) => {}
            }
        };
        let parsed = parse_response(&up.buf[..head_len], out, head_only);
        up.buf.advance(head_len);
        // Interim responses are not passed on (as hyper's client).
        if let Some(response) = parsed? {
            return Ok(response);
        }
    }
}

/// The rest of a request body, from the caller to the instance. (Its buffer is on the heap, not in the future:
/// futures are moved, and a large one costs a copy each time.)
async fn pass_request_body(up: &mut Link, client: &mut TcpStream, mut left: usize) -> Result<(), Failure> {
    let mut chunk = vec![0u8; left.min(64 * 1024)];
    while left > 0 {
        let want = left.min(chunk.len());
        let n = match client.read(&mut chunk[..want]).await {
            Ok(0) | Err(_) => return Err(Failure::Broken("the caller went away while sending the body".into())),
            Ok(n) => n,
        };
        up.stream.write_all(&chunk[..n]).await.map_err(|e| Failure::Broken(format!("writing the body: {e}")))?;
        left -= n;
    }
    Ok(())
}

/// Parses the response head `head` and writes it, edited for the caller, to `out`. `None` for an interim (1xx)
/// response. Not async, so that the parsed headers live on the stack and not in a future.
fn parse_response(head: &[u8], out: &mut Vec<u8>, head_only: bool) -> Result<Option<Response>, Failure> {
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_RESPONSE_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut resp, head, &mut headers) {
        Ok(httparse::Status::Complete(n)) if n == head.len() => {}
        Ok(_) => return Err(Failure::Broken("malformed response head".into())),
        Err(e) => return Err(Failure::Broken(format!("malformed response head: {e}"))),
    }
    match resp.code.unwrap_or_default() {
        101 => Err(Failure::Broken("switching protocols was not asked for".into())),
        100..=199 => Ok(None),
        _ => response_head(out, &resp, head_only).map(Some).map_err(Failure::Broken),
    }
}

/// The instance's response head edited for the caller, in `out`.
fn response_head(out: &mut Vec<u8>, resp: &httparse::Response<'_, '_>, head_only: bool) -> Result<Response, String> {
    let code = resp.code.unwrap_or_default();
    let status = StatusCode::from_u16(code).map_err(|_| format!("status {code}"))?;
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut reusable = resp.version == Some(1);
    let mut cookie = false;
    let mut date = false;
    // `Connection` lists a header that is not hop-by-hop anyway (rare: usually it says `keep-alive` or `close`).
    let mut names_others = false;
    for h in resp.headers.iter() {
        let name = h.name;
        if name.eq_ignore_ascii_case("content-length") {
            let n = content_length(h.value).ok_or("bad Content-Length")? as u64;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length".into());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection") {
            for option in connection_tokens(h.value).filter(|t| !t.is_empty()) {
                if option.eq_ignore_ascii_case(b"close") {
                    reusable = false;
                } else if !is_hop_by_hop(option) {
                    names_others = true;
                }
            }
        } else if name.eq_ignore_ascii_case("set-cookie") {
            cookie = true;
        } else if name.eq_ignore_ascii_case("date") {
            date = true;
        }
    }
    let framing = if head_only || code == 204 || code == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
        }
    };

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(resp.reason.unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\n");
    let named = |name: &str| {
        let connection = resp.headers.iter().filter(|h| h.name.eq_ignore_ascii_case("connection"));
        connection.flat_map(|h| connection_tokens(h.value)).any(|t| t.eq_ignore_ascii_case(name.as_bytes()))
    };
    for h in resp.headers.iter() {
        let name = h.name;
        let dropped = is_hop_by_hop(name.as_bytes())
            || (names_others && named(name))
            || (cookie && name.eq_ignore_ascii_case("cache-control"))
            // A chunked body has no length; a body that ends with the connection keeps the length it announced
            // (with any transfer coding, the length is not the body's: RFC 9112 §6.3).
            || (chunked.is_some() && name.eq_ignore_ascii_case("content-length"));
        if !dropped {
            header(out, name.as_bytes(), h.value);
        }
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    if cookie {
        out.extend_from_slice(b"cache-control: private\r\n");
    }
    if !date {
        out.extend_from_slice(b"date: ");
        out.extend_from_slice(&http_date());
        out.extend_from_slice(b"\r\n");
    }
    let close = framing == Framing::UntilClose;
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Ok(Response { status, framing, reusable, close })
}

/// The options a `Connection` value lists.
fn connection_tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// Sends the response head in `out` and the body after it, as it arrives from the instance.
async fn pass_body(up: &mut Link, client: &mut TcpStream, out: &mut Vec<u8>, framing: Framing) -> io::Result<()> {
    let mut chunked = Chunked::default();
    let mut left = match framing {
        Framing::Length(n) => n,
        _ => u64::MAX,
    };
    loop {
        let done = match framing {
            Framing::Empty => true,
            Framing::Length(_) => {
                let take = left.min(up.buf.len() as u64) as usize;
                out.extend_from_slice(&up.buf[..take]);
                up.buf.advance(take);
                left -= take as u64;
                left == 0
            }
            Framing::Chunked => {
                let take = chunked.feed(&up.buf).map_err(|_| broken("malformed chunked body from the instance"))?;
                out.extend_from_slice(&up.buf[..take]);
                up.buf.advance(take);
                chunked.is_done()
            }
            Framing::UntilClose => {
                out.extend_from_slice(&up.buf);
                up.buf.clear();
                false
            }
        };
        // What has arrived goes out before waiting for more (a body streams); a response that arrived whole goes in
        // one write, head and all.
        if !out.is_empty() {
            client.write_all(out).await?;
            out.clear();
        }
        if done {
            return Ok(());
        }
        match up.fill().await? {
            0 if framing == Framing::UntilClose => return Ok(()),
            0 => return Err(broken("the instance closed the connection mid-body")),
            _ => {}
        }
    }
}

fn broken(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::UnexpectedEof, why)
}

/// Answers `req` with one of the gateway's pages. Pages come with `Content-Length`, so the connection stays usable
/// — unless part of the request's body is still unread: then it closes.
async fn answer_page(
    client: &mut TcpStream,
    out: &mut Vec<u8>,
    req: &Head<'_>,
    status: StatusCode,
    body: &str,
) -> Next {
    let close = req.body_left > 0;
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or_default().as_bytes());
    out.extend_from_slice(b"\r\ncontent-type: ");
    out.extend_from_slice(pages::HTML.as_bytes());
    out.extend_from_slice(b"\r\ncontent-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\ndate: ");
    out.extend_from_slice(&http_date());
    if close {
        out.extend_from_slice(b"\r\nconnection: close");
    }
    out.extend_from_slice(b"\r\n\r\n");
    if req.method != "HEAD" {
        out.extend_from_slice(body.as_bytes());
    }
    match client.write_all(out).await {
        Ok(()) if !close => Next::KeepAlive,
        _ => Next::Close,
    }
}

/// The current time as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`), formatted once a second per thread.
fn http_date() -> [u8; 29] {
    use std::cell::Cell;
    thread_local! {
        static CACHED: Cell<(u64, [u8; 29])> = const { Cell::new((u64::MAX, [0; 29])) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    CACHED.with(|cached| {
        let (at, date) = cached.get();
        if at == second {
            return date;
        }
        let mut date = [b' '; 29];
        let formatted = httpdate::fmt_http_date(now);
        let len = formatted.len().min(29);
        date[..len].copy_from_slice(&formatted.as_bytes()[..len]);
        cached.set((second, date));
        date
    })
}

/// A caller connection handed to hyper: the bytes the fast path read and did not consume come first.
pub(crate) struct Prefixed {
    prefix: BytesMut,
    stream: TcpStream,
}

impl Prefixed {
    pub(crate) fn new(prefix: BytesMut, stream: TcpStream) -> Prefixed {
        Prefixed { prefix, stream }
    }
}

impl AsyncRead for Prefixed {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() {
            let n = this.prefix.len().min(buf.remaining());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Prefixed {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_end_of_a_head() {
        let mut s = 0;
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\nBODY", &mut s), Some(27));
        let mut s = 0;
        assert_eq!(head_end(b"GET / HTTP/1.1\nHost: a\n\nBODY", &mut s), Some(24));
        let mut s = 0;
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n", &mut s), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r", &mut s), None);
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &mut s), Some(27));
    }

    #[test]
    fn content_lengths() {
        assert_eq!(content_length(b"0"), Some(0));
        assert_eq!(content_length(b" 42 "), Some(42));
        for bad in [&b""[..], b"-1", b"+1", b"1,1", b"0x10", b"9999999999999999999"] {
            assert_eq!(content_length(bad), None, "{}", String::from_utf8_lossy(bad));
        }
    }

    fn plain(head: &str) -> Option<(usize, bool)> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(head.as_bytes()).unwrap();
        Plain::of(&req).map(|p| (p.body, p.close))
    }

    #[test]
    fn which_requests_are_plain() {
        assert_eq!(plain("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), Some((0, false)));
        assert_eq!(
            plain("POST /x HTTP/1.1\r\nContent-Length: 5\r\nConnection: Keep-Alive, close\r\n\r\n"),
            Some((5, true))
        );
        for not in [
            "GET / HTTP/1.0\r\n\r\n",
            "GET http://a/ HTTP/1.1\r\n\r\n",
            "OPTIONS * HTTP/1.1\r\n\r\n",
            "CONNECT a:443 HTTP/1.1\r\n\r\n",
            "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
            "POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
            "POST / HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
            "GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
            "GET / HTTP/1.1\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n",
        ] {
            assert_eq!(plain(not), None, "{not}");
        }
    }

    fn response(head: &str, head_only: bool) -> (String, Result<(Framing, bool, bool), String>) {
        let mut headers = [httparse::EMPTY_HEADER; MAX_RESPONSE_HEADERS];
        let mut resp = httparse::Response::new(&mut headers);
        resp.parse(head.as_bytes()).unwrap();
        let mut out = Vec::new();
        let r = response_head(&mut out, &resp, head_only).map(|r| (r.framing, r.reusable, r.close));
        (String::from_utf8(out).unwrap().to_ascii_lowercase(), r)
    }

    #[test]
    fn response_heads_are_edited_for_the_caller() {
        let (out, r) = response(
            "HTTP/1.1 200 OK\r\nDate: x\r\nContent-Length: 2\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\n\
             Keep-Alive: timeout=5\r\nSet-Cookie: a=b\r\nCache-Control: public\r\nX-Kept: 1\r\n\r\n",
            false,
        );
        assert_eq!(r, Ok((Framing::Length(2), true, false)));
        assert_eq!(
            out,
            "http/1.1 200 ok\r\ndate: x\r\ncontent-length: 2\r\nset-cookie: a=b\r\nx-kept: 1\r\ncache-control: private\r\n\r\n"
        );

        let (out, r) = response("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n", false);
        assert_eq!(r, Ok((Framing::Chunked, true, false)));
        assert!(out.contains("transfer-encoding: chunked\r\n") && !out.contains("content-length"), "{out}");
        assert!(out.contains("\r\ndate: "), "a date is added: {out}");

        let (out, r) = response("HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", false);
        assert_eq!(r, Ok((Framing::UntilClose, false, true)));
        assert!(out.ends_with("connection: close\r\n\r\n"), "{out}");

        assert_eq!(
            response("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false).1,
            Ok((Framing::Length(0), false, false))
        );
        assert_eq!(response("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", true).1, Ok((Framing::Empty, true, false)));
        assert_eq!(response("HTTP/1.1 304 Not Modified\r\n\r\n", false).1, Ok((Framing::Empty, true, false)));
        assert!(response("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", false).1.is_err());
    }

    #[test]
    fn dates_are_http_dates() {
        let date = http_date();
        let parsed = httpdate::parse_http_date(std::str::from_utf8(&date).unwrap()).unwrap();
        let skew = SystemTime::now().duration_since(parsed).unwrap();
        assert!(skew.as_secs() < 2, "{skew:?}");
    }
}
