//! What admin calls changed that the config file does not say: which
//! members are drained. Kept in `[admin] state_file` (default
//! `<config file>.state.json`), so a restart keeps it.
//!
//! The file is JSON, written atomically:
//!
//! ```json
//! {
//!   "version": 1,
//!   "drained": ["EX1"]
//! }
//! ```
//!
//! A missing file is a first start (every member active). A file that cannot
//! be read or understood is an error at startup, never silently reset: it may
//! be all that keeps a member out of service.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::atomic_file::write_private_atomically as replace_file;
use crate::upstream::Upstreams;

/// The version this build writes and reads.
const VERSION: u32 = 1;

/// The persisted admin state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminState {
    version: u32,
    /// Drained members, by name as configured when drained; compared
    /// case-insensitively, sorted, no duplicates.
    drained: Vec<String>,
}

/// The state file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{}: cannot read the admin state file: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error(
        "{}: the admin state file is corrupt ({error}); it records which members are drained: \
         repair it, or delete it to start with every member active",
        path.display()
    )]
    Corrupt {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error(
        "{}: the admin state file has version {found}; this casarray reads version {VERSION}",
        path.display()
    )]
    Version { path: PathBuf, found: u32 },
    #[error("{}: cannot write the admin state file: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
}

/// Reads the state file at `path`; a missing file is the empty state.
pub fn load(path: &Path) -> Result<AdminState, StateError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AdminState::new()),
        Err(error) => {
            return Err(StateError::Read {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let mut state: AdminState =
        serde_json::from_slice(&bytes).map_err(|error| StateError::Corrupt {
            path: path.to_path_buf(),
            error,
        })?;
    if state.version != VERSION {
        return Err(StateError::Version {
            path: path.to_path_buf(),
            found: state.version,
        });
    }
    state.normalize();
    Ok(state)
}

impl AdminState {
    /// Every member active.
    pub fn new() -> Self {
        AdminState {
            version: VERSION,
            drained: Vec::new(),
        }
    }

    /// The state with members `drained` drained (the cluster's view).
    pub fn from_drained(drained: Vec<String>) -> Self {
        let mut state = AdminState {
            version: VERSION,
            drained,
        };
        state.normalize();
        state
    }

    /// Whether member `name` is drained (case-insensitive).
    pub fn is_drained(&self, name: &str) -> bool {
        self.drained.iter().any(|d| d.eq_ignore_ascii_case(name))
    }

    /// The drained members' names.
    pub fn drained(&self) -> &[String] {
        &self.drained
    }

    /// This state with member `name` drained or not. Returns `None` when
    /// nothing would change.
    pub fn with_drained(&self, name: &str, drained: bool) -> Option<AdminState> {
        if self.is_drained(name) == drained {
            return None;
        }
        let mut next = self.clone();
        next.drained.retain(|d| !d.eq_ignore_ascii_case(name));
        if drained {
            next.drained.push(name.to_owned());
        }
        next.normalize();
        Some(next)
    }

    /// Sets every member's drain flag in `upstreams` from this state:
    /// members it names are drained, the others active. Names of members no
    /// longer configured are kept (the member may come back).
    pub fn apply(&self, upstreams: &Upstreams) {
        for b in upstreams.members() {
            b.state.set_draining(self.is_drained(&b.name));
        }
    }

    /// Writes this state to `path` atomically (temporary file, fsync,
    /// rename). Blocking I/O: from async code, call it on a blocking thread.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| StateError::Write {
            path: path.to_path_buf(),
            error: std::io::Error::other(e),
        })?;
        text.push('\n');
        replace_file(path, text.as_bytes()).map_err(|error| StateError::Write {
            path: path.to_path_buf(),
            error,
        })
    }

    fn normalize(&mut self) {
        self.drained.sort_by_key(|a| a.to_ascii_lowercase());
        self.drained.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> crate::config::Config {
        std::fs::write(dir.join("bundle.pem"), "x").unwrap();
        let text = "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
                    [listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\
                    [tls]\ncert = \"bundle.pem\"\n\
                    [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n\
                    [[member]]\nname = \"EX2\"\naddress = \"127.0.0.1:9002\"\n";
        crate::config::parse(text, &dir.join("casarray.toml")).unwrap()
    }

    #[test]
    fn missing_file_is_every_member_active() {
        let dir = tempfile::tempdir().unwrap();
        let state = load(&dir.path().join("s.json")).unwrap();
        assert_eq!(state, AdminState::new());
        assert!(!state.is_drained("EX1"));
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        let state = AdminState::new().with_drained("EX2", true).unwrap();
        let state = state.with_drained("ex1", true).unwrap();
        state.save(&path).unwrap();
        let back = load(&path).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.drained(), ["ex1", "EX2"]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"version\": 1"), "{text}");
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.json");
        AdminState::new().save(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn drain_is_case_insensitive_and_idempotent() {
        let s = AdminState::new().with_drained("EX1", true).unwrap();
        assert!(s.is_drained("ex1"));
        assert_eq!(s.with_drained("ex1", true), None);
        let s = s.with_drained("Ex1", false).unwrap();
        assert!(!s.is_drained("EX1"));
        assert_eq!(s.with_drained("EX1", false), None);
    }

    #[test]
    fn corrupt_files_are_errors_that_say_so() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("casarray.toml.state.json");
        for bad in [
            "",
            "{",
            "[]",
            "{\"version\": 1, \"drained\": \"EX1\"}",
            "{\"version\": 1, \"drained\": [], \"x\": 1}",
        ] {
            std::fs::write(&path, bad).unwrap();
            let e = load(&path).unwrap_err();
            assert!(matches!(e, StateError::Corrupt { .. }), "{bad:?}: {e}");
            let text = e.to_string();
            assert!(text.contains("casarray.toml.state.json"), "{text}");
            assert!(text.contains("corrupt"), "{text}");
        }
        std::fs::write(&path, "{\"version\": 2, \"drained\": []}").unwrap();
        let e = load(&path).unwrap_err();
        assert!(matches!(e, StateError::Version { found: 2, .. }), "{e}");
    }

    #[test]
    fn apply_sets_every_flag_and_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path());
        let path = dir.path().join("s.json");

        // First run: drain EX1, persist.
        let upstreams = Upstreams::for_tests(&cfg);
        let state = AdminState::new().with_drained("ex1", true).unwrap();
        state.save(&path).unwrap();
        state.apply(&upstreams);
        assert!(upstreams.members()[0].state.is_draining());
        assert!(!upstreams.members()[1].state.is_draining());

        // "Restart": fresh member state, the file brings the drain back.
        let upstreams = Upstreams::for_tests(&cfg);
        assert!(!upstreams.members()[0].state.is_draining());
        load(&path).unwrap().apply(&upstreams);
        assert!(upstreams.members()[0].state.is_draining());
        assert!(!upstreams.members()[1].state.is_draining());
        let headers = http::HeaderMap::new();
        let keys = crate::upstream::selection::Keys {
            headers: &headers,
            client: std::net::Ipv4Addr::LOCALHOST.into(),
            preferred: None,
        };
        for _ in 0..4 {
            assert_eq!(
                upstreams.select(0, keys).collect::<Vec<_>>(),
                [1],
                "only EX2 takes requests"
            );
        }

        // Activate: the flag clears and stays cleared after a restart.
        let state = load(&path).unwrap().with_drained("EX1", false).unwrap();
        state.save(&path).unwrap();
        let upstreams = Upstreams::for_tests(&cfg);
        load(&path).unwrap().apply(&upstreams);
        assert!(!upstreams.members()[0].state.is_draining());
    }
}
