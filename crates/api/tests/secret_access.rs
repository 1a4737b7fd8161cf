//! The two methods the runtime calls to inject secrets into instances, [`api::App::access_secret_as`] and
//! [`api::App::check_secret_access`], against a real bootstrapped control plane (SQLite in a temporary home) whose
//! secrets are set up through its REST router.

mod common;

use axum::http::Method;
use common::Plane;
use serde_json::{json, Value};

const SA: &str = "runtime-sa@local-project.iam.gserviceaccount.com";
const OTHER: &str = "other-sa@local-project.iam.gserviceaccount.com";

async fn plane() -> Plane {
    let plane = common::boot().await;
    for id in ["runtime-sa", "other-sa"] {
        plane.ok(Method::POST, "/v1/projects/local-project/serviceAccounts", Some(json!({"accountId": id}))).await;
    }
    plane
        .ok(
            Method::POST,
            "/v1/projects/local-project/secrets?secretId=db",
            Some(json!({"replication": {"automatic": {}}})),
        )
        .await;
    plane
        .ok(
            Method::POST,
            "/v1/projects/local-project/secrets/db:addVersion",
            Some(json!({"payload": {"data": "ZGItcGFzc3dvcmQ="}})),
        )
        .await;
    let policy = json!({"policy": {"bindings": [
        {"role": "roles/secretmanager.secretAccessor", "members": [format!("serviceAccount:{SA}")]}]}});
    plane.ok(Method::POST, "/v1/projects/local-project/secrets/db:setIamPolicy", Some(policy)).await;
    plane
}

async fn access_entries(p: &Plane) -> Vec<Value> {
    let body = json!({"filter": "protoPayload.methodName:\"AccessSecretVersion\"", "orderBy": "timestamp asc"});
    let v = p.ok(Method::POST, "/v2/entries:list", Some(body)).await;
    v["entries"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn runtime_reads_are_checked_resolved_and_audited_as_the_instance_account() {
    let p = plane().await;
    let app = p.app.clone();
    let v1 = format!("projects/{}/secrets/db/versions/1", p.number());

    let (name, data) = app.access_secret_as(SA, "db", "latest").unwrap();
    assert_eq!((name.as_str(), &data[..]), (v1.as_str(), &b"db-password"[..]));
    let (name, _) = app.access_secret_as(SA, "projects/local-project/secrets/db", "1").unwrap();
    assert_eq!(name, v1);
    let (name, _) = app.access_secret_as(SA, &format!("projects/{}/secrets/db", p.number()), "latest").unwrap();
    assert_eq!(name, v1);

    let e = app.access_secret_as(OTHER, "db", "latest").unwrap_err();
    assert_eq!(e.http_status(), 403);
    assert_eq!(
        e.message,
        "Permission 'secretmanager.versions.access' denied for resource 'projects/local-project/secrets/db/versions/latest' (or it may not exist)."
    );
    let e = app.access_secret_as(SA, "missing", "latest").unwrap_err();
    assert_eq!(e.http_status(), 403, "no access to a secret that does not exist: {e}");
    assert_eq!(app.access_secret_as(SA, "bad.id", "latest").unwrap_err().http_status(), 400);

    // Resolving without reading: same IAM check, no Data Access entry.
    assert_eq!(app.secret_version_as(SA, "db", "latest").unwrap(), v1);
    assert_eq!(app.secret_version_as(OTHER, "db", "latest").unwrap_err().http_status(), 403);
    assert_eq!(app.secret_version_as(SA, "db", "7").unwrap_err().http_status(), 404);

    p.ok(Method::POST, "/v1/projects/local-project/secrets/db/versions/1:disable", Some(json!({}))).await;
    let e = app.access_secret_as(SA, "db", "latest").unwrap_err();
    assert_eq!((e.http_status(), e.code.as_str()), (400, "FAILED_PRECONDITION"));
    assert_eq!(e.message, format!("Secret Version [{v1}] is in DISABLED state."));
    p.ok(Method::POST, "/v1/projects/local-project/secrets/db/versions/1:destroy", Some(json!({}))).await;
    let e = app.access_secret_as(SA, "db", "1").unwrap_err();
    assert_eq!(e.message, format!("Secret Version [{v1}] is in DESTROYED state."));

    // Every read above is a Data Access entry as the instance's account, from `private`, with the resolved version.
    let reads = access_entries(&p).await;
    assert_eq!(reads.len(), 7, "one per read that named a secret (not the malformed one): {reads:#?}");
    let first = &reads[0]["protoPayload"];
    assert_eq!(first["authenticationInfo"]["principalEmail"], SA);
    assert_eq!(first["requestMetadata"]["callerIp"], "private");
    assert_eq!(first["resourceName"], v1);
    assert_eq!(first["authorizationInfo"][0]["granted"], true);
    assert_eq!(first["authorizationInfo"][0]["permissionType"], "DATA_READ");
    let denied = &reads[3]["protoPayload"];
    assert_eq!(denied["authenticationInfo"]["principalEmail"], OTHER);
    assert_eq!(denied["authorizationInfo"][0]["granted"], false);
    assert_eq!(denied["status"]["code"], 7);
    assert_eq!(reads[6]["protoPayload"]["status"]["code"], 9);
}

#[tokio::test(flavor = "multi_thread")]
async fn deploy_checks_answer_403_or_404_and_write_no_data_read() {
    let p = plane().await;
    let app = p.app.clone();
    app.check_secret_access(SA, "db").unwrap();
    app.check_secret_access(SA, "projects/local-project/secrets/db").unwrap();
    let e = app.check_secret_access(OTHER, "db").unwrap_err();
    assert_eq!(e.http_status(), 403);
    assert_eq!(
        e.message,
        "Permission 'secretmanager.versions.access' denied for resource 'projects/local-project/secrets/db' (or it may not exist)."
    );
    assert_eq!(app.check_secret_access(SA, "missing").unwrap_err().http_status(), 403);
    // With access at project level, a missing secret is a 404.
    let mut policy = p.ok(Method::POST, "/v1/projects/local-project:getIamPolicy", Some(json!({}))).await;
    policy["bindings"]
        .as_array_mut()
        .unwrap()
        .push(json!({"role": "roles/secretmanager.secretAccessor", "members": [format!("serviceAccount:{OTHER}")]}));
    p.ok(Method::POST, "/v1/projects/local-project:setIamPolicy", Some(json!({"policy": policy}))).await;
    app.check_secret_access(OTHER, "db").unwrap();
    let e = app.check_secret_access(OTHER, "missing").unwrap_err();
    assert_eq!(
        (e.http_status(), e.message.as_str()),
        (404, &*format!("Secret [projects/{}/secrets/missing] not found.", p.number()))
    );
    // A disabled account reads nothing.
    p.ok(Method::POST, &format!("/v1/projects/-/serviceAccounts/{SA}:disable"), Some(json!({}))).await;
    assert_eq!(app.check_secret_access(SA, "db").unwrap_err().http_status(), 403);
    assert_eq!(app.access_secret_as(SA, "db", "latest").unwrap_err().http_status(), 403);
    assert_eq!(access_entries(&p).await.len(), 1, "only the refused read is recorded, not the checks");
}
