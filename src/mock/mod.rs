//! The mock mailbox server: the Exchange-like endpoints a Client Access
//! array fronts (`casarray mock-server`).
//!
//! One process is one "server" (`--name EX1`): it answers health checks per
//! service, Autodiscover (POX, SOAP and JSON), OWA with forms-based logon, EWS (SOAP),
//! Outlook Anywhere (`RPC_IN_DATA` / `RPC_OUT_DATA`), MAPI/HTTP and small
//! pages for the other services, naming its own fqdn everywhere. Mailboxes
//! live in a SQLite store (`--store DIR`) shared by every server of a lab,
//! so what one server accepted another serves; OWA cookies are sealed with
//! a key derived from the array's shared key (`--shared-key`), so any
//! server accepts any other's sessions.
//!
//! EWS, Outlook Anywhere, MAPI, Autodiscover, ECP, ActiveSync, OAB and
//! PowerShell also take a connection-bound NTLM / Negotiate login (three
//! legs bound to the TCP connection, as IIS does; see `ntlm`: NTLMv2 as
//! MS-NLMP specifies it, SPNEGO for Negotiate).
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
mod dag;
mod databases;
mod directory;
mod format;
mod http;
mod pem;
mod shared;
mod store;
pub mod transport;
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
    /// Directory of the mailbox store, one file per database
    /// (`DIR/<DB>/<DB>.sqlite`). Without `--dag`, shared by the lab's
    /// servers (created and seeded if needed); with `--dag`, this server's
    /// own copies and their logs.
    #[arg(long)]
    pub store: PathBuf,
    /// The DAG's definition (`dag.toml`): this server is a member of that
    /// database availability group, keeps its own copies of the databases
    /// it hosts and registers its address there.
    #[arg(long)]
    pub dag: Option<PathBuf>,
    /// PEM CA certificates that sign the other members' HTTPS certificates
    /// (server-to-server calls to members with `tls = true`).
    #[arg(long)]
    pub peer_ca: Option<PathBuf>,
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
    /// Also run a hub transport: SMTP on this address (port 0 picks one;
    /// the line `mock-server NAME smtp on ADDR` tells which, before the
    /// readiness line). STARTTLS presents `--shared-cert` (else
    /// `--tls-cert`); without either, no STARTTLS.
    #[arg(long)]
    pub smtp: Option<SocketAddr>,
    /// Send connector route: mail for DOMAIN goes to the mail host at
    /// HOST:PORT (repeatable). Mail for other domains than the lab's and
    /// these is refused (550).
    #[arg(long = "smtp-route", value_name = "DOMAIN=HOST:PORT")]
    pub smtp_routes: Vec<String>,
    /// A directory the lab's hubs share to find each other (each writes
    /// `hubs/<NAME>` with its SMTP address): the peers that take shadow
    /// copies. Without it the hub has no peer (one copy of queued mail).
    #[arg(long)]
    pub transport_dir: Option<PathBuf>,
    /// Largest message the hub takes, octets; default 10 MiB.
    #[arg(long, default_value_t = transport::DEFAULT_MAX_SIZE)]
    pub smtp_max_size: u64,
    /// Seconds a primary hub must stay unreachable before the hub holding
    /// its shadow copies delivers them; default 5.
    #[arg(long, default_value_t = 5)]
    pub smtp_peer_dead_after: u64,
}

/// Runs one mock server: binds, prints `mock-server NAME listening on ADDR`
/// (the bound address) on stdout, serves until SIGTERM or SIGINT (or until
/// the future is dropped), then returns `Ok(())`.
pub async fn run(args: MockArgs) -> anyhow::Result<()> {
    let server = MockServer::bind(args).await?;
    {
        let mut out = std::io::stdout().lock();
        if let Some(smtp) = server.smtp_addr() {
            writeln!(out, "mock-server {} smtp on {smtp}", server.name())?;
        }
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

/// Creates or opens the shared store under `dir` (no DAG) and seeds the
/// lab mailboxes (idempotent).
pub fn seed_store(dir: &Path) -> anyhow::Result<()> {
    databases::Databases::open_shared(dir)?;
    Ok(())
}

/// The lab's `dag.toml` for `servers` servers and the lab databases (see
/// `dag::lab_definition::lab_text`).
pub fn lab_dag_definition(servers: u16) -> String {
    dag::lab_definition::lab_text(usize::from(servers), LAB_DATABASES)
}

/// Adds the members EX1..EX`servers` that `dag.toml` at `path` lacks
/// (without copies), under the DAG lock.
pub fn ensure_dag_members(path: &Path, servers: u16) -> anyhow::Result<()> {
    let names: Vec<String> = (1..=servers).map(|i| format!("EX{i}")).collect();
    let _guard = dag::lock::lock(&dag::lock::lock_path(path), dag::lock::LOCK_WAIT)?;
    dag::definition_edit::ensure_members(path, &names)?;
    Ok(())
}

/// `GET /mock/dag/status` of the mock server at `address` (HTTPS when
/// `tls` gives the CA file and the server's name), bounded to 5 s.
pub async fn dag_status(
    name: &str,
    address: SocketAddr,
    tls: Option<(&Path, &str)>,
) -> anyhow::Result<serde_json::Value> {
    let member = dag::definition::Member {
        name: name.to_string(),
        address: Some(address.to_string()),
        fqdn: tls.map(|(_, fqdn)| fqdn.to_string()),
        tls: tls.is_some(),
    };
    let client = dag::client::PeerClient::new(tls.map(|(ca, _)| ca))?;
    let reply = client
        .call(
            &member,
            dag::client::request(::http::Method::GET, "/mock/dag/status", ""),
            std::time::Duration::from_secs(5),
            1024 * 1024,
        )
        .await?;
    anyhow::ensure!(
        reply.status.is_success(),
        "{name} answered {}",
        reply.status
    );
    Ok(serde_json::from_slice(&reply.body)?)
}

/// Completes on SIGTERM or SIGINT.
pub(crate) async fn shutdown_signal() {
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
        assert!(store::database_file(dir.path(), "DB02").exists());
    }
}
