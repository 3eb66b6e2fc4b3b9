//! A response body rewritten on its way through, frame by frame.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use prometheus::IntCounter;

use super::autodiscover::AutodiscoverRewriter;
use super::plan::RewritePlan;
use super::stream::StreamRewriter;

/// Frames taken from the inner body in one poll without producing output
/// before yielding to the scheduler.
const FRAMES_PER_POLL: usize = 16;

/// Which rewrite a body gets.
#[derive(Debug)]
pub enum BodyRewriter {
    /// Member names to the public name.
    Generic(StreamRewriter),
    /// The Autodiscover rules (EXCH `<Server>`, `<ServerDN>`), generic
    /// elsewhere.
    Autodiscover(AutodiscoverRewriter),
}

impl BodyRewriter {
    /// Rewrites the next chunk into `out`; returns the replacements made.
    pub fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> usize {
        match self {
            Self::Generic(r) => r.feed(chunk, out),
            Self::Autodiscover(r) => r.feed(chunk, out),
        }
    }

    /// Writes what was held back; returns the replacements made.
    pub fn finish(&mut self, out: &mut BytesMut) -> usize {
        match self {
            Self::Generic(r) => r.finish(out),
            Self::Autodiscover(r) => r.finish(out),
        }
    }
}

#[derive(Debug)]
enum State {
    Streaming,
    /// The inner body ended with trailers, still to be sent.
    Trailers(HeaderMap),
    Done,
}

pin_project! {
    /// A body whose data is rewritten as it streams. Trailers pass through;
    /// the size is unknown (drop `Content-Length` from the head); errors of
    /// the inner body pass through unchanged.
    #[derive(Debug)]
    pub struct RewriteBody<B> {
        #[pin]
        inner: B,
        rewriter: BodyRewriter,
        counter: Option<IntCounter>,
        out: BytesMut,
        state: State,
    }
}

impl<B> RewriteBody<B> {
    /// Wraps `inner`; replacements are added to `counter` when given.
    pub fn new(inner: B, rewriter: BodyRewriter, counter: Option<IntCounter>) -> Self {
        Self {
            inner,
            rewriter,
            counter,
            out: BytesMut::new(),
            state: State::Streaming,
        }
    }

    /// Member names to the public name.
    pub fn generic(inner: B, plan: Arc<RewritePlan>, counter: Option<IntCounter>) -> Self {
        Self::new(
            inner,
            BodyRewriter::Generic(plan.stream_rewriter()),
            counter,
        )
    }

    /// The Autodiscover rules.
    pub fn autodiscover(inner: B, plan: Arc<RewritePlan>, counter: Option<IntCounter>) -> Self {
        Self::new(
            inner,
            BodyRewriter::Autodiscover(AutodiscoverRewriter::new(plan)),
            counter,
        )
    }
}

fn count(counter: Option<&IntCounter>, replaced: usize) {
    if let (Some(c), true) = (counter, replaced > 0) {
        c.inc_by(u64::try_from(replaced).unwrap_or(u64::MAX));
    }
}

impl<B> Body for RewriteBody<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        for _ in 0..FRAMES_PER_POLL {
            match std::mem::replace(this.state, State::Done) {
                State::Done => return Poll::Ready(None),
                State::Trailers(t) => return Poll::Ready(Some(Ok(Frame::trailers(t)))),
                State::Streaming => *this.state = State::Streaming,
            }
            let frame = match ready!(this.inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => frame,
                Some(Err(e)) => return Poll::Ready(Some(Err(e))),
                None => {
                    let n = this.rewriter.finish(this.out);
                    count(this.counter.as_ref(), n);
                    *this.state = State::Done;
                    if this.out.is_empty() {
                        return Poll::Ready(None);
                    }
                    return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
                }
            };
            match frame.into_data() {
                Ok(data) => {
                    let n = this.rewriter.feed(&data, this.out);
                    count(this.counter.as_ref(), n);
                }
                Err(frame) => {
                    // Trailers end the data; any other kind of frame is
                    // dropped.
                    if let Ok(trailers) = frame.into_trailers() {
                        let n = this.rewriter.finish(this.out);
                        count(this.counter.as_ref(), n);
                        *this.state = State::Trailers(trailers);
                    }
                }
            }
            if !this.out.is_empty() {
                return Poll::Ready(Some(Ok(Frame::data(this.out.split().freeze()))));
            }
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::plan::tests::lab_plan;
    use http_body_util::{BodyExt, StreamBody};
    use std::convert::Infallible;

    type Frames = Vec<Result<Frame<Bytes>, Infallible>>;

    fn frames(
        chunks: &[&'static str],
        trailers: bool,
    ) -> StreamBody<futures_util::stream::Iter<<Frames as IntoIterator>::IntoIter>> {
        let mut v: Frames = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c.as_bytes()))))
            .collect();
        if trailers {
            let mut t = HeaderMap::new();
            t.insert("x-check", "1".parse().unwrap());
            v.push(Ok(Frame::trailers(t)));
        }
        StreamBody::new(futures_util::stream::iter(v))
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn data_is_rewritten_across_frames_and_counted() {
        let counter = IntCounter::new("t", "t").unwrap();
        let body = RewriteBody::generic(
            frames(
                &["<a href=\"https://ex", "1.lab.lo", "cal/owa\">EX1</a>"],
                false,
            ),
            Arc::new(lab_plan()),
            Some(counter.clone()),
        );
        assert_eq!(body.size_hint().exact(), None);
        let collected = block_on(body.collect()).unwrap();
        assert_eq!(
            collected.to_bytes(),
            "<a href=\"https://mail.lab.com/owa\">mail.lab.com</a>"
        );
        assert_eq!(counter.get(), 2);
    }

    #[test]
    fn trailers_pass_through_after_the_held_back_data() {
        let body = RewriteBody::autodiscover(
            frames(&["<Protocol><Type>WEB</Type>", "<Url>EX1</Url>"], true),
            Arc::new(lab_plan()),
            None,
        );
        let collected = block_on(body.collect()).unwrap();
        assert_eq!(
            collected
                .trailers()
                .and_then(|t| t.get("x-check"))
                .map(|v| v.as_bytes()),
            Some(&b"1"[..])
        );
        assert_eq!(
            collected.to_bytes(),
            "<Protocol><Type>WEB</Type><Url>mail.lab.com</Url>"
        );
    }

    #[test]
    fn empty_body_ends() {
        let mut body = RewriteBody::generic(frames(&[], false), Arc::new(lab_plan()), None);
        assert!(!body.is_end_stream());
        let frame = block_on(body.frame());
        assert!(frame.is_none());
        assert!(body.is_end_stream());
    }

    #[test]
    fn many_empty_frames_yield_without_looping_forever() {
        let chunks: Vec<&'static str> = vec![""; 100];
        let body = RewriteBody::generic(frames(&chunks, false), Arc::new(lab_plan()), None);
        let collected = block_on(body.collect()).unwrap();
        assert!(collected.to_bytes().is_empty());
    }
}
