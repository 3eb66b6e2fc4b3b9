//! `listen.http_redirect`: plain HTTP answered with a redirect to the same
//! path over HTTPS, as the IIS "HTTP Redirect" in front of OWA does.
//!
//! Nothing is forwarded. The redirect names the host the client asked for
//! when it is one of the array's names, else the array's public name (never
//! a host the client made up: no open redirect), with `array.public_port`.
//! GET and HEAD get 301; other methods 308, which keeps the method and body.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::body::{full, ProxyBody};
use super::listener::Shared;
use super::snapshot::{split_host, Snapshot};

/// Accepts plain-HTTP connections until `stop` turns true.
pub async fn redirect_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.changed() => return,
            a = listener.accept() => a,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors or buffers: wait instead of spinning.
                tracing::warn!("redirect listener: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = Arc::clone(&shared.limit).try_acquire_owned() else {
            shared.metrics.connections_refused.inc();
            continue;
        };
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let shared = Arc::clone(&shared);
        let http1 = shared.snapshot.load().http1.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                let snap = shared.snapshot.load_full();
                let resp = redirect(&snap, local, &req);
                shared
                    .metrics
                    .requests
                    .with_label_values(&["http_redirect", "none", resp.status().as_str()])
                    .inc();
                async move { Ok::<_, Infallible>(resp) }
            });
            let _ = http1.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

/// The redirect for `req`, which came in on `local`.
pub fn redirect<B>(snap: &Snapshot, local: SocketAddr, req: &Request<B>) -> Response<ProxyBody> {
    let asked = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let name = asked
        .filter(|host| snap.accepts_host(host, local))
        .and_then(split_host)
        .map(|(name, _)| name)
        // An IP literal named the redirect listener, not the HTTPS one.
        .filter(|name| !name.starts_with('[') && name.parse::<std::net::IpAddr>().is_err())
        .unwrap_or(snap.public_name.as_str());
    let port = match snap.cfg.array.public_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let location = format!("https://{name}{port}{pq}");
    let (status, text) = if req.method() == Method::GET || req.method() == Method::HEAD {
        (
            StatusCode::MOVED_PERMANENTLY,
            "301 Moved Permanently: use HTTPS\n",
        )
    } else {
        (
            StatusCode::PERMANENT_REDIRECT,
            "308 Permanent Redirect: use HTTPS\n",
        )
    };
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    match HeaderValue::from_str(&location) {
        Ok(v) => {
            resp.headers_mut().insert(header::LOCATION, v);
        }
        // The path came from a parsed URI, so this does not happen; the
        // public origin is still a good answer.
        Err(_) => {
            resp.headers_mut()
                .insert(header::LOCATION, snap.public_origin.clone());
        }
    }
    resp
}
