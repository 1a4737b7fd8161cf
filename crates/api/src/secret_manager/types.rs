//! Secret Manager v1 messages (`Secret`, `SecretVersion`) as stored and as answered, and the checks on request bodies.
//!
//! Enums are accepted as names or integers and answered as names, or as integers when the request asked for
//! `$alt=json;enum-encoding=int` (the Python client does).

use model::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// `SecretVersion.State`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub(crate) enum State {
    Enabled,
    Disabled,
    /// Final: no transition leaves it, and the sealed data is gone.
    Destroyed,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Enabled => "ENABLED",
            State::Disabled => "DISABLED",
            State::Destroyed => "DESTROYED",
        }
    }

    pub fn number(self) -> i64 {
        match self {
            State::Enabled => 1,
            State::Disabled => 2,
            State::Destroyed => 3,
        }
    }
}

/// `google.cloud.secretmanager.v1.Secret` (the fields Gatehouse keeps).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Secret {
    /// `projects/NUMBER[/locations/L]/secrets/ID`.
    pub name: String,
    /// `{"automatic": {}}` for global secrets; absent for regional ones, as Google's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication: Option<Value>,
    pub create_time: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub etag: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub version_aliases: BTreeMap<String, i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// A secret as stored: the message plus the number `latest` resolves to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredSecret {
    pub secret: Secret,
    /// The newest version's number (0: no version yet). Version numbers are never reused, even after destroy.
    pub latest_version: u64,
}

/// `google.cloud.secretmanager.v1.SecretVersion` (the fields Gatehouse keeps).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretVersion {
    /// `projects/NUMBER[/locations/L]/secrets/ID/versions/N`.
    pub name: String,
    pub create_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destroy_time: Option<String>,
    pub state: State,
    pub etag: String,
    pub client_specified_payload_checksum: bool,
    /// True for regional secrets (no `replicationStatus` there).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub regional: bool,
}

/// A version as stored: the message, the payload's CRC32C, and the sealed payload (gone once destroyed).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct StoredVersion {
    pub version: SecretVersion,
    pub data_crc32c: u32,
    /// INVARIANT: `None` exactly when the state is DESTROYED; never plaintext.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<secrets::Sealed>,
}

/// Whether the caller asked for enums as numbers (`$alt=json;enum-encoding=int`).
pub(crate) fn wants_int_enums(alt: Option<&str>) -> bool {
    alt.is_some_and(|a| a.split(';').any(|p| p.trim() == "enum-encoding=int"))
}

impl SecretVersion {
    /// The version as the API answers it.
    pub fn to_json(&self, int_enums: bool) -> Value {
        let mut v = json!({
            "name": self.name,
            "createTime": self.create_time,
            "state": if int_enums { json!(self.state.number()) } else { json!(self.state.name()) },
            "etag": self.etag,
            "clientSpecifiedPayloadChecksum": self.client_specified_payload_checksum,
        });
        if !self.regional {
            v["replicationStatus"] = json!({ "automatic": {} });
        }
        if let Some(t) = &self.destroy_time {
            v["destroyTime"] = json!(t);
        }
        v
    }
}

impl Secret {
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self).unwrap_or_else(|_| json!({}))
    }
}

/// Fields of `Secret` a client may send and Gatehouse does not implement: refused rather than silently ignored.
const UNSUPPORTED: &[(&str, &str)] = &[
    ("topics", "Pub/Sub notifications"),
    ("expireTime", "secret expiration"),
    ("ttl", "secret expiration"),
    ("rotation", "rotation schedules"),
    ("versionDestroyTtl", "delayed destruction"),
    ("customerManagedEncryption", "customer-managed encryption keys"),
    ("tags", "tags"),
];

/// Output-only fields a client may echo back from a get; ignored.
const ECHOED: &[&str] = &["name", "createTime", "etag", "secretType"];

/// The user-settable fields of a `Secret` body.
#[derive(Debug, Default, PartialEq)]
pub(crate) struct SecretFields {
    pub replication: Option<Value>,
    pub labels: Option<BTreeMap<String, String>>,
    pub annotations: Option<BTreeMap<String, String>>,
    pub version_aliases: Option<BTreeMap<String, i64>>,
}

/// Reads a `Secret` body; unknown fields and unsupported features are refused with a message that names them.
pub(crate) fn secret_fields(body: &Value) -> Result<SecretFields, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::invalid("Invalid JSON payload received. The secret must be a JSON object."));
    };
    let mut out = SecretFields::default();
    for (key, value) in obj {
        match key.as_str() {
            "replication" => out.replication = Some(value.clone()),
            "labels" => out.labels = Some(string_map(key, value)?),
            "annotations" => out.annotations = Some(string_map(key, value)?),
            "versionAliases" => out.version_aliases = Some(aliases(value)?),
            k if ECHOED.contains(&k) => {}
            k => {
                if let Some((_, what)) = UNSUPPORTED.iter().find(|(f, _)| *f == k) {
                    return Err(ApiError::invalid(format!(
                        "`{k}` ({what}) is not supported by Gatehouse's Secret Manager; leave the field out"
                    )));
                }
                return Err(ApiError::invalid(format!(
                    "Invalid JSON payload received. Unknown name \"{k}\" at 'secret': Cannot find field."
                )));
            }
        }
    }
    Ok(out)
}

fn string_map(field: &str, v: &Value) -> Result<BTreeMap<String, String>, ApiError> {
    let map: BTreeMap<String, String> = match v {
        Value::Null => BTreeMap::new(),
        other => serde_json::from_value(other.clone())
            .map_err(|_| ApiError::invalid(format!("`{field}` must be a map of strings to strings")))?,
    };
    Ok(map)
}

fn aliases(v: &Value) -> Result<BTreeMap<String, i64>, ApiError> {
    let Some(obj) = v.as_object() else {
        return if v.is_null() {
            Ok(BTreeMap::new())
        } else {
            Err(ApiError::invalid("`versionAliases` must be a map of alias names to version numbers"))
        };
    };
    let mut out = BTreeMap::new();
    for (alias, n) in obj {
        if !super::names::valid_alias(alias) {
            return Err(ApiError::invalid(format!(
                "invalid version alias `{alias}`: use 1-63 letters, digits, `_` and `-`, not only digits; `latest` and \
                 `NEW` are reserved"
            )));
        }
        let n = int64(n).filter(|n| *n >= 1).ok_or_else(|| {
            ApiError::invalid(format!("version alias `{alias}` must name a version number (1 or more)"))
        })?;
        out.insert(alias.clone(), n);
    }
    Ok(out)
}

/// An int64 as proto3 JSON carries it: a decimal string, or a number.
pub(crate) fn int64(v: &Value) -> Option<i64> {
    match v {
        Value::String(s) => s.trim().parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Checks labels against Google's rules: at most 64; keys 1-63 characters of lowercase letters, digits, `_` and `-`,
/// starting with a lowercase letter; values 0-63 of the same characters.
pub(crate) fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if labels.len() > 64 {
        return Err(ApiError::invalid(format!("a secret has at most 64 labels; {} were given", labels.len())));
    }
    let ok_chars = |s: &str| s.chars().all(|c| c.is_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    for (k, v) in labels {
        let key_ok = (1..=63).contains(&k.chars().count()) && k.starts_with(|c: char| c.is_lowercase()) && ok_chars(k);
        if !key_ok {
            return Err(ApiError::invalid(format!(
                "invalid label key `{k}`: use 1-63 lowercase letters, digits, `_` and `-`, starting with a letter"
            )));
        }
        if v.chars().count() > 63 || !ok_chars(v) {
            return Err(ApiError::invalid(format!(
                "invalid value for label `{k}`: use at most 63 lowercase letters, digits, `_` and `-`"
            )));
        }
    }
    Ok(())
}

/// Checks the replication policy of a new secret: automatic only (user-managed replicas are one place here).
pub(crate) fn check_replication(replication: Option<&Value>, regional: bool) -> Result<Option<Value>, ApiError> {
    if regional {
        return match replication {
            None | Some(Value::Null) => Ok(None),
            Some(_) => {
                Err(ApiError::invalid("a regional secret takes no `replication`; its location is part of its name"))
            }
        };
    }
    let Some(r) = replication.and_then(Value::as_object) else {
        return Err(ApiError::invalid("Secret.replication is required; send `\"replication\": {\"automatic\": {}}`"));
    };
    if r.contains_key("userManaged") || r.contains_key("user_managed") {
        return Err(ApiError::invalid(
            "user-managed replication is not supported by Gatehouse (one machine holds every replica); use \
             `\"replication\": {\"automatic\": {}}`",
        ));
    }
    match r.get("automatic") {
        Some(Value::Object(a)) if a.keys().all(|k| k == "customerManagedEncryption") => {
            if a.contains_key("customerManagedEncryption") {
                return Err(ApiError::invalid(
                    "`customerManagedEncryption` (customer-managed encryption keys) is not supported by Gatehouse's \
                     Secret Manager; leave the field out",
                ));
            }
            Ok(Some(json!({ "automatic": {} })))
        }
        _ => Err(ApiError::invalid("Secret.replication must be `{\"automatic\": {}}`")),
    }
}

/// A version with its alias-free name, for list answers that must be newest first.
pub(crate) fn newest_first(mut versions: Vec<StoredVersion>) -> Vec<StoredVersion> {
    versions.sort_by_key(|v| std::cmp::Reverse(version_number(&v.version.name)));
    versions
}

pub(crate) fn version_number(name: &str) -> u64 {
    name.rsplit('/').next().and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// One page of a Secret Manager list (`crate::paging`: pageSize 0 is the server's choice, above 25,000 capped, as
/// Secret Manager documents) with its `totalSize`.
pub(crate) fn page(
    items: Vec<Value>,
    page_size: Option<&str>,
    page_token: Option<&str>,
    field: &str,
) -> Result<Value, ApiError> {
    let total = items.len();
    let mut out = crate::paging::page(items, page_size, page_token, field, 25_000, 25_000)?;
    if total > 0 {
        out.insert("totalSize".into(), json!(total));
    }
    Ok(Value::Object(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replication_is_automatic_only() {
        assert_eq!(check_replication(Some(&json!({"automatic": {}})), false).unwrap(), Some(json!({"automatic": {}})));
        let e = check_replication(Some(&json!({"userManaged": {"replicas": [{"location": "us-east1"}]}})), false);
        assert!(e.unwrap_err().message.contains("user-managed replication is not supported"));
        assert!(check_replication(None, false).unwrap_err().message.contains("replication is required"));
        assert_eq!(check_replication(None, true).unwrap(), None);
        assert!(check_replication(Some(&json!({"automatic": {}})), true).is_err());
    }

    #[test]
    fn bodies_refuse_unknown_and_unsupported_fields() {
        let f =
            secret_fields(&json!({"replication": {"automatic": {}}, "labels": {"env": "prod"}, "name": "x"})).unwrap();
        assert_eq!(f.labels.unwrap()["env"], "prod");
        assert!(secret_fields(&json!({"ttl": "3600s"})).unwrap_err().message.contains("`ttl`"));
        assert!(secret_fields(&json!({"colour": 1})).unwrap_err().message.contains("Unknown name \"colour\""));
        let f = secret_fields(&json!({"versionAliases": {"prod": "2"}})).unwrap();
        assert_eq!(f.version_aliases.unwrap()["prod"], 2);
        assert!(secret_fields(&json!({"versionAliases": {"latest": 1}})).is_err());
        assert!(secret_fields(&json!({"versionAliases": {"x": 0}})).is_err());
    }

    #[test]
    fn labels_follow_googles_rules() {
        let l = |k: &str, v: &str| BTreeMap::from([(k.to_owned(), v.to_owned())]);
        assert!(check_labels(&l("env", "prod-1")).is_ok());
        assert!(check_labels(&l("env", "")).is_ok());
        for (k, v) in [("Env", "x"), ("1env", "x"), ("", "x"), ("env", "Prod"), ("env", "a b")] {
            assert!(check_labels(&l(k, v)).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn versions_answer_int_enums_when_asked() {
        let v = SecretVersion {
            name: "projects/1/secrets/s/versions/2".into(),
            create_time: "t".into(),
            destroy_time: None,
            state: State::Disabled,
            etag: "\"e\"".into(),
            client_specified_payload_checksum: true,
            regional: false,
        };
        assert_eq!(v.to_json(false)["state"], "DISABLED");
        assert_eq!(v.to_json(true)["state"], 2);
        assert_eq!(v.to_json(false)["replicationStatus"], json!({"automatic": {}}));
        assert!(wants_int_enums(Some("json;enum-encoding=int")));
        assert!(!wants_int_enums(Some("json")));
        assert_eq!(version_number(&v.name), 2);
    }

    #[test]
    fn pages_slice_and_count() {
        let items: Vec<Value> = (0..5).map(|i| json!(i)).collect();
        let p = page(items.clone(), Some("2"), Some("2"), "xs").unwrap();
        assert_eq!(p["xs"], json!([2, 3]));
        assert_eq!(p["nextPageToken"], "4");
        assert_eq!(p["totalSize"], 5);
        assert_eq!(page(Vec::new(), None, None, "xs").unwrap(), json!({}));
        // As Secret Manager documents: 0 is the server's choice, more than 25,000 is capped.
        assert_eq!(page(items.clone(), Some("0"), None, "xs").unwrap()["xs"], json!([0, 1, 2, 3, 4]));
        let many: Vec<Value> = (0..25_001).map(|i| json!(i)).collect();
        let capped = page(many, Some("99999999999"), None, "xs").unwrap();
        assert_eq!(capped["xs"].as_array().unwrap().len(), 25_000);
        assert_eq!(capped["nextPageToken"], "25000");
        assert!(page(items, Some("-1"), None, "xs").is_err());
    }
}
