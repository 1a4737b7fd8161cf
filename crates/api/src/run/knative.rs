//! The v1 Knative form of a Cloud Run service (`serving.knative.dev/v1` `Service`), both ways: what gcloud's
//! `run services describe` / `--format=export` print and `run services replace FILE` reads, and what the v1 REST
//! surface (`/apis/serving.knative.dev/v1/namespaces/{ns}/services`) answers and accepts; and of a revision
//! (`Revision`, one way: what `run revisions list`/`describe` print).

use serde_json::{json, Map, Value};

/// A v2 Service from the v1 Knative form (`services replace`): the service name, the region its location label
/// names, and the body.
pub fn from_knative(doc: &Value) -> Result<(String, Option<String>, Value), String> {
    if doc["apiVersion"] != "serving.knative.dev/v1" || doc["kind"] != "Service" {
        return Err(
            "the file is not a Knative service: it needs `apiVersion: serving.knative.dev/v1` and `kind: Service`"
                .to_string(),
        );
    }
    let meta = &doc["metadata"];
    let name = meta["name"].as_str().filter(|n| !n.is_empty()).ok_or("`metadata.name` is required")?;
    let annotations = &meta["annotations"];
    let mut labels = meta["labels"].as_object().cloned().unwrap_or_default();
    let region = labels.remove("cloud.googleapis.com/location").and_then(|v| v.as_str().map(str::to_owned));
    let spec = &doc["spec"]["template"]["spec"];
    let tmeta = &doc["spec"]["template"]["metadata"]["annotations"];
    let containers = spec["containers"].as_array().cloned().unwrap_or_default();
    let [c] = containers.as_slice() else {
        return Err(format!(
            "`spec.template.spec.containers` must hold exactly one container, it holds {}",
            containers.len()
        ));
    };
    let env: Vec<Value> = c["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| match e.get("valueFrom").and_then(|v| v.get("secretKeyRef")) {
            Some(r) => Ok(json!({ "name": e["name"], "valueSource": { "secretKeyRef": { "secret": r["name"], "version": r["key"] } } })),
            // A value is a string (`"5"`, not `5`), as Kubernetes reads it.
            None => match &e["value"] {
                Value::Null => Ok(json!({ "name": e["name"], "value": "" })),
                Value::String(v) => Ok(json!({ "name": e["name"], "value": v })),
                other => Err(format!("env `{}`: `value` must be a string, got {other}; quote it", e["name"].as_str().unwrap_or_default())),
            },
        })
        .collect::<Result<_, String>>()?;
    let mut container = json!({ "image": c["image"], "env": env });
    for key in ["command", "args", "workingDir", "ports", "volumeMounts"] {
        if !c[key].is_null() {
            container[key] = c[key].clone();
        }
    }
    let scale = |key: &str| -> Result<Option<u32>, String> {
        match &tmeta[key] {
            Value::Null => Ok(None),
            Value::String(v) => v
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("invalid `{key}` annotation `{v}`: use a whole number such as \"3\"")),
            other => Err(format!("invalid `{key}` annotation {other}: annotations are strings, such as \"3\"")),
        }
    };
    let mut template = json!({ "containers": [container] });
    let volumes: Vec<Value> = spec["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| match v["secret"].as_object() {
            Some(source) => {
                let items: Vec<Value> = source
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|i| json!({ "path": i["path"], "version": i["key"], "mode": i["mode"].as_u64().unwrap_or(0) }))
                    .collect();
                json!({ "name": v["name"], "secret": { "secret": source.get("secretName"), "items": items } })
            }
            // Anything else goes to the API as it is, which says what it does not support.
            None => v.clone(),
        })
        .collect();
    if !volumes.is_empty() {
        template["volumes"] = Value::Array(volumes);
    }
    let mut scaling = json!({});
    if let Some(n) = scale("autoscaling.knative.dev/minScale")? {
        scaling["minInstanceCount"] = json!(n);
    }
    if let Some(n) = scale("autoscaling.knative.dev/maxScale")? {
        scaling["maxInstanceCount"] = json!(n);
    }
    template["scaling"] = scaling;
    let mut access = Map::new();
    if let Some(c) = tmeta["run.googleapis.com/vpc-access-connector"].as_str() {
        access.insert("connector".into(), json!(c));
    }
    if let Some(n) = tmeta["run.googleapis.com/network-interfaces"].as_str() {
        let interfaces: Value = serde_json::from_str(n)
            .map_err(|_| "`run.googleapis.com/network-interfaces` must be a JSON array such as [{\"network\":\"default\",\"subnetwork\":\"default\"}]".to_string())?;
        access.insert("networkInterfaces".into(), interfaces);
    }
    if let Some(e) = tmeta["run.googleapis.com/vpc-access-egress"].as_str() {
        let egress = match e {
            "all-traffic" | "all" => "ALL_TRAFFIC",
            "private-ranges-only" => "PRIVATE_RANGES_ONLY",
            other => return Err(format!("invalid `run.googleapis.com/vpc-access-egress` annotation `{other}`; use private-ranges-only or all-traffic")),
        };
        access.insert("egress".into(), json!(egress));
    }
    if !access.is_empty() {
        template["vpcAccess"] = Value::Object(access);
    }
    // Whole numbers, as Kubernetes reads them (`"600"` is not one).
    let whole = |key: &str| -> Result<Option<u64>, String> {
        match &spec[key] {
            Value::Null => Ok(None),
            v => v
                .as_u64()
                .map(Some)
                .ok_or_else(|| format!("`spec.template.spec.{key}` must be a whole number, got {v}")),
        }
    };
    if let Some(n) = whole("containerConcurrency")?.filter(|n| *n > 0) {
        template["maxInstanceRequestConcurrency"] = json!(n);
    }
    if let Some(n) = whole("timeoutSeconds")? {
        template["timeout"] = json!(format!("{n}s"));
    }
    if let Some(sa) = spec["serviceAccountName"].as_str().filter(|s| !s.is_empty()) {
        template["serviceAccount"] = json!(sa);
    }
    let ingress = match annotations["run.googleapis.com/ingress"].as_str().unwrap_or("all") {
        "all" => "INGRESS_TRAFFIC_ALL",
        "internal" => "INGRESS_TRAFFIC_INTERNAL_ONLY",
        "internal-and-cloud-load-balancing" => "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
        other => return Err(format!("invalid `run.googleapis.com/ingress` annotation `{other}`")),
    };
    let audiences: Vec<String> = match annotations["run.googleapis.com/custom-audiences"].as_str() {
        Some(s) => serde_json::from_str(s)
            .map_err(|_| "`run.googleapis.com/custom-audiences` must be a JSON array of strings".to_string())?,
        None => Vec::new(),
    };
    let disabled =
        annotations["run.googleapis.com/invoker-iam-disabled"].as_str().is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let mut service = json!({
        "labels": labels,
        "ingress": ingress,
        "customAudiences": audiences,
        "invokerIamDisabled": disabled,
        "template": template,
    });
    // Kubernetes' optimistic concurrency: a replace naming the version it read fails if the service changed since
    // (the version is the v2 etag, see `to_knative`).
    if let Some(version) = meta["resourceVersion"].as_str().filter(|v| !v.is_empty()) {
        service["etag"] = json!(version);
    }
    Ok((name.to_owned(), region, service))
}

/// The v1 Knative form gcloud shows (`describe`, `--format=export`) of a v2 Service.
pub fn to_knative(s: &Value, project_number: &str, region: &str, export: bool) -> Value {
    let name = s["name"].as_str().and_then(|n| n.rsplit('/').next()).unwrap_or_default();
    let template = &s["template"];
    let mut annotations = Map::new();
    let ingress = match s["ingress"].as_str().unwrap_or_default() {
        "INGRESS_TRAFFIC_INTERNAL_ONLY" => "internal",
        "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER" => "internal-and-cloud-load-balancing",
        _ => "all",
    };
    annotations.insert("run.googleapis.com/ingress".into(), json!(ingress));
    if s["invokerIamDisabled"] == json!(true) {
        annotations.insert("run.googleapis.com/invoker-iam-disabled".into(), json!("True"));
    }
    if let Some(a) = s["customAudiences"].as_array().filter(|a| !a.is_empty()) {
        annotations.insert("run.googleapis.com/custom-audiences".into(), json!(Value::Array(a.clone()).to_string()));
    }
    if !export {
        annotations.insert("run.googleapis.com/ingress-status".into(), json!(ingress));
        annotations.insert("serving.knative.dev/creator".into(), s["creator"].clone());
        annotations.insert("serving.knative.dev/lastModifier".into(), s["lastModifier"].clone());
    }
    let mut labels = s["labels"].as_object().cloned().unwrap_or_default();
    labels.insert("cloud.googleapis.com/location".into(), json!(region));
    let (tmpl_annotations, spec) = revision_spec(template);
    let mut metadata = json!({
        "name": name,
        "namespace": project_number,
        "labels": labels,
        "annotations": annotations,
    });
    let mut doc = json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "metadata": {},
        "spec": {
            "template": {
                "metadata": { "annotations": tmpl_annotations },
                "spec": spec,
            },
            "traffic": [{ "percent": 100, "latestRevision": true }],
        },
    });
    if !export {
        metadata["uid"] = s["uid"].clone();
        metadata["generation"] = json!(s["generation"].as_str().and_then(|g| g.parse::<u64>().ok()).unwrap_or(1));
        metadata["creationTimestamp"] = s["createTime"].clone();
        metadata["resourceVersion"] = s["etag"].clone();
        doc["spec"]["template"]["metadata"]["name"] = s["latestCreatedRevision"].clone();
        let ready = s["terminalCondition"]["state"] == "CONDITION_SUCCEEDED";
        let mut cond = json!({
            "type": "Ready",
            "status": if ready { "True" } else { "False" },
            "lastTransitionTime": s["terminalCondition"]["lastTransitionTime"],
        });
        if let Some(m) = s["terminalCondition"]["message"].as_str() {
            cond["message"] = json!(m);
        }
        doc["status"] = json!({
            "observedGeneration": metadata["generation"],
            "conditions": [cond],
            "latestReadyRevisionName": s["latestReadyRevision"],
            "latestCreatedRevisionName": s["latestCreatedRevision"],
            "traffic": [{ "revisionName": s["latestReadyRevision"], "percent": 100, "latestRevision": true }],
            "url": s["uri"],
            "address": { "url": s["uri"] },
        });
    }
    doc["metadata"] = metadata;
    doc
}

/// A v2 revision template in v1's words: the annotations of the Knative template's (or revision's) `metadata`, and
/// its `spec` (a `RevisionSpec`). A v2 Revision carries the same fields, so it converts the same way.
fn revision_spec(template: &Value) -> (Map<String, Value>, Value) {
    let container = &template["containers"][0];
    let mut tmpl_annotations = Map::new();
    if let Some(n) = template["scaling"]["minInstanceCount"].as_u64() {
        tmpl_annotations.insert("autoscaling.knative.dev/minScale".into(), json!(n.to_string()));
    }
    if let Some(n) = template["scaling"]["maxInstanceCount"].as_u64() {
        tmpl_annotations.insert("autoscaling.knative.dev/maxScale".into(), json!(n.to_string()));
    }
    let access = &template["vpcAccess"];
    if let Some(c) = access["connector"].as_str() {
        tmpl_annotations.insert("run.googleapis.com/vpc-access-connector".into(), json!(c));
    }
    if let Some(n) = access["networkInterfaces"].as_array().filter(|n| !n.is_empty()) {
        tmpl_annotations
            .insert("run.googleapis.com/network-interfaces".into(), json!(Value::Array(n.clone()).to_string()));
    }
    if access.is_object() {
        let egress = if access["egress"] == "ALL_TRAFFIC" { "all-traffic" } else { "private-ranges-only" };
        tmpl_annotations.insert("run.googleapis.com/vpc-access-egress".into(), json!(egress));
    }
    let mut c = Map::new();
    for key in ["image", "command", "args", "workingDir", "ports"] {
        if !container[key].is_null() && container[key] != json!([]) {
            c.insert(key.into(), container[key].clone());
        }
    }
    // Secret references in v1's words: `valueFrom.secretKeyRef{name, key = version}`, `secret{secretName, items}`.
    let env: Vec<Value> = container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| match e["valueSource"]["secretKeyRef"].as_object() {
            Some(r) => json!({ "name": e["name"], "valueFrom": { "secretKeyRef": { "name": r["secret"], "key": r["version"] } } }),
            None => json!({ "name": e["name"], "value": e["value"].as_str().unwrap_or_default() }),
        })
        .collect();
    if !env.is_empty() {
        c.insert("env".into(), Value::Array(env));
    }
    if let Some(mounts) = container["volumeMounts"].as_array().filter(|m| !m.is_empty()) {
        c.insert("volumeMounts".into(), json!(mounts));
    }
    let volumes: Vec<Value> = template["volumes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| {
            let source = v["secret"].as_object()?;
            let items: Vec<Value> = source
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|i| {
                    let mut item = json!({ "key": i["version"], "path": i["path"] });
                    if let Some(m) = i["mode"].as_u64().filter(|m| *m != 0) {
                        item["mode"] = json!(m);
                    }
                    item
                })
                .collect();
            Some(json!({ "name": v["name"], "secret": { "secretName": source.get("secret"), "items": items } }))
        })
        .collect();
    let timeout = template["timeout"].as_str().and_then(|t| t.trim_end_matches('s').parse::<u64>().ok()).unwrap_or(300);
    let mut spec = json!({
        "containerConcurrency": template["maxInstanceRequestConcurrency"].as_u64().unwrap_or(80),
        "timeoutSeconds": timeout,
        "serviceAccountName": template["serviceAccount"],
        "containers": [c],
    });
    if !volumes.is_empty() {
        spec["volumes"] = Value::Array(volumes);
    }
    (tmpl_annotations, spec)
}

/// The v1 Knative `Revision` gcloud shows (`run revisions list`/`describe`) of a v2 Revision. `active`: whether it
/// serves its service's traffic, when known; `creator`: who deployed it, when known.
pub fn revision_to_knative(
    r: &Value,
    project_number: &str,
    region: &str,
    active: Option<bool>,
    creator: Option<&str>,
) -> Value {
    let last = |v: &Value| v.as_str().and_then(|n| n.rsplit('/').next()).unwrap_or_default().to_owned();
    let (name, service) = (last(&r["name"]), last(&r["service"]));
    let (mut annotations, spec) = revision_spec(r);
    for (k, v) in r["annotations"].as_object().into_iter().flatten() {
        annotations.insert(k.clone(), v.clone());
    }
    // Who deployed it as the revision recorded it; else as the service tells (older revisions recorded nobody).
    let stored = r["creator"].as_str().filter(|c| !c.is_empty());
    if let Some(c) = stored.or(creator).filter(|c| !c.is_empty()) {
        annotations.insert("serving.knative.dev/creator".into(), json!(c));
    }
    let mut labels = r["labels"].as_object().cloned().unwrap_or_default();
    labels.insert("serving.knative.dev/configuration".into(), json!(service));
    labels.insert("serving.knative.dev/configurationGeneration".into(), json!(r["generation"].as_str().unwrap_or("1")));
    labels.insert("serving.knative.dev/service".into(), json!(service));
    if active == Some(true) {
        labels.insert("serving.knative.dev/route".into(), json!(service));
    }
    labels.insert("cloud.googleapis.com/location".into(), json!(region));
    let ready = r["conditions"].as_array().into_iter().flatten().find(|c| c["type"] == "Ready");
    let mut conditions = Vec::new();
    if let Some(c) = ready {
        let status = match c["state"].as_str() {
            Some("CONDITION_SUCCEEDED") => "True",
            Some("CONDITION_FAILED") => "False",
            _ => "Unknown",
        };
        let mut cond = json!({ "type": "Ready", "status": status, "lastTransitionTime": c["lastTransitionTime"] });
        if let Some(m) = c["message"].as_str() {
            cond["message"] = json!(m);
        }
        conditions.push(cond);
    }
    if let Some(active) = active {
        conditions.push(json!({ "type": "Active", "status": if active { "True" } else { "False" } }));
    }
    let mut status = json!({ "observedGeneration": 1, "conditions": conditions });
    if let Some(u) = r["logUri"].as_str().filter(|u| !u.is_empty()) {
        status["logUrl"] = json!(u);
    }
    json!({
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Revision",
        "metadata": {
            "name": name,
            "namespace": project_number,
            "uid": r["uid"],
            "generation": 1,
            "creationTimestamp": r["createTime"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [{
                "kind": "Configuration",
                "name": service,
                "apiVersion": "serving.knative.dev/v1",
                "controller": true,
                "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
        "status": status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_revision_reads_as_a_knative_revision_with_its_service_labels() {
        let rev = json!({
            "name": "projects/p/locations/us-central1/services/svc-a/revisions/svc-a-00002-xyz",
            "uid": "u1",
            "generation": "2",
            "service": "projects/p/locations/us-central1/services/svc-a",
            "createTime": "2026-01-02T03:04:05.678Z",
            "serviceAccount": "sa@p.iam.gserviceaccount.com",
            "containers": [{"image": "hello", "env": [{"name": "MODE", "value": "x"}]}],
            "scaling": {"maxInstanceCount": 3},
            "maxInstanceRequestConcurrency": 10,
            "timeout": "60s",
            "conditions": [{"type": "Ready", "state": "CONDITION_SUCCEEDED", "lastTransitionTime": "t"}],
        });
        let k = revision_to_knative(&rev, "123", "us-central1", Some(true), Some("dev@example.com"));
        assert_eq!((k["apiVersion"].as_str(), k["kind"].as_str()), (Some("serving.knative.dev/v1"), Some("Revision")));
        let meta = &k["metadata"];
        assert_eq!(meta["name"], "svc-a-00002-xyz");
        assert_eq!(meta["namespace"], "123");
        assert_eq!(meta["labels"]["serving.knative.dev/service"], "svc-a");
        assert_eq!(meta["labels"]["serving.knative.dev/configuration"], "svc-a");
        assert_eq!(meta["labels"]["serving.knative.dev/configurationGeneration"], "2");
        assert_eq!(meta["labels"]["serving.knative.dev/route"], "svc-a");
        assert_eq!(meta["annotations"]["autoscaling.knative.dev/maxScale"], "3");
        assert_eq!(meta["annotations"]["serving.knative.dev/creator"], "dev@example.com");
        assert_eq!(meta["ownerReferences"][0]["name"], "svc-a");
        // The spec is the one a service's template shows.
        let service = json!({"name": "projects/p/locations/us-central1/services/svc-a", "template": rev.clone()});
        assert_eq!(k["spec"], to_knative(&service, "123", "us-central1", false)["spec"]["template"]["spec"]);
        assert_eq!(k["spec"]["containerConcurrency"], 10);
        assert_eq!(k["spec"]["timeoutSeconds"], 60);
        assert_eq!(k["spec"]["serviceAccountName"], "sa@p.iam.gserviceaccount.com");
        assert_eq!(k["spec"]["containers"][0]["env"][0]["value"], "x");
        assert_eq!(
            k["status"]["conditions"],
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": "t"}, {"type": "Active", "status": "True"}])
        );
        // Not serving, and nothing known of the service: no route label, no Active condition, no creator.
        let k = revision_to_knative(&rev, "123", "us-central1", None, None);
        assert!(k["metadata"]["labels"].get("serving.knative.dev/route").is_none());
        assert!(k["metadata"]["annotations"].get("serving.knative.dev/creator").is_none());
        assert_eq!(k["status"]["conditions"].as_array().unwrap().len(), 1);
    }
}
