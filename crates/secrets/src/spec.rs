//! The value grammar of `gcloud run deploy --set-secrets / --update-secrets / --remove-secrets`, and the rules a
//! service's whole set of secret mappings must follow.
//!
//! ```text
//! value    = [ "^" DELIM "^" ] item { DELIM item } [ DELIM ]     DELIM defaults to ","
//! item     = KEY "=" SECRET ":" VERSION
//! KEY      = ENV_NAME | "/" MOUNT_DIR "/" FILE                     a leading "/" makes a file mount
//! SECRET   = SECRET_ID | "projects/" PROJECT "/secrets/" SECRET_ID
//! VERSION  = "latest" | 1, 2, … | an alias: a letter, then up to 62 letters, digits, "-" or "_" (not "NEW")
//! ```
//! `projects/PROJECT/secrets/SECRET_ID/versions/VERSION` is accepted as well, as gcloud does. Unlike gcloud, the
//! version is required in the `projects/…` form too (gcloud defaults it to `latest` there), `PROJECT` may be a project
//! id as well as a number, and a key given twice is an error instead of "last one wins".
//!
//! Whitespace: each item, and each side of its first `=`, is trimmed (gcloud strips keys; we also strip values,
//! since `A=a:1, B=b:1` is a common habit and no secret id or version contains whitespace). Whitespace inside a
//! key or secret is kept, and is then refused by the rule it breaks.
//!
//! Error texts are gcloud's where gcloud has one (`No secret version specified for …`, `Multiple secrets are
//! specified for directory […]…`, `Mount path […] must be in the form /<mountPath>/<path>`, `… is not a valid
//! secret name.`, `Bad syntax for dict arg: […]`, `Invalid secret spec …`), followed by what to do when gcloud's
//! text does not say; the others follow our style. There is never a secret value to leak here; errors quote only the
//! flag text, with control characters escaped.
//!
//! Owns: parsing and validation. Must not: know which secrets exist or who may read them (the API checks that), or
//! merge updates into a service (the caller does, then runs [`check`] on the result).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

/// Where a secret goes: an environment variable, or a file (the absolute path as given, without a trailing `/`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    Env(String),
    File(String),
}

/// A secret version as referenced from a service: `SECRET:VERSION` or `projects/PROJECT/secrets/SECRET:VERSION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretRef {
    pub project: Option<String>,
    pub secret: String,
    pub version: String,
}

/// One `KEY=SECRET:VERSION` item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub target: Target,
    pub secret: SecretRef,
}

/// Why a flag value or a set of mappings was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("argument {flag}: expected {expected}")]
    Empty { flag: String, expected: &'static str },
    #[error(
        "argument {flag}: Invalid delimiter: write a delimiter between two `^` before the items, e.g. \
         `^;^A=a:latest;B=b:latest`"
    )]
    Delimiter { flag: String },
    #[error("argument {flag}: item {index} is empty; remove the extra `{delimiter}`")]
    EmptyItem { flag: String, index: usize, delimiter: String },
    #[error("argument {flag}: Bad syntax for dict arg: [{item}]; write each item as `KEY=SECRET:VERSION`")]
    Syntax { flag: String, item: String },
    #[error("argument {flag}: `{item}` is not a key; list environment variable names or mount paths, without `=`")]
    NotAKey { flag: String, item: String },
    #[error("argument {flag}: `{key}` is given more than once; give each key once")]
    Duplicate { flag: String, key: String },
    #[error("`{key}` is mapped more than once; keep one mapping per environment variable or file")]
    DuplicateTarget { key: String },
    #[error("`{item}`: the key is empty; write `NAME=SECRET:VERSION` or `/DIRECTORY/FILE=SECRET:VERSION`")]
    EmptyKey { item: String },
    #[error("`{key}`: a key may not begin or end with whitespace")]
    KeyWhitespace { key: String },
    #[error("`{name}`: an environment variable name may not contain `=` or control characters")]
    EnvChars { name: String },
    #[error("`{name}`: names starting with `X_GOOGLE_` are reserved; choose another name")]
    EnvPrefix { name: String },
    #[error("`{name}` is reserved by Cloud Run and cannot be set")]
    Reserved { name: String },
    #[error("No secret version specified for {key}. Use {key}:latest to reference the latest version.")]
    NoVersion { key: String },
    #[error(
        "Invalid secret spec `{spec}`: write `SECRET:VERSION` or `projects/PROJECT/secrets/SECRET:VERSION`, \
         with one `:`"
    )]
    InvalidSpec { spec: String },
    #[error("'{name}' is not a valid secret name. Use 1 to 255 letters, digits, `-` or `_`.")]
    InvalidSecretName { name: String },
    #[error("`{spec}`: `{project}` is not a project id or number")]
    InvalidProject { spec: String, project: String },
    #[error(
        "`{spec}`: `{version}` is not a secret version; use `latest`, a version number from 1, or a version alias"
    )]
    InvalidVersion { spec: String, version: String },
    #[error("`{spec}`: `NEW` cannot name a secret version; use `latest`, a version number, or another alias")]
    NewAlias { spec: String },
    #[error("Mount path [{path}] must be in the form /<mountPath>/<path>: {reason}")]
    MountPathForm { path: String, reason: &'static str },
    #[error("mount path `{path}` {reason}")]
    BadPath { path: String, reason: String },
    #[error(
        "mount directory `{dir}` is `{restricted}` or inside it, which Cloud Run reserves; mount secrets elsewhere, \
         e.g. under `/secrets`"
    )]
    Restricted { dir: String, restricted: &'static str },
    #[error(
        "mount directory `{dir}` would hide `{restricted}`, which Cloud Run reserves; mount secrets elsewhere, \
         e.g. under `/secrets`"
    )]
    HidesRestricted { dir: String, restricted: &'static str },
    #[error(
        "Multiple secrets are specified for directory [{dir}]. Cloud Run only supports one secret per directory; \
         mount `{path}` in another directory"
    )]
    MultipleSecretsInDirectory { dir: String, path: String },
    #[error(
        "mount directory `{dir}` overlaps `{path}` of another mount; give each secret its own directory, neither \
         inside the other"
    )]
    Overlap { dir: String, path: String },
}

/// Environment variables Cloud Run sets itself (PROTOCOL.md §10.1).
const RESERVED_ENV: [&str; 4] = ["PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"];
/// Prefix Google keeps for its own variables (Cloud Functions rejects it; PROTOCOL.md §10.1).
const RESERVED_ENV_PREFIX: &str = "X_GOOGLE_";
/// Mount directories refused, with everything under them (PROTOCOL.md §10.3): the first five are documented for
/// Cloud Functions' secret volumes, `/dev` and `/sys` are believed to be Cloud Run's own.
const RESTRICTED_DIRS: [&str; 7] = ["/cloudsql", "/dev/log", "/pod", "/proc", "/var/log", "/dev", "/sys"];
/// Linux `PATH_MAX`.
const MAX_PATH: usize = 4096;
/// Linux `NAME_MAX`.
const MAX_FILE_NAME: usize = 255;
const MAX_SECRET_ID: usize = 255;
const MAX_ALIAS: usize = 63;

const EXPECT_MAPPINGS: &str = "`KEY=SECRET:VERSION` items separated by commas, e.g. `DB_PASSWORD=db-password:latest`";
const EXPECT_KEYS: &str = "keys separated by commas, e.g. `DB_PASSWORD,/secrets/credentials`";

impl Target {
    /// Parses a key: a file mount when it starts with `/`, else an environment variable name. One trailing `/` is
    /// dropped from a path. The key is not trimmed.
    pub fn parse(key: &str) -> Result<Target, SpecError> {
        if key.is_empty() {
            return Err(SpecError::EmptyKey { item: String::new() });
        }
        if key.trim() != key {
            return Err(SpecError::KeyWhitespace { key: shown(key) });
        }
        let target = if key.starts_with('/') {
            Target::File(key.strip_suffix('/').filter(|p| !p.is_empty()).unwrap_or(key).to_owned())
        } else {
            Target::Env(key.to_owned())
        };
        validate_target(&target)?;
        Ok(target)
    }

    /// The directory a file mount is mounted at: `/secrets` for `/secrets/credentials`; `None` for a variable.
    pub fn mount_dir(&self) -> Option<&str> {
        match self {
            Target::Env(_) => None,
            Target::File(path) => Some(match path.rfind('/') {
                Some(0) | None => "/",
                Some(i) => &path[..i],
            }),
        }
    }

    /// The file's name in its mount directory: `credentials` for `/secrets/credentials`; `None` for a variable.
    pub fn file_name(&self) -> Option<&str> {
        match self {
            Target::Env(_) => None,
            Target::File(path) => Some(path.rsplit('/').next().unwrap_or(path)),
        }
    }

    fn key(&self) -> &str {
        match self {
            Target::Env(k) | Target::File(k) => k,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl fmt::Display for SecretRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(project) = &self.project {
            write!(f, "projects/{project}/secrets/")?;
        }
        write!(f, "{}:{}", self.secret, self.version)
    }
}

impl SecretRef {
    /// The secret as a service template names it: `SECRET` or `projects/PROJECT/secrets/SECRET` (no version).
    pub fn name(&self) -> String {
        match &self.project {
            Some(project) => format!("projects/{project}/secrets/{}", self.secret),
            None => self.secret.clone(),
        }
    }
}

impl Mapping {
    /// One reference given as its parts — `key` (an env var or an absolute file path), `secret` (an id or
    /// `projects/PROJECT/secrets/SECRET`) and `version` — checked as [`parse_mappings`] checks an item. For
    /// references that arrive as separate fields (the Cloud Run API's template, a service being updated).
    pub fn new(key: &str, secret: &str, version: &str) -> Result<Mapping, SpecError> {
        let target = Target::parse(key)?;
        let secret = parse_secret(key, &format!("{secret}:{version}"))?;
        Ok(Mapping { target, secret })
    }
}

/// `KEY=SECRET:VERSION`, which [`parse_mappings`] reads back.
impl fmt::Display for Mapping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={}", self.target, self.secret)
    }
}

/// Parses a `--set-secrets` / `--update-secrets` value. `flag` names the flag in messages. An empty value, an item
/// without `=`, and a key given twice are errors. Whole-set rules are [`check`]'s.
pub fn parse_mappings(flag: &str, value: &str) -> Result<Vec<Mapping>, SpecError> {
    let items = split_items(flag, value, EXPECT_MAPPINGS)?;
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Some((key, spec)) = item.split_once('=') else {
            return Err(SpecError::Syntax { flag: flag.to_owned(), item: shown(item) });
        };
        let (key, spec) = (key.trim(), spec.trim());
        if key.is_empty() {
            return Err(SpecError::EmptyKey { item: shown(item) });
        }
        let target = Target::parse(key)?;
        let secret = parse_secret(key, spec)?;
        if !seen.insert(target.clone()) {
            return Err(SpecError::Duplicate { flag: flag.to_owned(), key: shown(target.key()) });
        }
        out.push(Mapping { target, secret });
    }
    Ok(out)
}

/// Parses a `--remove-secrets` value: environment variable names and mount paths, without `=`.
pub fn parse_keys(flag: &str, value: &str) -> Result<Vec<Target>, SpecError> {
    let items = split_items(flag, value, EXPECT_KEYS)?;
    let mut seen = HashSet::with_capacity(items.len());
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        if item.contains('=') {
            return Err(SpecError::NotAKey { flag: flag.to_owned(), item: shown(item) });
        }
        let target = Target::parse(item)?;
        if !seen.insert(target.clone()) {
            return Err(SpecError::Duplicate { flag: flag.to_owned(), key: shown(target.key()) });
        }
        out.push(target);
    }
    Ok(out)
}

/// The rules for a service's final set of mappings, after updates are merged: every key and secret reference valid,
/// no key twice, one secret per mount directory (several files of one secret may share it), no mount directory
/// that is `/`, restricted, or would hide a restricted path, and no mount directory that equals or contains another
/// mount's file, or lies under one.
pub fn check(mappings: &[Mapping]) -> Result<(), SpecError> {
    let mut seen = HashSet::with_capacity(mappings.len());
    // Mount directory → the first file mounted there.
    let mut dirs: BTreeMap<&str, &Mapping> = BTreeMap::new();
    for m in mappings {
        validate_target(&m.target)?;
        validate_secret(m.target.key(), &m.secret)?;
        if !seen.insert(&m.target) {
            return Err(SpecError::DuplicateTarget { key: shown(m.target.key()) });
        }
        let Some(dir) = m.target.mount_dir() else { continue };
        match dirs.get(dir) {
            None => {
                dirs.insert(dir, m);
            }
            Some(first) => {
                let same_secret = first.secret.project == m.secret.project && first.secret.secret == m.secret.secret;
                if !same_secret {
                    return Err(SpecError::MultipleSecretsInDirectory { dir: shown(dir), path: shown(m.target.key()) });
                }
            }
        }
    }
    let dir_set: BTreeSet<&str> = dirs.keys().copied().collect();
    for m in mappings {
        let (Target::File(path), Some(own_dir)) = (&m.target, m.target.mount_dir()) else { continue };
        // Another mount directory at this path or above it hides this file.
        let mut above = path.as_str();
        loop {
            if above != own_dir && dir_set.contains(above) {
                return Err(SpecError::Overlap { dir: shown(above), path: shown(path) });
            }
            match above.rfind('/') {
                Some(i) if i > 0 => above = &above[..i],
                _ => break,
            }
        }
        // A mount directory below this file would need the file to be a directory.
        let below = format!("{path}/");
        if let Some(dir) = dir_set.range(below.as_str()..).next().filter(|d| d.starts_with(&below)) {
            return Err(SpecError::Overlap { dir: shown(dir), path: shown(path) });
        }
    }
    Ok(())
}

/// Splits a flag value into trimmed, non-empty items, honouring gcloud's `^DELIM^` prefix and a trailing delimiter.
fn split_items<'a>(flag: &str, value: &'a str, expected: &'static str) -> Result<Vec<&'a str>, SpecError> {
    let (delim, body) = match value.strip_prefix('^').and_then(|rest| rest.split_once('^')) {
        Some(("", _)) => return Err(SpecError::Delimiter { flag: flag.to_owned() }),
        Some((delim, body)) => (delim, body),
        None => (",", value),
    };
    if body.trim().is_empty() {
        return Err(SpecError::Empty { flag: flag.to_owned(), expected });
    }
    let body = body.strip_suffix(delim).unwrap_or(body);
    let mut items = Vec::new();
    for (i, item) in body.split(delim).enumerate() {
        let item = item.trim();
        if item.is_empty() {
            return Err(SpecError::EmptyItem { flag: flag.to_owned(), index: i + 1, delimiter: shown(delim) });
        }
        items.push(item);
    }
    Ok(items)
}

fn validate_target(target: &Target) -> Result<(), SpecError> {
    match target {
        Target::Env(name) => validate_env(name),
        Target::File(path) => validate_path(path, target.mount_dir().unwrap_or("/")),
    }
}

fn validate_env(name: &str) -> Result<(), SpecError> {
    if name.is_empty() {
        return Err(SpecError::EmptyKey { item: String::new() });
    }
    if name.trim() != name {
        return Err(SpecError::KeyWhitespace { key: shown(name) });
    }
    if name.contains(|c: char| c == '=' || c.is_control()) {
        return Err(SpecError::EnvChars { name: shown(name) });
    }
    if name.starts_with(RESERVED_ENV_PREFIX) {
        return Err(SpecError::EnvPrefix { name: shown(name) });
    }
    if RESERVED_ENV.contains(&name) {
        return Err(SpecError::Reserved { name: name.to_owned() });
    }
    Ok(())
}

fn validate_path(path: &str, dir: &str) -> Result<(), SpecError> {
    let bad = |reason: String| SpecError::BadPath { path: shown(path), reason };
    if path.len() > MAX_PATH {
        return Err(bad(format!("is {} bytes; the limit is {MAX_PATH}", path.len())));
    }
    if path.contains(char::is_control) {
        return Err(bad("contains a control character; remove it".into()));
    }
    if path.trim() != path {
        return Err(SpecError::KeyWhitespace { key: shown(path) });
    }
    if path.contains(':') {
        return Err(bad("may not contain `:`; choose a path without it".into()));
    }
    if path.contains('=') {
        return Err(bad("may not contain `=`; choose a path without it".into()));
    }
    let form = |reason| SpecError::MountPathForm { path: shown(path), reason };
    let Some(relative) = path.strip_prefix('/') else {
        return Err(form("a mount path starts with `/`"));
    };
    let elements: Vec<&str> = relative.split('/').collect();
    if elements.len() < 2 {
        return Err(form("a file cannot be mounted directly in `/`; use a directory such as `/secrets`"));
    }
    if elements.iter().any(|e| e.is_empty()) {
        return Err(form("remove the empty path element (`//`)"));
    }
    if elements.iter().any(|e| *e == "." || *e == "..") {
        return Err(form("`.` and `..` are not allowed as path elements"));
    }
    let name = elements[elements.len() - 1];
    if name.len() > MAX_FILE_NAME {
        return Err(bad(format!("has a file name of {} bytes; the limit is {MAX_FILE_NAME}", name.len())));
    }
    if let Some(restricted) = RESTRICTED_DIRS.into_iter().find(|r| is_same_or_under(dir, r)) {
        return Err(SpecError::Restricted { dir: shown(dir), restricted });
    }
    if let Some(restricted) = RESTRICTED_DIRS.into_iter().find(|r| is_same_or_under(r, dir)) {
        return Err(SpecError::HidesRestricted { dir: shown(dir), restricted });
    }
    Ok(())
}

/// `path` equals `dir` or lies below it, element-wise (`/devices` is not under `/dev`).
fn is_same_or_under(path: &str, dir: &str) -> bool {
    path.strip_prefix(dir).is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

/// Parses `SECRET:VERSION`, `projects/PROJECT/secrets/SECRET:VERSION` or `…/versions/VERSION`; `key` names the
/// item in gcloud's missing-version message.
fn parse_secret(key: &str, spec: &str) -> Result<SecretRef, SpecError> {
    let (name, version) = match spec.split_once(':') {
        Some((_, version)) if version.contains(':') => return Err(SpecError::InvalidSpec { spec: shown(spec) }),
        Some((name, version)) => (name, version),
        None => match spec.strip_prefix("projects/").and_then(|rest| rest.rsplit_once("/versions/")) {
            Some((head, version)) => (&spec[..("projects/".len() + head.len())], version),
            None => (spec, ""),
        },
    };
    let (project, secret) = match name.strip_prefix("projects/").map(|rest| rest.split('/').collect::<Vec<_>>()) {
        Some(parts) if parts.len() == 3 && parts[1] == "secrets" => (Some(parts[0]), parts[2]),
        _ => (None, name),
    };
    let secret =
        SecretRef { project: project.map(str::to_owned), secret: secret.to_owned(), version: version.to_owned() };
    validate_secret(key, &secret).map_err(|e| match e {
        // Report the item as written, not as reassembled.
        SpecError::InvalidProject { project, .. } => SpecError::InvalidProject { spec: shown(spec), project },
        SpecError::InvalidVersion { version, .. } => SpecError::InvalidVersion { spec: shown(spec), version },
        SpecError::NewAlias { .. } => SpecError::NewAlias { spec: shown(spec) },
        SpecError::InvalidSecretName { .. } if project.is_none() => SpecError::InvalidSecretName { name: shown(name) },
        other => other,
    })?;
    Ok(secret)
}

fn validate_secret(key: &str, s: &SecretRef) -> Result<(), SpecError> {
    let spec = || shown(&s.to_string());
    if s.version.is_empty() {
        return Err(SpecError::NoVersion { key: shown(key) });
    }
    if !is_secret_id(&s.secret) {
        return Err(SpecError::InvalidSecretName { name: shown(&s.secret) });
    }
    if let Some(project) = &s.project {
        if !is_project(project) {
            return Err(SpecError::InvalidProject { spec: spec(), project: shown(project) });
        }
    }
    let v = s.version.as_str();
    let number = !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit());
    let ok = if number {
        !v.starts_with('0') && v.parse::<i64>().is_ok()
    } else if v == "NEW" {
        return Err(SpecError::NewAlias { spec: spec() });
    } else {
        is_alias(v)
    };
    if !ok {
        return Err(SpecError::InvalidVersion { spec: spec(), version: shown(v) });
    }
    Ok(())
}

/// gcloud's `[a-zA-Z0-9-_]{1,255}`.
fn is_secret_id(id: &str) -> bool {
    (1..=MAX_SECRET_ID).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A project number (gcloud's `[0-9]{1,19}`) or a project id.
fn is_project(p: &str) -> bool {
    ((1..=19).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit())) || model::names::is_lowercase_id(p, 6, 30)
}

/// `latest` or a user alias: a letter, then letters, digits, `-` or `_`, at most 63 characters.
fn is_alias(v: &str) -> bool {
    (1..=MAX_ALIAS).contains(&v.len())
        && v.starts_with(|c: char| c.is_ascii_alphabetic())
        && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// User input as quoted in messages: control characters escaped so a message cannot move the cursor or hide text.
fn shown(s: &str) -> String {
    if !s.contains(char::is_control) {
        return s.to_owned();
    }
    s.chars().map(|c| if c.is_control() { c.escape_default().to_string() } else { c.to_string() }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Parses `value` as `--set-secrets`, runs the whole-set rules, and compares with `expect`: `ok ` and the items
    /// as [`Mapping`]'s `Display` writes them, or the error message.
    #[track_caller]
    fn check(value: &str, expect: &str) {
        let got = match parse_mappings("--set-secrets", value).and_then(|ms| super::check(&ms).map(|()| ms)) {
            Ok(ms) => format!("ok {}", ms.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expect, "for `{value}`");
    }

    #[test]
    fn grammar_and_rules() {
        let long_name = format!("/secrets/{}", "f".repeat(256));
        let long_path = format!("/{}/f", "d".repeat(4095));
        let long_id = "s".repeat(256);
        let long_alias = format!("a{}", "b".repeat(63));
        let (long_alias_item, long_id_item) = (format!("A=x:{long_alias}"), format!("A={long_id}:1"));
        let (long_name_item, long_path_item) = (format!("{long_name}=x:1"), format!("{long_path}=x:1"));
        let rows: Vec<(&str, String)> = vec![
            // Environment variables and files.
            ("DB_PASSWORD=db-password:latest", "ok DB_PASSWORD=db-password:latest".into()),
            ("/secrets/credentials=my-credential:latest", "ok /secrets/credentials=my-credential:latest".into()),
            ("A=projects/123/secrets/x:2,B=y:latest", "ok A=projects/123/secrets/x:2,B=y:latest".into()),
            ("A=projects/my-project/secrets/x:1", "ok A=projects/my-project/secrets/x:1".into()),
            ("A=projects/123/secrets/x/versions/7", "ok A=projects/123/secrets/x:7".into()),
            ("A=x:prod-alias_2", "ok A=x:prod-alias_2".into()),
            ("lower.case-name=x:1", "ok lower.case-name=x:1".into()),
            // Whitespace around items and around `=` is trimmed; a trailing delimiter is allowed (as gcloud).
            (" A = x:1 ,  B=y:2 ", "ok A=x:1,B=y:2".into()),
            ("A=x:1,", "ok A=x:1".into()),
            // gcloud's alternate delimiter.
            ("^;^A=x:1;B=y:2", "ok A=x:1,B=y:2".into()),
            ("^;^/secrets/a,b=x:1", "ok /secrets/a,b=x:1".into()),
            ("^^A=x:1", "argument --set-secrets: Invalid delimiter: write a delimiter between two `^` before the items, e.g. `^;^A=a:latest;B=b:latest`".into()),
            // One trailing slash on a path is dropped.
            ("/secrets/a/=x:1", "ok /secrets/a=x:1".into()),
            // Empty values and items.
            ("", "argument --set-secrets: expected `KEY=SECRET:VERSION` items separated by commas, e.g. `DB_PASSWORD=db-password:latest`".into()),
            ("  ", "argument --set-secrets: expected `KEY=SECRET:VERSION` items separated by commas, e.g. `DB_PASSWORD=db-password:latest`".into()),
            ("A=x:1,,B=y:1", "argument --set-secrets: item 2 is empty; remove the extra `,`".into()),
            (",A=x:1", "argument --set-secrets: item 1 is empty; remove the extra `,`".into()),
            // Item syntax.
            ("DB_PASSWORD", "argument --set-secrets: Bad syntax for dict arg: [DB_PASSWORD]; write each item as `KEY=SECRET:VERSION`".into()),
            ("=x:1", "`=x:1`: the key is empty; write `NAME=SECRET:VERSION` or `/DIRECTORY/FILE=SECRET:VERSION`".into()),
            ("A=x:1,A=y:2", "argument --set-secrets: `A` is given more than once; give each key once".into()),
            ("/s/a=x:1,/s/a/=x:2", "argument --set-secrets: `/s/a` is given more than once; give each key once".into()),
            // The version is required.
            ("DB_PASSWORD=db-password", "No secret version specified for DB_PASSWORD. Use DB_PASSWORD:latest to reference the latest version.".into()),
            ("A=x:", "No secret version specified for A. Use A:latest to reference the latest version.".into()),
            ("A=projects/123/secrets/x", "No secret version specified for A. Use A:latest to reference the latest version.".into()),
            ("A=x:1:2", "Invalid secret spec `x:1:2`: write `SECRET:VERSION` or `projects/PROJECT/secrets/SECRET:VERSION`, with one `:`".into()),
            ("A=x:0", "`x:0`: `0` is not a secret version; use `latest`, a version number from 1, or a version alias".into()),
            ("A=x:007", "`x:007`: `007` is not a secret version; use `latest`, a version number from 1, or a version alias".into()),
            ("A=x:99999999999999999999", "`x:99999999999999999999`: `99999999999999999999` is not a secret version; use `latest`, a version number from 1, or a version alias".into()),
            ("A=x:-1", "`x:-1`: `-1` is not a secret version; use `latest`, a version number from 1, or a version alias".into()),
            ("A=x:1a", "`x:1a`: `1a` is not a secret version; use `latest`, a version number from 1, or a version alias".into()),
            (&long_alias_item, format!("`x:{long_alias}`: `{long_alias}` is not a secret version; use `latest`, a version number from 1, or a version alias")),
            ("A=x:NEW", "`x:NEW`: `NEW` cannot name a secret version; use `latest`, a version number, or another alias".into()),
            // Secret ids and projects.
            ("A=my secret:1", "'my secret' is not a valid secret name. Use 1 to 255 letters, digits, `-` or `_`.".into()),
            ("A=x.y:1", "'x.y' is not a valid secret name. Use 1 to 255 letters, digits, `-` or `_`.".into()),
            (&long_id_item, format!("'{long_id}' is not a valid secret name. Use 1 to 255 letters, digits, `-` or `_`.")),
            ("A=projects/123/x:1", "'projects/123/x' is not a valid secret name. Use 1 to 255 letters, digits, `-` or `_`.".into()),
            ("A=projects/123/secrets/x.y:1", "'x.y' is not a valid secret name. Use 1 to 255 letters, digits, `-` or `_`.".into()),
            ("A=projects/Bad_Project/secrets/x:1", "`projects/Bad_Project/secrets/x:1`: `Bad_Project` is not a project id or number".into()),
            ("A=projects/12345678901234567890/secrets/x:1", "`projects/12345678901234567890/secrets/x:1`: `12345678901234567890` is not a project id or number".into()),
            // Environment variable names.
            ("PORT=x:1", "`PORT` is reserved by Cloud Run and cannot be set".into()),
            ("K_SERVICE=x:1", "`K_SERVICE` is reserved by Cloud Run and cannot be set".into()),
            ("K_REVISION=x:1", "`K_REVISION` is reserved by Cloud Run and cannot be set".into()),
            ("K_CONFIGURATION=x:1", "`K_CONFIGURATION` is reserved by Cloud Run and cannot be set".into()),
            ("X_GOOGLE_THING=x:1", "`X_GOOGLE_THING`: names starting with `X_GOOGLE_` are reserved; choose another name".into()),
            ("A\u{1b}[2J=x:1", "`A\\u{1b}[2J`: an environment variable name may not contain `=` or control characters".into()),
            ("A\0=x:1", "`A\\u{0}`: an environment variable name may not contain `=` or control characters".into()),
            // Mount paths.
            ("/credentials=x:1", "Mount path [/credentials] must be in the form /<mountPath>/<path>: a file cannot be mounted directly in `/`; use a directory such as `/secrets`".into()),
            ("/=x:1", "Mount path [/] must be in the form /<mountPath>/<path>: a file cannot be mounted directly in `/`; use a directory such as `/secrets`".into()),
            ("//a=x:1", "Mount path [//a] must be in the form /<mountPath>/<path>: remove the empty path element (`//`)".into()),
            ("/secrets//a=x:1", "Mount path [/secrets//a] must be in the form /<mountPath>/<path>: remove the empty path element (`//`)".into()),
            ("/secrets/../etc/a=x:1", "Mount path [/secrets/../etc/a] must be in the form /<mountPath>/<path>: `.` and `..` are not allowed as path elements".into()),
            ("/secrets/./a=x:1", "Mount path [/secrets/./a] must be in the form /<mountPath>/<path>: `.` and `..` are not allowed as path elements".into()),
            ("/secrets/a:b=x:1", "mount path `/secrets/a:b` may not contain `:`; choose a path without it".into()),
            ("/secrets/a\tb=x:1", "mount path `/secrets/a\\tb` contains a control character; remove it".into()),
            (&long_name_item, format!("mount path `{long_name}` has a file name of 256 bytes; the limit is 255")),
            (&long_path_item, format!("mount path `{long_path}` is 4098 bytes; the limit is 4096")),
            // Restricted directories, and directories that would hide them.
            ("/proc/a=x:1", "mount directory `/proc` is `/proc` or inside it, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/dev/shm/a=x:1", "mount directory `/dev/shm` is `/dev` or inside it, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/dev/a=x:1", "mount directory `/dev` is `/dev` or inside it, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/dev/log/a=x:1", "mount directory `/dev/log` is `/dev/log` or inside it, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/sys/kernel/a=x:1", "mount directory `/sys/kernel` is `/sys` or inside it, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/cloudsql/a=x:1", "mount directory `/cloudsql` is `/cloudsql` or inside it, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/pod/a=x:1", "mount directory `/pod` is `/pod` or inside it, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/var/log/app/a=x:1", "mount directory `/var/log/app` is `/var/log` or inside it, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/var/log=x:1", "mount directory `/var` would hide `/var/log`, which Cloud Run reserves; mount secrets elsewhere, e.g. under `/secrets`".into()),
            ("/devices/a=x:1", "ok /devices/a=x:1".into()),
            ("/var/lib/a=x:1", "ok /var/lib/a=x:1".into()),
            // One secret per directory; several files of one secret may share it.
            ("/s/a=x:1,/s/b=x:latest", "ok /s/a=x:1,/s/b=x:latest".into()),
            ("/s/a=x:1,/s/b=y:1", "Multiple secrets are specified for directory [/s]. Cloud Run only supports one secret per directory; mount `/s/b` in another directory".into()),
            ("/s/a=x:1,/s/b=projects/123/secrets/x:1", "Multiple secrets are specified for directory [/s]. Cloud Run only supports one secret per directory; mount `/s/b` in another directory".into()),
            ("/s/a=x:1,/t/a=y:1,A=y:1,B=x:1", "ok /s/a=x:1,/t/a=y:1,A=y:1,B=x:1".into()),
            // A mount directory may not hide, or sit under, another mount's file.
            ("/s/a=x:1,/s/a/b=y:1", "mount directory `/s/a` overlaps `/s/a` of another mount; give each secret its own directory, neither inside the other".into()),
            ("/s/a/b=y:1,/s/a=x:1", "mount directory `/s` overlaps `/s/a/b` of another mount; give each secret its own directory, neither inside the other".into()),
            ("/s/f=x:1,/s/d/g=y:1", "mount directory `/s` overlaps `/s/d/g` of another mount; give each secret its own directory, neither inside the other".into()),
            ("/s/a=x:1,/s/a/b/c=y:1", "mount directory `/s/a/b` overlaps `/s/a` of another mount; give each secret its own directory, neither inside the other".into()),
            ("/s/ab=x:1,/s/a/c=y:1", "mount directory `/s` overlaps `/s/a/c` of another mount; give each secret its own directory, neither inside the other".into()),
            ("/s1/ab=x:1,/s1a/c=y:1", "ok /s1/ab=x:1,/s1a/c=y:1".into()),
        ];
        for (value, expect) in rows {
            check(value, &expect);
        }
    }

    #[test]
    fn targets() {
        let file = Target::parse("/secrets/credentials").unwrap();
        assert_eq!(file, Target::File("/secrets/credentials".into()));
        assert_eq!((file.mount_dir(), file.file_name()), (Some("/secrets"), Some("credentials")));
        let deep = Target::parse("/a/b/c/").unwrap();
        assert_eq!((deep.mount_dir(), deep.file_name()), (Some("/a/b"), Some("c")));
        let env = Target::parse("DB_PASSWORD").unwrap();
        assert_eq!(env, Target::Env("DB_PASSWORD".into()));
        assert_eq!((env.mount_dir(), env.file_name()), (None, None));
        assert_eq!(Target::parse(" A").unwrap_err().to_string(), "` A`: a key may not begin or end with whitespace");
        assert!(matches!(Target::parse(""), Err(SpecError::EmptyKey { .. })));
        assert!(matches!(Target::parse("A=B"), Err(SpecError::EnvChars { .. })));
        assert!(Target::Env("B".into()) > Target::Env("A".into()));
    }

    #[test]
    fn remove_keys() {
        let keys = parse_keys("--remove-secrets", "DB_PASSWORD, /secrets/credentials").unwrap();
        assert_eq!(keys, [Target::Env("DB_PASSWORD".into()), Target::File("/secrets/credentials".into())]);
        let err = |v| parse_keys("--remove-secrets", v).unwrap_err().to_string();
        assert_eq!(
            err("A=x:1"),
            "argument --remove-secrets: `A=x:1` is not a key; list environment variable names or mount paths, without `=`"
        );
        assert_eq!(
            err(""),
            "argument --remove-secrets: expected keys separated by commas, e.g. `DB_PASSWORD,/secrets/credentials`"
        );
        assert_eq!(err("A,A"), "argument --remove-secrets: `A` is given more than once; give each key once");
        assert_eq!(err("PORT"), "`PORT` is reserved by Cloud Run and cannot be set");
    }

    #[test]
    fn mappings_from_parts_are_checked_like_items() {
        let m = Mapping::new("/secrets/credentials", "projects/123/secrets/cred", "latest").unwrap();
        assert_eq!(m.target, Target::File("/secrets/credentials".into()));
        assert_eq!(m.secret.name(), "projects/123/secrets/cred");
        assert_eq!(Mapping::new("DB", "db-password", "2").unwrap().secret.name(), "db-password");
        let no_version = Mapping::new("DB", "db-password", "").unwrap_err().to_string();
        assert!(no_version.starts_with("No secret version specified for DB."), "{no_version}");
        assert!(Mapping::new("PORT", "x", "1").is_err());
        assert!(Mapping::new("A", "bad name", "1").is_err());
        assert!(Mapping::new("A", "x:1", "1").is_err(), "a version smuggled into the name");
    }

    #[test]
    fn check_revalidates_mappings_built_by_hand() {
        let m = |target, version: &str| Mapping {
            target,
            secret: SecretRef { project: None, secret: "x".into(), version: version.into() },
        };
        assert!(super::check(&[m(Target::Env("A".into()), "1")]).is_ok());
        let bad = [
            m(Target::Env("PORT".into()), "1"),
            m(Target::File("/proc/a".into()), "1"),
            m(Target::File("/a".into()), "1"),
            m(Target::File("a/b".into()), "1"),
            m(Target::File("/a/b/".into()), "1"),
            m(Target::Env("A".into()), ""),
            m(Target::Env("A".into()), "NEW"),
        ];
        for b in bad {
            assert!(super::check(std::slice::from_ref(&b)).is_err(), "{b:?}");
        }
        let dup = [m(Target::Env("A".into()), "1"), m(Target::Env("A".into()), "2")];
        assert_eq!(
            super::check(&dup).unwrap_err().to_string(),
            "`A` is mapped more than once; keep one mapping per environment variable or file"
        );
    }

    fn env_name() -> impl Strategy<Value = String> {
        "[A-Za-z_][A-Za-z0-9_.-]{0,20}"
            .prop_filter("reserved", |n| !RESERVED_ENV.contains(&n.as_str()) && !n.starts_with(RESERVED_ENV_PREFIX))
    }

    fn file_path() -> impl Strategy<Value = String> {
        proptest::collection::vec("[A-Za-z0-9_. -]{0,9}[A-Za-z0-9_-]", 2..5)
            .prop_map(|elements| format!("/{}", elements.join("/")))
            .prop_filter("valid path", |p| Target::parse(p).is_ok())
    }

    fn target() -> impl Strategy<Value = Target> {
        prop_oneof![env_name().prop_map(Target::Env), file_path().prop_map(Target::File)]
    }

    fn secret_ref() -> impl Strategy<Value = SecretRef> {
        let project = proptest::option::of(prop_oneof!["[0-9]{1,19}", "[a-z][a-z0-9-]{4,28}[a-z0-9]"]);
        let version = prop_oneof![Just("latest".to_owned()), "[1-9][0-9]{0,17}", "[A-Za-z][A-Za-z0-9_-]{0,62}"]
            .prop_filter("NEW", |v| v != "NEW");
        (project, "[A-Za-z0-9_-]{1,40}", version).prop_map(|(project, secret, version)| SecretRef {
            project,
            secret,
            version,
        })
    }

    proptest! {
        #[test]
        fn parsing_never_panics(value in ".{0,200}") {
            if let Ok(ms) = parse_mappings("--set-secrets", &value) {
                let _ = super::check(&ms);
            }
            let _ = parse_keys("--remove-secrets", &value);
        }

        #[test]
        fn parsing_grammar_like_text_never_panics(value in "[\\^A-Za-z0-9_/:=,. ;-]{0,80}") {
            if let Ok(ms) = parse_mappings("--set-secrets", &value) {
                let _ = super::check(&ms);
            }
            let _ = parse_keys("--remove-secrets", &value);
        }

        #[test]
        fn display_then_parse_is_identity(
            mappings in proptest::collection::vec((target(), secret_ref()), 1..6)
        ) {
            let mut seen = HashSet::new();
            let mappings: Vec<Mapping> = mappings
                .into_iter()
                .filter(|(t, _)| seen.insert(t.clone()))
                .map(|(target, secret)| Mapping { target, secret })
                .collect();
            for m in &mappings {
                prop_assert_eq!(parse_mappings("--set-secrets", &m.to_string()).unwrap(), vec![m.clone()]);
            }
            let joined = mappings.iter().map(ToString::to_string).collect::<Vec<_>>().join(",");
            prop_assert_eq!(parse_mappings("--update-secrets", &joined).unwrap(), mappings);
        }
    }
}
