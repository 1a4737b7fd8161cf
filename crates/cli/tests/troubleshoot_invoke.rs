//! `policy-troubleshoot invoke` agrees with the gateway: for every cell of (service policy, caller, token audience)
//! the status the troubleshooter says this host's gateway answers is the status a real call through the gateway
//! gets. With the sandbox ingress is enforced, so the internal-ingress service answers the host shell 404, as Cloud
//! Run does; without it the troubleshooter says Cloud Run's answer and that the gateway lets the call through.

mod common;

use common::{get, sa_token, url, user_token, Platform};
use serde_json::Value;
use std::collections::BTreeSet;

const HELLO: &str = "--image=us-docker.pkg.dev/cloudrun/container/hello";
const REGION: &str = "--region=us-central1";
const CUSTOM: &str = "https://api.example.com";
const OWNER: &str = "owner@localhost";
const CALLER: &str = "caller@local-project.iam.gserviceaccount.com";
const STRANGER: &str = "stranger@local-project.iam.gserviceaccount.com";

fn troubleshoot(p: &Platform, service: &str, who: &str, aud: Option<&str>) -> Value {
    let mut args = vec!["policy-troubleshoot", "invoke", service, REGION];
    let principal = format!("--principal-email={who}");
    args.push(&principal);
    let audience = aud.map(|a| format!("--audience={a}"));
    if let Some(a) = &audience {
        args.push(a);
    }
    p.json(&args)
}

#[test]
fn policy_troubleshoot_invoke_agrees_with_the_gateway_on_every_cell() {
    let p = Platform::start();
    for sa in ["caller", "stranger"] {
        p.ok(&["iam", "service-accounts", "create", sa]);
    }
    p.let_owner_impersonate(CALLER);
    p.let_owner_impersonate(STRANGER);
    p.ok(&["run", "deploy", "private", HELLO, REGION]);
    p.ok(&["run", "deploy", "public", HELLO, REGION, "--allow-unauthenticated"]);
    p.ok(&["run", "deploy", "open", HELLO, REGION, "--no-invoker-iam-check"]);
    p.ok(&["run", "deploy", "authn", HELLO, REGION]);
    p.ok(&["run", "deploy", "internal", HELLO, REGION, "--ingress=internal"]);
    p.ok(&["run", "deploy", "custom", HELLO, REGION, &format!("--add-custom-audiences={CUSTOM}")]);
    let member = format!("--member=serviceAccount:{CALLER}");
    for s in ["private", "internal", "custom"] {
        p.ok(&["run", "services", "add-iam-policy-binding", s, REGION, &member, "--role=roles/run.invoker"]);
    }
    p.ok(&[
        "run",
        "services",
        "add-iam-policy-binding",
        "authn",
        REGION,
        "--member=allAuthenticatedUsers",
        "--role=roles/run.invoker",
    ]);

    let mut cells = 0;
    let mut statuses = BTreeSet::new();
    let mut mismatches = Vec::new();
    for service in ["private", "public", "open", "authn", "internal", "custom"] {
        let own = url(&p, service);
        let other = url(&p, if service == "public" { "private" } else { "public" });
        let mut audiences = vec![own.clone(), format!("{own}/"), other];
        if service == "custom" {
            audiences.push(CUSTOM.to_owned());
        }
        for who in [OWNER, CALLER, STRANGER, "allUsers"] {
            let auds: Vec<Option<&str>> =
                if who == "allUsers" { vec![None] } else { audiences.iter().map(|a| Some(a.as_str())).collect() };
            for aud in auds {
                let said = troubleshoot(&p, service, who, aud);
                let token = aud.map(|a| if who == OWNER { user_token(&p, a) } else { sa_token(&p, who, a) });
                let (got, _) = get(&own, token.as_deref());
                let predicted = said["gatewayStatus"].as_u64().unwrap() as u16;
                cells += 1;
                statuses.insert(got);
                if predicted != got {
                    mismatches.push(format!(
                        "{service} / {who} / {aud:?}: troubleshooter {predicted}, gateway {got}\n{said:#}"
                    ));
                }
                if service == "internal" {
                    assert_eq!(said["status"], 404, "Cloud Run refuses the internet at internal ingress: {said:#}");
                    assert_eq!(said["verdicts"][0]["outcome"], "FAIL", "{said:#}");
                } else {
                    assert_eq!(said["status"], said["gatewayStatus"], "{said:#}");
                }
            }
        }
    }
    assert!(mismatches.is_empty(), "{} of {cells} cells disagree:\n{}", mismatches.len(), mismatches.join("\n"));
    let mut every = BTreeSet::from([200, 401, 403]);
    if p.daemon_json()["network_controls_enforced"] == true {
        every.insert(404);
    }
    assert_eq!(statuses, every, "the table covers every answer");
    assert!(cells >= 60, "{cells}");

    // From a VPC, internal ingress admits the call, and the text form shows every control.
    let said = troubleshoot(&p, "internal", CALLER, None);
    assert_eq!(said["status"], 404);
    let vpc = p.json(&[
        "policy-troubleshoot",
        "invoke",
        "internal",
        REGION,
        &format!("--principal-email={CALLER}"),
        "--source=vpc",
    ]);
    assert_eq!((vpc["status"].as_u64(), vpc["gatewayStatus"].as_u64()), (Some(200), Some(200)), "{vpc:#}");
    let text = p.ok(&["policy-troubleshoot", "invoke", "private", REGION, &format!("--principal-email={STRANGER}")]);
    for line in [
        "ingress         PASS",
        "public access   NO    private: no allUsers binding",
        "token audience  PASS",
        "invoker IAM     FAIL",
        "status   403",
    ] {
        assert!(text.contains(line), "`{line}` missing in:\n{text}");
    }
    let e = p.fail(&["policy-troubleshoot", "invoke", "private", REGION, "--principal-email=a@b.co", "--source=moon"]);
    assert!(e.contains("invalid --source `moon`"), "{e}");
}
