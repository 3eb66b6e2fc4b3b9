//! A member HTTP/1.1 connection driven by the task that uses it.
//!
//! hyper's client splits a connection in two: the [`SendRequest`] half the
//! request goes into, and the [`Connection`] future that does the reading
//! and writing. The usual way spawns that future as a task of its own, so a
//! request costs task switches both ways (the request handed to the
//! connection's task, the answer's head and every body frame handed back).
//! Here the request's own task polls the connection: while it waits for the
//! answer's head ([`Driven::send`]) and while the answer's body streams
//! (the body polls [`Driven::poll_drive`] before each frame), so the whole
//! exchange runs in the client connection's task. Between requests the
//! connection sits in its member's pool, polled by nobody: a look without
//! waiting ([`Driven::refresh`]) before it is reused or kept tells whether
//! the member closed it meanwhile.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http::{Request, Response};
use http_body::Body;
use hyper::body::Incoming;
use hyper::client::conn::http1::{Connection, SendRequest};
use hyper::client::conn::TrySendError;
use hyper_util::rt::TokioIo;

use super::dial::MemberStream;
use crate::BoxError;

/// The reading and writing half of a member connection.
type Conn<B> = Pin<Box<Connection<TokioIo<MemberStream>, B>>>;

/// A member connection: both halves, owned together.
pub struct Driven<B>
where
    B: Body + 'static,
{
    sender: SendRequest<B>,
    /// `None` once the connection has ended (closed, reset, failed).
    conn: Option<Conn<B>>,
}

impl<B> Driven<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    pub fn new(sender: SendRequest<B>, conn: Connection<TokioIo<MemberStream>, B>) -> Self {
        Driven {
            sender,
            conn: Some(Box::pin(conn)),
        }
    }

    /// Reads and writes what the connection can now; `Ready` once it has
    /// ended (the member closed it, or it failed). Wakes the caller when
    /// there is more to do.
    pub fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Some(conn) = self.conn.as_mut() else {
            return Poll::Ready(());
        };
        match conn.as_mut().poll(cx) {
            Poll::Ready(result) => {
                if let Err(e) = result {
                    tracing::debug!("member connection ended: {e}");
                }
                self.conn = None;
                Poll::Ready(())
            }
            Poll::Pending => Poll::Pending,
        }
    }

    /// A look without waiting: lets the connection notice what happened
    /// while nobody polled it (the member's close). False once it has
    /// ended.
    pub fn refresh(&mut self) -> bool {
        let mut cx = Context::from_waker(Waker::noop());
        self.poll_drive(&mut cx).is_pending()
    }

    /// Ready for a new request.
    pub fn is_ready(&self) -> bool {
        self.conn.is_some() && self.sender.is_ready()
    }

    /// Sends `req` and waits for the answer's head, driving the connection
    /// meanwhile. A request the connection could not take comes back in
    /// the error ([`TrySendError::take_message`]).
    pub async fn send(
        &mut self,
        req: Request<B>,
    ) -> Result<Response<Incoming>, TrySendError<Request<B>>> {
        let Driven { sender, conn } = self;
        let answer = sender.try_send_request(req);
        let mut answer = std::pin::pin!(answer);
        std::future::poll_fn(|cx| {
            if let Some(c) = conn.as_mut() {
                if let Poll::Ready(result) = c.as_mut().poll(cx) {
                    if let Err(e) = result {
                        tracing::debug!("member connection ended under a request: {e}");
                    }
                    // Dropped now: the request waiting in it is given back
                    // with an error rather than left waiting.
                    *conn = None;
                }
            }
            answer.as_mut().poll(cx)
        })
        .await
    }

    /// Lets the connection finish on its own (a request body still going
    /// out when the answer has ended): a task drives it to its end.
    pub fn detach(self) {
        if let Some(conn) = self.conn {
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                runtime.spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!("member connection ended: {e}");
                    }
                });
            }
        }
    }
}
