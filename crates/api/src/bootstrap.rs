//! First start and every start: open the store, create the project, the default compute service account (Editor),
//! the operator `user:owner@localhost` (Owner) and the auto-mode `default` network if they are not there yet.

use crate::audit_trail::Call;
use crate::auth::Caller;
use crate::oauth::User;
use crate::service_accounts::ServiceAccount;
use crate::state::{kind, App, Project};
use iam::Principal;
use model::{names, Policy};
use std::path::PathBuf;
use std::sync::Arc;
use store::{Store, TokenRow};

/// The local operator, who owns the project.
pub const OPERATOR: &str = "owner@localhost";

pub struct BootstrapOptions {
    pub db_path: PathBuf,
    /// `--project`; `None` keeps the stored project (or `local-project` on first start).
    pub project_id: Option<String>,
    pub region: Option<String>,
    /// SHA-256 (hex) of the operator key that `accounts:login` requires.
    pub operator_key_hash: String,
    /// Where the signing keys live (mode 0600).
    pub keys_path: PathBuf,
    /// `iss` of the ID tokens the platform mints.
    pub issuer: String,
    /// How often the signing key rotates.
    pub key_rotation: std::time::Duration,
    /// First loopback port tried for service URLs (0: any free port).
    pub service_port_base: u16,
}

pub struct Bootstrap {
    pub app: Arc<App>,
    /// True when this start created the project.
    pub created: bool,
    /// A refresh credential for the operator, minted on first start only.
    pub owner_refresh_token: Option<String>,
}

pub fn bootstrap(opts: BootstrapOptions) -> Result<Bootstrap, String> {
    let issuer =
        crate::issuer::Issuer::open(&opts.keys_path, &opts.issuer, opts.key_rotation, std::time::SystemTime::now())?;
    let store =
        Store::open(&opts.db_path).map_err(|e| format!("cannot open state at `{}`: {e}", opts.db_path.display()))?;
    // The master key lives next to the state (`$GATEHOUSE_HOME/master.key`) unless GATEHOUSE_MASTER_KEY_FILE names one.
    let home = opts.db_path.parent().filter(|h| !h.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let master_key = secrets::MasterKey::load_or_create(home).map_err(|e| e.to_string())?;
    let existing: Vec<(String, Project)> = store
        .read(|tx| tx.list(kind::PROJECT, ""))
        .map_err(|e| format!("cannot read state at `{}`: {e}", opts.db_path.display()))?;
    if let Some((_, project)) = existing.first() {
        if let Some(id) = &opts.project_id {
            if *id != project.project_id {
                return Err(format!(
                    "this GATEHOUSE_HOME already holds project `{}`; start without `--project`, or use another GATEHOUSE_HOME for `{id}`",
                    project.project_id
                ));
            }
        }
        if let Some(region) = &opts.region {
            if *region != project.region {
                return Err(format!(
                    "this GATEHOUSE_HOME's project `{}` is in region `{}`; start without `--region`, or use another GATEHOUSE_HOME",
                    project.project_id, project.region
                ));
            }
        }
        let app = App::new(store, project.clone(), opts.operator_key_hash, issuer, opts.service_port_base, master_key)
            .map_err(|e| e.message)?;
        default_network_once(&app, &project.project_id)?;
        return Ok(Bootstrap { app: Arc::new(app), created: false, owner_refresh_token: None });
    }

    let project_id = opts.project_id.unwrap_or_else(|| "local-project".into());
    names::validate_project_id(&project_id)?;
    let region = opts.region.unwrap_or_else(|| "us-central1".into());
    validate_region(&region)?;
    let project = Project {
        project_id: project_id.clone(),
        project_number: tokens::random_numeric_id(12),
        name: project_id.clone(),
        lifecycle_state: "ACTIVE".into(),
        create_time: time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
        region,
    };
    let app = App::new(store, project.clone(), opts.operator_key_hash, issuer, opts.service_port_base, master_key)
        .map_err(|e| e.message)?;
    let compute = names::default_compute_email(&project.project_number);
    let mut policy = Policy { version: 1, etag: crate::policy::new_etag(), ..Policy::default() };
    policy.add_binding("roles/owner", &format!("user:{OPERATOR}"), None);
    policy.add_binding("roles/editor", &format!("serviceAccount:{compute}"), None);
    crate::policy::normalize(&mut policy);
    let refresh = tokens::mint(tokens::TokenKind::Refresh);
    let operator = Caller {
        principal: Principal::User(OPERATOR.into()),
        ip: "127.0.0.1".into(),
        user_agent: "gatehouse up".into(),
    };
    let call = Call::new("cloudresourcemanager.googleapis.com", "CreateProject", format!("projects/{project_id}"));
    app.mutate(&operator, call, true, |tx| {
        tx.put(kind::PROJECT, &project_id, &project)?;
        let sa = ServiceAccount::new(&project_id, &compute, "Compute Engine default service account", "");
        tx.put(kind::SERVICE_ACCOUNT, &compute, &sa)?;
        tx.put(kind::USER, OPERATOR, &User { email: OPERATOR.into(), uid: tokens::random_numeric_id(21) })?;
        tx.put(kind::POLICY, &project.full_name(), &policy)?;
        // Every new Google Cloud project starts with the auto-mode `default` network (what `--network=default
        // --subnet=default` in Google's docs names).
        let (net, subnets) =
            crate::vpc::new_network(&project_id, "default", DEFAULT_NETWORK_DESCRIPTION.into(), true, 1460);
        crate::vpc::put_network(tx, &net, &subnets)?;
        tx.put(kind::MIGRATION, DEFAULT_NETWORK_MIGRATION, &true)?;
        tx.put_token(
            &refresh.hash,
            &TokenRow { kind: "refresh".into(), principal: format!("user:{OPERATOR}"), expires_at: i64::MAX },
        )?;
        Ok(())
    })
    .map_err(|e| e.message)?;
    Ok(Bootstrap { app: Arc::new(app), created: true, owner_refresh_token: Some(refresh.secret.to_string()) })
}

/// The marker of [`default_network_once`].
const DEFAULT_NETWORK_MIGRATION: &str = "default-network";

/// A home made before projects started with the `default` network gets it at its next start, once, as every Google
/// Cloud project has it (Google's docs name it: `--network=default --subnet=default`). The marker keeps a network
/// the user has deleted since from coming back; a network of that name already there is left as it is.
fn default_network_once(app: &App, project_id: &str) -> Result<(), String> {
    let done = app.read(|tx| Ok(tx.get::<bool>(kind::MIGRATION, DEFAULT_NETWORK_MIGRATION)?)).map_err(|e| e.message)?;
    if done.is_some() {
        return Ok(());
    }
    let operator = Caller {
        principal: Principal::User(OPERATOR.into()),
        ip: "127.0.0.1".into(),
        user_agent: "gatehouse up".into(),
    };
    let name = format!("projects/{project_id}/global/networks/default");
    let call = Call::new("compute.googleapis.com", "v1.compute.networks.insert", name);
    app.mutate(&operator, call, false, |tx| {
        let (net, subnets) =
            crate::vpc::new_network(project_id, "default", DEFAULT_NETWORK_DESCRIPTION.into(), true, 1460);
        let path = net.self_link.strip_prefix(network::COMPUTE).unwrap_or(&net.self_link).to_owned();
        if tx.get::<network::Network>(kind::NETWORK, &path)?.is_none() {
            crate::vpc::put_network(tx, &net, &subnets)?;
        }
        tx.put(kind::MIGRATION, DEFAULT_NETWORK_MIGRATION, &true)?;
        Ok(())
    })
    .map_err(|e| e.message)
}

/// As Compute Engine describes a project's default network.
const DEFAULT_NETWORK_DESCRIPTION: &str = "Default network for the project";

fn validate_region(region: &str) -> Result<(), String> {
    let ok = region.split('-').count() >= 2
        && region.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && region.ends_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!("`{region}` is not a region name; regions look like `us-central1` or `europe-west1`"))
    }
}
