//! The cluster state, `dag-state.json` (Exchange keeps it in the cluster
//! database): for each database, which server holds the active copy and
//! the activation epoch, a switchover in progress, the suspended copies,
//! and the last activation (what Active Manager decided, and what it
//! lost).
//!
//! It is changed only under the DAG lock, by a server that has quorum at
//! that moment (a failover, a switchover, a suspension), and written
//! atomically; every server re-reads it each heartbeat, and the server
//! with the active copy reads it again before it acknowledges each write
//! (fencing: a server that is no longer the active of record, at the same
//! epoch, writes nothing). The epoch grows by one at every activation, so
//! a log generation written under an old epoch is recognisably not part
//! of the current history.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use super::definition::Definition;

/// How a database got its active copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActivationKind {
    /// The first activation, on the preferred copy.
    Initial,
    /// Active Manager moved it after losing the active server.
    Failover,
    /// `move-active`, lossless.
    Switchover,
    /// `move-active` with `force`: the source was gone.
    Forced,
}

/// The last activation of a database.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Activation {
    pub kind: ActivationKind,
    pub from: Option<String>,
    pub to: String,
    /// Generations the new active copy did not have (0 when lossless).
    pub lost_logs: u64,
    /// The generation the new active copy started from.
    pub generation: u64,
    pub decided_by: String,
    pub at_unix_ms: u64,
}

/// One database's state.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DbState {
    /// The server with the active copy.
    pub active: String,
    /// Activation epoch, from 1.
    pub epoch: u64,
    /// A switchover in progress to this server: the active copy stops
    /// taking writes so that the target catches up.
    #[serde(default)]
    pub moving_to: Option<String>,
    /// Servers whose copy is suspended (no copying).
    #[serde(default)]
    pub suspended: BTreeSet<String>,
    #[serde(default)]
    pub last_activation: Option<Activation>,
    /// Automatic failovers so far.
    #[serde(default)]
    pub failovers: u64,
}

impl DbState {
    /// Whether the copy on `server` is suspended.
    pub fn is_suspended(&self, server: &str) -> bool {
        self.suspended
            .iter()
            .any(|s| s.eq_ignore_ascii_case(server))
    }
}

/// The whole state.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClusterState {
    pub databases: BTreeMap<String, DbState>,
}

impl ClusterState {
    /// The state of `database` (case-insensitive).
    pub fn db(&self, database: &str) -> Option<&DbState> {
        self.databases
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(database))
            .map(|(_, s)| s)
    }

    /// Mutable state of `database`.
    pub fn db_mut(&mut self, database: &str) -> Option<&mut DbState> {
        self.databases
            .iter_mut()
            .find(|(name, _)| name.eq_ignore_ascii_case(database))
            .map(|(_, s)| s)
    }

    /// Adds the databases of `def` that have no state yet, active on their
    /// preferred copy at epoch 1; returns whether anything changed.
    pub fn complete(&mut self, def: &Definition, me: &str, now: u64) -> bool {
        let mut changed = false;
        for db in &def.databases {
            if self.db(&db.name).is_some() {
                continue;
            }
            let Some(first) = db.copies.first() else {
                continue;
            };
            self.databases.insert(
                db.name.clone(),
                DbState {
                    active: first.server.clone(),
                    epoch: 1,
                    moving_to: None,
                    suspended: BTreeSet::new(),
                    last_activation: Some(Activation {
                        kind: ActivationKind::Initial,
                        from: None,
                        to: first.server.clone(),
                        lost_logs: 0,
                        generation: 0,
                        decided_by: me.to_string(),
                        at_unix_ms: now,
                    }),
                    failovers: 0,
                },
            );
            changed = true;
        }
        changed
    }
}

/// Reads the state (absent: empty).
pub fn read(path: &Path) -> io::Result<ClusterState> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(ClusterState::default()),
        Err(e) => Err(e),
    }
}

/// Writes the state atomically. The caller holds the DAG lock.
pub fn write(path: &Path, state: &ClusterState) -> io::Result<()> {
    let bytes = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
    crate::atomic_file::write_atomically(path, &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completes_on_preferred_copies_and_round_trips() {
        let text = "[[member]]\nname = \"EX1\"\n[[member]]\nname = \"EX2\"\n\
                    [[database]]\nname = \"DB02\"\n\
                    [[database.copy]]\nserver = \"EX1\"\nactivation_preference = 2\n\
                    [[database.copy]]\nserver = \"EX2\"\nactivation_preference = 1\n";
        let def = Definition::parse(text, Path::new("dag.toml")).unwrap();
        let mut state = ClusterState::default();
        assert!(state.complete(&def, "EX1", 5));
        assert!(!state.complete(&def, "EX1", 6));
        let db = state.db("db02").unwrap();
        assert_eq!((db.active.as_str(), db.epoch), ("EX2", 1));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dag-state.json");
        assert_eq!(read(&path).unwrap(), ClusterState::default());
        state.db_mut("DB02").unwrap().suspended.insert("EX1".into());
        write(&path, &state).unwrap();
        let back = read(&path).unwrap();
        assert_eq!(back, state);
        assert!(back.db("DB02").unwrap().is_suspended("ex1"));
        std::fs::write(&path, b"{").unwrap();
        assert!(read(&path).is_err());
    }
}
