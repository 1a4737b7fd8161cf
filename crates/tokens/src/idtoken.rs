//! Google-shaped ID tokens: the claims ([`IdClaims`]), and the verifier ([`Verifier`]) the gateway runs on every
//! request, with a typed reason ([`Rejection`]) for each way a token can fail.
//!
//! The verifier parses the header once, by hand, so it can name every rejection (`alg: none`, HMAC, other
//! algorithms) and never hands an algorithm choice to the token: only RS256 against a prebuilt public key per kid is
//! ever tried. Must not: hold private keys, read the clock, or echo a whole token in a message.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::signature::ParsedPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::keyring::{CLOCK_SKEW, ID_TOKEN_LIFETIME};
use crate::unix_secs;

/// Longest token the verifier looks at. Google's ID tokens are about 1 KiB; this bounds the work an attacker can ask
/// for before the signature check.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Longest piece of caller input quoted back in a rejection message.
const MAX_QUOTE: usize = 200;

/// The claims of an ID token. Serialized in Google's (alphabetical) order; absent optional claims are left out.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct IdClaims {
    pub aud: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub azp: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub email_verified: Option<bool>,
    pub exp: u64,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub google: Option<serde_json::Value>,
    pub iat: u64,
    pub iss: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub nbf: Option<u64>,
    pub sub: String,
}

impl IdClaims {
    /// Google's service-account token: `sub` = `azp` = the account's unique id, `email` and `email_verified: true`
    /// only when `email` is given (`includeEmail` / metadata `format=full`), `exp = iat + 3600`.
    pub fn for_account(
        issuer: &str,
        audience: &str,
        unique_id: &str,
        email: Option<&str>,
        now: SystemTime,
    ) -> IdClaims {
        let iat = unix_secs(now);
        IdClaims {
            aud: audience.to_owned(),
            azp: Some(unique_id.to_owned()),
            email: email.map(str::to_owned),
            email_verified: email.map(|_| true),
            exp: iat + ID_TOKEN_LIFETIME.as_secs(),
            google: None,
            iat,
            iss: issuer.to_owned(),
            nbf: None,
            sub: unique_id.to_owned(),
        }
    }
}

/// Why a presented token was not accepted. Every variant is the caller's fault (HTTP 401 at the gateway).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejection {
    #[error("token is {bytes} bytes, more than the {MAX_TOKEN_BYTES}-byte limit")]
    TooLarge { bytes: usize },
    #[error("an opaque access token (`ya29.`) was sent where an id token is required")]
    AccessToken,
    #[error("malformed token: {0}")]
    Malformed(String),
    #[error("unsigned token (`alg` is `none`)")]
    AlgNone,
    #[error("symmetric signature algorithms are not accepted; id tokens are signed with `RS256`")]
    SymmetricAlg,
    #[error("unsupported signature algorithm `{0}`; expected `RS256`")]
    UnsupportedAlg(String),
    #[error("token header has no key id (`kid`)")]
    MissingKid,
    #[error("unknown key id `{0}`")]
    UnknownKid(String),
    #[error("token signature does not verify")]
    BadSignature,
    #[error("token expired at {exp} (now {now})")]
    Expired { exp: u64, now: u64 },
    #[error("token issued in the future at {iat} (now {now})")]
    IssuedInFuture { iat: u64, now: u64 },
    #[error("token not valid before {nbf} (now {now})")]
    NotYetValid { nbf: u64, now: u64 },
    #[error("token issuer `{got}` is not trusted")]
    WrongIssuer { got: String },
    #[error("token audience `{got}` does not match")]
    WrongAudience { got: String },
    #[error("token has no `{0}` claim")]
    MissingClaim(&'static str),
}

/// Checks RS256 ID tokens of one issuer against the public halves of its published keys.
#[derive(Clone)]
pub struct Verifier {
    issuer: String,
    /// A handful of keys: a linear scan beats hashing the kid.
    keys: Vec<(String, ParsedPublicKey)>,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = self.keys.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("Verifier").field("issuer", &self.issuer).field("kids", &kids).finish()
    }
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Option<Cow<'a, str>>,
    #[serde(borrow)]
    kid: Option<Cow<'a, str>>,
    crit: Option<serde::de::IgnoredAny>,
}

/// The payload as presented: every claim optional, so a missing one gets its own rejection.
#[derive(Deserialize)]
struct RawClaims {
    aud: Option<String>,
    azp: Option<String>,
    email: Option<String>,
    email_verified: Option<bool>,
    exp: Option<u64>,
    google: Option<serde_json::Value>,
    iat: Option<u64>,
    iss: Option<String>,
    nbf: Option<u64>,
    sub: Option<String>,
}

impl Verifier {
    pub(crate) fn new(issuer: &str, keys: Vec<(String, ParsedPublicKey)>) -> Verifier {
        Verifier { issuer: issuer.to_owned(), keys }
    }

    /// The `iss` this verifier requires.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The key ids this verifier knows.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.iter().map(|(k, _)| k.as_str())
    }

    /// Verifies `token`: size ≤ [`MAX_TOKEN_BYTES`]; three base64url segments with JSON header and payload; `alg`
    /// exactly `RS256`; a known `kid`; a valid signature; `iss` equal to the issuer; not expired (`now < exp`, no
    /// leeway: Cloud Run rejects expired tokens); `iat` and `nbf` (if present) no later than `now + CLOCK_SKEW`;
    /// `aud` accepted by `audience_ok` (the caller decides exact match, trailing slash, custom audiences).
    pub fn verify(
        &self,
        token: &str,
        audience_ok: impl Fn(&str) -> bool,
        now: SystemTime,
    ) -> Result<IdClaims, Rejection> {
        let claims = self.verify_signed(token, now)?;
        check_audience(&claims, audience_ok)?;
        Ok(claims)
    }

    /// Everything but the audience; the audience check is last, so `verify` = this + [`check_audience`].
    pub(crate) fn verify_signed(&self, token: &str, now: SystemTime) -> Result<IdClaims, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Rejection::TooLarge { bytes: token.len() });
        }
        if token.is_empty() {
            return Err(malformed("token is empty"));
        }
        if token.starts_with("ya29.") {
            return Err(Rejection::AccessToken);
        }
        let (header_b64, payload_b64, signature_b64) = split3(token)?;

        let header_json = decode_segment(header_b64, "header")?;
        let header: Header<'_> = serde_json::from_slice(&header_json)
            .map_err(|e| malformed(&format!("header is not a json object: {e}")))?;
        let alg = header.alg.ok_or_else(|| malformed("header has no `alg`"))?;
        match alg.as_ref() {
            "RS256" => {}
            a if a.eq_ignore_ascii_case("none") => return Err(Rejection::AlgNone),
            "HS256" | "HS384" | "HS512" => return Err(Rejection::SymmetricAlg),
            a => return Err(Rejection::UnsupportedAlg(truncate(a, MAX_QUOTE).into_owned())),
        }
        if header.crit.is_some() {
            return Err(malformed("header has a `crit` parameter, which this verifier does not support"));
        }
        let kid = header.kid.ok_or(Rejection::MissingKid)?;
        let key = match self.keys.iter().find(|(k, _)| *k == kid) {
            Some((_, key)) => key,
            None => return Err(Rejection::UnknownKid(truncate(&kid, MAX_QUOTE).into_owned())),
        };

        let payload_json = decode_segment(payload_b64, "payload")?;
        let raw: RawClaims = serde_json::from_slice(&payload_json)
            .map_err(|e| malformed(&format!("payload is not a json object of claims: {e}")))?;

        // RSA-2048 … 4096 signatures; anything longer cannot be valid.
        let mut signature = [0u8; 512];
        let len = URL_SAFE_NO_PAD.decode_slice(signature_b64, &mut signature).map_err(|e| match e {
            base64::DecodeSliceError::OutputSliceTooSmall => Rejection::BadSignature,
            base64::DecodeSliceError::DecodeError(_) => malformed("signature is not base64url"),
        })?;
        let message = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        key.verify_sig(message, &signature[..len]).map_err(|_| Rejection::BadSignature)?;

        let claims = IdClaims {
            exp: raw.exp.ok_or(Rejection::MissingClaim("exp"))?,
            iat: raw.iat.ok_or(Rejection::MissingClaim("iat"))?,
            iss: raw.iss.ok_or(Rejection::MissingClaim("iss"))?,
            aud: raw.aud.ok_or(Rejection::MissingClaim("aud"))?,
            sub: raw.sub.ok_or(Rejection::MissingClaim("sub"))?,
            azp: raw.azp,
            email: raw.email,
            email_verified: raw.email_verified,
            google: raw.google,
            nbf: raw.nbf,
        };
        if claims.iss != self.issuer {
            return Err(Rejection::WrongIssuer { got: truncate(&claims.iss, MAX_QUOTE).into_owned() });
        }
        check_times(&claims, now)?;
        Ok(claims)
    }
}

/// `exp`, `iat` and `nbf` against `now`; shared with the cache, which re-checks them on every hit.
pub(crate) fn check_times(claims: &IdClaims, now: SystemTime) -> Result<(), Rejection> {
    let now = unix_secs(now);
    let latest_start = now.saturating_add(CLOCK_SKEW.as_secs());
    if now >= claims.exp {
        return Err(Rejection::Expired { exp: claims.exp, now });
    }
    if claims.iat > latest_start {
        return Err(Rejection::IssuedInFuture { iat: claims.iat, now });
    }
    if let Some(nbf) = claims.nbf.filter(|&nbf| nbf > latest_start) {
        return Err(Rejection::NotYetValid { nbf, now });
    }
    Ok(())
}

pub(crate) fn check_audience(claims: &IdClaims, audience_ok: impl Fn(&str) -> bool) -> Result<(), Rejection> {
    if audience_ok(&claims.aud) {
        Ok(())
    } else {
        Err(Rejection::WrongAudience { got: truncate(&claims.aud, MAX_QUOTE).into_owned() })
    }
}

fn malformed(what: &str) -> Rejection {
    Rejection::Malformed(truncate(what, MAX_QUOTE).into_owned())
}

/// Exactly three dot-separated segments.
fn split3(token: &str) -> Result<(&str, &str, &str), Rejection> {
    let mut parts = token.splitn(4, '.');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(h), Some(p), Some(s), None) => Ok((h, p, s)),
        _ => {
            let segments = token.bytes().filter(|&b| b == b'.').count() + 1;
            Err(malformed(&format!("expected 3 dot-separated segments, found {segments}")))
        }
    }
}

fn decode_segment(segment: &str, name: &str) -> Result<Vec<u8>, Rejection> {
    URL_SAFE_NO_PAD.decode(segment).map_err(|_| malformed(&format!("{name} is not base64url")))
}

/// At most `max` bytes of `s`, cut on a character boundary, with `…` when cut.
pub(crate) fn truncate(s: &str, max: usize) -> Cow<'_, str> {
    if s.len() <= max {
        return Cow::Borrowed(s);
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    Cow::Owned(format!("{}…", &s[..end]))
}
