//! One SMTP session as a server speaks it (RFC 5321), for any [`Sink`]
//! (the hub, the external system): the greeting (or `421` when the sink
//! refuses), an optional PROXY v2 header, then commands with PIPELINING
//! (replies are sent when the client's pipeline is drained), STARTTLS
//! (RFC 3207: what the client sent after the command is dropped, the
//! session starts over), `SIZE` (RFC 1870) and 8BITMIME. Lines longer
//! than 1000 octets get `500`, commands out of sequence `503`, bad
//! arguments `501`. `DATA` is written to a spool file as it arrives
//! (dot-stuffing undone, the `Received:` field first), never held whole;
//! over the size limit the rest is read and dropped, then `552`.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;

use super::command::{self, Command, Refused};
use super::lines::{read_line, Line, MAX_LINE};
use super::proxy_header::{self, Proxied};
use super::stream::Conn;

/// How long a client may stay silent (a command, a data line): 5 minutes
/// (RFC 5321 4.5.3.2 asks at least that).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a TLS handshake may take: 30 s.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most recipients per message: 100 (RFC 5321 4.5.3.1.8's minimum).
const MAX_RECIPIENTS: usize = 100;

/// A reply: its code and text (lines separated by `\n`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    pub fn new(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            text: text.into(),
        }
    }

    /// Appends the reply's wire form (multi-line with `-`).
    fn write_to(&self, out: &mut Vec<u8>) {
        let lines: Vec<&str> = self.text.split('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 < lines.len() { '-' } else { ' ' };
            out.extend_from_slice(format!("{}{sep}{line}\r\n", self.code).as_bytes());
        }
    }
}

/// A message's envelope, as the session learnt it.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The reverse path (empty for `<>`).
    pub from: String,
    pub rcpts: Vec<String>,
    pub helo: String,
    /// The client: the PROXY header's when sent, else the peer's.
    pub client: IpAddr,
    pub esmtp: bool,
    pub tls: bool,
    /// `XSHADOW`: the message is a shadow copy for (primary hub, its id,
    /// already delivered).
    pub shadow: Option<(String, String, bool)>,
}

/// A message's data on disk: the `Received:` field, then the data as sent
/// (dot-stuffing undone), flushed and fsynced.
#[derive(Debug)]
pub struct Spooled {
    pub id: String,
    pub path: PathBuf,
    /// Octets of data (without the `Received:` field).
    pub size: u64,
}

/// What a session serves mail into.
pub trait Sink: Send + Sync + 'static {
    /// The greeting's text (`220 <text>`), or the reply that refuses the
    /// session (`421`).
    fn greeting(&self) -> Result<String, Reply>;
    /// The fqdn the server names itself by (EHLO answer, `Received:`).
    fn fqdn(&self) -> &str;
    /// What `Received:` says after the fqdn, in parentheses (`EX1 hub
    /// transport`).
    fn trace_comment(&self) -> String;
    /// EHLO keywords beyond the standard ones.
    fn extensions(&self) -> Vec<String> {
        Vec::new()
    }
    /// The largest message taken, octets.
    fn max_size(&self) -> u64;
    /// Where data is spooled while it arrives.
    fn spool_dir(&self) -> PathBuf;
    /// `250` for a recipient taken, else the refusal (`550` unknown).
    fn recipient(&self, rcpt: &str, env: &Envelope) -> Result<(), Reply>;
    /// Takes a whole message; the reply to `DATA`. The spool file is the
    /// sink's from here (to move or remove).
    fn accept(&self, env: Envelope, data: Spooled) -> impl Future<Output = Reply> + Send;
    /// `XDISCARD`: the primary delivered the message whose shadow this is.
    fn discard(&self, _primary: String, _id: String) -> impl Future<Output = Reply> + Send {
        async { Reply::new(500, "5.5.1 Command unrecognized") }
    }
}

/// Per-session state.
struct State {
    helo: Option<(String, bool)>,
    from: Option<String>,
    rcpts: Vec<String>,
    shadow: Option<(String, String, bool)>,
}

impl State {
    fn new() -> State {
        State {
            helo: None,
            from: None,
            rcpts: Vec::new(),
            shadow: None,
        }
    }

    fn reset_transaction(&mut self) {
        self.from = None;
        self.rcpts.clear();
        self.shadow = None;
    }
}

/// Serves one connection until QUIT, the client goes, or it idles out.
pub async fn serve<S: Sink>(
    sink: Arc<S>,
    tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
) {
    let _ = tcp.set_nodelay(true);
    if let Err(e) = run(&*sink, tcp, peer, tls).await {
        tracing::debug!(%peer, error = %e, "SMTP session ended");
    }
}

async fn run<S: Sink>(
    sink: &S,
    mut tcp: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(512);
    match sink.greeting() {
        Ok(text) => Reply::new(220, text).write_to(&mut out),
        Err(refusal) => {
            refusal.write_to(&mut out);
            tcp.write_all(&out).await?;
            let _ = tcp.shutdown().await;
            return Ok(());
        }
    }
    tcp.write_all(&out).await?;
    out.clear();
    let mut r = BufReader::new(Conn::Plain(tcp));
    let mut client = peer.ip().to_canonical();
    match tokio::time::timeout(IDLE_TIMEOUT, proxy_header::read(&mut r)).await {
        Ok(Ok(Proxied::Client(addr))) => client = addr.ip(),
        Ok(Ok(Proxied::Local | Proxied::None)) => {}
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "bad PROXY header");
            Reply::new(500, "5.5.2 Malformed PROXY header").write_to(&mut out);
            r.get_mut().write_all(&out).await?;
            return Ok(());
        }
        Err(_) => return Ok(()),
    }
    let mut st = State::new();
    loop {
        if r.buffer().is_empty() && !out.is_empty() {
            r.get_mut().write_all(&out).await?;
            r.get_mut().flush().await?;
            out.clear();
        }
        let line = match tokio::time::timeout(IDLE_TIMEOUT, read_line(&mut r, MAX_LINE)).await {
            Ok(line) => line?,
            Err(_) => {
                Reply::new(421, format!("4.4.2 {} idle too long, closing", sink.fqdn()))
                    .write_to(&mut out);
                break;
            }
        };
        let line = match line {
            Line::Closed => return Ok(()),
            Line::TooLong => {
                Reply::new(500, "5.5.2 Line too long").write_to(&mut out);
                continue;
            }
            Line::Text(l) => l,
        };
        let cmd = match command::parse(&line) {
            Ok(c) => c,
            Err(Refused::Unknown) => {
                Reply::new(500, "5.5.1 Command unrecognized").write_to(&mut out);
                continue;
            }
            Err(Refused::Syntax(what)) => {
                Reply::new(501, format!("5.5.4 Syntax error: {what}")).write_to(&mut out);
                continue;
            }
            Err(Refused::Parameter(p)) => {
                Reply::new(555, format!("5.5.4 Unsupported parameter {p}")).write_to(&mut out);
                continue;
            }
        };
        let tls_on = r.get_ref().is_tls();
        let reply = match cmd {
            Command::Ehlo(name) => {
                st.reset_transaction();
                st.helo = Some((name, true));
                let mut lines = vec![
                    format!("{} Hello [{client}]", sink.fqdn()),
                    "PIPELINING".to_string(),
                    format!("SIZE {}", sink.max_size()),
                    "8BITMIME".to_string(),
                    "ENHANCEDSTATUSCODES".to_string(),
                ];
                if tls.is_some() && !tls_on {
                    lines.push("STARTTLS".into());
                }
                lines.extend(sink.extensions());
                Reply::new(250, lines.join("\n"))
            }
            Command::Helo(name) => {
                st.reset_transaction();
                st.helo = Some((name, false));
                Reply::new(250, format!("{} Hello [{client}]", sink.fqdn()))
            }
            Command::Mail { from, size } => {
                if st.helo.is_none() {
                    Reply::new(503, "5.5.1 Send HELO or EHLO first")
                } else if st.from.is_some() {
                    Reply::new(503, "5.5.1 Sender already given")
                } else if size.is_some_and(|s| s > sink.max_size()) {
                    Reply::new(552, "5.3.4 Message size exceeds fixed maximum message size")
                } else {
                    st.from = Some(from);
                    Reply::new(250, "2.1.0 Sender OK")
                }
            }
            Command::Rcpt(to) => {
                if st.from.is_none() {
                    Reply::new(503, "5.5.1 Need MAIL before RCPT")
                } else if st.rcpts.len() >= MAX_RECIPIENTS {
                    Reply::new(452, "4.5.3 Too many recipients")
                } else {
                    let env = envelope(&st, client, tls_on);
                    match sink.recipient(&to, &env) {
                        Ok(()) => {
                            if !st.rcpts.iter().any(|r| r.eq_ignore_ascii_case(&to)) {
                                st.rcpts.push(to);
                            }
                            Reply::new(250, "2.1.5 Recipient OK")
                        }
                        Err(refusal) => refusal,
                    }
                }
            }
            Command::Data => {
                if st.from.is_none() {
                    Reply::new(503, "5.5.1 Need MAIL command")
                } else if st.rcpts.is_empty() {
                    Reply::new(503, "5.5.1 No valid recipients")
                } else {
                    Reply::new(354, "Start mail input; end with <CRLF>.<CRLF>").write_to(&mut out);
                    r.get_mut().write_all(&out).await?;
                    r.get_mut().flush().await?;
                    out.clear();
                    let env = envelope(&st, client, tls_on);
                    st.reset_transaction();
                    match receive(sink, &mut r, env).await? {
                        Some(reply) => reply,
                        None => return Ok(()),
                    }
                }
            }
            Command::Rset => {
                st.reset_transaction();
                Reply::new(250, "2.0.0 Reset OK")
            }
            Command::Noop => Reply::new(250, "2.0.0 OK"),
            Command::Vrfy => Reply::new(
                252,
                "2.1.5 Cannot VRFY user, but will accept message and attempt delivery",
            ),
            Command::Quit => {
                Reply::new(221, format!("2.0.0 {} closing connection", sink.fqdn()))
                    .write_to(&mut out);
                break;
            }
            Command::StartTls => match &tls {
                None => Reply::new(454, "4.7.0 TLS not available"),
                Some(_) if tls_on => Reply::new(503, "5.5.1 TLS already active"),
                Some(acceptor) => {
                    Reply::new(220, "2.0.0 Ready to start TLS").write_to(&mut out);
                    r.get_mut().write_all(&out).await?;
                    r.get_mut().flush().await?;
                    out.clear();
                    // Whatever the client pipelined after STARTTLS is
                    // dropped (RFC 3207 section 4.2).
                    let Conn::Plain(tcp) = r.into_inner() else {
                        return Ok(());
                    };
                    let stream =
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(%peer, error = %e, "STARTTLS handshake failed");
                                return Ok(());
                            }
                            Err(_) => return Ok(()),
                        };
                    r = BufReader::new(Conn::Tls(Box::new(stream)));
                    st = State::new();
                    continue;
                }
            },
            Command::XShadow {
                primary,
                id,
                delivered,
            } => {
                if !sink.extensions().iter().any(|e| e == "XSHADOW") {
                    Reply::new(500, "5.5.1 Command unrecognized")
                } else if st.helo.is_none() || st.from.is_some() {
                    Reply::new(503, "5.5.1 XSHADOW goes after EHLO, before MAIL")
                } else {
                    st.shadow = Some((primary, id, delivered));
                    Reply::new(250, "2.0.0 Shadow copy expected")
                }
            }
            Command::XDiscard { primary, id } => sink.discard(primary, id).await,
        };
        reply.write_to(&mut out);
    }
    r.get_mut().write_all(&out).await?;
    let _ = r.get_mut().shutdown().await;
    Ok(())
}

fn envelope(st: &State, client: IpAddr, tls: bool) -> Envelope {
    let (helo, esmtp) = st.helo.clone().unwrap_or_default();
    Envelope {
        from: st.from.clone().unwrap_or_default(),
        rcpts: st.rcpts.clone(),
        helo,
        client,
        esmtp,
        tls,
        shadow: st.shadow.clone(),
    }
}

/// How a message's data ended.
enum DataEnd {
    Complete,
    TooBig,
    LineTooLong,
}

/// Reads DATA into a spool file and hands it to the sink; `None` when the
/// client went away before the final dot.
async fn receive<S: Sink>(
    sink: &S,
    r: &mut BufReader<Conn>,
    env: Envelope,
) -> std::io::Result<Option<Reply>> {
    let id = super::new_id();
    let dir = sink.spool_dir();
    tokio::fs::create_dir_all(&dir).await?;
    let path = dir.join(format!("{id}.eml"));
    let trace = super::received::field(&super::received::Trace {
        helo: &env.helo,
        client: env.client,
        by_fqdn: sink.fqdn(),
        comment: &sink.trace_comment(),
        esmtp: env.esmtp,
        tls: env.tls,
        id: &id,
        recipient: (env.rcpts.len() == 1).then(|| env.rcpts[0].as_str()),
        when: crate::mock::format::clock::unix_now(),
    });
    let file = tokio::fs::File::create(&path).await?;
    let mut w = BufWriter::new(file);
    // A shadow copy is the primary's message as it was: no second trace.
    if env.shadow.is_none() {
        w.write_all(trace.as_bytes()).await?;
    }
    let max = sink.max_size();
    let mut size: u64 = 0;
    let mut end = DataEnd::Complete;
    loop {
        let line = match tokio::time::timeout(IDLE_TIMEOUT, read_line(r, MAX_LINE)).await {
            Ok(l) => l?,
            Err(_) => Line::Closed,
        };
        let line = match line {
            Line::Closed => {
                drop(w);
                let _ = tokio::fs::remove_file(&path).await;
                return Ok(None);
            }
            Line::TooLong => {
                end = DataEnd::LineTooLong;
                continue;
            }
            Line::Text(l) => l,
        };
        if line == b"." {
            break;
        }
        let text = line.strip_prefix(b".").unwrap_or(&line);
        size += text.len() as u64 + 2;
        if size > max {
            end = DataEnd::TooBig;
        }
        if matches!(end, DataEnd::Complete) {
            w.write_all(text).await?;
            w.write_all(b"\r\n").await?;
        }
    }
    let refusal = match end {
        DataEnd::Complete => None,
        DataEnd::TooBig => Some(Reply::new(
            552,
            "5.3.4 Message size exceeds fixed maximum message size",
        )),
        DataEnd::LineTooLong => Some(Reply::new(500, "5.5.2 Line too long")),
    };
    if let Some(refusal) = refusal {
        drop(w);
        let _ = tokio::fs::remove_file(&path).await;
        return Ok(Some(refusal));
    }
    w.flush().await?;
    let file = w.into_inner();
    file.sync_all().await?;
    drop(file);
    Ok(Some(sink.accept(env, Spooled { id, path, size }).await))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_multiline() {
        let mut out = Vec::new();
        Reply::new(250, "a\nb\nc").write_to(&mut out);
        assert_eq!(out, b"250-a\r\n250-b\r\n250 c\r\n");
    }
}
