//! What every request handler of a mock server sees: its names, its
//! databases, the OWA session sealer, the server token sealer, the
//! switches and counters.

use std::sync::atomic::AtomicU64;

use crate::mock::auth::session::Sealer;
use crate::mock::databases::Databases;
use crate::mock::http::health::HealthState;
use crate::mock::http::rpc_stats::RpcStats;

/// What every request handler sees.
#[derive(Debug)]
pub struct Shared {
    /// The server's name (`EX1`), sent in `X-FEServer`.
    pub name: String,
    /// The server's own fqdn (`ex1.lab.local`), in every URL it writes.
    pub fqdn: String,
    pub databases: Databases,
    /// Seals OWA session cookies.
    pub sealer: Sealer,
    /// Seals the identity of proxied requests (`X-CommonAccessToken`).
    pub token: Sealer,
    pub health: HealthState,
    /// Added latency for every non-`/mock` request, milliseconds.
    pub latency_ms: AtomicU64,
    pub rpc: RpcStats,
    /// Connections accepted so far; each one's number is its
    /// `X-Mock-Connection`.
    pub connections: AtomicU64,
    /// This server's hub transport (SMTP), when it runs one: where mail
    /// for other domains is submitted.
    pub hub: std::sync::OnceLock<std::net::SocketAddr>,
}

#[cfg(test)]
impl Shared {
    /// A server EX1 (ex1.lab.local) on a fresh shared store, for unit tests.
    pub(crate) fn for_tests() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared {
            name: "EX1".into(),
            fqdn: "ex1.lab.local".into(),
            databases: Databases::open_shared(dir.path()).unwrap(),
            sealer: Sealer::ephemeral().unwrap(),
            token: Sealer::ephemeral_for(crate::mock::auth::session::SERVER_TOKEN).unwrap(),
            health: Default::default(),
            latency_ms: Default::default(),
            rpc: Default::default(),
            connections: Default::default(),
            hub: Default::default(),
        };
        (dir, shared)
    }
}
