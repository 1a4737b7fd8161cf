//! The platform's OIDC issuer as the API serves it: the signing keys (kept in `$GATEHOUSE_HOME`, mode 0600), their
//! rotation, the discovery document, JWKS and PEM certificates, and the verifier the gateway reads.
//!
//! The keys themselves never leave the `tokens` crate: this module only persists the bytes `tokens` hands it.

use arc_swap::ArcSwap;
use model::ApiError;
use serde_json::{json, Value};
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokens::{CachingVerifier, IdClaims, KeyRing};

/// Google's issuer, the default: `verify_oauth2_token` and most verifiers insist on it.
pub const DEFAULT_ISSUER: &str = "https://accounts.google.com";
/// Verified tokens the gateway remembers.
const VERIFIED_CACHE_CAPACITY: usize = 16_384;

pub struct Issuer {
    url: String,
    keys_path: PathBuf,
    rotation: Duration,
    ring: Mutex<KeyRing>,
    verifier: ArcSwap<CachingVerifier>,
    jwks: ArcSwap<Value>,
    certs: ArcSwap<Value>,
}

impl Issuer {
    /// Loads the keys at `keys_path`, or creates them on first start; rotates if the active key is due.
    pub fn open(keys_path: &Path, url: &str, rotation: Duration, now: SystemTime) -> Result<Issuer, String> {
        let ring = match fs::read(keys_path) {
            Ok(bytes) => KeyRing::from_bytes(&bytes)
                .map_err(|e| format!("cannot load signing keys from `{}`: {e}", keys_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                KeyRing::generate(now).map_err(|e| format!("cannot create signing keys: {e}"))?
            }
            Err(e) => return Err(format!("cannot read `{}`: {e}", keys_path.display())),
        };
        let issuer = Issuer {
            url: url.to_owned(),
            keys_path: keys_path.to_owned(),
            rotation,
            verifier: ArcSwap::from_pointee(CachingVerifier::new(ring.verifier(url), VERIFIED_CACHE_CAPACITY)),
            jwks: ArcSwap::from_pointee(ring.jwks()),
            certs: ArcSwap::from_pointee(ring.pem_certs()),
            ring: Mutex::new(ring),
        };
        issuer.maintain(now).map_err(|e| e.message)?;
        issuer.persist(&issuer.ring.lock().unwrap_or_else(|p| p.into_inner()))?;
        Ok(issuer)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Signs `claims` with the active key.
    pub fn sign(&self, claims: &IdClaims) -> Result<String, ApiError> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.sign(claims).map_err(|e| ApiError::internal(format!("cannot sign the token: {e}")))
    }

    /// Rotates now: a new active key; the old one stays published until its tokens have expired.
    pub fn rotate(&self, now: SystemTime) -> Result<String, ApiError> {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.rotate(now).map_err(|e| ApiError::internal(format!("cannot create a signing key: {e}")))?;
        ring.prune(now);
        self.publish(&ring)?;
        Ok(ring.active().kid().to_owned())
    }

    /// Scheduled upkeep: rotate when the active key is older than the rotation period, drop keys whose tokens
    /// have all expired. Returns whether anything changed.
    pub fn maintain(&self, now: SystemTime) -> Result<bool, ApiError> {
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        let rotated = ring
            .rotate_if_due(now, self.rotation)
            .map_err(|e| ApiError::internal(format!("cannot create a signing key: {e}")))?;
        let pruned = ring.prune(now) > 0;
        if rotated || pruned {
            self.publish(&ring)?;
        }
        Ok(rotated || pruned)
    }

    fn publish(&self, ring: &KeyRing) -> Result<(), ApiError> {
        self.persist(ring).map_err(ApiError::internal)?;
        self.verifier.store(Arc::new(CachingVerifier::new(ring.verifier(&self.url), VERIFIED_CACHE_CAPACITY)));
        self.jwks.store(Arc::new(ring.jwks()));
        self.certs.store(Arc::new(ring.pem_certs()));
        Ok(())
    }

    /// Writes the key ring atomically with mode 0600.
    fn persist(&self, ring: &KeyRing) -> Result<(), String> {
        let tmp = self.keys_path.with_extension("tmp");
        let bytes = ring.to_bytes();
        let write = || -> std::io::Result<()> {
            let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &self.keys_path)
        };
        write().map_err(|e| format!("cannot write signing keys to `{}`: {e}", self.keys_path.display()))
    }

    /// The verifier for ID tokens of this issuer (swapped when keys change).
    pub fn verifier(&self) -> Arc<CachingVerifier> {
        self.verifier.load_full()
    }

    pub fn jwks(&self) -> Arc<Value> {
        self.jwks.load_full()
    }

    pub fn pem_certs(&self) -> Arc<Value> {
        self.certs.load_full()
    }

    /// The OpenID discovery document, with endpoints on `base` (the URL the caller reached the API at).
    pub fn discovery(&self, base: &str) -> Value {
        json!({
            "issuer": self.url,
            "jwks_uri": format!("{base}/oauth2/v3/certs"),
            "token_endpoint": format!("{base}/token"),
            "revocation_endpoint": format!("{base}/revoke"),
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": ["aud", "azp", "email", "email_verified", "exp", "iat", "iss", "sub"],
            "grant_types_supported": ["refresh_token"],
        })
    }
}
