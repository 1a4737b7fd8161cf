//! Shared fixtures: one key ring per test binary (RSA generation is slow), a fixed clock, and a forger that signs
//! arbitrary headers and payloads with the ring's own private key (read back from its persisted form).
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::RsaEncoding;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde_json::{json, Value};
use tokens::{IdClaims, KeyRing};

pub const ISSUER: &str = "https://accounts.google.com";
pub const AUD: &str = "https://hello-abc123-uc.a.run.app";
pub const UNIQUE_ID: &str = "110481570481807168043";
pub const EMAIL: &str = "hello@local-project.iam.gserviceaccount.com";
pub const T0: u64 = 1_700_000_000;

pub fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// The ring every verification test uses, created at `T0 - 100`.
pub fn ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::generate(at(T0 - 100)).unwrap())
}

/// A second, unrelated ring.
pub fn other_ring() -> &'static KeyRing {
    static RING: OnceLock<KeyRing> = OnceLock::new();
    RING.get_or_init(|| KeyRing::generate(at(T0 - 100)).unwrap())
}

/// Base64 of the active key's PKCS#8 DER, as the persisted form stores it.
pub fn private_key_b64(ring: &KeyRing) -> String {
    let bytes = ring.to_bytes();
    let doc: Value = serde_json::from_slice(&bytes).unwrap();
    let keys = doc["keys"].as_array().unwrap();
    keys.last().unwrap()["private_key_pkcs8"].as_str().unwrap().to_owned()
}

/// Signs anything with a ring's active private key.
pub struct Forger {
    pub key: RsaKeyPair,
    pub kid: String,
}

impl Forger {
    pub fn of(ring: &KeyRing) -> Forger {
        let der = STANDARD.decode(private_key_b64(ring)).unwrap();
        Forger { key: RsaKeyPair::from_pkcs8(&der).unwrap(), kid: ring.active().kid().to_owned() }
    }

    pub fn sign_with(&self, alg: &'static dyn RsaEncoding, header: &Value, payload: &[u8]) -> String {
        let mut msg = format!("{}.{}", b64(header.to_string().as_bytes()), b64(payload));
        let mut sig = vec![0; self.key.public_modulus_len()];
        self.key.sign(alg, &SystemRandom::new(), msg.as_bytes(), &mut sig).unwrap();
        msg.push('.');
        msg.push_str(&b64(&sig));
        msg
    }

    /// RS256 over the given header and JSON payload.
    pub fn sign(&self, header: &Value, payload: &Value) -> String {
        self.sign_with(&aws_lc_rs::signature::RSA_PKCS1_SHA256, header, payload.to_string().as_bytes())
    }

    /// RS256 with the standard header of this key.
    pub fn sign_claims(&self, payload: &Value) -> String {
        self.sign(&json!({"alg": "RS256", "kid": self.kid, "typ": "JWT"}), payload)
    }
}

pub fn forger() -> &'static Forger {
    static F: OnceLock<Forger> = OnceLock::new();
    F.get_or_init(|| Forger::of(ring()))
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Valid claims at `T0` as JSON, for mutation.
pub fn claims_json() -> Value {
    serde_json::to_value(IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, Some(EMAIL), at(T0))).unwrap()
}

/// A token minted by the ring at `T0`.
pub fn minted() -> String {
    ring().sign(&IdClaims::for_account(ISSUER, AUD, UNIQUE_ID, Some(EMAIL), at(T0))).unwrap()
}
