//! The gateway's hot path: a bounded cache of tokens whose signature, issuer and times have already been checked.
//!
//! Key: the whole token text (hashed with a per-cache random seed, then compared in full), so a collision can never
//! let one token ride on another's verification. Value: the verified claims behind an `Arc`; a hit allocates nothing.
//! A hit re-checks the times (`exp`, `iat`, `nbf`) against the new `now` and the audience with the caller's closure;
//! the signature and issuer cannot change for the same bytes.
//!
//! Rejections are not cached: a forged token costs one RSA verification each time, and caching them would only let
//! an attacker fill the cache with garbage. Entries are inserted after the signature check but before the audience
//! check, so a valid token presented to the wrong service is refused from the cache next time.
//!
//! Keys do not change in place: when the key ring rotates, build a new `CachingVerifier` and swap it in.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use quick_cache::sync::Cache;

use crate::idtoken::{check_audience, check_times, IdClaims, Rejection, Verifier};

/// A [`Verifier`] with a bounded cache of verified tokens (quick_cache: sharded, S3-FIFO eviction).
pub struct CachingVerifier {
    verifier: Verifier,
    /// `None` when built with capacity 0.
    cache: Option<Cache<Box<str>, Arc<IdClaims>>>,
}

impl CachingVerifier {
    /// Caches up to `capacity` verified tokens; `0` turns the cache off.
    pub fn new(verifier: Verifier, capacity: usize) -> CachingVerifier {
        CachingVerifier { verifier, cache: (capacity > 0).then(|| Cache::new(capacity)) }
    }

    /// As [`Verifier::verify`], answering from the cache when this exact token was verified before.
    pub fn verify(
        &self,
        token: &str,
        audience_ok: impl Fn(&str) -> bool,
        now: SystemTime,
    ) -> Result<Arc<IdClaims>, Rejection> {
        let Some(cache) = &self.cache else {
            return self.verifier.verify(token, audience_ok, now).map(Arc::new);
        };
        if let Some(claims) = cache.get(token) {
            if let Err(rejection) = check_times(&claims, now) {
                if matches!(rejection, Rejection::Expired { .. }) {
                    cache.remove(token);
                }
                return Err(rejection);
            }
            check_audience(&claims, audience_ok)?;
            return Ok(claims);
        }
        let claims = Arc::new(self.verifier.verify_signed(token, now)?);
        cache.insert(token.into(), Arc::clone(&claims));
        check_audience(&claims, audience_ok)?;
        Ok(claims)
    }

    /// The verifier behind the cache.
    pub fn verifier(&self) -> &Verifier {
        &self.verifier
    }

    /// How many verified tokens are cached now.
    pub fn cached(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::len)
    }
}

impl fmt::Debug for CachingVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachingVerifier").field("verifier", &self.verifier).field("cached", &self.cached()).finish()
    }
}
