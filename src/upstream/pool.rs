//! Keep-alive HTTP/1.1 connections to one member, ready for the next request.
//!
//! The forwarding path takes a connection out ([`Pool::checkout`]), sends
//! one request on it, and puts it back when the answer's body has ended
//! ([`Pool::checkin`]). Connections are reused most recently used first, so
//! that after a burst the extra ones sit at the bottom and expire.
//!
//! A connection is never reused after `pool_idle_timeout` of idleness
//! (default 50 s, under IIS's 120 s keep-alive): a request then never meets
//! a connection the member is closing. Should it anyway, hyper hands the
//! request back unsent and the caller sends it on a fresh connection.
//!
//! Why not hyper-util's pooled client: it adds a pool-wide lock with hash
//! maps, a boxed future, three extension inserts and, for every HTTP/1
//! request, a task that waits for the connection to be ready again. Here a
//! pool is one member's, its lock is held for one push or pop (never across
//! an await), and a connection is put back at once when it is ready, which
//! it is by the time the answer's body has ended.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::Body;

use super::driven::Driven;
use crate::BoxError;

/// A member connection taken out of its pool (or new) for one request;
/// [`MemberConn::put_back`] returns it once the answer's body has ended.
/// Dropped instead, the connection closes (an answer cut short). While the
/// answer streams, its body drives the connection ([`MemberConn::poll_drive`]).
pub struct MemberConn<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    conn: Driven<B>,
    home: Arc<Pool<B>>,
    /// `proxy.pool_max_idle_per_member`.
    max_idle: usize,
}

impl<B> MemberConn<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    pub(super) fn new(conn: Driven<B>, home: Arc<Pool<B>>, max_idle: usize) -> Self {
        MemberConn {
            conn,
            home,
            max_idle,
        }
    }

    /// Drives the connection (see [`Driven::poll_drive`]).
    pub fn poll_drive(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.conn.poll_drive(cx)
    }

    /// Back to the member's pool, for the next request.
    pub fn put_back(self) {
        self.home.checkin(self.conn, self.max_idle);
    }
}

/// An idle connection and since when it has been idle.
struct Idle<B>
where
    B: Body + 'static,
{
    conn: Driven<B>,
    since: Instant,
}

/// The idle connections to one member.
pub struct Pool<B>
where
    B: Body + 'static,
{
    /// Oldest at the front, most recently used at the back.
    idle: Mutex<VecDeque<Idle<B>>>,
}

impl<B: Body + 'static> std::fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl<B: Body + 'static> Default for Pool<B> {
    fn default() -> Self {
        Pool {
            idle: Mutex::new(VecDeque::new()),
        }
    }
}

impl<B: Body + 'static> Pool<B> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Idle connections held now.
    pub fn idle_count(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Idle<B>>> {
        // Nothing is left half-done under this lock: a poisoned one is fine.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<B> Pool<B>
where
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    /// The most recently used connection that is ready and has been idle
    /// for less than `max_idle`; closed and expired ones met on the way are
    /// dropped.
    pub fn checkout(&self, max_idle: Duration) -> Option<Driven<B>> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(mut conn) = idle.pop_back() {
            if now.saturating_duration_since(conn.since) >= max_idle {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            // Nobody polled it while it waited: let it see a close first.
            if conn.conn.refresh() && conn.conn.is_ready() {
                return Some(conn.conn);
            }
            // Closed by the member, or (rarely) not ready: dropped.
        }
        None
    }

    /// Puts a connection back after its answer ended. A connection that is
    /// not ready yet (the request body is still going out: an answer may
    /// come before the upload ends) is driven by a task of its own until it
    /// is, then kept; closed connections and those beyond `max_idle_count`
    /// are dropped.
    pub fn checkin(self: &Arc<Self>, mut conn: Driven<B>, max_idle_count: usize) {
        if max_idle_count == 0 || !conn.refresh() {
            return;
        }
        if conn.is_ready() {
            self.push(conn, max_idle_count);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let ready = std::future::poll_fn(|cx| match conn.poll_drive(cx) {
                Poll::Ready(()) => Poll::Ready(false),
                Poll::Pending if conn.is_ready() => Poll::Ready(true),
                Poll::Pending => Poll::Pending,
            });
            if ready.await {
                if let Some(pool) = pool.upgrade() {
                    pool.push(conn, max_idle_count);
                }
            }
        });
    }

    /// Drops connections idle for `max_idle` or longer, and closed ones.
    pub fn sweep(&self, max_idle: Duration) {
        let now = Instant::now();
        self.lock().retain_mut(|conn| {
            now.saturating_duration_since(conn.since) < max_idle && conn.conn.refresh()
        });
    }

    fn push(&self, conn: Driven<B>, max_idle_count: usize) {
        let mut idle = self.lock();
        if idle.len() >= max_idle_count {
            // The oldest goes: it is the likeliest to expire unused.
            idle.pop_front();
        }
        idle.push_back(Idle {
            conn,
            since: Instant::now(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::Empty;
    use hyper::server::conn::http1 as server;
    use hyper::service::service_fn;
    use hyper_util::rt::TokioIo;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type Body = Empty<Bytes>;

    /// A loopback HTTP/1.1 server answering "ok"; counts connections.
    async fn server() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&conns);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(Bytes::from_static(b"ok")),
                        ))
                    });
                    let _ = server::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        (addr, conns)
    }

    async fn connect(addr: std::net::SocketAddr) -> Driven<Body> {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let io = TokioIo::new(crate::upstream::dial::MemberStream::Plain(stream));
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
        Driven::new(sender, conn)
    }

    /// A GET on `conn`, the answer read whole while driving the connection.
    async fn get(conn: &mut Driven<Body>) {
        let req = http::Request::get("/").body(Body::new()).unwrap();
        let resp = conn.send(req).await.unwrap();
        let mut body = resp.into_body();
        let mut got = Vec::new();
        loop {
            let frame = std::future::poll_fn(|cx| {
                let _ = conn.poll_drive(cx);
                http_body::Body::poll_frame(std::pin::Pin::new(&mut body), cx)
            })
            .await;
            match frame {
                Some(Ok(f)) => got.extend_from_slice(f.data_ref().unwrap()),
                Some(Err(e)) => panic!("{e}"),
                None => break,
            }
        }
        assert_eq!(&got[..], b"ok");
    }

    #[tokio::test]
    async fn a_connection_put_back_is_reused() {
        let (addr, conns) = server().await;
        let pool: Arc<Pool<Body>> = Arc::new(Pool::new());
        let mut conn = connect(addr).await;
        for _ in 0..20 {
            get(&mut conn).await;
            pool.checkin(conn, 8);
            conn = pool
                .checkout(Duration::from_secs(50))
                .expect("the connection is ready again");
        }
        assert_eq!(conns.load(Ordering::SeqCst), 1);
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn most_recently_used_first_and_bounded() {
        let (addr, _) = server().await;
        let pool: Arc<Pool<Body>> = Arc::new(Pool::new());
        for _ in 0..3 {
            let mut s = connect(addr).await;
            get(&mut s).await;
            pool.checkin(s, 2);
        }
        assert_eq!(pool.idle_count(), 2, "the oldest was dropped");
        assert!(pool.checkout(Duration::from_secs(50)).is_some());
        assert_eq!(pool.idle_count(), 1);
    }

    #[tokio::test]
    async fn expired_connections_are_not_reused() {
        let (addr, _) = server().await;
        let pool: Arc<Pool<Body>> = Arc::new(Pool::new());
        let mut s = connect(addr).await;
        get(&mut s).await;
        pool.checkin(s, 8);
        assert!(pool.checkout(Duration::ZERO).is_none());
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn closed_connections_are_swept() {
        let (addr, _) = server().await;
        let pool: Arc<Pool<Body>> = Arc::new(Pool::new());
        let mut s = connect(addr).await;
        get(&mut s).await;
        pool.checkin(s, 8);
        assert_eq!(pool.idle_count(), 1);
        pool.sweep(Duration::ZERO);
        assert_eq!(pool.idle_count(), 0);
    }

    /// A member that answers once with keep-alive, then closes the idle
    /// connection 50 ms later.
    async fn closing_server() -> std::net::SocketAddr {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 1024];
                    let _ = s.read(&mut buf).await;
                    let _ = s
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                });
            }
        });
        addr
    }

    #[tokio::test]
    async fn a_connection_the_member_closed_while_idle_is_not_handed_out() {
        let addr = closing_server().await;
        let pool: Arc<Pool<Body>> = Arc::new(Pool::new());
        let mut s = connect(addr).await;
        get(&mut s).await;
        pool.checkin(s, 8);
        assert_eq!(pool.idle_count(), 1);
        // Nobody polls it meanwhile; the look at checkout sees the close.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(pool.checkout(Duration::from_secs(50)).is_none());
        assert_eq!(pool.idle_count(), 0);
    }

    #[tokio::test]
    async fn zero_max_idle_keeps_nothing() {
        let (addr, _) = server().await;
        let pool: Arc<Pool<Body>> = Arc::new(Pool::new());
        let mut s = connect(addr).await;
        get(&mut s).await;
        pool.checkin(s, 0);
        assert_eq!(pool.idle_count(), 0);
    }
}
