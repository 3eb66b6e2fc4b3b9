//! Server-to-server HTTP: heartbeats, log copying, seeding, deliveries
//! and proxied client requests. HTTP/1.1 over TCP, or over TLS (rustls)
//! to a member that serves HTTPS, verified against `--peer-ca` (the lab
//! passes its CA) with the member's fqdn as the server name.
//!
//! Small calls ([`PeerClient::call`]) reuse kept connections (at most 4
//! idle per member); proxied requests ([`PeerClient::send`]) get a
//! connection of their own, since their bodies stream.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use super::definition::Member;
use crate::mock::http::response::Body;

/// How long connecting (TCP and TLS) may take: 2 s.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Idle connections kept per member: 4.
const MAX_IDLE: usize = 4;

/// Why a call to another server failed.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    #[error("{0} has not registered its address yet")]
    NoAddress(String),
    #[error("{0} serves HTTPS, and this server has no --peer-ca to verify it")]
    NoCa(String),
    #[error("{server}: {message}")]
    Failed { server: String, message: String },
    #[error("{0}: no answer in time")]
    Timeout(String),
}

/// A whole answer.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Bytes,
}

/// The client.
pub struct PeerClient {
    tls: Option<TlsConnector>,
    idle: Mutex<HashMap<String, Vec<SendRequest<Body>>>>,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl PeerClient {
    /// A client trusting the CA certificates in `peer_ca` for members that
    /// serve HTTPS.
    pub fn new(peer_ca: Option<&Path>) -> anyhow::Result<PeerClient> {
        let tls = match peer_ca {
            None => None,
            Some(path) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in CertificateDer::pem_file_iter(path)
                    .with_context(|| format!("reading --peer-ca {}", path.display()))?
                {
                    let cert =
                        cert.with_context(|| format!("reading --peer-ca {}", path.display()))?;
                    roots
                        .add(cert)
                        .with_context(|| format!("a certificate of {}", path.display()))?;
                }
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let mut config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .context("TLS protocol versions")?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                config.alpn_protocols = vec![b"http/1.1".to_vec()];
                Some(TlsConnector::from(Arc::new(config)))
            }
        };
        Ok(PeerClient {
            tls,
            idle: Mutex::new(HashMap::new()),
        })
    }

    fn failed(member: &Member, message: impl std::fmt::Display) -> PeerError {
        PeerError::Failed {
            server: member.name.clone(),
            message: message.to_string(),
        }
    }

    async fn connect(&self, member: &Member) -> Result<SendRequest<Body>, PeerError> {
        let address = member
            .address
            .as_deref()
            .ok_or_else(|| PeerError::NoAddress(member.name.clone()))?;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| PeerError::Timeout(member.name.clone()))?
            .map_err(|e| Self::failed(member, e))?;
        let _ = tcp.set_nodelay(true);
        if !member.tls {
            return handshake(member, TokioIo::new(tcp)).await;
        }
        let connector = self
            .tls
            .as_ref()
            .ok_or_else(|| PeerError::NoCa(member.name.clone()))?;
        let host = member
            .fqdn
            .clone()
            .or_else(|| address.rsplit_once(':').map(|(h, _)| h.to_string()))
            .unwrap_or_default();
        let name = ServerName::try_from(host).map_err(|e| Self::failed(member, e))?;
        let tls = tokio::time::timeout(CONNECT_TIMEOUT, connector.connect(name, tcp))
            .await
            .map_err(|_| PeerError::Timeout(member.name.clone()))?
            .map_err(|e| Self::failed(member, e))?;
        handshake(member, TokioIo::new(tls)).await
    }

    fn key(member: &Member) -> String {
        format!(
            "{}|{}",
            member.name.to_ascii_uppercase(),
            member.address.as_deref().unwrap_or_default()
        )
    }

    fn take_idle(&self, member: &Member) -> Option<SendRequest<Body>> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&Self::key(member))?;
        while let Some(sender) = list.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    fn put_idle(&self, member: &Member, sender: SendRequest<Body>) {
        if !sender.is_ready() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.entry(Self::key(member)).or_default();
        if list.len() < MAX_IDLE {
            list.push(sender);
        }
    }

    /// Sends `req` (origin-form URI) on a connection of its own; returns
    /// once the answer's head arrived (within `timeout`); its body streams.
    pub async fn send(
        &self,
        member: &Member,
        req: Request<Body>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, PeerError> {
        let exchange = async {
            let mut sender = self.connect(member).await?;
            sender
                .send_request(with_host(member, req))
                .await
                .map_err(|e| Self::failed(member, e))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| PeerError::Timeout(member.name.clone()))?
    }

    /// One small exchange on a kept connection (or a new one): the whole
    /// answer, at most `limit` bytes of body, within `timeout`.
    pub async fn call(
        &self,
        member: &Member,
        req: Request<Body>,
        timeout: Duration,
        limit: usize,
    ) -> Result<Reply, PeerError> {
        let exchange = async {
            let mut sender = match self.take_idle(member) {
                Some(s) => s,
                None => self.connect(member).await?,
            };
            let resp = sender
                .send_request(with_host(member, req))
                .await
                .map_err(|e| Self::failed(member, e))?;
            let (parts, body) = resp.into_parts();
            let body = Limited::new(body, limit)
                .collect()
                .await
                .map_err(|e| Self::failed(member, format!("reading the answer: {e}")))?
                .to_bytes();
            self.put_idle(member, sender);
            Ok(Reply {
                status: parts.status,
                body,
            })
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| PeerError::Timeout(member.name.clone()))?
    }
}

/// Sets `Host` to the member's address when the request has none.
fn with_host(member: &Member, mut req: Request<Body>) -> Request<Body> {
    if !req.headers().contains_key(http::header::HOST) {
        if let Some(v) = member
            .address
            .as_deref()
            .and_then(|a| http::HeaderValue::from_str(a).ok())
        {
            req.headers_mut().insert(http::header::HOST, v);
        }
    }
    req
}

async fn handshake<I>(member: &Member, io: I) -> Result<SendRequest<Body>, PeerError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| PeerClient::failed(member, e))?;
    tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::debug!(error = %e, "server-to-server connection ended");
        }
    });
    Ok(sender)
}

/// A request with a whole body.
pub fn request(method: http::Method, path: &str, body: impl Into<Bytes>) -> Request<Body> {
    let mut req = Request::new(crate::mock::http::response::full(body));
    *req.method_mut() = method;
    if let Ok(uri) = path.parse() {
        *req.uri_mut() = uri;
    }
    req
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unreachable_and_unregistered_members_fail_cleanly() {
        let client = PeerClient::new(None).unwrap();
        let nowhere = Member {
            name: "EX9".into(),
            address: None,
            fqdn: None,
            tls: false,
        };
        let err = client
            .call(
                &nowhere,
                request(http::Method::GET, "/", ""),
                Duration::from_secs(1),
                10,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::NoAddress(_)), "{err}");
        let tls = Member {
            address: Some("127.0.0.1:9".into()),
            tls: true,
            ..nowhere
        };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let tls = Member {
            address: Some(listener.local_addr().unwrap().to_string()),
            ..tls
        };
        let err = client
            .call(
                &tls,
                request(http::Method::GET, "/", ""),
                Duration::from_secs(1),
                10,
            )
            .await
            .unwrap_err();
        assert!(matches!(err, PeerError::NoCa(_)), "{err}");
    }
}
