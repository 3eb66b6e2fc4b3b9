//! The router: stamps the server headers on every answer and sends each
//! request to its area (`/mock` switches, `/mock/dag` endpoints, health
//! pages, the services); in a DAG, a request for a mailbox whose database
//! is active on another server is proxied there (`mailbox_route`,
//! `proxy`).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderValue;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::mock::auth::conn_login::{ConnLogin, Step};
use crate::mock::auth::token::{self, ProxiedUser};
use crate::mock::dag::endpoints;
use crate::mock::databases::unavailable;
use crate::mock::http::mailbox_route::{self, Decision};
use crate::mock::http::request::under;
use crate::mock::http::response::{self, Body};
use crate::mock::http::{autodiscover, control, ews, health, mapi, other, owa, proxy, rpc};
use crate::mock::shared::Shared;

/// Routes one request that arrived on the connection `login` tracks, and
/// stamps the server headers on the answer: `X-FEServer` and `X-DiagInfo`
/// (this server), `X-BEServer` (the server that held the mailbox: this
/// one, or the one a proxied answer came from), `X-Mock-Connection` with
/// the connection's number, and `X-Mock-User` with the address the
/// connection logged in as over NTLM, if it did.
pub async fn handle(
    shared: Arc<Shared>,
    login: &ConnLogin,
    req: Request<Incoming>,
) -> Response<Body> {
    let path = req.uri().path().to_ascii_lowercase();
    let mut req = req;
    let mut resp = if under(&path, "/mock/dag") {
        endpoints::handle(&shared, &path, req).await
    } else if under(&path, "/mock") {
        control::handle(&shared, req.method(), &path, req.uri())
    } else {
        if let Some(user) = token::verify(&shared, req.headers()) {
            req.extensions_mut().insert(ProxiedUser(user));
        }
        let latency = shared.latency_ms.load(Ordering::Relaxed);
        if latency > 0 {
            tokio::time::sleep(Duration::from_millis(latency)).await;
        }
        match login.step(&shared, &path, req).await {
            Step::Answer(resp) => resp,
            Step::Route(req, reply) => {
                let mut resp = route(&shared, &path, req).await;
                if let Some(value) = reply {
                    resp.headers_mut()
                        .insert(http::header::WWW_AUTHENTICATE, value);
                }
                resp
            }
        }
    };
    let headers = resp.headers_mut();
    if let Ok(name) = HeaderValue::from_str(&shared.name) {
        headers.insert("x-feserver", name.clone());
        if !headers.contains_key("x-beserver") {
            headers.insert("x-beserver", name.clone());
        }
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
    let service = health::service_of(path);
    if let Some(svc @ ("owa" | "ews" | "mapi" | "rpc")) = service {
        match mailbox_route::decide(shared, svc, &req) {
            Decision::Here => {}
            Decision::Unavailable(why) => return unavailable(&why),
            Decision::Proxy(member, mailbox) => {
                if let Some(dag) = shared.databases.dag() {
                    return proxy::forward(shared, dag, &member, &mailbox, req).await;
                }
            }
        }
    }
    match service {
        Some("autodiscover") => autodiscover::handle(shared, path, req).await,
        Some("owa") => owa::handle(shared, path, req).await,
        Some("ews") => ews::handle(shared, path, req).await,
        Some("rpc") => rpc::handle(shared, path, req).await,
        Some("mapi") => mapi::handle(shared, path, req).await,
        Some(service) => other::handle(shared, service, req).await,
        None => response::status(StatusCode::NOT_FOUND),
    }
}
