//! A bounded look at the start of a request body, before it is forwarded:
//! for Autodiscover's and EWS's mailbox (`mailbox::from_body`). The frames
//! read are sent on first, then the rest of the body, streamed: the body is
//! never held whole.

use std::collections::VecDeque;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

/// Reads frames of `body` until `limit` bytes or its end, and returns the
/// bytes read (joined, for inspection) and a body that yields everything
/// again.
pub async fn peek<B>(mut body: B, limit: usize) -> Result<(Bytes, Prefixed<B>), B::Error>
where
    B: Body<Data = Bytes> + Unpin,
{
    let mut frames = VecDeque::new();
    let mut seen = BytesMut::new();
    while seen.len() < limit && !body.is_end_stream() {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let room = limit - seen.len();
                    seen.extend_from_slice(&data[..data.len().min(room)]);
                }
                frames.push_back(frame);
            }
            Some(Err(e)) => return Err(e),
            None => break,
        }
    }
    Ok((
        seen.freeze(),
        Prefixed {
            frames,
            inner: body,
        },
    ))
}

/// The frames peeked, then the rest of the body.
pub struct Prefixed<B> {
    frames: VecDeque<Frame<Bytes>>,
    inner: B,
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        if let Some(frame) = self.frames.pop_front() {
            return Poll::Ready(Some(Ok(frame)));
        }
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let queued: u64 = self
            .frames
            .iter()
            .filter_map(|f| f.data_ref())
            .map(|d| d.len() as u64)
            .sum();
        let inner = self.inner.size_hint();
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower() + queued);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + queued);
        }
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    fn chunks(
        parts: &[&'static str],
    ) -> impl Body<Data = Bytes, Error = std::convert::Infallible> + Unpin {
        let frames: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = parts
            .iter()
            .map(|p| Ok(Frame::data(Bytes::from_static(p.as_bytes()))))
            .collect();
        StreamBody::new(futures_util::stream::iter(frames))
    }

    #[tokio::test]
    async fn peeks_a_bounded_prefix_and_gives_everything_back() {
        let (seen, body) = peek(chunks(&["<a>", "bc", "def", "ghij"]), 6)
            .await
            .unwrap();
        assert_eq!(&seen[..], b"<a>bcd");
        let all = body.collect().await.unwrap().to_bytes();
        assert_eq!(&all[..], b"<a>bcdefghij");
        let (seen, body) = peek(chunks(&["xy"]), 100).await.unwrap();
        assert_eq!(&seen[..], b"xy");
        assert!(body.is_end_stream() || body.collect().await.unwrap().to_bytes() == "xy");
    }
}
