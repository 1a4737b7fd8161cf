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
    /// Authenticates the `Authorization` header value. Missing, unknown, expired or revoked tokens → 401.
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
        let principal = self.read(|tx| {
            let Some(row) = tx.token(&hash)? else { return Ok(None) };
            if row.kind != tokens::TokenKind::Access.as_str() || row.expires_at <= unix_now() {
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
            Ok(Some(principal))
        })?;
        let principal = principal.ok_or_else(|| ApiError::unauthenticated(INVALID))?;
        Ok(Caller { principal, ip, user_agent })
    }
}
