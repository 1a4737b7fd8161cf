//! `advisor scan [--offline DIR] [--fail-on SEVERITY]`: the classic Cloud Run mistakes, in a project exported from
//! Google Cloud (`--offline`) or on the running platform, read through its REST API as the active account.
//!
//! Exit status: 1 when a finding is at or above `--fail-on`, 0 otherwise, 2 when the input cannot be read.

use super::{policy, seg};
use crate::args::{AdvisorCmd, Global};
use crate::client::Client;
use advisor::input::{Input, Observations, ObservedCall, Origin};
use advisor::load::{self, Hints};
use advisor::{Report, Severity, Skipped};
use anyhow::{anyhow, Context, Result};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::io::IsTerminal;

/// Exit status for input that cannot be read or used (a flag value the scan does not know, an unreadable export,
/// an unreachable platform): 1 is kept for "findings at or above `--fail-on`", so CI can tell the two apart.
const UNREADABLE: u8 = 2;

/// Reports unusable input as every command reports errors, and returns [`UNREADABLE`].
fn unusable(msg: impl std::fmt::Display) -> Result<u8> {
    eprintln!("ERROR: (gatehouse.advisor.scan) {msg}");
    Ok(UNREADABLE)
}

pub fn run(g: &Global, cmd: AdvisorCmd) -> Result<u8> {
    let AdvisorCmd::Scan { offline, fail_on } = cmd;
    let Some(fail_on) = Severity::parse(&fail_on) else {
        return unusable(format_args!("invalid --fail-on `{fail_on}`; use one of {}", Severity::NAMES.join(", ")));
    };
    let format = g.format.as_deref().unwrap_or("text");
    if !matches!(format, "text" | "json" | "sarif") {
        return unusable(format_args!("invalid --format `{format}` for advisor scan; use text, json or sarif"));
    }
    let report = match offline {
        Some(dir) => match load::load_dir(&dir, g.project.as_deref()) {
            Ok(input) => advisor::scan(&input),
            Err(e) => {
                return unusable(format_args!("cannot read the export: {e}"));
            }
        },
        None => match live(g) {
            Ok(report) => report,
            Err(e) => {
                return unusable(format_args!(
                    "cannot read the platform's state: {}",
                    crate::client::describe_error(&e)
                ));
            }
        },
    };
    match format {
        "json" => outln!("{}", serde_json::to_string_pretty(&report.to_json())?),
        "sarif" => outln!("{}", serde_json::to_string_pretty(&report.to_sarif())?),
        _ => {
            let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            out!("{}", report.to_text(color));
        }
    }
    Ok(report.exit_code(fail_on))
}

/// Reads the platform's state as the active account and scans it.
fn live(g: &Global) -> Result<Report> {
    let client = Client::new(g)?;
    let project = client.project(g);
    let p = seg(&project);
    let region = super::region(&client, &None);
    let mut input = Input {
        origin: Origin::Live,
        project_id: project.clone(),
        project_number: Some(client.daemon.project_number.clone()),
        ..Default::default()
    };
    let mut hints = Hints::default();

    let v = policy::get(&client, &format!("/v1/projects/{p}"))?;
    input.project_policy = Some(to_policy(v).context("the project IAM policy")?);

    let base = format!("/v2/projects/{p}/locations/{}/services", seg(&region));
    let listed = client.get(&base)?;
    let mut services = Vec::new();
    let mut service_policies = BTreeMap::new();
    for s in listed["services"].as_array().into_iter().flatten() {
        let service = load::parse_service(s, &mut hints).map_err(|e| anyhow!("a service the API listed: {e}"))?;
        let v = policy::get(&client, &format!("{base}/{}", seg(&service.name)))?;
        service_policies.insert(service.name.clone(), to_policy(v).context("a service IAM policy")?);
        services.push(service);
    }
    input.services = Some(services);
    input.service_policies = Some(service_policies);

    let listed = client.get(&format!("/v1/projects/{p}/secrets"))?;
    let mut secret_policies = BTreeMap::new();
    for s in listed["secrets"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or_default();
        let id = super::basename(name);
        let v = policy::get(&client, &format!("/v1/projects/{p}/secrets/{}", seg(id)))?;
        secret_policies.insert(id.to_owned(), to_policy(v).context("a secret IAM policy")?);
    }
    input.secret_policies = Some(secret_policies);

    // Keys and the audit log need more than reading services does: without them, their checks are skipped.
    let mut notes = Vec::new();
    let listed = client.get(&format!("/v1/projects/{p}/serviceAccounts"))?;
    let accounts = load::parse_service_accounts(&listed, &mut hints).map_err(|e| anyhow!("service accounts: {e}"))?;
    let keys: Result<BTreeMap<_, _>> = accounts
        .iter()
        .map(|a| {
            let v = client.get(&format!("/v1/projects/{p}/serviceAccounts/{}/keys", seg(&a.email)))?;
            Ok((a.email.clone(), load::parse_keys(&v).map_err(|e| anyhow!("keys of {}: {e}", a.email))?))
        })
        .collect();
    input.service_accounts = Some(accounts);
    input.keys =
        keys.map_err(|e| notes.push(unreadable(advisor::rules::SERVICE_ACCOUNT_KEY, "the key lists", &e))).ok();
    // Without the Data Access entries (reads, secret accesses), used roles would look unused: judge none then.
    let private = json!({ "permissions": ["logging.privateLogEntries.list"] });
    let sees_reads = client
        .post(&format!("/v1/projects/{p}:testIamPermissions"), &private)
        .map(|t| t["permissions"].as_array().is_some_and(|granted| !granted.is_empty()))
        .unwrap_or(false);
    if !sees_reads {
        notes.push(Skipped {
            rule: advisor::rules::UNUSED_PERMISSION,
            reason: "the active account cannot read Data Access audit logs (logging.privateLogEntries.list, \
                     e.g. roles/logging.privateLogViewer), where reads are recorded"
                .into(),
        });
    }
    // One pass over the audit log: the permissions used (when reads are visible) and the ingress refusals.
    let mut used = sees_reads.then(BTreeMap::new);
    let mut refused = Vec::new();
    let filter = if sees_reads { "" } else { REFUSED_BY_INGRESS };
    let audit = for_each_entry(&client, &project, filter, |e| {
        if let Some(used) = used.as_mut() {
            note_used(used, e);
        }
        refused.extend(refused_by_ingress(e));
    });
    if let Err(e) = &audit {
        if used.take().is_some() {
            notes.push(unreadable(advisor::rules::UNUSED_PERMISSION, "the audit log", e));
        }
    }
    let names: Vec<String> = input.services.iter().flatten().map(|s| s.name.clone()).collect();
    let calls = audit
        .and_then(|()| observed_calls(&client, &base, &names))
        .map(|observed| {
            // An admitted call with a service account's token used `run.routes.invoke` on that service.
            for (call, by_token) in &observed {
                let email = call.caller.strip_prefix("serviceAccount:");
                let (true, Some(email), Some(used)) = (by_token, email, used.as_mut()) else {
                    continue;
                };
                if let Some(s) = input.services.iter().flatten().find(|s| s.name == call.target) {
                    let invoke = ("run.routes.invoke".to_owned(), input.service_resource(s));
                    used.entry(email.to_owned()).or_default().insert(invoke);
                }
            }
            let mut calls: Vec<ObservedCall> = observed.into_iter().map(|(call, _)| call).collect();
            calls.extend(refused);
            calls
        })
        .map_err(|e| {
            let what = "the request logs and the audit log";
            notes.push(unreadable(advisor::rules::EGRESS_BYPASSES_INTERNAL_INGRESS, what, &e))
        })
        .ok();
    input.observations = Some(Observations {
        calls,
        used_permissions: used,
        // `up` records in daemon.json whether instances run in sandboxes (ingress, egress, limits enforced).
        network_controls_enforced: Some(client.daemon.network_controls_enforced),
    });
    let mut report = advisor::scan(&input);
    let partial = "partial on the live platform: callers come from each service's recent request log (the latest lines only) and the audit log's ingress refusals; a tokenless call to a public service names its caller only when it came from inside an instance or VPC host (that one's account)";
    report.skipped.push(Skipped { rule: advisor::rules::PUBLIC_INTERNAL_SERVICE, reason: partial.into() });
    report.skipped.extend(notes);
    Ok(report)
}

/// Calls that got past the invocation check, from each service's request log (`…/services/S:logs`, lines of the
/// `request` stream: `METHOD PATH STATUS LATENCY CALLER IP [from=ACCOUNT] [from-service=SERVICE]`, CALLER an email
/// or `allUsers`), each with whether the caller was named by its token — then it used `run.routes.invoke` — rather
/// than only by `from=`.
fn observed_calls(client: &Client, base: &str, services: &[String]) -> Result<Vec<(ObservedCall, bool)>> {
    let mut calls = Vec::new();
    for name in services {
        let v = client.get(&format!("{base}/{}:logs?limit=10000", seg(name)))?;
        for e in v["entries"].as_array().into_iter().flatten().filter(|e| e["stream"] == "request") {
            let fields: Vec<&str> = e["text"].as_str().unwrap_or_default().split_whitespace().collect();
            let [_, _, _, _, who, rest @ ..] = fields.as_slice() else { continue };
            // A call from inside an instance names the instance's account (`from=`), even without a token.
            let from = rest.iter().find_map(|f| f.strip_prefix("from="));
            let from_service = rest.iter().find_map(|f| f.strip_prefix("from-service=")).map(str::to_owned);
            // The gateway's refusals reached no revision; an app's own 401/403/404 did, and its caller got in.
            if e["revision"].as_str().is_none_or(str::is_empty) {
                continue;
            }
            let member = if *who == "allUsers" {
                from.map_or_else(|| "allUsers".to_owned(), |sa| format!("serviceAccount:{sa}"))
            } else if who.ends_with(".gserviceaccount.com") {
                format!("serviceAccount:{who}")
            } else {
                format!("user:{who}")
            };
            let call = ObservedCall { caller: member, from_service, target: name.clone() };
            calls.push((call, *who != "allUsers"));
        }
    }
    Ok(calls)
}

/// The audit log's ingress refusals (the gateway's 404s).
const REFUSED_BY_INGRESS: &str = "protoPayload.methodName=\"run.routes.invoke\" AND protoPayload.status.code=5";

/// A call refused by ingress that came from inside an instance (or VPC host): it never reaches a request log, and
/// the audit log names the account of the instance it came from (`request.sourceAccount`).
fn refused_by_ingress(e: &Value) -> Option<ObservedCall> {
    let payload = &e["protoPayload"];
    if payload["methodName"] != "run.routes.invoke" || payload["status"]["code"] != 5 {
        return None;
    }
    let account = payload["request"]["sourceAccount"].as_str()?;
    let service = payload["resourceName"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default();
    Some(ObservedCall {
        caller: format!("serviceAccount:{account}"),
        from_service: payload["request"]["sourceService"].as_str().map(str::to_owned),
        target: service.to_owned(),
    })
}

/// Visits every entry of the project's audit log that `filter` matches, oldest first, page by page.
fn for_each_entry(client: &Client, project: &str, filter: &str, mut visit: impl FnMut(&Value)) -> Result<()> {
    let mut token = String::new();
    loop {
        let body = json!({
            "resourceNames": [format!("projects/{project}")],
            "filter": filter,
            "pageSize": 1000,
            "pageToken": token,
        });
        let page = client.post("/v2/entries:list", &body)?;
        page["entries"].as_array().into_iter().flatten().for_each(&mut visit);
        match page["nextPageToken"].as_str() {
            Some(t) if !t.is_empty() => token = t.to_owned(),
            _ => return Ok(()),
        }
    }
}

/// A skipped note for a part of the state the active account may not read.
fn unreadable(rule: &'static str, what: &str, e: &anyhow::Error) -> Skipped {
    Skipped {
        rule,
        reason: format!("{what} could not be read as the active account: {}", crate::client::describe_error(e)),
    }
}

/// A policy as the API answered it.
fn to_policy(v: Value) -> Result<model::Policy> {
    Ok(serde_json::from_value(v)?)
}

/// Adds the permissions an audit entry says its principal was granted and used (Admin Activity and, when the
/// caller may read it, Data Access): principal email → (permission, full resource name).
fn note_used(used: &mut BTreeMap<String, BTreeSet<(String, String)>>, e: &Value) {
    let payload = &e["protoPayload"];
    let Some(who) = payload["authenticationInfo"]["principalEmail"].as_str() else { return };
    for a in payload["authorizationInfo"].as_array().into_iter().flatten() {
        let (Some(permission), Some(true)) = (a["permission"].as_str(), a["granted"].as_bool()) else {
            continue;
        };
        let resource = a["resource"].as_str().unwrap_or_default();
        // Roles are granted on secrets, not on their versions.
        let resource = resource.split("/versions/").next().unwrap_or(resource);
        used.entry(who.to_owned()).or_default().insert((permission.to_owned(), resource.to_owned()));
    }
}
