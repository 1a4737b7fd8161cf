//! The command-line grammar: gcloud's command groups, flags and positional arguments (`--flag=value` and
//! `--flag value` both work, as clap and gcloud accept).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser, Debug)]
#[command(
    name = "gatehouse",
    version,
    about = "The Cloud Run security model on one machine",
    disable_help_subcommand = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command accepts, as gcloud's global flags.
#[derive(Args, Debug, Clone, Default)]
pub struct Global {
    /// Output format: json, yaml, value(FIELD,...), table(FIELD,...), text.
    #[arg(long, global = true)]
    pub format: Option<String>,
    /// Answer every prompt with its default and print less.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,
    /// Project to use instead of the configured one.
    #[arg(long, global = true)]
    pub project: Option<String>,
    /// Account to act as instead of the configured one.
    #[arg(long, global = true)]
    pub account: Option<String>,
    /// Flatten a list field into one record per element, e.g. `bindings[].members`.
    #[arg(long, global = true)]
    pub flatten: Option<String>,
    /// Keep only records matching this expression, e.g. `bindings.members:user@example.com`.
    #[arg(long, global = true)]
    pub filter: Option<String>,
    /// List commands: print at most this many records (after --filter and --sort-by).
    #[arg(long, global = true)]
    pub limit: Option<usize>,
    /// List commands: order records by these fields, e.g. `~metadata.creationTimestamp,name` (`~`: descending).
    #[arg(long, global = true)]
    pub sort_by: Option<String>,
    /// Act as this service account: API calls carry its access token, minted through the IAM Credentials API
    /// (needs `roles/iam.serviceAccountTokenCreator` on the account).
    #[arg(long, global = true)]
    pub impersonate_service_account: Option<String>,
    /// Accepted for compatibility with gcloud; the daemon's log level is set with GATEHOUSE_LOG.
    #[arg(long, global = true, hide = true)]
    pub verbosity: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the platform in the foreground (API, gateway) with state in $GATEHOUSE_HOME.
    Up(UpArgs),
    /// Log in, list and revoke accounts, print tokens.
    #[command(subcommand)]
    Auth(AuthCmd),
    /// Read and set properties (account, project, run and compute region, compute zone).
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Project IAM policy.
    #[command(subcommand)]
    Projects(ProjectsCmd),
    /// Service accounts and roles.
    #[command(subcommand)]
    Iam(IamCmd),
    /// Groups (Cloud Identity).
    #[command(subcommand)]
    Identity(IdentityCmd),
    /// Explain why a principal does or does not hold a permission.
    #[command(subcommand, name = "policy-troubleshoot")]
    PolicyTroubleshoot(TroubleshootCmd),
    /// Read and verify the audit log.
    #[command(subcommand)]
    Logging(LoggingCmd),
    /// The platform's ID-token signing keys.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Cloud Run: deploy services, manage them and their IAM policies.
    #[command(subcommand)]
    Run(Box<RunCmd>),
    /// Secret Manager: secrets, their versions and IAM policies.
    #[command(subcommand)]
    Secrets(SecretsCmd),
    /// VPC networks, subnets and Serverless VPC Access connectors.
    #[command(subcommand)]
    Compute(ComputeCmd),
    /// The built-in sample server (`us-docker.pkg.dev/cloudrun/container/hello`); the runtime starts it.
    #[command(hide = true, name = "sample-hello")]
    SampleHello,
    /// Run a command as a service account: a private metadata server serves it tokens for the account
    /// (Application Default Credentials, no key file). Needs `--impersonate-service-account`.
    Exec(ExecArgs),
    /// Find the classic Cloud Run security mistakes, on the live platform or in files exported from a project.
    #[command(subcommand)]
    Advisor(AdvisorCmd),
}

#[derive(Subcommand, Debug)]
pub enum AdvisorCmd {
    /// Scan the platform (or, with --offline, an export directory) and report findings as text, json or sarif
    /// (--format). Exits 1 when a finding is at or above --fail-on, 2 when the input cannot be read.
    Scan {
        /// A directory exported from a Google Cloud project (layout in the README).
        #[arg(long)]
        offline: Option<PathBuf>,
        /// critical | high | medium | low | info.
        #[arg(long, default_value = "high")]
        fail_on: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunCmd {
    /// Create or update a service and deploy a new revision.
    Deploy(Box<DeployArgs>),
    /// List, describe, update and delete services; their IAM policies, logs and a local proxy.
    #[command(subcommand)]
    Services(RunServicesCmd),
    /// List and describe the revisions of a service.
    #[command(subcommand)]
    Revisions(RunRevisionsCmd),
}

impl RunCmd {
    pub fn path(&self) -> &'static str {
        match self {
            RunCmd::Deploy(_) => "run.deploy",
            RunCmd::Services(c) => match c {
                RunServicesCmd::List { .. } => "run.services.list",
                RunServicesCmd::Describe { .. } => "run.services.describe",
                RunServicesCmd::Update(_) => "run.services.update",
                RunServicesCmd::Delete { .. } => "run.services.delete",
                RunServicesCmd::AddIamPolicyBinding { .. } => "run.services.add-iam-policy-binding",
                RunServicesCmd::RemoveIamPolicyBinding { .. } => "run.services.remove-iam-policy-binding",
                RunServicesCmd::GetIamPolicy { .. } => "run.services.get-iam-policy",
                RunServicesCmd::SetIamPolicy { .. } => "run.services.set-iam-policy",
                RunServicesCmd::Logs(_) => "run.services.logs.read",
                RunServicesCmd::Proxy { .. } => "run.services.proxy",
                RunServicesCmd::Replace { .. } => "run.services.replace",
            },
            RunCmd::Revisions(RunRevisionsCmd::List { .. }) => "run.revisions.list",
            RunCmd::Revisions(RunRevisionsCmd::Describe { .. }) => "run.revisions.describe",
        }
    }
}

/// The flags of `run deploy` and `run services update`, as gcloud's.
#[derive(Args, Debug, Default, PartialEq)]
pub struct DeployArgs {
    /// Service name.
    pub service: String,
    /// Region of the service (default: the `run/region` property, else the platform's region).
    #[arg(long)]
    pub region: Option<String>,
    /// Container image; `us-docker.pkg.dev/cloudrun/container/hello` is the built-in sample.
    #[arg(long)]
    pub image: Option<String>,
    /// Directory to run `--command` in (instead of an image).
    #[arg(long)]
    pub source: Option<PathBuf>,
    /// Entrypoint: `CMD[,ARG…]`.
    #[arg(long)]
    pub command: Option<String>,
    /// Arguments: `ARG[,ARG…]`.
    #[arg(long)]
    pub args: Option<String>,
    /// Let anyone invoke the service (binds `allUsers` to `roles/run.invoker`).
    #[arg(long, overrides_with = "no_allow_unauthenticated")]
    pub allow_unauthenticated: bool,
    /// Require authentication (the default for new services).
    #[arg(long)]
    pub no_allow_unauthenticated: bool,
    /// Runtime service account (default: the project's default compute service account).
    #[arg(long)]
    pub service_account: Option<String>,
    /// Replace all environment variables: `KEY=VALUE,…`.
    #[arg(long)]
    pub set_env_vars: Option<String>,
    /// Add or change environment variables: `KEY=VALUE,…`.
    #[arg(long)]
    pub update_env_vars: Option<String>,
    /// Remove environment variables: `KEY,…`.
    #[arg(long)]
    pub remove_env_vars: Option<String>,
    /// Remove every environment variable (not the secret ones).
    #[arg(long)]
    pub clear_env_vars: bool,
    /// Replace all secrets: `ENV=SECRET:VERSION` (an env var) or `/dir/file=SECRET:VERSION` (a file), comma-separated;
    /// SECRET may be `projects/P/secrets/S`; VERSION is `latest` or a number.
    #[arg(long)]
    pub set_secrets: Option<String>,
    /// Add or change secrets, in `--set-secrets` form.
    #[arg(long)]
    pub update_secrets: Option<String>,
    /// Remove secrets: `ENV,/dir/file,…`.
    #[arg(long)]
    pub remove_secrets: Option<String>,
    /// Remove every secret env var and secret file.
    #[arg(long)]
    pub clear_secrets: bool,
    /// The port the container listens on (`PORT`).
    #[arg(long)]
    pub port: Option<u32>,
    /// Memory limit of each instance, e.g. `512Mi`, `2Gi` (a cgroup limit in the sandbox).
    #[arg(long)]
    pub memory: Option<String>,
    /// CPU limit of each instance, e.g. `1`, `2`, `500m` (a cgroup limit in the sandbox).
    #[arg(long)]
    pub cpu: Option<String>,
    /// Instances kept running even without requests (default 0: scale to zero).
    #[arg(long)]
    pub min_instances: Option<u32>,
    /// Most instances the service scales out to.
    #[arg(long)]
    pub max_instances: Option<u32>,
    /// Requests per instance at once.
    #[arg(long)]
    pub concurrency: Option<u32>,
    /// Request timeout: seconds, or a duration like `5m`.
    #[arg(long)]
    pub timeout: Option<String>,
    /// all | internal | internal-and-cloud-load-balancing.
    #[arg(long)]
    pub ingress: Option<String>,
    /// Serverless VPC Access connector for egress: a name (in the service's region) or a full name.
    #[arg(long)]
    pub vpc_connector: Option<String>,
    /// Remove the VPC connector (and the egress setting).
    #[arg(long)]
    pub clear_vpc_connector: bool,
    /// private-ranges-only (default) | all-traffic; needs a connector or Direct VPC egress.
    #[arg(long)]
    pub vpc_egress: Option<String>,
    /// Direct VPC egress: the network.
    #[arg(long)]
    pub network: Option<String>,
    /// Direct VPC egress: the subnet (in the service's region).
    #[arg(long)]
    pub subnet: Option<String>,
    /// Direct VPC egress: network tags (comma-separated).
    #[arg(long)]
    pub network_tags: Option<String>,
    /// Remove Direct VPC egress.
    #[arg(long)]
    pub clear_network: bool,
    /// Add audiences that ID tokens for the service may carry besides its URL: `AUDIENCE,…`.
    #[arg(long)]
    pub add_custom_audiences: Option<String>,
    /// Remove custom audiences: `AUDIENCE,…`.
    #[arg(long)]
    pub remove_custom_audiences: Option<String>,
    /// Remove every custom audience (only the service URL is accepted then).
    #[arg(long)]
    pub clear_custom_audiences: bool,
    /// Check `run.routes.invoke` on every request (default).
    #[arg(long, overrides_with = "no_invoker_iam_check")]
    pub invoker_iam_check: bool,
    /// Skip the invoker IAM check: anyone who reaches the URL may call it.
    #[arg(long)]
    pub no_invoker_iam_check: bool,
    /// Replace all labels: `KEY=VALUE,…`.
    #[arg(long)]
    pub labels: Option<String>,
    /// A description of the service.
    #[arg(long)]
    pub description: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum RunServicesCmd {
    /// List the services of a region.
    List {
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
    /// Show a service (`--format=export` prints the Knative YAML `replace` takes).
    Describe {
        service: String,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
    /// Change a service's settings and deploy a new revision (the flags of `deploy`).
    Update(Box<DeployArgs>),
    /// Delete a service with its revisions.
    Delete {
        service: String,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
    /// Add a binding to the service's IAM policy, e.g. `--member=allUsers --role=roles/run.invoker`.
    AddIamPolicyBinding {
        service: String,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Remove a binding from the service's IAM policy.
    RemoveIamPolicyBinding {
        service: String,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Print the service's IAM policy.
    GetIamPolicy {
        service: String,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
    /// Replace the service's IAM policy with the one in POLICY_FILE (JSON or YAML); a stale etag is refused.
    SetIamPolicy {
        service: String,
        policy_file: PathBuf,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
    /// Read a service's logs.
    #[command(subcommand)]
    Logs(LogsCmd),
    /// Create or replace a service from a Knative `serving.knative.dev/v1` YAML (as `describe --format=export` prints).
    Replace {
        file: PathBuf,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
    /// Serve the private service on localhost, adding the active account's ID token to every request.
    Proxy {
        service: String,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
        /// Local port to listen on.
        #[arg(long, default_value_t = 8080)]
        port: u16,
    },
}

#[derive(Subcommand, Debug)]
pub enum LogsCmd {
    /// Instance output and one line per request.
    Read {
        service: String,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum RunRevisionsCmd {
    /// List the revisions of a service, or of every service in the region.
    List {
        /// The service whose revisions to list; without it, every service's in the region (as gcloud).
        #[arg(long)]
        service: Option<String>,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
    /// Show a revision.
    Describe {
        revision: String,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
}

/// `--location` of a regional secret (`projects/P/locations/L/secrets/S`); global secrets have none.
#[derive(Args, Debug, Clone, Default)]
pub struct SecretLocation {
    /// Location of a regional secret.
    #[arg(long)]
    pub location: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum SecretsCmd {
    /// Create a secret; with `--data-file`, also its first version.
    Create {
        secret: String,
        /// File with the first version's payload, or `-` for standard input.
        #[arg(long)]
        data_file: Option<PathBuf>,
        /// `automatic` (the only policy Gatehouse supports).
        #[arg(long)]
        replication_policy: Option<String>,
        /// Replica locations of a user-managed policy (not supported).
        #[arg(long)]
        locations: Option<String>,
        /// Labels: `KEY=VALUE,…`.
        #[arg(long)]
        labels: Option<String>,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// List the project's secrets (or a location's, with `--location`).
    List {
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Show a secret's metadata (never its payload).
    Describe {
        secret: String,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Delete a secret with all its versions and its IAM policy.
    Delete {
        secret: String,
        /// Delete only if the secret's etag is still this one.
        #[arg(long)]
        etag: Option<String>,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Change a secret's labels.
    Update {
        secret: String,
        /// Add or change labels: `KEY=VALUE,…`.
        #[arg(long)]
        update_labels: Option<String>,
        /// Remove labels: `KEY,…`.
        #[arg(long)]
        remove_labels: Option<String>,
        /// Remove every label.
        #[arg(long)]
        clear_labels: bool,
        /// Update only if the secret's etag is still this one.
        #[arg(long)]
        etag: Option<String>,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Add, access, list and change the state of a secret's versions.
    #[command(subcommand)]
    Versions(SecretVersionsCmd),
    /// Add a binding to the secret's IAM policy, e.g. `--role=roles/secretmanager.secretAccessor`.
    AddIamPolicyBinding {
        secret: String,
        #[command(flatten)]
        binding: BindingArgs,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Remove a binding from the secret's IAM policy.
    RemoveIamPolicyBinding {
        secret: String,
        #[command(flatten)]
        binding: BindingArgs,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Print the secret's IAM policy.
    GetIamPolicy {
        secret: String,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Replace the secret's IAM policy with the one in POLICY_FILE (JSON or YAML).
    SetIamPolicy {
        secret: String,
        policy_file: PathBuf,
        #[command(flatten)]
        at: SecretLocation,
    },
}

/// A version: a number, `latest` or an alias with `--secret`, or a full `projects/P/secrets/S/versions/V` name.
#[derive(Args, Debug, Clone)]
pub struct VersionArg {
    pub version: String,
    /// The secret of VERSION (unless VERSION is a full name).
    #[arg(long)]
    pub secret: Option<String>,
    #[command(flatten)]
    pub at: SecretLocation,
}

#[derive(Subcommand, Debug)]
pub enum SecretVersionsCmd {
    /// Add a version from `--data-file` (`-` reads standard input).
    Add {
        secret: String,
        /// File with the version's payload (1 byte to 64 KiB), or `-` for standard input.
        #[arg(long)]
        data_file: PathBuf,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Print a version's payload, exactly its bytes.
    Access {
        #[command(flatten)]
        version: VersionArg,
        /// Write the payload to this file instead of standard output.
        #[arg(long)]
        out_file: Option<PathBuf>,
    },
    /// List a secret's versions and their states.
    List {
        secret: String,
        #[command(flatten)]
        at: SecretLocation,
    },
    /// Show a version's metadata (never its payload).
    Describe {
        #[command(flatten)]
        version: VersionArg,
    },
    /// Disable a version: it cannot be accessed until enabled again.
    Disable {
        #[command(flatten)]
        version: VersionArg,
        /// Change the version only if its etag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Enable a disabled version.
    Enable {
        #[command(flatten)]
        version: VersionArg,
        /// Change the version only if its etag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
    /// Destroy a version's payload for good (no prompt; `--quiet` is accepted).
    Destroy {
        #[command(flatten)]
        version: VersionArg,
        /// Change the version only if its etag is still this one.
        #[arg(long)]
        etag: Option<String>,
    },
}

impl SecretsCmd {
    pub fn path(&self) -> &'static str {
        match self {
            SecretsCmd::Create { .. } => "secrets.create",
            SecretsCmd::List { .. } => "secrets.list",
            SecretsCmd::Describe { .. } => "secrets.describe",
            SecretsCmd::Delete { .. } => "secrets.delete",
            SecretsCmd::Update { .. } => "secrets.update",
            SecretsCmd::AddIamPolicyBinding { .. } => "secrets.add-iam-policy-binding",
            SecretsCmd::RemoveIamPolicyBinding { .. } => "secrets.remove-iam-policy-binding",
            SecretsCmd::GetIamPolicy { .. } => "secrets.get-iam-policy",
            SecretsCmd::SetIamPolicy { .. } => "secrets.set-iam-policy",
            SecretsCmd::Versions(v) => match v {
                SecretVersionsCmd::Add { .. } => "secrets.versions.add",
                SecretVersionsCmd::Access { .. } => "secrets.versions.access",
                SecretVersionsCmd::List { .. } => "secrets.versions.list",
                SecretVersionsCmd::Describe { .. } => "secrets.versions.describe",
                SecretVersionsCmd::Disable { .. } => "secrets.versions.disable",
                SecretVersionsCmd::Enable { .. } => "secrets.versions.enable",
                SecretVersionsCmd::Destroy { .. } => "secrets.versions.destroy",
            },
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a new signing key now; the old one stays published until its tokens expire.
    Rotate,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The command and its arguments, after `--`.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UpArgs {
    /// Region of the project (first start only).
    #[arg(long)]
    pub region: Option<String>,
    /// First port: the API listens on it and the gateway on the next one. 0 picks free ports.
    #[arg(long, default_value_t = 18090)]
    pub port_base: u16,
    /// Address to listen on; loopback by default.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Run instances as plain processes even where the sandbox is available (as without root: ingress, egress and
    /// --memory/--cpu are then not enforced, and `up` says so). Also GATEHOUSE_NO_SANDBOX=1.
    #[arg(long)]
    pub no_sandbox: bool,
    /// `iss` of the ID tokens the platform mints.
    #[arg(long, default_value = "https://accounts.google.com")]
    pub issuer: String,
    /// How often the signing key rotates, e.g. `24h`, `90m`, `3600s`.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub key_rotation: std::time::Duration,
    /// How long a new instance has to listen on `PORT` before it counts as failed.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub instance_startup_timeout: std::time::Duration,
    /// Idle time after which an instance above `--min-instances` stops (scale to zero).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub instance_idle_timeout: std::time::Duration,
}

/// Parses `90s`, `15m`, `24h`, `7d`.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let err = || format!("invalid duration `{s}`; use a number with s, m, h or d, e.g. `24h`");
    let split = s.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
    let (n, unit) = s.split_at(split);
    let n: u64 = n.parse().map_err(|_| err())?;
    let secs = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        "d" => n.saturating_mul(86_400),
        _ => return Err(err()),
    };
    if secs == 0 {
        return Err(format!("invalid duration `{s}`: it must be longer than zero"));
    }
    Ok(std::time::Duration::from_secs(secs))
}

#[derive(Subcommand, Debug)]
pub enum AuthCmd {
    /// Create (if new) and activate a local user account. New accounts hold no roles.
    Login { email: String },
    /// List credentialed accounts.
    List,
    /// Revoke credentials of accounts (the active one by default).
    Revoke {
        accounts: Vec<String>,
        /// Revoke every credentialed account.
        #[arg(long)]
        all: bool,
    },
    /// Print an access token for the active (or given) account.
    PrintAccessToken {
        /// The account (default: the active one, or `--account`).
        #[arg(id = "ACCOUNT")]
        account: Option<String>,
    },
    /// Print an ID token for the active account, or for `--impersonate-service-account`.
    PrintIdentityToken {
        /// The account (default: the active one, or `--account`).
        #[arg(id = "ACCOUNT")]
        account: Option<String>,
        /// Audience (`aud`) of the token; for service accounts only, as gcloud.
        #[arg(long)]
        audiences: Option<String>,
        /// Include the `email` claim (impersonated service accounts).
        #[arg(long)]
        include_email: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ConfigCmd {
    /// Set a property: core/account, core/project, run/region, compute/region or compute/zone (`account`, `project`
    /// and `region` also work alone; `region` is run/region).
    Set { property: String, value: String },
    /// Print the value of a property.
    GetValue { property: String },
    /// Remove a property.
    Unset { property: String },
    /// List properties.
    List,
}

/// `--member`/`--role`/`--condition` of the add/remove binding commands.
#[derive(Args, Debug, Clone)]
pub struct BindingArgs {
    /// Member to grant or revoke: user:EMAIL, serviceAccount:EMAIL, group:EMAIL, domain:DOMAIN, allUsers, allAuthenticatedUsers.
    #[arg(long)]
    pub member: String,
    /// Role, e.g. roles/run.invoker or projects/PROJECT/roles/ID.
    #[arg(long)]
    pub role: String,
    /// Condition as `expression=EXPR,title=TITLE[,description=DESC]`, or `None`.
    #[arg(long)]
    pub condition: Option<String>,
    /// File (YAML or JSON) with expression, title and description of the condition.
    #[arg(long)]
    pub condition_from_file: Option<PathBuf>,
    /// Remove the member from every binding of the role, whatever its condition (remove only).
    #[arg(long)]
    pub all: bool,
}

#[derive(Subcommand, Debug)]
pub enum ProjectsCmd {
    /// Add a binding to the project's policy.
    AddIamPolicyBinding {
        project_id: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Remove a binding from the project's policy.
    RemoveIamPolicyBinding {
        project_id: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Print the project's policy.
    GetIamPolicy { project_id: String },
    /// Replace the project's policy with the one in FILE (JSON or YAML); a stale etag is refused.
    SetIamPolicy { project_id: String, policy_file: PathBuf },
    /// Show the project.
    Describe { project_id: String },
}

#[derive(Subcommand, Debug)]
pub enum IamCmd {
    /// Create and manage service accounts, their keys and IAM policies.
    #[command(subcommand)]
    ServiceAccounts(ServiceAccountsCmd),
    /// Show predefined roles; create and manage custom roles.
    #[command(subcommand)]
    Roles(RolesCmd),
}

#[derive(Subcommand, Debug)]
pub enum ServiceAccountsCmd {
    /// Create a service account NAME@PROJECT.iam.gserviceaccount.com.
    Create {
        name: String,
        /// A human-readable name for the account.
        #[arg(long)]
        display_name: Option<String>,
        /// A description of the account.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the project's service accounts.
    List,
    /// Show a service account.
    Describe { service_account: String },
    /// Change a service account's display name or description.
    Update {
        service_account: String,
        /// A human-readable name for the account.
        #[arg(long)]
        display_name: Option<String>,
        /// A description of the account.
        #[arg(long)]
        description: Option<String>,
    },
    /// Delete a service account.
    Delete { service_account: String },
    /// Restore a deleted service account by its unique id (`uniqueId`, as `deleted:serviceAccount:…?uid=` shows it):
    /// the same identity, with its roles.
    Undelete { account_id: String },
    /// Disable a service account: it can no longer authenticate or get tokens.
    Disable { service_account: String },
    /// Enable a disabled service account.
    Enable { service_account: String },
    /// Add a binding to the account's IAM policy (who may act as it or mint its tokens).
    AddIamPolicyBinding {
        service_account: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Remove a binding from the account's IAM policy.
    RemoveIamPolicyBinding {
        service_account: String,
        #[command(flatten)]
        binding: BindingArgs,
    },
    /// Print the account's IAM policy.
    GetIamPolicy { service_account: String },
    /// Replace the account's IAM policy with the one in POLICY_FILE (JSON or YAML).
    SetIamPolicy { service_account: String, policy_file: PathBuf },
    /// User-managed keys (creation is refused by `constraints/iam.disableServiceAccountKeyCreation`).
    #[command(subcommand)]
    Keys(SaKeysCmd),
}

#[derive(Subcommand, Debug)]
pub enum SaKeysCmd {
    /// Create a key and write it to OUTPUT_FILE (refused while the key-creation constraint is enforced).
    Create {
        output_file: PathBuf,
        /// The service account's email.
        #[arg(long)]
        iam_account: String,
    },
    /// List a service account's keys.
    List {
        /// The service account's email.
        #[arg(long)]
        iam_account: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum RolesCmd {
    /// Create a custom role in a project.
    Create {
        role_id: String,
        /// Permissions of the role: `PERMISSION,…`.
        #[arg(long)]
        permissions: Option<String>,
        /// The role's title.
        #[arg(long)]
        title: Option<String>,
        /// A description of the role.
        #[arg(long)]
        description: Option<String>,
        /// Launch stage: ALPHA, BETA, GA, DEPRECATED, DISABLED or EAP.
        #[arg(long)]
        stage: Option<String>,
    },
    /// Show a predefined role (roles/NAME) or a custom one (ID with --project).
    Describe { role: String },
    /// List predefined roles, or custom roles with --project.
    List {
        /// Include deleted custom roles.
        #[arg(long)]
        show_deleted: bool,
    },
    /// Delete a custom role (it can be listed with `--show-deleted`).
    Delete { role_id: String },
    /// Undelete a deleted custom role: its bindings grant again.
    Undelete { role_id: String },
    /// Change a custom role's permissions, title, description or stage.
    Update {
        role_id: String,
        /// Permissions to add: `PERMISSION,…`.
        #[arg(long)]
        add_permissions: Option<String>,
        /// Permissions to remove: `PERMISSION,…`.
        #[arg(long)]
        remove_permissions: Option<String>,
        /// Replace every permission of the role: `PERMISSION,…`.
        #[arg(long)]
        permissions: Option<String>,
        /// The role's title.
        #[arg(long)]
        title: Option<String>,
        /// A description of the role.
        #[arg(long)]
        description: Option<String>,
        /// Launch stage: ALPHA, BETA, GA, DEPRECATED, DISABLED or EAP.
        #[arg(long)]
        stage: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum IdentityCmd {
    /// Create groups and manage their members.
    #[command(subcommand)]
    Groups(GroupsCmd),
}

#[derive(Subcommand, Debug)]
pub enum GroupsCmd {
    /// Create a group.
    Create {
        email: String,
        /// A human-readable name for the group.
        #[arg(long)]
        display_name: Option<String>,
        /// A description of the group.
        #[arg(long)]
        description: Option<String>,
        /// Accepted for compatibility with gcloud.
        #[arg(long)]
        organization: Option<String>,
        /// Accepted for compatibility with gcloud (`with-initial-owner` or `empty`).
        #[arg(long)]
        with_initial_owner: Option<String>,
    },
    /// Add and list a group's members.
    #[command(subcommand)]
    Memberships(MembershipsCmd),
}

#[derive(Subcommand, Debug)]
pub enum MembershipsCmd {
    /// Add a member (a user, a service account or another group) to a group.
    Add {
        /// The group's email.
        #[arg(long)]
        group_email: String,
        /// The member's email.
        #[arg(long)]
        member_email: String,
        /// Membership roles: `MEMBER`, `MANAGER`, `OWNER` (comma-separated; default MEMBER).
        #[arg(long)]
        roles: Option<String>,
    },
    /// List a group's members.
    List {
        /// The group's email.
        #[arg(long)]
        group_email: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TroubleshootCmd {
    /// Explain access of --principal-email to FULL_RESOURCE_NAME for --permission.
    Iam {
        resource: String,
        /// The principal: a user's, service account's or group's email.
        #[arg(long)]
        principal_email: String,
        /// The permission to check, e.g. `run.routes.invoke`.
        #[arg(long)]
        permission: String,
    },
    /// Walk one hypothetical call of SERVICE by --principal-email through ingress, token audience and invoker IAM,
    /// and print each verdict and the status code the gateway would answer.
    Invoke {
        service: String,
        /// The caller; `allUsers` for a call without a token.
        #[arg(long)]
        principal_email: String,
        /// internet | load-balancer | vpc.
        #[arg(long, default_value = "internet")]
        source: String,
        /// The ID token's audience (default: the service URL).
        #[arg(long)]
        audience: Option<String>,
        /// Region of the service (default: the `run/region` property, else the platform's region).
        #[arg(long)]
        region: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum LoggingCmd {
    /// Print audit log entries matching FILTER, newest first.
    Read {
        filter: Option<String>,
        /// asc or desc.
        #[arg(long, default_value = "desc")]
        order: String,
        /// Only entries not older than this (`30m`, `2h`, `1d`, `1w`), as gcloud: with --order=desc and a FILTER
        /// that names no `timestamp`.
        #[arg(long, default_value = "1d")]
        freshness: String,
    },
    /// Check the audit log's hash chain; name the first entry that does not match.
    Verify,
}

impl Command {
    /// The command path for error prefixes, e.g. `projects.add-iam-policy-binding`.
    pub fn path(&self) -> &'static str {
        match self {
            Command::Up(_) => "up",
            Command::Auth(c) => match c {
                AuthCmd::Login { .. } => "auth.login",
                AuthCmd::List => "auth.list",
                AuthCmd::Revoke { .. } => "auth.revoke",
                AuthCmd::PrintAccessToken { .. } => "auth.print-access-token",
                AuthCmd::PrintIdentityToken { .. } => "auth.print-identity-token",
            },
            Command::Config(c) => match c {
                ConfigCmd::Set { .. } => "config.set",
                ConfigCmd::GetValue { .. } => "config.get-value",
                ConfigCmd::Unset { .. } => "config.unset",
                ConfigCmd::List => "config.list",
            },
            Command::Projects(c) => match c {
                ProjectsCmd::AddIamPolicyBinding { .. } => "projects.add-iam-policy-binding",
                ProjectsCmd::RemoveIamPolicyBinding { .. } => "projects.remove-iam-policy-binding",
                ProjectsCmd::GetIamPolicy { .. } => "projects.get-iam-policy",
                ProjectsCmd::SetIamPolicy { .. } => "projects.set-iam-policy",
                ProjectsCmd::Describe { .. } => "projects.describe",
            },
            Command::Iam(IamCmd::ServiceAccounts(c)) => match c {
                ServiceAccountsCmd::Create { .. } => "iam.service-accounts.create",
                ServiceAccountsCmd::List => "iam.service-accounts.list",
                ServiceAccountsCmd::Describe { .. } => "iam.service-accounts.describe",
                ServiceAccountsCmd::Update { .. } => "iam.service-accounts.update",
                ServiceAccountsCmd::Delete { .. } => "iam.service-accounts.delete",
                ServiceAccountsCmd::Undelete { .. } => "iam.service-accounts.undelete",
                ServiceAccountsCmd::Disable { .. } => "iam.service-accounts.disable",
                ServiceAccountsCmd::Enable { .. } => "iam.service-accounts.enable",
                ServiceAccountsCmd::AddIamPolicyBinding { .. } => "iam.service-accounts.add-iam-policy-binding",
                ServiceAccountsCmd::RemoveIamPolicyBinding { .. } => "iam.service-accounts.remove-iam-policy-binding",
                ServiceAccountsCmd::GetIamPolicy { .. } => "iam.service-accounts.get-iam-policy",
                ServiceAccountsCmd::SetIamPolicy { .. } => "iam.service-accounts.set-iam-policy",
                ServiceAccountsCmd::Keys(SaKeysCmd::Create { .. }) => "iam.service-accounts.keys.create",
                ServiceAccountsCmd::Keys(SaKeysCmd::List { .. }) => "iam.service-accounts.keys.list",
            },
            Command::Iam(IamCmd::Roles(c)) => match c {
                RolesCmd::Create { .. } => "iam.roles.create",
                RolesCmd::Describe { .. } => "iam.roles.describe",
                RolesCmd::List { .. } => "iam.roles.list",
                RolesCmd::Delete { .. } => "iam.roles.delete",
                RolesCmd::Undelete { .. } => "iam.roles.undelete",
                RolesCmd::Update { .. } => "iam.roles.update",
            },
            Command::Identity(IdentityCmd::Groups(c)) => match c {
                GroupsCmd::Create { .. } => "identity.groups.create",
                GroupsCmd::Memberships(MembershipsCmd::Add { .. }) => "identity.groups.memberships.add",
                GroupsCmd::Memberships(MembershipsCmd::List { .. }) => "identity.groups.memberships.list",
            },
            Command::PolicyTroubleshoot(TroubleshootCmd::Iam { .. }) => "policy-troubleshoot.iam",
            Command::PolicyTroubleshoot(TroubleshootCmd::Invoke { .. }) => "policy-troubleshoot.invoke",
            Command::Logging(LoggingCmd::Read { .. }) => "logging.read",
            Command::Logging(LoggingCmd::Verify) => "logging.verify",
            Command::Keys(KeysCmd::Rotate) => "keys.rotate",
            Command::Exec(_) => "exec",
            Command::Advisor(AdvisorCmd::Scan { .. }) => "advisor.scan",
            Command::SampleHello => "sample-hello",
            Command::Run(c) => c.path(),
            Command::Secrets(c) => c.path(),
            Command::Compute(c) => c.path(),
        }
    }
}

/// Unicode dashes that web pages and word processors put where `--` was typed.
const DASHES: [char; 6] = ['\u{2010}', '\u{2011}', '\u{2012}', '\u{2013}', '\u{2014}', '\u{2212}'];

/// Rejects flags typed with a Unicode dash (`—ingress`, pasted from a web page) and shows the ASCII spelling.
/// A command line clap refused, told as gcloud tells it: `ERROR: (gatehouse.run.services.list) unrecognized
/// arguments: --limt (did you mean '--limit'?)`, then where the flags are listed.
pub fn usage_error(program: &str, args: &[String], e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    use clap::CommandFactory as _;
    // The command path: the words that name subcommands, as far as they go.
    let (mut at, mut path) = (Cli::command(), vec![program.to_owned()]);
    for word in words(args).map(|i| &args[i]) {
        let Some(sub) = at.find_subcommand(word).cloned() else { break };
        path.push(sub.get_name().to_owned());
        at = sub;
    }
    let context = |kind| match e.get(kind) {
        Some(ContextValue::String(s)) => vec![s.clone()],
        Some(ContextValue::Strings(v)) => v.clone(),
        _ => Vec::new(),
    };
    let suggestion = context(ContextKind::SuggestedArg)
        .into_iter()
        .chain(context(ContextKind::SuggestedSubcommand))
        .next()
        .map(|s| format!(" (did you mean '{s}'?)"))
        .unwrap_or_default();
    let message = match e.kind() {
        ErrorKind::UnknownArgument => {
            format!("unrecognized arguments: {}{suggestion}", context(ContextKind::InvalidArg).join(" "))
        }
        ErrorKind::InvalidSubcommand => {
            format!("Invalid choice: '{}'.{suggestion}", context(ContextKind::InvalidSubcommand).join(" "))
        }
        ErrorKind::MissingRequiredArgument => context(ContextKind::InvalidArg)
            .iter()
            .map(|a| a.split_whitespace().next().unwrap_or(a).trim_matches(['<', '>']))
            .map(|a| format!("argument {a}: Must be specified."))
            .collect::<Vec<_>>()
            .join("\n"),
        ErrorKind::MissingSubcommand | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let commands: Vec<String> = at
                .get_subcommands()
                .filter(|c| !c.is_hide_set())
                .map(|c| {
                    format!("      {:<26} {}", c.get_name(), c.get_about().map(|a| a.to_string()).unwrap_or_default())
                })
                .collect();
            format!(
                "Command name argument expected.\n\nAvailable commands for {}:\n\n{}",
                path.join(" "),
                commands.join("\n")
            )
        }
        // clap's own words for the rest (a bad value, a missing subcommand), without its `error: ` and usage.
        _ => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or_default();
            first.strip_prefix("error: ").unwrap_or(first).to_owned()
        }
    };
    let command = path.join(" ");
    format!("ERROR: ({}) {message}\nRun `{command} --help` for its commands and flags.", path.join("."))
}

/// Where the first word of a command line is, past the global flags before it (`--project p`, `--format=json`).
pub fn first_word(args: &[String]) -> Option<usize> {
    words(args).next()
}

/// Where the words of a command line are (command names, then positional arguments), past the global flags and
/// their values.
fn words(args: &[String]) -> impl Iterator<Item = usize> + '_ {
    use clap::CommandFactory as _;
    let cli = Cli::command();
    let mut i = 0;
    std::iter::from_fn(move || {
        while let Some(arg) = args.get(i) {
            let Some(flag) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
                i += 1;
                return Some(i - 1);
            };
            // A flag that takes a value and was not given one with `=` takes the next argument.
            let takes_value = cli
                .get_arguments()
                .find(|a| a.get_long() == Some(flag) || a.get_short().is_some_and(|s| flag == s.to_string()))
                .is_some_and(|a| a.get_action().takes_values());
            i += if takes_value && !flag.contains('=') { 2 } else { 1 };
        }
        None
    })
}

pub fn check_dashes(args: &[String]) -> Result<(), String> {
    for arg in args {
        let trimmed = arg.trim_start_matches(|c| DASHES.contains(&c) || c == '-');
        let lead = &arg[..arg.len() - trimmed.len()];
        if lead.chars().any(|c| DASHES.contains(&c)) && !trimmed.is_empty() {
            let ascii = if trimmed.chars().count() == 1 && lead.chars().count() == 1 {
                format!("-{trimmed}")
            } else {
                format!("--{trimmed}")
            };
            return Err(format!(
                "argument `{arg}` starts with a Unicode dash, not ASCII hyphens (it was probably pasted from a web page); type `{ascii}`"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_dashes_are_caught_with_the_ascii_spelling() {
        let err = check_dashes(&["run".into(), "\u{2014}ingress=internal".into()]).unwrap_err();
        assert!(err.contains("`--ingress=internal`"), "{err}");
        let err = check_dashes(&["\u{2013}\u{2013}project".into()]).unwrap_err();
        assert!(err.contains("`--project`"), "{err}");
        assert!(check_dashes(&["--project=x".into(), "a—b".into(), "—".into()]).is_ok());
    }

    /// Every command and every flag `--help` shows says what it is: the walk finds a subcommand without an about
    /// line or a visible flag without help text, wherever it is added.
    #[test]
    fn every_command_and_flag_has_help() {
        fn walk(cmd: &clap::Command, path: &str, gaps: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.is_positional() || arg.is_hide_set() {
                    continue;
                }
                if arg.get_help().is_none_or(|h| h.to_string().trim().is_empty()) {
                    gaps.push(format!("`{path} --{}` has no help", arg.get_long().unwrap_or(arg.get_id().as_str())));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let sub_path = format!("{path} {}", sub.get_name());
                if sub.get_about().is_none_or(|a| a.to_string().trim().is_empty()) {
                    gaps.push(format!("`{sub_path}` has no description"));
                }
                walk(sub, &sub_path, gaps);
            }
        }
        use clap::CommandFactory;
        let mut cli = Cli::command();
        cli.build();
        let mut gaps = Vec::new();
        walk(&cli, "gatehouse", &mut gaps);
        assert!(gaps.is_empty(), "{} gaps in --help:\n{}", gaps.len(), gaps.join("\n"));
    }

    #[test]
    fn both_flag_spellings_parse() {
        for argv in [
            vec!["gatehouse", "projects", "add-iam-policy-binding", "p", "--member=user:a@b.co", "--role=roles/viewer"],
            vec![
                "gatehouse",
                "projects",
                "add-iam-policy-binding",
                "p",
                "--member",
                "user:a@b.co",
                "--role",
                "roles/viewer",
            ],
        ] {
            let cli = Cli::try_parse_from(argv).unwrap();
            match cli.command {
                Command::Projects(ProjectsCmd::AddIamPolicyBinding { binding, .. }) => {
                    assert_eq!(binding.member, "user:a@b.co");
                    assert_eq!(binding.role, "roles/viewer");
                }
                other => panic!("parsed as {other:?}"),
            }
        }
    }
}

#[derive(Subcommand, Debug)]
pub enum ComputeCmd {
    /// VPC networks, their subnets and Serverless VPC Access connectors.
    #[command(subcommand)]
    Networks(NetworksCmd),
    /// VMs: private hosts in a VPC subnet that run a startup script.
    #[command(subcommand)]
    Instances(InstancesCmd),
}

#[derive(Subcommand, Debug)]
pub enum InstancesCmd {
    /// Create a VM in a VPC subnet that runs its startup script (a private host, e.g. a database).
    Create {
        name: String,
        /// Zone of the instance, e.g. `us-central1-a` (default: the `compute/zone` property).
        #[arg(long)]
        zone: Option<String>,
        /// Subnet of the instance's network interface, in the zone's region.
        #[arg(long)]
        subnet: Option<String>,
        /// Network of the subnet (checked against it when given).
        #[arg(long)]
        network: Option<String>,
        /// The instance's address in the subnet (default: the next free one).
        #[arg(long)]
        private_network_ip: Option<String>,
        /// `startup-script=COMMAND` (other keys are kept as metadata).
        #[arg(long)]
        metadata: Option<String>,
        /// Accepted for compatibility (the host has no external address anyway).
        #[arg(long)]
        no_address: bool,
        /// Machine type, recorded on the instance (default `e2-small`): e2-micro, e2-small, e2-medium,
        /// e2-standard-2/4/8, n1-standard-1/2/4, n2-standard-2/4.
        #[arg(long)]
        machine_type: Option<String>,
        /// The account the instance's metadata server gives tokens for (default: the project's default compute
        /// service account); needs `iam.serviceAccounts.actAs` on it.
        #[arg(long)]
        service_account: Option<String>,
    },
    /// List instances in every zone of the project, or only in `--zones`.
    List {
        /// Only these zones (comma-separated), e.g. `us-central1-a,us-central1-b`.
        #[arg(long)]
        zones: Option<String>,
    },
    /// Show an instance.
    Describe {
        name: String,
        /// Zone of the instance, e.g. `us-central1-a` (default: the `compute/zone` property).
        #[arg(long)]
        zone: Option<String>,
    },
    /// What the instance's startup script printed.
    GetSerialPortOutput {
        name: String,
        /// Zone of the instance, e.g. `us-central1-a` (default: the `compute/zone` property).
        #[arg(long)]
        zone: Option<String>,
    },
    /// Delete instances (their hosts stop).
    Delete {
        names: Vec<String>,
        /// Zone of the instance, e.g. `us-central1-a` (default: the `compute/zone` property).
        #[arg(long)]
        zone: Option<String>,
        /// Accepted for compatibility: Gatehouse does not prompt.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum NetworksCmd {
    /// Create a VPC network: auto subnet mode (a subnet in every region; the default) or custom.
    Create {
        name: String,
        /// `auto` (the default: a subnet in every region, named as the network) or `custom` (subnets are created
        /// with `compute networks subnets create`).
        #[arg(long)]
        subnet_mode: Option<String>,
        /// `regional` (the only routing mode modelled).
        #[arg(long)]
        bgp_routing_mode: Option<String>,
        /// Maximum transmission unit in bytes (1300 to 8896; default 1460).
        #[arg(long)]
        mtu: Option<u32>,
        /// A description of the network.
        #[arg(long)]
        description: Option<String>,
    },
    /// List the project's VPC networks.
    List,
    /// Show a VPC network.
    Describe { name: String },
    /// Delete VPC networks (an auto-mode network's subnets go with it).
    Delete {
        names: Vec<String>,
        /// Accepted for compatibility: Gatehouse does not prompt.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
    /// Create, list and delete the subnets of VPC networks.
    #[command(subcommand)]
    Subnets(SubnetsCmd),
    /// Serverless VPC Access: connectors that give Cloud Run services egress into a VPC network.
    #[command(subcommand, name = "vpc-access")]
    VpcAccess(VpcAccessCmd),
}

#[derive(Subcommand, Debug)]
pub enum SubnetsCmd {
    /// Create a subnet of a VPC network in one region.
    Create {
        name: String,
        /// The VPC network the subnet belongs to.
        #[arg(long)]
        network: String,
        /// The subnet's IPv4 range, e.g. 10.0.0.0/24 (RFC 1918 or RFC 6598).
        #[arg(long)]
        range: String,
        /// Region of the subnet (default: the `compute/region` property, else the `run/region` one).
        #[arg(long)]
        region: Option<String>,
        /// A description of the subnet.
        #[arg(long)]
        description: Option<String>,
        /// Let VMs without external addresses reach Google APIs (Private Google Access).
        #[arg(long)]
        enable_private_ip_google_access: bool,
    },
    /// List the subnets of every network and region.
    List {
        /// Only these networks (comma-separated names).
        #[arg(long)]
        network: Option<String>,
        /// Only these regions (comma-separated).
        #[arg(long)]
        regions: Option<String>,
    },
    /// Show a subnet.
    Describe {
        name: String,
        /// Region of the subnet (default: the `compute/region` property, else the `run/region` one).
        #[arg(long)]
        region: Option<String>,
    },
    /// Delete subnets no connector or instance uses.
    Delete {
        names: Vec<String>,
        /// Region of the subnets (default: the `compute/region` property, else the `run/region` one).
        #[arg(long)]
        region: Option<String>,
        /// Accepted for compatibility: Gatehouse does not prompt.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum VpcAccessCmd {
    /// Create, list and delete Serverless VPC Access connectors.
    #[command(subcommand)]
    Connectors(ConnectorsCmd),
}

#[derive(Subcommand, Debug)]
pub enum ConnectorsCmd {
    /// Create a Serverless VPC Access connector: with `--network` and a /28 `--range`, or on a /28 `--subnet`.
    Create {
        name: String,
        /// Region of the connector (default: the `compute/region` property, else the `run/region` one).
        #[arg(long)]
        region: Option<String>,
        /// The VPC network of the connector (with `--range`; default `default`).
        #[arg(long)]
        network: Option<String>,
        /// An unused /28 range of the network for the connector, e.g. `10.8.0.0/28`.
        #[arg(long)]
        range: Option<String>,
        /// An existing /28 subnet in the connector's region to use instead of `--network` and `--range`.
        #[arg(long)]
        subnet: Option<String>,
        /// The project of `--subnet` (default: the connector's project).
        #[arg(long)]
        subnet_project: Option<String>,
        /// Fewest connector instances (2 to 9; default 2).
        #[arg(long)]
        min_instances: Option<u32>,
        /// Most connector instances (3 to 10; default 10).
        #[arg(long)]
        max_instances: Option<u32>,
        /// Machine type of the connector instances: `f1-micro`, `e2-micro` or `e2-standard-4` (default `e2-micro`).
        #[arg(long)]
        machine_type: Option<String>,
    },
    /// List the connectors of a region.
    List {
        /// Region of the connectors (default: the `compute/region` property, else the `run/region` one).
        #[arg(long)]
        region: Option<String>,
    },
    /// Show a connector.
    Describe {
        name: String,
        /// Region of the connector (default: the `compute/region` property, else the `run/region` one).
        #[arg(long)]
        region: Option<String>,
    },
    /// Delete a connector.
    Delete {
        name: String,
        /// Region of the connector (default: the `compute/region` property, else the `run/region` one).
        #[arg(long)]
        region: Option<String>,
        /// Accepted for compatibility: Gatehouse does not prompt.
        #[arg(long, short = 'q')]
        quiet: bool,
    },
}

impl ComputeCmd {
    pub fn path(&self) -> &'static str {
        let n = match self {
            ComputeCmd::Networks(n) => n,
            ComputeCmd::Instances(i) => {
                return match i {
                    InstancesCmd::Create { .. } => "compute.instances.create",
                    InstancesCmd::List { .. } => "compute.instances.list",
                    InstancesCmd::Describe { .. } => "compute.instances.describe",
                    InstancesCmd::GetSerialPortOutput { .. } => "compute.instances.get-serial-port-output",
                    InstancesCmd::Delete { .. } => "compute.instances.delete",
                }
            }
        };
        match n {
            NetworksCmd::Create { .. } => "compute.networks.create",
            NetworksCmd::List => "compute.networks.list",
            NetworksCmd::Describe { .. } => "compute.networks.describe",
            NetworksCmd::Delete { .. } => "compute.networks.delete",
            NetworksCmd::Subnets(c) => match c {
                SubnetsCmd::Create { .. } => "compute.networks.subnets.create",
                SubnetsCmd::List { .. } => "compute.networks.subnets.list",
                SubnetsCmd::Describe { .. } => "compute.networks.subnets.describe",
                SubnetsCmd::Delete { .. } => "compute.networks.subnets.delete",
            },
            NetworksCmd::VpcAccess(VpcAccessCmd::Connectors(c)) => match c {
                ConnectorsCmd::Create { .. } => "compute.networks.vpc-access.connectors.create",
                ConnectorsCmd::List { .. } => "compute.networks.vpc-access.connectors.list",
                ConnectorsCmd::Describe { .. } => "compute.networks.vpc-access.connectors.describe",
                ConnectorsCmd::Delete { .. } => "compute.networks.vpc-access.connectors.delete",
            },
        }
    }
}
