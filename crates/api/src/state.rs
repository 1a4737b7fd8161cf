//! The shared state of the control plane: the store, the IAM snapshot every decision reads, and the project.

use crate::audit_trail::Call;
use crate::auth::Caller;
use arc_swap::ArcSwap;
use iam::{Catalogue, ProjectRef, Snapshot};
use model::{ApiError, Policy};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use store::{Store, StoreError};

/// Document kinds in the store.
pub(crate) mod kind {
    pub const PROJECT: &str = "project";
    pub const POLICY: &str = "policy";
    pub const SERVICE_ACCOUNT: &str = "serviceAccount";
    pub const USER: &str = "user";
    pub const ROLE: &str = "role";
    pub const GROUP: &str = "group";
    pub const MEMBERSHIP: &str = "membership";
    pub const RUN_SERVICE: &str = "runService";
    pub const REVISION: &str = "revision";
    pub const SECRET: &str = "secret";
    pub const SECRET_VERSION: &str = "secretVersion";
    pub const NETWORK: &str = "network";
    pub const SUBNETWORK: &str = "subnetwork";
    pub const CONNECTOR: &str = "vpcConnector";
    pub const COMPUTE_INSTANCE: &str = "computeInstance";
    /// A deleted service account, by unique id, as it was (with its own policy): what `:undelete` restores.
    pub const DELETED_SERVICE_ACCOUNT: &str = "deletedServiceAccount";
    /// One-time changes to an existing home, by name, once made (see `bootstrap`).
    pub const MIGRATION: &str = "migration";
}

/// Now, as Google's APIs write timestamps (RFC 3339, UTC).
pub(crate) fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// The project this platform serves (`GET /v1/projects/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Project {
    pub project_id: String,
    pub project_number: String,
    pub name: String,
    pub lifecycle_state: String,
    pub create_time: String,
    #[serde(default)]
    pub region: String,
}

impl Project {
    pub fn full_name(&self) -> String {
        model::names::project_full_name(&self.project_id)
    }

    /// True when `id` names this project by id or by number.
    pub fn is(&self, id: &str) -> bool {
        id == self.project_id || id == self.project_number
    }
}

pub struct App {
    pub(crate) store: Arc<Store>,
    pub(crate) project: Project,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises "commit, then rebuild the snapshot" so a slower rebuild never replaces a newer one.
    write_lock: Mutex<()>,
    /// SHA-256 of the operator key in `$GATEHOUSE_HOME`; whoever can read that file may log in as any local user.
    pub(crate) operator_key_hash: String,
    pub(crate) issuer: crate::issuer::Issuer,
    pub(crate) routes: ArcSwap<Vec<crate::run::ServiceRoute>>,
    pub(crate) routes_changed: tokio::sync::watch::Sender<u64>,
    pub(crate) deployer: std::sync::OnceLock<Arc<dyn crate::run::Deployer>>,
    /// The latest Cloud Run long-running operations (all done), for `operations.get`.
    pub(crate) operations: std::sync::Mutex<std::collections::VecDeque<serde_json::Value>>,
    /// Runs VPC hosts (Compute Engine instances); unset without a sandbox.
    pub(crate) hosts: std::sync::OnceLock<Arc<dyn crate::compute_instances::HostRunner>>,
    /// First port tried for service URLs (0: any free port).
    pub(crate) service_port_base: u16,
    /// Unique id → service account, for ID tokens minted without the email claim.
    subjects: ArcSwap<std::collections::HashMap<String, iam::Principal>>,
    /// Seals and opens secret versions (`$GATEHOUSE_HOME/master.key`).
    pub(crate) master_key: secrets::MasterKey,
    /// Group commit of audit entries written outside a mutation (Data Access reads, denials).
    pub(crate) audit_queue: crate::audit_trail::AuditQueue,
    /// Bumped after every state write ([`App::write`]): what was read before it may be stale.
    pub(crate) writes: std::sync::atomic::AtomicU64,
    /// Authenticated access tokens (see `auth.rs`), valid only while no state write happened since.
    pub(crate) callers: crate::auth::CallerCache,
    /// Resolved secret versions for `:access` (see `secret_manager`), valid only while no state write happened since.
    pub(crate) versions: crate::secret_manager::VersionCache,
}

impl From<StoreError> for ApiErrorBox {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error");
        ApiErrorBox(ApiError::internal("internal error while accessing state; see the daemon log"))
    }
}

/// `ApiError` plus the conversions the store closures need.
#[derive(Debug)]
pub(crate) struct ApiErrorBox(pub ApiError);

impl From<ApiError> for ApiErrorBox {
    fn from(e: ApiError) -> Self {
        ApiErrorBox(e)
    }
}

pub(crate) type Result<T> = std::result::Result<T, ApiError>;

impl App {
    pub(crate) fn new(
        store: Store,
        project: Project,
        operator_key_hash: String,
        issuer: crate::issuer::Issuer,
        service_port_base: u16,
        master_key: secrets::MasterKey,
    ) -> Result<App> {
        let store = Arc::new(store);
        let app = App {
            master_key,
            audit_queue: crate::audit_trail::AuditQueue::start(store.clone()),
            issuer,
            routes: ArcSwap::from_pointee(Vec::new()),
            routes_changed: tokio::sync::watch::channel(0).0,
            deployer: std::sync::OnceLock::new(),
            hosts: std::sync::OnceLock::new(),
            operations: Default::default(),
            service_port_base,
            subjects: ArcSwap::from_pointee(Default::default()),
            store,
            project,
            snapshot: ArcSwap::from_pointee(Snapshot::new(Catalogue::predefined(), Vec::new())),
            write_lock: Mutex::new(()),
            operator_key_hash,
            writes: std::sync::atomic::AtomicU64::new(0),
            callers: crate::auth::CallerCache::new(crate::auth::CALLER_CACHE),
            versions: crate::secret_manager::VersionCache::new(crate::secret_manager::VERSION_CACHE),
        };
        app.rebuild_snapshot()?;
        app.rebuild_routes()?;
        Ok(app)
    }

    pub fn project(&self) -> &Project {
        &self.project
    }

    /// The platform's ID-token issuer.
    pub fn issuer(&self) -> &crate::issuer::Issuer {
        &self.issuer
    }

    /// Records a successful call that changed nothing stored (minting a token, say) in the audit log.
    pub(crate) fn record(&self, caller: &Caller, call: Call) {
        let entry = call.entry(self, caller, None);
        if let Err(e) = self.store.write(|tx| tx.append_audit(&entry)) {
            tracing::error!(error = %e, "could not record a call in the audit log");
        }
    }

    /// The service account whose unique id is `sub`.
    pub fn principal_for_subject(&self, sub: &str) -> Option<iam::Principal> {
        self.subjects.load().get(sub).cloned()
    }

    /// The IAM snapshot decisions read now.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load_full()
    }

    pub(crate) fn read<T>(&self, f: impl FnOnce(&store::Tx) -> std::result::Result<T, ApiErrorBox>) -> Result<T> {
        self.store.read(f).map_err(|e| e.0)
    }

    /// Runs a write transaction; when it commits and `affects_iam`, rebuilds the IAM snapshot before returning.
    pub(crate) fn write<T>(
        &self,
        affects_iam: bool,
        f: impl FnOnce(&store::Tx) -> std::result::Result<T, ApiErrorBox>,
    ) -> Result<T> {
        let _guard = self.write_lock.lock().unwrap_or_else(|p| p.into_inner());
        let out = self.store.write(f).map_err(|e| e.0);
        // After the commit (or the rollback): a reader that saw the old state carries the old count.
        self.writes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let out = out?;
        if affects_iam {
            self.rebuild_snapshot()?;
        }
        Ok(out)
    }

    /// Runs a mutation and appends its audit entry in the same transaction: the change and its record land together.
    pub(crate) fn mutate<T: Serialize>(
        &self,
        caller: &Caller,
        call: Call,
        affects_iam: bool,
        f: impl FnOnce(&store::Tx) -> std::result::Result<T, ApiErrorBox>,
    ) -> Result<T> {
        self.write(affects_iam, |tx| {
            let out = f(tx)?;
            let entry = call.entry(self, caller, None);
            tx.append_audit(&entry)?;
            Ok(out)
        })
    }

    /// Asks IAM whether `caller` holds `permission` on `full_resource_name`. A denial is audited and answered with
    /// Google's 403 text naming the permission and `shown_resource`.
    pub(crate) fn authorize(
        &self,
        caller: &Caller,
        permission: &str,
        full_resource_name: &str,
        call: &Call,
    ) -> Result<()> {
        let snapshot = self.snapshot();
        let decision = iam::decide(&snapshot, &caller.principal, permission, full_resource_name, SystemTime::now());
        if decision.granted() {
            self.permitted(caller, permission, full_resource_name, call);
            return Ok(());
        }
        let err = ApiError::permission_denied(permission, &call.resource_name);
        let entry = call.denied(permission, full_resource_name).entry(self, caller, Some(&err));
        if let Err(e) = self.store.write(|tx| tx.append_audit(&entry)) {
            tracing::error!(error = %e, "could not record a denied call in the audit log");
        }
        Err(err)
    }

    /// Every permitted call comes here (from `App::authorize` or a service's own decision, as Secret Manager's). An
    /// ADMIN_READ call (get, list, getIamPolicy) goes to the Data Access log when the project's `auditConfigs` turn
    /// ADMIN_READ on for its service or `allServices` (off by default, as in Google Cloud); it is durable before the
    /// call is answered. What the advisor's `unused-permission` reads to see which roles' read permissions an
    /// account used.
    pub(crate) fn permitted(&self, caller: &Caller, permission: &str, full_resource_name: &str, call: &Call) {
        if call.permission_type != audit::PermissionType::AdminRead {
            return;
        }
        let snapshot = self.snapshot();
        let Some(policy) = snapshot.policy(&self.project.full_name()).filter(|p| !p.audit_configs.is_empty()) else {
            return;
        };
        let member = caller.principal.member();
        if policy.read_logged(call.service, model::policy::ReadLog::AdminRead, &member) != Some(true) {
            return;
        }
        let entry = call.clone().needs(permission, full_resource_name).entry(self, caller, None);
        if self.audit_queue.append(entry).is_err() {
            tracing::error!(method = call.method, "could not record an ADMIN_READ call in the audit log");
        }
    }

    /// Waits until the audit entries queued so far (the gateway's refusals among them) are written, so a read of
    /// the log that follows a refused request sees it. Bounded: a reader waits at most 2 s behind a flood.
    pub(crate) fn settle_audit_log(&self) {
        if !self.audit_queue.settle(std::time::Duration::from_secs(2)) {
            tracing::warn!("audit: the log is still being written; this read may miss the newest entries");
        }
    }

    /// Permissions of `candidates` that `caller` holds on the resource (testIamPermissions).
    pub(crate) fn granted_permissions(
        &self,
        caller: &Caller,
        candidates: &[String],
        full_resource_name: &str,
    ) -> Vec<String> {
        let snapshot = self.snapshot();
        let now = SystemTime::now();
        candidates
            .iter()
            .filter(|p| iam::decide(&snapshot, &caller.principal, p, full_resource_name, now).granted())
            .cloned()
            .collect()
    }

    /// Rebuilds the IAM snapshot from the store: policies, custom roles, group memberships.
    fn rebuild_snapshot(&self) -> Result<()> {
        let snapshot = self.read(|tx| {
            let mut catalogue = Catalogue::predefined();
            // Deleted custom roles stay in the catalogue: policies that still bind them keep compiling, and
            // their bindings grant nothing, as in Google Cloud.
            for (_, role) in tx.list::<iam::Role>(kind::ROLE, "")? {
                catalogue.insert_custom(role).map_err(|e| ApiErrorBox(e.into()))?;
            }
            let project =
                ProjectRef { id: self.project.project_id.clone(), number: self.project.project_number.clone() };
            let mut snapshot = Snapshot::new(catalogue, vec![project]);
            for (name, policy) in tx.list::<Policy>(kind::POLICY, "")? {
                snapshot.set_policy(&name, &policy).map_err(|e| ApiErrorBox(e.into()))?;
            }
            for (_, m) in tx.list::<crate::groups::Membership>(kind::MEMBERSHIP, "")? {
                snapshot.add_group_member(&m.group_email, &m.member);
            }
            let accounts = tx.list::<crate::service_accounts::ServiceAccount>(kind::SERVICE_ACCOUNT, "")?;
            for (_, sa) in accounts.iter().filter(|(_, sa)| sa.disabled) {
                snapshot.disable_account(&sa.email);
            }
            let subjects: std::collections::HashMap<String, iam::Principal> =
                accounts.into_iter().map(|(_, sa)| (sa.unique_id, iam::Principal::ServiceAccount(sa.email))).collect();
            Ok((snapshot, subjects))
        })?;
        let (snapshot, subjects) = snapshot;
        self.subjects.store(Arc::new(subjects));
        self.snapshot.store(Arc::new(snapshot));
        Ok(())
    }
}
