//! The admin listener (`listen.admin`): `/healthz`, `/metrics`, the JSON
//! API (routes in [`super::routes`]) and the status page (`super::page`).
//!
//! It reads the same live state as the forwarding path (the current
//! snapshot, the member cells), so what it says is what the array does.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;

use super::context::Admin;
use super::page::{Sampler, Sampling};
use super::routes;
use crate::listen::Listener;
use crate::live::Live;

/// How long a client may take to send a request head: 10 s.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The admin listener. `admin` must have been opened ([`Admin::open`]) and
/// applied to the first snapshot before traffic starts.
pub struct AdminListener {
    live: Arc<Live>,
    admin: Arc<Admin>,
    builder: auto::Builder<TokioExecutor>,
    /// The status page's series, sampled every second while this lives.
    sampler: Arc<Sampler>,
    _sampling: Sampling,
}

impl AdminListener {
    /// Call it within the tokio runtime: it starts the status page's
    /// sampling task, which stops when the listener is dropped.
    pub fn new(live: Arc<Live>, admin: Arc<Admin>) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT);
        let sampler = Arc::new(Sampler::default());
        let sampling = sampler.run(Arc::clone(&live));
        AdminListener {
            live,
            admin,
            builder,
            sampler,
            _sampling: sampling,
        }
    }
}

impl Listener for AdminListener {
    fn accept(&self, stream: TcpStream, peer: SocketAddr) {
        let live = Arc::clone(&self.live);
        let admin = Arc::clone(&self.admin);
        let sampler = Arc::clone(&self.sampler);
        let builder = self.builder.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let live = Arc::clone(&live);
                let admin = Arc::clone(&admin);
                let sampler = Arc::clone(&sampler);
                async move {
                    let snap = live.snapshot.load_full();
                    Ok::<_, Infallible>(
                        routes::handle(snap, &live.metrics, &live.dag, &admin, &sampler, peer, req)
                            .await,
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
