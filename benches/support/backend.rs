//! An in-process HTTP/1.1 backend standing in for a Client Access server:
//! `*/healthcheck.htm` answers "200 OK", a path ending in `/1m` answers
//! 1 MiB, every other path 1 KiB. Bodies are built once and shared, so the
//! backend costs as little as it can.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Body of the small case: 1 KiB.
pub const SMALL: usize = 1024;
/// Body of the big case: 1 MiB.
pub const BIG: usize = 1 << 20;

/// A running backend; stops when dropped.
pub struct Backend {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Backend {
    /// Binds 127.0.0.1:0 and serves until dropped.
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let small = Bytes::from(vec![b'x'; SMALL]);
        let big = Bytes::from((0..BIG).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let _ = stream.set_nodelay(true);
                let (small, big) = (small.clone(), big.clone());
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let body = pick(req.uri().path(), &small, &big);
                        async move { Ok::<_, Infallible>(Response::new(Full::new(body))) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Backend { addr, task }
    }
}

fn pick(path: &str, small: &Bytes, big: &Bytes) -> Bytes {
    if path.ends_with("/healthcheck.htm") {
        Bytes::from_static(b"200 OK<br/>bench")
    } else if path.ends_with("/1m") {
        big.clone()
    } else {
        small.clone()
    }
}
