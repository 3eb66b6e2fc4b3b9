//! `PUT /api/databases/{name}` `{"rpc_client_access_server": "..."}`:
//! `Set-MailboxDatabase -RpcClientAccessServer` over HTTP.
//!
//! Without `[cluster]` the value is written to the config file (validated,
//! atomically, comments kept) by [`crate::directory::set_database_rpc`];
//! the array's watch on its config file then reloads it, so the change
//! survives a restart and `GET /api/databases` shows it once the reload is
//! done.
//!
//! With `[cluster]` it is written to etcd (`<prefix>/databases/<db>`, see
//! `crate::cluster::directory`), never to the file: every instance takes
//! it through its watch, over its config file's value. The database must be
//! one of this instance's config (404) and the value a host name (422),
//! checked by [`crate::directory::check_database_rpc`]; etcd unreachable is
//! 503 and nothing changes anywhere. The answer comes once this instance
//! serves the new value.

use std::path::PathBuf;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::json;

use super::context::CLUSTER_UNAVAILABLE;
use super::reply::{self, Reply};
use crate::cluster::Cluster;
use crate::config::Config;
use crate::directory::{check_database_rpc, set_database_rpc, DatabaseSelector, DirectoryError};

/// Largest request body taken: 64 KiB.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    rpc_client_access_server: String,
}

/// Sets database `name`'s (case-insensitive) RpcClientAccessServer from the
/// JSON `body`: in `cluster` when there is one, else in the config file of
/// `cfg` (the snapshot's: the effective config); answers
/// `{"name","rpc_client_access_server","changed"}`.
pub async fn put<B>(cfg: &Config, cluster: Option<&Cluster>, name: &str, body: B) -> Reply
where
    B: http_body::Body<Data = Bytes>,
    B::Error: std::error::Error + Send + Sync + 'static,
{
    let bytes = match Limited::new(body, MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body (at most {MAX_BODY} bytes): {e}"),
            )
        }
    };
    let wanted: Body = match serde_json::from_slice(&bytes) {
        Ok(b) => b,
        Err(e) => {
            return reply::error(
                StatusCode::BAD_REQUEST,
                format!("expected {{\"rpc_client_access_server\": \"<fqdn>\"}}: {e}"),
            )
        }
    };
    let fqdn = wanted.rpc_client_access_server;
    match cluster {
        Some(cluster) => put_in_cluster(cfg, cluster, name, fqdn).await,
        None => put_in_file(cfg.path.clone(), name, fqdn).await,
    }
}

/// The value through etcd.
async fn put_in_cluster(cfg: &Config, cluster: &Cluster, name: &str, fqdn: String) -> Reply {
    let name = match check_database_rpc(cfg, name, &fqdn) {
        Ok(n) => n,
        Err(e) => return reply::error(status_of(&e), e.to_string()),
    };
    let before = cfg
        .databases
        .iter()
        .find(|d| d.name == name)
        .and_then(|d| d.rpc_client_access_server.as_deref());
    let changed = before != Some(fqdn.as_str());
    match cluster.set_rpc_client_access_server(&name, &fqdn).await {
        Ok(()) => {
            tracing::info!(database = %name, rpc_client_access_server = %fqdn, changed, "admin: database set in the cluster");
            reply::json(&json!({
                "name": name,
                "rpc_client_access_server": fqdn,
                "changed": changed,
            }))
        }
        Err(e) => {
            let text = format!(
                "the cluster's state (etcd) cannot be changed now; nothing was changed: {}",
                crate::errors::error_chain(&e)
            );
            tracing::error!(database = %name, "admin: database not set: {text}");
            reply::error(CLUSTER_UNAVAILABLE, text)
        }
    }
}

/// The value in the config file at `config_path`.
async fn put_in_file(config_path: PathBuf, name: &str, fqdn: String) -> Reply {
    let selector = DatabaseSelector::Names(vec![name.to_owned()]);
    let value = fqdn.clone();
    let done =
        tokio::task::spawn_blocking(move || set_database_rpc(&config_path, &selector, &value))
            .await;
    match done {
        Ok(Ok(changed)) => {
            let shown = changed.first().map_or(name, String::as_str);
            tracing::info!(database = %shown, rpc_client_access_server = %fqdn, changed = !changed.is_empty(), "admin: database set");
            reply::json(&json!({
                "name": shown,
                "rpc_client_access_server": fqdn,
                "changed": !changed.is_empty(),
            }))
        }
        Ok(Err(e)) => reply::error(status_of(&e), e.to_string()),
        Err(e) => reply::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the edit did not finish: {e}"),
        ),
    }
}

/// The HTTP status for a refused edit.
fn status_of(e: &DirectoryError) -> StatusCode {
    match e {
        DirectoryError::UnknownDatabase { .. } | DirectoryError::NoDatabase { .. } => {
            StatusCode::NOT_FOUND
        }
        DirectoryError::Refused(_) | DirectoryError::BadValue { .. } => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        DirectoryError::Config(_)
        | DirectoryError::Layout { .. }
        | DirectoryError::Busy { .. }
        | DirectoryError::ArrayExists { .. } => StatusCode::CONFLICT,
        DirectoryError::Read { .. } | DirectoryError::Write { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::Full;

    const CONFIG: &str = "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
        [listen]\nhttps = \"127.0.0.1:0\"\n\
        [tls]\ncert = \"bundle.pem\"\n\
        [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n\
        # the lab's databases\n\
        [[database]]\nname = \"DB01\"\n";

    fn setup() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
        let path = dir.path().join("casarray.toml");
        std::fs::write(&path, CONFIG).unwrap();
        (dir, path)
    }

    async fn call(
        path: &std::path::Path,
        name: &str,
        body: &str,
    ) -> (StatusCode, serde_json::Value) {
        let cfg = crate::config::load(path).unwrap();
        let r = put(&cfg, None, name, Full::new(Bytes::from(body.to_owned()))).await;
        let status = r.status();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    #[tokio::test]
    async fn sets_the_value_in_the_config_file() {
        let (_d, path) = setup();
        let (status, v) = call(
            &path,
            "db01",
            r#"{"rpc_client_access_server":"mail.lab.com"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        assert_eq!(v["name"], "DB01");
        assert_eq!(v["rpc_client_access_server"], "mail.lab.com");
        assert_eq!(v["changed"], true);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("# the lab's databases"), "{text}");
        let cfg = crate::config::load(&path).unwrap();
        assert_eq!(
            cfg.databases[0].rpc_client_access_server.as_deref(),
            Some("mail.lab.com")
        );
        let (status, v) = call(
            &path,
            "DB01",
            r#"{"rpc_client_access_server":"mail.lab.com"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["changed"], false);
    }

    #[tokio::test]
    async fn refusals_leave_the_file_alone() {
        let (_d, path) = setup();
        let (status, v) = call(
            &path,
            "DB09",
            r#"{"rpc_client_access_server":"mail.lab.com"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{v}");
        let (status, v) = call(
            &path,
            "DB01",
            r#"{"rpc_client_access_server":"not a name!"}"#,
        )
        .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        for bad in [
            "",
            "{}",
            "[]",
            r#"{"rpc_client_access_server":1}"#,
            r#"{"rpc_client_access_server":"a","x":1}"#,
        ] {
            let (status, v) = call(&path, "DB01", bad).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {v}");
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), CONFIG);
    }

    #[test]
    fn the_cluster_check_refuses_as_the_file_edit_does() {
        let (_d, path) = setup();
        let cfg = crate::config::load(&path).unwrap();
        assert_eq!(
            check_database_rpc(&cfg, "db01", "mail.lab.com").unwrap(),
            "DB01"
        );
        let e = check_database_rpc(&cfg, "DB09", "mail.lab.com").unwrap_err();
        assert_eq!(status_of(&e), StatusCode::NOT_FOUND, "{e}");
        let e = check_database_rpc(&cfg, "DB01", "not a name!").unwrap_err();
        assert_eq!(status_of(&e), StatusCode::UNPROCESSABLE_ENTITY, "{e}");
        assert!(e.to_string().contains("not a valid DNS name"), "{e}");
    }
}
