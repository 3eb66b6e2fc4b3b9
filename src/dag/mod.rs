//! The array's knowledge of the members' database availability group: which
//! member holds each database's active copy, and which database holds each
//! mailbox (`map`), learned from the members (`poll`, what they say:
//! `view`). The forwarding path reads the map without a lock
//! ([`Dag::map`]); the admin API shows it; metrics count activations.
//!
//! Without a DAG (members that answer 404 to `/mock/dag/status`, or real
//! Exchange servers) the map stays empty and routing is the services'
//! ordinary rule.
//!
//! With `[cluster]`, other instances' learning is laid over this one's
//! ([`Dag::learn`]): a database whose active copy the cluster knows at a
//! newer epoch than this instance's own poll is routed to the cluster's
//! member at once, and the poller is poked to confirm.

pub mod command;
pub mod map;
pub mod poll;
pub mod view;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use arc_swap::ArcSwap;
use tokio::sync::Notify;

use crate::metrics::Metrics;
pub use map::{DagMap, Learned, Route};

/// The live DAG map, shared by the poller (writer) and the data path and
/// admin API (readers).
#[derive(Debug, Default)]
pub struct Dag {
    /// What routing uses: `own` with `learned` laid over it.
    map: ArcSwap<DagMap>,
    /// The poller's own map, and the active copies learned from the
    /// cluster; the lock serialises the making of `map`.
    sources: Mutex<Sources>,
    /// Counts changes of the poller's own map.
    own_changed: tokio::sync::watch::Sender<u64>,
    /// Pokes the poller for a round now.
    refresh: Notify,
    /// Woken at each new map.
    changed: Notify,
    /// The last mounted member of each database, for counting activations.
    last_mounted: Mutex<HashMap<String, String>>,
}

/// What `map` is made of.
#[derive(Debug, Default)]
struct Sources {
    own: Arc<DagMap>,
    learned: Vec<Learned>,
}

impl Sources {
    /// What routing uses. Without learned copies (always, without
    /// `[cluster]`) the poller's map itself, shared, not copied.
    fn routed(&self) -> Arc<DagMap> {
        if self.learned.is_empty() {
            Arc::clone(&self.own)
        } else {
            Arc::new(self.own.overlaid(&self.learned))
        }
    }
}

impl Dag {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The map now.
    pub fn map(&self) -> arc_swap::Guard<Arc<DagMap>> {
        self.map.load()
    }

    /// The map now, kept (for a caller that awaits).
    pub fn map_full(&self) -> Arc<DagMap> {
        self.map.load_full()
    }

    /// Asks the poller for a round now (a member said something moved).
    pub fn refresh(&self) {
        self.refresh.notify_one();
    }

    pub(crate) async fn refresh_requested(&self) {
        self.refresh.notified().await;
    }

    /// Completes at the next new map (or at once if one came meanwhile is
    /// not guaranteed: callers re-check the map after it completes).
    pub async fn changed(&self) {
        self.changed.notified().await;
    }

    /// The poller's own map (without what the cluster taught).
    pub fn own(&self) -> Arc<DagMap> {
        Arc::clone(
            &self
                .sources
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .own,
        )
    }

    /// Changes whenever the poller's own map does.
    pub fn subscribe_own(&self) -> tokio::sync::watch::Receiver<u64> {
        self.own_changed.subscribe()
    }

    /// Takes a freshly merged map from the poller: with what the cluster
    /// taught laid over it, swapped in when it differs (see
    /// [`Dag::publish_map`]).
    pub fn publish(&self, map: DagMap, metrics: &Metrics) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if *sources.own != map {
            sources.own = Arc::new(map);
            self.own_changed.send_modify(|n| *n = n.wrapping_add(1));
        }
        self.publish_map(sources.routed(), metrics);
    }

    /// Takes the active copies the cluster knows (`learned`, each at its
    /// epoch): laid over the poller's map where newer, routed at once; when
    /// one is newer than the poller's own, the poller is poked to confirm.
    pub fn learn(&self, learned: Vec<Learned>, metrics: &Metrics) {
        let mut sources = self.sources.lock().unwrap_or_else(PoisonError::into_inner);
        if sources.learned == learned {
            return;
        }
        sources.learned = learned;
        // The cluster knows something this poller does not (yet): confirm.
        let behind = sources.learned.iter().any(|l| {
            sources
                .own
                .database(&l.database)
                .is_none_or(|d| l.epoch > d.epoch)
        });
        if behind {
            self.refresh();
        }
        self.publish_map(sources.routed(), metrics);
    }

    /// Swaps `map` in when it differs: activations counted,
    /// `casarray_database_active` set.
    fn publish_map(&self, map: Arc<DagMap>, metrics: &Metrics) {
        let now = self.map.load();
        if Arc::ptr_eq(&now, &map) || **now == *map {
            return;
        }
        drop(now);
        {
            let mut last = self
                .last_mounted
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for db in map.databases() {
                for c in &db.copies {
                    let here = db
                        .mounted
                        .as_ref()
                        .is_some_and(|m| m.eq_ignore_ascii_case(&c.server));
                    metrics
                        .database_active
                        .with_label_values(&[&db.name, &c.server])
                        .set(i64::from(here));
                }
                let failovers = metrics.database_failovers.with_label_values(&[&db.name]);
                let Some(now) = &db.mounted else { continue };
                match last.insert(db.name.clone(), now.clone()) {
                    Some(before) if !before.eq_ignore_ascii_case(now) => {
                        failovers.inc();
                        tracing::warn!(database = %db.name, from = %before, to = %now, "active copy moved");
                    }
                    None => tracing::info!(database = %db.name, on = %now, "active copy"),
                    Some(_) => {}
                }
            }
        }
        self.map.store(map);
        self.changed.notify_waiters();
    }
}
