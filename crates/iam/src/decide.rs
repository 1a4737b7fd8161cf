//! The access decision: does this principal hold this permission on this resource, now?
//!
//! Owns: member matching (direct, group, domain, `allUsers`, `allAuthenticatedUsers`), walking the ancestors
//! (resource policy, then project policy) and the compact trace a [`Decision`] keeps.
//!
//! The hot path neither formats strings nor allocates per binding: permissions are interned ids tested against
//! role bitsets, members are interned ids, conditions are pre-parsed. The owned [`Explanation`] and the CLI text are
//! rebuilt lazily, from the same inputs, only when asked (see `explain`).
//!
//! Architecture Invariant: every access decision in Gatehouse goes through [`decide`].

use crate::condition::ConditionContext;
use crate::explain::{self, Explanation};
use crate::snapshot::{CompiledBinding, PrincipalKind, Snapshot};
use std::time::SystemTime;

/// Who is asking.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Principal {
    /// No credentials: only `allUsers` matches.
    Anonymous,
    User(String),
    ServiceAccount(String),
}

impl Principal {
    pub fn email(&self) -> Option<&str> {
        match self {
            Principal::Anonymous => None,
            Principal::User(e) | Principal::ServiceAccount(e) => Some(e),
        }
    }

    /// The member string naming this principal (`user:…`, `serviceAccount:…`), or `allUsers` for anonymous.
    pub fn member(&self) -> String {
        match self {
            Principal::Anonymous => "allUsers".to_owned(),
            Principal::User(e) => format!("user:{e}"),
            Principal::ServiceAccount(e) => format!("serviceAccount:{e}"),
        }
    }
}

/// The outcome of one [`decide`] call. It borrows the snapshot and keeps a compact trace (the inputs in one small
/// buffer and the indices of the granting binding); the explanation is rebuilt from them only when asked.
#[derive(Clone, Debug)]
pub struct Decision<'s> {
    pub granted: bool,
    pub(crate) snapshot: &'s Snapshot,
    query: Query,
    pub(crate) now: SystemTime,
    /// (level, binding) of the first binding that granted.
    granting: Option<(usize, usize)>,
    /// No condition took part: see [`Decision::is_stable`].
    stable: bool,
}

/// The inputs of a decision in one allocation: `permission`, `full_resource_name`, principal email.
#[derive(Clone, Debug)]
struct Query {
    buf: Box<str>,
    permission_end: usize,
    resource_end: usize,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    Anonymous,
    User,
    ServiceAccount,
}

impl Query {
    fn new(principal: &Principal, permission: &str, full_resource_name: &str) -> Query {
        let (kind, email) = match principal {
            Principal::Anonymous => (Kind::Anonymous, ""),
            Principal::User(e) => (Kind::User, e.as_str()),
            Principal::ServiceAccount(e) => (Kind::ServiceAccount, e.as_str()),
        };
        let mut buf = String::with_capacity(permission.len() + full_resource_name.len() + email.len());
        buf.push_str(permission);
        buf.push_str(full_resource_name);
        buf.push_str(email);
        Query {
            buf: buf.into_boxed_str(),
            permission_end: permission.len(),
            resource_end: permission.len() + full_resource_name.len(),
            kind,
        }
    }
}

/// The principal resolved against the snapshot's interned identities (one lookup per decision).
pub(crate) struct Who<'s> {
    pub(crate) authenticated: bool,
    pub(crate) principal: Option<u32>,
    pub(crate) groups: &'s [u32],
    pub(crate) domain: Option<u32>,
}

impl<'s> Who<'s> {
    pub(crate) fn resolve(snapshot: &'s Snapshot, principal: &Principal) -> Who<'s> {
        let (kind, email) = match principal {
            Principal::Anonymous => return Who { authenticated: false, principal: None, groups: &[], domain: None },
            Principal::User(e) => (PrincipalKind::User, e.as_str()),
            Principal::ServiceAccount(e) => (PrincipalKind::ServiceAccount, e.as_str()),
        };
        let id = snapshot.principal_id(kind, email);
        let groups = id.map(|id| snapshot.groups_of(id)).unwrap_or(&[]);
        let domain = email.rsplit_once('@').and_then(|(_, d)| snapshot.domain_id(d));
        Who { authenticated: true, principal: id, groups, domain }
    }

    #[inline]
    pub(crate) fn matches(&self, b: &CompiledBinding) -> bool {
        b.all_users
            || (self.authenticated
                && (b.all_authenticated
                    || self.principal.is_some_and(|p| b.principals.binary_search(&p).is_ok())
                    || self.domain.is_some_and(|d| b.domains.binary_search(&d).is_ok())
                    || (!self.groups.is_empty() && b.groups.iter().any(|g| self.groups.binary_search(g).is_ok()))))
    }
}

/// Decides whether `principal` holds `permission` on `full_resource_name` at time `now`.
///
/// Every level of the resource's ancestry is evaluated (the resource's own policy, then its project's); access is
/// granted when any binding at any level has a role containing the permission, a member matching the principal,
/// and no condition or a condition that is true. An unknown permission is never granted.
pub fn decide<'s>(
    snapshot: &'s Snapshot,
    principal: &Principal,
    permission: &str,
    full_resource_name: &str,
    now: SystemTime,
) -> Decision<'s> {
    let (granting, stable) = find_grant(snapshot, principal, permission, full_resource_name, now);
    Decision {
        granted: granting.is_some(),
        snapshot,
        query: Query::new(principal, permission, full_resource_name),
        now,
        granting,
        stable,
    }
}

fn find_grant(
    snapshot: &Snapshot,
    principal: &Principal,
    permission: &str,
    full_resource_name: &str,
    now: SystemTime,
) -> (Option<(usize, usize)>, bool) {
    let Some(perm) = snapshot.catalogue().permission_id(permission) else { return (None, true) };
    let target = snapshot.target(full_resource_name);
    let mut who: Option<Who> = None;
    let ctx = ConditionContext { now, resource_name: target.relative, resource_type: target.resource_type };
    // A condition on a binding that could grant makes the answer depend on the time.
    let mut stable = true;
    for (li, level) in target.levels[..target.len].iter().enumerate() {
        let Some(policy) = level.policy else { continue };
        for (bi, b) in policy.bindings.iter().enumerate() {
            if !b.perms.contains(perm) {
                continue;
            }
            // Resolve the principal only once a binding could grant the permission.
            let who = who.get_or_insert_with(|| Who::resolve(snapshot, principal));
            if !who.matches(b) {
                continue;
            }
            match &b.condition {
                None => return (Some((li, bi)), true),
                Some(c) => {
                    stable = false;
                    if c.eval(&ctx) {
                        return (Some((li, bi)), false);
                    }
                }
            }
        }
    }
    (None, stable)
}

impl<'s> Decision<'s> {
    pub fn granted(&self) -> bool {
        self.granted
    }

    /// The same question asked of the same snapshot gets the same answer at any time: no condition (the only input
    /// that depends on the time) could have changed it. A grant by an unconditional binding is stable; a grant by a
    /// conditional one is not; a refusal is stable when no conditional binding for the principal was passed over.
    pub fn is_stable(&self) -> bool {
        self.stable
    }

    /// The role of the first binding that granted access.
    pub fn granting_role(&self) -> Option<&'s str> {
        let (li, bi) = self.granting?;
        let snapshot: &'s Snapshot = self.snapshot;
        let target = snapshot.target(self.full_resource_name());
        let policy = target.levels[li].policy?;
        Some(policy.policy.bindings[bi].role.as_str())
    }

    /// The full resource name of the policy whose binding granted access (a project by its id).
    pub fn granting_resource(&self) -> Option<String> {
        let (li, _) = self.granting?;
        let target = self.snapshot.target(self.full_resource_name());
        Some(self.snapshot.level_name(&target.levels[li], self.full_resource_name()).into_owned())
    }

    pub fn principal(&self) -> Principal {
        let email = self.query.buf[self.query.resource_end..].to_owned();
        match self.query.kind {
            Kind::Anonymous => Principal::Anonymous,
            Kind::User => Principal::User(email),
            Kind::ServiceAccount => Principal::ServiceAccount(email),
        }
    }

    pub fn permission(&self) -> &str {
        &self.query.buf[..self.query.permission_end]
    }

    pub fn full_resource_name(&self) -> &str {
        &self.query.buf[self.query.permission_end..self.query.resource_end]
    }

    /// Every policy and binding considered, in the Policy Troubleshooter v1 response shape.
    pub fn explanation(&self) -> Explanation {
        explain::explain(self)
    }

    /// A readable account of the decision for the CLI: every level, every binding, and the verdict.
    pub fn render_text(&self) -> String {
        explain::render_text(self)
    }
}
