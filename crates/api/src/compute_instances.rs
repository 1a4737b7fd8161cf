//! Compute Engine instances (v1 REST) as private hosts in a VPC: `gcloud compute instances create NAME --zone=Z
//! --subnet=S [--private-network-ip=IP] --metadata=startup-script=CMD` runs CMD in a sandbox of its own, linked into
//! the subnet's network at its address (`networkInterfaces[0].networkIP`). The address is chosen here — the first
//! free one after the subnet's gateway — and kept, so `describe` shows it before and after restarts.
//!
//! The platform runs the hosts through a [`HostRunner`] (set by `up`); without a sandbox there is nothing to run
//! them in, and creation says so.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::audit_trail::Call;
use crate::http::{Reply, Req};
use crate::projects;
use crate::state::{kind, now_rfc3339, App, Result};
use crate::vpc::basename;
use model::ApiError;
use network::{Ipv4Net, Subnetwork, COMPUTE};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const COMPUTE_SERVICE: &str = "compute.googleapis.com";

/// A stored instance (`compute#instance`, the fields that matter here).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Instance {
    pub kind: String,
    pub id: String,
    pub creation_timestamp: String,
    pub name: String,
    pub zone: String,
    pub machine_type: String,
    pub status: String,
    pub network_interfaces: Vec<NetworkInterface>,
    pub metadata: Value,
    pub service_accounts: Vec<Value>,
    pub self_link: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkInterface {
    pub name: String,
    pub network: String,
    pub subnetwork: String,
    #[serde(rename = "networkIP")]
    pub network_ip: String,
}

/// What the platform needs to run a host.
#[derive(Debug, Clone, PartialEq)]
pub struct VpcHost {
    /// `projects/P/zones/Z/instances/N`.
    pub path: String,
    pub network: String,
    pub subnet: String,
    pub range: Ipv4Net,
    pub address: Ipv4Addr,
    pub startup_script: String,
    /// The service account its metadata server answers for.
    pub service_account: String,
}

/// Runs VPC hosts (set by `up` when it has a sandbox).
pub trait HostRunner: Send + Sync + 'static {
    /// Starts the host (returns once it runs, or why it cannot).
    fn start(&self, host: VpcHost) -> std::result::Result<(), String>;
    fn stop(&self, path: &str);
    /// What the host's startup script printed (and its exit), oldest first; `None` when it is not running here.
    fn output(&self, path: &str) -> Option<String>;
}

fn instance_path(project: &str, zone: &str, name: &str) -> String {
    format!("projects/{project}/zones/{zone}/instances/{name}")
}

/// The region of `zone` (`us-central1-a` → `us-central1`), or Compute Engine's 400 for a zone that does not exist
/// (`network::zone_region`: Google's zones of a known region, `-a` … `-f` of any other).
fn region_of(zone: &str) -> Result<&str> {
    network::zone_region(zone).map_err(ApiError::invalid)
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!("The resource '{path}' was not found"))
}

impl Instance {
    fn host(&self, range: Ipv4Net) -> Result<VpcHost> {
        let nic = self.network_interfaces.first().ok_or_else(|| ApiError::internal("instance without a network"))?;
        let script = startup_script(&self.metadata);
        Ok(VpcHost {
            path: self.self_link.trim_start_matches(COMPUTE).to_string(),
            network: basename(&nic.network).to_string(),
            subnet: basename(&nic.subnetwork).to_string(),
            range,
            address: nic.network_ip.parse().map_err(|_| ApiError::internal("stored address is malformed"))?,
            startup_script: script,
            service_account: self.service_accounts.first().and_then(|s| s["email"].as_str()).unwrap_or_default().into(),
        })
    }
}

/// The `startup-script` item of instance metadata (empty when absent).
fn startup_script(metadata: &Value) -> String {
    let items = metadata["items"].as_array().into_iter().flatten();
    items.filter(|i| i["key"] == "startup-script").find_map(|i| i["value"].as_str()).unwrap_or_default().to_string()
}

/// Every field of Compute Engine v1's `Instance` (as its discovery document lists them): a body may carry any of
/// them — Gatehouse reads the ones it models — and nothing else.
const INSTANCE_FIELDS: &[&str] = &[
    "advancedMachineFeatures",
    "canIpForward",
    "confidentialInstanceConfig",
    "cpuPlatform",
    "creationTimestamp",
    "deletionProtection",
    "description",
    "disks",
    "displayDevice",
    "fingerprint",
    "guestAccelerators",
    "hostname",
    "id",
    "instanceEncryptionKey",
    "keyRevocationActionType",
    "kind",
    "labelFingerprint",
    "labels",
    "lastStartTimestamp",
    "lastStopTimestamp",
    "lastSuspendedTimestamp",
    "machineType",
    "metadata",
    "minCpuPlatform",
    "name",
    "networkInterfaces",
    "networkPerformanceConfig",
    "params",
    "privateIpv6GoogleAccess",
    "reservationAffinity",
    "resourcePolicies",
    "resourceStatus",
    "satisfiesPzi",
    "satisfiesPzs",
    "scheduling",
    "selfLink",
    "serviceAccounts",
    "shieldedInstanceConfig",
    "shieldedInstanceIntegrityPolicy",
    "sourceMachineImage",
    "sourceMachineImageEncryptionKey",
    "startRestricted",
    "status",
    "statusMessage",
    "tags",
    "zone",
];

/// The machine types an instance may name (a host runs one startup script; the type is recorded, not enforced).
const MACHINE_TYPES: &[&str] = &[
    "e2-micro",
    "e2-small",
    "e2-medium",
    "e2-standard-2",
    "e2-standard-4",
    "e2-standard-8",
    "n1-standard-1",
    "n1-standard-2",
    "n1-standard-4",
    "n2-standard-2",
    "n2-standard-4",
];

/// The machine type when the body names none.
const DEFAULT_MACHINE_TYPE: &str = "e2-small";

/// `machineType` as Compute accepts it (`T`, `zones/Z/machineTypes/T`, `projects/P/zones/Z/machineTypes/T` or the
/// self link), in `zone` of `project`: the type's name, or Compute's 400 naming what is wrong.
fn machine_type(app: &App, reference: &str, zone: &str) -> Result<String> {
    let project = &app.project.project_id;
    let invalid = |why: String| {
        ApiError::invalid(format!("Invalid value for field 'resource.machineType': '{reference}'. {why}"))
    };
    let path = reference.strip_prefix(COMPUTE).unwrap_or(reference);
    let (z, name) = match path.split('/').collect::<Vec<_>>().as_slice() {
        [name] => (zone, *name),
        ["zones", z, "machineTypes", name] => (*z, *name),
        ["projects", p, "zones", z, "machineTypes", name] if app.project.is(p) => (*z, *name),
        ["projects", _, "zones", ..] => {
            return Err(invalid(format!("The machine type must be in project '{project}'.")))
        }
        _ => return Err(invalid("Give a machine type such as e2-small or zones/ZONE/machineTypes/e2-small.".into())),
    };
    if z != zone {
        return Err(invalid(format!("The machine type must be in zone '{zone}', the instance's zone.")));
    }
    if !MACHINE_TYPES.contains(&name) {
        return Err(invalid(format!(
            "Machine type with name '{name}' does not exist in zone '{zone}'. Known types: {}.",
            MACHINE_TYPES.join(", ")
        )));
    }
    Ok(name.to_owned())
}

/// Why `wanted` cannot be a host's address in `range` of `subnet`, if it cannot.
fn check_address(range: &Ipv4Net, wanted: Option<Ipv4Addr>, subnet: &str) -> Result<()> {
    let Some(ip) = wanted else { return Ok(()) };
    if !range.contains(&ip) {
        return Err(ApiError::invalid(format!(
            "IP address '{ip}' is outside the range {range} of subnetwork '{subnet}': it is not a usable address; \
             give one inside {range}"
        )));
    }
    if !network::usable_host(range, ip) {
        return Err(ApiError::invalid(format!(
            "IP address '{ip}' is not a usable address of subnetwork '{subnet}' ({range}): not its network, \
             gateway or broadcast address"
        )));
    }
    Ok(())
}

pub(crate) fn insert(app: &App, req: &Req, project: &str, zone: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.instances.create")?.project_id.clone();
    let full = app.project.full_name();
    let body: Value = req.json()?;
    if let Some(k) =
        body.as_object().into_iter().flat_map(|o| o.keys()).find(|k| !INSTANCE_FIELDS.contains(&k.as_str()))
    {
        return Err(ApiError::invalid(format!(
            "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
        )));
    }
    let name = body["name"]
        .as_str()
        .ok_or_else(|| ApiError::invalid("Required field 'resource.name' not specified"))?
        .to_string();
    let path = instance_path(&project, zone, &name);
    let call =
        Call::new(COMPUTE_SERVICE, "v1.compute.instances.insert", &path).needs("compute.instances.create", &full);
    app.authorize(&caller, "compute.instances.create", &full, &call)?;
    network::check_name("instance", &name).map_err(ApiError::invalid)?;
    let region = region_of(zone)?.to_string();
    if let Some(z) = body.get("zone").filter(|z| !z.is_null()) {
        let given = z.as_str().unwrap_or_default();
        if basename(given) != zone {
            return Err(ApiError::invalid(format!(
                "Invalid value for field 'resource.zone': '{}'. The instance's zone must be the zone of the request, \
                 '{zone}'.",
                z.as_str().map_or_else(|| z.to_string(), str::to_owned)
            )));
        }
    }
    let machine = match body.get("machineType").filter(|m| !m.is_null()) {
        None => DEFAULT_MACHINE_TYPE.to_owned(),
        Some(m) => machine_type(app, m.as_str().unwrap_or_default(), zone)?,
    };
    let nics = body["networkInterfaces"].as_array().cloned().unwrap_or_default();
    let [nic] = nics.as_slice() else {
        return Err(ApiError::invalid("an instance needs exactly one network interface: add --subnet=SUBNET"));
    };
    let subnet_ref = nic["subnetwork"].as_str().unwrap_or_default();
    if subnet_ref.is_empty() {
        return Err(ApiError::invalid("an instance needs a subnetwork: add --subnet=SUBNET"));
    }
    let bad_subnet = |why: String| {
        ApiError::invalid(format!(
            "Invalid value for field 'resource.networkInterfaces[0].subnetwork': '{subnet_ref}'. {why}"
        ))
    };
    let (subnet_project, subnet_region, subnet_name) =
        network::subnet_ref(subnet_ref, &project, &region).map_err(bad_subnet)?;
    if !app.project.is(&subnet_project) {
        return Err(bad_subnet(format!("The subnetwork must be in project '{project}'.")));
    }
    if subnet_region != region {
        return Err(bad_subnet(format!(
            "The subnetwork is in region '{subnet_region}'; an instance in zone '{zone}' needs a subnetwork of \
             region '{region}'."
        )));
    }
    let s_path = network::subnet_path(&project, &region, &subnet_name);
    let net_ref = nic["network"].as_str().filter(|n| !n.is_empty()).map(str::to_owned);
    let wanted = match nic["networkIP"].as_str().filter(|s| !s.is_empty()) {
        None => None,
        Some(ip) => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
            ApiError::invalid(format!("Invalid value for field 'resource.networkInterfaces[0].networkIP': '{ip}'"))
        })?),
    };
    // The subnetwork as it is now, for early answers; the transaction below reads it again and decides.
    let subnet =
        app.read(|tx| Ok(tx.get::<Subnetwork>(kind::SUBNETWORK, &s_path)?))?.ok_or_else(|| not_found(&s_path))?;
    check_subnet(&subnet, &subnet_name, net_ref.as_deref(), wanted)?;
    let script = startup_script(&body["metadata"]);
    if script.is_empty() {
        return Err(ApiError::invalid(
            "an instance runs its startup script and nothing else: add --metadata=startup-script=COMMAND",
        ));
    }
    let sa = body["serviceAccounts"][0]["email"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| model::names::default_compute_email(&app.project.project_number));
    // The VM runs as that account and its metadata server hands out its tokens: as for a Cloud Run deploy, the
    // caller must be allowed to act as it.
    crate::run::check_act_as(app, &caller, &sa, &call)?;
    let runner = app.hosts.get().cloned().ok_or_else(|| {
        ApiError::failed_precondition(
            "this platform runs without a sandbox (not root), so it has no VPC to run instances in; start \
             `gatehouse up` as root",
        )
    })?;
    let self_link = format!("{COMPUTE}{path}");
    let call = call.with_request(json!({ "name": name, "subnetwork": subnet_name, "networkIP": wanted }));
    let (instance, range) = app.mutate(&caller, call, false, |tx| {
        if tx.get::<Instance>(kind::COMPUTE_INSTANCE, &path)?.is_some() {
            return Err(ApiError::already_exists(format!("The resource '{path}' already exists")).into());
        }
        let subnet = tx.get::<Subnetwork>(kind::SUBNETWORK, &s_path)?.ok_or_else(|| not_found(&s_path))?;
        let range = check_subnet(&subnet, &subnet_name, net_ref.as_deref(), wanted)?;
        let used: Vec<Ipv4Addr> = tx
            .list::<Instance>(kind::COMPUTE_INSTANCE, "")?
            .into_iter()
            .filter_map(|(_, i)| i.network_interfaces.first().and_then(|n| n.network_ip.parse().ok()))
            .collect();
        let ip = match wanted {
            Some(ip) if used.contains(&ip) => {
                return Err(ApiError::invalid(format!("IP address '{ip}' is already in use in '{subnet_name}'")).into())
            }
            Some(ip) => ip,
            // After the gateway (.1) and the address a connector on this range would use (.2).
            None => network::host_addresses(&range).find(|ip| !used.contains(ip)).ok_or_else(|| {
                ApiError::new(model::Code::ResourceExhausted, format!("subnetwork '{subnet_name}' has no free address"))
            })?,
        };
        let instance = Instance {
            kind: "compute#instance".into(),
            id: crate::vpc::new_id(),
            creation_timestamp: now_rfc3339(),
            name: name.clone(),
            zone: format!("{COMPUTE}projects/{project}/zones/{zone}"),
            machine_type: format!("{COMPUTE}projects/{project}/zones/{zone}/machineTypes/{machine}"),
            status: "RUNNING".into(),
            network_interfaces: vec![NetworkInterface {
                name: "nic0".into(),
                network: subnet.network.clone(),
                subnetwork: subnet.self_link.clone(),
                network_ip: ip.to_string(),
            }],
            metadata: json!({ "kind": "compute#metadata", "items": [{ "key": "startup-script", "value": script }] }),
            service_accounts: vec![
                json!({ "email": sa, "scopes": ["https://www.googleapis.com/auth/cloud-platform"] }),
            ],
            self_link: self_link.clone(),
        };
        tx.put(kind::COMPUTE_INSTANCE, &path, &instance)?;
        Ok((instance, range.to_string()))
    })?;
    let range: Ipv4Net = range.parse().map_err(|_| ApiError::internal("stored range is malformed"))?;
    if let Err(why) = runner.start(instance.host(range)?) {
        // Nothing half-made stays behind: the instance goes with its failure.
        let _ = app.write(false, |tx| Ok(tx.delete(kind::COMPUTE_INSTANCE, &path).map(|_| ())?));
        return Err(ApiError::failed_precondition(format!("cannot start instance '{name}': {why}")));
    }
    Ok(Reply::Json(crate::vpc::operation_in(
        &format!("projects/{project}/zones/{zone}"),
        "insert",
        &self_link,
        &instance.id,
        caller.principal.email().unwrap_or_default(),
    )))
}

/// Checks an interface against its subnetwork — the `network` it names, if any, and the address it asks for — and
/// returns the subnetwork's range.
fn check_subnet(subnet: &Subnetwork, name: &str, net_ref: Option<&str>, wanted: Option<Ipv4Addr>) -> Result<Ipv4Net> {
    if let Some(net) = net_ref {
        if basename(net) != basename(&subnet.network) {
            return Err(ApiError::invalid(format!(
                "subnetwork `{name}` belongs to network `{}`, not `{}`",
                basename(&subnet.network),
                basename(net)
            )));
        }
    }
    let range: Ipv4Net = subnet.ip_cidr_range.parse().map_err(|_| ApiError::internal("stored range is malformed"))?;
    check_address(&range, wanted, name)?;
    Ok(range)
}

pub(crate) fn get(app: &App, req: &Req, project: &str, zone: &str, name: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.instances.get")?.project_id.clone();
    region_of(zone)?;
    let path = instance_path(&project, zone, name);
    let full = app.project.full_name();
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.instances.get", &path).reading();
    app.authorize(&caller, "compute.instances.get", &full, &call)?;
    let i = app.read(|tx| Ok(tx.get::<Instance>(kind::COMPUTE_INSTANCE, &path)?))?.ok_or_else(|| not_found(&path))?;
    Ok(Reply::Json(serde_json::to_value(i).unwrap_or_default()))
}

/// `instances.getSerialPortOutput`: the startup script's output, as the serial console shows it on Compute Engine.
pub(crate) fn serial_port(app: &App, req: &Req, project: &str, zone: &str, name: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.instances.getSerialPortOutput")?.project_id.clone();
    region_of(zone)?;
    let path = instance_path(&project, zone, name);
    let full = app.project.full_name();
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.instances.getSerialPortOutput", &path).reading();
    app.authorize(&caller, "compute.instances.getSerialPortOutput", &full, &call)?;
    let i = app.read(|tx| Ok(tx.get::<Instance>(kind::COMPUTE_INSTANCE, &path)?))?.ok_or_else(|| not_found(&path))?;
    let contents = app.hosts.get().and_then(|h| h.output(&path)).unwrap_or_default();
    Ok(Reply::Json(json!({
        "kind": "compute#serialPortOutput",
        "contents": contents,
        "start": "0",
        "next": contents.len().to_string(),
        "selfLink": format!("{}/serialPort", i.self_link),
    })))
}

/// `zones/Z/instances` (one zone) or, with no zone, `aggregated/instances`: every zone of the project, grouped by
/// `zones/Z` as Compute's `aggregatedList` does (zones without instances are left out).
pub(crate) fn list(app: &App, req: &Req, project: &str, zone: Option<&str>) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.instances.list")?.project_id.clone();
    let full = app.project.full_name();
    let prefix = match zone {
        Some(z) => format!("projects/{project}/zones/{z}/instances/"),
        None => format!("projects/{project}/zones/"),
    };
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.instances.list", &prefix).reading();
    app.authorize(&caller, "compute.instances.list", &full, &call)?;
    if let Some(z) = zone {
        region_of(z)?;
    }
    let items: Vec<Instance> =
        app.read(|tx| Ok(tx.list::<Instance>(kind::COMPUTE_INSTANCE, &prefix)?))?.into_iter().map(|(_, i)| i).collect();
    let Some(z) = zone else {
        let mut zones = serde_json::Map::new();
        for i in items {
            let key = format!("zones/{}", basename(&i.zone));
            let entry = zones.entry(key).or_insert_with(|| json!({ "instances": [] }));
            if let Some(list) = entry["instances"].as_array_mut() {
                list.push(serde_json::to_value(i).unwrap_or_default());
            }
        }
        return Ok(Reply::Json(json!({
            "kind": "compute#instanceAggregatedList",
            "items": zones,
            "selfLink": format!("{COMPUTE}projects/{project}/aggregated/instances"),
        })));
    };
    Ok(Reply::Json(json!({
        "kind": "compute#instanceList",
        "items": items,
        "selfLink": format!("{COMPUTE}projects/{project}/zones/{z}/instances"),
    })))
}

pub(crate) fn delete(app: &App, req: &Req, project: &str, zone: &str, name: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.instances.delete")?.project_id.clone();
    region_of(zone)?;
    let path = instance_path(&project, zone, name);
    let full = app.project.full_name();
    let call =
        Call::new(COMPUTE_SERVICE, "v1.compute.instances.delete", &path).needs("compute.instances.delete", &full);
    app.authorize(&caller, "compute.instances.delete", &full, &call)?;
    let i = app.mutate(&caller, call, false, |tx| {
        let i = tx.get::<Instance>(kind::COMPUTE_INSTANCE, &path)?.ok_or_else(|| not_found(&path))?;
        tx.delete(kind::COMPUTE_INSTANCE, &path)?;
        Ok(i)
    })?;
    if let Some(runner) = app.hosts.get() {
        runner.stop(&path);
    }
    Ok(Reply::Json(crate::vpc::operation_in(
        &format!("projects/{project}/zones/{zone}"),
        "delete",
        &i.self_link,
        &i.id,
        caller.principal.email().unwrap_or_default(),
    )))
}

impl App {
    /// Every VPC host's DNS names and address (platform DNS).
    pub fn vpc_host_names(&self) -> Vec<(String, Ipv4Addr)> {
        let stored = self.read(|tx| Ok(tx.list::<Instance>(kind::COMPUTE_INSTANCE, "")?)).unwrap_or_default();
        let project = &self.project.project_id;
        let mut out = Vec::new();
        for (_, i) in stored {
            let Some(ip) = i.network_interfaces.first().and_then(|n| n.network_ip.parse().ok()) else { continue };
            for name in network::dns::host_names(&i.name, basename(&i.zone), project) {
                out.push((name, ip));
            }
        }
        out
    }

    /// Runs VPC hosts from now on (at `up`, before the API answers, so `instances insert` never finds it unset).
    /// The stored hosts are started by [`App::start_stored_hosts`].
    pub fn set_host_runner(&self, runner: Arc<dyn HostRunner>) {
        if self.hosts.set(runner).is_err() {
            tracing::warn!("the VPC host runner was already set");
        }
    }

    /// Starts every stored VPC host with the runner [`App::set_host_runner`] set (blocks on each start: call it off
    /// the async runtime's threads).
    pub fn start_stored_hosts(&self) {
        let Some(runner) = self.hosts.get().cloned() else { return };
        let stored = self.read(|tx| Ok(tx.list::<Instance>(kind::COMPUTE_INSTANCE, "")?)).unwrap_or_default();
        for (_, i) in stored {
            let region = region_of(basename(&i.zone)).unwrap_or_default().to_string();
            let Some(subnet) = i.network_interfaces.first().map(|n| basename(&n.subnetwork).to_string()) else {
                continue;
            };
            let started = match self.subnet_route(&region, &subnet) {
                Some((_, range)) => i.host(range).map_err(|e| e.to_string()).and_then(|h| runner.start(h)),
                None => Err(format!("its subnetwork `{subnet}` is gone")),
            };
            if let Err(why) = started {
                tracing::warn!(instance = %i.name, %why, "cannot start a stored VPC host");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_name_their_region_and_unknown_zones_are_refused() {
        assert_eq!(region_of("us-central1-a").unwrap(), "us-central1");
        assert_eq!(region_of("us-central1-b").unwrap(), "us-central1");
        assert_eq!(region_of("europe-west4-c").unwrap(), "europe-west4");
        for bad in ["us-central1", "central", "us-central1-", "us-central1-AB", "us-central1-z", "us-central1-d"] {
            let e = region_of(bad).unwrap_err();
            assert_eq!(e.http_status(), 400, "{bad}");
            assert!(e.message.starts_with(&format!("Invalid value for field 'zone': '{bad}'. Unknown zone.")), "{e}");
        }
    }
}
