//! The body types of the forwarding path.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use pin_project_lite::pin_project;

use crate::upstream::member::InFlight;

/// Errors of bodies, boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the array answers with.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// A whole body the array makes itself.
pub fn full(text: impl Into<Bytes>) -> ProxyBody {
    Full::new(text.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pin_project! {
    /// A response body that counts as in flight on its member until it ends
    /// or the client goes away.
    pub struct Guarded<B> {
        #[pin]
        inner: B,
        guard: Option<InFlight>,
    }
}

impl<B> Guarded<B> {
    pub fn new(inner: B, guard: InFlight) -> Self {
        Guarded {
            inner,
            guard: Some(guard),
        }
    }
}

impl<B: Body> Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let Poll::Ready(None) | Poll::Ready(Some(Err(_))) = polled {
            this.guard.take();
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
