//! The advisor: finds the classic Cloud Run security mistakes (the default service account, secrets in plain env
//! vars, internal services left public, `ingress=internal` taken for authentication, project-wide roles, key files)
//! in a project's state — read live from the platform by the CLI, or from files exported from a real Google Cloud
//! project ([`load`]) — and reports them as text, JSON or SARIF 2.1.0 ([`report`]).
//!
//! Owns: the input model ([`input`]), the rules with their fixed ids ([`rules`]), what "looks like a secret" means
//! ([`detect`]). Must not: change any state, or put a secret value in a finding (evidence names variables and says
//! why, never what). The only I/O is the offline loader reading the export directory.

#![forbid(unsafe_code)]

pub mod detect;
pub mod input;
pub mod invocation;
pub mod load;
pub mod report;
pub mod rules;

pub use input::{Input, ObservedCall, Origin};
pub use report::{Finding, Report, Severity, Skipped};
pub use rules::scan;
