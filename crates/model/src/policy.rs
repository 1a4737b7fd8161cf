//! IAM policy JSON (`google.iam.v1.Policy`): version, etag, bindings, conditions.
//!
//! Parsing here checks shape only (members, role syntax, version rules). Whether a role exists and whether a condition
//! is in the supported CEL subset is the `iam` crate's call.

use crate::member::Member;
use serde::{Deserialize, Serialize};

/// A condition on a binding (`google.type.Expr`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Expr {
    #[serde(default)]
    pub expression: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub title: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub location: String,
}

/// One binding: a role granted to members, optionally under a condition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Binding {
    pub role: String,
    #[serde(default)]
    pub members: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Expr>,
}

/// Audit configuration, kept as given (Data Access logs are switched on through it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditConfig {
    pub service: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_log_configs: Vec<serde_json::Value>,
}

/// A whole policy as `getIamPolicy` returns it and `setIamPolicy` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    #[serde(default, skip_serializing_if = "is_zero")]
    pub version: i32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bindings: Vec<Binding>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub audit_configs: Vec<AuditConfig>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub etag: String,
}

fn is_zero(v: &i32) -> bool {
    *v == 0
}

/// Why a policy was rejected; the message names the binding and member at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// The read log types `auditConfigs` switch (`AuditLogConfig.LogType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadLog {
    AdminRead,
    DataRead,
}

impl ReadLog {
    fn matches(self, log_type: &serde_json::Value) -> bool {
        let (name, number) = match self {
            ReadLog::AdminRead => ("ADMIN_READ", 1),
            ReadLog::DataRead => ("DATA_READ", 3),
        };
        match log_type {
            serde_json::Value::String(s) => s == name,
            serde_json::Value::Number(n) => n.as_i64() == Some(number),
            _ => false,
        }
    }
}

impl Policy {
    /// Whether a permitted read of type `log` on `service` by `member` is logged, by this (project) policy's
    /// `auditConfigs` with Google's semantics: `None` when no entry names `service` or `allServices` (the service's
    /// default applies); otherwise whether one of their `auditLogConfigs` enables `log` (by name or number) without
    /// exempting `member` (compared without case). An empty `member` asks about the service as a whole.
    pub fn read_logged(&self, service: &str, log: ReadLog, member: &str) -> Option<bool> {
        let mut configs =
            self.audit_configs.iter().filter(|c| c.service == service || c.service == "allServices").peekable();
        configs.peek()?;
        let mut enabled = false;
        for item in configs.flat_map(|c| &c.audit_log_configs).filter(|item| log.matches(&item["logType"])) {
            let exempt = item["exemptedMembers"].as_array().into_iter().flatten().filter_map(|m| m.as_str());
            if exempt.into_iter().any(|m| m.eq_ignore_ascii_case(member)) {
                return Some(false);
            }
            enabled = true;
        }
        Some(enabled)
    }

    /// Parses policy JSON and checks its shape (member syntax, role syntax, version rules).
    pub fn from_json(bytes: &[u8]) -> Result<Policy, PolicyError> {
        let policy: Policy =
            serde_json::from_slice(bytes).map_err(|e| PolicyError(format!("invalid policy JSON: {e}")))?;
        policy.validate()?;
        Ok(policy)
    }

    /// Checks everything that does not need the role catalogue.
    pub fn validate(&self) -> Result<(), PolicyError> {
        if ![0, 1, 3].contains(&self.version) {
            return Err(PolicyError(format!("invalid policy version `{}`; use 1 or 3", self.version)));
        }
        if self.bindings.len() > 1500 {
            return Err(PolicyError("a policy holds at most 1500 bindings".into()));
        }
        for binding in &self.bindings {
            validate_role_name(&binding.role).map_err(PolicyError)?;
            if binding.members.is_empty() {
                return Err(PolicyError(format!("binding for `{}` has no members", binding.role)));
            }
            for m in &binding.members {
                Member::parse(m).map_err(|e| PolicyError(e.to_string()))?;
            }
            if binding.condition.is_some() && self.version != 3 {
                return Err(PolicyError(format!(
                    "binding for `{}` has a condition, which needs policy version 3 (got {})",
                    binding.role, self.version
                )));
            }
        }
        Ok(())
    }

    /// Adds `member` to the binding of `role` with the same condition, creating it if needed. Returns false if it was there.
    pub fn add_binding(&mut self, role: &str, member: &str, condition: Option<Expr>) -> bool {
        if condition.is_some() {
            self.version = 3;
        }
        if let Some(b) = self.bindings.iter_mut().find(|b| b.role == role && b.condition == condition) {
            if b.members.iter().any(|m| m == member) {
                return false;
            }
            b.members.push(member.to_owned());
            return true;
        }
        self.bindings.push(Binding { role: role.to_owned(), members: vec![member.to_owned()], condition });
        true
    }

    /// Removes `member` from bindings of `role`. `condition: None` matches only unconditional bindings;
    /// `all_conditions` removes it from every binding of the role. Returns false when nothing matched.
    pub fn remove_binding(&mut self, role: &str, member: &str, condition: Option<&Expr>, all_conditions: bool) -> bool {
        let mut removed = false;
        for b in
            self.bindings.iter_mut().filter(|b| b.role == role && (all_conditions || b.condition.as_ref() == condition))
        {
            let before = b.members.len();
            b.members.retain(|m| m != member);
            removed |= b.members.len() != before;
        }
        self.bindings.retain(|b| !b.members.is_empty());
        removed
    }

    /// True when some binding holds a condition (the policy must then be version 3).
    pub fn has_conditions(&self) -> bool {
        self.bindings.iter().any(|b| b.condition.is_some())
    }
}

/// Checks the syntax of a role name: `roles/NAME`, `projects/P/roles/NAME` or `organizations/O/roles/NAME`.
pub fn validate_role_name(role: &str) -> Result<(), String> {
    let ok_id = |s: &str| {
        !s.is_empty() && s.len() <= 64 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    };
    let parts: Vec<&str> = role.split('/').collect();
    let ok = match parts.as_slice() {
        ["roles", id] => ok_id(id),
        ["projects", p, "roles", id] | ["organizations", p, "roles", id] => !p.is_empty() && ok_id(id),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid role name `{role}`; a role looks like `roles/run.invoker` or `projects/PROJECT/roles/ROLE_ID`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_logged_follows_audit_configs_by_service_type_and_exemption() {
        let policy = |configs: serde_json::Value| Policy {
            audit_configs: serde_json::from_value(configs).unwrap(),
            ..Policy::default()
        };
        let sa = "serviceAccount:app@p.iam.gserviceaccount.com";
        assert_eq!(Policy::default().read_logged("run.googleapis.com", ReadLog::AdminRead, sa), None);
        let p = policy(serde_json::json!([{"service": "allServices", "auditLogConfigs": [{"logType": 1}]}]));
        assert_eq!(p.read_logged("run.googleapis.com", ReadLog::AdminRead, sa), Some(true), "by number");
        assert_eq!(p.read_logged("run.googleapis.com", ReadLog::DataRead, sa), Some(false), "another type");
        let p = policy(serde_json::json!([{"service": "run.googleapis.com", "auditLogConfigs": [
            {"logType": "ADMIN_READ", "exemptedMembers": ["serviceAccount:APP@p.iam.gserviceaccount.com"]}]}]));
        assert_eq!(p.read_logged("run.googleapis.com", ReadLog::AdminRead, sa), Some(false), "exempt, any case");
        assert_eq!(p.read_logged("run.googleapis.com", ReadLog::AdminRead, "user:a@x.com"), Some(true));
        assert_eq!(p.read_logged("iam.googleapis.com", ReadLog::AdminRead, sa), None, "another service");
    }

    #[test]
    fn parses_google_example() {
        let json = br#"{"version": 3, "etag": "BwWWja0YfJA=",
          "bindings": [{"role": "roles/run.invoker",
            "members": ["user:a@example.com","allUsers"],
            "condition": {"title": "t", "expression": "request.time < timestamp('2020-10-01T00:00:00.000Z')"}}]}"#;
        let p = Policy::from_json(json).unwrap();
        assert_eq!(p.bindings[0].members.len(), 2);
        assert_eq!(p.etag, "BwWWja0YfJA=");
    }

    #[test]
    fn rejects_bad_shapes() {
        for (json, want) in [
            (r#"{"bindings":[{"role":"roles/x","members":["bob"]}]}"#, "invalid member `bob`"),
            (r#"{"bindings":[{"role":"owner","members":["allUsers"]}]}"#, "invalid role name `owner`"),
            (r#"{"version":2}"#, "invalid policy version"),
            (
                r#"{"bindings":[{"role":"roles/x","members":["allUsers"],"condition":{"expression":"true"}}]}"#,
                "version 3",
            ),
            (r#"{"bindngs":[]}"#, "unknown field"),
            (r#"[1,2]"#, "invalid policy JSON"),
        ] {
            let e = Policy::from_json(json.as_bytes()).unwrap_err();
            assert!(e.0.contains(want), "{json}: {e}");
        }
    }

    #[test]
    fn add_and_remove_bindings() {
        let mut p = Policy::default();
        assert!(p.add_binding("roles/viewer", "user:a@example.com", None));
        assert!(!p.add_binding("roles/viewer", "user:a@example.com", None));
        assert!(p.add_binding("roles/viewer", "user:b@example.com", None));
        assert_eq!(p.bindings.len(), 1);
        assert!(p.remove_binding("roles/viewer", "user:a@example.com", None, false));
        assert!(!p.remove_binding("roles/viewer", "user:a@example.com", None, false));
        assert!(p.remove_binding("roles/viewer", "user:b@example.com", None, false));
        assert!(p.bindings.is_empty());
    }
}
