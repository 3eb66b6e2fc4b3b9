//! A body that fails when no frame arrives for too long.
//!
//! Outlook Anywhere keeps one request body open for hours, so a body may not
//! have a total deadline; what it must not do is go quiet. The timer is
//! armed only while the reader waits, and re-armed after each frame.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use crate::BoxError;

/// The error a body gives when it was quiet for longer than its idle timeout.
#[derive(Debug, thiserror::Error)]
#[error("body idle for longer than {0:?}")]
pub struct IdleTimeoutError(pub Duration);

pin_project! {
    /// `inner`, failing with [`IdleTimeoutError`] after `idle` without a frame.
    pub struct IdleTimeout<B> {
        #[pin]
        inner: B,
        idle: Duration,
        sleep: Option<Pin<Box<Sleep>>>,
    }
}

impl<B> IdleTimeout<B> {
    pub fn new(inner: B, idle: Duration) -> Self {
        IdleTimeout {
            inner,
            idle,
            sleep: None,
        }
    }
}

impl<B> Body for IdleTimeout<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(frame) => {
                if let Some(sleep) = this.sleep.as_mut() {
                    sleep.as_mut().reset(Instant::now() + *this.idle);
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                let idle = *this.idle;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(IdleTimeoutError(idle))))),
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

use std::future::Future as _;

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, StreamBody};

    #[tokio::test(start_paused = true)]
    async fn quiet_body_times_out() {
        let (_tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        let mut body = IdleTimeout::new(StreamBody::new(Box::pin(stream)), Duration::from_secs(5));
        let err = body.frame().await.unwrap().unwrap_err();
        assert!(err.to_string().contains("idle"), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn frames_rearm_the_timer() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, BoxError>>(1);
        let stream =
            futures_util::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|f| (f, rx)) },
            );
        let mut body = IdleTimeout::new(StreamBody::new(Box::pin(stream)), Duration::from_secs(5));
        tokio::spawn(async move {
            for _ in 0..5 {
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = tx.send(Ok(Frame::data(Bytes::from_static(b"x")))).await;
            }
        });
        let mut n = 0;
        while let Some(f) = body.frame().await {
            f.unwrap();
            n += 1;
        }
        assert_eq!(n, 5);
    }
}
