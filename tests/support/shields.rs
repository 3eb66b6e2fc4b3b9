//! Helpers for tests/shields.rs (issue 18): connections from a chosen
//! loopback address (on Linux every 127.x.y.z is the host, so 127.0.0.1
//! and 127.0.0.2 are two client addresses), HTTP/2 requests, and raw
//! request bytes (the absolute form).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use rustls::pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use super::{Client, Resp, H1};

/// A TLS stream to the array from `local`.
pub async fn tls_from(
    client: &Client,
    local: IpAddr,
) -> anyhow::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let socket = match local {
        IpAddr::V4(_) => TcpSocket::new_v4()?,
        IpAddr::V6(_) => TcpSocket::new_v6()?,
    };
    socket.bind(SocketAddr::new(local, 0))?;
    let tcp = socket.connect(client.addr).await?;
    tcp.set_nodelay(true)?;
    let connector = tokio_rustls::TlsConnector::from(Arc::clone(&client.tls));
    let name = ServerName::try_from(client.sni.clone())?;
    Ok(connector.connect(name, tcp).await?)
}

/// A keep-alive HTTP/1.1 connection to the array from `local`.
pub async fn connect_from(client: &Client, local: IpAddr) -> anyhow::Result<H1> {
    let io = hyper_util::rt::TokioIo::new(tls_from(client, local).await?);
    let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(H1 { sender })
}

/// An HTTP/2 connection to the array (`client` must offer `h2`).
pub struct H2 {
    sender: hyper::client::conn::http2::SendRequest<Full<Bytes>>,
}

impl H2 {
    pub async fn connect(client: &Client) -> anyhow::Result<H2> {
        let tls = client.tls().await?;
        anyhow::ensure!(
            tls.get_ref().1.alpn_protocol() == Some(&b"h2"[..]),
            "the array did not choose h2"
        );
        let (sender, conn) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(tls),
        )
        .await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H2 { sender })
    }

    /// Sends `req`, whose URI must be absolute (`https://mail.lab.com/...`).
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Resp> {
        self.sender.ready().await?;
        let resp =
            tokio::time::timeout(Duration::from_secs(60), self.sender.send_request(req)).await??;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(60), body.collect())
            .await??
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

/// Sends `head` (a whole HTTP/1.1 request head, `Connection: close`) on a
/// new TLS connection; the status of the answer, `None` without one.
pub async fn raw_status(client: &Client, head: &str) -> Option<u16> {
    let mut tls = client.tls().await.ok()?;
    tls.write_all(head.as_bytes()).await.ok()?;
    tls.flush().await.ok()?;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), tls.read_to_end(&mut buf)).await;
    if read.is_err() && buf.is_empty() {
        return None;
    }
    let text = String::from_utf8_lossy(&buf);
    text.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// `casarray --log-format json serve --config FILE` with the access log on
/// whatever `TEST_RUST_LOG` says (`RUST_LOG=warn,access=info`), its logs in
/// `log`: for tests that read the access log.
pub fn spawn_array_with_access_log(
    config: &std::path::Path,
    log: &std::path::Path,
) -> (super::Proc, super::ArrayAddrs) {
    let mut child = std::process::Command::new(super::BIN)
        .args(["--log-format", "json", "serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn,access=info")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(log).expect("log file"),
        ))
        .spawn()
        .expect("spawn casarray serve");
    let stdout = child.stdout.take().expect("stdout");
    let addrs = super::wait_line("casarray", stdout, super::ready_line);
    (
        super::Proc {
            child,
            name: "casarray".into(),
        },
        addrs,
    )
}
