//! `$GATEHOUSE_HOME`: where the platform keeps its state and the CLI its configuration and credentials.
//!
//! Layout: `state.db` (the platform's store), `daemon.json` (how to reach the running platform), `operator.key`
//! (0600; lets the CLI log in local accounts), `config.json` (properties), `credentials.json` (0600; refresh
//! credentials and cached access tokens per account).

use anyhow::{anyhow, Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub struct Home {
    pub dir: PathBuf,
}

/// `daemon.json`, written by `up` when it is ready.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DaemonInfo {
    pub api: String,
    pub gateway: String,
    /// The listener that stands for the external Application Load Balancer (routes by `Host`); `load_balancer`,
    /// as the network issue names it.
    #[serde(default, rename = "load_balancer")]
    pub load_balancer: String,
    /// The simulated internet host that answers with the caller's address (reachable from inside instances).
    #[serde(default, rename = "internet_echo", skip_serializing_if = "String::is_empty")]
    pub internet_echo: String,
    /// Inside an instance: the metadata server the CLI takes its credentials from (as gcloud does on Cloud Run);
    /// the daemon's `pid` is not visible there.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub metadata: String,
    /// Whether instances run in sandboxes, so that ingress, egress and `--memory`/`--cpu` are enforced (the advisor's
    /// `sandbox-disabled` reads it).
    #[serde(default, rename = "network_controls_enforced")]
    pub network_controls_enforced: bool,
    pub pid: u32,
    pub project: String,
    pub project_number: String,
    pub region: String,
    /// JWKS of the ID-token issuer (like `https://www.googleapis.com/oauth2/v3/certs`).
    #[serde(default)]
    pub jwks: String,
    /// PEM certificates of the issuer (like `https://www.googleapis.com/oauth2/v1/certs`).
    #[serde(default)]
    pub certs: String,
    /// `iss` of the platform's ID tokens.
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub version: String,
}

/// One account's credentials in `credentials.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct Credential {
    pub refresh_token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_token: String,
    #[serde(default)]
    pub access_token_expires_at: i64,
}

impl Home {
    pub fn locate() -> Result<Home> {
        let dir = match std::env::var_os("GATEHOUSE_HOME").filter(|v| !v.is_empty()) {
            Some(d) => PathBuf::from(d),
            None => {
                let home = std::env::var_os("HOME").ok_or_else(|| anyhow!("set GATEHOUSE_HOME or HOME"))?;
                PathBuf::from(home).join(".gatehouse")
            }
        };
        Ok(Home { dir })
    }

    pub fn ensure_dir(&self) -> Result<()> {
        fs::create_dir_all(&self.dir).with_context(|| format!("cannot create `{}`", self.dir.display()))?;
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
            .with_context(|| format!("cannot set permissions of `{}`", self.dir.display()))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The running platform, or a one-line error that says to start one.
    pub fn daemon(&self) -> Result<DaemonInfo> {
        let path = self.path("daemon.json");
        let not_running = || {
            anyhow!(
                "no Gatehouse platform is running for GATEHOUSE_HOME={}; start one with `gatehouse up`",
                self.dir.display()
            )
        };
        let text = fs::read_to_string(&path).map_err(|_| not_running())?;
        let info: DaemonInfo = serde_json::from_str(&text).map_err(|_| not_running())?;
        if info.metadata.is_empty() && !Path::new(&format!("/proc/{}", info.pid)).exists() {
            return Err(not_running());
        }
        Ok(info)
    }

    pub fn config(&self) -> BTreeMap<String, String> {
        fs::read_to_string(self.path("config.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    pub fn save_config(&self, config: &BTreeMap<String, String>) -> Result<()> {
        self.write_private("config.json", &serde_json::to_vec_pretty(config)?)
    }

    pub fn credentials(&self) -> BTreeMap<String, Credential> {
        fs::read_to_string(self.path("credentials.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default()
    }

    /// Reads, changes and writes `credentials.json` (atomically; mode 0600).
    pub fn update_credentials(&self, f: impl FnOnce(&mut BTreeMap<String, Credential>)) -> Result<()> {
        let mut creds = self.credentials();
        f(&mut creds);
        self.write_private("credentials.json", &serde_json::to_vec_pretty(&creds)?)
    }

    /// Writes `name` in the home atomically with mode 0600.
    pub fn write_private(&self, name: &str, bytes: &[u8]) -> Result<()> {
        self.ensure_dir()?;
        self.write_private_at(&self.path(name), bytes)
    }

    /// Writes `path` atomically with mode 0600: a temporary file beside it, renamed over the old one.
    pub fn write_private_at(&self, path: &Path, bytes: &[u8]) -> Result<()> {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path).with_context(|| format!("cannot write `{}`", path.display()))
    }

    pub fn operator_key(&self) -> Result<String> {
        let key = fs::read_to_string(self.path("operator.key")).map_err(|_| {
            anyhow!(
                "cannot read the operator key `{}`; it is created by `gatehouse up`",
                self.path("operator.key").display()
            )
        })?;
        Ok(key.trim().to_owned())
    }
}

/// The properties `config` knows: (the key in `config.json`, gcloud's `SECTION/NAME`). `run/region` is kept as
/// `region`, as earlier homes have it; `compute/region` and `compute/zone` are compute commands' defaults for
/// `--region` and `--zone`, as in gcloud.
const PROPERTIES: [(&str, &str); 5] = [
    ("account", "core/account"),
    ("project", "core/project"),
    ("region", "run/region"),
    ("compute/region", "compute/region"),
    ("compute/zone", "compute/zone"),
];

/// Maps a gcloud property name to its key in `config.json`: `core/account` and `account` → `account`, `run/region`
/// and `region` → `region`, `compute/zone` → `compute/zone`.
pub fn property_name(name: &str) -> Result<&'static str> {
    PROPERTIES
        .iter()
        .find(|(key, full)| name == *full || (name == *key && !key.contains('/')))
        .map(|(key, _)| *key)
        .ok_or_else(|| {
            let known: Vec<&str> = PROPERTIES.iter().map(|(_, full)| *full).collect();
            anyhow!(
                "unknown property `{name}`; Gatehouse knows {} (`account`, `project` and `region` also work alone)",
                known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
            )
        })
}

/// gcloud's `SECTION/NAME` of a key in `config.json` (`region` → `run/region`).
pub fn property_full_name(key: &str) -> &str {
    PROPERTIES.iter().find(|(k, _)| *k == key).map_or(key, |(_, full)| full)
}

/// Reads a JSON or YAML file into a JSON value.
pub fn read_structured(path: &Path) -> Result<Value> {
    let text = fs::read_to_string(path).with_context(|| format!("cannot read `{}`", path.display()))?;
    if let Ok(v) = serde_json::from_str(&text) {
        return Ok(v);
    }
    serde_yaml::from_str(&text).map_err(|e| anyhow!("`{}` is neither JSON nor YAML: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gcloud_property_names_map_to_their_keys() {
        for (name, key, full) in [
            ("account", "account", "core/account"),
            ("core/project", "project", "core/project"),
            ("region", "region", "run/region"),
            ("run/region", "region", "run/region"),
            ("compute/region", "compute/region", "compute/region"),
            ("compute/zone", "compute/zone", "compute/zone"),
        ] {
            assert_eq!(property_name(name).unwrap(), key, "{name}");
            assert_eq!(property_full_name(key), full, "{name}");
        }
        for unknown in ["zone", "core/zone", "run/zone", "compute/project"] {
            let e = property_name(unknown).unwrap_err().to_string();
            assert!(e.contains(&format!("unknown property `{unknown}`")) && e.contains("`compute/zone`"), "{e}");
        }
    }
}
