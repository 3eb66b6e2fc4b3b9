//! The lesson's external mail system (its Windows 2003 POP3/SMTP server
//! for `test.com`): `casarray mock-external`. SMTP in on its own port
//! (mail for its domain is stored, deduplicated by Message-ID; mail for
//! any other domain is relayed, before the `250`, to `--relay`: the
//! array's SMTP address in the lab), and POP3 to read (`pop3`). Its one
//! mailbox is `carol@<domain>`, password `Carol!test1`.

mod maildrop;
mod pop3;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use super::client::Client;
use super::command::domain_of;
use super::message;
use super::session::{self, Envelope, Reply, Sink, Spooled};
use crate::listen::{accept_loop, Listener};
use maildrop::Maildrops;

/// The seeded mailboxes: (local part, password). The lab prints them;
/// they protect nothing real.
pub const EXTERNAL_USERS: &[(&str, &str)] = &[("carol", "Carol!test1")];

/// `casarray mock-external` flags.
#[derive(clap::Args, Debug, Clone)]
pub struct ExternalArgs {
    /// The mail domain the system serves.
    #[arg(long, default_value = "test.com")]
    pub domain: String,
    /// SMTP address; port 0 picks a free port (the readiness line says).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub smtp: SocketAddr,
    /// POP3 address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub pop3: SocketAddr,
    /// Where the mailboxes are kept (`DIR/<user>/*.eml`).
    #[arg(long)]
    pub store: PathBuf,
    /// Where mail for other domains goes (the array's SMTP address);
    /// without it such mail is refused (550).
    #[arg(long)]
    pub relay: Option<SocketAddr>,
    /// Largest message, octets; default 10 MiB.
    #[arg(long, default_value_t = super::DEFAULT_MAX_SIZE)]
    pub max_size: u64,
}

/// The running system.
pub struct External {
    domain: String,
    fqdn: String,
    relay: Option<SocketAddr>,
    maildrops: Maildrops,
    spool: PathBuf,
    max_size: u64,
}

impl External {
    /// The mailbox's local part for a logon (`carol` or `carol@domain`)
    /// and its password.
    fn authenticate(&self, logon: &str, password: &str) -> Option<String> {
        let logon = logon.trim().to_ascii_lowercase();
        let local = match logon.split_once('@') {
            Some((l, d)) if d == self.domain => l.to_string(),
            Some(_) => return None,
            None => logon,
        };
        EXTERNAL_USERS
            .iter()
            .find(|(u, p)| *u == local && *p == password)
            .map(|(u, _)| (*u).to_string())
    }

    fn local_part(&self, rcpt: &str) -> Option<String> {
        let (l, d) = rcpt.rsplit_once('@')?;
        let l = l.to_ascii_lowercase();
        (d.eq_ignore_ascii_case(&self.domain) && EXTERNAL_USERS.iter().any(|(u, _)| *u == l))
            .then_some(l)
    }

    async fn take(&self, env: &Envelope, data: &Spooled) -> anyhow::Result<Reply> {
        let (local, other): (Vec<String>, Vec<String>) = env
            .rcpts
            .iter()
            .cloned()
            .partition(|r| domain_of(r) == self.domain);
        if !other.is_empty() {
            let relay = self.relay.context("no relay")?;
            let mut c = Client::connect(relay, super::client::STEP_TIMEOUT).await?;
            c.ehlo(&self.fqdn).await?;
            let refused = c.send(&env.from, &other, &data.path).await?;
            c.quit().await;
            if let Some((rcpt, reply)) = refused.into_iter().next() {
                anyhow::bail!("the relay refused {rcpt}: {} {}", reply.code, reply.text);
            }
            tracing::info!(domain = %self.domain, rcpts = ?other, %relay, "relayed");
        }
        if !local.is_empty() {
            let raw = tokio::fs::read(&data.path).await?;
            let id = message::parse(&raw).message_id;
            let drops = self.maildrops.clone();
            let locals: Vec<String> = local.iter().filter_map(|r| self.local_part(r)).collect();
            let stored = tokio::task::spawn_blocking(move || {
                locals
                    .iter()
                    .map(|l| drops.store(l, id.as_deref(), &raw))
                    .collect::<std::io::Result<Vec<bool>>>()
            })
            .await??;
            tracing::info!(domain = %self.domain, rcpts = ?local, ?stored, "stored");
        }
        Ok(Reply::new(250, "2.6.0 Message accepted for delivery"))
    }
}

impl Sink for External {
    fn greeting(&self) -> Result<String, Reply> {
        Ok(format!(
            "{} ESMTP Service ready (casarray mock external system)",
            self.fqdn
        ))
    }

    fn fqdn(&self) -> &str {
        &self.fqdn
    }

    fn trace_comment(&self) -> String {
        format!("{} mail system", self.domain)
    }

    fn max_size(&self) -> u64 {
        self.max_size
    }

    fn spool_dir(&self) -> PathBuf {
        self.spool.clone()
    }

    fn recipient(&self, rcpt: &str, _env: &Envelope) -> Result<(), Reply> {
        if domain_of(rcpt) == self.domain {
            return match self.local_part(rcpt) {
                Some(_) => Ok(()),
                None => Err(Reply::new(550, "5.1.1 User unknown")),
            };
        }
        if self.relay.is_some() {
            return Ok(());
        }
        Err(Reply::new(550, "5.7.1 Unable to relay"))
    }

    async fn accept(&self, env: Envelope, data: Spooled) -> Reply {
        let reply = match self.take(&env, &data).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(domain = %self.domain, error = %format!("{e:#}"), "message not taken");
                Reply::new(451, "4.3.0 Temporary failure, try again")
            }
        };
        let _ = tokio::fs::remove_file(&data.path).await;
        reply
    }
}

struct Accepting {
    ext: Arc<External>,
    pop3: bool,
    conns: Mutex<JoinSet<()>>,
}

impl Listener for Accepting {
    fn accept(&self, stream: TcpStream, peer: SocketAddr) {
        let ext = Arc::clone(&self.ext);
        let mut set = self.conns.lock().unwrap_or_else(PoisonError::into_inner);
        while set.try_join_next().is_some() {}
        if self.pop3 {
            set.spawn(pop3::serve(ext, stream, peer));
        } else {
            set.spawn(session::serve(ext, stream, peer, None));
        }
    }
}

/// Runs the external system: binds, prints `<domain> (external): SMTP
/// ADDR, POP3 ADDR` on stdout, serves until SIGTERM or SIGINT.
pub async fn run(args: ExternalArgs) -> anyhow::Result<()> {
    let domain = args.domain.trim().to_ascii_lowercase();
    anyhow::ensure!(
        domain.contains('.') && !domain.contains(['@', '/', ' ']),
        "--domain {domain}: expected a mail domain like test.com"
    );
    let store = args.store.clone();
    let maildrops = tokio::task::spawn_blocking(move || {
        std::fs::create_dir_all(store.join(".spool"))?;
        Maildrops::open(&store)
    })
    .await?
    .with_context(|| format!("cannot open the store {}", args.store.display()))?;
    let smtp = TcpListener::bind(args.smtp)
        .await
        .with_context(|| format!("cannot listen for SMTP on {}", args.smtp))?;
    let pop3 = TcpListener::bind(args.pop3)
        .await
        .with_context(|| format!("cannot listen for POP3 on {}", args.pop3))?;
    let (smtp_addr, pop3_addr) = (smtp.local_addr()?, pop3.local_addr()?);
    let ext = Arc::new(External {
        fqdn: format!("mail.{domain}"),
        domain: domain.clone(),
        relay: args.relay,
        maildrops,
        spool: args.store.join(".spool"),
        max_size: args.max_size,
    });
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "{domain} (external): SMTP {smtp_addr}, POP3 {pop3_addr}"
        )?;
        out.flush()?;
    }
    let handler = |pop3| {
        Arc::new(Accepting {
            ext: Arc::clone(&ext),
            pop3,
            conns: Mutex::new(JoinSet::new()),
        })
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let a = accept_loop(
        smtp,
        handler(false),
        "external-smtp",
        stopped(stop_rx.clone()),
    );
    let b = accept_loop(pop3, handler(true), "external-pop3", stopped(stop_rx));
    let signal = async {
        crate::mock::shutdown_signal().await;
        let _ = stop_tx.send(true);
    };
    tokio::join!(a, b, signal);
    Ok(())
}
