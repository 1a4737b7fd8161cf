//! The simulated networks behind the sandboxes: a simulated internet, one router per VPC network, and the links
//! that give each instance (and each VPC host) the egress its revision asks for (PROTOCOL.md §5).
//!
//! ```text
//!  instance ns ── eth0 192.0.2.K ───────────────── internet ns (echo host 203.0.113.10)
//!      │  (direct egress; absent with all-traffic)        │ uplink: the VPC's NAT addresses 198.51.100.N
//!      └── vpc0 169.254.L.M (connector) ── VPC router ns ─┘  (SNAT: a connector's traffic leaves from its NAT
//!          or a subnet address (Direct VPC)    │               address; inside the VPC it comes from the
//!                                              └── VPC hosts (compute instances) at their subnet addresses
//! ```
//!
//! Every namespace here is unnamed ([`Netns`]): the fabric lives exactly as long as the daemon's descriptors and
//! the processes inside, so a crash leaves nothing on the host. The host namespace gets no route and no address: the
//! simulated ranges (documentation ranges for the internet, RFC 1918 for VPCs) exist only inside.
//!
//! Without VPC access, private destinations are `unreachable` routes: connections fail at once (ENETUNREACH).

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd as _;
use std::sync::{Arc, Mutex};

use ipnet::Ipv4Net;

use crate::netns::Netns;

/// The simulated internet host that answers with the caller's address (`internet_echo` in `daemon.json`).
pub const ECHO_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);
/// The internet's side of every instance link.
const INET_GATEWAY: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
/// The internet's side of every VPC router's uplink.
const UPLINK_PEER: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 254);
/// The router's side of every instance link into a VPC through a connector.
const VPC_LINK_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 0, 1);

/// How an instance's traffic leaves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EgressPlan {
    pub vpc: Option<VpcPlan>,
    /// `all-traffic`: everything through the VPC; else only private ranges (PRIVATE_RANGES) go there.
    pub all_traffic: bool,
    /// A VPC host, which anything that reaches its subnet may connect to. A Cloud Run instance is reached only
    /// through the platform (the gateway dials it on `lo` inside its namespace): its links refuse new inbound
    /// connections, so no instance, VPC host or router can go around ingress and IAM to another instance's port.
    pub accepts_connections: bool,
}

/// The instance namespace's filter for a Cloud Run instance (see [`EgressPlan::accepts_connections`]): `lo` and the
/// replies to its own connections only; anything else new is refused at once (TCP reset, ICMP otherwise).
const INSTANCE_INPUT_FILTER: &str = "table inet gatehouse {\n chain input {\n  type filter hook input priority filter; policy accept;\n  iifname \"lo\" accept\n  ct state established,related accept\n  reject\n }\n}\n";

/// Where an instance enters a VPC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VpcPlan {
    /// The network's name.
    pub network: String,
    pub via: Via,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    /// A Serverless VPC Access connector (its full name) and its range: inside the VPC its traffic comes from an
    /// address of that range.
    Connector { name: String, range: Ipv4Net },
    /// Direct VPC egress on a subnet (its name) and its range: the instance has an address of its own there —
    /// `address` when given (a VPC host's), else the next free one.
    Subnet { name: String, range: Ipv4Net, address: Option<Ipv4Addr> },
}

impl Via {
    fn key(&self) -> String {
        match self {
            // With the range: a connector or subnet deleted and made again with another range gets new rules.
            Via::Connector { name, range } => format!("connector {name} {range}"),
            Via::Subnet { name, range, .. } => format!("subnet {name} {range}"),
        }
    }
}

/// The simulated internet and the VPC routers of one daemon.
pub struct Fabric {
    internet: Arc<Netns>,
    state: Mutex<State>,
    /// Held while a router is made, so that two first uses of a network at once make one (`state` is not held
    /// across the `ip`/`nft` runs).
    making_router: Mutex<()>,
}

#[derive(Default)]
struct State {
    /// 192.0.2.K of instances with direct egress.
    public: BTreeSet<u8>,
    /// 169.254.L.M of instance links into a VPC.
    links: BTreeSet<u16>,
    /// Names of interfaces: unique for the daemon's life, so a link being torn down never clashes with a new one.
    next_iface: u64,
    vpcs: HashMap<String, Arc<Router>>,
    /// NAT addresses (198.51.100.N) by group (connector or subnet), fixed for the daemon's life.
    nat: HashMap<String, u8>,
}

/// One VPC network's router.
struct Router {
    ns: Arc<Netns>,
    /// The internet's end of the router's uplink (NAT addresses are routed to it).
    uplink: String,
    /// Groups whose rules are in place: key → interface prefix.
    groups: Mutex<HashMap<String, String>>,
    /// Subnet addresses in use (VPC hosts, Direct VPC instances).
    used: Mutex<BTreeSet<Ipv4Addr>>,
}

/// Addresses held by one attached namespace; given back when dropped (the links go with the namespace).
pub struct Attachment {
    fabric: Arc<Fabric>,
    public: Option<u8>,
    link: Option<u16>,
    subnet: Option<(Arc<Router>, Ipv4Addr)>,
}

impl Drop for Attachment {
    fn drop(&mut self) {
        let mut state = self.fabric.lock();
        if let Some(k) = self.public {
            state.public.remove(&k);
        }
        if let Some(l) = self.link {
            state.links.remove(&l);
        }
        if let Some((router, ip)) = &self.subnet {
            router.used.lock().unwrap_or_else(|e| e.into_inner()).remove(ip);
        }
    }
}

impl Fabric {
    /// Creates the simulated internet (with the echo host's address; the daemon serves it).
    pub fn new() -> io::Result<Arc<Fabric>> {
        let internet = Arc::new(Netns::create()?);
        // Anything that is not a simulated host is unreachable at once (ICMP), never routed further.
        internet.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?;
        internet.ip(&format!("address add {ECHO_IP}/32 dev lo\nroute add unreachable default\n"))?;
        Ok(Arc::new(Fabric { internet, state: Mutex::new(State::default()), making_router: Mutex::new(()) }))
    }

    /// The simulated internet's namespace (to serve the echo host in).
    pub fn internet(&self) -> &Arc<Netns> {
        &self.internet
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn iface(&self, prefix: &str) -> String {
        let mut state = self.lock();
        state.next_iface += 1;
        format!("{prefix}{}", state.next_iface)
    }

    /// Links `ns` (an instance's namespace) as `plan` says. Err: why the instance cannot get its network.
    pub fn attach(self: &Arc<Fabric>, ns: &Netns, plan: &EgressPlan) -> io::Result<Attachment> {
        let mut attachment = Attachment { fabric: self.clone(), public: None, link: None, subnet: None };
        let mut routes = String::new();
        if !plan.all_traffic || plan.vpc.is_none() {
            let k = take(&mut self.lock().public, 2..=253, "instances with direct egress")?;
            attachment.public = Some(k);
            let me = Ipv4Addr::new(192, 0, 2, k);
            let peer = self.iface("p");
            ns.ip(&format!(
                "link add eth0 type veth peer name {peer} netns {inet}\n\
                 address add {me}/32 dev eth0\nlink set eth0 up\nroute add {INET_GATEWAY}/32 dev eth0\n",
                inet = path(&self.internet)
            ))?;
            self.internet.ip(&format!(
                "address add {INET_GATEWAY}/32 dev {peer}\nlink set {peer} up\nroute replace {me}/32 dev {peer}\n"
            ))?;
            routes.push_str(&format!("route add default via {INET_GATEWAY} dev eth0\n"));
        }
        match &plan.vpc {
            None => {
                // RFC 1918 and RFC 6598 (not the Google VIPs, which are public addresses).
                let private = crate::PRIVATE_RANGES.iter().filter(|(_, from)| from.starts_with("RFC"));
                for (range, _) in private {
                    routes.push_str(&format!("route add unreachable {range}\n"));
                }
            }
            Some(vpc) => {
                let router = self.router(&vpc.network)?;
                let prefix = self.group(&router, &vpc.via)?;
                let peer = self.iface(&prefix);
                let (me, gateway) = match &vpc.via {
                    Via::Connector { .. } => {
                        let l = take(&mut self.lock().links, 0..=39_999, "instances behind connectors")?;
                        attachment.link = Some(l);
                        (Ipv4Addr::new(169, 254, 1 + (l / 250) as u8, 1 + (l % 250) as u8), VPC_LINK_GATEWAY)
                    }
                    Via::Subnet { range, address, .. } => {
                        let ip = claim(&router, range, *address)?;
                        attachment.subnet = Some((router.clone(), ip));
                        (ip, crate::gateway_address(range))
                    }
                };
                ns.ip(&format!(
                    "link add vpc0 type veth peer name {peer} netns {r}\naddress add {me}/32 dev vpc0\n\
                     link set vpc0 up\nroute add {gateway}/32 dev vpc0\n",
                    r = path(&router.ns)
                ))?;
                router.ns.ip(&format!(
                    "address add {gateway}/32 dev {peer}\nlink set {peer} up\nroute replace {me}/32 dev {peer}\n"
                ))?;
                if plan.all_traffic {
                    routes.push_str(&format!("route add default via {gateway} dev vpc0\n"));
                } else {
                    for (range, _) in crate::PRIVATE_RANGES {
                        routes.push_str(&format!("route add {range} via {gateway} dev vpc0\n"));
                    }
                }
            }
        }
        ns.ip(&routes)?;
        if !plan.accepts_connections {
            ns.command("nft", &["-f", "-"], INSTANCE_INPUT_FILTER)?;
        }
        Ok(attachment)
    }

    /// The router of `network`, made on first use: forwarding on, an uplink to the internet, a NAT table.
    fn router(&self, network: &str) -> io::Result<Arc<Router>> {
        if let Some(r) = self.lock().vpcs.get(network) {
            return Ok(r.clone());
        }
        let _making = self.making_router.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = self.lock().vpcs.get(network) {
            return Ok(r.clone());
        }
        let ns = Arc::new(Netns::create()?);
        let peer = self.iface("u");
        ns.run(|| std::fs::write("/proc/sys/net/ipv4/ip_forward", "1"))?;
        ns.ip(&format!(
            "link add up0 type veth peer name {peer} netns {inet}\nlink set up0 up\n\
             route add {UPLINK_PEER}/32 dev up0\nroute add default via {UPLINK_PEER} dev up0\n",
            inet = path(&self.internet)
        ))?;
        self.internet.ip(&format!("address add {UPLINK_PEER}/32 dev {peer}\nlink set {peer} up\n"))?;
        ns.command(
            "nft",
            &["-f", "-"],
            "table ip gatehouse {\n chain postrouting {\n  type nat hook postrouting priority srcnat;\n }\n}\n",
        )?;
        let router = Arc::new(Router {
            ns,
            uplink: peer,
            groups: Mutex::new(HashMap::new()),
            used: Mutex::new(BTreeSet::new()),
        });
        self.lock().vpcs.insert(network.to_string(), router.clone());
        Ok(router)
    }

    /// Puts the NAT rules of a connector or a subnet in place (once); returns the prefix of its links' names.
    fn group(&self, router: &Router, via: &Via) -> io::Result<String> {
        let key = via.key();
        let mut groups = router.groups.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(prefix) = groups.get(&key) {
            return Ok(prefix.clone());
        }
        let nat = {
            let mut state = self.lock();
            let taken: BTreeSet<u8> = state.nat.values().copied().collect();
            let n = match state.nat.get(&key) {
                Some(n) => *n,
                None => {
                    let n = (1..=253u8).find(|n| !taken.contains(n)).ok_or_else(|| exhausted("NAT addresses"))?;
                    state.nat.insert(key.clone(), n);
                    n
                }
            };
            Ipv4Addr::new(198, 51, 100, n)
        };
        let prefix = format!("g{}x", groups.len());
        router.ns.ip(&format!("address add {nat}/32 dev up0\n"))?;
        self.internet.ip(&format!("route replace {nat}/32 dev {}\n", router.uplink))?;
        let mut rules =
            format!("add rule ip gatehouse postrouting iifname \"{prefix}*\" oifname \"up0\" snat to {nat}\n");
        if let Via::Connector { range, .. } = via {
            // Inside the VPC a connector's traffic comes from its own range.
            let inside = crate::connector_address(range);
            rules.push_str(&format!(
                "add rule ip gatehouse postrouting iifname \"{prefix}*\" oifname != \"up0\" snat to {inside}\n"
            ));
        }
        router.ns.command("nft", &["-f", "-"], &rules)?;
        groups.insert(key, prefix.clone());
        Ok(prefix)
    }
}

/// `/proc/PID/fd/N` of a namespace the daemon holds: how `ip … netns` names it.
fn path(ns: &Netns) -> String {
    use std::os::fd::AsFd as _;
    format!("/proc/{}/fd/{}", std::process::id(), ns.as_fd().as_raw_fd())
}

/// `want` (a VPC host's stored address), or else the highest free address of `range`: the Compute API hands VPC
/// hosts the lowest free ones, so Direct VPC instances, which take theirs from here, stay out of their way.
fn claim(router: &Router, range: &Ipv4Net, want: Option<Ipv4Addr>) -> io::Result<Ipv4Addr> {
    claim_in(&mut router.used.lock().unwrap_or_else(|e| e.into_inner()), range, want)
}

fn claim_in(used: &mut BTreeSet<Ipv4Addr>, range: &Ipv4Net, want: Option<Ipv4Addr>) -> io::Result<Ipv4Addr> {
    let ip = match want {
        Some(ip) => {
            if !crate::usable_host(range, ip) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{ip} is not a usable address of {range} (not the network, gateway or broadcast address)"),
                ));
            }
            if used.contains(&ip) {
                return Err(io::Error::new(io::ErrorKind::AddrInUse, format!("{ip} is already in use in {range}")));
            }
            ip
        }
        None => crate::host_addresses(range)
            .filter(|ip| !used.contains(ip))
            .last()
            .ok_or_else(|| exhausted(&format!("addresses in {range}")))?,
    };
    used.insert(ip);
    Ok(ip)
}

fn take<T: Copy + Ord>(set: &mut BTreeSet<T>, range: std::ops::RangeInclusive<T>, what: &str) -> io::Result<T>
where
    std::ops::RangeInclusive<T>: Iterator<Item = T>,
{
    let free = range.into_iter().find(|v| !set.contains(v)).ok_or_else(|| exhausted(what))?;
    set.insert(free);
    Ok(free)
}

fn exhausted(what: &str) -> io::Error {
    io::Error::other(format!("no free {what} left in the simulated network"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_addresses_skip_the_gateway_and_the_connector_address_and_come_from_the_top() {
        let range: Ipv4Net = "10.8.0.0/29".parse().unwrap();
        let mut used = BTreeSet::new();
        assert_eq!(claim_in(&mut used, &range, None).unwrap(), Ipv4Addr::new(10, 8, 0, 6), "from the top");
        assert_eq!(claim_in(&mut used, &range, Some(Ipv4Addr::new(10, 8, 0, 5))).unwrap(), Ipv4Addr::new(10, 8, 0, 5));
        let taken = claim_in(&mut used, &range, Some(Ipv4Addr::new(10, 8, 0, 5))).unwrap_err();
        assert!(taken.to_string().contains("already in use"), "{taken}");
        for bad in [
            Ipv4Addr::new(10, 8, 0, 0),
            Ipv4Addr::new(10, 8, 0, 1),
            Ipv4Addr::new(10, 8, 0, 7),
            Ipv4Addr::new(10, 9, 0, 2),
        ] {
            let e = claim_in(&mut used, &range, Some(bad)).unwrap_err();
            assert!(e.to_string().contains("not a usable address"), "{bad}: {e}");
        }
        assert_eq!(claim_in(&mut used, &range, None).unwrap(), Ipv4Addr::new(10, 8, 0, 4));
        assert_eq!(claim_in(&mut used, &range, None).unwrap(), Ipv4Addr::new(10, 8, 0, 3));
        assert!(claim_in(&mut used, &range, None).unwrap_err().to_string().contains("no free addresses"));
    }

    #[test]
    fn pools_hand_out_the_lowest_free_value() {
        let mut set = BTreeSet::new();
        assert_eq!(take(&mut set, 2..=3u8, "x").unwrap(), 2);
        assert_eq!(take(&mut set, 2..=3u8, "x").unwrap(), 3);
        assert!(take(&mut set, 2..=3u8, "x").is_err());
        set.remove(&2);
        assert_eq!(take(&mut set, 2..=3u8, "x").unwrap(), 2);
    }
}
