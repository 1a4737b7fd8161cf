//! Credentials the platform mints: opaque OAuth-style access and refresh tokens, and the OIDC issuer — RSA signing
//! keys with rotation ([`keys`], [`keyring`]), Google-shaped RS256 ID tokens and their verifier ([`idtoken`]), and the
//! gateway's verified-token cache ([`cache`]).
//!
//! Opaque tokens carry 256 random bits, are handed to the caller exactly once and are stored only as a SHA-256 hash,
//! so a copy of the database never yields a usable token.
//!
//! Architecture Invariant: pure — no sockets, no files, no clock reads (time is passed in as `now: SystemTime`;
//! persistence is bytes the caller writes).
//!
//! Architecture Invariant: only this crate ever holds a private signing key. Private key material lives in
//! [`zeroize::Zeroizing`] buffers or inside aws-lc (which cleanses memory it frees), and never appears in `Debug`
//! output or an error message.

#![forbid(unsafe_code)]

pub mod cache;
pub mod idtoken;
pub mod keyring;
pub mod keys;

pub use cache::CachingVerifier;
pub use idtoken::{check_times, IdClaims, Rejection, Verifier, MAX_TOKEN_BYTES};
pub use keyring::{KeyRing, CLOCK_SKEW, ID_TOKEN_LIFETIME};
pub use keys::{KeyError, SigningKey};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use zeroize::Zeroizing;

/// Whole seconds since the Unix epoch; a time before the epoch counts as 0.
pub(crate) fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Lifetime of an access token, as Google's.
pub const ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);
/// Longest lifetime a caller may ask for (`generateAccessToken` without the org-policy extension).
pub const MAX_ACCESS_TOKEN_LIFETIME: Duration = Duration::from_secs(3600);

/// What a token is for; part of its prefix so a token of one kind is never accepted as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `ya29.…`, like Google's OAuth access tokens.
    Access,
    /// `1//…`, like Google's refresh tokens.
    Refresh,
}

impl TokenKind {
    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Access => "ya29.",
            TokenKind::Refresh => "1//",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        }
    }

    /// Which kind a presented token claims to be, by its prefix.
    pub fn of(token: &str) -> Option<TokenKind> {
        [TokenKind::Access, TokenKind::Refresh].into_iter().find(|k| token.starts_with(k.prefix()))
    }
}

/// A freshly minted token: the secret to hand out once, and the hash to store.
pub struct Minted {
    pub secret: Zeroizing<String>,
    pub hash: String,
}

impl std::fmt::Debug for Minted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Minted").field("hash", &self.hash).finish_non_exhaustive()
    }
}

/// Mints an opaque token of `kind` with 256 bits from the operating system's CSPRNG.
pub fn mint(kind: TokenKind) -> Minted {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rand::rngs::OsRng.fill_bytes(bytes.as_mut());
    let secret = Zeroizing::new(format!("{}{}", kind.prefix(), URL_SAFE_NO_PAD.encode(bytes.as_ref())));
    let hash = hash(&secret);
    Minted { secret, hash }
}

/// The stored form of a token: hex SHA-256 of its text.
pub fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Cheap shape check before any lookup: known prefix, bounded length, URL-safe characters only.
pub fn looks_valid(token: &str) -> bool {
    TokenKind::of(token).is_some()
        && token.len() <= 256
        && token.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-/".contains(&b))
}

/// A random decimal id of `digits` digits whose first digit is not zero (project numbers, unique ids).
pub fn random_numeric_id(digits: usize) -> String {
    let mut rng = rand::rngs::OsRng;
    let mut s = String::with_capacity(digits);
    s.push(char::from(b'1' + (rng.next_u32() % 9) as u8));
    for _ in 1..digits {
        s.push(char::from(b'0' + (rng.next_u32() % 10) as u8));
    }
    s
}

/// A random value for etags and ids, from the CSPRNG.
pub fn random_u64() -> u64 {
    rand::rngs::OsRng.next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_distinct_and_hashed() {
        let a = mint(TokenKind::Access);
        let b = mint(TokenKind::Access);
        assert_ne!(*a.secret, *b.secret);
        assert!(a.secret.starts_with("ya29."));
        assert_eq!(a.hash, hash(&a.secret));
        assert_eq!(a.hash.len(), 64);
        assert!(looks_valid(&a.secret));
        assert_eq!(TokenKind::of(&mint(TokenKind::Refresh).secret), Some(TokenKind::Refresh));
        assert!(!format!("{a:?}").contains(a.secret.as_str()));
    }

    #[test]
    fn rejects_malformed_tokens() {
        for t in ["", "Bearer x", "ya29.\u{0}", "abc", &format!("ya29.{}", "a".repeat(300))] {
            assert!(!looks_valid(t), "{t:?}");
        }
    }

    #[test]
    fn numeric_ids_have_the_right_length() {
        for _ in 0..100 {
            let id = random_numeric_id(12);
            assert_eq!(id.len(), 12);
            assert!(!id.starts_with('0'));
        }
    }
}
