//! The Data Access record of `AccessSecretVersion` (PROTOCOL.md §9.2) and whether one is written.
//!
//! **Gatehouse logs DATA_READ for Secret Manager by default** (Google's default is off): reading a secret is the
//! event a security review asks about first. It is switched through the project policy's `auditConfigs`, with
//! Google's semantics once an entry for the service exists:
//!
//! * no `auditConfigs` entry for `secretmanager.googleapis.com` or `allServices` → on (the Gatehouse default);
//! * otherwise on exactly when one of those entries has an `auditLogConfigs` item with `logType` `DATA_READ` (or 3),
//!   so `{"service": "secretmanager.googleapis.com", "auditLogConfigs": [{"logType": "ADMIN_READ"}]}` (or no
//!   `auditLogConfigs` at all) turns it off;
//! * a principal named in that item's `exemptedMembers` (`user:…`, `serviceAccount:…`) is not logged.
//!
//! Denied calls are always recorded, whatever the configuration: "a denial is audited before it is answered" is an
//! architecture invariant. The entry never carries the payload: `response` holds only the resolved version name.

use crate::auth::Caller;
use crate::state::App;
use audit::{EntryBuilder, LogKind, PermissionType};
use model::{ApiError, Policy};
use serde_json::json;
use std::time::SystemTime;

use super::names::SERVICE;

pub(crate) const ACCESS_METHOD: &str = "google.cloud.secretmanager.v1.SecretManagerService.AccessSecretVersion";
pub(crate) const ACCESS_PERMISSION: &str = "secretmanager.versions.access";
const VERSION_TYPE: &str = "secretmanager.googleapis.com/SecretVersion";

/// Whether a successful (or failed but permitted) DATA_READ of Secret Manager by `member` is logged under the project
/// policy `project_policy`: on unless the policy has an `auditConfigs` entry for the service (see the module doc).
pub(crate) fn data_read_logged(project_policy: Option<&Policy>, member: &str) -> bool {
    project_policy.and_then(|p| p.read_logged(SERVICE, model::policy::ReadLog::DataRead, member)).unwrap_or(true)
}

/// One `AccessSecretVersion` call as its audit entry describes it.
pub(crate) struct AccessRecord<'a> {
    /// The version name as requested, with the project number (`…/versions/latest`).
    pub requested: &'a str,
    /// The version it resolved to (`…/versions/3`), when the secret and version exist.
    pub resolved: Option<&'a str>,
    pub granted: bool,
    pub error: Option<&'a ApiError>,
}

impl AccessRecord<'_> {
    /// Whether this call is written at all: denials always, everything else as the project's `auditConfigs` say.
    pub fn is_logged(&self, app: &App, caller: &Caller) -> bool {
        if !self.granted {
            return true;
        }
        let snapshot = app.snapshot();
        data_read_logged(snapshot.policy(&app.project.full_name()), &caller.principal.member())
    }

    /// The serialized LogEntry: Data Access log, `DATA_READ`, resolved name, status; never the payload.
    pub fn entry(&self, app: &App, caller: &Caller) -> String {
        let resource = self.resolved.unwrap_or(self.requested);
        let mut b = EntryBuilder::new(&app.project.project_id, SERVICE, ACCESS_METHOD, resource, SystemTime::now())
            .caller(&caller.ip, &caller.user_agent)
            .kind(LogKind::DataAccess)
            .authorization(resource, ACCESS_PERMISSION, self.granted, PermissionType::DataRead)
            .resource_attributes(SERVICE, resource, VERSION_TYPE)
            .request(json!({
                "@type": "type.googleapis.com/google.cloud.secretmanager.v1.AccessSecretVersionRequest",
                "name": self.requested,
            }));
        if let Some(email) = caller.email() {
            b = b.principal(email);
        }
        match self.error {
            Some(e) => b = b.status(e.code.rpc_code(), &e.message),
            None => {
                b = b.response(json!({
                    "@type": "type.googleapis.com/google.cloud.secretmanager.v1.AccessSecretVersionResponse",
                    "name": resource,
                }))
            }
        }
        let entry = b.build(audit::new_insert_id(tokens::random_u64()));
        serde_json::to_string(&entry).expect("a LogEntry always serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use model::policy::AuditConfig;
    use serde_json::Value;

    fn policy(configs: Value) -> Policy {
        Policy { audit_configs: serde_json::from_value::<Vec<AuditConfig>>(configs).unwrap(), ..Policy::default() }
    }

    #[test]
    fn on_by_default_and_switched_by_audit_configs() {
        let sa = "serviceAccount:app@p.iam.gserviceaccount.com";
        assert!(data_read_logged(None, sa));
        assert!(data_read_logged(Some(&Policy::default()), sa));
        // Another service's config changes nothing here.
        assert!(data_read_logged(Some(&policy(json!([{"service": "run.googleapis.com"}]))), sa));
        let off = [
            json!([{"service": "secretmanager.googleapis.com"}]),
            json!([{"service": "secretmanager.googleapis.com", "auditLogConfigs": [{"logType": "ADMIN_READ"}]}]),
            json!([{"service": "allServices", "auditLogConfigs": [{"logType": "DATA_WRITE"}]}]),
        ];
        for c in off {
            assert!(!data_read_logged(Some(&policy(c.clone())), sa), "{c}");
        }
        let on = [
            json!([{"service": "secretmanager.googleapis.com", "auditLogConfigs": [{"logType": "DATA_READ"}]}]),
            json!([{"service": "allServices", "auditLogConfigs": [{"logType": 3}]}]),
        ];
        for c in on {
            assert!(data_read_logged(Some(&policy(c.clone())), sa), "{c}");
        }
    }

    #[test]
    fn exempted_members_are_not_logged() {
        let p = policy(json!([{"service": "allServices", "auditLogConfigs": [
            {"logType": "DATA_READ", "exemptedMembers": ["serviceAccount:App@p.iam.gserviceaccount.com"]}]}]));
        assert!(!data_read_logged(Some(&p), "serviceAccount:app@p.iam.gserviceaccount.com"));
        assert!(data_read_logged(Some(&p), "user:owner@localhost"));
    }
}
