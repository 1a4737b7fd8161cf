//! `projects add-iam-policy-binding|remove-iam-policy-binding|get-iam-policy|set-iam-policy|describe`.

use super::{policy, seg};
use crate::args::{Global, ProjectsCmd};
use crate::client::Client;
use crate::format::{self, Default};
use anyhow::Result;

pub fn run(g: &Global, cmd: ProjectsCmd) -> Result<u8> {
    let client = Client::new(g)?;
    let base = |p: &str| format!("/v1/projects/{}", seg(p));
    match cmd {
        ProjectsCmd::AddIamPolicyBinding { project_id, binding } => {
            let p = policy::add_binding(&client, &base(&project_id), &binding)?;
            eprintln!("Updated IAM policy for project [{project_id}].");
            format::print(&p, g, Default::Yaml)?;
        }
        ProjectsCmd::RemoveIamPolicyBinding { project_id, binding } => {
            let p = policy::remove_binding(&client, &base(&project_id), &binding)?;
            eprintln!("Updated IAM policy for project [{project_id}].");
            format::print(&p, g, Default::Yaml)?;
        }
        ProjectsCmd::GetIamPolicy { project_id } => {
            format::print(&policy::get(&client, &base(&project_id))?, g, Default::Yaml)?;
        }
        ProjectsCmd::SetIamPolicy { project_id, policy_file } => {
            let p = policy::set_from_file(&client, &base(&project_id), &policy_file)?;
            eprintln!("Updated IAM policy for project [{project_id}].");
            format::print(&p, g, Default::Yaml)?;
        }
        ProjectsCmd::Describe { project_id } => {
            format::print(&client.get(&base(&project_id))?, g, Default::Yaml)?;
        }
    }
    Ok(0)
}
