//! Cloud Logging v2 `entries:list` over the audit chain, and verification of the chain.

use crate::audit_trail::Call;
use crate::http::{Reply, Req};
use crate::state::{App, Result};
use model::ApiError;
use serde::Deserialize;
use serde_json::{json, Value};

const SERVICE: &str = "logging.googleapis.com";
const MAX_PAGE: usize = 1000;

/// `google.logging.v2.ListLogEntriesRequest`: every field it has (by its JSON name or its proto name, as Google's
/// parser reads either), and nothing else.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ListRequest {
    #[serde(default, alias = "resource_names")]
    resource_names: Vec<String>,
    #[serde(default, alias = "project_ids")]
    project_ids: Vec<String>,
    #[serde(default)]
    filter: String,
    #[serde(default, alias = "order_by")]
    order_by: String,
    #[serde(default, alias = "page_size")]
    page_size: Option<usize>,
    #[serde(default, alias = "page_token")]
    page_token: String,
}

pub(crate) fn list(app: &App, req: &Req) -> Result<Reply> {
    let caller = req.caller(app)?;
    let body: ListRequest = req.json()?;
    for name in body
        .resource_names
        .iter()
        .map(|n| n.trim_start_matches("projects/"))
        .chain(body.project_ids.iter().map(String::as_str))
    {
        crate::projects::resolve(app, name, "logging.logEntries.list")?;
    }
    let project = app.project.full_name();
    let call = Call::new(
        SERVICE,
        "google.logging.v2.LoggingServiceV2.ListLogEntries",
        format!("projects/{}", app.project.project_id),
    )
    .reading();
    app.authorize(&caller, "logging.logEntries.list", &project, &call)?;
    // Data Access entries are private logs, as in Google Cloud.
    let private =
        !app.granted_permissions(&caller, &["logging.privateLogEntries.list".to_owned()], &project).is_empty();
    let filter = audit::Filter::parse(&body.filter).map_err(|e| ApiError::invalid(e.to_string()))?;
    let descending = match body.order_by.trim() {
        "" | "timestamp asc" | "timestamp" => false,
        "timestamp desc" => true,
        other => {
            return Err(ApiError::invalid(format!(
                "invalid `orderBy` `{other}`; use `timestamp asc` or `timestamp desc`"
            )))
        }
    };
    let page_size = body.page_size.unwrap_or(MAX_PAGE).clamp(1, MAX_PAGE);
    // A page token is where the last page stopped (the order's letter and the last entry's `seq`), so each page
    // resumes there instead of scanning the log from its start again.
    let order = if descending { 'd' } else { 'a' };
    let bad_token = || ApiError::invalid("invalid `pageToken`: pass the `nextPageToken` of the same listing");
    let from = match body.page_token.as_str() {
        "" => None,
        token => Some(token.strip_prefix(order).and_then(|seq| seq.parse::<i64>().ok()).ok_or_else(bad_token)?),
    };
    app.settle_audit_log();
    // Streamed, newest or oldest first: a page costs the rows it covers, never the whole log in memory.
    let mut page = Vec::with_capacity(page_size.min(64));
    let (mut last, mut more) = (None, false);
    app.read(|tx| {
        Ok(tx.scan_audit(descending, from, |row| {
            let Ok(entry) = serde_json::from_str::<Value>(&row.entry) else { return true };
            if !private && entry["logName"].as_str().unwrap_or_default().ends_with("data_access") {
                return true;
            }
            if !filter.matches(&entry) {
                return true;
            }
            if page.len() == page_size {
                more = true;
                return false;
            }
            page.push(entry);
            last = Some(row.seq);
            true
        })?)
    })?;
    let mut out = json!({ "entries": page });
    if let (true, Some(seq)) = (more, last) {
        out["nextPageToken"] = json!(format!("{order}{seq}"));
    }
    Ok(Reply::Json(out))
}

pub(crate) fn verify(app: &App, req: &Req) -> Result<Reply> {
    let caller = req.caller(app)?;
    let project = app.project.full_name();
    let call =
        Call::new("gatehouse.local", "gatehouse.audit.VerifyChain", format!("projects/{}", app.project.project_id))
            .reading();
    app.authorize(&caller, "logging.logEntries.list", &project, &call)?;
    app.settle_audit_log();
    let rows = app.read(|tx| Ok(tx.audit_rows(0, usize::MAX)?))?;
    let stored = rows.iter().map(|r| audit::StoredEntry { seq: r.seq, entry_json: r.entry.as_bytes(), hash: &r.hash });
    Ok(Reply::Json(match audit::verify(stored) {
        Ok(report) => json!({ "verified": true, "entries": report.entries, "head": report.head }),
        Err(e) => json!({ "verified": false, "entries": rows.len(), "error": e.to_string() }),
    }))
}
