//! HTTP plumbing: one dispatcher that matches Google's `/{version}/{collection}/{id}:{verb}` paths (axum's router cannot
//! capture `{id}:verb` inside one segment), runs the handler off the async threads (store writes fsync), and answers
//! errors in Google's envelope.

use crate::auth::Caller;
use crate::state::{App, Result};
use crate::{
    compute_instances, credentials, groups, logging, oauth, projects, roles, secret_manager, service_accounts,
    troubleshoot, vpc,
};
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use model::ApiError;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body the API accepts.
const MAX_BODY: usize = 1 << 20;

/// How much of a refused (too large) body is still read, and dropped, so the client — which may still be sending —
/// gets the answer instead of a reset connection. Beyond it the connection is closed unread.
const DRAIN_LIMIT: u64 = 64 << 20;

/// A parsed request.
pub(crate) struct Req {
    pub method: Method,
    /// Path segments, percent-decoded; the `:verb` of the last segment is split off into `verb`.
    pub segs: Vec<String>,
    pub verb: Option<String>,
    pub query: HashMap<String, String>,
    pub body: Bytes,
    pub authorization: Option<String>,
    pub operator_key: Option<String>,
    /// The `Host` the caller used (discovery documents point back at it).
    pub host: Option<String>,
    pub ip: String,
    pub user_agent: String,
}

impl Req {
    /// Authenticates the caller (401 when the token is missing or invalid).
    pub fn caller(&self, app: &App) -> Result<Caller> {
        app.authenticate(self.authorization.as_deref(), self.ip.clone(), self.user_agent.clone())
    }

    /// The body as JSON, read as Google's front end reads a request message (`json_body`: an object at the top, no
    /// list where a message is expected); an empty body reads as `{}`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T> {
        let body: &[u8] = if self.body.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &self.body };
        crate::json_body::from_slice(body).map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))
    }

    pub fn query(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }
}

/// What a handler answers on success.
pub(crate) enum Reply {
    Json(Value),
    Status(StatusCode, Value),
    /// A JSON body already serialized (`AccessSecretVersion` writes its payload into a buffer wiped after sending).
    Raw(Bytes),
    /// `then`, answered once `durable` reports the call's audit entry on disk. The request's thread is free while the
    /// group commit writes; if the record fails, a success is withheld (503) and an error is answered as it is.
    AfterRecord {
        durable: tokio::sync::oneshot::Receiver<bool>,
        then: Box<Result<Reply>>,
    },
}

impl From<Value> for Reply {
    fn from(v: Value) -> Self {
        Reply::Json(v)
    }
}

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(dispatch).with_state(app)
}

async fn dispatch(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let body = match read_body(&headers, body).await {
        Ok(body) => body,
        Err(e) => return error_response(&e),
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
    let (segs, verb) = match split_path(uri.path()) {
        Ok(p) => p,
        Err(e) => return error_response(&e),
    };
    let query = uri
        .query()
        .map(|q| serde_urlencoded::from_str::<Vec<(String, String)>>(q).unwrap_or_default().into_iter().collect())
        .unwrap_or_default();
    let req = Req {
        method,
        segs,
        verb,
        query,
        body,
        authorization: header("authorization"),
        operator_key: header("x-gatehouse-operator-key"),
        host: header("host"),
        ip: peer.ip().to_string(),
        user_agent: header("user-agent").unwrap_or_default(),
    };
    let path = uri.path().to_owned();
    // `:access` reads (token lookup, a WAL read, decryption: tens of microseconds, no fsync: its audit entry is
    // awaited below, not in the handler) run on the connection's own thread; a hop to the blocking pool and back
    // cost more than the handler itself. Everything else may write durably, so it runs on the blocking pool.
    let routed = if req.method == Method::GET && req.verb.as_deref() == Some("access") {
        Ok(route(&app, &req))
    } else {
        tokio::task::spawn_blocking(move || route(&app, &req)).await
    };
    match routed {
        Ok(Ok(Reply::AfterRecord { durable, then })) => {
            let recorded = durable.await.unwrap_or(false);
            match *then {
                Ok(_) if !recorded => answer(
                    &path,
                    Err(ApiError::new(
                        model::Code::Unavailable,
                        "the call could not be recorded in the audit log, so its answer is withheld; try again",
                    )),
                ),
                then => answer(&path, then),
            }
        }
        Ok(result) => answer(&path, result),
        Err(join) => {
            tracing::error!(%path, error = %join, "handler panicked");
            error_response(&ApiError::internal("internal error; see the daemon log"))
        }
    }
}

/// The request body, at most [`MAX_BODY`] bytes. A larger one (by its `Content-Length` or as it arrives) is Google's
/// 400 `Request payload size exceeds the limit`, whatever its size; what is read past the limit is dropped, never
/// kept.
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<Bytes> {
    use axum::body::HttpBody;
    let too_large = || ApiError::invalid(format!("Request payload size exceeds the limit: {MAX_BODY} bytes."));
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > DRAIN_LIMIT) {
        return Err(too_large());
    }
    let mut kept = Vec::new();
    let mut seen: u64 = 0;
    while let Some(frame) = std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await {
        let frame = frame.map_err(|e| ApiError::invalid(format!("the request body could not be read: {e}")))?;
        let Ok(data) = frame.into_data() else { continue };
        seen += data.len() as u64;
        if seen > DRAIN_LIMIT {
            break;
        }
        if seen <= MAX_BODY as u64 && declared.is_none_or(|n| n <= MAX_BODY as u64) {
            kept.extend_from_slice(&data);
        } else {
            kept = Vec::new();
        }
    }
    if seen > MAX_BODY as u64 || declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(too_large());
    }
    Ok(Bytes::from(kept))
}

fn answer(path: &str, result: Result<Reply>) -> Response {
    match result {
        Ok(Reply::Json(v)) => (StatusCode::OK, axum::Json(v)).into_response(),
        Ok(Reply::Status(s, v)) => (s, axum::Json(v)).into_response(),
        Ok(Reply::Raw(body)) => {
            ([(axum::http::header::CONTENT_TYPE, "application/json")], axum::body::Body::from(body)).into_response()
        }
        Ok(Reply::AfterRecord { .. }) => {
            tracing::error!(%path, "a deferred answer was nested in another");
            error_response(&ApiError::internal("internal error; see the daemon log"))
        }
        Err(e) => {
            // A platform failure is an error in the log; a method this platform does not offer (501) is the
            // client's choice, and must not let clients fill the log at error level.
            if e.http_status() >= 500 && e.code != model::Code::Unimplemented {
                tracing::error!(%path, error = %e, "request failed");
            }
            error_response(&e)
        }
    }
}

pub(crate) fn error_response(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (status, axum::Json(e.to_envelope())).into_response()
}

fn split_path(path: &str) -> Result<(Vec<String>, Option<String>)> {
    let mut segs = Vec::new();
    for raw in path.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_decode(raw).ok_or_else(|| ApiError::invalid(format!("invalid path segment `{raw}`")))?;
        segs.push(decoded);
    }
    let verb = match segs.last_mut() {
        Some(last) => match last.split_once(':') {
            Some((head, verb)) => {
                let verb = verb.to_owned();
                *last = head.to_owned();
                Some(verb)
            }
            None => None,
        },
        None => None,
    };
    Ok((segs, verb))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn route(app: &App, req: &Req) -> Result<Reply> {
    let segs: Vec<&str> = req.segs.iter().map(String::as_str).collect();
    let verb = req.verb.as_deref();
    let m = &req.method;
    let get = m == Method::GET;
    let post = m == Method::POST;
    let delete = m == Method::DELETE;
    let patch = m == Method::PATCH;
    match (segs.as_slice(), verb) {
        // OAuth 2.0 token endpoint and revocation, as oauth2.googleapis.com.
        (["token"], None) if post => oauth::token(app, req),
        (["revoke"], None) if post => oauth::revoke(app, req),
        (["gatehouse", "v1", "accounts"], Some("login")) if post => oauth::login(app, req),
        (["gatehouse", "v1", "auditChain"], Some("verify")) if post || get => logging::verify(app, req),
        (["gatehouse", "v1", "keys"], Some("rotate")) if post => credentials::rotate(app, req),

        // The issuer's public documents (as accounts.google.com and www.googleapis.com/oauth2).
        ([".well-known", "openid-configuration"], None) if get => credentials::discovery(app, req),
        (["oauth2", "v3", "certs"], None) if get => credentials::jwks(app),
        (["oauth2", "v1", "certs"], None) if get => credentials::pem_certs(app),

        // Resource Manager v1 and v3.
        (["v1" | "v3", "projects", p], None) if get => projects::get(app, req, p),
        (["v1" | "v3", "projects", p], Some(v)) if post => projects::iam(app, req, p, v),

        // Secret Manager v1, global and regional secrets.
        (["v1", "projects", p, "secrets", rest @ ..], v) => {
            secret_manager::route(app, req, p, None, rest, v).unwrap_or_else(|| Err(not_found(req, verb)))
        }
        (["v1", "projects", p, "locations", l, "secrets", rest @ ..], v) => {
            secret_manager::route(app, req, p, Some(l), rest, v).unwrap_or_else(|| Err(not_found(req, verb)))
        }

        // Compute Engine v1: instances, VPC networks and subnetworks.
        (["compute", "v1", "projects", p, "zones", z, "instances"], None) if post => {
            compute_instances::insert(app, req, p, z)
        }
        (["compute", "v1", "projects", p, "zones", z, "instances"], None) if get => {
            compute_instances::list(app, req, p, Some(z))
        }
        (["compute", "v1", "projects", p, "aggregated", "instances"], None) if get => {
            compute_instances::list(app, req, p, None)
        }
        (["compute", "v1", "projects", p, "zones", z, "instances", n], None) if get => {
            compute_instances::get(app, req, p, z, n)
        }
        (["compute", "v1", "projects", p, "zones", z, "instances", n, "serialPort"], None) if get => {
            compute_instances::serial_port(app, req, p, z, n)
        }
        (["compute", "v1", "projects", p, "zones", z, "instances", n], None) if delete => {
            compute_instances::delete(app, req, p, z, n)
        }
        (["compute", "v1", "projects", p, "global", "networks"], None) if post => vpc::networks_insert(app, req, p),
        (["compute", "v1", "projects", p, "global", "networks"], None) if get => vpc::networks_list(app, req, p),
        (["compute", "v1", "projects", p, "global", "networks", n], None) if get => vpc::networks_get(app, req, p, n),
        (["compute", "v1", "projects", p, "global", "networks", n], None) if delete => {
            vpc::networks_delete(app, req, p, n)
        }
        (["compute", "v1", "projects", p, "regions", r, "subnetworks"], None) if post => {
            vpc::subnets_insert(app, req, p, r)
        }
        (["compute", "v1", "projects", p, "regions", r, "subnetworks"], None) if get => {
            vpc::subnets_list(app, req, p, Some(r))
        }
        (["compute", "v1", "projects", p, "aggregated", "subnetworks"], None) if get => {
            vpc::subnets_list(app, req, p, None)
        }
        (["compute", "v1", "projects", p, "regions", r, "subnetworks", s], None) if get => {
            vpc::subnets_get(app, req, p, r, s)
        }
        (["compute", "v1", "projects", p, "regions", r, "subnetworks", s], None) if delete => {
            vpc::subnets_delete(app, req, p, r, s)
        }

        // Serverless VPC Access v1: connectors.
        (["v1", "projects", p, "locations", l, "connectors"], None) if post => vpc::connectors_create(app, req, p, l),
        (["v1", "projects", p, "locations", l, "connectors"], None) if get => vpc::connectors_list(app, req, p, l),
        (["v1", "projects", p, "locations", l, "connectors", c], None) if get => vpc::connectors_get(app, req, p, l, c),
        (["v1", "projects", p, "locations", l, "connectors", c], None) if delete => {
            vpc::connectors_delete(app, req, p, l, c)
        }

        // IAM v1: service accounts.
        (["v1", "projects", p, "serviceAccounts"], None) if post => service_accounts::create(app, req, p),
        (["v1", "projects", p, "serviceAccounts"], None) if get => service_accounts::list(app, req, p),
        (["v1", "projects", p, "serviceAccounts", sa], None) if get => service_accounts::get(app, req, p, sa),
        (["v1", "projects", p, "serviceAccounts", sa], None) if delete => service_accounts::delete(app, req, p, sa),
        (["v1", "projects", p, "serviceAccounts", sa], None) if patch => service_accounts::patch(app, req, p, sa),
        (["v1", "projects", p, "serviceAccounts", sa], Some(v)) if post => service_accounts::action(app, req, p, sa, v),
        (["v1", "projects", p, "serviceAccounts", sa, "keys"], None) if post => {
            credentials::create_key(app, req, p, sa)
        }
        (["v1", "projects", p, "serviceAccounts", sa, "keys"], None) if get => credentials::list_keys(app, req, p, sa),

        // Cloud Run Admin API v1 (Knative shapes).
        (["apis", "serving.knative.dev", "v1", "namespaces", ns, "services"], None) => {
            crate::run::knative_route(app, req, ns, None).unwrap_or_else(|| Err(not_found(req, verb)))
        }
        (["apis", "serving.knative.dev", "v1", "namespaces", ns, "services", s], None) => {
            crate::run::knative_route(app, req, ns, Some(s)).unwrap_or_else(|| Err(not_found(req, verb)))
        }

        // Cloud Run Admin API v2 (and the v1 IAM paths gcloud uses for services).
        (["v2", "projects", rest @ ..], v) => match crate::run::route(app, req, rest, v) {
            Some(r) => r,
            None => Err(not_found(req, verb)),
        },
        (["v1", "projects", rest @ ..], Some(v)) if rest.len() == 5 && rest[3] == "services" => {
            crate::run::route(app, req, rest, Some(v)).unwrap_or_else(|| Err(not_found(req, verb)))
        }

        // IAM v1: roles.
        (["v1", "roles"], None) if get => roles::list_predefined(app, req),
        (["v1", "roles", id], None) if get => roles::get_predefined(app, req, id),
        (["v1", "projects", p, "roles"], None) if post => roles::create(app, req, p),
        (["v1", "projects", p, "roles"], None) if get => roles::list_custom(app, req, p),
        (["v1", "projects", p, "roles", id], None) if get => roles::get_custom(app, req, p, id),
        (["v1", "projects", p, "roles", id], None) if delete => roles::delete_custom(app, req, p, id),
        (["v1", "projects", p, "roles", id], None) if patch => roles::patch_custom(app, req, p, id),
        (["v1", "projects", p, "roles", id], Some("undelete")) if post => roles::undelete_custom(app, req, p, id),

        // Cloud Identity groups v1.
        (["v1", "groups"], None) if post => groups::create(app, req),
        (["v1", "groups"], None) if get => groups::list(app, req),
        (["v1", "groups"], Some("lookup")) if get => groups::lookup(app, req),
        (["v1", "groups", g, "memberships"], None) if post => groups::add_membership(app, req, g),
        (["v1", "groups", g, "memberships"], None) if get => groups::list_memberships(app, req, g),

        // Policy Troubleshooter v1, Cloud Logging v2.
        (["v1", "iam"], Some("troubleshoot")) if post => troubleshoot::troubleshoot(app, req),
        (["v2", "entries"], Some("list")) if post => logging::list(app, req),

        _ => Err(not_found(req, verb)),
    }
}

fn not_found(req: &Req, verb: Option<&str>) -> ApiError {
    ApiError::not_found(format!("Method {} {} is not found on this server.", req.method, render_path(&req.segs, verb)))
}

fn render_path(segs: &[String], verb: Option<&str>) -> String {
    let mut p = format!("/{}", segs.join("/"));
    if let Some(v) = verb {
        p.push(':');
        p.push_str(v);
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_verbs_and_decodes() {
        let (segs, verb) = split_path("/v1/projects/p/serviceAccounts/a%40b.com:getIamPolicy").unwrap();
        assert_eq!(segs, ["v1", "projects", "p", "serviceAccounts", "a@b.com"]);
        assert_eq!(verb.as_deref(), Some("getIamPolicy"));
        assert!(split_path("/v1/%zz").is_err());
    }
}
