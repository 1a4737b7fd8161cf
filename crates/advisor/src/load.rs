//! The offline loader: an export directory → [`Input`]. Also the parsers for single documents (a Cloud Run service
//! in the v1 Knative form or as a v2 `Service`, a key list, a service-account list), which the live scan reuses.
//!
//! Layout (README "Advisor"):
//!
//! | file | produced by |
//! |---|---|
//! | `project-iam.json` | `gcloud projects get-iam-policy P --format=json` |
//! | `services/NAME.yaml` | `gcloud run services describe NAME --format=export` (several YAML documents allowed) |
//! | `services/NAME.json` | a Cloud Run v2 `Service` (REST `GET …/v2/…/services/NAME`), or a list of them |
//! | `services/NAME.iam.json` | `gcloud run services get-iam-policy NAME --format=json` |
//! | `secrets/NAME.iam.json` | `gcloud secrets get-iam-policy NAME --format=json` |
//! | `service-accounts.json` | `gcloud iam service-accounts list --format=json` |
//! | `keys/EMAIL.json` | `gcloud iam service-accounts keys list --iam-account=EMAIL --format=json` |
//!
//! A missing file leaves its part of the input `None` (the rules that need it say so); a file that is there but
//! cannot be read or parsed is an error naming the file and the problem.

use crate::input::{Egress, Env, EnvValue, Ingress, Input, Key, Origin, Service, ServiceAccount};
use model::Policy;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A file that is there but unusable.
#[derive(Debug, thiserror::Error)]
#[error("`{}`: {problem}", file.display())]
pub struct LoadError {
    pub file: PathBuf,
    pub problem: String,
}

fn err(file: &Path, problem: impl Into<String>) -> LoadError {
    LoadError { file: file.to_owned(), problem: problem.into() }
}

/// Reads an export directory. `project` overrides the project id found in the files.
pub fn load_dir(dir: &Path, project: Option<&str>) -> Result<Input, LoadError> {
    if !dir.is_dir() {
        return Err(err(dir, "not a directory"));
    }
    let mut input = Input { origin: Origin::Export, ..Default::default() };
    let mut hints = Hints::default();

    let path = dir.join("project-iam.json");
    if let Some(bytes) = read_optional(&path)? {
        input.project_policy = Some(parse_policy(&path, &bytes)?);
    }

    let services_dir = dir.join("services");
    if services_dir.is_dir() {
        let mut services = Vec::new();
        let mut policies = BTreeMap::new();
        for path in sorted_files(&services_dir)? {
            let name = file_name(&path);
            if let Some(service) = name.strip_suffix(".iam.json") {
                let bytes = read(&path)?;
                policies.insert(service.to_owned(), parse_policy(&path, &bytes)?);
            } else if name.ends_with(".yaml") || name.ends_with(".yml") || name.ends_with(".json") {
                let text = String::from_utf8(read(&path)?).map_err(|_| err(&path, "not UTF-8 text"))?;
                services.extend(parse_services(&text, name.ends_with(".json"), &mut hints).map_err(|p| err(&path, p))?);
            }
        }
        input.services = Some(services);
        input.service_policies = Some(policies);
    }

    let secrets_dir = dir.join("secrets");
    if secrets_dir.is_dir() {
        let mut policies = BTreeMap::new();
        for path in sorted_files(&secrets_dir)? {
            if let Some(secret) = file_name(&path).strip_suffix(".iam.json") {
                let bytes = read(&path)?;
                policies.insert(secret.to_owned(), parse_policy(&path, &bytes)?);
            }
        }
        input.secret_policies = Some(policies);
    }

    let path = dir.join("service-accounts.json");
    if let Some(bytes) = read_optional(&path)? {
        let v = json(&path, &bytes)?;
        input.service_accounts = Some(parse_service_accounts(&v, &mut hints).map_err(|p| err(&path, p))?);
    }

    let keys_dir = dir.join("keys");
    if keys_dir.is_dir() {
        let mut keys = BTreeMap::new();
        for path in sorted_files(&keys_dir)? {
            if let Some(email) = file_name(&path).strip_suffix(".json") {
                let v = json(&path, &read(&path)?)?;
                keys.insert(email.to_owned(), parse_keys(&v).map_err(|p| err(&path, p))?);
            }
        }
        input.keys = Some(keys);
    }

    if let Some(p) = &input.project_policy {
        for m in p.bindings.iter().flat_map(|b| &b.members) {
            hints.account(m.trim_start_matches("serviceAccount:"));
        }
    }
    let fallback = dir.canonicalize().ok().and_then(|d| d.file_name().map(|f| f.to_string_lossy().into_owned()));
    input.project_id = project.map(str::to_owned).or(hints.project_id).or(fallback).unwrap_or_else(|| "PROJECT".into());
    input.project_number = hints.project_number;
    Ok(input)
}

/// What the files say about the project: its id and number.
#[derive(Default)]
pub struct Hints {
    pub project_id: Option<String>,
    pub project_number: Option<String>,
}

impl Hints {
    /// Learns from a service account email: `N-compute@developer…` carries the number, `x@P.iam…` the id.
    fn account(&mut self, email: &str) {
        if let Some(n) = email.strip_suffix("-compute@developer.gserviceaccount.com") {
            if n.bytes().all(|b| b.is_ascii_digit()) && self.project_number.is_none() {
                self.project_number = Some(n.to_owned());
            }
        } else if let Some((_, domain)) = email.split_once('@') {
            if let Some(p) = domain.strip_suffix(".iam.gserviceaccount.com") {
                self.project_id.get_or_insert_with(|| p.to_owned());
            }
        }
    }
}

fn read(path: &Path) -> Result<Vec<u8>, LoadError> {
    std::fs::read(path).map_err(|e| err(path, format!("cannot read it: {e}")))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, LoadError> {
    match std::fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(err(path, format!("cannot read it: {e}"))),
    }
}

fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| err(dir, format!("cannot list it: {e}")))?;
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.is_file()).collect();
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_default()
}

fn json(path: &Path, bytes: &[u8]) -> Result<Value, LoadError> {
    serde_json::from_slice(bytes).map_err(|e| err(path, format!("invalid JSON: {e}")))
}

fn parse_policy(path: &Path, bytes: &[u8]) -> Result<Policy, LoadError> {
    Policy::from_json(bytes).map_err(|e| err(path, e.to_string()))
}

/// The services of one service file: YAML (several `---`-separated documents allowed; empty ones are skipped) or,
/// with `json`, JSON (one service or a list). The error says what is wrong, without the file name.
pub fn parse_services(text: &str, json: bool, hints: &mut Hints) -> Result<Vec<Service>, String> {
    let mut docs = Vec::new();
    if json {
        match serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))? {
            Value::Array(items) => docs.extend(items),
            v => docs.push(v),
        }
    } else {
        for d in serde_yaml::Deserializer::from_str(text) {
            let v: Value = serde::Deserialize::deserialize(d).map_err(|e| format!("invalid YAML: {e}"))?;
            if !v.is_null() {
                docs.push(v);
            }
        }
    }
    docs.iter().map(|d| parse_service(d, hints)).collect()
}

/// A Cloud Run service in the v1 Knative form (`apiVersion: serving.knative.dev/v1`, `kind: Service`) or as a v2
/// `Service` (it has a `template`). The error says what is wrong, without the file name.
pub fn parse_service(doc: &Value, hints: &mut Hints) -> Result<Service, String> {
    if doc["apiVersion"].as_str().is_some_and(|a| a.starts_with("serving.knative.dev/")) {
        if doc["kind"] != "Service" {
            return Err(format!(
                "a Knative `{}` is not a service; export services only",
                doc["kind"].as_str().unwrap_or("?")
            ));
        }
        return parse_v1(doc, hints);
    }
    if doc.get("template").is_some() || doc["name"].as_str().is_some_and(|n| n.contains("/services/")) {
        return parse_v2(doc, hints);
    }
    Err("not a Cloud Run service: expected `apiVersion: serving.knative.dev/v1` with `kind: Service` (gcloud run services describe --format=export) or a v2 Service with `name` and `template`".into())
}

fn string_map(v: &Value, field: &str) -> Result<BTreeMap<String, String>, String> {
    match v {
        Value::Null => Ok(BTreeMap::new()),
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| match v {
                Value::String(s) => Ok((k.clone(), s.clone())),
                Value::Bool(_) | Value::Number(_) => Ok((k.clone(), v.to_string())),
                _ => Err(format!("`{field}.{k}` must be a string")),
            })
            .collect(),
        _ => Err(format!("`{field}` must be a map of strings")),
    }
}

fn str_field<'v>(v: &'v Value, field: &str) -> Result<Option<&'v str>, String> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s)),
        _ => Err(format!("`{field}` must be a string")),
    }
}

fn array<'v>(v: &'v Value, field: &str) -> Result<&'v [Value], String> {
    match v {
        Value::Null => Ok(&[]),
        Value::Array(a) => Ok(a),
        _ => Err(format!("`{field}` must be a list")),
    }
}

/// The env vars of every container. `source` is where a secret reference sits (v1 `valueFrom`, v2 `valueSource`);
/// `secret_ref` reads its `secretKeyRef`.
fn read_env(
    containers: &Value,
    at: &str,
    source: &str,
    secret_ref: impl Fn(&Value, &str) -> Result<EnvValue, String>,
) -> Result<Vec<Env>, String> {
    let mut env = Vec::new();
    for (i, c) in array(containers, at)?.iter().enumerate() {
        for (j, e) in array(&c["env"], "env")?.iter().enumerate() {
            let field = format!("{at}[{i}].env[{j}]");
            let name = str_field(&e["name"], &format!("{field}.name"))?.ok_or(format!("`{field}.name` is required"))?;
            let value = match e.get(source).and_then(|v| v.get("secretKeyRef")) {
                Some(r) => secret_ref(r, &format!("{field}.{source}.secretKeyRef"))?,
                None => {
                    EnvValue::Plain(str_field(&e["value"], &format!("{field}.value"))?.unwrap_or_default().to_owned())
                }
            };
            env.push(Env { name: name.to_owned(), value });
        }
    }
    Ok(env)
}

/// The secret names of secret volumes (`volumes[].secret.KEY`).
fn volume_secrets<'v>(volumes: &'v Value, at: &str, key: &str) -> Result<Vec<&'v str>, String> {
    Ok(array(volumes, at)?.iter().filter_map(|v| v["secret"][key].as_str()).collect())
}

fn parse_v1(doc: &Value, hints: &mut Hints) -> Result<Service, String> {
    let meta = &doc["metadata"];
    let name =
        str_field(&meta["name"], "metadata.name")?.filter(|n| !n.is_empty()).ok_or("`metadata.name` is required")?;
    if let Some(ns) = str_field(&meta["namespace"], "metadata.namespace")? {
        if ns.bytes().all(|b| b.is_ascii_digit()) {
            hints.project_number.get_or_insert_with(|| ns.to_owned());
        } else {
            hints.project_id.get_or_insert_with(|| ns.to_owned());
        }
    }
    let mut labels = string_map(&meta["labels"], "metadata.labels")?;
    let region = labels.remove("cloud.googleapis.com/location").unwrap_or_else(|| "REGION".into());
    let mut annotations = string_map(&meta["annotations"], "metadata.annotations")?;
    let tmeta = &doc["spec"]["template"]["metadata"];
    let template_annotations = string_map(&tmeta["annotations"], "spec.template.metadata.annotations")?;
    labels.extend(string_map(&tmeta["labels"], "spec.template.metadata.labels")?);
    let ingress = match annotations.get("run.googleapis.com/ingress").map(String::as_str) {
        None | Some("all") => Ingress::All,
        Some("internal") => Ingress::Internal,
        Some("internal-and-cloud-load-balancing") => Ingress::InternalAndCloudLoadBalancing,
        Some("none") => Ingress::None,
        Some(other) => {
            return Err(format!(
                "invalid `run.googleapis.com/ingress` annotation `{other}`; use all, internal or internal-and-cloud-load-balancing"
            ))
        }
    };
    let invoker_iam_disabled =
        annotations.get("run.googleapis.com/invoker-iam-disabled").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let spec = &doc["spec"]["template"]["spec"];
    let service_account = str_field(&spec["serviceAccountName"], "spec.template.spec.serviceAccountName")?
        .filter(|s| !s.is_empty())
        .map(str::to_owned);
    // `run.googleapis.com/secrets`: `alias:projects/N/secrets/S,…` names secrets of other projects.
    let aliases: BTreeMap<&str, &str> = template_annotations
        .get("run.googleapis.com/secrets")
        .map(|a| a.split(',').filter_map(|p| p.trim().split_once(':')).collect())
        .unwrap_or_default();
    let env = read_env(&spec["containers"], "spec.template.spec.containers", "valueFrom", |r, field| {
        let secret = str_field(&r["name"], &format!("{field}.name"))?.unwrap_or_default();
        let version = str_field(&r["key"], &format!("{field}.key"))?.unwrap_or_default();
        let secret = aliases.get(secret).copied().unwrap_or(secret);
        Ok(EnvValue::Secret { secret: secret.to_owned(), version: version.to_owned() })
    })?;
    let secret_volumes: Vec<String> = volume_secrets(&spec["volumes"], "spec.template.spec.volumes", "secretName")?
        .into_iter()
        .map(|s| aliases.get(s).copied().unwrap_or(s).to_owned())
        .collect();
    let has_vpc = template_annotations.contains_key("run.googleapis.com/vpc-access-connector")
        || template_annotations.contains_key("run.googleapis.com/network-interfaces");
    let vpc_egress = match template_annotations.get("run.googleapis.com/vpc-access-egress").map(String::as_str) {
        Some("all-traffic" | "all") => Some(Egress::AllTraffic),
        Some("private-ranges-only") => Some(Egress::PrivateRangesOnly),
        Some(other) => {
            return Err(format!(
                "invalid `run.googleapis.com/vpc-access-egress` annotation `{other}`; use private-ranges-only or all-traffic"
            ))
        }
        None => has_vpc.then_some(Egress::PrivateRangesOnly),
    };
    annotations.extend(template_annotations);
    let urls = [&doc["status"]["url"], &doc["status"]["address"]["url"]]
        .iter()
        .filter_map(|u| u.as_str().map(str::to_owned))
        .collect();
    if let Some(a) = &service_account {
        hints.account(a);
    }
    Ok(Service {
        name: name.to_owned(),
        region,
        ingress,
        invoker_iam_disabled,
        service_account,
        env,
        secret_volumes,
        vpc_egress,
        labels,
        annotations,
        urls,
    })
}

/// A proto enum given as its name or its number.
fn proto_enum<T: Copy>(v: &Value, field: &str, table: &[(&str, u64, T)], default: T) -> Result<T, String> {
    let found = match v {
        Value::Null => return Ok(default),
        Value::String(s) => table.iter().find(|(n, _, _)| n == s),
        Value::Number(n) => table.iter().find(|(_, i, _)| Some(*i) == n.as_u64()),
        _ => None,
    };
    found.map(|(_, _, t)| *t).ok_or_else(|| {
        let names: Vec<&str> = table.iter().map(|(n, _, _)| *n).collect();
        format!("invalid `{field}` {v}; use one of {}", names.join(", "))
    })
}

fn parse_v2(doc: &Value, hints: &mut Hints) -> Result<Service, String> {
    let full = str_field(&doc["name"], "name")?.filter(|n| !n.is_empty()).ok_or("`name` is required")?;
    let parts: Vec<&str> = full.split('/').collect();
    let (name, region) = match parts.as_slice() {
        ["projects", p, "locations", l, "services", s] => {
            hints.project_id.get_or_insert_with(|| (*p).to_owned());
            ((*s).to_owned(), (*l).to_owned())
        }
        [s] => ((*s).to_owned(), "REGION".to_owned()),
        _ => return Err(format!("`name` `{full}` is not projects/P/locations/L/services/S")),
    };
    let ingress = proto_enum(
        &doc["ingress"],
        "ingress",
        &[
            ("INGRESS_TRAFFIC_UNSPECIFIED", 0, Ingress::All),
            ("INGRESS_TRAFFIC_ALL", 1, Ingress::All),
            ("INGRESS_TRAFFIC_INTERNAL_ONLY", 2, Ingress::Internal),
            ("INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER", 3, Ingress::InternalAndCloudLoadBalancing),
            ("INGRESS_TRAFFIC_NONE", 4, Ingress::None),
        ],
        Ingress::All,
    )?;
    let invoker_iam_disabled = match &doc["invokerIamDisabled"] {
        Value::Null => false,
        Value::Bool(b) => *b,
        _ => return Err("`invokerIamDisabled` must be true or false".into()),
    };
    let t = &doc["template"];
    let service_account =
        str_field(&t["serviceAccount"], "template.serviceAccount")?.filter(|s| !s.is_empty()).map(str::to_owned);
    let env = read_env(&t["containers"], "template.containers", "valueSource", |r, field| {
        Ok(EnvValue::Secret {
            secret: str_field(&r["secret"], &format!("{field}.secret"))?.unwrap_or_default().to_owned(),
            version: str_field(&r["version"], &format!("{field}.version"))?.unwrap_or("latest").to_owned(),
        })
    })?;
    let secret_volumes: Vec<String> =
        volume_secrets(&t["volumes"], "template.volumes", "secret")?.into_iter().map(str::to_owned).collect();
    let access = &t["vpcAccess"];
    let vpc_egress = if access.is_object()
        && (access["connector"].as_str().is_some_and(|c| !c.is_empty())
            || access["networkInterfaces"].as_array().is_some_and(|n| !n.is_empty()))
    {
        Some(proto_enum(
            &access["egress"],
            "template.vpcAccess.egress",
            &[
                ("VPC_EGRESS_UNSPECIFIED", 0, Egress::PrivateRangesOnly),
                ("ALL_TRAFFIC", 1, Egress::AllTraffic),
                ("PRIVATE_RANGES_ONLY", 2, Egress::PrivateRangesOnly),
            ],
            Egress::PrivateRangesOnly,
        )?)
    } else {
        None
    };
    let mut labels = string_map(&doc["labels"], "labels")?;
    labels.extend(string_map(&t["labels"], "template.labels")?);
    let mut annotations = string_map(&doc["annotations"], "annotations")?;
    annotations.extend(string_map(&t["annotations"], "template.annotations")?);
    let mut urls: Vec<String> = doc["uri"].as_str().filter(|u| !u.is_empty()).map(str::to_owned).into_iter().collect();
    urls.extend(doc["urls"].as_array().into_iter().flatten().filter_map(|u| u.as_str().map(str::to_owned)));
    if let Some(a) = &service_account {
        hints.account(a);
    }
    Ok(Service {
        name,
        region,
        ingress,
        invoker_iam_disabled,
        service_account,
        env,
        secret_volumes,
        vpc_egress,
        labels,
        annotations,
        urls,
    })
}

/// `gcloud iam service-accounts list --format=json` (a list) or the REST form (`{"accounts": [...]}`).
pub fn parse_service_accounts(v: &Value, hints: &mut Hints) -> Result<Vec<ServiceAccount>, String> {
    let list = match v {
        Value::Array(a) => a.as_slice(),
        Value::Object(o) => o.get("accounts").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]),
        _ => return Err("expected a list of service accounts".into()),
    };
    let mut out = Vec::new();
    for (i, a) in list.iter().enumerate() {
        let email = a["email"].as_str().ok_or(format!("item {i} has no `email`"))?;
        if let Some(p) = a["projectId"].as_str() {
            hints.project_id.get_or_insert_with(|| p.to_owned());
        }
        hints.account(email);
        out.push(ServiceAccount { email: email.to_owned(), disabled: a["disabled"].as_bool().unwrap_or(false) });
    }
    Ok(out)
}

/// `gcloud iam service-accounts keys list --format=json` (a list) or the REST form (`{"keys": [...]}`).
pub fn parse_keys(v: &Value) -> Result<Vec<Key>, String> {
    let list = match v {
        Value::Array(a) => a.as_slice(),
        Value::Object(o) => o.get("keys").and_then(Value::as_array).map(Vec::as_slice).unwrap_or(&[]),
        _ => return Err("expected a list of keys".into()),
    };
    list.iter()
        .enumerate()
        .map(|(i, k)| {
            let name = k["name"].as_str().ok_or(format!("key {i} has no `name`"))?;
            Ok(Key {
                name: name.to_owned(),
                key_type: k["keyType"].as_str().unwrap_or("USER_MANAGED").to_owned(),
                valid_after: k["validAfterTime"].as_str().unwrap_or_default().to_owned(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v1(yaml: &str) -> Result<Service, String> {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        parse_service(&v, &mut Hints::default())
    }

    const EXPORT: &str = r#"
apiVersion: serving.knative.dev/v1
kind: Service
metadata:
  name: ledger
  namespace: '123456789012'
  labels:
    cloud.googleapis.com/location: europe-west1
    team: payments
  annotations:
    run.googleapis.com/ingress: internal-and-cloud-load-balancing
    run.googleapis.com/invoker-iam-disabled: 'True'
spec:
  template:
    metadata:
      annotations:
        run.googleapis.com/vpc-access-connector: conn
        run.googleapis.com/vpc-access-egress: all-traffic
        run.googleapis.com/secrets: 'other:projects/999/secrets/shared'
    spec:
      serviceAccountName: ledger@acme-prod.iam.gserviceaccount.com
      containers:
      - image: gcr.io/acme/ledger
        env:
        - name: MODE
          value: strict
        - name: DB_PASS
          valueFrom:
            secretKeyRef: {name: other, key: '3'}
      volumes:
      - name: cfg
        secret: {secretName: ledger-config}
"#;

    #[test]
    fn v1_export_reads_every_security_field() {
        let mut hints = Hints::default();
        let v: Value = serde_yaml::from_str(EXPORT).unwrap();
        let s = parse_service(&v, &mut hints).unwrap();
        assert_eq!((s.name.as_str(), s.region.as_str()), ("ledger", "europe-west1"));
        assert_eq!(s.ingress, Ingress::InternalAndCloudLoadBalancing);
        assert!(s.invoker_iam_disabled);
        assert_eq!(s.service_account.as_deref(), Some("ledger@acme-prod.iam.gserviceaccount.com"));
        assert_eq!(s.vpc_egress, Some(Egress::AllTraffic));
        assert_eq!(s.env[0], Env { name: "MODE".into(), value: EnvValue::Plain("strict".into()) });
        assert_eq!(
            s.env[1].value,
            EnvValue::Secret { secret: "projects/999/secrets/shared".into(), version: "3".into() }
        );
        assert_eq!(s.secret_volumes, ["ledger-config"]);
        assert_eq!(s.labels.get("team").map(String::as_str), Some("payments"));
        assert_eq!(hints.project_number.as_deref(), Some("123456789012"));
        assert_eq!(hints.project_id.as_deref(), Some("acme-prod"));
    }

    #[test]
    fn v2_service_json_with_int_enums() {
        let v = serde_json::json!({
            "name": "projects/acme/locations/us-central1/services/web",
            "ingress": 2,
            "template": {
                "vpcAccess": {"connector": "projects/acme/locations/us-central1/connectors/c", "egress": 2},
                "containers": [{"image": "x", "env": [
                    {"name": "A", "value": "1"},
                    {"name": "B", "valueSource": {"secretKeyRef": {"secret": "b", "version": "latest"}}}]}]},
            "uri": "https://web-abc-uc.a.run.app"
        });
        let s = parse_service(&v, &mut Hints::default()).unwrap();
        assert_eq!((s.name.as_str(), s.region.as_str(), s.ingress), ("web", "us-central1", Ingress::Internal));
        assert_eq!(s.service_account, None);
        assert_eq!(s.vpc_egress, Some(Egress::PrivateRangesOnly));
        assert_eq!(s.env[1].value, EnvValue::Secret { secret: "b".into(), version: "latest".into() });
        assert_eq!(s.urls, ["https://web-abc-uc.a.run.app"]);
    }

    #[test]
    fn malformed_services_say_what_is_wrong() {
        assert!(v1("apiVersion: serving.knative.dev/v1\nkind: Service\nmetadata: {}\n")
            .unwrap_err()
            .contains("metadata.name"));
        let bad = EXPORT.replace("internal-and-cloud-load-balancing", "intranet");
        assert!(v1(&bad).unwrap_err().contains("`intranet`"));
        assert!(v1("apiVersion: v1\nkind: ConfigMap\n").unwrap_err().contains("not a Cloud Run service"));
        assert!(v1("apiVersion: serving.knative.dev/v1\nkind: Route\n").unwrap_err().contains("`Route`"));
        let v =
            serde_json::json!({"name": "projects/p/locations/l/services/s", "template": {}, "ingress": "SOMETIMES"});
        assert!(parse_service(&v, &mut Hints::default()).unwrap_err().contains("invalid `ingress`"));
    }

    #[test]
    fn keys_and_accounts_in_gcloud_and_rest_forms() {
        let keys = parse_keys(&serde_json::json!([{"name": "projects/p/serviceAccounts/a@p.iam.gserviceaccount.com/keys/k1", "keyType": "USER_MANAGED"}])).unwrap();
        assert_eq!(keys[0].id(), "k1");
        assert!(parse_keys(&serde_json::json!({"keys": [{}]})).unwrap_err().contains("no `name`"));
        let mut hints = Hints::default();
        let accounts = parse_service_accounts(
            &serde_json::json!({"accounts": [{"email": "42-compute@developer.gserviceaccount.com"}]}),
            &mut hints,
        )
        .unwrap();
        assert_eq!(accounts.len(), 1);
        assert_eq!(hints.project_number.as_deref(), Some("42"));
    }
}
