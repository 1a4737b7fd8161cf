//! Output formats, as gcloud's `--format`: `json`, `yaml`, `value(KEY,…)` (also by its older name `get`),
//! `table(KEY[:label=L],…)`, `csv(KEY,…)` (a key may end in gcloud's `.basename()` or `.decode(base64)` transform;
//! any other transform is an error), and the projections `json(KEY,…)`, `yaml(KEY,…)` (only those
//! keys, at their paths),
//! with `--flatten=a[].b` and `--filter=EXPR` applied first.

use crate::args::Global;
use anyhow::{anyhow, bail, Result};
use serde_json::Value;

/// How a command prints when no `--format` is given.
#[derive(Clone, Copy)]
pub enum Default {
    Yaml,
    Table(&'static str),
}

/// Prints `value` (a record, or a list of records) as `--format` says, or as `default`.
pub fn print(value: &Value, global: &Global, default: Default) -> Result<()> {
    let out = render(value, global, default)?;
    if !out.is_empty() {
        outln!("{}", out.trim_end_matches('\n'));
    }
    Ok(())
}

/// The records of `value` (a record, or a list of records) that `--flatten` makes and `--filter` keeps.
pub fn select(value: &Value, global: &Global) -> Result<Vec<Value>> {
    let mut records: Vec<Value> = match value {
        Value::Array(items) => items.clone(),
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    };
    if let Some(spec) = &global.flatten {
        let segs: Vec<&str> = spec.split('.').collect();
        records = records.iter().flat_map(|r| flatten_at(r, &segs)).collect();
    }
    if let Some(expr) = &global.filter {
        let filter = audit::Filter::parse(expr).map_err(|e| anyhow!("invalid --filter: {e}"))?;
        records.retain(|r| filter.matches(r));
    }
    if let Some(spec) = &global.sort_by {
        sort(&mut records, spec)?;
    }
    if let Some(n) = global.limit {
        records.truncate(n);
    }
    Ok(records)
}

/// gcloud's `--sort-by=KEY[,KEY…]`, each key ascending or, with a leading `~`, descending; records without the
/// key come last. Stable: records that compare equal keep their order.
fn sort(records: &mut [Value], spec: &str) -> Result<()> {
    let keys: Vec<(Vec<String>, bool)> = spec
        .split(',')
        .map(str::trim)
        .filter(|k| !k.is_empty())
        .map(|k| match k.strip_prefix('~') {
            Some(k) => (split_key(k.trim()), true),
            None => (split_key(k), false),
        })
        .collect();
    if keys.is_empty() {
        bail!("invalid --sort-by `{spec}`; give fields, e.g. `--sort-by=~metadata.creationTimestamp,name`");
    }
    let order = |a: &Value, b: &Value| -> std::cmp::Ordering {
        use std::cmp::Ordering::{Equal, Greater, Less};
        match (a, b) {
            (Value::Number(x), Value::Number(y)) => x.as_f64().partial_cmp(&y.as_f64()).unwrap_or(Equal),
            (Value::String(x), Value::String(y)) => x.cmp(y),
            (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
            (Value::Null, Value::Null) => Equal,
            (Value::Null, _) => Greater,
            (_, Value::Null) => Less,
            (x, y) => x.to_string().cmp(&y.to_string()),
        }
    };
    // Each record's sort values, found once.
    let values = |r: &Value| -> Vec<Value> {
        keys.iter().map(|(path, _)| resolve(r, path).into_iter().next().unwrap_or(Value::Null)).collect()
    };
    let mut keyed: Vec<(Vec<Value>, Value)> = records.iter_mut().map(|r| (values(r), std::mem::take(r))).collect();
    keyed.sort_by(|(a, _), (b, _)| {
        keys.iter()
            .zip(a.iter().zip(b))
            .map(|((_, descending), (x, y))| match (descending, x, y) {
                // Missing values last, in either direction.
                (true, Value::Null, _) | (true, _, Value::Null) => order(x, y),
                (true, ..) => order(y, x),
                (false, ..) => order(x, y),
            })
            .find(|o| o.is_ne())
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    for (slot, (_, record)) in records.iter_mut().zip(keyed) {
        *slot = record;
    }
    Ok(())
}

pub fn render(value: &Value, global: &Global, default: Default) -> Result<String> {
    let is_list = value.is_array();
    let mut records = select(value, global)?;
    let flattened = is_list || global.flatten.is_some() || global.filter.is_some();
    let spec = match (&global.format, default) {
        (Some(f), _) => f.trim().to_owned(),
        (None, Default::Yaml) => "yaml".to_owned(),
        (None, Default::Table(t)) => t.to_owned(),
    };
    let (name, keys) = parse_spec(&spec)?;
    if matches!(name.as_str(), "json" | "yaml") && !keys.is_empty() {
        records = records.iter().map(|r| project(r, &keys)).collect();
    }
    Ok(match name.as_str() {
        "json" => {
            let v = if flattened { Value::Array(records) } else { records.into_iter().next().unwrap_or(Value::Null) };
            serde_json::to_string_pretty(&v)? + "\n"
        }
        "yaml" => records
            .iter()
            .map(|r| serde_yaml::to_string(r).map_err(|e| anyhow!("cannot render YAML: {e}")))
            .collect::<Result<Vec<_>>>()?
            .join("---\n"),
        // `get` is gcloud's older name for `value` (Google's docs still use `get(payload.data)`).
        "value" | "get" | "csv" | "table" | "list" => {
            if keys.is_empty() && name != "list" {
                bail!("`--format={name}(...)` needs at least one field, e.g. `--format='{name}(name)'`");
            }
            let rows: Vec<Vec<String>> =
                records.iter().map(|r| keys.iter().map(|k| cell(&values(r, k))).collect()).collect();
            match name.as_str() {
                "value" | "get" => rows.iter().map(|r| r.join("\t") + "\n").collect(),
                "csv" => {
                    let head = keys.iter().map(|k| k.label.clone()).collect::<Vec<_>>().join(",");
                    std::iter::once(head + "\n").chain(rows.iter().map(|r| r.join(",") + "\n")).collect()
                }
                "list" => records.iter().map(|r| format!(" - {}\n", cell(std::slice::from_ref(r)))).collect(),
                _ => table(&keys, &rows),
            }
        }
        other => bail!("unknown format `{other}`; use json, yaml, value(...), table(...) or csv(...)"),
    })
}

struct Key {
    path: Vec<String>,
    label: String,
    transform: Transform,
}

/// A gcloud transform at the end of a key: `name.basename()`, `payload.data.decode(base64)`.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Transform {
    None,
    /// The last `/` segment of each value.
    Basename,
    /// Each value decoded from base64 (standard or URL-safe alphabet), as text.
    DecodeBase64,
}

impl Transform {
    /// Splits a transform off the end of `path`; an unknown one is an error (gcloud's, not an empty column).
    fn split(path: &str) -> Result<(&str, Transform)> {
        let Some(open) = path.strip_suffix(')').and_then(|p| p.rfind('(')) else { return Ok((path, Transform::None)) };
        let start = path[..open].rfind('.').map_or(0, |i| i + 1);
        let (name, arg) = (&path[start..open], path[open + 1..path.len() - 1].trim().trim_matches(['"', '\'']));
        let transform = match (name, arg) {
            ("basename", "") => Transform::Basename,
            ("decode", "base64") => Transform::DecodeBase64,
            _ => bail!("unknown transform `{name}({arg})`; use `basename()` or `decode(base64)`"),
        };
        Ok((path[..start].trim_end_matches('.'), transform))
    }

    fn apply(self, v: &mut Value) {
        use base64::Engine as _;
        let Value::String(s) = v else { return };
        match self {
            Transform::None => {}
            Transform::Basename => *s = s.rsplit('/').next().unwrap_or_default().to_owned(),
            Transform::DecodeBase64 => {
                let engines = [base64::engine::general_purpose::STANDARD, base64::engine::general_purpose::URL_SAFE];
                if let Some(bytes) = engines.iter().find_map(|e| e.decode(s.trim()).ok()) {
                    *s = String::from_utf8_lossy(&bytes).into_owned();
                }
            }
        }
    }
}

fn parse_spec(spec: &str) -> Result<(String, Vec<Key>)> {
    let (name, rest) = match spec.find(['(', '[']) {
        Some(i) => (&spec[..i], &spec[i..]),
        None => (spec, ""),
    };
    // Attributes like `[no-heading]` are accepted and ignored.
    let rest = if rest.starts_with('[') { rest.find(']').map(|i| &rest[i + 1..]).unwrap_or("") } else { rest };
    let inner = if rest.is_empty() {
        ""
    } else {
        rest.strip_prefix('(')
            .and_then(|r| r.strip_suffix(')'))
            .ok_or_else(|| anyhow!("invalid format `{spec}`; fields go in parentheses, e.g. `value(email)`"))?
    };
    let keys = split_top(inner)
        .into_iter()
        .filter(|k| !k.trim().is_empty())
        .map(|k| {
            let k = k.trim();
            // Attributes follow the first `:` outside a transform's parentheses and quotes (a label may hold both).
            let (path, attrs) = match top_level_colon(k) {
                Some(i) => (&k[..i], &k[i + 1..]),
                None => (k, ""),
            };
            let (path, transform) = Transform::split(path.trim())?;
            let label = attrs
                .split(':')
                .find_map(|a| a.strip_prefix("label="))
                .map(|l| l.trim_matches(|c| c == '"' || c == '\'').to_owned())
                .unwrap_or_else(|| default_label(path));
            Ok(Key { path: split_key(path.trim()), label, transform })
        })
        .collect::<Result<_>>()?;
    Ok((name.trim().to_lowercase(), keys))
}

/// Splits a key on dots outside double quotes: `metadata.labels."cloud.googleapis.com/location"`.
fn split_key(key: &str) -> Vec<String> {
    let (mut out, mut cur, mut quoted) = (Vec::new(), String::new(), false);
    for c in key.chars() {
        match c {
            '"' => quoted = !quoted,
            '.' if !quoted => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// Where the first `:` outside parentheses and quotes is.
fn top_level_colon(s: &str) -> Option<usize> {
    let (mut depth, mut quote) = (0i32, None);
    for (i, c) in s.char_indices() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('(', None) => depth += 1,
            (')', None) => depth -= 1,
            (':', None) if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Splits on commas outside parentheses and quotes.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth, mut quote) = (Vec::new(), String::new(), 0i32, None);
    for c in s.chars() {
        match (c, quote) {
            ('"' | '\'', None) => quote = Some(c),
            (q, Some(open)) if q == open => quote = None,
            ('(', None) => depth += 1,
            (')', None) => depth -= 1,
            (',', None) if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    out.push(cur);
    out
}

fn default_label(path: &str) -> String {
    let parts = split_key(path);
    let last = parts.last().map(String::as_str).unwrap_or(path).trim_end_matches("[]");
    let mut label = String::new();
    for (i, c) in last.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            label.push('_');
        }
        label.push(c.to_ascii_uppercase());
    }
    label
}

/// Values at `path`; a list on the way fans out (gcloud joins them with `;`).
fn resolve(v: &Value, path: &[String]) -> Vec<Value> {
    let Some((head, rest)) = path.split_first() else { return vec![v.clone()] };
    let (name, index) = match head.split_once('[') {
        Some((n, i)) => (n, i.trim_end_matches(']').parse::<i64>().ok()),
        None => (head.as_str(), None),
    };
    let child = if name.is_empty() { Some(v) } else { v.get(name) };
    match child {
        None => Vec::new(),
        Some(Value::Array(items)) => match index {
            Some(i) => {
                let i = if i < 0 { items.len() as i64 + i } else { i };
                usize::try_from(i).ok().and_then(|i| items.get(i)).map(|e| resolve(e, rest)).unwrap_or_default()
            }
            None => items.iter().flat_map(|e| resolve(e, rest)).collect(),
        },
        Some(c) => resolve(c, rest),
    }
}

/// gcloud's `json(KEY,…)` / `yaml(KEY,…)`: the record with only the listed keys, each at its path (a list on the way
/// keeps each element's part); keys found nowhere are left out.
fn project(record: &Value, keys: &[Key]) -> Value {
    let mut out = Value::Object(serde_json::Map::new());
    for key in keys {
        if let Some(part) = project_path(record, &key.path) {
            merge(&mut out, part);
        }
    }
    out
}

/// The part of `v` at `path`, nested as in `v`; `None` when nothing is there.
fn project_path(v: &Value, path: &[String]) -> Option<Value> {
    let Some((head, rest)) = path.split_first() else { return Some(v.clone()) };
    let (name, index) = match head.split_once('[') {
        Some((n, i)) => (n, i.trim_end_matches(']').parse::<i64>().ok()),
        None => (head.as_str(), None),
    };
    let child = v.get(name)?;
    let part = match (child, index) {
        (Value::Array(items), Some(i)) => {
            let i = if i < 0 { items.len() as i64 + i } else { i };
            let item = usize::try_from(i).ok().and_then(|i| items.get(i))?;
            Value::Array(vec![project_path(item, rest)?])
        }
        (Value::Array(items), None) if !rest.is_empty() => {
            let parts: Vec<Value> = items.iter().filter_map(|e| project_path(e, rest)).collect();
            if parts.is_empty() {
                return None;
            }
            Value::Array(parts)
        }
        (child, _) => project_path(child, rest)?,
    };
    let mut out = serde_json::Map::new();
    out.insert(name.to_owned(), part);
    Some(Value::Object(out))
}

/// Merges two projections of one record: objects key by key, lists element by element.
fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, v) in b.into_iter().enumerate() {
                match a.get_mut(i) {
                    Some(existing) => merge(existing, v),
                    None => a.push(v),
                }
            }
        }
        (into, from) => *into = from,
    }
}

/// The values of one key in a record, transformed as the key says.
fn values(record: &Value, key: &Key) -> Vec<Value> {
    let mut found = resolve(record, &key.path);
    found.iter_mut().for_each(|v| key.transform.apply(v));
    found
}

fn cell(values: &[Value]) -> String {
    values
        .iter()
        .map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            Value::Bool(b) => {
                if *b {
                    "True".into()
                } else {
                    "False".into()
                }
            }
            other => other.to_string(),
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn table(keys: &[Key], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = keys.iter().map(|k| k.label.chars().count()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  "));
            }
        }
        s.trim_end().to_owned() + "\n"
    };
    let mut out = line(keys.iter().map(|k| k.label.as_str()).collect());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

/// Expands a record into one record per element of the list at `segs` (gcloud's `--flatten`).
fn flatten_at(v: &Value, segs: &[&str]) -> Vec<Value> {
    let Some((head, rest)) = segs.split_first() else { return vec![v.clone()] };
    let name = head.trim_end_matches("[]");
    let Some(child) = v.get(name) else { return vec![v.clone()] };
    let subs: Vec<Value> = match child {
        Value::Array(items) => items.iter().flat_map(|e| flatten_at(e, rest)).collect(),
        other => flatten_at(other, rest),
    };
    subs.into_iter()
        .map(|s| {
            let mut out = v.clone();
            out[name] = s;
            out
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn global(format: &str) -> Global {
        Global { format: Some(format.into()), ..Global::default() }
    }

    fn policy() -> Value {
        json!({"etag": "BwX=", "bindings": [
            {"role": "roles/editor", "members": ["serviceAccount:1-compute@developer.gserviceaccount.com"]},
            {"role": "roles/owner", "members": ["user:owner@localhost", "user:b@example.com"]}]})
    }

    #[test]
    fn value_joins_lists_with_semicolons() {
        assert_eq!(
            render(&policy(), &global("value(bindings.role)"), Default::Yaml).unwrap(),
            "roles/editor;roles/owner\n"
        );
        assert_eq!(render(&policy(), &global("value(etag)"), Default::Yaml).unwrap(), "BwX=\n");
        assert_eq!(
            render(&policy(), &global("value(bindings[1].members[0])"), Default::Yaml).unwrap(),
            "user:owner@localhost\n"
        );
    }

    #[test]
    fn flatten_and_filter_like_the_docs() {
        let g = Global {
            format: Some("table(bindings.role)".into()),
            flatten: Some("bindings[].members".into()),
            filter: Some("bindings.members:b@example.com".into()),
            ..Global::default()
        };
        assert_eq!(render(&policy(), &g, Default::Yaml).unwrap(), "ROLE\nroles/owner\n");
        // The member with its type, bare or in single quotes, as the docs' recipes write it.
        for filter in [
            "bindings.members:user:b@example.com",
            "bindings.members:'user:b@example.com'",
            "bindings.members=\"user:b@example.com\"",
        ] {
            let g = Global { filter: Some(filter.into()), ..g.clone() };
            assert_eq!(render(&policy(), &g, Default::Yaml).unwrap(), "ROLE\nroles/owner\n", "{filter}");
        }
        let g = Global {
            filter: Some("bindings.members=serviceAccount:1-compute@developer.gserviceaccount.com".into()),
            ..g
        };
        assert_eq!(render(&policy(), &g, Default::Yaml).unwrap(), "ROLE\nroles/editor\n");
    }

    #[test]
    fn tables_align_and_label() {
        let rows = json!([{"email": "a@x.io", "displayName": "A"}, {"email": "bbbbbb@x.io", "displayName": "B"}]);
        let out = render(&rows, &global("table(displayName:label='DISPLAY NAME',email)"), Default::Yaml).unwrap();
        assert_eq!(out, "DISPLAY NAME  EMAIL\nA             a@x.io\nB             bbbbbb@x.io\n");
    }

    #[test]
    fn basename_transform() {
        let v = serde_json::json!({"name": "projects/123/secrets/sig/versions/2"});
        assert_eq!(render(&v, &global("value(name.basename())"), Default::Yaml).unwrap(), "2\n");
        assert_eq!(render(&v, &global("csv(name.basename())"), Default::Yaml).unwrap(), "NAME\n2\n");
        assert_eq!(render(&v, &global("table(name.basename():label=V)"), Default::Yaml).unwrap(), "V\n2\n");
        let sized = json!({"size": 3});
        let out = render(&sized, &global("table(size:label=\"SIZE (MB)\")"), Default::Yaml).unwrap();
        assert_eq!(out, "SIZE (MB)\n3\n", "parentheses in a label are not a transform");
    }

    #[test]
    fn sort_by_then_limit_as_gcloud_list_flags() {
        let rows = json!([
            {"name": "b", "n": 2, "t": "2026-01-02"},
            {"name": "a", "n": 10},
            {"name": "c", "n": 2, "t": "2026-01-01"},
        ]);
        let g = |sort: &str, limit: Option<usize>| Global {
            format: Some("value(name)".into()),
            sort_by: Some(sort.into()),
            limit,
            ..Global::default()
        };
        let out = |sort: &str, limit| render(&rows, &g(sort, limit), Default::Yaml).unwrap();
        assert_eq!(out("name", None), "a\nb\nc\n");
        assert_eq!(out("~name", Some(2)), "c\nb\n");
        assert_eq!(out("n,~name", None), "c\nb\na\n", "numbers compare as numbers; ties by the next key");
        assert_eq!(out("t", None), "c\nb\na\n", "records without the key come last");
        assert_eq!(out("~t", None), "b\nc\na\n", "last descending too");
        assert!(render(&rows, &g(" , ", None), Default::Yaml).unwrap_err().to_string().contains("invalid --sort-by"));
    }

    #[test]
    fn decode_transform_and_get_as_google_s_secret_docs_use_them() {
        // `secrets versions access` prints `payload.data` in base64 (standard, or URL-safe from gcloud).
        let v = json!({"payload": {"data": "czNjcjN0Pz8+"}});
        let decoded = render(&v, &global("value(payload.data.decode(base64))"), Default::Yaml).unwrap();
        assert_eq!(decoded, "s3cr3t??>\n");
        let url_safe = json!({"payload": {"data": "czNjcjN0Pz8-"}});
        let decoded = render(&url_safe, &global("value(payload.data.decode(\"base64\"))"), Default::Yaml).unwrap();
        assert_eq!(decoded, "s3cr3t??>\n");
        assert_eq!(render(&v, &global("get(payload.data)"), Default::Yaml).unwrap(), "czNjcjN0Pz8+\n");
        let err = render(&v, &global("value(payload.data.decode(hex))"), Default::Yaml).unwrap_err();
        assert_eq!(err.to_string(), "unknown transform `decode(hex)`; use `basename()` or `decode(base64)`");
        let err = render(&v, &global("value(payload.data.upper())"), Default::Yaml).unwrap_err();
        assert!(err.to_string().starts_with("unknown transform `upper()`"), "{err}");
    }

    #[test]
    fn json_and_yaml_projections_keep_only_the_listed_keys_at_their_paths() {
        let svc = json!({
            "apiVersion": "serving.knative.dev/v1",
            "metadata": {"name": "svc", "labels": {"cloud.googleapis.com/location": "us-central1"}},
            "spec": {"template": {"metadata": {"name": "svc-00001-abc"},
                                  "spec": {"containers": [{"image": "hello"}], "timeoutSeconds": 300}}},
        });
        assert_eq!(
            render(&svc, &global("yaml(spec.template.spec.containers)"), Default::Yaml).unwrap(),
            "spec:\n  template:\n    spec:\n      containers:\n      - image: hello\n"
        );
        // Several keys merge under their common parents, in the order given; an absent key is left out.
        let out = render(
            &svc,
            &global("json(spec.template.spec.timeoutSeconds,metadata.name,metadata.absent,nothing.at.all)"),
            Default::Yaml,
        )
        .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"spec": {"template": {"spec": {"timeoutSeconds": 300}}}, "metadata": {"name": "svc"}})
        );
        assert!(out.find("spec").unwrap() < out.find("metadata").unwrap(), "{out}");
        // Quoted keys, and a key with nothing found gives an empty record.
        assert_eq!(
            render(&svc, &global("yaml(metadata.labels.\"cloud.googleapis.com/location\")"), Default::Yaml).unwrap(),
            "metadata:\n  labels:\n    cloud.googleapis.com/location: us-central1\n"
        );
        assert_eq!(render(&svc, &global("json(nothing)"), Default::Yaml).unwrap(), "{}\n");
    }

    #[test]
    fn projections_through_lists_keep_each_element() {
        let out = render(&policy(), &global("json(bindings.role,etag)"), Default::Yaml).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"bindings": [{"role": "roles/editor"}, {"role": "roles/owner"}], "etag": "BwX="})
        );
        // Two keys under the same list merge element by element.
        let out = render(&policy(), &global("json(bindings.role,bindings.members)"), Default::Yaml).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!({"bindings": policy()["bindings"]}));
        let out = render(&policy(), &global("json(bindings[1].members)"), Default::Yaml).unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"bindings": [{"members": ["user:owner@localhost", "user:b@example.com"]}]})
        );
        // A list of records: each projected; json prints the list, yaml one document per record.
        let rows = json!([{"name": "a", "x": 1}, {"name": "b", "x": 2}]);
        let out = render(&rows, &global("json(name)"), Default::Yaml).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&out).unwrap(), json!([{"name": "a"}, {"name": "b"}]));
        assert_eq!(render(&rows, &global("yaml(name)"), Default::Yaml).unwrap(), "name: a\n---\nname: b\n");
        // The other formats still read the same keys.
        assert_eq!(render(&rows, &global("value(name)"), Default::Yaml).unwrap(), "a\nb\n");
        assert_eq!(render(&rows, &global("csv(name,x)"), Default::Yaml).unwrap(), "NAME,X\na,1\nb,2\n");
        assert_eq!(render(&rows, &global("table(name)"), Default::Yaml).unwrap(), "NAME\na\nb\n");
    }

    #[test]
    fn unknown_formats_are_errors() {
        assert!(render(&policy(), &global("xml"), Default::Yaml).is_err());
        assert!(render(&policy(), &global("value(a"), Default::Yaml).is_err());
    }
}
