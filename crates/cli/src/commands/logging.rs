//! `logging read [FILTER]` and `logging verify`.

use crate::args::{Global, LoggingCmd};
use crate::client::Client;
use crate::format::{self, Default};
use anyhow::{anyhow, bail, Result};
use serde_json::json;

pub fn run(g: &Global, cmd: LoggingCmd) -> Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        LoggingCmd::Read { filter, order, freshness } => {
            let limit = g.limit;
            let order_by = match order.as_str() {
                "desc" => "timestamp desc",
                "asc" => "timestamp asc",
                other => bail!("invalid --order `{other}`; use asc or desc"),
            };
            let freshness = duration(&freshness)
                .ok_or_else(|| anyhow!("invalid --freshness `{freshness}`; use a duration like 30m, 2h, 1d or 1w"))?;
            let given = filter.as_deref().unwrap_or_default().trim();
            // As gcloud: --freshness bounds a newest-first read whose filter names no time of its own.
            let names_time = given.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).any(|w| w == "timestamp");
            let filter = match (order.as_str(), names_time) {
                ("desc", false) => {
                    let since = time::OffsetDateTime::now_utc() - freshness;
                    let since = since.format(&time::format_description::well_known::Rfc3339)?;
                    let bound = format!("timestamp>=\"{since}\"");
                    if given.is_empty() {
                        bound
                    } else {
                        format!("({given}) AND {bound}")
                    }
                }
                _ => given.to_owned(),
            };
            // Every matching entry, page by page, up to --limit (a page holds at most 1,000).
            let mut entries = Vec::new();
            let mut token = String::new();
            loop {
                let mut body = json!({
                    "resourceNames": [format!("projects/{}", client.project(g))],
                    "filter": filter,
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
            if entries.is_empty() && (given.contains("cloud_run_revision") || given.contains("run.googleapis.com%2F")) {
                // Said, not silent: those logs live elsewhere here.
                eprintln!(
                    "Logging holds the audit logs here; Cloud Run's request and container logs are read with \
                     `gatehouse run services logs read SERVICE --region=REGION`."
                );
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

/// A gcloud duration: one or more NUMBER UNIT pairs (`s`, `m`, `h`, `d`, `w`), e.g. `1h30m`; a bare number is
/// seconds.
fn duration(s: &str) -> Option<time::Duration> {
    let s = s.trim().to_ascii_lowercase();
    if let Ok(seconds) = s.parse::<u32>() {
        return (seconds > 0).then(|| time::Duration::seconds(i64::from(seconds)));
    }
    let (mut total, mut number) = (0i64, String::new());
    for c in s.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3_600,
            'd' => 86_400,
            'w' => 604_800,
            _ => return None,
        };
        let n: i64 = std::mem::take(&mut number).parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
    }
    (number.is_empty() && total > 0).then(|| time::Duration::seconds(total))
}

#[cfg(test)]
mod tests {
    use super::duration;

    #[test]
    fn durations_read_as_gcloud_writes_them() {
        assert_eq!(duration("1d"), Some(time::Duration::days(1)));
        assert_eq!(duration("1h30m"), Some(time::Duration::minutes(90)));
        assert_eq!(duration("45"), Some(time::Duration::seconds(45)));
        assert_eq!(duration("2W"), Some(time::Duration::weeks(2)));
        for bad in ["", "0", "d", "1x", "1d2", "0s", "-1d"] {
            assert_eq!(duration(bad), None, "{bad}");
        }
    }
}
