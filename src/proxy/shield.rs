//! Glue between the forwarding path and `crate::security` (issue 18): the
//! only place `forward.rs` reaches the shields, allow_from and lockout.
//! `forward.rs` calls:
//!
//! - [`check`] in `handle()`, once the route is known and before a member
//!   is chosen: the request goes on (its body type becomes [`ShieldBody`])
//!   or the array answers it itself, 403 or 429, and no member is
//!   contacted. The access log line names the rule.
//! - [`observe`] where a member's answer comes back (pooled and pinned):
//!   failed and successful logons for the lockout.
//! - [`harden`] on every member answer head: HSTS, version headers.
//!
//! OWA's forms logon (`POST /owa/auth.owa`) is the one request whose body
//! is looked at: the user name is in the form, not in a header. [`check`]
//! reads the start of that body only (at most [`OWA_FORM_PEEK`] bytes and
//! one more frame, within `proxy.header_read_timeout`), takes `username`
//! from it, and hands the member the bytes read followed by the rest of
//! the body, unchanged. No other body is touched. The user name is not
//! taken from the failure redirect: Exchange's (and the mock's) redirect
//! back to the logon page does not carry it.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use http::request::Parts;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;

use super::access::AccessRecord;
use super::body::ProxyBody;
use super::conn::ConnCtx;
use super::respond;
use super::BoxError;
use crate::security::{credentials, OwaLogon, Scope, Verdict};
use crate::snapshot::Snapshot;

/// Most of an OWA logon form read before it is forwarded: 8 KiB (the form
/// is a few hundred bytes).
pub const OWA_FORM_PEEK: usize = 8 * 1024;

/// The request body after [`check`]: the client's, with the part of an OWA
/// logon form already read in front.
pub type ShieldBody = Peeked<Incoming>;

/// Checks a request of service `s` (see the module documentation); `Err`
/// is the array's own answer.
pub async fn check(
    snap: &Snapshot,
    ctx: &ConnCtx,
    s: usize,
    req: Request<Incoming>,
    log: &mut Option<Box<AccessRecord>>,
) -> Result<Request<ShieldBody>, Response<ProxyBody>> {
    let (mut parts, body) = req.into_parts();
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let inspection = snap.http.shields.inspect(
        s,
        ctx.peer.ip(),
        &parts.method,
        target.as_bytes(),
        &mut parts.headers,
    );
    if let Some(resp) = refusal(inspection.verdict, log) {
        return Err(resp);
    }
    if !inspection.owa_logon {
        return Ok(Request::from_parts(parts, Peeked::new(body)));
    }
    // Boxed: an OWA logon is rare, and inline its peek would grow (and
    // every request would move) the request's future.
    let (form, body) = Box::pin(peek(
        body,
        OWA_FORM_PEEK,
        snap.cfg.proxy.header_read_timeout,
    ))
    .await;
    let user = credentials::owa_form_user(&form);
    let locked = user
        .as_ref()
        .and_then(|u| snap.http.shields.owa_user_locked(ctx.peer.ip(), u));
    if let Some(resp) = locked.and_then(|v| refusal(v, log)) {
        return Err(resp);
    }
    parts.extensions.insert(OwaLogon { user });
    Ok(Request::from_parts(parts, body))
}

/// The array's answer to a refused request, with the access log's rule.
fn refusal(verdict: Verdict, log: &mut Option<Box<AccessRecord>>) -> Option<Response<ProxyBody>> {
    let (rule, resp) = match verdict {
        Verdict::Pass => return None,
        Verdict::Blocked(rule) if rule == crate::security::ALLOW_FROM => (
            rule,
            respond::plain(
                StatusCode::FORBIDDEN,
                "403 Forbidden: this service is not open to your address\n",
            ),
        ),
        Verdict::Blocked(rule) => (
            rule,
            respond::plain(
                StatusCode::FORBIDDEN,
                "403 Forbidden: refused by the array's Exchange shields\n",
            ),
        ),
        Verdict::Locked { scope, retry_after } => {
            let mut resp = respond::plain(
                StatusCode::TOO_MANY_REQUESTS,
                "429 Too Many Requests: too many failed logons, try again later\n",
            );
            resp.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
            let rule = match scope {
                Scope::Address => "lockout-address",
                Scope::User => "lockout-user",
            };
            (rule, resp)
        }
    };
    if let Some(log) = log.as_mut() {
        log.rule = Some(rule);
    }
    Some(resp)
}

/// Watches a member's answer `resp` to the request `parts` for logons.
pub fn observe<B>(snap: &Snapshot, ctx: &ConnCtx, parts: &Parts, resp: &Response<B>) {
    snap.http.shields.observe(
        ctx.peer.ip(),
        &parts.headers,
        parts.extensions.get::<OwaLogon>(),
        resp.status(),
        resp.headers(),
    );
}

/// Response hardening of a member's answer head.
pub fn harden(snap: &Snapshot, headers: &mut HeaderMap) {
    snap.http.shields.harden(headers);
}

/// Reads `body` until `limit` bytes, its end or `time`; returns what was
/// read and a body that gives it again, then the rest.
async fn peek<B>(mut body: B, limit: usize, time: Duration) -> (Bytes, Peeked<B>)
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut read = BytesMut::new();
    let mut trailers = None;
    let mut error = None;
    let mut ended = body.is_end_stream();
    let reading = async {
        while !ended && read.len() < limit {
            match body.frame().await {
                None => ended = true,
                Some(Err(e)) => {
                    error = Some(e.into());
                    ended = true;
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => read.extend_from_slice(&data),
                    Err(frame) => {
                        trailers = frame.into_trailers().ok();
                        ended = true;
                    }
                },
            }
        }
    };
    // Out of time: what has come so far is forwarded, the rest follows.
    let _ = tokio::time::timeout(time, reading).await;
    let read = read.freeze();
    let peeked = Peeked {
        prefix: (!read.is_empty()).then(|| read.clone()),
        trailers,
        error,
        rest: (!ended).then_some(body),
    };
    (read, peeked)
}

/// A body whose first bytes (and possibly its end) were read already.
pub struct Peeked<B> {
    prefix: Option<Bytes>,
    trailers: Option<HeaderMap>,
    error: Option<BoxError>,
    /// `None` once the inner body has ended.
    rest: Option<B>,
}

impl<B> Peeked<B> {
    /// `body`, nothing read.
    pub fn new(body: B) -> Self {
        Peeked {
            prefix: None,
            trailers: None,
            error: None,
            rest: Some(body),
        }
    }
}

impl<B> Body for Peeked<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        if let Some(prefix) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(prefix))));
        }
        if let Some(e) = this.error.take() {
            return Poll::Ready(Some(Err(e)));
        }
        if let Some(t) = this.trailers.take() {
            return Poll::Ready(Some(Ok(Frame::trailers(t))));
        }
        let Some(rest) = this.rest.as_mut() else {
            return Poll::Ready(None);
        };
        match Pin::new(rest).poll_frame(cx) {
            Poll::Ready(None) => {
                this.rest = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(r)) => Poll::Ready(Some(r.map_err(Into::into))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none()
            && self.error.is_none()
            && self.trailers.is_none()
            && self.rest.as_ref().is_none_or(Body::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let rest = self
            .rest
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), Body::size_hint);
        let mut hint = SizeHint::new();
        if let Some(upper) = rest.upper() {
            hint.set_upper(upper.saturating_add(prefix));
        }
        hint.set_lower(rest.lower().saturating_add(prefix));
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{Full, StreamBody};

    type Chunks = StreamBody<
        futures_util::stream::Iter<
            std::vec::IntoIter<Result<Frame<Bytes>, std::convert::Infallible>>,
        >,
    >;

    fn chunks(parts: &[&'static str]) -> Chunks {
        let frames: Vec<_> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    async fn all<B>(b: B) -> Vec<u8>
    where
        B: Body<Data = Bytes>,
        B::Error: std::fmt::Debug,
    {
        b.collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn a_peeked_body_gives_every_byte_once() {
        let (read, body) = peek(
            chunks(&["user", "name=al", "ice&pass", "word=x"]),
            8,
            Duration::from_secs(5),
        )
        .await;
        assert_eq!(&read[..], b"username=al", "stops once past the limit");
        assert_eq!(all(body).await, b"username=alice&password=x");

        let (read, body) = peek(chunks(&["a=1", "&b=2"]), 1000, Duration::from_secs(5)).await;
        assert_eq!(&read[..], b"a=1&b=2");
        assert!(body.rest.is_none(), "read to the end");
        assert_eq!(body.size_hint().exact(), Some(7));
        assert_eq!(all(body).await, b"a=1&b=2");

        let (read, body) = peek(Full::new(Bytes::new()), 1000, Duration::from_secs(5)).await;
        assert!(read.is_empty());
        assert!(body.is_end_stream());

        let plain = Peeked::new(Full::new(Bytes::from_static(b"xyz")));
        assert_eq!(plain.size_hint().exact(), Some(3));
        assert_eq!(all(plain).await, b"xyz");
    }
}
