//! Properties: no report form ever quotes a plain env value, whatever its name or shape, and scanning arbitrary
//! service documents never panics.

use advisor::input::{Env, EnvValue, Ingress, Input, Service};
use advisor::load::{parse_services, Hints};
use proptest::prelude::*;

const NAMES: [&str; 8] =
    ["DB_PASSWORD", "API_KEY", "GITHUB_TOKEN", "DATABASE_URL", "SENTRY_DSN", "LOG_LEVEL", "BACKEND_URL", "CONFIG"];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9+/=_.-]{8,64}",
        "ghp_[A-Za-z0-9]{36}",
        "postgres://app:[a-z0-9]{6,20}@10\\.0\\.0\\.[0-9]/db",
        "-----BEGIN PRIVATE KEY-----\n[A-Za-z0-9+/]{20,40}\n-----END PRIVATE KEY-----",
    ]
    // A marker no rule, name or URL of the input contains, so a hit can only be the value itself.
    .prop_map(|v| format!("Qx7{v}"))
}

proptest! {
    #[test]
    fn no_report_quotes_a_plain_env_value(
        vars in proptest::collection::vec((0..NAMES.len(), value()), 1..6),
        internal in any::<bool>(),
    ) {
        let env: Vec<Env> = vars
            .iter()
            .map(|(n, v)| Env { name: NAMES[*n].into(), value: EnvValue::Plain(v.clone()) })
            .collect();
        let web = Service { name: "web".into(), region: "r".into(), env, ..Default::default() };
        let api = Service {
            name: "api".into(),
            region: "r".into(),
            ingress: if internal { Ingress::Internal } else { Ingress::All },
            urls: vec!["https://api-abc-ew.a.run.app".into()],
            ..Default::default()
        };
        let input = Input { project_id: "p".into(), services: Some(vec![web, api]), ..Default::default() };
        let report = advisor::scan(&input);
        let forms = [report.to_text(false), report.to_json().to_string(), report.to_sarif().to_string()];
        for (_, v) in &vars {
            for form in &forms {
                prop_assert!(!form.contains(v.as_str()), "the value leaked");
                prop_assert!(!form.contains("Qx7"), "part of a value leaked");
            }
        }
    }

    #[test]
    fn arbitrary_service_documents_never_panic(text in "(apiVersion: serving.knative.dev/v1\nkind: Service\n)?[ -~\n]{0,300}") {
        for json in [false, true] {
            if let Ok(services) = parse_services(&text, json, &mut Hints::default()) {
                let input = Input { project_id: "p".into(), services: Some(services), ..Default::default() };
                let _ = advisor::scan(&input).to_sarif();
            }
        }
    }
}
