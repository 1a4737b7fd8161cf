//! Identity and Access Management for Gatehouse: the role catalogue (predefined and custom roles), compiled
//! policies and groups in an immutable [`Snapshot`], the CEL-subset [`Condition`] language, and [`decide`], which
//! answers "may this principal do this to this resource" with a [`Decision`] that can explain itself in the
//! Policy Troubleshooter shape.
//!
//! Architecture Invariant: this crate is pure. No I/O, no sockets, no files, no clock reads: time is passed in.
//! Architecture Invariant: every access decision in Gatehouse goes through [`decide`]; no caller compares role names.

#![forbid(unsafe_code)]

pub mod condition;
pub mod decide;
pub mod error;
pub mod explain;
pub mod roles;
pub mod rules;
pub mod snapshot;

pub use condition::{Condition, ConditionContext};
pub use decide::{decide, Decision, Principal};
pub use error::IamError;
pub use explain::Explanation;
pub use roles::{Catalogue, Role, RoleStage};
pub use snapshot::{ProjectRef, Snapshot};
