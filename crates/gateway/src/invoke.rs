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
//! [`Memo`] keeps a connection's last admission so that its next request with the same credentials costs a
//! comparison instead of steps 1–6, for as long as nothing the admission rests on can have changed (see [`Memo`]).
//!
//! Must not: read the clock (time is passed in), touch the network, or sign anything.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::header::{HeaderName, HeaderValue, AUTHORIZATION};
use http::HeaderMap;
use iam::Principal;
use tokens::{CachingVerifier, IdClaims};

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

/// Where the check reads credentials from: a request's headers, parsed by hyper ([`HeaderMap`]) or raw from the
/// gateway's HTTP/1.1 fast path (httparse's headers). Names compare case-insensitively.
pub trait Credentials {
    /// The first value of the header `name`, and whether there is another one.
    fn first(&self, name: &HeaderName) -> Option<(&[u8], bool)>;
}

impl Credentials for HeaderMap {
    fn first(&self, name: &HeaderName) -> Option<(&[u8], bool)> {
        let mut values = self.get_all(name).iter();
        values.next().map(|v| (v.as_bytes(), values.next().is_some()))
    }
}

impl Credentials for [httparse::Header<'_>] {
    fn first(&self, name: &HeaderName) -> Option<(&[u8], bool)> {
        let mut values = self.iter().filter(|h| h.name.eq_ignore_ascii_case(name.as_str())).map(|h| h.value);
        values.next().map(|v| (v, values.next().is_some()))
    }
}

/// Runs the invocation check for `route` on a request's headers.
// A refusal is the cold path and its fields are the troubleshooter's; boxing it would only cost the callers.
#[allow(clippy::result_large_err)]
pub fn check<H: Credentials + ?Sized>(
    route: &Route,
    headers: &H,
    iam: &iam::Snapshot,
    verifier: &CachingVerifier,
    resolve: impl Fn(&str) -> Option<Principal>,
    now: SystemTime,
) -> Result<Admitted, Refusal> {
    run(route, headers, iam, verifier, resolve, now).map(|(admitted, _)| admitted)
}

/// The last admission on one caller connection (keep-alive clients send the same token request after request).
///
/// [`Memo::check`] answers from it, without steps 1–6, only when all of these hold — each is what the admission
/// rested on:
/// - the same route, IAM snapshot and verifier (`Arc::ptr_eq`: the control plane swaps a new one in on every change
///   of a service, a policy, a group, an account or the signing keys);
/// - the IAM decisions were [stable](iam::Decision::is_stable): no condition, so the time cannot change them;
/// - for a private service: the same header carries byte-for-byte the same single value, the token named its
///   principal by `email` (no lookup), and its times still pass ([`tokens::check_times`] at `now`).
///
/// Refusals are never remembered: they are the cold path, and each must be audited.
#[derive(Default)]
pub struct Memo(Mutex<Option<Remembered>>);

struct Remembered {
    route: Arc<Route>,
    iam: Arc<iam::Snapshot>,
    verifier: Arc<CachingVerifier>,
    reuse: Reuse,
    admitted: Admitted,
}

/// What a stable admission can be reused for.
enum Reuse {
    /// A public service: any request.
    Public,
    /// A private service: a request carrying the same credentials.
    Token { serverless: bool, value: Box<[u8]>, claims: Arc<IdClaims> },
}

impl Memo {
    /// As [`check`], answering from the connection's last admission when it still holds.
    #[allow(clippy::result_large_err)]
    pub fn check<H: Credentials + ?Sized>(
        &self,
        route: &Arc<Route>,
        headers: &H,
        iam: &Arc<iam::Snapshot>,
        verifier: &Arc<CachingVerifier>,
        resolve: impl Fn(&str) -> Option<Principal>,
        now: SystemTime,
    ) -> Result<Admitted, Refusal> {
        let mut last = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = last.as_ref() {
            if Arc::ptr_eq(&r.route, route)
                && Arc::ptr_eq(&r.iam, iam)
                && Arc::ptr_eq(&r.verifier, verifier)
                && r.reuse.covers(headers, now)
            {
                return Ok(r.admitted.clone());
            }
        }
        let (admitted, reuse) = run(route, headers, iam, verifier, resolve, now)?;
        *last = reuse.map(|reuse| Remembered {
            route: Arc::clone(route),
            iam: Arc::clone(iam),
            verifier: Arc::clone(verifier),
            reuse,
            admitted: admitted.clone(),
        });
        Ok(admitted)
    }
}

impl Reuse {
    fn covers<H: Credentials + ?Sized>(&self, headers: &H, now: SystemTime) -> bool {
        match self {
            Reuse::Public => true,
            Reuse::Token { serverless, value, claims } => {
                let (now_serverless, found) = token_header(headers);
                now_serverless == *serverless
                    && found.is_some_and(|(v, more)| v == &value[..] && !more)
                    && tokens::check_times(claims, now).is_ok()
            }
        }
    }
}

/// Steps 1–6; on admission also what the admission may be reused for (`None` when a condition took part, or the
/// principal came from a lookup).
#[allow(clippy::result_large_err)]
fn run<H: Credentials + ?Sized>(
    route: &Route,
    headers: &H,
    iam: &iam::Snapshot,
    verifier: &CachingVerifier,
    resolve: impl Fn(&str) -> Option<Principal>,
    now: SystemTime,
) -> Result<(Admitted, Option<Reuse>), Refusal> {
    // 1. Public services ignore credentials entirely.
    if route.invoker_iam_disabled {
        return Ok((Admitted { principal: None, rewrite: None }, Some(Reuse::Public)));
    }
    let public = iam::decide(iam, &Principal::Anonymous, INVOKE_PERMISSION, &route.resource, now);
    if public.granted {
        return Ok((Admitted { principal: None, rewrite: None }, public.is_stable().then_some(Reuse::Public)));
    }
    let public_stable = public.is_stable();

    // 2. Which header carries the token.
    let (serverless, found) = token_header(headers);
    let name = token_name(serverless);
    let Some((value, more)) = found else {
        // 3. No token at all.
        return Err(Refusal { status: 403, reason: "no token".into(), principal: None, explanation: None });
    };
    if more {
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

    // 6. IAM. A disabled service account's token, still unexpired, acts for nobody (Google: a disabled account
    // "can no longer ... access Google Cloud resources").
    if let Principal::ServiceAccount(email) = &principal {
        if iam.account_disabled(email) {
            return Err(Refusal {
                status: 403,
                reason: format!("service account `{email}` is disabled"),
                principal: Some(principal),
                explanation: None,
            });
        }
    }
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
    let reusable = public_stable && decision.is_stable() && claims.email.is_some();

    // The token the instance sees: without its signature for X-Serverless-Authorization and gcloud user tokens.
    let rewrite = (serverless || claims.aud == GCLOUD_CLIENT_ID)
        .then(|| Rewrite { header: name.clone(), value: strip_signature(token) });
    let reuse = reusable.then(|| Reuse::Token { serverless, value: value.into(), claims });
    Ok((Admitted { principal: Some(principal), rewrite }, reuse))
}

/// Which header carries the token (`true`: `X-Serverless-Authorization`, present), and its first value with whether
/// there is another.
fn token_header<H: Credentials + ?Sized>(headers: &H) -> (bool, Option<(&[u8], bool)>) {
    match headers.first(&X_SERVERLESS_AUTHORIZATION) {
        Some(found) => (true, Some(found)),
        None => (false, headers.first(&AUTHORIZATION)),
    }
}

fn token_name(serverless: bool) -> &'static HeaderName {
    static SERVERLESS: HeaderName = X_SERVERLESS_AUTHORIZATION;
    static PLAIN: HeaderName = AUTHORIZATION;
    if serverless {
        &SERVERLESS
    } else {
        &PLAIN
    }
}

/// The single token of a `Bearer` value (scheme case-insensitive).
fn bearer(value: &[u8]) -> Result<&str, &'static str> {
    // Visible ASCII, spaces and tabs: what `HeaderValue::to_str` accepts.
    if !value.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)) {
        return Err("not visible ASCII");
    }
    let value = std::str::from_utf8(value).map_err(|_| "not visible ASCII")?.trim();
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
        let ok = |s: &str| bearer(s.as_bytes()).map(str::to_owned);
        assert_eq!(ok("Bearer a.b.c"), Ok("a.b.c".to_owned()));
        assert_eq!(ok("bearer   a.b.c "), Ok("a.b.c".to_owned()));
        assert_eq!(ok("BEARER a.b.c"), Ok("a.b.c".to_owned()));
        assert!(ok("Bearer a,b").is_err());
        assert!(ok("Bearer a b").is_err());
        assert!(ok("Bearer").is_err());
        assert!(ok("Basic dXNlcjpwYXNz").is_err());
        assert!(ok("a.b.c").is_err());
        assert_eq!(bearer("Bearer a.\u{e9}.c".as_bytes()), Err("not visible ASCII"));
    }

    #[test]
    fn strips_the_signature() {
        assert_eq!(strip_signature("h.p.sig"), "Bearer h.p.SIGNATURE_REMOVED_BY_GOOGLE");
    }
}
