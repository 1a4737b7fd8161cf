//! Cloud Audit Logs for Gatehouse.
//!
//! This crate owns three things:
//!
//! * [`entry`]: the `LogEntry` / `google.cloud.audit.AuditLog` records, shaped like Google's (PROTOCOL.md §9), and the
//!   [`EntryBuilder`] the API handlers use for every mutating call and every denied call;
//! * [`chain`]: the append-only, tamper-evident hash chain the `store` crate keeps over the serialized entries, and its
//!   verifier;
//! * [`filter`]: the subset of the Cloud Logging query language behind `gatehouse logging read FILTER`.
//!
//! **Architecture Invariant:** the crate is pure. It does no I/O and never reads a clock (time is passed in), so it can
//! never block the request path; persisting rows is the `store` crate's job, building entries is the `api` crate's.
//!
//! **Architecture Invariant:** nothing secret is ever written into an entry. The builder copies whatever `request` and
//! `response` values it is given; callers must redact secret payloads (for example the `payload.data` of
//! `AccessSecretVersion`) before handing them over.
#![forbid(unsafe_code)]

pub mod chain;
pub mod entry;
pub mod filter;

pub use chain::{canonical_bytes, chain_hash, verify, ChainError, MismatchReason, StoredEntry, VerifyReport, GENESIS};
pub use entry::{
    format_timestamp, new_insert_id, AuditLog, AuthenticationInfo, AuthorizationInfo, EntryBuilder, LogEntry, LogKind,
    MonitoredResource, PermissionType, RequestMetadata, ResourceAttributes, Severity, Status,
};
pub use filter::{Filter, FilterError};
