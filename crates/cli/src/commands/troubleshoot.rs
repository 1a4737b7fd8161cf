//! `policy-troubleshoot iam RESOURCE --principal-email=E --permission=P` and
//! `policy-troubleshoot invoke SERVICE --principal-email=E [--source=internet|load-balancer|vpc] [--audience=AUD]`.

use super::{policy, seg};
use crate::args::{Global, TroubleshootCmd};
use crate::client::Client;
use crate::format::{self, Default};
use advisor::invocation::{self, Call, Outcome, Source};
use anyhow::{anyhow, Result};
use serde_json::{json, Value};

pub fn run(g: &Global, cmd: TroubleshootCmd) -> Result<u8> {
    let client = Client::new(g)?;
    let (resource, principal_email, permission) = match cmd {
        TroubleshootCmd::Iam { resource, principal_email, permission } => (resource, principal_email, permission),
        TroubleshootCmd::Invoke { service, principal_email, source, audience, region } => {
            return invoke(&client, g, &service, &principal_email, &source, audience.as_deref(), &region);
        }
    };
    let mut v = iam_troubleshoot(&client, &principal_email, &resource, &permission)?;
    let text = v.as_object_mut().and_then(|o| o.remove("text"));
    match (&g.format, text) {
        (None, Some(text)) => {
            outln!("{}", v["access"].as_str().unwrap_or("UNKNOWN"));
            outln!("{}", text.as_str().unwrap_or_default().trim_end());
        }
        _ => format::print(&v, g, Default::Yaml)?,
    }
    Ok(0)
}

fn iam_troubleshoot(client: &Client, principal: &str, resource: &str, permission: &str) -> Result<Value> {
    let body = json!({ "accessTuple": {
        "principal": principal, "fullResourceName": resource, "permission": permission } });
    client.post("/v1/iam:troubleshoot", &body)
}

/// The facts come from the API (the service, its policy and the project's, the IAM decision for the principal);
/// `advisor::invocation::walk` puts them in the gateway's order.
fn invoke(
    client: &Client,
    g: &Global,
    service: &str,
    email: &str,
    source: &str,
    audience: Option<&str>,
    region: &Option<String>,
) -> Result<u8> {
    let source = Source::parse(source)
        .ok_or_else(|| anyhow!("invalid --source `{source}`; use internet, load-balancer or vpc"))?;
    let project = client.project(g);
    let region = super::region(client, region);
    let path = format!("/v2/projects/{}/locations/{}/services/{}", seg(&project), seg(&region), seg(service));
    let raw = client.get(&path)?;
    let svc = advisor::load::parse_service(&raw, &mut advisor::load::Hints::default())
        .map_err(|e| anyhow!("service [{service}]: {e}"))?;
    let custom: Vec<String> =
        raw["customAudiences"].as_array().into_iter().flatten().filter_map(|a| a.as_str().map(str::to_owned)).collect();
    let to_policy = |v: Value| -> Result<model::Policy> { Ok(serde_json::from_value(v)?) };
    let service_policy = to_policy(policy::get(client, &path)?)?;
    let project_policy = to_policy(policy::get(client, &format!("/v1/projects/{}", seg(&project)))?)?;
    let public = advisor::rules::public_grants(&iam::Catalogue::predefined(), &service_policy, Some(&project_policy));
    let resource = format!("//run.googleapis.com/projects/{project}/locations/{region}/services/{service}");
    let anonymous = email == "allUsers";
    let member = if anonymous {
        None
    } else if email.ends_with(".gserviceaccount.com") {
        Some(format!("serviceAccount:{email}"))
    } else {
        Some(format!("user:{email}"))
    };
    // A disabled account's tokens act for nobody, whatever its bindings (the gateway refuses them).
    let disabled = email.ends_with(".gserviceaccount.com")
        && client
            .get(&format!("/v1/projects/-/serviceAccounts/{}", seg(email)))
            .is_ok_and(|sa| sa["disabled"].as_bool() == Some(true));
    let iam = match anonymous {
        true => None,
        false if disabled => Some((false, format!("service account `{email}` is disabled: its tokens act for nobody"))),
        false => {
            let v = iam_troubleshoot(client, email, &resource, "run.routes.invoke")?;
            Some((v["access"] == "GRANTED", v["text"].as_str().unwrap_or_default().trim_end().to_owned()))
        }
    };
    let walk = invocation::walk(&Call {
        service: &svc,
        custom_audiences: &custom,
        public: &public,
        source,
        audience,
        principal: member.as_deref(),
        iam,
        // Without a sandbox (daemon.json says so) the gateway cannot tell sources apart and admits every one.
        ingress_enforced: client.daemon.network_controls_enforced,
    });
    if g.format.is_some() {
        let v = json!({
            "service": resource,
            "principal": member.as_deref().unwrap_or("allUsers"),
            "source": source,
            "verdicts": walk.verdicts,
            "status": walk.status,
            "gatewayStatus": walk.gateway_status,
            "reason": walk.reason,
        });
        format::print(&v, g, Default::Yaml)?;
        return Ok(0);
    }
    outln!("service  {resource}");
    outln!(
        "caller   {} from {}",
        member.as_deref().unwrap_or("allUsers (no token)"),
        serde_json::to_value(source)?.as_str().unwrap_or_default()
    );
    for v in &walk.verdicts {
        let outcome = match v.outcome {
            Outcome::Pass => "PASS",
            Outcome::Fail => "FAIL",
            Outcome::No => "NO",
            Outcome::NotChecked => "-",
        };
        let mut lines = v.detail.lines();
        outln!("{:<15} {outcome:<5} {}", v.control, lines.next().unwrap_or_default());
        for l in lines {
            outln!("{:<21} {l}", "");
        }
    }
    outln!("status   {} ({}); this host's gateway answers {}", walk.status, walk.reason, walk.gateway_status);
    Ok(0)
}
