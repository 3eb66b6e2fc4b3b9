//! The certificate workflow of an Exchange administrator, as library calls:
//! make a CA ([`new_ca`]), make a key and request ([`request`]), have the
//! CA issue it ([`issue`]), complete the pending request ([`complete`]),
//! export it with its key ([`export`]) and import it elsewhere
//! ([`import`]); or skip the CA ([`self_signed`]); and look at any of it
//! ([`show`]).
//!
//! Everything is PEM text in and out; files are the CLI's business
//! (`tls::cli`). New keys are ECDSA P-256 unless a [`KeyType`] says
//! otherwise, and are written as PKCS#8.

mod bundle;
mod error;
mod keys;
mod make;
pub(crate) mod pem_text;
mod summary;

pub use bundle::{complete, export, import, Imported};
pub use error::PkiError;
pub use keys::KeyType;
pub(crate) use make::check_host_name;
pub use make::{
    issue, new_ca, new_ca_with, request, request_with, self_signed, self_signed_with, CertAndKey,
    CertRequest, CA_DAYS, MAX_DAYS,
};
pub use summary::{show, CertStatus, CertSummary};
