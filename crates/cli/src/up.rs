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
        let (api_port, gw_port) = match args.port_base {
            0 => (0, 0),
            b => (b, b.checked_add(1).context("--port-base is too high")?),
        };
        let api_listener = bind(&args.host, api_port).await?;
        let gw_listener = bind(&args.host, gw_port).await?;
        let api_addr = api_listener.local_addr()?;
        let gw_addr = gw_listener.local_addr()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let api_router = api::router(boot.app.clone());
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
        let config = runtime::RuntimeConfig {
            sample_program,
            idle_timeout: args.instance_idle_timeout,
            startup_timeout: args.instance_startup_timeout,
            log_lines: 1000,
        };
        let rt = runtime::Runtime::new(config, crate::platform::Factory { app: app.clone() });
        app.set_deployer(Arc::new(crate::platform::RuntimeDeployer {
            runtime: rt.clone(),
            handle: tokio::runtime::Handle::current(),
            app: app.clone(),
        }));
        let (denials, denial_rx) = tokio::sync::mpsc::unbounded_channel();
        let audit_task = tokio::spawn(crate::platform::audit_denials(app.clone(), denial_rx));
        let plane = Arc::new(crate::platform::GatewayPlane {
            app: app.clone(),
            runtime: rt.clone(),
            routes: Default::default(),
            denials,
        });
        plane.refresh_routes();
        let stopped = |rx: &tokio::sync::watch::Receiver<bool>| {
            let mut rx = rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let gw_task = tokio::spawn(gateway::serve_on(
            workers.clone(),
            gw_listener,
            plane.clone(),
            gateway::RouteBy::Host,
            stopped(&stop_rx),
        ));
        let listeners_task =
            tokio::spawn(serve_service_ports(plane.clone(), workers, args.host.clone(), stop_rx.clone()));
        crate::platform::start_services(app.clone(), rt.clone());
        let info = DaemonInfo {
            api: format!("http://{api_addr}"),
            gateway: format!("http://{gw_addr}"),
            pid: std::process::id(),
            project: project.project_id.clone(),
            project_number: project.project_number.clone(),
            region: project.region.clone(),
            jwks: format!("http://{api_addr}/oauth2/v3/certs"),
            certs: format!("http://{api_addr}/oauth2/v1/certs"),
            issuer: boot.app.issuer().url().to_owned(),
            version: env!("CARGO_PKG_VERSION").into(),
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
        writeln!(out, "  issuer   {} (keys rotate every {})", info.issuer, humanize(args.key_rotation))?;
        writeln!(out, "  jwks     {}", info.jwks)?;
        writeln!(out, "  certs    {}", info.certs)?;
        // Nothing may claim enforcement it does not have (issue 6): instances are plain child processes today.
        writeln!(
            out,
            "  network  NOT ENFORCED: ingress and VPC egress settings are stored and shown, not applied (instances \
             run without a sandbox)"
        )?;
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
        let _ = listeners_task.await;
        rt.shutdown().await;
        audit_task.abort();
        // Remove daemon.json only if it is still ours.
        if home.daemon().is_ok_and(|d| d.pid == std::process::id()) {
            let _ = std::fs::remove_file(home.path("daemon.json"));
        }
        println!("Gatehouse stopped.");
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

/// Keeps one gateway listener per service port (a service's URL is `http://127.0.0.1:PORT`), following the
/// control plane's routes, until stopped.
async fn serve_service_ports(
    plane: Arc<crate::platform::GatewayPlane>,
    workers: Arc<gateway::Workers>,
    host: String,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut changes = plane.app.subscribe_routes();
    let mut listeners: HashMap<u16, tokio::task::JoinHandle<std::io::Result<()>>> = HashMap::new();
    loop {
        let ports = plane.refresh_routes();
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
            match TcpListener::bind((host.as_str(), port)).await {
                Ok(listener) => {
                    let mut rx = stop.clone();
                    let shutdown = async move {
                        let _ = rx.wait_for(|s| *s).await;
                    };
                    let by = gateway::RouteBy::Port(port);
                    let task = tokio::spawn(gateway::serve_on(workers.clone(), listener, plane.clone(), by, shutdown));
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

/// The built-in sample server, run by the runtime as an instance (`gatehouse sample-hello`).
pub fn sample_hello() -> Result<()> {
    let port: u16 =
        std::env::var("PORT").ok().and_then(|p| p.parse().ok()).context("PORT is not set to a port number")?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build()?;
    rt.block_on(runtime::sample::serve(port)).context("the sample server failed")
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
