//! The DAG's active copies through etcd: `<prefix>/dag/<database, lower
//! case>` holds the member a database is mounted on and the activation
//! epoch it was learned at, so that instances agree on where a mailbox
//! lives without waiting for their own polls.
//!
//! - Writing: when this instance's poll learns a database's active copy at
//!   an epoch newer than the cluster's record ([`newer_than_record`]), it
//!   writes the record by compare-and-swap (the key absent, or at the
//!   `mod_revision` this instance saw): an instance that saw an older
//!   record loses the race, so an older epoch never overwrites a newer one.
//!   A database reported without an epoch (0) is not shared: there is no
//!   order to keep.
//! - Reading: every instance lays the cluster's records over its own map
//!   ([`crate::dag::Dag::learn`]): a newer epoch is routed at once (and
//!   counted as an activation, as its own poll would), and its poller is
//!   poked to confirm.
//!
//! With etcd away nothing is written and the last records known stay laid
//! over the map; each instance's own poll keeps it current.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Compare, CompareOp, Txn, TxnOp};
use serde::{Deserialize, Serialize};

use super::client::{bounded, ClusterError};
use super::{now_unix_ms, ClusterView, Shared};
use crate::dag::map::Database;
use crate::dag::{Dag, DagMap, Learned};
use crate::errors::error_chain;
use crate::metrics::Metrics;

/// After a failed write, try again this much later: 1 s.
const RETRY: Duration = Duration::from_secs(1);

/// `/dag/<database>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DagRecord {
    /// The database's name as the members report it.
    pub database: String,
    /// The member its active copy is mounted on.
    pub mounted: String,
    /// The activation epoch (grows by one at each activation).
    pub epoch: u64,
    /// The instance whose poll learned it.
    #[serde(default)]
    pub by: String,
    #[serde(default)]
    pub at_unix_ms: u64,
}

/// The key of database `name`'s record.
pub fn dag_key(prefix: &str, name: &str) -> String {
    format!("{prefix}/dag/{}", name.to_ascii_lowercase())
}

/// The epoch rule: whether this instance's `db` should replace the
/// cluster's `record`: mounted somewhere, at an epoch (above 0) newer than
/// the record's.
pub fn newer_than_record(record: Option<&DagRecord>, db: &Database) -> bool {
    db.mounted.is_some() && db.epoch > 0 && record.is_none_or(|r| db.epoch > r.epoch)
}

/// The cluster's records, as the DAG map takes them.
pub fn learned(view: &ClusterView) -> Vec<Learned> {
    view.dag
        .values()
        .filter(|(r, _)| !r.mounted.is_empty())
        .map(|(r, _)| Learned {
            database: r.database.clone(),
            mounted: r.mounted.clone(),
            epoch: r.epoch,
        })
        .collect()
}

/// Runs until the cluster is dropped: lays the cluster's records over
/// `dag` at each change of the view, and writes what this instance's poll
/// learned first at each change of its own map.
pub(super) async fn run(shared: Arc<Shared>, dag: Arc<Dag>, metrics: Metrics) {
    let mut own = dag.subscribe_own();
    let mut views = shared.changed.subscribe();
    loop {
        dag.learn(learned(&shared.view.load()), &metrics);
        let mut failed = false;
        if shared.connected.load(Ordering::SeqCst) {
            if let Err(e) = write_newer(&shared, &dag.own()).await {
                tracing::debug!(
                    "cluster: DAG active copies not written (tried again): {}",
                    error_chain(&e)
                );
                failed = true;
            }
        }
        let retry = async {
            if failed {
                tokio::time::sleep(RETRY).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        tokio::select! {
            r = own.changed() => if r.is_err() { return },
            r = views.changed() => if r.is_err() { return },
            () = retry => {}
        }
    }
}

/// Writes each database of `own` that is newer than the cluster's record,
/// by compare-and-swap. A lost race is not an error: the winner's record
/// comes through the watch, and is looked at again then.
async fn write_newer(shared: &Shared, own: &DagMap) -> Result<(), ClusterError> {
    let view = shared.view.load_full();
    for db in own.databases() {
        let seen = view.dag.get(&db.name.to_ascii_lowercase());
        if !newer_than_record(seen.map(|(r, _)| r), db) {
            continue;
        }
        let Some(mounted) = &db.mounted else { continue };
        let record = DagRecord {
            database: db.name.clone(),
            mounted: mounted.clone(),
            epoch: db.epoch,
            by: shared.instance.clone(),
            at_unix_ms: now_unix_ms(),
        };
        let key = dag_key(&shared.cfg.prefix, &db.name);
        let compare = match seen {
            None => Compare::version(key.clone(), CompareOp::Equal, 0),
            Some((_, revision)) => Compare::mod_revision(key.clone(), CompareOp::Equal, *revision),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let txn = Txn::new()
            .when([compare])
            .and_then([TxnOp::put(key, value, None)]);
        let mut client = shared.client()?;
        let resp = bounded(shared.cfg.request_timeout, client.txn(txn)).await?;
        if resp.succeeded() {
            tracing::info!(
                database = %db.name,
                mounted = %mounted,
                epoch = db.epoch,
                "cluster: DAG active copy written"
            );
        } else {
            tracing::debug!(database = %db.name, "cluster: DAG record changed meanwhile; not written");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db(mounted: Option<&str>, epoch: u64) -> Database {
        Database {
            name: "DB01".into(),
            mounted: mounted.map(Into::into),
            epoch,
            failovers: 0,
            copies: Vec::new(),
        }
    }

    fn record(mounted: &str, epoch: u64) -> DagRecord {
        DagRecord {
            database: "DB01".into(),
            mounted: mounted.into(),
            epoch,
            by: "a".into(),
            at_unix_ms: 1,
        }
    }

    #[test]
    fn only_a_newer_epoch_replaces_the_record() {
        assert!(newer_than_record(None, &db(Some("EX1"), 1)));
        assert!(newer_than_record(
            Some(&record("EX1", 1)),
            &db(Some("EX2"), 2)
        ));
        // Same epoch, older, nothing mounted, no epoch at all: never.
        assert!(!newer_than_record(
            Some(&record("EX1", 2)),
            &db(Some("EX1"), 2)
        ));
        assert!(!newer_than_record(
            Some(&record("EX2", 3)),
            &db(Some("EX1"), 2)
        ));
        assert!(!newer_than_record(None, &db(None, 4)));
        assert!(!newer_than_record(None, &db(Some("EX1"), 0)));
    }

    #[test]
    fn dag_keys_are_parsed_with_their_revision() {
        let p = "/casarray/mail.lab.com";
        let mut v = ClusterView::default();
        let key = dag_key(p, "DB01");
        assert_eq!(key, "/casarray/mail.lab.com/dag/db01");
        let value = serde_json::to_vec(&record("EX2", 7)).unwrap();
        assert!(v.apply(p, key.as_bytes(), Some(&value), 42));
        assert_eq!(v.dag.get("db01"), Some(&(record("EX2", 7), 42)));
        assert_eq!(
            learned(&v),
            [Learned {
                database: "DB01".into(),
                mounted: "EX2".into(),
                epoch: 7
            }]
        );
        // A bad value is skipped and keeps the last one; a delete removes.
        assert!(v.apply(p, key.as_bytes(), Some(b"{"), 43));
        assert_eq!(v.dag.get("db01").map(|(_, r)| *r), Some(42));
        assert!(v.apply(p, key.as_bytes(), None, 44));
        assert!(v.dag.is_empty());
        assert!(learned(&v).is_empty());
    }
}
