//! Resource names: full names (`//service.googleapis.com/…`), project-relative names, service-account emails.

/// The OAuth client id of gcloud: `gcloud auth print-identity-token` for a user yields ID tokens with this `aud`, and
/// Cloud Run accepts them on every service (PROTOCOL §2.1).
pub const GCLOUD_CLIENT_ID: &str = "32555940559.apps.googleusercontent.com";

/// Full resource name of a project, as the troubleshooter and IAM explanations use it.
pub fn project_full_name(project_id: &str) -> String {
    format!("//cloudresourcemanager.googleapis.com/projects/{project_id}")
}

/// Full resource name of a service account.
pub fn service_account_full_name(project_id: &str, email: &str) -> String {
    format!("//iam.googleapis.com/projects/{project_id}/serviceAccounts/{email}")
}

/// Email of a user-managed service account: `NAME@PROJECT.iam.gserviceaccount.com`.
pub fn service_account_email(account_id: &str, project_id: &str) -> String {
    format!("{account_id}@{project_id}.iam.gserviceaccount.com")
}

/// Email of the default compute service account: `NUMBER-compute@developer.gserviceaccount.com`.
pub fn default_compute_email(project_number: &str) -> String {
    format!("{project_number}-compute@developer.gserviceaccount.com")
}

/// Google's id shape shared by projects, service accounts and Cloud Run services: lowercase letters, digits and
/// hyphens, starting with a letter, not ending with a hyphen, `min..=max` characters.
pub fn is_lowercase_id(id: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && !id.ends_with('-')
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

/// Checks a service-account id against Google's rules: 6–30 characters, lowercase letters, digits and hyphens,
/// starting with a letter and not ending with a hyphen.
pub fn validate_account_id(id: &str) -> Result<(), String> {
    if is_lowercase_id(id, 6, 30) {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not a valid service account id: it must be 6-30 characters of lowercase letters, digits and hyphens, start with a letter and not end with a hyphen (match [a-z]([-a-z0-9]*[a-z0-9]))"
        ))
    }
}

/// Checks a project id: 6–30 characters, lowercase letters, digits and hyphens, starting with a letter.
pub fn validate_project_id(id: &str) -> Result<(), String> {
    if is_lowercase_id(id, 6, 30) {
        Ok(())
    } else {
        Err(format!(
            "`{id}` is not a valid project id: use 6-30 lowercase letters, digits and hyphens, starting with a letter"
        ))
    }
}

/// Custom role ids: letters, digits, underscores and periods, at most 64 characters.
pub fn validate_custom_role_id(id: &str) -> Result<(), String> {
    let ok = (3..=64).contains(&id.len()) && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(format!("`{id}` is not a valid role id: use 3-64 letters, digits, underscores and periods"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_follow_google_rules() {
        assert!(validate_account_id("my-api-sa").is_ok());
        for bad in ["short", "My-api-sa", "1abcdef", "abcdef-", "a".repeat(31).as_str(), "ab_cdef"] {
            assert!(validate_account_id(bad).is_err(), "{bad}");
        }
    }
}
