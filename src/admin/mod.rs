//! The admin side: the admin API (members, drain, databases), its bearer
//! token, the persisted admin state, Prometheus metrics (with process
//! metrics) and the `casarray status` command.
//!
//! How `serve` uses it:
//!
//! 1. [`Admin::open`] before anything listens: refuses a non-loopback
//!    `listen.admin` without a token, reads the token, loads the state file
//!    (a corrupt one is an error);
//! 2. [`Admin::apply`] on the first snapshot's members, before traffic;
//! 3. [`run`] on the admin listener;
//! 4. [`Admin::reload`] on every reload (token read again, drain state
//!    applied to the new snapshot's members).

mod context;
mod error;
pub mod metrics;
mod process;
mod put_database;
mod reply;
mod routes;
pub mod server;
pub mod state;
pub mod status;
mod token;
mod views;

pub use context::{Admin, DrainChange};
pub use error::AdminError;
pub use metrics::Metrics;
pub use server::{run, serve};
pub use state::{AdminState, StateError};
