//! casarray: a Client Access array in one binary.
//!
//! docs/ARCHITECTURE.md draws the data flow and says which module owns
//! which rule. In short: `config` (file model and validation), `tls`
//! (certificates, SNI, the PKI workflow), `listen` (the listeners and their
//! one accept loop), `proxy` (the HTTP side: forwarding, rewriting hooks,
//! the array's own answers), `upstream` (members: selection, health,
//! connections), `rewrite` (member names to array names), `metrics`,
//! `api` (the admin API's typed model and its client), `security` (the
//! Exchange shields, `allow_from`, failed-logon lockout), `admin` (the admin
//! listener), `directory` (the array and its databases), `mock` (the mock
//! mailbox server) and `lab` (the one-command lab); `serve` wires them.

pub mod admin;
pub mod api;
mod atomic_file;
pub mod cluster;
pub mod config;
pub mod dag;
pub mod directory;
pub mod errors;
pub mod lab;
pub mod listen;
pub mod live;
pub mod metrics;
pub mod mock;
pub mod proxy;
pub mod rewrite;
pub mod security;
pub mod serve;
pub mod snapshot;
pub mod tls;
pub mod upstream;

pub use errors::BoxError;
