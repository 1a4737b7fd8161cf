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
            // Every matching entry, page by page, up to --limit (a page holds at most 1,000).
            let mut entries = Vec::new();
            let mut token = String::new();
            loop {
                let mut body = json!({
                    "resourceNames": [format!("projects/{}", client.project(g))],
                    "filter": filter.as_deref().unwrap_or_default(),
                    "orderBy": order_by,
                    "pageToken": token,
                });
                if let Some(n) = limit {
                    body["pageSize"] = json!((n - entries.len()).clamp(1, 1000));
                }
                let mut v = client.post("/v2/entries:list", &body)?;
                if let Some(page) = v.get_mut("entries").and_then(|e| e.as_array_mut()) {
                    entries.append(page);
                }
                if let Some(n) = limit {
                    if entries.len() >= n {
                        entries.truncate(n);
                        break;
                    }
                }
                match v["nextPageToken"].as_str() {
                    Some(t) if !t.is_empty() => token = t.to_owned(),
                    _ => break,
                }
            }
            let entries = serde_json::Value::Array(entries);
            format::print(&entries, g, Default::Yaml)?;
            Ok(0)
        }
        LoggingCmd::Verify => {
            let v = client.post("/gatehouse/v1/auditChain:verify", &json!({}))?;
            if v["verified"] == json!(true) {
                outln!(
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
