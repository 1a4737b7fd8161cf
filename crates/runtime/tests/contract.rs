//! The container contract seen from inside an instance. Its own test binary, so that it can put variables into the
//! daemon's (this process's) environment without racing other tests, and check none of them leaks.

mod common;

use std::collections::BTreeSet;

use common::*;

#[tokio::test]
async fn instance_env_is_the_contract_and_nothing_of_the_daemon() {
    // Edition 2021, single-test binary: nothing else reads the environment concurrently.
    std::env::set_var("GATEHOUSE_HOME", "/should/not/leak");
    std::env::set_var("DAEMON_SECRET", "should-not-leak");

    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(config());
    rt.deploy(server_spec("env-svc", "env-svc-00001-abc", dir.path())).await.expect("deploy");
    let lease = rt.acquire("env-svc").await.expect("lease");
    let body = get_json(lease.addr, "/").await;
    let env = body["env"].as_object().expect("env object");
    let var = |k: &str| env.get(k).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("{k} missing: {env:?}"));

    assert_eq!(var("PORT"), lease.addr.port().to_string());
    assert_eq!(var("K_SERVICE"), "env-svc");
    assert_eq!(var("K_REVISION"), "env-svc-00001-abc");
    assert_eq!(var("K_CONFIGURATION"), "env-svc");
    assert_eq!(var("GREETING"), "hello world");
    assert_eq!(var("LANG"), "C.UTF-8");
    assert!(var("PATH").starts_with("/usr/local/bin:/usr/bin:/bin"), "{}", var("PATH"));
    let md = var("GCE_METADATA_HOST").to_string();
    assert_eq!(var("GCE_METADATA_IP"), md);
    assert_eq!(var("GCE_METADATA_ROOT"), md);
    assert!(md.starts_with("127.0.0.1:"), "{md}");
    assert!(!var("HOME").is_empty());
    assert_eq!(body["cwd"].as_str().unwrap(), dir.path().canonicalize().unwrap().to_str().unwrap());

    let keys: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    let allowed: BTreeSet<&str> = [
        "PATH",
        "HOME",
        "LANG",
        "PORT",
        "K_SERVICE",
        "K_REVISION",
        "K_CONFIGURATION",
        "GREETING",
        "GCE_METADATA_HOST",
        "GCE_METADATA_IP",
        "GCE_METADATA_ROOT",
    ]
    .into();
    assert!(keys.is_subset(&allowed), "unexpected variables: {:?}", keys.difference(&allowed).collect::<Vec<_>>());
    assert!(!keys.contains("GATEHOUSE_HOME") && !keys.contains("DAEMON_SECRET"));

    // The instance's own metadata server answers for the revision's account, with the instance's id.
    let client = reqwest::Client::new();
    let ask = |path: &str| {
        client.get(format!("http://{md}/computeMetadata/v1/{path}")).header("Metadata-Flavor", "Google").send()
    };
    let email = ask("instance/service-accounts/default/email").await.unwrap().text().await.unwrap();
    assert_eq!(email, EMAIL);
    let id = ask("instance/id").await.unwrap().text().await.unwrap();
    assert_eq!(id, lease.instance);
    assert_eq!(id.len(), 19);

    drop(lease);
    rt.shutdown().await;
    // The metadata server stopped with its instance.
    assert!(
        eventually(std::time::Duration::from_secs(5), || std::net::TcpStream::connect(&md).is_err()).await,
        "the metadata server outlived its instance"
    );
}
