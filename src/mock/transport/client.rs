//! The SMTP client side a hub speaks: the send connector delivering to a
//! domain's mail host, a shadow copy sent to a peer hub (`XSHADOW`), the
//! discard that follows delivery (`XDISCARD`), and the external system
//! relaying to the array. Each step is bounded by [`STEP_TIMEOUT`].

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::lines::{read_line, Line};
use super::session::Reply;

/// Bound on connecting and on each reply: 30 s.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);
/// Largest reply line read: 1000 octets (longer is an error).
const MAX_REPLY_LINE: usize = 1000;

/// Why a transfer failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {0}")]
    Connect(SocketAddr, #[source] std::io::Error),
    #[error("{0} did not answer in time")]
    Timeout(SocketAddr),
    #[error("connection to {0} failed")]
    Io(SocketAddr, #[source] std::io::Error),
    #[error("{addr} answered {} {}", .reply.code, .reply.text)]
    Refused { addr: SocketAddr, reply: Reply },
    #[error("{0} sent a malformed reply")]
    Malformed(SocketAddr),
}

/// One open session.
pub struct Client {
    addr: SocketAddr,
    io: BufReader<TcpStream>,
}

impl Client {
    /// Connects and reads a `220` greeting.
    pub async fn connect(addr: SocketAddr, timeout: Duration) -> Result<Client, ClientError> {
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| ClientError::Timeout(addr))?
            .map_err(|e| ClientError::Connect(addr, e))?;
        let _ = tcp.set_nodelay(true);
        let mut c = Client {
            addr,
            io: BufReader::new(tcp),
        };
        let greeting = tokio::time::timeout(timeout, c.reply())
            .await
            .map_err(|_| ClientError::Timeout(addr))??;
        c.expect(greeting, 220)?;
        Ok(c)
    }

    async fn reply(&mut self) -> Result<Reply, ClientError> {
        let addr = self.addr;
        let mut text = Vec::new();
        loop {
            let line = tokio::time::timeout(STEP_TIMEOUT, read_line(&mut self.io, MAX_REPLY_LINE))
                .await
                .map_err(|_| ClientError::Timeout(addr))?
                .map_err(|e| ClientError::Io(addr, e))?;
            let Line::Text(line) = line else {
                return Err(ClientError::Malformed(addr));
            };
            let line = String::from_utf8_lossy(&line).into_owned();
            let code: u16 = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or(ClientError::Malformed(addr))?;
            text.push(line.get(4..).unwrap_or("").to_string());
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(Reply::new(code, text.join("\n")));
            }
        }
    }

    fn expect(&self, reply: Reply, code: u16) -> Result<Reply, ClientError> {
        if reply.code == code {
            Ok(reply)
        } else {
            Err(ClientError::Refused {
                addr: self.addr,
                reply,
            })
        }
    }

    /// Sends one command line and reads its reply.
    pub async fn command(&mut self, line: &str) -> Result<Reply, ClientError> {
        let addr = self.addr;
        self.io
            .get_mut()
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| ClientError::Io(addr, e))?;
        self.reply().await
    }

    /// `EHLO name`, expecting 250.
    pub async fn ehlo(&mut self, name: &str) -> Result<Reply, ClientError> {
        let r = self.command(&format!("EHLO {name}")).await?;
        self.expect(r, 250)
    }

    /// One message: MAIL, each RCPT, DATA with the file at `data`
    /// (dot-stuffed on the way). Returns the recipients refused (with
    /// their replies); `Err` when the message as a whole was not taken.
    pub async fn send(
        &mut self,
        from: &str,
        rcpts: &[String],
        data: &Path,
    ) -> Result<Vec<(String, Reply)>, ClientError> {
        let addr = self.addr;
        let file = tokio::fs::File::open(data)
            .await
            .map_err(|e| ClientError::Io(addr, e))?;
        self.send_reader(from, rcpts, file).await
    }

    /// [`Client::send`] with the message read from `data`.
    pub async fn send_reader<R: tokio::io::AsyncRead + Unpin>(
        &mut self,
        from: &str,
        rcpts: &[String],
        data: R,
    ) -> Result<Vec<(String, Reply)>, ClientError> {
        let r = self.command(&format!("MAIL FROM:<{from}>")).await?;
        self.expect(r, 250)?;
        let mut refused = Vec::new();
        for rcpt in rcpts {
            let r = self.command(&format!("RCPT TO:<{rcpt}>")).await?;
            if r.code != 250 && r.code != 251 {
                refused.push((rcpt.clone(), r));
            }
        }
        if refused.len() == rcpts.len() {
            let _ = self.command("RSET").await;
            return Ok(refused);
        }
        let r = self.command("DATA").await?;
        self.expect(r, 354)?;
        let addr = self.addr;
        let mut lines = BufReader::new(data);
        let mut line = Vec::new();
        let w = self.io.get_mut();
        let mut out = tokio::io::BufWriter::new(w);
        loop {
            line.clear();
            let n = lines
                .read_until(b'\n', &mut line)
                .await
                .map_err(|e| ClientError::Io(addr, e))?;
            if n == 0 {
                break;
            }
            let text = line.strip_suffix(b"\n").unwrap_or(&line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            let io_err = |e| ClientError::Io(addr, e);
            if text.first() == Some(&b'.') {
                out.write_all(b".").await.map_err(io_err)?;
            }
            out.write_all(text).await.map_err(io_err)?;
            out.write_all(b"\r\n").await.map_err(io_err)?;
        }
        out.write_all(b".\r\n")
            .await
            .map_err(|e| ClientError::Io(addr, e))?;
        out.flush().await.map_err(|e| ClientError::Io(addr, e))?;
        let r = self.reply().await?;
        self.expect(r, 250)?;
        Ok(refused)
    }

    /// `QUIT`, not waiting long for the answer.
    pub async fn quit(mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), self.command("QUIT")).await;
    }
}
