//! A real bootstrapped control plane (SQLite in a temporary home) driven through its REST router as the owner.
#![allow(dead_code)]

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request};
use serde_json::Value;
use std::net::SocketAddr;
use std::sync::Arc;
use tower::ServiceExt;

pub struct Plane {
    _home: tempfile::TempDir,
    pub app: Arc<api::App>,
    pub token: String,
}

impl Plane {
    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if !self.token.is_empty() {
            req = req.header("authorization", format!("Bearer {}", self.token));
        }
        let req = match body {
            Some(b) => req.header("content-type", "application/json").body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        };
        send(&self.app, req.unwrap()).await
    }

    pub async fn ok(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let (status, v) = self.call(method, path, body).await;
        assert_eq!(status, 200, "{path}: {v}");
        v
    }

    pub fn number(&self) -> &str {
        &self.app.project().project_number
    }
}

pub async fn send(app: &Arc<api::App>, mut req: Request<Body>) -> (u16, Value) {
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 1], 40000))));
    let resp = api::router(app.clone()).oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20).await.unwrap();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

/// A fresh platform, and the owner's access token.
pub async fn boot() -> Plane {
    let home = tempfile::tempdir().unwrap();
    let boot = api::bootstrap(api::BootstrapOptions {
        db_path: home.path().join("state.db"),
        project_id: None,
        region: None,
        operator_key_hash: tokens::hash("operator-key"),
        keys_path: home.path().join("signing-keys.json"),
        issuer: api::DEFAULT_ISSUER.to_owned(),
        key_rotation: std::time::Duration::from_secs(86_400),
        service_port_base: 0,
    })
    .unwrap();
    let refresh = boot.owner_refresh_token.unwrap();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(format!("grant_type=refresh_token&refresh_token={refresh}")))
        .unwrap();
    let (status, v) = send(&boot.app, req).await;
    assert_eq!(status, 200, "{v}");
    let token = v["access_token"].as_str().unwrap().to_owned();
    Plane { _home: home, app: boot.app, token }
}
