//! The hub transport of a mock server (`mock-server --smtp ADDR`) and the
//! lesson's external mail system (`external`): SMTP as RFC 5321 says,
//! with the hub's local delivery, durable queue, shadow redundancy and send
//! connector. One file per concern:
//!
//! - `command` (parsing commands), `lines` (bounded lines), `stream`
//!   (plain or TLS), `proxy_header` (PROXY v2), `session` (the server side
//!   of a session, for any `Sink`), `received` (the trace field),
//!   `message` (reading a message for the mailbox store);
//! - `hub` (the hub's `Sink`), `receive` (local delivery), `queue` (the
//!   durable queue), `shadow` (shadow redundancy), `connector` (delivering
//!   the queue; the send connector), `peers` (where hubs find each other),
//!   `client` (the client side).
//!
//! Files of hub NAME live under `<--store>/transport/<NAME>/`: `spool/`
//! (data while it arrives), `queue/` (messages to deliver), `safetynet/`
//! (what it delivered into mailboxes, kept a while), `shadow/<hub>/`
//! (copies kept for another hub).

mod client;
mod command;
mod connector;
pub mod external;
mod hub;
mod lines;
mod message;
mod peers;
mod proxy_header;
mod queue;
mod receive;
mod received;
mod session;
mod shadow;
mod stream;
pub mod submit;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

use crate::listen::{accept_loop, Listener};
use crate::mock::shared::Shared;
use hub::{Hub, HubSettings};

/// The lab's mail domain: its recipients are mailboxes of the directory.
pub const LAB_DOMAIN: &str = "lab.com";
/// Default largest message: 10 MiB (Exchange 2010's default).
pub const DEFAULT_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// How long a hub waits for a peer to take a shadow copy: 5 s.
const SHADOW_WAIT: Duration = Duration::from_secs(5);

/// A new queue id: time, process, a counter and randomness, letters and
/// digits only (it names files).
pub fn new_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut r = [0u8; 4];
    let _ = aws_lc_rs::rand::fill(&mut r);
    format!(
        "{nanos:x}-{:x}-{}-{:08x}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed),
        u32::from_be_bytes(r)
    )
}

/// Reads `DOMAIN=HOST:PORT` send connector routes.
pub fn parse_routes(routes: &[String]) -> anyhow::Result<BTreeMap<String, SocketAddr>> {
    let mut out = BTreeMap::new();
    for r in routes {
        let (domain, addr) = r
            .split_once('=')
            .with_context(|| format!("--smtp-route {r}: expected DOMAIN=HOST:PORT"))?;
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("--smtp-route {r}: {addr} is not an address"))?;
        out.insert(domain.trim().to_ascii_lowercase(), addr);
    }
    Ok(out)
}

/// What a hub is started with.
#[derive(Debug, Clone)]
pub struct HubOptions {
    pub listen: SocketAddr,
    pub routes: BTreeMap<String, SocketAddr>,
    /// The directory hubs register in to find each other.
    pub transport_dir: Option<std::path::PathBuf>,
    pub max_size: u64,
    pub peer_dead_after: Duration,
}

/// A bound hub, not yet serving.
pub struct HubServer {
    listener: TcpListener,
    hub: Arc<Hub>,
    tls: Option<TlsAcceptor>,
    addr: SocketAddr,
}

impl HubServer {
    /// Binds the hub of `shared`'s server; its files go under
    /// `store/transport/<NAME>`. `tls` serves STARTTLS.
    pub async fn bind(
        shared: Arc<Shared>,
        opts: HubOptions,
        store: &Path,
        tls: Option<TlsAcceptor>,
    ) -> anyhow::Result<HubServer> {
        let listener = TcpListener::bind(opts.listen)
            .await
            .with_context(|| format!("cannot listen for SMTP on {}", opts.listen))?;
        let addr = listener.local_addr()?;
        let work = store.join("transport").join(&shared.name);
        let (w, name, dir) = (
            work.clone(),
            shared.name.clone(),
            opts.transport_dir.clone(),
        );
        let reg = SocketAddr::new(
            if addr.ip().is_unspecified() {
                std::net::IpAddr::from([127, 0, 0, 1])
            } else {
                addr.ip()
            },
            addr.port(),
        );
        let (queue, safety_net, peers) = tokio::task::spawn_blocking(move || {
            std::fs::create_dir_all(w.join("spool"))?;
            // Data of sessions cut by a crash never got its 250.
            for e in std::fs::read_dir(w.join("spool"))?.flatten() {
                let _ = std::fs::remove_file(e.path());
            }
            let queue = queue::Queue::open(&w.join("queue"))?;
            let safety_net = queue::Queue::open(&w.join("safetynet"))?;
            let peers = match dir {
                Some(d) => Some(peers::Peers::register(&d, &name, reg)?),
                None => None,
            };
            Ok::<_, std::io::Error>((queue, safety_net, peers))
        })
        .await
        .context("opening the hub's queue")?
        .with_context(|| format!("opening the hub's files under {}", work.display()))?;
        let _ = shared.hub.set(reg);
        let hub = Arc::new(Hub {
            shared,
            settings: HubSettings {
                work,
                routes: opts.routes,
                max_size: opts.max_size,
                shadow_wait: SHADOW_WAIT,
                peer_dead_after: opts.peer_dead_after,
            },
            peers,
            peers_down: Default::default(),
            queue,
            safety_net,
            wake: tokio::sync::Notify::new(),
        });
        Ok(HubServer {
            listener,
            hub,
            tls,
            addr,
        })
    }

    /// The address bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves sessions and runs the connector until `stop` completes.
    pub async fn serve(self, stop: impl std::future::Future<Output = ()>) {
        let connector = tokio::spawn(connector::run(Arc::clone(&self.hub)));
        let handler = Arc::new(Accepting {
            hub: Arc::clone(&self.hub),
            tls: self.tls,
            sessions: Mutex::new(JoinSet::new()),
        });
        accept_loop(self.listener, handler, "smtp", stop).await;
        connector.abort();
    }
}

struct Accepting<S: session::Sink> {
    hub: Arc<S>,
    tls: Option<TlsAcceptor>,
    sessions: Mutex<JoinSet<()>>,
}

impl<S: session::Sink> Listener for Accepting<S> {
    fn accept(&self, stream: TcpStream, peer: SocketAddr) {
        let mut set = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        while set.try_join_next().is_some() {}
        set.spawn(session::serve(
            Arc::clone(&self.hub),
            stream,
            peer,
            self.tls.clone(),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_file_names() {
        let a = new_id();
        let b = new_id();
        assert_ne!(a, b);
        assert!(command::safe_name(&a), "{a}");
    }

    #[test]
    fn routes_parse() {
        let r = parse_routes(&["Test.com=127.0.0.1:25".into()]).unwrap();
        assert_eq!(r["test.com"], "127.0.0.1:25".parse().unwrap());
        assert!(parse_routes(&["test.com".into()]).is_err());
        assert!(parse_routes(&["test.com=x".into()]).is_err());
    }
}
