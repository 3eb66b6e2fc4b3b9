//! The connection to etcd: the client built from `[cluster]` (endpoints,
//! TLS, authentication, timeouts), each call bounded, and the errors.

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::config::ClusterConfig;

/// HTTP/2 keep-alive pings to etcd: every 2 s, a connection that does not
/// answer one within 2 s is taken as lost (the watch then resyncs).
const KEEP_ALIVE: Duration = Duration::from_secs(2);

/// What can go wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// A call failed (etcd down, no leader, connection lost, refused).
    #[error("etcd call failed")]
    Etcd(#[source] etcd_client::Error),
    /// A call did not finish in time.
    #[error("etcd did not answer within {0:?}")]
    Timeout(Duration),
    /// Not connected to etcd now (still connecting, or the connection is
    /// being made again).
    #[error("not connected to etcd")]
    NotConnected,
    /// A file `[cluster]` names cannot be read.
    #[error("{}: cannot read it", .0.display())]
    File(PathBuf, #[source] std::io::Error),
    /// Another instance changed the same key at the same time; the caller
    /// may try again.
    #[error("a concurrent change won; try again")]
    Conflict,
    #[error(transparent)]
    KeyGen(#[from] super::tickets::KeyGenError),
    /// The watch ended or was cancelled by etcd.
    #[error("the watch on etcd ended: {0}")]
    WatchEnded(String),
}

impl From<etcd_client::Error> for ClusterError {
    fn from(e: etcd_client::Error) -> Self {
        ClusterError::Etcd(e)
    }
}

/// The options `[cluster]` asks for, files read (a blocking read: call it
/// at startup or from a blocking thread).
pub fn connect_options(cfg: &ClusterConfig) -> Result<ConnectOptions, ClusterError> {
    let read = |p: &PathBuf| std::fs::read(p).map_err(|e| ClusterError::File(p.clone(), e));
    let mut opts = ConnectOptions::new()
        .with_connect_timeout(cfg.request_timeout)
        .with_timeout(cfg.request_timeout)
        .with_keep_alive(KEEP_ALIVE, KEEP_ALIVE)
        .with_keep_alive_while_idle(true)
        // A member cut off from its cluster's leader answers nothing
        // rather than stale data.
        .with_require_leader(true);
    if let Some(ca) = &cfg.ca {
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(ca)?));
        if let Some((cert, key)) = &cfg.identity {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        opts = opts.with_tls(tls);
    }
    if let Some((user, file)) = &cfg.auth {
        let text = String::from_utf8_lossy(&read(file)?).into_owned();
        let password = text.lines().next().unwrap_or_default().to_owned();
        opts = opts.with_user(user.clone(), password);
    }
    Ok(opts)
}

/// A client for `cfg`'s endpoints. Without authentication it needs no
/// answer from etcd; with it, it logs in (bounded by the request timeout).
pub async fn connect(cfg: &ClusterConfig, opts: ConnectOptions) -> Result<Client, ClusterError> {
    bounded(
        cfg.request_timeout,
        Client::connect(cfg.endpoints.clone(), Some(opts)),
    )
    .await
}

/// `call`, failed after `limit`.
pub async fn bounded<T>(
    limit: Duration,
    call: impl Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, ClusterError> {
    match tokio::time::timeout(limit, call).await {
        Ok(r) => r.map_err(ClusterError::Etcd),
        Err(_) => Err(ClusterError::Timeout(limit)),
    }
}
