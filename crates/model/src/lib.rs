//! Shared vocabulary of Gatehouse: resource names, IAM members and policies, and the error type every API answers with.
//!
//! Architecture Invariant: this crate is pure. It does no I/O, reads no clock and holds no secret.

#![forbid(unsafe_code)]

pub mod error;
pub mod html;
pub mod ingress;
pub mod member;
pub mod names;
pub mod policy;

pub use error::{ApiError, Cause, Code};
pub use member::{Member, MemberError};
pub use policy::{Binding, Expr, Policy};
