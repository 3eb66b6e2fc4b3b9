//! `[smtp] health = "ehlo"`: a hub is healthy when it greets with 220,
//! answers `EHLO` with 250, and is then told `QUIT` (so it logs an ordinary
//! session, not a broken one). A hub that greets or answers 421 or another
//! 4xx/5xx is out of SMTP only; its HTTP services keep their own checks.
//! With `[smtp] proxy_protocol`, a PROXY v2 LOCAL header goes first.

use std::net::SocketAddr;

use tokio::io::AsyncWriteExt;

use super::Check;
use crate::errors::error_chain;
use crate::upstream::dial::Dialer;
use crate::upstream::proxy_protocol;
use crate::upstream::smtp::read_reply;

/// How long the goodbye may take: 5 s.
const QUIT_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// The EHLO probe of one hub.
pub struct EhloCheck {
    dialer: Dialer,
    address: SocketAddr,
    /// The name the array says EHLO with (its fqdn).
    helo_name: String,
    proxy_protocol: bool,
}

impl EhloCheck {
    pub fn new(dialer: Dialer, address: SocketAddr, helo_name: &str, proxy_protocol: bool) -> Self {
        EhloCheck {
            dialer,
            address,
            helo_name: helo_name.to_owned(),
            proxy_protocol,
        }
    }
}

impl Check for EhloCheck {
    async fn probe(&mut self) -> Result<String, String> {
        let mut io = self
            .dialer
            .dial(self.address, None)
            .await
            .map_err(|e| error_chain(&e))?;
        let fail = |what: &str, e: &dyn std::error::Error| format!("{what}: {}", error_chain(e));
        if self.proxy_protocol {
            io.write_all(&proxy_protocol::v2_local())
                .await
                .map_err(|e| fail("PROXY header", &e))?;
        }
        let greeting = read_reply(&mut io)
            .await
            .map_err(|e| fail("greeting", &e))?;
        if greeting.code != 220 {
            return Err(format!("greeting {} {}", greeting.code, greeting.text()));
        }
        io.write_all(format!("EHLO {}\r\n", self.helo_name).as_bytes())
            .await
            .map_err(|e| fail("EHLO", &e))?;
        let ehlo = read_reply(&mut io).await.map_err(|e| fail("EHLO", &e))?;
        // QUIT whatever EHLO said, and read the 221 before closing (a close
        // with the answer unread would reset the hub's side), outside the
        // probe's time.
        tokio::spawn(async move {
            if io.write_all(b"QUIT\r\n").await.is_ok() {
                let _ = tokio::time::timeout(QUIT_WAIT, read_reply(&mut io)).await;
            }
        });
        if ehlo.code != 250 {
            return Err(format!("EHLO answered {} {}", ehlo.code, ehlo.text()));
        }
        Ok("220, EHLO 250".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;

    /// A hub that greets with `greeting` and answers EHLO with `ehlo`;
    /// returns what it was sent.
    async fn hub(
        greeting: &'static str,
        ehlo: &'static str,
    ) -> (SocketAddr, tokio::task::JoinHandle<Vec<u8>>) {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let t = tokio::spawn(async move {
            let (mut s, _) = l.accept().await.unwrap();
            s.write_all(greeting.as_bytes()).await.unwrap();
            let mut got = Vec::new();
            let mut buf = [0u8; 256];
            loop {
                let n = s.read(&mut buf).await.unwrap_or(0);
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
                if got.ends_with(b"\r\n")
                    && got.windows(4).any(|w| w == b"EHLO")
                    && !got.ends_with(b"QUIT\r\n")
                {
                    s.write_all(ehlo.as_bytes()).await.unwrap();
                }
                if got.ends_with(b"QUIT\r\n") {
                    let _ = s.write_all(b"221 bye\r\n").await;
                    break;
                }
            }
            got
        });
        (addr, t)
    }

    fn check(addr: SocketAddr, proxy: bool) -> EhloCheck {
        EhloCheck::new(
            Dialer::plain(std::time::Duration::from_secs(5)),
            addr,
            "mail.lab.com",
            proxy,
        )
    }

    #[tokio::test]
    async fn a_greeting_hub_is_healthy_and_told_quit() {
        let (addr, sent) = hub("220 ex1 ESMTP\r\n", "250-ex1\r\n250 PIPELINING\r\n").await;
        assert_eq!(check(addr, false).probe().await, Ok("220, EHLO 250".into()));
        assert_eq!(sent.await.unwrap(), b"EHLO mail.lab.com\r\nQUIT\r\n");
    }

    #[tokio::test]
    async fn a_421_hub_is_not() {
        let (addr, _) = hub("421 4.3.2 shutting down\r\n", "").await;
        let why = check(addr, false).probe().await.unwrap_err();
        assert_eq!(why, "greeting 421 4.3.2 shutting down");
        let (addr, _) = hub("220 ex1\r\n", "452 4.3.1 out of disk\r\n").await;
        let why = check(addr, false).probe().await.unwrap_err();
        assert_eq!(why, "EHLO answered 452 4.3.1 out of disk");
    }

    #[tokio::test]
    async fn with_proxy_protocol_a_local_header_goes_first() {
        let (addr, sent) = hub("220 ex1\r\n", "250 ex1\r\n").await;
        assert!(check(addr, true).probe().await.is_ok());
        let sent = sent.await.unwrap();
        assert_eq!(&sent[..16], &proxy_protocol::v2_local());
        assert_eq!(&sent[16..], b"EHLO mail.lab.com\r\nQUIT\r\n");
    }
}
