//! `PUT /api/databases/{name}` `{"rpc_client_access_server": "..."}`:
//! `Set-MailboxDatabase -RpcClientAccessServer` over HTTP.
//!
//! The value is written to the config file (validated, atomically, comments
//! kept) by [`crate::directory::set_database_rpc`]; the array's watch on its
//! config file then reloads it, so the change survives a restart and
//! `GET /api/databases` shows it once the reload is done.

use std::path::PathBuf;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::{BodyExt, Limited};
use serde::Deserialize;
use serde_json::json;

use super::reply::{self, Reply};
use crate::directory::{set_database_rpc, DatabaseSelector, DirectoryError};

/// Largest request body taken: 64 KiB.
const MAX_BODY: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Body {
    rpc_client_access_server: String,
}

/// Sets database `name`'s (case-insensitive) RpcClientAccessServer in the
/// config at `config_path` from the JSON `body`; answers
/// `{"name","rpc_client_access_server","changed"}`.
pub async fn put<B>(config_path: PathBuf, name: &str, body: B) -> Reply
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
        DirectoryError::Refused(_) => StatusCode::UNPROCESSABLE_ENTITY,
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
        let r = put(
            path.to_path_buf(),
            name,
            Full::new(Bytes::from(body.to_owned())),
        )
        .await;
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
}
