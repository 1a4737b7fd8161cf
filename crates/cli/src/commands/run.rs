//! `run deploy`, `run services …`, `run revisions …`: the Cloud Run Admin API v2, printed in gcloud's (Knative v1) form.

use super::{policy, region, seg, split_dict, split_list};
use crate::args::{DeployArgs, Global, LogsCmd, RunCmd, RunRevisionsCmd, RunServicesCmd};
use crate::client::{remote, Client};
use crate::format::{self, Default};
use anyhow::{anyhow, bail, Context, Result};
use model::Code;
use reqwest::Method;
use secrets::spec::{Mapping, SecretRef, Target};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

const SAMPLE_IMAGE: &str = "us-docker.pkg.dev/cloudrun/container/hello";
const SOURCE_IMAGE: &str = "gatehouse.local/source";

pub fn run(g: &Global, cmd: RunCmd) -> Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        RunCmd::Deploy(args) => deploy(&client, g, *args, false),
        RunCmd::Services(c) => services(&client, g, c),
        RunCmd::Revisions(c) => revisions(&client, g, c),
    }
}

fn parent(client: &Client, g: &Global, region: &str) -> String {
    format!("/v2/projects/{}/locations/{}", seg(&client.project(g)), seg(region))
}

fn service_path(client: &Client, g: &Global, region: &str, service: &str) -> String {
    format!("{}/services/{}", parent(client, g, region), seg(service))
}

/// The service, or `None` when it does not exist.
fn fetch(client: &Client, path: &str) -> Result<Option<Value>> {
    match client.get(path) {
        Ok(v) => Ok(Some(v)),
        Err(e) if remote(&e).is_some_and(|r| r.code == Code::NotFound) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Seconds from `300`, `300s`, `5m`, `1h`.
fn parse_timeout(s: &str) -> Result<u64> {
    if let Ok(n) = s.parse::<u64>() {
        return Ok(n);
    }
    crate::args::parse_duration(s).map(|d| d.as_secs()).map_err(|e| anyhow!("invalid --timeout: {e}"))
}

fn obj<'a>(v: &'a mut Value, key: &str) -> &'a mut Map<String, Value> {
    if !v[key].is_object() {
        v[key] = json!({});
    }
    v[key].as_object_mut().expect("just made an object")
}

/// The secrets a v2 template references now: env vars with `valueSource.secretKeyRef`, and each item of each secret
/// volume at its mount path.
fn current_secrets(template: &Value) -> Result<BTreeMap<Target, SecretRef>> {
    let mut refs = Vec::new();
    let container = &template["containers"][0];
    for e in container["env"].as_array().into_iter().flatten() {
        let r = &e["valueSource"]["secretKeyRef"];
        if let (Some(name), Some(secret)) = (e["name"].as_str(), r["secret"].as_str()) {
            refs.push((name.to_owned(), secret, r["version"].as_str().unwrap_or("latest")));
        }
    }
    for m in container["volumeMounts"].as_array().into_iter().flatten() {
        let (Some(name), Some(dir)) = (m["name"].as_str(), m["mountPath"].as_str()) else { continue };
        let volume = template["volumes"].as_array().into_iter().flatten().find(|v| v["name"].as_str() == Some(name));
        let Some(secret) = volume.and_then(|v| v["secret"]["secret"].as_str()) else { continue };
        let dir = dir.trim_end_matches('/');
        let items = volume.and_then(|v| v["secret"]["items"].as_array()).filter(|items| !items.is_empty());
        match items {
            // No items: one file named after the secret, at `latest` (the v2 API's rule).
            None => refs.push((format!("{dir}/{}", secret.rsplit('/').next().unwrap_or(secret)), secret, "latest")),
            Some(items) => {
                for item in items {
                    let Some(path) = item["path"].as_str() else { continue };
                    refs.push((format!("{dir}/{path}"), secret, item["version"].as_str().unwrap_or("latest")));
                }
            }
        }
    }
    refs.into_iter()
        .map(|(key, secret, version)| {
            let m = secrets::spec::Mapping::new(&key, secret, version)?;
            Ok((m.target, m.secret))
        })
        .collect()
}

/// Volumes of a template other than secret volumes (kept as they are).
fn template_volumes_without_secrets(template: &Value) -> Vec<Value> {
    template["volumes"].as_array().into_iter().flatten().filter(|v| v.get("secret").is_none()).cloned().collect()
}

/// `--clear-secrets`, `--set-secrets`, `--update-secrets`, `--remove-secrets` in gcloud's order, then gcloud's
/// whole-set rules (one secret per mount directory, mount path restrictions; `secrets::spec::check`).
fn apply_secrets(mut current: BTreeMap<Target, SecretRef>, args: &DeployArgs) -> Result<BTreeMap<Target, SecretRef>> {
    let pairs = |ms: Vec<Mapping>| ms.into_iter().map(|m| (m.target, m.secret));
    if args.clear_secrets {
        current.clear();
    }
    if let Some(s) = &args.set_secrets {
        current = pairs(secrets::spec::parse_mappings("--set-secrets", s)?).collect();
    }
    if let Some(s) = &args.update_secrets {
        current.extend(pairs(secrets::spec::parse_mappings("--update-secrets", s)?));
    }
    if let Some(s) = &args.remove_secrets {
        for key in secrets::spec::parse_keys("--remove-secrets", s)? {
            current.remove(&key);
        }
    }
    let mappings: Vec<Mapping> =
        current.iter().map(|(target, secret)| Mapping { target: target.clone(), secret: secret.clone() }).collect();
    secrets::spec::check(&mappings)?;
    Ok(current)
}

/// Writes `secrets` into a v2 template: env secrets after the plain `env`, one secret volume per mount directory.
fn write_secrets(template: &mut Value, mut env: Vec<Value>, secrets: &BTreeMap<Target, SecretRef>) {
    let mut volumes = template_volumes_without_secrets(template);
    let mut mounts = Vec::new();
    // Mount directory → (secret name, items).
    let mut by_dir: BTreeMap<&str, (String, Vec<Value>)> = BTreeMap::new();
    for (target, secret) in secrets {
        match target {
            Target::Env(name) => env.push(json!({
                "name": name,
                "valueSource": { "secretKeyRef": { "secret": secret.name(), "version": secret.version } },
            })),
            Target::File(_) => {
                let (dir, file) = (target.mount_dir().unwrap_or("/"), target.file_name().unwrap_or_default());
                let entry = by_dir.entry(dir).or_insert_with(|| (secret.name(), Vec::new()));
                entry.1.push(json!({ "path": file, "version": secret.version }));
            }
        }
    }
    for (i, (dir, (secret, items))) in by_dir.into_iter().enumerate() {
        let name = format!("secret-{}", i + 1);
        volumes.push(json!({ "name": name, "secret": { "secret": secret, "items": items } }));
        mounts.push(json!({ "name": name, "mountPath": dir }));
    }
    let container = &mut template["containers"][0];
    container["env"] = Value::Array(env);
    if mounts.is_empty() {
        container.as_object_mut().map(|c| c.remove("volumeMounts"));
    } else {
        container["volumeMounts"] = Value::Array(mounts);
    }
    if volumes.is_empty() {
        template.as_object_mut().map(|t| t.remove("volumes"));
    } else {
        template["volumes"] = Value::Array(volumes);
    }
}

/// `--vpc-connector`, `--clear-vpc-connector`, `--vpc-egress`, `--network`/`--subnet`/`--network-tags`,
/// `--clear-network` on a v2 template's `vpcAccess` (the API checks the connector, network and subnet exist).
fn apply_vpc(template: &mut Value, args: &DeployArgs) -> Result<()> {
    let direct = args.network.is_some() || args.subnet.is_some() || args.network_tags.is_some();
    if args.clear_vpc_connector && args.vpc_connector.is_some() {
        bail!("give --vpc-connector or --clear-vpc-connector, not both");
    }
    if args.clear_network && direct {
        bail!("give --network/--subnet/--network-tags or --clear-network, not both");
    }
    if args.vpc_connector.is_some() && direct {
        bail!("a service reaches a VPC through a connector (--vpc-connector) or Direct VPC egress (--network, --subnet), not both");
    }
    let mut access = template["vpcAccess"].as_object().cloned().unwrap_or_default();
    if args.clear_vpc_connector {
        access.remove("connector");
    }
    if args.clear_network {
        access.remove("networkInterfaces");
    }
    if let Some(c) = &args.vpc_connector {
        access.insert("connector".into(), json!(c));
        access.remove("networkInterfaces");
    }
    if direct {
        let mut ni = access
            .get("networkInterfaces")
            .and_then(|n| n.get(0))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if let Some(n) = &args.network {
            ni.insert("network".into(), json!(n));
        }
        if let Some(s) = &args.subnet {
            ni.insert("subnetwork".into(), json!(s));
        }
        if let Some(t) = &args.network_tags {
            ni.insert("tags".into(), json!(split_list(t)));
        }
        access.insert("networkInterfaces".into(), json!([ni]));
        access.remove("connector");
    }
    let connected = access.contains_key("connector") || access.contains_key("networkInterfaces");
    if let Some(e) = &args.vpc_egress {
        let egress = match e.as_str() {
            "all-traffic" | "all" => "ALL_TRAFFIC",
            "private-ranges-only" => "PRIVATE_RANGES_ONLY",
            other => bail!("invalid --vpc-egress `{other}`; use private-ranges-only or all-traffic"),
        };
        if !connected {
            bail!(
                "--vpc-egress needs a way into a VPC: add --vpc-connector=CONNECTOR, or --network=NETWORK --subnet=SUBNET \
                 for Direct VPC egress"
            );
        }
        access.insert("egress".into(), json!(egress));
    }
    if connected {
        template["vpcAccess"] = Value::Object(access);
    } else if let Some(t) = template.as_object_mut() {
        t.remove("vpcAccess");
    }
    Ok(())
}

/// Applies the flags of `args` to a v2 Service.
fn apply(service: &mut Value, args: &DeployArgs, creating: bool) -> Result<()> {
    if !service["template"].is_object() {
        service["template"] = json!({});
    }
    let template = &mut service["template"];
    if template["containers"].as_array().is_none_or(|c| c.is_empty()) {
        template["containers"] = json!([{}]);
    }
    let container = &mut template["containers"][0];
    match (&args.image, &args.source) {
        (Some(_), Some(_)) => bail!("give either --image or --source, not both"),
        (Some(image), None) => {
            container["image"] = json!(image);
            container.as_object_mut().map(|c| c.remove("workingDir"));
        }
        (None, Some(dir)) => {
            let dir = std::fs::canonicalize(dir)
                .with_context(|| format!("--source `{}` is not a directory", dir.display()))?;
            if !dir.is_dir() {
                bail!("--source `{}` is not a directory", dir.display());
            }
            container["image"] = json!(SOURCE_IMAGE);
            container["workingDir"] = json!(dir.to_string_lossy());
        }
        (None, None) if creating => {
            bail!("a new service needs an image or a source: add `--image={SAMPLE_IMAGE}` or `--source=DIR --command=CMD`")
        }
        (None, None) => {}
    }
    if let Some(c) = &args.command {
        container["command"] = json!(split_list(c));
    }
    if let Some(a) = &args.args {
        container["args"] = json!(split_list(a));
    }
    // Plain env vars; secret env vars and secret volumes are rebuilt from the secret flags below.
    let mut env: Vec<(String, String)> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e.get("valueSource").is_none())
        .filter_map(|e| Some((e["name"].as_str()?.to_owned(), e["value"].as_str().unwrap_or_default().to_owned())))
        .collect();
    if args.clear_env_vars {
        env.clear();
    }
    if let Some(s) = &args.set_env_vars {
        env = split_dict(s, "set-env-vars")?;
    }
    if let Some(s) = &args.update_env_vars {
        for (k, v) in split_dict(s, "update-env-vars")? {
            match env.iter_mut().find(|(n, _)| *n == k) {
                Some(e) => e.1 = v,
                None => env.push((k, v)),
            }
        }
    }
    if let Some(s) = &args.remove_env_vars {
        let remove = split_list(s);
        env.retain(|(k, _)| !remove.contains(k));
    }
    let secrets = apply_secrets(current_secrets(template)?, args)?;
    if let Some(clash) = env.iter().find(|(k, _)| secrets.contains_key(&Target::Env(k.clone()))) {
        bail!("`{}` is set both as a plain environment variable and as a secret; remove one of them", clash.0);
    }
    let env = env.into_iter().map(|(name, value)| json!({ "name": name, "value": value })).collect();
    write_secrets(template, env, &secrets);
    let container = &mut template["containers"][0];
    if let Some(p) = args.port {
        if !(1..=65535).contains(&p) {
            bail!("--port must be between 1 and 65535");
        }
        container["ports"] = json!([{ "name": "http1", "containerPort": p }]);
    }
    // Checked by the API, which knows Cloud Run's bounds.
    for (key, value) in [("memory", &args.memory), ("cpu", &args.cpu)] {
        if let Some(v) = value {
            if !container["resources"].is_object() {
                container["resources"] = json!({});
            }
            if !container["resources"]["limits"].is_object() {
                container["resources"]["limits"] = json!({});
            }
            container["resources"]["limits"][key] = json!(v);
        }
    }
    if let Some(sa) = &args.service_account {
        template["serviceAccount"] = json!(sa);
    }
    if let Some(n) = args.min_instances {
        obj(template, "scaling").insert("minInstanceCount".into(), json!(n));
    }
    if let Some(n) = args.max_instances {
        obj(template, "scaling").insert("maxInstanceCount".into(), json!(n));
    }
    if let Some(n) = args.concurrency {
        template["maxInstanceRequestConcurrency"] = json!(n);
    }
    if let Some(t) = &args.timeout {
        template["timeout"] = json!(format!("{}s", parse_timeout(t)?));
    }
    if let Some(i) = &args.ingress {
        let name = match i.as_str() {
            "all" => "INGRESS_TRAFFIC_ALL",
            "internal" => "INGRESS_TRAFFIC_INTERNAL_ONLY",
            "internal-and-cloud-load-balancing" => "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
            other => bail!("invalid --ingress `{other}`; use all, internal or internal-and-cloud-load-balancing"),
        };
        service["ingress"] = json!(name);
    }
    apply_vpc(&mut service["template"], args)?;
    let mut audiences: Vec<String> = serde_json::from_value(service["customAudiences"].clone()).unwrap_or_default();
    if args.clear_custom_audiences {
        audiences.clear();
    }
    if let Some(a) = &args.add_custom_audiences {
        for aud in split_list(a) {
            if !audiences.contains(&aud) {
                audiences.push(aud);
            }
        }
    }
    if let Some(r) = &args.remove_custom_audiences {
        let remove = split_list(r);
        audiences.retain(|a| !remove.contains(a));
    }
    service["customAudiences"] = json!(audiences);
    if args.no_invoker_iam_check {
        service["invokerIamDisabled"] = json!(true);
    } else if args.invoker_iam_check {
        service["invokerIamDisabled"] = json!(false);
    }
    if let Some(l) = &args.labels {
        service["labels"] = Value::Object(split_dict(l, "labels")?.into_iter().map(|(k, v)| (k, json!(v))).collect());
    }
    if let Some(d) = &args.description {
        service["description"] = json!(d);
    }
    Ok(())
}

fn deploy(client: &Client, g: &Global, args: DeployArgs, update_only: bool) -> Result<u8> {
    // Every flag unset: `DeployArgs::default()` must stay what clap gives for no flags (no `default_value`s).
    let unchanged = DeployArgs { service: args.service.clone(), region: args.region.clone(), ..DeployArgs::default() };
    if update_only && args == unchanged {
        bail!(
            "No configuration change requested. Did you mean to include the flags `--update-env-vars`, `--image`, \
             `--concurrency`, etc.?"
        );
    }
    let region = region(client, &args.region);
    let path = service_path(client, g, &region, &args.service);
    let existing = fetch(client, &path)?;
    if update_only && existing.is_none() {
        bail!(
            "Service [{}] could not be found in region [{region}]; deploy it with `gatehouse run deploy`",
            args.service
        );
    }

    let creating = existing.is_none();
    let mut service = existing.unwrap_or_else(|| json!({}));
    apply(&mut service, &args, creating)?;
    if !g.quiet {
        eprintln!(
            "Deploying {} to Cloud Run service [{}] in project [{}] region [{region}]",
            if args.source.is_some() { "from source" } else { "container" },
            args.service,
            client.project(g)
        );
    }
    let op = client.call(Method::PATCH, &format!("{path}?allowMissing=true"), Some(&service))?;
    // A revision that did not become ready still leaves the service written (the operation's metadata): as gcloud,
    // its IAM policy is set all the same, then the failure is reported.
    let failure = op.get("error").map(|e| e["message"].as_str().unwrap_or("the deployment failed").to_owned());
    let deployed = if failure.is_some() { &op["metadata"] } else { &op["response"] };
    if args.allow_unauthenticated {
        let public = crate::args::BindingArgs {
            member: "allUsers".into(),
            role: "roles/run.invoker".into(),
            condition: None,
            condition_from_file: None,
            all: false,
        };
        if let Err(e) = policy::add_binding(client, &path, &public) {
            eprintln!(
                "WARNING: Setting IAM policy failed, try \"gatehouse run services add-iam-policy-binding --region={region} \
                 --member=allUsers --role=roles/run.invoker {}\"\n  ({})\nThe service was deployed but left private: \
                 it answers only authenticated callers that hold roles/run.invoker.",
                args.service,
                crate::client::describe_error(&e)
            );
        }
    } else if args.no_allow_unauthenticated && !creating {
        let public = crate::args::BindingArgs {
            member: "allUsers".into(),
            role: "roles/run.invoker".into(),
            condition: None,
            condition_from_file: None,
            all: true,
        };
        let _ = policy::remove_binding(client, &path, &public);
    }
    if let Some(message) = failure {
        bail!("{message}");
    }
    let revision = deployed["latestReadyRevision"].as_str().unwrap_or_default();
    eprintln!(
        "Service [{}] revision [{revision}] has been deployed and is serving 100 percent of traffic.\nService URL: {}",
        args.service,
        deployed["uri"].as_str().unwrap_or_default()
    );
    if g.format.is_some() {
        format::print(
            &api::run::knative::to_knative(deployed, &client.daemon.project_number, &region, false),
            g,
            Default::Yaml,
        )?;
    }
    Ok(0)
}

fn services(client: &Client, g: &Global, cmd: RunServicesCmd) -> Result<u8> {
    match cmd {
        RunServicesCmd::List { region: r } => {
            let region = region(client, &r);
            let v = client.get(&format!("{}/services", parent(client, g, &region)))?;
            let list: Vec<Value> = v["services"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|s| api::run::knative::to_knative(s, &client.daemon.project_number, &region, false))
                .collect();
            format::print(&Value::Array(list), g, Default::Table("table(metadata.name:label=SERVICE,metadata.labels.\"cloud.googleapis.com/location\":label=REGION,status.url:label=URL,metadata.annotations.\"serving.knative.dev/lastModifier\":label=LAST_DEPLOYED_BY)"))?;
        }
        RunServicesCmd::Describe { service, region: r } => {
            let region = region(client, &r);
            let v = client.get(&service_path(client, g, &region, &service))?;
            let export = g.format.as_deref() == Some("export");
            let doc = api::run::knative::to_knative(&v, &client.daemon.project_number, &region, export);
            let g2 = if export { Global { format: Some("yaml".into()), ..g.clone() } } else { g.clone() };
            format::print(&doc, &g2, Default::Yaml)?;
        }
        RunServicesCmd::Update(args) => return deploy(client, g, *args, true),
        RunServicesCmd::Delete { service, region: r } => {
            let region = region(client, &r);
            client.call(Method::DELETE, &service_path(client, g, &region, &service), None)?;
            eprintln!("Deleted service [{service}].");
        }
        RunServicesCmd::AddIamPolicyBinding { service, region: r, binding } => {
            let path = service_path(client, g, &region(client, &r), &service);
            let p = policy::add_binding(client, &path, &binding)?;
            eprintln!("Updated IAM policy for service [{service}].");
            format::print(&p, g, Default::Yaml)?;
        }
        RunServicesCmd::RemoveIamPolicyBinding { service, region: r, binding } => {
            let path = service_path(client, g, &region(client, &r), &service);
            let p = policy::remove_binding(client, &path, &binding)?;
            eprintln!("Updated IAM policy for service [{service}].");
            format::print(&p, g, Default::Yaml)?;
        }
        RunServicesCmd::GetIamPolicy { service, region: r } => {
            let path = service_path(client, g, &region(client, &r), &service);
            format::print(&policy::get(client, &path)?, g, Default::Yaml)?;
        }
        RunServicesCmd::SetIamPolicy { service, policy_file, region: r } => {
            let path = service_path(client, g, &region(client, &r), &service);
            let p = policy::set_from_file(client, &path, &policy_file)?;
            eprintln!("Updated IAM policy for service [{service}].");
            format::print(&p, g, Default::Yaml)?;
        }
        RunServicesCmd::Replace { file, region: r } => {
            let doc = crate::home::read_structured(&file)?;
            let (name, label_region, service) = api::run::knative::from_knative(&doc).map_err(anyhow::Error::msg)?;
            let region = r.or(label_region).unwrap_or_else(|| region(client, &None));
            let path = service_path(client, g, &region, &name);
            let op = client.call(Method::PATCH, &format!("{path}?allowMissing=true"), Some(&service))?;
            if let Some(err) = op.get("error") {
                bail!("{}", err["message"].as_str().unwrap_or("the deployment failed"));
            }
            let s = &op["response"];
            eprintln!(
                "Applying new configuration to Cloud Run service [{name}] in project [{}] region [{region}]\n\
                 New configuration has been applied to service [{name}].\nURL: {}",
                client.project(g),
                s["uri"].as_str().unwrap_or_default()
            );
        }
        RunServicesCmd::Proxy { service, region: r, port } => {
            let region = region(client, &r);
            let v = client.get(&service_path(client, g, &region, &service))?;
            let url = v["uri"].as_str().ok_or_else(|| anyhow!("service [{service}] has no URL yet"))?.to_owned();
            return super::proxy::run(client, &service, &url, port);
        }
        RunServicesCmd::Logs(LogsCmd::Read { service, region: r }) => {
            let path = service_path(client, g, &region(client, &r), &service);
            // The newest lines, printed oldest first.
            let v = client.get(&format!("{path}:logs?limit={}", g.limit.unwrap_or(LOG_LINES)))?;
            let entries = v["entries"].clone();
            if g.format.is_some() {
                format::print(&entries, g, Default::Yaml)?;
            } else {
                for e in entries.as_array().into_iter().flatten() {
                    outln!(
                        "{}  {}  {}",
                        e["time"].as_str().unwrap_or_default(),
                        e["revision"].as_str().unwrap_or_default(),
                        e["text"].as_str().unwrap_or_default()
                    );
                }
            }
        }
    }
    Ok(0)
}

/// Log lines `run services logs read` prints without `--limit`.
const LOG_LINES: usize = 100;

/// gcloud's default table of `run revisions list`.
const REVISIONS_TABLE: &str = "table(ready:label='',metadata.name:label=REVISION,active:label=ACTIVE,\
     metadata.labels.\"serving.knative.dev/service\":label=SERVICE,deployed:label=DEPLOYED,\
     metadata.annotations.\"serving.knative.dev/creator\":label='DEPLOYED BY')";

/// The service a revision name belongs to: revisions are named `SERVICE-NNNNN-xyz`, and a service name may hold
/// hyphens, so only the last two parts are the revision's own.
fn revision_service(revision: &str) -> Option<&str> {
    let mut parts = revision.rsplitn(3, '-');
    let (suffix, number, service) = (parts.next()?, parts.next()?, parts.next()?);
    let number_ok = number.len() == 5 && number.bytes().all(|b| b.is_ascii_digit());
    let suffix_ok = !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (number_ok && suffix_ok && !service.is_empty()).then_some(service)
}

/// Cloud Run's answer for a revision that does not exist.
fn revision_not_found(client: &Client, g: &Global, region: &str, revision: &str) -> anyhow::Error {
    crate::client::Remote(model::ApiError::not_found(format!(
        "Resource '{revision}' of kind 'REVISION' in region '{region}' in project '{}' does not exist.",
        client.project(g)
    )))
    .into()
}

/// The value, or `None` when the API answers NOT_FOUND or (for what only adds detail) PERMISSION_DENIED.
fn optional(r: Result<Value>) -> Result<Option<Value>> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(e) if remote(&e).is_some_and(|r| matches!(r.code, Code::NotFound | Code::PermissionDenied)) => Ok(None),
        Err(e) => Err(e),
    }
}

/// A v2 Revision in the Knative v1 form gcloud prints; `service` (v2), when readable, says whether the revision
/// serves traffic (all of it goes to the latest ready revision) and who deployed it.
fn knative_revision(client: &Client, region: &str, rev: &Value, service: Option<&Value>) -> Value {
    let name = rev["name"].as_str().and_then(|n| n.rsplit('/').next()).unwrap_or_default();
    let active = service.map(|s| s["latestReadyRevision"].as_str() == Some(name));
    // The service's last change made this revision when their generations agree; its first made the first one.
    let creator = service.and_then(|s| match rev["generation"].as_str() {
        Some(g) if s["generation"].as_str() == Some(g) => s["lastModifier"].as_str(),
        Some("1") => s["creator"].as_str(),
        _ => None,
    });
    api::run::knative::revision_to_knative(rev, &client.daemon.project_number, region, active, creator)
}

/// A Knative revision with the columns of [`REVISIONS_TABLE`] that are gcloud's transforms of it.
fn revision_row(mut r: Value) -> Value {
    let condition = |t: &str| {
        r["status"]["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == t).map(|c| c["status"].clone())
    };
    let ready = match condition("Ready").as_ref().and_then(Value::as_str) {
        Some("True") => "✔",
        Some("False") => "X",
        _ => ".",
    };
    let active = if condition("Active").as_ref().and_then(Value::as_str) == Some("True") { "yes" } else { "" };
    // gcloud's `creationTimestamp.date("%Y-%m-%d %H:%M:%S %Z")`.
    let deployed = r["metadata"]["creationTimestamp"]
        .as_str()
        .map(|t| match t.strip_suffix('Z') {
            Some(t) => format!("{} UTC", t.split('.').next().unwrap_or(t).replacen('T', " ", 1)),
            None => t.to_owned(),
        })
        .unwrap_or_default();
    r["ready"] = json!(ready);
    r["active"] = json!(active);
    r["deployed"] = json!(deployed);
    r
}

fn revisions(client: &Client, g: &Global, cmd: RunRevisionsCmd) -> Result<u8> {
    match cmd {
        RunRevisionsCmd::List { service, region: r } => {
            let region = region(client, &r);
            // As gcloud, which lists revisions by their service label: one service's (none when it does not
            // exist), or every service's in the region.
            let mut services: Vec<(String, Option<Value>)> = match &service {
                Some(s) => vec![(s.clone(), optional(client.get(&service_path(client, g, &region, s)))?)],
                None => client.get(&format!("{}/services", parent(client, g, &region)))?["services"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|s| Some((s["name"].as_str()?.rsplit('/').next()?.to_owned(), Some(s.clone()))))
                    .collect(),
            };
            services.sort_by(|a, b| a.0.cmp(&b.0));
            let mut list = Vec::new();
            for (id, s) in &services {
                let path = format!("{}/revisions", service_path(client, g, &region, id));
                let Some(v) = fetch(client, &path)? else { continue };
                let mut revs: Vec<&Value> = v["revisions"].as_array().into_iter().flatten().collect();
                // Newest first.
                revs.sort_by_key(|r| {
                    std::cmp::Reverse(r["generation"].as_str().and_then(|g| g.parse::<u64>().ok()).unwrap_or(0))
                });
                list.extend(revs.into_iter().map(|r| knative_revision(client, &region, r, s.as_ref())));
            }
            if g.format.is_none() {
                list = list.into_iter().map(revision_row).collect();
            }
            format::print(&Value::Array(list), g, Default::Table(REVISIONS_TABLE))?;
        }
        RunRevisionsCmd::Describe { revision, region: r } => {
            let region = region(client, &r);
            let missing = || revision_not_found(client, g, &region, &revision);
            let service = revision_service(&revision).ok_or_else(missing)?;
            let path = service_path(client, g, &region, service);
            let rev = fetch(client, &format!("{path}/revisions/{}", seg(&revision)))?.ok_or_else(missing)?;
            let s = optional(client.get(&path))?;
            format::print(&knative_revision(client, &region, &rev, s.as_ref()), g, Default::Yaml)?;
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_name_ends_in_its_number_and_suffix() {
        assert_eq!(revision_service("svc-00001-abc"), Some("svc"));
        assert_eq!(revision_service("svc-a-00002-xyz"), Some("svc-a"));
        assert_eq!(revision_service("a-b-c-00010-k2p"), Some("a-b-c"));
        for malformed in ["svc-a-00002", "svc-a", "svc", "-00001-abc", "svc-1-abc", "svc-00001-", "svc-00001-ABC"] {
            assert_eq!(revision_service(malformed), None, "{malformed}");
        }
    }
}
