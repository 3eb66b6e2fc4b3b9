//! Asking a running array for its members' health: `GET /api/members` on
//! the admin listener, bounded in time.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Deserialize;

/// How long `array get` waits for the admin API: 1 s.
pub(crate) const HEALTH_WAIT: Duration = Duration::from_secs(1);

/// Largest answer read: 4 MiB.
const MAX_BODY: usize = 4 << 20;

/// One member as the admin API reports it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct MemberHealth {
    pub name: String,
    /// `active` or `draining`.
    #[serde(default)]
    pub state: String,
    #[serde(default)]
    pub healthy: bool,
    /// Per service: healthy or not.
    #[serde(default)]
    pub services: BTreeMap<String, bool>,
}

/// Why there is no health to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unknown {
    /// Nothing answers on the admin address (or not in time).
    NotRunning,
    /// Something answered, but not with the members' health.
    BadAnswer(String),
}

/// Where to connect for a listen address: a wildcard becomes loopback.
pub(crate) fn connect_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// The members' health from the admin API at `admin` (a listen address),
/// waiting at most `limit`. Runs on its own thread and runtime, so it works
/// from sync code whether or not a runtime is already running.
pub(crate) fn fetch_member_health(
    admin: SocketAddr,
    limit: Duration,
) -> Result<Vec<MemberHealth>, Unknown> {
    if admin.port() == 0 {
        return Err(Unknown::NotRunning);
    }
    let addr = connect_address(admin);
    let worker = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Unknown::BadAnswer(format!("cannot start a runtime: {e}")))?;
        rt.block_on(async {
            tokio::time::timeout(limit, get_members(addr))
                .await
                .unwrap_or(Err(Unknown::NotRunning))
        })
    });
    worker
        .join()
        .unwrap_or_else(|_| Err(Unknown::BadAnswer("the health query failed".into())))
}

async fn get_members(addr: SocketAddr) -> Result<Vec<MemberHealth>, Unknown> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|_| Unknown::NotRunning)?;
    let bad = |what: String| Unknown::BadAnswer(format!("admin API at {addr}: {what}"));
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| bad(e.to_string()))?;
    let conn = tokio::spawn(conn);
    let request = http::Request::get("/api/members")
        .header(http::header::HOST, addr.to_string())
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())
        .map_err(|e| bad(e.to_string()))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| bad(e.to_string()))?;
    if !response.status().is_success() {
        conn.abort();
        return Err(bad(format!(
            "GET /api/members answered {}",
            response.status()
        )));
    }
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| bad(e.to_string()))?
        .to_bytes();
    conn.abort();
    serde_json::from_slice(&body).map_err(|e| bad(format!("unexpected JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot HTTP server answering `status` and `body`.
    fn serve_once(status: &'static str, body: &'static str) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    return;
                }
                got.extend_from_slice(&buf[..n]);
            }
            assert!(got.starts_with(b"GET /api/members HTTP/1.1\r\n"));
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).unwrap();
        });
        addr
    }

    #[test]
    fn reads_the_members() {
        let addr = serve_once(
            "200 OK",
            r#"[{"name":"EX1","address":"127.0.0.1:9001","fqdn":"ex1.lab.local","state":"active","healthy":true,"services":{"owa":true,"ecp":false}}]"#,
        );
        let got = fetch_member_health(addr, Duration::from_secs(10)).unwrap();
        assert_eq!(
            got,
            [MemberHealth {
                name: "EX1".into(),
                state: "active".into(),
                healthy: true,
                services: [("owa".to_string(), true), ("ecp".to_string(), false)]
                    .into_iter()
                    .collect(),
            }]
        );
    }

    #[test]
    fn a_bad_answer_is_reported() {
        let addr = serve_once("500 Internal Server Error", "{}");
        let got = fetch_member_health(addr, Duration::from_secs(10));
        assert!(matches!(got, Err(Unknown::BadAnswer(_))), "{got:?}");
    }

    #[test]
    fn nothing_listening_is_not_running() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        assert_eq!(
            fetch_member_health(addr, Duration::from_secs(10)),
            Err(Unknown::NotRunning)
        );
        assert_eq!(
            connect_address("0.0.0.0:9090".parse().unwrap()),
            "127.0.0.1:9090".parse().unwrap()
        );
        assert_eq!(
            connect_address("[::]:9090".parse().unwrap()),
            "[::1]:9090".parse().unwrap()
        );
    }
}
