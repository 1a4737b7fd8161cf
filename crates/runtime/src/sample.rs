//! The built-in sample image, `us-docker.pkg.dev/cloudrun/container/hello`: a tiny HTTP server that the daemon's
//! hidden `gatehouse sample-hello` subcommand runs inside an instance (the runtime spawns
//! `sample_program sample-hello` with the container contract's environment).
//!
//! * `GET /` — Google's hello page: "Hello from Cloud Run! Service: …, revision: …".
//! * `GET /whoami` — what the instance knows: its service, revision, configuration, the service account its metadata
//!   server reports, and the claims of the `Authorization` and `X-Serverless-Authorization` bearer JWTs as received
//!   (decoded, **not verified** — this is a diagnostic echo, never an access decision).
//! * `GET /sleep?ms=N` (N ≤ 60000) — answers after N ms; for slow-request tests and benchmarks.
//! * anything else — 404.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use serde::Deserialize;
use serde_json::{json, Value};

/// The longest `/sleep` accepted, in milliseconds.
pub const MAX_SLEEP_MS: u64 = 60_000;
/// What Cloud Run puts in place of a JWT signature it removed.
pub const SIGNATURE_REMOVED: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// The contract values the sample reports (normally from the environment, see [`SampleEnv::from_env`]).
#[derive(Clone, Debug, Default)]
pub struct SampleEnv {
    pub service: String,
    pub revision: String,
    pub configuration: String,
    /// `host:port` of the instance's metadata server: `GCE_METADATA_HOST` when set, else
    /// `metadata.google.internal` (as google-auth does).
    pub metadata_host: Option<String>,
}

impl SampleEnv {
    /// `K_SERVICE`, `K_REVISION`, `K_CONFIGURATION`, `GCE_METADATA_HOST`.
    pub fn from_env() -> SampleEnv {
        let var = |k: &str| std::env::var(k).unwrap_or_default();
        SampleEnv {
            service: var("K_SERVICE"),
            revision: var("K_REVISION"),
            configuration: var("K_CONFIGURATION"),
            metadata_host: Some(
                std::env::var("GCE_METADATA_HOST")
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "metadata.google.internal".to_string()),
            ),
        }
    }
}

/// Serves the sample on `0.0.0.0:port` with the contract values from the environment, until the process ends.
pub async fn serve(port: u16) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port))).await?;
    serve_on(listener, SampleEnv::from_env()).await
}

/// Serves the sample on an already bound listener.
pub async fn serve_on(listener: tokio::net::TcpListener, env: SampleEnv) -> std::io::Result<()> {
    axum::serve(listener, router(env)).await
}

/// The sample as a router.
pub fn router(env: SampleEnv) -> Router {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(3)).build().unwrap_or_default();
    let state = Arc::new(Sample { env, client });
    Router::new()
        // Any method: Google's hello sample answers POST too (service-to-service calls in the docs POST).
        .route("/", axum::routing::any(hello))
        .route("/whoami", get(whoami))
        .route("/sleep", get(sleep))
        .fallback(not_found)
        .with_state(state)
}

struct Sample {
    env: SampleEnv,
    client: reqwest::Client,
}

async fn hello(State(sample): State<Arc<Sample>>) -> Html<String> {
    let service = model::html::escape(&sample.env.service);
    let revision = model::html::escape(&sample.env.revision);
    Html(format!(
        "<!doctype html>\n<html>\n<head><meta charset=\"utf-8\"><title>Congratulations | Cloud Run</title></head>\n\
         <body>\n<h1>It's running!</h1>\n\
         <p>Hello from Cloud Run! Service: {service}, revision: {revision}</p>\n\
         <p>Congratulations, you successfully deployed a container image to Cloud Run.</p>\n</body>\n</html>\n"
    ))
}

async fn whoami(State(sample): State<Arc<Sample>>, headers: HeaderMap) -> Json<Value> {
    let (authorization, auth_removed) = bearer_claims(&headers, "authorization");
    let (serverless, serverless_removed) = bearer_claims(&headers, "x-serverless-authorization");
    let mut body = json!({
        "service": sample.env.service,
        "revision": sample.env.revision,
        "configuration": sample.env.configuration,
        "serviceAccount": Value::Null,
        "authorization": authorization,
        "serverlessAuthorization": serverless,
        "signatureRemoved": { "authorization": auth_removed, "serverlessAuthorization": serverless_removed },
    });
    match service_account(&sample).await {
        Ok(email) => body["serviceAccount"] = Value::String(email),
        Err(err) => body["serviceAccountError"] = Value::String(err),
    }
    Json(body)
}

/// Asks the instance's metadata server for its service account, as google-auth does.
async fn service_account(sample: &Sample) -> Result<String, String> {
    let host = sample.env.metadata_host.as_deref().ok_or("GCE_METADATA_HOST is not set")?;
    let url = format!("http://{host}/computeMetadata/v1/instance/service-accounts/default/email");
    let response = sample
        .client
        .get(&url)
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|e| format!("cannot reach the metadata server at {host}: {e}"))?;
    let status = response.status();
    let text = response.text().await.map_err(|e| format!("cannot read the metadata server's answer: {e}"))?;
    if !status.is_success() {
        return Err(format!("the metadata server answered {status}: {}", text.trim()));
    }
    Ok(text.trim().to_string())
}

/// The payload claims of `header`'s bearer JWT (`null` when absent or not a JWT), and whether its signature was
/// replaced by Cloud Run's marker. Nothing is verified.
fn bearer_claims(headers: &HeaderMap, header: &str) -> (Value, bool) {
    let Some(value) = headers.get(header).and_then(|v| v.to_str().ok()) else { return (Value::Null, false) };
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => return (Value::Null, false),
    };
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return (Value::Null, false);
    }
    let removed = parts[2] == SIGNATURE_REMOVED;
    let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(parts[1].trim_end_matches('='))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<Value>(&bytes).ok())
        .filter(Value::is_object)
        .unwrap_or(Value::Null);
    (claims, removed)
}

#[derive(Deserialize)]
struct SleepQuery {
    ms: Option<u64>,
}

async fn sleep(Query(query): Query<SleepQuery>) -> Response {
    let ms = query.ms.unwrap_or(0);
    if ms > MAX_SLEEP_MS {
        return (StatusCode::BAD_REQUEST, format!("ms must be at most {MAX_SLEEP_MS}\n")).into_response();
    }
    tokio::time::sleep(Duration::from_millis(ms)).await;
    format!("slept {ms} ms\n").into_response()
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "404 page not found\n").into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn jwt(claims: &Value, signature: &str) -> String {
        let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.{signature}", enc.encode(br#"{"alg":"RS256"}"#), enc.encode(claims.to_string()))
    }

    #[test]
    fn bearer_claims_decode_without_verifying() {
        let mut headers = HeaderMap::new();
        let claims = json!({"aud": "https://x", "email": "a@b"});
        headers.insert("authorization", HeaderValue::from_str(&format!("Bearer {}", jwt(&claims, "sig"))).unwrap());
        let token = jwt(&claims, SIGNATURE_REMOVED);
        headers.insert("x-serverless-authorization", HeaderValue::from_str(&format!("bearer {token}")).unwrap());
        assert_eq!(bearer_claims(&headers, "authorization"), (claims.clone(), false));
        assert_eq!(bearer_claims(&headers, "x-serverless-authorization"), (claims, true));
        assert_eq!(bearer_claims(&headers, "missing"), (Value::Null, false));
        headers.insert("authorization", HeaderValue::from_static("Basic abc"));
        assert_eq!(bearer_claims(&headers, "authorization"), (Value::Null, false));
        headers.insert("authorization", HeaderValue::from_static("Bearer a.!!!.c"));
        assert_eq!(bearer_claims(&headers, "authorization"), (Value::Null, false));
    }
}
