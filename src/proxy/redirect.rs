//! `listen.http_redirect`: plain HTTP answered with a redirect to the same
//! path over HTTPS, as the IIS "HTTP Redirect" in front of OWA does.
//!
//! The listener is `listen::http_redirect`; this is the answer. Nothing is
//! forwarded. The redirect names the host the client asked for
//! when it is one of the array's names, else the array's public name (never
//! a host the client made up: no open redirect), with `array.public_port`.
//! GET and HEAD get 301; other methods 308, which keeps the method and body.

use std::net::SocketAddr;

use http::{header, HeaderValue, Method, Request, Response, StatusCode};

use super::body::{full, ProxyBody};
use crate::snapshot::http::split_host;
use crate::snapshot::Snapshot;

/// The redirect for `req`, which came in on `local`.
pub fn redirect<B>(snap: &Snapshot, local: SocketAddr, req: &Request<B>) -> Response<ProxyBody> {
    let asked = req
        .uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| req.headers().get(header::HOST)?.to_str().ok());
    let name = asked
        .filter(|host| snap.http.accepts_host(host, local))
        .and_then(split_host)
        .map(|(name, _)| name)
        // An IP literal named the redirect listener, not the HTTPS one.
        .filter(|name| !name.starts_with('[') && name.parse::<std::net::IpAddr>().is_err())
        .unwrap_or(snap.http.public_name.as_str());
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
                .insert(header::LOCATION, snap.http.public_origin.clone());
        }
    }
    resp
}
