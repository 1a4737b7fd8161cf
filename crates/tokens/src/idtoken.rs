//! Google-shaped ID tokens: the claims ([`IdClaims`]), and the verifier ([`Verifier`]) the gateway runs on every
//! request, with a typed reason ([`Rejection`]) for each way a token can fail.
//!
//! The verifier parses the header once, by hand, so it can name every rejection (`alg: none`, HMAC, other
//! algorithms) and never hands an algorithm choice to the token: only RS256 against a prebuilt public key per kid is
//! ever tried. Must not: hold private keys, read the clock, or echo a whole token in a message.

use std::borrow::Cow;
use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::signature::{ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};

use crate::keyring::{CLOCK_SKEW, ID_TOKEN_LIFETIME};
use crate::keys::KeyError;
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

    /// A verifier for tokens of `issuer` from a published JWKS document (`{"keys":[{"kty":"RSA","kid":…,"n":…,
    /// "e":…}, …]}`, e.g. [`crate::KeyRing::jwks`] or Google's `certs` endpoint). Keys that are not RSA, or are
    /// marked for another use than `sig` or another algorithm than `RS256`, are skipped; an RSA signing key that
    /// cannot be used (no `kid`, bad base64, a modulus under 2048 bits) is an error, and so is a document with no
    /// usable key at all.
    pub fn from_jwks(issuer: &str, jwks: &serde_json::Value) -> Result<Verifier, KeyError> {
        let bad = |what: String| KeyError::Corrupt(format!("jwks: {}", truncate(&what, MAX_QUOTE)));
        let keys =
            jwks.get("keys").and_then(serde_json::Value::as_array).ok_or_else(|| bad("no `keys` array".into()))?;
        let mut parsed: Vec<(String, ParsedPublicKey)> = Vec::with_capacity(keys.len());
        for (i, jwk) in keys.iter().enumerate() {
            let field = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
            if field("kty") != Some("RSA")
                || field("use").is_some_and(|u| u != "sig")
                || field("alg").is_some_and(|a| a != "RS256")
            {
                continue;
            }
            let kid = field("kid").ok_or_else(|| bad(format!("key #{i} has no `kid`")))?;
            let int = |name: &str| {
                let b64 = field(name).ok_or_else(|| bad(format!("key `{kid}` has no `{name}`")))?;
                URL_SAFE_NO_PAD.decode(b64).map_err(|_| bad(format!("key `{kid}`: `{name}` is not base64url")))
            };
            let n = int("n")?;
            let bits = n.iter().skip_while(|&&b| b == 0).count() * 8;
            if !(2048..=8192).contains(&bits) {
                return Err(bad(format!("key `{kid}`: the modulus is not 2048 to 8192 bits")));
            }
            let der = rsa_public_key_der(&n, &int("e")?);
            let key = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &der)
                .map_err(|e| bad(format!("key `{kid}` is not a usable RSA public key: {e}")))?;
            if parsed.iter().any(|(k, _)| k == kid) {
                return Err(bad(format!("key `{kid}` appears twice")));
            }
            parsed.push((kid.to_owned(), key));
        }
        if parsed.is_empty() {
            return Err(bad("no RSA signing key".into()));
        }
        Ok(Verifier::new(issuer, parsed))
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
pub fn check_times(claims: &IdClaims, now: SystemTime) -> Result<(), Rejection> {
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

/// PKCS#1 `RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }` in DER, from big-endian magnitudes.
fn rsa_public_key_der(n: &[u8], e: &[u8]) -> Vec<u8> {
    fn push_len(out: &mut Vec<u8>, len: usize) {
        if len < 0x80 {
            out.push(len as u8);
        } else {
            let bytes = len.to_be_bytes();
            let skip = bytes.iter().take_while(|&&b| b == 0).count();
            out.push(0x80 | (bytes.len() - skip) as u8);
            out.extend_from_slice(&bytes[skip..]);
        }
    }
    fn integer(magnitude: &[u8]) -> Vec<u8> {
        let magnitude = &magnitude[magnitude.iter().take_while(|&&b| b == 0).count()..];
        let pad = magnitude.first().is_none_or(|&b| b & 0x80 != 0);
        let mut out = vec![0x02];
        push_len(&mut out, magnitude.len() + usize::from(pad));
        if pad {
            out.push(0);
        }
        out.extend_from_slice(magnitude);
        out
    }
    let (n, e) = (integer(n), integer(e));
    let mut out = vec![0x30];
    push_len(&mut out, n.len() + e.len());
    out.extend_from_slice(&n);
    out.extend_from_slice(&e);
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyRing;
    use std::time::Duration;

    const ISS: &str = "https://accounts.google.com";
    const AUD: &str = "http://127.0.0.1:28087";

    #[test]
    fn from_jwks_verifies_what_the_ring_signs() {
        let now = SystemTime::now();
        let mut ring = KeyRing::generate(now).unwrap();
        ring.rotate(now).unwrap();
        let mut jwks = ring.jwks();
        // Keys of other types and uses are skipped, not errors.
        jwks["keys"].as_array_mut().unwrap().push(serde_json::json!({"kty": "EC", "kid": "ec", "crv": "P-256"}));
        jwks["keys"].as_array_mut().unwrap().push(serde_json::json!({"kty": "RSA", "use": "enc", "kid": "x"}));
        let verifier = Verifier::from_jwks(ISS, &jwks).unwrap();
        assert_eq!(verifier.kids().count(), 2);
        assert_eq!(verifier.issuer(), ISS);
        let token = ring.sign(&IdClaims::for_account(ISS, AUD, "1", Some("a@p.iam.gserviceaccount.com"), now)).unwrap();
        let claims = verifier.verify(&token, |a| a == AUD, now + Duration::from_secs(1)).unwrap();
        assert_eq!(claims.email.as_deref(), Some("a@p.iam.gserviceaccount.com"));
        // A token of another ring does not verify.
        let other = KeyRing::generate(now).unwrap();
        let forged = other.sign(&IdClaims::for_account(ISS, AUD, "1", None, now)).unwrap();
        assert!(matches!(verifier.verify(&forged, |_| true, now), Err(Rejection::UnknownKid(_))));
    }

    #[test]
    fn from_jwks_rejects_bad_documents() {
        let ring = KeyRing::generate(SystemTime::now()).unwrap();
        let good = ring.jwks()["keys"][0].clone();
        let with = |key: &str, value: serde_json::Value| {
            let mut jwk = good.clone();
            jwk[key] = value;
            serde_json::json!({ "keys": [jwk] })
        };
        let short = URL_SAFE_NO_PAD.encode([0xc5u8; 64]); // a 512-bit modulus
        for bad in [
            serde_json::json!({}),
            serde_json::json!({"keys": "no"}),
            serde_json::json!({"keys": []}),
            serde_json::json!({"keys": [{"kty": "EC", "kid": "ec"}]}),
            with("n", "not base64!".into()),
            with("n", short.into()),
            with("kid", serde_json::Value::Null),
            with("e", serde_json::Value::Null),
            serde_json::json!({ "keys": [good.clone(), good.clone()] }),
        ] {
            assert!(matches!(Verifier::from_jwks(ISS, &bad), Err(KeyError::Corrupt(_))), "{bad}");
        }
    }

    #[test]
    fn der_integers_are_minimal_and_positive() {
        assert_eq!(
            rsa_public_key_der(&[0x80], &[1, 0, 1]),
            vec![0x30, 0x09, 0x02, 0x02, 0x00, 0x80, 0x02, 0x03, 1, 0, 1]
        );
        assert_eq!(rsa_public_key_der(&[0, 0x7f], &[3]), vec![0x30, 0x06, 0x02, 0x01, 0x7f, 0x02, 0x01, 3]);
    }
}
