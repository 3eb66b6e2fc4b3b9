//! New HTTP/1.1 connections to members.
//!
//! Every connection gets TCP_NODELAY (requests and answers are written
//! whole, so Nagle would only add a round trip) and TCP keepalive (a member
//! that vanished without a FIN is noticed on idle pooled connections). Each
//! connection is driven by a task of its own; the caller gets the
//! [`SendRequest`] half.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::ProxyConfig;

/// TCP keepalive idle time on member connections.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);

/// Largest buffer hyper may grow to for one member connection: big enough
/// for large answer heads and to read bodies in large slices.
const MAX_BUF_SIZE: usize = 512 * 1024;

/// Why a connection could not be made. Nothing was sent to the member.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {address} failed")]
    Io {
        address: SocketAddr,
        source: std::io::Error,
    },
    #[error("connect to {address} timed out after {timeout:?}")]
    TimedOut {
        address: SocketAddr,
        timeout: Duration,
    },
    #[error("HTTP/1.1 handshake with {address} failed")]
    Handshake {
        address: SocketAddr,
        source: hyper::Error,
    },
}

/// Makes member connections with the proxy's settings.
#[derive(Debug, Clone)]
pub struct Connector {
    /// `proxy.connect_timeout` (default 2 s).
    connect_timeout: Duration,
}

impl Connector {
    pub fn new(cfg: &ProxyConfig) -> Self {
        Connector {
            connect_timeout: cfg.connect_timeout,
        }
    }

    /// A new connection to `address`, ready for its first request.
    pub async fn connect<B>(&self, address: SocketAddr) -> Result<SendRequest<B>, ConnectError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream =
            match tokio::time::timeout(self.connect_timeout, TcpStream::connect(address)).await {
                Ok(Ok(stream)) => stream,
                Ok(Err(source)) => return Err(ConnectError::Io { address, source }),
                Err(_) => {
                    return Err(ConnectError::TimedOut {
                        address,
                        timeout: self.connect_timeout,
                    })
                }
            };
        // Best effort: a socket that refuses an option still works.
        let _ = stream.set_nodelay(true);
        let sock = socket2::SockRef::from(&stream);
        let _ = sock.set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE));
        let (sender, connection) = http1::Builder::new()
            .max_buf_size(MAX_BUF_SIZE)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { address, source })?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(%address, "member connection ended: {e}");
            }
        });
        Ok(sender)
    }
}
