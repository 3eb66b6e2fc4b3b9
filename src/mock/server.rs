//! The listener and the router: accepts connections (plain or TLS), serves
//! HTTP/1.1 and HTTP/2 with hyper, and sends each request to its area.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use super::conn_login::{ConnLogin, Step};
use super::health::{self, HealthState};
use super::request::under;
use super::response::{self, Body};
use super::rpc::RpcStats;
use super::session::Sealer;
use super::store::Store;
use super::{autodiscover, control, ews, mapi, other, owa, pem, rpc, MockArgs};

/// How long a TLS handshake may take: 10 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long open connections get to finish after a shutdown signal: 2 s.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (for example out of file descriptors):
/// 50 ms.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// What every request handler sees.
#[derive(Debug)]
pub struct Shared {
    /// The server's name (`EX1`), sent in `X-FEServer`.
    pub name: String,
    /// The server's own fqdn (`ex1.lab.local`), in every URL it writes.
    pub fqdn: String,
    pub store: Store,
    pub sealer: Sealer,
    pub health: HealthState,
    /// Added latency for every non-`/mock` request, milliseconds.
    pub latency_ms: AtomicU64,
    pub rpc: RpcStats,
    /// Connections accepted so far; each one's number is its
    /// `X-Mock-Connection`.
    pub connections: AtomicU64,
}

#[cfg(test)]
impl Shared {
    /// A server EX1 (ex1.lab.local) on a fresh store, for unit tests.
    pub(crate) fn for_tests() -> (tempfile::TempDir, Shared) {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared {
            name: "EX1".into(),
            fqdn: "ex1.lab.local".into(),
            store: super::store::Store::open(dir.path()).unwrap(),
            sealer: super::session::Sealer::ephemeral().unwrap(),
            health: Default::default(),
            latency_ms: Default::default(),
            rpc: Default::default(),
            connections: Default::default(),
        };
        (dir, shared)
    }
}

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

/// Routes one request that arrived on the connection `login` tracks, and
/// stamps the server headers on the answer: `X-FEServer` (and
/// `X-BEServer`, `X-DiagInfo`), `X-Mock-Connection` with the connection's
/// number, and `X-Mock-User` with the address the connection logged in as
/// over NTLM, if it did.
pub async fn handle(
    shared: Arc<Shared>,
    login: &ConnLogin,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_ascii_lowercase();
    let mut resp = if under(&path, "/mock") {
        control::handle(&shared, req.method(), &path, req.uri())
    } else {
        let latency = shared.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        match login.step(&shared, &path, req).await {
            Step::Answer(resp) => resp,
            Step::Route(req) => route(&shared, &path, req).await,
        }
    };
    let headers = resp.headers_mut();
    if let Ok(name) = HeaderValue::from_str(&shared.name) {
        headers.insert("x-feserver", name.clone());
        headers.insert("x-beserver", name.clone());
        headers.insert("x-diaginfo", name);
    }
    headers.insert("x-mock-connection", HeaderValue::from(login.id()));
    if let Some(user) = login.user() {
        if let Ok(v) = HeaderValue::from_str(&user.address) {
            headers.insert("x-mock-user", v);
        }
    }
    resp
}

async fn route(shared: &Arc<Shared>, path: &str, req: Request<Incoming>) -> Response<Body> {
    if let Some(service) = health::health_page(path) {
        return if matches!(*req.method(), Method::GET | Method::HEAD) {
            health::page(&shared.health, service, &shared.name)
        } else {
            response::status(StatusCode::METHOD_NOT_ALLOWED)
        };
    }
    match health::service_of(path) {
        Some("autodiscover") => autodiscover::handle(shared, path, req).await,
        Some("owa") => owa::handle(shared, path, req).await,
        Some("ews") => ews::handle(shared, path, req).await,
        Some("rpc") => rpc::handle(shared, path, req).await,
        Some("mapi") => mapi::handle(shared, path, req).await,
        Some(service) => other::handle(shared, service, req).await,
        None => response::status(StatusCode::NOT_FOUND),
    }
}
