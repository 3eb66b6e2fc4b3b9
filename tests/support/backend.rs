//! An in-process HTTP/1.1 backend for tests that need to see exactly what
//! the array sent: it answers `*/healthcheck.htm` like Exchange, and echoes
//! every other request (method, path, headers, body length) as JSON, with
//! hop-by-hop headers of its own in the answer.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
pub struct EchoState {
    pub requests: AtomicU64,
    /// Connections that carried at least one request other than a health
    /// check (shows whether the array reuses its connections).
    pub request_conns: AtomicU64,
    pub healthy: AtomicBool,
}

pub struct EchoBackend {
    pub addr: SocketAddr,
    pub state: Arc<EchoState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoBackend {
    pub async fn start(name: &'static str) -> Self {
        Self::start_with(name, None).await
    }

    /// Like [`Self::start`], closing connections idle for `idle_close` (as
    /// a server whose keep-alive timeout is short does).
    pub async fn start_with(name: &'static str, idle_close: Option<std::time::Duration>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(EchoState {
            requests: AtomicU64::new(0),
            request_conns: AtomicU64::new(0),
            healthy: AtomicBool::new(true),
        });
        let st = Arc::clone(&state);
        let task = tokio::spawn(async move {
            let mut conns = tokio::task::JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let st = Arc::clone(&st);
                conns.spawn(async move {
                    let counted = Arc::new(AtomicBool::new(false));
                    let svc = service_fn(move |req| {
                        let st = Arc::clone(&st);
                        let counted = Arc::clone(&counted);
                        async move { Ok::<_, Infallible>(answer(name, &st, &counted, req).await) }
                    });
                    let mut http = hyper::server::conn::http1::Builder::new();
                    if let Some(idle) = idle_close {
                        http.timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(idle);
                    }
                    let _ = http.serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        EchoBackend { addr, state, task }
    }
}

async fn answer(
    name: &str,
    st: &EchoState,
    counted: &AtomicBool,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    if path.to_ascii_lowercase().ends_with("/healthcheck.htm") {
        if st.healthy.load(Ordering::Relaxed) {
            return Response::new(Full::new(Bytes::from(format!("200 OK<br/>{name}"))));
        }
        let mut r = Response::new(Full::new(Bytes::from_static(b"down")));
        *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
        return r;
    }
    st.requests.fetch_add(1, Ordering::Relaxed);
    if !counted.swap(true, Ordering::Relaxed) {
        st.request_conns.fetch_add(1, Ordering::Relaxed);
    }
    let method = req.method().to_string();
    let uri = req.uri().to_string();
    let mut headers = BTreeMap::new();
    for (k, v) in req.headers() {
        headers.insert(k.to_string(), v.to_str().unwrap_or("?").to_owned());
    }
    let body_len = match req.into_body().collect().await {
        Ok(b) => b.to_bytes().len(),
        Err(_) => usize::MAX,
    };
    let json = serde_json::json!({
        "server": name, "method": method, "uri": uri, "headers": headers, "body_len": body_len,
    });
    Response::builder()
        .header("content-type", "application/json")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not pass")
        .header("keep-alive", "timeout=5")
        .header("proxy-authenticate", "Basic")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::from(json.to_string())))
        .unwrap()
}
