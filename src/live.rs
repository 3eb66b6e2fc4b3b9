//! What every listener shares while the array runs: the current snapshot,
//! the TLS server configuration, the metrics and the connection limit.
//! `serve` makes it once and swaps its parts on reload.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;

use crate::dag::Dag;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// The live state of a running array.
pub struct Live {
    pub snapshot: ArcSwap<Snapshot>,
    /// The TLS server configuration (its certificate resolver reads the
    /// certificate store, which reloads on its own).
    pub tls: ArcSwap<rustls::ServerConfig>,
    pub metrics: Metrics,
    /// `proxy.max_connections` client connections at once, over every
    /// client-facing listener.
    pub limit: Arc<Semaphore>,
    /// The members' DAG as last learned (empty without one).
    pub dag: Arc<Dag>,
}
