//! Table-driven tests of `iam::decide` and of the explanation it gives.

use iam::{decide, Catalogue, Principal, ProjectRef, Role, RoleStage, Snapshot};
use model::{Binding, Expr, Policy};
use std::time::{Duration, SystemTime};

const PROJECT: &str = "//cloudresourcemanager.googleapis.com/projects/local-project";
const PROJECT_BY_NUMBER: &str = "//cloudresourcemanager.googleapis.com/projects/123456789012";
const SVC: &str = "//run.googleapis.com/projects/local-project/locations/us-central1/services/api";
const SVC_BY_NUMBER: &str = "//run.googleapis.com/projects/123456789012/locations/us-central1/services/api";
const OTHER_SVC: &str = "//run.googleapis.com/projects/local-project/locations/us-central1/services/other";
const SECRET: &str = "//secretmanager.googleapis.com/projects/local-project/secrets/db-password";
const PRIVATE_SECRET: &str = "//secretmanager.googleapis.com/projects/local-project/secrets/api-key";
const SA_RES: &str =
    "//iam.googleapis.com/projects/local-project/serviceAccounts/runner@local-project.iam.gserviceaccount.com";

fn now() -> SystemTime {
    // 2025-01-01T00:00:00Z
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600)
}

fn user(e: &str) -> Principal {
    Principal::User(e.into())
}

fn sa(e: &str) -> Principal {
    Principal::ServiceAccount(e.into())
}

fn policy(bindings: &[(&str, &[&str], Option<&str>)]) -> Policy {
    let mut p = Policy::default();
    for (role, members, cond) in bindings {
        let condition = cond.map(|c| Expr { expression: c.into(), title: "t".into(), ..Default::default() });
        if condition.is_some() {
            p.version = 3;
        }
        p.bindings.push(Binding {
            role: role.to_string(),
            members: members.iter().map(|m| m.to_string()).collect(),
            condition,
        });
    }
    p
}

fn world() -> Snapshot {
    let mut catalogue = Catalogue::predefined();
    catalogue
        .insert_custom(Role {
            name: "projects/local-project/roles/invokeOnly".into(),
            title: "Invoke only".into(),
            description: String::new(),
            included_permissions: vec!["run.routes.invoke".into()],
            stage: RoleStage::Ga,
            deleted: false,
            etag: String::new(),
        })
        .unwrap();
    let mut s =
        Snapshot::new(catalogue, vec![ProjectRef { id: "local-project".into(), number: "123456789012".into() }]);
    s.set_policy(
        PROJECT,
        &policy(&[
            ("roles/owner", &["user:owner@localhost.dev"], None),
            ("roles/editor", &["serviceAccount:123456789012-compute@developer.gserviceaccount.com"], None),
            ("roles/viewer", &["group:viewers@example.com", "domain:viewers.example"], None),
            ("roles/secretmanager.secretAccessor", &["deleted:user:gone@example.com?uid=123"], None),
        ]),
    )
    .unwrap();
    s.set_policy(
        SVC,
        &policy(&[
            (
                "roles/run.invoker",
                &["user:alice@example.com", "serviceAccount:caller@local-project.iam.gserviceaccount.com"],
                None,
            ),
            ("roles/run.invoker", &["group:outer@example.com"], None),
            ("projects/local-project/roles/invokeOnly", &["user:custom@example.com"], None),
            ("roles/run.invoker", &["user:temp@example.com"], Some("request.time < timestamp('2024-06-01T00:00:00Z')")),
            (
                "roles/run.invoker",
                &["user:future@example.com"],
                Some("request.time < timestamp('2030-01-01T00:00:00Z')"),
            ),
            ("roles/run.invoker", &["deleted:user:bob@example.com?uid=42"], None),
        ]),
    )
    .unwrap();
    s.set_policy(OTHER_SVC, &policy(&[("roles/run.invoker", &["allUsers"], None)])).unwrap();
    s.set_policy(SECRET, &policy(&[("roles/secretmanager.secretAccessor", &["allAuthenticatedUsers"], None)])).unwrap();
    s.set_policy(
        SA_RES,
        &policy(&[(
            "roles/iam.serviceAccountUser",
            &["user:scoped@example.com"],
            Some("resource.name.startsWith('projects/local-project/serviceAccounts/runner@')"),
        )]),
    )
    .unwrap();
    // Nested groups with a cycle: inner ⊂ outer ⊂ inner.
    s.add_group_member("outer@example.com", "group:inner@example.com");
    s.add_group_member("inner@example.com", "group:outer@example.com");
    s.add_group_member("inner@example.com", "user:nested@example.com");
    s.add_group_member("viewers@example.com", "serviceAccount:reader@local-project.iam.gserviceaccount.com");
    s
}

#[test]
fn decisions_follow_the_policy_table() {
    let s = world();
    let table: &[(&str, Principal, &str, &str, bool)] = &[
        ("direct user grant", user("alice@example.com"), "run.routes.invoke", SVC, true),
        ("emails compare case-insensitively", user("Alice@Example.COM"), "run.routes.invoke", SVC, true),
        ("role lacks permission", user("alice@example.com"), "run.services.delete", SVC, false),
        ("service account grant", sa("caller@local-project.iam.gserviceaccount.com"), "run.routes.invoke", SVC, true),
        (
            "user ≠ service account of same email",
            user("caller@local-project.iam.gserviceaccount.com"),
            "run.routes.invoke",
            SVC,
            false,
        ),
        ("nested group through a cycle", user("nested@example.com"), "run.routes.invoke", SVC, true),
        ("stranger", user("mallory@example.com"), "run.routes.invoke", SVC, false),
        ("group at project level", sa("reader@local-project.iam.gserviceaccount.com"), "run.services.get", SVC, true),
        ("domain at project level", user("carol@viewers.example"), "run.services.get", SVC, true),
        ("domain does not match subdomain", user("carol@sub.viewers.example"), "run.services.get", SVC, false),
        ("allUsers admits anonymous", Principal::Anonymous, "run.routes.invoke", OTHER_SVC, true),
        ("allUsers admits users", user("x@example.com"), "run.routes.invoke", OTHER_SVC, true),
        ("anonymous elsewhere", Principal::Anonymous, "run.routes.invoke", SVC, false),
        ("allAuthenticatedUsers admits users", user("x@example.com"), "secretmanager.versions.access", SECRET, true),
        (
            "allAuthenticatedUsers admits SAs",
            sa("y@p.iam.gserviceaccount.com"),
            "secretmanager.versions.access",
            SECRET,
            true,
        ),
        (
            "allAuthenticatedUsers excludes anonymous",
            Principal::Anonymous,
            "secretmanager.versions.access",
            SECRET,
            false,
        ),
        ("project owner inherits on service", user("owner@localhost.dev"), "run.services.setIamPolicy", SVC, true),
        ("project inheritance by number", user("owner@localhost.dev"), "run.services.delete", SVC_BY_NUMBER, true),
        ("resource policy by number", user("alice@example.com"), "run.routes.invoke", SVC_BY_NUMBER, true),
        ("project by number", user("owner@localhost.dev"), "resourcemanager.projects.delete", PROJECT_BY_NUMBER, true),
        ("owner has everything", user("owner@localhost.dev"), "secretmanager.versions.access", PRIVATE_SECRET, true),
        ("owner on project", user("owner@localhost.dev"), "resourcemanager.projects.setIamPolicy", PROJECT, true),
        ("custom role grants its permission", user("custom@example.com"), "run.routes.invoke", SVC, true),
        ("custom role grants nothing else", user("custom@example.com"), "run.services.get", SVC, false),
        ("condition false (expired)", user("temp@example.com"), "run.routes.invoke", SVC, false),
        ("condition true (not yet expired)", user("future@example.com"), "run.routes.invoke", SVC, true),
        ("resource.name startsWith true", user("scoped@example.com"), "iam.serviceAccounts.actAs", SA_RES, true),
        ("deleted member never matches", user("bob@example.com"), "run.routes.invoke", SVC, false),
        ("deleted member at project", user("gone@example.com"), "secretmanager.versions.access", SVC, false),
        ("editor invokes", sa("123456789012-compute@developer.gserviceaccount.com"), "run.routes.invoke", SVC, true),
        (
            "editor acts as",
            sa("123456789012-compute@developer.gserviceaccount.com"),
            "iam.serviceAccounts.actAs",
            SA_RES,
            true,
        ),
        (
            "editor cannot read secrets",
            sa("123456789012-compute@developer.gserviceaccount.com"),
            "secretmanager.versions.access",
            PRIVATE_SECRET,
            false,
        ),
        (
            "editor adds secret versions",
            sa("123456789012-compute@developer.gserviceaccount.com"),
            "secretmanager.versions.add",
            PRIVATE_SECRET,
            true,
        ),
        (
            "editor cannot set service policy",
            sa("123456789012-compute@developer.gserviceaccount.com"),
            "run.services.setIamPolicy",
            SVC,
            false,
        ),
        (
            "editor cannot set secret policy",
            sa("123456789012-compute@developer.gserviceaccount.com"),
            "secretmanager.secrets.setIamPolicy",
            PRIVATE_SECRET,
            false,
        ),
        (
            "editor cannot set project policy",
            sa("123456789012-compute@developer.gserviceaccount.com"),
            "resourcemanager.projects.setIamPolicy",
            PROJECT,
            false,
        ),
        ("viewer reads", user("carol@viewers.example"), "run.services.getIamPolicy", SVC, true),
        ("viewer cannot invoke", user("carol@viewers.example"), "run.routes.invoke", SVC, false),
        (
            "viewer cannot access secrets",
            user("carol@viewers.example"),
            "secretmanager.versions.access",
            PRIVATE_SECRET,
            false,
        ),
        (
            "viewer reads secret metadata",
            user("carol@viewers.example"),
            "secretmanager.secrets.get",
            PRIVATE_SECRET,
            true,
        ),
        ("unknown permission is never granted", user("owner@localhost.dev"), "run.services.fly", SVC, false),
        (
            "unknown project: no inheritance",
            user("owner@localhost.dev"),
            "run.services.get",
            "//run.googleapis.com/projects/elsewhere/locations/l/services/s",
            false,
        ),
    ];
    for (what, principal, permission, resource, want) in table {
        let d = decide(&s, principal, permission, resource, now());
        assert_eq!(d.granted(), *want, "{what}: {principal:?} {permission} {resource}");
        // The explanation reaches the same verdict as the hot path.
        let e = serde_json::to_value(d.explanation()).unwrap();
        assert_eq!(e["access"], if *want { "GRANTED" } else { "NOT_GRANTED" }, "{what}");
        assert_eq!(d.granting_role().is_some(), *want, "{what}");
    }
}

#[test]
fn viewer_cannot_access_secrets_without_a_public_binding() {
    let mut s = world();
    s.set_policy(SECRET, &Policy::default()).unwrap();
    let d = decide(&s, &user("carol@viewers.example"), "secretmanager.versions.access", SECRET, now());
    assert!(!d.granted());
}

#[test]
fn condition_on_resource_name_scopes_a_project_binding() {
    let mut s = world();
    let scoped = policy(&[(
        "roles/run.invoker",
        &["user:dev@example.com"],
        Some("resource.name.startsWith('projects/local-project/locations/us-central1/services/api') && resource.type == 'run.googleapis.com/Service'"),
    )]);
    let mut p = s.policy(PROJECT).unwrap().clone();
    p.version = 3;
    p.bindings.extend(scoped.bindings);
    s.set_policy(PROJECT, &p).unwrap();
    assert!(decide(&s, &user("dev@example.com"), "run.routes.invoke", SVC, now()).granted());
    let third = "//run.googleapis.com/projects/local-project/locations/us-central1/services/third";
    assert!(!decide(&s, &user("dev@example.com"), "run.routes.invoke", third, now()).granted());
}

#[test]
fn decision_reports_the_granting_role_and_resource() {
    let s = world();
    let d = decide(&s, &user("owner@localhost.dev"), "run.services.delete", SVC, now());
    assert_eq!(d.granting_role(), Some("roles/owner"));
    assert_eq!(d.granting_resource().as_deref(), Some(PROJECT));
    assert!(d.render_text().ends_with(&format!("GRANTED by roles/owner on {PROJECT}")));
}

#[test]
fn explanation_has_the_troubleshooter_shape_and_names_every_binding() {
    let s = world();
    let d = decide(&s, &user("nested@example.com"), "run.routes.invoke", SVC, now());
    let e = serde_json::to_value(d.explanation()).unwrap();
    assert_eq!(e["access"], "GRANTED");
    let policies = e["explainedPolicies"].as_array().unwrap();
    assert_eq!(policies.len(), 2);
    assert_eq!(policies[0]["fullResourceName"], SVC);
    assert_eq!(policies[1]["fullResourceName"], PROJECT);
    assert_eq!(policies[0]["access"], "GRANTED");
    assert_eq!(policies[1]["access"], "NOT_GRANTED");
    for (i, p) in policies.iter().enumerate() {
        let full = if i == 0 { SVC } else { PROJECT };
        let set = s.policy(full).unwrap();
        let explained = p["bindingExplanations"].as_array().unwrap();
        assert_eq!(explained.len(), set.bindings.len(), "every binding of {full} is explained");
        for (b, want) in explained.iter().zip(&set.bindings) {
            assert_eq!(b["role"], want.role.as_str());
            for m in &want.members {
                assert!(b["memberships"][m]["membership"].is_string(), "{m} named");
            }
        }
        assert_eq!(p["policy"]["bindings"].as_array().unwrap().len(), set.bindings.len());
    }
    let group_binding = &policies[0]["bindingExplanations"][1];
    assert_eq!(group_binding["access"], "GRANTED");
    assert_eq!(group_binding["rolePermission"], "ROLE_PERMISSION_INCLUDED");
    assert_eq!(group_binding["memberships"]["group:outer@example.com"]["membership"], "MEMBERSHIP_INCLUDED");
    assert_eq!(group_binding["relevance"], "HIGH");
    let expired = &policies[0]["bindingExplanations"][3];
    assert_eq!(expired["conditionEvaluation"], false);
    assert_eq!(expired["condition"]["expression"], "request.time < timestamp('2024-06-01T00:00:00Z')");
    let viewer = &policies[1]["bindingExplanations"][2];
    assert_eq!(viewer["rolePermission"], "ROLE_PERMISSION_NOT_INCLUDED");
    assert_eq!(viewer["memberships"]["domain:viewers.example"]["membership"], "MEMBERSHIP_NOT_INCLUDED");
}

#[test]
fn render_text_names_every_level_binding_and_match() {
    let s = world();
    let d = decide(&s, &user("nested@example.com"), "run.routes.invoke", SVC, now());
    let text = d.render_text();
    if std::env::var_os("SHOW_TEXT").is_some() {
        println!("{text}");
    }
    assert!(text.contains(&format!("resource {SVC}: policy with 6 binding(s)")), "{text}");
    assert!(text.contains(&format!("project {PROJECT}: policy with 4 binding(s)")), "{text}");
    for role in [
        "roles/run.invoker",
        "projects/local-project/roles/invokeOnly",
        "roles/owner",
        "roles/editor",
        "roles/viewer",
        "roles/secretmanager.secretAccessor",
    ] {
        assert!(text.contains(&format!("binding {role}:")), "{role} missing in\n{text}");
    }
    assert_eq!(text.matches("  - binding ").count(), 10, "{text}");
    assert!(text.contains("group:outer@example.com (via groups inner@example.com → outer@example.com)"), "{text}");
    assert!(text.contains("is false"), "{text}");
    assert!(text.contains("role does not contain `run.routes.invoke`"), "{text}");
    assert!(text.ends_with("GRANTED by roles/run.invoker on //run.googleapis.com/projects/local-project/locations/us-central1/services/api"), "{text}");

    let d = decide(&s, &Principal::Anonymous, "run.routes.invoke", OTHER_SVC, now());
    assert!(d.render_text().contains("allUsers (allUsers: everyone"), "{}", d.render_text());

    let d = decide(&s, &user("carol@viewers.example"), "run.routes.invoke", SVC, now());
    let text = d.render_text();
    assert!(text.contains("domain:viewers.example (via domain viewers.example)"), "{text}");
    assert!(text.contains("no member matches user:carol@viewers.example"), "{text}");
    assert!(text.ends_with("NOT_GRANTED: no binding grants run.routes.invoke to user:carol@viewers.example"), "{text}");

    let d = decide(
        &s,
        &user("alice@example.com"),
        "run.routes.invoke",
        "//run.googleapis.com/projects/local-project/locations/l/services/none",
        now(),
    );
    let text = d.render_text();
    assert!(text.contains("services/none: no policy"), "{text}");
    let e = serde_json::to_value(d.explanation()).unwrap();
    assert!(e["explainedPolicies"][0].get("policy").is_none());
    assert_eq!(e["explainedPolicies"][1]["fullResourceName"], PROJECT);
}

#[test]
fn set_policy_rejects_unknown_roles_with_suggestions() {
    let mut s = world();
    let err = s.set_policy(SVC, &policy(&[("roles/run.invokr", &["allUsers"], None)])).unwrap_err();
    assert_eq!(err.to_string(), "unknown role `roles/run.invokr`; did you mean `roles/run.invoker`?");
    let err = s
        .set_policy(SVC, &policy(&[("roles/run.invoker", &["allUsers"], Some("resource.name.endsWith('x')"))]))
        .unwrap_err();
    assert!(err.to_string().contains("unsupported function `endsWith`"), "{err}");
    // A rejected policy leaves the previous one in place.
    assert!(decide(&s, &user("alice@example.com"), "run.routes.invoke", SVC, now()).granted());
}

#[test]
fn stability_says_whether_a_condition_took_part() {
    let s = world();
    let perm = "run.routes.invoke";
    let table: &[(Principal, bool, bool)] = &[
        // (principal, granted, stable)
        (user("alice@example.com"), true, true),     // unconditional binding
        (user("future@example.com"), true, false),   // granted by a condition that will expire
        (user("temp@example.com"), false, false),    // refused by a condition on a binding that names her
        (user("stranger@example.com"), false, true), // no binding names him, conditional or not
        (Principal::Anonymous, false, true),
    ];
    for (who, granted, stable) in table {
        let d = decide(&s, who, perm, SVC, now());
        assert_eq!((d.granted, d.is_stable()), (*granted, *stable), "{who:?}");
    }
    // Unknown permissions are never granted, at any time.
    assert!(decide(&s, &user("alice@example.com"), "run.nothing.here", SVC, now()).is_stable());
}
