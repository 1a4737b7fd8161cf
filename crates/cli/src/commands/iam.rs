//! `iam service-accounts …` and `iam roles …`.

use super::{policy, seg, split_list};
use crate::args::{Global, IamCmd, RolesCmd, SaKeysCmd, ServiceAccountsCmd};
use crate::client::Client;
use crate::format::{self, Default};
use anyhow::{anyhow, bail, Result};
use reqwest::Method;
use serde_json::{json, Value};

pub fn run(g: &Global, cmd: IamCmd) -> Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        IamCmd::ServiceAccounts(c) => service_accounts(&client, g, c),
        IamCmd::Roles(c) => roles(&client, g, c),
    }
}

/// Accepts an email, a unique id, or a bare account id (completed with the project, for convenience).
fn account(client: &Client, g: &Global, s: &str) -> String {
    if s.contains('@') || s.chars().all(|c| c.is_ascii_digit()) {
        s.to_owned()
    } else {
        model::names::service_account_email(s, &client.project(g))
    }
}

fn service_accounts(client: &Client, g: &Global, cmd: ServiceAccountsCmd) -> Result<u8> {
    let project = client.project(g);
    let sa_path = |s: &str| format!("/v1/projects/-/serviceAccounts/{}", seg(&account(client, g, s)));
    match cmd {
        ServiceAccountsCmd::Create { name, display_name, description } => {
            let mut fields = json!({});
            if let Some(d) = display_name {
                fields["displayName"] = json!(d);
            }
            if let Some(d) = description {
                fields["description"] = json!(d);
            }
            let sa = client.post(
                &format!("/v1/projects/{}/serviceAccounts", seg(&project)),
                &json!({ "accountId": name, "serviceAccount": fields }),
            )?;
            eprintln!("Created service account [{name}].");
            if g.format.is_some() {
                format::print(&sa, g, Default::Yaml)?;
            }
        }
        ServiceAccountsCmd::List => {
            let v = client.get(&format!("/v1/projects/{}/serviceAccounts", seg(&project)))?;
            let mut accounts = v.get("accounts").cloned().unwrap_or_else(|| json!([]));
            if g.format.is_none() {
                // The API leaves out `disabled: false`, as Google's does; gcloud's table still says False.
                for a in accounts.as_array_mut().into_iter().flatten() {
                    a["disabled"] = json!(a["disabled"].as_bool().unwrap_or(false));
                }
            }
            format::print(&accounts, g, Default::Table("table(displayName:label='DISPLAY NAME',email,disabled)"))?;
        }
        ServiceAccountsCmd::Describe { service_account } => {
            format::print(&client.get(&sa_path(&service_account))?, g, Default::Yaml)?;
        }
        ServiceAccountsCmd::Update { service_account, display_name, description } => {
            let mut mask = Vec::new();
            let mut fields = json!({});
            if let Some(d) = display_name {
                fields["displayName"] = json!(d);
                mask.push("displayName");
            }
            if let Some(d) = description {
                fields["description"] = json!(d);
                mask.push("description");
            }
            if mask.is_empty() {
                bail!("nothing to update; give --display-name or --description");
            }
            let body = json!({ "serviceAccount": fields, "updateMask": mask.join(",") });
            let sa = client.call(Method::PATCH, &sa_path(&service_account), Some(&body))?;
            eprintln!("Updated service account [{}].", account(client, g, &service_account));
            format::print(&sa, g, Default::Yaml)?;
        }
        ServiceAccountsCmd::Delete { service_account } => {
            client.call(Method::DELETE, &sa_path(&service_account), None)?;
            eprintln!("deleted service account [{}]", account(client, g, &service_account));
        }
        ServiceAccountsCmd::Undelete { account_id } => {
            let v = client.post(&format!("{}:undelete", sa_path(&account_id)), &json!({}))?;
            eprintln!("Restored service account [{}].", v["restoredAccount"]["email"].as_str().unwrap_or(&account_id));
            format::print(&v, g, Default::Yaml)?;
        }
        ServiceAccountsCmd::Disable { service_account } => {
            client.post(&format!("{}:disable", sa_path(&service_account)), &json!({}))?;
            eprintln!("Disabled service account [{}].", account(client, g, &service_account));
        }
        ServiceAccountsCmd::Enable { service_account } => {
            client.post(&format!("{}:enable", sa_path(&service_account)), &json!({}))?;
            eprintln!("Enabled service account [{}].", account(client, g, &service_account));
        }
        ServiceAccountsCmd::AddIamPolicyBinding { service_account, binding } => {
            let p = policy::add_binding(client, &sa_path(&service_account), &binding)?;
            eprintln!("Updated IAM policy for serviceAccount [{}].", account(client, g, &service_account));
            format::print(&p, g, Default::Yaml)?;
        }
        ServiceAccountsCmd::RemoveIamPolicyBinding { service_account, binding } => {
            let p = policy::remove_binding(client, &sa_path(&service_account), &binding)?;
            eprintln!("Updated IAM policy for serviceAccount [{}].", account(client, g, &service_account));
            format::print(&p, g, Default::Yaml)?;
        }
        ServiceAccountsCmd::GetIamPolicy { service_account } => {
            format::print(&policy::get(client, &sa_path(&service_account))?, g, Default::Yaml)?;
        }
        ServiceAccountsCmd::Keys(SaKeysCmd::Create { output_file, iam_account }) => {
            let key = client.post(&format!("{}/keys", sa_path(&iam_account)), &json!({}))?;
            client.home.write_private_at(&output_file, serde_json::to_string_pretty(&key)?.as_bytes())?;
            eprintln!(
                "created key [{}] for [{}]",
                key["name"].as_str().unwrap_or_default(),
                account(client, g, &iam_account)
            );
        }
        ServiceAccountsCmd::Keys(SaKeysCmd::List { iam_account }) => {
            let v = client.get(&format!("{}/keys", sa_path(&iam_account)))?;
            let keys = v.get("keys").cloned().unwrap_or_else(|| json!([]));
            format::print(
                &keys,
                g,
                Default::Table("table(name:label=KEY,keyType:label=TYPE,validAfterTime:label=CREATED_AT)"),
            )?;
        }
        ServiceAccountsCmd::SetIamPolicy { service_account, policy_file } => {
            let p = policy::set_from_file(client, &sa_path(&service_account), &policy_file)?;
            eprintln!("Updated IAM policy for serviceAccount [{}].", account(client, g, &service_account));
            format::print(&p, g, Default::Yaml)?;
        }
    }
    Ok(0)
}

/// The API path of a role: `roles/X` (predefined), `projects/P/roles/ID`, or a bare ID in `--project`.
fn role_path(g: &Global, role: &str) -> Result<String> {
    if let Some(id) = role.strip_prefix("roles/") {
        return Ok(format!("/v1/roles/{}", seg(id)));
    }
    if role.starts_with("projects/") {
        return Ok(format!("/v1/{role}"));
    }
    match &g.project {
        Some(p) => Ok(format!("/v1/projects/{}/roles/{}", seg(p), seg(role))),
        None => Ok(format!("/v1/roles/{}", seg(role))),
    }
}

fn custom_role_path(client: &Client, g: &Global, id: &str) -> String {
    format!("/v1/projects/{}/roles/{}", seg(&client.project(g)), seg(id))
}

fn stage(s: Option<String>) -> Result<Option<String>> {
    s.map(|s| {
        let up = s.to_uppercase();
        if ["ALPHA", "BETA", "GA", "DEPRECATED", "DISABLED", "EAP"].contains(&up.as_str()) {
            Ok(up)
        } else {
            Err(anyhow!("invalid --stage `{s}`; use ALPHA, BETA, GA, DEPRECATED, DISABLED or EAP"))
        }
    })
    .transpose()
}

fn roles(client: &Client, g: &Global, cmd: RolesCmd) -> Result<u8> {
    match cmd {
        RolesCmd::Create { role_id, permissions, title, description, stage: st } => {
            let project =
                g.project.clone().ok_or_else(|| anyhow!("custom roles live in a project; add --project=PROJECT_ID"))?;
            let mut role = json!({ "includedPermissions": split_list(permissions.as_deref().unwrap_or_default()) });
            if let Some(t) = title {
                role["title"] = json!(t);
            }
            if let Some(d) = description {
                role["description"] = json!(d);
            }
            if let Some(s) = stage(st)? {
                role["stage"] = json!(s);
            }
            let created = client
                .post(&format!("/v1/projects/{}/roles", seg(&project)), &json!({ "roleId": role_id, "role": role }))?;
            eprintln!("Created role [{role_id}].");
            format::print(&created, g, Default::Yaml)?;
        }
        RolesCmd::Describe { role } => {
            format::print(&client.get(&role_path(g, &role)?)?, g, Default::Yaml)?;
        }
        RolesCmd::List { show_deleted } => {
            let v = match &g.project {
                Some(p) => client.get(&format!("/v1/projects/{}/roles?showDeleted={show_deleted}", seg(p)))?,
                None => client.get("/v1/roles")?,
            };
            format::print(&v.get("roles").cloned().unwrap_or_else(|| json!([])), g, Default::Yaml)?;
        }
        RolesCmd::Delete { role_id } => {
            let v = client.call(Method::DELETE, &custom_role_path(client, g, &role_id), None)?;
            eprintln!("Deleted role [{role_id}].");
            format::print(&v, g, Default::Yaml)?;
        }
        RolesCmd::Undelete { role_id } => {
            let v = client.post(&format!("{}:undelete", custom_role_path(client, g, &role_id)), &json!({}))?;
            eprintln!("Undeleted role [{role_id}].");
            format::print(&v, g, Default::Yaml)?;
        }
        RolesCmd::Update {
            role_id,
            add_permissions,
            remove_permissions,
            permissions,
            title,
            description,
            stage: st,
        } => {
            let path = custom_role_path(client, g, &role_id);
            let current = client.get(&path)?;
            let mut perms: Vec<String> =
                serde_json::from_value(current["includedPermissions"].clone()).unwrap_or_default();
            if let Some(p) = permissions {
                perms = split_list(&p);
            }
            for p in split_list(add_permissions.as_deref().unwrap_or_default()) {
                if !perms.contains(&p) {
                    perms.push(p);
                }
            }
            let remove = split_list(remove_permissions.as_deref().unwrap_or_default());
            perms.retain(|p| !remove.contains(p));
            let mut role = json!({ "includedPermissions": perms, "etag": current["etag"] });
            let mut mask = vec!["includedPermissions"];
            if let Some(t) = title {
                role["title"] = json!(t);
                mask.push("title");
            }
            if let Some(d) = description {
                role["description"] = json!(d);
                mask.push("description");
            }
            if let Some(s) = stage(st)? {
                role["stage"] = json!(s);
                mask.push("stage");
            }
            let body = json!({ "role": role, "updateMask": mask.join(",") });
            let v: Value = client.call(Method::PATCH, &path, Some(&body))?;
            eprintln!("Updated role [{role_id}].");
            format::print(&v, g, Default::Yaml)?;
        }
    }
    Ok(0)
}
