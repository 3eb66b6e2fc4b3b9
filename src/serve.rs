//! `casarray serve`: wires the boxes of docs/ARCHITECTURE.md together and
//! runs them until SIGTERM/SIGINT; SIGHUP, or a change of the config or
//! certificate files, reloads.
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
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch, Semaphore};

use crate::admin::{self, AdminListener};
use crate::cluster::{self, Cluster};
use crate::config::{self, Config};
use crate::dag::poll::DagPoller;
use crate::dag::Dag;
use crate::listen::drain::Drain;
use crate::listen::http_redirect::RedirectListener;
use crate::listen::https::HttpsListener;
use crate::listen::smtp::SmtpListener;
use crate::listen::Listeners;
use crate::live::Live;
use crate::metrics::Metrics;
use crate::snapshot::http::Frontend;
use crate::snapshot::Snapshot;
use crate::tls::{self, CertStore};
use crate::upstream::health::HealthChecks;
use crate::upstream::state::Registry;

/// Loads the config, builds a runtime with `[runtime] workers` threads and
/// serves until stopped.
pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let cfg = config::load(config_path)?;
    // One worker: a single-threaded event loop, as HAProxy's `nbthread 1`
    // or one nginx worker; it skips the work-stealing scheduler's
    // cross-thread bookkeeping, which one thread never needs.
    let mut builder = match cfg.runtime.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(workers) => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(workers);
            b
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
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
    /// `listen.http_redirect`, when set.
    pub http_redirect: Option<SocketAddr>,
    /// `listen.smtp`, when set.
    pub smtp: Option<SocketAddr>,
}

impl std::fmt::Display for Bound {
    /// The readiness line's addresses:
    /// `https://A (admin http://B[, redirect http://C][, smtp D])`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "https://{} (admin http://{}", self.https, self.admin)?;
        if let Some(redirect) = self.http_redirect {
            write!(f, ", redirect http://{redirect}")?;
        }
        if let Some(smtp) = self.smtp {
            write!(f, ", smtp {smtp}")?;
        }
        f.write_str(")")
    }
}

/// Everything a reload may replace.
struct Running {
    path: PathBuf,
    cfg: Arc<Config>,
    certs: Arc<CertStore>,
    registry: Registry,
    live: Arc<Live>,
    health: HealthChecks,
    /// Learns the members' DAG; one per config, like the health checks.
    dag_poller: DagPoller,
    admin: Arc<admin::Admin>,
    /// With `[cluster]`: this instance's membership, and the task that
    /// applies the cluster's drains to the members.
    cluster: Option<(Arc<Cluster>, tokio::task::JoinHandle<()>)>,
}

/// Serves `cfg` until SIGTERM or SIGINT.
pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    let server = start(cfg, true).await?;
    // Readiness: tests and scripts wait for this line.
    println!("casarray serving {}", server.bound);
    server.wait().await
}

/// A running array: its addresses, and a way to stop it.
pub struct Server {
    pub bound: Bound,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Server {
    /// Stops accepting, drains in-flight requests (bounded by the drain
    /// timeout) and waits for the end.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.wait().await
    }

    /// Waits until the array stops (a signal, or [`Server::shutdown`]).
    pub async fn wait(self) -> anyhow::Result<()> {
        self.task.await.context("the array's task failed")?
    }
}

/// Binds the listeners and starts the array in the background. With
/// `signals`, SIGHUP reloads and SIGTERM/SIGINT stop it; either way a
/// change of the config or certificate files reloads.
pub async fn start(cfg: Config, signals: bool) -> anyhow::Result<Server> {
    // Before anything listens: an exposed admin listener without a token, a
    // bad token file or a corrupt admin state file stop the start here.
    let admin_state = admin::Admin::open(&cfg)?;
    let metrics = Metrics::new().context("cannot register metrics")?;
    // With [cluster]: the cluster's view (drains, ticket keys) before
    // anything serves, bounded by its sync_timeout.
    let cluster = match cfg.cluster {
        Some(_) => {
            let c = Arc::new(Cluster::start(&cfg, &metrics)?);
            c.wait_synced().await;
            Some(c)
        }
        None => None,
    };
    let admin_state = Arc::new(admin_state.with_cluster(cluster.clone()));
    let certs = CertStore::load(&cfg.tls)?;
    for name in uncovered_names(&cfg, &certs) {
        tracing::warn!("no served certificate carries the public name {name}: clients using it get a certificate error");
    }
    export_cert_expiry(&certs, &metrics);
    let tls_config = tls::server_config(Arc::clone(&certs), &cfg.tls, shared_tickets(&cluster));
    let cfg = Arc::new(cfg);
    let registry = Registry::new();
    // With [cluster]: the database directory as the cluster has it.
    let revision = cluster.as_ref().map(|c| c.view().revision);
    let effective = cluster::effective_config(&cfg, cluster.as_deref());
    let snap = Snapshot::build(effective, &registry, &metrics, None)?;
    if let (Some(c), Some(r)) = (&cluster, revision) {
        c.applied(r);
    }
    // Drained members stay drained across restarts: before any traffic.
    admin_state.apply(&snap.upstreams);
    let health = HealthChecks::start(&cfg, &snap.upstreams);
    let live = Arc::new(Live {
        snapshot: ArcSwap::from_pointee(snap),
        tls: ArcSwap::new(tls_config),
        metrics,
        limit: Arc::new(Semaphore::new(cfg.proxy.max_connections)),
        dag: Dag::new(),
    });
    let dag_poller = DagPoller::start(
        &cfg,
        &live.snapshot.load().upstreams,
        Arc::clone(&live.dag),
        &live.metrics,
    );
    // With [cluster]: the active copies other instances learned, before
    // anything serves; and what this one learns first, for them.
    if let Some(c) = &cluster {
        c.follow_dag(Arc::clone(&live.dag), live.metrics.clone());
    }

    // Every listener is bound before any serves: a taken port stops the
    // start with nothing half-running.
    let graceful = Arc::new(GracefulShutdown::new());
    // L4 (SMTP) sessions, which hyper's graceful shutdown does not see.
    let sessions = Drain::new();
    let mut listeners = Listeners::new();
    let https = Arc::new(HttpsListener::new(Arc::clone(&live), Arc::clone(&graceful)));
    let admin_listener = Arc::new(AdminListener::new(
        Arc::clone(&live),
        Arc::clone(&admin_state),
    ));
    let bound = Bound {
        https: listeners
            .bind("listen.https", cfg.listen.https, https)
            .await?,
        admin: listeners
            .bind("listen.admin", cfg.listen.admin, admin_listener)
            .await?,
        http_redirect: match cfg.listen.http_redirect {
            Some(addr) => {
                let redirect = Arc::new(RedirectListener::new(Arc::clone(&live)));
                Some(
                    listeners
                        .bind("listen.http_redirect", addr, redirect)
                        .await?,
                )
            }
            None => None,
        },
        smtp: match cfg.listen.smtp {
            Some(addr) => {
                let smtp = Arc::new(SmtpListener::new(Arc::clone(&live), Arc::clone(&sessions)));
                Some(listeners.bind("listen.smtp", addr, smtp).await?)
            }
            None => None,
        },
    };
    listeners.start();
    if let Some(c) = &cluster {
        c.register(bound.https, bound.admin);
    }
    let cluster = cluster.map(|c| {
        let task = tokio::spawn(follow_cluster(
            Arc::clone(&c),
            Arc::clone(&admin_state),
            Arc::clone(&live),
        ));
        (c, task)
    });
    tracing::info!(https = %bound.https, admin = %bound.admin, array = %cfg.array.fqdn, "serving");

    let running = Running {
        path: cfg.path.clone(),
        cfg: Arc::clone(&cfg),
        certs,
        registry,
        live,
        health,
        dag_poller,
        admin: admin_state,
        cluster,
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    // Signal handlers and the file watch exist before `start` returns: a
    // SIGHUP, SIGTERM or config change right after readiness is never lost.
    let (reload_tx, reload_rx) = mpsc::channel::<()>(1);
    let watcher = start_watch(&running.cfg, reload_tx.clone());
    let events = Events {
        hup: signal_stream(signals, SignalKind::hangup())?,
        term: signal_stream(signals, SignalKind::terminate())?,
        int: signal_stream(signals, SignalKind::interrupt())?,
        reload_tx,
        reload_rx,
        watcher,
        stop_rx,
        cluster_changes: running.cluster.as_ref().map(|(c, _)| c.subscribe()),
    };
    let task = tokio::spawn(supervise(
        running,
        events,
        listeners,
        Draining { graceful, sessions },
    ));
    Ok(Server {
        bound,
        stop: stop_tx,
        task,
    })
}

/// How often idle member connections past `proxy.pool_idle_timeout` are
/// closed (requests never reuse them in any case).
const POOL_SWEEP: std::time::Duration = std::time::Duration::from_secs(5);

/// Reloads on SIGHUP and file changes; on SIGTERM, SIGINT or a stop request,
/// stops accepting and drains.
async fn supervise(
    mut running: Running,
    events: Events,
    mut listeners: Listeners,
    draining: Draining,
) -> anyhow::Result<()> {
    let Events {
        mut hup,
        mut term,
        mut int,
        reload_tx,
        mut reload_rx,
        mut watcher,
        mut stop_rx,
        mut cluster_changes,
    } = events;
    let mut sweep = tokio::time::interval(POOL_SWEEP);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sweep.tick() => running.live.snapshot.load().upstreams.sweep_pools(),
            Some(()) = next_signal(&mut hup) => {
                tracing::info!("SIGHUP: reloading");
                running.reload();
                watcher = start_watch(&running.cfg, reload_tx.clone());
            }
            Some(()) = reload_rx.recv() => {
                tracing::info!("config or certificate file changed: reloading");
                running.reload();
                watcher = start_watch(&running.cfg, reload_tx.clone());
            }
            Some(()) = next_signal(&mut term) => { tracing::info!("SIGTERM: stopping"); break; }
            Some(()) = next_signal(&mut int) => { tracing::info!("SIGINT: stopping"); break; }
            Some(()) = next_change(&mut cluster_changes) => running.follow_directory(),
            _ = stop_rx.changed() => { tracing::info!("stop requested"); break; }
        }
    }
    drop(watcher);
    if let Some((cluster, task)) = &running.cluster {
        task.abort();
        cluster.leave().await;
    }

    // Stop accepting, then let connections finish within the drain timeout.
    // The accept loops have ended, so the HTTPS listener's share of
    // `graceful` is gone.
    listeners.stop().await;
    let drain = running.cfg.proxy.drain_timeout;
    let Draining { graceful, sessions } = draining;
    let http = async {
        match Arc::try_unwrap(graceful) {
            Ok(graceful) => graceful.shutdown().await,
            Err(_) => {
                tracing::warn!("connections could not be drained: a listener is still running")
            }
        }
    };
    match tokio::time::timeout(drain, futures_util::future::join(http, sessions.idle())).await {
        Ok(_) => tracing::info!("all connections finished"),
        Err(_) => tracing::warn!(
            "drain timeout ({drain:?}) reached; closing what is left ({} SMTP sessions)",
            sessions.open()
        ),
    }
    Ok(())
}

/// What a stop waits for: HTTP connections (hyper's graceful shutdown) and
/// L4 sessions.
struct Draining {
    graceful: Arc<GracefulShutdown>,
    sessions: Arc<Drain>,
}

/// What the supervisor waits on.
struct Events {
    hup: Option<tokio::signal::unix::Signal>,
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
    reload_tx: mpsc::Sender<()>,
    reload_rx: mpsc::Receiver<()>,
    watcher: Option<tls::FileWatcher>,
    stop_rx: watch::Receiver<bool>,
    /// With `[cluster]`: changes of the cluster's view.
    cluster_changes: Option<watch::Receiver<u64>>,
}

fn signal_stream(
    on: bool,
    kind: SignalKind,
) -> anyhow::Result<Option<tokio::signal::unix::Signal>> {
    if !on {
        return Ok(None);
    }
    signal(kind)
        .map(Some)
        .with_context(|| format!("cannot handle signal {}", kind.as_raw_value()))
}

async fn next_change(rx: &mut Option<watch::Receiver<u64>>) -> Option<()> {
    match rx {
        Some(rx) => rx.changed().await.ok(),
        None => std::future::pending().await,
    }
}

async fn next_signal(s: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match s {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

impl Running {
    /// Reloads config and certificates. The caller then builds a new file
    /// watch whether or not the new config was taken: a taken one may name
    /// other files, and a refused one may have come from a symlink swap
    /// (Kubernetes' `..data`), after which the same paths lead elsewhere.
    fn reload(&mut self) {
        let metrics = self.live.metrics.clone();
        match self.try_reload() {
            Ok(()) => {
                metrics.config_reloads.with_label_values(&["success"]).inc();
                tracing::info!("reload done");
            }
            Err(e) => {
                metrics.config_reloads.with_label_values(&["failure"]).inc();
                tracing::error!("reload refused, the old config keeps serving: {e:#}");
            }
        }
    }

    fn try_reload(&mut self) -> anyhow::Result<()> {
        let new = config::load(&self.path)?;
        if new.listen != self.cfg.listen {
            tracing::warn!("listen addresses changed: they take effect on restart only");
        }
        if new.cluster != self.cfg.cluster {
            tracing::warn!("[cluster] changed: it takes effect on restart only");
        }
        if new.runtime != self.cfg.runtime {
            tracing::warn!("[runtime] changed: it takes effect on restart only");
        }
        self.certs.reload(&new.tls)?;
        export_cert_expiry(&self.certs, &self.live.metrics);
        if new.tls.session_resumption != self.cfg.tls.session_resumption {
            self.live.tls.store(tls::server_config(
                Arc::clone(&self.certs),
                &new.tls,
                shared_tickets(&self.cluster.as_ref().map(|(c, _)| Arc::clone(c))),
            ));
        }
        let new = Arc::new(new);
        let old = self.live.snapshot.load();
        let snap = Snapshot::build(
            cluster::effective_config(&new, self.cluster.as_ref().map(|(c, _)| &**c)),
            &self.registry,
            &self.live.metrics,
            Some(&old),
        )?;
        // The token file is read again; drain state applies to the new members.
        self.admin.reload(&new, &snap.upstreams)?;
        // Start the new checkers before the old ones stop, so health keeps
        // being watched; the cells they write are shared.
        let health = HealthChecks::start(&new, &snap.upstreams);
        let dag_poller = DagPoller::start(
            &new,
            &snap.upstreams,
            Arc::clone(&self.live.dag),
            &self.live.metrics,
        );
        self.live.snapshot.store(Arc::new(snap));
        self.health = health;
        self.dag_poller = dag_poller;
        self.cfg = new;
        Ok(())
    }
}

impl Running {
    /// Follows the cluster's database directory: when the effective
    /// config's databases differ from the snapshot's, the snapshot is
    /// replaced by one with the same members (their state, connections and
    /// health checks untouched) and the HTTP side (the rewrite plan) built
    /// again from the effective config. Then tells the cluster the view's
    /// revision is applied.
    fn follow_directory(&self) {
        let Some((cluster, _)) = &self.cluster else {
            return;
        };
        let revision = cluster.view().revision;
        let cfg = cluster::effective_config(&self.cfg, Some(cluster));
        let old = self.live.snapshot.load_full();
        if cfg.databases != old.cfg.databases {
            let snap = Snapshot {
                http: Frontend::build(&cfg, &self.live.metrics, Some(&old.http)),
                upstreams: Arc::clone(&old.upstreams),
                cfg,
            };
            self.live.snapshot.store(Arc::new(snap));
            tracing::info!(revision, "cluster: database directory changed; applied");
        }
        cluster.applied(revision);
    }
}

/// The cluster's ticketer for the TLS config, with `[cluster]`.
fn shared_tickets(
    cluster: &Option<Arc<Cluster>>,
) -> Option<Arc<dyn rustls::server::ProducesTickets>> {
    cluster
        .as_ref()
        .map(|c| c.ticketer() as Arc<dyn rustls::server::ProducesTickets>)
}

/// Applies the cluster's drain state to the current snapshot's members
/// whenever the cluster's view changes.
async fn follow_cluster(cluster: Arc<Cluster>, admin: Arc<admin::Admin>, live: Arc<Live>) {
    let mut changes = cluster.subscribe();
    loop {
        admin.apply(&live.snapshot.load().upstreams);
        if changes.changed().await.is_err() {
            return;
        }
    }
}

/// Watches the config file and every certificate and key file it names,
/// the members' CA bundle included.
fn start_watch(cfg: &Config, tx: mpsc::Sender<()>) -> Option<tls::FileWatcher> {
    let mut files = vec![cfg.path.clone()];
    if cfg.tls.watch {
        for ck in std::iter::once(&cfg.tls.default).chain(cfg.tls.sni.iter()) {
            files.push(ck.cert.clone());
            if let Some(key) = &ck.key {
                files.push(key.clone());
            }
        }
        if let Some(ca) = &cfg.member_tls.ca {
            files.push(ca.path.clone());
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

/// The array's public names that no served certificate carries.
fn uncovered_names(cfg: &Config, certs: &CertStore) -> Vec<String> {
    cfg.array
        .public_names
        .iter()
        .filter(|n| !certs.covers(n))
        .cloned()
        .collect()
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
    let cfg = config::load(config_path)?;
    let certs = CertStore::load(&cfg.tls)?;
    admin::Admin::open(&cfg)?;
    let served: Vec<String> = certs.served().into_iter().map(|c| c.name).collect();
    let uncovered = uncovered_names(&cfg, &certs);
    if !uncovered.is_empty() {
        anyhow::bail!(
            "{}: no certificate carries the public name(s) {} (see `casarray cert show`)",
            config_path.display(),
            uncovered.join(", ")
        );
    }
    crate::upstream::tls::client_config(&cfg)?;
    Ok(format!(
        "{}: ok ({} members{}, {} services, certificates: {})",
        config_path.display(),
        cfg.members.len(),
        member_tls_summary(&cfg),
        cfg.services.len(),
        served.join(", ")
    ))
}

/// `, N over HTTPS verified against CA` for `check`, when some member
/// uses TLS.
fn member_tls_summary(cfg: &Config) -> String {
    let n = cfg.members.iter().filter(|m| m.tls).count();
    if n == 0 {
        return String::new();
    }
    let how = match (&cfg.member_tls.ca, cfg.member_tls.verify) {
        (_, false) => "NOT verified (member_tls.verify = false)".to_string(),
        (Some(ca), true) => format!("verified against {}", ca.path.display()),
        (None, true) => "verified".to_string(),
    };
    format!(", {n} over HTTPS {how}")
}
