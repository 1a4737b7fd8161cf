//! Ingress and VPC egress through the real binary, enforced by the kernel (needs root, as CI runs):
//! - the whole matrix — ingress setting × caller (host shell, load-balancer listener, VPC host, instance without VPC
//!   access, instance with connector `private-ranges-only`, instance with connector `all-traffic`) × token (none,
//!   valid without invoker, valid with invoker) — against Cloud Run's documented answers (404 vs 403 vs 200), and
//!   `policy-troubleshoot invoke` agreeing on every cell;
//! - Google's documented commands; a connector instance reaches a private host, one without cannot; `all-traffic`
//!   reaches the simulated internet from the connector's one NAT address.

mod common;

use std::time::{Duration, Instant};

use common::{http, python, sandbox_available, script, url, Platform};
use serde_json::Value;

const REGION: &str = "--region=us-central1";

/// A probe service (tests/python/sandbox_probe) with `extra` deploy flags.
fn deploy_probe(p: &Platform, name: &str, extra: &[&str]) -> String {
    let source = format!("--source={}", script("sandbox_probe").display());
    let command = format!("--command={},main.py", python().display());
    let mut args = vec!["run", "deploy", name, REGION, "--allow-unauthenticated", &source, &command];
    args.extend(extra);
    p.ok(&args);
    url(p, name)
}

/// `GET {probe}/call?url=…&token=…`: the status the probe's instance got.
fn call_from(probe: &str, target: &str, token: &str) -> Value {
    let r = http()
        .get(format!("{probe}/call"))
        .query(&[("url", target), ("token", token)])
        .send()
        .unwrap_or_else(|e| panic!("the probe at {probe} answers: {e}"));
    assert_eq!(r.status(), 200, "{probe}");
    r.json().expect("JSON")
}

fn status_from(probe: &str, target: &str, token: &str) -> u64 {
    call_from(probe, target, token)["status"].as_u64().unwrap_or(0)
}

fn get(url: &str, host: Option<&str>, token: &str) -> u64 {
    let mut req = http().get(url);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    if !token.is_empty() {
        req = req.bearer_auth(token);
    }
    u64::from(req.send().expect("the platform answers").status().as_u16())
}

fn identity_token(p: &Platform, sa: &str, audience: &str) -> String {
    p.let_owner_impersonate(sa);
    common::sa_token(p, sa, audience)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Caller {
    HostShell,
    LoadBalancer,
    VpcHost,
    InstanceWithoutVpc,
    InstancePrivateRanges,
    InstanceAllTraffic,
}

/// Cloud Run's documented answer (PROTOCOL.md §3, §4): ingress first (404), then the invocation check.
fn expected(ingress: &str, caller: Caller, token: &str) -> u64 {
    let internal = matches!(caller, Caller::VpcHost | Caller::InstanceAllTraffic);
    let admitted = match ingress {
        "all" => true,
        "internal" => internal,
        "internal-and-cloud-load-balancing" => internal || caller == Caller::LoadBalancer,
        other => panic!("unknown ingress {other}"),
    };
    match (admitted, token) {
        (false, _) => 404,
        (true, "invoker") => 200,
        (true, _) => 403,
    }
}

#[test]
fn ingress_caller_and_token_matrix_matches_cloud_run() {
    if !sandbox_available() {
        return;
    }
    let p = Platform::start();
    let project = p.daemon_json()["project"].as_str().unwrap().to_string();
    // Google's documented commands, as written.
    p.ok(&["compute", "networks", "create", "my-vpc", "--subnet-mode=custom"]);
    p.ok(&[
        "compute",
        "networks",
        "subnets",
        "create",
        "my-subnet",
        "--network=my-vpc",
        "--range=10.10.0.0/24",
        REGION,
    ]);
    p.ok(&[
        "compute",
        "networks",
        "subnets",
        "create",
        "conn-subnet",
        "--network=my-vpc",
        "--range=10.8.0.0/28",
        REGION,
    ]);
    p.ok(&[
        "compute",
        "networks",
        "vpc-access",
        "connectors",
        "create",
        "my-connector",
        "--region=us-central1",
        "--subnet=conn-subnet",
        "--subnet-project=local-project",
        "--min-instances=2",
        "--max-instances=10",
    ]);

    // The private service every caller calls, and who may invoke it.
    p.ok(&["run", "deploy", "my-private-api", "--image=us-docker.pkg.dev/cloudrun/container/hello", REGION]);
    let target = url(&p, "my-private-api");
    let host_header = target.trim_start_matches("http://").to_string();
    let lb = p.daemon_json()["load_balancer"].as_str().unwrap().to_string();
    let (invoker, outsider) =
        (format!("invoker@{project}.iam.gserviceaccount.com"), format!("outsider@{project}.iam.gserviceaccount.com"));
    for sa in ["invoker", "outsider"] {
        p.ok(&["iam", "service-accounts", "create", sa]);
    }
    p.ok(&[
        "run",
        "services",
        "add-iam-policy-binding",
        "my-private-api",
        REGION,
        &format!("--member=serviceAccount:{invoker}"),
        "--role=roles/run.invoker",
    ]);
    let tokens = [
        ("none", String::new()),
        ("no-invoker", identity_token(&p, &outsider, &target)),
        ("invoker", identity_token(&p, &invoker, &target)),
    ];

    // The callers inside: instances with each kind of egress, and a VM in the VPC running the same probe.
    let direct = deploy_probe(&p, "caller-direct", &[]);
    let private =
        deploy_probe(&p, "caller-private", &["--vpc-connector=my-connector", "--vpc-egress=private-ranges-only"]);
    let all = deploy_probe(&p, "caller-all", &["--vpc-connector=my-connector", "--vpc-egress=all-traffic"]);
    let startup =
        format!("startup-script=PORT=8080 exec {} {}", python().display(), script("sandbox_probe/main.py").display());
    p.ok(&[
        "compute",
        "instances",
        "create",
        "vpc-caller",
        "--zone=us-central1-a",
        "--subnet=my-subnet",
        &format!("--metadata={startup}"),
    ]);
    let vm_ip = p
        .ok(&[
            "compute",
            "instances",
            "describe",
            "vpc-caller",
            "--zone=us-central1-a",
            "--format=value(networkInterfaces[0].networkIP)",
        ])
        .trim()
        .to_string();
    assert_eq!(vm_ip, "10.10.0.3", "the first free address after the gateway (and the connector's)");
    let vm = format!("http://{vm_ip}:8080");
    // Reach the VM's probe through the all-traffic instance (the host shell has no route into the VPC).
    let via_vm = |token: &str| -> u64 {
        let inner = format!("{vm}/call?url={}&token={token}", urlencode(&target));
        let outer = call_from(&all, &inner, "");
        if outer["status"] != 200 {
            return 0;
        }
        serde_json::from_str::<Value>(outer["body"].as_str().unwrap_or("{}")).unwrap_or_default()["status"]
            .as_u64()
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while via_vm("") == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut mismatches = Vec::new();
    let mut cells = 0;
    for ingress in ["all", "internal", "internal-and-cloud-load-balancing"] {
        // Takes effect without a redeploy.
        p.ok(&["run", "services", "update", "my-private-api", REGION, &format!("--ingress={ingress}")]);
        for (kind, token) in &tokens {
            let got = [
                (Caller::HostShell, get(&target, None, token)),
                (Caller::LoadBalancer, get(&lb, Some(&host_header), token)),
                (Caller::VpcHost, via_vm(token)),
                (Caller::InstanceWithoutVpc, status_from(&direct, &target, token)),
                (Caller::InstancePrivateRanges, status_from(&private, &target, token)),
                (Caller::InstanceAllTraffic, status_from(&all, &target, token)),
            ];
            for (caller, status) in got {
                cells += 1;
                let want = expected(ingress, caller, kind);
                if status != want {
                    mismatches
                        .push(format!("ingress={ingress} caller={caller:?} token={kind}: got {status}, want {want}"));
                }
            }
        }
    }
    assert_eq!(cells, 54);
    assert!(
        mismatches.is_empty(),
        "{} of 54 cells differ from Cloud Run:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );

    // Refusals by ingress never reach the request log; each is an audited denial that says why.
    let logs = p.ok(&["run", "services", "logs", "read", "my-private-api", REGION, "--limit=1000"]);
    assert!(!logs.contains(" 404 "), "{logs}");
    let denials = p.ok(&["logging", "read", "protoPayload.status.code=5", "--format=json", "--limit=200"]);
    assert!(denials.contains("ingress `internal` does not admit requests from the internet"), "{denials}");
}

#[test]
fn egress_reaches_private_hosts_only_through_the_vpc_and_the_internet_from_one_nat_address() {
    if !sandbox_available() {
        return;
    }
    let p = Platform::start();
    let echo = p.daemon_json()["internet_echo"].as_str().expect("internet_echo in daemon.json").to_string();
    p.ok(&["compute", "networks", "create", "my-vpc", "--subnet-mode=custom"]);
    p.ok(&[
        "compute",
        "networks",
        "subnets",
        "create",
        "db-subnet",
        "--network=my-vpc",
        "--range=10.20.0.0/24",
        REGION,
    ]);
    p.ok(&[
        "compute",
        "networks",
        "vpc-access",
        "connectors",
        "create",
        "my-connector",
        REGION,
        "--network=my-vpc",
        "--range=10.8.0.0/28",
    ]);
    // A private database-like host that answers on its address.
    p.ok(&[
        "compute",
        "instances",
        "create",
        "db",
        "--zone=us-central1-a",
        "--subnet=db-subnet",
        "--private-network-ip=10.20.0.50",
        &format!("--metadata=startup-script=exec {} -u -m http.server 5432", python().display()),
    ]);
    let db = "http://10.20.0.50:5432/";
    // What the startup script prints is on the instance's serial port, as on Compute Engine.
    let deadline = Instant::now() + Duration::from_secs(20);
    let serial = || p.ok(&["compute", "instances", "get-serial-port-output", "db", "--zone=us-central1-a"]);
    while !serial().contains("Serving HTTP on") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(serial().contains("Serving HTTP on 0.0.0.0 port 5432"), "{}", serial());
    // As in Google's docs: `run deploy … --vpc-connector=… --vpc-egress=private-ranges-only`.
    let private = deploy_probe(&p, "my-api", &["--vpc-connector=my-connector", "--vpc-egress=private-ranges-only"]);
    let all = deploy_probe(&p, "all-api", &["--vpc-connector=my-connector", "--vpc-egress=all-traffic"]);
    let all2 = deploy_probe(&p, "all-api-2", &["--vpc-connector=my-connector", "--vpc-egress=all-traffic"]);
    let direct = deploy_probe(&p, "plain-api", &[]);

    let deadline = Instant::now() + Duration::from_secs(30);
    while status_from(&private, db, "") != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(status_from(&private, db, ""), 200, "a connector instance reaches the private host");
    assert_eq!(status_from(&all, db, ""), 200);
    let refused = call_from(&direct, db, "");
    assert_eq!(refused["status"], 0, "no VPC access, no route: {refused}");
    assert!(refused["error"].as_str().unwrap_or("").contains("No route to host"), "fails fast: {refused}");

    let seen = |probe: &str| call_from(probe, &echo, "")["body"].as_str().unwrap_or("").trim().to_string();
    let nat = seen(&all);
    assert!(nat.starts_with("198.51.100."), "the connector's NAT address: {nat}");
    assert_eq!(seen(&all2), nat, "one fixed address for every all-traffic instance of the connector");
    let direct_ip = seen(&direct);
    assert!(direct_ip.starts_with("192.0.2."), "{direct_ip}");
    // An instance's own address takes no connection, from another instance direct or through the VPC: only the
    // gateway (ingress, IAM) reaches its port.
    for from in [&private, &all] {
        let bypass = call_from(from, &format!("http://{direct_ip}:8080/probe"), "");
        assert_eq!(bypass["status"], 0, "{bypass}");
        assert!(bypass["error"].as_str().unwrap_or("").contains("Connection refused"), "refused at once: {bypass}");
    }
    assert_ne!(seen(&private), nat, "private-ranges-only leaves directly");
    // Nothing else exists out there.
    let nowhere = call_from(&direct, "http://8.8.8.8/", "");
    assert_eq!(nowhere["status"], 0, "{nowhere}");

    // Platform DNS: VM names as on Compute Engine (short names through the search domains), services' run.app
    // hosts at the gateway inside the sandbox, nothing else.
    let number = p.daemon_json()["projectNumber"].as_str().unwrap().to_string();
    let run_app = format!("plain-api-{number}.us-central1.run.app");
    let names = ["db", "db.us-central1-a.c.local-project.internal", run_app.as_str(), "www.google.com"];
    let mut query: Vec<(&str, &str)> = names.iter().map(|n| ("resolve", *n)).collect();
    let fetch = format!("http://{run_app}/call?url=http://203.0.113.10/");
    query.push(("url", &fetch));
    let r: Value = http().get(format!("{private}/probe")).query(&query).send().unwrap().json().unwrap();
    assert_eq!(r["resolved"]["db"]["value"], "10.20.0.50", "{r}");
    assert_eq!(r["resolved"]["db.us-central1-a.c.local-project.internal"]["value"], "10.20.0.50");
    assert_eq!(r["resolved"][&run_app]["value"], "127.0.0.1");
    assert_eq!(r["resolved"]["www.google.com"]["ok"], false, "no name leaves the machine: {r}");
    assert_eq!(r["fetch"]["value"]["status"], 200, "a run.app URL works inside: {r}");
}

#[test]
fn compute_instances_refuse_bad_input_with_clear_errors_and_keep_what_is_in_use() {
    if !sandbox_available() {
        return;
    }
    let p = Platform::start();
    p.ok(&["compute", "networks", "create", "my-vpc", "--subnet-mode=custom"]);
    p.ok(&["compute", "networks", "subnets", "create", "s1", "--network=my-vpc", "--range=10.30.0.0/29", REGION]);
    let zone = "--zone=us-central1-a";
    let script = "--metadata=startup-script=sleep 600";
    for (args, why) in [
        (vec![zone, script], "add --subnet=SUBNET"),
        (
            vec![zone, "--subnet=nope", script],
            "The resource 'projects/local-project/regions/us-central1/subnetworks/nope' was not found",
        ),
        (vec![zone, "--subnet=s1"], "add --metadata=startup-script=COMMAND"),
        (vec![zone, "--subnet=s1", script, "--private-network-ip=10.30.0.1"], "not a usable address"),
        (vec![zone, "--subnet=s1", script, "--private-network-ip=10.31.0.4"], "not a usable address"),
        (vec![zone, "--subnet=s1", script, "--private-network-ip=ten"], "networkIP': 'ten'"),
        (vec!["--zone=central", "--subnet=s1", script], "Use a zone such as us-central1-a"),
        (vec![zone, "--subnet=s1", "--metadata=startup-script"], "use KEY=VALUE"),
    ] {
        let mut all = vec!["compute", "instances", "create", "vm"];
        all.extend(args);
        let e = p.fail(&all);
        assert!(e.contains(why), "{all:?}: {e}");
    }
    assert!(p.ok(&["compute", "instances", "list", "--zones=us-central1-a"]).lines().count() <= 1, "nothing half-made");
    p.ok(&["compute", "instances", "create", "vm", zone, "--subnet=s1", script, "--private-network-ip=10.30.0.4"]);
    let e = p.fail(&[
        "compute",
        "instances",
        "create",
        "vm2",
        zone,
        "--subnet=s1",
        script,
        "--private-network-ip=10.30.0.4",
    ]);
    assert!(e.contains("already in use"), "{e}");
    let e = p.fail(&["compute", "instances", "create", "vm", zone, "--subnet=s1", script]);
    assert!(e.contains("already exists"), "{e}");
    // Running a VM as an account needs actAs on it, as deploying a service does: an instance admin alone gets 403.
    p.ok(&["auth", "login", "ops@example.com"]);
    p.ok(&["config", "set", "account", "owner@localhost"]);
    let ops = ["--member=user:ops@example.com", "--role=roles/compute.instanceAdmin.v1"];
    p.ok(&["projects", "add-iam-policy-binding", "local-project", ops[0], ops[1]]);
    p.ok(&["config", "set", "account", "ops@example.com"]);
    let as_owner_sa = format!("--service-account={}", p.compute_sa());
    let e = p.fail(&["compute", "instances", "create", "x", zone, "--subnet=s1", script, &as_owner_sa]);
    assert!(e.contains("Permission 'iam.serviceaccounts.actAs' denied on service account"), "{e}");
    p.ok(&["config", "set", "account", "owner@localhost"]);
    // A /29 has 10.30.0.2..6 for hosts: .2 is kept for a connector, .4 is taken; .3, .5, .6 remain.
    for name in ["a", "b", "c"] {
        p.ok(&["compute", "instances", "create", name, zone, "--subnet=s1", script]);
    }
    let e = p.fail(&["compute", "instances", "create", "d", zone, "--subnet=s1", script]);
    assert!(e.contains("has no free address"), "{e}");
    let e = p.fail(&["compute", "networks", "subnets", "delete", "s1", REGION]);
    assert!(e.contains("is already being used by 'projects/local-project/zones/us-central1-a/instances/"), "{e}");
    for name in ["vm", "a", "b", "c"] {
        p.ok(&["compute", "instances", "delete", name, zone, "--quiet"]);
    }
    p.ok(&["compute", "networks", "subnets", "delete", "s1", REGION]);
    let e = p.fail(&["compute", "instances", "describe", "vm", zone]);
    assert!(e.contains("was not found"), "{e}");
}

#[test]
fn instances_list_shows_every_zone_unless_zones_names_some() {
    if !sandbox_available() {
        return;
    }
    let p = Platform::start();
    p.ok(&["compute", "networks", "create", "zones-vpc", "--subnet-mode=custom"]);
    p.ok(&["compute", "networks", "subnets", "create", "zs", "--network=zones-vpc", "--range=10.60.0.0/29", REGION]);
    let script = "--metadata=startup-script=sleep 600";
    p.ok(&["compute", "instances", "create", "vm-a", "--zone=us-central1-a", "--subnet=zs", script]);
    // `compute/zone` is the default --zone.
    p.ok(&["config", "set", "compute/zone", "us-central1-b"]);
    p.ok(&["compute", "instances", "create", "vm-b", "--subnet=zs", script]);
    let rows = |extra: &[&str]| -> Vec<String> {
        let mut args = vec!["compute", "instances", "list"];
        args.extend(extra);
        let out = p.ok(&args);
        let mut lines = out.lines();
        assert!(lines.next().is_some_and(|h| h.starts_with("NAME") && h.contains("ZONE")), "{out}");
        lines.map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).collect()
    };
    assert_eq!(rows(&[]), ["vm-a us-central1-a", "vm-b us-central1-b"], "every zone of the project");
    assert_eq!(rows(&["--zones=us-central1-b"]), ["vm-b us-central1-b"]);
    assert_eq!(rows(&["--zones=us-central1-a,us-central1-b"]), ["vm-a us-central1-a", "vm-b us-central1-b"]);
    let vm = p.json(&["compute", "instances", "describe", "vm-b"]);
    assert!(vm["zone"].as_str().unwrap().ends_with("/zones/us-central1-b"), "{vm}");
    p.ok(&["compute", "instances", "delete", "vm-b", "--quiet"]);
    p.ok(&["compute", "instances", "delete", "vm-a", "--zone=us-central1-a", "--quiet"]);
    assert_eq!(rows(&[]), Vec::<String>::new());
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn a_restart_serves_every_service_as_deployed_with_its_egress_and_file_secrets() {
    if !sandbox_available() {
        return;
    }
    let mut p = Platform::start();
    let echo = p.daemon_json()["internet_echo"].as_str().expect("internet_echo in daemon.json").to_string();
    p.ok(&["compute", "networks", "create", "my-vpc", "--subnet-mode=custom"]);
    let connector = ["compute", "networks", "vpc-access", "connectors", "create", "my-connector", REGION];
    p.ok(&[&connector[..], &["--network=my-vpc", "--range=10.8.0.0/28"]].concat());
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("key");
    std::fs::write(&file, "not-a-real-key").unwrap();
    p.ok(&["secrets", "create", "api-key", &format!("--data-file={}", file.display())]);
    let accessor = format!("--member=serviceAccount:{}", p.compute_sa());
    p.ok(&["secrets", "add-iam-policy-binding", "api-key", &accessor, "--role=roles/secretmanager.secretAccessor"]);
    // One service with everything a restart must bring back: a connector with all-traffic egress, a file secret
    // and an env secret; another plain one.
    let all = deploy_probe(
        &p,
        "all-api",
        &[
            "--vpc-connector=my-connector",
            "--vpc-egress=all-traffic",
            "--set-secrets=/secrets/api/key=api-key:1,API_KEY=api-key:latest",
        ],
    );
    let plain = deploy_probe(&p, "plain-api", &[]);
    let seen = |probe: &str| call_from(probe, &echo, "")["body"].as_str().unwrap_or("").trim().to_string();
    let secrets = |probe: &str| -> Value {
        http().get(format!("{probe}/probe")).query(&[("home", "/secrets/api")]).send().unwrap().json().unwrap()
    };
    let before = (seen(&all), seen(&plain));
    assert!(before.0.starts_with("198.51.100."), "through the connector's NAT: {before:?}");
    assert!(before.1.starts_with("192.0.2."), "{before:?}");
    assert_eq!(secrets(&all)["list_home"]["value"], serde_json::json!(["key"]));

    assert!(p.stop().success());
    p.boot(&[]);
    // The same URLs, the same egress, the same secrets: every service starts as it was deployed.
    let after = (seen(&all), seen(&plain));
    assert!(after.0.starts_with("198.51.100."), "egress lost across the restart: {after:?}");
    assert!(after.1.starts_with("192.0.2."), "{after:?}");
    let listed = secrets(&all);
    assert_eq!(listed["list_home"]["value"], serde_json::json!(["key"]), "{listed}");
    assert!(listed["env"].as_array().unwrap().iter().any(|e| e == "API_KEY"), "{listed}");
}
