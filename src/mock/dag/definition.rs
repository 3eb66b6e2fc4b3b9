//! The DAG's definition, `dag.toml`: the lab's "Active Directory" for the
//! database availability group, shared by every server of the lab.
//!
//! ```toml
//! name = "DAG1"                                  # default "DAG1"
//! witness = "witness.json"                       # the witness lease file, relative to dag.toml
//! state = "dag-state.json"                       # the cluster state file (which copy is active)
//! auto_database_mount_dial = "GoodAvailability"  # Lossless (0 logs) | GoodAvailability (6) | BestAvailability (12)
//! heartbeat_interval = "250ms"                   # servers ping each other this often
//! failure_timeout = "3s"                         # a server not heard from for this long is lost
//! witness_lease = "3s"                           # how long a witness lease lasts; default failure_timeout
//!
//! [[member]]
//! name = "EX1"
//! address = "127.0.0.1:40001"                    # written by the server itself when it starts
//! fqdn = "ex1.lab.local"                         # likewise (the TLS name when tls = true)
//! tls = false                                    # likewise: whether it serves HTTPS
//!
//! [[database]]
//! name = "DB01"
//! description = "Local IT"
//! [[database.copy]]
//! server = "EX1"
//! activation_preference = 1                      # 1 = preferred; unique per database
//! ```
//!
//! Edits are in `definition_edit`; the lab's file is made by
//! `lab_definition`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::{format_duration, parse_duration};

/// What is wrong with a `dag.toml`.
#[derive(Debug, thiserror::Error)]
pub enum DefinitionError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error("{0}")]
    Edit(String),
}

/// `AutoDatabaseMountDial`: how many log generations an automatic
/// failover may lose.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum MountDial {
    /// No log may be lost.
    Lossless,
    /// At most 6 logs (Exchange's default).
    GoodAvailability,
    /// At most 12 logs.
    BestAvailability,
}

impl MountDial {
    /// The most generations an automatic mount may lose.
    pub fn max_lost(self) -> u64 {
        match self {
            MountDial::Lossless => 0,
            MountDial::GoodAvailability => 6,
            MountDial::BestAvailability => 12,
        }
    }

    fn parse(s: &str) -> Option<MountDial> {
        [
            MountDial::Lossless,
            MountDial::GoodAvailability,
            MountDial::BestAvailability,
        ]
        .into_iter()
        .find(|d| d.as_str().eq_ignore_ascii_case(s))
    }

    /// Exchange's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            MountDial::Lossless => "Lossless",
            MountDial::GoodAvailability => "GoodAvailability",
            MountDial::BestAvailability => "BestAvailability",
        }
    }
}

/// A server of the DAG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub name: String,
    /// `host:port` of its HTTP(S) endpoint, once it has started.
    pub address: Option<String>,
    /// Its fqdn (the TLS server name).
    pub fqdn: Option<String>,
    /// Whether it serves HTTPS.
    pub tls: bool,
}

/// A copy of a database on one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyDef {
    pub server: String,
    /// 1 = preferred.
    pub activation_preference: u32,
}

/// A mailbox database and its copies (sorted by preference).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseDef {
    pub name: String,
    pub description: String,
    pub copies: Vec<CopyDef>,
}

impl DatabaseDef {
    /// The copy on `server`, if any (names compare case-insensitively).
    pub fn copy_on(&self, server: &str) -> Option<&CopyDef> {
        self.copies
            .iter()
            .find(|c| c.server.eq_ignore_ascii_case(server))
    }
}

/// A parsed, checked `dag.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    /// The witness lease file (absolute or relative to the working
    /// directory, resolved against dag.toml's directory).
    pub witness: PathBuf,
    /// The cluster state file, likewise.
    pub state: PathBuf,
    pub dial: MountDial,
    pub heartbeat_interval: Duration,
    pub failure_timeout: Duration,
    pub witness_lease: Duration,
    pub members: Vec<Member>,
    pub databases: Vec<DatabaseDef>,
}

/// Default `heartbeat_interval`: 250 ms.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(250);
/// Default `failure_timeout`: 3 s.
pub const DEFAULT_FAILURE_TIMEOUT: Duration = Duration::from_secs(3);

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefinition {
    name: Option<String>,
    witness: Option<String>,
    state: Option<String>,
    auto_database_mount_dial: Option<String>,
    heartbeat_interval: Option<String>,
    failure_timeout: Option<String>,
    witness_lease: Option<String>,
    #[serde(default)]
    member: Vec<RawMember>,
    #[serde(default)]
    database: Vec<RawDatabase>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    name: String,
    address: Option<String>,
    fqdn: Option<String>,
    #[serde(default)]
    tls: bool,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDatabase {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    copy: Vec<RawCopy>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCopy {
    server: String,
    activation_preference: u32,
}

impl Definition {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<Definition, DefinitionError> {
        let text = std::fs::read_to_string(path).map_err(|source| DefinitionError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Definition::parse(&text, path)
    }

    /// Parses and checks `text`, the contents of `path` (relative file
    /// names resolve against its directory).
    pub fn parse(text: &str, path: &Path) -> Result<Definition, DefinitionError> {
        let invalid = |message: String| DefinitionError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let raw: RawDefinition = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let base = path.parent().unwrap_or(Path::new("."));
        let duration = |value: &Option<String>, key: &str, default: Duration| match value {
            None => Ok(default),
            Some(s) => parse_duration(s).map_err(|e| invalid(format!("{key}: {e}"))),
        };
        let heartbeat_interval = duration(
            &raw.heartbeat_interval,
            "heartbeat_interval",
            DEFAULT_HEARTBEAT,
        )?;
        let failure_timeout = duration(
            &raw.failure_timeout,
            "failure_timeout",
            DEFAULT_FAILURE_TIMEOUT,
        )?;
        let witness_lease = duration(&raw.witness_lease, "witness_lease", failure_timeout)?;
        if heartbeat_interval.is_zero() || failure_timeout < heartbeat_interval * 4 {
            return Err(invalid(format!(
                "failure_timeout ({}) must be at least 4 heartbeat intervals ({})",
                format_duration(failure_timeout),
                format_duration(heartbeat_interval)
            )));
        }
        if witness_lease < heartbeat_interval * 4 {
            return Err(invalid(
                "witness_lease must be at least 4 heartbeat intervals".into(),
            ));
        }
        let dial = match &raw.auto_database_mount_dial {
            None => MountDial::GoodAvailability,
            Some(s) => MountDial::parse(s).ok_or_else(|| {
                invalid(format!(
                    "auto_database_mount_dial = \"{s}\": expected Lossless, GoodAvailability or BestAvailability"
                ))
            })?,
        };
        let mut members: Vec<Member> = Vec::new();
        for m in raw.member {
            if !valid_name(&m.name) {
                return Err(invalid(format!(
                    "member name \"{}\" is not a server name",
                    m.name
                )));
            }
            if members.iter().any(|o| o.name.eq_ignore_ascii_case(&m.name)) {
                return Err(invalid(format!("member {} appears twice", m.name)));
            }
            members.push(Member {
                name: m.name,
                address: m.address.filter(|a| !a.is_empty()),
                fqdn: m.fqdn.filter(|f| !f.is_empty()),
                tls: m.tls,
            });
        }
        let mut databases: Vec<DatabaseDef> = Vec::new();
        for d in raw.database {
            if !valid_name(&d.name) {
                return Err(invalid(format!(
                    "database name \"{}\" is not a name",
                    d.name
                )));
            }
            if databases
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&d.name))
            {
                return Err(invalid(format!("database {} appears twice", d.name)));
            }
            let mut copies: Vec<CopyDef> = Vec::new();
            for c in d.copy {
                if !members
                    .iter()
                    .any(|m| m.name.eq_ignore_ascii_case(&c.server))
                {
                    return Err(invalid(format!(
                        "database {}: copy on {}, which is no member",
                        d.name, c.server
                    )));
                }
                if copies
                    .iter()
                    .any(|o| o.server.eq_ignore_ascii_case(&c.server))
                {
                    return Err(invalid(format!(
                        "database {}: two copies on {}",
                        d.name, c.server
                    )));
                }
                if c.activation_preference == 0
                    || copies
                        .iter()
                        .any(|o| o.activation_preference == c.activation_preference)
                {
                    return Err(invalid(format!(
                        "database {}: activation_preference {} of {} is 0 or taken",
                        d.name, c.activation_preference, c.server
                    )));
                }
                copies.push(CopyDef {
                    server: c.server,
                    activation_preference: c.activation_preference,
                });
            }
            if copies.is_empty() {
                return Err(invalid(format!("database {} has no copy", d.name)));
            }
            copies.sort_by_key(|c| c.activation_preference);
            databases.push(DatabaseDef {
                name: d.name,
                description: d.description,
                copies,
            });
        }
        Ok(Definition {
            name: raw.name.unwrap_or_else(|| "DAG1".into()),
            witness: base.join(raw.witness.unwrap_or_else(|| "witness.json".into())),
            state: base.join(raw.state.unwrap_or_else(|| "dag-state.json".into())),
            dial,
            heartbeat_interval,
            failure_timeout,
            witness_lease,
            members,
            databases,
        })
    }

    /// The member named `name` (case-insensitive).
    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name))
    }

    /// The database named `name` (case-insensitive).
    pub fn database(&self, name: &str) -> Option<&DatabaseDef> {
        self.databases
            .iter()
            .find(|d| d.name.eq_ignore_ascii_case(name))
    }

    /// How long a server's quorum stays valid after the heartbeats that
    /// confirmed it were sent: two thirds of `failure_timeout` (2 s by
    /// default). Shorter than `failure_timeout`, so a server stopped (or
    /// cut off) no longer claims its copies when the others decide it is
    /// lost.
    pub fn quorum_lease(&self) -> Duration {
        self.failure_timeout * 2 / 3
    }
}

/// Server and database names: 1 to 15 letters, digits, `-` or `_`.
pub(super) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"
# the lab's DAG
name = "DAG1"
failure_timeout = "2s"

[[member]]
name = "EX1"

[[member]]
name = "EX2"

[[database]]
name = "DB01"
description = "Local IT"
[[database.copy]]
server = "EX2"
activation_preference = 2
[[database.copy]]
server = "EX1"
activation_preference = 1
"#;

    #[test]
    fn parses_with_defaults() {
        let def = Definition::parse(TWO, Path::new("/lab/dag.toml")).unwrap();
        assert_eq!(def.witness, Path::new("/lab/witness.json"));
        assert_eq!(def.state, Path::new("/lab/dag-state.json"));
        assert_eq!(def.dial, MountDial::GoodAvailability);
        assert_eq!(def.dial.max_lost(), 6);
        assert_eq!(def.heartbeat_interval, Duration::from_millis(250));
        assert_eq!(def.witness_lease, Duration::from_secs(2));
        let db = def.database("db01").unwrap();
        assert_eq!(db.copies[0].server, "EX1", "sorted by preference");
        assert!(db.copy_on("ex2").is_some());
        assert_eq!(def.quorum_lease(), Duration::from_secs(2) * 2 / 3);
    }

    #[test]
    fn refuses_what_is_wrong() {
        let p = Path::new("dag.toml");
        for (text, want) in [
            ("[[member]]\nname = \"EX1\"\n[[member]]\nname = \"ex1\"\n", "twice"),
            (
                "[[member]]\nname = \"EX1\"\n[[database]]\nname = \"DB01\"\n[[database.copy]]\nserver = \"EX9\"\nactivation_preference = 1\n",
                "no member",
            ),
            ("[[member]]\nname = \"EX1\"\n[[database]]\nname = \"DB01\"\n", "no copy"),
            ("auto_database_mount_dial = \"Whatever\"\n", "Lossless"),
            ("failure_timeout = \"100ms\"\n", "heartbeat"),
            ("colour = 1\n", "unknown field"),
        ] {
            let err = Definition::parse(text, p).unwrap_err().to_string();
            assert!(err.contains(want), "{text}: {err}");
        }
    }
}
