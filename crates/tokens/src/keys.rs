//! One RSA-2048 signing key of the issuer: its private half (PKCS#8, zeroized on drop), its public half as JWK
//! components and as a self-signed X.509 certificate, its key id and its lifetime stamps.
//!
//! Owns key generation and loading. Must not: log, print or put into an error anything of the private half.
//!
//! Why aws-lc-rs directly rather than `jsonwebtoken::EncodingKey`: jsonwebtoken 10 keeps the key as a plain `Vec<u8>`
//! (not zeroized), clones it and re-parses it on every signature. Holding an `aws_lc_rs::rsa::KeyPair` parses once and
//! keeps the secret inside aws-lc, which cleanses memory it frees.

use std::fmt;
use std::time::SystemTime;

use aws_lc_rs::digest::{digest, SHA1_FOR_LEGACY_USE_ONLY};
use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{KeyPair as _, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use zeroize::Zeroizing;

use crate::unix_secs;

/// How long each key's certificate is valid, from the key's creation.
pub const CERTIFICATE_VALIDITY_SECS: u64 = 10 * 365 * 24 * 3600;

/// Why a key could not be made, used or loaded. Messages never contain private key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate an rsa-2048 signing key")]
    Generate,
    #[error("could not build the certificate of key `{kid}`: {reason}")]
    Certificate { kid: String, reason: String },
    #[error("could not sign with key `{kid}`")]
    Sign { kid: String },
    #[error("could not encode the token claims: {0}")]
    Claims(String),
    /// The persisted key ring is unreadable; the message says which part and why.
    #[error("corrupt key ring: {0}")]
    Corrupt(String),
}

/// An RSA signing key. `Debug` shows only public facts (kid and timestamps).
pub struct SigningKey {
    kid: String,
    /// INVARIANT: the PKCS#8 DER of `key_pair`; only ever written out by `KeyRing::to_bytes`.
    pkcs8: Zeroizing<Vec<u8>>,
    /// The parsed private key, built once (the "cached encoding key").
    key_pair: RsaKeyPair,
    /// The public key, parsed once for verification.
    public: ParsedPublicKey,
    spki_der: Vec<u8>,
    n_b64: String,
    e_b64: String,
    cert_pem: String,
    created_at: u64,
    retired_at: Option<u64>,
    /// base64url of `{"alg":"RS256","kid":"…","typ":"JWT"}`, the first segment of every token this key signs.
    header_b64: String,
}

impl SigningKey {
    /// A fresh RSA-2048 key created at `now`, with its self-signed certificate valid for ten years.
    pub fn generate(now: SystemTime) -> Result<SigningKey, KeyError> {
        let key_pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
        // The aws-lc buffer is zeroized on drop; our copy lives in a Zeroizing buffer of exact size.
        let der = key_pair.as_der().map_err(|_| KeyError::Generate)?;
        let pkcs8 = Zeroizing::new(der.as_ref().to_vec());
        drop(der);
        SigningKey::assemble(key_pair, pkcs8, unix_secs(now), None, None)
    }

    /// Rebuilds a persisted key and checks that its parts agree: the kid is the hash of the key's public half and the
    /// certificate carries that public key.
    pub(crate) fn load(
        kid: &str,
        pkcs8: Zeroizing<Vec<u8>>,
        cert_pem: String,
        created_at: u64,
        retired_at: Option<u64>,
    ) -> Result<SigningKey, KeyError> {
        let corrupt = |what: &str| KeyError::Corrupt(format!("key `{}`: {what}", crate::idtoken::truncate(kid, 64)));
        let key_pair = RsaKeyPair::from_pkcs8(&pkcs8).map_err(|_| corrupt("private key is not an rsa pkcs#8 key"))?;
        let bits = key_pair.public_modulus_len() * 8;
        if !(2048..=4096).contains(&bits) {
            return Err(corrupt(&format!("rsa key has {bits} bits; expected 2048 to 4096")));
        }
        let key = SigningKey::assemble(key_pair, pkcs8, created_at, retired_at, Some(cert_pem))?;
        if key.kid != kid {
            return Err(corrupt(&format!("key id does not match its private key (which hashes to `{}`)", key.kid)));
        }
        let cert_der = pem_body(&key.cert_pem, "CERTIFICATE").ok_or_else(|| corrupt("certificate is not pem"))?;
        // A certificate embeds its SubjectPublicKeyInfo verbatim.
        if !cert_der.windows(key.spki_der.len()).any(|w| w == key.spki_der.as_slice()) {
            return Err(corrupt("certificate does not carry this key's public key"));
        }
        if retired_at.is_some_and(|r| r < created_at) {
            return Err(corrupt("retired before it was created"));
        }
        Ok(key)
    }

    fn assemble(
        key_pair: RsaKeyPair,
        pkcs8: Zeroizing<Vec<u8>>,
        created_at: u64,
        retired_at: Option<u64>,
        cert_pem: Option<String>,
    ) -> Result<SigningKey, KeyError> {
        let public = key_pair.public_key();
        let spki_der = public.as_der().map_err(|_| KeyError::Generate)?.as_ref().to_vec();
        let kid = hex::encode(digest(&SHA1_FOR_LEGACY_USE_ONLY, &spki_der));
        let n_b64 = URL_SAFE_NO_PAD.encode(public.modulus().big_endian_without_leading_zero());
        let e_b64 = URL_SAFE_NO_PAD.encode(public.exponent().big_endian_without_leading_zero());
        let parsed = ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki_der).map_err(|_| KeyError::Generate)?;
        let cert_pem = match cert_pem {
            Some(pem) => pem,
            None => self_signed_certificate(&key_pair, &kid, created_at)?,
        };
        let header = format!(r#"{{"alg":"RS256","kid":"{kid}","typ":"JWT"}}"#);
        let header_b64 = URL_SAFE_NO_PAD.encode(header);
        Ok(SigningKey {
            kid,
            pkcs8,
            key_pair,
            public: parsed,
            spki_der,
            n_b64,
            e_b64,
            cert_pem,
            created_at,
            retired_at,
            header_b64,
        })
    }

    /// The key id: 40 lowercase hex digits, SHA-1 of the DER SubjectPublicKeyInfo.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// When the key was generated, in Unix seconds.
    pub fn created_at(&self) -> u64 {
        self.created_at
    }

    /// When a newer key took over signing, in Unix seconds; `None` for the active key.
    pub fn retired_at(&self) -> Option<u64> {
        self.retired_at
    }

    /// The self-signed X.509 certificate of the public key, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The DER SubjectPublicKeyInfo of the public key.
    pub fn spki_der(&self) -> &[u8] {
        &self.spki_der
    }

    /// The JWK of the public key (`kty`, `alg`, `use`, `kid`, `n`, `e`).
    pub fn jwk(&self) -> serde_json::Value {
        serde_json::json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": self.n_b64,
            "e": self.e_b64,
        })
    }

    pub(crate) fn retire(&mut self, at: u64) {
        self.retired_at.get_or_insert(at);
    }

    pub(crate) fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    pub(crate) fn public(&self) -> &ParsedPublicKey {
        &self.public
    }

    pub(crate) fn header_b64(&self) -> &str {
        &self.header_b64
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 over `message`.
    pub(crate) fn sign_rs256(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let mut signature = vec![0; self.key_pair.public_modulus_len()];
        self.key_pair
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
            .map_err(|_| KeyError::Sign { kid: self.kid.clone() })?;
        Ok(signature)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

/// Signs the certificate with the aws-lc key itself, so rcgen never holds a copy of the private key.
struct CertSigner<'a>(&'a RsaKeyPair);

impl rcgen::PublicKeyData for CertSigner<'_> {
    fn der_bytes(&self) -> &[u8] {
        // The PKCS#1 RSAPublicKey, which rcgen wraps into the SubjectPublicKeyInfo.
        self.0.public_key().as_ref()
    }

    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for CertSigner<'_> {
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, rcgen::Error> {
        let mut signature = vec![0; self.0.public_modulus_len()];
        self.0
            .sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), msg, &mut signature)
            .map_err(|_| rcgen::Error::RemoteKeyError)?;
        Ok(signature)
    }
}

/// A self-signed certificate, CN = kid, valid from `created_at` for [`CERTIFICATE_VALIDITY_SECS`]. google-auth loads
/// these with `cryptography.x509.load_pem_x509_certificate`, so it is a complete v3 certificate.
fn self_signed_certificate(key_pair: &RsaKeyPair, kid: &str, created_at: u64) -> Result<String, KeyError> {
    let fail = |reason: String| KeyError::Certificate { kid: kid.to_owned(), reason };
    let time = |secs: u64| {
        i64::try_from(secs)
            .ok()
            .and_then(|s| time::OffsetDateTime::from_unix_timestamp(s).ok())
            .ok_or_else(|| fail(format!("time {secs} is out of range")))
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(e.to_string()))?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, kid);
    params.not_before = time(created_at)?;
    params.not_after = time(created_at.saturating_add(CERTIFICATE_VALIDITY_SECS))?;
    // A positive 16-byte serial derived from the kid: stable for the key, distinct across keys.
    let mut serial = hex::decode(&kid[..32]).map_err(|e| fail(e.to_string()))?;
    serial[0] &= 0x7f;
    serial[0] |= 0x01;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = false;
    let cert = params.self_signed(&CertSigner(key_pair)).map_err(|e| fail(e.to_string()))?;
    Ok(cert.pem())
}

/// The DER inside a PEM block with the given label, or `None`.
pub(crate) fn pem_body(pem: &str, label: &str) -> Option<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin)? + begin.len();
    let stop = start + pem[start..].find(&end)?;
    let b64: String = pem[start..stop].chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(b64).ok()
}
