//! New HTTP/1.1 connections to members: a dialed stream ([`super::dial`],
//! TCP then TLS for members with `tls = true`) and hyper's HTTP/1.1 client
//! handshake on it. [`Connector::connect_driven`] gives both halves to the
//! caller, who drives the connection where it uses it (the forwarding
//! path's pooled connections); [`Connector::connect`] spawns a task that
//! drives it and gives the [`SendRequest`] half (NTLM-pinned connections,
//! health checks, DAG polls: connections that outlive one task's use).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body::Body;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;

use super::dial::{DialError, Dialer};
use super::driven::Driven;
use super::tls::MemberTlsError;
use crate::config::Config;

/// Largest buffer hyper may grow to for one member connection: big enough
/// for large answer heads and to read bodies in large slices.
const MAX_BUF_SIZE: usize = 512 * 1024;

/// Why a connection could not be made. Nothing was sent to the member.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// TCP or TLS failed.
    #[error(transparent)]
    Dial(#[from] DialError),
    #[error("HTTP/1.1 handshake with {address} failed")]
    Handshake {
        address: SocketAddr,
        #[source]
        source: hyper::Error,
    },
}

/// Makes member HTTP/1.1 connections with the proxy's settings.
#[derive(Debug, Clone)]
pub struct Connector {
    dialer: Dialer,
}

impl Connector {
    /// The connector of `cfg` (see [`Dialer::new`]).
    pub fn new(cfg: &Config) -> Result<Self, MemberTlsError> {
        Ok(Connector {
            dialer: Dialer::new(cfg)?,
        })
    }

    /// A connector with the TLS client configuration `tls`.
    pub fn with_tls(connect_timeout: Duration, tls: std::sync::Arc<rustls::ClientConfig>) -> Self {
        Connector {
            dialer: Dialer::with_tls(connect_timeout, tls),
        }
    }

    /// The dialer under the HTTP layer, for checks and protocols that need
    /// only a stream.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// A new connection to `address`, ready for its first request: over
    /// TLS when `server_name` is given, plain otherwise.
    pub async fn connect<B>(
        &self,
        address: SocketAddr,
        server_name: Option<&ServerName<'static>>,
    ) -> Result<SendRequest<B>, ConnectError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = self.dialer.dial(address, server_name).await?;
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

    /// A new connection to `address`, like [`Connector::connect`], whose
    /// reading and writing its user drives ([`Driven`]): no task of its own.
    pub async fn connect_driven<B>(
        &self,
        address: SocketAddr,
        server_name: Option<&ServerName<'static>>,
    ) -> Result<Driven<B>, ConnectError>
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let stream = self.dialer.dial(address, server_name).await?;
        let (sender, connection) = http1::Builder::new()
            .max_buf_size(MAX_BUF_SIZE)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { address, source })?;
        Ok(Driven::new(sender, connection))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CaBundle, MemberTlsConfig};
    use http_body_util::{BodyExt, Empty, Full};
    use rustls::HandshakeKind;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
    use std::sync::{Arc, Mutex};

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
        Connector::with_tls(
            Duration::from_secs(5),
            crate::upstream::tls::build(&cfg).unwrap(),
        )
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
        assert!(
            matches!(e, ConnectError::Dial(DialError::Tls { .. })),
            "{e}"
        );
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
        let connector = Connector::with_tls(
            Duration::from_millis(200),
            crate::upstream::tls::build(&cfg).unwrap(),
        );
        let started = std::time::Instant::now();
        let e = connector
            .connect::<Empty<Bytes>>(addr, Some(&name("ex1.lab.local")))
            .await
            .unwrap_err();
        assert!(
            matches!(e, ConnectError::Dial(DialError::TlsTimedOut { .. })),
            "{e}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        hold.abort();
    }
}
