//! The database directory's `rpc_client_access_server` through etcd:
//! `<prefix>/databases/<database, lower case>` holds the value set through
//! any instance's admin API (`PUT /api/databases/{name}`), and overrides
//! the config file's on every instance.
//!
//! The effective config of an instance is its config file with these
//! overrides laid over it ([`effective_config`]): `serve` builds the
//! snapshot (and so the rewrite plan) from it at start, on reload and
//! whenever the cluster's overrides change. A value in etcd that is not a
//! valid host name (written by hand) is skipped with a warning; one for a
//! database this instance's config does not know is ignored.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::client::{bounded, ClusterError};
use super::{now_unix_ms, ClusterView, Shared};
use crate::config::Config;

/// `/databases/<database>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRecord {
    /// The database's name as configured on the instance that set it.
    pub name: String,
    /// Its RpcClientAccessServer (a host name).
    pub rpc_client_access_server: String,
    /// The instance whose admin API set it.
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub at_unix_ms: u64,
}

/// The key of database `name`'s record.
pub fn database_key(prefix: &str, name: &str) -> String {
    format!("{prefix}/databases/{}", name.to_ascii_lowercase())
}

/// `cfg` with the cluster's `rpc_client_access_server` overrides of `view`
/// laid over its databases; `cfg` itself (no copy) when none applies.
/// Without a view (no `[cluster]`) the config file alone.
pub fn effective_config(cfg: &Arc<Config>, view: Option<&ClusterView>) -> Arc<Config> {
    let Some(view) = view.filter(|v| !v.databases.is_empty()) else {
        return Arc::clone(cfg);
    };
    let mut out: Option<Config> = None;
    for (i, d) in cfg.databases.iter().enumerate() {
        let Some(rec) = view.databases.get(&d.name.to_ascii_lowercase()) else {
            continue;
        };
        if d.rpc_client_access_server.as_deref() == Some(rec.rpc_client_access_server.as_str()) {
            continue;
        }
        if let Err(why) = crate::config::dns_name(&rec.rpc_client_access_server) {
            tracing::warn!(database = %d.name, "cluster: rpc_client_access_server in etcd skipped: {why}");
            continue;
        }
        let copy = out.get_or_insert_with(|| (**cfg).clone());
        copy.databases[i].rpc_client_access_server = Some(rec.rpc_client_access_server.clone());
    }
    out.map_or_else(|| Arc::clone(cfg), Arc::new)
}

/// Writes `name`'s `rpc_client_access_server` (both checked by the
/// caller) to etcd; returns once this instance's watch has it and `serve`
/// has applied it (each wait bounded by the request timeout; the value is
/// in etcd either way).
pub(super) async fn set_rpc_client_access_server(
    shared: &Shared,
    name: &str,
    fqdn: &str,
) -> Result<(), ClusterError> {
    let mut client = shared.client()?;
    let record = DatabaseRecord {
        name: name.to_owned(),
        rpc_client_access_server: fqdn.to_owned(),
        by: shared.instance.clone(),
        at_unix_ms: now_unix_ms(),
    };
    let value = serde_json::to_vec(&record).unwrap_or_default();
    let key = database_key(&shared.cfg.prefix, name);
    let resp = bounded(shared.cfg.request_timeout, client.put(key, value, None)).await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    let limit = shared.cfg.request_timeout;
    if !shared.wait_revision(revision, limit).await || !shared.wait_applied(revision, limit).await {
        tracing::warn!(
            revision,
            database = name,
            "cluster: rpc_client_access_server set in etcd but not applied here yet"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Arc<Config> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
        let text = "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
            [listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"bundle.pem\"\n\
            [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n\
            [[database]]\nname = \"DB01\"\nrpc_client_access_server = \"ex1.lab.com\"\n\
            [[database]]\nname = \"DB02\"\n";
        Arc::new(crate::config::parse(text, &dir.path().join("casarray.toml")).unwrap())
    }

    fn record(name: &str, fqdn: &str) -> Vec<u8> {
        serde_json::to_vec(&DatabaseRecord {
            name: name.into(),
            rpc_client_access_server: fqdn.into(),
            by: "a".into(),
            at_unix_ms: 1,
        })
        .unwrap()
    }

    #[test]
    fn the_cluster_value_wins_over_the_file() {
        let p = "/casarray/mail.lab.com";
        let cfg = config();
        let mut view = ClusterView::default();
        assert!(Arc::ptr_eq(&effective_config(&cfg, Some(&view)), &cfg));
        assert!(Arc::ptr_eq(&effective_config(&cfg, None), &cfg));
        // Keys are lower case whatever the name's spelling.
        let key = database_key(p, "DB02");
        assert_eq!(key, "/casarray/mail.lab.com/databases/db02");
        assert!(view.apply(p, key.as_bytes(), Some(&record("DB02", "mail.lab.com")), 3));
        assert!(view.apply(
            p,
            database_key(p, "db09").as_bytes(),
            Some(&record("DB09", "x.lab.com")),
            4
        ));
        let eff = effective_config(&cfg, Some(&view));
        let values: Vec<Option<&str>> = eff
            .databases
            .iter()
            .map(|d| d.rpc_client_access_server.as_deref())
            .collect();
        assert_eq!(values, [Some("ex1.lab.com"), Some("mail.lab.com")]);
        assert_eq!(eff.databases.len(), 2, "an unknown database is ignored");
        // A value that is not a host name is skipped; a bad record too.
        assert!(view.apply(
            p,
            database_key(p, "db01").as_bytes(),
            Some(&record("DB01", "no name!")),
            5
        ));
        assert!(view.apply(p, database_key(p, "db02").as_bytes(), Some(b"{"), 6));
        let eff = effective_config(&cfg, Some(&view));
        assert_eq!(
            eff.databases[0].rpc_client_access_server.as_deref(),
            Some("ex1.lab.com")
        );
        assert_eq!(
            eff.databases[1].rpc_client_access_server.as_deref(),
            Some("mail.lab.com")
        );
        // Deleted: the file's value again.
        assert!(view.apply(p, database_key(p, "db02").as_bytes(), None, 7));
        let eff = effective_config(&cfg, Some(&view));
        assert_eq!(eff.databases[1].rpc_client_access_server, None);
    }
}
