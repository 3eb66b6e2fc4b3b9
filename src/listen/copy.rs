//! Bytes both ways between a client and a member, for L4 listeners, with an
//! idle timeout: a session quiet in both directions for that long is
//! closed. Half-closes pass through (tokio's `copy_bidirectional`).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Copies until both sides are done, an error, or `idle` without a byte
/// either way. Returns the bytes (client to member, member to client).
pub async fn copy_with_idle<A, B>(a: &mut A, b: &mut B, idle: Duration) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin,
    B: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut a = Touching {
        inner: a,
        last: Arc::clone(&last),
        start,
    };
    let mut b = Touching {
        inner: b,
        last: Arc::clone(&last),
        start,
    };
    let copy = tokio::io::copy_bidirectional(&mut a, &mut b);
    tokio::pin!(copy);
    loop {
        let since = Duration::from_millis(last.load(Ordering::Relaxed));
        let deadline = start + since + idle;
        tokio::select! {
            done = &mut copy => return done,
            () = tokio::time::sleep_until(deadline) => {
                let now_ms = start.elapsed().as_millis() as u64;
                if now_ms.saturating_sub(last.load(Ordering::Relaxed)) >= idle.as_millis() as u64 {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, format!("idle for {idle:?}")));
                }
            }
        }
    }
}

/// A stream that notes when bytes last came out of it.
struct Touching<'a, S> {
    inner: &'a mut S,
    /// Milliseconds since `start` of the last read.
    last: Arc<AtomicU64>,
    start: Instant,
}

impl<S: AsyncRead + Unpin> AsyncRead for Touching<'_, S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut *self.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            let ms = self.start.elapsed().as_millis() as u64;
            self.last.store(ms, Ordering::Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Touching<'_, S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn copies_both_ways_and_stops_when_idle() {
        let (mut client, mut a) = tokio::io::duplex(64);
        let (mut b, mut member) = tokio::io::duplex(64);
        let copy = tokio::spawn(async move {
            copy_with_idle(&mut a, &mut b, Duration::from_millis(300)).await
        });
        client.write_all(b"EHLO x\r\n").await.unwrap();
        let mut got = [0u8; 8];
        member.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"EHLO x\r\n");
        member.write_all(b"250 ok\r\n").await.unwrap();
        client.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"250 ok\r\n");
        // Quiet both ways: the copy ends with a timeout.
        let started = std::time::Instant::now();
        let e = copy.await.unwrap().unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(250));
    }
}
