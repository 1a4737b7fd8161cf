//! Ingress (PROTOCOL.md §4): a service's setting, where a request comes from, and which requests reach the service.
//! One model for the gateway, which enforces it, and the troubleshooter, which explains it, so the two cannot
//! disagree.

use serde::Serialize;

/// A service's ingress setting (`IngressTraffic`, PROTOCOL.md §4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Ingress {
    #[default]
    All,
    Internal,
    InternalAndCloudLoadBalancing,
    /// `INGRESS_TRAFFIC_NONE`: no traffic at all.
    None,
}

impl Ingress {
    /// Whether requests from `source` reach the service (PROTOCOL.md §4.2).
    pub fn admits(self, source: Source) -> bool {
        match self {
            Ingress::All => true,
            Ingress::Internal => source == Source::Internal,
            Ingress::InternalAndCloudLoadBalancing => source != Source::External,
            Ingress::None => false,
        }
    }

    /// gcloud's `--ingress` spelling, as the v1 annotation `run.googleapis.com/ingress` holds it.
    pub fn flag(self) -> &'static str {
        match self {
            Ingress::All => "all",
            Ingress::Internal => "internal",
            Ingress::InternalAndCloudLoadBalancing => "internal-and-cloud-load-balancing",
            Ingress::None => "none",
        }
    }

    /// `internal` or `internal-and-cloud-load-balancing`.
    pub fn is_internal(self) -> bool {
        matches!(self, Ingress::Internal | Ingress::InternalAndCloudLoadBalancing)
    }
}

/// Where a request comes from, as ingress sees it. Serialized (and parsed, [`Source::parse`]) as the troubleshooter's
/// `--source` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Source {
    /// The internet and the host shell; instances whose egress does not go through the VPC.
    #[serde(rename = "internet")]
    External,
    /// The external Application Load Balancer.
    #[serde(rename = "load-balancer")]
    LoadBalancer,
    /// VPC hosts, and instances whose egress goes through the VPC with `all-traffic`.
    #[serde(rename = "vpc")]
    Internal,
}

impl Source {
    /// `internet`, `load-balancer` or `vpc`.
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "internet" => Some(Source::External),
            "load-balancer" => Some(Source::LoadBalancer),
            "vpc" => Some(Source::Internal),
            _ => None,
        }
    }

    /// How denials and the troubleshooter name it.
    pub fn words(self) -> &'static str {
        match self {
            Source::External => "the internet (or a caller whose egress does not go through the VPC)",
            Source::LoadBalancer => "an external Application Load Balancer",
            Source::Internal => "a VPC network of the project",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ingress_admits_as_cloud_run_documents() {
        use Source::*;
        let table = [
            (Ingress::All, [true, true, true]),
            (Ingress::Internal, [false, false, true]),
            (Ingress::InternalAndCloudLoadBalancing, [false, true, true]),
            (Ingress::None, [false, false, false]),
        ];
        for (ingress, want) in table {
            let got = [External, LoadBalancer, Internal].map(|s| ingress.admits(s));
            assert_eq!(got, want, "{ingress:?}");
        }
        for s in [External, LoadBalancer, Internal] {
            let flag = serde_json::to_value(s).unwrap();
            assert_eq!(Source::parse(flag.as_str().unwrap()), Some(s), "the serialized name parses back");
        }
        assert_eq!(Source::parse("external"), None);
    }
}
