//! `policy-troubleshoot iam RESOURCE --principal-email=E --permission=P`.

use crate::args::{Global, TroubleshootCmd};
use crate::client::Client;
use crate::format::{self, Default};
use anyhow::Result;
use serde_json::json;

pub fn run(g: &Global, cmd: TroubleshootCmd) -> Result<u8> {
    let client = Client::new(g)?;
    let TroubleshootCmd::Iam { resource, principal_email, permission } = cmd;
    let body = json!({ "accessTuple": {
        "principal": principal_email, "fullResourceName": resource, "permission": permission } });
    let mut v = client.post("/v1/iam:troubleshoot", &body)?;
    let text = v.as_object_mut().and_then(|o| o.remove("text"));
    match (&g.format, text) {
        (None, Some(text)) => {
            println!("{}", v["access"].as_str().unwrap_or("UNKNOWN"));
            println!("{}", text.as_str().unwrap_or_default().trim_end());
        }
        _ => format::print(&v, g, Default::Yaml)?,
    }
    Ok(0)
}
