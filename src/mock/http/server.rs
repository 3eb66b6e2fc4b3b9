//! The listener: accepts connections (plain or TLS) and serves HTTP/1.1
//! and HTTP/2 with hyper, each request going to the router.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::mock::auth::conn_login::ConnLogin;
use crate::mock::auth::session::Sealer;
use crate::mock::http::health::HealthState;
use crate::mock::http::router::handle;
use crate::mock::http::rpc::RpcStats;
use crate::mock::pem;
use crate::mock::shared::Shared;
use crate::mock::store::Store;
use crate::mock::MockArgs;

/// How long a TLS handshake may take: 10 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after a shutdown signal: 2 s.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (for example out of file descriptors):
/// 50 ms.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// A bound mock server, not yet serving.
pub struct MockServer {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    addr: SocketAddr,
}

impl std::fmt::Debug for MockServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockServer")
            .field("addr", &self.addr)
            .field("name", &self.shared.name)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl MockServer {
    /// Opens the store (seeding it), loads the keys and binds the listener.
    pub async fn bind(args: MockArgs) -> anyhow::Result<MockServer> {
        let fqdn = args
            .fqdn
            .clone()
            .unwrap_or_else(|| format!("{}.lab.local", args.name.to_ascii_lowercase()));
        let tls = match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(pem::tls_acceptor(cert, key)?),
            (None, None) => None,
            _ => anyhow::bail!("--tls-cert and --tls-key go together"),
        };
        let sealer = match &args.shared_key {
            Some(key) => Sealer::from_secret(&pem::shared_secret(key)?)?,
            None => {
                tracing::warn!(
                    server = %args.name,
                    "no --shared-key: OWA sessions open only on this server"
                );
                Sealer::ephemeral()?
            }
        };
        if let Some(cert) = &args.shared_cert {
            pem::check_certificate(cert)?;
        }
        let dir = args.store.clone();
        let store = tokio::task::spawn_blocking(move || Store::open(&dir))
            .await
            .context("opening the mail store")??;
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            name: args.name,
            fqdn,
            store,
            sealer,
            health: HealthState::default(),
            latency_ms: AtomicU64::new(args.latency_ms),
            rpc: RpcStats::default(),
            connections: AtomicU64::new(0),
        });
        Ok(MockServer {
            listener,
            tls,
            shared,
            addr,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Serves until `shutdown` completes, then gives open connections 2 s
    /// to finish and closes the rest. Dropping the future closes everything.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let graceful = GracefulShutdown::new();
        let mut conns = JoinSet::new();
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                () = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let shared = Arc::clone(&self.shared);
                        let tls = self.tls.clone();
                        let watcher = graceful.watcher();
                        conns.spawn(async move {
                            serve_connection(stream, peer, tls, shared, watcher).await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
                Some(_) = conns.join_next(), if !conns.is_empty() => {}
            }
        }
        drop(self.listener);
        tracing::info!(server = %self.shared.name, "shutting down");
        let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
        conns.shutdown().await;
        Ok(())
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let _ = stream.set_nodelay(true);
    let login = ConnLogin::new(shared.connections.fetch_add(1, Ordering::Relaxed) + 1);
    let service = service_fn(move |req| {
        let shared = Arc::clone(&shared);
        let login = Arc::clone(&login);
        async move { Ok::<_, Infallible>(handle(shared, &login, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let result = match tls {
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            watcher.watch(conn).await
        }
        None => {
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            watcher.watch(conn).await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}
