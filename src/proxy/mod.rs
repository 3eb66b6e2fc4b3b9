//! The HTTP side of the array: what happens to a request between the
//! listener (`listen::https`) and the members (`upstream`): validation,
//! forwarding with retries, NTLM pinning, the array's own answers and the
//! body plumbing. It reads the snapshot's HTTP part (`snapshot::http`).

pub mod access;
pub mod body;
pub mod conn;
pub mod forward;
pub mod headers;
pub mod idle;
pub mod mailbox;
pub mod peek;
pub mod redirect;
pub mod respond;
pub mod routing;
pub mod shield;
pub mod validate;

pub use crate::BoxError;
pub use body::ProxyBody;
