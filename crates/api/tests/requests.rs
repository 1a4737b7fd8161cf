//! Requests as a probe sent them: concurrent read-modify-writes of one service account, JSON arrays where objects
//! belong, oversized bodies, unknown fields, and Compute/VPC/Secret Manager references that name the wrong thing.
//! Each answer is Google's.

mod common;

use axum::body::Body;
use axum::http::{Method, Request};
use common::Plane;
use serde_json::{json, Value};
use std::sync::Arc;

const SAS: &str = "/v1/projects/local-project/serviceAccounts";

fn message(v: &Value) -> &str {
    v["error"]["message"].as_str().unwrap_or_default()
}

async fn expect_400(p: &Plane, method: Method, path: &str, body: Value, why: &str) {
    let (status, v) = p.call(method, path, Some(body.clone())).await;
    assert_eq!(status, 400, "{path} {body}: {v}");
    assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{v}");
    assert!(message(&v).contains(why), "{path} {body}: `{}` does not say `{why}`", message(&v));
}

/// Runs `a` and `b` at the same time, each on its own worker thread.
async fn together(p: &Arc<Plane>, a: (Method, String, Option<Value>), b: (Method, String, Option<Value>)) {
    let (pa, pb) = (p.clone(), p.clone());
    let ta = tokio::spawn(async move { pa.call(a.0, &a.1, a.2).await });
    let tb = tokio::spawn(async move { pb.call(b.0, &b.1, b.2).await });
    let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
    for (status, v) in [ra, rb] {
        assert!(status == 200 || status == 404, "{status} {v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_patch_racing_disable_or_delete_never_undoes_it() {
    let p = Arc::new(common::boot().await);
    for round in 0..16 {
        let email = format!("race-{round}@local-project.iam.gserviceaccount.com");
        let path = format!("{SAS}/{email}");
        p.ok(Method::POST, SAS, Some(json!({"accountId": format!("race-{round}")}))).await;
        let patch = json!({"serviceAccount": {"displayName": "patched"}, "updateMask": "displayName"});
        together(
            &p,
            (Method::PATCH, path.clone(), Some(patch.clone())),
            (Method::POST, format!("{path}:disable"), None),
        )
        .await;
        let sa = p.ok(Method::GET, &path, None).await;
        assert_eq!(sa["disabled"], true, "round {round}: the patch undid the disable: {sa}");
        assert_eq!(sa["displayName"], "patched", "round {round}: {sa}");

        together(&p, (Method::PATCH, path.clone(), Some(patch)), (Method::DELETE, path.clone(), None)).await;
        let (status, v) = p.call(Method::GET, &path, None).await;
        assert_eq!(status, 404, "round {round}: the patch brought a deleted account back: {v}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn bodies_must_be_objects_and_lists_cannot_stand_for_messages() {
    let p = common::boot().await;
    let arr = json!(["arr-sa-1", {"displayName": "x"}]);
    expect_400(
        &p,
        Method::POST,
        SAS,
        arr,
        "Invalid JSON payload received. Unknown name \"\": Root element must be a message.",
    )
    .await;
    let (status, v) = p.call(Method::GET, &format!("{SAS}/arr-sa-1@local-project.iam.gserviceaccount.com"), None).await;
    assert_eq!(status, 404, "{v}");
    for top in [json!("x"), json!(3), json!([])] {
        expect_400(
            &p,
            Method::POST,
            "/v1/projects/local-project/secrets?secretId=s",
            top,
            "Root element must be a message",
        )
        .await;
    }
    let nested = json!({"accountId": "arr-sa-2", "serviceAccount": ["disp", "desc"]});
    let why = "Invalid JSON payload received. Unknown name \"serviceAccount\": Proto field is not repeating, cannot start list.";
    expect_400(&p, Method::POST, SAS, nested, why).await;
    let nested_unknown = json!({"accountId": "arr-sa-3", "serviceAccount": {"bogus": 1}});
    expect_400(
        &p,
        Method::POST,
        SAS,
        nested_unknown,
        "Unknown name \"bogus\" at 'service_account': Cannot find field.",
    )
    .await;
    // Objects still work, empty bodies read as `{}`.
    p.ok(Method::POST, SAS, Some(json!({"accountId": "obj-sa", "serviceAccount": {"displayName": "x"}}))).await;
    p.ok(Method::POST, &format!("{SAS}/obj-sa@local-project.iam.gserviceaccount.com:disable"), None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_bodies_are_googles_400_whatever_their_size() {
    let p = common::boot().await;
    for (size, declared) in [(1_500_000, false), (3 << 20, false), (10 << 20, false), (10 << 20, true)] {
        let body = format!("{{\"accountId\":\"big\",\"x\":\"{}\"}}", "a".repeat(size));
        let mut req = Request::builder()
            .method(Method::POST)
            .uri(SAS)
            .header("authorization", format!("Bearer {}", p.token))
            .header("content-type", "application/json");
        if declared {
            req = req.header("content-length", body.len().to_string());
        }
        let (status, v) = common::send(&p.app, req.body(Body::from(body)).unwrap()).await;
        assert_eq!(status, 400, "{size}: {v}");
        assert_eq!(v["error"]["status"], "INVALID_ARGUMENT", "{size}: {v}");
        assert_eq!(message(&v), "Request payload size exceeds the limit: 1048576 bytes.", "{size}");
    }
    // Just under the limit is read (and refused for what it says, not its size).
    let body = json!({"accountId": "big", "x": "a".repeat(1_000_000)});
    expect_400(&p, Method::POST, SAS, body, "Unknown name \"x\": Cannot find field.").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_fields_are_refused_where_google_refuses_them() {
    let p = common::boot().await;
    let unknown = "Invalid JSON payload received. Unknown name \"bogus\"";
    expect_400(&p, Method::POST, "/v2/entries:list", json!({"bogus": 1}), unknown).await;
    // Every field of ListLogEntriesRequest, by either name.
    let all = json!({"resourceNames": ["projects/local-project"], "filter": "", "orderBy": "timestamp desc",
                     "pageSize": 5, "pageToken": ""});
    p.ok(Method::POST, "/v2/entries:list", Some(all)).await;
    p.ok(Method::POST, "/v2/entries:list", Some(json!({"resource_names": ["projects/local-project"], "page_size": 1})))
        .await;

    p.ok(
        Method::POST,
        "/v1/projects/local-project/secrets?secretId=s1",
        Some(json!({"replication": {"automatic": {}}})),
    )
    .await;
    let add = "/v1/projects/local-project/secrets/s1:addVersion";
    expect_400(&p, Method::POST, add, json!({"payload": {"data": "aGk=", "bogus": 1}}), unknown).await;
    // `dataCrc32c` (computed by the server when absent) and its proto spelling; a wrong one is refused.
    p.ok(Method::POST, add, Some(json!({"payload": {"data": "aGk="}}))).await;
    let v = p.ok(Method::GET, "/v1/projects/local-project/secrets/s1/versions/1:access", None).await;
    let crc = v["payload"]["dataCrc32c"].as_str().unwrap().to_owned();
    p.ok(Method::POST, add, Some(json!({"payload": {"data": "aGk=", "dataCrc32c": crc}}))).await;
    p.ok(Method::POST, add, Some(json!({"payload": {"data": "aGk=", "data_crc32c": crc}}))).await;
    expect_400(&p, Method::POST, add, json!({"payload": {"data": "aGk=", "data_crc32c": "7"}}), "checksum mismatch")
        .await;

    let insert = "/compute/v1/projects/local-project/zones/us-central1-a/instances";
    let vm = json!({"bogus": 1, "name": "vm", "networkInterfaces": [{"subnetwork": "regions/us-central1/subnetworks/default"}]});
    expect_400(&p, Method::POST, insert, vm, unknown).await;
}

/// Runs nothing: enough for `instances.insert` to get past "no sandbox".
struct NoopRunner;

impl api::compute_instances::HostRunner for NoopRunner {
    fn start(&self, _: api::compute_instances::VpcHost) -> Result<(), String> {
        Ok(())
    }
    fn stop(&self, _: &str) {}
    fn output(&self, _: &str) -> Option<String> {
        None
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn compute_and_vpc_references_resolve_to_what_they_name() {
    let p = common::boot().await;
    p.app.set_host_runner(Arc::new(NoopRunner));
    let compute = "/compute/v1/projects/local-project";
    p.ok(
        Method::POST,
        &format!("{compute}/global/networks"),
        Some(json!({"name": "net", "autoCreateSubnetworks": false})),
    )
    .await;
    for (region, range) in
        [("us-central1", "10.1.0.0/24"), ("europe-west1", "10.2.0.0/24"), ("us-central1", "10.3.0.0/28")]
    {
        let name = if range.ends_with("/28") { "sub-28" } else { "sub-a" };
        let body = json!({"name": name, "network": "global/networks/net", "ipCidrRange": range});
        p.ok(Method::POST, &format!("{compute}/regions/{region}/subnetworks"), Some(body)).await;
    }
    let subnets = format!("{compute}/regions/us-central1/subnetworks");
    let zero = json!({"name": "zeros", "network": "global/networks/net", "ipCidrRange": "010.016.0.0/24"});
    expect_400(&p, Method::POST, &subnets, zero, "is invalid range").await;

    let insert = format!("{compute}/zones/us-central1-a/instances");
    let vm = |nic: Value, extra: Value| {
        let mut vm = json!({"name": "vm", "networkInterfaces": [nic],
                            "metadata": {"items": [{"key": "startup-script", "value": "sleep 1"}]}});
        for (k, v) in extra.as_object().unwrap() {
            vm[k] = v.clone();
        }
        vm
    };
    let sub_a = json!({"subnetwork": "regions/us-central1/subnetworks/sub-a"});
    let europe = json!({"subnetwork": "regions/europe-west1/subnetworks/sub-a"});
    expect_400(&p, Method::POST, &insert, vm(europe, json!({})), "region 'us-central1'").await;
    for (machine, why) in [
        ("garbage", "Machine type with name 'garbage' does not exist in zone 'us-central1-a'"),
        ("zones/us-central1-b/machineTypes/e2-small", "must be in zone 'us-central1-a'"),
        ("zones/us-central1-a/machineTypes/e2-huge", "'e2-huge' does not exist"),
    ] {
        expect_400(&p, Method::POST, &insert, vm(sub_a.clone(), json!({"machineType": machine})), why).await;
    }
    let other_zone = json!({"zone": "projects/local-project/zones/us-central1-b"});
    expect_400(&p, Method::POST, &insert, vm(sub_a.clone(), other_zone), "must be the zone of the request").await;
    let outside = json!({"subnetwork": "regions/us-central1/subnetworks/sub-a", "networkIP": "10.9.0.5"});
    expect_400(&p, Method::POST, &insert, vm(outside, json!({})), "outside the range 10.1.0.0/24").await;
    let gateway = json!({"subnetwork": "regions/us-central1/subnetworks/sub-a", "networkIP": "10.1.0.1"});
    expect_400(&p, Method::POST, &insert, vm(gateway, json!({})), "not its network, gateway or broadcast").await;
    let missing = json!({"subnetwork": "regions/us-central1/subnetworks/nope"});
    let (status, v) = p.call(Method::POST, &insert, Some(vm(missing, json!({})))).await;
    assert_eq!(
        (status, message(&v)),
        (404, "The resource 'projects/local-project/regions/us-central1/subnetworks/nope' was not found"),
        "{v}"
    );

    let machine = json!({"machineType": "zones/us-central1-a/machineTypes/e2-medium", "zone": "us-central1-a"});
    p.ok(Method::POST, &insert, Some(vm(sub_a, machine))).await;
    let i = p.ok(Method::GET, &format!("{insert}/vm"), None).await;
    assert!(i["machineType"].as_str().unwrap().ends_with("/zones/us-central1-a/machineTypes/e2-medium"), "{i}");
    let nic = &i["networkInterfaces"][0];
    assert!(nic["subnetwork"].as_str().unwrap().ends_with("/regions/us-central1/subnetworks/sub-a"), "{i}");
    assert!(nic["networkIP"].as_str().unwrap().starts_with("10.1.0."), "{i}");
    let plain = json!({"name": "vm2", "machineType": "n1-standard-1",
                       "networkInterfaces": [{"subnetwork": "sub-a"}],
                       "metadata": {"items": [{"key": "startup-script", "value": "sleep 1"}]}});
    p.ok(Method::POST, &insert, Some(plain)).await;

    // A connector on a subnet of its own project, named without `projectId`.
    let connectors = "/v1/projects/local-project/locations/us-central1/connectors";
    let op = p
        .ok(Method::POST, &format!("{connectors}?connectorId=conn"), Some(json!({"subnet": {"name": "sub-28"}})))
        .await;
    assert_eq!(op["response"]["subnet"]["projectId"], "local-project", "{op}");
}

#[tokio::test(flavor = "multi_thread")]
async fn regional_secrets_live_in_regions() {
    let p = common::boot().await;
    for path in [
        "/v1/projects/local-project/locations/mars/secrets?secretId=r5",
        "/v1/projects/local-project/locations/global1/secrets?secretId=r5",
    ] {
        expect_400(&p, Method::POST, path, json!({}), "is not a valid location").await;
    }
    let (status, v) = p.call(Method::GET, "/v1/projects/local-project/locations/mars/secrets/r5", None).await;
    assert_eq!(status, 400, "{v}");
    let (status, v) = p.call(Method::GET, "/v1/projects/local-project/locations/mars/secrets", None).await;
    assert_eq!(status, 400, "{v}");
    p.ok(Method::POST, "/v1/projects/local-project/locations/us-central1/secrets?secretId=r5", Some(json!({}))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_policy_set_racing_the_delete_of_its_resource_leaves_nothing_for_a_new_one() {
    let p = Arc::new(common::boot().await);
    let secrets = "/v1/projects/local-project/secrets";
    let grant = json!({"policy": {"bindings": [
        {"role": "roles/secretmanager.secretAccessor", "members": ["user:eve@example.com"]}]}});
    for round in 0..16 {
        let id = format!("race-{round}");
        let path = format!("{secrets}/{id}");
        let create = json!({"replication": {"automatic": {}}});
        p.ok(Method::POST, &format!("{secrets}?secretId={id}"), Some(create.clone())).await;
        together(
            &p,
            (Method::POST, format!("{path}:setIamPolicy"), Some(grant.clone())),
            (Method::DELETE, path.clone(), None),
        )
        .await;
        // A new secret of the same name starts with an empty policy: no grant outlives its resource.
        p.ok(Method::POST, &format!("{secrets}?secretId={id}"), Some(create)).await;
        let policy = p.ok(Method::GET, &format!("{path}:getIamPolicy"), None).await;
        assert!(policy.get("bindings").is_none(), "round {round}: an orphan policy came back: {policy}");
    }
}
