//! The snapshot: an immutable, compiled, in-memory view of every IAM policy and group that decisions read.
//!
//! Owns: resolving a full resource name to its ancestors (resource, then project), compiling policies at set time
//! (role → permission bitset, members → interned ids, conditions → parsed ASTs) and the group graph.
//! The API rebuilds a snapshot after every write and swaps it in; the decision path only reads.
//!
//! Must not: do I/O or read the clock.

use crate::condition::Condition;
use crate::error::IamError;
use crate::roles::{Catalogue, PermSet};
use model::member::Member;
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, OnceLock};

const PROJECT_SERVICE: &str = "cloudresourcemanager.googleapis.com";

/// A project the snapshot knows, so `projects/NUMBER/…` and `projects/ID/…` name the same thing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProjectRef {
    pub id: String,
    pub number: String,
}

/// A binding compiled for the decision path.
#[derive(Clone, Debug)]
pub(crate) struct CompiledBinding {
    pub(crate) perms: Arc<PermSet>,
    /// Interned `user:` and `serviceAccount:` members, sorted.
    pub(crate) principals: Box<[u32]>,
    /// Interned `group:` members, sorted.
    pub(crate) groups: Box<[u32]>,
    /// Interned `domain:` members, sorted.
    pub(crate) domains: Box<[u32]>,
    pub(crate) all_users: bool,
    pub(crate) all_authenticated: bool,
    pub(crate) condition: Option<Condition>,
}

/// A policy as set, and its compiled bindings (same order, same length).
#[derive(Clone, Debug)]
pub(crate) struct CompiledPolicy {
    pub(crate) policy: model::Policy,
    pub(crate) bindings: Vec<CompiledBinding>,
}

/// Interned identities. Emails and domains are stored lowercase: IAM compares them case-insensitively.
#[derive(Clone, Debug, Default)]
pub(crate) struct Identities {
    users: HashMap<String, u32>,
    service_accounts: HashMap<String, u32>,
    next_principal: u32,
    groups: HashMap<String, u32>,
    pub(crate) group_names: Vec<String>,
    domains: HashMap<String, u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Node {
    Principal(u32),
    Group(u32),
}

/// The resolved target of a decision: which policies apply, in order.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Level<'a> {
    pub(crate) policy: Option<&'a CompiledPolicy>,
    /// Some(index) when this level is a project (its canonical name is built from the project id).
    pub(crate) project: Option<u32>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Target<'a, 'n> {
    pub(crate) levels: [Level<'a>; 2],
    pub(crate) len: usize,
    /// The resource name without `//service/` (what `resource.name` means in a condition).
    pub(crate) relative: &'n str,
    pub(crate) resource_type: &'static str,
}

/// Parsed pieces of a full resource name, borrowed from it.
struct NameParts<'n> {
    service: &'n str,
    relative: &'n str,
    /// The `projects/{key}` segment, if the name starts with one.
    project_key: Option<&'n str>,
    /// The rest after `projects/{key}` (empty for the project itself).
    tail: &'n str,
}

fn split_name(name: &str) -> Option<NameParts<'_>> {
    let rest = name.strip_prefix("//")?;
    let (service, relative) = rest.split_once('/')?;
    let (project_key, tail) = match relative.strip_prefix("projects/") {
        Some(after) => {
            let end = after.find('/').unwrap_or(after.len());
            (Some(&after[..end]), &after[end..])
        }
        None => (None, ""),
    };
    Some(NameParts { service, relative, project_key, tail })
}

/// `resource.type` for the collections Gatehouse serves; empty for others.
fn resource_type(service: &str, relative: &str) -> &'static str {
    let mut segments = relative.rsplit('/');
    let _id = segments.next();
    let collection = segments.next().unwrap_or("");
    match (service, collection) {
        (PROJECT_SERVICE, "projects") => "cloudresourcemanager.googleapis.com/Project",
        ("run.googleapis.com", "services") => "run.googleapis.com/Service",
        ("run.googleapis.com", "jobs") => "run.googleapis.com/Job",
        ("run.googleapis.com", "revisions") => "run.googleapis.com/Revision",
        ("iam.googleapis.com", "serviceAccounts") => "iam.googleapis.com/ServiceAccount",
        ("iam.googleapis.com", "roles") => "iam.googleapis.com/Role",
        ("secretmanager.googleapis.com", "secrets") => "secretmanager.googleapis.com/Secret",
        ("secretmanager.googleapis.com", "versions") => "secretmanager.googleapis.com/SecretVersion",
        ("storage.googleapis.com", "buckets") => "storage.googleapis.com/Bucket",
        ("storage.googleapis.com", "objects") => "storage.googleapis.com/Object",
        ("pubsub.googleapis.com", "topics") => "pubsub.googleapis.com/Topic",
        ("pubsub.googleapis.com", "subscriptions") => "pubsub.googleapis.com/Subscription",
        ("compute.googleapis.com", "networks") => "compute.googleapis.com/Network",
        ("compute.googleapis.com", "subnetworks") => "compute.googleapis.com/Subnetwork",
        ("vpcaccess.googleapis.com", "connectors") => "vpcaccess.googleapis.com/Connector",
        _ => "",
    }
}

/// Lowercases only when needed, so the common all-lowercase email costs no allocation.
pub(crate) fn lower(s: &str) -> Cow<'_, str> {
    if s.bytes().any(|b| b.is_ascii_uppercase()) {
        Cow::Owned(s.to_ascii_lowercase())
    } else {
        Cow::Borrowed(s)
    }
}

/// The compiled IAM state a decision reads.
#[derive(Clone, Debug)]
pub struct Snapshot {
    catalogue: Catalogue,
    projects: Vec<ProjectRef>,
    project_by_key: HashMap<String, u32>,
    project_policies: Vec<Option<CompiledPolicy>>,
    resource_policies: HashMap<String, CompiledPolicy>,
    pub(crate) ids: Identities,
    /// Direct group memberships: member → groups it is in.
    member_of: HashMap<Node, Vec<u32>>,
    /// Transitive groups of each principal, sorted; computed on first use after a change.
    closure: OnceLock<HashMap<u32, Box<[u32]>>>,
    /// Service accounts that are disabled: a token minted before stays valid until it expires, but acts for nobody.
    disabled_accounts: HashSet<String>,
}

impl Snapshot {
    pub fn new(catalogue: Catalogue, projects: Vec<ProjectRef>) -> Snapshot {
        let mut project_by_key = HashMap::new();
        for (i, p) in projects.iter().enumerate() {
            project_by_key.insert(p.number.clone(), i as u32);
        }
        // Ids win over numbers if a string is both.
        for (i, p) in projects.iter().enumerate() {
            project_by_key.insert(p.id.clone(), i as u32);
        }
        let project_policies = vec![None; projects.len()];
        Snapshot {
            catalogue,
            projects,
            project_by_key,
            project_policies,
            resource_policies: HashMap::new(),
            ids: Identities::default(),
            member_of: HashMap::new(),
            closure: OnceLock::new(),
            disabled_accounts: HashSet::new(),
        }
    }

    /// Records that the service account `email` is disabled.
    pub fn disable_account(&mut self, email: &str) {
        self.disabled_accounts.insert(email.to_owned());
    }

    /// Whether the service account `email` is disabled.
    pub fn account_disabled(&self, email: &str) -> bool {
        !self.disabled_accounts.is_empty() && self.disabled_accounts.contains(email)
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Checks a policy as `setIamPolicy` must: its shape (members, version rules), that every role exists
    /// (with a suggestion when it does not) and that every condition is in the supported CEL subset.
    /// A deleted custom role is accepted: the binding stays but grants nothing, as in Google.
    pub fn validate_policy(&self, policy: &model::Policy) -> Result<(), IamError> {
        policy.validate().map_err(|e| IamError::InvalidPolicy(e.0))?;
        for binding in &policy.bindings {
            self.catalogue.check_role_exists(&binding.role)?;
            if let Some(expr) = &binding.condition {
                Condition::parse(&expr.expression)?;
            }
        }
        Ok(())
    }

    /// Validates `policy`, compiles it and attaches it to `full_resource_name`, replacing any previous policy.
    pub fn set_policy(&mut self, full_resource_name: &str, policy: &model::Policy) -> Result<(), IamError> {
        self.validate_policy(policy)?;
        let mut bindings = Vec::with_capacity(policy.bindings.len());
        for b in &policy.bindings {
            bindings.push(self.compile_binding(b)?);
        }
        let compiled = CompiledPolicy { policy: policy.clone(), bindings };
        match self.locate(full_resource_name) {
            Location::Project(i) => self.project_policies[i as usize] = Some(compiled),
            Location::Resource(key) => {
                self.resource_policies.insert(key.into_owned(), compiled);
            }
        }
        Ok(())
    }

    /// The policy set on exactly this resource (not inherited ones).
    pub fn policy(&self, full_resource_name: &str) -> Option<&model::Policy> {
        match self.locate(full_resource_name) {
            Location::Project(i) => self.project_policies[i as usize].as_ref(),
            Location::Resource(key) => self.resource_policies.get(key.as_ref()),
        }
        .map(|c| &c.policy)
    }

    /// Records that `member` (`user:`, `serviceAccount:` or `group:`) belongs to `group_email`.
    /// Other member kinds cannot be group members and are ignored.
    pub fn add_group_member(&mut self, group_email: &str, member: &str) {
        let group = self.ids.group(group_email);
        let node = match Member::parse(member) {
            Ok(Member::User(e)) => Node::Principal(self.ids.user(&e)),
            Ok(Member::ServiceAccount(e)) => Node::Principal(self.ids.service_account(&e)),
            Ok(Member::Group(e)) => Node::Group(self.ids.group(&e)),
            _ => return,
        };
        let groups = self.member_of.entry(node).or_default();
        if !groups.contains(&group) {
            groups.push(group);
            self.closure = OnceLock::new();
        }
    }

    /// The resource itself, then its project (by id), when the project is known: the policies a decision reads.
    pub fn ancestors(&self, full_resource_name: &str) -> Vec<String> {
        let target = self.target(full_resource_name);
        (0..target.len).map(|i| self.level_name(&target.levels[i], full_resource_name).into_owned()).collect()
    }

    // ---- crate-internal helpers for `decide` ----

    pub(crate) fn project_full_name(&self, project: u32) -> String {
        model::names::project_full_name(&self.projects[project as usize].id)
    }

    /// The display name of a level: the project's canonical name, or the resource name as given.
    pub(crate) fn level_name<'n>(&self, level: &Level<'_>, full_resource_name: &'n str) -> Cow<'n, str> {
        match level.project {
            Some(p) => Cow::Owned(self.project_full_name(p)),
            None => Cow::Borrowed(full_resource_name),
        }
    }

    fn locate<'n>(&self, name: &'n str) -> Location<'n> {
        let Some(parts) = split_name(name) else {
            return Location::Resource(Cow::Borrowed(name));
        };
        let Some(project) = parts.project_key.and_then(|k| self.project_by_key.get(k).copied()) else {
            return Location::Resource(Cow::Borrowed(name));
        };
        if parts.service == PROJECT_SERVICE && parts.tail.is_empty() {
            return Location::Project(project);
        }
        let id = &self.projects[project as usize].id;
        if parts.project_key == Some(id.as_str()) {
            Location::Resource(Cow::Borrowed(name))
        } else {
            // Referenced by number: key by id so both spellings share one policy.
            Location::Resource(Cow::Owned(format!("//{}/projects/{id}{}", parts.service, parts.tail)))
        }
    }

    /// Resolves a name into the policies to evaluate. Allocates only for names that spell the project by number.
    pub(crate) fn target<'a, 'n>(&'a self, name: &'n str) -> Target<'a, 'n> {
        let none = Level { policy: None, project: None };
        let (relative, rtype) = match split_name(name) {
            Some(p) => (p.relative, resource_type(p.service, p.relative)),
            None => (name, ""),
        };
        let mut target = Target { levels: [none, none], len: 0, relative, resource_type: rtype };
        match self.locate(name) {
            Location::Project(i) => {
                target.levels[0] = Level { policy: self.project_policies[i as usize].as_ref(), project: Some(i) };
                target.len = 1;
            }
            Location::Resource(key) => {
                target.levels[0] = Level { policy: self.resource_policies.get(key.as_ref()), project: None };
                target.len = 1;
                let project = split_name(name).and_then(|p| p.project_key).and_then(|k| self.project_by_key.get(k));
                if let Some(&i) = project {
                    target.levels[1] = Level { policy: self.project_policies[i as usize].as_ref(), project: Some(i) };
                    target.len = 2;
                }
            }
        }
        target
    }

    pub(crate) fn principal_id(&self, kind: PrincipalKind, email: &str) -> Option<u32> {
        let email = lower(email);
        match kind {
            PrincipalKind::User => self.ids.users.get(email.as_ref()).copied(),
            PrincipalKind::ServiceAccount => self.ids.service_accounts.get(email.as_ref()).copied(),
        }
    }

    pub(crate) fn domain_id(&self, domain: &str) -> Option<u32> {
        self.ids.domains.get(lower(domain).as_ref()).copied()
    }

    pub(crate) fn group_id(&self, email: &str) -> Option<u32> {
        self.ids.groups.get(lower(email).as_ref()).copied()
    }

    /// Every group the principal is in, directly or through nested groups (sorted; cycle-safe).
    pub(crate) fn groups_of(&self, principal: u32) -> &[u32] {
        let closure = self.closure.get_or_init(|| self.compute_closure());
        closure.get(&principal).map(|g| &g[..]).unwrap_or(&[])
    }

    fn compute_closure(&self) -> HashMap<u32, Box<[u32]>> {
        let mut out = HashMap::new();
        for node in self.member_of.keys() {
            let Node::Principal(p) = *node else { continue };
            let mut seen: HashSet<u32> = HashSet::new();
            let mut queue: VecDeque<Node> = VecDeque::from([*node]);
            while let Some(n) = queue.pop_front() {
                for &g in self.member_of.get(&n).map(Vec::as_slice).unwrap_or(&[]) {
                    if seen.insert(g) {
                        queue.push_back(Node::Group(g));
                    }
                }
            }
            let mut groups: Vec<u32> = seen.into_iter().collect();
            groups.sort_unstable();
            out.insert(p, groups.into_boxed_slice());
        }
        out
    }

    /// The chain of groups by which `principal` reaches `group` (first hop first), for explanations.
    pub(crate) fn group_path(&self, principal: u32, group: u32) -> Option<Vec<u32>> {
        let mut parent: HashMap<u32, Option<u32>> = HashMap::new();
        let mut queue = VecDeque::new();
        for &g in self.member_of.get(&Node::Principal(principal)).map(Vec::as_slice).unwrap_or(&[]) {
            if parent.insert(g, None).is_none() {
                queue.push_back(g);
            }
        }
        while let Some(g) = queue.pop_front() {
            if g == group {
                let mut path = vec![g];
                let mut cur = g;
                while let Some(Some(prev)) = parent.get(&cur) {
                    path.push(*prev);
                    cur = *prev;
                }
                path.reverse();
                return Some(path);
            }
            for &up in self.member_of.get(&Node::Group(g)).map(Vec::as_slice).unwrap_or(&[]) {
                if let std::collections::hash_map::Entry::Vacant(e) = parent.entry(up) {
                    e.insert(Some(g));
                    queue.push_back(up);
                }
            }
        }
        None
    }

    fn compile_binding(&mut self, b: &model::Binding) -> Result<CompiledBinding, IamError> {
        let perms = self
            .catalogue
            .role_perms(&b.role)
            .cloned()
            .ok_or_else(|| IamError::UnknownRole { role: b.role.clone(), suggestion: None })?;
        let condition = match &b.condition {
            Some(expr) => Some(Condition::parse(&expr.expression)?),
            None => None,
        };
        let (mut principals, mut groups, mut domains) = (Vec::new(), Vec::new(), Vec::new());
        let (mut all_users, mut all_authenticated) = (false, false);
        for m in &b.members {
            match Member::parse(m).map_err(|e| IamError::InvalidPolicy(e.to_string()))? {
                Member::AllUsers => all_users = true,
                Member::AllAuthenticatedUsers => all_authenticated = true,
                Member::User(e) => principals.push(self.ids.user(&e)),
                Member::ServiceAccount(e) => principals.push(self.ids.service_account(&e)),
                Member::Group(e) => groups.push(self.ids.group(&e)),
                Member::Domain(d) => domains.push(self.ids.domain(&d)),
                // Deleted and federated principals match nobody.
                Member::Deleted { .. } | Member::Federated(_) => {}
            }
        }
        let sorted = |mut v: Vec<u32>| {
            v.sort_unstable();
            v.dedup();
            v.into_boxed_slice()
        };
        Ok(CompiledBinding {
            perms,
            principals: sorted(principals),
            groups: sorted(groups),
            domains: sorted(domains),
            all_users,
            all_authenticated,
            condition,
        })
    }
}

enum Location<'n> {
    Project(u32),
    Resource(Cow<'n, str>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PrincipalKind {
    User,
    ServiceAccount,
}

impl Identities {
    fn principal(map: &mut HashMap<String, u32>, next: &mut u32, email: &str) -> u32 {
        let email = email.to_ascii_lowercase();
        *map.entry(email).or_insert_with(|| {
            *next += 1;
            *next - 1
        })
    }
    fn user(&mut self, email: &str) -> u32 {
        Self::principal(&mut self.users, &mut self.next_principal, email)
    }
    fn service_account(&mut self, email: &str) -> u32 {
        Self::principal(&mut self.service_accounts, &mut self.next_principal, email)
    }
    fn group(&mut self, email: &str) -> u32 {
        let email = email.to_ascii_lowercase();
        if let Some(&id) = self.groups.get(&email) {
            return id;
        }
        let id = self.group_names.len() as u32;
        self.group_names.push(email.clone());
        self.groups.insert(email, id);
        id
    }
    fn domain(&mut self, domain: &str) -> u32 {
        let next = self.domains.len() as u32;
        *self.domains.entry(domain.to_ascii_lowercase()).or_insert(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap() -> Snapshot {
        Snapshot::new(
            Catalogue::predefined(),
            vec![ProjectRef { id: "local-project".into(), number: "123456789012".into() }],
        )
    }

    #[test]
    fn ancestors_resolve_projects_by_id_and_number() {
        let s = snap();
        let project = "//cloudresourcemanager.googleapis.com/projects/local-project";
        assert_eq!(s.ancestors(project), vec![project]);
        assert_eq!(s.ancestors("//cloudresourcemanager.googleapis.com/projects/123456789012"), vec![project]);
        let svc = "//run.googleapis.com/projects/123456789012/locations/us-central1/services/api";
        assert_eq!(s.ancestors(svc), vec![svc, project]);
        let unknown = "//run.googleapis.com/projects/other/locations/us-central1/services/api";
        assert_eq!(s.ancestors(unknown), vec![unknown]);
        assert_eq!(s.ancestors("not a name"), vec!["not a name"]);
    }

    #[test]
    fn number_and_id_share_one_policy() {
        let mut s = snap();
        let mut p = model::Policy::default();
        p.add_binding("roles/viewer", "user:a@example.com", None);
        s.set_policy("//cloudresourcemanager.googleapis.com/projects/123456789012", &p).unwrap();
        assert_eq!(s.policy("//cloudresourcemanager.googleapis.com/projects/local-project"), Some(&p));
        s.set_policy("//run.googleapis.com/projects/local-project/locations/l/services/s", &p).unwrap();
        assert_eq!(s.policy("//run.googleapis.com/projects/123456789012/locations/l/services/s"), Some(&p));
        assert_eq!(s.policy("//run.googleapis.com/projects/local-project/locations/l/services/t"), None);
    }

    #[test]
    fn validate_policy_checks_roles_and_conditions() {
        let s = snap();
        let mut p = model::Policy::default();
        p.add_binding("roles/run.invokr", "allUsers", None);
        assert_eq!(
            s.validate_policy(&p).unwrap_err().to_string(),
            "unknown role `roles/run.invokr`; did you mean `roles/run.invoker`?"
        );
        let mut p = model::Policy::default();
        let expr = model::Expr { expression: "request.auth.claims.x == 'y'".into(), ..Default::default() };
        p.add_binding("roles/run.invoker", "allUsers", Some(expr));
        assert!(matches!(s.validate_policy(&p), Err(IamError::InvalidCondition { .. })));
        let mut p = model::Policy::default();
        p.bindings.push(model::Binding { role: "roles/viewer".into(), members: vec!["bob".into()], condition: None });
        assert!(matches!(s.validate_policy(&p), Err(IamError::InvalidPolicy(m)) if m.contains("invalid member `bob`")));
    }

    #[test]
    fn resource_types_are_derived_from_names() {
        assert_eq!(
            resource_type("run.googleapis.com", "projects/p/locations/l/services/s"),
            "run.googleapis.com/Service"
        );
        assert_eq!(resource_type(PROJECT_SERVICE, "projects/p"), "cloudresourcemanager.googleapis.com/Project");
        assert_eq!(resource_type("example.googleapis.com", "projects/p/things/t"), "");
    }
}
