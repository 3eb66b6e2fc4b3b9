//! The body types of the forwarding path.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;
use hyper::body::Incoming;
use pin_project_lite::pin_project;

use super::access::AccessRecord;
use super::idle::IdleTimeout;
use crate::rewrite::RewriteBody;
use crate::upstream::pool::MemberConn;
use crate::upstream::replay::ReplayBody;
use crate::upstream::state::InFlight;
use crate::upstream::Upstreams;
use crate::BoxError;

/// A member's answer body as it arrives.
type MemberBody = IdleTimeout<Incoming>;

pin_project! {
    /// What the array answers with: one of three known shapes, so that no
    /// answer needs a boxed body (an allocation and dynamic calls per
    /// answer).
    #[project = ProxyBodyProj]
    pub enum ProxyBody {
        /// An answer the array makes itself.
        Local { #[pin] body: Full<Bytes> },
        /// A member's body, passed through.
        Member { #[pin] body: Guarded<MemberBody> },
        /// A member's body with member names rewritten.
        Rewritten { #[pin] body: Guarded<RewriteBody<MemberBody>> },
    }
}

impl ProxyBody {
    pub fn member(body: Guarded<MemberBody>) -> Self {
        ProxyBody::Member { body }
    }

    pub fn rewritten(body: Guarded<RewriteBody<MemberBody>>) -> Self {
        ProxyBody::Rewritten { body }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.project() {
            ProxyBodyProj::Local { body } => body.poll_frame(cx).map_err(|never| match never {}),
            ProxyBodyProj::Member { body } => body.poll_frame(cx),
            ProxyBodyProj::Rewritten { body } => body.poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Local { body } => body.is_end_stream(),
            ProxyBody::Member { body } => body.is_end_stream(),
            ProxyBody::Rewritten { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Local { body } => body.size_hint(),
            ProxyBody::Member { body } => body.size_hint(),
            ProxyBody::Rewritten { body } => body.size_hint(),
        }
    }
}

/// A whole body the array makes itself.
pub fn full(text: impl Into<Bytes>) -> ProxyBody {
    ProxyBody::Local {
        body: Full::new(text.into()),
    }
}

/// Takes a member out of a service when its answer's body fails midway
/// (the member closed, reset or went quiet): the next clients must not meet
/// it before a probe says it is back.
pub struct Ejector {
    pub upstreams: Arc<Upstreams>,
    pub member: usize,
    pub service: usize,
}

/// A pooled member connection, put back when the answer's body has ended.
pub type Reuse = MemberConn<ReplayBody>;

/// What a response body carries until it ends.
pub struct Tracking {
    pub guard: InFlight,
    /// `None` for dedicated (NTLM) connections: they are never pooled.
    pub reuse: Option<Reuse>,
    pub log: Option<Box<AccessRecord>>,
    pub eject: Ejector,
}

pin_project! {
    /// A response body that counts as in flight on its member until it ends
    /// or the client goes away, writes the access log line then, and ejects
    /// the member if the body fails.
    pub struct Guarded<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
        reuse: Option<Reuse>,
        log: Option<Box<AccessRecord>>,
        eject: Option<Ejector>,
    }

    // A body dropped before its end (the client went away) still holds
    // `reuse`: its connection is mid-answer and is dropped with it.
    impl<B> PinnedDrop for Guarded<B> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if let Some(log) = this.log.take() {
                log.emit();
            }
        }
    }
}

impl<B: Body> Guarded<B> {
    pub fn new(inner: B, tracking: Tracking) -> Self {
        let mut reuse = tracking.reuse;
        if inner.is_end_stream() {
            // No body (HEAD, 204, 304): the connection is free already.
            if let Some(reuse) = reuse.take() {
                reuse.put_back();
            }
        }
        Guarded {
            inner,
            guard: Some(tracking.guard),
            reuse,
            log: tracking.log,
            eject: Some(tracking.eject),
        }
    }
}

impl<B> Body for Guarded<B>
where
    B: Body<Data = Bytes>,
    B::Error: std::fmt::Display,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        // The member connection's reading (and any request body still going
        // out) happens here, in the client connection's task.
        if let Some(reuse) = this.reuse.as_mut() {
            let _ = reuse.poll_drive(cx);
        }
        let polled = this.inner.as_mut().poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(log), Some(data)) = (this.log.as_mut(), frame.data_ref()) {
                    log.bytes_out += data.len() as u64;
                }
                // The server drops a body that says it has ended without
                // polling it to `None`: the connection goes back now.
                if this.inner.is_end_stream() {
                    if let Some(reuse) = this.reuse.take() {
                        reuse.put_back();
                    }
                }
            }
            Poll::Ready(Some(Err(e))) => {
                this.reuse.take();
                if let Some(ej) = this.eject.take() {
                    ej.upstreams
                        .eject(ej.member, ej.service, &format!("answer body failed: {e}"));
                }
                this.guard.take();
                if let Some(log) = this.log.take() {
                    log.emit();
                }
            }
            Poll::Ready(None) => {
                if let Some(reuse) = this.reuse.take() {
                    reuse.put_back();
                }
                this.guard.take();
                if let Some(log) = this.log.take() {
                    log.emit();
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// A request body that adds the bytes it yields to a shared counter
    /// (for the access log).
    pub struct Counted<B> {
        #[pin]
        inner: B,
        count: Arc<AtomicU64>,
    }
}

impl<B> Counted<B> {
    pub fn new(inner: B, count: Arc<AtomicU64>) -> Self {
        Counted { inner, count }
    }
}

impl<B: Body<Data = Bytes>> Body for Counted<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.count.fetch_add(data.len() as u64, Ordering::Relaxed);
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
