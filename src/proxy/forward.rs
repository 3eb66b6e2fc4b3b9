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
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::access::AccessRecord;
use super::body::{Counted, Guarded, ProxyBody};
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
    let mut log = AccessRecord::start(started, peer, req.method(), req.uri().path());
    if req.method() == Method::CONNECT {
        let resp = respond::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 CONNECT is not supported\n",
        );
        return local(metrics, log, "none", "none", resp);
    }
    let Some(host) = request_host(&req) else {
        let resp = respond::plain(StatusCode::BAD_REQUEST, "400 Bad Request: no Host\n");
        return local(metrics, log, "none", "none", resp);
    };
    if !host.to_str().is_ok_and(|h| snap.accepts_host(h)) {
        let resp = respond::plain(
            StatusCode::MISDIRECTED_REQUEST,
            "421 Misdirected Request: this array does not serve that host name\n",
        );
        return local(metrics, log, "none", "none", resp);
    }
    let s = match snap.router.route(req.uri().path()) {
        Route::Service(s) => s,
        Route::Root => return local(metrics, log, "none", "none", respond::to_owa()),
        Route::NotFound => {
            let resp = respond::plain(StatusCode::NOT_FOUND, "404 Not Found\n");
            return local(metrics, log, "none", "none", resp);
        }
    };
    let svc = &snap.services[s];
    if !snap.upstreams.any_eligible(s) {
        return local(metrics, log, &svc.name, "none", respond::no_member());
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
    let body = IdleTimeout::new(body, svc.idle_timeout);
    let limit = snap.cfg.proxy.replay_body_limit;
    let replay = match log.as_mut() {
        Some(log) if !body.is_end_stream() => {
            let count = Arc::new(AtomicU64::new(0));
            log.bytes_in = Some(Arc::clone(&count));
            Replay::new(Counted::new(body, count), limit)
        }
        _ => Replay::new(body, limit),
    };

    let mut tried = [usize::MAX; MAX_ATTEMPTS];
    let mut attempts = 0;
    let upstreams = &snap.upstreams;
    loop {
        let Some(m) = upstreams.pick(s, &tried[..attempts]) else {
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
            return local(metrics, log, &svc.name, "none", resp);
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

        let sent = tokio::time::timeout(svc.response_timeout, snap.client.request(up)).await;
        let failure = match sent {
            Ok(Ok(resp)) => {
                metrics
                    .requests
                    .with_label_values(&[&svc.name, &backend.name, resp.status().as_str()])
                    .inc();
                svc.duration.observe(started.elapsed().as_secs_f64());
                if let Some(log) = log.as_mut() {
                    log.service.clone_from(&svc.name);
                    log.member.clone_from(&backend.name);
                    log.status = resp.status().as_u16();
                    log.retries = attempts as u32 - 1;
                }
                return respond_from_member(&snap, svc, resp, &backend.name, guard, log);
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
        if let Some(log) = log.as_mut() {
            log.retries = attempts as u32 - 1;
        }
        return local(metrics, log, &svc.name, &backend.name, resp);
    }
}

/// The answer of a member, made the array's own.
fn respond_from_member(
    snap: &Snapshot,
    svc: &ServiceRt,
    resp: Response<Incoming>,
    member: &str,
    guard: crate::upstream::member::InFlight,
    log: Option<Box<AccessRecord>>,
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
        let plan = Arc::clone(&snap.plan);
        let rewritten = if svc.autodiscover {
            rewrite::RewriteBody::autodiscover(body, plan, counter)
        } else {
            rewrite::RewriteBody::generic(body, plan, counter)
        };
        Guarded::new(rewritten, guard, log).boxed_unsync()
    } else {
        Guarded::new(body, guard, log).boxed_unsync()
    };
    Response::from_parts(parts, body)
}

/// Counts and logs an answer the array gave itself.
fn local(
    metrics: &Metrics,
    log: Option<Box<AccessRecord>>,
    service: &str,
    member: &str,
    resp: Response<ProxyBody>,
) -> Response<ProxyBody> {
    metrics
        .requests
        .with_label_values(&[service, member, resp.status().as_str()])
        .inc();
    if let Some(mut log) = log {
        service.clone_into(&mut log.service);
        member.clone_into(&mut log.member);
        log.status = resp.status().as_u16();
        log.bytes_out = http_body::Body::size_hint(resp.body()).exact().unwrap_or(0);
        log.emit();
    }
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
