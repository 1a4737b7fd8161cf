//! Authentication of API callers: `Authorization: Bearer <access token>`, looked up by hash, expiring after an hour.

use crate::service_accounts::ServiceAccount;
use crate::state::{kind, App, Result};
use iam::Principal;
use model::ApiError;
use std::time::{SystemTime, UNIX_EPOCH};

const MISSING: &str = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";
const INVALID: &str = "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/// Who is calling, and from where.
#[derive(Debug, Clone)]
pub struct Caller {
    pub principal: Principal,
    pub ip: String,
    pub user_agent: String,
}

impl Caller {
    pub fn email(&self) -> Option<&str> {
        match &self.principal {
            Principal::User(e) | Principal::ServiceAccount(e) => Some(e),
            Principal::Anonymous => None,
        }
    }
}

/// Parses a stored principal (`user:EMAIL` / `serviceAccount:EMAIL`).
pub fn parse_principal(s: &str) -> Option<Principal> {
    match s.split_once(':')? {
        ("user", e) => Some(Principal::User(e.to_owned())),
        ("serviceAccount", e) => Some(Principal::ServiceAccount(e.to_owned())),
        _ => None,
    }
}

pub fn unix_now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl App {
    /// Authenticates the `Authorization` header value; missing, unknown, expired or revoked tokens → 401. A bearer
    /// access token: its row (kind, expiry, principal) and, for a service account, that the
    /// account exists and is enabled. Answers from [`CallerCache`] while no state write happened since the entry was
    /// read — a revocation, an account's deletion or disabling are writes — and the token has not expired.
    pub(crate) fn authenticate(&self, authorization: Option<&str>, ip: String, user_agent: String) -> Result<Caller> {
        let header =
            authorization.map(str::trim).filter(|h| !h.is_empty()).ok_or_else(|| ApiError::unauthenticated(MISSING))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .ok_or_else(|| ApiError::unauthenticated(INVALID))?;
        if tokens::TokenKind::of(token) != Some(tokens::TokenKind::Access) || !tokens::looks_valid(token) {
            return Err(ApiError::unauthenticated(INVALID));
        }
        let hash = tokens::hash(token);
        // Read the write count before the state: an entry is only as fresh as the state it was read from.
        let writes = self.writes.load(std::sync::atomic::Ordering::SeqCst);
        let now = unix_now();
        if let Some((principal, expires_at, at)) = self.callers.get(&hash) {
            if at == writes && expires_at > now {
                return Ok(Caller { principal, ip, user_agent });
            }
        }
        let principal = self.read(|tx| {
            let Some(row) = tx.token(&hash)? else { return Ok(None) };
            if row.kind != tokens::TokenKind::Access.as_str() || row.expires_at <= now {
                return Ok(None);
            }
            let Some(principal) = parse_principal(&row.principal) else { return Ok(None) };
            if let Principal::ServiceAccount(email) = &principal {
                // A disabled or deleted service account cannot authenticate.
                match tx.get::<ServiceAccount>(kind::SERVICE_ACCOUNT, email)? {
                    Some(sa) if !sa.disabled => {}
                    _ => return Ok(None),
                }
            }
            Ok(Some((principal, row.expires_at)))
        })?;
        let (principal, expires_at) = principal.ok_or_else(|| ApiError::unauthenticated(INVALID))?;
        self.callers.insert(hash, (principal.clone(), expires_at, writes));
        Ok(Caller { principal, ip, user_agent })
    }
}

/// Access-token hash → (principal, `expires_at`, [`App::writes`] when read). Bounded; an entry from before the last
/// state write is never used.
pub(crate) type CallerCache = quick_cache::sync::Cache<String, (Principal, i64, u64)>;

/// Tokens kept authenticated at once.
pub(crate) const CALLER_CACHE: usize = 4096;
