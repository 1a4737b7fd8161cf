//! The VPC model through the real binary: Google's documented `compute networks …` and `vpc-access connectors …`
//! commands, range and name rules, resources in use, IAM on the new APIs, and `run deploy` / `services update` with
//! `--vpc-connector`, `--vpc-egress`, Direct VPC egress and their v1 annotations.

mod common;

use common::{http, Platform};
use serde_json::{json, Value};

const REGION: &str = "--region=us-central1";
const HELLO: &str = "--image=us-docker.pkg.dev/cloudrun/container/hello";

fn vpc(p: &Platform) {
    p.ok(&["compute", "networks", "create", "my-vpc", "--subnet-mode=custom"]);
    p.ok(&["compute", "networks", "subnets", "create", "my-subnet", "--network=my-vpc", "--range=10.8.0.0/28", REGION]);
}

#[test]
fn google_s_documented_commands_build_a_vpc_with_a_connector() {
    let p = Platform::start();
    let r = p.run(&["compute", "networks", "create", "my-vpc", "--subnet-mode=custom"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("Created [https://www.googleapis.com/compute/v1/projects/local-project/global/networks/my-vpc]."),
        "{}",
        r.stderr
    );
    assert!(r.stdout.contains("my-vpc  CUSTOM"), "{}", r.stdout);
    p.ok(&["compute", "networks", "subnets", "create", "my-subnet", "--network=my-vpc", "--range=10.8.0.0/28", REGION]);
    // As in Google's "Create a Serverless VPC Access connector" page.
    let r = p.run(&[
        "compute",
        "networks",
        "vpc-access",
        "connectors",
        "create",
        "my-connector",
        "--region=us-central1",
        "--subnet=my-subnet",
        "--subnet-project=local-project",
        "--min-instances=2",
        "--max-instances=10",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("Created connector [my-connector]."), "{}", r.stderr);
    let c = p.json(&["compute", "networks", "vpc-access", "connectors", "describe", "my-connector", REGION]);
    assert_eq!(c["name"], "projects/local-project/locations/us-central1/connectors/my-connector");
    assert_eq!(c["network"], "my-vpc");
    assert_eq!(c["state"], "READY");
    assert_eq!(c["subnet"], json!({ "name": "my-subnet", "projectId": "local-project" }));
    assert_eq!((c["minInstances"].as_u64(), c["maxInstances"].as_u64()), (Some(2), Some(10)));
    assert_eq!((c["minThroughput"].as_u64(), c["maxThroughput"].as_u64()), (Some(200), Some(1000)));
    // The other form: a network and an unused /28.
    p.ok(&[
        "compute",
        "networks",
        "vpc-access",
        "connectors",
        "create",
        "range-connector",
        REGION,
        "--network=my-vpc",
        "--range=10.9.0.0/28",
    ]);
    let list = p.ok(&["compute", "networks", "vpc-access", "connectors", "list", REGION]);
    assert!(list.contains("my-connector") && list.contains("range-connector"), "{list}");
    assert!(list.contains("10.9.0.0/28"), "{list}");

    let subnets = p.json(&["compute", "networks", "subnets", "list", "--network=my-vpc"]);
    assert_eq!(subnets.as_array().unwrap().len(), 1);
    assert_eq!(subnets[0]["ipCidrRange"], "10.8.0.0/28");
    assert_eq!(subnets[0]["gatewayAddress"], "10.8.0.1");
    let net = p.json(&["compute", "networks", "describe", "my-vpc"]);
    assert_eq!(net["autoCreateSubnetworks"], false);
    assert_eq!(
        net["subnetworks"],
        json!([
            "https://www.googleapis.com/compute/v1/projects/local-project/regions/us-central1/subnetworks/my-subnet"
        ])
    );

    // Resources in use cannot go; in order, they can.
    let e = p.fail(&["compute", "networks", "delete", "my-vpc"]);
    assert!(e.contains("is already being used by"), "{e}");
    let e = p.fail(&["compute", "networks", "subnets", "delete", "my-subnet", REGION]);
    assert!(e.contains("connectors/my-connector"), "{e}");
    for c in ["my-connector", "range-connector"] {
        p.ok(&["compute", "networks", "vpc-access", "connectors", "delete", c, REGION, "--quiet"]);
    }
    p.ok(&["compute", "networks", "subnets", "delete", "my-subnet", REGION, "--quiet"]);
    p.ok(&["compute", "networks", "delete", "my-vpc", "--quiet"]);
    let left: Vec<Value> =
        p.json(&["compute", "networks", "list"]).as_array().unwrap().iter().map(|n| n["name"].clone()).collect();
    assert_eq!(left, ["default"], "only the project's default network is left");

    // Every change is in the audit log.
    let log = p.json(&["logging", "read", "protoPayload.serviceName=\"vpcaccess.googleapis.com\""]);
    let methods: Vec<&str> =
        log.as_array().unwrap().iter().filter_map(|e| e["protoPayload"]["methodName"].as_str()).collect();
    assert_eq!(methods.iter().filter(|m| m.ends_with("CreateConnector")).count(), 2, "{methods:?}");
    assert_eq!(methods.iter().filter(|m| m.ends_with("DeleteConnector")).count(), 2, "{methods:?}");
}

#[test]
fn ranges_names_and_sizes_are_checked() {
    let p = Platform::start();
    vpc(&p);
    let subnet = |name: &str, range: &str| {
        p.run(&[
            "compute",
            "networks",
            "subnets",
            "create",
            name,
            "--network=my-vpc",
            &format!("--range={range}"),
            REGION,
        ])
    };
    for (range, why) in [
        ("10.8.0.0/24", "conflicts with existing subnetwork 'my-subnet'"),
        ("10.20.0.1/24", "the range starts at 10.20.0.0/24"),
        ("8.8.8.0/24", "private ranges only"),
        ("10.20.0.0/30", "between /8 and /29"),
        ("banana", "ADDRESS/PREFIX"),
    ] {
        let r = subnet("other", range);
        assert_ne!(r.code, 0, "{range}");
        assert!(r.stderr.contains(why), "{range}: {}", r.stderr);
    }
    let r = subnet("Bad_Name", "10.30.0.0/24");
    assert!(r.stderr.contains("Must be a match of regex"), "{}", r.stderr);
    let e =
        p.fail(&["compute", "networks", "subnets", "create", "x", "--network=nope", "--range=10.30.0.0/24", REGION]);
    assert!(e.contains("The resource 'projects/local-project/global/networks/nope' was not found"), "{e}");
    let e = p.fail(&["compute", "networks", "create", "my-vpc", "--subnet-mode=custom"]);
    assert!(e.contains("already exists"), "{e}");
    let e = p.fail(&["compute", "networks", "create", "legacy-vpc", "--subnet-mode=legacy"]);
    assert!(e.contains("legacy networks are not supported"), "{e}");

    let connector = |extra: &[&str]| {
        let mut args = vec!["compute", "networks", "vpc-access", "connectors", "create", "c1", REGION];
        args.extend_from_slice(extra);
        p.run(&args)
    };
    for (extra, why) in [
        (&["--network=my-vpc", "--range=10.8.0.0/28"][..], "overlaps with subnetwork 'my-subnet'"),
        (&["--network=my-vpc", "--range=10.9.0.0/24"][..], "needs a /28"),
        (&["--subnet=my-subnet", "--min-instances=1"][..], "min_instances must be between 2 and 9"),
        (&["--subnet=my-subnet", "--min-instances=5", "--max-instances=5"][..], "must be greater than"),
        (&["--subnet=my-subnet", "--subnet-project=other-project"][..], "Shared VPC"),
        (&["--subnet=nope"][..], "The subnet 'nope' was not found"),
        (&[][..], "needs --subnet"),
    ] {
        let r = connector(extra);
        assert_ne!(r.code, 0, "{extra:?}");
        assert!(r.stderr.contains(why), "{extra:?}: {}", r.stderr);
    }
    let e = p.fail(&["compute", "networks", "vpc-access", "connectors", "create", "Bad", REGION, "--subnet=my-subnet"]);
    assert!(e.contains("must match ^[a-z][-a-z0-9]{0,23}[a-z0-9]$"), "{e}");
    assert_eq!(
        p.json(&["compute", "networks", "vpc-access", "connectors", "list", REGION]),
        json!([]),
        "nothing half-made"
    );
}

#[test]
fn the_apis_check_iam() {
    let p = Platform::start();
    p.ok(&["iam", "service-accounts", "create", "net-dev"]);
    let sa = "net-dev@local-project.iam.gserviceaccount.com";
    p.let_owner_impersonate(sa);
    let as_dev = |args: &[&str]| {
        let mut all = args.to_vec();
        let flag = format!("--impersonate-service-account={sa}");
        all.push(&flag);
        p.run(&all)
    };
    let r = as_dev(&["compute", "networks", "create", "dev-vpc", "--subnet-mode=custom"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("compute.networks.create"), "{}", r.stderr);
    let member = format!("--member=serviceAccount:{sa}");
    p.ok(&["projects", "add-iam-policy-binding", "local-project", &member, "--role=roles/compute.networkAdmin"]);
    let r = as_dev(&["compute", "networks", "create", "dev-vpc", "--subnet-mode=custom"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = as_dev(&["compute", "networks", "vpc-access", "connectors", "list", REGION]);
    assert!(r.stderr.contains("vpcaccess.connectors.list"), "network admin is not a VPC Access viewer: {}", r.stderr);

    // The REST surface answers Compute's shapes to any client.
    let resp = http()
        .get(format!("{}/compute/v1/projects/local-project/global/networks/dev-vpc", p.api))
        .bearer_auth(p.token())
        .send()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let net: Value = resp.json().unwrap();
    assert_eq!(net["kind"], "compute#network");
    assert_eq!(net["selfLink"], "https://www.googleapis.com/compute/v1/projects/local-project/global/networks/dev-vpc");
    let resp = http()
        .post(format!("{}/compute/v1/projects/local-project/global/networks", p.api))
        .bearer_auth(p.token())
        .json(&json!({ "name": "x", "autoCreateSubnetworks": false, "bogus": 1 }))
        .send()
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().unwrap().contains("Unknown name \\\"bogus\\\""));
}

#[test]
fn services_reach_a_vpc_through_a_connector_or_direct_vpc_egress() {
    let p = Platform::start();
    vpc(&p);
    p.ok(&["compute", "networks", "subnets", "create", "direct", "--network=my-vpc", "--range=10.10.0.0/24", REGION]);
    p.ok(&["compute", "networks", "vpc-access", "connectors", "create", "my-connector", REGION, "--subnet=my-subnet"]);

    // As in Google's docs: deploy with a connector and private-ranges-only egress.
    p.ok(&[
        "run",
        "deploy",
        "my-api",
        HELLO,
        REGION,
        "--vpc-connector=my-connector",
        "--vpc-egress=private-ranges-only",
    ]);
    let export = p.ok(&["run", "services", "describe", "my-api", REGION, "--format=export"]);
    assert!(
        export.contains(
            "run.googleapis.com/vpc-access-connector: projects/local-project/locations/us-central1/connectors/my-connector"
        ),
        "{export}"
    );
    assert!(export.contains("run.googleapis.com/vpc-access-egress: private-ranges-only"), "{export}");
    let v2 = |name: &str| -> Value {
        http()
            .get(format!("{}/v2/projects/local-project/locations/us-central1/services/{name}", p.api))
            .bearer_auth(p.token())
            .send()
            .unwrap()
            .json()
            .unwrap()
    };
    assert_eq!(
        v2("my-api")["template"]["vpcAccess"],
        json!({ "connector": "projects/local-project/locations/us-central1/connectors/my-connector", "egress": "PRIVATE_RANGES_ONLY" })
    );
    p.ok(&["run", "services", "update", "my-api", REGION, "--vpc-egress=all-traffic"]);
    assert_eq!(v2("my-api")["template"]["vpcAccess"]["egress"], "ALL_TRAFFIC");

    // Direct VPC egress replaces the connector; clearing removes it all.
    p.ok(&[
        "run",
        "services",
        "update",
        "my-api",
        REGION,
        "--network=my-vpc",
        "--subnet=direct",
        "--network-tags=db-client",
    ]);
    assert_eq!(
        v2("my-api")["template"]["vpcAccess"],
        json!({ "egress": "ALL_TRAFFIC", "networkInterfaces": [{ "network": "my-vpc", "subnetwork": "direct", "tags": ["db-client"] }] })
    );
    let export = p.ok(&["run", "services", "describe", "my-api", REGION, "--format=export"]);
    assert!(export.contains("run.googleapis.com/network-interfaces"), "{export}");
    p.ok(&["run", "services", "update", "my-api", REGION, "--clear-network"]);
    assert!(v2("my-api")["template"].get("vpcAccess").is_none());

    // The v1 form round-trips through `services replace`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc.yaml");
    let yaml = export
        .replace("name: my-api", "name: from-yaml")
        .lines()
        .filter(|l| !l.trim_start().starts_with("name: my-api-"))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&file, yaml).unwrap();
    p.ok(&["run", "services", "replace", file.to_str().unwrap(), REGION]);
    assert_eq!(v2("from-yaml")["template"]["vpcAccess"]["networkInterfaces"][0]["subnetwork"], "direct");

    // What cannot work is refused before anything is deployed.
    for (args, why) in [
        (vec!["--vpc-connector=nope"], "VPC connector `nope` was not found in region us-central1"),
        (vec!["--vpc-egress=all-traffic"], "--vpc-egress needs a way into a VPC"),
        (vec!["--vpc-connector=my-connector", "--network=my-vpc"], "not both"),
        (vec!["--vpc-connector=my-connector", "--vpc-egress=sideways"], "invalid --vpc-egress `sideways`"),
        (vec!["--network=my-vpc", "--subnet=nope"], "subnetwork `nope` was not found"),
        (
            vec!["--vpc-connector=projects/local-project/locations/europe-west1/connectors/my-connector"],
            "needs a connector in us-central1",
        ),
    ] {
        let mut all = vec!["run", "deploy", "refused", HELLO, REGION];
        all.extend(args.iter().copied());
        let e = p.fail(&all);
        assert!(e.contains(why), "{args:?}: {e}");
    }
    assert!(p.fail(&["run", "services", "describe", "refused", REGION]).contains("does not exist"));
}

#[test]
fn every_project_has_the_auto_mode_default_network_and_auto_networks_behave_as_compute_engine_s() {
    let p = Platform::start();
    let list = p.ok(&["compute", "networks", "list"]);
    assert!(list.contains("default  AUTO"), "{list}");
    let cidr = |network: &str, region: &str| {
        let at = format!("--region={region}");
        p.ok(&["compute", "networks", "subnets", "describe", network, &at, "--format=value(ipCidrRange)"])
            .trim()
            .to_owned()
    };
    // Google's auto-mode ranges, a subnet per region named as the network.
    assert_eq!(cidr("default", "us-central1"), "10.128.0.0/20");
    assert_eq!(cidr("default", "europe-west1"), "10.132.0.0/20");
    let subnets = p.json(&["compute", "networks", "subnets", "list", "--network=default"]);
    assert_eq!(subnets.as_array().unwrap().len(), 24, "{subnets}");
    let e = p.fail(&["compute", "networks", "subnets", "delete", "default", REGION, "--quiet"]);
    assert!(e.contains("created for auto mode network 'default'"), "{e}");

    // Direct VPC egress as Google's docs write it: --network=default --subnet=default.
    p.ok(&[
        "run",
        "deploy",
        "my-api",
        HELLO,
        REGION,
        "--network=default",
        "--subnet=default",
        "--vpc-egress=all-traffic",
    ]);
    let export = p.ok(&["run", "services", "describe", "my-api", REGION, "--format=export"]);
    assert!(export.contains(r#"network-interfaces: '[{"network":"default","subnetwork":"default"}]'"#), "{export}");

    // `networks create` without --subnet-mode is auto, as gcloud's default; custom subnets may not take 10.128.0.0/9.
    let r = p.run(&["compute", "networks", "create", "auto-net"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stdout.contains("auto-net  AUTO"), "{}", r.stdout);
    assert_eq!(cidr("auto-net", "asia-southeast2"), "10.184.0.0/20");
    let e = p.fail(&[
        "compute",
        "networks",
        "subnets",
        "create",
        "extra",
        "--network=auto-net",
        "--range=10.200.0.0/24",
        REGION,
    ]);
    assert!(e.contains("conflicts with the auto-mode range 10.128.0.0/9"), "{e}");
    p.ok(&[
        "compute",
        "networks",
        "subnets",
        "create",
        "extra",
        "--network=auto-net",
        "--range=192.168.7.0/24",
        REGION,
    ]);
    // A subnet of its own keeps the network; its auto subnets go with it.
    let e = p.fail(&["compute", "networks", "delete", "auto-net", "--quiet"]);
    assert!(e.contains("is already being used by") && e.contains("subnetworks/extra"), "{e}");
    p.ok(&["compute", "networks", "subnets", "delete", "extra", REGION, "--quiet"]);
    p.ok(&["compute", "networks", "delete", "auto-net", "--quiet"]);
    let left = p.json(&["compute", "networks", "subnets", "list", "--network=auto-net"]);
    assert_eq!(left, json!([]));
    // A connector on the default network keeps it.
    p.ok(&[
        "compute",
        "networks",
        "vpc-access",
        "connectors",
        "create",
        "c1",
        REGION,
        "--network=default",
        "--range=10.8.0.0/28",
    ]);
    let e = p.fail(&["compute", "networks", "delete", "default", "--quiet"]);
    assert!(e.contains("is already being used by"), "{e}");
}

#[test]
fn compute_zone_and_region_properties_are_the_defaults_and_unknown_zones_are_refused() {
    let p = Platform::start();
    // gcloud's compute properties: set, read, listed in their section; `run/region` stays a property of its own.
    let r = p.run(&["config", "set", "compute/zone", "us-central1-b"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("Updated property [compute/zone]."), "{}", r.stderr);
    assert!(!r.stderr.contains("WARNING"), "{}", r.stderr);
    let r = p.run(&["config", "set", "compute/region", "europe-west1"]);
    assert!(r.stderr.contains("Updated property [compute/region]."), "{}", r.stderr);
    assert_eq!(p.ok(&["config", "get-value", "compute/zone"]).trim(), "us-central1-b");
    assert_eq!(p.ok(&["config", "get-value", "compute/region"]).trim(), "europe-west1");
    assert_eq!(p.ok(&["config", "get-value", "run/region"]).trim(), "us-central1");
    let listed = p.json(&["config", "list"]);
    assert_eq!(listed["compute"], json!({ "region": "europe-west1", "zone": "us-central1-b" }), "{listed}");
    assert_eq!(listed["run"]["region"], "us-central1", "{listed}");

    // Compute commands take their region from compute/region...
    p.ok(&["compute", "networks", "create", "zone-vpc", "--subnet-mode=custom"]);
    p.ok(&["compute", "networks", "subnets", "create", "zs", "--network=zone-vpc", "--range=10.50.0.0/24"]);
    let s = p.json(&["compute", "networks", "subnets", "describe", "zs"]);
    assert!(s["region"].as_str().unwrap().ends_with("/regions/europe-west1"), "{s}");
    // ...and their zone from compute/zone, else the region's first zone.
    let e = p.fail(&["compute", "instances", "describe", "nope"]);
    assert!(e.contains("'projects/local-project/zones/us-central1-b/instances/nope' was not found"), "{e}");
    let r = p.run(&["config", "unset", "compute/zone"]);
    assert!(r.stderr.contains("Unset property [compute/zone]."), "{}", r.stderr);
    let e = p.fail(&["compute", "instances", "describe", "nope"]);
    assert!(e.contains("'projects/local-project/zones/europe-west1-b/instances/nope' was not found"), "{e}");

    // A zone that does not exist is Compute Engine's 400, naming it, before anything is made.
    let script = "--metadata=startup-script=true";
    for (args, bad) in [
        (vec!["create", "vm", "--zone=us-central1-z", "--subnet=zs", script], "us-central1-z"),
        (vec!["create", "vm", "--zone=europe-west1-a", "--subnet=zs", script], "europe-west1-a"),
        (vec!["list", "--zones=us-central1-a,us-central1-z"], "us-central1-z"),
        (vec!["describe", "vm", "--zone=us-central1-d"], "us-central1-d"),
        (vec!["delete", "vm", "--zone=us-central1-d"], "us-central1-d"),
    ] {
        let mut all = vec!["compute", "instances"];
        all.extend(&args);
        let e = p.fail(&all);
        assert!(e.contains(&format!("Invalid value for field 'zone': '{bad}'. Unknown zone.")), "{all:?}: {e}");
        let region = bad.rsplit_once('-').unwrap().0;
        assert!(e.contains(&format!("The zones of region {region} are {region}-")), "{all:?}: {e}");
    }
    assert_eq!(p.ok(&["compute", "instances", "list", "--format=value(name)"]).trim(), "", "nothing was made");
    // gcloud warns about an unknown zone as it is set (and keeps it when it may not ask).
    let r = p.run(&["config", "set", "compute/zone", "us-central1-z"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("WARNING: Invalid value for field 'zone': 'us-central1-z'. Unknown zone. The zones of region us-central1 are"),
        "{}",
        r.stderr
    );
}
