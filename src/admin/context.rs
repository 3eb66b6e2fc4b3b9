//! [`Admin`]: what the admin API needs besides the live snapshot: the
//! token, and the persisted state with the lock that serialises its edits.
//!
//! `serve` opens it before anything listens (so a bad token or a corrupt
//! state file stops the start), applies the state to the first snapshot's
//! members before any traffic, and calls [`Admin::reload`] on every reload.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwapOption;
use http::{HeaderMap, StatusCode};

use super::error::AdminError;
use super::state::{self, AdminState, StateError};
use super::token::Token;
use crate::cluster::{Cluster, ClusterError};
use crate::config::Config;
use crate::upstream::Upstreams;

/// The admin side's own state, shared by the admin listener and `serve`.
pub struct Admin {
    /// `listen.admin` when opened; a reload cannot move the listener.
    listen: SocketAddr,
    token: ArcSwapOption<Token>,
    /// Where the state persists; fixed at startup.
    state_file: PathBuf,
    /// The state as last written.
    state: Mutex<AdminState>,
    /// Held across read-modify-write of the state file, so concurrent
    /// admin calls never lose each other's edits.
    edit: tokio::sync::Mutex<()>,
    /// With `[cluster]`: the drain state is the cluster's (in etcd), not
    /// the state file's.
    cluster: Option<Arc<Cluster>>,
}

/// A drain or activate that did not happen.
#[derive(Debug, thiserror::Error)]
pub enum DrainError {
    /// The state file could not be written.
    #[error(transparent)]
    State(#[from] StateError),
    /// etcd did not take the change (unreachable, no leader): nothing
    /// changed on any instance.
    #[error("the cluster's state (etcd) cannot be changed now; nothing was changed")]
    Cluster(#[source] ClusterError),
}

/// The answer to a change etcd did not take (unreachable, no leader, no
/// answer within `[cluster] request_timeout`): 503, nothing changed on any
/// instance. Drains, activates and directory edits answer it alike.
pub const CLUSTER_UNAVAILABLE: StatusCode = StatusCode::SERVICE_UNAVAILABLE;

impl DrainError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> StatusCode {
        match self {
            DrainError::Cluster(_) => CLUSTER_UNAVAILABLE,
            DrainError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// What a drain or activate call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainChange {
    /// The state changed and was persisted.
    Changed,
    /// It already was so; nothing written.
    Unchanged,
}

impl Admin {
    /// Checks that the admin listener is not exposed without a token, reads
    /// the token and loads the state file.
    pub fn open(cfg: &Config) -> Result<Self, AdminError> {
        let listen = cfg.listen.admin;
        let token = read_token(cfg, listen)?;
        let state = state::load(&cfg.admin.state_file)?;
        Ok(Admin {
            listen,
            token: ArcSwapOption::new(token.map(Arc::new)),
            state_file: cfg.admin.state_file.clone(),
            state: Mutex::new(state),
            edit: tokio::sync::Mutex::new(()),
            cluster: None,
        })
    }

    /// Keeps the drain state in `cluster` (etcd) instead of the state file.
    pub fn with_cluster(mut self, cluster: Option<Arc<Cluster>>) -> Self {
        self.cluster = cluster;
        self
    }

    /// The cluster this instance belongs to, with `[cluster]`.
    pub fn cluster(&self) -> Option<&Arc<Cluster>> {
        self.cluster.as_ref()
    }

    /// Sets the drain flag of every member of `upstreams` from the
    /// persisted state. Call it on each new snapshot before it serves.
    pub fn apply(&self, upstreams: &Upstreams) {
        self.current().apply(upstreams);
    }

    /// Takes a reloaded config: reads its token again and applies the state
    /// to its members. An error refuses the reload (nothing changed). A new
    /// `admin.state_file` takes effect on restart only.
    pub fn reload(&self, cfg: &Config, upstreams: &Upstreams) -> Result<(), AdminError> {
        let token = read_token(cfg, self.listen)?;
        if cfg.admin.state_file != self.state_file {
            tracing::warn!(
                "[admin] state_file changed: it takes effect on restart only (still {})",
                self.state_file.display()
            );
        }
        self.token.store(token.map(Arc::new));
        self.apply(upstreams);
        Ok(())
    }

    /// Whether a token is configured at all.
    pub fn has_token(&self) -> bool {
        self.token.load().is_some()
    }

    /// Whether `headers` carry the configured bearer token.
    pub fn authorized(&self, headers: &HeaderMap) -> bool {
        self.token
            .load()
            .as_ref()
            .is_some_and(|t| t.verify(headers))
    }

    /// The persisted state now (the cluster's, with `[cluster]`).
    pub fn current(&self) -> AdminState {
        if let Some(cluster) = &self.cluster {
            return AdminState::from_drained(cluster.view().drained_names());
        }
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Drains member `name` (`drained = true`) or puts it back: the state
    /// file is written first, then the flag is set on `upstreams`' member;
    /// when the write fails nothing changes.
    pub async fn set_drained(
        &self,
        upstreams: &Upstreams,
        name: &str,
        drained: bool,
    ) -> Result<DrainChange, DrainError> {
        let _edit = self.edit.lock().await;
        if let Some(cluster) = &self.cluster {
            let changed = cluster
                .set_drained(name, drained)
                .await
                .map_err(DrainError::Cluster)?;
            if let Some(m) = upstreams.find(name) {
                upstreams.members()[m].state.set_draining(drained);
            }
            return Ok(if changed {
                DrainChange::Changed
            } else {
                DrainChange::Unchanged
            });
        }
        let change = match self.current().with_drained(name, drained) {
            None => DrainChange::Unchanged,
            Some(next) => {
                let path = self.state_file.clone();
                let to_save = next.clone();
                tokio::task::spawn_blocking(move || to_save.save(&path))
                    .await
                    .map_err(|e| StateError::Write {
                        path: self.state_file.clone(),
                        error: std::io::Error::other(e),
                    })??;
                *self.state.lock().unwrap_or_else(PoisonError::into_inner) = next;
                DrainChange::Changed
            }
        };
        // Set the flag even when the state already said so: the member's
        // live flag follows the state file, whatever happened before.
        if let Some(m) = upstreams.find(name) {
            upstreams.members()[m].state.set_draining(drained);
        }
        Ok(change)
    }
}

/// The token of `cfg`, refusing an exposed listener without one.
fn read_token(cfg: &Config, listen: SocketAddr) -> Result<Option<Token>, AdminError> {
    let token = match &cfg.admin.token_file {
        Some(path) => Some(Token::load(path)?),
        None => None,
    };
    if token.is_none() && !listen.ip().to_canonical().is_loopback() {
        return Err(AdminError::ExposedWithoutToken { addr: listen });
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::AUTHORIZATION;
    use std::path::Path;

    fn config(dir: &Path, admin_listen: &str, admin_section: &str) -> Config {
        std::fs::write(dir.join("bundle.pem"), "x").unwrap();
        let text = format!(
            "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
             [listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"{admin_listen}\"\n\
             [tls]\ncert = \"bundle.pem\"\n{admin_section}\n\
             [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n\
             [[member]]\nname = \"EX2\"\naddress = \"127.0.0.1:9002\"\n"
        );
        crate::config::parse(&text, &dir.join("casarray.toml")).unwrap()
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        h
    }

    #[test]
    fn exposed_without_token_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for addr in ["0.0.0.0:9090", "192.0.2.1:9090", "[::]:9090"] {
            let cfg = config(dir.path(), addr, "");
            let e = Admin::open(&cfg).err().unwrap();
            assert!(matches!(e, AdminError::ExposedWithoutToken { .. }), "{e}");
        }
        for addr in ["127.0.0.1:9090", "[::1]:9090", "127.0.0.2:0"] {
            let admin = Admin::open(&config(dir.path(), addr, "")).unwrap();
            assert!(!admin.has_token());
            assert!(!admin.authorized(&bearer("anything")));
        }
    }

    #[test]
    fn exposed_with_token_is_fine() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("admin.token"), "t0ken\n").unwrap();
        let cfg = config(
            dir.path(),
            "0.0.0.0:9090",
            "[admin]\ntoken_file = \"admin.token\"",
        );
        let admin = Admin::open(&cfg).unwrap();
        assert!(admin.authorized(&bearer("t0ken")));
        assert!(!admin.authorized(&bearer("t0ken2")));
    }

    #[test]
    fn a_corrupt_state_file_stops_the_start() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "127.0.0.1:0", "");
        std::fs::write(&cfg.admin.state_file, "{not json").unwrap();
        let e = Admin::open(&cfg).err().unwrap();
        assert!(
            matches!(e, AdminError::State(StateError::Corrupt { .. })),
            "{e}"
        );
    }

    #[test]
    fn reload_rereads_the_token_and_refuses_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("admin.token");
        std::fs::write(&token, "one\n").unwrap();
        let cfg = config(
            dir.path(),
            "127.0.0.1:0",
            "[admin]\ntoken_file = \"admin.token\"",
        );
        let upstreams = Upstreams::for_tests(&cfg);
        let admin = Admin::open(&cfg).unwrap();
        std::fs::write(&token, "two\n").unwrap();
        admin.reload(&cfg, &upstreams).unwrap();
        assert!(admin.authorized(&bearer("two")));
        assert!(!admin.authorized(&bearer("one")));
        std::fs::write(&token, "").unwrap();
        let e = admin.reload(&cfg, &upstreams).unwrap_err();
        assert!(matches!(e, AdminError::TokenEmpty { .. }), "{e}");
        assert!(admin.authorized(&bearer("two")), "the old token stays");
    }

    #[tokio::test]
    async fn drain_persists_then_a_restart_applies_it() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), "127.0.0.1:0", "");
        let upstreams = Upstreams::for_tests(&cfg);
        let admin = Admin::open(&cfg).unwrap();
        admin.apply(&upstreams);
        assert_eq!(
            admin.set_drained(&upstreams, "ex2", true).await.unwrap(),
            DrainChange::Changed
        );
        assert_eq!(
            admin.set_drained(&upstreams, "EX2", true).await.unwrap(),
            DrainChange::Unchanged
        );
        assert!(upstreams.members()[1].state.is_draining());
        assert!(!upstreams.members()[0].state.is_draining());

        // Restart: a fresh registry and a fresh Admin from the same files.
        let upstreams = Upstreams::for_tests(&cfg);
        let admin = Admin::open(&cfg).unwrap();
        admin.apply(&upstreams);
        assert!(upstreams.members()[1].state.is_draining());
        assert_eq!(
            admin.set_drained(&upstreams, "EX2", false).await.unwrap(),
            DrainChange::Changed
        );
        assert!(!upstreams.members()[1].state.is_draining());
        let upstreams = Upstreams::for_tests(&cfg);
        Admin::open(&cfg).unwrap().apply(&upstreams);
        assert!(!upstreams.members()[1].state.is_draining());
    }

    #[tokio::test]
    async fn a_failed_write_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path(), "127.0.0.1:0", "");
        cfg.admin.state_file = dir.path().join("no-such-dir").join("state.json");
        let upstreams = Upstreams::for_tests(&cfg);
        let admin = Admin::open(&cfg).unwrap();
        let e = admin
            .set_drained(&upstreams, "EX1", true)
            .await
            .unwrap_err();
        assert!(
            matches!(e, DrainError::State(StateError::Write { .. })),
            "{e}"
        );
        assert!(!upstreams.members()[0].state.is_draining());
        assert!(!admin.current().is_drained("EX1"));
    }
}
