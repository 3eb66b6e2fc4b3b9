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
//! Edits (a server registering its address, a copy added or removed) are
//! made with `toml_edit` (comments survive), checked by parsing the result,
//! and written atomically (temporary file, fsync, rename, fsync of the
//! directory), under the DAG lock (see `lock`).

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

/// The `dag.toml` of a lab of `servers` servers (EX1..EXn) and the lab's
/// databases: database number k (from 0) prefers server k mod n, and has
/// copies on up to 3 servers from there (with 2 servers: DB01 on EX1 then
/// EX2, DB02 on EX2 then EX1).
pub fn lab_text(servers: usize, databases: &[(&str, &str)]) -> String {
    use std::fmt::Write as _;
    let n = servers.max(1);
    let mut s = String::from(
        "# casarray lab: the database availability group (DAG) of the mock servers.\n\
         # Written by `casarray lab` on its first run. Each server records its address\n\
         # here when it starts; `copy add` and `copy remove` edit the copies.\n\
         name = \"DAG1\"\n\
         witness = \"witness.json\"                     # the witness lease\n\
         state = \"dag-state.json\"                     # which copy is active\n\
         auto_database_mount_dial = \"GoodAvailability\" # Lossless | GoodAvailability (6 logs) | BestAvailability (12)\n\
         heartbeat_interval = \"250ms\"\n\
         failure_timeout = \"3s\"                       # a server not heard from for this long is lost\n\n",
    );
    for i in 1..=n {
        let _ = write!(s, "[[member]]\nname = \"EX{i}\"\n\n");
    }
    for (k, (name, description)) in databases.iter().enumerate() {
        let _ = write!(
            s,
            "[[database]]\nname = \"{name}\"\ndescription = \"{description}\"\n"
        );
        for p in 0..n.min(3) {
            let server = (k + p) % n + 1;
            let _ = write!(
                s,
                "[[database.copy]]\nserver = \"EX{server}\"\nactivation_preference = {}\n",
                p + 1
            );
        }
        s.push('\n');
    }
    s
}

/// Server and database names: 1 to 15 letters, digits, `-` or `_`.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Reads `path` as an editable document.
fn read_doc(path: &Path) -> Result<toml_edit::DocumentMut, DefinitionError> {
    let text = std::fs::read_to_string(path).map_err(|source| DefinitionError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    text.parse()
        .map_err(|e: toml_edit::TomlError| DefinitionError::Invalid {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Checks the edited document and writes it atomically.
fn write_doc(path: &Path, doc: &toml_edit::DocumentMut) -> Result<Definition, DefinitionError> {
    let text = doc.to_string();
    let def = Definition::parse(&text, path)?;
    crate::atomic_file::write_atomically(path, text.as_bytes()).map_err(|source| {
        DefinitionError::Write {
            path: path.to_path_buf(),
            source,
        }
    })?;
    Ok(def)
}

fn tables_mut<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    key: &str,
) -> Option<&'a mut toml_edit::ArrayOfTables> {
    doc.get_mut(key).and_then(|i| i.as_array_of_tables_mut())
}

fn name_is(t: &toml_edit::Table, key: &str, name: &str) -> bool {
    t.get(key)
        .and_then(|v| v.as_str())
        .is_some_and(|v| v.eq_ignore_ascii_case(name))
}

/// Records where member `name` listens (a server does it when it starts).
/// The caller holds the DAG lock.
pub fn register_member(
    path: &Path,
    name: &str,
    address: &str,
    fqdn: &str,
    tls: bool,
) -> Result<Definition, DefinitionError> {
    let mut doc = read_doc(path)?;
    let member = tables_mut(&mut doc, "member")
        .and_then(|ms| ms.iter_mut().find(|t| name_is(t, "name", name)))
        .ok_or_else(|| {
            DefinitionError::Edit(format!(
                "{name} is not a member of the DAG in {}",
                path.display()
            ))
        })?;
    member["address"] = toml_edit::value(address);
    member["fqdn"] = toml_edit::value(fqdn);
    member["tls"] = toml_edit::value(tls);
    write_doc(path, &doc)
}

/// Adds members that are not there yet (without copies). The caller holds
/// the DAG lock.
pub fn ensure_members(path: &Path, names: &[String]) -> Result<Definition, DefinitionError> {
    let mut doc = read_doc(path)?;
    if doc.get("member").is_none() {
        doc["member"] = toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new());
    }
    let members = tables_mut(&mut doc, "member").ok_or_else(|| {
        DefinitionError::Edit(format!("{}: `member` is not a table array", path.display()))
    })?;
    for name in names {
        if !members.iter().any(|t| name_is(t, "name", name)) {
            let mut t = toml_edit::Table::new();
            t["name"] = toml_edit::value(name.as_str());
            members.push(t);
        }
    }
    write_doc(path, &doc)
}

fn database_mut<'a>(
    doc: &'a mut toml_edit::DocumentMut,
    path: &Path,
    database: &str,
) -> Result<&'a mut toml_edit::Table, DefinitionError> {
    tables_mut(doc, "database")
        .and_then(|ds| ds.iter_mut().find(|t| name_is(t, "name", database)))
        .ok_or_else(|| {
            DefinitionError::Edit(format!("no database {database} in {}", path.display()))
        })
}

/// Renumbers the copies 1..n in the order given.
fn renumber(copies: &mut toml_edit::ArrayOfTables, order: &[String]) {
    for t in copies.iter_mut() {
        let server = t.get("server").and_then(|v| v.as_str()).unwrap_or_default();
        if let Some(i) = order.iter().position(|s| s.eq_ignore_ascii_case(server)) {
            t["activation_preference"] = toml_edit::value(i64::try_from(i + 1).unwrap_or(1));
        }
    }
}

/// The servers of `copies` by activation preference.
fn by_preference(copies: &toml_edit::ArrayOfTables) -> Vec<String> {
    let mut list: Vec<(i64, String)> = copies
        .iter()
        .map(|t| {
            (
                t.get("activation_preference")
                    .and_then(|v| v.as_integer())
                    .unwrap_or(i64::MAX),
                t.get("server")
                    .and_then(|v| v.as_str())
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    list.sort();
    list.into_iter().map(|(_, s)| s).collect()
}

/// Adds a copy of `database` on `server` with activation preference
/// `preference` (default: last); the others are renumbered around it, as
/// `Add-MailboxDatabaseCopy` does. The caller holds the DAG lock.
pub fn add_copy(
    path: &Path,
    database: &str,
    server: &str,
    preference: Option<u32>,
) -> Result<Definition, DefinitionError> {
    let mut doc = read_doc(path)?;
    let member_name = Definition::parse(&doc.to_string(), path)?
        .member(server)
        .map(|m| m.name.clone())
        .ok_or_else(|| DefinitionError::Edit(format!("{server} is not a member of the DAG")))?;
    let db = database_mut(&mut doc, path, database)?;
    if db.get("copy").is_none() {
        db["copy"] = toml_edit::Item::ArrayOfTables(toml_edit::ArrayOfTables::new());
    }
    let copies = db
        .get_mut("copy")
        .and_then(|i| i.as_array_of_tables_mut())
        .ok_or_else(|| DefinitionError::Edit(format!("{database}: `copy` is not a table array")))?;
    if copies.iter().any(|t| name_is(t, "server", server)) {
        return Err(DefinitionError::Edit(format!(
            "{database} already has a copy on {member_name}"
        )));
    }
    let mut order = by_preference(copies);
    let at = preference
        .map(|p| usize::try_from(p.max(1)).unwrap_or(usize::MAX) - 1)
        .unwrap_or(order.len())
        .min(order.len());
    order.insert(at, member_name.clone());
    let mut t = toml_edit::Table::new();
    t["server"] = toml_edit::value(member_name);
    t["activation_preference"] = toml_edit::value(1);
    copies.push(t);
    renumber(copies, &order);
    write_doc(path, &doc)
}

/// Removes the copy of `database` on `server`; the others are renumbered.
/// The caller holds the DAG lock (and has checked that it is not the
/// active copy).
pub fn remove_copy(
    path: &Path,
    database: &str,
    server: &str,
) -> Result<Definition, DefinitionError> {
    let mut doc = read_doc(path)?;
    let db = database_mut(&mut doc, path, database)?;
    let copies = db
        .get_mut("copy")
        .and_then(|i| i.as_array_of_tables_mut())
        .ok_or_else(|| DefinitionError::Edit(format!("{database} has no copies")))?;
    let Some(index) = copies.iter().position(|t| name_is(t, "server", server)) else {
        return Err(DefinitionError::Edit(format!(
            "{database} has no copy on {server}"
        )));
    };
    if copies.len() == 1 {
        return Err(DefinitionError::Edit(format!(
            "{server} holds the only copy of {database}"
        )));
    }
    copies.remove(index);
    let order = by_preference(copies);
    renumber(copies, &order);
    write_doc(path, &doc)
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

    #[test]
    fn lab_definitions_spread_copies() {
        let dbs = [("DB01", "Local IT"), ("DB02", "Global IT")];
        let two = Definition::parse(&lab_text(2, &dbs), Path::new("dag.toml")).unwrap();
        let copies = |def: &Definition, db: &str| -> Vec<(String, u32)> {
            def.database(db)
                .unwrap()
                .copies
                .iter()
                .map(|c| (c.server.clone(), c.activation_preference))
                .collect()
        };
        assert_eq!(copies(&two, "DB01"), [("EX1".into(), 1), ("EX2".into(), 2)]);
        assert_eq!(copies(&two, "DB02"), [("EX2".into(), 1), ("EX1".into(), 2)]);
        assert_eq!(two.dial, MountDial::GoodAvailability);
        let one = Definition::parse(&lab_text(1, &dbs), Path::new("dag.toml")).unwrap();
        assert_eq!(copies(&one, "DB02"), [("EX1".into(), 1)]);
        let five = Definition::parse(&lab_text(5, &dbs), Path::new("dag.toml")).unwrap();
        assert_eq!(five.members.len(), 5);
        assert_eq!(
            copies(&five, "DB02"),
            [("EX2".into(), 1), ("EX3".into(), 2), ("EX4".into(), 3)]
        );
    }

    #[test]
    fn edits_keep_comments_and_renumber() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dag.toml");
        std::fs::write(&path, TWO).unwrap();
        ensure_members(&path, &["EX1".into(), "EX3".into()]).unwrap();
        let def = register_member(&path, "ex3", "127.0.0.1:9", "ex3.lab.local", true).unwrap();
        let ex3 = def.member("EX3").unwrap();
        assert_eq!(ex3.address.as_deref(), Some("127.0.0.1:9"));
        assert!(ex3.tls);
        assert!(register_member(&path, "EX9", "x", "y", false).is_err());

        let def = add_copy(&path, "DB01", "ex3", Some(1)).unwrap();
        let order: Vec<_> = def.databases[0]
            .copies
            .iter()
            .map(|c| (c.server.as_str(), c.activation_preference))
            .collect();
        assert_eq!(order, [("EX3", 1), ("EX1", 2), ("EX2", 3)]);
        assert!(add_copy(&path, "DB01", "EX3", None).is_err(), "twice");
        assert!(add_copy(&path, "DB09", "EX3", None).is_err());
        let def = remove_copy(&path, "DB01", "EX1").unwrap();
        let order: Vec<_> = def.databases[0]
            .copies
            .iter()
            .map(|c| (c.server.as_str(), c.activation_preference))
            .collect();
        assert_eq!(order, [("EX3", 1), ("EX2", 2)]);
        remove_copy(&path, "DB01", "EX2").unwrap();
        assert!(remove_copy(&path, "DB01", "EX3").is_err(), "the only copy");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# the lab's DAG"), "{text}");
    }
}
