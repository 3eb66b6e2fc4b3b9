//! The HTTP side of a mock server: the listener, the router, request and
//! response helpers, and one file per Exchange endpoint.

pub mod autodiscover;
pub mod control;
pub mod ews;
pub mod form;
pub mod health;
pub mod ids;
pub mod mailbox_route;
pub mod mapi;
pub mod other;
pub mod owa;
pub mod proxy;
pub mod request;
pub mod response;
pub mod router;
pub mod rpc;
pub mod rpc_stats;
pub mod server;
