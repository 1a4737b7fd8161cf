//! The built-in sample server, served directly: the hello page, `/whoami` against a real metadata server and
//! without one, `/sleep`, and 404s.

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::*;
use runtime::sample::{self, SampleEnv};
use serde_json::{json, Value};

async fn start(env: SampleEnv) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(sample::serve_on(listener, env));
    format!("http://{addr}")
}

fn env(metadata_host: Option<String>) -> SampleEnv {
    SampleEnv {
        service: "hello".into(),
        revision: "hello-00001-xyz".into(),
        configuration: "hello".into(),
        metadata_host,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

#[tokio::test]
async fn hello_page_names_service_and_revision() {
    let base = start(env(None)).await;
    let response = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let body = response.text().await.unwrap();
    assert!(body.contains("Hello from Cloud Run! Service: hello, revision: hello-00001-xyz"), "{body}");

    assert_eq!(client().get(format!("{base}/nope")).send().await.unwrap().status(), 404);
    let slept = client().get(format!("{base}/sleep?ms=20")).send().await.unwrap();
    assert_eq!(slept.status(), 200);
    assert_eq!(client().get(format!("{base}/sleep?ms=60001")).send().await.unwrap().status(), 400);
}

#[tokio::test]
async fn whoami_asks_the_metadata_server_and_echoes_token_claims() {
    let md = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let md_addr = md.local_addr().unwrap();
    tokio::spawn(metadata::serve(md, identity(), Arc::new(FixedSource), std::future::pending()));
    let base = start(env(Some(md_addr.to_string()))).await;

    let enc = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let claims = json!({"aud": "https://hello.run.app", "email": "caller@example.com"});
    let token = |sig: &str| format!("{}.{}.{sig}", enc.encode("{}"), enc.encode(claims.to_string()));
    let body: Value = client()
        .get(format!("{base}/whoami"))
        .header("Authorization", format!("Bearer {}", token("sig")))
        .header("X-Serverless-Authorization", format!("Bearer {}", token("SIGNATURE_REMOVED_BY_GOOGLE")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["service"], "hello");
    assert_eq!(body["revision"], "hello-00001-xyz");
    assert_eq!(body["configuration"], "hello");
    assert_eq!(body["serviceAccount"], EMAIL);
    assert_eq!(body["authorization"], claims);
    assert_eq!(body["serverlessAuthorization"], claims);
    assert_eq!(body["signatureRemoved"], json!({"authorization": false, "serverlessAuthorization": true}));
}

#[tokio::test]
async fn whoami_without_a_metadata_server_reports_an_error_instead_of_hanging() {
    for host in [None, Some("127.0.0.1:1".to_string())] {
        let base = start(env(host.clone())).await;
        let body: Value = client().get(format!("{base}/whoami")).send().await.unwrap().json().await.unwrap();
        assert_eq!(body["serviceAccount"], Value::Null, "{host:?}");
        assert!(body["serviceAccountError"].as_str().is_some_and(|e| !e.is_empty()), "{body}");
        assert_eq!(body["authorization"], Value::Null);
        assert_eq!(body["signatureRemoved"]["authorization"], false);
    }
}

#[tokio::test]
async fn serve_binds_the_port_on_all_interfaces() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    tokio::spawn(sample::serve(port));
    let url = format!("http://127.0.0.1:{port}/");
    let mut last = None;
    for _ in 0..100 {
        match client().get(&url).send().await {
            Ok(r) => {
                last = Some(r.status());
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(last, Some(reqwest::StatusCode::OK));
}
