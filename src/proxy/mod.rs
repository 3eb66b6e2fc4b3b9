//! The client side of the array: the listener, connection handling,
//! forwarding and the array's own answers.

pub mod access;
pub mod body;
pub mod conn;
pub mod counters;
pub mod forward;
pub mod headers;
pub mod idle;
pub mod listener;
pub mod redirect;
pub mod replay;
pub mod respond;
pub mod router;
pub mod shield;
pub mod snapshot;
pub mod sticky;
pub mod validate;

pub use body::{BoxError, ProxyBody};
