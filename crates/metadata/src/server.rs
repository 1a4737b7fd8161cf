//! The request handler: guard checks in GCE's order, then one answer per node of the metadata tree.
//!
//! Order of checks: `X-Forwarded-For` (403) → method (405) → ping `/` (200) → `Metadata-Flavor: Google` (403) →
//! path (404) → query (400) → the node's answer.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde_json::json;

use crate::cache::TokenCache;
use crate::identity::Identity;
use crate::paths::{self, Dir, Leaf, Node};
use crate::query::{self, Alt, Params};
use crate::response::{self, METADATA_FLAVOR};
use crate::source::{IdFormat, MintedToken, SourceError, TokenSource};

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// State shared by all requests of one server: its identity, its source and the token caches.
pub(crate) struct Server<S> {
    identity: Identity,
    source: Arc<S>,
    id_standard: TokenCache,
    id_full: TokenCache,
    access: TokenCache,
}

impl<S: TokenSource> Server<S> {
    pub(crate) fn new(identity: Identity, source: Arc<S>) -> Server<S> {
        Server {
            identity,
            source,
            id_standard: TokenCache::default(),
            id_full: TokenCache::default(),
            access: TokenCache::default(),
        }
    }

    async fn answer(&self, request: &Parts) -> Response {
        if request.headers.contains_key(X_FORWARDED_FOR) {
            // SSRF guard, as on GCE: a proxied request is not from the instance's own code.
            return response::error(
                StatusCode::FORBIDDEN,
                "Request had an X-Forwarded-For header; the metadata server does not answer proxied requests.",
            );
        }
        if request.method != Method::GET && request.method != Method::HEAD {
            return response::method_not_allowed();
        }
        let path = request.uri.path();
        let node = paths::resolve(&self.identity, path);
        if node == Some(Node::Ping) {
            return ping();
        }
        if !has_flavor_header(request) {
            return response::error(StatusCode::FORBIDDEN, "Missing Metadata-Flavor:Google header.");
        }
        let Some(node) = node else {
            return response::error(StatusCode::NOT_FOUND, &format!("The requested URL `{path}` was not found."));
        };
        let params = match query::parse(request.uri.query()) {
            Ok(params) => params,
            Err(message) => return response::error(StatusCode::BAD_REQUEST, &message),
        };
        if params.wait_for_change {
            return response::error(
                StatusCode::BAD_REQUEST,
                "`wait_for_change` is not supported by the Gatehouse metadata server.",
            );
        }
        match node {
            Node::Ping => ping(),
            Node::Dir(dir) => self.directory(dir, &params),
            Node::Leaf(leaf) => self.leaf(leaf, &params),
            Node::Token => self.token(&params).await,
            Node::Identity => self.id_token(&params).await,
        }
    }

    fn directory(&self, dir: Dir, params: &Params) -> Response {
        match (params.recursive, params.alt) {
            (true, Some(Alt::Json) | None) => response::json(&paths::recursive(&self.identity, dir)),
            (false, Some(Alt::Json)) => response::json(&paths::listing_json(&self.identity, dir)),
            (_, Some(Alt::Text) | None) => response::text(paths::listing(&self.identity, dir)),
        }
    }

    fn leaf(&self, leaf: Leaf, params: &Params) -> Response {
        match params.alt {
            Some(Alt::Json) => response::json(&paths::leaf_json(&self.identity, leaf)),
            Some(Alt::Text) | None => response::text(paths::leaf_text(&self.identity, leaf)),
        }
    }

    /// `token[?scopes=a,b]` → `{"access_token", "expires_in", "token_type"}` (google-auth requires the first two).
    async fn token(&self, params: &Params) -> Response {
        let scopes = params
            .scopes
            .as_deref()
            .and_then(query::scope_list)
            .unwrap_or_else(|| query::scope_list(&self.identity.scopes.join(",")).unwrap_or_default());
        let key = scopes.join(" ");
        match self.access.get_or_mint(&key, || self.source.access_token(&scopes)).await {
            Ok(minted) => response::json(&json!({
                "access_token": minted.token,
                "expires_in": seconds_left(&minted),
                "token_type": "Bearer",
            })),
            Err(err) => source_error(&err),
        }
    }

    /// `identity?audience=AUD[&format=standard|full][&licenses=TRUE|FALSE]` → the bare JWT.
    async fn id_token(&self, params: &Params) -> Response {
        let audience = match params.audience.as_deref() {
            Some(audience) if !audience.is_empty() => audience,
            _ => return response::error(StatusCode::BAD_REQUEST, "non-empty audience parameter required"),
        };
        let format = match params.format.as_deref() {
            None => IdFormat::Standard,
            Some(value) => match IdFormat::parse(value) {
                Some(format) => format,
                None => {
                    let message = format!("invalid value `{value}` for `format`; use `standard` or `full`");
                    return response::error(StatusCode::BAD_REQUEST, &message);
                }
            },
        };
        // `licenses` only adds GCE license codes to `format=full` tokens; Cloud Run has none, so it is checked and
        // otherwise ignored.
        if let Some(value) = params.licenses.as_deref() {
            if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") {
                let message = format!("invalid value `{value}` for `licenses`; use `TRUE` or `FALSE`");
                return response::error(StatusCode::BAD_REQUEST, &message);
            }
        }
        let cache = match format {
            IdFormat::Standard => &self.id_standard,
            IdFormat::Full => &self.id_full,
        };
        match cache.get_or_mint(audience, || self.source.id_token(audience, format)).await {
            Ok(minted) => response::jwt(minted.token),
            Err(err) => source_error(&err),
        }
    }
}

/// The detection ping: google-auth needs a 200 with `Metadata-Flavor: Google`, and sends nothing else to `/`.
fn ping() -> Response {
    response::text("computeMetadata/\n".to_string())
}

/// `Metadata-Flavor: Google`, the value compared case-insensitively.
fn has_flavor_header(request: &Parts) -> bool {
    request.headers.get_all(METADATA_FLAVOR).iter().any(|value| value.as_bytes().eq_ignore_ascii_case(b"Google"))
}

fn seconds_left(minted: &MintedToken) -> u64 {
    minted.expires_at.duration_since(SystemTime::now()).map(|left| left.as_secs()).unwrap_or(0)
}

fn source_error(err: &SourceError) -> Response {
    let status = StatusCode::from_u16(err.http_status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    response::error(status, &err.message)
}

/// The axum handler: every request of the router lands here. Logs method, path and status only, never the query
/// (it carries audiences) and never a token.
pub(crate) async fn handle<S: TokenSource>(State(server): State<Arc<Server<S>>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let response = server.answer(&parts).await;
    tracing::debug!(method = %parts.method, path = parts.uri.path(), status = response.status().as_u16(), "metadata");
    response
}
