//! One request through the array: route, choose a member, send, retry on
//! another member when that is safe, and stream the answer back rewritten.
//!
//! What is retried (README "Failover"): a request whose member refused the
//! connection or could not be reached within the connect timeout (its body
//! was never read), and a request whose member closed or reset the
//! connection before any byte of the answer, when the request body is empty
//! or was kept whole for replay (up to `proxy.replay_body_limit`). A member
//! that times out is not retried: the request may be in progress there.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::body::{Guarded, ProxyBody};
use super::headers::{add_forwarded, strip_hop_by_hop};
use super::idle::IdleTimeout;
use super::replay::Replay;
use super::respond;
use super::router::Route;
use super::snapshot::{ServiceRt, Snapshot};
use crate::admin::Metrics;
use crate::rewrite;
use crate::upstream::health::error_chain;

/// Most members one request tries.
const MAX_ATTEMPTS: usize = 8;

/// How an attempt failed.
enum Failure {
    /// The member could not be reached: nothing was sent.
    Connect,
    /// The member went away before answering.
    Member,
    /// The client's own request body failed (aborted, too slow).
    ClientBody,
    /// No answer within the service's response timeout.
    Timeout,
}

/// Handles one request from a client at `peer`.
pub async fn handle(
    snap: Arc<Snapshot>,
    metrics: &Metrics,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<ProxyBody> {
    let started = Instant::now();
    if req.method() == Method::CONNECT {
        return local(
            metrics,
            "none",
            respond::plain(
                StatusCode::METHOD_NOT_ALLOWED,
                "405 CONNECT is not supported\n",
            ),
        );
    }
    let Some(host) = request_host(&req) else {
        return local(
            metrics,
            "none",
            respond::plain(StatusCode::BAD_REQUEST, "400 Bad Request: no Host\n"),
        );
    };
    if !host.to_str().is_ok_and(|h| snap.accepts_host(h)) {
        return local(
            metrics,
            "none",
            respond::plain(
                StatusCode::MISDIRECTED_REQUEST,
                "421 Misdirected Request: this array does not serve that host name\n",
            ),
        );
    }
    let s = match snap.router.route(req.uri().path()) {
        Route::Service(s) => s,
        Route::Root => return local(metrics, "none", respond::to_owa()),
        Route::NotFound => {
            return local(
                metrics,
                "none",
                respond::plain(StatusCode::NOT_FOUND, "404 Not Found\n"),
            )
        }
    };
    let svc = &snap.services[s];
    if !snap.upstreams.any_eligible(s) {
        return local(metrics, &svc.name, respond::no_member());
    }

    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    add_forwarded(&mut parts.headers, peer.ip(), &host);
    parts.headers.insert(header::HOST, host);
    if svc.rewrite {
        rewrite::request_identity_encoding(&mut parts.headers);
    }
    let pq = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let replay = Replay::new(
        IdleTimeout::new(body, svc.idle_timeout),
        snap.cfg.proxy.replay_body_limit,
    );

    let mut tried = [usize::MAX; MAX_ATTEMPTS];
    let mut attempts = 0;
    let upstreams = &snap.upstreams;
    loop {
        let Some(m) = upstreams.pick(s, &tried[..attempts]) else {
            // Every eligible member failed this request (or went away).
            // Nobody left (every member refused or is down): 503; members
            // that are up but failed this request: 502.
            let resp = if attempts == 0 || !upstreams.any_eligible(s) {
                respond::no_member()
            } else {
                respond::plain(
                    StatusCode::BAD_GATEWAY,
                    "502 Bad Gateway: no server could answer\n",
                )
            };
            return local(metrics, &svc.name, resp);
        };
        tried[attempts] = m;
        attempts += 1;
        let backend = &upstreams.backends()[m];
        let guard = backend.state.begin_request();

        let mut up = Request::new(replay.attempt());
        *up.method_mut() = parts.method.clone();
        *up.uri_mut() = upstream_uri(&backend.authority, &pq);
        *up.version_mut() = Version::HTTP_11;
        *up.headers_mut() = parts.headers.clone();

        let failure = match tokio::time::timeout(svc.response_timeout, snap.client.request(up))
            .await
        {
            Ok(Ok(resp)) => {
                let resp = respond_from_member(&snap, svc, resp, &backend.name, guard);
                metrics
                    .requests
                    .with_label_values(&[&svc.name, &backend.name, resp.status().as_str()])
                    .inc();
                svc.duration.observe(started.elapsed().as_secs_f64());
                return resp;
            }
            Ok(Err(e)) => {
                let failure = classify(&e);
                let why = error_chain(&e);
                match failure {
                    Failure::Connect => upstreams.eject_all(m, &why, metrics),
                    Failure::Member => upstreams.eject(m, s, &why, metrics),
                    _ => {}
                }
                tracing::debug!(member = %backend.name, service = %svc.name, "attempt failed: {why}");
                failure
            }
            Err(_) => {
                upstreams.eject(
                    m,
                    s,
                    "no response within the service's response timeout",
                    metrics,
                );
                Failure::Timeout
            }
        };
        let retry = match failure {
            Failure::Connect => true,
            Failure::Member => replay.can_replay(),
            Failure::ClientBody | Failure::Timeout => false,
        };
        if retry && attempts < MAX_ATTEMPTS {
            svc.retries.inc();
            continue;
        }
        let resp = match failure {
            Failure::Timeout => respond::plain(
                StatusCode::GATEWAY_TIMEOUT,
                "504 Gateway Timeout: the server did not answer in time\n",
            ),
            Failure::ClientBody => respond::plain(
                StatusCode::BAD_REQUEST,
                "400 Bad Request: the request body did not arrive\n",
            ),
            _ => respond::plain(
                StatusCode::BAD_GATEWAY,
                "502 Bad Gateway: the server failed\n",
            ),
        };
        metrics
            .requests
            .with_label_values(&[&svc.name, &backend.name, resp.status().as_str()])
            .inc();
        return resp;
    }
}

/// The answer of a member, made the array's own.
fn respond_from_member(
    snap: &Snapshot,
    svc: &ServiceRt,
    resp: Response<Incoming>,
    member: &str,
    guard: crate::upstream::member::InFlight,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let header_rewrites = rewrite::rewrite_response_headers(
        &mut parts.headers,
        &snap.plan,
        snap.cfg.rewrite.expose_server_headers,
        member,
    );
    if header_rewrites > 0 {
        svc.rewrites.inc_by(header_rewrites as u64);
    }
    let body = IdleTimeout::new(body, svc.idle_timeout);
    let body: ProxyBody = if svc.rewrite
        && !body.is_end_stream()
        && rewrite::should_rewrite_body(&parts.headers, &snap.cfg.rewrite.content_types)
    {
        parts.headers.remove(header::CONTENT_LENGTH);
        let counter = Some(svc.rewrites.clone());
        if svc.autodiscover {
            Guarded::new(
                rewrite::RewriteBody::autodiscover(body, Arc::clone(&snap.plan), counter),
                guard,
            )
            .map_err(Into::into)
            .boxed_unsync()
        } else {
            Guarded::new(
                rewrite::RewriteBody::generic(body, Arc::clone(&snap.plan), counter),
                guard,
            )
            .map_err(Into::into)
            .boxed_unsync()
        }
    } else {
        Guarded::new(body, guard).boxed_unsync()
    };
    Response::from_parts(parts, body)
}

/// Counts an answer the array gave itself.
fn local(metrics: &Metrics, service: &str, resp: Response<ProxyBody>) -> Response<ProxyBody> {
    metrics
        .requests
        .with_label_values(&[service, "none", resp.status().as_str()])
        .inc();
    resp
}

/// The public host of a request: Host on HTTP/1.1, :authority on HTTP/2.
fn request_host<B>(req: &Request<B>) -> Option<HeaderValue> {
    if let Some(h) = req.headers().get(header::HOST) {
        return Some(h.clone());
    }
    req.uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
}

fn upstream_uri(authority: &http::uri::Authority, pq: &PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(authority.clone());
    parts.path_and_query = Some(pq.clone());
    // Scheme, authority and path are all present and valid: this cannot fail.
    Uri::from_parts(parts).unwrap_or_default()
}

/// Sorts an error of the upstream client into what it means for retries.
fn classify(e: &hyper_util::client::legacy::Error) -> Failure {
    if e.is_connect() {
        return Failure::Connect;
    }
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_user() {
                return Failure::ClientBody;
            }
        }
        if err
            .downcast_ref::<super::idle::IdleTimeoutError>()
            .is_some()
        {
            return Failure::ClientBody;
        }
        cur = err.source();
    }
    Failure::Member
}
