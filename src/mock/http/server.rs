//! The listener: accepts connections (plain or TLS) and serves HTTP/1.1
//! and HTTP/2 with hyper, each request going to the router.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::listen::{accept_loop, Listener};
use crate::mock::auth::conn_login::ConnLogin;
use crate::mock::auth::session::{Sealer, SERVER_TOKEN};
use crate::mock::dag::{Dag, Registration};
use crate::mock::databases::Databases;
use crate::mock::http::health::HealthState;
use crate::mock::http::router::handle;
use crate::mock::http::rpc_stats::RpcStats;
use crate::mock::pem;
use crate::mock::shared::Shared;
use crate::mock::transport::{parse_routes, HubOptions, HubServer};
use crate::mock::MockArgs;

/// How long a TLS handshake may take: 10 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after a shutdown signal: 2 s.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A bound mock server, not yet serving.
pub struct MockServer {
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shared: Arc<Shared>,
    addr: SocketAddr,
    hub: Option<HubServer>,
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
    /// Loads the keys, binds the listener and opens the databases: the
    /// shared store (seeding it), or this server's copies in its DAG
    /// (registering its address in `dag.toml`).
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
        let token = match &args.shared_key {
            Some(key) => Sealer::for_purpose(&pem::shared_secret(key)?, SERVER_TOKEN)?,
            None => Sealer::ephemeral_for(SERVER_TOKEN)?,
        };
        let listener = TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        let databases = open_databases(&args, &fqdn, addr, tls.is_some()).await?;
        let hub_tls = match (&args.shared_cert, &args.shared_key) {
            (Some(cert), Some(key)) => Some(pem::tls_acceptor(cert, key)?),
            _ => tls.clone(),
        };
        let hub_options = match args.smtp {
            Some(listen) => Some(HubOptions {
                listen,
                routes: parse_routes(&args.smtp_routes)?,
                transport_dir: args.transport_dir.clone(),
                max_size: args.smtp_max_size,
                peer_dead_after: Duration::from_secs(args.smtp_peer_dead_after),
            }),
            None => None,
        };
        let store = args.store.clone();
        let shared = Arc::new(Shared {
            name: args.name,
            fqdn,
            databases,
            sealer,
            token,
            health: HealthState::default(),
            latency_ms: AtomicU64::new(args.latency_ms),
            rpc: RpcStats::default(),
            connections: AtomicU64::new(0),
            hub: std::sync::OnceLock::new(),
        });
        let hub = match hub_options {
            Some(opts) => Some(HubServer::bind(Arc::clone(&shared), opts, &store, hub_tls).await?),
            None => None,
        };
        Ok(MockServer {
            listener,
            tls,
            shared,
            addr,
            hub,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The hub transport's SMTP address, when it runs one.
    pub fn smtp_addr(&self) -> Option<SocketAddr> {
        self.hub.as_ref().map(HubServer::local_addr)
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Serves until `shutdown` completes, then gives open connections 2 s
    /// to finish and closes the rest. Dropping the future closes everything.
    pub async fn serve(mut self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        if let Some(dag) = self.shared.databases.dag() {
            dag.start();
        }
        // The hub stops with the process (its sessions are cut, as a
        // server's are when it goes; nothing acknowledged is lost).
        let hub = self
            .hub
            .take()
            .map(|hub| tokio::spawn(hub.serve(std::future::pending())));
        let graceful = Arc::new(GracefulShutdown::new());
        let handler = Arc::new(Accepting {
            shared: Arc::clone(&self.shared),
            tls: self.tls.clone(),
            graceful: Arc::clone(&graceful),
            conns: Mutex::new(JoinSet::new()),
        });
        // The crate's accept loop (its backoff on EMFILE and the like).
        accept_loop(self.listener, Arc::clone(&handler), "mock", shutdown).await;
        tracing::info!(server = %self.shared.name, "shutting down");
        let conns =
            std::mem::take(&mut *handler.conns.lock().unwrap_or_else(PoisonError::into_inner));
        drop(handler);
        if let Ok(graceful) = Arc::try_unwrap(graceful) {
            let _ = tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown()).await;
        }
        let mut conns = conns;
        conns.shutdown().await;
        if let Some(hub) = hub {
            hub.abort();
        }
        Ok(())
    }
}

/// What the accept loop hands connections to: each is served in a task of
/// the server's set (so that dropping the server closes them all) and
/// watched for the graceful stop.
struct Accepting {
    shared: Arc<Shared>,
    tls: Option<TlsAcceptor>,
    graceful: Arc<GracefulShutdown>,
    conns: Mutex<JoinSet<()>>,
}

impl Listener for Accepting {
    fn accept(&self, stream: TcpStream, peer: SocketAddr) {
        let shared = Arc::clone(&self.shared);
        let tls = self.tls.clone();
        let watcher = self.graceful.watcher();
        let mut conns = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        // Finished connections leave the set as new ones come.
        while conns.try_join_next().is_some() {}
        conns.spawn(async move {
            serve_connection(stream, peer, tls, shared, watcher).await;
        });
    }
}

/// The databases of a server started with `args`, listening on `addr`.
async fn open_databases(
    args: &MockArgs,
    fqdn: &str,
    addr: SocketAddr,
    tls: bool,
) -> anyhow::Result<Databases> {
    let store = args.store.clone();
    let Some(definition) = args.dag.clone() else {
        if args.peer_ca.is_some() {
            tracing::warn!(server = %args.name, "--peer-ca is only used with --dag");
        }
        return tokio::task::spawn_blocking(move || Databases::open_shared(&store))
            .await
            .context("opening the mail store")?
            .context("opening the mail store");
    };
    if args.shared_key.is_none() {
        tracing::warn!(server = %args.name,
            "no --shared-key: requests this server proxies to another are refused there");
    }
    let ip = if addr.ip().is_unspecified() {
        std::net::IpAddr::from([127, 0, 0, 1])
    } else {
        addr.ip()
    };
    let me = Registration {
        name: args.name.clone(),
        address: SocketAddr::new(ip, addr.port()).to_string(),
        fqdn: fqdn.to_string(),
        tls,
    };
    let peer_ca = args.peer_ca.clone();
    let dag = tokio::task::spawn_blocking(move || {
        Dag::open(&definition, &me, &store, peer_ca.as_deref())
            .with_context(|| format!("joining the DAG of {}", definition.display()))
    })
    .await
    .context("joining the DAG")??;
    Ok(Databases::Dag(Arc::new(dag)))
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
