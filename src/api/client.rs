//! One client for the admin API: used by `casarray status`, `array get` and
//! the database commands. Plain HTTP/1.1 to `listen.admin`, bounded in time
//! and in answer size, with the bearer token for calls that change things.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::ErrorView;

/// Largest answer read: 4 MiB.
const MAX_BODY: usize = 4 << 20;

/// Why a call to the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--admin {text}: not a HOST:PORT address")]
    BadAddress {
        text: String,
        #[source]
        source: Option<std::io::Error>,
    },
    /// Nothing listens there: the array is not running (or elsewhere).
    #[error("cannot reach the admin API at {addr} (is the array running? see listen.admin)")]
    Unreachable {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("admin API at {addr}: no answer within {timeout:?}")]
    TimedOut { addr: SocketAddr, timeout: Duration },
    #[error("admin API at {addr}: {method} {path} failed")]
    Http {
        addr: SocketAddr,
        method: Method,
        path: String,
        #[source]
        source: hyper::Error,
    },
    /// The API answered with an error status; `message` is its `error`.
    #[error("admin API at {addr}: {method} {path} answered {status}: {message}")]
    Status {
        addr: SocketAddr,
        method: Method,
        path: String,
        status: StatusCode,
        message: String,
    },
    #[error("admin API at {addr}: {method} {path}: unexpected answer")]
    Json {
        addr: SocketAddr,
        method: Method,
        path: String,
        #[source]
        source: serde_json::Error,
    },
}

impl ClientError {
    /// Nothing answered: the array is not running there, or not in time.
    pub fn is_not_running(&self) -> bool {
        matches!(
            self,
            ClientError::Unreachable { .. } | ClientError::TimedOut { .. }
        )
    }
}

/// A client of one array's admin API.
#[derive(Debug, Clone)]
pub struct AdminClient {
    addr: SocketAddr,
    timeout: Duration,
    token: Option<String>,
}

impl AdminClient {
    /// A client for the admin listener at `addr` (a wildcard listen address
    /// is taken as loopback); each call is bounded by `timeout`.
    pub fn new(addr: SocketAddr, timeout: Duration) -> Self {
        AdminClient {
            addr: connect_address(addr),
            timeout,
            token: None,
        }
    }

    /// A client for `text`: `HOST:PORT`, `http://HOST:PORT/` or a wildcard
    /// listen address.
    pub async fn resolve(text: &str, timeout: Duration) -> Result<Self, ClientError> {
        let hostport = text
            .strip_prefix("http://")
            .unwrap_or(text)
            .trim_end_matches('/');
        let bad = |source| ClientError::BadAddress {
            text: text.to_owned(),
            source,
        };
        let addr = tokio::net::lookup_host(hostport)
            .await
            .map_err(|e| bad(Some(e)))?
            .next()
            .ok_or_else(|| bad(None))?;
        Ok(AdminClient::new(addr, timeout))
    }

    /// Sends `token` as a bearer token from now on.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Where the client connects.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `GET path`, parsed.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.call(Method::GET, path, None::<&()>).await
    }

    /// `method path` with `body` as JSON (when given), parsed.
    pub async fn call<T: DeserializeOwned, B: Serialize>(
        &self,
        method: Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let (status, bytes) = tokio::time::timeout(self.timeout, self.send(&method, path, body))
            .await
            .map_err(|_| ClientError::TimedOut {
                addr: self.addr,
                timeout: self.timeout,
            })??;
        if !status.is_success() {
            let message = serde_json::from_slice::<ErrorView>(&bytes)
                .map(|e| e.error)
                .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
            return Err(ClientError::Status {
                addr: self.addr,
                method,
                path: path.to_owned(),
                status,
                message,
            });
        }
        serde_json::from_slice(&bytes).map_err(|source| ClientError::Json {
            addr: self.addr,
            method,
            path: path.to_owned(),
            source,
        })
    }

    async fn send<B: Serialize>(
        &self,
        method: &Method,
        path: &str,
        body: Option<&B>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let addr = self.addr;
        let http = |source| ClientError::Http {
            addr,
            method: method.clone(),
            path: path.to_owned(),
            source,
        };
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Unreachable { addr, source })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        let conn = tokio::spawn(conn);
        let body = match body {
            Some(b) => Bytes::from(serde_json::to_vec(b).map_err(|source| ClientError::Json {
                addr,
                method: method.clone(),
                path: path.to_owned(),
                source,
            })?),
            None => Bytes::new(),
        };
        let mut request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, addr.to_string())
            .header(header::ACCEPT, "application/json");
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        if let Some(token) = &self.token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ClientError::Status {
                addr,
                method: method.clone(),
                path: path.to_owned(),
                status: StatusCode::BAD_REQUEST,
                message: format!("cannot make the request: {e}"),
            })?;
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_BODY)
            .collect()
            .await
            .map_err(|e| ClientError::Status {
                addr,
                method: method.clone(),
                path: path.to_owned(),
                status,
                message: format!("the answer could not be read: {e}"),
            })?
            .to_bytes();
        conn.abort();
        Ok((status, bytes))
    }
}

/// Where to connect for a listen address: a wildcard becomes loopback.
pub fn connect_address(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Runs `fut` to completion on a thread of its own with a current-thread
/// runtime: for sync callers, whether or not a runtime already runs.
pub fn block_on<T: Send + 'static>(
    fut: impl std::future::Future<Output = T> + Send + 'static,
) -> std::io::Result<T> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        Ok(rt.block_on(fut))
    })
    .join()
    .unwrap_or_else(|_| Err(std::io::Error::other("the admin API call panicked")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// A one-shot HTTP server answering `status` and `body`; returns the
    /// request head it got through the join handle.
    fn serve_once(
        status: &'static str,
        body: &'static str,
    ) -> (SocketAddr, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 4096];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
            let answer = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(answer.as_bytes()).unwrap();
            String::from_utf8_lossy(&got).into_owned()
        });
        (addr, t)
    }

    #[tokio::test]
    async fn reads_json_and_sends_the_token() {
        let (addr, head) = serve_once("200 OK", r#"[{"name":"EX1","services":{"owa":true}}]"#);
        let client = AdminClient::new(addr, Duration::from_secs(10)).with_token("s3cret");
        let got: Vec<super::super::MemberView> = client.get("/api/members").await.unwrap();
        assert_eq!(got[0].name, "EX1");
        assert!(got[0].services["owa"]);
        let head = head.join().unwrap();
        assert!(head.starts_with("GET /api/members HTTP/1.1\r\n"), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer s3cret"),
            "{head}"
        );
    }

    #[tokio::test]
    async fn an_error_answer_carries_its_message() {
        let (addr, _) = serve_once("404 Not Found", r#"{"error":"no member named \"EX9\""}"#);
        let e = AdminClient::new(addr, Duration::from_secs(10))
            .get::<serde_json::Value>("/api/members/EX9")
            .await
            .unwrap_err();
        assert!(
            matches!(
                e,
                ClientError::Status {
                    status: StatusCode::NOT_FOUND,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().ends_with(": no member named \"EX9\""), "{e}");
        assert!(!e.is_not_running());
    }

    #[tokio::test]
    async fn nothing_listening_is_not_running() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let e = AdminClient::new(addr, Duration::from_secs(10))
            .get::<serde_json::Value>("/api/members")
            .await
            .unwrap_err();
        assert!(e.is_not_running(), "{e}");
        assert!(e.to_string().contains("cannot reach the admin API"), "{e}");
    }

    #[tokio::test]
    async fn resolves_the_usual_spellings() {
        let want: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        for a in ["127.0.0.1:9090", "http://127.0.0.1:9090/", "0.0.0.0:9090"] {
            let c = AdminClient::resolve(a, Duration::from_secs(1))
                .await
                .unwrap();
            assert_eq!(c.addr(), want, "{a}");
        }
        assert!(AdminClient::resolve("no-port", Duration::from_secs(1))
            .await
            .is_err());
        assert_eq!(
            connect_address("[::]:9090".parse().unwrap()),
            "[::1]:9090".parse().unwrap()
        );
    }
}
