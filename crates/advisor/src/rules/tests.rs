//! One hit and one near miss per rule, on inputs built in code.

use super::*;
use crate::input::{Env, Ingress, Key, Observations, ObservedCall, ServiceAccount};
use model::Binding;

const SA: &str = "app@p.iam.gserviceaccount.com";
const COMPUTE: &str = "123-compute@developer.gserviceaccount.com";

fn svc(name: &str) -> Service {
    Service { name: name.into(), region: "europe-west1".into(), service_account: Some(SA.into()), ..Default::default() }
}

fn policy(bindings: &[(&str, &[&str])]) -> Policy {
    Policy {
        version: 1,
        bindings: bindings
            .iter()
            .map(|(role, members)| Binding {
                role: (*role).into(),
                members: members.iter().map(|m| (*m).into()).collect(),
                condition: None,
            })
            .collect(),
        ..Default::default()
    }
}

/// An input that follows the guidance: private services on their own account, audited secrets, no keys.
fn input(services: Vec<Service>) -> Input {
    let service_policies = services.iter().map(|s| (s.name.clone(), policy(&[]))).collect();
    let mut project = policy(&[("roles/owner", &["user:admin@example.com"])]);
    project.audit_configs = vec![model::policy::AuditConfig {
        service: "secretmanager.googleapis.com".into(),
        audit_log_configs: vec![serde_json::json!({"logType": "DATA_READ"})],
    }];
    Input {
        origin: Origin::Export,
        project_id: "p".into(),
        project_number: Some("123".into()),
        project_policy: Some(project),
        services: Some(services),
        service_policies: Some(service_policies),
        secret_policies: Some(BTreeMap::new()),
        service_accounts: Some(vec![ServiceAccount { email: SA.into(), disabled: false }]),
        keys: Some(BTreeMap::from([(SA.to_owned(), vec![])])),
        observations: None,
    }
}

fn hits(input: &Input, rule: &str) -> Vec<Finding> {
    scan(input).findings.into_iter().filter(|f| f.rule == rule).collect()
}

fn make_public(input: &mut Input, service: &str) {
    input.service_policies.as_mut().unwrap().insert(service.into(), policy(&[("roles/run.invoker", &["allUsers"])]));
}

fn grant(input: &mut Input, role: &str, member: &str) {
    input.project_policy.as_mut().unwrap().add_binding(role, member, None);
}

const SVC_RESOURCE: &str = "//run.googleapis.com/projects/p/locations/europe-west1/services/";

#[test]
fn a_clean_project_has_no_findings_above_info() {
    let mut s = svc("web");
    s.env.push(Env { name: "DB_PASS".into(), value: EnvValue::Secret { secret: "db".into(), version: "3".into() } });
    let report = scan(&input(vec![s]));
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.rule).collect();
    assert_eq!(skipped, [UNUSED_PERMISSION, SANDBOX_DISABLED]);
}

#[test]
fn default_service_account_is_high_with_editor_else_medium() {
    let mut s = svc("web");
    s.service_account = None;
    let mut i = input(vec![s]);
    let f = hits(&i, DEFAULT_SERVICE_ACCOUNT);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Medium);
    assert_eq!(f[0].resource, format!("{SVC_RESOURCE}web"));
    assert!(f[0].evidence[0].contains(COMPUTE), "{:?}", f[0].evidence);
    grant(&mut i, "roles/editor", &format!("serviceAccount:{COMPUTE}"));
    let f = hits(&i, DEFAULT_SERVICE_ACCOUNT);
    assert_eq!(f[0].severity, Severity::High);
    assert!(f[0].fix.contains("--service-account=web-sa@p.iam.gserviceaccount.com"), "{}", f[0].fix);
    // An export that does not say the project number: no account set is still the default one.
    i.project_number = None;
    let f = hits(&i, DEFAULT_SERVICE_ACCOUNT);
    assert_eq!(f.len(), 1);
    assert!(f[0].evidence[0].contains("PROJECT_NUMBER-compute@"), "{:?}", f[0].evidence);
}

#[test]
fn default_service_account_near_miss_a_dedicated_account() {
    let mut i = input(vec![svc("web")]);
    grant(&mut i, "roles/editor", &format!("serviceAccount:{COMPUTE}"));
    assert!(hits(&i, DEFAULT_SERVICE_ACCOUNT).is_empty());
    // Named explicitly, the default account still counts.
    let mut s = svc("web");
    s.service_account = Some("999-compute@developer.gserviceaccount.com".into());
    assert_eq!(hits(&input(vec![s]), DEFAULT_SERVICE_ACCOUNT).len(), 1);
}

#[test]
fn primitive_role_binding_severity_by_member() {
    let mut i = input(vec![]);
    grant(&mut i, "roles/editor", &format!("serviceAccount:{SA}"));
    grant(&mut i, "roles/viewer", "allAuthenticatedUsers");
    grant(&mut i, "roles/viewer", "domain:example.com");
    let f = hits(&i, PRIMITIVE_ROLE_BINDING);
    let got: Vec<(Severity, &str)> = f.iter().map(|f| (f.severity, f.evidence[0].as_str())).collect();
    assert_eq!(
        got,
        [
            (Severity::Critical, "project binding: roles/viewer → allAuthenticatedUsers"),
            (Severity::Critical, "project binding: roles/viewer → domain:example.com"),
            (Severity::High, "project binding: roles/editor → serviceAccount:app@p.iam.gserviceaccount.com"),
        ]
    );
    assert!(f.iter().all(|f| f.resource == "//cloudresourcemanager.googleapis.com/projects/p"));
    assert_eq!(
        f[2].fix,
        "gcloud projects remove-iam-policy-binding p --member=serviceAccount:app@p.iam.gserviceaccount.com --role=roles/editor"
    );
}

#[test]
fn primitive_role_binding_near_miss_users_and_other_roles() {
    let mut i = input(vec![]);
    grant(&mut i, "roles/owner", "user:a@example.com");
    grant(&mut i, "roles/editor", "group:devs@example.com");
    grant(&mut i, "roles/run.viewer", "allAuthenticatedUsers");
    assert!(hits(&i, PRIMITIVE_ROLE_BINDING).is_empty());
}

#[test]
fn plaintext_secret_env_names_the_variable_never_the_value() {
    let mut s = svc("billing");
    s.env.push(Env { name: "DB_PASSWORD".into(), value: EnvValue::Plain("hunter2-correct-horse".into()) });
    s.env.push(Env { name: "LOG_LEVEL".into(), value: EnvValue::Plain("debug".into()) });
    let f = hits(&input(vec![s]), PLAINTEXT_SECRET_ENV);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::High);
    let all = serde_json::to_string(&f[0]).unwrap();
    assert!(all.contains("DB_PASSWORD") && !all.contains("hunter2"), "{all}");
    assert!(f[0].fix.contains("--update-secrets=DB_PASSWORD=billing-db-password:1"), "{}", f[0].fix);
}

#[test]
fn plaintext_secret_env_near_miss_secret_references_and_plain_config() {
    let mut s = svc("billing");
    s.env
        .push(Env { name: "DB_PASSWORD".into(), value: EnvValue::Secret { secret: "db".into(), version: "1".into() } });
    s.env.push(Env { name: "TOKEN_URL".into(), value: EnvValue::Plain("https://oauth2.googleapis.com/token".into()) });
    assert!(hits(&input(vec![s]), PLAINTEXT_SECRET_ENV).is_empty());
}

#[test]
fn public_internal_service_by_name_label_and_ingress() {
    let mut named = svc("internal-api");
    named.ingress = Ingress::All;
    let mut labelled = svc("orders");
    labelled.labels.insert("visibility".into(), "internal".into());
    let mut imaged = svc("frontend");
    imaged.annotations.insert("client.knative.dev/user-image".into(), "gcr.io/acme-internal/web".into());
    let mut i = input(vec![named, labelled, imaged]);
    for s in ["internal-api", "orders", "frontend"] {
        make_public(&mut i, s);
    }
    let f = hits(&i, PUBLIC_INTERNAL_SERVICE);
    let resources: Vec<&str> = f.iter().map(|f| f.resource.as_str()).collect();
    assert_eq!(resources, [format!("{SVC_RESOURCE}internal-api"), format!("{SVC_RESOURCE}orders")]);
    assert!(f[0].evidence.iter().any(|e| e.contains("its name contains `internal`")), "{:?}", f[0].evidence);
    assert!(f[1].evidence.iter().any(|e| e.contains("label `visibility: internal`")), "{:?}", f[1].evidence);
    assert_eq!(
        f[0].fix,
        "gcloud run services remove-iam-policy-binding internal-api --region=europe-west1 --project=p --member=allUsers --role=roles/run.invoker"
    );
}

#[test]
fn public_internal_service_never_quotes_an_annotation_that_looks_like_a_secret() {
    let pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----";
    let mut s = svc("orders");
    s.annotations.insert("team/signing".into(), pem.into());
    let mut i = input(vec![s]);
    make_public(&mut i, "orders");
    let f = hits(&i, PUBLIC_INTERNAL_SERVICE);
    assert_eq!(f.len(), 1, "`private` in the value marks it internal");
    let all = serde_json::to_string(&f[0]).unwrap();
    assert!(all.contains("annotation `team/signing` (its value is not shown"), "{all}");
    assert!(!all.contains("MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"), "{all}");
}

#[test]
fn public_internal_service_by_observed_callers() {
    let mut i = input(vec![svc("ledger")]);
    make_public(&mut i, "ledger");
    i.observations = Some(Observations {
        calls: Some(vec![ObservedCall::new(format!("serviceAccount:{SA}"), "ledger")]),
        ..Default::default()
    });
    assert_eq!(hits(&i, PUBLIC_INTERNAL_SERVICE).len(), 1);
    // One anonymous call: it is used from outside.
    i.observations.as_mut().unwrap().calls.as_mut().unwrap().push(ObservedCall::new("allUsers", "ledger"));
    assert!(hits(&i, PUBLIC_INTERNAL_SERVICE).is_empty());
}

#[test]
fn public_internal_service_near_miss_private_internal_service() {
    let mut s = svc("internal-api");
    s.ingress = Ingress::Internal;
    let mut i = input(vec![s]);
    i.service_policies
        .as_mut()
        .unwrap()
        .insert("internal-api".into(), policy(&[("roles/run.invoker", &[&format!("serviceAccount:{SA}")])]));
    assert!(hits(&i, PUBLIC_INTERNAL_SERVICE).is_empty());
    assert!(hits(&i, PUBLIC_SERVICE).is_empty());
}

#[test]
fn public_service_lists_every_public_service_as_info() {
    let mut i = input(vec![svc("frontend"), svc("api")]);
    make_public(&mut i, "frontend");
    let f = hits(&i, PUBLIC_SERVICE);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].severity, f[0].resource.as_str()), (Severity::Info, &*format!("{SVC_RESOURCE}frontend")));
    // A project-level invoker binding for allUsers makes every service public.
    let mut i = input(vec![svc("frontend"), svc("api")]);
    grant(&mut i, "roles/run.invoker", "allUsers");
    assert_eq!(hits(&i, PUBLIC_SERVICE).len(), 2);
}

#[test]
fn public_service_skipped_without_the_service_policy() {
    let mut i = input(vec![svc("frontend")]);
    i.service_policies.as_mut().unwrap().clear();
    let r = scan(&i);
    assert!(r.findings.iter().all(|f| f.rule != PUBLIC_SERVICE));
    assert!(r.skipped.iter().any(|s| s.rule == PUBLIC_SERVICE && s.reason.contains("frontend")), "{:?}", r.skipped);
}

#[test]
fn ingress_internal_without_iam_hits_on_public_or_disabled() {
    let mut a = svc("orders");
    a.ingress = Ingress::InternalAndCloudLoadBalancing;
    let mut b = svc("ledger");
    b.ingress = Ingress::Internal;
    b.invoker_iam_disabled = true;
    let mut i = input(vec![a, b]);
    make_public(&mut i, "orders");
    let f = hits(&i, INGRESS_INTERNAL_WITHOUT_IAM);
    assert_eq!(f.len(), 2);
    assert!(f.iter().all(|f| f.severity == Severity::High));
    let ledger = f.iter().find(|f| f.resource.ends_with("/ledger")).unwrap();
    assert!(ledger.fix.ends_with("--invoker-iam-check"), "{}", ledger.fix);
}

#[test]
fn ingress_internal_without_iam_near_miss_public_but_ingress_all() {
    let mut i = input(vec![svc("frontend")]);
    make_public(&mut i, "frontend");
    assert!(hits(&i, INGRESS_INTERNAL_WITHOUT_IAM).is_empty());
}

#[test]
fn invoker_iam_disabled_hit_and_near_miss() {
    let mut s = svc("hook");
    s.invoker_iam_disabled = true;
    s.annotations.insert("run.googleapis.com/invoker-iam-disabled".into(), "True".into());
    let f = hits(&input(vec![s, svc("other")]), INVOKER_IAM_DISABLED);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].evidence, ["annotation run.googleapis.com/invoker-iam-disabled: True"]);
    assert_eq!(f[0].fix, "gcloud run services update hook --region=europe-west1 --project=p --invoker-iam-check");
}

#[test]
fn project_level_secret_accessor_proposes_the_secrets_in_use() {
    let mut s = svc("web");
    s.env.push(Env {
        name: "DB_PASS".into(),
        value: EnvValue::Secret { secret: "projects/p/secrets/db".into(), version: "2".into() },
    });
    let mut i = input(vec![s]);
    grant(&mut i, "roles/secretmanager.secretAccessor", &format!("serviceAccount:{SA}"));
    let f = hits(&i, PROJECT_LEVEL_SECRET_ACCESSOR);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].severity, Severity::Medium);
    assert!(f[0].fix.starts_with(&format!(
        "gcloud secrets add-iam-policy-binding db --member=serviceAccount:{SA} --role=roles/secretmanager.secretAccessor"
    )), "{}", f[0].fix);
}

#[test]
fn project_level_secret_accessor_near_miss_users_and_viewer() {
    let mut i = input(vec![]);
    grant(&mut i, "roles/secretmanager.secretAccessor", "user:dev@example.com");
    grant(&mut i, "roles/secretmanager.viewer", &format!("serviceAccount:{SA}"));
    assert!(hits(&i, PROJECT_LEVEL_SECRET_ACCESSOR).is_empty());
}

#[test]
fn broad_project_role_hit_and_near_miss() {
    let mut i = input(vec![]);
    grant(&mut i, "roles/run.admin", &format!("serviceAccount:{SA}"));
    grant(&mut i, "roles/run.developer", &format!("serviceAccount:{SA}"));
    grant(&mut i, "roles/storage.admin", "user:ops@example.com");
    let f = hits(&i, BROAD_PROJECT_ROLE);
    assert_eq!(f.len(), 1);
    assert!(f[0].evidence[0].contains("roles/run.admin"));
}

#[test]
fn service_account_key_hit_and_near_miss() {
    let mut i = input(vec![]);
    i.keys.as_mut().unwrap().insert(
        SA.into(),
        vec![
            Key {
                name: format!("projects/p/serviceAccounts/{SA}/keys/abc123"),
                key_type: "USER_MANAGED".into(),
                valid_after: "2024-01-01T00:00:00Z".into(),
            },
            Key {
                name: format!("projects/p/serviceAccounts/{SA}/keys/sys1"),
                key_type: "SYSTEM_MANAGED".into(),
                valid_after: String::new(),
            },
        ],
    );
    let f = hits(&i, SERVICE_ACCOUNT_KEY);
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].resource, format!("//iam.googleapis.com/projects/p/serviceAccounts/{SA}"));
    assert_eq!(f[0].fix, format!("gcloud iam service-accounts keys delete abc123 --iam-account={SA} --project=p"));
    i.keys.as_mut().unwrap().get_mut(SA).unwrap().remove(0);
    assert!(hits(&i, SERVICE_ACCOUNT_KEY).is_empty());
}

#[test]
fn unpinned_secret_env_hit_and_near_miss() {
    let mut s = svc("web");
    s.env.push(Env { name: "A".into(), value: EnvValue::Secret { secret: "a".into(), version: "latest".into() } });
    s.env.push(Env { name: "B".into(), value: EnvValue::Secret { secret: "b".into(), version: "4".into() } });
    let f = hits(&input(vec![s]), UNPINNED_SECRET_ENV);
    assert_eq!(f.len(), 1);
    assert_eq!((f[0].severity, f[0].evidence[0].as_str()), (Severity::Low, "env `A` = secret a:latest"));
}

#[test]
fn secret_access_audit_follows_the_origin_default() {
    let mut i = input(vec![]);
    i.project_policy.as_mut().unwrap().audit_configs.clear();
    assert_eq!(hits(&i, SECRET_ACCESS_AUDIT_DISABLED).len(), 1, "Google's default is off");
    i.origin = Origin::Live;
    assert!(hits(&i, SECRET_ACCESS_AUDIT_DISABLED).is_empty(), "Gatehouse's default is on");
    i.project_policy.as_mut().unwrap().audit_configs = vec![model::policy::AuditConfig {
        service: "allServices".into(),
        audit_log_configs: vec![serde_json::json!({"logType": "ADMIN_READ"})],
    }];
    assert_eq!(hits(&i, SECRET_ACCESS_AUDIT_DISABLED).len(), 1, "an entry without DATA_READ turns it off");
}

#[test]
fn egress_bypasses_internal_ingress_configured_and_observed() {
    let mut backend = svc("ledger");
    backend.ingress = Ingress::Internal;
    let mut caller = svc("web");
    caller.service_account = Some("web@p.iam.gserviceaccount.com".into());
    caller.env.push(Env {
        name: "LEDGER_URL".into(),
        value: EnvValue::Plain("https://ledger-abc123-ew.a.run.app/api".into()),
    });
    let mut fine = svc("batch");
    fine.env = caller.env.clone();
    fine.vpc_egress = Some(Egress::AllTraffic);
    let mut watcher = svc("cron");
    watcher.service_account = Some("cron@p.iam.gserviceaccount.com".into());
    let mut i = input(vec![backend, caller, fine, watcher]);
    i.observations = Some(Observations {
        calls: Some(vec![ObservedCall::new("serviceAccount:cron@p.iam.gserviceaccount.com", "ledger")]),
        ..Default::default()
    });
    let f = hits(&i, EGRESS_BYPASSES_INTERNAL_INGRESS);
    let resources: Vec<&str> = f.iter().map(|f| f.resource.as_str()).collect();
    assert_eq!(resources, [format!("{SVC_RESOURCE}cron"), format!("{SVC_RESOURCE}web")]);
    assert!(f[1].evidence[0].contains("`LEDGER_URL`"), "{:?}", f[1].evidence);
    assert!(f[1].fix.ends_with("--network=default --subnet=default --vpc-egress=all-traffic"));
}

#[test]
fn egress_bypass_names_the_calling_service_not_every_service_of_its_account() {
    let mut backend = svc("ledger");
    backend.ingress = Ingress::Internal;
    // Three services share one account; only `probe`'s instance called `ledger`.
    let mut i = input(vec![backend, svc("probe"), svc("web"), svc("api")]);
    let account = format!("serviceAccount:{SA}");
    let call = ObservedCall { caller: account.clone(), from_service: Some("probe".into()), target: "ledger".into() };
    i.observations = Some(Observations { calls: Some(vec![call]), ..Default::default() });
    let f = hits(&i, EGRESS_BYPASSES_INTERNAL_INGRESS);
    let resources: Vec<&str> = f.iter().map(|f| f.resource.as_str()).collect();
    assert_eq!(resources, [format!("{SVC_RESOURCE}probe")]);
    assert!(f[0].evidence[0].ends_with("from this service's instance"), "{:?}", f[0].evidence);
    // A call that does not say its service falls back to the account: every service running as it.
    i.observations.as_mut().unwrap().calls = Some(vec![ObservedCall::new(account, "ledger")]);
    assert_eq!(hits(&i, EGRESS_BYPASSES_INTERNAL_INGRESS).len(), 3);
}

#[test]
fn unused_permission_proposes_roles_on_the_resources_used() {
    let mut i = input(vec![]);
    let member = format!("serviceAccount:{SA}");
    grant(&mut i, "roles/editor", &member);
    grant(&mut i, "roles/run.invoker", &member);
    let secret = "//secretmanager.googleapis.com/projects/p/secrets/db".to_owned();
    let service = format!("{SVC_RESOURCE}ledger");
    i.observations = Some(Observations {
        used_permissions: Some(BTreeMap::from([(
            SA.to_owned(),
            BTreeSet::from([
                ("secretmanager.versions.access".to_owned(), secret),
                ("run.routes.invoke".to_owned(), service),
            ]),
        )])),
        ..Default::default()
    });
    // Reads are not logged (ADMIN_READ off, Google's default): the account's roles cannot be judged.
    i.project_policy.as_mut().unwrap().audit_configs.clear();
    grant(&mut i, "roles/run.viewer", &member);
    let r = scan(&i);
    assert!(r.findings.iter().all(|f| f.rule != UNUSED_PERMISSION), "{:?}", r.findings);
    let skipped = r.skipped.iter().find(|s| s.rule == UNUSED_PERMISSION).expect("skipped with a reason");
    assert!(skipped.reason.contains(&format!("not in the audit log for {SA}")), "{}", skipped.reason);
    assert!(skipped.reason.contains(r#"{"service":"allServices","auditLogConfigs":[{"logType":"ADMIN_READ"}]}"#));
    // An exempted account is not observed either.
    let admin_read = |exempt: &[&str]| model::policy::AuditConfig {
        service: "allServices".into(),
        audit_log_configs: vec![serde_json::json!({"logType": "ADMIN_READ", "exemptedMembers": exempt})],
    };
    i.project_policy.as_mut().unwrap().audit_configs = vec![admin_read(&[&member])];
    assert!(hits(&i, UNUSED_PERMISSION).is_empty());
    i.project_policy.as_mut().unwrap().audit_configs = vec![admin_read(&[])];
    let f = hits(&i, UNUSED_PERMISSION);
    assert_eq!(f.len(), 1, "run.viewer's permissions were not used: {f:?}");
    assert!(f[0].evidence.iter().any(|e| e.contains("roles/run.viewer")), "{:?}", f[0].evidence);
    assert!(!f[0].evidence.iter().any(|e| e.contains("roles/editor →")), "editor was used: {:?}", f[0].evidence);
    i.project_policy.as_mut().unwrap().bindings.retain(|b| b.role != "roles/run.viewer");
    let f = hits(&i, UNUSED_PERMISSION);
    assert!(f.is_empty(), "editor holds run.routes.invoke, which was used: {f:?}");
    // Without the invoke, editor and run.invoker are both unused.
    i.observations
        .as_mut()
        .unwrap()
        .used_permissions
        .as_mut()
        .unwrap()
        .get_mut(SA)
        .unwrap()
        .retain(|(p, _)| p.starts_with("secret"));
    let f = hits(&i, UNUSED_PERMISSION);
    assert_eq!(f.len(), 1);
    assert!(f[0].fix.contains(&format!(
        "gcloud secrets add-iam-policy-binding db --project=p --member={member} --role=roles/secretmanager.secretAccessor"
    )), "{}", f[0].fix);
    assert!(f[0].fix.contains(
        "remove-iam-policy-binding p --member=serviceAccount:app@p.iam.gserviceaccount.com --role=roles/editor"
    ));
}

#[test]
fn unused_permission_and_sandbox_are_live_only() {
    let r = scan(&input(vec![]));
    assert!(r.skipped.iter().any(|s| s.rule == UNUSED_PERMISSION && s.reason.starts_with("live only")));
    let mut i = input(vec![]);
    i.observations = Some(Observations { network_controls_enforced: Some(false), ..Default::default() });
    let f = hits(&i, SANDBOX_DISABLED);
    assert_eq!((f.len(), f[0].severity), (1, Severity::High));
    i.observations = Some(Observations { network_controls_enforced: Some(true), ..Default::default() });
    assert!(hits(&i, SANDBOX_DISABLED).is_empty());
}

#[test]
fn missing_parts_skip_rules_with_a_reason() {
    let i = Input { project_id: "p".into(), ..Default::default() };
    let r = scan(&i);
    assert!(r.findings.is_empty());
    let rules: BTreeSet<&str> = r.skipped.iter().map(|s| s.rule).collect();
    assert_eq!(rules.len(), RULES.len(), "{:?}", r.skipped);
}

#[test]
fn rule_ids_are_the_fixed_ones() {
    let ids: Vec<&str> = RULES.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        [
            "default-service-account",
            "primitive-role-binding",
            "plaintext-secret-env",
            "public-internal-service",
            "public-service",
            "ingress-internal-without-iam",
            "invoker-iam-disabled",
            "project-level-secret-accessor",
            "broad-project-role",
            "service-account-key",
            "unpinned-secret-env",
            "secret-access-audit-disabled",
            "egress-bypasses-internal-ingress",
            "unused-permission",
            "sandbox-disabled",
            "public-secret",
        ]
    );
}

#[test]
fn a_secret_anyone_can_read_is_critical_on_the_secret_or_the_project() {
    let mut i = input(vec![svc("web")]);
    let secrets = i.secret_policies.as_mut().unwrap();
    secrets.insert("api-key".into(), policy(&[("roles/secretmanager.secretAccessor", &["allUsers"])]));
    // Near misses: a public role that cannot read payloads, and a reader that is not the public.
    secrets.insert("listed".into(), policy(&[("roles/secretmanager.viewer", &["allAuthenticatedUsers"])]));
    secrets.insert(
        "db-pass".into(),
        policy(&[("roles/secretmanager.secretAccessor", &[&*format!("serviceAccount:{SA}")])]),
    );
    let f = hits(&i, PUBLIC_SECRET);
    assert_eq!(f.len(), 1, "{f:?}");
    assert_eq!(
        (f[0].severity, f[0].resource.as_str()),
        (Severity::Critical, "//secretmanager.googleapis.com/projects/p/secrets/api-key")
    );
    assert_eq!(f[0].evidence, ["secret binding: roles/secretmanager.secretAccessor → allUsers"]);
    assert_eq!(
        f[0].fix,
        "gcloud secrets remove-iam-policy-binding api-key --member=allUsers --role=roles/secretmanager.secretAccessor --project=p"
    );

    let mut i = input(vec![svc("web")]);
    grant(&mut i, "roles/secretmanager.secretAccessor", "allAuthenticatedUsers");
    let f = hits(&i, PUBLIC_SECRET);
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0].message.contains("every secret of project p"), "{f:?}");
    // A basic role for the public is `primitive-role-binding`'s, once.
    let mut i = input(vec![svc("web")]);
    grant(&mut i, "roles/owner", "allUsers");
    assert!(hits(&i, PUBLIC_SECRET).is_empty());
    assert_eq!(hits(&i, PRIMITIVE_ROLE_BINDING).len(), 1);
}

#[test]
fn least_privileged_roles_cover_what_was_used_with_the_fewest_permissions() {
    let c = Catalogue::predefined();
    let set = |ps: &[&'static str]| ps.iter().copied().collect::<BTreeSet<&str>>();
    assert_eq!(least_privileged_roles(&c, &set(&["run.routes.invoke"])), ["roles/run.invoker"]);
    // run.developer and run.admin both hold these; the developer role holds fewer permissions.
    assert_eq!(least_privileged_roles(&c, &set(&["run.services.get", "run.services.update"])), ["roles/run.developer"]);
    let mut two = least_privileged_roles(&c, &set(&["run.routes.invoke", "secretmanager.versions.access"]));
    two.sort();
    assert_eq!(two.len(), 2, "{two:?}");
    assert!(two.contains(&"roles/secretmanager.secretAccessor".to_owned()), "{two:?}");
    assert!(least_privileged_roles(&c, &set(&["no.such.permission"])).is_empty());
    // One broad role (iam.securityReviewer) holds both lists; two viewer roles grant far fewer permissions.
    let mut lists = least_privileged_roles(&c, &set(&["run.services.list", "secretmanager.secrets.list"]));
    lists.sort();
    assert_eq!(lists, ["roles/run.viewer", "roles/secretmanager.viewer"]);
}
