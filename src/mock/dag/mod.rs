//! The database availability group (DAG) side of a mock server
//! (`mock-server --dag DIR/dag.toml`).
//!
//! Each server keeps its own copy of each database it hosts (`copy`), in
//! its own `--store` directory. The copy of record that takes writes (the
//! active copy, "mounted") writes every change as a numbered log
//! generation before it answers (`logs`); passive copies copy new
//! generations from the active server over HTTP and replay them
//! (`replication`). Which copy is active, at which epoch, is the cluster
//! state (`state`), shared through files of the lab directory and changed
//! by compare-and-swap (`versioned`; no lock that a stopped server could
//! hold) by a server with quorum (`quorum`: the members plus, with an even
//! number of them, the witness lease of `witness`). `dag.toml` edits
//! (rare: a server registering its address, a copy added or removed) take
//! the DAG lock (`lock`).
//!
//! Active Manager (`manager`) runs in every server, each heartbeat: it
//! pings the others (`heartbeat`), takes or renews the witness when it
//! needs its vote, dismounts its copies when it has no quorum, fails a
//! database over when the server with its active copy has not been heard
//! from for `failure_timeout` (`election` picks the copy, within
//! `AutoDatabaseMountDial`), and makes its own copies match the cluster
//! state (mount, dismount, copy). Exactly one server decides a failover:
//! the decision is a compare-and-swap of the state that applies only if
//! the database's active server and epoch are still the ones the decider
//! saw lost, so of two deciders the second finds the epoch moved. `switchover` moves an
//! active copy on request, losslessly. `endpoints` serves `/mock/dag/*`
//! and `status` builds the view of `GET /mock/dag/status`.
//!
//! The rest: `definition` (`dag.toml`), `definition_edit` (its edits),
//! `lab_definition` (the lab's), `client` (server-to-server HTTP(S)),
//! `peers` and `report` (what the others said), `reports` (what this
//! server says), `mutations` (copy add, remove, suspend, resume), `api`
//! (their errors).
//!
//! Safety across SIGSTOP: a server's quorum is valid only until its last
//! answered heartbeats were sent plus two thirds of `failure_timeout`
//! (or its witness lease expires), which is before any other server may
//! decide it is lost; it reports a copy `Mounted` and acknowledges a
//! write only while that holds and the state file still names it at its
//! epoch. So a server that wakes up has already lost its claim, and two
//! copies of one database are never mounted at once.

mod api;
pub mod client;
pub mod copy;
pub mod definition;
pub mod definition_edit;
pub mod election;
pub mod endpoints;
mod heartbeat;
pub mod lab_definition;
pub mod lock;
pub mod logs;
mod manager;
mod mutations;
pub mod peers;
pub mod quorum;
mod replication;
pub mod report;
mod reports;
pub mod state;
pub mod status;
mod switchover;
pub mod versioned;
pub mod witness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;

use self::client::PeerClient;
use self::copy::LocalCopy;
use self::definition::{Definition, Member};
use self::peers::Peers;
use self::state::ClusterState;
use crate::mock::store::StoreError;

/// The current wall-clock time in Unix milliseconds (every process of a
/// lab shares this clock; leases and quorum compare against it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Where a database's active copy is, for a request.
#[derive(Debug, Clone)]
pub enum Located {
    /// Mounted here.
    Local(Arc<LocalCopy>),
    /// Active on this other server.
    Remote(Member),
    /// No mounted copy now; the reason.
    Unavailable(String),
}

/// The shared files of the DAG.
#[derive(Debug, Clone)]
pub struct DagFiles {
    pub definition: PathBuf,
    pub lock: PathBuf,
}

/// One server's DAG runtime.
pub struct Dag {
    me: String,
    files: DagFiles,
    store_dir: PathBuf,
    def: ArcSwap<Definition>,
    def_stamp: Mutex<Option<(std::time::SystemTime, u64)>>,
    cluster: ArcSwap<ClusterState>,
    copies: RwLock<BTreeMap<String, Arc<LocalCopy>>>,
    peers: Peers,
    witness: Mutex<Option<witness::Lease>>,
    client: PeerClient,
    started_ms: u64,
    kick: tokio::sync::Notify,
    notes: Mutex<BTreeMap<String, String>>,
    view_version: Mutex<(u64, u64)>,
    had_quorum: std::sync::atomic::AtomicBool,
    /// When this server last published its last generations (Unix ms).
    published_ms: std::sync::atomic::AtomicU64,
    /// The version of the cluster state in `cluster`.
    cluster_version: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for Dag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dag")
            .field("me", &self.me)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// How this server is reached, as it registers itself in `dag.toml`.
#[derive(Debug, Clone)]
pub struct Registration {
    pub name: String,
    pub address: String,
    pub fqdn: String,
    pub tls: bool,
}

impl Dag {
    /// Joins the DAG of `definition`: registers this server's address in
    /// it, opens its database copies under `store_dir` and completes the
    /// cluster state. Blocking.
    pub fn open(
        definition: &Path,
        me: &Registration,
        store_dir: &Path,
        peer_ca: Option<&Path>,
    ) -> anyhow::Result<Dag> {
        crate::mock::store::refuse_legacy(store_dir)?;
        let files = DagFiles {
            definition: definition.to_path_buf(),
            lock: lock::lock_path(definition),
        };
        let def = {
            let _guard = lock::lock(&files.lock, lock::LOCK_WAIT)
                .with_context(|| format!("taking the DAG lock {}", files.lock.display()))?;
            definition_edit::register_member(definition, &me.name, &me.address, &me.fqdn, me.tls)?
        };
        let name = def
            .member(&me.name)
            .map(|m| m.name.clone())
            .unwrap_or_else(|| me.name.clone());
        let mut copies = BTreeMap::new();
        for db in &def.databases {
            if db.copy_on(&name).is_some() {
                let copy = LocalCopy::open(store_dir, &db.name)
                    .with_context(|| format!("opening the copy of {}", db.name))?;
                copies.insert(db.name.to_ascii_uppercase(), Arc::new(copy));
            }
        }
        let dag = Dag {
            me: name,
            files,
            store_dir: store_dir.to_path_buf(),
            cluster: ArcSwap::from_pointee(ClusterState::default()),
            def: ArcSwap::from_pointee(def),
            def_stamp: Mutex::new(None),
            copies: RwLock::new(copies),
            peers: Peers::default(),
            witness: Mutex::new(None),
            client: PeerClient::new(peer_ca)?,
            started_ms: now_ms(),
            kick: tokio::sync::Notify::new(),
            notes: Mutex::new(BTreeMap::new()),
            view_version: Mutex::new((0, 0)),
            had_quorum: std::sync::atomic::AtomicBool::new(false),
            published_ms: std::sync::atomic::AtomicU64::new(0),
            cluster_version: std::sync::atomic::AtomicU64::new(0),
        };
        dag.refresh_definition();
        dag.refresh_state().context("reading the cluster state")?;
        Ok(dag)
    }

    /// Starts Active Manager and the heartbeats (until the runtime ends).
    pub fn start(self: &Arc<Self>) {
        tokio::spawn(manager::run(Arc::clone(self)));
        tokio::spawn(heartbeat::run(Arc::clone(self)));
    }

    /// This server's name.
    pub fn me(&self) -> &str {
        &self.me
    }

    /// The definition as last read.
    pub fn def(&self) -> Arc<Definition> {
        self.def.load_full()
    }

    /// The cluster state as last read.
    pub fn cluster(&self) -> Arc<ClusterState> {
        self.cluster.load_full()
    }

    /// The client for the other servers.
    pub fn client(&self) -> &PeerClient {
        &self.client
    }

    /// This server's copy of `database`.
    pub fn copy(&self, database: &str) -> Option<Arc<LocalCopy>> {
        let copies = self.copies.read().unwrap_or_else(|p| p.into_inner());
        copies.get(&database.to_ascii_uppercase()).cloned()
    }

    /// Every copy of this server.
    pub fn copies(&self) -> Vec<Arc<LocalCopy>> {
        let copies = self.copies.read().unwrap_or_else(|p| p.into_inner());
        copies.values().cloned().collect()
    }

    /// Runs a manager tick now rather than at the next heartbeat.
    pub fn kick(&self) {
        self.kick.notify_one();
    }

    /// Re-reads `dag.toml` when it changed (a bad edit is logged and the
    /// old definition kept); returns whether it changed. Blocking.
    pub fn refresh_definition(&self) -> bool {
        let stamp = std::fs::metadata(&self.files.definition)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())));
        let mut last = self.def_stamp.lock().unwrap_or_else(|p| p.into_inner());
        if stamp.is_some() && *last == stamp {
            return false;
        }
        match Definition::load(&self.files.definition) {
            Ok(def) => {
                *last = stamp;
                let changed = *self.def.load_full() != def;
                self.def.store(Arc::new(def));
                changed
            }
            Err(e) => {
                tracing::warn!(server = %self.me, error = %e, "cannot reload the DAG definition; keeping the last good one");
                *last = stamp;
                false
            }
        }
    }

    /// Keeps `state` (of `version`) as the cluster state this server
    /// knows, unless it already knows a newer one.
    fn keep_state(&self, version: u64, state: ClusterState) -> Arc<ClusterState> {
        use std::sync::atomic::Ordering;
        let state = Arc::new(state);
        if self.cluster_version.fetch_max(version, Ordering::AcqRel) <= version {
            self.cluster.store(Arc::clone(&state));
        }
        state
    }

    /// The version of the cluster state this server knows.
    pub fn state_version(&self) -> u64 {
        self.cluster_version
            .load(std::sync::atomic::Ordering::Acquire)
    }

    /// Re-reads the cluster state, completing it with databases it lacks.
    /// Blocking.
    pub fn refresh_state(&self) -> std::io::Result<Arc<ClusterState>> {
        let def = self.def();
        let (version, state) = state::read_versioned(&def.state)?;
        if def.databases.iter().any(|d| state.db(&d.name).is_none()) {
            let (_, state) = self.update_state(|s| {
                s.complete(&def, &self.me, now_ms());
            })?;
            return Ok(Arc::new(state));
        }
        Ok(self.keep_state(version, state))
    }

    /// Changes the cluster state by compare-and-swap: `change` runs on the
    /// latest state (again after losing a race); its last result and the
    /// state now. Blocking.
    pub fn update_state<R>(
        &self,
        change: impl FnMut(&mut ClusterState) -> R,
    ) -> std::io::Result<(R, ClusterState)> {
        let (r, state, version) = state::update(&self.def().state, change)?;
        self.keep_state(version, state.clone());
        Ok((r, state))
    }

    /// The votes of this DAG and until when this server's majority holds
    /// (Unix ms; 0: no quorum).
    pub fn quorum_until(&self, with_witness: bool) -> u64 {
        let def = self.def();
        let votes = quorum::votes(def.members.len());
        let lease = u64::try_from(def.quorum_lease().as_millis()).unwrap_or(u64::MAX);
        let mut expiries = Vec::with_capacity(def.members.len() + 1);
        for m in &def.members {
            if m.name.eq_ignore_ascii_case(&self.me) {
                expiries.push(u64::MAX);
            } else {
                let sent = self.peers.confirmed_sent(&m.name);
                expiries.push(if sent == 0 {
                    0
                } else {
                    sent.saturating_add(lease)
                });
            }
        }
        if votes.witness_counts && with_witness {
            if let Some(l) = self.held_witness() {
                expiries.push(l.expires_unix_ms);
            }
        }
        quorum::valid_until(&expiries, votes.needed)
    }

    /// Whether this server has quorum now.
    pub fn has_quorum(&self) -> bool {
        self.quorum_until(true) > now_ms()
    }

    /// The witness lease this server holds, if any.
    pub fn held_witness(&self) -> Option<witness::Lease> {
        self.witness
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether `server` counts as lost: not heard from for
    /// `failure_timeout` (a server never heard from since this one started
    /// gets three times that, to start).
    pub fn peer_down(&self, server: &str, now: u64) -> bool {
        if server.eq_ignore_ascii_case(&self.me) {
            return false;
        }
        let f = u64::try_from(self.def().failure_timeout.as_millis()).unwrap_or(u64::MAX);
        let heard = self.peers.last_heard(server);
        let since = if heard == 0 {
            self.started_ms.saturating_add(f.saturating_mul(2))
        } else {
            heard
        };
        now.saturating_sub(since) > f
    }

    /// The fence: whether this server may acknowledge a write to
    /// `database` on its copy mounted at `epoch`, now. It needs quorum now,
    /// and the state file (read now) must still name it as the active
    /// server at that epoch with no switchover under way. Blocking.
    pub fn fence(&self, database: &str, epoch: u64) -> Result<(), StoreError> {
        if !self.has_quorum() {
            return Err(StoreError::Fenced(format!(
                "{} has no quorum: {database} is not taking writes here",
                self.me
            )));
        }
        let (version, state) = state::read_versioned(&self.def().state)
            .map_err(|e| StoreError::Fenced(format!("cannot read the cluster state: {e}")))?;
        let ok = state.db(database).is_some_and(|d| {
            d.active.eq_ignore_ascii_case(&self.me) && d.epoch == epoch && d.moving_to.is_none()
        });
        self.keep_state(version, state);
        if ok {
            Ok(())
        } else {
            Err(StoreError::Fenced(format!(
                "{database} is no longer active on {} at epoch {epoch}",
                self.me
            )))
        }
    }

    /// Where the active copy of `database` is.
    pub fn locate(&self, database: &str) -> Located {
        let cluster = self.cluster();
        let Some(st) = cluster.db(database) else {
            return Located::Unavailable(format!("no database {database} in the DAG"));
        };
        if let Some(target) = &st.moving_to {
            return Located::Unavailable(format!("{database} is being moved to {target}"));
        }
        if st.active.eq_ignore_ascii_case(&self.me) {
            return match self.copy(database) {
                Some(copy)
                    if copy.mounted().is_some_and(|m| m.epoch == st.epoch) && self.has_quorum() =>
                {
                    Located::Local(copy)
                }
                _ => Located::Unavailable(format!(
                    "{database} has no mounted copy (its active copy on {} is not mounted)",
                    self.me
                )),
            };
        }
        if self.peer_down(&st.active, now_ms()) {
            return Located::Unavailable(format!(
                "{database}'s active server {} is unreachable",
                st.active
            ));
        }
        match self.def().member(&st.active) {
            Some(m) => Located::Remote(m.clone()),
            None => Located::Unavailable(format!(
                "{database}'s active server {} is no member",
                st.active
            )),
        }
    }

    /// Runs `f` as one logged change of this server's mounted copy
    /// `copy` (fenced; see [`Dag::fence`]); returns its result and the
    /// generation written.
    pub async fn write<R, F>(
        self: &Arc<Self>,
        copy: &Arc<LocalCopy>,
        f: F,
    ) -> Result<(R, u64), StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut crate::mock::store::Batch<'_>) -> Result<R, StoreError> + Send + 'static,
    {
        let (dag, copy) = (Arc::clone(self), Arc::clone(copy));
        tokio::task::spawn_blocking(move || {
            let database = copy.database.clone();
            copy.write(|epoch| dag.fence(&database, epoch), f)
        })
        .await
        .map_err(|e| StoreError::Task(e.to_string()))?
    }

    /// Logs `text` about `database` once (until the text changes).
    fn note(&self, database: &str, text: Option<String>) -> bool {
        let mut notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        let key = database.to_ascii_uppercase();
        match text {
            Some(t) => notes.insert(key, t.clone()).as_ref() != Some(&t),
            None => {
                notes.remove(&key);
                false
            }
        }
    }

    /// The standing note about `database` (why it is not mounted), if any.
    pub fn note_of(&self, database: &str) -> Option<String> {
        let notes = self.notes.lock().unwrap_or_else(|p| p.into_inner());
        notes.get(&database.to_ascii_uppercase()).cloned()
    }

    /// The member `name`.
    pub fn member(&self, name: &str) -> Option<Member> {
        self.def().member(name).cloned()
    }

    /// The store directory of this server.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The heartbeat interval.
    pub fn interval(&self) -> Duration {
        self.def().heartbeat_interval
    }
}
