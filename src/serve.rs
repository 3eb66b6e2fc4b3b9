//! `casarray serve`: wires the boxes of DESIGN.md together and runs them
//! until SIGTERM/SIGINT; SIGHUP, or a change of the config or certificate
//! files, reloads.
//!
//! A reload validates the new config and loads its certificates before
//! anything is swapped: a bad config or certificate is refused, logged and
//! counted, and the old one keeps serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::admin::{self, Metrics};
use crate::config::{self, Config};
use crate::proxy::listener::{accept_loop, Shared};
use crate::proxy::snapshot::Snapshot;
use crate::tls::{self, CertStore};
use crate::upstream::health::HealthChecks;
use crate::upstream::member::Registry;

/// Loads the config, builds a runtime with `[runtime] workers` threads and
/// serves until stopped.
pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let cfg = config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = cfg.runtime.workers {
        builder.worker_threads(workers);
    }
    let rt = builder
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    rt.block_on(serve(cfg))
}

/// The addresses a running array listens on.
#[derive(Debug, Clone, Copy)]
pub struct Bound {
    pub https: SocketAddr,
    pub admin: SocketAddr,
}

/// Everything a reload may replace.
struct Running {
    path: PathBuf,
    cfg: Arc<Config>,
    certs: Arc<CertStore>,
    registry: Registry,
    shared: Arc<Shared>,
    health: HealthChecks,
}

/// Serves `cfg` until SIGTERM or SIGINT.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let metrics = Metrics::new().context("cannot register metrics")?;
    let certs = CertStore::load(&cfg.tls).map_err(|e| anyhow::anyhow!("{e}"))?;
    export_cert_expiry(&certs, &metrics);
    let tls_config = tls::server_config(Arc::clone(&certs), &cfg.tls);
    let cfg = Arc::new(cfg);
    let registry = Registry::new();
    let snap = Snapshot::build(Arc::clone(&cfg), &registry, &metrics)?;
    let health = HealthChecks::start(&cfg, &snap.upstreams, &metrics);
    let shared = Arc::new(Shared {
        snapshot: ArcSwap::from_pointee(snap),
        tls: ArcSwap::new(tls_config),
        metrics: metrics.clone(),
        limit: Arc::new(Semaphore::new(cfg.proxy.max_connections)),
    });

    let https = TcpListener::bind(cfg.listen.https)
        .await
        .with_context(|| format!("cannot listen on {} (listen.https)", cfg.listen.https))?;
    let admin_listener = TcpListener::bind(cfg.listen.admin)
        .await
        .with_context(|| format!("cannot listen on {} (listen.admin)", cfg.listen.admin))?;
    let bound = Bound {
        https: https.local_addr()?,
        admin: admin_listener.local_addr()?,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let graceful = Arc::new(GracefulShutdown::new());
    let accept = tokio::spawn(accept_loop(
        https,
        Arc::clone(&shared),
        Arc::clone(&graceful),
        stop_rx.clone(),
    ));
    let admin_task = tokio::spawn(admin::serve(admin_listener, Arc::clone(&shared), stop_rx));

    let mut running = Running {
        path: cfg.path.clone(),
        cfg: Arc::clone(&cfg),
        certs,
        registry,
        shared,
        health,
    };
    let (reload_tx, mut reload_rx) = mpsc::channel::<()>(1);
    let mut watcher = start_watch(&running.cfg, reload_tx.clone());

    // Readiness: tests and scripts wait for this line.
    println!(
        "casarray serving https://{} (admin http://{})",
        bound.https, bound.admin
    );
    tracing::info!(https = %bound.https, admin = %bound.admin, array = %cfg.array.fqdn, "serving");

    let mut hup = signal(SignalKind::hangup()).context("cannot handle SIGHUP")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    loop {
        tokio::select! {
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading");
                if running.reload() {
                    watcher = start_watch(&running.cfg, reload_tx.clone());
                }
            }
            Some(()) = reload_rx.recv() => {
                tracing::info!("config or certificate file changed: reloading");
                if running.reload() {
                    watcher = start_watch(&running.cfg, reload_tx.clone());
                }
            }
            _ = term.recv() => { tracing::info!("SIGTERM: stopping"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: stopping"); break; }
        }
    }
    drop(watcher);

    // Stop accepting, then let connections finish within the drain timeout.
    let _ = stop_tx.send(true);
    let _ = accept.await;
    let drain = running.cfg.proxy.drain_timeout;
    match Arc::try_unwrap(graceful) {
        Ok(graceful) => match tokio::time::timeout(drain, graceful.shutdown()).await {
            Ok(()) => tracing::info!("all connections finished"),
            Err(_) => tracing::warn!("drain timeout ({drain:?}) reached; closing what is left"),
        },
        Err(_) => {
            tracing::warn!("connections could not be drained: the accept loop is still running")
        }
    }
    admin_task.abort();
    Ok(())
}

impl Running {
    /// Reloads config and certificates; returns true when the new config
    /// was taken (the file watch must then follow its files).
    fn reload(&mut self) -> bool {
        let metrics = self.shared.metrics.clone();
        match self.try_reload() {
            Ok(()) => {
                metrics.config_reloads.with_label_values(&["success"]).inc();
                tracing::info!("reload done");
                true
            }
            Err(e) => {
                metrics.config_reloads.with_label_values(&["failure"]).inc();
                tracing::error!("reload refused, the old config keeps serving: {e:#}");
                false
            }
        }
    }

    fn try_reload(&mut self) -> anyhow::Result<()> {
        let new = config::load(&self.path).map_err(|e| anyhow::anyhow!("{e}"))?;
        if new.listen != self.cfg.listen {
            tracing::warn!("listen addresses changed: they take effect on restart only");
        }
        if new.runtime != self.cfg.runtime {
            tracing::warn!("[runtime] changed: it takes effect on restart only");
        }
        self.certs
            .reload(&new.tls)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        export_cert_expiry(&self.certs, &self.shared.metrics);
        if new.tls.session_resumption != self.cfg.tls.session_resumption {
            self.shared
                .tls
                .store(tls::server_config(Arc::clone(&self.certs), &new.tls));
        }
        let new = Arc::new(new);
        let snap = Snapshot::build(Arc::clone(&new), &self.registry, &self.shared.metrics)?;
        // Start the new checkers before the old ones stop, so health keeps
        // being watched; the cells they write are shared.
        let health = HealthChecks::start(&new, &snap.upstreams, &self.shared.metrics);
        self.shared.snapshot.store(Arc::new(snap));
        self.health = health;
        self.cfg = new;
        Ok(())
    }
}

/// Watches the config file and every certificate and key file it names.
fn start_watch(cfg: &Config, tx: mpsc::Sender<()>) -> Option<tls::FileWatcher> {
    let mut files = vec![cfg.path.clone()];
    if cfg.tls.watch {
        for ck in std::iter::once(&cfg.tls.default).chain(cfg.tls.sni.iter()) {
            files.push(ck.cert.clone());
            if let Some(key) = &ck.key {
                files.push(key.clone());
            }
        }
    }
    match tls::watch_files(files, tx) {
        Ok(w) => Some(w),
        Err(e) => {
            tracing::warn!("cannot watch config and certificate files (SIGHUP still reloads): {e}");
            None
        }
    }
}

fn export_cert_expiry(certs: &CertStore, metrics: &Metrics) {
    metrics.certificate_expiry.reset();
    for c in certs.served() {
        metrics
            .certificate_expiry
            .with_label_values(&[&c.name])
            .set(c.not_after_unix);
    }
}

/// `casarray check`: the config, then every certificate and key it names.
pub fn check(config_path: &Path) -> anyhow::Result<String> {
    let cfg = config::load(config_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let certs = CertStore::load(&cfg.tls).map_err(|e| anyhow::anyhow!("{e}"))?;
    let served: Vec<String> = certs.served().into_iter().map(|c| c.name).collect();
    Ok(format!(
        "{}: ok ({} members, {} services, certificates: {})",
        config_path.display(),
        cfg.members.len(),
        cfg.services.len(),
        served.join(", ")
    ))
}
