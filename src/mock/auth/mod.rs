//! Who a request is: HTTP Basic credentials, the connection-bound NTLM /
//! Negotiate login, the sealed OWA session cookie, and the token a
//! server hands another with a proxied request.

pub mod basic;
pub mod conn_login;
pub mod ntlm;
pub mod session;
pub mod token;

pub use basic::{authenticate, credentials, unauthorized, Credentials};
