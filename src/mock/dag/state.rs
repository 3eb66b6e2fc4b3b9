//! The cluster state, `dag-state.json` (Exchange keeps it in the cluster
//! database): for each database, which server holds the active copy and
//! the activation epoch, a switchover in progress, the suspended copies,
//! the last activation (what Active Manager decided, and what it lost),
//! and the last log generation the active copy published (at most once
//! per heartbeat, while it changes).
//!
//! It is changed by compare-and-swap (`versioned`: no lock a stopped
//! server could hold), by a server that has quorum at that moment (a
//! failover, a switchover, a suspension); every server re-reads it each
//! heartbeat, and the server
//! with the active copy reads it again before it acknowledges each write
//! (fencing: a server that is no longer the active of record, at the same
//! epoch, writes nothing). The epoch grows by one at every activation, so
//! a log generation written under an old epoch is recognisably not part
//! of the current history.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::Path;

use super::definition::Definition;
use super::versioned::{Updated, Versioned};

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

/// The last log generation the active copy published (Exchange keeps this
/// "LastLogInfo" in the cluster database), so that a server deciding a
/// failover knows what the lost server had even if it did not hear it
/// lately.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LastLog {
    pub server: String,
    pub epoch: u64,
    pub generation: u64,
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
    /// What the active copy last published of its log.
    #[serde(default)]
    pub last_log: Option<LastLog>,
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
                    last_log: None,
                },
            );
            changed = true;
        }
        changed
    }
}

/// Reads the latest state (none yet: empty). Blocking.
pub fn read(path: &Path) -> io::Result<ClusterState> {
    Ok(read_versioned(path)?.1)
}

/// The latest state and its version (0 before the first write). Blocking.
pub fn read_versioned(path: &Path) -> io::Result<(u64, ClusterState)> {
    let (version, state) = Versioned::<ClusterState>::new(path).read()?;
    Ok((version, state.unwrap_or_default()))
}

/// Changes the state by compare-and-swap (see `versioned`): `change` may
/// run more than once, on the latest state each time; it returns its
/// result. Returns that result, the state now and its version. Blocking.
pub fn update<R>(
    path: &Path,
    mut change: impl FnMut(&mut ClusterState) -> R,
) -> io::Result<(R, ClusterState, u64)> {
    let mut after = ClusterState::default();
    let out = Versioned::<ClusterState>::new(path).update(|current| {
        let mut state = current.cloned().unwrap_or_default();
        let before = state.clone();
        let r = change(&mut state);
        after = state.clone();
        ((state != before).then_some(state), r)
    })?;
    let (r, version) = match out {
        Updated::Written(v, r) => (r, v),
        Updated::Unchanged(r) => (r, read_versioned(path)?.0),
    };
    Ok((r, after, version))
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
        let (first, _, v1) = update(&path, |s| s.complete(&def, "EX1", 5)).unwrap();
        assert!(first);
        assert_eq!(v1, 1);
        let (changed, now, v2) = update(&path, |s| {
            s.db_mut("DB02").unwrap().suspended.insert("EX1".into())
        })
        .unwrap();
        assert!(changed);
        assert_eq!(v2, 2);
        assert_eq!(read_versioned(&path).unwrap().0, 2);
        let back = read(&path).unwrap();
        assert_eq!(back, now);
        assert_eq!(
            back.db("DB02").unwrap().epoch,
            state.db("DB02").unwrap().epoch
        );
        assert!(back.db("DB02").unwrap().is_suspended("ex1"));
    }
}
