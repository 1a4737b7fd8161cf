//! Explanations of a decision: the Policy Troubleshooter v1 response shape
//! (`google.cloud.policytroubleshooter.v1.TroubleshootIamPolicyResponse`) and a readable text for the CLI.
//!
//! Owns: naming every policy level and every binding that was considered, whether its role holds the permission,
//! which member matched and how, and what its condition evaluated to.
//!
//! This is the slow path: it runs only when a caller asks, re-evaluating from the [`Decision`]'s inputs with full
//! detail. INVARIANT: it reaches the same verdict as `decide` (tested), because both use the same snapshot data.

use crate::condition::{Condition, ConditionContext};
use crate::decide::{Decision, Principal};
use model::member::Member;
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::fmt::Write as _;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Access {
    Granted,
    NotGranted,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Relevance {
    High,
    Normal,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RolePermission {
    RolePermissionIncluded,
    RolePermissionNotIncluded,
    RolePermissionUnknownInfoDenied,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Membership {
    MembershipIncluded,
    MembershipNotIncluded,
}

/// How a member matched the principal (not part of Google's JSON; used by the text rendering).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    Direct,
    /// Through these groups, outermost (the one in the binding) last.
    Group(Vec<String>),
    Domain(String),
    AllUsers,
    AllAuthenticatedUsers,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AnnotatedMembership {
    pub membership: Membership,
    pub relevance: Relevance,
    #[serde(skip)]
    pub via: Option<Via>,
}

/// `map<string, AnnotatedMembership>`, kept in the binding's member order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Memberships(pub Vec<(String, AnnotatedMembership)>);

impl Serialize for Memberships {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingExplanation {
    pub access: Access,
    pub role: String,
    pub role_permission: RolePermission,
    pub role_permission_relevance: Relevance,
    pub memberships: Memberships,
    pub relevance: Relevance,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<model::Expr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition_evaluation: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainedPolicy {
    pub access: Access,
    pub full_resource_name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<model::Policy>,
    pub binding_explanations: Vec<BindingExplanation>,
    pub relevance: Relevance,
}

/// The whole explanation: the verdict and every policy considered, resource first, then project.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub access: Access,
    pub explained_policies: Vec<ExplainedPolicy>,
}

fn access(b: bool) -> Access {
    if b {
        Access::Granted
    } else {
        Access::NotGranted
    }
}

fn relevance(high: bool) -> Relevance {
    if high {
        Relevance::High
    } else {
        Relevance::Normal
    }
}

/// Does `member` match the principal, and how?
fn membership(d: &Decision<'_>, principal: &Principal, member: &str) -> Option<Via> {
    let email = principal.email();
    match Member::parse(member).ok()? {
        Member::AllUsers => Some(Via::AllUsers),
        Member::AllAuthenticatedUsers => email.map(|_| Via::AllAuthenticatedUsers),
        Member::User(e) => matches!(principal, Principal::User(p) if p.eq_ignore_ascii_case(&e)).then_some(Via::Direct),
        Member::ServiceAccount(e) => {
            matches!(principal, Principal::ServiceAccount(p) if p.eq_ignore_ascii_case(&e)).then_some(Via::Direct)
        }
        Member::Domain(domain) => {
            let (_, principal_domain) = email?.rsplit_once('@')?;
            principal_domain.eq_ignore_ascii_case(&domain).then_some(Via::Domain(domain))
        }
        Member::Group(g) => {
            let who = crate::decide::Who::resolve(d.snapshot, principal);
            let group = d.snapshot.group_id(&g)?;
            if who.groups.binary_search(&group).is_err() {
                return None;
            }
            let path = d.snapshot.group_path(who.principal?, group)?;
            Some(Via::Group(path.into_iter().map(|id| d.snapshot.ids.group_names[id as usize].clone()).collect()))
        }
        Member::Deleted { .. } | Member::Federated(_) => None,
    }
}

pub(crate) fn explain(d: &Decision<'_>) -> Explanation {
    let snapshot = d.snapshot;
    let principal = d.principal();
    let target = snapshot.target(d.full_resource_name());
    let ctx = ConditionContext { now: d.now, resource_name: target.relative, resource_type: target.resource_type };
    let catalogue = snapshot.catalogue();
    let mut explained = Vec::new();
    for level in &target.levels[..target.len] {
        let full_resource_name = snapshot.level_name(level, d.full_resource_name()).into_owned();
        let mut bindings = Vec::new();
        if let Some(policy) = level.policy {
            for b in &policy.policy.bindings {
                let role_permission = if catalogue.get(&b.role).is_none() {
                    RolePermission::RolePermissionUnknownInfoDenied
                } else if catalogue.role_has_permission(&b.role, d.permission()) {
                    RolePermission::RolePermissionIncluded
                } else {
                    RolePermission::RolePermissionNotIncluded
                };
                let included = role_permission == RolePermission::RolePermissionIncluded;
                let memberships = Memberships(
                    b.members
                        .iter()
                        .map(|m| {
                            let via = membership(d, &principal, m);
                            let annotated = AnnotatedMembership {
                                membership: if via.is_some() {
                                    Membership::MembershipIncluded
                                } else {
                                    Membership::MembershipNotIncluded
                                },
                                relevance: relevance(via.is_some()),
                                via,
                            };
                            (m.clone(), annotated)
                        })
                        .collect(),
                );
                let member_matched = memberships.0.iter().any(|(_, m)| m.via.is_some());
                let condition_evaluation = b
                    .condition
                    .as_ref()
                    .map(|expr| Condition::parse(&expr.expression).map(|c| c.eval(&ctx)).unwrap_or(false));
                let granted = included && member_matched && condition_evaluation.unwrap_or(true);
                bindings.push(BindingExplanation {
                    access: access(granted),
                    role: b.role.clone(),
                    role_permission,
                    role_permission_relevance: relevance(included),
                    memberships,
                    relevance: relevance(granted || (included && member_matched)),
                    condition: b.condition.clone(),
                    condition_evaluation,
                });
            }
        }
        let granted = bindings.iter().any(|b| b.access == Access::Granted);
        let high = bindings.iter().any(|b| b.relevance == Relevance::High);
        explained.push(ExplainedPolicy {
            access: access(granted),
            full_resource_name,
            policy: level.policy.map(|p| p.policy.clone()),
            binding_explanations: bindings,
            relevance: relevance(high),
        });
    }
    let granted = explained.iter().any(|p| p.access == Access::Granted);
    Explanation { access: access(granted), explained_policies: explained }
}

fn principal_text(p: &Principal) -> String {
    match p {
        Principal::Anonymous => "an anonymous caller".to_owned(),
        other => other.member(),
    }
}

pub(crate) fn render_text(d: &Decision<'_>) -> String {
    let e = explain(d);
    let mut out = String::new();
    let who = principal_text(&d.principal());
    let _ = writeln!(out, "Checking `{}` for {who} on {}", d.permission(), d.full_resource_name());
    if !d.snapshot.catalogue().is_known_permission(d.permission()) {
        let _ = writeln!(out, "note: `{}` is not a known permission, so no role contains it", d.permission());
    }
    let count = e.explained_policies.len();
    for (i, p) in e.explained_policies.iter().enumerate() {
        let kind = if i + 1 == count && count > 1 || p.full_resource_name.starts_with("//cloudresourcemanager") {
            "project"
        } else {
            "resource"
        };
        let _ = write!(out, "\n[{}/{count}] {kind} {}: ", i + 1, p.full_resource_name);
        if p.policy.is_none() {
            let _ = writeln!(out, "no policy");
            continue;
        }
        let _ = writeln!(out, "policy with {} binding(s)", p.binding_explanations.len());
        for b in &p.binding_explanations {
            let verdict = match b.access {
                Access::Granted => "GRANTED",
                Access::NotGranted => "not granted",
            };
            let _ = writeln!(out, "  - binding {}: {verdict}", b.role);
            let deleted = d.snapshot.catalogue().get(&b.role).is_some_and(|r| r.deleted);
            let role_line = match b.role_permission {
                RolePermission::RolePermissionIncluded => {
                    format!("role contains `{}`", d.permission())
                }
                // A deleted custom role grants nothing until it is undeleted, whatever it lists.
                RolePermission::RolePermissionNotIncluded if deleted => {
                    "role is deleted: its bindings grant nothing until it is undeleted".to_owned()
                }
                RolePermission::RolePermissionNotIncluded => {
                    format!("role does not contain `{}`", d.permission())
                }
                RolePermission::RolePermissionUnknownInfoDenied => "role is unknown".to_owned(),
            };
            let _ = writeln!(out, "      {role_line}");
            let matched: Vec<String> = b
                .memberships
                .0
                .iter()
                .filter_map(|(m, a)| a.via.as_ref().map(|via| format!("{m} ({})", via_text(via))))
                .collect();
            if matched.is_empty() {
                let _ = writeln!(out, "      no member matches {who} (members: {})", member_list(b));
            } else {
                let _ = writeln!(out, "      member matched: {}", matched.join(", "));
            }
            if let (Some(expr), Some(result)) = (&b.condition, b.condition_evaluation) {
                let title = if expr.title.is_empty() { String::new() } else { format!(" \"{}\"", expr.title) };
                let _ = writeln!(out, "      condition{title} `{}` is {result}", expr.expression);
            }
        }
    }
    out.push('\n');
    match (d.granting_role(), d.granting_resource()) {
        (Some(role), Some(resource)) => {
            let _ = write!(out, "GRANTED by {role} on {resource}");
        }
        _ => {
            let _ = write!(out, "NOT_GRANTED: no binding grants {} to {who}", d.permission());
        }
    }
    out
}

fn member_list(b: &BindingExplanation) -> String {
    b.memberships.0.iter().map(|(m, _)| m.as_str()).collect::<Vec<_>>().join(", ")
}

fn via_text(via: &Via) -> String {
    match via {
        Via::Direct => "direct".to_owned(),
        Via::Group(path) => match path.as_slice() {
            [only] => format!("via group {only}"),
            _ => format!("via groups {}", path.join(" → ")),
        },
        Via::Domain(d) => format!("via domain {d}"),
        Via::AllUsers => "allUsers: everyone, including anonymous callers".to_owned(),
        Via::AllAuthenticatedUsers => "allAuthenticatedUsers: any signed-in caller".to_owned(),
    }
}
