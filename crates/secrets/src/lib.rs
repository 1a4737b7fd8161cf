//! Secret Manager building blocks that need no database and no network: envelope encryption of secret versions
//! under the platform's master key ([`crypto`]), the payload rules of `AddSecretVersion` ([`payload`]), and the
//! grammar of `gcloud run deploy --set-secrets / --update-secrets / --remove-secrets` ([`spec`]).
//!
//! Architecture Invariant: pure, except [`MasterKey::load_or_create`] and [`MasterKey::from_file`], which read (and
//! on first start write) the one key file. No sockets, no clock, no logging.
//!
//! Architecture Invariant: secret plaintext and key bytes live only in [`zeroize::Zeroizing`] buffers (or inside
//! aws-lc, which cleanses what it frees) and never appear in `Debug` output or an error message.
//!
//! Dependency note: CRC32C (Castagnoli) comes from the `crc32c` crate, the implementation Google's own Rust client
//! (`google-cloud-storage`) uses for the same checksum; it is small, dual MIT/Apache-2.0, and uses the SSE4.2 / ARMv8
//! CRC instructions with a software fallback. aws-lc-rs has no CRC32C, and a hand-written table would be one more
//! thing to get wrong.

#![forbid(unsafe_code)]

pub mod crypto;
pub mod payload;
pub mod spec;

pub use crypto::{CryptoError, KeyError, MasterKey, Sealed};
pub use payload::{check_payload, crc32c, PayloadError, MAX_PAYLOAD};
pub use spec::{check, parse_keys, parse_mappings, Mapping, SecretRef, SpecError, Target};
