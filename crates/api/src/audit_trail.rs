//! Builds the audit entry of an API call: every mutation (`ADMIN_WRITE`, in the same transaction as the change) and
//! every denied call. Request bodies recorded here never contain secret material.

use crate::auth::Caller;
use crate::state::App;
use audit::{EntryBuilder, PermissionType};
use model::ApiError;
use serde_json::Value;
use std::time::SystemTime;

/// One API call, as the audit log describes it.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub service: &'static str,
    pub method: &'static str,
    /// The resource name as Google's logs show it (relative, e.g. `projects/p/serviceAccounts/x`).
    pub resource_name: String,
    /// Full resource name the permission was checked on.
    pub full_resource_name: String,
    pub permission: String,
    pub permission_type: PermissionType,
    pub granted: bool,
    pub request: Option<Value>,
}

impl Call {
    pub fn new(service: &'static str, method: &'static str, resource_name: impl Into<String>) -> Call {
        Call {
            service,
            method,
            resource_name: resource_name.into(),
            full_resource_name: String::new(),
            permission: String::new(),
            permission_type: PermissionType::AdminWrite,
            granted: true,
            request: None,
        }
    }

    pub fn reading(mut self) -> Call {
        self.permission_type = PermissionType::AdminRead;
        self
    }

    /// The permission the call needs on `full_resource_name`.
    pub fn needs(mut self, permission: &str, full_resource_name: &str) -> Call {
        self.permission = permission.to_owned();
        self.full_resource_name = full_resource_name.to_owned();
        self
    }

    pub fn with_request(mut self, request: Value) -> Call {
        self.request = Some(request);
        self
    }

    pub(crate) fn denied(&self, permission: &str, full_resource_name: &str) -> Call {
        let mut c = self.clone().needs(permission, full_resource_name);
        c.granted = false;
        c
    }

    /// The serialized LogEntry; `error` is the call's failure, if any.
    pub fn entry(&self, app: &App, caller: &Caller, error: Option<&ApiError>) -> String {
        let kind = self.permission_type.log_kind();
        let mut b = EntryBuilder::new(
            &app.project.project_id,
            self.service,
            self.method,
            &self.resource_name,
            SystemTime::now(),
        )
        .caller(&caller.ip, &caller.user_agent)
        .kind(kind);
        if let Some(email) = caller.email() {
            b = b.principal(email);
        }
        if !self.permission.is_empty() {
            let resource = self.full_resource_name.trim_start_matches("//");
            let resource = resource.split_once('/').map(|(_, r)| r).unwrap_or(resource);
            b = b.authorization(resource, &self.permission, self.granted, self.permission_type);
        }
        if let Some(e) = error {
            b = b.status(e.code.rpc_code(), &e.message);
        }
        if let Some(r) = &self.request {
            b = b.request(r.clone());
        }
        let entry = b.build(audit::new_insert_id(tokens::random_u64()));
        serde_json::to_string(&entry).expect("a LogEntry always serializes")
    }
}
