//! Signing keys, rotation, persistence and the claims the issuer mints.

mod common;

use std::time::Duration;

use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use common::*;
use serde_json::Value;
use tokens::{CachingVerifier, IdClaims, KeyError, KeyRing, SigningKey, CLOCK_SKEW, ID_TOKEN_LIFETIME};

#[test]
fn kid_is_sha1_of_the_subject_public_key_info() {
    let key = ring().active();
    assert_eq!(key.kid().len(), 40);
    assert!(key.kid().bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)), "{}", key.kid());
    // The SPKI as the certificate carries it, parsed independently.
    let der = pem_der(key.cert_pem());
    let (_, cert) = x509_parser::parse_x509_certificate(&der).unwrap();
    let spki = cert.tbs_certificate.subject_pki.raw;
    assert_eq!(spki, key.spki_der());
    assert_eq!(key.kid(), hex::encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, spki)));
    assert_ne!(ring().active().kid(), other_ring().active().kid());
}

#[test]
fn generate_stamps_creation_time() {
    let key = SigningKey::generate(at(T0)).unwrap();
    assert_eq!(key.created_at(), T0);
    assert_eq!(key.retired_at(), None);
}

#[test]
fn rotation_keeps_the_old_key_published_until_prune_time() {
    let mut ring = KeyRing::generate(at(T0)).unwrap();
    let first = ring.active().kid().to_owned();
    assert!(!ring.rotate_if_due(at(T0 + 86_399), Duration::from_secs(86_400)).unwrap());
    assert_eq!(ring.keys().len(), 1);
    let rotated_at = T0 + 86_400;
    assert!(ring.rotate_if_due(at(rotated_at), Duration::from_secs(86_400)).unwrap());
    let second = ring.active().kid().to_owned();
    assert_ne!(first, second);
    assert_eq!(ring.keys()[0].retired_at(), Some(rotated_at));
    assert_eq!(ring.active().retired_at(), None);
    assert_eq!(ring.active().created_at(), rotated_at);

    let published = |ring: &KeyRing| -> (Vec<String>, Vec<String>) {
        let jwks: Vec<String> =
            ring.jwks()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        let pem: Vec<String> = ring.pem_certs().as_object().unwrap().keys().cloned().collect();
        (jwks, pem)
    };
    let (jwks, pem) = published(&ring);
    assert_eq!(jwks, [first.clone(), second.clone()]);
    assert!(pem.contains(&first) && pem.contains(&second) && pem.len() == 2);

    let last_moment = rotated_at + ID_TOKEN_LIFETIME.as_secs() + CLOCK_SKEW.as_secs();
    assert_eq!(ring.prune(at(last_moment)), 0, "a token signed just before rotation may still be valid");
    assert_eq!(published(&ring).0.len(), 2);
    assert_eq!(ring.prune(at(last_moment + 1)), 1);
    let (jwks, pem) = published(&ring);
    assert_eq!(jwks, std::slice::from_ref(&second));
    assert_eq!(pem, std::slice::from_ref(&second));
    assert_eq!(ring.prune(at(last_moment + 1_000_000)), 0, "the active key is never pruned");
    assert_eq!(ring.active().kid(), second);
}

#[test]
fn jwks_and_pem_documents_have_googles_shape() {
    let jwks = ring().jwks();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "RSA");
    assert_eq!(key["alg"], "RS256");
    assert_eq!(key["use"], "sig");
    assert_eq!(key["kid"], ring().active().kid());
    assert_eq!(key["e"], "AQAB");
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    assert_eq!(n.len(), 256, "RSA-2048 modulus, no leading zero");
    let pem = ring().pem_certs()[ring().active().kid()].as_str().unwrap().to_owned();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"), "{pem}");
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"), "{pem}");
}

#[test]
fn persistence_round_trips_and_old_tokens_still_verify() {
    let mut ring = KeyRing::generate(at(T0)).unwrap();
    let before_rotation = ring.sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(T0 + 1))).unwrap();
    ring.rotate(at(T0 + 2)).unwrap();
    let after_rotation = ring.sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(T0 + 3))).unwrap();

    let bytes = ring.to_bytes();
    let loaded = KeyRing::from_bytes(&bytes).unwrap();
    assert_eq!(loaded.jwks(), ring.jwks());
    assert_eq!(loaded.pem_certs(), ring.pem_certs());
    for (a, b) in loaded.keys().iter().zip(ring.keys()) {
        assert_eq!((a.kid(), a.created_at(), a.retired_at()), (b.kid(), b.created_at(), b.retired_at()));
    }
    assert_eq!(loaded.keys().len(), 2);
    let v = loaded.verifier(ISSUER);
    assert!(v.verify(&before_rotation, |a| a == AUD, at(T0 + 10)).is_ok());
    assert!(v.verify(&after_rotation, |a| a == AUD, at(T0 + 10)).is_ok());
    // The loaded key signs tokens the original verifier accepts.
    let fresh = loaded.sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(T0 + 4))).unwrap();
    assert!(ring.verifier(ISSUER).verify(&fresh, |a| a == AUD, at(T0 + 10)).is_ok());
    assert_eq!(loaded.to_bytes().as_slice(), bytes.as_slice(), "saving again gives the same bytes");
}

fn edit(bytes: &[u8], f: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut doc: Value = serde_json::from_slice(bytes).unwrap();
    f(&mut doc);
    serde_json::to_vec(&doc).unwrap()
}

#[test]
fn corrupt_key_rings_are_refused_with_a_clear_error() {
    let mut two = KeyRing::generate(at(T0)).unwrap();
    two.rotate(at(T0 + 1)).unwrap();
    let good = two.to_bytes();
    let secret = private_key_b64(&two);
    let other_secret = private_key_b64(other_ring());
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "not a key ring document"),
        ("garbage", b"\x00\xffgarbage".to_vec(), "not a key ring document"),
        ("json but not a ring", b"{\"hello\": 1}".to_vec(), "not a key ring document"),
        ("truncated", good[..good.len() / 2].to_vec(), "not a key ring document"),
        ("wrong format", edit(&good, |d| d["format"] = "v0".into()), "unsupported format `v0`"),
        ("no keys", edit(&good, |d| d["keys"] = Value::Array(vec![])), "holds no key"),
        ("private key not base64", edit(&good, |d| d["keys"][1]["private_key_pkcs8"] = "!!!!".into()), "not base64"),
        (
            "private key not rsa",
            edit(&good, |d| d["keys"][1]["private_key_pkcs8"] = "AAAA".into()),
            "not an rsa pkcs#8 key",
        ),
        (
            "private key of another ring",
            edit(&good, |d| d["keys"][1]["private_key_pkcs8"] = other_secret.clone().into()),
            "key id does not match",
        ),
        ("kid edited", edit(&good, |d| d["keys"][1]["kid"] = "0".repeat(40).into()), "key id does not match"),
        (
            "certificates swapped",
            edit(&good, |d| {
                let c0 = d["keys"][0]["certificate"].take();
                d["keys"][0]["certificate"] = d["keys"][1]["certificate"].take();
                d["keys"][1]["certificate"] = c0;
            }),
            "certificate does not carry",
        ),
        (
            "certificate not pem",
            edit(&good, |d| d["keys"][0]["certificate"] = "hello".into()),
            "certificate is not pem",
        ),
        (
            "newest retired",
            edit(&good, |d| d["keys"][1]["retired_at"] = (T0 + 5).into()),
            "only the newest key may be active",
        ),
        (
            "older active",
            edit(&good, |d| d["keys"][0]["retired_at"] = Value::Null),
            "only the newest key may be active",
        ),
        ("duplicate key", edit(&good, |d| d["keys"][0] = d["keys"][1].clone()), "newest key may be active"),
        (
            "escaped private key",
            String::from_utf8(edit(&good, |d| {
                d["keys"][1]["private_key_pkcs8"] = format!("{}/", &secret[..12]).into()
            }))
            .unwrap()
            .replace('/', "\\/")
            .into_bytes(),
            "without escapes",
        ),
    ];
    for (name, bytes, expect) in cases {
        match KeyRing::from_bytes(&bytes) {
            Ok(_) => panic!("{name}: accepted"),
            Err(e @ KeyError::Corrupt(_)) => {
                let msg = e.to_string();
                assert!(msg.contains(expect), "{name}: {msg}");
                assert!(!msg.contains(&secret[40..80]) && !msg.contains(&other_secret[40..80]), "{name}: {msg}");
            }
            Err(e) => panic!("{name}: {e:?}"),
        }
    }
    // Every single-byte truncation and flip fails cleanly (or, for whitespace, loads the same ring).
    for cut in (0..good.len()).step_by(97) {
        assert!(KeyRing::from_bytes(&good[..cut]).is_err());
    }
    for i in (0..good.len()).step_by(89) {
        let mut flipped = good.to_vec();
        flipped[i] ^= 0x41;
        if let Ok(r) = KeyRing::from_bytes(&flipped) {
            assert_eq!(r.jwks(), two.jwks(), "a flip at {i} loaded a different ring");
        }
    }
}

#[test]
fn debug_output_never_shows_the_private_key() {
    let ring = ring();
    let secret = private_key_b64(ring);
    let slices: Vec<&str> = (0..secret.len() - 40).step_by(200).map(|i| &secret[i..i + 40]).collect();
    let outputs = [
        format!("{ring:?}"),
        format!("{ring:#?}"),
        format!("{:?}", ring.active()),
        format!("{:?}", ring.verifier(ISSUER)),
        format!("{:?}", CachingVerifier::new(ring.verifier(ISSUER), 4)),
    ];
    for out in &outputs {
        assert!(out.contains(ring.active().kid()), "{out}");
        assert!(!out.contains("PRIVATE KEY"), "{out}");
        for s in &slices {
            assert!(!out.contains(s), "{out}");
        }
    }
}

#[test]
fn for_account_mints_googles_claims() {
    let with_email = IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, Some(EMAIL), at(T0));
    assert_eq!(with_email.exp - with_email.iat, 3600);
    assert_eq!(with_email.iat, T0);
    assert_eq!(with_email.sub, UNIQUE_ID);
    assert_eq!(with_email.azp.as_deref(), Some(UNIQUE_ID));
    assert_eq!(with_email.email.as_deref(), Some(EMAIL));
    assert_eq!(with_email.email_verified, Some(true));
    assert_eq!(with_email.iss, ISSUER);
    assert_eq!(with_email.aud, AUD);

    let without = IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(T0));
    assert_eq!((without.email, without.email_verified), (None, None));
    let token = ring().sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, None, at(T0))).unwrap();
    let payload = segment(&token, 1);
    assert!(!payload.contains("email"), "{payload}");
    assert!(!payload.contains("null"), "{payload}");
}

#[test]
fn tokens_have_googles_header_and_claim_order() {
    let token = ring().sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, Some(EMAIL), at(T0))).unwrap();
    assert_eq!(token.split('.').count(), 3);
    let header = segment(&token, 0);
    assert_eq!(header, format!(r#"{{"alg":"RS256","kid":"{}","typ":"JWT"}}"#, ring().active().kid()));
    let payload = segment(&token, 1);
    let order = ["\"aud\"", "\"azp\"", "\"email\"", "\"email_verified\"", "\"exp\"", "\"iat\"", "\"iss\"", "\"sub\""];
    let positions: Vec<usize> =
        order.iter().map(|k| payload.find(k).unwrap_or_else(|| panic!("{k} in {payload}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{payload}");
    // The signature is a full RSA-2048 signature.
    assert_eq!(URL_SAFE_NO_PAD.decode(token.rsplit('.').next().unwrap()).unwrap().len(), 256);
}

fn segment(token: &str, i: usize) -> String {
    String::from_utf8(URL_SAFE_NO_PAD.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
}

fn pem_der(pem: &str) -> Vec<u8> {
    let (_, p) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).unwrap();
    p.contents
}
