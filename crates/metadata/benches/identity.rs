//! Latency of a cached `identity` request over loopback HTTP/1.1 keep-alive (target: p50 ≤ 200 µs).
//!
//! The server runs in a current-thread tokio runtime on a background thread; the client is a raw `TcpStream` that
//! writes one request and reads the response up to its `Content-Length`, so the number is mostly the server's.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion};
use metadata::{IdFormat, Identity, MintedToken, SourceError, TokenSource};

const PATH: &str =
    "/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://svc.example&format=full";

/// Always the same ~900-byte JWT-shaped string, valid for an hour.
struct FixedSource {
    jwt: String,
}

impl TokenSource for FixedSource {
    async fn id_token(&self, _audience: &str, _format: IdFormat) -> Result<MintedToken, SourceError> {
        Ok(MintedToken { token: self.jwt.clone(), expires_at: SystemTime::now() + Duration::from_secs(3600) })
    }

    async fn access_token(&self, _scopes: &[String]) -> Result<MintedToken, SourceError> {
        Err(SourceError::new(404, "not used by this benchmark"))
    }
}

fn start_server() -> SocketAddr {
    let identity = Identity {
        email: "bench@proj.iam.gserviceaccount.com".into(),
        project_id: "proj".into(),
        project_number: "123456789012".into(),
        region: "us-central1".into(),
        zone: "us-central1-1".into(),
        instance_id: "4242424242".into(),
        scopes: Identity::default_scopes(),
    };
    let jwt = format!("eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.{}.{}", "a".repeat(520), "s".repeat(342));
    let source = Arc::new(FixedSource { jwt });
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
            addr_tx.send(listener.local_addr().expect("addr")).expect("send addr");
            metadata::serve(listener, identity, source, std::future::pending()).await.expect("serve");
        });
    });
    addr_rx.recv().expect("server address")
}

/// A minimal HTTP/1.1 keep-alive client.
struct Client {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    request: Vec<u8>,
    line: String,
    body: Vec<u8>,
}

impl Client {
    fn connect(addr: SocketAddr, path: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nMetadata-Flavor: Google\r\n\r\n").into_bytes();
        let reader = BufReader::new(stream.try_clone().expect("clone"));
        Client { writer: stream, reader, request, line: String::new(), body: Vec::new() }
    }

    /// Sends the request, returns (status, body length).
    fn get(&mut self) -> (u16, usize) {
        self.writer.write_all(&self.request).expect("write");
        self.line.clear();
        self.reader.read_line(&mut self.line).expect("status line");
        let status: u16 = self.line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status");
        let mut length = 0;
        loop {
            self.line.clear();
            self.reader.read_line(&mut self.line).expect("header");
            let header = self.line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().expect("content-length");
                }
            }
        }
        self.body.resize(length, 0);
        self.reader.read_exact(&mut self.body).expect("body");
        (status, length)
    }
}

fn cached_identity(c: &mut Criterion) {
    let addr = start_server();
    let mut client = Client::connect(addr, PATH);
    let (status, length) = client.get(); // fills the cache
    assert_eq!(status, 200);
    assert!(length > 800, "expected the ~900-byte JWT, got {length} bytes");
    c.bench_function("cached identity over loopback keep-alive", |b| {
        b.iter(|| {
            let (status, _) = client.get();
            debug_assert_eq!(status, 200);
        })
    });
}

criterion_group!(benches, cached_identity);
criterion_main!(benches);
