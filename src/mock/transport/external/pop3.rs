//! POP3 (RFC 1939) on the external system: `USER`/`PASS`, `STAT`, `LIST`,
//! `UIDL`, `RETR` (streamed from the file, dot-stuffed), `DELE`, `NOOP`,
//! `RSET`, `QUIT` (deletions happen there), and `CAPA` (RFC 2449) so that
//! curl's `pop3://` finds USER. Commands out of state get `-ERR`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;

use super::maildrop::Stored;
use super::External;
use crate::mock::transport::lines::{read_line, Line, MAX_LINE};

/// How long a client may stay silent: 10 minutes (RFC 1939's minimum).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

struct Opened {
    local: String,
    messages: Vec<Stored>,
    deleted: Vec<bool>,
}

impl Opened {
    /// Message `arg` (1-based, not deleted).
    fn get(&self, arg: &str) -> Result<(usize, &Stored), &'static str> {
        let n: usize = arg.trim().parse().map_err(|_| "-ERR no such message")?;
        let i = n.checked_sub(1).ok_or("-ERR no such message")?;
        match (self.messages.get(i), self.deleted.get(i)) {
            (Some(m), Some(false)) => Ok((n, m)),
            (Some(_), _) => Err("-ERR message deleted"),
            _ => Err("-ERR no such message"),
        }
    }
}

/// Serves one POP3 connection.
pub async fn serve(ext: Arc<External>, tcp: TcpStream, peer: SocketAddr) {
    if let Err(e) = run(&ext, tcp).await {
        tracing::debug!(%peer, error = %e, "POP3 session ended");
    }
}

async fn run(ext: &External, tcp: TcpStream) -> std::io::Result<()> {
    let _ = tcp.set_nodelay(true);
    let mut r = BufReader::new(tcp);
    let mut out = format!("+OK {} POP3 server ready\r\n", ext.domain).into_bytes();
    let mut user: Option<String> = None;
    let mut session: Option<Opened> = None;
    loop {
        if !out.is_empty() {
            r.get_mut().write_all(&out).await?;
            out.clear();
        }
        let line = match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut r, MAX_LINE)).await {
            Ok(l) => l?,
            Err(_) => return Ok(()),
        };
        let line = match line {
            Line::Closed => return Ok(()),
            Line::TooLong => {
                out.extend_from_slice(b"-ERR line too long\r\n");
                continue;
            }
            Line::Text(l) => String::from_utf8_lossy(&l).into_owned(),
        };
        let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
        let verb = verb.to_ascii_uppercase();
        let push = |out: &mut Vec<u8>, s: &str| {
            out.extend_from_slice(s.as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        match (verb.as_str(), session.as_mut()) {
            ("CAPA", _) => push(&mut out, "+OK Capability list follows\r\nUSER\r\nUIDL\r\n."),
            ("QUIT", None) => {
                push(&mut out, "+OK bye");
                break;
            }
            ("QUIT", Some(b)) => {
                let mut failed = false;
                for (m, d) in b.messages.iter().zip(&b.deleted) {
                    if *d && std::fs::remove_file(&m.path).is_err() {
                        failed = true;
                    }
                }
                push(
                    &mut out,
                    if failed {
                        "-ERR some messages not removed"
                    } else {
                        "+OK bye"
                    },
                );
                break;
            }
            ("NOOP", _) => push(&mut out, "+OK"),
            ("USER", None) => {
                user = Some(arg.trim().to_string());
                push(&mut out, "+OK send PASS");
            }
            ("PASS", None) => {
                let local = user.take().and_then(|u| ext.authenticate(&u, arg));
                match local {
                    Some(local) => {
                        let drops = ext.maildrops.clone();
                        let l = local.clone();
                        let messages = tokio::task::spawn_blocking(move || drops.list(&l))
                            .await
                            .map_err(std::io::Error::other)??;
                        let n = messages.len();
                        push(&mut out, &format!("+OK {local} has {n} messages"));
                        session = Some(Opened {
                            local,
                            deleted: vec![false; n],
                            messages,
                        });
                    }
                    None => push(&mut out, "-ERR authentication failed"),
                }
            }
            ("STAT", Some(b)) => {
                let (n, size) = live(b).fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.size));
                push(&mut out, &format!("+OK {n} {size}"));
            }
            ("LIST" | "UIDL", Some(b)) => {
                let show = |n: usize, m: &Stored| {
                    if verb == "LIST" {
                        format!("{n} {}", m.size)
                    } else {
                        format!("{n} {}", m.uid)
                    }
                };
                if arg.trim().is_empty() {
                    push(&mut out, "+OK");
                    for (n, m) in live(b) {
                        push(&mut out, &show(n, m));
                    }
                    push(&mut out, ".");
                } else {
                    match b.get(arg) {
                        Ok((n, m)) => push(&mut out, &format!("+OK {}", show(n, m))),
                        Err(e) => push(&mut out, e),
                    }
                }
            }
            ("RETR", Some(b)) => match b.get(arg) {
                Ok((_, m)) => {
                    let path = m.path.clone();
                    let size = m.size;
                    push(&mut out, &format!("+OK {size} octets"));
                    r.get_mut().write_all(&out).await?;
                    out.clear();
                    retr(r.get_mut(), &path).await?;
                }
                Err(e) => push(&mut out, e),
            },
            ("DELE", Some(b)) => match b.get(arg) {
                Ok((n, _)) => {
                    b.deleted[n - 1] = true;
                    push(&mut out, &format!("+OK message {n} deleted"));
                }
                Err(e) => push(&mut out, e),
            },
            ("RSET", Some(b)) => {
                b.deleted.iter_mut().for_each(|d| *d = false);
                push(&mut out, "+OK");
            }
            (_, None) => push(&mut out, "-ERR log in first (USER, PASS)"),
            (_, Some(b)) => {
                tracing::debug!(mailbox = %b.local, verb, "unknown POP3 command");
                push(&mut out, "-ERR unknown command");
            }
        }
    }
    r.get_mut().write_all(&out).await?;
    let _ = r.get_mut().shutdown().await;
    Ok(())
}

fn live(b: &Opened) -> impl Iterator<Item = (usize, &Stored)> {
    b.messages
        .iter()
        .zip(&b.deleted)
        .enumerate()
        .filter(|(_, (_, d))| !**d)
        .map(|(i, (m, _))| (i + 1, m))
}

/// Sends a message file dot-stuffed, then the terminating dot.
async fn retr(w: &mut TcpStream, path: &std::path::Path) -> std::io::Result<()> {
    let file = tokio::fs::File::open(path).await?;
    let mut lines = BufReader::new(file);
    let mut out = BufWriter::new(w);
    let mut line = Vec::new();
    loop {
        line.clear();
        if lines.read_until(b'\n', &mut line).await? == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.first() == Some(&b'.') {
            out.write_all(b".").await?;
        }
        out.write_all(text).await?;
        out.write_all(b"\r\n").await?;
    }
    out.write_all(b".\r\n").await?;
    out.flush().await
}
