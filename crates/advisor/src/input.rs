//! What the advisor reads: a project's IAM policy, its services in a neutral shape (from Cloud Run v2 JSON or the v1
//! Knative export), the IAM policies of services and secrets, service accounts and their keys, and — on the live
//! platform — what was observed (calls between services, permissions used).
//!
//! Every part is optional: a part that is `None` was not available, and the rules that need it are skipped with the
//! reason (see [`crate::report::Skipped`]).

use model::Policy;
use std::collections::{BTreeMap, BTreeSet};

/// Where the state comes from; decides defaults that differ between Google Cloud and Gatehouse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Origin {
    /// Files exported from a Google Cloud project: Secret Manager Data Access logs are off unless configured.
    #[default]
    Export,
    /// The running Gatehouse platform: Secret Manager Data Access logs are on unless configured off.
    Live,
}

pub use model::ingress::Ingress;

/// `VpcAccess.VpcEgress` (PROTOCOL.md §5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    PrivateRangesOnly,
    AllTraffic,
}

/// One environment variable of a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvValue {
    /// `--set-env-vars`: the value is stored in the service and shown to anyone who can read it.
    Plain(String),
    /// `--set-secrets`: a Secret Manager version (`latest`, a number or an alias).
    Secret { secret: String, version: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Env {
    pub name: String,
    pub value: EnvValue,
}

/// A Cloud Run service, reduced to what the rules look at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Service {
    /// The short name (`svc`).
    pub name: String,
    pub region: String,
    pub ingress: Ingress,
    pub invoker_iam_disabled: bool,
    /// `template.serviceAccount`; `None` when not set (the revision runs as the default compute account).
    pub service_account: Option<String>,
    /// Every container's env vars, in order.
    pub env: Vec<Env>,
    /// Secrets mounted as files (secret volumes), by secret name.
    pub secret_volumes: Vec<String>,
    /// `None`: no VPC access at all (no connector, no Direct VPC egress).
    pub vpc_egress: Option<Egress>,
    /// Service and revision-template labels.
    pub labels: BTreeMap<String, String>,
    /// Service and revision-template annotations.
    pub annotations: BTreeMap<String, String>,
    /// `uri` and `urls` (v2) or `status.url` (v1), when the export has them.
    pub urls: Vec<String>,
}

/// A service account as `gcloud iam service-accounts list --format=json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ServiceAccount {
    pub email: String,
    pub disabled: bool,
}

/// A service account key as `gcloud iam service-accounts keys list --format=json` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Key {
    /// `projects/P/serviceAccounts/E/keys/ID`.
    pub name: String,
    /// `USER_MANAGED` or `SYSTEM_MANAGED`.
    pub key_type: String,
    pub valid_after: String,
}

impl Key {
    pub fn id(&self) -> &str {
        self.name.rsplit('/').next().unwrap_or(&self.name)
    }
}

/// One call the platform saw reach a service (or be refused by its ingress).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedCall {
    /// The caller: a member (`serviceAccount:…`, `user:…`), or `allUsers` for an anonymous caller.
    pub caller: String,
    /// The Cloud Run service whose instance made the call, when it came from one (the network says so, whatever
    /// token the call carried).
    pub from_service: Option<String>,
    /// The service called.
    pub target: String,
}

impl ObservedCall {
    pub fn new(caller: impl Into<String>, target: impl Into<String>) -> ObservedCall {
        ObservedCall { caller: caller.into(), from_service: None, target: target.into() }
    }

    /// Whether `service`, running as `account` (a member), made this call: named by the call when the call says
    /// which service's instance made it, else by its account.
    pub fn made_by(&self, service: &str, account: &str) -> bool {
        match &self.from_service {
            Some(s) => s == service,
            None => self.caller == account,
        }
    }
}

/// What the live platform saw happen.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observations {
    /// Calls that reached a service, and ingress refusals of calls from instances. `None` when calls are not
    /// observable.
    pub calls: Option<Vec<ObservedCall>>,
    /// Permissions each principal (email) was granted and used, with the full resource name they were used on.
    /// `None` when usage is not observable.
    pub used_permissions: Option<BTreeMap<String, BTreeSet<(String, String)>>>,
    /// Whether the platform enforces network controls (ingress, egress) on this host; `None` when not reported.
    pub network_controls_enforced: Option<bool>,
}

/// Everything a scan reads. `None` means "not available": the rules that need it are skipped.
#[derive(Debug, Clone, Default)]
pub struct Input {
    pub origin: Origin,
    pub project_id: String,
    /// The project number, when something showed it (the default compute account's email carries it).
    pub project_number: Option<String>,
    pub project_policy: Option<Policy>,
    pub services: Option<Vec<Service>>,
    /// Service IAM policies by service name. A service missing here has an unknown policy.
    pub service_policies: Option<BTreeMap<String, Policy>>,
    /// Secret IAM policies by secret name.
    pub secret_policies: Option<BTreeMap<String, Policy>>,
    pub service_accounts: Option<Vec<ServiceAccount>>,
    /// Keys by service account email.
    pub keys: Option<BTreeMap<String, Vec<Key>>>,
    /// `None` offline: live-only rules are skipped.
    pub observations: Option<Observations>,
}

/// Full resource names (the form Policy Troubleshooter and Cloud Asset Inventory use).
impl Input {
    pub fn project_resource(&self) -> String {
        format!("//cloudresourcemanager.googleapis.com/projects/{}", self.project_id)
    }

    pub fn service_resource(&self, s: &Service) -> String {
        format!("//run.googleapis.com/projects/{}/locations/{}/services/{}", self.project_id, s.region, s.name)
    }

    pub fn account_resource(&self, email: &str) -> String {
        format!("//iam.googleapis.com/projects/{}/serviceAccounts/{email}", self.project_id)
    }

    pub fn secret_resource(&self, secret: &str) -> String {
        let short = secret.rsplit('/').next().unwrap_or(secret);
        format!("//secretmanager.googleapis.com/projects/{}/secrets/{short}", self.project_id)
    }

    /// The default compute service account's email, `PROJECT_NUMBER-compute@developer.gserviceaccount.com`.
    pub fn default_compute_account(&self) -> String {
        format!("{}-compute@developer.gserviceaccount.com", self.project_number.as_deref().unwrap_or("PROJECT_NUMBER"))
    }
}

/// True for `NUMBER-compute@developer.gserviceaccount.com`.
pub fn is_default_compute_account(email: &str) -> bool {
    email
        .strip_suffix("-compute@developer.gserviceaccount.com")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}
