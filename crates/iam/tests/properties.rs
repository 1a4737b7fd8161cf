//! Property tests: monotonicity of the evaluator, and parsers that never panic on arbitrary input.

use iam::{decide, Catalogue, Condition, ConditionContext, Principal, ProjectRef, Role, RoleStage, Snapshot};
use model::{Binding, Expr, Policy};
use proptest::prelude::*;
use std::time::{Duration, SystemTime};

const RESOURCES: &[&str] = &[
    "//cloudresourcemanager.googleapis.com/projects/prop-project",
    "//run.googleapis.com/projects/prop-project/locations/l/services/a",
    "//run.googleapis.com/projects/prop-project/locations/l/services/b",
    "//secretmanager.googleapis.com/projects/prop-project/secrets/s",
];
const ROLES: &[&str] = &[
    "roles/run.invoker",
    "roles/viewer",
    "roles/editor",
    "roles/secretmanager.secretAccessor",
    "projects/prop-project/roles/custom",
];
const MEMBERS: &[&str] = &[
    "user:a@example.com",
    "user:b@example.com",
    "serviceAccount:c@prop-project.iam.gserviceaccount.com",
    "group:g@example.com",
    "group:h@example.com",
    "domain:example.com",
    "allUsers",
    "allAuthenticatedUsers",
    "deleted:user:a@example.com?uid=1",
];
const CONDITIONS: &[&str] = &[
    "true",
    "false",
    "request.time < timestamp('2025-06-01T00:00:00Z')",
    "resource.name.startsWith('projects/prop-project/locations/l/services/a')",
    "resource.type == 'run.googleapis.com/Service' || !(request.time > timestamp('2030-01-01T00:00:00Z'))",
];
const PERMISSIONS: &[&str] = &[
    "run.routes.invoke",
    "run.services.get",
    "run.services.setIamPolicy",
    "secretmanager.versions.access",
    "secretmanager.versions.add",
    "resourcemanager.projects.get",
];

fn principals() -> Vec<Principal> {
    vec![
        Principal::Anonymous,
        Principal::User("a@example.com".into()),
        Principal::User("b@example.com".into()),
        Principal::User("d@example.com".into()),
        Principal::User("e@other.example".into()),
        Principal::ServiceAccount("c@prop-project.iam.gserviceaccount.com".into()),
    ]
}

/// (role, members, condition) by index into the tables above.
type GenBinding = (usize, Vec<usize>, Option<usize>);
/// One list of bindings per resource.
type World = Vec<Vec<GenBinding>>;

fn binding() -> impl Strategy<Value = GenBinding> {
    (0..ROLES.len(), prop::collection::vec(0..MEMBERS.len(), 1..4), prop::option::of(0..CONDITIONS.len()))
}

fn world() -> impl Strategy<Value = World> {
    prop::collection::vec(prop::collection::vec(binding(), 0..4), RESOURCES.len())
}

fn snapshot(world: &World) -> Snapshot {
    let mut catalogue = Catalogue::predefined();
    catalogue
        .insert_custom(Role {
            name: "projects/prop-project/roles/custom".into(),
            title: "Custom".into(),
            description: String::new(),
            included_permissions: vec!["run.routes.invoke".into(), "secretmanager.versions.access".into()],
            stage: RoleStage::Ga,
            deleted: false,
            etag: String::new(),
        })
        .unwrap();
    let mut s = Snapshot::new(catalogue, vec![ProjectRef { id: "prop-project".into(), number: "42".into() }]);
    s.add_group_member("g@example.com", "user:a@example.com");
    s.add_group_member("h@example.com", "group:g@example.com");
    s.add_group_member("g@example.com", "group:h@example.com");
    s.add_group_member("h@example.com", "serviceAccount:c@prop-project.iam.gserviceaccount.com");
    for (resource, bindings) in RESOURCES.iter().zip(world) {
        let mut p = Policy { version: 3, ..Default::default() };
        for (role, members, condition) in bindings {
            let mut ms: Vec<String> = members.iter().map(|&m| MEMBERS[m].to_owned()).collect();
            ms.dedup();
            p.bindings.push(Binding {
                role: ROLES[*role].to_owned(),
                members: ms,
                condition: condition.map(|c| Expr { expression: CONDITIONS[c].to_owned(), ..Default::default() }),
            });
        }
        s.set_policy(resource, &p).unwrap();
    }
    s
}

/// Every (principal, permission, resource) outcome, in a fixed order.
fn outcomes(s: &Snapshot) -> Vec<bool> {
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600);
    let mut out = Vec::new();
    for p in principals() {
        for perm in PERMISSIONS {
            for r in RESOURCES {
                out.push(decide(s, &p, perm, r, now).granted());
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn adding_a_binding_never_removes_a_permission(w in world(), extra in binding(), at in 0..RESOURCES.len()) {
        let before = outcomes(&snapshot(&w));
        let mut w2 = w.clone();
        w2[at].push(extra);
        let after = outcomes(&snapshot(&w2));
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            prop_assert!(!b || *a, "query {} was granted before the binding was added", i);
        }
    }

    #[test]
    fn removing_a_member_never_adds_a_permission(w in world(), at in 0..RESOURCES.len(), pick in any::<prop::sample::Index>(), member in any::<prop::sample::Index>()) {
        prop_assume!(!w[at].is_empty());
        let before = outcomes(&snapshot(&w));
        let mut w2 = w.clone();
        let b = pick.index(w2[at].len());
        let m = member.index(w2[at][b].1.len());
        w2[at][b].1.remove(m);
        if w2[at][b].1.is_empty() {
            w2[at].remove(b);
        }
        let after = outcomes(&snapshot(&w2));
        for (i, (b, a)) in before.iter().zip(&after).enumerate() {
            prop_assert!(*b || !a, "query {} became granted after removing a member", i);
        }
    }

    #[test]
    fn explanation_agrees_with_decision(w in world(), p in 0..6usize, perm in 0..PERMISSIONS.len(), r in 0..RESOURCES.len()) {
        let s = snapshot(&w);
        let principal = &principals()[p];
        let d = decide(&s, principal, PERMISSIONS[perm], RESOURCES[r], SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600));
        let e = d.explanation();
        prop_assert_eq!(e.access == iam::explain::Access::Granted, d.granted());
        let considered: usize = e.explained_policies.iter().map(|p| p.binding_explanations.len()).sum();
        let expected: usize = s.ancestors(RESOURCES[r]).iter().map(|a| s.policy(a).map_or(0, |p| p.bindings.len())).sum();
        prop_assert_eq!(considered, expected);
    }

    #[test]
    fn condition_parse_never_panics(expr in "\\PC{0,200}") {
        if let Ok(c) = Condition::parse(&expr) {
            let _ = c.eval(&ConditionContext { now: SystemTime::UNIX_EPOCH, resource_name: "projects/p", resource_type: "" });
        }
    }

    #[test]
    fn condition_parse_never_panics_on_near_misses(
        parts in prop::collection::vec(prop::sample::select(vec![
            "request.time", "resource.name", "resource.type", ".startsWith(", "timestamp(", "'2020-01-01T00:00:00Z'",
            "'x'", "\"y\"", "(", ")", "&&", "||", "!", "==", "!=", "<", "<=", ">", ">=", "true", "false", "1", "+",
            "has(", "[", "]", ",", " ", "request.auth", "'", "\\",
        ]), 0..40)
    ) {
        let expr: String = parts.concat();
        if let Ok(c) = Condition::parse(&expr) {
            let _ = c.eval(&ConditionContext { now: SystemTime::UNIX_EPOCH, resource_name: "x", resource_type: "y" });
        }
    }

    #[test]
    fn policy_json_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let s = Snapshot::new(Catalogue::predefined(), vec![]);
        if let Ok(p) = Policy::from_json(&bytes) {
            let _ = s.validate_policy(&p);
        }
    }

    #[test]
    fn policy_json_near_misses_never_panic(
        role in prop::sample::select(vec!["roles/run.invoker", "roles/run.invokr", "roles/x", "projects/p/roles/y", "bad"]),
        member in prop::sample::select(MEMBERS.to_vec()),
        version in prop::sample::select(vec![0, 1, 3, 2]),
        cond in prop::option::of("\\PC{0,60}"),
    ) {
        let condition = cond.map(|c| serde_json::json!({"expression": c}));
        let json = serde_json::json!({"version": version, "bindings": [{"role": role, "members": [member], "condition": condition}]});
        let mut s = Snapshot::new(Catalogue::predefined(), vec![]);
        if let Ok(p) = Policy::from_json(json.to_string().as_bytes()) {
            let valid = s.validate_policy(&p).is_ok();
            prop_assert_eq!(valid, s.set_policy("//run.googleapis.com/projects/p/services/s", &p).is_ok());
        }
    }
}
