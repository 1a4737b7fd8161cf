//! Structural rules Google enforces on some policies, beyond what any one binding says.

use model::{Member, Policy};

/// The role a project must always keep.
pub const OWNER_ROLE: &str = "roles/owner";

/// A project policy must keep an unconditional `roles/owner` binding with a user or a group in it; otherwise
/// nobody could ever change the policy again.
pub fn keeps_project_owner(policy: &Policy) -> bool {
    policy
        .bindings
        .iter()
        .filter(|b| b.role == OWNER_ROLE && b.condition.is_none())
        .any(|b| b.members.iter().any(|m| matches!(Member::parse(m), Ok(Member::User(_) | Member::Group(_)))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_must_be_a_user_or_group_without_condition() {
        let mut p = Policy::default();
        assert!(!keeps_project_owner(&p));
        p.add_binding(OWNER_ROLE, "serviceAccount:sa@p.iam.gserviceaccount.com", None);
        assert!(!keeps_project_owner(&p));
        p.add_binding(
            OWNER_ROLE,
            "user:a@example.com",
            Some(model::Expr { expression: "true".into(), title: "t".into(), ..Default::default() }),
        );
        assert!(!keeps_project_owner(&p));
        p.add_binding(OWNER_ROLE, "group:g@example.com", None);
        assert!(keeps_project_owner(&p));
    }
}
