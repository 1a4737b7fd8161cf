//! The issuer's published keys: the newest signs, older ones stay published until every token they signed has
//! expired, then [`KeyRing::prune`] drops them. Also the JWKS (`/oauth2/v3/certs`) and PEM-certificate
//! (`/oauth2/v1/certs`) documents and the persisted form of the ring.
//!
//! Must not: read the clock (time is passed in) or touch files (persistence is bytes the caller writes, mode 0600).

use std::borrow::Cow;
use std::io;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::idtoken::{IdClaims, Verifier};
use crate::keys::{KeyError, SigningKey};
use crate::unix_secs;

/// Lifetime of an ID token, as Google's (`exp - iat`).
pub const ID_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Tolerance for clocks that run ahead of ours (`iat`, `nbf`), and the extra time a retired key stays published.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// Tag of the persisted format, checked on load.
const FORMAT: &str = "gatehouse-keyring/v1";

/// The issuer's signing keys, newest last; the newest is the active one.
pub struct KeyRing {
    /// INVARIANT: non-empty; ordered by creation; only the last key has `retired_at == None`.
    keys: Vec<SigningKey>,
}

impl KeyRing {
    /// A ring with one fresh key.
    pub fn generate(now: SystemTime) -> Result<KeyRing, KeyError> {
        Ok(KeyRing { keys: vec![SigningKey::generate(now)?] })
    }

    /// The key that signs new tokens.
    pub fn active(&self) -> &SigningKey {
        self.keys.last().expect("INVARIANT: a key ring is never empty")
    }

    /// Every published key, oldest first.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// Makes a fresh key active; the previous one is retired at `now` and stays published until [`KeyRing::prune`].
    pub fn rotate(&mut self, now: SystemTime) -> Result<(), KeyError> {
        let fresh = SigningKey::generate(now)?;
        let at = unix_secs(now);
        for key in &mut self.keys {
            key.retire(at);
        }
        self.keys.push(fresh);
        Ok(())
    }

    /// Rotates when the active key is at least `period` old; says whether it did.
    pub fn rotate_if_due(&mut self, now: SystemTime, period: Duration) -> Result<bool, KeyError> {
        let due = unix_secs(now).saturating_sub(self.active().created_at()) >= period.as_secs();
        if due {
            self.rotate(now)?;
        }
        Ok(due)
    }

    /// Drops retired keys once every token they signed has expired (`retired_at + ID_TOKEN_LIFETIME + CLOCK_SKEW <
    /// now`); returns how many were dropped. The active key is never dropped.
    pub fn prune(&mut self, now: SystemTime) -> usize {
        let now = unix_secs(now);
        let keep_for = ID_TOKEN_LIFETIME.as_secs() + CLOCK_SKEW.as_secs();
        let before = self.keys.len();
        self.keys.retain(|k| k.retired_at().is_none_or(|r| r.saturating_add(keep_for) >= now));
        before - self.keys.len()
    }

    /// The JWKS document: `{"keys":[{"kty":"RSA","alg":"RS256","use":"sig","kid":…,"n":…,"e":…}, …]}`.
    pub fn jwks(&self) -> serde_json::Value {
        serde_json::json!({ "keys": self.keys.iter().map(SigningKey::jwk).collect::<Vec<_>>() })
    }

    /// The PEM-certificate map: `{"<kid>": "-----BEGIN CERTIFICATE-----\n…-----END CERTIFICATE-----\n", …}`.
    pub fn pem_certs(&self) -> serde_json::Value {
        let map = self.keys.iter().map(|k| (k.kid().to_owned(), serde_json::Value::from(k.cert_pem()))).collect();
        serde_json::Value::Object(map)
    }

    /// Signs `claims` with the active key: header `{"alg":"RS256","kid":…,"typ":"JWT"}`.
    pub fn sign(&self, claims: &IdClaims) -> Result<String, KeyError> {
        let key = self.active();
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Claims(e.to_string()))?;
        let header = key.header_b64();
        let mut token = String::with_capacity(header.len() + 2 + payload.len() * 4 / 3 + 4 + 344);
        token.push_str(header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = key.sign_rs256(token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, &mut token);
        Ok(token)
    }

    /// The persisted form: JSON with each key's PKCS#8 (base64 of the DER), certificate PEM and timestamps. Secret;
    /// the caller stores it with mode 0600. The buffer is sized before writing so no partial copy is left behind.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let secrets: Vec<Zeroizing<String>> =
            self.keys.iter().map(|k| Zeroizing::new(STANDARD.encode(k.pkcs8()))).collect();
        let doc = Persisted {
            format: FORMAT.into(),
            keys: self
                .keys
                .iter()
                .zip(&secrets)
                .map(|(k, secret)| PersistedKey {
                    kid: k.kid().into(),
                    created_at: k.created_at(),
                    retired_at: k.retired_at(),
                    private_key_pkcs8: Secret(secret.as_str()),
                    certificate: k.cert_pem().into(),
                })
                .collect(),
        };
        let mut counter = Counter(0);
        serde_json::to_writer_pretty(&mut counter, &doc).expect("INVARIANT: the key ring always serializes");
        let mut out = Zeroizing::new(Vec::with_capacity(counter.0));
        serde_json::to_writer_pretty(&mut *out, &doc).expect("INVARIANT: the key ring always serializes");
        out
    }

    /// Loads what [`KeyRing::to_bytes`] wrote, checking every key; a damaged file is an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<KeyRing, KeyError> {
        let doc: Persisted<'_> =
            serde_json::from_slice(bytes).map_err(|e| KeyError::Corrupt(format!("not a key ring document: {e}")))?;
        if doc.format != FORMAT {
            return Err(KeyError::Corrupt(format!(
                "unsupported format `{}`; expected `{FORMAT}`",
                crate::idtoken::truncate(&doc.format, 64)
            )));
        }
        if doc.keys.is_empty() {
            return Err(KeyError::Corrupt("it holds no key".into()));
        }
        let last = doc.keys.len() - 1;
        let mut keys: Vec<SigningKey> = Vec::with_capacity(doc.keys.len());
        for (i, k) in doc.keys.into_iter().enumerate() {
            let kid = crate::idtoken::truncate(&k.kid, 64).into_owned();
            let mut pkcs8 = Zeroizing::new(Vec::with_capacity(k.private_key_pkcs8.0.len() / 4 * 3 + 3));
            STANDARD
                .decode_vec(k.private_key_pkcs8.0, &mut pkcs8)
                .map_err(|_| KeyError::Corrupt(format!("key `{kid}`: private key is not base64")))?;
            let key = SigningKey::load(&k.kid, pkcs8, k.certificate.into_owned(), k.created_at, k.retired_at)?;
            if (i == last) != key.retired_at().is_none() {
                return Err(KeyError::Corrupt(format!(
                    "key `{kid}`: only the newest key may be active, and it must be active"
                )));
            }
            if let Some(prev) = keys.last() {
                if prev.created_at() > key.created_at() {
                    return Err(KeyError::Corrupt(format!("key `{kid}`: keys are not in creation order")));
                }
            }
            if keys.iter().any(|p| p.kid() == key.kid()) {
                return Err(KeyError::Corrupt(format!("key `{kid}` appears twice")));
            }
            keys.push(key);
        }
        Ok(KeyRing { keys })
    }

    /// A verifier for tokens of `issuer` that knows the public half of every published key.
    pub fn verifier(&self, issuer: &str) -> Verifier {
        Verifier::new(issuer, self.keys.iter().map(|k| (k.kid().to_owned(), k.public().clone())).collect())
    }
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("keys", &self.keys).finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Persisted<'a> {
    #[serde(borrow)]
    format: Cow<'a, str>,
    #[serde(borrow)]
    keys: Vec<PersistedKey<'a>>,
}

#[derive(Serialize, Deserialize)]
struct PersistedKey<'a> {
    #[serde(borrow)]
    kid: Cow<'a, str>,
    created_at: u64,
    retired_at: Option<u64>,
    #[serde(borrow)]
    private_key_pkcs8: Secret<'a>,
    #[serde(borrow)]
    certificate: Cow<'a, str>,
}

/// A secret string borrowed straight from the input (no copy to zeroize); its errors never echo the value.
struct Secret<'a>(&'a str);

impl Serialize for Secret<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0)
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Secret<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Secret<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("base64 text")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Secret(v))
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
                Err(E::custom("private key must be plain base64 without escapes"))
            }
        }
        d.deserialize_str(V)
    }
}

/// Counts bytes so the output buffer can be allocated once, at its final size.
struct Counter(usize);

impl io::Write for Counter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
