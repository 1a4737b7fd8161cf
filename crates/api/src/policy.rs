//! getIamPolicy / setIamPolicy / testIamPermissions for any resource that carries a policy.
//!
//! One implementation for every resource type: projects and service accounts now, services and secrets later.

use crate::audit_trail::Call;
use crate::auth::Caller;
use crate::http::{Reply, Req};
use crate::state::{kind, App, Result};
use base64::Engine;
use model::{ApiError, Member, Policy};
use serde::Deserialize;
use serde_json::{json, Value};

/// A resource whose IAM policy the API exposes.
pub(crate) struct Target {
    /// Full resource name; the key of the stored policy.
    pub full_name: String,
    /// Name used in error messages and audit entries (e.g. `projects/local-project`).
    pub shown_name: String,
    pub service: &'static str,
    pub get_permission: &'static str,
    pub set_permission: &'static str,
    pub get_method: &'static str,
    pub set_method: &'static str,
    /// Projects must keep an owner: a policy without one would lock everyone out for good.
    pub requires_owner: bool,
    /// Prefixes of the permissions that apply to this kind of resource: a role is grantable on it only when it
    /// holds one (Google's rule for `queryGrantableRoles`). Empty: every role (projects).
    pub grantable: &'static [&'static str],
    /// The stored document (kind, key) of the resource, checked inside the policy's write: a resource deleted
    /// meanwhile gets no policy (which a new resource of the same name would inherit). `None`: the project.
    pub resource: Option<(&'static str, String)>,
}

/// The most principals a policy may hold, counted over its bindings.
const MAX_MEMBERS: usize = 1500;

/// Google's etag of a resource that has never had a policy.
const EMPTY_ETAG: &str = "ACAB";

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SetRequest {
    policy: Option<Value>,
    #[serde(default)]
    update_mask: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct TestRequest {
    #[serde(default)]
    permissions: Vec<String>,
}

/// Handles `:getIamPolicy`, `:setIamPolicy` and `:testIamPermissions` on `target`.
pub(crate) fn handle(app: &App, req: &Req, caller: &Caller, target: &Target, verb: &str) -> Result<Reply> {
    match verb {
        "getIamPolicy" => get(app, caller, target).map(|p| Reply::Json(policy_json(&p))),
        "setIamPolicy" => set(app, req, caller, target).map(|p| Reply::Json(policy_json(&p))),
        "testIamPermissions" => test(app, req, caller, target),
        other => Err(ApiError::not_found(format!("unknown method `{other}` on `{}`", target.shown_name))),
    }
}

pub(crate) fn policy_json(p: &Policy) -> Value {
    serde_json::to_value(p).unwrap_or_else(|_| json!({}))
}

/// The stored policy of `target`, or an empty one with Google's empty etag.
pub(crate) fn load(tx: &store::Tx, full_name: &str) -> std::result::Result<Policy, store::StoreError> {
    Ok(tx.get::<Policy>(kind::POLICY, full_name)?.unwrap_or_else(|| Policy {
        version: 1,
        etag: EMPTY_ETAG.into(),
        ..Policy::default()
    }))
}

fn get(app: &App, caller: &Caller, target: &Target) -> Result<Policy> {
    let call = Call::new(target.service, target.get_method, &target.shown_name).reading();
    app.authorize(caller, target.get_permission, &target.full_name, &call)?;
    app.read(|tx| Ok(load(tx, &target.full_name)?))
}

fn set(app: &App, req: &Req, caller: &Caller, target: &Target) -> Result<Policy> {
    let body: SetRequest = req.json()?;
    let call = Call::new(target.service, target.set_method, &target.shown_name)
        .needs(target.set_permission, &target.full_name);
    app.authorize(caller, target.set_permission, &target.full_name, &call)?;
    let raw = body.policy.ok_or_else(|| ApiError::invalid("`policy` is required"))?;
    let mut policy: Policy = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::invalid(format!("Invalid JSON payload received. policy: {e}")))?;
    // `etag` is protobuf `bytes`: base64 in JSON, decoded before anything else is looked at.
    if !policy.etag.is_empty() {
        let engine = base64::engine::general_purpose::STANDARD;
        let url_safe = base64::engine::general_purpose::URL_SAFE;
        if engine.decode(&policy.etag).is_err() && url_safe.decode(&policy.etag).is_err() {
            return Err(ApiError::invalid(format!(
                "Invalid value at 'policy.etag' (TYPE_BYTES), Base64 decoding failed for \"{}\"",
                policy.etag
            )));
        }
    }
    validate(app, &policy)?;
    grantable(app, &policy, target)?;
    if !policy.audit_configs.is_empty() && target.resource.is_some() {
        return Err(ApiError::invalid(format!(
            "`auditConfigs` are set on projects, not on `{}`: use `gatehouse projects set-iam-policy`",
            target.shown_name
        )));
    }
    if target.requires_owner && !iam::rules::keeps_project_owner(&policy) {
        return Err(ApiError::invalid(format!(
            "The policy of `{}` must keep at least one member of roles/owner who is a user or a group, without a condition; \
             the request would leave the project without an owner.",
            target.shown_name
        )));
    }
    let mask = body.update_mask.unwrap_or_else(|| "bindings,etag".into());
    if let Some(bad) = mask.split(',').map(str::trim).find(|f| !["bindings", "etag", "auditConfigs"].contains(f)) {
        return Err(ApiError::invalid(format!(
            "invalid field `{bad}` in `updateMask`; use `bindings`, `etag` and `auditConfigs`"
        )));
    }
    let call = call.with_request(json!({ "resource": target.shown_name, "policy": raw }));
    app.mutate(caller, call, true, |tx| {
        if let Some((kind, key)) = &target.resource {
            if tx.get::<Value>(kind, key)?.is_none() {
                let gone = format!("`{}` was deleted while its policy was being set", target.shown_name);
                return Err(ApiError::not_found(gone).into());
            }
        }
        let current = load(tx, &target.full_name)?;
        if !policy.etag.is_empty() && policy.etag != current.etag {
            return Err(ApiError::concurrent_policy_change().into());
        }
        // Only what the mask names changes (`bindings,etag` by default).
        if !mask.split(',').any(|f| f.trim() == "auditConfigs") {
            policy.audit_configs = current.audit_configs.clone();
        }
        if !mask.split(',').any(|f| f.trim() == "bindings") {
            policy.bindings = current.bindings.clone();
        }
        normalize(&mut policy);
        policy.etag = new_etag();
        tx.put(kind::POLICY, &target.full_name, &policy)?;
        Ok(policy)
    })
}

fn test(app: &App, req: &Req, caller: &Caller, target: &Target) -> Result<Reply> {
    let body: TestRequest = req.json()?;
    for p in &body.permissions {
        let parts: Vec<&str> = p.split('.').collect();
        if parts.len() < 3 || parts.iter().any(|s| s.is_empty()) {
            return Err(ApiError::invalid(format!("Permission {p} is not valid.")));
        }
    }
    let granted = app.granted_permissions(caller, &body.permissions, &target.full_name);
    Ok(Reply::Json(if granted.is_empty() { json!({}) } else { json!({ "permissions": granted }) }))
}

/// Everything a policy must satisfy before it is stored: shape, known roles, supported conditions, existing accounts.
pub(crate) fn validate(app: &App, policy: &Policy) -> Result<()> {
    policy.validate().map_err(|e| ApiError::invalid(e.0))?;
    // Google's limit: 1,500 principals across a policy's bindings (each occurrence counts).
    let members: usize = policy.bindings.iter().map(|b| b.members.len()).sum();
    if members > MAX_MEMBERS {
        return Err(ApiError::invalid(format!(
            "The number of members in the policy ({members}) is larger than the maximum allowed size {MAX_MEMBERS}."
        )));
    }
    app.snapshot().validate_policy(policy).map_err(ApiError::from)?;
    let accounts: Vec<String> = policy
        .bindings
        .iter()
        .flat_map(|b| &b.members)
        .filter_map(|m| match Member::parse(m) {
            Ok(Member::ServiceAccount(e)) => Some(e),
            _ => None,
        })
        .collect();
    app.read(|tx| {
        for email in &accounts {
            if tx.get::<Value>(kind::SERVICE_ACCOUNT, email)?.is_none() {
                return Err(ApiError::invalid(format!("Service account {email} does not exist.")).into());
            }
        }
        Ok(())
    })
}

/// Refuses a role that holds no permission applying to the target's kind of resource, as Google does (roles/run.invoker
/// on a secret, roles/secretmanager.secretAccessor on a service).
fn grantable(app: &App, policy: &Policy, target: &Target) -> Result<()> {
    if target.grantable.is_empty() {
        return Ok(());
    }
    let snapshot = app.snapshot();
    for b in &policy.bindings {
        let Some(role) = snapshot.catalogue().get(&b.role) else { continue };
        if !role.included_permissions.iter().any(|p| target.grantable.iter().any(|g| p.starts_with(g))) {
            return Err(ApiError::invalid(format!(
                "Role {} is not supported for this resource. Roles granted here need a permission on it ({}*).",
                b.role,
                target.grantable.join("*, ")
            )));
        }
    }
    Ok(())
}

/// Merges bindings with the same role and condition, sorts members and bindings as Google returns them, and sets the
/// version: 3 when any binding has a condition, else 1.
pub(crate) fn normalize(policy: &mut Policy) {
    let mut merged: Vec<model::Binding> = Vec::new();
    for b in policy.bindings.drain(..) {
        match merged.iter_mut().find(|m| m.role == b.role && m.condition == b.condition) {
            Some(m) => m.members.extend(b.members),
            None => merged.push(b),
        }
    }
    for b in &mut merged {
        b.members.sort();
        b.members.dedup();
    }
    merged.sort_by(|a, b| a.role.cmp(&b.role));
    policy.bindings = merged;
    policy.version = if policy.has_conditions() { 3 } else { 1 };
}

pub(crate) fn new_etag() -> String {
    base64::engine::general_purpose::STANDARD.encode(tokens::random_u64().to_be_bytes())
}
