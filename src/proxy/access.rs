//! The access log: one line per request, emitted when the answer's body
//! ends (or the client goes away), so the bytes sent and the duration are
//! the whole exchange's.
//!
//! Lines go through `tracing` with target `access` at INFO: plain or JSON by
//! `--log-format`, silenced with `RUST_LOG=info,access=off`. They never
//! carry the query string, Authorization headers, cookies or passwords.
//! When the target is disabled no record is built at all.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use http::Method;

/// What the log says of one request.
#[derive(Debug)]
pub struct AccessRecord {
    pub started: Instant,
    pub client: SocketAddr,
    pub method: Method,
    pub path: String,
    pub service: String,
    pub member: String,
    pub status: u16,
    pub retries: u32,
    /// How the request's mailbox chose its member: `active`, `fallback`,
    /// `unknown`; `-` before routing.
    pub routing: &'static str,
    /// Time held waiting for a database's activation, milliseconds.
    pub held_ms: u64,
    /// Request body bytes read, shared with the request body.
    pub bytes_in: Option<Arc<AtomicU64>>,
    pub bytes_out: u64,
    /// The security rule that refused the request (a shield rule's id,
    /// `allow-from`, `lockout-address` or `lockout-user`); logged as
    /// `rule` on those lines only.
    pub rule: Option<&'static str>,
}

impl AccessRecord {
    /// A record if the access log is on.
    pub fn start(
        started: Instant,
        client: SocketAddr,
        method: &Method,
        path: &str,
    ) -> Option<Box<Self>> {
        if !tracing::enabled!(target: "access", tracing::Level::INFO) {
            return None;
        }
        Some(Box::new(AccessRecord {
            started,
            client,
            method: method.clone(),
            path: path.to_owned(),
            service: String::from("-"),
            member: String::from("-"),
            status: 0,
            retries: 0,
            routing: "-",
            held_ms: 0,
            bytes_in: None,
            bytes_out: 0,
            rule: None,
        }))
    }

    /// Writes the line.
    pub fn emit(&self) {
        let bytes_in = self
            .bytes_in
            .as_ref()
            .map_or(0, |b| b.load(Ordering::Relaxed));
        if let Some(rule) = self.rule {
            tracing::info!(
                target: "access",
                client = %self.client,
                method = %self.method,
                path = %self.path,
                service = %self.service,
                member = %self.member,
                status = self.status,
                bytes_in,
                bytes_out = self.bytes_out,
                duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
                retries = self.retries,
                rule,
            );
            return;
        }
        tracing::info!(
            target: "access",
            client = %self.client,
            method = %self.method,
            path = %self.path,
            service = %self.service,
            member = %self.member,
            status = self.status,
            bytes_in,
            bytes_out = self.bytes_out,
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            retries = self.retries,
            routing = self.routing,
            held_ms = self.held_ms,
        );
    }
}
