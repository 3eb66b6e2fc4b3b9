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
use std::time::{Duration, Instant};

use hyper::client::conn::http1::SendRequest;

/// How long a connection that is not ready yet when put back (its answer
/// was cut short, or the request body is still going) may take to become
/// ready before it is dropped.
const READY_WAIT: Duration = Duration::from_secs(5);

/// A member connection taken out of its pool (or new) for one request;
/// [`MemberConn::put_back`] returns it once the answer's body has ended.
/// Dropped instead, the connection closes (an answer cut short).
pub struct MemberConn<B: Send + 'static> {
    pub sender: SendRequest<B>,
    home: Arc<Pool<B>>,
    /// `proxy.pool_max_idle_per_member`.
    max_idle: usize,
}

impl<B: Send + 'static> MemberConn<B> {
    pub(super) fn new(sender: SendRequest<B>, home: Arc<Pool<B>>, max_idle: usize) -> Self {
        MemberConn {
            sender,
            home,
            max_idle,
        }
    }

    /// Back to the member's pool, for the next request.
    pub fn put_back(self) {
        self.home.checkin(self.sender, self.max_idle);
    }
}

/// An idle connection and since when it has been idle.
struct Idle<B> {
    sender: SendRequest<B>,
    since: Instant,
}

/// The idle connections to one member.
pub struct Pool<B> {
    /// Oldest at the front, most recently used at the back.
    idle: Mutex<VecDeque<Idle<B>>>,
}

impl<B> std::fmt::Debug for Pool<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("idle", &self.idle_count())
            .finish()
    }
}

impl<B> Default for Pool<B> {
    fn default() -> Self {
        Pool {
            idle: Mutex::new(VecDeque::new()),
        }
    }
}

impl<B> Pool<B> {
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

impl<B: Send + 'static> Pool<B> {
    /// The most recently used connection that is ready and has been idle
    /// for less than `max_idle`; closed and expired ones met on the way are
    /// dropped.
    pub fn checkout(&self, max_idle: Duration) -> Option<SendRequest<B>> {
        let now = Instant::now();
        let mut idle = self.lock();
        while let Some(conn) = idle.pop_back() {
            if now.saturating_duration_since(conn.since) >= max_idle {
                // Everything below is older still.
                idle.clear();
                return None;
            }
            if conn.sender.is_ready() {
                return Some(conn.sender);
            }
            // Closed by the member, or (rarely) not ready: dropping the
            // sender lets hyper close it once it is idle.
        }
        None
    }

    /// Puts a connection back after its answer ended. A connection that is
    /// not ready yet is given [`READY_WAIT`] in a task of its own; closed
    /// connections and those beyond `max_idle_count` are dropped.
    pub fn checkin(self: &Arc<Self>, sender: SendRequest<B>, max_idle_count: usize) {
        if max_idle_count == 0 || sender.is_closed() {
            return;
        }
        if sender.is_ready() {
            self.push(sender, max_idle_count);
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool: Weak<Self> = Arc::downgrade(self);
        runtime.spawn(async move {
            let mut sender = sender;
            if let Ok(Ok(())) = tokio::time::timeout(READY_WAIT, sender.ready()).await {
                if let Some(pool) = pool.upgrade() {
                    pool.push(sender, max_idle_count);
                }
            }
        });
    }

    /// Drops connections idle for `max_idle` or longer, and closed ones.
    pub fn sweep(&self, max_idle: Duration) {
        let now = Instant::now();
        self.lock().retain(|conn| {
            now.saturating_duration_since(conn.since) < max_idle && !conn.sender.is_closed()
        });
    }

    fn push(&self, sender: SendRequest<B>, max_idle_count: usize) {
        let mut idle = self.lock();
        if idle.len() >= max_idle_count {
            // The oldest goes: it is the likeliest to expire unused.
            idle.pop_front();
        }
        idle.push_back(Idle {
            sender,
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

    async fn connect(addr: std::net::SocketAddr) -> SendRequest<Body> {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        sender
    }

    async fn get(sender: &mut SendRequest<Body>) {
        use http_body_util::BodyExt;
        let req = http::Request::get("/").body(Body::new()).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
    }

    #[tokio::test]
    async fn a_connection_put_back_is_reused() {
        let (addr, conns) = server().await;
        let pool: Arc<Pool<Body>> = Arc::new(Pool::new());
        let mut sender = connect(addr).await;
        for _ in 0..20 {
            get(&mut sender).await;
            pool.checkin(sender, 8);
            sender = pool
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
