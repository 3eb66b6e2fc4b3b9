//! The admin side: the admin listener and API (members, drain, databases),
//! its bearer token, the persisted admin state, and the `casarray status`
//! command. It renders the crate's `metrics`; it does not own them. The
//! JSON it answers is the typed model of `crate::api`.
//!
//! How `serve` uses it:
//!
//! 1. [`Admin::open`] before anything listens: refuses a non-loopback
//!    `listen.admin` without a token, reads the token, loads the state file
//!    (a corrupt one is an error);
//! 2. [`Admin::apply`] on the first snapshot's members, before traffic;
//! 3. [`server::AdminListener`] on `listen.admin` (it also samples the
//!    status page's series, `page/`);
//! 4. [`Admin::reload`] on every reload (token read again, drain state
//!    applied to the new snapshot's members).

mod context;
mod dag_calls;
mod error;

mod page;
mod put_database;
mod reply;
mod routes;
pub mod server;
pub mod state;
pub mod status;
mod token;
mod views;

pub use context::{Admin, DrainChange, DrainError};
pub use error::AdminError;
pub use server::AdminListener;
pub use state::{AdminState, StateError};
