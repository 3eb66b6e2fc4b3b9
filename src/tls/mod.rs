//! TLS: certificates and their keys, the SNI certificate store, the rustls
//! server configuration, file watching and the PKI workflow (`casarray cert`).
//!
//! - [`load_certified_key`] reads a PEM chain and its key and checks them.
//! - [`CertStore`] picks a certificate by SNI and can be swapped live.
//! - [`server_config`] builds the rustls `ServerConfig` around a store.
//! - [`watch_files`] signals when certificate or config files change.
//! - [`pki`] makes, issues, completes, exports and shows certificates;
//!   `cli` is `casarray cert ...` on top of it.

mod cert_info;
pub mod cli;
mod cli_files;
mod error;
mod load;
pub mod pki;
mod server_config;
mod sni;
mod store;
mod time_fmt;
mod watch;

#[cfg(test)]
mod test_certs;

pub use error::TlsError;
pub use load::load_certified_key;
pub use server_config::server_config;
pub use store::{CertStore, ServedCert};
pub use watch::{watch_files, FileWatcher};
