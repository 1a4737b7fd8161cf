//! What the metadata server needs from its embedder: a [`TokenSource`] that mints tokens for the server's one identity.
//!
//! For `gatehouse exec` the source calls the platform's IAM Credentials API; inside an instance it asks the platform's
//! issuer directly. The metadata server never mints or signs anything itself.

use std::fmt;
use std::future::Future;
use std::time::SystemTime;

/// A token handed out by a [`TokenSource`], with the instant it stops being valid.
#[derive(Clone)]
pub struct MintedToken {
    /// The bearer value: a JWT for ID tokens, an opaque string for access tokens. Never logged.
    pub token: String,
    pub expires_at: SystemTime,
}

/// Redacts the token value: a token must never reach a log line or a panic message.
impl fmt::Debug for MintedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MintedToken")
            .field("token", &format_args!("<redacted, {} bytes>", self.token.len()))
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The `format` query parameter of the `identity` endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IdFormat {
    /// Only the standard OIDC claims (`iss`, `aud`, `sub`, `azp`, `email`, `iat`, `exp`).
    Standard,
    /// Standard claims plus `email_verified` and, on GCE, a `google` block. google-auth always asks for this one.
    Full,
}

impl IdFormat {
    /// The wire spelling, as clients send it.
    pub fn as_str(self) -> &'static str {
        match self {
            IdFormat::Standard => "standard",
            IdFormat::Full => "full",
        }
    }

    /// Parses the wire spelling (case-insensitive). `None` for anything else.
    pub fn parse(value: &str) -> Option<IdFormat> {
        if value.eq_ignore_ascii_case("standard") {
            Some(IdFormat::Standard)
        } else if value.eq_ignore_ascii_case("full") {
            Some(IdFormat::Full)
        } else {
            None
        }
    }
}

/// Why a [`TokenSource`] could not mint: an HTTP status and a message for the caller.
///
/// The message reaches the application verbatim (google-auth puts the response body into its `RefreshError`), so it
/// should read like Google's, e.g. `Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource ...`.
/// It must not contain a token or any other secret.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// 403 when IAM refuses, 503 when the platform is unreachable, ...
    pub status: u16,
    pub message: String,
}

impl SourceError {
    pub fn new(status: u16, message: impl Into<String>) -> SourceError {
        SourceError { status, message: message.into() }
    }

    /// The status the metadata server answers with. Caller errors (4xx) pass through; everything else becomes 503,
    /// which google-auth retries (it retries 500, 503 and 504) and which says "try again" rather than "bug".
    pub fn http_status(&self) -> u16 {
        match self.status {
            400..=499 => self.status,
            _ => 503,
        }
    }
}

/// Mints tokens for the one service account a metadata server answers for.
///
/// Implementations may use `async fn` in their `impl` block; the futures must be `Send`.
/// The server caches what it gets (see the crate docs), so a source need not cache.
pub trait TokenSource: Send + Sync + 'static {
    /// An OIDC ID token whose `aud` is exactly `audience`.
    fn id_token(
        &self,
        audience: &str,
        format: IdFormat,
    ) -> impl Future<Output = Result<MintedToken, SourceError>> + Send;

    /// An OAuth access token for `scopes` (never empty unless the identity was configured with no scopes).
    fn access_token(&self, scopes: &[String]) -> impl Future<Output = Result<MintedToken, SourceError>> + Send;
}
