//! `identity groups create` and `identity groups memberships add|list`.

use super::seg;
use crate::args::{Global, GroupsCmd, IdentityCmd, MembershipsCmd};
use crate::client::Client;
use crate::format::{self, Default};
use anyhow::{anyhow, Result};
use serde_json::{json, Value};

pub fn run(g: &Global, cmd: IdentityCmd) -> Result<u8> {
    let client = Client::new(g)?;
    let IdentityCmd::Groups(cmd) = cmd;
    match cmd {
        GroupsCmd::Create { email, display_name, description, organization, with_initial_owner: _ } => {
            let body = json!({
                "groupKey": { "id": email },
                "parent": organization.map(|o| format!("customers/{o}")).unwrap_or_default(),
                "displayName": display_name.unwrap_or_default(),
                "description": description.unwrap_or_default(),
                "labels": { "cloudidentity.googleapis.com/groups.discussion_forum": "" },
            });
            let op = client.post("/v1/groups", &body)?;
            eprintln!("Created group [{email}].");
            format::print(&op["response"], g, Default::Yaml)?;
        }
        GroupsCmd::Memberships(MembershipsCmd::Add { group_email, member_email, roles }) => {
            let group = lookup(&client, &group_email)?;
            let roles: Vec<Value> = roles
                .as_deref()
                .map(super::split_list)
                .unwrap_or_else(|| vec!["MEMBER".into()])
                .into_iter()
                .map(|r| json!({ "name": r.to_uppercase() }))
                .collect();
            let op = client.post(
                &format!("/v1/{group}/memberships"),
                &json!({ "preferredMemberKey": { "id": member_email }, "roles": roles }),
            )?;
            eprintln!("Added [{member_email}] to group [{group_email}].");
            format::print(&op["response"], g, Default::Yaml)?;
        }
        GroupsCmd::Memberships(MembershipsCmd::List { group_email }) => {
            let group = lookup(&client, &group_email)?;
            let v = client.get(&format!("/v1/{group}/memberships"))?;
            format::print(&v.get("memberships").cloned().unwrap_or_else(|| json!([])), g, Default::Yaml)?;
        }
    }
    Ok(0)
}

/// `groups/ID` of the group with this email.
fn lookup(client: &Client, email: &str) -> Result<String> {
    let v = client.get(&format!("/v1/groups:lookup?groupKey.id={}", seg(email)))?;
    v["name"].as_str().map(str::to_owned).ok_or_else(|| anyhow!("group `{email}` not found"))
}
