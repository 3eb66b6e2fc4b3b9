//! What every request handler of a mock server sees: its names, the mail
//! store, the OWA session sealer, the switches and counters.

use std::sync::atomic::AtomicU64;

use crate::mock::auth::session::Sealer;
use crate::mock::http::health::HealthState;
use crate::mock::http::rpc::RpcStats;
use crate::mock::store::Store;

/// What every request handler sees.
#[derive(Debug)]
pub struct Shared {
    /// The server's name (`EX1`), sent in `X-FEServer`.
    pub name: String,
    /// The server's own fqdn (`ex1.lab.local`), in every URL it writes.
    pub fqdn: String,
    pub store: Store,
    pub sealer: Sealer,
    pub health: HealthState,
    /// Added latency for every non-`/mock` request, milliseconds.
    pub latency_ms: AtomicU64,
    pub rpc: RpcStats,
    /// Connections accepted so far; each one's number is its
    /// `X-Mock-Connection`.
    pub connections: AtomicU64,
}

#[cfg(test)]
impl Shared {
    /// A server EX1 (ex1.lab.local) on a fresh store, for unit tests.
    pub(crate) fn for_tests() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared {
            name: "EX1".into(),
            fqdn: "ex1.lab.local".into(),
            store: Store::open(dir.path()).unwrap(),
            sealer: Sealer::ephemeral().unwrap(),
            health: Default::default(),
            latency_ms: Default::default(),
            rpc: Default::default(),
            connections: Default::default(),
        };
        (dir, shared)
    }
}
