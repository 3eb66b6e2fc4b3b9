//! `GET /mock/dag/status`: this server's view of the DAG.
//!
//! ```json
//! {
//!   "server": "EX1", "dag": "DAG1", "at_unix_ms": 1700000000000, "version": 12,
//!   "auto_database_mount_dial": "GoodAvailability",
//!   "quorum": {"has": true, "votes": 2, "needed": 2, "total": 3, "witness_counts": true,
//!              "members_up": ["EX1", "EX2"], "valid_until_unix_ms": 1700000002000},
//!   "witness": {"holder": "EX1", "expires_unix_ms": 1700000003000, "held_by_me": true},
//!   "members": [{"name": "EX1", "address": "127.0.0.1:40001", "up": true, "error": null}, ...],
//!   "databases": [{
//!     "name": "DB01", "description": "Local IT",
//!     "active": "EX1", "epoch": 1, "mounted": "EX1", "mounted_since_unix_ms": 1700000000000,
//!     "moving_to": null, "failovers": 0, "note": null,
//!     "last_activation": {"kind": "initial", "from": null, "to": "EX1", "lost_logs": 0,
//!                         "generation": 0, "decided_by": "EX1", "at_unix_ms": 1700000000000},
//!     "last_log": {"server": "EX1", "epoch": 1, "generation": 7, "at_unix_ms": 1700000001000},
//!     "copies": [{"server": "EX1", "activation_preference": 1, "status": "Mounted",
//!                 "copy_queue": 0, "replay_queue": 0, "copied_generation": 7,
//!                 "replayed_generation": 7}, ...]
//!   }]
//! }
//! ```
//!
//! A copy on this server is reported as it is now (`Mounted` only while it
//! takes writes); a copy on another server as that server last reported it
//! in a heartbeat answer, or `ServiceDown` when that server is lost.
//! `mounted` names the server whose copy is `Mounted` in this view (null
//! when none is). `version` changes whenever anything but the times does;
//! with `If-None-Match: "<version>"` the answer is `304` while it has not.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};

use serde_json::{json, Value};

use super::report::CopyStatus;
use super::{now_ms, quorum, witness, Dag};

/// The view, with its version.
pub fn view(dag: &Dag) -> Value {
    let def = dag.def();
    let cluster = dag.cluster();
    let now = now_ms();
    let votes = quorum::votes(def.members.len());
    let members_up: Vec<&str> = def
        .members
        .iter()
        .filter(|m| !dag.peer_down(&m.name, now))
        .map(|m| m.name.as_str())
        .collect();
    let until = dag.quorum_until(true);
    let lease = witness::read(&def.witness).filter(|l| l.valid_at(now));
    let mut databases = Vec::new();
    for db in &def.databases {
        let st = cluster.db(&db.name);
        let mut mounted = None;
        let mut mounted_since = None;
        let copies: Vec<Value> = db
            .copies
            .iter()
            .map(|c| {
                let report = dag.report_of(&c.server, &db.name);
                let status = report
                    .as_ref()
                    .map_or(CopyStatus::ServiceDown, |r| r.status);
                if status == CopyStatus::Mounted {
                    mounted = Some(c.server.clone());
                    mounted_since = report.as_ref().and_then(|r| r.mounted_since_unix_ms);
                }
                json!({
                    "server": c.server,
                    "activation_preference": c.activation_preference,
                    "status": status,
                    "copy_queue": report.as_ref().map_or(0, |r| r.copy_queue()),
                    "replay_queue": report.as_ref().map_or(0, |r| r.replay_queue()),
                    "copied_generation": report.as_ref().map(|r| r.copied),
                    "replayed_generation": report.as_ref().map(|r| r.replayed),
                    "error": report.as_ref().and_then(|r| r.error.clone()),
                })
            })
            .collect();
        databases.push(json!({
            "name": db.name,
            "description": db.description,
            "active": st.map(|s| s.active.clone()),
            "epoch": st.map(|s| s.epoch),
            "mounted": mounted,
            "mounted_since_unix_ms": mounted_since,
            "moving_to": st.and_then(|s| s.moving_to.clone()),
            "failovers": st.map_or(0, |s| s.failovers),
            "last_activation": st.and_then(|s| s.last_activation.clone()),
            "last_log": st.and_then(|s| s.last_log.clone()),
            "note": dag.note_of(&db.name),
            "copies": copies,
        }));
    }
    let members: Vec<Value> = def
        .members
        .iter()
        .map(|m| {
            let me = m.name.eq_ignore_ascii_case(dag.me());
            json!({
                "name": m.name,
                "address": m.address,
                "up": !dag.peer_down(&m.name, now),
                "error": if me { None } else { dag.peers.error(&m.name) },
            })
        })
        .collect();
    let mut body = json!({
        "server": dag.me(),
        "members": members,
        "dag": def.name,
        "auto_database_mount_dial": def.dial.as_str(),
        "quorum": {
            "has": until > now,
            "votes": members_up.len() + usize::from(votes.witness_counts
                && dag.held_witness().is_some_and(|l| l.valid_at(now))),
            "needed": votes.needed,
            "total": votes.total,
            "witness_counts": votes.witness_counts,
            "members_up": members_up,
        },
        "witness": {
            "holder": lease.as_ref().map(|l| l.holder.clone()),
            "held_by_me": lease.as_ref().is_some_and(|l| l.holder.eq_ignore_ascii_case(dag.me())),
        },
        "databases": databases,
    });
    let version = dag.version_of(&body.to_string());
    body["version"] = json!(version);
    body["at_unix_ms"] = json!(now);
    body["quorum"]["valid_until_unix_ms"] =
        json!(if until == u64::MAX { None } else { Some(until) });
    body["witness"]["expires_unix_ms"] = json!(lease.map(|l| l.expires_unix_ms));
    body
}

impl Dag {
    /// A counter that moves whenever `stable` (the view without its times)
    /// differs from the last one.
    fn version_of(&self, stable: &str) -> u64 {
        let mut h = DefaultHasher::new();
        stable.hash(&mut h);
        let hash = h.finish();
        let mut v = self.view_version.lock().unwrap_or_else(|p| p.into_inner());
        if v.0 != hash {
            *v = (hash, v.1 + 1);
        }
        v.1
    }
}
