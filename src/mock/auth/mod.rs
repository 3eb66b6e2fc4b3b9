//! Who a request is: HTTP Basic credentials, the connection-bound NTLM /
//! Negotiate login, and the sealed OWA session cookie.

pub mod basic;
pub mod conn_login;
pub mod ntlm;
pub mod session;

pub use basic::{authenticate, credentials, unauthorized, Credentials};
