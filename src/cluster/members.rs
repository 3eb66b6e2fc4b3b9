//! Drain and activate through etcd: `<prefix>/drain/<member>` exists while
//! the member is drained. The key is written (or deleted); every instance,
//! this one included, takes the change through its watch, so all apply
//! changes in etcd's order. The call returns once this instance's view has
//! it (or after the request timeout, the change being in etcd anyway).

use super::client::{bounded, ClusterError};
use super::view::{drain_key, DrainRecord};
use super::{now_unix_ms, Shared};

/// Drains `member` or puts it back; `Ok(changed)`.
pub async fn set_drained(
    shared: &Shared,
    member: &str,
    drained: bool,
) -> Result<bool, ClusterError> {
    let mut client = shared.client()?;
    let key = drain_key(&shared.cfg.prefix, member);
    let limit = shared.cfg.request_timeout;
    let was = shared
        .view
        .load()
        .drained
        .contains_key(&member.to_ascii_lowercase());
    if drained {
        let record = DrainRecord {
            member: member.to_owned(),
            by: shared.instance.clone(),
            at_unix_ms: now_unix_ms(),
        };
        let value = serde_json::to_vec(&record).unwrap_or_default();
        let resp = bounded(limit, client.put(key, value, None)).await?;
        seen(shared, resp.header().map_or(0, |h| h.revision())).await;
        Ok(!was)
    } else {
        let resp = bounded(limit, client.delete(key, None)).await?;
        seen(shared, resp.header().map_or(0, |h| h.revision())).await;
        Ok(resp.deleted() > 0)
    }
}

/// Waits for the watch to bring `revision`; logs when it does not in time.
async fn seen(shared: &Shared, revision: i64) {
    if !shared
        .wait_revision(revision, shared.cfg.request_timeout)
        .await
    {
        tracing::warn!(
            revision,
            "cluster: change made in etcd but not seen through the watch yet"
        );
    }
}
