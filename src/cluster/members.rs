//! Drain and activate through etcd: `<prefix>/drain/<member>` exists while
//! the member is drained. The key is written (or deleted) first; this
//! instance's view takes the change as soon as etcd acknowledged it, the
//! others through their watch.

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
        let resp = bounded(limit, client.put(key.clone(), value.clone(), None)).await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        shared.edit(|v| {
            v.apply(&shared.cfg.prefix, key.as_bytes(), Some(&value), revision);
        });
        Ok(!was)
    } else {
        let resp = bounded(limit, client.delete(key.clone(), None)).await?;
        let revision = resp.header().map_or(0, |h| h.revision());
        shared.edit(|v| {
            v.apply(&shared.cfg.prefix, key.as_bytes(), None, revision);
        });
        Ok(resp.deleted() > 0)
    }
}
