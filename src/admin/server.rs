//! The admin listener: `/healthz`, `/metrics` and the JSON API of DESIGN.md
//! (routes in [`super::routes`]).
//!
//! It reads the same live state as the forwarding path (the current
//! snapshot, the member cells), so what it says is what the array does.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::context::Admin;
use super::routes;
use crate::proxy::listener::Shared;

/// How long a client may take to send a request head: 10 s.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the admin API on `listener` until `stop` turns true.
///
/// `admin` must have been opened ([`Admin::open`]) and applied to the
/// first snapshot before traffic starts.
pub async fn run(
    listener: TcpListener,
    shared: Arc<Shared>,
    admin: Arc<Admin>,
    mut stop: watch::Receiver<bool>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.changed() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("admin accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        let admin = Arc::clone(&admin);
        let builder = builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                let admin = Arc::clone(&admin);
                async move {
                    let snap = shared.snapshot.load_full();
                    Ok::<_, Infallible>(
                        routes::handle(snap, &shared.metrics, &admin, peer, req).await,
                    )
                }
            });
            if let Err(e) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%peer, "admin connection ended with an error: {e}");
            }
        });
    }
}

/// Serves the admin API, opening [`Admin`] from the current config first.
///
/// Transitional, for a caller that does not open [`Admin`] itself: errors
/// that should stop the start (a corrupt state file, a bad token, an exposed
/// listener without a token) can only be logged here, and the admin API is
/// then not served. Prefer `Admin::open` before binding, then [`run`].
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: watch::Receiver<bool>) {
    let snap = shared.snapshot.load_full();
    match Admin::open(&snap.cfg) {
        Ok(admin) => {
            admin.apply(&snap.upstreams);
            run(listener, shared, Arc::new(admin), stop).await;
        }
        Err(e) => tracing::error!("the admin API is not served: {e}"),
    }
}
