//! Policy Troubleshooter v1 `iam:troubleshoot`: why a principal does or does not hold a permission on a resource.

use crate::audit_trail::Call;
use crate::http::{Reply, Req};
use crate::state::{kind, App, Result};
use iam::Principal;
use model::member::valid_email;
use model::ApiError;
use serde::Deserialize;
use serde_json::Value;
use std::time::SystemTime;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AccessTuple {
    principal: Option<String>,
    full_resource_name: Option<String>,
    permission: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    access_tuple: Option<AccessTuple>,
}

/// The permission that lets a caller read the policies of `full_resource_name`, which the explanation reveals.
fn read_policy_permission(full_resource_name: &str) -> &'static str {
    if full_resource_name.starts_with("//iam.googleapis.com/") {
        "iam.serviceAccounts.getIamPolicy"
    } else if full_resource_name.starts_with("//run.googleapis.com/") {
        "run.services.getIamPolicy"
    } else if full_resource_name.starts_with("//secretmanager.googleapis.com/") {
        "secretmanager.secrets.getIamPolicy"
    } else {
        "resourcemanager.projects.getIamPolicy"
    }
}

pub(crate) fn troubleshoot(app: &App, req: &Req) -> Result<Reply> {
    let caller = req.caller(app)?;
    let body: Request = req.json()?;
    let tuple = body.access_tuple.ok_or_else(|| ApiError::invalid("`accessTuple` is required"))?;
    let email = tuple.principal.ok_or_else(|| ApiError::invalid("`accessTuple.principal` is required"))?;
    let resource =
        tuple.full_resource_name.ok_or_else(|| ApiError::invalid("`accessTuple.fullResourceName` is required"))?;
    let permission = tuple.permission.ok_or_else(|| ApiError::invalid("`accessTuple.permission` is required"))?;
    let email = valid_email(email.trim_start_matches("user:").trim_start_matches("serviceAccount:"))
        .map_err(ApiError::invalid)?
        .to_lowercase();
    if !resource.starts_with("//") {
        return Err(ApiError::invalid(format!(
            "`{resource}` is not a full resource name; it looks like `//cloudresourcemanager.googleapis.com/projects/PROJECT_ID`"
        )));
    }
    let snapshot = app.snapshot();
    if !snapshot.catalogue().is_known_permission(&permission) {
        return Err(ApiError::invalid(format!("Permission {permission} is not valid.")));
    }
    let needed = read_policy_permission(&resource);
    let call = Call::new(
        "policytroubleshooter.googleapis.com",
        "google.cloud.policytroubleshooter.v1.IamChecker.TroubleshootIamPolicy",
        &resource,
    )
    .reading();
    app.authorize(&caller, needed, &resource, &call)?;
    let is_sa = email.ends_with(".gserviceaccount.com")
        || app.read(|tx| Ok(tx.get::<Value>(kind::SERVICE_ACCOUNT, &email)?.is_some()))?;
    let principal = if is_sa { Principal::ServiceAccount(email) } else { Principal::User(email) };
    let decision = iam::decide(&snapshot, &principal, &permission, &resource, SystemTime::now());
    let mut out = serde_json::to_value(decision.explanation()).map_err(|e| ApiError::internal(e.to_string()))?;
    out["text"] = Value::String(decision.render_text());
    Ok(Reply::Json(out))
}
