//! `listen.https`: limit, TLS handshake, then HTTP/1.1 or HTTP/2 by ALPN,
//! served by the forwarding path; stopped gracefully.
//!
//! A connection past `proxy.max_connections` is closed at once, before any
//! TLS work, so a flood costs a socket accept and a close. A handshake that
//! does not finish within `tls.handshake_timeout` is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use futures_util::FutureExt;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::TcpStream;
use tokio::sync::OwnedSemaphorePermit;
use tokio_rustls::TlsAcceptor;

use super::Listener;
use crate::live::Live;
use crate::proxy::conn::ConnCtx;
use crate::proxy::forward;

/// The HTTPS listener.
pub struct HttpsListener {
    live: Arc<Live>,
    /// Watches every connection, so that a stop lets them finish.
    graceful: Arc<GracefulShutdown>,
}

impl HttpsListener {
    pub fn new(live: Arc<Live>, graceful: Arc<GracefulShutdown>) -> Self {
        HttpsListener { live, graceful }
    }
}

impl Listener for HttpsListener {
    fn accept(&self, stream: TcpStream, peer: SocketAddr) {
        let Some(active) = Active::take(&self.live) else {
            return;
        };
        tokio::spawn(accept_connection(
            stream,
            peer,
            active,
            self.graceful.watcher(),
        ));
    }
}

/// A client connection counted in `casarray_connections_active` and
/// holding its place under `max_connections`, until this drops.
pub(crate) struct Active {
    live: Arc<Live>,
    _permit: OwnedSemaphorePermit,
}

impl Active {
    /// A place under `max_connections`, or `None` (counted as refused) when
    /// the limit is reached.
    pub(crate) fn take(live: &Arc<Live>) -> Option<Self> {
        let Ok(permit) = Arc::clone(&live.limit).try_acquire_owned() else {
            live.metrics.connections_refused.inc();
            return None;
        };
        live.metrics.connections_total.inc();
        live.metrics.connections_active.inc();
        Some(Active {
            live: Arc::clone(live),
            _permit: permit,
        })
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.live.metrics.connections_active.dec();
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
    let live = &active.live;
    let acceptor = TlsAcceptor::from(live.tls.load_full());
    let timeout = live.snapshot.load().cfg.tls.handshake_timeout;
    let started = Instant::now();
    let tls = match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            live.metrics.tls_handshake_errors.inc();
            tracing::debug!(%peer, "TLS handshake failed: {e}");
            return;
        }
        Err(_) => {
            live.metrics.tls_handshake_errors.inc();
            tracing::debug!(%peer, "TLS handshake timed out");
            return;
        }
    };
    live.metrics
        .tls_handshake_duration
        .observe(started.elapsed().as_secs_f64());
    let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(tls);
    let svc_live = Arc::clone(live);
    let ctx = Arc::new(ConnCtx::new(peer, local, h2));
    let service = service_fn(move |req| {
        let live = Arc::clone(&svc_live);
        let ctx = Arc::clone(&ctx);
        async move {
            let snap = live.snapshot.load_full();
            forward::handle(snap, &live.metrics, &live.dag, &ctx, req).await
        }
    });
    // The config as it is now, after the handshake.
    let snap = live.snapshot.load();
    // Each connection future is moved straight into the task it runs in,
    // so it is stored once.
    if h2 {
        let conn = watcher.watch(snap.http.http2.serve_connection(io, service));
        tokio::spawn(conn.map(move |result| finished(result, peer, active)));
    } else {
        let conn = watcher.watch(snap.http.http1.serve_connection(io, service));
        tokio::spawn(conn.map(move |result| finished(result, peer, active)));
    }
}

fn finished(result: Result<(), hyper::Error>, peer: SocketAddr, active: Active) {
    if let Err(e) = result {
        tracing::debug!(%peer, "connection ended with an error: {e}");
    }
    drop(active);
}
