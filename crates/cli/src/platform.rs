//! Wiring of the daemon's parts: the runtime starts revisions for the API ([`RuntimeDeployer`]), instances get
//! tokens from the platform's issuer ([`InstanceTokens`]), and the gateway reads the control plane's snapshots
//! ([`GatewayPlane`]) and listens on one loopback port per service plus the main gateway port.

use api::run::{DeployFailure, DeploySpec, Deployer};
use api::App;
use metadata::{IdFormat, MintedToken, SourceError, TokenSource};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// The platform acting for its own workloads: an instance's metadata server hands out the revision's account's
/// tokens, minted directly by the issuer (no impersonation grant involved, as on Cloud Run).
pub struct InstanceTokens {
    app: Arc<App>,
    email: String,
}

fn source_error(e: model::ApiError) -> SourceError {
    SourceError::new(e.http_status(), e.message)
}

/// Runs `f` on the blocking pool: platform calls read and write SQLite (and may wait for an fsync).
async fn on_app<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&App) -> Result<T, model::ApiError> + Send + 'static,
) -> Result<T, model::ApiError> {
    let app = app.clone();
    tokio::task::spawn_blocking(move || f(&app)).await.unwrap_or_else(|e| {
        Err(model::ApiError::new(model::Code::Unavailable, format!("the platform call did not finish: {e}")))
    })
}

impl TokenSource for InstanceTokens {
    async fn id_token(&self, audience: &str, _format: IdFormat) -> Result<MintedToken, SourceError> {
        let (email, audience) = (self.email.clone(), audience.to_owned());
        let (token, exp) =
            on_app(&self.app, move |app| app.mint_instance_id_token(&email, &audience)).await.map_err(source_error)?;
        Ok(MintedToken { token, expires_at: UNIX_EPOCH + Duration::from_secs(exp) })
    }

    async fn access_token(&self, _scopes: &[String]) -> Result<MintedToken, SourceError> {
        let email = self.email.clone();
        let (token, exp) =
            on_app(&self.app, move |app| app.mint_instance_access_token(&email)).await.map_err(source_error)?;
        Ok(MintedToken { token, expires_at: UNIX_EPOCH + Duration::from_secs(exp.max(0) as u64) })
    }
}

pub struct Factory {
    pub app: Arc<App>,
}

impl runtime::SourceFactory for Factory {
    type Source = InstanceTokens;
    fn source(&self, email: &str) -> Arc<InstanceTokens> {
        Arc::new(InstanceTokens { app: self.app.clone(), email: email.to_owned() })
    }

    async fn read_secret(&self, account: &str, secret: &str, version: &str) -> Result<runtime::SecretRead, String> {
        let (account, secret, version) = (account.to_owned(), secret.to_owned(), version.to_owned());
        let read = on_app(&self.app, move |app| app.access_secret_as(&account, &secret, &version)).await;
        read.map(|(version, payload)| runtime::SecretRead { version, payload }).map_err(|e| e.message)
    }

    async fn secret_version(&self, account: &str, secret: &str, version: &str) -> Result<String, String> {
        let (account, secret, version) = (account.to_owned(), secret.to_owned(), version.to_owned());
        on_app(&self.app, move |app| app.secret_version_as(&account, &secret, &version)).await.map_err(|e| e.message)
    }
}

pub type Runtime = runtime::Runtime<Factory>;

/// The runtime, as the API's [`Deployer`]. API handlers run on blocking threads, so they may wait on the runtime.
pub struct RuntimeDeployer {
    pub runtime: Arc<Runtime>,
    pub handle: tokio::runtime::Handle,
    pub app: Arc<App>,
}

impl RuntimeDeployer {
    /// The runtime's view of a revision.
    pub fn revision_spec(app: &App, spec: DeploySpec) -> runtime::RevisionSpec {
        let w = spec.workload;
        let workload = if w.image == api::run::types::SAMPLE_IMAGE {
            runtime::Workload::Sample
        } else {
            runtime::Workload::Process {
                dir: w.working_dir.into(),
                argv: w.command.into_iter().chain(w.args).collect(),
            }
        };
        let project = app.project();
        runtime::RevisionSpec {
            configuration: spec.service.clone(),
            service: spec.service,
            revision: spec.revision,
            workload,
            env: w.env,
            secret_env: w
                .secret_env
                .into_iter()
                .map(|e| runtime::SecretEnv { name: e.name, secret: e.secret, version: e.version, field: e.field })
                .collect(),
            secret_files: w
                .secret_files
                .into_iter()
                .map(|f| runtime::SecretFile {
                    path: f.path,
                    secret: f.secret,
                    version: f.version,
                    mode: f.mode,
                    field: f.field,
                })
                .collect(),
            min_instances: w.min_instances,
            max_instances: w.max_instances,
            concurrency: w.concurrency,
            request_timeout: Duration::from_secs(w.timeout_secs),
            port: w.port,
            limits: runtime::Limits { memory_bytes: w.memory_bytes, cpu_millis: w.cpu_millis },
            egress: match &w.vpc_access {
                None => runtime::Egress::default(),
                Some(v) => runtime::Egress {
                    connector: Some(v.connector.clone()).filter(|c| !c.is_empty()),
                    network: v.network_interfaces.first().map(|i| (i.network.clone(), i.subnetwork.clone())),
                    all_traffic: v.egress == api::run::types::VpcEgress::AllTraffic,
                    address: None,
                },
            },
            identity: metadata::Identity {
                email: w.service_account,
                project_id: project.project_id.clone(),
                project_number: project.project_number.clone(),
                region: project.region.clone(),
                zone: format!("{}-1", project.region),
                instance_id: String::new(),
                scopes: metadata::Identity::default_scopes(),
            },
        }
    }
}

impl Deployer for RuntimeDeployer {
    fn deploy(&self, spec: DeploySpec) -> Result<(), DeployFailure> {
        let spec = Self::revision_spec(&self.app, spec);
        self.handle.block_on(self.runtime.deploy(spec)).map_err(|e| match e {
            runtime::DeployError::NotReady { reason, last_logs } => DeployFailure { reason, last_logs },
            runtime::DeployError::Spawn(reason) => DeployFailure { reason, last_logs: Vec::new() },
        })
    }

    fn remove(&self, service: &str) {
        self.handle.block_on(self.runtime.remove(service));
    }

    fn logs(&self, service: &str, limit: usize) -> Vec<serde_json::Value> {
        self.runtime.logs(service, limit).into_iter().filter_map(|l| serde_json::to_value(l).ok()).collect()
    }
}

/// Runs Compute Engine instances as VPC hosts: each one's startup script in a sandbox of its own, on the subnet
/// at its address, with a metadata server for its service account. Only with a sandbox (`up` as root).
pub struct VpcHosts {
    pub runtime: Arc<Runtime>,
    pub handle: tokio::runtime::Handle,
    pub app: Arc<App>,
    pub hosts: std::sync::Mutex<std::collections::HashMap<String, runtime::Host>>,
}

impl VpcHosts {
    /// Stops every host (at `up` stop).
    pub async fn stop_all(&self) {
        let hosts: Vec<runtime::Host> =
            self.hosts.lock().unwrap_or_else(|e| e.into_inner()).drain().map(|(_, h)| h).collect();
        for h in hosts {
            h.stop().await;
        }
    }
}

impl api::compute_instances::HostRunner for VpcHosts {
    fn start(&self, host: api::compute_instances::VpcHost) -> Result<(), String> {
        let project = self.app.project();
        let name = host.path.rsplit('/').next().unwrap_or_default().to_string();
        let spec = runtime::RevisionSpec {
            service: name.clone(),
            revision: name.clone(),
            configuration: name,
            workload: runtime::Workload::Command {
                argv: vec!["/bin/sh".into(), "-c".into(), host.startup_script.clone()],
            },
            env: Vec::new(),
            secret_env: Vec::new(),
            secret_files: Vec::new(),
            min_instances: 1,
            max_instances: 1,
            concurrency: 1,
            request_timeout: Duration::from_secs(1),
            port: 0,
            limits: runtime::Limits::default(),
            egress: runtime::Egress {
                connector: None,
                network: Some((host.network.clone(), host.subnet.clone())),
                all_traffic: true,
                address: Some(host.address),
            },
            identity: metadata::Identity {
                email: host.service_account.clone(),
                project_id: project.project_id.clone(),
                project_number: project.project_number.clone(),
                region: project.region.clone(),
                zone: format!("{}-a", project.region),
                instance_id: String::new(),
                scopes: metadata::Identity::default_scopes(),
            },
        };
        let running = self.handle.block_on(self.runtime.run_host(spec))?;
        if let Some(old) = self.hosts.lock().unwrap_or_else(|e| e.into_inner()).insert(host.path, running) {
            drop(old);
        }
        Ok(())
    }

    fn stop(&self, path: &str) {
        let host = self.hosts.lock().unwrap_or_else(|e| e.into_inner()).remove(path);
        if let Some(h) = host {
            self.handle.block_on(h.stop());
        }
    }

    fn output(&self, path: &str) -> Option<String> {
        let hosts = self.hosts.lock().unwrap_or_else(|e| e.into_inner());
        let lines = hosts.get(path)?.logs(1000);
        Some(lines.iter().map(|l| format!("{} {}\n", l.time, l.text)).collect())
    }
}

/// Serves the serving revision of every stored service again (after a restart), before `up` says it is ready.
pub fn start_services(app: Arc<App>, runtime: Arc<Runtime>) {
    let specs = match app.serving_revisions() {
        Ok(s) => s,
        Err(e) => return tracing::error!(error = %e, "cannot list services to start"),
    };
    for (service, spec) in specs {
        match spec {
            // Serving again at once, at zero instances (plus its minimum): the first request starts one.
            Ok(spec) => runtime.restore(RuntimeDeployer::revision_spec(&app, spec)),
            // One service that cannot be served never keeps the others from serving.
            Err(e) => tracing::error!(%service, error = %e, "cannot serve the service's revision"),
        }
    }
}

/// The gateway's view of the control plane: snapshots, the runtime's instances, and where its records go.
pub struct GatewayPlane {
    pub app: Arc<App>,
    pub runtime: Arc<Runtime>,
    pub routes: arc_swap::ArcSwap<gateway::Routes>,
}

impl GatewayPlane {
    /// Rebuilds the gateway's routes from the control plane's services.
    pub fn refresh_routes(&self) -> Vec<u16> {
        let mut routes = gateway::Routes::default();
        let mut ports = Vec::new();
        for s in self.app.routes().iter() {
            let route = Arc::new(gateway::Route {
                service: s.service.clone(),
                resource: s.resource.clone(),
                audiences: s.audiences.clone(),
                invoker_iam_disabled: s.invoker_iam_disabled,
                timeout: Some(Duration::from_secs(s.timeout_secs)),
                ingress: match s.ingress {
                    api::run::types::Ingress::All | api::run::types::Ingress::Unspecified => gateway::Ingress::All,
                    api::run::types::Ingress::InternalOnly => gateway::Ingress::Internal,
                    api::run::types::Ingress::InternalLoadBalancer => gateway::Ingress::InternalAndCloudLoadBalancing,
                    api::run::types::Ingress::None => gateway::Ingress::None,
                },
            });
            routes.by_port.insert(s.port, route.clone());
            for h in &s.hosts {
                routes.by_host.insert(h.to_lowercase(), route.clone());
            }
            ports.push(s.port);
        }
        self.routes.store(Arc::new(routes));
        ports
    }
}

/// A runtime lease as the gateway's slot.
struct LeaseSlot(runtime::Lease);

impl gateway::Slot for LeaseSlot {
    fn refused(self: Box<Self>) {
        self.0.refused();
    }
}

impl gateway::Plane for GatewayPlane {
    fn routes(&self) -> Arc<gateway::Routes> {
        self.routes.load_full()
    }

    fn iam(&self) -> Arc<iam::Snapshot> {
        self.app.snapshot()
    }

    fn verifier(&self) -> Arc<tokens::CachingVerifier> {
        self.app.issuer().verifier()
    }

    fn principal_for_subject(&self, sub: &str) -> Option<iam::Principal> {
        self.app.principal_for_subject(sub)
    }

    async fn acquire(&self, service: &str) -> Result<gateway::Upstream, gateway::Unavailable> {
        match self.runtime.acquire(service).await {
            Ok(mut lease) => Ok(gateway::Upstream {
                // The namespace moves to the endpoint (the lease is only the slot's guard from here on).
                endpoint: gateway::Endpoint { addr: lease.addr, netns: lease.netns.take() },
                revision: lease.revision.clone(),
                guard: Box::new(LeaseSlot(lease)),
            }),
            Err(runtime::AcquireError::NoRevision) => Err(gateway::Unavailable::NoRevision),
            Err(runtime::AcquireError::Timeout { .. }) => Err(gateway::Unavailable::Timeout),
            Err(e @ runtime::AcquireError::Failed { .. }) => Err(gateway::Unavailable::Failed(e.to_string())),
        }
    }

    fn denied(&self, d: gateway::Denial) {
        self.app.record_invocation_denial(api::run::InvocationDenial {
            resource: d.resource,
            status: d.status,
            reason: d.reason,
            principal: d.principal,
            explanation: d.explanation,
            caller_ip: d.caller_ip,
            source_account: d.source_account,
            source_service: d.source_service,
            method: d.method,
            path: d.path,
        });
    }

    fn served(&self, r: gateway::RequestRecord<'_>) {
        let who = r.principal.unwrap_or("allUsers");
        let mut text =
            format!("{} {} {} {}ms {who} {}", r.method, r.path, r.status, r.latency.as_millis(), r.caller_ip);
        if let Some(account) = r.from {
            // From inside an instance or VPC host: whose it is, whatever token the request carried.
            text.push_str(" from=");
            text.push_str(account);
        }
        if let Some(service) = r.from_service {
            // And which service's instance it was.
            text.push_str(" from-service=");
            text.push_str(service);
        }
        let revision = r.revision.unwrap_or_default();
        self.runtime.record(r.service, runtime::LogLine::now(revision, "", runtime::Stream::Request, text));
    }
}
