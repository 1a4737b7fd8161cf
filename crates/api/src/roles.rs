//! IAM v1 roles: the predefined catalogue (`/v1/roles`) and custom roles of the project (`/v1/projects/P/roles`).

use crate::audit_trail::Call;
use crate::http::{Reply, Req};
use crate::projects;
use crate::state::{kind, App, Result};
use iam::{Role, RoleStage};
use model::{names, ApiError};
use serde::Deserialize;
use serde_json::{json, Value};

const SERVICE: &str = "iam.googleapis.com";

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RoleFields {
    title: Option<String>,
    description: Option<String>,
    included_permissions: Option<Vec<String>>,
    stage: Option<RoleStage>,
    #[serde(default, rename = "name")]
    _name: Option<serde_json::Value>,
    #[serde(default)]
    etag: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CreateRequest {
    role_id: Option<String>,
    #[serde(default)]
    role: RoleFields,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PatchRequest {
    #[serde(default)]
    role: RoleFields,
    #[serde(default)]
    update_mask: Option<String>,
}

/// The basic view of a role leaves out its permissions, as Google's `view=BASIC`.
fn view(role: &Role, full: bool) -> Value {
    let mut v = serde_json::to_value(role).unwrap_or_default();
    if !full {
        if let Some(o) = v.as_object_mut() {
            o.remove("includedPermissions");
        }
    }
    v
}

fn not_found(name: &str, app: &App) -> ApiError {
    let mut msg = format!("The role named {name} was not found.");
    if let Err(iam::IamError::UnknownRole { suggestion: Some(s), .. }) =
        app.snapshot().catalogue().check_role_exists(name)
    {
        msg.push_str(&format!(" Did you mean `{s}`?"));
    }
    ApiError::not_found(msg)
}

pub(crate) fn list_predefined(app: &App, req: &Req) -> Result<Reply> {
    req.caller(app)?;
    let full = req.query("view") == Some("FULL");
    let snapshot = app.snapshot();
    let roles: Vec<Value> = snapshot.catalogue().predefined_roles().map(|r| view(r, full)).collect();
    Ok(Reply::Json(json!({ "roles": roles })))
}

pub(crate) fn get_predefined(app: &App, req: &Req, id: &str) -> Result<Reply> {
    req.caller(app)?;
    let name = format!("roles/{id}");
    let snapshot = app.snapshot();
    let role = snapshot.catalogue().get(&name).ok_or_else(|| not_found(&name, app))?;
    Ok(Reply::Json(view(role, true)))
}

pub(crate) fn create(app: &App, req: &Req, project: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "iam.roles.create")?;
    let parent = format!("projects/{}", project.project_id);
    let call =
        Call::new(SERVICE, "google.iam.admin.v1.CreateRole", &parent).needs("iam.roles.create", &project.full_name());
    app.authorize(&caller, "iam.roles.create", &project.full_name(), &call)?;
    let body: CreateRequest = req.json()?;
    let id = body.role_id.ok_or_else(|| ApiError::invalid("`roleId` is required"))?;
    names::validate_custom_role_id(&id).map_err(ApiError::invalid)?;
    let name = format!("{parent}/roles/{id}");
    let role = Role {
        name: name.clone(),
        title: body.role.title.unwrap_or_else(|| id.clone()),
        description: body.role.description.unwrap_or_default(),
        included_permissions: body.role.included_permissions.unwrap_or_default(),
        stage: body.role.stage.unwrap_or(RoleStage::Alpha),
        deleted: false,
        etag: crate::policy::new_etag(),
    };
    check_role(app, &role)?;
    let call = call.with_request(
        json!({ "roleId": id, "role": { "title": role.title, "includedPermissions": role.included_permissions } }),
    );
    let role = app.mutate(&caller, call, true, |tx| {
        if tx.get::<Role>(kind::ROLE, &name)?.is_some() {
            return Err(ApiError::already_exists(format!("A role named {id} in {parent} already exists.")).into());
        }
        tx.put(kind::ROLE, &name, &role)?;
        Ok(role)
    })?;
    Ok(Reply::Json(view(&role, true)))
}

fn check_role(app: &App, role: &Role) -> Result<()> {
    if role.title.chars().count() > 100 {
        return Err(ApiError::invalid("`title` is at most 100 characters"));
    }
    if role.included_permissions.is_empty() {
        return Err(ApiError::invalid("a custom role needs at least one permission (`includedPermissions`)"));
    }
    app.snapshot().catalogue().check_permissions(&role.included_permissions).map_err(ApiError::from)
}

fn custom(
    app: &App,
    req: &Req,
    project: &str,
    id: &str,
    permission: &str,
    method: &'static str,
) -> Result<(crate::auth::Caller, Role, Call)> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, permission)?;
    let name = format!("projects/{}/roles/{id}", project.project_id);
    let call = Call::new(SERVICE, method, &name).needs(permission, &project.full_name());
    app.authorize(&caller, permission, &project.full_name(), &call)?;
    let role = app.read(|tx| Ok(tx.get::<Role>(kind::ROLE, &name)?))?.ok_or_else(|| not_found(&name, app))?;
    Ok((caller, role, call))
}

pub(crate) fn list_custom(app: &App, req: &Req, project: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = projects::resolve(app, project, "iam.roles.list")?;
    let call =
        Call::new(SERVICE, "google.iam.admin.v1.ListRoles", format!("projects/{}", project.project_id)).reading();
    app.authorize(&caller, "iam.roles.list", &project.full_name(), &call)?;
    let show_deleted = req.query("showDeleted") == Some("true");
    let full = req.query("view") == Some("FULL");
    let roles: Vec<Value> = app.read(|tx| {
        Ok(tx
            .list::<Role>(kind::ROLE, "")?
            .into_iter()
            .filter(|(_, r)| show_deleted || !r.deleted)
            .map(|(_, r)| view(&r, full))
            .collect())
    })?;
    Ok(Reply::Json(if roles.is_empty() { json!({}) } else { json!({ "roles": roles }) }))
}

pub(crate) fn get_custom(app: &App, req: &Req, project: &str, id: &str) -> Result<Reply> {
    let (_, role, _) = custom(app, req, project, id, "iam.roles.get", "google.iam.admin.v1.GetRole")?;
    Ok(Reply::Json(view(&role, true)))
}

pub(crate) fn delete_custom(app: &App, req: &Req, project: &str, id: &str) -> Result<Reply> {
    let (caller, mut role, call) = custom(app, req, project, id, "iam.roles.delete", "google.iam.admin.v1.DeleteRole")?;
    if role.deleted {
        return Err(ApiError::failed_precondition(format!(
            "You can't delete role_id ({id}) as it is already deleted."
        )));
    }
    role.deleted = true;
    role.etag = crate::policy::new_etag();
    app.mutate(&caller, call, true, |tx| Ok(tx.put(kind::ROLE, &role.name, &role)?))?;
    Ok(Reply::Json(view(&role, true)))
}

/// `roles.undelete`: a deleted custom role grants again (Google keeps a deleted role 7 days; here until undeleted).
pub(crate) fn undelete_custom(app: &App, req: &Req, project: &str, id: &str) -> Result<Reply> {
    let (caller, mut role, call) =
        custom(app, req, project, id, "iam.roles.undelete", "google.iam.admin.v1.UndeleteRole")?;
    if !role.deleted {
        return Err(ApiError::failed_precondition(format!("You can't undelete role_id ({id}) as it is not deleted.")));
    }
    role.deleted = false;
    role.etag = crate::policy::new_etag();
    app.mutate(&caller, call, true, |tx| Ok(tx.put(kind::ROLE, &role.name, &role)?))?;
    Ok(Reply::Json(view(&role, true)))
}

pub(crate) fn patch_custom(app: &App, req: &Req, project: &str, id: &str) -> Result<Reply> {
    let (caller, mut role, call) = custom(app, req, project, id, "iam.roles.update", "google.iam.admin.v1.UpdateRole")?;
    if role.deleted {
        return Err(ApiError::failed_precondition(format!(
            "You can't update role_id ({id}) as it is deleted; undelete it first: gcloud iam roles undelete {id}"
        )));
    }
    let body: PatchRequest = req.json()?;
    if let Some(etag) = &body.role.etag {
        if *etag != role.etag {
            return Err(ApiError::concurrent_policy_change());
        }
    }
    let mask = body.update_mask.unwrap_or_else(|| "title,description,includedPermissions,stage".into());
    for field in mask.split(',').map(str::trim) {
        match field {
            "title" => role.title = body.role.title.clone().unwrap_or_default(),
            "description" => role.description = body.role.description.clone().unwrap_or_default(),
            "includedPermissions" => {
                role.included_permissions = body.role.included_permissions.clone().unwrap_or_default()
            }
            "stage" => role.stage = body.role.stage.unwrap_or(role.stage),
            other => return Err(ApiError::invalid(format!("field `{other}` in `updateMask` cannot be updated"))),
        }
    }
    check_role(app, &role)?;
    role.etag = crate::policy::new_etag();
    app.mutate(&caller, call, true, |tx| Ok(tx.put(kind::ROLE, &role.name, &role)?))?;
    Ok(Reply::Json(view(&role, true)))
}
