//! The per-identity metadata server: what google-auth, the Cloud client libraries and gcloud talk to when they look
//! for credentials on Cloud Run (PROTOCOL.md §1).
//!
//! One server answers for exactly **one** service account, the [`Identity`] it was built with.
//! `gatehouse exec --impersonate-service-account=EMAIL` runs one on `127.0.0.1:PORT` and points `GCE_METADATA_HOST`,
//! `GCE_METADATA_IP` and `GCE_METADATA_ROOT` at it; each instance gets one at `169.254.169.254:80`.
//!
//! **Architecture Invariant:** a server never answers for an identity other than its own; any other account path is
//! a 404. **Architecture Invariant:** the server never mints or signs: tokens come from the embedder's
//! [`TokenSource`]; it only caches them.
//!
//! **API boundary:** [`router`] and [`serve`] take an [`Identity`] and an `Arc<S: TokenSource>`.
//!
//! Modules, in the order a request meets them: `server` (guard checks and dispatch), `paths` (the metadata tree),
//! `query` (parameters), `cache` (tokens per audience and per scope set, coalescing concurrent misses),
//! `response` (headers every answer carries). Token values are never logged; requests are logged at debug level
//! with method, path and status only.

#![forbid(unsafe_code)]

mod cache;
mod identity;
mod paths;
mod query;
mod response;
mod server;
mod source;

use std::future::Future;
use std::sync::Arc;

use axum::serve::ListenerExt;
use axum::Router;

pub use cache::REFRESH_MARGIN;
pub use identity::{Identity, CLOUD_PLATFORM_SCOPE};
pub use source::{IdFormat, MintedToken, SourceError, TokenSource};

/// The metadata server for `identity` as an axum router (every path is handled; nothing falls through).
pub fn router<S: TokenSource>(identity: Identity, source: Arc<S>) -> Router {
    let server = Arc::new(server::Server::new(identity, source));
    Router::new().fallback(server::handle::<S>).with_state(server)
}

/// Serves [`router`] on `listener` until `shutdown` resolves, then finishes in-flight requests and returns.
///
/// The caller binds the listener (and so knows its address, e.g. after binding `127.0.0.1:0`).
pub async fn serve<S: TokenSource>(
    listener: tokio::net::TcpListener,
    identity: Identity,
    source: Arc<S>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let listener = listener.tap_io(|tcp| {
        // Small request/response pairs on keep-alive connections: do not let Nagle delay them.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(%err, "metadata: cannot set TCP_NODELAY");
        }
    });
    axum::serve(listener, router(identity, source)).with_graceful_shutdown(shutdown).await
}
