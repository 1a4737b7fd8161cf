//! Cloud Run Admin API v2: services and revisions, their IAM policies, and the bridge to the runtime.
//!
//! A deploy writes the service and an immutable revision (audited), asks the [`Deployer`] to start it and wait until
//! it serves, then records the outcome. The gateway learns about services through [`App::routes`], a snapshot rebuilt
//! after every change.

pub mod knative;
pub mod types;

use crate::audit_trail::Call;
use crate::auth::Caller;
use crate::http::{Reply, Req};
use crate::policy::{self, Target};
use crate::projects;
use crate::service_accounts::ServiceAccount;
use crate::state::{kind, now_rfc3339, App, Result};
use model::{ApiError, Code};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use types::{Ingress, Service, Workload};

const SERVICE: &str = "run.googleapis.com";
const SERVICE_TYPE: &str = "type.googleapis.com/google.cloud.run.v2.Service";

/// Starts revisions and reports on them; implemented over the runtime by the daemon.
pub trait Deployer: Send + Sync + 'static {
    /// Starts the revision and waits until it serves (blocking). A failure carries Cloud Run's reason and the
    /// instance's last log lines.
    fn deploy(&self, spec: DeploySpec) -> std::result::Result<(), DeployFailure>;
    /// Stops every instance of the service.
    fn remove(&self, service: &str);
    /// Recent instance and request log lines of the service, newest last.
    fn logs(&self, service: &str, limit: usize) -> Vec<Value>;
}

/// What the runtime needs to start a revision.
#[derive(Debug, Clone)]
pub struct DeploySpec {
    pub service: String,
    pub revision: String,
    pub workload: Workload,
}

#[derive(Debug, Clone)]
pub struct DeployFailure {
    pub reason: String,
    pub last_logs: Vec<String>,
}

/// What the gateway needs of one service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceRoute {
    pub service: String,
    /// Full resource name: `//run.googleapis.com/projects/P/locations/L/services/S`.
    pub resource: String,
    /// The service's own loopback port: its URL is `http://127.0.0.1:PORT`.
    pub port: u16,
    /// Host names routed on the main gateway port (the `run.app` form).
    pub hosts: Vec<String>,
    /// Every `aud` accepted for this service.
    pub audiences: Vec<String>,
    pub invoker_iam_disabled: bool,
    pub ingress: Ingress,
    /// The serving template's request timeout.
    pub timeout_secs: u64,
}

/// A service as stored: Google's shape plus the platform's own bookkeeping.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Stored {
    pub service: Service,
    pub port: u16,
    pub generation: u64,
}

/// A revision as stored (`google.cloud.run.v2.Revision`, the fields that matter here).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Revision {
    pub name: String,
    pub uid: String,
    pub generation: String,
    pub service: String,
    pub create_time: String,
    /// Who deployed it (v2 Revision has no such field; kept for gcloud's DEPLOYED BY and the Knative creator).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub creator: String,
    pub service_account: String,
    pub containers: Vec<types::Container>,
    pub scaling: types::Scaling,
    pub max_instance_request_concurrency: u32,
    pub timeout: String,
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub annotations: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_access: Option<types::VpcAccess>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_environment: Option<Value>,
    pub conditions: Vec<Value>,
    pub log_uri: String,
}

impl Revision {
    /// The template this revision was created from: what its instances run, after a restart as at its deploy.
    fn template(&self) -> types::RevisionTemplate {
        types::RevisionTemplate {
            revision: String::new(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            scaling: self.scaling.clone(),
            service_account: self.service_account.clone(),
            containers: self.containers.clone(),
            timeout: self.timeout.clone(),
            max_instance_request_concurrency: self.max_instance_request_concurrency,
            vpc_access: self.vpc_access.clone(),
            volumes: self.volumes.clone(),
            execution_environment: self.execution_environment.clone(),
        }
    }
}

fn condition(ok: bool, message: &str) -> Value {
    let mut c = json!({
        "type": "Ready",
        "state": if ok { "CONDITION_SUCCEEDED" } else { "CONDITION_FAILED" },
        "lastTransitionTime": now_rfc3339(),
    });
    if !message.is_empty() {
        c["message"] = json!(message);
    }
    c
}

struct Names {
    project_id: String,
    location: String,
    service: String,
}

impl Names {
    fn relative(&self) -> String {
        format!("projects/{}/locations/{}/services/{}", self.project_id, self.location, self.service)
    }
    fn full(&self) -> String {
        format!("//run.googleapis.com/{}", self.relative())
    }
    fn parent(&self) -> String {
        format!("projects/{}/locations/{}", self.project_id, self.location)
    }
}

fn names(app: &App, project: &str, location: &str, service: &str, permission: &str) -> Result<Names> {
    let p = projects::resolve(app, project, permission)?;
    if location != p.region {
        return Err(ApiError::invalid(format!(
            "location `{location}` is not served by this platform; its project `{}` is in `{}` (use `--region={}`)",
            p.project_id, p.region, p.region
        )));
    }
    Ok(Names { project_id: p.project_id.clone(), location: location.to_owned(), service: service.to_owned() })
}

/// How many finished operations `operations.get` and `operations.list` still know (newest kept).
const OPERATIONS_KEPT: usize = 1000;

fn lro(app: &App, n: &Names, service: &Service, error: Option<&ApiError>) -> Value {
    let op = lro_body(n, service, error);
    let mut kept = app.operations.lock().unwrap_or_else(|e| e.into_inner());
    if kept.len() == OPERATIONS_KEPT {
        kept.pop_front();
    }
    kept.push_back(op.clone());
    op
}

fn lro_body(n: &Names, service: &Service, error: Option<&ApiError>) -> Value {
    let mut body = serde_json::to_value(service).unwrap_or_default();
    body["@type"] = json!(SERVICE_TYPE);
    let mut op = json!({
        "name": format!("{}/operations/{:016x}", n.parent(), tokens::random_u64()),
        "metadata": body.clone(),
        "done": true,
    });
    match error {
        Some(e) => op["error"] = json!({ "code": e.code.rpc_code(), "message": e.message }),
        None => op["response"] = body,
    }
    op
}

/// Google's denial for deploying as an account the caller may not act as (PROTOCOL.md §8.2).
pub(crate) fn check_act_as(app: &App, caller: &Caller, email: &str, call: &Call) -> Result<()> {
    let full = model::names::service_account_full_name(&app.project.project_id, email);
    app.authorize(caller, "iam.serviceAccounts.actAs", &full, call).map_err(|e| {
        if e.code == Code::PermissionDenied {
            let mut d = e;
            d.message = format!(
                "Permission 'iam.serviceaccounts.actAs' denied on service account {email} (or it may not exist)."
            );
            d
        } else {
            e
        }
    })?;
    let exists = app.read(|tx| Ok(tx.get::<ServiceAccount>(kind::SERVICE_ACCOUNT, email)?))?;
    match exists {
        Some(sa) if !sa.disabled => Ok(()),
        Some(_) => Err(ApiError::failed_precondition(format!("service account {email} is disabled"))),
        None => Err(ApiError::new(
            Code::PermissionDenied,
            format!("Permission 'iam.serviceaccounts.actAs' denied on service account {email} (or it may not exist)."),
        )),
    }
}

/// Deploy-time check (PROTOCOL §10.2): the revision's service account must be able to read every secret the
/// revision references, else the deploy fails naming the secret and the account, in Cloud Run's words.
fn check_secrets(app: &App, w: &types::Workload) -> Result<()> {
    let refs =
        w.secret_env.iter().map(|e| (format!("{}.value_from.secret_key_ref.name", e.field), &e.secret, &e.version));
    let refs = refs.chain(w.secret_files.iter().map(|f| (f.field.clone(), &f.secret, &f.version)));
    for (field, secret, version) in refs {
        let Err(e) = app.check_secret_access(&w.service_account, secret) else { continue };
        let id = secret.rsplit('/').next().unwrap_or(secret);
        let shown = format!("projects/{}/secrets/{id}/versions/{version}", app.project.project_number);
        let message = match e.code {
            Code::PermissionDenied => format!(
                "{field}: Permission denied on secret: {shown} for Revision service account {}. The service account \
                 used must be granted the 'Secret Manager Secret Accessor' role (roles/secretmanager.secretAccessor) \
                 at the secret, project or higher level.",
                w.service_account
            ),
            Code::NotFound => format!("{field}: Secret {shown} was not found"),
            _ => format!("{field}: {}", e.message),
        };
        let code = if e.code == Code::PermissionDenied { Code::PermissionDenied } else { Code::InvalidArgument };
        return Err(ApiError::new(code, message));
    }
    Ok(())
}

fn revision_name(service: &str, generation: u64) -> String {
    let suffix: String = (0..3).map(|i| char::from(b'a' + ((tokens::random_u64() >> (i * 8)) % 26) as u8)).collect();
    format!("{service}-{generation:05}-{suffix}")
}

impl App {
    /// The services the gateway routes, swapped after every change.
    pub fn routes(&self) -> std::sync::Arc<Vec<ServiceRoute>> {
        self.routes.load_full()
    }

    /// Notified whenever [`App::routes`] changes.
    pub fn subscribe_routes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.routes_changed.subscribe()
    }

    /// Connects the runtime. Until then deploys fail with UNAVAILABLE.
    pub fn set_deployer(&self, deployer: std::sync::Arc<dyn Deployer>) {
        let _ = self.deployer.set(deployer);
    }

    /// The serving revision of every service, for the daemon to start on boot.
    pub fn serving_revisions(&self) -> Result<Vec<(String, Result<DeploySpec>)>> {
        let stored: Vec<(String, Stored)> = self.read(|tx| Ok(tx.list(kind::RUN_SERVICE, "")?))?;
        let default_sa = model::names::default_compute_email(&self.project.project_number);
        let mut out = Vec::new();
        for (id, s) in stored {
            let name = &s.service.latest_ready_revision;
            if name.is_empty() {
                continue;
            }
            let spec = self.read(|tx| Ok(tx.get::<Revision>(kind::REVISION, name)?)).and_then(|rev| {
                let rev = rev.ok_or_else(|| ApiError::internal(format!("its serving revision `{name}` is missing")))?;
                let mut template = rev.template();
                // Revisions stored before they kept their whole template: the service's template is theirs when
                // they are its latest (volumes and VPC access were only there).
                let partial = rev.volumes.is_empty() && rev.vpc_access.is_none();
                if partial && s.service.latest_created_revision == rev.name {
                    template = s.service.template.clone();
                    template.service_account.clone_from(&rev.service_account);
                }
                let workload = types::workload(&template, &default_sa)?;
                Ok(DeploySpec { service: id.clone(), revision: rev.name, workload })
            });
            out.push((id, spec));
        }
        Ok(out)
    }

    pub(crate) fn rebuild_routes(&self) -> Result<()> {
        let stored: Vec<(String, Stored)> = self.read(|tx| Ok(tx.list(kind::RUN_SERVICE, "")?))?;
        let routes = stored
            .into_iter()
            .map(|(id, s)| {
                let det = deterministic_url(&id, &self.project.project_number, &self.project.region);
                let mut audiences = Vec::new();
                for url in [s.service.uri.clone(), det.clone()] {
                    audiences.push(format!("{url}/"));
                    audiences.push(url);
                }
                audiences.extend(s.service.custom_audiences.iter().cloned());
                ServiceRoute {
                    resource: format!(
                        "//run.googleapis.com/projects/{}/locations/{}/services/{id}",
                        self.project.project_id, self.project.region
                    ),
                    hosts: vec![det.trim_start_matches("https://").to_owned()],
                    service: id,
                    port: s.port,
                    audiences,
                    invoker_iam_disabled: s.service.invoker_iam_disabled,
                    ingress: s.service.ingress,
                    timeout_secs: s
                        .service
                        .template
                        .timeout
                        .trim_end_matches('s')
                        .parse::<f64>()
                        .map(|t| t.ceil() as u64)
                        .unwrap_or(300),
                }
            })
            .collect();
        self.routes.store(std::sync::Arc::new(routes));
        self.routes_changed.send_modify(|v| *v += 1);
        Ok(())
    }

    /// Picks the loopback port of a new service's URL.
    fn allocate_port(&self, tx: &store::Tx) -> std::result::Result<u16, crate::state::ApiErrorBox> {
        let used: Vec<u16> = tx.list::<Stored>(kind::RUN_SERVICE, "")?.into_iter().map(|(_, s)| s.port).collect();
        let free = |port: u16| !used.contains(&port) && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
        if self.service_port_base != 0 {
            if let Some(p) = (self.service_port_base..self.service_port_base.saturating_add(1000)).find(|p| free(*p)) {
                return Ok(p);
            }
        }
        // Below Linux's ephemeral range (32768–60999), so that no outgoing connection's local port takes the URL's
        // port between this check and the listener's bind; random, so that platforms side by side rarely meet.
        const RANGE: std::ops::Range<u64> = 20_000..32_768;
        for _ in 0..200 {
            let port = (RANGE.start + tokens::random_u64() % (RANGE.end - RANGE.start)) as u16;
            if free(port) {
                return Ok(port);
            }
        }
        Err(ApiError::new(Code::ResourceExhausted, "no free loopback port for the service").into())
    }
}

/// Cloud Run's deterministic URL form, accepted as an audience and routed by Host on the main gateway port.
pub fn deterministic_url(service: &str, project_number: &str, region: &str) -> String {
    format!("https://{service}-{project_number}.{region}.run.app")
}

/// The v1 Knative surface (`/apis/serving.knative.dev/v1/namespaces/{ns}/services[/{name}]`, as Cloud Run's
/// regional v1 endpoint serves it), on the platform's region: each call is the v2 call, in v1's shapes (see
/// `knative`). `ns` is the project id or number.
pub(crate) fn knative_route(app: &App, req: &Req, ns: &str, name: Option<&str>) -> Option<Result<Reply>> {
    use axum::http::Method;
    let project = app.project();
    let pid = if ns == project.project_number { project.project_id.clone() } else { ns.to_owned() };
    let (number, region) = (project.project_number.clone(), project.region.clone());
    let as_v1 = |v: &Value| knative::to_knative(v, &number, &region, false);
    let json = |r: Result<Reply>| -> Result<Value> {
        match r? {
            Reply::Json(v) => Ok(v),
            _ => Err(ApiError::internal("unexpected reply from the v2 handler")),
        }
    };
    let m = &req.method;
    Some((|| -> Result<Reply> {
        match (m, name) {
            (&Method::GET, None) => {
                let v = json(list(app, req, &pid, &region))?;
                let items: Vec<Value> = v["services"].as_array().into_iter().flatten().map(as_v1).collect();
                Ok(Reply::Json(
                    json!({ "apiVersion": "serving.knative.dev/v1", "kind": "ServiceList", "items": items }),
                ))
            }
            (&Method::GET, Some(id)) => Ok(Reply::Json(as_v1(&json(get(app, req, &pid, &region, id))?))),
            (&Method::POST, None) | (&Method::PUT, Some(_)) => {
                let doc: Value = req.json()?;
                let (id, location, body) = knative::from_knative(&doc).map_err(ApiError::invalid)?;
                if let Some(l) = location.filter(|l| *l != region) {
                    return Err(ApiError::invalid(format!(
                        "label `cloud.googleapis.com/location` is `{l}`, but this namespace's services are in `{region}`"
                    )));
                }
                if let Some(path_id) = name.filter(|n| *n != id) {
                    return Err(ApiError::invalid(format!(
                        "metadata.name `{id}` does not match the service `{path_id}` in the path"
                    )));
                }
                let mut query = std::collections::HashMap::new();
                // Kubernetes' `dryRun=All`: every check, no change (v2's validateOnly).
                match req.query("dryRun") {
                    None => {}
                    Some("All") => {
                        query.insert("validateOnly".to_owned(), "true".to_owned());
                    }
                    Some(other) => {
                        return Err(ApiError::invalid(format!("invalid `dryRun` `{other}`; the only value is All")))
                    }
                }
                let sub = |query, method| Req {
                    method,
                    segs: Vec::new(),
                    verb: None,
                    query,
                    body: body.to_string().into(),
                    authorization: req.authorization.clone(),
                    operator_key: req.operator_key.clone(),
                    host: req.host.clone(),
                    ip: req.ip.clone(),
                    user_agent: req.user_agent.clone(),
                };
                let op = if m == Method::POST {
                    query.insert("serviceId".to_owned(), id.clone());
                    json(create(app, &sub(query, Method::POST), &pid, &region))?
                } else {
                    query.insert("allowMissing".to_owned(), "true".to_owned());
                    json(update(app, &sub(query, Method::PATCH), &pid, &region, &id))?
                };
                if let Some(e) = op.get("error") {
                    let message = e["message"].as_str().unwrap_or("the deployment failed");
                    return Err(ApiError::failed_precondition(message));
                }
                Ok(Reply::Json(as_v1(&op["response"])))
            }
            (&Method::DELETE, Some(id)) => {
                json(delete(app, req, &pid, &region, id))?;
                Ok(Reply::Json(json!({
                    "apiVersion": "v1",
                    "kind": "Status",
                    "status": "Success",
                    "details": { "name": id, "group": "serving.knative.dev", "kind": "services" },
                })))
            }
            _ => Err(ApiError::new(Code::Unimplemented, "this v1 method is not supported; use the v2 API")),
        }
    })())
}

/// Dispatches `/v2/projects/{p}/locations/{l}/services[/{s}[:verb]]` and revisions.
pub(crate) fn route(app: &App, req: &Req, segs: &[&str], verb: Option<&str>) -> Option<Result<Reply>> {
    use axum::http::Method;
    let m = &req.method;
    Some(match (segs, verb) {
        ([p, "locations", l, "services"], None) if m == Method::POST => create(app, req, p, l),
        ([p, "locations", l, "services"], None) if m == Method::GET => list(app, req, p, l),
        ([p, "locations", l, "services", s], None) if m == Method::GET => get(app, req, p, l, s),
        ([p, "locations", l, "services", s], None) if m == Method::PATCH => update(app, req, p, l, s),
        ([p, "locations", l, "services", s], None) if m == Method::DELETE => delete(app, req, p, l, s),
        // Cloud Run v2's IAM methods: `GET :getIamPolicy` (POST read too, as Secret Manager's here), `POST
        // :setIamPolicy`, `POST :testIamPermissions`; any other method is no method at all.
        ([p, "locations", l, "services", s], Some(v @ "getIamPolicy")) if m == Method::GET || m == Method::POST => {
            iam(app, req, p, l, s, v)
        }
        ([p, "locations", l, "services", s], Some(v @ ("setIamPolicy" | "testIamPermissions")))
            if m == Method::POST =>
        {
            iam(app, req, p, l, s, v)
        }
        ([p, "locations", l, "services", s], Some("logs")) if m == Method::GET => logs(app, req, p, l, s),
        ([p, "locations", l, "operations"], None) if m == Method::GET => operations(app, req, p, l, None),
        ([p, "locations", l, "operations", o], None) if m == Method::GET => operations(app, req, p, l, Some(o)),
        ([p, "locations", l, "services", s, "revisions"], None) if m == Method::GET => {
            revisions(app, req, p, l, s, None)
        }
        ([p, "locations", l, "services", s, "revisions", r], None) if m == Method::GET => {
            revisions(app, req, p, l, s, Some(r))
        }
        _ => return None,
    })
}

fn load(app: &App, id: &str) -> Result<Option<Stored>> {
    app.read(|tx| Ok(tx.get::<Stored>(kind::RUN_SERVICE, id)?))
}

fn not_found(n: &Names) -> ApiError {
    ApiError::not_found(format!(
        "Resource '{}' of kind 'SERVICE' in region '{}' in project '{}' does not exist.",
        n.service, n.location, n.project_id
    ))
}

fn create(app: &App, req: &Req, project: &str, location: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let id = req.query("serviceId").unwrap_or_default().to_owned();
    let n = names(app, project, location, &id, "run.services.create")?;
    let call = Call::new(SERVICE, "google.cloud.run.v2.Services.CreateService", n.relative())
        .needs("run.services.create", &n.full());
    app.authorize(&caller, "run.services.create", &n.full(), &call)?;
    types::validate_service_id(&id)?;
    let body = service_body(req)?;
    deploy(app, &caller, &n, Deploy { body, existing: None, etag: None, validate_only: validate_only(req)? }, call)
}

/// Every field of `google.cloud.run.v2.Service`: a body naming another one is refused, as Google's front end
/// refuses it (`"ingres": …` must not quietly leave a service public). Fields this platform does not model are
/// accepted and not kept.
const SERVICE_FIELDS: [&str; 38] = [
    "name",
    "description",
    "uid",
    "generation",
    "labels",
    "annotations",
    "createTime",
    "updateTime",
    "deleteTime",
    "expireTime",
    "creator",
    "lastModifier",
    "client",
    "clientVersion",
    "ingress",
    "launchStage",
    "binaryAuthorization",
    "template",
    "traffic",
    "scaling",
    "invokerIamDisabled",
    "defaultUriDisabled",
    "urls",
    "iapEnabled",
    "multiRegionSettings",
    "customAudiences",
    "observedGeneration",
    "terminalCondition",
    "conditions",
    "latestReadyRevision",
    "latestCreatedRevision",
    "trafficStatuses",
    "uri",
    "satisfiesPzs",
    "threatDetectionEnabled",
    "buildConfig",
    "reconciling",
    "etag",
];

/// The request body of a create or an update: a v2 Service with no field Google's Service lacks.
fn service_body(req: &Req) -> Result<Service> {
    let body: serde_json::Map<String, Value> = req.json()?;
    let mut fields = serde_json::Map::new();
    for (key, value) in body {
        // Google's JSON mapping also takes the proto's own (snake_case) names.
        let camel = snake_to_camel(&key);
        if !SERVICE_FIELDS.contains(&camel.as_str()) {
            return Err(ApiError::invalid(format!(
                "Invalid JSON payload received. Unknown name \"{key}\": Cannot find field."
            )));
        }
        fields.insert(camel, value);
    }
    serde_json::from_value(Value::Object(fields))
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. {e}")))
}

fn snake_to_camel(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut upper = false;
    for c in s.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// `validateOnly=true` (v1's Kubernetes form: `dryRun=All`): every check runs, nothing changes.
fn validate_only(req: &Req) -> Result<bool> {
    match (req.query("validateOnly"), req.query("dryRun")) {
        (None | Some("false"), None) => Ok(false),
        (Some("true"), _) | (_, Some("All")) => Ok(true),
        (Some(other), _) => Err(ApiError::invalid(format!("invalid `validateOnly` `{other}`; use true or false"))),
        (_, Some(other)) => Err(ApiError::invalid(format!("invalid `dryRun` `{other}`; the only value is All"))),
    }
}

/// What a create or an update asks of [`deploy`].
struct Deploy {
    body: Service,
    /// The service as read before the write (`None`: a create).
    existing: Option<Stored>,
    /// The etag the caller sent: the write is refused unless the service still has it.
    etag: Option<String>,
    validate_only: bool,
}

fn stale_etag(n: &Names) -> ApiError {
    ApiError::new(
        Code::Aborted,
        format!(
            "The etag of service '{}' does not match: it changed since it was read. Get it again and retry.",
            n.service
        ),
    )
}

fn update(app: &App, req: &Req, project: &str, location: &str, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let n = names(app, project, location, id, "run.services.update")?;
    let existing = load(app, id)?;
    if existing.is_none() && req.query("allowMissing") == Some("true") {
        let call = Call::new(SERVICE, "google.cloud.run.v2.Services.CreateService", n.relative())
            .needs("run.services.create", &n.full());
        app.authorize(&caller, "run.services.create", &n.full(), &call)?;
        types::validate_service_id(id)?;
        let ask = Deploy { body: service_body(req)?, existing: None, etag: None, validate_only: validate_only(req)? };
        return deploy(app, &caller, &n, ask, call);
    }
    let call = Call::new(SERVICE, "google.cloud.run.v2.Services.UpdateService", n.relative())
        .needs("run.services.update", &n.full());
    app.authorize(&caller, "run.services.update", &n.full(), &call)?;
    let existing = existing.ok_or_else(|| not_found(&n))?;
    let body = service_body(req)?;
    let etag = Some(body.etag.clone()).filter(|e| !e.is_empty());
    if etag.as_ref().is_some_and(|e| *e != existing.service.etag) {
        return Err(stale_etag(&n));
    }
    let ask = Deploy { body, existing: Some(existing), etag, validate_only: validate_only(req)? };
    deploy(app, &caller, &n, ask, call)
}

/// Creates or updates a service; a changed template makes a new revision, which the runtime must start.
fn deploy(app: &App, caller: &Caller, n: &Names, ask: Deploy, call: Call) -> Result<Reply> {
    let Deploy { mut body, existing, etag, validate_only } = ask;
    types::validate_metadata(&body.labels, "label")?;
    types::validate_metadata(&body.template.labels, "label")?;
    if existing.is_none() {
        // v2 rejects the system's annotation namespaces in new resources (its Service reference says so).
        types::validate_metadata(&body.annotations, "annotation")?;
        types::validate_metadata(&body.template.annotations, "annotation")?;
    }
    if body.custom_audiences.iter().map(String::len).sum::<usize>() > 32_768 {
        return Err(ApiError::invalid("custom audiences are limited to 32768 characters in total"));
    }
    if matches!(body.ingress, Ingress::Unspecified) {
        body.ingress = Ingress::All;
    }
    if let Some(access) = body.template.vpc_access.as_mut() {
        crate::vpc::check_vpc_access(app, access, &n.location)?;
    }
    let default_sa = model::names::default_compute_email(&app.project.project_number);
    let workload = types::workload(&body.template, &default_sa)?;
    let template_changed = existing.as_ref().is_none_or(|e| {
        let mut old = e.service.template.clone();
        old.revision.clear();
        let mut new = body.template.clone();
        new.revision.clear();
        old != new
    });
    if template_changed {
        check_act_as(app, caller, &workload.service_account, &call)?;
        check_secrets(app, &workload)?;
    }
    if validate_only {
        // As the service would read: nothing is written, no revision is made.
        let mut preview = existing.map(|e| e.service).unwrap_or_default();
        preview.name = n.relative();
        preview.template = body.template.clone();
        preview.ingress = body.ingress;
        preview.labels = body.labels.clone();
        preview.invoker_iam_disabled = body.invoker_iam_disabled;
        return Ok(Reply::Json(lro_body(n, &preview, None)));
    }
    let deployer =
        app.deployer.get().cloned().ok_or_else(|| ApiError::new(Code::Unavailable, "the runtime is not running"))?;
    let who = caller.email().unwrap_or_default().to_owned();
    let now = now_rfc3339();
    let call = call.with_request(
        json!({ "service": n.relative(), "serviceAccount": workload.service_account, "image": workload.image }),
    );
    // Write the service and its new revision (audited), then start the revision.
    let (stored, revision) = app.mutate(caller, call, false, |tx| {
        let current: Option<Stored> = tx.get(kind::RUN_SERVICE, &n.service)?;
        match (&existing, &current) {
            (None, Some(_)) => {
                return Err(ApiError::already_exists(format!("Resource '{}' already exists.", n.service)).into())
            }
            // Deleted while this update ran: an update never brings a service back.
            (Some(_), None) => return Err(not_found(n).into()),
            // Changed while this update ran: with an etag that is a conflict (exactly one of concurrent writers
            // with the same etag wins); without one, the last write wins.
            (Some(read), Some(now)) if etag.is_some() && read.service.etag != now.service.etag => {
                return Err(stale_etag(n).into())
            }
            _ => {}
        }
        let (port, generation, mut service) = match current {
            Some(c) => (c.port, c.generation + 1, c.service),
            None => (
                app.allocate_port(tx)?,
                1,
                Service { create_time: now.clone(), creator: who.clone(), uid: uid(), ..Service::default() },
            ),
        };
        service.name = n.relative();
        service.description = body.description.clone();
        service.labels = body.labels.clone();
        service.annotations = body.annotations.clone();
        service.ingress = body.ingress;
        service.invoker_iam_disabled = body.invoker_iam_disabled;
        service.custom_audiences = body.custom_audiences.clone();
        service.launch_stage = "GA".into();
        service.generation = generation.to_string();
        service.update_time = now.clone();
        service.last_modifier = who.clone();
        service.uri = format!("http://127.0.0.1:{port}");
        service.urls =
            vec![service.uri.clone(), deterministic_url(&n.service, &app.project.project_number, &n.location)];
        service.traffic = vec![json!({ "type": "TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST", "percent": 100 })];
        service.etag = format!("\"{}\"", crate::policy::new_etag());
        let mut revision = None;
        if template_changed {
            let name = revision_name(&n.service, generation);
            let mut template = body.template.clone();
            template.revision.clear();
            template.service_account = workload.service_account.clone();
            service.template = template.clone();
            service.latest_created_revision = name.clone();
            service.reconciling = true;
            let rev = Revision {
                name: name.clone(),
                uid: uid(),
                generation: generation.to_string(),
                service: n.relative(),
                create_time: now.clone(),
                creator: who.clone(),
                service_account: workload.service_account.clone(),
                containers: template.containers,
                scaling: template.scaling,
                max_instance_request_concurrency: workload.concurrency,
                timeout: format!("{}s", workload.timeout_secs),
                labels: template.labels,
                annotations: template.annotations,
                volumes: template.volumes,
                vpc_access: template.vpc_access,
                execution_environment: template.execution_environment,
                conditions: vec![condition(false, "Deploying revision.")],
                log_uri: String::new(),
            };
            tx.put(kind::REVISION, &name, &rev)?;
            revision = Some(rev);
        }
        let stored = Stored { service, port, generation };
        tx.put(kind::RUN_SERVICE, &n.service, &stored)?;
        Ok((stored, revision))
    })?;
    app.rebuild_routes()?;
    let Some(revision) = revision else {
        return Ok(Reply::Json(lro(app, n, &stored.service, None)));
    };
    let outcome = deployer.deploy(DeploySpec { service: n.service.clone(), revision: revision.name.clone(), workload });
    let failure = outcome.err().map(|f| {
        let mut msg = format!("Revision '{}' is not ready and cannot serve traffic. {}", revision.name, f.reason);
        if !f.last_logs.is_empty() {
            msg.push_str(&format!("\n\nLast log lines of the instance:\n{}", f.last_logs.join("\n")));
        }
        msg
    });
    let service = app.write(false, |tx| {
        let mut s: Stored = tx.get(kind::RUN_SERVICE, &n.service)?.ok_or_else(|| not_found(n))?;
        let mut rev: Revision = tx.get(kind::REVISION, &revision.name)?.unwrap_or(revision.clone());
        rev.conditions = vec![condition(failure.is_none(), failure.as_deref().unwrap_or_default())];
        s.service.reconciling = false;
        s.service.observed_generation = s.generation.to_string();
        match &failure {
            None => {
                s.service.latest_ready_revision = revision.name.clone();
                s.service.terminal_condition = condition(true, "");
            }
            Some(msg) => s.service.terminal_condition = condition(false, msg),
        }
        s.service.conditions = vec![s.service.terminal_condition.clone()];
        tx.put(kind::REVISION, &revision.name, &rev)?;
        tx.put(kind::RUN_SERVICE, &n.service, &s)?;
        Ok(s.service)
    })?;
    let error = failure.map(ApiError::failed_precondition);
    Ok(Reply::Json(lro(app, n, &service, error.as_ref())))
}

/// A random UUID (version 4), as resources' `uid` and operation ids.
pub(crate) fn uid() -> String {
    let (a, b) = (tokens::random_u64(), tokens::random_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-a{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}

fn get(app: &App, req: &Req, project: &str, location: &str, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let n = names(app, project, location, id, "run.services.get")?;
    let call = Call::new(SERVICE, "google.cloud.run.v2.Services.GetService", n.relative()).reading();
    app.authorize(&caller, "run.services.get", &n.full(), &call)?;
    let s = load(app, id)?.ok_or_else(|| not_found(&n))?;
    Ok(Reply::Json(serde_json::to_value(s.service).unwrap_or_default()))
}

/// `operations.get` / `operations.list` (google.longrunning): every operation finished when it was answered
/// (`done: true`); the latest ones are kept in memory, as Google keeps operations for a while.
fn operations(app: &App, req: &Req, project: &str, location: &str, id: Option<&str>) -> Result<Reply> {
    let caller = req.caller(app)?;
    let permission = if id.is_some() { "run.operations.get" } else { "run.operations.list" };
    let n = names(app, project, location, "", permission)?;
    let method = if id.is_some() {
        "google.longrunning.Operations.GetOperation"
    } else {
        "google.longrunning.Operations.ListOperations"
    };
    let call = Call::new(SERVICE, method, n.parent()).reading();
    app.authorize(&caller, permission, &app.project.full_name(), &call)?;
    let kept = app.operations.lock().unwrap_or_else(|e| e.into_inner());
    let prefix = format!("{}/operations/", n.parent());
    match id {
        Some(id) => {
            let name = format!("{prefix}{id}");
            let op = kept.iter().rev().find(|o| o["name"] == name.as_str()).cloned();
            op.map(Reply::Json).ok_or_else(|| ApiError::not_found(format!("Operation {name} not found.")))
        }
        None => {
            let ops: Vec<Value> = kept
                .iter()
                .rev()
                .filter(|o| o["name"].as_str().is_some_and(|s| s.starts_with(&prefix)))
                .cloned()
                .collect();
            Ok(Reply::Json(Value::Object(list_page(req, ops, "operations")?)))
        }
    }
}

fn list(app: &App, req: &Req, project: &str, location: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    // `-` is every location, as Google documents; another real region has no services here.
    let region = app.project().region.clone();
    let served = location == "-" || location == region;
    if !served && !network::is_region_name(location) {
        names(app, project, location, "", "run.services.list")?;
    }
    let n = names(app, project, &region, "", "run.services.list")?;
    let call = Call::new(SERVICE, "google.cloud.run.v2.Services.ListServices", n.parent()).reading();
    app.authorize(&caller, "run.services.list", &app.project.full_name(), &call)?;
    if !served {
        return Ok(Reply::Json(json!({})));
    }
    let services: Vec<Value> = app.read(|tx| {
        let stored = tx.list::<Stored>(kind::RUN_SERVICE, "")?;
        Ok(stored.into_iter().map(|(_, s)| serde_json::to_value(s.service).unwrap_or_default()).collect())
    })?;
    Ok(Reply::Json(Value::Object(list_page(req, services, "services")?)))
}

/// A page of a Cloud Run list (`pageSize` absent or 0: all of it; at most 1,000).
fn list_page(req: &Req, items: Vec<Value>, field: &str) -> Result<serde_json::Map<String, Value>> {
    crate::paging::page(items, req.query("pageSize"), req.query("pageToken"), field, usize::MAX, 1000)
}

fn delete(app: &App, req: &Req, project: &str, location: &str, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let n = names(app, project, location, id, "run.services.delete")?;
    let call = Call::new(SERVICE, "google.cloud.run.v2.Services.DeleteService", n.relative())
        .needs("run.services.delete", &n.full());
    app.authorize(&caller, "run.services.delete", &n.full(), &call)?;
    let s = load(app, id)?.ok_or_else(|| not_found(&n))?;
    let etag = req.query("etag").filter(|e| !e.is_empty()).map(str::to_owned);
    if etag.as_ref().is_some_and(|e| *e != s.service.etag) {
        return Err(stale_etag(&n));
    }
    if validate_only(req)? {
        return Ok(Reply::Json(lro_body(&n, &s.service, None)));
    }
    app.mutate(&caller, call, true, |tx| {
        let current: Option<Stored> = tx.get(kind::RUN_SERVICE, id)?;
        let current = current.ok_or_else(|| not_found(&n))?;
        if etag.as_ref().is_some_and(|e| *e != current.service.etag) {
            return Err(stale_etag(&n).into());
        }
        tx.delete(kind::RUN_SERVICE, id)?;
        tx.delete(kind::POLICY, &n.full())?;
        // Revision names start with the service's, so the prefix also finds those of `{id}-…` services.
        for (name, _) in tx
            .list::<Revision>(kind::REVISION, &format!("{id}-"))?
            .into_iter()
            .filter(|(_, r)| r.service == n.relative())
        {
            tx.delete(kind::REVISION, &name)?;
        }
        Ok(())
    })?;
    app.rebuild_routes()?;
    if let Some(d) = app.deployer.get() {
        d.remove(id);
    }
    Ok(Reply::Json(lro(app, &n, &s.service, None)))
}

fn iam(app: &App, req: &Req, project: &str, location: &str, id: &str, verb: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let n = names(app, project, location, id, "run.services.getIamPolicy")?;
    let target = Target {
        full_name: n.full(),
        shown_name: n.relative(),
        service: SERVICE,
        get_permission: "run.services.getIamPolicy",
        set_permission: "run.services.setIamPolicy",
        get_method: "google.cloud.run.v2.Services.GetIamPolicy",
        set_method: "google.cloud.run.v2.Services.SetIamPolicy",
        requires_owner: false,
        grantable: &["run."],
        resource: Some((kind::RUN_SERVICE, id.to_owned())),
    };
    // Permission first, then existence: a caller without access learns nothing.
    let permission = if verb == "setIamPolicy" { target.set_permission } else { target.get_permission };
    if verb != "testIamPermissions" {
        let probe = Call::new(SERVICE, target.get_method, n.relative()).reading();
        app.authorize(&caller, permission, &n.full(), &probe)?;
    }
    load(app, id)?.ok_or_else(|| not_found(&n))?;
    policy::handle(app, req, &caller, &target, verb)
}

fn revisions(app: &App, req: &Req, project: &str, location: &str, id: &str, one: Option<&str>) -> Result<Reply> {
    let caller = req.caller(app)?;
    let permission = if one.is_some() { "run.revisions.get" } else { "run.revisions.list" };
    let n = names(app, project, location, id, permission)?;
    let call = Call::new(SERVICE, "google.cloud.run.v2.Revisions.GetRevision", n.relative()).reading();
    app.authorize(&caller, permission, &n.full(), &call)?;
    load(app, id)?.ok_or_else(|| not_found(&n))?;
    match one {
        Some(r) => {
            let rev: Revision = app
                .read(|tx| Ok(tx.get(kind::REVISION, r)?))?
                .filter(|rev: &Revision| rev.service == n.relative())
                .ok_or_else(|| ApiError::not_found(format!("Revision '{r}' does not exist.")))?;
            Ok(Reply::Json(revision_json(&n, &rev)))
        }
        None => {
            let revs: Vec<Value> = app.read(|tx| {
                Ok(tx
                    .list::<Revision>(kind::REVISION, &format!("{id}-"))?
                    .into_iter()
                    .filter(|(_, r)| r.service == n.relative())
                    .map(|(_, r)| revision_json(&n, &r))
                    .rev()
                    .collect())
            })?;
            Ok(Reply::Json(Value::Object(list_page(req, revs, "revisions")?)))
        }
    }
}

fn revision_json(n: &Names, r: &Revision) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["name"] = json!(format!("{}/revisions/{}", n.relative(), r.name));
    v
}

fn logs(app: &App, req: &Req, project: &str, location: &str, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let n = names(app, project, location, id, "logging.logEntries.list")?;
    let call = Call::new("logging.googleapis.com", "google.logging.v2.LoggingServiceV2.ListLogEntries", n.relative())
        .reading();
    app.authorize(&caller, "logging.logEntries.list", &app.project.full_name(), &call)?;
    load(app, id)?.ok_or_else(|| not_found(&n))?;
    let limit: usize = req.query("limit").and_then(|l| l.parse().ok()).unwrap_or(100).clamp(1, 10_000);
    let entries = app.deployer.get().map(|d| d.logs(id, limit)).unwrap_or_default();
    Ok(Reply::Json(json!({ "entries": entries })))
}

/// A request the gateway refused, as the audit log records it.
#[derive(Debug, Clone)]
pub struct InvocationDenial {
    pub resource: String,
    pub status: u16,
    pub reason: String,
    pub principal: Option<String>,
    pub explanation: Option<Value>,
    pub caller_ip: String,
    /// The service account of the instance or VPC host the request came from, when it came from one.
    pub source_account: Option<String>,
    /// The Cloud Run service of the instance the request came from, when it came from one.
    pub source_service: Option<String>,
    pub method: String,
    pub path: String,
}

impl App {
    /// Queues the audit entry of a refused invocation: which control said no, why, and IAM's decision trace, so
    /// `logging read` and the troubleshooter explain it. Does not wait for the write (the gateway calls it on the
    /// request path); a read of the log waits for it.
    pub fn record_invocation_denial(&self, d: InvocationDenial) {
        let principal = match &d.principal {
            Some(e) if e.ends_with(".gserviceaccount.com") => iam::Principal::ServiceAccount(e.clone()),
            Some(e) => iam::Principal::User(e.clone()),
            None => iam::Principal::Anonymous,
        };
        let caller = Caller { principal, ip: d.caller_ip.clone(), user_agent: String::new() };
        let relative = d.resource.trim_start_matches("//run.googleapis.com/").to_owned();
        let mut call = Call::new(SERVICE, "run.routes.invoke", relative).denied("run.routes.invoke", &d.resource);
        call.permission_type = audit::PermissionType::DataRead;
        let call = call.with_request(json!({
            "method": d.method,
            "path": d.path,
            "status": d.status,
            "reason": d.reason,
            "control": match d.status {
                404 => "ingress (where the request came from)",
                _ => "invoker IAM (the gateway's invocation check)",
            },
            "explanation": d.explanation,
            "sourceAccount": d.source_account,
            "sourceService": d.source_service,
        }));
        let code = match d.status {
            401 => Code::Unauthenticated,
            404 => Code::NotFound,
            _ => Code::PermissionDenied,
        };
        let entry = call.entry(self, &caller, Some(&ApiError::new(code, d.reason)));
        // Over the queue's bound (a flood of refused requests) the entry is dropped; the writer logs how many.
        let _ = self.audit_queue.record(entry);
    }
}
