//! Reaching a member: TCP, then TLS for members with `tls = true`.
//!
//! This is the part every protocol shares: the HTTP connections of
//! [`super::connect`], health checks of any kind, and (next) L4 listeners
//! that copy bytes. Every socket gets TCP_NODELAY (requests and answers are
//! written whole, so Nagle would only add a round trip) and TCP keepalive
//! (a member that vanished without a FIN is noticed on idle connections).
//! The TCP connect and the TLS handshake share one deadline,
//! `proxy.connect_timeout`.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::tls::{self, MemberTlsError};
use crate::config::Config;

/// TCP keepalive idle time on member connections: 60 s.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Why a member could not be reached. Nothing was sent to it.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("connect to {address} failed")]
    Io {
        address: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("connect to {address} timed out after {timeout:?}")]
    TimedOut {
        address: SocketAddr,
        timeout: Duration,
    },
    /// The TLS handshake failed: an untrusted or expired certificate, a
    /// name mismatch, a member that does not speak TLS...
    #[error("TLS handshake with {address} as {server_name} failed: {reason}")]
    Tls {
        address: SocketAddr,
        server_name: String,
        reason: String,
    },
    #[error("TLS handshake with {address} as {server_name} not done within {timeout:?} (proxy.connect_timeout)")]
    TlsTimedOut {
        address: SocketAddr,
        server_name: String,
        timeout: Duration,
    },
    /// A TLS member with a dialer made without TLS (a config built by
    /// hand): never sent.
    #[error("{address} wants TLS but no member TLS configuration was made")]
    NoTlsConfig { address: SocketAddr },
}

/// Dials members with the proxy's settings and, for members with
/// `tls = true`, the config's TLS client configuration.
#[derive(Debug, Clone)]
pub struct Dialer {
    /// `proxy.connect_timeout` (default 2 s), for the TCP connect and the
    /// TLS handshake together.
    connect_timeout: Duration,
    /// Present when some member uses TLS; one per config, so that sessions
    /// resume.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Dialer {
    /// The dialer of `cfg`: its TLS client configuration is made here,
    /// once, when a member uses TLS.
    pub fn new(cfg: &Config) -> Result<Self, MemberTlsError> {
        Ok(Dialer {
            connect_timeout: cfg.proxy.connect_timeout,
            tls: tls::client_config(cfg)?,
        })
    }

    /// A dialer with the TLS client configuration `tls`.
    pub fn with_tls(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Self {
        Dialer {
            connect_timeout,
            tls: Some(tls),
        }
    }

    /// A plain-TCP dialer (tests, plain members).
    pub fn plain(connect_timeout: Duration) -> Self {
        Dialer {
            connect_timeout,
            tls: None,
        }
    }

    /// A new connection to `address`: TLS when `server_name` is given (sent
    /// in SNI, and checked against the member's certificate), plain
    /// otherwise.
    pub async fn dial(
        &self,
        address: SocketAddr,
        server_name: Option<&ServerName<'static>>,
    ) -> Result<MemberStream, DialError> {
        let deadline = Instant::now() + self.connect_timeout;
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => return Err(DialError::Io { address, source }),
            Err(_) => {
                return Err(DialError::TimedOut {
                    address,
                    timeout: self.connect_timeout,
                })
            }
        };
        // Best effort: a socket that refuses an option still works.
        let _ = stream.set_nodelay(true);
        let sock = socket2::SockRef::from(&stream);
        let _ = sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
        let Some(name) = server_name else {
            return Ok(MemberStream::Plain(stream));
        };
        let Some(config) = &self.tls else {
            return Err(DialError::NoTlsConfig { address });
        };
        let connector = TlsConnector::from(Arc::clone(config));
        let server_name = || name.to_str().into_owned();
        match tokio::time::timeout_at(deadline, connector.connect(name.clone(), stream)).await {
            Ok(Ok(stream)) => Ok(MemberStream::Tls(Box::new(stream))),
            Ok(Err(e)) => Err(DialError::Tls {
                address,
                server_name: server_name(),
                reason: tls::describe_handshake_error(&e),
            }),
            Err(_) => Err(DialError::TlsTimedOut {
                address,
                server_name: server_name(),
                timeout: self.connect_timeout,
            }),
        }
    }
}

/// A connection to a member, plain or TLS (boxed: a TLS session is over
/// 1 KiB, which plain connections need not carry).
#[derive(Debug)]
pub enum MemberStream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for MemberStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MemberStream::Tls(s) => Pin::new(&mut **s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MemberStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MemberStream::Tls(s) => Pin::new(&mut **s).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            MemberStream::Tls(s) => Pin::new(&mut **s).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            MemberStream::Plain(s) => s.is_write_vectored(),
            MemberStream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_flush(cx),
            MemberStream::Tls(s) => Pin::new(&mut **s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MemberStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MemberStream::Tls(s) => Pin::new(&mut **s).poll_shutdown(cx),
        }
    }
}
