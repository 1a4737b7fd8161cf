//! `gatehouse up`: runs the platform in the foreground until SIGTERM or SIGINT.
//!
//! Start-up: open (or create) the state in `$GATEHOUSE_HOME`, bind the API and gateway listeners, write
//! `daemon.json`, then print the `ready` line. Stop: finish in-flight requests, remove `daemon.json`.

use crate::args::{Global, UpArgs};
use crate::home::{Credential, DaemonInfo, Home};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::TcpListener;

pub fn run(g: &Global, args: UpArgs) -> Result<()> {
    let started = Instant::now();
    let filter = tracing_subscriber::EnvFilter::try_from_env("GATEHOUSE_LOG").unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
    let home = Home::locate()?;
    home.ensure_dir()?;
    if let Ok(d) = home.daemon() {
        if std::net::TcpStream::connect(d.api.trim_start_matches("http://")).is_ok() {
            bail!(
                "a Gatehouse platform is already running for GATEHOUSE_HOME={} (pid {}, API {}); stop it first or use another GATEHOUSE_HOME",
                home.dir.display(),
                d.pid,
                d.api
            );
        }
    }
    let operator_key = match home.operator_key() {
        Ok(k) => k,
        Err(_) => {
            let key = tokens::mint(tokens::TokenKind::Refresh).hash; // 256 random bits, hex
            home.write_private("operator.key", key.as_bytes())?;
            key
        }
    };
    let boot = api::bootstrap(api::BootstrapOptions {
        db_path: home.path("state.db"),
        project_id: g.project.clone(),
        region: args.region.clone(),
        operator_key_hash: tokens::hash(&operator_key),
        keys_path: home.path("signing-keys.json"),
        issuer: args.issuer.clone(),
        key_rotation: args.key_rotation,
        // Service URLs take ports from base+10 upwards, so a platform's ports stay together and predictable.
        service_port_base: if args.port_base == 0 { 0 } else { args.port_base.saturating_add(10) },
    })
    .map_err(anyhow::Error::msg)?;
    let project = boot.app.project().clone();
    if let Some(refresh) = &boot.owner_refresh_token {
        home.update_credentials(|c| {
            c.insert(api::OPERATOR.into(), Credential { refresh_token: refresh.clone(), ..Credential::default() });
        })?;
        let mut config = home.config();
        config.entry("account".into()).or_insert_with(|| api::OPERATOR.into());
        config.entry("project".into()).or_insert_with(|| project.project_id.clone());
        config.entry("region".into()).or_insert_with(|| project.region.clone());
        home.save_config(&config)?;
    }

    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    // Caller connections run on threads of their own, one per core (gateway::Workers); the runtime above runs the
    // API, instances, metadata servers and the accept loops.
    let workers = Arc::new(gateway::Workers::per_core().context("cannot start the gateway's threads")?);
    let gw_workers = workers.clone();
    let outcome = runtime.block_on(async move {
        let workers = gw_workers;
        let (api_port, gw_port, lb_port) = match args.port_base {
            0 => (0, 0, 0),
            b => (
                b,
                b.checked_add(1).context("--port-base is too high")?,
                b.checked_add(2).context("--port-base is too high")?,
            ),
        };
        let api_listener = bind(&args.host, api_port).await?;
        let gw_listener = bind(&args.host, gw_port).await?;
        let lb_listener = bind(&args.host, lb_port).await?;
        let api_addr = api_listener.local_addr()?;
        let gw_addr = gw_listener.local_addr()?;
        let lb_addr = lb_listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let api_router = api::router(boot.app.clone());
        // The sandbox, if this host can have one; then the simulated internet and VPC routers its instances link into.
        let sandbox = match args.no_sandbox {
            true => Err("--no-sandbox".to_string()),
            false => sandbox_parts(&home),
        };
        let fabric = match &sandbox {
            Ok(_) => Some(network::fabric::Fabric::new().context("cannot create the simulated networks")?),
            Err(_) => None,
        };
        let echo_task = match &fabric {
            Some(f) => {
                let addr = SocketAddr::from((network::fabric::ECHO_IP, 80));
                let listener = TcpListener::from_std(f.internet().listen(addr)?)?;
                Some(tokio::spawn(serve_echo(listener, stopped(&stop_rx))))
            }
            None => None,
        };
        let instance_listeners = Arc::new(InstanceListeners {
            api_port: api_addr.port(),
            gateway_port: gw_addr.port(),
            load_balancer_port: lb_addr.port(),
            api: api_router.clone(),
            workers: workers.clone(),
            plane: std::sync::OnceLock::new(),
            fabric: fabric.clone(),
        });
        let sandbox = sandbox.map(|(cgroups, hide)| runtime::SandboxConfig {
            cgroups,
            hide,
            attach: instance_listeners.clone(),
            home_files: Vec::new(),
        });
        let mut api_stop = stop_rx.clone();
        let api_task = tokio::spawn(async move {
            axum::serve(api_listener, api_router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(async move {
                    let _ = api_stop.wait_for(|s| *s).await;
                })
                .await
        });
        // The runtime starts revisions for the API; the gateway reads the control plane's snapshots.
        let app = boot.app.clone();
        let sample_program =
            std::env::current_exe().context("cannot find the gatehouse binary for the sample image")?;
        let info = DaemonInfo {
            api: format!("http://{api_addr}"),
            gateway: format!("http://{gw_addr}"),
            load_balancer: format!("http://{lb_addr}"),
            internet_echo: match &fabric {
                Some(_) => format!("http://{}/", network::fabric::ECHO_IP),
                None => String::new(),
            },
            metadata: String::new(),
            network_controls_enforced: sandbox.is_ok(),
            pid: std::process::id(),
            project: project.project_id.clone(),
            project_number: project.project_number.clone(),
            region: project.region.clone(),
            jwks: format!("http://{api_addr}/oauth2/v3/certs"),
            certs: format!("http://{api_addr}/oauth2/v1/certs"),
            issuer: boot.app.issuer().url().to_owned(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        // The CLI inside an instance finds the platform at the same URLs, with the metadata server's credentials.
        let mut sandbox = sandbox;
        if let Ok(s) = &mut sandbox {
            let inside = DaemonInfo { metadata: "http://metadata.google.internal".into(), pid: 0, ..info.clone() };
            s.home_files.push((".gatehouse/daemon.json".into(), serde_json::to_string_pretty(&inside)?));
        }
        let config = runtime::RuntimeConfig {
            sample_program,
            idle_timeout: args.instance_idle_timeout,
            startup_timeout: args.instance_startup_timeout,
            log_lines: 1000,
            sandbox: sandbox.as_ref().ok().cloned(),
        };
        let rt = runtime::Runtime::new(config, crate::platform::Factory { app: app.clone() });
        app.set_deployer(Arc::new(crate::platform::RuntimeDeployer {
            runtime: rt.clone(),
            handle: tokio::runtime::Handle::current(),
            app: app.clone(),
        }));
        let plane = Arc::new(crate::platform::GatewayPlane {
            app: app.clone(),
            runtime: rt.clone(),
            routes: Default::default(),
        });
        plane.refresh_routes();
        let _ = instance_listeners.plane.set(plane.clone());
        let gw_task = tokio::spawn(gateway::serve_on(
            workers.clone(),
            gw_listener,
            plane.clone(),
            gateway::RouteBy::Host,
            stopped(&stop_rx),
        ));
        // The external Application Load Balancer: routes by Host like the gateway; ingress counts it apart.
        let lb_task = tokio::spawn(gateway::serve_from(
            workers.clone(),
            lb_listener,
            plane.clone(),
            gateway::RouteBy::HostOrServiceUrl,
            gateway::Source::LoadBalancer,
            None,
            stopped(&stop_rx),
        ));
        let host = args.host.clone();
        let bind: Bind = Arc::new(move |port| {
            let listener = std::net::TcpListener::bind((host.as_str(), port))?;
            listener.set_nonblocking(true)?;
            TcpListener::from_std(listener)
        });
        let listeners_task =
            tokio::spawn(serve_service_ports(plane.clone(), workers.clone(), bind, None, stop_rx.clone()));
        crate::platform::start_services(app.clone(), rt.clone());
        let vpc_hosts = match &fabric {
            Some(_) => {
                let hosts = Arc::new(crate::platform::VpcHosts {
                    runtime: rt.clone(),
                    handle: tokio::runtime::Handle::current(),
                    app: app.clone(),
                    hosts: Default::default(),
                });
                app.set_host_runner(hosts.clone());
                // Stored hosts start in the background (each start blocks on the runtime).
                let app = app.clone();
                tokio::task::spawn_blocking(move || app.start_stored_hosts());
                Some(hosts)
            }
            None => None,
        };
        let maintenance = tokio::spawn(maintain_keys(boot.app.clone(), args.key_rotation));
        home.write_private("daemon.json", &serde_json::to_vec_pretty(&info)?)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "Gatehouse {} — the Cloud Run security model on this machine", info.version)?;
        writeln!(out, "  home     {}", home.dir.display())?;
        writeln!(
            out,
            "  project  {} (number {}), region {}{}",
            info.project,
            info.project_number,
            info.region,
            if boot.created { " — created now" } else { "" }
        )?;
        writeln!(out, "  account  {} (roles/owner)", api::OPERATOR)?;
        writeln!(out, "  api      {}", info.api)?;
        writeln!(out, "  gateway  {}", info.gateway)?;
        writeln!(out, "  load balancer {} (the external Application Load Balancer)", info.load_balancer)?;
        writeln!(out, "  issuer   {} (keys rotate every {})", info.issuer, humanize(args.key_rotation))?;
        writeln!(out, "  jwks     {}", info.jwks)?;
        writeln!(out, "  certs    {}", info.certs)?;
        // Nothing may claim enforcement it does not have.
        match &sandbox {
            Ok(_) => {
                writeln!(
                    out,
                    "  sandbox  on: each instance has its own mount, PID, network, UTS and IPC namespaces, runs as uid \
                     {} with the host read-only and GATEHOUSE_HOME hidden, under cgroup memory and CPU limits",
                    runtime::sandbox::APP_UID
                )?;
                writeln!(
                    out,
                    "  network  ingress and VPC egress enforced in network namespaces; platform DNS inside sandboxes; \
                     simulated internet echo at {} (from inside instances)",
                    info.internet_echo
                )?;
            }
            Err(why) => writeln!(
                out,
                "  sandbox  NOT ENFORCED ({why}): instances are plain processes on the host's network; ingress, VPC \
                 egress and --memory/--cpu are stored and shown, not applied"
            )?,
        }
        writeln!(
            out,
            "Gatehouse is ready in {} ms (pid {}). Stop with Ctrl-C.",
            started.elapsed().as_millis(),
            info.pid
        )?;
        out.flush()?;
        drop(out);

        wait_for_signal().await?;
        tracing::info!("stopping");
        let _ = stop_tx.send(true);
        maintenance.abort();
        let _ = api_task.await;
        let _ = gw_task.await;
        let _ = lb_task.await;
        if let Some(task) = echo_task {
            let _ = task.await;
        }
        let _ = listeners_task.await;
        if let Some(hosts) = &vpc_hosts {
            hosts.stop_all().await;
        }
        rt.shutdown().await;
        if let Ok(sandbox) = &sandbox {
            sandbox.cgroups.close();
        }
        // Remove daemon.json only if it is still ours.
        if home.daemon().is_ok_and(|d| d.pid == std::process::id()) {
            let _ = std::fs::remove_file(home.path("daemon.json"));
        }
        outln!("Gatehouse stopped.");
        Ok(())
    });
    drop(workers);
    outcome
}

/// Rotates the signing key when it is due and drops keys whose tokens have all expired; checks every minute, or
/// more often when the rotation period is short.
async fn maintain_keys(app: std::sync::Arc<api::App>, rotation: std::time::Duration) {
    let every = (rotation / 4).clamp(std::time::Duration::from_secs(1), std::time::Duration::from_secs(60));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        match app.issuer().maintain(std::time::SystemTime::now()) {
            Ok(true) => tracing::info!("signing keys rotated or pruned"),
            Ok(false) => {}
            Err(e) => tracing::error!(error = %e, "signing key maintenance failed"),
        }
    }
}

fn humanize(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s % 86_400 == 0 => format!("{}d", s / 86_400),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// Makes a listener for a port, on the host or inside an instance's network namespace.
type Bind = Arc<dyn Fn(u16) -> std::io::Result<TcpListener> + Send + Sync>;

/// Keeps one gateway listener per service port (a service's URL is `http://127.0.0.1:PORT`), following the
/// control plane's routes, until stopped. `inside`: in an instance, its own `PORT` (not taken) and where its
/// requests come from; `None` on the host (external).
async fn serve_service_ports(
    plane: Arc<crate::platform::GatewayPlane>,
    workers: Arc<gateway::Workers>,
    bind: Bind,
    inside: Option<(u16, gateway::Source, gateway::Origin)>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let source = inside.as_ref().map_or(gateway::Source::External, |(_, s, _)| *s);
    let from = inside.as_ref().map(|(_, _, origin)| origin.clone());
    let mut changes = plane.app.subscribe_routes();
    let mut listeners: HashMap<u16, tokio::task::JoinHandle<std::io::Result<()>>> = HashMap::new();
    loop {
        // The host's loop refreshes the gateway's routes; the loops inside instances only follow them.
        let ports: Vec<u16> = match inside {
            None => plane.refresh_routes(),
            Some((own, ..)) => plane.app.routes().iter().map(|r| r.port).filter(|p| *p != own).collect(),
        };
        listeners.retain(|port, task| {
            let keep = ports.contains(port);
            if !keep {
                task.abort();
            }
            keep
        });
        for port in ports {
            if listeners.contains_key(&port) {
                continue;
            }
            match bind(port) {
                Ok(listener) => {
                    let by = gateway::RouteBy::Port(port);
                    let serve = gateway::serve_from(
                        workers.clone(),
                        listener,
                        plane.clone(),
                        by,
                        source,
                        from.clone(),
                        stopped(&stop),
                    );
                    let task = tokio::spawn(serve);
                    listeners.insert(port, task);
                }
                Err(e) => {
                    tracing::error!(port, error = %e, "cannot listen on a service's port; its URL will not answer")
                }
            }
        }
        let mut stop_now = stop.clone();
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { break },
            _ = stop_now.wait_for(|s| *s) => break,
        }
    }
    for (_, task) in listeners {
        let _ = task.await;
    }
}

/// Resolves when `rx` says stop (or its sender is gone).
fn stopped(rx: &tokio::sync::watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Serves the platform inside each instance's network namespace at the addresses of `daemon.json`: the API, the
/// gateway, and every service URL — so the same URL strings work on the host and inside instances.
pub(crate) struct InstanceListeners {
    api_port: u16,
    gateway_port: u16,
    load_balancer_port: u16,
    api: axum::Router,
    workers: Arc<gateway::Workers>,
    /// Set once the plane exists (it needs the runtime, which needs this).
    plane: std::sync::OnceLock<Arc<crate::platform::GatewayPlane>>,
    /// The simulated networks instances are linked into.
    fabric: Option<Arc<network::fabric::Fabric>>,
}

/// One instance's listeners, which stop when it is dropped (the instance has exited: `rt.shutdown` at `up`'s stop
/// drops them all), and its addresses in the simulated networks, given back then.
struct Attached {
    stop: tokio::sync::watch::Sender<bool>,
    _addresses: Option<network::fabric::Attachment>,
}

impl Drop for Attached {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// The egress plan of a revision, resolved against the VPC resources as they are now.
fn egress_plan(app: &api::App, egress: &runtime::Egress) -> Result<network::fabric::EgressPlan, String> {
    use network::fabric::{EgressPlan, Via, VpcPlan};
    let vpc = match (&egress.connector, &egress.network) {
        (Some(connector), _) => {
            let (network, range) = app
                .connector_route(connector)
                .ok_or_else(|| format!("VPC connector `{connector}` no longer exists; redeploy without it"))?;
            Some(VpcPlan { network, via: Via::Connector { name: connector.clone(), range } })
        }
        (None, Some((network, subnet))) => {
            let region = app.project().region.clone();
            let (_, range) = app
                .subnet_route(&region, subnet)
                .ok_or_else(|| format!("subnetwork `{subnet}` no longer exists; redeploy without it"))?;
            let via = Via::Subnet { name: subnet.clone(), range, address: egress.address };
            Some(VpcPlan { network: network.clone(), via })
        }
        (None, None) => None,
    };
    // A fixed subnet address is a VPC host's (`Runtime::run_host`); Cloud Run instances never have one.
    Ok(EgressPlan { vpc, all_traffic: egress.all_traffic, accepts_connections: egress.address.is_some() })
}

/// The platform's resolver inside one sandbox (see `network::dns`): services' `run.app` hosts are 127.0.0.1 (the
/// gateway inside), VPC hosts their subnet addresses, the metadata server its link-local address; nothing else.
async fn serve_dns(
    socket: tokio::net::UdpSocket,
    app: Arc<api::App>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    tokio::pin!(stop);
    let mut buf = vec![0u8; 1500];
    loop {
        let (n, peer) = tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok(r) => r,
                Err(_) => continue,
            },
            () = &mut stop => return,
        };
        let lookup = |name: &str| -> Option<std::net::Ipv4Addr> {
            if name == "metadata.google.internal" || name == "metadata" {
                return Some(network::netns::METADATA_IP);
            }
            if app.routes().iter().any(|r| r.hosts.iter().any(|h| h.eq_ignore_ascii_case(name))) {
                return Some(std::net::Ipv4Addr::LOCALHOST);
            }
            app.vpc_host_names().into_iter().find(|(n, _)| n == name).map(|(_, ip)| ip)
        };
        if let Some(reply) = network::dns::answer(&buf[..n], lookup) {
            let _ = socket.send_to(&reply, peer).await;
        }
    }
}

/// The simulated internet host: answers every request with the caller's address.
async fn serve_echo(listener: TcpListener, stop: impl std::future::Future<Output = ()> + Send + 'static) {
    use axum::extract::ConnectInfo;
    let echo = axum::Router::new()
        .fallback(|ConnectInfo(peer): ConnectInfo<SocketAddr>| async move { format!("{}\n", peer.ip()) });
    let _ = axum::serve(listener, echo.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(stop)
        .await;
}

impl runtime::Attach for InstanceListeners {
    fn attach(
        &self,
        netns: &Arc<network::netns::Netns>,
        revision: &runtime::RevisionSpec,
    ) -> Result<Box<dyn std::any::Any + Send + Sync>, String> {
        // Its requests arrive through the VPC only when all its egress goes there (PROTOCOL.md §4.2).
        let source =
            if revision.egress.arrives_internal() { gateway::Source::Internal } else { gateway::Source::External };
        let plane = self.plane.get().ok_or("the platform is still starting")?.clone();
        let addresses = match &self.fabric {
            Some(fabric) => {
                let plan = egress_plan(&plane.app, &revision.egress)?;
                Some(fabric.attach(netns, &plan).map_err(|e| format!("cannot link the instance's network: {e}"))?)
            }
            None => None,
        };
        let ns = netns.clone();
        let bind: Bind =
            Arc::new(move |port| ns.listen(SocketAddr::from(([127, 0, 0, 1], port))).and_then(TcpListener::from_std));
        let api = bind(self.api_port).map_err(|e| format!("cannot serve the API inside the instance: {e}"))?;
        let gw = bind(self.gateway_port).map_err(|e| format!("cannot serve the gateway inside the instance: {e}"))?;
        let lb = bind(self.load_balancer_port)
            .map_err(|e| format!("cannot serve the load balancer inside the instance: {e}"))?;
        // Everything below stops when `tx` says so or is dropped — also when this function fails half-way.
        let (tx, rx) = tokio::sync::watch::channel(false);
        let router = self.api.clone();
        let api_stop = stopped(&rx);
        tokio::spawn(async move {
            axum::serve(api, router.into_make_service_with_connect_info::<SocketAddr>())
                .with_graceful_shutdown(api_stop)
                .await
        });
        let (host, workers) = (gateway::RouteBy::Host, &self.workers);
        // A Cloud Run instance names its service; a VPC host (no PORT) only its account.
        let service = (revision.port != 0).then(|| Arc::from(revision.service.as_str()));
        let from = gateway::Origin { account: revision.identity.email.as_str().into(), service };
        let serve = |l, by, src| {
            gateway::serve_from(workers.clone(), l, plane.clone(), by, src, Some(from.clone()), stopped(&rx))
        };
        tokio::spawn(serve(gw, host, source));
        tokio::spawn(serve(lb, gateway::RouteBy::HostOrServiceUrl, gateway::Source::LoadBalancer));
        // `http://SERVICE-NUMBER.REGION.run.app/`: the platform's resolver answers 127.0.0.1 for it, and the gateway
        // routes by Host on port 80 too (unless the app itself listens there).
        if revision.port != 80 {
            let web = bind(80).map_err(|e| format!("cannot serve the gateway on port 80 inside the instance: {e}"))?;
            tokio::spawn(serve(web, host, source));
        }
        let dns = netns
            .udp(SocketAddr::from(([127, 0, 0, 1], 53)))
            .and_then(tokio::net::UdpSocket::from_std)
            .map_err(|e| format!("cannot serve DNS inside the instance: {e}"))?;
        tokio::spawn(serve_dns(dns, plane.app.clone(), stopped(&rx)));
        tokio::spawn(serve_service_ports(plane, workers.clone(), bind, Some((revision.port, source, from)), rx));
        Ok(Box::new(Attached { stop: tx, _addresses: addresses }))
    }
}

/// The built-in sample server, run by the runtime as an instance (`gatehouse sample-hello`).
pub fn sample_hello() -> Result<()> {
    let port: u16 =
        std::env::var("PORT").ok().and_then(|p| p.parse().ok()).context("PORT is not set to a port number")?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(runtime::sample::serve(port)).context("the sample server failed")
}

/// The cgroups and hidden paths of a sandbox, or why this host has none (not root, no namespaces, no cgroups, no
/// `ip`).
fn sandbox_parts(home: &Home) -> Result<(runtime::Cgroups, Vec<std::path::PathBuf>), String> {
    if std::env::var_os("GATEHOUSE_NO_SANDBOX").is_some_and(|v| v == "1") {
        return Err("GATEHOUSE_NO_SANDBOX=1".into());
    }
    network::netns::available()?;
    let cgroups = runtime::Cgroups::discover()?;
    Ok((cgroups, vec![std::fs::canonicalize(&home.dir).unwrap_or_else(|_| home.dir.clone())]))
}

async fn bind(host: &str, port: u16) -> Result<TcpListener> {
    TcpListener::bind((host, port)).await.with_context(|| {
        format!("cannot listen on {host}:{port}; is another platform using it? Try `--port-base 0` to pick free ports")
    })
}

async fn wait_for_signal() -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}
