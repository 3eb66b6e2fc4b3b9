//! The admin API's JSON as types: what `admin` serves, and what
//! `casarray status`, `casarray array get` and the database commands read
//! back through [`client::AdminClient`]. One model, so a field renamed on
//! one side is renamed on the other.
//!
//! Readers are lenient (`#[serde(default)]` on everything but names), so a
//! newer client can read an older array's answers.

pub mod client;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// `GET /api/array`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArrayView {
    pub name: String,
    pub fqdn: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub public_names: Vec<String>,
    #[serde(default = "default_port")]
    pub public_port: u16,
    /// Member names, in config order.
    #[serde(default)]
    pub members: Vec<String>,
    /// Service names, in config order.
    #[serde(default)]
    pub services: Vec<String>,
    /// With `[cluster]`: the shared state's etcd and the instances seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterStatusView>,
}

/// `GET /api/array`'s `cluster`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatusView {
    #[serde(default)]
    pub endpoints: Vec<String>,
    #[serde(default)]
    pub prefix: String,
    /// This instance's name.
    #[serde(default)]
    pub instance: String,
    /// Whether this instance follows etcd now.
    #[serde(default)]
    pub connected: bool,
    /// The etcd revision of this instance's view.
    #[serde(default)]
    pub revision: i64,
    /// The instances registered, by name.
    #[serde(default)]
    pub instances: Vec<ClusterInstanceView>,
}

/// One registered instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterInstanceView {
    pub instance: String,
    #[serde(default)]
    pub admin: String,
    #[serde(default)]
    pub https: String,
    #[serde(default)]
    pub started_unix_ms: u64,
    #[serde(default)]
    pub version: String,
}

fn default_port() -> u16 {
    443
}

/// Whether a member takes new requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MemberState {
    #[default]
    Active,
    /// Drained through the admin API: no new request; in-flight ones finish.
    Draining,
}

impl fmt::Display for MemberState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            MemberState::Active => "active",
            MemberState::Draining => "draining",
        })
    }
}

/// One element of `GET /api/members`, and `GET /api/members/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberView {
    pub name: String,
    #[serde(default)]
    pub address: String,
    #[serde(default)]
    pub fqdn: String,
    #[serde(default)]
    pub weight: Option<u32>,
    /// HTTPS to the member.
    #[serde(default)]
    pub tls: bool,
    #[serde(default)]
    pub state: MemberState,
    /// Every service is up on it.
    #[serde(default)]
    pub healthy: bool,
    /// Requests and streams in flight to it now.
    #[serde(default)]
    pub in_flight: u64,
    /// Per service: up (healthy) or not.
    #[serde(default)]
    pub services: BTreeMap<String, bool>,
    /// Per service, the last probe; no entry before the first one.
    #[serde(default)]
    pub last_checks: BTreeMap<String, CheckView>,
}

/// One health probe's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckView {
    pub at_unix_ms: i64,
    pub ok: bool,
    #[serde(default)]
    pub detail: String,
}

/// One element of `GET /api/databases`, and `GET /api/databases/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseView {
    pub name: String,
    /// `None` (null): unset; Autodiscover keeps what the server said.
    #[serde(default)]
    pub rpc_client_access_server: Option<String>,
    /// The member whose copy is mounted; `None` (null) while none is, or
    /// without a DAG.
    #[serde(default)]
    pub active: Option<String>,
    /// Its copies (empty without a DAG), by activation preference.
    #[serde(default)]
    pub copies: Vec<CopyView>,
    /// Activations of another copy so far, as the members report them.
    #[serde(default)]
    pub failovers: u64,
}

impl DatabaseView {
    /// A database of the config, without DAG state.
    pub fn configured(name: &str, rpc_client_access_server: Option<&str>) -> Self {
        DatabaseView {
            name: name.to_owned(),
            rpc_client_access_server: rpc_client_access_server.map(str::to_owned),
            active: None,
            copies: Vec::new(),
            failovers: 0,
        }
    }
}

/// One copy of a database (`Get-MailboxDatabaseCopyStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyView {
    pub server: String,
    /// 1 is preferred.
    #[serde(default)]
    pub activation_preference: u32,
    /// `Mounted`, `Healthy`, `Suspended`, `Failed`, `ServiceDown`,
    /// `Dismounted`, `Initializing`.
    #[serde(default)]
    pub status: String,
    /// Log generations not copied yet.
    #[serde(default)]
    pub copy_queue: u64,
    /// Copied, not replayed yet.
    #[serde(default)]
    pub replay_queue: u64,
}

/// The body of an error answer: `{"error": "..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorView {
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_read_back_as_served_and_from_older_arrays() {
        let m = MemberView {
            name: "EX1".into(),
            address: "127.0.0.1:9001".into(),
            fqdn: "ex1.lab.local".into(),
            weight: Some(1),
            tls: false,
            state: MemberState::Draining,
            healthy: true,
            in_flight: 3,
            services: [("owa".to_string(), true)].into(),
            last_checks: BTreeMap::new(),
        };
        let text = serde_json::to_string(&m).unwrap();
        assert!(text.contains("\"state\":\"draining\""), "{text}");
        assert_eq!(serde_json::from_str::<MemberView>(&text).unwrap(), m);
        let old: MemberView = serde_json::from_str(r#"{"name":"EX2","healthy":true}"#).unwrap();
        assert_eq!(old.state, MemberState::Active);
        let a: ArrayView = serde_json::from_str(r#"{"name":"a","fqdn":"mail.lab.com"}"#).unwrap();
        assert_eq!(a.public_port, 443);
    }
}
