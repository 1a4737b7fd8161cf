//! `secrets …` and `secrets versions …`, as gcloud's. The payload is read from `--data-file` (or standard input) and
//! printed by `versions access` only, exactly its bytes; no other command shows it.

use super::{basename, policy, seg, split_dict, split_list};
use crate::args::{Global, SecretLocation, SecretVersionsCmd, SecretsCmd, VersionArg};
use crate::client::Client;
use crate::format::{self, Default};
use anyhow::{anyhow, bail, Context, Result};
use base64::Engine;
use reqwest::Method;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::Path;

pub fn run(g: &Global, cmd: SecretsCmd) -> Result<u8> {
    let client = Client::new(g)?;
    match cmd {
        SecretsCmd::Versions(v) => versions(&client, g, v),
        other => secrets(&client, g, other),
    }
}

/// `projects/P[/locations/L]` of the command, `--project` and `--location` applied.
fn parent(client: &Client, g: &Global, at: &SecretLocation) -> String {
    let project = client.project(g);
    match &at.location {
        Some(l) => format!("projects/{}/locations/{}", seg(&project), seg(l)),
        None => format!("projects/{}", seg(&project)),
    }
}

/// The API path of a secret given by id or by full name (`projects/P/secrets/S`).
fn secret_path(client: &Client, g: &Global, at: &SecretLocation, secret: &str) -> String {
    if secret.starts_with("projects/") {
        format!("/v1/{secret}")
    } else {
        format!("/v1/{}/secrets/{}", parent(client, g, at), seg(secret))
    }
}

/// The API path of a version: `--secret` and VERSION, or VERSION as a full name.
fn version_path(client: &Client, g: &Global, v: &VersionArg) -> Result<(String, String, String)> {
    if v.version.starts_with("projects/") {
        let (secret, version) = v
            .version
            .rsplit_once("/versions/")
            .ok_or_else(|| anyhow!("`{}` is not a version name; use projects/P/secrets/S/versions/V", v.version))?;
        return Ok((format!("/v1/{}", v.version), basename(secret).to_owned(), version.to_owned()));
    }
    let secret = v.secret.as_deref().filter(|s| !s.trim().is_empty()).ok_or_else(|| {
        anyhow!("which secret? add --secret=SECRET, or give the version as projects/P/secrets/S/versions/V")
    })?;
    let path = format!("{}/versions/{}", secret_path(client, g, &v.at, secret), seg(&v.version));
    Ok((path, basename(secret).to_owned(), v.version.clone()))
}

/// Reads `--data-file`: a path, or `-` for standard input. Checked before anything is written: a file that cannot
/// be read, an empty payload (Secret Manager refuses one) or one over 64 KiB fails here. `omit` says what to do
/// instead when no payload is meant (`secrets create` can leave `--data-file` out).
fn read_data(path: &Path, omit: &str) -> Result<Vec<u8>> {
    let stdin = path == Path::new("-");
    let data = if stdin {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .context("cannot read the payload from standard input (--data-file=-)")?;
        buf
    } else {
        std::fs::read(path).map_err(|e| {
            anyhow!(
                "cannot read --data-file `{}`: {e}; give a readable file, or `-` to read standard input",
                path.display()
            )
        })?
    };
    if data.is_empty() {
        let (source, fix) = if stdin {
            ("standard input (--data-file=-) is empty".to_owned(), "pipe the value in, e.g. `printf %s \"$VALUE\" | …`")
        } else {
            (format!("--data-file `{}` is empty", path.display()), "write the value into the file")
        };
        bail!("{source}: a secret version needs a payload of 1 to 65536 bytes; {fix}{omit}");
    }
    if data.len() > ::secrets::MAX_PAYLOAD {
        bail!(
            "the payload is {} bytes; a secret version holds at most {} bytes (64 KiB)",
            data.len(),
            ::secrets::MAX_PAYLOAD
        );
    }
    Ok(data)
}

/// `{"payload": {"data", "dataCrc32c"}}`, with the checksum gcloud sends so the server can verify the bytes.
fn payload_body(data: &[u8]) -> Value {
    json!({ "payload": {
        "data": base64::engine::general_purpose::STANDARD.encode(data),
        "dataCrc32c": ::secrets::crc32c(data).to_string(),
    }})
}

fn labels_map(spec: &str, flag: &str) -> Result<BTreeMap<String, String>> {
    let pairs = split_dict(spec, flag.trim_start_matches("--"))?;
    Ok(pairs.into_iter().map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned())).collect())
}

/// Keeps `--format` output the API's resource; the default table shows short names as gcloud's does.
fn print_list(items: Value, g: &Global, columns: &[(&str, &str)]) -> Result<()> {
    // As gcloud: --flatten, --filter, --sort-by and --limit apply to the resources; then the table picks its columns.
    let items = format::select(&Value::Array(items.as_array().cloned().unwrap_or_default()), g)?;
    let g = &Global { filter: None, flatten: None, sort_by: None, limit: None, ..g.clone() };
    if g.format.is_some() {
        return format::print(&Value::Array(items), g, Default::Yaml);
    }
    let rows: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut row = Map::new();
            for (field, _) in columns {
                let v = &item[*field];
                let v = match (*field, v) {
                    ("name", Value::String(s)) => json!(basename(s)),
                    ("replication", Value::Object(o)) if o.contains_key("automatic") => json!("automatic"),
                    ("replication", Value::Null) => json!("-"),
                    (_, Value::Null) => json!("-"),
                    (_, other) => other.clone(),
                };
                row.insert((*field).to_owned(), v);
            }
            Value::Object(row)
        })
        .collect();
    let spec: Vec<String> = columns.iter().map(|(f, label)| format!("{f}:label={label}")).collect();
    let spec = format!("table({})", spec.join(","));
    let g = Global { format: Some(spec), ..g.clone() };
    format::print(&Value::Array(rows), &g, Default::Yaml)
}

fn secrets(client: &Client, g: &Global, cmd: SecretsCmd) -> Result<u8> {
    match cmd {
        SecretsCmd::Create { secret, data_file, replication_policy, locations, labels, at } => {
            match replication_policy.as_deref().map(str::to_ascii_lowercase).as_deref() {
                None | Some("automatic") => {}
                Some("user-managed") => bail!(
                    "--replication-policy=user-managed is not supported by Gatehouse (every replica is on this \
                     machine); use --replication-policy=automatic, the default"
                ),
                Some(other) => bail!("invalid --replication-policy `{other}`; use automatic"),
            }
            if locations.is_some() {
                bail!(
                    "--locations applies to user-managed replication, which Gatehouse does not support; leave it out"
                );
            }
            // Read the payload first: a missing or empty file must leave nothing behind.
            let omit = ", or leave out --data-file to create the secret without a version";
            let data = data_file.as_deref().map(|f| read_data(f, omit)).transpose()?;
            let mut body = json!({});
            if at.location.is_none() {
                body["replication"] = json!({ "automatic": {} });
            }
            if let Some(l) = labels {
                body["labels"] = json!(labels_map(&l, "--labels")?);
            }
            let created =
                client.post(&format!("/v1/{}/secrets?secretId={}", parent(client, g, &at), seg(&secret)), &body)?;
            eprintln!("Created secret [{secret}].");
            if let Some(data) = data {
                let v = client
                    .post(&format!("{}:addVersion", secret_path(client, g, &at, &secret)), &payload_body(&data))?;
                eprintln!(
                    "Created version [{}] of the secret [{secret}].",
                    basename(v["name"].as_str().unwrap_or_default())
                );
            }
            if g.format.is_some() {
                format::print(&created, g, Default::Yaml)?;
            }
        }
        SecretsCmd::List { at } => {
            let v = client.get(&format!("/v1/{}/secrets", parent(client, g, &at)))?;
            let items = v.get("secrets").cloned().unwrap_or_else(|| json!([]));
            print_list(
                items,
                g,
                &[("name", "NAME"), ("createTime", "CREATED"), ("replication", "REPLICATION_POLICY")],
            )?;
        }
        SecretsCmd::Describe { secret, at } => {
            format::print(&client.get(&secret_path(client, g, &at, &secret))?, g, Default::Yaml)?;
        }
        SecretsCmd::Delete { secret, etag, at } => {
            let mut path = secret_path(client, g, &at, &secret);
            if let Some(e) = etag {
                path.push_str(&format!("?etag={}", seg(&e)));
            }
            client.call(Method::DELETE, &path, None)?;
            eprintln!("Deleted secret [{secret}].");
        }
        SecretsCmd::Update { secret, update_labels, remove_labels, clear_labels, etag, at } => {
            if update_labels.is_none() && remove_labels.is_none() && !clear_labels {
                bail!("nothing to update; give --update-labels, --remove-labels or --clear-labels");
            }
            let path = secret_path(client, g, &at, &secret);
            let current = client.get(&path)?;
            let mut labels: BTreeMap<String, String> =
                serde_json::from_value(current["labels"].clone()).unwrap_or_default();
            if clear_labels {
                labels.clear();
            }
            for k in split_list(remove_labels.as_deref().unwrap_or_default()) {
                labels.remove(&k);
            }
            labels.extend(labels_map(update_labels.as_deref().unwrap_or_default(), "--update-labels")?);
            let mut body = json!({ "labels": labels });
            if let Some(e) = etag {
                body["etag"] = json!(e);
            }
            let v = client.call(Method::PATCH, &format!("{path}?updateMask=labels"), Some(&body))?;
            eprintln!("Updated secret [{secret}].");
            if g.format.is_some() {
                format::print(&v, g, Default::Yaml)?;
            }
        }
        SecretsCmd::AddIamPolicyBinding { secret, binding, at } => {
            let p = policy::add_binding(client, &secret_path(client, g, &at, &secret), &binding)?;
            eprintln!("Updated IAM policy for secret [{secret}].");
            format::print(&p, g, Default::Yaml)?;
        }
        SecretsCmd::RemoveIamPolicyBinding { secret, binding, at } => {
            let p = policy::remove_binding(client, &secret_path(client, g, &at, &secret), &binding)?;
            eprintln!("Updated IAM policy for secret [{secret}].");
            format::print(&p, g, Default::Yaml)?;
        }
        SecretsCmd::GetIamPolicy { secret, at } => {
            format::print(&policy::get(client, &secret_path(client, g, &at, &secret))?, g, Default::Yaml)?;
        }
        SecretsCmd::SetIamPolicy { secret, policy_file, at } => {
            let p = policy::set_from_file(client, &secret_path(client, g, &at, &secret), &policy_file)?;
            eprintln!("Updated IAM policy for secret [{secret}].");
            format::print(&p, g, Default::Yaml)?;
        }
        SecretsCmd::Versions(_) => unreachable!("dispatched in run"),
    }
    Ok(0)
}

fn versions(client: &Client, g: &Global, cmd: SecretVersionsCmd) -> Result<u8> {
    match cmd {
        SecretVersionsCmd::Add { secret, data_file, at } => {
            let data = read_data(&data_file, "")?;
            let v =
                client.post(&format!("{}:addVersion", secret_path(client, g, &at, &secret)), &payload_body(&data))?;
            eprintln!(
                "Created version [{}] of the secret [{secret}].",
                basename(v["name"].as_str().unwrap_or_default())
            );
            if g.format.is_some() {
                format::print(&v, g, Default::Yaml)?;
            }
        }
        SecretVersionsCmd::Access { version, out_file } => {
            let (path, _, _) = version_path(client, g, &version)?;
            let v = client.get(&format!("{path}:access"))?;
            let encoded = v["payload"]["data"].as_str().unwrap_or_default();
            let data = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .map_err(|_| anyhow!("the platform returned a payload that is not base64"))?;
            // As Google's samples do: the client, not the library, checks the checksum.
            if let Some(claimed) = v["payload"]["dataCrc32c"].as_str().and_then(|c| c.parse::<u32>().ok()) {
                if ::secrets::crc32c(&data) != claimed {
                    bail!("the payload of [{}] failed its CRC32C check: it was corrupted in transit", v["name"]);
                }
            }
            if g.format.is_some() {
                format::print(&v, g, Default::Yaml)?;
            } else if let Some(file) = out_file {
                std::fs::write(&file, &data)
                    .with_context(|| format!("cannot write --out-file `{}`", file.display()))?;
            } else {
                let mut out = std::io::stdout().lock();
                if let Err(e) = out.write_all(&data).and_then(|()| out.flush()) {
                    crate::stdout_failed(&e);
                }
            }
        }
        SecretVersionsCmd::List { secret, at } => {
            let v = client.get(&format!("{}/versions", secret_path(client, g, &at, &secret)))?;
            let items = v.get("versions").cloned().unwrap_or_else(|| json!([]));
            print_list(
                items,
                g,
                &[("name", "NAME"), ("state", "STATE"), ("createTime", "CREATED"), ("destroyTime", "DESTROYED")],
            )?;
        }
        SecretVersionsCmd::Describe { version } => {
            let (path, _, _) = version_path(client, g, &version)?;
            format::print(&client.get(&path)?, g, Default::Yaml)?;
        }
        SecretVersionsCmd::Disable { version, etag } => transition(client, g, &version, etag, "disable", "Disabled")?,
        SecretVersionsCmd::Enable { version, etag } => transition(client, g, &version, etag, "enable", "Enabled")?,
        SecretVersionsCmd::Destroy { version, etag } => transition(client, g, &version, etag, "destroy", "Destroyed")?,
    }
    Ok(0)
}

/// `:disable`, `:enable`, `:destroy`. Destroy asks nothing: Gatehouse never prompts (gcloud's `--quiet` is accepted).
fn transition(client: &Client, g: &Global, v: &VersionArg, etag: Option<String>, verb: &str, done: &str) -> Result<()> {
    let (path, secret, _) = version_path(client, g, v)?;
    let body = match etag {
        Some(e) => json!({ "etag": e }),
        None => json!({}),
    };
    let out = client.post(&format!("{path}:{verb}"), &body)?;
    eprintln!("{done} version [{}] of the secret [{secret}].", basename(out["name"].as_str().unwrap_or_default()));
    if g.format.is_some() {
        format::print(&out, g, Default::Yaml)?;
    }
    Ok(())
}
