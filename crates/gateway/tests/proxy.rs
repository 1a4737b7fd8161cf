//! The gateway end to end on loopback: a real upstream (an axum app that echoes the headers it received), `serve`
//! with a test `Plane`, and reqwest as the caller.

mod common;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap as AxumHeaders;
use axum::response::IntoResponse;
use axum::Json;
use common::*;
use gateway::{Denial, Plane, RequestRecord, Route, RouteBy, Routes, Unavailable, Upstream, NOT_FOUND_PAGE};
use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokens::CachingVerifier;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, Notify};

/// Counts live instance slots: +1 on acquire, -1 when the gateway drops the guard. Remembers which service's
/// instance was reported as refusing connections.
struct Slot {
    live: Arc<AtomicUsize>,
    service: String,
    refused: Arc<Mutex<Vec<String>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl gateway::Slot for Slot {
    fn refused(self: Box<Self>) {
        self.refused.lock().unwrap().push(self.service.clone());
    }
}

struct TestPlane {
    routes: Arc<Routes>,
    iam: Arc<iam::Snapshot>,
    verifier: Arc<CachingVerifier>,
    /// service → instance address.
    instances: HashMap<String, SocketAddr>,
    live: Arc<AtomicUsize>,
    acquired: AtomicUsize,
    /// Services whose next acquire gives an instance that refuses connections (one that has just crashed).
    crash_next: Mutex<Vec<String>>,
    /// The instance of `dying` ([`dying_instance`]) until one of `dying` is reported refusing; then the echo one.
    dying: Mutex<Option<SocketAddr>>,
    refused: Arc<Mutex<Vec<String>>>,
    denials: Mutex<Vec<Denial>>,
    records: Mutex<Vec<Seen>>,
}

/// An owned copy of a [`RequestRecord`].
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    service: String,
    revision: Option<String>,
    status: u16,
    principal: Option<String>,
    method: String,
    path: String,
}

impl Plane for TestPlane {
    fn routes(&self) -> Arc<Routes> {
        Arc::clone(&self.routes)
    }
    fn iam(&self) -> Arc<iam::Snapshot> {
        Arc::clone(&self.iam)
    }
    fn verifier(&self) -> Arc<CachingVerifier> {
        Arc::clone(&self.verifier)
    }
    fn principal_for_subject(&self, sub: &str) -> Option<iam::Principal> {
        resolve(sub)
    }
    fn acquire(&self, service: &str) -> impl Future<Output = Result<Upstream, Unavailable>> + Send {
        let result = match service {
            "busy" => Err(Unavailable::Timeout),
            "norev" => Err(Unavailable::NoRevision),
            "broken" => Err(Unavailable::Failed("container exited with status 1 <oops>".into())),
            s => {
                self.acquired.fetch_add(1, Ordering::SeqCst);
                self.live.fetch_add(1, Ordering::SeqCst);
                let mut crash_next = self.crash_next.lock().unwrap();
                let crashed = crash_next.iter().position(|c| c == s).map(|i| crash_next.remove(i)).is_some();
                let addr = if crashed {
                    self.instances["down"]
                } else if s == "dying" {
                    match self.refused.lock().unwrap().iter().any(|r| r == "dying") {
                        true => self.instances["api"],
                        false => self.dying.lock().unwrap().expect("a dying instance was started"),
                    }
                } else {
                    self.instances[s]
                };
                Ok(Upstream {
                    endpoint: gateway::Endpoint::host(addr),
                    revision: format!("{s}-00001-abc"),
                    guard: Box::new(Slot {
                        live: Arc::clone(&self.live),
                        service: s.to_owned(),
                        refused: Arc::clone(&self.refused),
                    }),
                })
            }
        };
        async move { result }
    }
    fn denied(&self, denial: Denial) {
        self.denials.lock().unwrap().push(denial);
    }
    fn served(&self, r: RequestRecord<'_>) {
        self.records.lock().unwrap().push(Seen {
            service: r.service.to_owned(),
            revision: r.revision.map(str::to_owned),
            status: r.status,
            principal: r.principal.map(str::to_owned),
            method: r.method.to_owned(),
            path: r.path.to_owned(),
        });
    }
}

/// The echo instance: answers every request with the headers it received, as JSON, plus a cookie and a header the
/// gateway must drop (named in `Connection`).
async fn echo_instance() -> (SocketAddr, Arc<AtomicUsize>) {
    async fn echo(
        State(hits): State<Arc<AtomicUsize>>,
        ConnectInfo(gateway_side): ConnectInfo<SocketAddr>,
        headers: AxumHeaders,
    ) -> impl IntoResponse {
        hits.fetch_add(1, Ordering::SeqCst);
        let mut map: serde_json::Map<String, serde_json::Value> =
            headers.iter().map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").into())).collect();
        map.insert("(peer)".into(), gateway_side.to_string().into());
        ([("set-cookie", "session=1"), ("connection", "x-hop"), ("x-hop", "secret")], Json(map))
    }
    let hits = Arc::new(AtomicUsize::new(0));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().fallback(echo).with_state(Arc::clone(&hits));
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (addr, hits)
}

/// An instance that accepts any upgrade (101) and then echoes every byte it gets.
async fn upgrade_instance() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
                if !head.contains("upgrade: websocket") || !head.contains("connection: upgrade") {
                    let _ = s.write_all(b"HTTP/1.1 426 Upgrade Required\r\ncontent-length: 0\r\n\r\n").await;
                    return;
                }
                let _ = s
                    .write_all(b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n")
                    .await;
                loop {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => {
                            if s.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                }
            });
        }
    });
    addr
}

/// An instance that answers one request and then goes, as one that crashes: it stops listening and closes the
/// connection, either while it is idle (`close_idle`, after 20 ms) or on reading the next request, unanswered.
async fn dying_instance(close_idle: bool) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = listener.accept().await.unwrap();
        let mut buf = Vec::new();
        read_request(&mut s, &mut buf).await.unwrap();
        s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst").await.unwrap();
        if close_idle {
            tokio::time::sleep(Duration::from_millis(20)).await;
        } else {
            read_request(&mut s, &mut buf).await;
        }
        drop(listener);
    });
    addr
}

/// An instance that sends its response head and half the body, then waits for `go` before the rest.
async fn slow_instance(go: Arc<Notify>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let go = Arc::clone(&go);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = s.read(&mut buf).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
                s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n12345").await.unwrap();
                go.notified().await;
                s.write_all(b"67890").await.unwrap();
            });
        }
    });
    addr
}

/// An instance scripted at the byte level, by request path:
/// - `/chunked`: a chunked body with a trailer; `/close`: a body delimited by closing the connection;
/// - `/hints`: `103 Early Hints` before the response; `/garbage`: not HTTP; `/bye`: a response, then the
///   connection closes without `Connection: close`;
/// - anything else: `200` whose body is the request exactly as the instance received it, with `x-conn` numbering
///   the instance connection.
async fn raw_instance() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut conns = 0;
        while let Ok((mut s, _)) = listener.accept().await {
            conns += 1;
            let conn = conns;
            tokio::spawn(async move {
                let mut buf = Vec::new();
                while let Some(req) = read_request(&mut s, &mut buf).await {
                    let head = String::from_utf8_lossy(&req).into_owned();
                    let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                    let reply: Vec<u8> = match path.as_str() {
                        "/chunked" => b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;x=y\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n".to_vec(),
                        "/close" => b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end".to_vec(),
                        "/hints" => b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec(),
                        "/garbage" => b"NOT HTTP AT ALL\r\n\r\n".to_vec(),
                        "/bye" => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nbye".to_vec(),
                        _ if head.starts_with("HEAD ") => b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec(),
                        _ => {
                            let mut r = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\nx-conn: {conn}\r\n\r\n", req.len()).into_bytes();
                            r.extend_from_slice(&req);
                            r
                        }
                    };
                    if s.write_all(&reply).await.is_err() || matches!(path.as_str(), "/close" | "/garbage" | "/bye") {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// One request (head and body, by `Content-Length` or chunked) from `s`, exactly as sent; `None` at end of stream.
async fn read_request(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        read_more(s, buf).await?;
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
    let end = if head.contains("transfer-encoding: chunked") {
        loop {
            if let Some(i) = buf[head_end..].windows(5).position(|w| w == b"0\r\n\r\n") {
                break head_end + i + 5;
            }
            read_more(s, buf).await?;
        }
    } else {
        let len = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse::<usize>().unwrap());
        while buf.len() < head_end + len {
            read_more(s, buf).await?;
        }
        head_end + len
    };
    Some(buf.drain(..end).collect())
}

async fn read_more(s: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 4096];
    match s.read(&mut chunk).await {
        Ok(0) | Err(_) => None,
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Some(())
        }
    }
}

struct Harness {
    gw: SocketAddr,
    plane: Arc<TestPlane>,
    keys: Keys,
    upstream_hits: Arc<AtomicUsize>,
    go: Arc<Notify>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

fn svc(name: &str, disabled: bool) -> Arc<Route> {
    let mut r = route(disabled);
    r.service = name.into();
    if name != "api" {
        r.resource = SVC.replace("/services/api", &format!("/services/{name}"));
    }
    Arc::new(r)
}

async fn start(by_host: bool) -> Harness {
    let keys = Keys::new();
    let (echo, upstream_hits) = echo_instance().await;
    let go = Arc::new(Notify::new());
    let slow = slow_instance(Arc::clone(&go)).await;
    let raw = raw_instance().await;
    // A port nothing listens on.
    let down = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let gw = listener.local_addr().unwrap();
    let mut routes = Routes::default();
    routes.by_port.insert(gw.port(), svc("api", false));
    // `stalled`: the slow instance behind a 1 s request timeout (its body never ends unless `go` is notified).
    let mut stalled = route(true);
    stalled.service = "stalled".into();
    stalled.timeout = Some(Duration::from_secs(1));
    routes.by_host.insert("stalled.run.app".into(), Arc::new(stalled));
    // `ws`: the upgrading instance behind a 2 s request timeout.
    let mut ws = route(true);
    ws.service = "ws".into();
    ws.timeout = Some(Duration::from_secs(2));
    routes.by_host.insert("ws.run.app".into(), Arc::new(ws));
    for (name, disabled) in [
        ("api", false),
        ("public", true),
        ("busy", true),
        ("norev", true),
        ("broken", true),
        ("slow", true),
        ("down", true),
        ("raw", true),
        ("crashed", true),
        ("dying", true),
    ] {
        routes.by_host.insert(format!("{name}.run.app"), svc(name, disabled));
    }
    let instances = [
        ("api", echo),
        ("public", echo),
        ("slow", slow),
        ("stalled", slow),
        ("ws", upgrade_instance().await),
        ("down", down),
        ("raw", raw),
        ("crashed", echo),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let plane = Arc::new(TestPlane {
        routes: Arc::new(routes),
        iam: Arc::new(snapshot(World::Private)),
        verifier: Arc::new(CachingVerifier::new(keys.ring.verifier(ISSUER), 100)),
        instances,
        live: Arc::new(AtomicUsize::new(0)),
        acquired: AtomicUsize::new(0),
        crash_next: Mutex::default(),
        dying: Mutex::default(),
        refused: Arc::default(),
        denials: Mutex::default(),
        records: Mutex::default(),
    });
    let (stop, stopped) = oneshot::channel::<()>();
    let by = if by_host { RouteBy::Host } else { RouteBy::Port(gw.port()) };
    let task = tokio::spawn(gateway::serve(listener, Arc::clone(&plane), by, async move {
        let _ = stopped.await;
    }));
    Harness { gw, plane, keys, upstream_hits, go, stop: Some(stop), task }
}

impl Harness {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.gw)
    }
    fn hits(&self) -> usize {
        self.upstream_hits.load(Ordering::SeqCst)
    }
    fn live(&self) -> usize {
        self.plane.live.load(Ordering::SeqCst)
    }
    async fn wait_for_no_live_slot(&self) {
        for _ in 0..200 {
            if self.live() == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("the instance slot was never released");
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn admitted_requests_reach_the_instance_with_google_s_rewrites() {
    let h = start(false).await;
    let token = h.keys.live_token("alice@example.com", URL);
    // A `Connection` option other than keep-alive/close sends the connection down hyper's path; without one the
    // request takes the fast path. Both must make the same edits.
    for via_hyper in [false, true] {
        let mut req = client()
            .get(h.url("/hello?x=1"))
            .header("x-serverless-authorization", format!("Bearer {token}"))
            .header("authorization", "Basic YXBwOmNyZWRz")
            .header("x-forwarded-for", "203.0.113.7")
            .header("x-forwarded-proto", "https")
            .header("proxy-authorization", "Basic cHJveHk6cHc=")
            .header("te", "trailers");
        if via_hyper {
            req = req.header("connection", "x-drop-me").header("x-drop-me", "1");
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["cache-control"], "private", "a response that sets a cookie is private");
        assert!(resp.headers().get("x-hop").is_none(), "headers named in Connection are hop-by-hop");
        assert!(resp.headers().get("date").is_some(), "responses carry a Date");
        let seen: serde_json::Value = resp.json().await.unwrap();
        let sig = token.rsplit('.').next().unwrap();
        let xsa = seen["x-serverless-authorization"].as_str().unwrap();
        assert!(xsa.ends_with(".SIGNATURE_REMOVED_BY_GOOGLE"), "{xsa}");
        assert!(!xsa.contains(sig));
        assert_eq!(xsa, format!("Bearer {}.SIGNATURE_REMOVED_BY_GOOGLE", &token[..token.rfind('.').unwrap()]));
        assert_eq!(seen["authorization"], "Basic YXBwOmNyZWRz", "Authorization passes untouched");
        assert_eq!(seen["host"], h.gw.to_string(), "Host is the caller's");
        assert_eq!(seen["x-forwarded-for"], "203.0.113.7, 127.0.0.1");
        assert_eq!(seen["x-forwarded-proto"], "http");
        for hop in ["x-drop-me", "proxy-authorization", "te", "connection"] {
            assert!(seen.get(hop).is_none(), "{hop} is not forwarded (via hyper: {via_hyper}): {seen}");
        }
    }
    assert_eq!(h.hits(), 2);
    h.wait_for_no_live_slot().await;

    // A service-account token in Authorization arrives with its signature.
    let sa = h.keys.live_token(CALLER_SA, URL);
    let seen: serde_json::Value = client().get(h.url("/")).bearer_auth(&sa).send().await.unwrap().json().await.unwrap();
    assert_eq!(seen["authorization"], format!("Bearer {sa}"));
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");

    let records = h.plane.records.lock().unwrap().clone();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].status, 200);
    assert_eq!(records[0].service, "api");
    assert_eq!(records[0].revision.as_deref(), Some("api-00001-abc"));
    assert_eq!(records[0].principal.as_deref(), Some("alice@example.com"));
    assert_eq!(records[0].path, "/hello");
    assert_eq!(records[0].method, "GET");
    assert_eq!(records[1], records[0].clone(), "both paths record the same");
    assert_eq!(records[2].principal.as_deref(), Some(CALLER_SA));
    assert!(h.plane.denials.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_caller_connection_reuses_its_instance_connection() {
    let h = start(true).await;
    let c = client();
    let mut peers = Vec::new();
    for _ in 0..3 {
        let r = c.get(h.url("/")).header("host", "public.run.app").send().await.unwrap();
        let seen: serde_json::Value = r.json().await.unwrap();
        peers.push(seen["(peer)"].as_str().unwrap().to_owned());
    }
    assert_eq!(peers[0], peers[1], "one keep-alive caller connection, one instance connection");
    assert_eq!(peers[1], peers[2]);
    // A second caller connection gets its own.
    let seen: serde_json::Value =
        client().get(h.url("/")).header("host", "public.run.app").send().await.unwrap().json().await.unwrap();
    assert_ne!(seen["(peer)"].as_str().unwrap(), peers[0]);
    h.wait_for_no_live_slot().await;
}

#[tokio::test]
async fn denied_requests_never_reach_the_instance() {
    let h = start(false).await;
    let c = client();

    let r = c.get(h.url("/private")).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let body = r.text().await.unwrap();
    assert!(body.contains("<title>403 Forbidden</title>"), "{body}");
    assert!(body.contains("<h2>The request was not authenticated. Either allow public access or set the proper Authorization header</h2>"), "{body}");

    let r = c.get(h.url("/a/<b>")).bearer_auth("garbage").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body = r.text().await.unwrap();
    assert!(body.contains("<title>401 Unauthorized</title>"), "{body}");
    assert!(
        body.contains("<h2>Your client does not have permission to the requested URL <code>/a/%3Cb%3E</code>.</h2>"),
        "{body}"
    );

    let mallory = h.keys.live_token("mallory@example.com", URL);
    let r = c.post(h.url("/orders")).bearer_auth(&mallory).body("secret order").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let body = r.text().await.unwrap();
    assert!(body.contains("<h1>Error: Forbidden</h1>"), "{body}");
    assert!(
        body.contains(
            "<h2>Your client does not have permission to get URL <code>/orders</code> from this server.</h2>"
        ),
        "{body}"
    );

    assert_eq!(h.hits(), 0, "no refused request reaches the instance");
    assert_eq!(h.plane.acquired.load(Ordering::SeqCst), 0, "no instance slot is taken for a refused request");
    let denials = h.plane.denials.lock().unwrap().clone();
    assert_eq!(denials.len(), 3);
    assert_eq!((denials[0].status, denials[0].reason.as_str()), (403, "no token"));
    assert!(denials[0].explanation.is_none());
    assert_eq!(denials[1].status, 401);
    assert!(denials[1].reason.contains("malformed token"), "{}", denials[1].reason);
    assert_eq!(denials[2].status, 403);
    assert_eq!(denials[2].principal.as_deref(), Some("mallory@example.com"));
    assert_eq!(denials[2].method, "POST");
    assert_eq!(denials[2].path, "/orders");
    assert_eq!(denials[2].caller_ip, "127.0.0.1");
    assert_eq!(denials[2].resource, SVC);
    let explanation = denials[2].explanation.as_ref().expect("IAM denials carry the explanation");
    assert_eq!(explanation["access"], "NOT_GRANTED");
    let records = h.plane.records.lock().unwrap().clone();
    assert_eq!(records.iter().map(|r| r.status).collect::<Vec<_>>(), [403, 401, 403]);
}

#[tokio::test]
async fn host_routing_and_unknown_hosts() {
    let h = start(true).await;
    let c = client();
    for host in ["public.run.app", "PUBLIC.Run.App:443"] {
        let r = c.get(h.url("/x")).header("host", host).send().await.unwrap();
        assert_eq!(r.status(), 200, "{host}");
        let seen: serde_json::Value = r.json().await.unwrap();
        assert_eq!(seen["host"], host);
    }
    // The private service by host: the check runs.
    let r = c.get(h.url("/")).header("host", "api.run.app").send().await.unwrap();
    assert_eq!(r.status(), 403);
    let token = h.keys.live_token("alice@example.com", URL);
    let r = c.get(h.url("/")).header("host", "api.run.app").bearer_auth(&token).send().await.unwrap();
    assert_eq!(r.status(), 200);

    let r = c.get(h.url("/")).header("host", "nope.run.app").send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.text().await.unwrap(), NOT_FOUND_PAGE);
    // The listener's port is not a route when routing by host.
    let r = c.get(h.url("/")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(h.hits(), 3);
}

#[tokio::test]
async fn no_instance_means_cloud_run_s_answers() {
    let h = start(true).await;
    let c = client();
    let get = |host: &'static str| c.get(h.url("/")).header("host", host).send();
    let r = get("busy.run.app").await.unwrap();
    assert_eq!(r.status(), 429);
    assert_eq!(r.text().await.unwrap(), "Rate exceeded.");
    let r = get("norev.run.app").await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "Service Unavailable");
    let r = get("broken.run.app").await.unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.text().await.unwrap(), "Service Unavailable: container exited with status 1 &lt;oops&gt;");
    let r = get("down.run.app").await.unwrap();
    assert_eq!(r.status(), 503, "connection refused by the instance, and by the next one");
    assert_eq!(r.text().await.unwrap(), "Service Unavailable");
    h.wait_for_no_live_slot().await;
    let statuses: Vec<u16> = h.plane.records.lock().unwrap().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [429, 503, 503, 503]);
    assert_eq!(*h.plane.refused.lock().unwrap(), ["down"], "the first refusal is reported, then one more try");
    assert_eq!(h.plane.acquired.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_request_to_an_instance_that_refuses_goes_to_the_next_one_on_either_path() {
    let h = start(true).await;
    // A plain request (the fast path), then one hyper takes (it names a hop-by-hop header in `Connection`).
    for extra in [None, Some(("connection", "x-hop"))] {
        h.plane.crash_next.lock().unwrap().push("crashed".into());
        let before = h.hits();
        let mut req = client().get(h.url("/after-crash")).header("host", "crashed.run.app");
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), 200, "{extra:?}: the request reached the next instance");
        assert_eq!(h.hits(), before + 1, "{extra:?}");
    }
    h.wait_for_no_live_slot().await;
    assert_eq!(*h.plane.refused.lock().unwrap(), ["crashed", "crashed"]);
    assert_eq!(h.plane.acquired.load(Ordering::SeqCst), 4, "one more acquire per refused instance");
    let records = h.plane.records.lock().unwrap();
    assert_eq!(records.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200], "one request-log line each");
}

#[tokio::test]
async fn a_request_whose_kept_instance_connection_fails_with_the_instance_goes_to_the_next_one_on_either_path() {
    // The fast path finds the failure when the instance closes under the request; hyper's when it queues the request
    // on a connection the instance closed while it was idle. Either way the request is sent once more, and the
    // instance that now refuses connections is reported and replaced, instead of the request failing with 503 (the
    // fast path) or waiting until the request timeout (hyper's: the queued request was never given back).
    for (extra, close_idle) in [("", false), ("Connection: x-hop\r\nX-Hop: 1\r\n", true)] {
        let h = start(true).await;
        *h.plane.dying.lock().unwrap() = Some(dying_instance(close_idle).await);
        let mut c = Raw::connect(&h).await;
        let request = format!("GET /again HTTP/1.1\r\nHost: dying.run.app\r\n{extra}\r\n");
        c.send(request.as_bytes()).await;
        let first = c.response().await;
        assert_eq!((first.status(), first.body()), (200, "first".to_owned()), "{extra:?}");
        // Long enough for the instance to have gone on any machine; the gateway does not look until it sends.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = h.hits();
        c.send(request.as_bytes()).await;
        let second = c.response().await;
        assert_eq!(second.status(), 200, "{extra:?}: {second:?}");
        assert_eq!(h.hits(), before + 1, "{extra:?}: the next instance answered");
        h.wait_for_no_live_slot().await;
        assert_eq!(*h.plane.refused.lock().unwrap(), ["dying"], "{extra:?}");
        let records = h.plane.records.lock().unwrap();
        assert_eq!(records.iter().map(|r| r.status).collect::<Vec<_>>(), [200, 200], "{extra:?}");
    }
}

#[tokio::test]
async fn the_instance_slot_is_held_until_the_body_is_done() {
    let h = start(true).await;
    let mut r = client().get(h.url("/")).header("host", "slow.run.app").send().await.unwrap();
    assert_eq!(r.status(), 200);
    let first = r.chunk().await.unwrap().unwrap();
    assert_eq!(&first[..], b"12345");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(h.live(), 1, "the slot is held while the body streams");
    h.go.notify_one();
    let mut rest = Vec::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        rest.extend_from_slice(&chunk);
    }
    assert_eq!(rest, b"67890");
    h.wait_for_no_live_slot().await;
    assert_eq!(h.plane.acquired.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn the_request_timeout_covers_the_response_body_on_both_paths() {
    let h = start(true).await;
    // Plain (the fast path), then with a `Connection` option (hyper's path): the head comes at once, the body never
    // ends. At the route's 1 s timeout the response is cut and the slot freed, as Cloud Run cuts an overrunning one.
    for extra in ["", "Connection: x-hop\r\nX-Hop: 1\r\n"] {
        let mut raw = Raw::connect(&h).await;
        let started = std::time::Instant::now();
        let request = format!("GET / HTTP/1.1\r\nHost: stalled.run.app\r\n{extra}\r\n");
        raw.s.write_all(request.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        let read_all = async {
            loop {
                match raw.s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
        };
        tokio::time::timeout(Duration::from_secs(10), read_all).await.expect("the connection is cut at the timeout");
        let elapsed = started.elapsed();
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 200"), "{extra:?}: {text}");
        assert!(text.ends_with("12345"), "only what the instance sent: {text}");
        assert!(elapsed >= Duration::from_millis(900) && elapsed < Duration::from_secs(5), "{extra:?}: {elapsed:?}");
        h.wait_for_no_live_slot().await;
    }
}

#[tokio::test]
async fn shutdown_stops_the_listener() {
    let mut h = start(false).await;
    h.stop.take().unwrap().send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(5), &mut h.task).await.unwrap().unwrap().unwrap();
    assert!(client().get(h.url("/")).send().await.is_err());
}

/// A caller at the byte level: writes what it is given, reads responses one at a time.
struct Raw {
    s: tokio::net::TcpStream,
    buf: Vec<u8>,
}

/// A response as the caller received it: the head (lowercase) and the body, de-chunked.
#[derive(Debug)]
struct Got {
    head: String,
    body: Vec<u8>,
}

impl Got {
    fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }
    fn body(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

impl Raw {
    async fn connect(h: &Harness) -> Raw {
        Raw { s: tokio::net::TcpStream::connect(h.gw).await.unwrap(), buf: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).await.unwrap();
    }

    async fn more(&mut self) -> bool {
        tokio::time::timeout(Duration::from_secs(5), read_more(&mut self.s, &mut self.buf)).await.unwrap().is_some()
    }

    /// The next response (to a request that was not HEAD).
    async fn response(&mut self) -> Got {
        self.next(false).await
    }

    async fn next(&mut self, head_only: bool) -> Got {
        let head_end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            assert!(self.more().await, "the connection closed before a response head: {:?}", self.buf);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).to_ascii_lowercase();
        self.buf.drain(..head_end);
        let mut body = Vec::new();
        if head_only {
        } else if head.contains("\r\ntransfer-encoding: chunked\r\n") {
            loop {
                let line_end = loop {
                    if let Some(i) = self.buf.windows(2).position(|w| w == b"\r\n") {
                        break i;
                    }
                    assert!(self.more().await);
                };
                let line = String::from_utf8_lossy(&self.buf[..line_end]).into_owned();
                let size = usize::from_str_radix(line.split(';').next().unwrap(), 16).unwrap();
                self.buf.drain(..line_end + 2);
                if size == 0 {
                    // Trailers, up to the empty line.
                    while !self.buf.windows(2).any(|w| w == b"\r\n") || !self.trailers_done() {
                        assert!(self.more().await);
                    }
                    break;
                }
                while self.buf.len() < size + 2 {
                    assert!(self.more().await);
                }
                body.extend(self.buf.drain(..size));
                self.buf.drain(..2);
            }
        } else if let Some(len) = head.lines().find_map(|l| l.strip_prefix("content-length: ")) {
            let len: usize = len.trim().parse().unwrap();
            while self.buf.len() < len {
                assert!(self.more().await);
            }
            body.extend(self.buf.drain(..len));
        } else {
            while self.more().await {}
            body = std::mem::take(&mut self.buf);
        }
        Got { head, body }
    }

    /// Consumes the trailer section if it is complete.
    fn trailers_done(&mut self) -> bool {
        if self.buf.starts_with(b"\r\n") {
            self.buf.drain(..2);
            return true;
        }
        match self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(i) => {
                self.buf.drain(..i + 4);
                true
            }
            None => false,
        }
    }

    /// The caller's connection has been closed by the gateway.
    async fn closed(&mut self) -> bool {
        !self.more().await && self.buf.is_empty()
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: raw.run.app\r\n\r\n").into_bytes()
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order_on_one_instance_connection() {
    let h = start(true).await;
    let mut c = Raw::connect(&h).await;
    let mut two = get("/one");
    two.extend_from_slice(&get("/two?q=1"));
    c.send(&two).await;
    let (one, two) = (c.response().await, c.response().await);
    assert_eq!((one.status(), two.status()), (200, 200));
    assert!(one.body().starts_with("GET /one HTTP/1.1\r\n"), "{}", one.body());
    assert!(two.body().starts_with("GET /two?q=1 HTTP/1.1\r\n"), "{}", two.body());
    assert!(one.body().contains("\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n"), "{}", one.body());
    let conn = |g: &Got| g.head.lines().find_map(|l| l.strip_prefix("x-conn: ").map(str::to_owned));
    assert_eq!(conn(&one), conn(&two), "one instance connection for the caller connection");
    assert!(one.head.contains("\r\ndate: "), "{}", one.head);
    h.wait_for_no_live_slot().await;
}

#[tokio::test]
async fn response_framings_pass_through() {
    let h = start(true).await;
    let mut c = Raw::connect(&h).await;

    // Chunked (with an extension and a trailer): passed through, and the connection carries on after it.
    c.send(&get("/chunked")).await;
    let r = c.response().await;
    assert_eq!((r.status(), r.body().as_str()), (200, "hello world"), "{}", r.head);
    // Interim responses are not passed on.
    c.send(&get("/hints")).await;
    let r = c.response().await;
    assert_eq!((r.status(), r.body().as_str()), (200, "ok"), "{}", r.head);
    // HEAD: a length, no body; the connection carries on.
    c.send(b"HEAD /x HTTP/1.1\r\nHost: raw.run.app\r\n\r\n").await;
    let r = c.next(true).await;
    assert_eq!(r.status(), 200);
    assert!(r.head.contains("content-length: 5"), "{}", r.head);
    // The instance closes its connection after a response without saying so: the next request gets a new one.
    c.send(&get("/bye")).await;
    assert_eq!(c.response().await.body(), "bye");
    c.send(&get("/after-bye")).await;
    let r = c.response().await;
    assert_eq!(r.status(), 200);
    assert!(r.body().starts_with("GET /after-bye "), "{}", r.body());
    // Not HTTP from the instance: 502, and the caller connection is still usable.
    c.send(&get("/garbage")).await;
    let r = c.response().await;
    assert_eq!(r.status(), 502);
    c.send(&get("/ok")).await;
    assert_eq!(c.response().await.status(), 200);
    // A body that ends when the instance closes: the caller's connection ends with it.
    c.send(&get("/close")).await;
    let r = c.response().await;
    assert_eq!((r.status(), r.body().as_str()), (200, "until the end"), "{}", r.head);
    assert!(r.head.contains("connection: close"), "{}", r.head);
    h.wait_for_no_live_slot().await;
    let statuses: Vec<u16> = h.plane.records.lock().unwrap().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 200, 200, 502, 200, 200]);
}

#[tokio::test]
async fn request_bodies_arrive_whole_on_either_path() {
    let h = start(true).await;
    let mut c = Raw::connect(&h).await;
    // A Content-Length body in pieces, the head with the first piece.
    c.send(b"POST /upload HTTP/1.1\r\nHost: raw.run.app\r\nContent-Length: 11\r\n\r\nhello").await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    c.send(b" world").await;
    let r = c.response().await;
    assert_eq!(r.status(), 200);
    assert!(
        r.body().ends_with(
            "\r\nContent-Length: 11\r\nx-forwarded-for: 127.0.0.1\r\nx-forwarded-proto: http\r\n\r\nhello world"
        ),
        "{}",
        r.body()
    );
    // A chunked body: hyper's path takes the connection from here on, and it stays usable.
    c.send(
        b"POST /chunked-in HTTP/1.1\r\nHost: raw.run.app\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    let r = c.response().await;
    assert_eq!(r.status(), 200);
    assert!(r.body().contains("hello"), "{}", r.body());
    c.send(&get("/then")).await;
    let r = c.response().await;
    assert!(r.body().starts_with("GET /then HTTP/1.1\r\n"), "{}", r.body());

    // Expect: 100-continue and HTTP/1.0 go to hyper too.
    let mut c = Raw::connect(&h).await;
    c.send(b"PUT /e HTTP/1.1\r\nHost: raw.run.app\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n").await;
    let interim = c.next(true).await;
    assert_eq!(interim.status(), 100, "{}", interim.head);
    c.send(b"ok").await;
    let r = c.response().await;
    assert_eq!(r.status(), 200);
    assert!(r.body().ends_with("\r\n\r\nok"), "{}", r.body());
    let mut c = Raw::connect(&h).await;
    c.send(b"GET /old HTTP/1.0\r\nHost: raw.run.app\r\n\r\n").await;
    let r = c.response().await;
    assert_eq!(r.status(), 200);
    assert!(r.body().starts_with("GET /old HTTP/1.1\r\n"), "{}", r.body());
    h.wait_for_no_live_slot().await;
}

#[tokio::test]
async fn malformed_and_refused_requests() {
    let h = start(true).await;
    // A head hyper refuses: 400 from hyper's path.
    let mut c = Raw::connect(&h).await;
    c.send(b"GET / HTTP/1.1\r\nHost: raw.run.app\r\nNo Colon Here\r\n\r\n").await;
    let r = c.response().await;
    assert_eq!(r.status(), 400, "{}", r.head);

    // Refused with most of the body unsent: the page says the connection closes, and it does.
    let mut c = Raw::connect(&h).await;
    c.send(b"POST /orders HTTP/1.1\r\nHost: api.run.app\r\nContent-Length: 100000\r\n\r\npart").await;
    let r = c.response().await;
    assert_eq!(r.status(), 403);
    assert!(r.head.contains("connection: close"), "{}", r.head);
    assert!(c.closed().await);

    // Refused with the whole body sent: the connection carries on; HEAD gets the page's head only.
    let mut c = Raw::connect(&h).await;
    c.send(b"POST /orders HTTP/1.1\r\nHost: api.run.app\r\nContent-Length: 4\r\n\r\nbody").await;
    assert_eq!(c.response().await.status(), 403);
    c.send(b"HEAD / HTTP/1.1\r\nHost: nope.run.app\r\n\r\n").await;
    let r = c.next(true).await;
    assert_eq!(r.status(), 404);
    assert!(r.head.contains(&format!("content-length: {}", NOT_FOUND_PAGE.len())), "{}", r.head);
    c.send(&get("/still-open")).await;
    assert_eq!(c.response().await.status(), 200);
    assert_eq!(h.hits(), 0, "the echo instance saw nothing");
}

#[tokio::test]
async fn host_must_be_one_and_a_forged_underscore_credential_never_reaches_the_instance() {
    let h = start(true).await;
    // On both paths (plain, and with a `Connection` option for hyper's): two Host headers, or none in HTTP/1.1, are
    // Google's 400, and nothing reaches an instance.
    for extra in ["", "Connection: x-hop\r\nX-Hop: 1\r\n"] {
        for hosts in ["Host: public.run.app\r\nHost: api.run.app\r\n", ""] {
            let mut c = Raw::connect(&h).await;
            c.send(format!("GET /h HTTP/1.1\r\n{hosts}{extra}\r\n").as_bytes()).await;
            let got = c.response().await;
            assert_eq!(got.status(), 400, "{hosts:?} {extra:?}: {}", got.head);
            assert!(got.body().contains("Error 400 (Bad Request)"), "{}", got.body());
        }
    }
    assert_eq!(h.hits(), 0);
    // An absolute-form target routes by its own authority (RFC 9112 §3.2.2), not by Host: here the private `api`,
    // so no token is a 403, never `public`'s 200. CONNECT is no request for a service.
    // A transfer coding the gateway would lose on the way (gzip under chunked) is RFC 9112's 501.
    for (request, expected) in [
        ("GET http://api.run.app/h HTTP/1.1\r\nHost: public.run.app\r\n\r\n", 403),
        ("CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: 127.0.0.1:22\r\n\r\n", 400),
        ("POST /h HTTP/1.1\r\nHost: public.run.app\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
        // A malformed chunk is the caller's fault: 400, not a 502 blamed on the instance.
        ("POST /h HTTP/1.1\r\nHost: public.run.app\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 400),
        ("POST /h HTTP/1.1\r\nHost: public.run.app\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501),
    ] {
        let mut c = Raw::connect(&h).await;
        c.send(request.as_bytes()).await;
        assert_eq!(c.response().await.status(), expected, "{request:?}");
    }
    assert_eq!(h.hits(), 0);
    // Several `X-Forwarded-For` lines are one list: all of it, then the caller.
    for extra in ["", "Connection: x-hop\r\nX-Hop: 1\r\n"] {
        let mut c = Raw::connect(&h).await;
        let lines = "X-Forwarded-For: 198.51.100.1\r\nX-Forwarded-For: 198.51.100.2, 198.51.100.3\r\n";
        c.send(format!("GET /h HTTP/1.1\r\nHost: public.run.app\r\n{lines}{extra}\r\n").as_bytes()).await;
        let seen: serde_json::Value = serde_json::from_str(&c.response().await.body()).unwrap();
        assert_eq!(seen["x-forwarded-for"], "198.51.100.1, 198.51.100.2, 198.51.100.3, 127.0.0.1", "{extra:?}");
    }
    // `X_Serverless_Authorization` (which CGI-style apps read as the real header) is dropped on the way.
    for extra in ["", "Connection: x-hop\r\nX-Hop: 1\r\n"] {
        let mut c = Raw::connect(&h).await;
        let forged = "X_Serverless_Authorization: Bearer forged.SIGNATURE_REMOVED_BY_GOOGLE\r\n\
                      x-SERVERLESS_authorization: Bearer forged\r\n";
        c.send(format!("GET /h HTTP/1.1\r\nHost: public.run.app\r\n{forged}{extra}\r\n").as_bytes()).await;
        let got = c.response().await;
        assert_eq!(got.status(), 200, "{}", got.head);
        let seen = got.body().to_ascii_lowercase();
        assert!(seen.contains("\"x-forwarded-for\""), "the instance's view of the headers: {seen}");
        assert!(!seen.contains("serverless_authorization") && !seen.contains("forged"), "{extra:?}: {seen}");
    }
}

#[tokio::test]
async fn a_websocket_handshake_becomes_a_tunnel_bounded_by_the_request_timeout() {
    let h = start(true).await;
    let mut c = Raw::connect(&h).await;
    let started = std::time::Instant::now();
    let handshake = "GET /chat HTTP/1.1\r\nHost: ws.run.app\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    c.s.write_all(handshake.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = c.s.read(&mut buf).await.unwrap();
        assert!(n > 0, "closed before the 101: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"), "{head}");
    // Bytes both ways, through the gateway, on the caller's connection.
    for msg in [&b"ping"[..], b"frames are opaque here"] {
        c.s.write_all(msg).await.unwrap();
        let mut echoed = vec![0u8; msg.len()];
        c.s.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, msg);
    }
    assert_eq!(h.live(), 1, "the session holds its slot");
    // At the request timeout (2 s) the session is cut and the slot freed.
    let closed = tokio::time::timeout(Duration::from_secs(10), c.s.read(&mut buf)).await.expect("cut at the timeout");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    assert!(started.elapsed() >= Duration::from_millis(1800), "{:?}", started.elapsed());
    h.wait_for_no_live_slot().await;
}
