//! New HTTP/1.1 connections to members, over TLS for members with
//! `tls = true`.
//!
//! Every connection gets TCP_NODELAY (requests and answers are written
//! whole, so Nagle would only add a round trip) and TCP keepalive (a member
//! that vanished without a FIN is noticed on idle pooled connections). The
//! TCP connect and the TLS handshake share one deadline,
//! `proxy.connect_timeout`. Each connection is driven by a task of its own;
//! the caller gets the [`SendRequest`] half.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;

use super::tls::{self, MemberTlsError};
use crate::config::Config;

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
    /// A TLS member with a connector made without TLS (a config built by
    /// hand): never sent.
    #[error("{address} wants TLS but no member TLS configuration was made")]
    NoTlsConfig { address: SocketAddr },
    #[error("HTTP/1.1 handshake with {address} failed")]
    Handshake {
        address: SocketAddr,
        source: hyper::Error,
    },
}

/// Makes member connections with the proxy's settings and, for members
/// with `tls = true`, the config's TLS client configuration.
#[derive(Debug, Clone)]
pub struct Connector {
    /// `proxy.connect_timeout` (default 2 s), for the TCP connect and the
    /// TLS handshake together.
    connect_timeout: Duration,
    /// Present when some member uses TLS; one per config, so that sessions
    /// resume.
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl Connector {
    /// The connector of `cfg`: its TLS client configuration is made here,
    /// once, when a member uses TLS.
    pub fn new(cfg: &Config) -> Result<Self, MemberTlsError> {
        Ok(Connector {
            connect_timeout: cfg.proxy.connect_timeout,
            tls: tls::client_config(cfg)?,
        })
    }

    /// A connector with the TLS client configuration `tls`.
    pub fn with_tls(connect_timeout: Duration, tls: Arc<rustls::ClientConfig>) -> Self {
        Connector {
            connect_timeout,
            tls: Some(tls),
        }
    }

    /// A new connection to `address`, ready for its first request: over
    /// TLS when `server_name` is given (sent in SNI, and checked against
    /// the member's certificate), plain otherwise.
    pub async fn connect<B>(
        &self,
        address: SocketAddr,
        server_name: Option<&ServerName<'static>>,
    ) -> Result<SendRequest<B>, ConnectError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let deadline = Instant::now() + self.connect_timeout;
        let stream = match tokio::time::timeout_at(deadline, TcpStream::connect(address)).await {
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
        let Some(name) = server_name else {
            return http1_handshake(stream, address).await;
        };
        let Some(config) = &self.tls else {
            return Err(ConnectError::NoTlsConfig { address });
        };
        let connector = TlsConnector::from(Arc::clone(config));
        let server_name = || name.to_str().into_owned();
        match tokio::time::timeout_at(deadline, connector.connect(name.clone(), stream)).await {
            Ok(Ok(stream)) => http1_handshake(stream, address).await,
            Ok(Err(e)) => Err(ConnectError::Tls {
                address,
                server_name: server_name(),
                reason: tls::describe_handshake_error(&e),
            }),
            Err(_) => Err(ConnectError::TlsTimedOut {
                address,
                server_name: server_name(),
                timeout: self.connect_timeout,
            }),
        }
    }
}

/// HTTP/1.1 over `io`; the connection is driven by a task of its own.
async fn http1_handshake<T, B>(io: T, address: SocketAddr) -> Result<SendRequest<B>, ConnectError>
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    B: Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sender, connection) = http1::Builder::new()
        .max_buf_size(MAX_BUF_SIZE)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|source| ConnectError::Handshake { address, source })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(%address, "member connection ended: {e}");
        }
    });
    Ok(sender)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CaBundle, MemberTlsConfig};
    use http_body_util::{BodyExt, Empty, Full};
    use rustls::HandshakeKind;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::sync::Mutex;

    struct Certs {
        ca: CertificateDer<'static>,
        leaf: CertificateDer<'static>,
        key: Vec<u8>,
    }

    /// A CA named `ca_name` and a leaf for `name` it signed.
    fn certs(ca_name: &str, name: &str) -> Certs {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, ca_name);
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).unwrap().der().clone();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let leaf = rcgen::CertificateParams::new(vec![name.to_string()])
            .unwrap()
            .signed_by(&key, &issuer)
            .unwrap()
            .der()
            .clone();
        Certs {
            ca,
            leaf,
            key: key.serialize_der(),
        }
    }

    /// An HTTPS member on loopback answering "ok"; records each
    /// handshake's kind (full or resumed).
    async fn tls_member(c: &Certs) -> (SocketAddr, Arc<Mutex<Vec<HandshakeKind>>>) {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(c.key.clone()));
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![c.leaf.clone()], key)
            .unwrap();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let kinds = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&kinds);
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let Ok(tls) = acceptor.accept(stream).await else {
                    continue;
                };
                if let Some(kind) = tls.get_ref().1.handshake_kind() {
                    seen.lock().unwrap().push(kind);
                }
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from_static(b"ok"),
                        )))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), svc)
                        .await;
                });
            }
        });
        (addr, kinds)
    }

    fn connector(ca: &CertificateDer<'static>, verify: bool) -> Connector {
        let cfg = MemberTlsConfig {
            ca: Some(CaBundle {
                path: "ca.crt".into(),
                certs: vec![ca.clone()],
            }),
            verify,
        };
        Connector::with_tls(Duration::from_secs(5), tls::build(&cfg).unwrap())
    }

    async fn get(sender: &mut SendRequest<Empty<Bytes>>) -> Bytes {
        let req = http::Request::get("/").body(Empty::new()).unwrap();
        let resp = sender.send_request(req).await.unwrap();
        resp.into_body().collect().await.unwrap().to_bytes()
    }

    fn name(s: &str) -> ServerName<'static> {
        ServerName::try_from(s.to_string()).unwrap()
    }

    #[tokio::test]
    async fn a_second_connection_resumes_the_session() {
        let c = certs("Lab CA", "ex1.lab.local");
        let (addr, kinds) = tls_member(&c).await;
        let connector = connector(&c.ca, true);
        for _ in 0..2 {
            let mut sender = connector
                .connect(addr, Some(&name("ex1.lab.local")))
                .await
                .unwrap();
            // The answer also brings the session tickets in.
            assert_eq!(&get(&mut sender).await[..], b"ok");
        }
        assert_eq!(
            *kinds.lock().unwrap(),
            [HandshakeKind::Full, HandshakeKind::Resumed]
        );
    }

    #[tokio::test]
    async fn untrusted_and_misnamed_certificates_say_why() {
        let c = certs("Lab CA", "ex1.lab.local");
        let (addr, _) = tls_member(&c).await;
        let other = certs("Other CA", "ex1.lab.local");
        let e = connector(&other.ca, true)
            .connect::<Empty<Bytes>>(addr, Some(&name("ex1.lab.local")))
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectError::Tls { .. }), "{e}");
        assert!(
            e.to_string().starts_with(&format!(
                "TLS handshake with {addr} as ex1.lab.local failed: certificate not trusted"
            )),
            "{e}"
        );
        let e = connector(&c.ca, true)
            .connect::<Empty<Bytes>>(addr, Some(&name("ex2.lab.local")))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("certificate name mismatch"), "{e}");
        // Another CA of the same name: the signature does not verify.
        let twin = certs("Lab CA", "ex1.lab.local");
        let e = connector(&twin.ca, true)
            .connect::<Empty<Bytes>>(addr, Some(&name("ex1.lab.local")))
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("failed: certificate not trusted: its signature"),
            "{e}"
        );
        // verify = false: any certificate, any name.
        let mut sender = connector(&other.ca, false)
            .connect(addr, Some(&name("ex2.lab.local")))
            .await
            .unwrap();
        assert_eq!(&get(&mut sender).await[..], b"ok");
    }

    #[tokio::test]
    async fn a_self_signed_certificate_listed_as_ca_is_trusted() {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["ex1.lab.local".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let c = Certs {
            ca: cert.der().clone(),
            leaf: cert.der().clone(),
            key: key.serialize_der(),
        };
        let (addr, _) = tls_member(&c).await;
        let mut sender = connector(&c.ca, true)
            .connect(addr, Some(&name("ex1.lab.local")))
            .await
            .unwrap();
        assert_eq!(&get(&mut sender).await[..], b"ok");
    }

    #[tokio::test]
    async fn a_member_silent_in_the_handshake_times_out() {
        let c = certs("Lab CA", "ex1.lab.local");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // Accepts and holds connections, never says a word.
        let hold = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                held.push(stream);
            }
        });
        let cfg = MemberTlsConfig {
            ca: Some(CaBundle {
                path: "ca.crt".into(),
                certs: vec![c.ca.clone()],
            }),
            verify: true,
        };
        let connector = Connector::with_tls(Duration::from_millis(200), tls::build(&cfg).unwrap());
        let started = std::time::Instant::now();
        let e = connector
            .connect::<Empty<Bytes>>(addr, Some(&name("ex1.lab.local")))
            .await
            .unwrap_err();
        assert!(matches!(e, ConnectError::TlsTimedOut { .. }), "{e}");
        assert!(started.elapsed() < Duration::from_secs(2));
        hold.abort();
    }
}
