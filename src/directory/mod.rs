//! The array and its mailbox databases: the cmdlet-like reads and edits of
//! the config file.
//!
//! | Exchange | casarray |
//! |---|---|
//! | `New-ClientAccessArray -Name -Fqdn -Site` | `casarray array new --config F --name N --fqdn F --site S` |
//! | `Get-ClientAccessArray` | `casarray array get --config F` |
//! | `Get-MailboxDatabase` | `casarray database get --config F` |
//! | `Set-MailboxDatabase -RpcClientAccessServer` | `casarray database set --config F (--all \| NAME...) --rpc-client-access-server FQDN` |
//!
//! Edits keep the file's comments and layout (toml_edit), are validated
//! with [`crate::config::parse`] before anything is written, and replace the
//! file atomically. A running array notices the change itself (it watches
//! its config file).

mod array_new;
mod copies;
mod databases;
mod edit;
mod error;
mod health;
mod show;
mod table;

use std::path::PathBuf;

pub use databases::{
    check_database_rpc, list_databases, set_database_rpc, DatabaseInfo, DatabaseSelector,
};
pub use error::DirectoryError;

use array_new::{new_array, ArrayIdentity, NewArray};

/// `casarray array ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ArrayCommand {
    /// Create the array (New-ClientAccessArray): writes a starter config
    /// when FILE does not exist, or adds [array] to a config without one.
    New {
        /// The config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The array's fqdn: the RPC client access endpoint name (also its
        /// public HTTPS name unless [array] public_names says otherwise).
        #[arg(long)]
        fqdn: String,
        /// The Active Directory site the array serves.
        #[arg(long, default_value = "Default-First-Site-Name")]
        site: String,
        /// The array's name.
        #[arg(long)]
        name: String,
    },
    /// Show the array and its members, with their health when the array is
    /// running (Get-ClientAccessArray).
    Get {
        /// The config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
}

/// `casarray database ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum DatabaseCommand {
    /// List the mailbox databases and their RpcClientAccessServer
    /// (Get-MailboxDatabase).
    Get {
        /// The config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
    },
    /// Set the RpcClientAccessServer of databases
    /// (Set-MailboxDatabase -RpcClientAccessServer).
    Set {
        /// The config file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Every database of the file.
        #[arg(long, conflicts_with = "names", required_unless_present = "names")]
        all: bool,
        /// The databases to change (case-insensitive).
        #[arg(value_name = "NAME")]
        names: Vec<String>,
        /// The name Outlook is sent to for these databases: normally the
        /// array's fqdn.
        #[arg(long, value_name = "FQDN")]
        rpc_client_access_server: String,
    },
    /// Each database copy's status, queues and activation preference, from
    /// the running array (Get-MailboxDatabaseCopyStatus).
    CopyStatus {
        /// The config file (its listen.admin is asked).
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The running array's admin listener, when not the config's
        /// `listen.admin` (for example one bound to port 0).
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        /// One database; default: all.
        #[arg(value_name = "DB")]
        database: Option<String>,
        /// The admin API's JSON (as GET /api/databases) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Mount a database's copy on another server, losslessly; returns once
    /// it is mounted (Move-ActiveMailboxDatabase).
    MoveActive {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The running array's admin listener, when not the config's
        /// `listen.admin` (for example one bound to port 0).
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        #[arg(value_name = "DB")]
        database: String,
        /// The server (member name) whose copy becomes active.
        #[arg(long, value_name = "NAME")]
        server: String,
    },
    /// Add, remove, suspend or resume a database copy
    /// (Add-/Remove-/Suspend-/Resume-MailboxDatabaseCopy).
    #[command(subcommand)]
    Copy(CopyCommand),
}

/// `casarray database copy ...`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum CopyCommand {
    /// A new copy of DB on a server, seeded from the active copy; returns
    /// once its queues are empty.
    Add {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The running array's admin listener, when not the config's
        /// `listen.admin` (for example one bound to port 0).
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        #[arg(value_name = "DB")]
        database: String,
        #[arg(long, value_name = "NAME")]
        server: String,
        /// 1 is preferred.
        #[arg(long, value_name = "N")]
        activation_preference: u32,
    },
    /// Remove a passive copy.
    Remove {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The running array's admin listener, when not the config's
        /// `listen.admin` (for example one bound to port 0).
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        #[arg(value_name = "DB")]
        database: String,
        #[arg(long, value_name = "NAME")]
        server: String,
    },
    /// Stop a copy's log copying (it falls behind).
    Suspend {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The running array's admin listener, when not the config's
        /// `listen.admin` (for example one bound to port 0).
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        #[arg(value_name = "DB")]
        database: String,
        #[arg(long, value_name = "NAME")]
        server: String,
    },
    /// Start a suspended copy's log copying again.
    Resume {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The running array's admin listener, when not the config's
        /// `listen.admin` (for example one bound to port 0).
        #[arg(long, value_name = "ADDR")]
        admin: Option<std::net::SocketAddr>,
        #[arg(value_name = "DB")]
        database: String,
        #[arg(long, value_name = "NAME")]
        server: String,
    },
}

/// Runs `casarray array ...`, printing to stdout.
pub fn run_array(cmd: ArrayCommand) -> anyhow::Result<()> {
    match cmd {
        ArrayCommand::New {
            config,
            fqdn,
            site,
            name,
        } => {
            let id = ArrayIdentity {
                name: &name,
                fqdn: &fqdn,
                site: &site,
            };
            match new_array(&config, id)? {
                NewArray::Created => {
                    println!(
                        "created {}: array \"{name}\" (fqdn {fqdn}, site {site})",
                        config.display()
                    );
                    if let Err(e) = crate::config::load(&config) {
                        println!("not complete yet (add the members and the certificate): {e}");
                    }
                }
                NewArray::Added => println!(
                    "{}: array \"{name}\" (fqdn {fqdn}, site {site}) added",
                    config.display()
                ),
                NewArray::Unchanged => println!(
                    "{}: array \"{name}\" already defined, unchanged",
                    config.display()
                ),
            }
            Ok(())
        }
        ArrayCommand::Get { config } => {
            let cfg = load(&config)?;
            let live = health::fetch_member_health(cfg.listen.admin, health::HEALTH_WAIT);
            print!("{}", show::render_array(&cfg, &live));
            Ok(())
        }
    }
}

/// Runs `casarray database ...`, printing to stdout.
pub fn run_database(cmd: DatabaseCommand) -> anyhow::Result<()> {
    match cmd {
        DatabaseCommand::Get { config } => {
            let cfg = load(&config)?;
            let dbs = list_databases(&cfg);
            if dbs.is_empty() {
                println!("{}: no [[database]]", config.display());
            } else {
                print!("{}", show::render_databases(&dbs));
            }
            Ok(())
        }
        DatabaseCommand::Set {
            config,
            all,
            names,
            rpc_client_access_server,
        } => {
            let selector = if all {
                DatabaseSelector::All
            } else {
                DatabaseSelector::Names(names)
            };
            let out =
                databases::set_database_rpc_outcome(&config, &selector, &rpc_client_access_server)?;
            for name in &out.selected {
                if out.changed.contains(name) {
                    println!("{name}: RpcClientAccessServer = {rpc_client_access_server}");
                } else {
                    println!("{name}: unchanged (already {rpc_client_access_server})");
                }
            }
            Ok(())
        }
        DatabaseCommand::CopyStatus {
            config,
            admin,
            database,
            json,
        } => {
            let cfg = load(&config)?;
            print!(
                "{}",
                copies::copy_status(&cfg, admin, database.as_deref(), json)?
            );
            Ok(())
        }
        DatabaseCommand::MoveActive {
            config,
            admin,
            database,
            server,
        } => {
            let cfg = load(&config)?;
            print!("{}", copies::move_active(&cfg, admin, &database, &server)?);
            Ok(())
        }
        DatabaseCommand::Copy(cmd) => {
            let (config, admin, database, server, what) = match cmd {
                CopyCommand::Add {
                    config,
                    admin,
                    database,
                    server,
                    activation_preference,
                } => (
                    config,
                    admin,
                    database,
                    server,
                    copies::CopyChange::Add {
                        preference: activation_preference,
                    },
                ),
                CopyCommand::Remove {
                    config,
                    admin,
                    database,
                    server,
                } => (config, admin, database, server, copies::CopyChange::Remove),
                CopyCommand::Suspend {
                    config,
                    admin,
                    database,
                    server,
                } => (config, admin, database, server, copies::CopyChange::Suspend),
                CopyCommand::Resume {
                    config,
                    admin,
                    database,
                    server,
                } => (config, admin, database, server, copies::CopyChange::Resume),
            };
            let cfg = load(&config)?;
            print!(
                "{}",
                copies::copy_change(&cfg, admin, &database, &server, &what)?
            );
            Ok(())
        }
    }
}

/// Loads the config; its error already names the file and position.
fn load(path: &std::path::Path) -> anyhow::Result<crate::config::Config> {
    Ok(crate::config::load(path)?)
}
