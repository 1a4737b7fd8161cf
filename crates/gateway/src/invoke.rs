//! Step 2: the invocation check, exactly as Cloud Run runs it (PROTOCOL §3), in this order:
//!
//! 1. **Public**: `invokerIamDisabled`, or `allUsers` holds `run.routes.invoke` → admit without looking at any token
//!    (a public service ignores even a garbage token).
//! 2. **Which header**: `X-Serverless-Authorization` when present (then only it is checked), else `Authorization`.
//!    Several headers of that name, a scheme other than `Bearer`, or several tokens in one value → 401.
//! 3. **No token** → 403 "The request was not authenticated…".
//! 4. **Verify** (signature, issuer, times, exact audience; gcloud's client id is accepted too) → else 401.
//! 5. **Principal**: the `email` claim, or the account behind `sub` → else 401.
//! 6. **IAM**: `run.routes.invoke` on the service → else 403 with the decision's explanation.
//!
//! Must not: read the clock (time is passed in), touch the network, or sign anything.

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::HeaderMap;
use iam::Principal;
use std::time::SystemTime;
use tokens::CachingVerifier;

use crate::{Route, GCLOUD_CLIENT_ID, INVOKE_PERMISSION};

/// The header for apps that use `Authorization` themselves; checked instead of `Authorization` when present.
pub const X_SERVERLESS_AUTHORIZATION: HeaderName = HeaderName::from_static("x-serverless-authorization");

/// What replaces a forwarded token's signature (PROTOCOL §3.4).
pub const SIGNATURE_REMOVED: &str = "SIGNATURE_REMOVED_BY_GOOGLE";

/// The request may go through.
#[derive(Debug, Clone, PartialEq)]
pub struct Admitted {
    /// `None` when the service is public (no token was looked at).
    pub principal: Option<Principal>,
    /// A header to set before forwarding: the checked token with its signature removed.
    pub rewrite: Option<Rewrite>,
}

/// Replace the value of `header` with `value` before forwarding.
#[derive(Debug, Clone, PartialEq)]
pub struct Rewrite {
    pub header: HeaderName,
    pub value: HeaderValue,
}

/// The request is refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Refusal {
    /// 401 (bad credentials) or 403 (no credentials, or no permission).
    pub status: u16,
    pub reason: String,
    /// Who the token named, when it was valid.
    pub principal: Option<Principal>,
    /// The IAM decision's explanation (Policy Troubleshooter shape) when IAM said no.
    pub explanation: Option<serde_json::Value>,
}

impl Refusal {
    fn unauthorized(reason: impl Into<String>) -> Refusal {
        Refusal { status: 401, reason: reason.into(), principal: None, explanation: None }
    }

    /// 403 without a token: the page says "The request was not authenticated…".
    pub fn is_unauthenticated(&self) -> bool {
        self.status == 403 && self.principal.is_none()
    }
}

/// Runs the invocation check for `route` on a request's headers.
// A refusal is the cold path and its fields are the troubleshooter's; boxing it would only cost the callers.
#[allow(clippy::result_large_err)]
pub fn check(
    route: &Route,
    headers: &HeaderMap,
    iam: &iam::Snapshot,
    verifier: &CachingVerifier,
    resolve: impl Fn(&str) -> Option<Principal>,
    now: SystemTime,
) -> Result<Admitted, Refusal> {
    // 1. Public services ignore credentials entirely.
    if route.invoker_iam_disabled
        || iam::decide(iam, &Principal::Anonymous, INVOKE_PERMISSION, &route.resource, now).granted
    {
        return Ok(Admitted { principal: None, rewrite: None });
    }

    // 2. Which header carries the token.
    let (name, serverless) = if headers.contains_key(&X_SERVERLESS_AUTHORIZATION) {
        (X_SERVERLESS_AUTHORIZATION, true)
    } else {
        (AUTHORIZATION, false)
    };
    let mut values = headers.get_all(&name).iter();
    let Some(value) = values.next() else {
        // 3. No token at all.
        return Err(Refusal { status: 403, reason: "no token".into(), principal: None, explanation: None });
    };
    if values.next().is_some() {
        return Err(Refusal::unauthorized(format!("several `{name}` headers")));
    }
    let token = bearer(value).map_err(|why| Refusal::unauthorized(format!("`{name}` header: {why}")))?;

    // 4. Signature, issuer, times, audience.
    let audience_ok = |aud: &str| route.audiences.iter().any(|a| a == aud) || aud == GCLOUD_CLIENT_ID;
    let claims = verifier.verify(token, audience_ok, now).map_err(|r| Refusal::unauthorized(r.to_string()))?;

    // 5. Who is calling.
    let principal = match &claims.email {
        Some(email) if email.ends_with(".gserviceaccount.com") => Principal::ServiceAccount(email.clone()),
        Some(email) => Principal::User(email.clone()),
        None => {
            resolve(&claims.sub).ok_or_else(|| Refusal::unauthorized("token has no email and an unknown subject"))?
        }
    };

    // 6. IAM.
    let decision = iam::decide(iam, &principal, INVOKE_PERMISSION, &route.resource, now);
    if !decision.granted {
        let explanation = serde_json::to_value(decision.explanation()).ok();
        return Err(Refusal {
            status: 403,
            reason: format!("`{}` lacks `{INVOKE_PERMISSION}` on `{}`", principal.member(), route.resource),
            principal: Some(principal),
            explanation,
        });
    }

    // The token the instance sees: without its signature for X-Serverless-Authorization and gcloud user tokens.
    let rewrite =
        (serverless || claims.aud == GCLOUD_CLIENT_ID).then(|| Rewrite { header: name, value: strip_signature(token) });
    Ok(Admitted { principal: Some(principal), rewrite })
}

/// The single token of a `Bearer` value (scheme case-insensitive).
fn bearer(value: &HeaderValue) -> Result<&str, &'static str> {
    let value = value.to_str().map_err(|_| "not visible ASCII")?.trim();
    let (scheme, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err("the scheme is not `Bearer`");
    }
    let token = rest.trim();
    if token.is_empty() {
        return Err("no token after `Bearer`");
    }
    if token.bytes().any(|b| b == b',' || b == b' ' || b == b'\t') {
        return Err("several tokens in one header");
    }
    Ok(token)
}

/// `Bearer header.payload.SIGNATURE_REMOVED_BY_GOOGLE`.
fn strip_signature(token: &str) -> HeaderValue {
    let signed = token.rfind('.').map_or(token, |i| &token[..i]);
    let mut v = String::with_capacity(7 + signed.len() + 1 + SIGNATURE_REMOVED.len());
    v.push_str("Bearer ");
    v.push_str(signed);
    v.push('.');
    v.push_str(SIGNATURE_REMOVED);
    // INVARIANT: built from a value that was a valid header, plus ASCII.
    HeaderValue::from_str(&v).expect("INVARIANT: a header value minus its tail is a header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_values() {
        let ok = |s: &str| bearer(&HeaderValue::from_str(s).unwrap()).map(str::to_owned);
        assert_eq!(ok("Bearer a.b.c"), Ok("a.b.c".to_owned()));
        assert_eq!(ok("bearer   a.b.c "), Ok("a.b.c".to_owned()));
        assert_eq!(ok("BEARER a.b.c"), Ok("a.b.c".to_owned()));
        assert!(ok("Bearer a,b").is_err());
        assert!(ok("Bearer a b").is_err());
        assert!(ok("Bearer").is_err());
        assert!(ok("Basic dXNlcjpwYXNz").is_err());
        assert!(ok("a.b.c").is_err());
    }

    #[test]
    fn strips_the_signature() {
        assert_eq!(strip_signature("h.p.sig"), "Bearer h.p.SIGNATURE_REMOVED_BY_GOOGLE");
    }
}
