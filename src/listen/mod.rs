//! The array's listeners: one file per kind ([`https`], [`http_redirect`],
//! [`smtp`];
//! the admin listener lives with the admin API in `admin::server`), one
//! accept loop for all of them ([`accept_loop`]) with one backoff policy,
//! and [`Listeners`], which binds them, runs them and stops them.
//!
//! Adding a listener: a type that implements [`Listener`] (in a file of its
//! own), its `[listen]` key in the config, and one [`Listeners::bind`] call
//! in `serve`. docs/ARCHITECTURE.md walks through it.

pub mod copy;
pub mod drain;
pub mod http_redirect;
pub mod https;
pub mod smtp;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// First pause after a failed `accept`: 5 ms, doubling up to
/// [`MAX_BACKOFF`], back to this after an accept succeeds.
pub const MIN_BACKOFF: Duration = Duration::from_millis(5);
/// Longest pause after failed accepts: 1 s.
pub const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// One kind of listener: what it does with an accepted connection.
pub trait Listener: Send + Sync + 'static {
    /// Takes one accepted connection. It must not wait: work that takes
    /// time (a handshake, serving) goes into a task of its own.
    fn accept(&self, stream: TcpStream, peer: SocketAddr);
}

/// Accepts connections on `listener` for `handler` until `stop` completes.
///
/// Accept errors (EMFILE, ENFILE, ENOBUFS...: the process is out of
/// something) pause the loop instead of spinning: 5 ms, doubling with each
/// error in a row up to 1 s, so connections can close meanwhile.
pub async fn accept_loop<L: Listener + ?Sized>(
    listener: TcpListener,
    handler: Arc<L>,
    name: &str,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let mut backoff = MIN_BACKOFF;
    loop {
        let accepted = tokio::select! {
            biased;
            () = &mut stop => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = MIN_BACKOFF;
                handler.accept(stream, peer);
            }
            Err(e) => {
                tracing::warn!(listener = name, "accept failed: {e}; pausing {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

/// Why a listener could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({key})")]
pub struct BindError {
    pub addr: SocketAddr,
    /// The config key that named the address (`listen.https`).
    pub key: &'static str,
    #[source]
    pub source: std::io::Error,
}

/// The listeners of a running array: bound first (so a taken port stops the
/// start before anything serves), then started together, stopped together.
#[derive(Default)]
pub struct Listeners {
    bound: Vec<(&'static str, TcpListener, Arc<dyn Listener>)>,
    running: Vec<JoinHandle<()>>,
    halt: Option<watch::Sender<bool>>,
}

impl Listeners {
    pub fn new() -> Self {
        Self::default()
    }

    /// Binds `addr` (named by the config key `key`) for `handler`; returns
    /// the address bound (port 0 gives a free port).
    pub async fn bind(
        &mut self,
        key: &'static str,
        addr: SocketAddr,
        handler: Arc<dyn Listener>,
    ) -> Result<SocketAddr, BindError> {
        let listener =
            TcpListener::bind(addr)
                .await
                .map_err(|source| BindError { addr, key, source })?;
        let local = listener
            .local_addr()
            .map_err(|source| BindError { addr, key, source })?;
        self.bound.push((key, listener, handler));
        Ok(local)
    }

    /// Starts an accept loop for every listener bound.
    pub fn start(&mut self) {
        let (halt, stopped) = watch::channel(false);
        for (key, listener, handler) in self.bound.drain(..) {
            let mut stopped = stopped.clone();
            let stop = async move {
                // A send or a dropped sender both mean stop.
                let _ = stopped.wait_for(|&s| s).await;
            };
            self.running.push(tokio::spawn(async move {
                accept_loop(listener, handler, key, stop).await;
            }));
        }
        self.halt = Some(halt);
    }

    /// Stops accepting everywhere and waits for the accept loops to end
    /// (connections already accepted go on; their owners drain them).
    pub async fn stop(&mut self) {
        if let Some(halt) = self.halt.take() {
            let _ = halt.send(true);
        }
        for task in self.running.drain(..) {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Count(AtomicUsize);

    impl Listener for Count {
        fn accept(&self, _stream: TcpStream, _peer: SocketAddr) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[tokio::test]
    async fn accepts_until_stopped() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut set = Listeners::new();
        let addr = set
            .bind("listen.test", "127.0.0.1:0".parse().unwrap(), count.clone())
            .await
            .unwrap();
        set.start();
        for _ in 0..3 {
            let _ = TcpStream::connect(addr).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while count.0.load(Ordering::SeqCst) < 3 && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 3);
        set.stop().await;
        // The listening socket is closed with its loop.
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_taken_address_names_its_key() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let e = Listeners::new()
            .bind("listen.https", addr, count)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("cannot listen on {addr} (listen.https)")
        );
    }
}
