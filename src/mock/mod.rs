//! The mock mailbox server: the Exchange-like endpoints a Client Access
//! array fronts (`casarray mock-server`).
//!
//! One process is one "server" (`--name EX1`): it answers health checks per
//! service, Autodiscover (POX), OWA with forms-based logon, EWS (SOAP),
//! Outlook Anywhere (`RPC_IN_DATA` / `RPC_OUT_DATA`), MAPI/HTTP and small
//! pages for the other services, naming its own fqdn everywhere. Mailboxes
//! live in a SQLite store (`--store DIR`) shared by every server of a lab,
//! so what one server accepted another serves; OWA cookies are sealed with
//! a key derived from the array's shared key (`--shared-key`), so any
//! server accepts any other's sessions.
//!
//! EWS, Outlook Anywhere, MAPI, Autodiscover, ECP, ActiveSync, OAB and
//! PowerShell also take a connection-bound NTLM / Negotiate login (three
//! legs bound to the TCP connection, as IIS does; see `ntlm` for the
//! messages and their simplified cryptography).
//!
//! Every response carries `X-FEServer`, `X-BEServer` and `X-DiagInfo` with
//! the server's name, and `X-Mock-Connection` with the number of the TCP
//! connection that carried it (counted from 1 per process); on a
//! connection logged in with NTLM, `X-Mock-User` names the mailbox.
//! `/mock/*` switches (fail or heal one service, add latency, read the
//! state) exist for tests and demos.
//!
//! Rooms: `http` (the listener, the router and one file per Exchange
//! endpoint, EWS in `http::ews`), `auth` (Basic, the NTLM connection login,
//! OWA session cookies), `store` (the SQLite mail store), `format` (XML and
//! dates), `users` (the lab's mailboxes and databases), `pem` (key and
//! certificate files), `shared` (what every handler sees).

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

mod auth;
mod format;
mod http;
mod pem;
mod shared;
mod store;
mod users;

pub use auth::ntlm;
pub use http::server::MockServer;
pub use users::{LAB_DATABASES, LAB_USERS};

/// `casarray mock-server`: one mock mailbox server.
#[derive(clap::Args, Debug, Clone)]
pub struct MockArgs {
    /// The server's name, e.g. `EX1` (sent in `X-FEServer`).
    #[arg(long)]
    pub name: String,
    /// Address to listen on; port 0 picks a free port (the readiness line
    /// tells which).
    #[arg(long)]
    pub listen: SocketAddr,
    /// Directory of the shared mailbox store (`DIR/mailstore.sqlite`);
    /// created and seeded if needed.
    #[arg(long)]
    pub store: PathBuf,
    /// The server's own fqdn; default: the lower-cased name +
    /// `.lab.local`.
    #[arg(long)]
    pub fqdn: Option<String>,
    /// PEM certificate chain: serve HTTPS instead of HTTP (with
    /// `--tls-key`).
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// The array's shared certificate (PEM); checked to be readable.
    #[arg(long)]
    pub shared_cert: Option<PathBuf>,
    /// The array's shared private key (PEM): the OWA cookie key derives
    /// from it. Without it, sessions open only on this server.
    #[arg(long)]
    pub shared_key: Option<PathBuf>,
    /// Latency added to every non-`/mock` request, milliseconds; default 0.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

/// Runs one mock server: binds, prints `mock-server NAME listening on ADDR`
/// (the bound address) on stdout, serves until SIGTERM or SIGINT (or until
/// the future is dropped), then returns `Ok(())`.
pub async fn run(args: MockArgs) -> anyhow::Result<()> {
    let server = MockServer::bind(args).await?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "mock-server {} listening on {}",
            server.name(),
            server.local_addr()
        )?;
        out.flush()?;
    }
    server.serve(shutdown_signal()).await
}

/// Creates or opens the store under `dir` and seeds the lab mailboxes
/// (idempotent).
pub fn seed_store(dir: &Path) -> anyhow::Result<()> {
    store::Store::open(dir)?;
    Ok(())
}

/// Completes on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::warn!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    () = ctrl_c => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: MockArgs,
    }

    #[test]
    fn parses_the_documented_flags() {
        let cli = Cli::try_parse_from([
            "x",
            "--name",
            "EX1",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "/tmp/s",
            "--latency-ms",
            "5",
        ])
        .unwrap();
        assert_eq!(cli.args.name, "EX1");
        assert_eq!(cli.args.latency_ms, 5);
        assert!(cli.args.fqdn.is_none());
        assert!(Cli::try_parse_from([
            "x",
            "--name",
            "EX1",
            "--listen",
            "127.0.0.1:0",
            "--store",
            "/tmp/s",
            "--tls-cert",
            "c.pem",
        ])
        .is_err());
    }

    #[test]
    fn seed_store_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        seed_store(dir.path()).unwrap();
        seed_store(dir.path()).unwrap();
        assert!(dir.path().join(store::STORE_FILE).exists());
    }
}
