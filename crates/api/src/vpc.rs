//! VPC networks and subnetworks (Compute Engine v1 REST) and Serverless VPC Access connectors (vpcaccess v1), as
//! gcloud's `compute networks …`, `compute networks subnets …` and `compute networks vpc-access connectors …` call
//! them. The rules (names, ranges, overlaps, connector sizes) are the `network` crate's; this module stores the
//! resources, keeps them consistent (a network in use cannot go; ranges in one network never overlap) and audits
//! every change. Compute answers with a finished `compute#operation`, vpcaccess with a done LRO.

use crate::audit_trail::Call;
use crate::http::{Reply, Req};
use crate::projects;
use crate::run::types::{VpcAccess, VpcEgress};
use crate::state::{kind, now_rfc3339, App, Result};
use model::ApiError;
use network::{Connector, ConnectorSubnet, Ipv4Net, Network, Subnetwork, COMPUTE};
use serde::Deserialize;
use serde_json::{json, Value};

const COMPUTE_SERVICE: &str = "compute.googleapis.com";
const VPCACCESS: &str = "vpcaccess.googleapis.com";

/// A numeric id as Compute gives resources (19 digits).
pub(crate) fn new_id() -> String {
    (1_000_000_000_000_000_000 + tokens::random_u64() % 9_000_000_000_000_000_000).to_string()
}

fn not_found(path: &str) -> ApiError {
    ApiError::not_found(format!("The resource '{path}' was not found"))
}

fn in_use(path: &str, user: &str) -> ApiError {
    ApiError::invalid(format!("The resource '{path}' is already being used by '{user}'; delete '{user}' first"))
}

/// A finished global Compute Engine operation for `op_type` on `target` (a self link).
fn compute_operation(project: &str, op_type: &str, target: &str, target_id: &str, user: &str) -> Value {
    operation_in(&format!("projects/{project}/global"), op_type, target, target_id, user)
}

/// A finished Compute Engine operation in `scope` (`projects/P/global`, `projects/P/zones/Z`).
pub(crate) fn operation_in(scope: &str, op_type: &str, target: &str, target_id: &str, user: &str) -> Value {
    let now = now_rfc3339();
    let name = format!("operation-{}", crate::run::uid());
    let mut op = json!({
        "kind": "compute#operation",
        "id": new_id(),
        "name": name,
        "operationType": op_type,
        "targetLink": target,
        "targetId": target_id,
        "status": "DONE",
        "user": user,
        "progress": 100,
        "insertTime": now,
        "startTime": now,
        "endTime": now,
        "selfLink": format!("{COMPUTE}{scope}/operations/{name}"),
    });
    if let Some(zone) = scope.split_once("/zones/").map(|(p, z)| format!("{COMPUTE}{p}/zones/{z}")) {
        op["zone"] = json!(zone);
    }
    op
}

/// Fields gcloud and the client libraries send on insert that Gatehouse accepts and does not model.
fn reject_unknown(body: &Value, known: &[&str]) -> Result<()> {
    if let Some(o) = body.as_object() {
        if let Some(k) = o.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(ApiError::invalid(format!(
                "Invalid JSON payload received. Unknown name \"{k}\": Cannot find field."
            )));
        }
        Ok(())
    } else {
        Err(ApiError::invalid("the request body must be a JSON object"))
    }
}

fn field<T: for<'de> Deserialize<'de>>(body: &Value, name: &str) -> Result<Option<T>> {
    match body.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => crate::json_body::from_value(v.clone(), name)
            .map(Some)
            .map_err(|e| ApiError::invalid(format!("Invalid value for field '{name}': {e}"))),
    }
}

// ---- networks ----

/// A new VPC network and, in auto mode, its subnet in every region of [`network::AUTO_MODE_RANGES`], named as the
/// network (as Compute Engine creates them).
pub(crate) fn new_network(
    project: &str,
    name: &str,
    description: String,
    auto: bool,
    mtu: u32,
) -> (Network, Vec<Subnetwork>) {
    let self_link = format!("{COMPUTE}{}", network::network_path(project, name));
    let subnets: Vec<Subnetwork> = match auto {
        true => network::AUTO_MODE_RANGES
            .iter()
            .map(|(region, range)| {
                let range = range.parse().expect("INVARIANT: the auto-mode table holds valid ranges");
                new_subnet(project, region, name, &self_link, range, String::new(), false)
            })
            .collect(),
        false => Vec::new(),
    };
    let net = Network {
        kind: "compute#network".into(),
        id: new_id(),
        creation_timestamp: now_rfc3339(),
        name: name.to_owned(),
        description,
        self_link,
        auto_create_subnetworks: auto,
        subnetworks: subnets.iter().map(|s| s.self_link.clone()).collect(),
        routing_config: json!({ "routingMode": "REGIONAL" }),
        mtu,
    };
    (net, subnets)
}

/// Stores a network and its (auto-mode) subnets.
pub(crate) fn put_network(
    tx: &store::Tx,
    net: &Network,
    subnets: &[Subnetwork],
) -> std::result::Result<(), store::StoreError> {
    tx.put(kind::NETWORK, net.self_link.strip_prefix(COMPUTE).unwrap_or(&net.self_link), net)?;
    for s in subnets {
        tx.put(kind::SUBNETWORK, s.self_link.strip_prefix(COMPUTE).unwrap_or(&s.self_link), s)?;
    }
    Ok(())
}

fn new_subnet(
    project: &str,
    region: &str,
    name: &str,
    network_link: &str,
    range: Ipv4Net,
    description: String,
    private_ip_google_access: bool,
) -> Subnetwork {
    Subnetwork {
        kind: "compute#subnetwork".into(),
        id: new_id(),
        creation_timestamp: now_rfc3339(),
        name: name.to_owned(),
        description,
        network: network_link.to_owned(),
        ip_cidr_range: range.to_string(),
        gateway_address: network::gateway_address(&range).to_string(),
        region: format!("{COMPUTE}projects/{project}/regions/{region}"),
        self_link: format!("{COMPUTE}{}", network::subnet_path(project, region, name)),
        private_ip_google_access,
        stack_type: "IPV4_ONLY".into(),
        purpose: "PRIVATE".into(),
    }
}

/// Whether `subnet` is one Compute Engine made for its auto-mode network (only the network's deletion removes it).
fn is_auto_subnet(net: &Network, subnet: &Subnetwork) -> bool {
    net.auto_create_subnetworks
        && subnet.name == net.name
        && network::AUTO_MODE_RANGES
            .iter()
            .any(|(r, range)| *r == basename(&subnet.region) && *range == subnet.ip_cidr_range)
}

/// Who uses `subnet` (a connector or a VM), if anyone: it cannot be deleted then.
fn subnet_user(
    tx: &store::Tx,
    project: &str,
    subnet: &Subnetwork,
) -> std::result::Result<Option<String>, store::StoreError> {
    let region = basename(&subnet.region);
    let connector = tx.list::<Connector>(kind::CONNECTOR, "")?.into_iter().find(|(_, c)| {
        c.subnet.as_ref().is_some_and(|s| s.name == subnet.name && s.project_id == project)
            && c.name.contains(&format!("/locations/{region}/"))
    });
    if let Some((c, _)) = connector {
        return Ok(Some(c));
    }
    let vm = tx
        .list::<crate::compute_instances::Instance>(kind::COMPUTE_INSTANCE, "")?
        .into_iter()
        .find(|(_, i)| i.network_interfaces.iter().any(|n| n.subnetwork == subnet.self_link));
    Ok(vm.map(|(i, _)| i))
}

pub(crate) fn networks_insert(app: &App, req: &Req, project: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.networks.create")?.project_id.clone();
    let full = app.project.full_name();
    let body: Value = req.json()?;
    reject_unknown(
        &body,
        &[
            "name",
            "description",
            "autoCreateSubnetworks",
            "routingConfig",
            "mtu",
            "networkFirewallPolicyEnforcementOrder",
        ],
    )?;
    let name: String =
        field(&body, "name")?.ok_or_else(|| ApiError::invalid("Required field 'resource.name' not specified"))?;
    let path = network::network_path(&project, &name);
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.networks.insert", &path).needs("compute.networks.create", &full);
    app.authorize(&caller, "compute.networks.create", &full, &call)?;
    network::check_name("network", &name).map_err(ApiError::invalid)?;
    let auto =
        match field::<bool>(&body, "autoCreateSubnetworks")? {
            Some(auto) => auto,
            None => return Err(ApiError::invalid(
                "legacy networks are not supported: set autoCreateSubnetworks (gcloud: --subnet-mode=auto or custom)",
            )),
        };
    let mtu = field::<u32>(&body, "mtu")?.unwrap_or(1460);
    if !(1300..=8896).contains(&mtu) {
        return Err(ApiError::invalid(format!(
            "Invalid value for field 'resource.mtu': '{mtu}'. Must be between 1300 and 8896"
        )));
    }
    let description = field(&body, "description")?.unwrap_or_default();
    let (net, subnets) = new_network(&project, &name, description, auto, mtu);
    let self_link = net.self_link.clone();
    let call = call.with_request(json!({ "name": name, "autoCreateSubnetworks": auto }));
    let net = app.mutate(&caller, call, false, |tx| {
        if tx.get::<Network>(kind::NETWORK, &path)?.is_some() {
            return Err(ApiError::already_exists(format!("The resource '{path}' already exists")).into());
        }
        put_network(tx, &net, &subnets)?;
        Ok(net)
    })?;
    Ok(Reply::Json(compute_operation(
        &project,
        "insert",
        &self_link,
        &net.id,
        caller.principal.email().unwrap_or_default(),
    )))
}

pub(crate) fn networks_get(app: &App, req: &Req, project: &str, name: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.networks.get")?.project_id.clone();
    let path = network::network_path(&project, name);
    let full = app.project.full_name();
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.networks.get", &path).reading();
    app.authorize(&caller, "compute.networks.get", &full, &call)?;
    let net = app.read(|tx| Ok(tx.get::<Network>(kind::NETWORK, &path)?))?.ok_or_else(|| not_found(&path))?;
    Ok(Reply::Json(serde_json::to_value(net).unwrap_or_default()))
}

pub(crate) fn networks_list(app: &App, req: &Req, project: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.networks.list")?.project_id.clone();
    let full = app.project.full_name();
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.networks.list", format!("projects/{project}")).reading();
    app.authorize(&caller, "compute.networks.list", &full, &call)?;
    let prefix = format!("projects/{project}/global/networks/");
    let items: Vec<Network> =
        app.read(|tx| Ok(tx.list::<Network>(kind::NETWORK, &prefix)?))?.into_iter().map(|(_, n)| n).collect();
    Ok(Reply::Json(json!({
        "kind": "compute#networkList",
        "items": items,
        "selfLink": format!("{COMPUTE}projects/{project}/global/networks"),
    })))
}

pub(crate) fn networks_delete(app: &App, req: &Req, project: &str, name: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.networks.delete")?.project_id.clone();
    let path = network::network_path(&project, name);
    let full = app.project.full_name();
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.networks.delete", &path).needs("compute.networks.delete", &full);
    app.authorize(&caller, "compute.networks.delete", &full, &call)?;
    let net = app.mutate(&caller, call, false, |tx| {
        let net = tx.get::<Network>(kind::NETWORK, &path)?.ok_or_else(|| not_found(&path))?;
        // An auto-mode network's own subnets go with it, unless something uses them; any other subnet keeps it.
        let mut auto_subnets = Vec::new();
        for link in &net.subnetworks {
            let subnet_path = link.strip_prefix(COMPUTE).unwrap_or(link);
            let subnet = tx.get::<Subnetwork>(kind::SUBNETWORK, subnet_path)?;
            match subnet {
                Some(s) if is_auto_subnet(&net, &s) => match subnet_user(tx, &project, &s)? {
                    Some(user) => return Err(in_use(subnet_path, &user).into()),
                    None => auto_subnets.push(subnet_path.to_owned()),
                },
                _ => return Err(in_use(&path, subnet_path).into()),
            }
        }
        if let Some((c, _)) =
            tx.list::<Connector>(kind::CONNECTOR, "")?.into_iter().find(|(_, c)| c.network == net.name)
        {
            return Err(in_use(&path, &c).into());
        }
        for subnet_path in &auto_subnets {
            tx.delete(kind::SUBNETWORK, subnet_path)?;
        }
        tx.delete(kind::NETWORK, &path)?;
        Ok(net)
    })?;
    Ok(Reply::Json(compute_operation(
        &project,
        "delete",
        &net.self_link,
        &net.id,
        caller.principal.email().unwrap_or_default(),
    )))
}

// ---- subnetworks ----

/// Every range in use in `network` (subnets and connectors with their own range), with who uses it.
fn ranges_in(tx: &store::Tx, network: &Network) -> std::result::Result<Vec<(Ipv4Net, String)>, store::StoreError> {
    let mut used = Vec::new();
    for (_, s) in tx.list::<Subnetwork>(kind::SUBNETWORK, "")? {
        if s.network == network.self_link {
            if let Ok(r) = s.ip_cidr_range.parse() {
                used.push((r, format!("subnetwork '{}' in region '{}'", s.name, basename(&s.region))));
            }
        }
    }
    for (_, c) in tx.list::<Connector>(kind::CONNECTOR, "")? {
        if c.network == network.name && !c.ip_cidr_range.is_empty() {
            if let Ok(r) = c.ip_cidr_range.parse() {
                used.push((r, format!("connector '{}'", basename(&c.name))));
            }
        }
    }
    Ok(used)
}

/// The last segment of a resource name or self link.
pub(crate) fn basename(s: &str) -> &str {
    s.rsplit('/').next().unwrap_or(s)
}

pub(crate) fn subnets_insert(app: &App, req: &Req, project: &str, region: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.subnetworks.create")?.project_id.clone();
    let full = app.project.full_name();
    let body: Value = req.json()?;
    reject_unknown(
        &body,
        &["name", "description", "network", "ipCidrRange", "region", "privateIpGoogleAccess", "stackType", "purpose"],
    )?;
    let name: String =
        field(&body, "name")?.ok_or_else(|| ApiError::invalid("Required field 'resource.name' not specified"))?;
    let path = network::subnet_path(&project, region, &name);
    let call =
        Call::new(COMPUTE_SERVICE, "v1.compute.subnetworks.insert", &path).needs("compute.subnetworks.create", &full);
    app.authorize(&caller, "compute.subnetworks.create", &full, &call)?;
    network::check_name("subnetwork", &name).map_err(ApiError::invalid)?;
    check_region(region)?;
    let net_ref: String =
        field(&body, "network")?.ok_or_else(|| ApiError::invalid("Required field 'resource.network' not specified"))?;
    let (net_project, net_name) = network::network_ref(&net_ref, &project).map_err(ApiError::invalid)?;
    let net_path = network::network_path(&net_project, &net_name);
    let range_text: String = field(&body, "ipCidrRange")?
        .ok_or_else(|| ApiError::invalid("Required field 'resource.ipCidrRange' not specified"))?;
    let range = network::subnet_range(&range_text).map_err(ApiError::invalid)?;
    if let Some(purpose) = field::<String>(&body, "purpose")? {
        if purpose != "PRIVATE" {
            return Err(ApiError::invalid(format!("subnet purpose `{purpose}` is not modelled; use PRIVATE")));
        }
    }
    let description: String = field(&body, "description")?.unwrap_or_default();
    let private_google_access: bool = field(&body, "privateIpGoogleAccess")?.unwrap_or(false);
    let self_link = format!("{COMPUTE}{path}");
    let call = call.with_request(json!({ "name": name, "network": net_ref, "ipCidrRange": range_text }));
    let subnet = app.mutate(&caller, call, false, |tx| {
        if tx.get::<Subnetwork>(kind::SUBNETWORK, &path)?.is_some() {
            return Err(ApiError::already_exists(format!("The resource '{path}' already exists")).into());
        }
        let mut net = tx.get::<Network>(kind::NETWORK, &net_path)?.ok_or_else(|| not_found(&net_path))?;
        if let Some((_, who)) = ranges_in(tx, &net)?.into_iter().find(|(r, _)| network::overlaps(r, &range)) {
            return Err(
                ApiError::invalid(format!("Invalid IPCidrRange: {range} conflicts with existing {who}.")).into()
            );
        }
        let auto_block: Ipv4Net = "10.128.0.0/9".parse().expect("INVARIANT: a valid range");
        if net.auto_create_subnetworks && network::overlaps(&auto_block, &range) {
            let msg = format!(
                "Invalid IPCidrRange: {range} conflicts with the auto-mode range 10.128.0.0/9 of network '{}'.",
                net.name
            );
            return Err(ApiError::invalid(msg).into());
        }
        let subnet = new_subnet(&project, region, &name, &net.self_link, range, description, private_google_access);
        net.subnetworks.push(self_link.clone());
        tx.put(kind::NETWORK, &net_path, &net)?;
        tx.put(kind::SUBNETWORK, &path, &subnet)?;
        Ok(subnet)
    })?;
    Ok(Reply::Json(compute_operation(
        &project,
        "insert",
        &self_link,
        &subnet.id,
        caller.principal.email().unwrap_or_default(),
    )))
}

/// A region id as the platform's regions are spelled: `us-central1`, `europe-west4`.
fn check_region(region: &str) -> Result<()> {
    if network::is_region_name(region) {
        Ok(())
    } else {
        Err(ApiError::invalid(format!(
            "Invalid value for field 'region': '{region}'. Give a region such as us-central1"
        )))
    }
}

pub(crate) fn subnets_get(app: &App, req: &Req, project: &str, region: &str, name: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.subnetworks.get")?.project_id.clone();
    let path = network::subnet_path(&project, region, name);
    let full = app.project.full_name();
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.subnetworks.get", &path).reading();
    app.authorize(&caller, "compute.subnetworks.get", &full, &call)?;
    let s = app.read(|tx| Ok(tx.get::<Subnetwork>(kind::SUBNETWORK, &path)?))?.ok_or_else(|| not_found(&path))?;
    Ok(Reply::Json(serde_json::to_value(s).unwrap_or_default()))
}

/// `regions/R/subnetworks` (one region) or `aggregated/subnetworks` (every region, grouped as Compute does).
pub(crate) fn subnets_list(app: &App, req: &Req, project: &str, region: Option<&str>) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.subnetworks.list")?.project_id.clone();
    let full = app.project.full_name();
    let call = Call::new(COMPUTE_SERVICE, "v1.compute.subnetworks.list", format!("projects/{project}")).reading();
    app.authorize(&caller, "compute.subnetworks.list", &full, &call)?;
    let prefix = match region {
        Some(r) => format!("projects/{project}/regions/{r}/subnetworks/"),
        None => format!("projects/{project}/regions/"),
    };
    let all: Vec<Subnetwork> =
        app.read(|tx| Ok(tx.list::<Subnetwork>(kind::SUBNETWORK, &prefix)?))?.into_iter().map(|(_, s)| s).collect();
    Ok(Reply::Json(match region {
        Some(r) => json!({
            "kind": "compute#subnetworkList",
            "items": all,
            "selfLink": format!("{COMPUTE}projects/{project}/regions/{r}/subnetworks"),
        }),
        None => {
            let mut items = serde_json::Map::new();
            for s in all {
                let key = format!("regions/{}", basename(&s.region));
                let entry = items.entry(key).or_insert_with(|| json!({ "subnetworks": [] }));
                if let Some(list) = entry["subnetworks"].as_array_mut() {
                    list.push(serde_json::to_value(s).unwrap_or_default());
                }
            }
            json!({ "kind": "compute#subnetworkAggregatedList", "items": items })
        }
    }))
}

pub(crate) fn subnets_delete(app: &App, req: &Req, project: &str, region: &str, name: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "compute.subnetworks.delete")?.project_id.clone();
    let path = network::subnet_path(&project, region, name);
    let full = app.project.full_name();
    let call =
        Call::new(COMPUTE_SERVICE, "v1.compute.subnetworks.delete", &path).needs("compute.subnetworks.delete", &full);
    app.authorize(&caller, "compute.subnetworks.delete", &full, &call)?;
    let subnet = app.mutate(&caller, call, false, |tx| {
        let subnet = tx.get::<Subnetwork>(kind::SUBNETWORK, &path)?.ok_or_else(|| not_found(&path))?;
        if let Some(user) = subnet_user(tx, &project, &subnet)? {
            return Err(in_use(&path, &user).into());
        }
        let net_path = subnet.network.strip_prefix(COMPUTE).unwrap_or(&subnet.network).to_owned();
        let net = tx.get::<Network>(kind::NETWORK, &net_path)?;
        if let Some(net) = net.as_ref().filter(|n| is_auto_subnet(n, &subnet)) {
            let msg = format!(
                "The subnetwork resource '{path}' was created for auto mode network '{}' and cannot be deleted; delete \
                 the network instead",
                net.name
            );
            return Err(ApiError::invalid(msg).into());
        }
        if let Some(mut net) = net {
            net.subnetworks.retain(|l| l != &subnet.self_link);
            tx.put(kind::NETWORK, &net_path, &net)?;
        }
        tx.delete(kind::SUBNETWORK, &path)?;
        Ok(subnet)
    })?;
    Ok(Reply::Json(compute_operation(
        &project,
        "delete",
        &subnet.self_link,
        &subnet.id,
        caller.principal.email().unwrap_or_default(),
    )))
}

// ---- Serverless VPC Access connectors ----

fn connector_lro(project: &str, location: &str, method: &str, target: &str, response: Option<Value>) -> Value {
    let now = now_rfc3339();
    let mut op = json!({
        "name": format!("projects/{project}/locations/{location}/operations/{}", crate::run::uid()),
        "metadata": {
            "@type": "type.googleapis.com/google.cloud.vpcaccess.v1.OperationMetadata",
            "method": method,
            "createTime": now,
            "endTime": now,
            "target": target,
        },
        "done": true,
    });
    op["response"] = match response {
        Some(mut c) => {
            c["@type"] = json!("type.googleapis.com/google.cloud.vpcaccess.v1.Connector");
            c
        }
        None => json!({ "@type": "type.googleapis.com/google.protobuf.Empty" }),
    };
    op
}

pub(crate) fn connectors_create(app: &App, req: &Req, project: &str, location: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "vpcaccess.connectors.create")?.project_id.clone();
    let full = app.project.full_name();
    let id = req.query("connectorId").ok_or_else(|| ApiError::invalid("`connectorId` is required"))?.to_owned();
    let path = network::connector_path(&project, location, &id);
    let call = Call::new(VPCACCESS, "google.cloud.vpcaccess.v1.VpcAccessService.CreateConnector", &path)
        .needs("vpcaccess.connectors.create", &full);
    app.authorize(&caller, "vpcaccess.connectors.create", &full, &call)?;
    network::check_connector_name(&id).map_err(ApiError::invalid)?;
    check_region(location)?;
    let body: Value = req.json()?;
    reject_unknown(
        &body,
        &[
            "name",
            "network",
            "ipCidrRange",
            "subnet",
            "minInstances",
            "maxInstances",
            "minThroughput",
            "maxThroughput",
            "machineType",
        ],
    )?;
    let (min, max) = network::connector_scaling(field(&body, "minInstances")?, field(&body, "maxInstances")?)
        .map_err(ApiError::invalid)?;
    let machine: String = field(&body, "machineType")?.unwrap_or_else(|| "e2-micro".into());
    if !["f1-micro", "e2-micro", "e2-standard-4"].contains(&machine.as_str()) {
        return Err(ApiError::invalid(format!(
            "machine type `{machine}` is not one of f1-micro, e2-micro, e2-standard-4"
        )));
    }
    let net_ref: Option<String> = field(&body, "network")?;
    let range_text: Option<String> = field(&body, "ipCidrRange")?;
    let subnet: Option<ConnectorSubnet> = field(&body, "subnet")?;
    let call = call.with_request(body.clone());
    let connector = app.mutate(&caller, call, false, |tx| {
        if tx.get::<Connector>(kind::CONNECTOR, &path)?.is_some() {
            return Err(ApiError::already_exists(format!("Connector '{path}' already exists")).into());
        }
        let (network_name, range, subnet) = match (subnet, net_ref, range_text) {
            (Some(s), None, None) => {
                let subnet_project = if s.project_id.is_empty() { project.clone() } else { s.project_id.clone() };
                if subnet_project != project {
                    return Err(ApiError::invalid(format!(
                        "subnet project `{subnet_project}`: Gatehouse has one project (`{project}`); Shared VPC host \
                         projects are not modelled"
                    ))
                    .into());
                }
                let s_path = network::subnet_path(&project, location, &s.name);
                let found = tx.get::<Subnetwork>(kind::SUBNETWORK, &s_path)?.ok_or_else(|| {
                    ApiError::not_found(format!(
                        "The subnet '{}' was not found in region {location} of project {project}; a connector uses a \
                         subnet of its own region",
                        s.name
                    ))
                })?;
                network::connector_range(&found.ip_cidr_range)
                    .map_err(|e| ApiError::invalid(format!("subnet '{}' cannot hold a connector: {e}", s.name)))?;
                let used = tx.list::<Connector>(kind::CONNECTOR, "")?.into_iter().find(|(_, c)| {
                    c.subnet.as_ref().is_some_and(|x| x.name == s.name)
                        && c.name.contains(&format!("/locations/{location}/"))
                });
                if let Some((other, _)) = used {
                    return Err(ApiError::invalid(format!(
                        "subnet '{}' is already used by connector '{other}'",
                        s.name
                    ))
                    .into());
                }
                let net_name = basename(&found.network).to_owned();
                (net_name, String::new(), Some(ConnectorSubnet { name: s.name, project_id: project.clone() }))
            }
            (None, Some(net_ref), Some(range_text)) => {
                let (net_project, net_name) = network::network_ref(&net_ref, &project).map_err(ApiError::invalid)?;
                let net_path = network::network_path(&net_project, &net_name);
                let net = tx.get::<Network>(kind::NETWORK, &net_path)?.ok_or_else(|| not_found(&net_path))?;
                let range = network::connector_range(&range_text).map_err(ApiError::invalid)?;
                if let Some((_, who)) = ranges_in(tx, &net)?.into_iter().find(|(r, _)| network::overlaps(r, &range)) {
                    return Err(ApiError::invalid(format!(
                        "The connector's IP range {range} overlaps with {who} of network '{net_name}'"
                    ))
                    .into());
                }
                (net_name, range.to_string(), None)
            }
            (None, None, None) => {
                return Err(ApiError::invalid(
                    "a connector needs either a subnet (--subnet=SUBNET) or a network and a /28 range \
                     (--network=NETWORK --range=10.8.0.0/28)",
                )
                .into())
            }
            _ => {
                return Err(ApiError::invalid(
                    "give either a subnet, or a network with an IP range (`network` and `ipCidrRange`), not both",
                )
                .into())
            }
        };
        let connector = Connector {
            name: path.clone(),
            network: network_name,
            ip_cidr_range: range,
            state: "READY".into(),
            min_throughput: min * 100,
            max_throughput: max * 100,
            connected_projects: vec![project.clone()],
            subnet,
            machine_type: machine,
            min_instances: min,
            max_instances: max,
        };
        tx.put(kind::CONNECTOR, &path, &connector)?;
        Ok(connector)
    })?;
    let response = serde_json::to_value(&connector).unwrap_or_default();
    Ok(Reply::Json(connector_lro(
        &project,
        location,
        "google.cloud.vpcaccess.v1.VpcAccessService.CreateConnector",
        &path,
        Some(response),
    )))
}

pub(crate) fn connectors_get(app: &App, req: &Req, project: &str, location: &str, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "vpcaccess.connectors.get")?.project_id.clone();
    let path = network::connector_path(&project, location, id);
    let full = app.project.full_name();
    let call = Call::new(VPCACCESS, "google.cloud.vpcaccess.v1.VpcAccessService.GetConnector", &path).reading();
    app.authorize(&caller, "vpcaccess.connectors.get", &full, &call)?;
    let c = app
        .read(|tx| Ok(tx.get::<Connector>(kind::CONNECTOR, &path)?))?
        .ok_or_else(|| ApiError::not_found(format!("Connector '{path}' was not found")))?;
    Ok(Reply::Json(serde_json::to_value(c).unwrap_or_default()))
}

pub(crate) fn connectors_list(app: &App, req: &Req, project: &str, location: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "vpcaccess.connectors.list")?.project_id.clone();
    let full = app.project.full_name();
    let parent = format!("projects/{project}/locations/{location}");
    let call = Call::new(VPCACCESS, "google.cloud.vpcaccess.v1.VpcAccessService.ListConnectors", &parent).reading();
    app.authorize(&caller, "vpcaccess.connectors.list", &full, &call)?;
    let prefix = format!("{parent}/connectors/");
    let items: Vec<Connector> =
        app.read(|tx| Ok(tx.list::<Connector>(kind::CONNECTOR, &prefix)?))?.into_iter().map(|(_, c)| c).collect();
    Ok(Reply::Json(if items.is_empty() { json!({}) } else { json!({ "connectors": items }) }))
}

pub(crate) fn connectors_delete(app: &App, req: &Req, project: &str, location: &str, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "vpcaccess.connectors.delete")?.project_id.clone();
    let path = network::connector_path(&project, location, id);
    let full = app.project.full_name();
    let call = Call::new(VPCACCESS, "google.cloud.vpcaccess.v1.VpcAccessService.DeleteConnector", &path)
        .needs("vpcaccess.connectors.delete", &full);
    app.authorize(&caller, "vpcaccess.connectors.delete", &full, &call)?;
    app.mutate(&caller, call, false, |tx| {
        if !tx.delete(kind::CONNECTOR, &path)? {
            return Err(ApiError::not_found(format!("Connector '{path}' was not found")).into());
        }
        Ok(())
    })?;
    Ok(Reply::Json(connector_lro(
        &project,
        location,
        "google.cloud.vpcaccess.v1.VpcAccessService.DeleteConnector",
        &path,
        None,
    )))
}

/// Checks a revision's `vpcAccess` against the VPC model and writes it in canonical form: the connector as its full
/// name (it must exist in the service's region), one Direct VPC interface whose subnet is in that region and in the
/// named network, egress `PRIVATE_RANGES_ONLY` when unspecified.
pub(crate) fn check_vpc_access(app: &App, access: &mut VpcAccess, region: &str) -> Result<()> {
    let project = app.project.project_id.clone();
    if !access.connector.is_empty() && !access.network_interfaces.is_empty() {
        return Err(ApiError::invalid(
            "a revision reaches a VPC either through a connector (vpcAccess.connector, --vpc-connector) or through Direct VPC egress (vpcAccess.networkInterfaces, --network/--subnet), not both",
        ));
    }
    if access.egress == VpcEgress::Unspecified {
        access.egress = VpcEgress::PrivateRangesOnly;
    }
    if !access.connector.is_empty() {
        let reference = access.connector.clone();
        let path = if reference.starts_with("projects/") {
            let segs: Vec<&str> = reference.split('/').collect();
            match segs.as_slice() {
                ["projects", p, "locations", l, "connectors", c] if app.project.is(p) => {
                    if *l != region {
                        return Err(ApiError::invalid(format!(
                            "VPC connector `{reference}` is in region {l}; a service in {region} needs a connector in {region}"
                        )));
                    }
                    network::connector_path(&project, l, c)
                }
                _ => {
                    return Err(ApiError::invalid(format!(
                        "`{reference}` does not name a connector of this project: use a connector name, or projects/{project}/locations/{region}/connectors/NAME"
                    )))
                }
            }
        } else {
            network::check_connector_name(&reference).map_err(ApiError::invalid)?;
            network::connector_path(&project, region, &reference)
        };
        if app.read(|tx| Ok(tx.get::<Connector>(kind::CONNECTOR, &path)?))?.is_none() {
            return Err(ApiError::invalid(format!(
                "VPC connector `{reference}` was not found in region {region}: create it with `gcloud compute \
                 networks vpc-access connectors create {} --region={region} --network=NETWORK --range=CIDR`",
                basename(&reference)
            )));
        }
        access.connector = path;
        return Ok(());
    }
    match access.network_interfaces.as_mut_slice() {
        [] => Err(ApiError::invalid(
            "vpcAccess needs a connector or a network interface; to route egress through a VPC, add \
             --vpc-connector=CONNECTOR or --network=NETWORK --subnet=SUBNET",
        )),
        [ni] => {
            let subnet_ref = if ni.subnetwork.is_empty() { ni.network.clone() } else { ni.subnetwork.clone() };
            if subnet_ref.is_empty() {
                return Err(ApiError::invalid("a network interface needs a network or a subnetwork"));
            }
            let (sp, sr, sn) = network::subnet_ref(&subnet_ref, &project, region).map_err(ApiError::invalid)?;
            if !app.project.is(&sp) || sr != region {
                return Err(ApiError::invalid(format!(
                    "subnetwork `{subnet_ref}` must be in project {project} and region {region}, the service's"
                )));
            }
            let s_path = network::subnet_path(&project, region, &sn);
            let subnet = app
                .read(|tx| Ok(tx.get::<Subnetwork>(kind::SUBNETWORK, &s_path)?))?
                .ok_or_else(|| ApiError::invalid(format!("subnetwork `{sn}` was not found in region {region}")))?;
            let net_name = basename(&subnet.network).to_owned();
            if !ni.network.is_empty() && !ni.subnetwork.is_empty() {
                let (_, named) = network::network_ref(&ni.network, &project).map_err(ApiError::invalid)?;
                if named != net_name {
                    return Err(ApiError::invalid(format!(
                        "subnetwork `{sn}` belongs to network `{net_name}`, not `{named}`"
                    )));
                }
            }
            ni.network = net_name;
            ni.subnetwork = sn;
            Ok(())
        }
        _ => Err(ApiError::invalid("Direct VPC egress supports one network interface")),
    }
}

impl App {
    /// Where a connector's traffic enters its VPC: the network's name and the connector's range (its own /28, or
    /// its subnet's). `None` when the connector is gone.
    pub fn connector_route(&self, path: &str) -> Option<(String, Ipv4Net)> {
        let c = self.read(|tx| Ok(tx.get::<Connector>(kind::CONNECTOR, path)?)).ok()??;
        let range = match &c.subnet {
            None => c.ip_cidr_range.clone(),
            Some(s) => {
                let region = path.split('/').nth(3).unwrap_or_default();
                self.subnet_route(region, &s.name)?.1.to_string()
            }
        };
        Some((c.network, range.parse().ok()?))
    }

    /// A subnetwork's network name and range.
    pub fn subnet_route(&self, region: &str, name: &str) -> Option<(String, Ipv4Net)> {
        let path = network::subnet_path(&self.project.project_id, region, name);
        let s = self.read(|tx| Ok(tx.get::<Subnetwork>(kind::SUBNETWORK, &path)?)).ok()??;
        Some((basename(&s.network).to_owned(), s.ip_cidr_range.parse().ok()?))
    }
}
