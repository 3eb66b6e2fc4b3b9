//! HTTP/1.1 clients: over TLS (rustls, aws-lc-rs) to the array, or plain
//! TCP straight to a backend. One `Conn` is one keep-alive connection.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls::client::Resumption;
use rustls::pki_types::ServerName;
use rustls_pki_types::pem::PemObject;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The name the benches ask for (SNI and Host).
pub const HOST: &str = "mail.lab.com";

/// A TLS client configuration trusting `ca_pem`, HTTP/1.1 only. With
/// `resume` it keeps sessions (tickets) and resumes; without, every
/// handshake is a full one.
pub fn tls_config(ca_pem: &str, resume: bool) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.expect("CA PEM")).expect("CA certificate");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        config.resumption = Resumption::disabled();
    }
    Arc::new(config)
}

/// Where and how to connect.
#[derive(Clone)]
pub enum Target {
    /// HTTPS through the array.
    Tls {
        addr: SocketAddr,
        config: Arc<rustls::ClientConfig>,
    },
    /// Plain HTTP straight to a backend: the baseline.
    Plain { addr: SocketAddr },
}

/// One keep-alive HTTP/1.1 connection.
pub struct Conn {
    sender: SendRequest<Empty<Bytes>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Target {
    /// Opens a connection (TCP, then TLS when the target is TLS).
    pub async fn connect(&self) -> Conn {
        match self {
            Target::Tls { addr, config } => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let _ = tcp.set_nodelay(true);
                let name = ServerName::try_from(HOST).expect("server name");
                let tls = TlsConnector::from(Arc::clone(config))
                    .connect(name, tcp)
                    .await
                    .expect("TLS handshake");
                Conn::handshake(TokioIo::new(tls)).await
            }
            Target::Plain { addr } => {
                let tcp = TcpStream::connect(addr).await.expect("connect");
                let _ = tcp.set_nodelay(true);
                Conn::handshake(TokioIo::new(tcp)).await
            }
        }
    }
}

impl Conn {
    async fn handshake<T>(io: T) -> Conn
    where
        T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    {
        let (sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .expect("HTTP handshake");
        let task = tokio::spawn(async move {
            let _ = connection.await;
        });
        Conn { sender, task }
    }

    /// GETs `path` and reads the whole body; returns its length, or
    /// `None` on any error or a status other than 200.
    pub async fn get(&mut self, path: &str) -> Option<usize> {
        self.request(path, false).await
    }

    /// As [`Conn::get`], asking the server to close the connection after
    /// the answer (`Connection: close`).
    pub async fn get_close(&mut self, path: &str) -> Option<usize> {
        self.request(path, true).await
    }

    async fn request(&mut self, path: &str, close: bool) -> Option<usize> {
        self.sender.ready().await.ok()?;
        let mut req = Request::get(path).header(http::header::HOST, HOST);
        if close {
            req = req.header(http::header::CONNECTION, "close");
        }
        let req = req.body(Empty::<Bytes>::new()).ok()?;
        let resp = self.sender.send_request(req).await.ok()?;
        if resp.status() != http::StatusCode::OK {
            return None;
        }
        let mut body = resp.into_body();
        let mut n = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.ok()?.into_data() {
                n += data.len();
            }
        }
        Some(n)
    }
}
