//! The admin listener: `/healthz`, `/metrics` and the JSON API of DESIGN.md.
//!
//! It reads the same live state as the forwarding path (the current
//! snapshot, the member cells), so what it says is what the array does.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::proxy::listener::Shared;

/// Serves the admin API until `stop` turns true.
pub async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    loop {
        let (stream, _) = tokio::select! {
            biased;
            _ = stop.changed() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!("admin accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let shared = Arc::clone(&shared);
                async move { Ok::<_, Infallible>(route(&shared, req)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn route(shared: &Shared, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n"),
        (&Method::GET, "/metrics") => {
            let mut r = Response::new(Full::new(Bytes::from(shared.metrics.render())));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        (&Method::GET, "/api/array") => {
            let snap = shared.snapshot.load();
            let a = &snap.cfg.array;
            let members: Vec<&str> = snap.cfg.members.iter().map(|m| m.name.as_str()).collect();
            json_response(&json!({
                "name": a.name, "fqdn": a.fqdn, "site": a.site,
                "public_names": a.public_names, "members": members,
            }))
        }
        (&Method::GET, "/api/members") => json_response(&members_json(shared)),
        (&Method::GET, "/api/databases") => {
            let snap = shared.snapshot.load();
            let dbs: Vec<_> = snap
                .cfg
                .databases
                .iter()
                .map(|d| json!({"name": d.name, "rpc_client_access_server": d.rpc_client_access_server}))
                .collect();
            json_response(&serde_json::Value::Array(dbs))
        }
        _ => text(StatusCode::NOT_FOUND, "404 Not Found\n"),
    }
}

/// `GET /api/members`: every member with its health per service.
pub fn members_json(shared: &Shared) -> serde_json::Value {
    let snap = shared.snapshot.load();
    let list: Vec<_> = snap
        .upstreams
        .backends()
        .iter()
        .map(|b| {
            let mut services = serde_json::Map::new();
            let mut checks = serde_json::Map::new();
            for (s, svc) in snap.cfg.services.iter().enumerate() {
                let cell = b.cell(s);
                services.insert(svc.name.clone(), json!(cell.is_up()));
                if let Some((at, ok, detail)) = cell.last_check() {
                    checks.insert(
                        svc.name.clone(),
                        json!({"at_unix_ms": at, "ok": ok, "detail": detail}),
                    );
                }
            }
            let healthy = (0..snap.cfg.services.len()).all(|s| b.cell(s).is_up());
            json!({
                "name": b.name,
                "address": b.address.to_string(),
                "fqdn": b.fqdn,
                "state": if b.state.is_draining() { "draining" } else { "active" },
                "healthy": healthy,
                "in_flight": b.state.in_flight(),
                "services": services,
                "last_checks": checks,
            })
        })
        .collect();
    serde_json::Value::Array(list)
}

fn json_response(v: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(v.to_string())));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}
