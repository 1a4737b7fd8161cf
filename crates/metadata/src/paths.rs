//! The metadata tree: which paths exist, their directory listings and their `?recursive=true` JSON.
//!
//! Paths follow PROTOCOL.md §1.3. Directories answer with or without their trailing slash (GCE redirects the slashless
//! form; no client relies on that); leaves with a trailing slash are 404, as on GCE.

use serde_json::{json, Value};

use crate::identity::Identity;

/// A path the server knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Node {
    /// `/`: the detection ping. Exempt from the `Metadata-Flavor` check.
    Ping,
    Dir(Dir),
    Leaf(Leaf),
    /// `instance/service-accounts/{default|email}/token`
    Token,
    /// `instance/service-accounts/{default|email}/identity`
    Identity,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Dir {
    ComputeMetadata,
    V1,
    Project,
    Instance,
    ServiceAccounts,
    /// `instance/service-accounts/{default|email}/`
    Account,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Leaf {
    ProjectId,
    NumericProjectId,
    InstanceId,
    Region,
    Zone,
    Email,
    Aliases,
    Scopes,
}

/// Maps a request path to a node, or `None` (404). `account` segments match only `default` and this identity's email.
pub(crate) fn resolve(identity: &Identity, path: &str) -> Option<Node> {
    if path == "/" {
        return Some(Node::Ping);
    }
    let rest = path.strip_prefix('/')?;
    let (rest, trailing_slash) = match rest.strip_suffix('/') {
        Some(rest) => (rest, true),
        None => (rest, false),
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let node = match segments.as_slice() {
        ["computeMetadata"] => Node::Dir(Dir::ComputeMetadata),
        ["computeMetadata", "v1", tail @ ..] => match tail {
            [] => Node::Dir(Dir::V1),
            ["project"] => Node::Dir(Dir::Project),
            ["project", "project-id"] => Node::Leaf(Leaf::ProjectId),
            ["project", "numeric-project-id"] => Node::Leaf(Leaf::NumericProjectId),
            ["instance"] => Node::Dir(Dir::Instance),
            ["instance", "id"] => Node::Leaf(Leaf::InstanceId),
            ["instance", "region"] => Node::Leaf(Leaf::Region),
            ["instance", "zone"] => Node::Leaf(Leaf::Zone),
            ["instance", "service-accounts"] => Node::Dir(Dir::ServiceAccounts),
            ["instance", "service-accounts", account, tail @ ..] if is_own_account(identity, account) => match tail {
                [] => Node::Dir(Dir::Account),
                ["email"] => Node::Leaf(Leaf::Email),
                ["aliases"] => Node::Leaf(Leaf::Aliases),
                ["scopes"] => Node::Leaf(Leaf::Scopes),
                ["token"] => Node::Token,
                ["identity"] => Node::Identity,
                _ => return None,
            },
            _ => return None,
        },
        _ => return None,
    };
    match node {
        Node::Dir(_) => Some(node),
        _ if trailing_slash => None,
        _ => Some(node),
    }
}

/// INVARIANT: the only accounts a server answers for are `default` and its own email.
fn is_own_account(identity: &Identity, segment: &str) -> bool {
    if segment == "default" {
        return true;
    }
    // Clients may percent-encode the `@`.
    percent_encoding::percent_decode_str(segment).decode_utf8().is_ok_and(|email| email == identity.email)
}

/// The text listing of a directory: one entry per line, subdirectories with a trailing `/`.
pub(crate) fn listing(identity: &Identity, dir: Dir) -> String {
    let entries: Vec<String> = match dir {
        Dir::ComputeMetadata => vec!["v1/".into()],
        Dir::V1 => vec!["instance/".into(), "project/".into()],
        Dir::Project => vec!["numeric-project-id".into(), "project-id".into()],
        Dir::Instance => vec!["id".into(), "region".into(), "service-accounts/".into(), "zone".into()],
        Dir::ServiceAccounts => vec!["default/".into(), format!("{}/", identity.email)],
        Dir::Account => ["aliases", "email", "identity", "scopes", "token"].map(String::from).to_vec(),
    };
    entries.iter().map(|e| format!("{e}\n")).collect()
}

/// The listing as a JSON array (for `?alt=json` without `recursive`).
pub(crate) fn listing_json(identity: &Identity, dir: Dir) -> Value {
    Value::Array(listing(identity, dir).lines().map(|l| Value::String(l.to_string())).collect())
}

/// `?recursive=true`: the directory as JSON, keys in GCE's camelCase. `token` and `identity` are not part of it.
pub(crate) fn recursive(identity: &Identity, dir: Dir) -> Value {
    match dir {
        Dir::ComputeMetadata => json!({ "v1": recursive(identity, Dir::V1) }),
        Dir::V1 => json!({
            "instance": recursive(identity, Dir::Instance),
            "project": recursive(identity, Dir::Project),
        }),
        Dir::Project => json!({
            "numericProjectId": leaf_json(identity, Leaf::NumericProjectId),
            "projectId": leaf_json(identity, Leaf::ProjectId),
        }),
        Dir::Instance => json!({
            "id": leaf_json(identity, Leaf::InstanceId),
            "region": leaf_json(identity, Leaf::Region),
            "serviceAccounts": recursive(identity, Dir::ServiceAccounts),
            "zone": leaf_json(identity, Leaf::Zone),
        }),
        Dir::ServiceAccounts => {
            let account = recursive(identity, Dir::Account);
            let mut map = serde_json::Map::new();
            map.insert("default".into(), account.clone());
            map.insert(identity.email.clone(), account);
            Value::Object(map)
        }
        Dir::Account => json!({
            "aliases": leaf_json(identity, Leaf::Aliases),
            "email": leaf_json(identity, Leaf::Email),
            "scopes": leaf_json(identity, Leaf::Scopes),
        }),
    }
}

/// The plain-text value of a leaf.
pub(crate) fn leaf_text(identity: &Identity, leaf: Leaf) -> String {
    match leaf {
        Leaf::ProjectId => identity.project_id.clone(),
        Leaf::NumericProjectId => identity.project_number.clone(),
        Leaf::InstanceId => identity.instance_id.clone(),
        Leaf::Region => format!("projects/{}/regions/{}", identity.project_number, identity.region),
        Leaf::Zone => format!("projects/{}/zones/{}", identity.project_number, identity.zone),
        Leaf::Email => identity.email.clone(),
        Leaf::Aliases => "default".to_string(),
        Leaf::Scopes => identity.scopes.join("\n"),
    }
}

/// The JSON value of a leaf (`?alt=json`, and inside recursive answers): numbers for numeric ids, arrays for lists.
pub(crate) fn leaf_json(identity: &Identity, leaf: Leaf) -> Value {
    match leaf {
        Leaf::NumericProjectId | Leaf::InstanceId => {
            let text = leaf_text(identity, leaf);
            text.parse::<u64>().map(Value::from).unwrap_or(Value::String(text))
        }
        Leaf::Aliases => json!(["default"]),
        Leaf::Scopes => json!(identity.scopes),
        _ => Value::String(leaf_text(identity, leaf)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            email: "runner@proj.iam.gserviceaccount.com".into(),
            project_id: "proj".into(),
            project_number: "123456789012".into(),
            region: "us-central1".into(),
            zone: "us-central1-1".into(),
            instance_id: "42".into(),
            scopes: Identity::default_scopes(),
        }
    }

    #[test]
    fn resolves_the_protocol_table() {
        let id = identity();
        let cases: &[(&str, Option<Node>)] = &[
            ("/", Some(Node::Ping)),
            ("/computeMetadata/", Some(Node::Dir(Dir::ComputeMetadata))),
            ("/computeMetadata/v1/", Some(Node::Dir(Dir::V1))),
            ("/computeMetadata/v1", Some(Node::Dir(Dir::V1))),
            ("/computeMetadata/v1/project/project-id", Some(Node::Leaf(Leaf::ProjectId))),
            ("/computeMetadata/v1/project/project-id/", None),
            ("/computeMetadata/v1/instance/service-accounts/default/", Some(Node::Dir(Dir::Account))),
            (
                "/computeMetadata/v1/instance/service-accounts/runner@proj.iam.gserviceaccount.com/token",
                Some(Node::Token),
            ),
            (
                "/computeMetadata/v1/instance/service-accounts/runner%40proj.iam.gserviceaccount.com/email",
                Some(Node::Leaf(Leaf::Email)),
            ),
            ("/computeMetadata/v1/instance/service-accounts/other@proj.iam.gserviceaccount.com/token", None),
            ("/computeMetadata/v1/instance/service-accounts/default/identity", Some(Node::Identity)),
            ("/computeMetadata/v1/instance/service-accounts/default/identity/", None),
            ("/computeMetadata/v1/instance/service-accounts//token", None),
            ("/computeMetadata/v1/universe/universe-domain", None),
            ("/computeMetadata/v2/project/project-id", None),
            ("//", None),
            ("", None),
        ];
        for (path, want) in cases {
            assert_eq!(resolve(&id, path), *want, "{path}");
        }
    }

    #[test]
    fn recursive_project_uses_camel_case_and_numbers() {
        let value = recursive(&identity(), Dir::Project);
        assert_eq!(value, json!({"numericProjectId": 123456789012u64, "projectId": "proj"}));
    }
}
