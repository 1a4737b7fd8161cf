//! `run services proxy NAME --port=P`: a localhost listener that forwards to a private service with the active
//! account's ID token for the service URL, as gcloud's proxy does. Tokens are refreshed before they expire.

use crate::client::Client;
use anyhow::{Context, Result};
use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Largest request body forwarded.
const MAX_BODY: usize = 32 << 20;

struct Proxy {
    client: Arc<Client>,
    url: String,
    http: reqwest::Client,
    /// The current token and its expiry (unix seconds).
    token: Mutex<Option<(String, u64)>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Proxy {
    async fn token(self: &Arc<Self>) -> Result<String> {
        if let Some((t, exp)) = self.token.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            if exp > now() + 300 {
                return Ok(t);
            }
        }
        let this = self.clone();
        let v = tokio::task::spawn_blocking(move || this.client.refresh_user(Some(&this.url))).await??;
        let token = v["id_token"].as_str().context("the platform returned no ID token")?.to_owned();
        let exp = now() + 3600;
        *self.token.lock().unwrap_or_else(|p| p.into_inner()) = Some((token.clone(), exp));
        Ok(token)
    }
}

async fn forward(State(proxy): State<Arc<Proxy>>, req: Request) -> Response {
    match try_forward(&proxy, req).await {
        Ok(r) => r,
        Err(e) => (StatusCode::BAD_GATEWAY, format!("gatehouse proxy: {e:#}\n")).into_response(),
    }
}

async fn try_forward(proxy: &Arc<Proxy>, req: Request) -> Result<Response> {
    let token = proxy.token().await?;
    let (parts, body) = req.into_parts();
    let path = parts.uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let body = to_bytes(body, MAX_BODY).await.context("cannot read the request body")?;
    let mut out = proxy.http.request(parts.method, format!("{}{path}", proxy.url.trim_end_matches('/'))).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "authorization" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let resp = out.bearer_auth(token).send().await.context("the service did not answer")?;
    let mut builder = Response::builder().status(resp.status().as_u16());
    for (name, value) in resp.headers() {
        if let Ok(n) = HeaderName::from_bytes(name.as_str().as_bytes()) {
            builder = builder.header(n, value.as_bytes());
        }
    }
    let bytes = resp.bytes().await.context("cannot read the service's answer")?;
    Ok(builder.body(Body::from(bytes))?)
}

pub fn run(client: &Client, service: &str, url: &str, port: u16) -> Result<u8> {
    let client =
        Arc::new(Client::new(&crate::args::Global { account: Some(client.account.clone()), ..Default::default() })?);
    let proxy = Arc::new(Proxy {
        client,
        url: url.to_owned(),
        http: reqwest::Client::builder().timeout(Duration::from_secs(3600)).build()?,
        token: Mutex::new(None),
    });
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{port}; choose another with --port"))?;
        proxy.token().await?;
        eprintln!(
            "Proxying to Cloud Run service [{service}]\nhttp://127.0.0.1:{} proxies to {url}",
            listener.local_addr()?.port()
        );
        let app = axum::Router::new().fallback(forward).with_state(proxy);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(0)
}
