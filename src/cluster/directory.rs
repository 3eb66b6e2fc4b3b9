//! The database directory through etcd: `<prefix>/databases/<database>`
//! holds a database's RpcClientAccessServer as set through the admin API
//! (`PUT /api/databases/{name}`); it overrides the config file's value on
//! every instance.

use super::client::{bounded, ClusterError};
use super::view::{database_key, DatabaseRecord};
use super::Shared;

/// Sets database `name`'s RpcClientAccessServer to `fqdn`; `Ok(changed)`.
pub async fn set_rpc(shared: &Shared, name: &str, fqdn: &str) -> Result<bool, ClusterError> {
    let mut client = shared.client()?;
    let key = database_key(&shared.cfg.prefix, name);
    let changed = shared
        .view
        .load()
        .databases
        .get(&name.to_ascii_lowercase())
        .is_none_or(|d| d.rpc_client_access_server != fqdn);
    let record = DatabaseRecord {
        name: name.to_owned(),
        rpc_client_access_server: fqdn.to_owned(),
    };
    let value = serde_json::to_vec(&record).unwrap_or_default();
    let resp = bounded(
        shared.cfg.request_timeout,
        client.put(key.clone(), value.clone(), None),
    )
    .await?;
    let revision = resp.header().map_or(0, |h| h.revision());
    shared.edit(|v| {
        v.apply(&shared.cfg.prefix, key.as_bytes(), Some(&value), revision);
    });
    Ok(changed)
}
