//! The container contract (PROTOCOL.md §10.1): the exact, clean environment an instance starts with.
//!
//! **Architecture Invariant:** nothing of the daemon's environment reaches an instance except `PATH` (so that
//! interpreters given by absolute path inside a venv, or found on the user's PATH, still run). In particular
//! `GATEHOUSE_HOME` and any credentials in the daemon's environment never leak.

use std::net::SocketAddr;
use std::path::Path;

use crate::RevisionSpec;

/// The standard directories every instance's `PATH` starts with.
pub(crate) const STANDARD_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The environment of one instance. `daemon_path` is the daemon's `PATH`, appended after the standard directories.
/// `metadata`: where the metadata server is when it is not at `169.254.169.254:80` (no sandbox), told to google-auth
/// and gcloud through `GCE_METADATA_*`; in a sandbox nothing is set, as on Cloud Run.
pub(crate) fn environment(
    spec: &RevisionSpec,
    port: u16,
    metadata: Option<SocketAddr>,
    home: &Path,
    daemon_path: Option<&str>,
) -> Vec<(String, String)> {
    let path = match daemon_path {
        Some(p) if !p.is_empty() => format!("{STANDARD_PATH}:{p}"),
        _ => STANDARD_PATH.to_string(),
    };
    let mut env = vec![
        ("PATH".to_string(), path),
        ("HOME".to_string(), home.display().to_string()),
        ("LANG".to_string(), "C.UTF-8".to_string()),
    ];
    // User variables first, so that a contract variable always wins even if validation upstream ever slips.
    env.extend(spec.env.iter().cloned());
    env.extend([
        ("PORT".to_string(), port.to_string()),
        ("K_SERVICE".to_string(), spec.service.clone()),
        ("K_REVISION".to_string(), spec.revision.clone()),
        ("K_CONFIGURATION".to_string(), spec.configuration.clone()),
    ]);
    if let Some(metadata) = metadata {
        // google-auth reads GCE_METADATA_HOST / GCE_METADATA_ROOT as host:port, GCE_METADATA_IP for its ping.
        let metadata = metadata.to_string();
        env.extend(
            ["GCE_METADATA_HOST", "GCE_METADATA_IP", "GCE_METADATA_ROOT"].map(|k| (k.to_string(), metadata.clone())),
        );
    }
    env
}

/// A fresh 19-digit instance id (Cloud Run instance ids in the metadata server are long digit strings).
pub(crate) fn new_instance_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher
        .write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos());
    const LOW: u64 = 1_000_000_000_000_000_000; // 10^18: the smallest 19-digit number
    (LOW + hasher.finish() % (9 * LOW)).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Workload;
    use std::time::Duration;

    fn spec() -> RevisionSpec {
        RevisionSpec {
            service: "hello".into(),
            revision: "hello-00001-abc".into(),
            configuration: "hello".into(),
            workload: Workload::Sample,
            env: vec![("GREETING".into(), "hi".into()), ("PORT".into(), "1".into())],
            secret_env: vec![],
            secret_files: vec![],
            min_instances: 0,
            max_instances: 1,
            concurrency: 1,
            request_timeout: Duration::from_secs(1),
            identity: metadata::Identity {
                email: "sa@p.iam.gserviceaccount.com".into(),
                project_id: "p".into(),
                project_number: "1".into(),
                region: "us-central1".into(),
                zone: "us-central1-1".into(),
                instance_id: "0".into(),
                scopes: metadata::Identity::default_scopes(),
            },
            port: 8080,
            limits: crate::Limits::default(),
            egress: crate::Egress::default(),
        }
    }

    fn last<'a>(env: &'a [(String, String)], key: &str) -> Option<&'a str> {
        env.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn environment_follows_the_contract() {
        let md: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let env = environment(&spec(), 8080, Some(md), Path::new("/tmp/x"), Some("/opt/venv/bin"));
        assert_eq!(last(&env, "PORT"), Some("8080"), "the contract PORT wins over a user PORT");
        assert_eq!(last(&env, "K_SERVICE"), Some("hello"));
        assert_eq!(last(&env, "K_REVISION"), Some("hello-00001-abc"));
        assert_eq!(last(&env, "K_CONFIGURATION"), Some("hello"));
        assert_eq!(last(&env, "GREETING"), Some("hi"));
        assert_eq!(last(&env, "HOME"), Some("/tmp/x"));
        assert_eq!(last(&env, "PATH"), Some("/usr/local/bin:/usr/bin:/bin:/opt/venv/bin"));
        for key in ["GCE_METADATA_HOST", "GCE_METADATA_IP", "GCE_METADATA_ROOT"] {
            assert_eq!(last(&env, key), Some("127.0.0.1:4242"));
        }
        assert!(last(&env, "GATEHOUSE_HOME").is_none());
        assert_eq!(environment(&spec(), 1, Some(md), Path::new("/"), None)[0].1, STANDARD_PATH);
        let sandboxed = environment(&spec(), 8080, None, Path::new("/tmp"), None);
        assert!(sandboxed.iter().all(|(k, _)| !k.starts_with("GCE_METADATA")), "{sandboxed:?}");
    }

    #[test]
    fn instance_ids_have_19_digits_and_differ() {
        let a = new_instance_id();
        let b = new_instance_id();
        assert_eq!(a.len(), 19);
        assert!(a.bytes().all(|c| c.is_ascii_digit()));
        assert_ne!(a, b);
    }
}
