//! Server-to-server proxying, as Exchange 2013's front end does it: a
//! request for a mailbox whose database's active copy is on another
//! server goes to that server, with the identity this server checked in
//! `X-CommonAccessToken` (the client's `Authorization` is not passed on),
//! and `X-Mock-Proxied-By: <this server>`. The request and answer bodies
//! stream both ways (Outlook Anywhere's channels too). The answer keeps
//! the other server's `X-BEServer`; the router sets this server's
//! `X-FEServer`.

use std::time::Duration;

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::mock::auth::token;
use crate::mock::dag::definition::Member;
use crate::mock::dag::Dag;
use crate::mock::databases::unavailable;
use crate::mock::http::response::Body;
use crate::mock::shared::Shared;
use crate::mock::users::Mailbox;

/// How long the other server may take to start answering: 60 s.
const HEAD_TIMEOUT: Duration = Duration::from_secs(60);

/// Hop-by-hop headers, and the ones this hop replaces.
const DROPPED: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "authorization",
    token::HEADER,
    "x-mock-proxied-by",
];

fn copy_headers(from: &HeaderMap, to: &mut HeaderMap) {
    let named_in_connection: Vec<String> = from
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_ascii_lowercase())
        .collect();
    for (name, value) in from {
        let n = name.as_str();
        if DROPPED.contains(&n) || named_in_connection.iter().any(|c| c == n) {
            continue;
        }
        to.append(name.clone(), value.clone());
    }
}

/// Sends `req` for `user` to `member` and relays the answer; `503` with
/// `Retry-After` when that server cannot be reached.
pub async fn forward(
    shared: &Shared,
    dag: &Dag,
    member: &Member,
    user: &Mailbox,
    req: Request<Incoming>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_string();
    let mut out = Request::new(body.map_err(std::io::Error::other).boxed_unsync());
    *out.method_mut() = parts.method.clone();
    if let Ok(uri) = path.parse() {
        *out.uri_mut() = uri;
    }
    copy_headers(&parts.headers, out.headers_mut());
    if let Some(t) = token::issue(shared, &user.address) {
        out.headers_mut().insert(token::HEADER, t);
    }
    if let Ok(me) = HeaderValue::from_str(&shared.name) {
        out.headers_mut()
            .insert(HeaderName::from_static("x-mock-proxied-by"), me);
    }
    match dag.client().send(member, out, HEAD_TIMEOUT).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let mut relayed = Response::new(body.map_err(std::io::Error::other).boxed_unsync());
            *relayed.status_mut() = parts.status;
            copy_headers(&parts.headers, relayed.headers_mut());
            relayed
        }
        Err(e) => {
            tracing::warn!(server = %shared.name, to = %member.name, user = %user.address, error = %e,
                "cannot proxy to the server with the mailbox's database");
            unavailable(&format!(
                "{} holds {}'s database and cannot be reached",
                member.name, user.address
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_credentials_stay_behind() {
        let mut from = HeaderMap::new();
        from.insert("connection", HeaderValue::from_static("keep-alive, x-hop"));
        from.insert("x-hop", HeaderValue::from_static("1"));
        from.insert("authorization", HeaderValue::from_static("Basic eA=="));
        from.insert("content-length", HeaderValue::from_static("10"));
        from.insert("cookie", HeaderValue::from_static("cadata=x"));
        from.insert(token::HEADER, HeaderValue::from_static("forged"));
        let mut to = HeaderMap::new();
        copy_headers(&from, &mut to);
        let names: Vec<_> = to.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, ["content-length", "cookie"]);
    }
}
