//! This instance in `<prefix>/instances/<instance>`, under a lease of
//! 10 s kept alive every 3 s: an instance that stops (or loses etcd) drops
//! out of every instance's list within the lease.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::PutOptions;

use super::client::{bounded, ClusterError};
use super::view::{instance_key, InstanceRecord};
use super::Shared;
use crate::errors::error_chain;

/// The lease's time to live: 10 s.
const LEASE_TTL_SECS: i64 = 10;
/// Keep-alive period: 3 s.
const KEEP_ALIVE: Duration = Duration::from_secs(3);
/// Wait before registering again after a failure: 1 s.
const RETRY: Duration = Duration::from_secs(1);

/// Keeps `record` registered until the cluster is dropped.
pub async fn run(shared: Arc<Shared>, record: InstanceRecord) {
    loop {
        if let Err(e) = register(&shared, &record).await {
            tracing::debug!(
                "cluster: registration lost (tried again): {}",
                error_chain(&e)
            );
        }
        shared.lease.store(0, Ordering::SeqCst);
        tokio::time::sleep(RETRY).await;
    }
}

async fn register(shared: &Shared, record: &InstanceRecord) -> Result<(), ClusterError> {
    let mut client = shared.client()?;
    let limit = shared.cfg.request_timeout;
    let lease = bounded(limit, client.lease_grant(LEASE_TTL_SECS, None))
        .await?
        .id();
    shared.lease.store(lease, Ordering::SeqCst);
    let value = serde_json::to_vec(record).unwrap_or_default();
    bounded(
        limit,
        client.put(
            instance_key(&shared.cfg.prefix, &record.instance),
            value,
            Some(PutOptions::new().with_lease(lease)),
        ),
    )
    .await?;
    tracing::info!(instance = %record.instance, "cluster: registered");
    let (mut keeper, mut stream) = bounded(limit, client.lease_keep_alive(lease)).await?;
    loop {
        tokio::time::sleep(KEEP_ALIVE).await;
        bounded(limit, keeper.keep_alive()).await?;
        match bounded(limit, stream.message()).await? {
            Some(r) if r.ttl() > 0 => {}
            _ => return Err(ClusterError::WatchEnded("the lease expired".into())),
        }
    }
}

/// Revokes the lease, if any (bounded by the request timeout; failures are
/// only logged: the lease expires by itself).
pub async fn revoke(shared: &Shared) {
    let lease = shared.lease.swap(0, Ordering::SeqCst);
    if lease == 0 {
        return;
    }
    let Ok(mut client) = shared.client() else {
        return;
    };
    if let Err(e) = bounded(shared.cfg.request_timeout, client.lease_revoke(lease)).await {
        tracing::debug!(
            "cluster: lease not revoked (it expires): {}",
            error_chain(&e)
        );
    }
}
