//! casarray: a Client Access array in one binary.
//!
//! The modules follow the data flow of DESIGN.md: `config` (file model and
//! validation), `tls` (certificates, SNI, the PKI workflow), `proxy`
//! (listener, connections, forwarding), `upstream` (members, balancing,
//! health, the connection pool), `rewrite` (member names to array names),
//! `directory` (the array and its databases), `admin` (API and metrics),
//! `security` (the Exchange shields, `allow_from`, failed-logon lockout),
//! `mock` (the mock mailbox server) and `lab` (the one-command lab).

pub mod admin;
mod atomic_file;
pub mod config;
pub mod directory;
pub mod lab;
pub mod mock;
pub mod proxy;
pub mod rewrite;
pub mod security;
pub mod serve;
pub mod tls;
pub mod upstream;
