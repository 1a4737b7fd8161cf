//! The fixture projects of issue 7: `planted` has every rule's mistake (the two live-only rules get their
//! observations in code), `recommended` follows Google's guidance and must produce nothing above `info`.

use advisor::input::Observations;
use advisor::load::load_dir;
use advisor::{scan, Severity};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

const PROJECT: &str = "//cloudresourcemanager.googleapis.com/projects/acme-prod";
const RUN: &str = "//run.googleapis.com/projects/acme-prod/locations/europe-west1/services/";

#[test]
fn every_planted_mistake_is_found_with_its_rule_resource_and_severity() {
    let mut input = load_dir(&fixture("planted"), None).expect("the planted fixture loads");
    assert_eq!(input.project_id, "acme-prod");
    assert_eq!(input.project_number.as_deref(), Some("123456789012"));
    // Live-only rules: what the platform would have observed.
    let deployer = "deployer@acme-prod.iam.gserviceaccount.com";
    input.observations = Some(Observations {
        calls: Some(vec![]),
        used_permissions: Some(BTreeMap::from([(
            deployer.to_owned(),
            BTreeSet::from([(
                "secretmanager.versions.access".to_owned(),
                "//secretmanager.googleapis.com/projects/acme-prod/secrets/db-password".to_owned(),
            )]),
        )])),
        network_controls_enforced: Some(false),
    });
    let report = scan(&input);
    let got: BTreeSet<(&str, String, Severity)> =
        report.findings.iter().map(|f| (f.rule, f.resource.clone(), f.severity)).collect();
    let want: BTreeSet<(&str, String, Severity)> = [
        ("default-service-account", format!("{RUN}frontend"), Severity::High),
        ("primitive-role-binding", PROJECT.to_owned(), Severity::High),
        ("primitive-role-binding", PROJECT.to_owned(), Severity::Critical),
        ("plaintext-secret-env", format!("{RUN}frontend"), Severity::High),
        ("public-internal-service", format!("{RUN}internal-api"), Severity::High),
        ("public-service", format!("{RUN}frontend"), Severity::Info),
        ("public-service", format!("{RUN}internal-api"), Severity::Info),
        ("public-service", format!("{RUN}ledger"), Severity::Info),
        ("ingress-internal-without-iam", format!("{RUN}ledger"), Severity::High),
        ("invoker-iam-disabled", format!("{RUN}ledger"), Severity::High),
        ("project-level-secret-accessor", PROJECT.to_owned(), Severity::Medium),
        ("broad-project-role", PROJECT.to_owned(), Severity::Medium),
        (
            "service-account-key",
            "//iam.googleapis.com/projects/acme-prod/serviceAccounts/ci@acme-prod.iam.gserviceaccount.com".to_owned(),
            Severity::High,
        ),
        ("unpinned-secret-env", format!("{RUN}internal-api"), Severity::Low),
        ("secret-access-audit-disabled", PROJECT.to_owned(), Severity::Medium),
        ("egress-bypasses-internal-ingress", format!("{RUN}frontend"), Severity::Medium),
        ("unused-permission", format!("//iam.googleapis.com/projects/acme-prod/serviceAccounts/{deployer}"), Severity::Low),
        ("unused-permission", "//iam.googleapis.com/projects/acme-prod/serviceAccounts/123456789012-compute@developer.gserviceaccount.com".to_owned(), Severity::Low),
        ("unused-permission", "//iam.googleapis.com/projects/acme-prod/serviceAccounts/api@acme-prod.iam.gserviceaccount.com".to_owned(), Severity::Low),
        ("sandbox-disabled", PROJECT.to_owned(), Severity::High),
        ("public-secret", "//secretmanager.googleapis.com/projects/acme-prod/secrets/stripe-key".to_owned(), Severity::Critical),
    ]
    .into_iter()
    .collect();
    assert_eq!(got, want, "\nmissing: {:?}\nunexpected: {:?}", want.difference(&got), got.difference(&want));
    // Every rule of the catalogue is planted.
    let rules: BTreeSet<&str> = report.findings.iter().map(|f| f.rule).collect();
    assert_eq!(rules.len(), advisor::rules::RULES.len());
    assert!(report.skipped.is_empty(), "{:?}", report.skipped);
    // The plain value is named, never shown.
    let json = report.to_json().to_string();
    assert!(json.contains("STRIPE_API_KEY") && !json.contains("not-a-real-key"), "{json}");
    assert_eq!(report.exit_code(Severity::High), 1);
}

#[test]
fn the_recommended_project_has_nothing_above_info() {
    let report = scan(&load_dir(&fixture("recommended"), None).expect("the recommended fixture loads"));
    let above: Vec<_> = report.findings.iter().filter(|f| f.severity > Severity::Info).collect();
    assert!(above.is_empty(), "{above:#?}");
    let info: Vec<(&str, &str)> = report.findings.iter().map(|f| (f.rule, f.resource.as_str())).collect();
    assert_eq!(info, [("public-service", &*format!("{RUN}web"))]);
    assert_eq!(report.exit_code(Severity::Low), 0);
    let skipped: Vec<&str> = report.skipped.iter().map(|s| s.rule).collect();
    assert_eq!(skipped, ["unused-permission", "sandbox-disabled"]);
}

#[test]
fn missing_files_skip_their_checks_and_say_why() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(fixture("planted/project-iam.json"), dir.path().join("project-iam.json")).unwrap();
    let report = scan(&load_dir(dir.path(), Some("acme-prod")).unwrap());
    let reasons: BTreeMap<&str, &str> = report.skipped.iter().map(|s| (s.rule, s.reason.as_str())).collect();
    assert!(reasons["plaintext-secret-env"].contains("services/"), "{reasons:?}");
    assert!(reasons["service-account-key"].contains("keys/EMAIL.json"), "{reasons:?}");
    // What the project policy alone shows is still found.
    assert!(report.findings.iter().any(|f| f.rule == "primitive-role-binding"));
    assert!(!reasons.contains_key("primitive-role-binding"));
}

#[test]
fn malformed_files_are_named_with_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("project-iam.json"), "{\"bindings\": [").unwrap();
    let e = load_dir(dir.path(), None).unwrap_err().to_string();
    assert!(e.contains("project-iam.json") && e.contains("invalid policy JSON"), "{e}");

    std::fs::remove_file(dir.path().join("project-iam.json")).unwrap();
    std::fs::create_dir(dir.path().join("services")).unwrap();
    std::fs::write(
        dir.path().join("services/web.yaml"),
        "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {name: web}\n---\n- [unclosed\n",
    )
    .unwrap();
    let e = load_dir(dir.path(), None).unwrap_err().to_string();
    assert!(e.contains("web.yaml") && e.contains("invalid YAML"), "{e}");

    std::fs::write(dir.path().join("services/web.yaml"), "apiVersion: v1\nkind: Secret\n").unwrap();
    let e = load_dir(dir.path(), None).unwrap_err().to_string();
    assert!(e.contains("web.yaml") && e.contains("not a Cloud Run service"), "{e}");

    let e = load_dir(&dir.path().join("nowhere"), None).unwrap_err().to_string();
    assert!(e.contains("not a directory"), "{e}");
}
