//! `compute networks …`, `compute networks subnets …`, `compute networks vpc-access connectors …` and
//! `compute instances …` (private hosts in a VPC), as gcloud's:
//! the same flags, the same `Created [URL].` lines, tables with gcloud's columns (any `--format` shows the
//! resources themselves).

use super::{basename, compute_region as region, seg};
use crate::args::{ComputeCmd, ConnectorsCmd, Global, InstancesCmd, NetworksCmd, SubnetsCmd, VpcAccessCmd};
use crate::client::Client;
use crate::format::{self, Default};
use anyhow::{bail, Result};
use reqwest::Method;
use serde_json::{json, Value};

const COMPUTE: &str = "https://www.googleapis.com/compute/v1/";

pub fn run(g: &Global, cmd: ComputeCmd) -> Result<u8> {
    let client = Client::new(g)?;
    let cmd = match cmd {
        ComputeCmd::Networks(cmd) => cmd,
        ComputeCmd::Instances(cmd) => return instances(&client, g, cmd),
    };
    match cmd {
        NetworksCmd::Subnets(c) => subnets(&client, g, c),
        NetworksCmd::VpcAccess(VpcAccessCmd::Connectors(c)) => connectors(&client, g, c),
        other => networks(&client, g, other),
    }
}

/// Prints `resources` as a gcloud table made of `rows` when no `--format` is given, else as `--format` says.
fn show(g: &Global, resources: Value, rows: Value, table: &'static str) -> Result<()> {
    if g.format.is_some() {
        format::print(&resources, g, Default::Yaml)
    } else {
        format::print(&rows, g, Default::Table(table))
    }
}

const NETWORK_TABLE: &str = "table(name:label=NAME,mode:label=SUBNET_MODE,routing:label=BGP_ROUTING_MODE,\
                             range:label=IPV4_RANGE,gateway:label=GATEWAY_IPV4)";

fn network_row(n: &Value) -> Value {
    json!({
        "name": n["name"],
        "mode": if n["autoCreateSubnetworks"] == json!(true) { "AUTO" } else { "CUSTOM" },
        "routing": n["routingConfig"]["routingMode"],
        "range": "",
        "gateway": "",
    })
}

fn networks(client: &Client, g: &Global, cmd: NetworksCmd) -> Result<u8> {
    let project = seg(&client.project(g));
    let base = format!("/compute/v1/projects/{project}/global/networks");
    match cmd {
        NetworksCmd::Create { name, subnet_mode, bgp_routing_mode, mtu, description } => {
            // gcloud's default is auto: one subnet per region, named as the network.
            let auto = match subnet_mode.as_deref() {
                None | Some("auto") => true,
                Some("custom") => false,
                Some("legacy") => bail!("legacy networks are not supported; use --subnet-mode=auto or custom"),
                Some(other) => bail!("invalid --subnet-mode `{other}`; use auto or custom"),
            };
            if let Some(m) = bgp_routing_mode.as_deref().filter(|m| *m != "regional") {
                bail!("--bgp-routing-mode `{m}` is not modelled; use regional");
            }
            let mut body = json!({
                "name": name,
                "autoCreateSubnetworks": auto,
                "routingConfig": { "routingMode": "REGIONAL" },
            });
            if let Some(m) = mtu {
                body["mtu"] = json!(m);
            }
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let op = client.post(&base, &body)?;
            eprintln!("Created [{}].", op["targetLink"].as_str().unwrap_or_default());
            let net = client.get(&format!("{base}/{}", seg(&name)))?;
            show(g, net.clone(), network_row(&net), NETWORK_TABLE)?;
        }
        NetworksCmd::List => {
            let items = client.get(&base)?["items"].as_array().cloned().unwrap_or_default();
            let rows: Vec<Value> = items.iter().map(network_row).collect();
            show(g, Value::Array(items), Value::Array(rows), NETWORK_TABLE)?;
        }
        NetworksCmd::Describe { name } => {
            let net = client.get(&format!("{base}/{}", seg(&name)))?;
            format::print(&net, g, Default::Yaml)?;
        }
        NetworksCmd::Delete { names, quiet: _ } => {
            if names.is_empty() {
                bail!("name the network(s) to delete");
            }
            for name in names {
                let op = client.call(Method::DELETE, &format!("{base}/{}", seg(&name)), None)?;
                eprintln!("Deleted [{}].", op["targetLink"].as_str().unwrap_or_default());
            }
        }
        NetworksCmd::Subnets(_) | NetworksCmd::VpcAccess(_) => unreachable!("dispatched in run"),
    }
    Ok(0)
}

const SUBNET_TABLE: &str = "table(name:label=NAME,region:label=REGION,network:label=NETWORK,range:label=RANGE,\
                            stack:label=STACK_TYPE)";

fn subnet_row(s: &Value) -> Value {
    json!({
        "name": s["name"],
        "region": basename(s["region"].as_str().unwrap_or_default()),
        "network": basename(s["network"].as_str().unwrap_or_default()),
        "range": s["ipCidrRange"],
        "stack": s["stackType"],
    })
}

fn subnets(client: &Client, g: &Global, cmd: SubnetsCmd) -> Result<u8> {
    let project = seg(&client.project(g));
    let path = |r: &str| format!("/compute/v1/projects/{project}/regions/{}/subnetworks", seg(r));
    match cmd {
        SubnetsCmd::Create { name, network, range, region: r, description, enable_private_ip_google_access } => {
            let r = region(client, &r);
            let network = if network.contains('/') {
                network
            } else {
                format!("{COMPUTE}projects/{project}/global/networks/{network}")
            };
            let mut body = json!({
                "name": name,
                "network": network,
                "ipCidrRange": range,
                "region": r,
                "privateIpGoogleAccess": enable_private_ip_google_access,
            });
            if let Some(d) = description {
                body["description"] = json!(d);
            }
            let op = client.post(&path(&r), &body)?;
            eprintln!("Created [{}].", op["targetLink"].as_str().unwrap_or_default());
            let s = client.get(&format!("{}/{}", path(&r), seg(&name)))?;
            show(g, s.clone(), subnet_row(&s), SUBNET_TABLE)?;
        }
        SubnetsCmd::List { network, regions } => {
            let all = client.get(&format!("/compute/v1/projects/{project}/aggregated/subnetworks"))?;
            let networks = network.as_deref().map(super::split_list);
            let regions = regions.as_deref().map(super::split_list);
            let mut items: Vec<Value> = all["items"]
                .as_object()
                .into_iter()
                .flat_map(|m| m.values())
                .flat_map(|v| v["subnetworks"].as_array().cloned().unwrap_or_default())
                .filter(|s| {
                    let row = subnet_row(s);
                    let keep = |names: &Option<Vec<String>>, key: &str| {
                        names.as_ref().is_none_or(|n| n.iter().any(|x| row[key] == json!(x)))
                    };
                    keep(&networks, "network") && keep(&regions, "region")
                })
                .collect();
            items.sort_by_key(|s| s["selfLink"].as_str().unwrap_or_default().to_owned());
            let rows: Vec<Value> = items.iter().map(subnet_row).collect();
            show(g, Value::Array(items), Value::Array(rows), SUBNET_TABLE)?;
        }
        SubnetsCmd::Describe { name, region: r } => {
            let s = client.get(&format!("{}/{}", path(&region(client, &r)), seg(&name)))?;
            format::print(&s, g, Default::Yaml)?;
        }
        SubnetsCmd::Delete { names, region: r, quiet: _ } => {
            if names.is_empty() {
                bail!("name the subnet(s) to delete");
            }
            let r = region(client, &r);
            for name in names {
                let op = client.call(Method::DELETE, &format!("{}/{}", path(&r), seg(&name)), None)?;
                eprintln!("Deleted [{}].", op["targetLink"].as_str().unwrap_or_default());
            }
        }
    }
    Ok(0)
}

const CONNECTOR_TABLE: &str = "table(id:label=CONNECTOR_ID,region:label=REGION,network:label=NETWORK,\
                               range:label=IP_CIDR_RANGE,subnet:label=SUBNET,subnet_project:label=SUBNET_PROJECT,\
                               machine:label=MACHINE_TYPE,min:label=MIN_INSTANCES,max:label=MAX_INSTANCES,\
                               state:label=STATE)";

fn connector_row(c: &Value) -> Value {
    let name = c["name"].as_str().unwrap_or_default();
    let region = name.split('/').nth(3).unwrap_or_default();
    json!({
        "id": basename(name),
        "region": region,
        "network": c["network"],
        "range": c["ipCidrRange"].as_str().unwrap_or_default(),
        "subnet": c["subnet"]["name"].as_str().unwrap_or_default(),
        "subnet_project": c["subnet"]["projectId"].as_str().unwrap_or_default(),
        "machine": c["machineType"],
        "min": c["minInstances"],
        "max": c["maxInstances"],
        "state": c["state"],
    })
}

fn connectors(client: &Client, g: &Global, cmd: ConnectorsCmd) -> Result<u8> {
    let project = seg(&client.project(g));
    let parent = |r: &str| format!("/v1/projects/{project}/locations/{}/connectors", seg(r));
    match cmd {
        ConnectorsCmd::Create {
            name,
            region: r,
            network,
            range,
            subnet,
            subnet_project,
            min_instances,
            max_instances,
            machine_type,
        } => {
            let r = region(client, &r);
            let mut body = json!({});
            match (network, range, subnet) {
                (network, None, Some(subnet)) => {
                    if network.is_some() {
                        bail!("--network goes with --range; a connector on --subnet uses the subnet's network");
                    }
                    let project_id = subnet_project.unwrap_or_else(|| client.project(g));
                    body["subnet"] = json!({ "name": subnet, "projectId": project_id });
                }
                (network, Some(range), None) => {
                    body["network"] = json!(network.unwrap_or_else(|| "default".into()));
                    body["ipCidrRange"] = json!(range);
                }
                (_, Some(_), Some(_)) => bail!("give --subnet, or --network with --range, not both"),
                (_, None, None) => bail!(
                    "a connector needs --subnet=SUBNET (a /28 subnet in --region), or --network=NETWORK \
                     --range=CIDR (an unused /28, e.g. 10.8.0.0/28)"
                ),
            }
            if let Some(n) = min_instances {
                body["minInstances"] = json!(n);
            }
            if let Some(n) = max_instances {
                body["maxInstances"] = json!(n);
            }
            if let Some(m) = machine_type {
                body["machineType"] = json!(m);
            }
            let op = client.post(&format!("{}?connectorId={}", parent(&r), seg(&name)), &body)?;
            eprintln!("Create request issued for: [{name}]");
            eprintln!("Waiting for operation [{}] to complete...done.", op["name"].as_str().unwrap_or_default());
            eprintln!("Created connector [{name}].");
        }
        ConnectorsCmd::List { region: r } => {
            let r = region(client, &r);
            let items = client.get(&parent(&r))?["connectors"].as_array().cloned().unwrap_or_default();
            let rows: Vec<Value> = items.iter().map(connector_row).collect();
            show(g, Value::Array(items), Value::Array(rows), CONNECTOR_TABLE)?;
        }
        ConnectorsCmd::Describe { name, region: r } => {
            let c = client.get(&format!("{}/{}", parent(&region(client, &r)), seg(&name)))?;
            format::print(&c, g, Default::Yaml)?;
        }
        ConnectorsCmd::Delete { name, region: r, quiet: _ } => {
            let op = client.call(Method::DELETE, &format!("{}/{}", parent(&region(client, &r)), seg(&name)), None)?;
            eprintln!("Delete request issued for: [{name}]");
            eprintln!("Waiting for operation [{}] to complete...done.", op["name"].as_str().unwrap_or_default());
            eprintln!("Deleted connector [{name}].");
        }
    }
    Ok(0)
}

const INSTANCE_TABLE: &str = "table(name:label=NAME,zone:label=ZONE,machine:label=MACHINE_TYPE,\
                              ip:label=INTERNAL_IP,status:label=STATUS)";

fn instance_row(i: &Value) -> Value {
    json!({
        "name": i["name"],
        "zone": basename(i["zone"].as_str().unwrap_or_default()),
        "machine": basename(i["machineType"].as_str().unwrap_or_default()),
        "ip": i["networkInterfaces"][0]["networkIP"],
        "status": i["status"],
    })
}

/// The zone: `--zone`, else the `compute/zone` property, else the first zone of the compute region.
fn zone(client: &Client, zone: &Option<String>) -> String {
    zone.clone().or_else(|| client.home.config().get("compute/zone").cloned()).unwrap_or_else(|| {
        let r = region(client, &None);
        network::zones_of(&r).into_iter().next().unwrap_or_else(|| format!("{r}-a"))
    })
}

fn instances(client: &Client, g: &Global, cmd: InstancesCmd) -> Result<u8> {
    let project = seg(&client.project(g));
    let base = |z: &str| format!("/compute/v1/projects/{project}/zones/{}/instances", seg(z));
    match cmd {
        InstancesCmd::Create {
            name,
            zone: z,
            subnet,
            network,
            private_network_ip,
            metadata,
            no_address: _,
            machine_type,
            service_account,
        } => {
            let z = zone(client, &z);
            let Some(subnet) = subnet else {
                bail!("add --subnet=SUBNET: a Gatehouse instance is a private host in a VPC subnet");
            };
            // An unknown zone is the API's to refuse (Google's 400): here it only names the subnetwork's region.
            let region = z.rsplit_once('-').map(|(r, _)| r.to_string()).unwrap_or_default();
            let mut items = Vec::new();
            for (k, v) in super::split_dict(metadata.as_deref().unwrap_or_default(), "metadata")? {
                items.push(json!({ "key": k, "value": v }));
            }
            let mut nic = json!({
                "subnetwork": format!("projects/{project}/regions/{region}/subnetworks/{}", seg(&subnet)),
            });
            if let Some(n) = network {
                nic["network"] = json!(format!("projects/{project}/global/networks/{}", seg(&n)));
            }
            if let Some(ip) = private_network_ip {
                nic["networkIP"] = json!(ip);
            }
            let mut body = json!({ "name": name, "networkInterfaces": [nic], "metadata": { "items": items } });
            if let Some(m) = machine_type {
                body["machineType"] = json!(format!("zones/{z}/machineTypes/{m}"));
            }
            if let Some(sa) = service_account {
                body["serviceAccounts"] =
                    json!([{ "email": sa, "scopes": ["https://www.googleapis.com/auth/cloud-platform"] }]);
            }
            let op = client.post(&base(&z), &body)?;
            eprintln!("Created [{}].", op["targetLink"].as_str().unwrap_or_default());
            let i = client.get(&format!("{}/{}", base(&z), seg(&name)))?;
            show(g, i.clone(), instance_row(&i), INSTANCE_TABLE)?;
        }
        InstancesCmd::List { zones } => {
            let mut all = Vec::new();
            match zones {
                Some(zones) => {
                    for z in super::split_list(&zones) {
                        let list = client.get(&base(&z))?;
                        all.extend(list["items"].as_array().cloned().unwrap_or_default());
                    }
                }
                // Every zone of the project, as gcloud's `aggregatedList`.
                None => {
                    let list = client.get(&format!("/compute/v1/projects/{project}/aggregated/instances"))?;
                    let per_zone = list["items"].as_object().into_iter().flat_map(|m| m.values());
                    all.extend(per_zone.flat_map(|v| v["instances"].as_array().cloned().unwrap_or_default()));
                    all.sort_by_key(|i| i["selfLink"].as_str().unwrap_or_default().to_owned());
                }
            }
            let rows: Vec<Value> = all.iter().map(instance_row).collect();
            show(g, Value::Array(all), Value::Array(rows), INSTANCE_TABLE)?;
        }
        InstancesCmd::Describe { name, zone: z } => {
            let i = client.get(&format!("{}/{}", base(&zone(client, &z)), seg(&name)))?;
            format::print(&i, g, Default::Yaml)?;
        }
        InstancesCmd::GetSerialPortOutput { name, zone: z } => {
            let out = client.get(&format!("{}/{}/serialPort", base(&zone(client, &z)), seg(&name)))?;
            if g.format.is_some() {
                format::print(&out, g, Default::Yaml)?;
            } else {
                out!("{}", out["contents"].as_str().unwrap_or_default());
            }
        }
        InstancesCmd::Delete { names, zone: z, quiet: _ } => {
            if names.is_empty() {
                bail!("name the instance(s) to delete");
            }
            let z = zone(client, &z);
            for name in names {
                let op = client.call(Method::DELETE, &format!("{}/{}", base(&z), seg(&name)), None)?;
                eprintln!("Deleted [{}].", op["targetLink"].as_str().unwrap_or_default());
            }
        }
    }
    Ok(0)
}
