//! Request bodies that can be sent again to another member.
//!
//! A request that meets a dead member is sent again elsewhere only if the
//! whole body it had sent can be sent again. [`Replay`] keeps the frames it
//! hands out while their total stays within a limit (default 64 KiB); past
//! the limit it frees them and the request can no longer be replayed. A body
//! that was never polled (a connect failure) is always replayable, whatever
//! its size, and a request without a body costs nothing here.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::Bytes;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};

use crate::BoxError;

type Inner = Pin<Box<dyn Body<Data = Bytes, Error = BoxError> + Send>>;

struct State {
    inner: Inner,
    recorded: Vec<Bytes>,
    recorded_len: usize,
    limit: usize,
    /// More than `limit` bytes went out: replay is impossible.
    overflowed: bool,
    /// The inner body ended; `trailers` holds its trailers, if any.
    ended: bool,
    trailers: Option<HeaderMap>,
    /// Bumped by every new attempt; bodies of older attempts go stale.
    attempt: u32,
}

/// Shared by every attempt of one request.
#[derive(Clone)]
pub struct Replay {
    state: Option<Arc<Mutex<State>>>,
    hint: SizeHint,
}

impl Replay {
    /// Wraps a request body, keeping up to `limit` bytes for replays.
    pub fn new<B>(body: B, limit: usize) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let hint = body.size_hint();
        if body.is_end_stream() {
            return Replay { state: None, hint };
        }
        let inner: Inner = Box::pin(http_body_util::BodyExt::map_err(body, Into::into));
        Replay {
            state: Some(Arc::new(Mutex::new(State {
                inner,
                recorded: Vec::new(),
                recorded_len: 0,
                limit,
                overflowed: false,
                ended: false,
                trailers: None,
                attempt: 0,
            }))),
            hint,
        }
    }

    /// Whether every byte sent so far can be sent again.
    pub fn can_replay(&self) -> bool {
        match &self.state {
            None => true,
            Some(s) => !s.lock().unwrap_or_else(PoisonError::into_inner).overflowed,
        }
    }

    /// The body of a new attempt: the recorded frames, then the rest.
    pub fn attempt(&self) -> ReplayBody {
        let attempt = match &self.state {
            None => 0,
            Some(s) => {
                let mut st = s.lock().unwrap_or_else(PoisonError::into_inner);
                st.attempt = st.attempt.wrapping_add(1);
                st.attempt
            }
        };
        ReplayBody {
            state: self.state.clone(),
            attempt,
            pos: 0,
            hint: self.hint,
            done: self.state.is_none(),
        }
    }
}

/// The body of one attempt.
pub struct ReplayBody {
    state: Option<Arc<Mutex<State>>>,
    attempt: u32,
    pos: usize,
    hint: SizeHint,
    done: bool,
}

/// A body of an attempt that was superseded by a newer one was polled.
#[derive(Debug, thiserror::Error)]
#[error("request body taken over by a newer attempt")]
pub struct StaleAttempt;

impl Body for ReplayBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = &mut *self;
        let Some(state) = &this.state else {
            return Poll::Ready(None);
        };
        let mut st = state.lock().unwrap_or_else(PoisonError::into_inner);
        if st.attempt != this.attempt {
            return Poll::Ready(Some(Err(Box::new(StaleAttempt))));
        }
        if !st.overflowed && this.pos < st.recorded.len() {
            let frame = st.recorded[this.pos].clone();
            this.pos += 1;
            return Poll::Ready(Some(Ok(Frame::data(frame))));
        }
        if st.ended {
            this.done = true;
            return Poll::Ready(st.trailers.clone().map(|t| Ok(Frame::trailers(t))));
        }
        match st.inner.as_mut().poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                st.ended = true;
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(Some(Ok(frame))) => {
                let frame = match frame.into_data() {
                    Ok(data) => {
                        if !st.overflowed {
                            if st.recorded_len + data.len() <= st.limit {
                                st.recorded_len += data.len();
                                st.recorded.push(data.clone());
                                this.pos += 1;
                            } else {
                                st.overflowed = true;
                                st.recorded = Vec::new();
                            }
                        }
                        return Poll::Ready(Some(Ok(Frame::data(data))));
                    }
                    Err(frame) => frame,
                };
                if let Ok(trailers) = frame.into_trailers() {
                    st.ended = true;
                    st.trailers = Some(trailers.clone());
                    this.done = true;
                    return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
                }
                // Neither data nor trailers: nothing hyper would send.
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }

    fn size_hint(&self) -> SizeHint {
        self.hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full, StreamBody};

    async fn collect(b: ReplayBody) -> Vec<u8> {
        b.collect().await.unwrap().to_bytes().to_vec()
    }

    fn chunked(chunks: &[&'static [u8]]) -> impl Body<Data = Bytes, Error = BoxError> + Send {
        let frames: Vec<Result<Frame<Bytes>, BoxError>> = chunks
            .iter()
            .map(|c| Ok(Frame::data(Bytes::from_static(c))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn empty_body_is_free_and_replayable() {
        let r = Replay::new(Full::new(Bytes::new()), 10);
        assert!(r.state.is_none());
        assert!(r.attempt().is_end_stream());
        assert!(r.can_replay());
    }

    #[tokio::test]
    async fn small_body_replays_whole_after_a_partial_attempt() {
        let r = Replay::new(chunked(&[b"ab", b"cd", b"ef"]), 100);
        let mut first = r.attempt();
        let f = first.frame().await.unwrap().unwrap();
        assert_eq!(f.into_data().unwrap(), "ab");
        assert!(r.can_replay());
        let second = r.attempt();
        // The first attempt is stale now.
        assert!(first.frame().await.unwrap().is_err());
        assert_eq!(collect(second).await, b"abcdef");
        // And a third still sees everything.
        assert_eq!(collect(r.attempt()).await, b"abcdef");
    }

    #[tokio::test]
    async fn large_body_is_not_replayable_once_it_flowed() {
        let r = Replay::new(chunked(&[b"0123456789", b"0123456789"]), 15);
        assert!(r.can_replay());
        let all = collect(r.attempt()).await;
        assert_eq!(all.len(), 20);
        assert!(!r.can_replay());
    }

    #[tokio::test]
    async fn untouched_large_body_stays_replayable() {
        let r = Replay::new(chunked(&[b"0123456789", b"0123456789"]), 5);
        let _never_polled = r.attempt();
        assert!(r.can_replay());
        assert_eq!(collect(r.attempt()).await.len(), 20);
    }
}
