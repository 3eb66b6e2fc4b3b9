//! The HTTPS listener: accept, limit, TLS handshake, serve HTTP/1.1 or
//! HTTP/2 by ALPN, and stop gracefully.
//!
//! A connection past `max_connections` is closed at once, before any TLS
//! work, so a flood costs a socket accept and a close. Accept errors such as
//! EMFILE back off instead of spinning. A handshake that does not finish
//! within `tls.handshake_timeout` is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsAcceptor;

use super::conn::ConnCtx;
use super::forward;
use super::snapshot::Snapshot;
use crate::admin::Metrics;

/// What every connection task shares.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub tls: ArcSwap<rustls::ServerConfig>,
    pub metrics: Metrics,
    pub limit: Arc<Semaphore>,
}

/// Accepts until `stop` turns true, then returns; connections already
/// accepted are watched by `graceful`, which the caller shuts down.
pub async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    graceful: Arc<GracefulShutdown>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let (stream, peer) = match accepted {
            Ok(a) => {
                backoff = Duration::from_millis(5);
                a
            }
            Err(e) => {
                // EMFILE, ENFILE, ENOBUFS...: the process is out of something;
                // wait for connections to close instead of spinning.
                tracing::warn!("accept failed: {e}; pausing {backoff:?}");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&shared.limit).try_acquire_owned() else {
            shared.metrics.connections_refused.inc();
            drop(stream);
            continue;
        };
        shared.metrics.connections_total.inc();
        shared.metrics.connections_active.inc();
        let active = Active {
            shared: Arc::clone(&shared),
            _permit: permit,
        };
        tokio::spawn(accept_connection(stream, peer, active, graceful.watcher()));
    }
}

/// A connection counted in `casarray_connections_active` and holding its
/// place under `max_connections`, until this drops.
struct Active {
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Active {
    fn drop(&mut self) {
        self.shared.metrics.connections_active.dec();
    }
}

/// The TLS handshake, then the connection is served by a task of its own.
///
/// Two tasks, not one, for memory: a task keeps the space of its largest
/// state for its whole life, and the handshake's (the TLS acceptor's
/// future) would otherwise stay reserved in every idle keep-alive
/// connection. The serving task holds the HTTP connection and little else.
async fn accept_connection(stream: TcpStream, peer: SocketAddr, active: Active, watcher: Watcher) {
    let _ = stream.set_nodelay(true);
    let Ok(local) = stream.local_addr() else {
        return;
    };
    let shared = &active.shared;
    let acceptor = TlsAcceptor::from(shared.tls.load_full());
    let timeout = shared.snapshot.load().cfg.tls.handshake_timeout;
    let started = Instant::now();
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            shared.metrics.tls_handshake_errors.inc();
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            shared.metrics.tls_handshake_errors.inc();
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    shared
        .metrics
        .tls_handshake_duration
        .observe(started.elapsed().as_secs_f64());
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let svc_shared = Arc::clone(shared);
    let ctx = Arc::new(ConnCtx::new(peer, local, h2));
    let service = service_fn(move |req| {
        let shared = Arc::clone(&svc_shared);
        let ctx = Arc::clone(&ctx);
        async move {
            let snap = shared.snapshot.load_full();
            forward::handle(snap, &shared.metrics, &ctx, req).await
        }
    });
    // The config as it is now, after the handshake.
    let snap = shared.snapshot.load();
    // Each connection future is moved straight into the task it runs in,
    // so it is stored once.
    if h2 {
        let conn = watcher.watch(snap.http2.serve_connection(io, service));
        tokio::spawn(conn.map(move |result| finished(result, peer, active)));
    } else {
        let conn = watcher.watch(snap.http1.serve_connection(io, service));
        tokio::spawn(conn.map(move |result| finished(result, peer, active)));
    }
}

fn finished(result: Result<(), hyper::Error>, peer: SocketAddr, active: Active) {
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
    drop(active);
}
