//! The one service account (and the instance facts around it) that a metadata server answers for.

/// The scope google-auth and Cloud Run use when nobody asks for another.
pub const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Everything the metadata server reports about "itself".
///
/// **Architecture Invariant:** a server is built from exactly one `Identity` and never answers for another account:
/// `service-accounts/` lists only `default` and this `email`, and any other account path is a 404.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The service account, e.g. `invoker@my-project.iam.gserviceaccount.com`.
    pub email: String,
    pub project_id: String,
    /// Digits only; gcloud's detection requires `str.isdigit()` on it.
    pub project_number: String,
    /// e.g. `us-central1`.
    pub region: String,
    /// e.g. `us-central1-1`.
    pub zone: String,
    /// Digits.
    pub instance_id: String,
    /// Scopes for `token` requests without `?scopes=`; usually [`Identity::default_scopes`].
    pub scopes: Vec<String>,
}

impl Identity {
    /// `["https://www.googleapis.com/auth/cloud-platform"]`.
    pub fn default_scopes() -> Vec<String> {
        vec![CLOUD_PLATFORM_SCOPE.to_string()]
    }
}
