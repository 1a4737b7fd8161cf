//! Cloud Run Admin API v2 shapes (`google.cloud.run.v2.Service`, `Revision`) and their validation.
//!
//! Enums are accepted as names or as integers (the Python client sends `enum-encoding=int`) and written as names.

use model::ApiError;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;
use std::collections::BTreeMap;

/// The built-in sample image.
pub const SAMPLE_IMAGE: &str = "us-docker.pkg.dev/cloudrun/container/hello";
/// The image of `--source` deployments: the directory is the container's `workingDir`.
pub const SOURCE_IMAGE: &str = "gatehouse.local/source";
/// Names the platform sets itself (PROTOCOL.md §10.1).
pub const RESERVED_ENV: [&str; 4] = ["PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ingress {
    Unspecified,
    #[default]
    All,
    InternalOnly,
    InternalLoadBalancer,
    None,
}

impl Ingress {
    const NAMES: [&'static str; 5] = [
        "INGRESS_TRAFFIC_UNSPECIFIED",
        "INGRESS_TRAFFIC_ALL",
        "INGRESS_TRAFFIC_INTERNAL_ONLY",
        "INGRESS_TRAFFIC_INTERNAL_LOAD_BALANCER",
        "INGRESS_TRAFFIC_NONE",
    ];
    const ALL: [Ingress; 5] =
        [Ingress::Unspecified, Ingress::All, Ingress::InternalOnly, Ingress::InternalLoadBalancer, Ingress::None];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }

    /// gcloud's `--ingress` values.
    pub fn from_flag(s: &str) -> Option<Ingress> {
        match s {
            "all" => Some(Ingress::All),
            "internal" => Some(Ingress::InternalOnly),
            "internal-and-cloud-load-balancing" => Some(Ingress::InternalLoadBalancer),
            _ => None,
        }
    }
}

/// Serde for a proto enum with `NAMES` and `ALL` (same order): written as its name, read from its name or its number
/// (Google's clients send int enums in bodies). `$what` and `$choices` word the error.
macro_rules! proto_enum_serde {
    ($t:ident, $what:literal, $choices:expr) => {
        impl Serialize for $t {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.name())
            }
        }

        impl<'de> Deserialize<'de> for $t {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let v = Value::deserialize(d)?;
                let found = match &v {
                    Value::Number(n) => n.as_u64().and_then(|i| $t::ALL.get(i as usize).copied()),
                    Value::String(s) => $t::NAMES.iter().position(|n| n == s).map(|i| $t::ALL[i]),
                    _ => None,
                };
                found.ok_or_else(|| serde::de::Error::custom(format!("invalid {} `{v}`; use {}", $what, $choices)))
            }
        }
    };
}

proto_enum_serde!(Ingress, "ingress", format!("one of {}", Ingress::NAMES[1..4].join(", ")));

/// `VpcAccess.VpcEgress` (PROTOCOL.md §5): `PRIVATE_RANGES_ONLY` when omitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VpcEgress {
    Unspecified,
    AllTraffic,
    #[default]
    PrivateRangesOnly,
}

impl VpcEgress {
    const NAMES: [&'static str; 3] = ["VPC_EGRESS_UNSPECIFIED", "ALL_TRAFFIC", "PRIVATE_RANGES_ONLY"];
    const ALL: [VpcEgress; 3] = [VpcEgress::Unspecified, VpcEgress::AllTraffic, VpcEgress::PrivateRangesOnly];

    pub fn name(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

proto_enum_serde!(VpcEgress, "VPC egress", "ALL_TRAFFIC or PRIVATE_RANGES_ONLY");

/// `google.cloud.run.v2.VpcAccess`: a Serverless VPC Access connector, or Direct VPC egress through one network
/// interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct VpcAccess {
    /// `projects/P/locations/L/connectors/C`.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub connector: String,
    #[serde(default)]
    pub egress: VpcEgress,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NetworkInterface {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub network: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub subnetwork: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value_source: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPort {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub container_port: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Container {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(default)]
    pub image: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<ContainerPort>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub working_dir: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volume_mounts: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Scaling {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub min_instance_count: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_instance_count: u32,
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RevisionTemplate {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub revision: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub scaling: Scaling,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub service_account: String,
    #[serde(default)]
    pub containers: Vec<Container>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub timeout: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub max_instance_request_concurrency: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vpc_access: Option<VpcAccess>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_environment: Option<Value>,
}

/// `google.cloud.run.v2.Service`. Output-only fields are ignored on input and filled by the platform.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    #[serde(default)]
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub generation: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub create_time: String,
    #[serde(default)]
    pub update_time: String,
    #[serde(default)]
    pub creator: String,
    #[serde(default)]
    pub last_modifier: String,
    #[serde(default)]
    pub ingress: Ingress,
    #[serde(default)]
    pub launch_stage: String,
    #[serde(default)]
    pub template: RevisionTemplate,
    #[serde(default)]
    pub traffic: Vec<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invoker_iam_disabled: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub custom_audiences: Vec<String>,
    #[serde(default)]
    pub uri: String,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub observed_generation: String,
    #[serde(default)]
    pub latest_ready_revision: String,
    #[serde(default)]
    pub latest_created_revision: String,
    #[serde(default)]
    pub terminal_condition: Value,
    #[serde(default)]
    pub conditions: Vec<Value>,
    #[serde(default)]
    pub etag: String,
    #[serde(default)]
    pub reconciling: bool,
    // Fields the platform does not implement are accepted and kept as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub binary_authorization: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scaling: Option<Value>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub default_uri_disabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_version: Option<String>,
}

/// What the runtime needs of a revision, with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    pub image: String,
    pub working_dir: String,
    pub command: Vec<String>,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub min_instances: u32,
    pub max_instances: u32,
    pub concurrency: u32,
    pub timeout_secs: u64,
    pub service_account: String,
    /// Env vars whose values are secret versions, read when an instance starts.
    pub secret_env: Vec<SecretEnvRef>,
    /// Files whose contents are secret versions, in the instance's private mounts.
    pub secret_files: Vec<SecretFileRef>,
    /// The container port (`PORT`), 8080 unless `ports[0].containerPort` says otherwise.
    pub port: u16,
    /// `resources.limits.memory`, in bytes (512 MiB by default).
    pub memory_bytes: u64,
    /// `resources.limits.cpu`, in thousandths of a CPU (1 CPU by default).
    pub cpu_millis: u32,
    /// The template's `vpcAccess` (already checked against the VPC model).
    pub vpc_access: Option<VpcAccess>,
}

/// `env[i].valueSource.secretKeyRef`: an env var read from Secret Manager.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretEnvRef {
    pub name: String,
    /// A secret id in the platform's project, or `projects/P/secrets/S`.
    pub secret: String,
    pub version: String,
    /// `spec.template.spec.containers[0].env[i]`, for Google's error messages.
    pub field: String,
}

/// One item of a secret volume, at its mount path.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretFileRef {
    /// Mount path + item path, e.g. `/secrets/credentials`.
    pub path: String,
    pub secret: String,
    pub version: String,
    pub mode: u32,
    pub field: String,
}

/// `valueSource` of an env var (v2).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct EnvVarSource {
    secret_key_ref: SecretKeySelector,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretKeySelector {
    secret: String,
    #[serde(default)]
    version: String,
}

/// A volume (v2); only secret volumes are supported.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Volume {
    name: String,
    #[serde(default)]
    secret: Option<SecretVolumeSource>,
    #[serde(default)]
    cloud_sql_instance: Option<Value>,
    #[serde(default)]
    empty_dir: Option<Value>,
    #[serde(default)]
    nfs: Option<Value>,
    #[serde(default)]
    gcs: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SecretVolumeSource {
    secret: String,
    #[serde(default)]
    items: Vec<VersionToPath>,
    #[serde(default)]
    default_mode: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VersionToPath {
    path: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    mode: i64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct VolumeMount {
    name: String,
    mount_path: String,
    #[serde(default)]
    sub_path: String,
}

/// The mode of a secret file: the item's, else the volume's default, else 0444; write bits are always cleared
/// (Cloud Run applies umask 0222 to non-zero modes).
fn file_mode(item: i64, default: i64) -> Result<u32, ApiError> {
    let mode = if item != 0 { item } else { default };
    if !(0..=0o777).contains(&mode) {
        return Err(bad(format!("invalid secret file mode {mode}; use a value between 0 and 0777 (511)")));
    }
    Ok(if mode == 0 { 0o444 } else { mode as u32 & !0o222 })
}

/// The secret references of a container: env secrets and secret volumes at their mount paths, checked with gcloud's
/// rules (a version is required, one secret per mount directory, mount path restrictions; `secrets::spec`).
fn secret_refs(
    template: &RevisionTemplate,
    container: &Container,
) -> Result<(Vec<SecretEnvRef>, Vec<SecretFileRef>), ApiError> {
    let mut env = Vec::new();
    let mut mappings = Vec::new();
    for (i, e) in container.env.iter().enumerate() {
        let Some(source) = &e.value_source else { continue };
        let field = format!("spec.template.spec.containers[0].env[{i}]");
        if e.value.as_deref().is_some_and(|v| !v.is_empty()) {
            return Err(bad(format!("{field}: set either `value` or `valueSource`, not both")));
        }
        let source: EnvVarSource = serde_json::from_value(source.clone()).map_err(|err| {
            bad(format!(
                "{field}.valueSource: {err}; expected {{\"secretKeyRef\": {{\"secret\": NAME, \"version\": VERSION}}}}"
            ))
        })?;
        let SecretKeySelector { secret, version } = source.secret_key_ref;
        mappings.push(mapping(&field, &e.name, &secret, &version)?);
        env.push(SecretEnvRef { name: e.name.clone(), secret, version, field });
    }
    let mut volumes = BTreeMap::new();
    for (i, v) in template.volumes.iter().enumerate() {
        let field = format!("spec.template.spec.volumes[{i}]");
        let v: Volume = serde_json::from_value(v.clone()).map_err(|err| bad(format!("{field}: {err}")))?;
        let Some(source) = v.secret else {
            let kind = [
                (v.cloud_sql_instance.is_some(), "cloudSqlInstance"),
                (v.empty_dir.is_some(), "emptyDir"),
                (v.nfs.is_some(), "nfs"),
                (v.gcs.is_some(), "gcs"),
            ]
            .into_iter()
            .find_map(|(set, k)| set.then_some(k))
            .unwrap_or("a volume without a source");
            return Err(ApiError::new(
                model::Code::Unimplemented,
                format!("{field}: {kind} volumes are not supported by Gatehouse; only secret volumes are"),
            ));
        };
        if volumes.insert(v.name.clone(), (field.clone(), source)).is_some() {
            return Err(bad(format!("{field}: volume name `{}` is used twice", v.name)));
        }
    }
    let mut files = Vec::new();
    let mut used = std::collections::BTreeSet::new();
    for (i, m) in container.volume_mounts.iter().enumerate() {
        let field = format!("spec.template.spec.containers[0].volumeMounts[{i}]");
        let m: VolumeMount = serde_json::from_value(m.clone()).map_err(|err| bad(format!("{field}: {err}")))?;
        if !m.sub_path.is_empty() {
            return Err(bad(format!("{field}: `subPath` is not supported on secret volume mounts")));
        }
        let Some((vfield, source)) = volumes.get(&m.name) else {
            return Err(bad(format!("{field}: no volume named `{}`", m.name)));
        };
        used.insert(m.name.clone());
        let dir = m.mount_path.trim_end_matches('/');
        let whole_secret;
        let items = if source.items.is_empty() {
            // No items: one file named after the secret, at `latest` (the v2 API's rule).
            let id = source.secret.rsplit('/').next().unwrap_or(&source.secret).to_owned();
            whole_secret = [VersionToPath { path: id, version: "latest".into(), mode: 0 }];
            &whole_secret[..]
        } else {
            &source.items[..]
        };
        for (j, item) in items.iter().enumerate() {
            let ifield = format!("{vfield}.secret.items[{j}]");
            if item.path.starts_with('/') || item.path.split('/').any(|p| p == "..") {
                return Err(bad(format!("{ifield}.path: `{}` must be relative and must not contain `..`", item.path)));
            }
            let path = format!("{dir}/{}", item.path);
            mappings.push(mapping(&ifield, &path, &source.secret, &item.version)?);
            files.push(SecretFileRef {
                path,
                secret: source.secret.clone(),
                version: item.version.clone(),
                mode: file_mode(item.mode, source.default_mode)?,
                field: ifield,
            });
        }
    }
    if let Some(unused) = volumes.keys().find(|n| !used.contains(*n)) {
        return Err(bad(format!("volume `{unused}` is not mounted by the container; mount it or remove it")));
    }
    secrets::spec::check(&mappings).map_err(|e| bad(e.to_string()))?;
    Ok((env, files))
}

/// One reference, checked by the rules the CLI's `--set-secrets` uses (`secrets::spec`); errors name the field.
fn mapping(field: &str, key: &str, secret: &str, version: &str) -> Result<secrets::spec::Mapping, ApiError> {
    secrets::spec::Mapping::new(key, secret, version).map_err(|e| bad(format!("{field}: {e}")))
}

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::invalid(msg)
}

/// Checks a service id: lowercase letters, digits and hyphens, starting with a letter, at most 49 characters.
pub fn validate_service_id(id: &str) -> Result<(), ApiError> {
    if model::names::is_lowercase_id(id, 1, 49) {
        Ok(())
    } else {
        Err(bad(format!(
            "Invalid service name `{id}`: use only lowercase letters, digits and hyphens, begin with a letter, \
             do not end with a hyphen, and stay under 50 characters."
        )))
    }
}

/// Parses `300s` into seconds.
fn parse_seconds(s: &str, field: &str) -> Result<u64, ApiError> {
    s.strip_suffix('s')
        .and_then(|n| n.parse::<f64>().ok())
        .filter(|n| n.is_finite() && *n >= 0.0)
        .map(|n| n.ceil() as u64)
        .ok_or_else(|| bad(format!("invalid `{field}` `{s}`; use seconds with an `s`, e.g. `300s`")))
}

/// Validates the template and resolves defaults. `default_sa` is the project's default compute service account.
pub fn workload(template: &RevisionTemplate, default_sa: &str) -> Result<Workload, ApiError> {
    let [container] = template.containers.as_slice() else {
        return Err(bad(format!(
            "exactly one container is supported, got {}; add `--image` or `--source`",
            template.containers.len()
        )));
    };
    match container.image.as_str() {
        "" => return Err(bad(
            "container image is required: use `--image=us-docker.pkg.dev/cloudrun/container/hello` or `--source=DIR`",
        )),
        SAMPLE_IMAGE => {}
        SOURCE_IMAGE => {
            if !container.working_dir.starts_with('/') {
                return Err(bad("a `--source` deployment needs an absolute source directory (`workingDir`)"));
            }
            if container.command.is_empty() && container.args.is_empty() {
                return Err(bad(
                    "a `--source` deployment needs `--command` (and optionally `--args`) to start the server",
                ));
            }
        }
        other => {
            return Err(ApiError::failed_precondition(format!(
                "Image '{other}' not found. Gatehouse runs no container images: deploy \
                 `--image={SAMPLE_IMAGE}` or `--source=DIR --command=CMD`."
            )))
        }
    }
    let reserved: Vec<&str> =
        container.env.iter().map(|e| e.name.as_str()).filter(|n| RESERVED_ENV.contains(n)).collect();
    if !reserved.is_empty() {
        return Err(bad(format!(
            "The following reserved env names were provided: {}. These values are automatically set by the system.",
            reserved.join(", ")
        )));
    }
    if container.env.len() > 1000 {
        return Err(bad("at most 1000 environment variables are allowed per container"));
    }
    let mut env = Vec::new();
    let mut names = std::collections::HashSet::new();
    for e in &container.env {
        if e.name.is_empty() || e.name.contains('=') || e.name.starts_with("X_GOOGLE_") {
            return Err(bad(format!("invalid environment variable name `{}`", e.name)));
        }
        // Plain and secret variables share one namespace.
        if !names.insert(e.name.as_str()) {
            return Err(bad(format!("environment variable `{}` is set twice", e.name)));
        }
        if e.value_source.is_some() {
            continue;
        }
        let value = e.value.clone().unwrap_or_default();
        if value.len() > 32 * 1024 {
            return Err(bad(format!("the value of `{}` is longer than 32 KiB", e.name)));
        }
        env.push((e.name.clone(), value));
    }
    let (secret_env, secret_files) = secret_refs(template, container)?;
    let concurrency = match template.max_instance_request_concurrency {
        0 => 80,
        c @ 1..=1000 => c,
        c => return Err(bad(format!("`--concurrency` must be between 1 and 1000, got {c}"))),
    };
    let min = template.scaling.min_instance_count;
    let max = match template.scaling.max_instance_count {
        0 => 100.max(min),
        m => m,
    };
    if max > 1000 || min > max {
        return Err(bad(format!(
            "invalid scaling: min instances {min} and max instances {max}; max must be between min and 1000"
        )));
    }
    let timeout_secs = if template.timeout.is_empty() { 300 } else { parse_seconds(&template.timeout, "timeout")? };
    if !(1..=3600).contains(&timeout_secs) {
        return Err(bad(format!("`--timeout` must be between 1s and 3600s, got `{}`", template.timeout)));
    }
    let service_account =
        if template.service_account.is_empty() { default_sa.to_owned() } else { template.service_account.clone() };
    let port = match container.ports.as_slice() {
        [] => 8080,
        [p] => u16::try_from(p.container_port)
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad(format!("`--port` must be between 1 and 65535, got {}", p.container_port)))?,
        more => return Err(bad(format!("at most one container port is supported, got {}", more.len()))),
    };
    let (memory_bytes, cpu_millis) = limits(container.resources.as_ref())?;
    Ok(Workload {
        image: container.image.clone(),
        working_dir: container.working_dir.clone(),
        command: container.command.clone(),
        args: container.args.clone(),
        env,
        min_instances: min,
        max_instances: max,
        concurrency,
        timeout_secs,
        service_account,
        secret_env,
        secret_files,
        port,
        memory_bytes,
        cpu_millis,
        vpc_access: template.vpc_access.clone(),
    })
}

/// `resources.limits` of a container: memory in bytes and CPU in thousandths, with Cloud Run's defaults (512Mi,
/// 1) and bounds (128Mi–32Gi; 0.08–8 CPUs).
fn limits(resources: Option<&Value>) -> Result<(u64, u32), ApiError> {
    let limits = resources.and_then(|r| r.get("limits"));
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        match limits.and_then(|l| l.get(key)) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) => Ok(Some(n.to_string())),
            Some(other) => Err(bad(format!("`resources.limits.{key}` must be a string, got {other}"))),
        }
    };
    let memory = match text("memory")? {
        None => 512 << 20,
        Some(m) => {
            let bytes = memory_quantity(&m)
                .ok_or_else(|| bad(format!("invalid `--memory` `{m}`; use a size such as `512Mi` or `2Gi`")))?;
            if !((128 << 20)..=(32u64 << 30)).contains(&bytes) {
                return Err(bad(format!("`--memory` must be between 128Mi and 32Gi, got `{m}`")));
            }
            bytes
        }
    };
    let cpu = match text("cpu")? {
        None => 1000,
        Some(c) => {
            let millis = cpu_quantity(&c).ok_or_else(|| {
                bad(format!("invalid `--cpu` `{c}`; use a number of CPUs such as `1`, `2` or `500m`"))
            })?;
            if !(80..=8000).contains(&millis) {
                return Err(bad(format!("`--cpu` must be between 0.08 and 8, got `{c}`")));
            }
            millis
        }
    };
    Ok((memory, cpu))
}

/// A Kubernetes memory quantity: `512Mi`, `2Gi`, `500M`, `1G`, `1048576`.
fn memory_quantity(s: &str) -> Option<u64> {
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1000,
        "Ki" => 1 << 10,
        "M" => 1_000_000,
        "Mi" => 1 << 20,
        "G" => 1_000_000_000,
        "Gi" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(scale)
}

/// CPUs as thousandths: `1`, `2`, `0.5`, `500m`.
fn cpu_quantity(s: &str) -> Option<u32> {
    if let Some(m) = s.strip_suffix('m') {
        return m.parse().ok();
    }
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty() && frac.is_empty() || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = if whole.is_empty() { 0 } else { whole.parse().ok()? };
    let frac: u32 = if frac.is_empty() { 0 } else { format!("{frac:0<3}").parse().ok()? };
    whole.checked_mul(1000)?.checked_add(frac)
}

/// Rejects label and annotation keys in the namespaces the platform owns (as v2 does).
pub fn validate_metadata(labels: &BTreeMap<String, String>, what: &str) -> Result<(), ApiError> {
    const OWNED: [&str; 4] =
        ["run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev", "autoscaling.knative.dev"];
    for k in labels.keys() {
        if OWNED.iter().any(|ns| k.starts_with(&format!("{ns}/"))) {
            return Err(bad(format!("{what} key `{k}` is in a namespace reserved for the system")));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn resource_limits_follow_cloud_run() {
        assert_eq!(limits(None).unwrap(), (512 << 20, 1000));
        let l = |m: &str, c: &str| limits(Some(&json!({ "limits": { "memory": m, "cpu": c } })));
        assert_eq!(l("1Gi", "2").unwrap(), (1 << 30, 2000));
        assert_eq!(l("256M", "500m").unwrap(), (256_000_000, 500));
        assert_eq!(l("128Mi", "0.08").unwrap(), (128 << 20, 80));
        for (m, c, why) in [
            ("64Mi", "1", "between 128Mi and 32Gi"),
            ("64Gi", "1", "between 128Mi and 32Gi"),
            ("lots", "1", "invalid `--memory` `lots`"),
            ("1Gi", "9", "between 0.08 and 8"),
            ("1Gi", "0.01", "between 0.08 and 8"),
            ("1Gi", "one", "invalid `--cpu` `one`"),
            ("1Gi", ".", "invalid `--cpu` `.`"),
            ("1Gi", "1.0001", "invalid `--cpu`"),
        ] {
            let err = l(m, c).unwrap_err().to_string();
            assert!(err.contains(why), "{m} {c}: {err}");
        }
        assert!(limits(Some(&json!({ "limits": { "memory": ["1Gi"] } }))).unwrap_err().to_string().contains("string"));
    }

    fn template(v: Value) -> RevisionTemplate {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn int_and_name_enums_both_parse() {
        let s: Service = serde_json::from_value(json!({"ingress": 3})).unwrap();
        assert_eq!(s.ingress, Ingress::InternalLoadBalancer);
        let s: Service = serde_json::from_value(json!({"ingress": "INGRESS_TRAFFIC_INTERNAL_ONLY"})).unwrap();
        assert_eq!(s.ingress, Ingress::InternalOnly);
        assert!(serde_json::from_value::<Service>(json!({"ingress": 9})).is_err());
        assert_eq!(serde_json::to_value(Ingress::All).unwrap(), "INGRESS_TRAFFIC_ALL");
        let e = serde_json::from_value::<Service>(json!({"ingress": "OPEN"})).unwrap_err().to_string();
        assert!(e.contains("invalid ingress `\"OPEN\"`; use one of INGRESS_TRAFFIC_ALL, "), "{e}");

        let t = template(json!({"vpcAccess": {"connector": "c", "egress": 1}}));
        assert_eq!(t.vpc_access.unwrap().egress, VpcEgress::AllTraffic);
        let t = template(json!({"vpcAccess": {"connector": "c", "egress": "PRIVATE_RANGES_ONLY"}}));
        assert_eq!(t.vpc_access.unwrap().egress, VpcEgress::PrivateRangesOnly);
        let t = template(json!({"vpcAccess": {"connector": "c"}}));
        assert_eq!(t.vpc_access.unwrap().egress, VpcEgress::PrivateRangesOnly, "the default");
        let e = serde_json::from_value::<RevisionTemplate>(json!({"vpcAccess": {"egress": 7}})).unwrap_err();
        assert!(e.to_string().contains("invalid VPC egress `7`; use ALL_TRAFFIC or PRIVATE_RANGES_ONLY"), "{e}");
        assert_eq!(serde_json::to_value(VpcEgress::AllTraffic).unwrap(), "ALL_TRAFFIC");
    }

    #[test]
    fn workload_defaults_and_rules() {
        let w = workload(&template(json!({"containers": [{"image": SAMPLE_IMAGE}]})), "d@x.iam.gserviceaccount.com")
            .unwrap();
        assert_eq!((w.min_instances, w.max_instances, w.concurrency, w.timeout_secs), (0, 100, 80, 300));
        assert_eq!(w.service_account, "d@x.iam.gserviceaccount.com");
        for (t, want) in [
            (json!({"containers": []}), "exactly one container"),
            (json!({"containers": [{"image": "nginx"}]}), "not found"),
            (
                json!({"containers": [{"image": SAMPLE_IMAGE, "env": [{"name": "PORT", "value": "1"}]}]}),
                "reserved env names were provided: PORT",
            ),
            (
                json!({"containers": [{"image": SAMPLE_IMAGE}], "maxInstanceRequestConcurrency": 5000}),
                "between 1 and 1000",
            ),
            (
                json!({"containers": [{"image": SAMPLE_IMAGE}], "scaling": {"minInstanceCount": 5, "maxInstanceCount": 2}}),
                "invalid scaling",
            ),
            (json!({"containers": [{"image": SAMPLE_IMAGE}], "timeout": "7200s"}), "between 1s and 3600s"),
            // The value as sent, not as it overflowed.
            (json!({"containers": [{"image": SAMPLE_IMAGE}], "timeout": "1e30s"}), "got `1e30s`"),
            (json!({"containers": [{"image": SOURCE_IMAGE, "workingDir": "rel"}]}), "absolute"),
            (json!({"containers": [{"image": SOURCE_IMAGE, "workingDir": "/srv"}]}), "--command"),
        ] {
            let e = workload(&template(t.clone()), "d@x").unwrap_err();
            assert!(e.message.contains(want), "{t}: {}", e.message);
        }
    }

    #[test]
    fn service_ids() {
        assert!(validate_service_id("my-private-api").is_ok());
        for bad in ["", "My-api", "1api", "api-", "a_b", &"a".repeat(50)] {
            assert!(validate_service_id(bad).is_err(), "{bad}");
        }
    }
}
