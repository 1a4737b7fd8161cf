//! Cloud Identity groups v1: create groups and add members. A `group:` binding grants its role to the group's members.
//!
//! Groups change who holds roles, so managing them needs `resourcemanager.projects.setIamPolicy` on the project and
//! reading them `resourcemanager.projects.getIamPolicy` (Cloud Identity has no IAM of its own on one machine).

use crate::audit_trail::Call;
use crate::auth::Caller;
use crate::http::{Reply, Req};
use crate::state::{kind, now_rfc3339, App, Result};
use model::member::valid_email;
use model::ApiError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;

const SERVICE: &str = "cloudidentity.googleapis.com";
const MANAGE: &str = "resourcemanager.projects.setIamPolicy";
const READ: &str = "resourcemanager.projects.getIamPolicy";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EntityKey {
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Group {
    pub name: String,
    pub group_key: EntityKey,
    pub parent: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub create_time: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Membership {
    pub name: String,
    pub preferred_member_key: EntityKey,
    pub roles: Vec<Value>,
    #[serde(rename = "type")]
    pub kind: String,
    pub create_time: String,
    /// The group's email (not part of Google's shape; kept for the IAM snapshot).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub group_email: String,
    /// The member as an IAM member string (`user:…`, `serviceAccount:…`, `group:…`).
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub member: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateGroup {
    group_key: Option<EntityKey>,
    #[serde(default)]
    parent: String,
    #[serde(default)]
    display_name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateMembership {
    preferred_member_key: Option<EntityKey>,
    #[serde(default)]
    roles: Vec<Value>,
}

fn operation(response: Value) -> Value {
    json!({ "done": true, "response": response })
}

fn check(app: &App, caller: &Caller, permission: &str, method: &'static str, resource: &str) -> Result<Call> {
    let call = Call::new(SERVICE, method, resource).needs(permission, &app.project.full_name());
    let call = if permission == READ { call.reading() } else { call };
    app.authorize(caller, permission, &app.project.full_name(), &call)?;
    Ok(call)
}

fn find_group(tx: &store::Tx, id: &str) -> std::result::Result<Option<Group>, store::StoreError> {
    let name = format!("groups/{id}");
    Ok(tx.list::<Group>(kind::GROUP, "")?.into_iter().map(|(_, g)| g).find(|g| g.name == name))
}

pub(crate) fn create(app: &App, req: &Req) -> Result<Reply> {
    let caller = req.caller(app)?;
    let body: CreateGroup = req.json()?;
    let email = body
        .group_key
        .map(|k| k.id)
        .ok_or_else(|| ApiError::invalid("`groupKey.id` (the group's email) is required"))?;
    let email = valid_email(&email).map_err(ApiError::invalid)?.to_lowercase();
    let call = check(app, &caller, MANAGE, "google.apps.cloudidentity.groups.v1.GroupsService.CreateGroup", &email)?
        .with_request(json!({ "groupKey": { "id": email } }));
    let group = Group {
        name: format!("groups/{:016x}", tokens::random_u64()),
        group_key: EntityKey { id: email.clone() },
        parent: if body.parent.is_empty() { "customers/C0local".into() } else { body.parent },
        display_name: body.display_name,
        description: body.description,
        create_time: now_rfc3339(),
        labels: body.labels,
    };
    let group = app.mutate(&caller, call, true, |tx| {
        if tx.get::<Group>(kind::GROUP, &email)?.is_some() {
            return Err(ApiError::already_exists(format!("Group `{email}` already exists.")).into());
        }
        tx.put(kind::GROUP, &email, &group)?;
        Ok(group)
    })?;
    Ok(Reply::Json(operation(serde_json::to_value(group).unwrap_or_default())))
}

pub(crate) fn list(app: &App, req: &Req) -> Result<Reply> {
    let caller = req.caller(app)?;
    check(app, &caller, READ, "google.apps.cloudidentity.groups.v1.GroupsService.ListGroups", "groups")?;
    let groups: Vec<Group> = app.read(|tx| Ok(tx.list(kind::GROUP, "")?.into_iter().map(|(_, g)| g).collect()))?;
    Ok(Reply::Json(json!({ "groups": groups })))
}

pub(crate) fn lookup(app: &App, req: &Req) -> Result<Reply> {
    let caller = req.caller(app)?;
    let email = req.query("groupKey.id").ok_or_else(|| ApiError::invalid("`groupKey.id` is required"))?.to_lowercase();
    check(app, &caller, READ, "google.apps.cloudidentity.groups.v1.GroupsService.LookupGroupName", &email)?;
    let group = app.read(|tx| Ok(tx.get::<Group>(kind::GROUP, &email)?))?;
    let group = group.ok_or_else(|| ApiError::not_found(format!("Group `{email}` not found.")))?;
    Ok(Reply::Json(json!({ "name": group.name })))
}

pub(crate) fn add_membership(app: &App, req: &Req, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    let body: CreateMembership = req.json()?;
    let member_email = body
        .preferred_member_key
        .map(|k| k.id)
        .ok_or_else(|| ApiError::invalid("`preferredMemberKey.id` (the member's email) is required"))?;
    let member_email = valid_email(&member_email).map_err(ApiError::invalid)?.to_lowercase();
    let call = check(
        app,
        &caller,
        MANAGE,
        "google.apps.cloudidentity.groups.v1.MembershipsService.CreateMembership",
        &format!("groups/{id}"),
    )?
    .with_request(json!({ "preferredMemberKey": { "id": member_email } }));
    let roles = if body.roles.is_empty() { vec![json!({ "name": "MEMBER" })] } else { body.roles };
    let membership = app.mutate(&caller, call, true, |tx| {
        let group =
            find_group(tx, id)?.ok_or_else(|| ApiError::not_found(format!("Group `groups/{id}` not found.")))?;
        let (kind_name, member) = if tx.get::<Value>(kind::SERVICE_ACCOUNT, &member_email)?.is_some()
            || member_email.ends_with(".gserviceaccount.com")
        {
            ("SERVICE_ACCOUNT", format!("serviceAccount:{member_email}"))
        } else if tx.get::<Value>(kind::GROUP, &member_email)?.is_some() {
            ("GROUP", format!("group:{member_email}"))
        } else {
            ("USER", format!("user:{member_email}"))
        };
        let key = format!("{}/{member_email}", group.group_key.id);
        if tx.get::<Value>(kind::MEMBERSHIP, &key)?.is_some() {
            return Err(ApiError::already_exists(format!(
                "Member `{member_email}` is already in group `{}`.",
                group.group_key.id
            ))
            .into());
        }
        let m = Membership {
            name: format!("{}/memberships/{:016x}", group.name, tokens::random_u64()),
            preferred_member_key: EntityKey { id: member_email.clone() },
            roles,
            kind: kind_name.into(),
            create_time: now_rfc3339(),
            group_email: group.group_key.id.clone(),
            member,
        };
        tx.put(kind::MEMBERSHIP, &key, &m)?;
        Ok(m)
    })?;
    Ok(Reply::Json(operation(serde_json::to_value(membership).unwrap_or_default())))
}

pub(crate) fn list_memberships(app: &App, req: &Req, id: &str) -> Result<Reply> {
    let caller = req.caller(app)?;
    check(
        app,
        &caller,
        READ,
        "google.apps.cloudidentity.groups.v1.MembershipsService.ListMemberships",
        &format!("groups/{id}"),
    )?;
    let memberships: Vec<Membership> = app.read(|tx| {
        let group =
            find_group(tx, id)?.ok_or_else(|| ApiError::not_found(format!("Group `groups/{id}` not found.")))?;
        Ok(tx
            .list::<Membership>(kind::MEMBERSHIP, &format!("{}/", group.group_key.id))?
            .into_iter()
            .map(|(_, m)| m)
            .collect())
    })?;
    Ok(Reply::Json(json!({ "memberships": memberships })))
}
