//! Secret and version names as Secret Manager spells them (PROTOCOL.md §6.1): ids, the global and regional forms,
//! `latest`, numbers and aliases, and the four renderings one secret needs (as given, by number, storage key, IAM name).

use crate::state::Project;
use model::ApiError;

pub(crate) const SERVICE: &str = "secretmanager.googleapis.com";

/// A secret named by a request: `projects/{p}/secrets/{s}` or `projects/{p}/locations/{l}/secrets/{s}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SecretName {
    /// The project as the request spelled it (id or number); Google's 403 text repeats it.
    pub project: String,
    pub location: Option<String>,
    pub secret: String,
}

/// Which version a request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum VersionRef {
    /// The most recently created version, whatever its state.
    Latest,
    Number(u64),
    /// A user alias from the secret's `versionAliases` (Get and Access only).
    Alias(String),
}

impl std::fmt::Display for VersionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VersionRef::Latest => f.write_str("latest"),
            VersionRef::Number(n) => write!(f, "{n}"),
            VersionRef::Alias(a) => f.write_str(a),
        }
    }
}

/// `secret_id`: 1-255 characters of `[A-Za-z0-9_-]`.
pub(crate) fn valid_secret_id(id: &str) -> bool {
    (1..=255).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Locations look like regions: lowercase letters, digits and hyphens.
pub(crate) fn valid_location(l: &str) -> bool {
    (1..=63).contains(&l.len()) && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Version aliases: 1-63 characters of `[A-Za-z0-9_-]`, not all digits; `latest` and `NEW` are reserved.
pub(crate) fn valid_alias(a: &str) -> bool {
    (1..=63).contains(&a.len())
        && a.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !a.bytes().all(|b| b.is_ascii_digit())
        && a != "latest"
        && a != "NEW"
}

/// Google's answer to a malformed name: `Resource ID [NAME] is not in a valid format.`
pub(crate) fn invalid_format(name: &str) -> ApiError {
    ApiError::invalid(format!("Resource ID [{name}] is not in a valid format."))
}

impl SecretName {
    /// A secret from the path pieces of a request; 400 in Google's words when the id or location is malformed.
    pub fn parse(project: &str, location: Option<&str>, secret: &str) -> Result<SecretName, ApiError> {
        let name = SecretName {
            project: project.to_owned(),
            location: location.map(str::to_owned),
            secret: secret.to_owned(),
        };
        if project.is_empty() || !valid_secret_id(secret) || location.is_some_and(|l| !valid_location(l)) {
            return Err(invalid_format(&name.as_given()));
        }
        Ok(name)
    }

    /// A secret id in `default_project`, or a full `projects/P/secrets/S` / `projects/P/locations/L/secrets/S` name.
    pub fn parse_reference(default_project: &str, reference: &str) -> Result<SecretName, ApiError> {
        if !reference.contains('/') {
            return SecretName::parse(default_project, None, reference);
        }
        let parts: Vec<&str> = reference.split('/').collect();
        match parts.as_slice() {
            ["projects", p, "secrets", s] => SecretName::parse(p, None, s),
            ["projects", p, "locations", l, "secrets", s] => SecretName::parse(p, Some(l), s),
            _ => Err(invalid_format(reference)),
        }
    }

    fn with_project(&self, project: &str) -> String {
        match &self.location {
            Some(l) => format!("projects/{project}/locations/{l}/secrets/{}", self.secret),
            None => format!("projects/{project}/secrets/{}", self.secret),
        }
    }

    /// The name as the request spelled it (denials quote it).
    pub fn as_given(&self) -> String {
        self.with_project(&self.project)
    }

    /// The name responses and audit entries carry: by project number.
    pub fn name(&self, p: &Project) -> String {
        self.with_project(&p.project_number)
    }

    /// The store key: by project id, so both spellings find one document.
    pub fn key(&self, p: &Project) -> String {
        self.with_project(&p.project_id)
    }

    /// The full resource name IAM decides on (policies are keyed by it).
    pub fn full(&self, p: &Project) -> String {
        format!("//{SERVICE}/{}", self.key(p))
    }

    /// `projects/NUM[/locations/L]`, the parent responses show.
    pub fn parent(&self, p: &Project) -> String {
        match &self.location {
            Some(l) => format!("projects/{}/locations/{l}", p.project_number),
            None => format!("projects/{}", p.project_number),
        }
    }
}

impl VersionRef {
    /// `latest`, a positive number, or an alias; anything else is a malformed name (reported as `shown`).
    pub fn parse(v: &str, shown: impl FnOnce() -> String) -> Result<VersionRef, ApiError> {
        if v == "latest" {
            return Ok(VersionRef::Latest);
        }
        if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
            return match v.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(VersionRef::Number(n)),
                _ => Err(invalid_format(&shown())),
            };
        }
        if valid_alias(v) {
            return Ok(VersionRef::Alias(v.to_owned()));
        }
        Err(invalid_format(&shown()))
    }
}

/// The store key of version `n` of the secret stored under `secret_key`.
pub(crate) fn version_key(secret_key: &str, n: u64) -> String {
    format!("{secret_key}/versions/{n}")
}

/// The prefix every version key of a secret starts with.
pub(crate) fn versions_prefix(secret_key: &str) -> String {
    format!("{secret_key}/versions/")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project() -> Project {
        Project {
            project_id: "local-project".into(),
            project_number: "123456789012".into(),
            name: "local-project".into(),
            lifecycle_state: "ACTIVE".into(),
            create_time: String::new(),
            region: "us-central1".into(),
        }
    }

    #[test]
    fn secret_ids_follow_googles_rule() {
        for ok in ["a", "DB_PASSWORD", "db-password-2", &"x".repeat(255)] {
            assert!(SecretName::parse("local-project", None, ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "a b", "ü", "a/b", &"x".repeat(256)] {
            let e = SecretName::parse("local-project", None, bad).unwrap_err();
            assert_eq!(e.http_status(), 400, "{bad}");
            assert_eq!(
                e.message,
                format!("Resource ID [projects/local-project/secrets/{bad}] is not in a valid format.")
            );
        }
        assert!(SecretName::parse("p", Some("Us Central"), "s").is_err());
    }

    #[test]
    fn one_secret_four_spellings() {
        let p = project();
        let by_number = SecretName::parse("123456789012", None, "db").unwrap();
        assert_eq!(by_number.as_given(), "projects/123456789012/secrets/db");
        assert_eq!(by_number.name(&p), "projects/123456789012/secrets/db");
        assert_eq!(by_number.key(&p), "projects/local-project/secrets/db");
        assert_eq!(by_number.full(&p), "//secretmanager.googleapis.com/projects/local-project/secrets/db");
        let regional = SecretName::parse("local-project", Some("us-central1"), "db").unwrap();
        assert_eq!(regional.name(&p), "projects/123456789012/locations/us-central1/secrets/db");
        assert_eq!(regional.parent(&p), "projects/123456789012/locations/us-central1");
        assert_ne!(regional.key(&p), by_number.key(&p), "a regional secret is another secret");
    }

    #[test]
    fn references_are_ids_or_full_names() {
        let id = SecretName::parse_reference("local-project", "db").unwrap();
        assert_eq!(id.as_given(), "projects/local-project/secrets/db");
        let full = SecretName::parse_reference("local-project", "projects/other/secrets/db").unwrap();
        assert_eq!(full.project, "other");
        let regional = SecretName::parse_reference("x", "projects/p/locations/europe-west1/secrets/db").unwrap();
        assert_eq!(regional.location.as_deref(), Some("europe-west1"));
        for bad in ["projects/p/secrets", "projects/p/secrets/db/versions/1", "p/secrets/db", "projects/p/secrets/a.b"]
        {
            assert_eq!(SecretName::parse_reference("x", bad).unwrap_err().http_status(), 400, "{bad}");
        }
    }

    #[test]
    fn versions_are_latest_numbers_or_aliases() {
        let shown = || "projects/p/secrets/s/versions/?".to_owned();
        assert_eq!(VersionRef::parse("latest", shown).unwrap(), VersionRef::Latest);
        assert_eq!(VersionRef::parse("3", shown).unwrap(), VersionRef::Number(3));
        assert_eq!(VersionRef::parse("prod", shown).unwrap(), VersionRef::Alias("prod".into()));
        for bad in ["0", "", "-1x.", "NEW", "a b", "99999999999999999999999"] {
            assert!(VersionRef::parse(bad, shown).is_err(), "{bad}");
        }
        assert_eq!(version_key("projects/p/secrets/s", 12), "projects/p/secrets/s/versions/12");
        assert!(version_key("projects/p/secrets/s", 1).starts_with(&versions_prefix("projects/p/secrets/s")));
        assert!(!version_key("projects/p/secrets/sx", 1).starts_with(&versions_prefix("projects/p/secrets/s")));
    }
}
