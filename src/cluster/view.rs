//! The cluster's state as this instance last read it from etcd: the keys
//! under `[cluster] prefix`, parsed. Rebuilt whole on a (re)sync, then
//! kept up to date event by event from the watch.
//!
//! Keys (relative to the prefix):
//! - `/drain/<member, lower case>`: the member is drained (value: JSON
//!   [`DrainRecord`]);
//! - `/instances/<instance>`: a running instance, under its lease (JSON
//!   [`InstanceRecord`]);
//! - `/tickets`: the TLS session ticket keys (`super::tickets`); never
//!   logged;
//! - `/databases/<database, lower case>`: the database's
//!   `rpc_client_access_server` set through the admin API (JSON
//!   [`DatabaseRecord`]), over the config file's;
//! - `/dag/<database, lower case>`: the database's active copy and its
//!   epoch, as the first instance to learn it wrote it (JSON
//!   [`DagRecord`], kept with its `mod_revision` for the compare-and-swap).
//!
//! A value that cannot be understood is logged (its key only) and skipped:
//! one bad key never stops the others.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::dag::DagRecord;
use super::directory::DatabaseRecord;
use super::tickets::TicketKeys;

/// `/drain/<member>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DrainRecord {
    /// The member's name as configured on the instance that drained it.
    pub member: String,
    /// The instance whose admin API drained it.
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub at_unix_ms: u64,
}

/// `/instances/<instance>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceRecord {
    pub instance: String,
    /// Its admin listener.
    #[serde(default)]
    pub admin: String,
    /// Its HTTPS listener.
    #[serde(default)]
    pub https: String,
    #[serde(default)]
    pub started_unix_ms: u64,
    /// casarray's version.
    #[serde(default)]
    pub version: String,
}

/// Everything under the prefix, parsed.
#[derive(Debug, Clone, Default)]
pub struct ClusterView {
    /// The etcd revision this view is at (0: never synced).
    pub revision: i64,
    /// Drained members by lower-case name.
    pub drained: BTreeMap<String, DrainRecord>,
    /// Running instances by name.
    pub instances: BTreeMap<String, InstanceRecord>,
    /// The ticket keys and the revision of their key (for rotation's
    /// compare-and-swap).
    pub tickets: Option<(TicketKeys, i64)>,
    /// `rpc_client_access_server` overrides by lower-case database name.
    pub databases: BTreeMap<String, DatabaseRecord>,
    /// DAG active copies by lower-case database name, with the revision
    /// of their key.
    pub dag: BTreeMap<String, (DagRecord, i64)>,
}

/// The key of one kind of record, relative to the prefix.
pub fn drain_key(prefix: &str, member: &str) -> String {
    format!("{prefix}/drain/{}", member.to_ascii_lowercase())
}

pub fn instance_key(prefix: &str, instance: &str) -> String {
    format!("{prefix}/instances/{instance}")
}

pub fn tickets_key(prefix: &str) -> String {
    format!("{prefix}/tickets")
}

impl ClusterView {
    /// Takes a put (`Some(value)`) or a delete (`None`) of `key` (whole,
    /// with `prefix`) at `mod_revision`. Returns false when the key is not
    /// one of ours (ignored).
    pub fn apply(
        &mut self,
        prefix: &str,
        key: &[u8],
        value: Option<&[u8]>,
        mod_revision: i64,
    ) -> bool {
        let Some(rest) = std::str::from_utf8(key)
            .ok()
            .and_then(|k| k.strip_prefix(prefix))
        else {
            return false;
        };
        let (kind, name) = match rest.strip_prefix('/').map(|r| r.split_once('/')) {
            Some(Some((kind, name))) if !name.is_empty() => (kind, name),
            _ if rest == "/tickets" => ("tickets", ""),
            _ => return false,
        };
        match kind {
            "drain" => put_or_delete(&mut self.drained, name, value, rest),
            "instances" => put_or_delete(&mut self.instances, name, value, rest),
            "databases" => put_or_delete(&mut self.databases, name, value, rest),
            "dag" => match value.map(serde_json::from_slice::<DagRecord>) {
                None => {
                    self.dag.remove(name);
                }
                Some(Ok(record)) => {
                    self.dag.insert(name.to_owned(), (record, mod_revision));
                }
                Some(Err(e)) => {
                    tracing::warn!(key = rest, "cluster: value not understood, skipped: {e}")
                }
            },
            "tickets" => {
                self.tickets = match value.map(serde_json::from_slice::<TicketKeys>) {
                    None => None,
                    Some(Ok(keys)) => Some((keys, mod_revision)),
                    Some(Err(e)) => {
                        // The error says where the JSON is wrong, never its content.
                        tracing::warn!(
                            key = rest,
                            line = e.line(),
                            "cluster: ticket keys not understood; kept the last ones"
                        );
                        return true;
                    }
                };
            }
            _ => return false,
        }
        true
    }

    /// The drained members' names.
    pub fn drained_names(&self) -> Vec<String> {
        self.drained.values().map(|d| d.member.clone()).collect()
    }
}

fn put_or_delete<T: for<'a> Deserialize<'a>>(
    map: &mut BTreeMap<String, T>,
    name: &str,
    value: Option<&[u8]>,
    key: &str,
) {
    match value {
        None => {
            map.remove(name);
        }
        Some(bytes) => match serde_json::from_slice(bytes) {
            Ok(v) => {
                map.insert(name.to_owned(), v);
            }
            Err(e) => tracing::warn!(key, "cluster: value not understood, skipped: {e}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_parsed_by_kind() {
        let p = "/casarray/mail.lab.com";
        let mut v = ClusterView::default();
        let drain = serde_json::to_vec(&DrainRecord {
            member: "EX1".into(),
            by: "a".into(),
            at_unix_ms: 1,
        })
        .unwrap();
        assert!(v.apply(p, drain_key(p, "EX1").as_bytes(), Some(&drain), 5));
        assert_eq!(v.drained_names(), ["EX1"]);
        assert!(v.apply(p, drain_key(p, "ex1").as_bytes(), None, 6));
        assert!(v.drained.is_empty());
        // Not ours: another prefix, an unknown kind, the prefix itself.
        assert!(!v.apply(p, b"/casarray/other/drain/ex1", Some(&drain), 7));
        assert!(!v.apply(p, format!("{p}/x/y").as_bytes(), Some(b"1"), 7));
        assert!(!v.apply(p, p.as_bytes(), Some(b"1"), 7));
        // A bad value is skipped, not an error.
        assert!(v.apply(p, drain_key(p, "ex2").as_bytes(), Some(b"{"), 8));
        assert!(v.drained.is_empty());
        assert!(v.apply(p, tickets_key(p).as_bytes(), Some(b"nope"), 9));
        assert!(v.tickets.is_none());
    }
}
