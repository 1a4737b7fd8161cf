//! `logging read [FILTER]` and `logging verify`.

use crate::args::{Global, LoggingCmd};
use crate::client::Client;
use crate::format::{self, Default};
use anyhow::{bail, Result};
use serde_json::json;

pub fn run(g: &Global, cmd: LoggingCmd) -> Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        LoggingCmd::Read { filter, limit, order } => {
            let order_by = match order.as_str() {
                "desc" => "timestamp desc",
                "asc" => "timestamp asc",
                other => bail!("invalid --order `{other}`; use asc or desc"),
            };
            let mut body = json!({
                "resourceNames": [format!("projects/{}", client.project(g))],
                "filter": filter.unwrap_or_default(),
                "orderBy": order_by,
            });
            if let Some(n) = limit {
                body["pageSize"] = json!(n.max(1));
            }
            let v = client.post("/v2/entries:list", &body)?;
            let mut entries = v.get("entries").cloned().unwrap_or_else(|| json!([]));
            if let (Some(n), Some(list)) = (limit, entries.as_array_mut()) {
                list.truncate(n);
            }
            format::print(&entries, g, Default::Yaml)?;
            Ok(0)
        }
        LoggingCmd::Verify => {
            let v = client.post("/gatehouse/v1/auditChain:verify", &json!({}))?;
            if v["verified"] == json!(true) {
                println!(
                    "Audit log verified: {} entries; chain head {}",
                    v["entries"],
                    v["head"].as_str().unwrap_or_default()
                );
                Ok(0)
            } else {
                eprintln!("ERROR: {}", v["error"].as_str().unwrap_or("the audit chain does not verify"));
                Ok(1)
            }
        }
    }
}
