//! Several instances of one array, one state: `[cluster]` keeps the drain
//! state the admin API changes, the TLS session ticket keys and the
//! database directory (`rpc_client_access_server`, and the DAG's active
//! copies) in etcd, so that every instance acts alike.
//!
//! - `client`: the etcd connection from `[cluster]`, bounded calls, errors;
//! - `view`: the keys under the prefix, parsed ([`ClusterView`]);
//! - `sync`: load everything, then follow a watch; on any failure load
//!   again (the connected flag, metric and log say when it is lost);
//! - `members`: drain and activate, written to etcd;
//! - `directory`: `rpc_client_access_server` written to etcd, and the
//!   effective config (the file's, the cluster's values over it) that
//!   `serve` builds the snapshot from ([`effective_config`]);
//! - `dag`: the DAG's active copies, written by the first instance to
//!   learn a new epoch (compare-and-swap), laid over every instance's map;
//! - `registry`: this instance under a lease (the instances seen);
//! - `tickets`: the shared ticket keys, their rotation, the rustls ticketer.
//!
//! Without `[cluster]` none of this runs: the admin state file holds the
//! drains, as before.

mod client;
pub mod dag;
pub mod directory;
mod members;
mod registry;
mod sync;
pub mod tickets;
pub mod view;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::{ArcSwap, ArcSwapOption};
use etcd_client::Client;
use prometheus::IntGauge;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use client::ClusterError;
pub use tickets::ClusterTicketer;
pub use view::ClusterView;

use crate::api::{ClusterInstanceView, ClusterStatusView};
use crate::config::{ClusterConfig, Config};
use crate::dag::Dag;
use crate::metrics::Metrics;

/// This instance's membership of the cluster, shared by the admin API,
/// the TLS config and `serve`. Its tasks stop when it is dropped.
pub struct Cluster {
    shared: Arc<Shared>,
    tasks: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

/// What the tasks and the callers share.
struct Shared {
    cfg: ClusterConfig,
    instance: String,
    client: ArcSwapOption<Client>,
    view: ArcSwap<ClusterView>,
    connected: AtomicBool,
    connected_gauge: IntGauge,
    instances_gauge: IntGauge,
    /// Counts view changes; `serve` applies drains on each.
    changed: watch::Sender<u64>,
    ticketer: Arc<ClusterTicketer>,
    /// The lease this instance is registered under (0: none).
    lease: AtomicI64,
    /// The view revision `serve` has applied to the snapshot (the database
    /// directory); see [`Cluster::applied`].
    applied: watch::Sender<i64>,
}

impl Cluster {
    /// Starts following the cluster of `cfg.cluster` (which must be set):
    /// connects and syncs in the background; see [`Cluster::wait_synced`].
    /// Fails only on what retrying cannot fix (a file `[cluster]` names
    /// cannot be read, a metric cannot be registered).
    pub fn start(cfg: &Config, metrics: &Metrics) -> anyhow::Result<Cluster> {
        let Some(c) = cfg.cluster.clone() else {
            anyhow::bail!("no [cluster] in {}", cfg.path.display());
        };
        let opts = client::connect_options(&c)?;
        let connected_gauge = IntGauge::new(
            "casarray_cluster_connected",
            "1 while this instance follows the cluster's state in etcd, 0 while etcd is unreachable",
        )?;
        let instances_gauge = IntGauge::new(
            "casarray_cluster_instances",
            "Instances of the array registered in etcd, as last seen",
        )?;
        metrics
            .registry()
            .register(Box::new(connected_gauge.clone()))?;
        metrics
            .registry()
            .register(Box::new(instances_gauge.clone()))?;
        let instance = c
            .instance
            .clone()
            .unwrap_or_else(|| default_instance(cfg.listen.admin));
        let ticketer = ClusterTicketer::new(c.ticket_rotation);
        let shared = Arc::new(Shared {
            cfg: c,
            instance,
            client: ArcSwapOption::empty(),
            view: ArcSwap::from_pointee(ClusterView::default()),
            connected: AtomicBool::new(false),
            connected_gauge,
            instances_gauge,
            changed: watch::channel(0).0,
            ticketer,
            lease: AtomicI64::new(0),
            applied: watch::channel(0).0,
        });
        let tasks = vec![
            tokio::spawn(sync::run(Arc::clone(&shared), opts)),
            tokio::spawn(tickets_task(Arc::clone(&shared))),
        ];
        Ok(Cluster {
            shared,
            tasks: std::sync::Mutex::new(tasks),
        })
    }

    /// Waits until the cluster's view is loaded and the ticket keys are
    /// known, at most `[cluster] sync_timeout`. Returns whether it got
    /// there; when not, the instance serves with what it has (and logs so).
    pub async fn wait_synced(&self) -> bool {
        let limit = self.shared.cfg.sync_timeout;
        let mut rx = self.shared.changed.subscribe();
        let done = tokio::time::timeout(limit, async {
            loop {
                if self.shared.connected.load(Ordering::SeqCst) {
                    if self.shared.ticketer.ready() {
                        return;
                    }
                    if let Err(e) = tickets::rotate_once(&self.shared).await {
                        tracing::debug!("cluster: ticket keys not made yet: {e}");
                    }
                    if self.shared.ticketer.ready() {
                        return;
                    }
                }
                let _ = tokio::time::timeout(Duration::from_millis(200), rx.changed()).await;
            }
        })
        .await
        .is_ok();
        if done {
            let view = self.view();
            tracing::info!(
                instance = %self.shared.instance,
                revision = view.revision,
                drained = ?view.drained_names(),
                instances = view.instances.len(),
                "cluster: synced with etcd"
            );
        } else {
            tracing::warn!(
                instance = %self.shared.instance,
                "cluster: not synced with etcd within {limit:?}; serving with no shared state until it is"
            );
        }
        done
    }

    /// Registers this instance (under a lease) once it serves at `https`
    /// and `admin`, and keeps it registered.
    pub fn register(&self, https: SocketAddr, admin: SocketAddr) {
        let record = view::InstanceRecord {
            instance: self.shared.instance.clone(),
            admin: admin.to_string(),
            https: https.to_string(),
            started_unix_ms: now_unix_ms(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        let task = tokio::spawn(registry::run(Arc::clone(&self.shared), record));
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(task);
    }

    /// Shares the DAG's active copies: what `dag`'s poller learns first is
    /// written to etcd, what the cluster knows is laid over `dag`.
    pub fn follow_dag(&self, dag: Arc<Dag>, metrics: Metrics) {
        let task = tokio::spawn(dag::run(Arc::clone(&self.shared), dag, metrics));
        self.tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(task);
    }

    /// Leaves the cluster: revokes this instance's lease (bounded), so the
    /// others stop listing it at once.
    pub async fn leave(&self) {
        registry::revoke(&self.shared).await;
    }

    /// The view now.
    pub fn view(&self) -> Arc<ClusterView> {
        self.shared.view.load_full()
    }

    /// Changes whenever the view does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.changed.subscribe()
    }

    /// The rustls ticketer with the cluster's keys.
    pub fn ticketer(&self) -> Arc<ClusterTicketer> {
        Arc::clone(&self.shared.ticketer)
    }

    /// Whether this instance follows etcd now.
    pub fn connected(&self) -> bool {
        self.shared.connected.load(Ordering::SeqCst)
    }

    /// What `/api/array` says about the cluster.
    pub fn status(&self) -> ClusterStatusView {
        let view = self.view();
        ClusterStatusView {
            endpoints: self.shared.cfg.endpoints.clone(),
            prefix: self.shared.cfg.prefix.clone(),
            instance: self.shared.instance.clone(),
            connected: self.connected(),
            revision: view.revision,
            instances: view
                .instances
                .values()
                .map(|i| ClusterInstanceView {
                    instance: i.instance.clone(),
                    admin: i.admin.clone(),
                    https: i.https.clone(),
                    started_unix_ms: i.started_unix_ms,
                    version: i.version.clone(),
                })
                .collect(),
        }
    }

    /// `serve` has applied the view at `revision` (the snapshot is built
    /// from [`effective_config`] of it): admin changes waiting for
    /// it return.
    pub fn applied(&self, revision: i64) {
        self.shared.applied.send_if_modified(|r| {
            let newer = revision > *r;
            if newer {
                *r = revision;
            }
            newer
        });
    }

    /// Sets database `name`'s (as configured) `rpc_client_access_server` to
    /// `fqdn` (a checked host name) for the whole cluster, in etcd; an
    /// error when etcd did not take it (nothing changed anywhere).
    pub async fn set_rpc_client_access_server(
        &self,
        name: &str,
        fqdn: &str,
    ) -> Result<(), ClusterError> {
        directory::set_rpc_client_access_server(&self.shared, name, fqdn).await
    }

    /// Drains member `member` (`drained`) or puts it back, in etcd. `Ok`
    /// with whether the cluster's state changed; an error when etcd did not
    /// take it (nothing changed anywhere).
    pub async fn set_drained(&self, member: &str, drained: bool) -> Result<bool, ClusterError> {
        members::set_drained(&self.shared, member, drained).await
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let tasks = self
            .tasks
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for t in tasks.iter() {
            t.abort();
        }
    }
}

impl Shared {
    /// An etcd client, when connected.
    fn client(&self) -> Result<Client, ClusterError> {
        if !self.connected.load(Ordering::SeqCst) {
            return Err(ClusterError::NotConnected);
        }
        match self.client.load_full() {
            Some(c) => Ok((*c).clone()),
            None => Err(ClusterError::NotConnected),
        }
    }

    /// Replaces the view; the ticket keys and the gauges follow.
    fn store(&self, view: ClusterView) {
        if let Some((keys, _)) = &view.tickets {
            let same = self
                .view
                .load()
                .tickets
                .as_ref()
                .is_some_and(|(k, _)| k == keys);
            if !same || !self.ticketer.ready() {
                self.ticketer.set(keys);
            }
        }
        self.instances_gauge.set(view.instances.len() as i64);
        self.view.store(Arc::new(view));
        self.changed.send_modify(|n| *n += 1);
    }

    /// Waits until the watch has brought the view to `revision` (a write
    /// of ours etcd acknowledged at it), at most `limit`: the view then
    /// holds it, in etcd's order with every other instance's changes.
    /// Returns whether it got there.
    async fn wait_revision(&self, revision: i64, limit: Duration) -> bool {
        let mut rx = self.changed.subscribe();
        tokio::time::timeout(limit, async {
            while self.view.load().revision < revision {
                if rx.changed().await.is_err() {
                    return;
                }
            }
        })
        .await
        .is_ok()
            && self.view.load().revision >= revision
    }

    /// Waits until `serve` has applied `revision` (at most `limit`).
    async fn wait_applied(&self, revision: i64, limit: Duration) -> bool {
        let mut rx = self.applied.subscribe();
        tokio::time::timeout(limit, rx.wait_for(|r| *r >= revision))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Changes the view with `edit` (the watch's events, in order).
    fn edit(&self, edit: impl FnOnce(&mut ClusterView)) {
        let mut view = (*self.view.load_full()).clone();
        edit(&mut view);
        self.store(view);
    }

    fn set_connected(&self, connected: bool) {
        let was = self.connected.swap(connected, Ordering::SeqCst);
        self.connected_gauge.set(i64::from(connected));
        if was != connected {
            // Wake anyone waiting for a sync.
            self.changed.send_modify(|n| *n += 1);
        }
    }
}

/// The config the snapshot is built from: `cfg` (the config file) and,
/// with `[cluster]`, the cluster's database directory laid over it. `serve`
/// makes it here at start, on reload and on each change of the cluster.
pub fn effective_config(cfg: &Arc<Config>, cluster: Option<&Cluster>) -> Arc<Config> {
    let view = cluster.map(Cluster::view);
    directory::effective_config(cfg, view.as_deref())
}

/// The rotation of the ticket keys: looked at every tenth of the period
/// (at least every second, at most every minute).
async fn tickets_task(shared: Arc<Shared>) {
    let tick =
        (shared.cfg.ticket_rotation / 10).clamp(Duration::from_secs(1), Duration::from_secs(60));
    loop {
        tokio::time::sleep(tick).await;
        if !shared.connected.load(Ordering::SeqCst) {
            continue;
        }
        if let Err(e) = tickets::rotate_once(&shared).await {
            tracing::warn!(
                "cluster: TLS ticket key rotation not done (retried): {}",
                crate::errors::error_chain(&e)
            );
        }
    }
}

/// The host name and the admin port (`host-a:9090`); the process id
/// instead of the port when the admin port is chosen by the system.
fn default_instance(admin: SocketAddr) -> String {
    let host = hostname().unwrap_or_else(|| "casarray".to_owned());
    match admin.port() {
        0 => format!("{host}:pid{}", std::process::id()),
        port => format!("{host}:{port}"),
    }
}

fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    (!name.is_empty()).then_some(name)
}

fn now_unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
