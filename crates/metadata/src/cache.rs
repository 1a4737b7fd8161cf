//! Token cache: one slot per key (an audience, or a scope set), each holding the last minted token.
//!
//! A token is served from the cache while it has more than [`REFRESH_MARGIN`] left, so callers never receive a token
//! about to expire. Concurrent misses for the same key coalesce: the first caller mints while holding the slot's
//! async `fill` lock, the others wait on that lock and then find the fresh token. Errors are not cached.
//!
//! The hot path (a fresh hit) takes two uncontended `std` mutexes and clones the token; it never awaits.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use crate::source::{MintedToken, SourceError};

/// A cached token is handed out only while it stays valid for longer than this.
pub const REFRESH_MARGIN: Duration = Duration::from_secs(5 * 60);

/// Above this many keys, slots whose token is stale and that nobody is filling are dropped. The keys come from the
/// instance's own application (audiences, scope sets), so in practice there are a handful.
const MAX_SLOTS: usize = 1024;

#[derive(Default)]
pub(crate) struct TokenCache {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

#[derive(Default)]
struct Slot {
    token: Mutex<Option<MintedToken>>,
    fill: tokio::sync::Mutex<()>,
}

impl Slot {
    fn fresh(&self, now: SystemTime) -> Option<MintedToken> {
        lock(&self.token).as_ref().filter(|t| is_fresh(t, now)).cloned()
    }
}

fn is_fresh(token: &MintedToken, now: SystemTime) -> bool {
    token.expires_at.duration_since(now).is_ok_and(|left| left > REFRESH_MARGIN)
}

/// A poisoned lock only means another request panicked mid-update of an `Option`; the value is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl TokenCache {
    /// The cached token for `key` if fresh, else the result of `mint` (stored on success).
    pub(crate) async fn get_or_mint<F, Fut>(&self, key: &str, mint: F) -> Result<MintedToken, SourceError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<MintedToken, SourceError>>,
    {
        let slot = self.slot(key);
        if let Some(token) = slot.fresh(SystemTime::now()) {
            return Ok(token);
        }
        let _filling = slot.fill.lock().await;
        // Someone else may have filled the slot while we waited for the lock.
        if let Some(token) = slot.fresh(SystemTime::now()) {
            return Ok(token);
        }
        let minted = mint().await?;
        *lock(&slot.token) = Some(minted.clone());
        Ok(minted)
    }

    fn slot(&self, key: &str) -> Arc<Slot> {
        let mut slots = lock(&self.slots);
        if let Some(slot) = slots.get(key) {
            return Arc::clone(slot);
        }
        if slots.len() >= MAX_SLOTS {
            let now = SystemTime::now();
            slots.retain(|_, slot| Arc::strong_count(slot) > 1 || slot.fresh(now).is_some());
        }
        Arc::clone(slots.entry(key.to_string()).or_default())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.slots).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn token(value: &str, valid_for: Duration) -> MintedToken {
        MintedToken { token: value.to_string(), expires_at: SystemTime::now() + valid_for }
    }

    #[tokio::test]
    async fn fresh_tokens_are_reused_and_near_expiry_ones_are_not() {
        let cache = TokenCache::default();
        let calls = AtomicUsize::new(0);
        let mint = |valid_for| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { Ok(token("t", valid_for)) }
        };
        let hour = Duration::from_secs(3600);
        cache.get_or_mint("a", || mint(hour)).await.unwrap();
        cache.get_or_mint("a", || mint(hour)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        let short = REFRESH_MARGIN - Duration::from_secs(1);
        cache.get_or_mint("b", || mint(short)).await.unwrap();
        cache.get_or_mint("b", || mint(short)).await.unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn errors_are_not_cached() {
        let cache = TokenCache::default();
        let err = cache.get_or_mint("a", || async { Err(SourceError::new(403, "denied")) }).await.unwrap_err();
        assert_eq!(err.status, 403);
        let ok = cache.get_or_mint("a", || async { Ok(token("t", Duration::from_secs(3600))) }).await.unwrap();
        assert_eq!(ok.token, "t");
    }

    #[tokio::test]
    async fn stale_slots_are_dropped_when_the_cache_is_full() {
        let cache = TokenCache::default();
        for i in 0..MAX_SLOTS {
            let key = format!("stale-{i}");
            cache.get_or_mint(&key, || async { Ok(token("t", Duration::from_secs(1))) }).await.unwrap();
        }
        cache.get_or_mint("keep", || async { Ok(token("t", Duration::from_secs(3600))) }).await.unwrap();
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn debug_output_does_not_contain_the_token() {
        let shown = format!("{:?}", token("ya29.secret-value", Duration::from_secs(60)));
        assert!(!shown.contains("secret-value"), "{shown}");
    }
}
