//! IAM v1 service accounts: create, list, get, patch, delete, disable, enable, and their IAM policies
//! (a service account is also a resource: `roles/iam.serviceAccountUser` on it grants `iam.serviceAccounts.actAs`).

use crate::audit_trail::Call;
use crate::auth::Caller;
use crate::http::{Reply, Req};
use crate::policy::{self, Target};
use crate::projects;
use crate::state::{kind, ApiErrorBox, App, Result};
use model::{names, ApiError, Member, Policy};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

const SERVICE: &str = "iam.googleapis.com";

/// `google.iam.admin.v1.ServiceAccount`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ServiceAccount {
    pub name: String,
    pub project_id: String,
    pub unique_id: String,
    pub email: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub etag: String,
    pub oauth2_client_id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

impl ServiceAccount {
    pub fn new(project_id: &str, email: &str, display_name: &str, description: &str) -> ServiceAccount {
        let unique_id = tokens::random_numeric_id(21);
        ServiceAccount {
            name: format!("projects/{project_id}/serviceAccounts/{email}"),
            project_id: project_id.to_owned(),
            unique_id: unique_id.clone(),
            email: email.to_owned(),
            display_name: display_name.to_owned(),
            description: description.to_owned(),
            etag: policy::new_etag(),
            oauth2_client_id: unique_id,
            disabled: false,
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct AccountFields {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    // Fields a client may echo back from a get; ignored.
    #[serde(default, rename = "name")]
    _name: Option<Value>,
    #[serde(default, rename = "etag")]
    _etag: Option<Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRequest {
    account_id: Option<String>,
    #[serde(default)]
    service_account: AccountFields,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchRequest {
    #[serde(default)]
    service_account: AccountFields,
    #[serde(default)]
    update_mask: Option<String>,
}

fn check_fields(f: &AccountFields) -> Result<()> {
    if f.display_name.as_deref().is_some_and(|d| d.chars().count() > 100) {
        return Err(ApiError::invalid("`displayName` is at most 100 characters"));
    }
    if f.description.as_deref().is_some_and(|d| d.chars().count() > 256) {
        return Err(ApiError::invalid("`description` is at most 256 characters"));
    }
    Ok(())
}

fn full_name(app: &App, email: &str) -> String {
    names::service_account_full_name(&app.project.project_id, email)
}

pub(crate) fn create(app: &App, req: &Req, project: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "iam.serviceAccounts.create")?;
    let shown = format!("projects/{}", project.project_id);
    let call = Call::new(SERVICE, "google.iam.admin.v1.CreateServiceAccount", &shown)
        .needs("iam.serviceAccounts.create", &project.full_name());
    app.authorize(&caller, "iam.serviceAccounts.create", &project.full_name(), &call)?;
    let body: CreateRequest = req.json()?;
    let id = body.account_id.ok_or_else(|| ApiError::invalid("`accountId` is required"))?;
    names::validate_account_id(&id).map_err(ApiError::invalid)?;
    check_fields(&body.service_account)?;
    let email = names::service_account_email(&id, &project.project_id);
    let sa = ServiceAccount::new(
        &project.project_id,
        &email,
        body.service_account.display_name.as_deref().unwrap_or_default(),
        body.service_account.description.as_deref().unwrap_or_default(),
    );
    let call = call.with_request(json!({ "accountId": id, "serviceAccount": { "displayName": sa.display_name } }));
    let sa = app.mutate(&caller, call, true, |tx| {
        if tx.get::<Value>(kind::SERVICE_ACCOUNT, &email)?.is_some() {
            return Err(ApiError::already_exists(format!(
                "Service account {id} already exists within project projects/{}.",
                project.project_id
            ))
            .into());
        }
        tx.put(kind::SERVICE_ACCOUNT, &email, &sa)?;
        Ok(sa)
    })?;
    Ok(Reply::Json(serde_json::to_value(sa).unwrap_or_default()))
}

pub(crate) fn list(app: &App, req: &Req, project: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "iam.serviceAccounts.list")?;
    let call =
        Call::new(SERVICE, "google.iam.admin.v1.ListServiceAccounts", format!("projects/{}", project.project_id))
            .reading();
    app.authorize(&caller, "iam.serviceAccounts.list", &project.full_name(), &call)?;
    let accounts: Vec<ServiceAccount> =
        app.read(|tx| Ok(tx.list(kind::SERVICE_ACCOUNT, "")?.into_iter().map(|(_, sa)| sa).collect()))?;
    Ok(Reply::Json(if accounts.is_empty() { json!({}) } else { json!({ "accounts": accounts }) }))
}

/// Finds a service account by email or unique id after checking `permission` on it.
pub(crate) fn authorized_account(
    app: &App,
    caller: &Caller,
    project: &str,
    key: &str,
    permission: &str,
    call: Call,
) -> Result<(ServiceAccount, Call)> {
    if project != "-" {
        projects::resolve(app, project, permission)?;
    }
    let found = find_account(app, key)?;
    let email = found.as_ref().map(|sa| sa.email.clone()).unwrap_or_else(|| key.to_owned());
    let full = full_name(app, &email);
    let call = Call { resource_name: format!("projects/{}/serviceAccounts/{email}", app.project.project_id), ..call }
        .needs(permission, &full);
    app.authorize(caller, permission, &full, &call)?;
    let sa = found.ok_or_else(|| unknown_account(key))?;
    Ok((sa, call))
}

/// The account `key` names (its email or its unique id).
fn find_account(app: &App, key: &str) -> Result<Option<ServiceAccount>> {
    app.read(|tx| {
        if let Some(sa) = tx.get::<ServiceAccount>(kind::SERVICE_ACCOUNT, key)? {
            return Ok(Some(sa));
        }
        Ok(tx
            .list::<ServiceAccount>(kind::SERVICE_ACCOUNT, "")?
            .into_iter()
            .map(|(_, sa)| sa)
            .find(|sa| sa.unique_id == key))
    })
}

fn unknown_account(key: &str) -> ApiError {
    ApiError::not_found(format!("Unknown service account `{key}`"))
}

/// The account `sa` (found before the transaction, by email or unique id `key`) as stored now, read inside the
/// write transaction that changes it: a read-modify-write applies to what is stored when it commits, and an
/// account deleted (or deleted and created again under the same email) in between is NOT_FOUND.
fn current(tx: &store::Tx, sa: &ServiceAccount, key: &str) -> std::result::Result<ServiceAccount, ApiErrorBox> {
    let now = tx.get::<ServiceAccount>(kind::SERVICE_ACCOUNT, &sa.email)?.filter(|now| now.unique_id == sa.unique_id);
    Ok(now.ok_or_else(|| unknown_account(key))?)
}

pub(crate) fn get(app: &App, req: &Req, project: &str, key: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let call = Call::new(SERVICE, "google.iam.admin.v1.GetServiceAccount", "").reading();
    let (sa, _) = authorized_account(app, &caller, project, key, "iam.serviceAccounts.get", call)?;
    Ok(Reply::Json(serde_json::to_value(sa).unwrap_or_default()))
}

pub(crate) fn patch(app: &App, req: &Req, project: &str, key: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let call = Call::new(SERVICE, "google.iam.admin.v1.PatchServiceAccount", "");
    let (sa, call) = authorized_account(app, &caller, project, key, "iam.serviceAccounts.update", call)?;
    let body: PatchRequest = req.json()?;
    check_fields(&body.service_account)?;
    let mask = body.update_mask.unwrap_or_else(|| "displayName,description".into());
    let sa = app.mutate(&caller, call, false, |tx| {
        let mut sa = current(tx, &sa, key)?;
        for field in mask.split(',').map(str::trim) {
            match field {
                "displayName" | "display_name" => {
                    sa.display_name = body.service_account.display_name.clone().unwrap_or_default()
                }
                "description" => sa.description = body.service_account.description.clone().unwrap_or_default(),
                other => {
                    return Err(ApiError::invalid(format!(
                        "field `{other}` in `updateMask` cannot be updated; use `displayName` or `description`"
                    ))
                    .into())
                }
            }
        }
        sa.etag = policy::new_etag();
        tx.put(kind::SERVICE_ACCOUNT, &sa.email, &sa)?;
        Ok(sa)
    })?;
    Ok(Reply::Json(serde_json::to_value(sa).unwrap_or_default()))
}

pub(crate) fn delete(app: &App, req: &Req, project: &str, key: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let call = Call::new(SERVICE, "google.iam.admin.v1.DeleteServiceAccount", "");
    let (sa, call) = authorized_account(app, &caller, project, key, "iam.serviceAccounts.delete", call)?;
    app.mutate(&caller, call, true, |tx| {
        let sa = current(tx, &sa, key)?;
        let policy = tx.get::<Policy>(kind::POLICY, &full_name(app, &sa.email))?;
        let kept = Deleted { account: sa.clone(), policy };
        tx.put(kind::DELETED_SERVICE_ACCOUNT, &sa.unique_id, &kept)?;
        tx.delete(kind::SERVICE_ACCOUNT, &sa.email)?;
        tx.delete(kind::POLICY, &full_name(app, &sa.email))?;
        tx.delete_tokens_of(&format!("serviceAccount:{}", sa.email))?;
        mark_deleted_in_policies(tx, &sa)
    })?;
    Ok(Reply::Json(json!({})))
}

/// A deleted account as it was, kept for `:undelete` (Google keeps one 30 days; here until it is undeleted).
#[derive(Serialize, Deserialize)]
struct Deleted {
    account: ServiceAccount,
    policy: Option<Policy>,
}

/// `serviceAccounts.undelete` by unique id (or email): the account comes back with the same identity, its own
/// policy, and its bindings everywhere (`deleted:serviceAccount:EMAIL?uid=ID` is `serviceAccount:EMAIL` again), as
/// Google restores it. Refused while another account holds the email.
fn undelete(app: &App, caller: &crate::auth::Caller, project: &str, key: &str) -> Result<Reply> {
    let permission = "iam.serviceAccounts.undelete";
    if project != "-" {
        projects::resolve(app, project, permission)?;
    }
    let kept: Option<Deleted> = app.read(|tx| {
        if let Some(d) = tx.get::<Deleted>(kind::DELETED_SERVICE_ACCOUNT, key)? {
            return Ok(Some(d));
        }
        Ok(tx
            .list::<Deleted>(kind::DELETED_SERVICE_ACCOUNT, "")?
            .into_iter()
            .map(|(_, d)| d)
            .find(|d| d.account.email == key))
    })?;
    let email = kept.as_ref().map_or(key, |d| d.account.email.as_str()).to_owned();
    let full = full_name(app, &email);
    let call = Call::new(
        SERVICE,
        "google.iam.admin.v1.UndeleteServiceAccount",
        format!("projects/{}/serviceAccounts/{email}", app.project.project_id),
    )
    .needs(permission, &full);
    app.authorize(caller, permission, &full, &call)?;
    let kept = kept.ok_or_else(|| {
        ApiError::not_found(format!(
            "No deleted service account `{key}`: give the unique id of one deleted in this project"
        ))
    })?;
    let restored = app.mutate(caller, call, true, |tx| {
        if tx.get::<ServiceAccount>(kind::SERVICE_ACCOUNT, &email)?.is_some() {
            return Err(ApiError::failed_precondition(format!(
                "Cannot undelete service account `{email}`: an account with that email exists now; delete it first"
            ))
            .into());
        }
        let Deleted { account, policy } = kept;
        tx.put(kind::SERVICE_ACCOUNT, &account.email, &account)?;
        if let Some(policy) = &policy {
            tx.put(kind::POLICY, &full_name(app, &account.email), policy)?;
        }
        tx.delete(kind::DELETED_SERVICE_ACCOUNT, &account.unique_id)?;
        let (live, dead) = member_names(&account);
        rename_member(tx, &dead, &live)?;
        Ok(account)
    })?;
    Ok(Reply::Json(json!({ "restoredAccount": restored })))
}

/// Google shows bindings of a deleted account as `deleted:serviceAccount:EMAIL?uid=ID`; they match nobody, and a new
/// account with the same email does not inherit them.
fn mark_deleted_in_policies(tx: &store::Tx, sa: &ServiceAccount) -> std::result::Result<(), ApiErrorBox> {
    let (live, dead) = member_names(sa);
    rename_member(tx, &live, &dead)
}

/// The account's member name while it lives, and once deleted.
fn member_names(sa: &ServiceAccount) -> (String, String) {
    let live = Member::ServiceAccount(sa.email.clone()).to_string();
    (live, format!("deleted:serviceAccount:{}?uid={}", sa.email, sa.unique_id))
}

/// Every binding of every policy that names `from` names `to` instead.
fn rename_member(tx: &store::Tx, from: &str, to: &str) -> std::result::Result<(), ApiErrorBox> {
    for (name, mut p) in tx.list::<Policy>(kind::POLICY, "")? {
        let mut changed = false;
        for m in p.bindings.iter_mut().flat_map(|b| b.members.iter_mut()).filter(|m| *m == from) {
            to.clone_into(m);
            changed = true;
        }
        if changed {
            p.etag = policy::new_etag();
            tx.put(kind::POLICY, &name, &p)?;
        }
    }
    Ok(())
}

pub(crate) fn action(app: &App, req: &Req, project: &str, key: &str, verb: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    match verb {
        "undelete" => undelete(app, &caller, project, key),
        "disable" | "enable" => {
            let (method, permission) = if verb == "disable" {
                ("google.iam.admin.v1.DisableServiceAccount", "iam.serviceAccounts.disable")
            } else {
                ("google.iam.admin.v1.EnableServiceAccount", "iam.serviceAccounts.enable")
            };
            let (sa, call) =
                authorized_account(app, &caller, project, key, permission, Call::new(SERVICE, method, ""))?;
            // The IAM snapshot knows which accounts are disabled (the gateway refuses their ID tokens).
            app.mutate(&caller, call, true, |tx| {
                let mut sa = current(tx, &sa, key)?;
                sa.disabled = verb == "disable";
                sa.etag = policy::new_etag();
                Ok(tx.put(kind::SERVICE_ACCOUNT, &sa.email, &sa)?)
            })?;
            Ok(Reply::Json(json!({})))
        }
        "getIamPolicy" | "setIamPolicy" | "testIamPermissions" => {
            // Existence is checked with a permission any holder of the policy permissions also has at project level.
            let permission = if verb == "setIamPolicy" {
                "iam.serviceAccounts.setIamPolicy"
            } else {
                "iam.serviceAccounts.getIamPolicy"
            };
            let sa = if verb == "testIamPermissions" {
                // Asks which of the caller's own permissions hold: as on Google, no permission is needed for that.
                if project != "-" {
                    projects::resolve(app, project, permission)?;
                }
                find_account(app, key)?.ok_or_else(|| unknown_account(key))?
            } else {
                let probe = Call::new(SERVICE, "google.iam.admin.v1.GetIAMPolicy", "").reading();
                authorized_account(app, &caller, project, key, permission, probe)?.0
            };
            let target = Target {
                full_name: full_name(app, &sa.email),
                shown_name: sa.name.clone(),
                service: SERVICE,
                get_permission: "iam.serviceAccounts.getIamPolicy",
                set_permission: "iam.serviceAccounts.setIamPolicy",
                get_method: "google.iam.admin.v1.GetIAMPolicy",
                set_method: "google.iam.admin.v1.SetIAMPolicy",
                requires_owner: false,
                grantable: &["iam.serviceAccounts.", "iam.serviceAccountKeys."],
                resource: Some((kind::SERVICE_ACCOUNT, sa.email.clone())),
            };
            policy::handle(app, req, &caller, &target, verb)
        }
        "generateIdToken" => crate::credentials::generate_id_token(app, req, project, key),
        "generateAccessToken" => crate::credentials::generate_access_token(app, req, project, key),
        other => Err(ApiError::not_found(format!("unknown method `{other}` on service accounts"))),
    }
}
