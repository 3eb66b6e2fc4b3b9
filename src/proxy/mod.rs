//! The HTTP side of the array: what happens to a request between the
//! listener (`listen::https`) and the members (`upstream`): validation,
//! routing, forwarding with retries, NTLM pinning, the array's own answers,
//! body plumbing, and the HTTP part of the snapshot ([`frontend`]).

pub mod access;
pub mod body;
pub mod conn;
pub mod forward;
pub mod frontend;
pub mod headers;
pub mod idle;
pub mod redirect;
pub mod respond;
pub mod router;
pub mod validate;

pub use crate::BoxError;
pub use body::ProxyBody;
