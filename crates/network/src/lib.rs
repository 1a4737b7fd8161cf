//! The VPC model, as Compute Engine and Serverless VPC Access present it: networks (custom subnet mode), regional
//! subnetworks with an IPv4 range, connectors (a /28 of their own, or an existing /28 subnet) — and which
//! destinations count as private, the line `--vpc-egress=private-ranges-only` draws (PROTOCOL.md §5).
//!
//! The model is pure: no I/O. The API validates and stores these resources with it; the sandbox plumbs namespaces
//! from them through [`netns`], the one module that touches the kernel.
//!
//! Simulated VPC addresses exist only inside the project's own network namespaces (DESIGN.md, "Network"), so a
//! subnet's range must be private (RFC 1918 or RFC 6598): a public range there could shadow a real host.

#![forbid(unsafe_code)]

pub mod dns;
pub mod fabric;
pub mod netns;

use std::net::Ipv4Addr;

pub use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// The ranges Serverless VPC Access routes into the VPC under `private-ranges-only`: RFC 1918, RFC 6598, and the
/// Private Google Access VIPs (PROTOCOL.md §5), with where each comes from.
pub const PRIVATE_RANGES: [(&str, &str); 6] = [
    ("10.0.0.0/8", "RFC 1918"),
    ("172.16.0.0/12", "RFC 1918"),
    ("192.168.0.0/16", "RFC 1918"),
    ("100.64.0.0/10", "RFC 6598"),
    ("199.36.153.8/30", "private.googleapis.com"),
    ("199.36.153.4/30", "restricted.googleapis.com"),
];

/// The subnet an auto-mode VPC network gets in each region, named as the network (Google's "Auto mode IP ranges"
/// table; all inside 10.128.0.0/9, which custom subnets of an auto-mode network may not use).
pub const AUTO_MODE_RANGES: [(&str, &str); 24] = [
    ("us-central1", "10.128.0.0/20"),
    ("europe-west1", "10.132.0.0/20"),
    ("us-west1", "10.138.0.0/20"),
    ("asia-east1", "10.140.0.0/20"),
    ("us-east1", "10.142.0.0/20"),
    ("asia-northeast1", "10.146.0.0/20"),
    ("asia-southeast1", "10.148.0.0/20"),
    ("us-east4", "10.150.0.0/20"),
    ("australia-southeast1", "10.152.0.0/20"),
    ("europe-west2", "10.154.0.0/20"),
    ("europe-west3", "10.156.0.0/20"),
    ("southamerica-east1", "10.158.0.0/20"),
    ("asia-south1", "10.160.0.0/20"),
    ("northamerica-northeast1", "10.162.0.0/20"),
    ("europe-west4", "10.164.0.0/20"),
    ("europe-north1", "10.166.0.0/20"),
    ("us-west2", "10.168.0.0/20"),
    ("asia-east2", "10.170.0.0/20"),
    ("europe-west6", "10.172.0.0/20"),
    ("asia-northeast2", "10.174.0.0/20"),
    ("asia-northeast3", "10.178.0.0/20"),
    ("us-west3", "10.180.0.0/20"),
    ("us-west4", "10.182.0.0/20"),
    ("asia-southeast2", "10.184.0.0/20"),
];

/// The zones of each region of [`AUTO_MODE_RANGES`], as `gcloud compute zones list` shows them: the letters after
/// `REGION-` (`us-central1` has `us-central1-a`, `-b`, `-c` and `-f`; there is no `us-central1-d`).
pub const REGION_ZONES: [(&str, &str); 24] = [
    ("us-central1", "abcf"),
    ("europe-west1", "bcd"),
    ("us-west1", "abc"),
    ("asia-east1", "abc"),
    ("us-east1", "bcd"),
    ("asia-northeast1", "abc"),
    ("asia-southeast1", "abc"),
    ("us-east4", "abc"),
    ("australia-southeast1", "abc"),
    ("europe-west2", "abc"),
    ("europe-west3", "abc"),
    ("southamerica-east1", "abc"),
    ("asia-south1", "abc"),
    ("northamerica-northeast1", "abc"),
    ("europe-west4", "abc"),
    ("europe-north1", "abc"),
    ("us-west2", "abc"),
    ("asia-east2", "abc"),
    ("europe-west6", "abc"),
    ("asia-northeast2", "abc"),
    ("asia-northeast3", "abc"),
    ("us-west3", "abc"),
    ("us-west4", "abc"),
    ("asia-southeast2", "abc"),
];

/// Whether `region` is spelled as Google's regions are: `us-central1`, `europe-west4` (lowercase words joined by
/// hyphens, ending in a digit). Any such region is accepted for subnets, as regions outside [`REGION_ZONES`] exist.
pub fn is_region_name(region: &str) -> bool {
    region.len() <= 40
        && region.split('-').count() >= 2
        && region.starts_with(|c: char| c.is_ascii_lowercase())
        && region.ends_with(|c: char| c.is_ascii_digit())
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// The zones of `region`: Google's list for a region of [`REGION_ZONES`], `REGION-a` … `REGION-f` for any other
/// well-formed region (Compute Engine's zone letters), none for a malformed one.
pub fn zones_of(region: &str) -> Vec<String> {
    if !is_region_name(region) {
        return Vec::new();
    }
    let letters = REGION_ZONES.iter().find(|(r, _)| *r == region).map_or("abcdef", |(_, z)| z);
    letters.chars().map(|c| format!("{region}-{c}")).collect()
}

/// The region of an existing zone (`us-central1-a` → `us-central1`), or Compute Engine's error for an unknown zone
/// (`Invalid value for field 'zone': 'us-central1-z'. Unknown zone.`) with the zones the region has.
pub fn zone_region(zone: &str) -> Result<&str, String> {
    let unknown = format!("Invalid value for field 'zone': '{zone}'. Unknown zone.");
    let Some((region, _)) = zone.rsplit_once('-') else {
        return Err(format!("{unknown} Use a zone such as us-central1-a"));
    };
    let zones = zones_of(region);
    if zones.iter().any(|z| z == zone) {
        Ok(region)
    } else if zones.is_empty() {
        Err(format!("{unknown} Use a zone such as us-central1-a"))
    } else {
        Err(format!("{unknown} The zones of region {region} are {}", zones.join(", ")))
    }
}

/// Whether traffic to `ip` goes through the VPC under `private-ranges-only`.
pub fn is_private(ip: Ipv4Addr) -> bool {
    PRIVATE_RANGES.iter().any(|(range, _)| net(range).contains(&ip))
}

fn net(s: &str) -> Ipv4Net {
    // INVARIANT: the constants above are valid CIDR blocks.
    s.parse().expect("INVARIANT: PRIVATE_RANGES are CIDR blocks")
}

/// A subnet's primary range: `A.B.C.D/N`, the network address itself (host bits zero), `/8`–`/29`, inside RFC 1918
/// or RFC 6598.
pub fn subnet_range(s: &str) -> Result<Ipv4Net, String> {
    let range = cidr(s)?;
    if !(8..=29).contains(&range.prefix_len()) {
        return Err(format!(
            "Invalid IPCidrRange: {s}: a subnetwork's prefix length must be between /8 and /29 (e.g. 10.0.0.0/24)"
        ));
    }
    let private = PRIVATE_RANGES[..4].iter().any(|(r, _)| net(r).contains(&range));
    if !private {
        return Err(format!(
            "Invalid IPCidrRange: {s}: Gatehouse simulates VPC subnets in private ranges only (10.0.0.0/8, \
             172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10)"
        ));
    }
    Ok(range)
}

/// A connector's range (`--range`), or the range of the subnet it uses: a /28 in a private range, as Serverless VPC
/// Access requires.
pub fn connector_range(s: &str) -> Result<Ipv4Net, String> {
    let range = subnet_range(s).map_err(|e| e.replace("a subnetwork's prefix length", "a connector's range"))?;
    if range.prefix_len() != 28 {
        return Err(format!("Invalid IP CIDR range: {s}: a connector needs a /28 range, e.g. 10.8.0.0/28"));
    }
    Ok(range)
}

/// `A.B.C.D/N` with host bits zero, written canonically: no leading zeros (`010.016.0.0/24` is refused, as Compute
/// Engine refuses it; some parsers read such octets as octal).
fn cidr(s: &str) -> Result<Ipv4Net, String> {
    let malformed = || format!("Invalid IPCidrRange: {s}: give an IPv4 range as ADDRESS/PREFIX, e.g. 10.0.0.0/24");
    let range: Ipv4Net = s.parse().map_err(|_| malformed())?;
    let (addr, prefix) = s.split_once('/').ok_or_else(malformed)?;
    let canonical = |n: &str| n == "0" || !n.starts_with('0');
    if !addr.split('.').all(canonical) || !canonical(prefix) {
        return Err(format!(
            "Invalid IPCidrRange: {s} is invalid range: an address or prefix has a leading zero; write it as {range}"
        ));
    }
    if range.addr() != range.network() {
        return Err(format!(
            "Invalid IPCidrRange: {s}: the address has bits set beyond the prefix; the range starts at {}",
            range.trunc()
        ));
    }
    Ok(range)
}

/// Whether two ranges share an address.
pub fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A Compute Engine resource name (networks, subnetworks, instances): RFC 1035, 1–63 characters.
pub fn check_name(what: &str, name: &str) -> Result<(), String> {
    if rfc1035(name, 1, 63) {
        Ok(())
    } else {
        Err(format!(
            "Invalid value for field 'resource.name': '{name}'. Must be a match of regex \
             '(?:[a-z](?:[-a-z0-9]{{0,61}}[a-z0-9])?)' (the {what} name: lowercase letters, digits and hyphens, \
             starting with a letter, at most 63 characters)"
        ))
    }
}

/// A connector id: `^[a-z][-a-z0-9]{0,23}[a-z0-9]$` (Serverless VPC Access).
pub fn check_connector_name(name: &str) -> Result<(), String> {
    if rfc1035(name, 2, 25) {
        Ok(())
    } else {
        Err(format!(
            "Connector ID '{name}' must match ^[a-z][-a-z0-9]{{0,23}}[a-z0-9]$: 2 to 25 lowercase letters, digits and \
             hyphens, starting with a letter"
        ))
    }
}

/// Lowercase letters, digits and hyphens, starting with a letter, not ending with a hyphen, `min..=max` long.
fn rfc1035(name: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&name.len())
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Compute Engine's base for self links.
pub const COMPUTE: &str = "https://www.googleapis.com/compute/v1/";

pub fn network_path(project: &str, name: &str) -> String {
    format!("projects/{project}/global/networks/{name}")
}

pub fn subnet_path(project: &str, region: &str, name: &str) -> String {
    format!("projects/{project}/regions/{region}/subnetworks/{name}")
}

pub fn connector_path(project: &str, location: &str, name: &str) -> String {
    format!("projects/{project}/locations/{location}/connectors/{name}")
}

/// The network a reference names, in any form Google accepts: `NAME`, `global/networks/NAME`,
/// `projects/P/global/networks/NAME`, or the self link. Returns `(project, name)`; the project is `project` when
/// the reference does not say.
pub fn network_ref(reference: &str, project: &str) -> Result<(String, String), String> {
    reference_of(reference, project, None).map(|(p, _, n)| (p, n))
}

/// The subnetwork a reference names: `NAME` (in `region`), `regions/R/subnetworks/NAME`,
/// `projects/P/regions/R/subnetworks/NAME`, or the self link. Returns `(project, region, name)`.
pub fn subnet_ref(reference: &str, project: &str, region: &str) -> Result<(String, String, String), String> {
    reference_of(reference, project, Some(region))
}

fn reference_of(reference: &str, project: &str, region: Option<&str>) -> Result<(String, String, String), String> {
    let bad = || {
        format!(
            "`{reference}` does not name a {}: give its name or projects/P/{}",
            if region.is_some() { "subnetwork" } else { "network" },
            if region.is_some() { "regions/R/subnetworks/NAME" } else { "global/networks/NAME" }
        )
    };
    let path = reference.strip_prefix(COMPUTE).unwrap_or(reference);
    let segs: Vec<&str> = path.split('/').collect();
    let (p, r, name) = match (segs.as_slice(), region) {
        ([name], Some(r)) => (project, r, *name),
        ([name], None) => (project, "", *name),
        (["global", "networks", name], None) => (project, "", *name),
        (["projects", p, "global", "networks", name], None) => (*p, "", *name),
        (["regions", r, "subnetworks", name], Some(_)) => (project, *r, *name),
        (["projects", p, "regions", r, "subnetworks", name], Some(_)) => (*p, *r, *name),
        _ => return Err(bad()),
    };
    check_name(if region.is_some() { "subnetwork" } else { "network" }, name)?;
    Ok((p.to_owned(), r.to_owned(), name.to_owned()))
}

/// `compute#network` (custom or auto subnet mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Network {
    pub kind: String,
    pub id: String,
    pub creation_timestamp: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub self_link: String,
    pub auto_create_subnetworks: bool,
    /// Self links of the network's subnetworks.
    #[serde(default)]
    pub subnetworks: Vec<String>,
    pub routing_config: serde_json::Value,
    pub mtu: u32,
}

/// `compute#subnetwork`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subnetwork {
    pub kind: String,
    pub id: String,
    pub creation_timestamp: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// The network's self link.
    pub network: String,
    pub ip_cidr_range: String,
    pub gateway_address: String,
    /// The region's self link.
    pub region: String,
    pub self_link: String,
    pub private_ip_google_access: bool,
    pub stack_type: String,
    pub purpose: String,
}

/// `google.cloud.vpcaccess.v1.Connector`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Connector {
    pub name: String,
    /// The network's name (set with `--network --range`, or the subnet's network).
    pub network: String,
    /// Set with `--network --range`; empty when the connector uses a subnet.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub ip_cidr_range: String,
    pub state: String,
    pub min_throughput: u32,
    pub max_throughput: u32,
    pub connected_projects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<ConnectorSubnet>,
    pub machine_type: String,
    pub min_instances: u32,
    pub max_instances: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorSubnet {
    pub name: String,
    /// The subnet's project; the connector's own when a request leaves it out (as Serverless VPC Access does).
    #[serde(default)]
    pub project_id: String,
}

/// Serverless VPC Access's limits on a connector's size: 2 ≤ min < max ≤ 10 instances; throughput is 100 Mbps per
/// instance. Defaults (as the API's): 2 and 10.
pub fn connector_scaling(min: Option<u32>, max: Option<u32>) -> Result<(u32, u32), String> {
    let (min, max) = (min.unwrap_or(2), max.unwrap_or(10));
    if !(2..=9).contains(&min) {
        return Err(format!("min_instances must be between 2 and 9 (got {min})"));
    }
    if !(3..=10).contains(&max) {
        return Err(format!("max_instances must be between 3 and 10 (got {max})"));
    }
    if min >= max {
        return Err(format!("max_instances ({max}) must be greater than min_instances ({min})"));
    }
    Ok((min, max))
}

/// The first usable address of a range: a subnet's gateway.
pub fn gateway_address(range: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()) + 1)
}

/// The address a connector's traffic comes from inside its VPC: the second usable one of its range.
pub fn connector_address(range: &Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(range.network()) + 2)
}

/// Whether `ip` can be a host's address in `range`: inside it, and not its network, gateway or broadcast address.
pub fn usable_host(range: &Ipv4Net, ip: Ipv4Addr) -> bool {
    range.contains(&ip) && ip != range.network() && ip != range.broadcast() && ip != gateway_address(range)
}

/// The addresses handed to hosts when none is asked for, in order: after the gateway and the connector address.
pub fn host_addresses(range: &Ipv4Net) -> impl Iterator<Item = Ipv4Addr> {
    range.hosts().skip(2)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zones_exist_only_in_their_regions() {
        assert_eq!(zone_region("us-central1-a"), Ok("us-central1"));
        assert_eq!(zone_region("us-central1-f"), Ok("us-central1"));
        assert_eq!(zone_region("europe-west1-b"), Ok("europe-west1"));
        assert_eq!(zone_region("me-central2-c"), Ok("me-central2"), "a region outside the table: letters a-f");
        let e = zone_region("us-central1-z").unwrap_err();
        assert!(e.starts_with("Invalid value for field 'zone': 'us-central1-z'. Unknown zone."), "{e}");
        assert!(e.contains("us-central1-a, us-central1-b, us-central1-c, us-central1-f"), "{e}");
        for bad in
            ["us-central1-d", "europe-west1-a", "me-central2-g", "us-central1", "central", "us-central1-", "x-1-AB"]
        {
            assert!(zone_region(bad).is_err(), "{bad}");
        }
        assert!(zone_region("central").unwrap_err().contains("Use a zone such as us-central1-a"));
        for (region, _) in AUTO_MODE_RANGES {
            assert!(REGION_ZONES.iter().any(|(r, _)| *r == region), "{region} has its zones listed");
        }
    }

    #[test]
    fn host_addresses_leave_out_the_gateway_and_the_connector_address() {
        let range: Ipv4Net = "10.8.0.0/29".parse().unwrap();
        assert_eq!(gateway_address(&range), Ipv4Addr::new(10, 8, 0, 1));
        assert_eq!(connector_address(&range), Ipv4Addr::new(10, 8, 0, 2));
        let hosts: Vec<Ipv4Addr> = host_addresses(&range).collect();
        assert_eq!(hosts, (3..=6).map(|d| Ipv4Addr::new(10, 8, 0, d)).collect::<Vec<_>>());
        for (d, usable) in [(0, false), (1, false), (2, true), (6, true), (7, false)] {
            assert_eq!(usable_host(&range, Ipv4Addr::new(10, 8, 0, d)), usable, "10.8.0.{d}");
        }
        assert!(!usable_host(&range, Ipv4Addr::new(10, 9, 0, 3)));
    }

    #[test]
    fn private_ranges() {
        for ip in ["10.1.2.3", "172.31.255.255", "192.168.0.1", "100.64.0.1", "199.36.153.9", "199.36.153.5"] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "172.32.0.1", "203.0.113.7", "169.254.169.254", "100.128.0.1", "127.0.0.1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn subnet_ranges() {
        assert_eq!(subnet_range("10.0.0.0/24").unwrap().to_string(), "10.0.0.0/24");
        assert_eq!(subnet_range("100.64.8.0/29").unwrap().prefix_len(), 29);
        for (bad, why) in [
            ("10.0.0.1/24", "starts at 10.0.0.0/24"),
            ("10.0.0.0", "ADDRESS/PREFIX"),
            ("10.0.0.0/30", "between /8 and /29"),
            ("8.8.8.0/24", "private ranges only"),
            ("172.15.0.0/16", "private ranges only"),
            ("10.0.0.0/7", "between /8 and /29"),
            ("fd00::/64", "ADDRESS/PREFIX"),
            ("010.016.0.0/24", "is invalid range"),
            ("10.8.00.0/24", "leading zero"),
        ] {
            let e = subnet_range(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
        assert_eq!(subnet_range("10.0.0.0/8").unwrap().to_string(), "10.0.0.0/8");
        assert!(connector_range("10.8.0.0/28").is_ok());
        assert!(connector_range("010.8.0.0/28").unwrap_err().contains("leading zero"));
        assert!(connector_range("10.8.0.0/24").unwrap_err().contains("/28"));
        assert!(connector_range("10.8.0.0/30").unwrap_err().contains("connector's range"));
    }

    #[test]
    fn names() {
        for ok in ["a", "my-vpc", "db-1", &"a".repeat(63)] {
            assert!(check_name("network", ok).is_ok(), "{ok}");
        }
        for bad in ["", "My-vpc", "1vpc", "vpc-", "my_vpc", &"a".repeat(64)] {
            assert!(check_name("network", bad).is_err(), "{bad}");
        }
        assert!(check_connector_name("my-connector").is_ok());
        for bad in ["a", "my-connector-that-is-too-long", "-a", "a-", "A1"] {
            assert!(check_connector_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn references() {
        let want = Ok(("p".to_owned(), "n".to_owned()));
        assert_eq!(network_ref("n", "p"), want);
        assert_eq!(network_ref("global/networks/n", "p"), want);
        assert_eq!(network_ref("projects/p/global/networks/n", "x"), want);
        assert_eq!(network_ref("https://www.googleapis.com/compute/v1/projects/p/global/networks/n", "x"), want);
        assert!(network_ref("projects/p/networks/n", "p").is_err());
        assert!(network_ref("N", "p").is_err());
        let want = Ok(("p".to_owned(), "r".to_owned(), "s".to_owned()));
        assert_eq!(subnet_ref("s", "p", "r"), want);
        assert_eq!(subnet_ref("projects/p/regions/r/subnetworks/s", "x", "y"), want);
        assert_eq!(
            subnet_ref("https://www.googleapis.com/compute/v1/projects/p/regions/r/subnetworks/s", "x", "y"),
            want
        );
    }

    #[test]
    fn scaling() {
        assert_eq!(connector_scaling(None, None), Ok((2, 10)));
        assert_eq!(connector_scaling(Some(2), Some(10)), Ok((2, 10)));
        assert!(connector_scaling(Some(1), None).is_err());
        assert!(connector_scaling(Some(5), Some(5)).is_err());
        assert!(connector_scaling(None, Some(11)).is_err());
    }

    proptest! {
        /// Overlap is symmetric and agrees with a brute-force check on small ranges.
        #[test]
        fn overlap_is_exact(a in 0u32..4096, pa in 20u8..=29, b in 0u32..4096, pb in 20u8..=29) {
            let x = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (a << 3)), pa).unwrap().trunc();
            let y = Ipv4Net::new(Ipv4Addr::from(0x0a00_0000 | (b << 3)), pb).unwrap().trunc();
            let brute = x.hosts().chain([x.network(), x.broadcast()]).any(|ip| y.contains(&ip));
            prop_assert_eq!(overlaps(&x, &y), brute);
            prop_assert_eq!(overlaps(&x, &y), overlaps(&y, &x));
        }
    }
}
