//! One request through the array: route, choose a member, send, retry on
//! another member when that is safe, and stream the answer back rewritten.
//!
//! What is retried (README "Failover"): a request whose member refused the
//! connection or could not be reached within the connect timeout (its body
//! was never read), and a request whose member closed or reset the
//! connection before any byte of the answer, when the request body is empty
//! or was kept whole for replay (up to `proxy.replay_body_limit`). A member
//! that times out is not retried: the request may be in progress there.
//!
//! Requests of a client connection that logs in with NTLM or Negotiate go
//! over one dedicated backend connection instead of the pool (`conn.rs`).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header;
use http::request::Parts;
use http::uri::PathAndQuery;
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use hyper::body::Incoming;

use super::access::AccessRecord;
use super::body::{Counted, Ejector, Guarded, ProxyBody, Reuse, Tracking};
use super::conn::{self, ConnCtx, ConnError, Pinned};
use super::headers::{add_forwarded, strip_hop_by_hop};
use super::idle::IdleTimeout;
use super::mailbox::{self, MailboxId};
use super::peek;
use super::respond;
use super::routing;
use super::shield;
use super::validate;
use crate::dag::{Dag, Route as DagRoute};
use crate::errors::error_chain;
use crate::metrics::Metrics;
use crate::rewrite;
use crate::snapshot::http::ServiceRt;
use crate::snapshot::router::Route;
use crate::snapshot::Snapshot;
use crate::upstream::connect::ConnectError;
use crate::upstream::driven::Driven;
use crate::upstream::replay::{Replay, ReplayBody};
use crate::upstream::selection::{Keys, MAX_TRIES};
use crate::upstream::state::InFlight;

/// Most kept connections one attempt tries before it makes a new one.
const MAX_POOLED_TRIES: usize = 4;

/// How an attempt failed.
enum Failure {
    /// The member could not be reached: nothing was sent.
    Connect,
    /// The member went away before answering.
    Member,
    /// A new connection to the member closed before the request went out.
    Unsent,
    /// The client's own request body failed (aborted, too slow).
    ClientBody,
    /// No answer within the service's response timeout.
    Timeout,
}

/// How much of an Autodiscover or EWS body is looked at for its mailbox:
/// 8 KiB (the address comes in the first few hundred bytes).
const PEEK_LIMIT: usize = 8 * 1024;

/// A request on its way: what every attempt needs.
struct Outgoing {
    parts: Parts,
    pq: PathAndQuery,
    replay: Replay,
    started: Instant,
    log: Option<Box<AccessRecord>>,
    /// The mailbox the request is for, when mailbox routing found one.
    mailbox: Option<MailboxId>,
}

/// Handles one request from the client connection `ctx`. An `Err` resets
/// the HTTP/2 stream (HTTP_1_1_REQUIRED) or closes the HTTP/1.1 connection.
pub async fn handle(
    snap: Arc<Snapshot>,
    metrics: &Metrics,
    dag: &Dag,
    ctx: &ConnCtx,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, ConnError> {
    let started = Instant::now();
    let mut log = AccessRecord::start(started, ctx.peer, req.method(), req.uri().path());
    if req.method() == Method::CONNECT {
        let resp = respond::plain(
            StatusCode::METHOD_NOT_ALLOWED,
            "405 CONNECT is not supported\n",
        );
        return Ok(local(metrics, log, "none", "none", resp));
    }
    let host = match validate::host(&req, |h| snap.http.accepts_host(h, ctx.local))
        .and_then(|host| validate::path(req.uri().path()).map(|()| host))
    {
        Ok(host) => host,
        Err(refusal) => {
            return Ok(local(
                metrics,
                log,
                "none",
                "none",
                respond::plain(refusal.status, refusal.why),
            ));
        }
    };
    let s = match snap.http.router.route(req.uri().path()) {
        Route::Service(s) => s,
        Route::Root => return Ok(local(metrics, log, "none", "none", respond::to_owa())),
        Route::NotFound => {
            let resp = respond::plain(StatusCode::NOT_FOUND, "404 Not Found\n");
            return Ok(local(metrics, log, "none", "none", resp));
        }
    };
    let svc = &snap.http.services[s];
    // shield (issue 18): Exchange shields, allow_from, lockout; 403/429 here.
    let req = match shield::check(&snap, ctx, s, req, &mut log).await {
        Ok(req) => req,
        Err(resp) => return Ok(local(metrics, log, &svc.name, "none", resp)),
    };
    let connection_auth = conn::is_connection_auth(req.headers());
    if connection_auth && ctx.h2 {
        return Err(ConnError::http11_required());
    }
    if !ctx.is_pinned() && !snap.upstreams.any_eligible(s) {
        return Ok(local(metrics, log, &svc.name, "none", respond::no_member()));
    }

    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    add_forwarded(&mut parts.headers, &ctx.forwarded_for, &host);
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
    let routing_on = snap.cfg.proxy.mailbox_routing && !dag.map().is_empty();
    let mut mailbox = routing_on
        .then(|| mailbox::from_head(&parts.uri, &parts.headers))
        .flatten();
    let replay = if mailbox.is_none() && routing_on && svc.peek_body && !body.is_end_stream() {
        match Box::pin(peek::peek(body, PEEK_LIMIT)).await {
            Ok((seen, body)) => {
                mailbox = mailbox::from_body(&seen);
                replay_of(body, log.as_mut(), limit)
            }
            Err(e) => {
                tracing::debug!(peer = %ctx.peer, "request body failed while peeked: {e}");
                return Ok(local(
                    metrics,
                    log,
                    &svc.name,
                    "none",
                    failure_answer(&Failure::ClientBody),
                ));
            }
        }
    } else {
        replay_of(body, log.as_mut(), limit)
    };
    let out = Outgoing {
        parts,
        pq,
        replay,
        started,
        log,
        mailbox,
    };
    if connection_auth || ctx.is_pinned() {
        // Boxed, as the other rare paths: see `send_pooled`.
        return Box::pin(forward_pinned(&snap, metrics, dag, ctx, s, out)).await;
    }
    forward_pooled(&snap, metrics, dag, ctx, s, out).await
}

/// The request body, kept for replays up to `limit`, counted for the access
/// log when there is one.
fn replay_of<B>(body: B, log: Option<&mut Box<AccessRecord>>, limit: usize) -> Replay
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<crate::BoxError>,
{
    match log {
        Some(log) if !body.is_end_stream() => {
            let count = Arc::new(AtomicU64::new(0));
            log.bytes_in = Some(Arc::clone(&count));
            Replay::new(Counted::new(body, count), limit)
        }
        _ => Replay::new(body, limit),
    }
}

/// Over the pool: the members the service's selection rule yields, one
/// after another while a failure leaves the request safe to send again.
async fn forward_pooled(
    snap: &Snapshot,
    metrics: &Metrics,
    dag: &Dag,
    ctx: &ConnCtx,
    s: usize,
    mut out: Outgoing,
) -> Result<Response<ProxyBody>, ConnError> {
    let svc = &snap.http.services[s];
    let upstreams = &snap.upstreams;
    let routed = routing::route(snap, dag, out.mailbox.as_ref(), s, None).await;
    let mut held = routed.map_or_else(|n| n.held, |r| r.held);
    let routing = match routed {
        Ok(r) => r,
        Err(_) => {
            svc.count_routing("fallback");
            if let Some(log) = out.log.as_mut() {
                log.routing = "fallback";
                log.held_ms = held.as_millis() as u64;
            }
            return Ok(local(
                metrics,
                out.log,
                &svc.name,
                "none",
                respond::not_mounted(),
            ));
        }
    };
    svc.count_routing(routing.result);
    if let Some(log) = out.log.as_mut() {
        log.routing = routing.result;
    }
    let mut selection = upstreams.select(
        s,
        Keys {
            headers: &out.parts.headers,
            client: ctx.peer.ip(),
            preferred: routing.preferred,
        },
    );
    let mut preferred = routing.preferred;
    while let Some(m) = selection.next() {
        if selection.attempts() == 1 && selection.moved() {
            svc.affinity_moves.inc();
        }
        let member = &upstreams.members()[m];
        let guard = member.state.begin_request();
        let failure = match attempt(snap, svc, (m, s), &out).await {
            Ok((resp, conn)) => {
                shield::observe(snap, ctx, &out.parts, &resp); // shield: failed logons
                if out.mailbox.is_some() && names_another_server(resp.headers(), &member.name) {
                    // The mailbox lives elsewhere than the map says.
                    dag.refresh();
                }
                if let Some(log) = out.log.as_mut() {
                    log.held_ms = held.as_millis() as u64;
                }
                if conn::challenges_connection_auth(resp.status(), resp.headers()) {
                    if ctx.h2 {
                        return Err(ConnError::http11_required());
                    }
                    // The login's next leg goes to the member that challenged.
                    ctx.set_ntlm_member(&member.name);
                }
                let stick = selection.stick(m);
                // OWA: the array's routing cookie after a forms logon.
                let owa = out
                    .parts
                    .extensions
                    .get::<crate::security::OwaLogon>()
                    .and_then(|l| l.user.as_ref())
                    .and_then(|u| {
                        mailbox::logon_cookie(u.as_bytes(), resp.status(), resp.headers())
                    });
                let reuse = upstreams.returnable(m, conn);
                let attempts = selection.attempts();
                let mut resp = answer(snap, (m, s), resp, (guard, reuse), attempts, out);
                for cookie in stick.into_iter().chain(owa) {
                    resp.headers_mut().append(header::SET_COOKIE, cookie);
                }
                return Ok(resp);
            }
            Err(failure) => failure,
        };
        let retry = match failure {
            Failure::Connect | Failure::Unsent => true,
            Failure::Member => out.replay.can_replay(),
            Failure::ClientBody | Failure::Timeout => false,
        };
        if retry && preferred == Some(m) {
            // The member holding the mailbox's active copy refused or went
            // away: wait for the DAG to mount another copy rather than land
            // on a member that would only proxy to the dead one.
            preferred = None;
            match Box::pin(routing::route(snap, dag, out.mailbox.as_ref(), s, Some(m))).await {
                Ok(r) => {
                    held += r.held;
                    if let Some(p) = r.preferred {
                        preferred = Some(p);
                        selection.prefer(p);
                    }
                }
                Err(n) => {
                    if let Some(log) = out.log.as_mut() {
                        log.held_ms = (held + n.held).as_millis() as u64;
                    }
                    return Ok(local(
                        metrics,
                        out.log,
                        &svc.name,
                        "none",
                        respond::not_mounted(),
                    ));
                }
            }
        }
        if retry && selection.attempts() < MAX_TRIES {
            svc.retries.inc();
            continue;
        }
        if let Some(log) = out.log.as_mut() {
            log.retries = selection.attempts() as u32 - 1;
        }
        let name = &member.name;
        return Ok(local(
            metrics,
            out.log,
            &svc.name,
            name,
            failure_answer(&failure),
        ));
    }
    // Nobody left (every member refused or is down): 503; members that are
    // up but failed this request: 502.
    let resp = if selection.attempts() == 0 || !upstreams.any_eligible(s) {
        respond::no_member()
    } else {
        respond::plain(
            StatusCode::BAD_GATEWAY,
            "502 Bad Gateway: no server could answer\n",
        )
    };
    Ok(local(metrics, out.log, &svc.name, "none", resp))
}

/// One attempt on member `at.0` for service `at.1`, bounded by the
/// service's response timeout. A failure takes the member out where it
/// says something about the member (a refused connect: every service; a
/// member gone or silent: this service).
async fn attempt(
    snap: &Snapshot,
    svc: &ServiceRt,
    (m, s): (usize, usize),
    out: &Outgoing,
) -> Result<(Response<Incoming>, Driven<ReplayBody>), Failure> {
    let upstreams = &snap.upstreams;
    match tokio::time::timeout(svc.response_timeout, send_pooled(snap, m, out)).await {
        Ok(Ok(answered)) => Ok(answered),
        Ok(Err(e)) => {
            let failure = e.failure();
            let why = error_chain(&e);
            match failure {
                Failure::Connect => upstreams.eject_all(m, &why),
                Failure::Member | Failure::Unsent => upstreams.eject(m, s, &why),
                Failure::ClientBody | Failure::Timeout => {}
            }
            tracing::debug!(member = %upstreams.members()[m].name, service = %svc.name, "attempt failed: {why}");
            Err(failure)
        }
        Err(_) => {
            upstreams.eject(m, s, "no response within the service's response timeout");
            Err(Failure::Timeout)
        }
    }
}

/// Over the client connection's dedicated backend connection (NTLM and
/// Negotiate logins): made on the login's first leg, kept for the client
/// connection's life, never pooled, never retried elsewhere.
async fn forward_pinned(
    snap: &Snapshot,
    metrics: &Metrics,
    dag: &Dag,
    ctx: &ConnCtx,
    s: usize,
    out: Outgoing,
) -> Result<Response<ProxyBody>, ConnError> {
    let svc = &snap.http.services[s];
    let upstreams = &snap.upstreams;
    let mut slot = ctx.pinned().lock().await;
    if slot.as_ref().is_some_and(|p| p.sender.is_closed()) {
        *slot = None;
        return Err(ConnError::PinnedGone);
    }
    if slot.is_none() {
        let active = out
            .mailbox
            .as_ref()
            .and_then(|id| match dag.map().route(id.as_str()) {
                DagRoute::Active(server) => snap.upstreams.find(server),
                _ => None,
            });
        match pin_member(snap, ctx, s, &out.parts.headers, active).await {
            Some(pinned) => {
                *slot = Some(pinned);
                ctx.set_pinned(true);
            }
            None => {
                return Ok(local(
                    metrics,
                    out.log,
                    &svc.name,
                    "none",
                    respond::no_member(),
                ))
            }
        }
    }
    let Some(pinned) = slot.as_mut() else {
        return Err(ConnError::PinnedGone);
    };
    // The member may have left the config in a reload: the login is over.
    let Some(m) = upstreams
        .find(&pinned.member)
        .filter(|&m| upstreams.members()[m].address == pinned.address)
    else {
        *slot = None;
        return Err(ConnError::PinnedGone);
    };
    let member = &upstreams.members()[m];
    let guard = member.state.begin_request();
    let up = upstream_request(&out);
    let sent = async {
        pinned.sender.ready().await?;
        pinned.sender.send_request(up).await
    };
    match tokio::time::timeout(svc.response_timeout, sent).await {
        Ok(Ok(resp)) => {
            shield::observe(snap, ctx, &out.parts, &resp); // shield: failed logons
            drop(slot);
            Ok(answer(snap, (m, s), resp, (guard, None), 1, out))
        }
        Ok(Err(e)) => {
            let why = error_chain(&e);
            if !e.is_user() {
                upstreams.eject(m, s, &why);
            }
            *slot = None;
            tracing::info!(member = %member.name, "pinned backend connection failed, closing the client connection: {why}");
            Err(ConnError::PinnedGone)
        }
        Err(_) => {
            upstreams.eject(m, s, "no response within the service's response timeout");
            *slot = None;
            Err(ConnError::PinnedGone)
        }
    }
}

/// A dedicated connection to a member for a connection-bound login: the
/// member that challenged, else the service's usual choice; members that
/// refuse are taken out and the next is tried.
async fn pin_member(
    snap: &Snapshot,
    ctx: &ConnCtx,
    s: usize,
    headers: &http::HeaderMap,
    active: Option<usize>,
) -> Option<Pinned> {
    let upstreams = &snap.upstreams;
    let selection = upstreams.select(
        s,
        Keys {
            headers,
            client: ctx.peer.ip(),
            preferred: ctx
                .ntlm_member()
                .and_then(|name| upstreams.find(&name))
                .or(active),
        },
    );
    for m in selection {
        let member = &upstreams.members()[m];
        let sender = match upstreams.connect(member).await {
            Ok(sender) => sender,
            Err(e @ ConnectError::Handshake { .. }) => {
                upstreams.eject(m, s, &error_chain(&e));
                continue;
            }
            Err(e) => {
                upstreams.eject_all(m, &error_chain(&e));
                continue;
            }
        };
        return Some(Pinned {
            member: member.name.clone(),
            address: member.address,
            sender,
        });
    }
    None
}

/// The request as one attempt sends it (origin-form: the connection is
/// already the member's).
fn upstream_request(out: &Outgoing) -> Request<ReplayBody> {
    let mut up = Request::new(out.replay.attempt());
    *up.method_mut() = out.parts.method.clone();
    *up.uri_mut() = Uri::from(out.pq.clone());
    *up.version_mut() = Version::HTTP_11;
    // Cloned, not moved: a retry on another member needs them again.
    *up.headers_mut() = out.parts.headers.clone();
    up
}

/// Why an attempt on a member failed.
#[derive(Debug, thiserror::Error)]
enum SendError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("the new connection closed before the request was sent: {0}")]
    Unsent(hyper::Error),
    #[error(transparent)]
    Http(hyper::Error),
}

impl SendError {
    /// What the failure means for retries.
    fn failure(&self) -> Failure {
        let e = match self {
            SendError::Connect(_) => return Failure::Connect,
            SendError::Unsent(_) => return Failure::Unsent,
            SendError::Http(e) => e,
        };
        if e.is_user() {
            return Failure::ClientBody;
        }
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
        while let Some(err) = cur {
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
}

/// Sends the request to member `m` over a pooled connection, or a new one
/// when none is ready.
///
/// A pooled connection the member has closed hands the request back
/// unsent, and the next one is tried. One the member closed while the
/// request went out (its keep-alive ran out at that moment: the answer
/// never started) is not the member's failure either: the request goes
/// again, on the next connection, when its body can be sent again.
async fn send_pooled(
    snap: &Snapshot,
    m: usize,
    out: &Outgoing,
) -> Result<(Response<Incoming>, Driven<ReplayBody>), SendError> {
    let upstreams = &snap.upstreams;
    let mut req = upstream_request(out);
    // Bounded: other requests put connections back meanwhile.
    for _ in 0..MAX_POOLED_TRIES {
        let Some(mut conn) = upstreams.idle_connection(m) else {
            break;
        };
        match conn.send(req).await {
            Ok(resp) => return Ok((resp, conn)),
            Err(mut e) => match e.take_message() {
                Some(back) => req = back,
                None if closed_unanswered(e.error()) && out.replay.can_replay() => {
                    tracing::debug!("pooled connection closed under the request: {}", e.error());
                    req = upstream_request(out);
                }
                None => return Err(SendError::Http(e.into_error())),
            },
        }
    }
    // Boxed: a new connection (a connect and maybe a TLS handshake) is the
    // rare path; inline, its state would grow every request's future, and
    // every request pays to move that future (callgrind showed it).
    let mut conn = Box::pin(upstreams.connect_driven(&upstreams.members()[m])).await?;
    match conn.send(req).await {
        Ok(resp) => Ok((resp, conn)),
        Err(mut e) => Err(match e.take_message() {
            Some(_) => SendError::Unsent(e.into_error()),
            None => SendError::Http(e.into_error()),
        }),
    }
}

/// The answer says the mailbox is on another server than the one that
/// answered (`X-BEServer`, as Exchange and the mock servers send it).
fn names_another_server(headers: &http::HeaderMap, member: &str) -> bool {
    headers
        .get("x-beserver")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|be| {
            let be = be.split('.').next().unwrap_or(be);
            !be.eq_ignore_ascii_case(member)
        })
}

/// The connection ended before any byte of the answer: closed (FIN) or
/// reset, as a member's close meeting a request in flight ends it.
fn closed_unanswered(e: &hyper::Error) -> bool {
    if e.is_incomplete_message() || e.is_canceled() {
        return true;
    }
    let mut cur = std::error::Error::source(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            use std::io::ErrorKind::{
                BrokenPipe, ConnectionAborted, ConnectionReset, UnexpectedEof,
            };
            return matches!(
                io.kind(),
                ConnectionReset | BrokenPipe | ConnectionAborted | UnexpectedEof
            );
        }
        cur = err.source();
    }
    false
}

/// Counts, logs and converts the answer of member `at.0` for service `at.1`.
fn answer(
    snap: &Snapshot,
    at: (usize, usize),
    resp: Response<Incoming>,
    (guard, reuse): (InFlight, Option<Reuse>),
    attempts: usize,
    out: Outgoing,
) -> Response<ProxyBody> {
    let (m, s) = at;
    let svc = &snap.http.services[s];
    let member = &snap.upstreams.members()[m];
    member.service(s).requests.inc(resp.status());
    let member = &member.name;
    svc.duration.observe(out.started.elapsed().as_secs_f64());
    let mut log = out.log;
    if let Some(log) = log.as_mut() {
        log.service.clone_from(&svc.name);
        log.member.clone_from(member);
        log.status = resp.status().as_u16();
        log.retries = attempts as u32 - 1;
    }
    let tracking = Tracking {
        guard,
        reuse,
        log,
        eject: Ejector {
            upstreams: Arc::clone(&snap.upstreams),
            member: m,
            service: s,
        },
    };
    respond_from_member(snap, svc, resp, member, tracking)
}

fn failure_answer(failure: &Failure) -> Response<ProxyBody> {
    match failure {
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
    }
}

/// The answer of a member, made the array's own.
fn respond_from_member(
    snap: &Snapshot,
    svc: &ServiceRt,
    resp: Response<Incoming>,
    member: &str,
    tracking: Tracking,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let header_rewrites = rewrite::rewrite_response_headers(
        &mut parts.headers,
        &snap.http.plan,
        snap.cfg.rewrite.expose_server_headers,
        member,
    );
    if header_rewrites > 0 {
        svc.rewrites.inc_by(header_rewrites as u64);
    }
    shield::harden(snap, &mut parts.headers); // shield: HSTS, version headers
    let body = IdleTimeout::new(body, svc.idle_timeout);
    let body: ProxyBody = if svc.rewrite
        && !body.is_end_stream()
        && if svc.autodiscover {
            rewrite::should_rewrite_autodiscover_body(
                &parts.headers,
                &snap.cfg.rewrite.content_types,
            )
        } else {
            rewrite::should_rewrite_body(&parts.headers, &snap.cfg.rewrite.content_types)
        } {
        parts.headers.remove(header::CONTENT_LENGTH);
        let counter = Some(svc.rewrites.clone());
        let plan = Arc::clone(&snap.http.plan);
        let rewritten = if svc.autodiscover {
            rewrite::RewriteBody::autodiscover(body, plan, counter)
        } else {
            rewrite::RewriteBody::generic(body, plan, counter)
        };
        ProxyBody::rewritten(Guarded::new(rewritten, tracking))
    } else {
        ProxyBody::member(Guarded::new(body, tracking))
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
