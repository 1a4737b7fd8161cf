//! An offline scan of 1,000 services and 10,000 bindings (target ≤ 1 s): the export is written to
//! `target/advisor-bench/export` (kept, so the release CLI can be timed on it too), then measured as
//! `load_dir` + `scan` (what `advisor scan --offline` does) and as `scan` alone.
//!
//! Per service: a v1 export YAML (5 plain env vars, one of them secret-looking, 1 secret reference, some internal
//! ingress, some on the default account) and an IAM policy with 9 bindings; the project policy holds 1,000 more.

use criterion::{criterion_group, criterion_main, Criterion};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

const SERVICES: usize = 1_000;
const BINDINGS_PER_SERVICE: usize = 9;
const PROJECT_BINDINGS: usize = 1_000;

fn write_export(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("services")).unwrap();
    std::fs::create_dir_all(dir.join("keys")).unwrap();
    let roles = ["roles/run.invoker", "roles/run.viewer", "roles/run.developer"];
    let mut bindings = Vec::new();
    for i in 0..PROJECT_BINDINGS {
        let role =
            ["roles/viewer", "roles/logging.logWriter", "roles/secretmanager.secretAccessor", "roles/run.admin"][i % 4];
        bindings.push(format!(
            r#"{{"role": "{role}", "members": ["serviceAccount:sa{i}@bench.iam.gserviceaccount.com"]}}"#
        ));
    }
    let project = format!(r#"{{"version": 1, "etag": "BwY=", "bindings": [{}]}}"#, bindings.join(","));
    std::fs::write(dir.join("project-iam.json"), project).unwrap();
    let mut accounts = Vec::new();
    for i in 0..SERVICES {
        let ingress = if i % 10 == 0 { "internal" } else { "all" };
        let account = if i % 7 == 0 {
            String::new()
        } else {
            format!("      serviceAccountName: sa{i}@bench.iam.gserviceaccount.com\n")
        };
        let mut yaml = format!(
            "apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata:\n  name: svc-{i}\n  namespace: '123456789012'\n  labels:\n    cloud.googleapis.com/location: europe-west1\n  annotations:\n    run.googleapis.com/ingress: {ingress}\nspec:\n  template:\n    spec:\n{account}      containers:\n      - image: europe-docker.pkg.dev/bench/app/svc:{i}\n        env:\n"
        );
        for (name, value) in [
            ("LOG_LEVEL", "info".to_owned()),
            ("BACKEND_URL", format!("https://svc-{}-x7k2abcdq-ew.a.run.app", (i + 10) / 10 * 10)),
            ("FEATURE_FLAGS", "a,b,c".to_owned()),
            ("API_TOKEN", format!("value-{i}")),
            ("REGION", "europe-west1".to_owned()),
        ] {
            let _ = write!(yaml, "        - name: {name}\n          value: '{value}'\n");
        }
        yaml.push_str(
            "        - name: DB_PASSWORD\n          valueFrom:\n            secretKeyRef: {name: db, key: latest}\n",
        );
        std::fs::write(dir.join(format!("services/svc-{i}.yaml")), yaml).unwrap();
        let members: Vec<String> = (0..BINDINGS_PER_SERVICE)
            .map(|j| {
                let member = if i % 50 == 0 && j == 0 {
                    "allUsers".to_owned()
                } else {
                    format!("serviceAccount:caller{j}@bench.iam.gserviceaccount.com")
                };
                format!(r#"{{"role": "{}", "members": ["{member}"]}}"#, roles[j % roles.len()])
            })
            .collect();
        std::fs::write(
            dir.join(format!("services/svc-{i}.iam.json")),
            format!(r#"{{"bindings": [{}]}}"#, members.join(",")),
        )
        .unwrap();
        accounts.push(format!(r#"{{"email": "sa{i}@bench.iam.gserviceaccount.com", "projectId": "bench"}}"#));
        std::fs::write(dir.join(format!("keys/sa{i}@bench.iam.gserviceaccount.com.json")), "[]").unwrap();
    }
    std::fs::write(dir.join("service-accounts.json"), format!("[{}]", accounts.join(","))).unwrap();
}

fn bench(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/advisor-bench/export");
    write_export(&dir);
    let input = advisor::load::load_dir(&dir, None).unwrap();
    let services = input.services.as_ref().unwrap().len();
    let bindings: usize = input
        .project_policy
        .iter()
        .chain(input.service_policies.as_ref().unwrap().values())
        .map(|p| p.bindings.len())
        .sum();
    assert_eq!((services, bindings), (SERVICES, SERVICES * BINDINGS_PER_SERVICE + PROJECT_BINDINGS));
    let report = advisor::scan(&input);
    eprintln!("{} findings over {services} services and {bindings} bindings", report.findings.len());
    let mut g = c.benchmark_group("advisor");
    g.sample_size(10);
    g.bench_function("offline_scan_1000_services_10000_bindings", |b| {
        b.iter(|| advisor::scan(&advisor::load::load_dir(&dir, None).unwrap()))
    });
    g.bench_function("scan_only_1000_services_10000_bindings", |b| b.iter(|| advisor::scan(&input)));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
