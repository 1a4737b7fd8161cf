//! The verifier's spec as a table: each row is a real minted token, mutated one way, and the verdict it must get.

mod common;

use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA384, RSA_PSS_SHA256,
};
use common::*;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::Duration;
use tokens::{CachingVerifier, IdClaims, KeyRing, Rejection, CLOCK_SKEW, ID_TOKEN_LIFETIME, MAX_TOKEN_BYTES};

/// What a row expects.
#[derive(Debug)]
enum Want {
    Accept,
    Reject(Rejection),
    /// `Malformed` whose message contains this text.
    Malformed(&'static str),
}

fn header(alg: &str) -> Value {
    json!({"alg": alg, "kid": forger().kid, "typ": "JWT"})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

/// Replaces segment `i` of a token.
fn replace_segment(token: &str, i: usize, new: &str) -> String {
    let mut parts: Vec<&str> = token.split('.').collect();
    parts[i] = new;
    parts.join(".")
}

/// A token signed with HMAC, using `secret` (the public key, as an attacker would) as the key.
fn hmac_token(alg: Algorithm, secret: &[u8]) -> String {
    let mut h = Header::new(alg);
    h.kid = Some(forger().kid.clone());
    jsonwebtoken::encode(&h, &claims_json(), &EncodingKey::from_secret(secret)).unwrap()
}

fn es256_token() -> String {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let _ = key.public_key();
    let msg = format!("{}.{}", b64(header("ES256").to_string().as_bytes()), b64(claims_json().to_string().as_bytes()));
    let sig = key.sign(&rng, msg.as_bytes()).unwrap();
    format!("{msg}.{}", b64(sig.as_ref()))
}

fn flip_signature_byte(token: &str) -> String {
    let sig_b64 = token.rsplit('.').next().unwrap();
    let mut sig = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig_b64).unwrap();
    sig[100] ^= 0x01;
    replace_segment(token, 2, &b64(&sig))
}

fn rows() -> Vec<(&'static str, String, Want)> {
    use Want::*;
    let f = forger();
    let good = minted();
    let c = claims_json();
    let spki_pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, ring().active().spki_der())
    );
    let impostor = Forger { key: Forger::of(other_ring()).key, kid: f.kid.clone() };
    let now = T0 + 10;
    vec![
        // Accept cases.
        ("minted token", good.clone(), Accept),
        ("forged with the real key and standard claims", f.sign_claims(&c), Accept),
        ("exp one second ahead", f.sign_claims(&with(c.clone(), "exp", json!(now + 1))), Accept),
        ("iat at the skew limit", f.sign_claims(&with(c.clone(), "iat", json!(now + 300))), Accept),
        ("nbf at the skew limit", f.sign_claims(&with(c.clone(), "nbf", json!(now + 300))), Accept),
        ("nbf in the past", f.sign_claims(&with(c.clone(), "nbf", json!(now - 60))), Accept),
        ("unknown extra claims are ignored", f.sign_claims(&with(c.clone(), "foo", json!({"bar": 1}))), Accept),
        ("header without typ", f.sign(&json!({"alg": "RS256", "kid": f.kid}), &c), Accept),
        // Size and shape.
        ("empty string", String::new(), Malformed("empty")),
        (
            "opaque access token",
            tokens::mint(tokens::TokenKind::Access).secret.to_string(),
            Reject(Rejection::AccessToken),
        ),
        (
            "oversize token",
            format!("{good}{}", "A".repeat(MAX_TOKEN_BYTES + 1 - good.len())),
            Reject(Rejection::TooLarge { bytes: MAX_TOKEN_BYTES + 1 }),
        ),
        ("exactly the size limit is looked at", "A".repeat(MAX_TOKEN_BYTES), Malformed("found 1")),
        ("one segment", "abc".into(), Malformed("found 1")),
        ("two segments", good.rsplit_once('.').unwrap().0.to_owned(), Malformed("found 2")),
        ("four segments", format!("{good}.AAAA"), Malformed("found 4")),
        ("bad base64 in header", replace_segment(&good, 0, "eyJ*bGciOiJ"), Malformed("header is not base64url")),
        ("bad base64 in payload", replace_segment(&good, 1, "eyJ*bGciOiJ"), Malformed("payload is not base64url")),
        ("bad base64 in signature", replace_segment(&good, 2, "a*b"), Malformed("signature is not base64url")),
        (
            "padded base64 header",
            replace_segment(&good, 0, &format!("{}==", good.split('.').next().unwrap())),
            Malformed("header is not base64url"),
        ),
        ("non-json header", replace_segment(&good, 0, &b64(b"not json")), Malformed("header is not a json object")),
        (
            "json array header",
            replace_segment(&good, 0, &b64(b"[\"RS256\"]")),
            Malformed("header is not a json object"),
        ),
        ("header without alg", f.sign(&json!({"kid": f.kid}), &c), Malformed("no `alg`")),
        ("crit header", f.sign(&json!({"alg": "RS256", "kid": f.kid, "crit": ["exp"]}), &c), Malformed("crit")),
        (
            "non-json payload (validly signed)",
            f.sign_with(&aws_lc_rs::signature::RSA_PKCS1_SHA256, &header("RS256"), b"not json"),
            Malformed("payload is not a json object"),
        ),
        ("aud as an array", f.sign_claims(&with(c.clone(), "aud", json!([AUD]))), Malformed("payload")),
        ("exp as a string", f.sign_claims(&with(c.clone(), "exp", json!("soon"))), Malformed("payload")),
        // Algorithms.
        (
            "alg none, unsigned",
            format!("{}.{}.", b64(header("none").to_string().as_bytes()), b64(c.to_string().as_bytes())),
            Reject(Rejection::AlgNone),
        ),
        (
            "alg None, with the real signature",
            replace_segment(&good, 0, &b64(header("None").to_string().as_bytes())),
            Reject(Rejection::AlgNone),
        ),
        (
            "HS256 keyed with the public key PEM",
            hmac_token(Algorithm::HS256, spki_pem.as_bytes()),
            Reject(Rejection::SymmetricAlg),
        ),
        (
            "HS256 keyed with the public key DER",
            hmac_token(Algorithm::HS256, ring().active().spki_der()),
            Reject(Rejection::SymmetricAlg),
        ),
        (
            "HS384 keyed with the certificate",
            hmac_token(Algorithm::HS384, ring().active().cert_pem().as_bytes()),
            Reject(Rejection::SymmetricAlg),
        ),
        (
            "HS512 keyed with the public key PEM",
            hmac_token(Algorithm::HS512, spki_pem.as_bytes()),
            Reject(Rejection::SymmetricAlg),
        ),
        (
            "RS384 really signed",
            f.sign_with(&RSA_PKCS1_SHA384, &header("RS384"), c.to_string().as_bytes()),
            Reject(Rejection::UnsupportedAlg("RS384".into())),
        ),
        (
            "PS256 really signed",
            f.sign_with(&RSA_PSS_SHA256, &header("PS256"), c.to_string().as_bytes()),
            Reject(Rejection::UnsupportedAlg("PS256".into())),
        ),
        ("ES256 really signed", es256_token(), Reject(Rejection::UnsupportedAlg("ES256".into()))),
        (
            "rs256 in lower case",
            replace_segment(&good, 0, &b64(header("rs256").to_string().as_bytes())),
            Reject(Rejection::UnsupportedAlg("rs256".into())),
        ),
        // Keys and signatures.
        ("missing kid", f.sign(&json!({"alg": "RS256", "typ": "JWT"}), &c), Reject(Rejection::MissingKid)),
        (
            "unknown kid",
            f.sign(&json!({"alg": "RS256", "kid": "abc", "typ": "JWT"}), &c),
            Reject(Rejection::UnknownKid("abc".into())),
        ),
        (
            "kid of another ring",
            other_ring().sign(&serde_json::from_value::<IdClaims>(c.clone()).unwrap()).unwrap(),
            Reject(Rejection::UnknownKid(other_ring().active().kid().into())),
        ),
        ("flipped signature byte", flip_signature_byte(&good), Reject(Rejection::BadSignature)),
        ("signature of another key under our kid", impostor.sign_claims(&c), Reject(Rejection::BadSignature)),
        (
            "tampered payload, original signature",
            replace_segment(&good, 1, &b64(with(c.clone(), "aud", json!("https://evil")).to_string().as_bytes())),
            Reject(Rejection::BadSignature),
        ),
        (
            "truncated signature",
            replace_segment(&good, 2, &good.rsplit('.').next().unwrap()[..100]),
            Reject(Rejection::BadSignature),
        ),
        ("empty signature", replace_segment(&good, 2, ""), Reject(Rejection::BadSignature)),
        ("oversized signature", replace_segment(&good, 2, &b64(&[7u8; 600])), Reject(Rejection::BadSignature)),
        // Claims.
        (
            "expired",
            f.sign_claims(&with(with(c.clone(), "iat", json!(now - 7200)), "exp", json!(now - 3600))),
            Reject(Rejection::Expired { exp: now - 3600, now }),
        ),
        (
            "expires exactly now",
            f.sign_claims(&with(c.clone(), "exp", json!(now))),
            Reject(Rejection::Expired { exp: now, now }),
        ),
        (
            "issued more than 5 min in the future",
            f.sign_claims(&with(c.clone(), "iat", json!(now + 301))),
            Reject(Rejection::IssuedInFuture { iat: now + 301, now }),
        ),
        (
            "nbf more than 5 min in the future",
            f.sign_claims(&with(c.clone(), "nbf", json!(now + 301))),
            Reject(Rejection::NotYetValid { nbf: now + 301, now }),
        ),
        (
            "wrong issuer",
            f.sign_claims(&with(c.clone(), "iss", json!("https://evil.example"))),
            Reject(Rejection::WrongIssuer { got: "https://evil.example".into() }),
        ),
        (
            "issuer without scheme",
            f.sign_claims(&with(c.clone(), "iss", json!("accounts.google.com"))),
            Reject(Rejection::WrongIssuer { got: "accounts.google.com".into() }),
        ),
        (
            "wrong audience",
            f.sign_claims(&with(c.clone(), "aud", json!("https://other-xyz-uc.a.run.app"))),
            Reject(Rejection::WrongAudience { got: "https://other-xyz-uc.a.run.app".into() }),
        ),
        ("missing exp", f.sign_claims(&without(c.clone(), "exp")), Reject(Rejection::MissingClaim("exp"))),
        ("null exp", f.sign_claims(&with(c.clone(), "exp", Value::Null)), Reject(Rejection::MissingClaim("exp"))),
        ("missing iat", f.sign_claims(&without(c.clone(), "iat")), Reject(Rejection::MissingClaim("iat"))),
        ("missing iss", f.sign_claims(&without(c.clone(), "iss")), Reject(Rejection::MissingClaim("iss"))),
        ("missing aud", f.sign_claims(&without(c.clone(), "aud")), Reject(Rejection::MissingClaim("aud"))),
        ("missing sub", f.sign_claims(&without(c.clone(), "sub")), Reject(Rejection::MissingClaim("sub"))),
    ]
}

fn check(verdict: Result<IdClaims, Rejection>, want: &Want) -> Result<(), String> {
    match (verdict, want) {
        (Ok(_), Want::Accept) => Ok(()),
        (Err(got), Want::Reject(w)) if got == *w => Ok(()),
        (Err(Rejection::Malformed(m)), Want::Malformed(part)) if m.contains(part) => Ok(()),
        (got, want) => Err(format!("got {got:?}, want {want:?}")),
    }
}

#[test]
fn every_row_of_the_table() {
    let verifier = ring().verifier(ISSUER);
    let caching = CachingVerifier::new(ring().verifier(ISSUER), 1000);
    let now = at(T0 + 10);
    let mut failures = Vec::new();
    for (name, token, want) in rows() {
        // Twice through the cache: once to fill it, once to hit it.
        let verdicts = [
            verifier.verify(&token, |a| a == AUD, now),
            caching.verify(&token, |a| a == AUD, now).map(|c| (*c).clone()),
            caching.verify(&token, |a| a == AUD, now).map(|c| (*c).clone()),
        ];
        for (path, verdict) in ["verifier", "cache miss", "cache hit"].iter().zip(verdicts) {
            if let Err(rejection) = &verdict {
                let message = rejection.to_string();
                if token.len() > 40 && message.contains(&token) {
                    failures.push(format!("{name} ({path}): message echoes the whole token"));
                }
                if message.len() > 400 {
                    failures.push(format!("{name} ({path}): message is {} bytes long", message.len()));
                }
            }
            if let Err(e) = check(verdict, &want) {
                failures.push(format!("{name} ({path}): {e}"));
            }
        }
    }
    assert!(failures.is_empty(), "{} rows failed:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn accepted_claims_are_the_minted_ones() {
    let claims = IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, Some(EMAIL), at(T0));
    let token = ring().sign(&claims).unwrap();
    assert_eq!(ring().verifier(ISSUER).verify(&token, |a| a == AUD, at(T0)).unwrap(), claims);
}

#[test]
fn the_closure_decides_about_trailing_slashes() {
    let verifier = ring().verifier(ISSUER);
    let with_slash = ring().sign(&IdClaims::for_account(ISSUER, &format!("{AUD}/"), UNIQUE_ID, None, at(T0))).unwrap();
    let without_slash = minted();
    let exact = |a: &str| a == AUD;
    let lenient = |a: &str| a.strip_suffix('/').unwrap_or(a) == AUD;
    assert!(verifier.verify(&without_slash, exact, at(T0)).is_ok());
    assert_eq!(verifier.verify(&with_slash, exact, at(T0)), Err(Rejection::WrongAudience { got: format!("{AUD}/") }));
    assert!(verifier.verify(&with_slash, lenient, at(T0)).is_ok());
    assert!(verifier.verify(&without_slash, lenient, at(T0)).is_ok());
}

#[test]
fn a_retired_key_verifies_until_pruned() {
    let t = T0;
    let mut ring = KeyRing::generate(at(t)).unwrap();
    let old = ring.sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(t + 10))).unwrap();
    let old_kid = ring.active().kid().to_owned();
    ring.rotate(at(t + 20)).unwrap();
    let new = ring.sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(t + 30))).unwrap();
    assert_ne!(ring.active().kid(), old_kid);

    let v = ring.verifier(ISSUER);
    assert!(v.verify(&old, |a| a == AUD, at(t + 40)).is_ok(), "retired but published key still verifies");
    assert!(v.verify(&new, |a| a == AUD, at(t + 40)).is_ok());

    let prune_at = t + 20 + ID_TOKEN_LIFETIME.as_secs() + CLOCK_SKEW.as_secs() + 1;
    assert_eq!(ring.prune(at(prune_at)), 1);
    let v = ring.verifier(ISSUER);
    assert_eq!(v.verify(&old, |a| a == AUD, at(t + 40)), Err(Rejection::UnknownKid(old_kid)));
    assert!(v.verify(&new, |a| a == AUD, at(t + 40)).is_ok());
}

#[test]
fn cache_hits_recheck_expiry_and_audience() {
    let caching = CachingVerifier::new(ring().verifier(ISSUER), 10);
    let token = minted();
    let exp = T0 + 3600;
    let first = caching.verify(&token, |a| a == AUD, at(T0)).unwrap();
    assert_eq!(caching.cached(), 1);
    let hit = caching.verify(&token, |a| a == AUD, at(T0 + 5)).unwrap();
    assert!(std::sync::Arc::ptr_eq(&first, &hit), "second call is served from the cache");
    assert_eq!(
        caching.verify(&token, |a| a == "https://other", at(T0 + 5)).unwrap_err().to_string(),
        format!("token audience `{AUD}` does not match")
    );
    assert_eq!(caching.verify(&token, |a| a == AUD, at(exp)), Err(Rejection::Expired { exp, now: exp }));
    assert_eq!(caching.cached(), 0, "an expired entry is dropped");
    // A token rejected for its audience is cached (signature checked) and refused again from the cache.
    let other = CachingVerifier::new(ring().verifier(ISSUER), 10);
    assert!(other.verify(&token, |_| false, at(T0)).is_err());
    assert_eq!(other.cached(), 1);
    // Rejections for anything else are not cached.
    assert!(other.verify(&flip_signature_byte(&token), |a| a == AUD, at(T0)).is_err());
    assert_eq!(other.cached(), 1);
    // Capacity 0 turns the cache off but still verifies.
    let off = CachingVerifier::new(ring().verifier(ISSUER), 0);
    assert!(off.verify(&token, |a| a == AUD, at(T0)).is_ok());
    assert_eq!(off.cached(), 0);
}

#[test]
fn messages_are_short_lowercase_and_quote_input_in_backticks() {
    let cases = [
        (Rejection::Expired { exp: 1_700_000_000, now: 1_700_003_600 }, "token expired at 1700000000 (now 1700003600)"),
        (Rejection::WrongAudience { got: "https://x".into() }, "token audience `https://x` does not match"),
        (Rejection::UnknownKid("abc".into()), "unknown key id `abc`"),
        (Rejection::MissingClaim("exp"), "token has no `exp` claim"),
    ];
    for (r, text) in cases {
        assert_eq!(r.to_string(), text);
    }
    // Long input is cut, never echoed whole.
    let long_kid = "k".repeat(5000);
    let token = forger().sign(&json!({"alg": "RS256", "kid": long_kid}), &claims_json());
    let err = ring().verifier(ISSUER).verify(&token, |_| true, at(T0)).unwrap_err();
    assert!(matches!(err, Rejection::UnknownKid(ref k) if k.len() < 300), "{err:?}");
    assert!(err.to_string().len() < 300);
    let _ = Duration::ZERO;
}
