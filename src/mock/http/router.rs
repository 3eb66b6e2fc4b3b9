//! The router: stamps the server headers on every answer and sends each
//! request to its area (`/mock` switches, health pages, the services).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::auth::conn_login::{ConnLogin, Step};
use crate::mock::http::request::under;
use crate::mock::http::response::{self, Body};
use crate::mock::http::{autodiscover, control, ews, health, mapi, other, owa, rpc};
use crate::mock::shared::Shared;

/// Routes one request that arrived on the connection `login` tracks, and
/// stamps the server headers on the answer: `X-FEServer` (and
/// `X-BEServer`, `X-DiagInfo`), `X-Mock-Connection` with the connection's
/// number, and `X-Mock-User` with the address the connection logged in as
/// over NTLM, if it did.
pub async fn handle(
    shared: Arc<Shared>,
    login: &ConnLogin,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_ascii_lowercase();
    let mut resp = if under(&path, "/mock") {
        control::handle(&shared, req.method(), &path, req.uri())
    } else {
        let latency = shared.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        match login.step(&shared, &path, req).await {
            Step::Answer(resp) => resp,
            Step::Route(req) => route(&shared, &path, req).await,
        }
    };
    let headers = resp.headers_mut();
    if let Ok(name) = HeaderValue::from_str(&shared.name) {
        headers.insert("x-feserver", name.clone());
        headers.insert("x-beserver", name.clone());
        headers.insert("x-diaginfo", name);
    }
    headers.insert("x-mock-connection", HeaderValue::from(login.id()));
    if let Some(user) = login.user() {
        if let Ok(v) = HeaderValue::from_str(&user.address) {
            headers.insert("x-mock-user", v);
        }
    }
    resp
}

async fn route(shared: &Arc<Shared>, path: &str, req: Request<Incoming>) -> Response<Body> {
    if let Some(service) = health::health_page(path) {
        return if matches!(*req.method(), Method::GET | Method::HEAD) {
            health::page(&shared.health, service, &shared.name)
        } else {
            response::status(StatusCode::METHOD_NOT_ALLOWED)
        };
    }
    match health::service_of(path) {
        Some("autodiscover") => autodiscover::handle(shared, path, req).await,
        Some("owa") => owa::handle(shared, path, req).await,
        Some("ews") => ews::handle(shared, path, req).await,
        Some("rpc") => rpc::handle(shared, path, req).await,
        Some("mapi") => mapi::handle(shared, path, req).await,
        Some(service) => other::handle(shared, service, req).await,
        None => response::status(StatusCode::NOT_FOUND),
    }
}
