//! The control plane's Google-shaped REST APIs: Resource Manager, IAM v1, Cloud Identity groups, Policy Troubleshooter,
//! Cloud Logging (audit entries), Secret Manager v1, and the OAuth token endpoint the CLI and client libraries refresh
//! against.
//!
//! Every handler authenticates its caller ([`auth`]), asks [`iam::decide`] for every permission it needs (through
//! [`App::authorize`]), and records every mutation and every denial in the audit chain ([`audit_trail`]).
//!
//! API boundary: the paths, verbs, bodies and errors here are Google's; the `gatehouse` CLI is only a client of them.
//! Architecture Invariant: no handler compares role names; access is decided only by `iam::decide`.

#![forbid(unsafe_code)]

mod audit_trail;
pub mod auth;
mod bootstrap;
pub mod compute_instances;
mod credentials;
mod groups;
mod http;
pub mod issuer;
mod json_body;
mod logging;
mod oauth;
mod paging;
mod policy;
mod projects;
mod roles;
pub mod run;
mod secret_manager;
mod service_accounts;
mod state;
mod troubleshoot;
mod vpc;

pub use bootstrap::{bootstrap, Bootstrap, BootstrapOptions, OPERATOR};
pub use http::router;
pub use issuer::{Issuer, DEFAULT_ISSUER};
pub use state::App;
