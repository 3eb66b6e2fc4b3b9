//! What the benches share: certificates, an in-process backend, the array
//! started in process, and HTTP/1.1 clients over TLS or plain TCP.
//!
//! Everything listens on 127.0.0.1 with ephemeral ports; every wait is
//! bounded.

#![allow(dead_code)]

pub mod array;
pub mod backend;
pub mod certs;
pub mod client;
