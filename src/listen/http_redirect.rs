//! `listen.http_redirect`: plain HTTP/1.1, every request answered with a
//! redirect to HTTPS on the array's names (`proxy::redirect`); counted as
//! service `http_redirect`. Connections count against
//! `proxy.max_connections`.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::Listener;
use crate::live::Live;
use crate::proxy::redirect::redirect;

/// The plain-HTTP redirect listener.
pub struct RedirectListener {
    live: Arc<Live>,
}

impl RedirectListener {
    pub fn new(live: Arc<Live>) -> Self {
        RedirectListener { live }
    }
}

impl Listener for RedirectListener {
    fn accept(&self, stream: TcpStream, _peer: SocketAddr) {
        let Ok(permit) = Arc::clone(&self.live.limit).try_acquire_owned() else {
            self.live.metrics.connections_refused.inc();
            return;
        };
        let Ok(local) = stream.local_addr() else {
            return;
        };
        let live = Arc::clone(&self.live);
        let http1 = live.snapshot.load().http.http1.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let snap = live.snapshot.load_full();
                let resp = redirect(&snap, local, &req);
                live.metrics
                    .requests
                    .with_label_values(&["http_redirect", "none", resp.status().as_str()])
                    .inc();
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = http1.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}
