//! The `casarray` command line: parse, dispatch, exit codes. Nothing else
//! lives here; each subcommand is a library function.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use casarray::{admin, directory, lab, mock, serve, tls};

/// jemalloc: about 2 KiB less RSS per idle client connection than glibc's
/// malloc, at the same speed (BENCHMARKS.md).
#[cfg(all(target_os = "linux", not(target_env = "musl")))]
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(
    name = "casarray",
    version,
    about = "A Client Access array: one name, one certificate, many Client Access servers"
)]
struct Cli {
    /// Log format; the level comes from RUST_LOG (default "info").
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Plain,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the array in the foreground.
    Serve {
        #[arg(long)]
        config: PathBuf,
    },
    /// Validate a config file and the certificates it names.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Start a whole array in front of mock mailbox servers.
    Lab(lab::LabArgs),
    /// Run one mock mailbox server.
    MockServer(mock::MockArgs),
    /// Run the lesson's external mail system (test.com): SMTP in, POP3 to read.
    MockExternal(mock::transport::external::ExternalArgs),
    /// The shared-certificate workflow.
    #[command(subcommand)]
    Cert(tls::cli::CertCommand),
    /// New-ClientAccessArray / Get-ClientAccessArray.
    #[command(subcommand)]
    Array(directory::ArrayCommand),
    /// Get-MailboxDatabase / Set-MailboxDatabase -RpcClientAccessServer.
    #[command(subcommand)]
    Database(directory::DatabaseCommand),
    /// The running array's members × services health table, from its admin API.
    Status(admin::status::StatusArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    let result = match cli.command {
        Command::Serve { config } => serve::run(&config),
        Command::Check { config } => serve::check(&config).map(|summary| println!("{summary}")),
        Command::Lab(args) => lab::run(args),
        Command::MockServer(args) => tokio_main(mock::run(args)),
        Command::MockExternal(args) => tokio_main(mock::transport::external::run(args)),
        Command::Cert(cmd) => tls::cli::run(cmd),
        Command::Array(cmd) => directory::run_array(cmd),
        Command::Database(cmd) => directory::run_database(cmd),
        Command::Status(args) => admin::status::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

fn tokio_main(fut: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(fut)
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
