//! Resource Manager: `GET /v1/projects/{id}` and the project's IAM policy.

use crate::audit_trail::Call;
use crate::http::{Reply, Req};
use crate::policy::{self, Target};
use crate::state::{App, Result};
use model::ApiError;

const SERVICE: &str = "cloudresourcemanager.googleapis.com";

/// Resolves a project id or number; an unknown project answers like a denied one, as Google does.
pub(crate) fn resolve<'a>(app: &'a App, id: &str, permission: &str) -> Result<&'a crate::state::Project> {
    if app.project.is(id) {
        Ok(&app.project)
    } else {
        Err(ApiError::permission_denied(permission, &format!("projects/{id}")))
    }
}

pub(crate) fn target(app: &App) -> Target {
    Target {
        full_name: app.project.full_name(),
        shown_name: format!("projects/{}", app.project.project_id),
        service: SERVICE,
        get_permission: "resourcemanager.projects.getIamPolicy",
        set_permission: "resourcemanager.projects.setIamPolicy",
        get_method: "GetIamPolicy",
        set_method: "SetIamPolicy",
        requires_owner: true,
        grantable: &[],
        resource: None,
    }
}

pub(crate) fn get(app: &App, req: &Req, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = resolve(app, id, "resourcemanager.projects.get")?;
    let call = Call::new(SERVICE, "GetProject", format!("projects/{}", project.project_id)).reading();
    app.authorize(&caller, "resourcemanager.projects.get", &project.full_name(), &call)?;
    let mut v = serde_json::to_value(project).map_err(|e| ApiError::internal(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.remove("region");
    }
    Ok(Reply::Json(v))
}

pub(crate) fn iam(app: &App, req: &Req, id: &str, verb: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    resolve(app, id, "resourcemanager.projects.getIamPolicy")?;
    policy::handle(app, req, &caller, &target(app), verb)
}
