//! One member of a loaded config as the array uses it: who it is, how to
//! reach it, its live state, its side of every service and its idle
//! connections. Built by [`super::Upstreams::build`]; nothing here is kept
//! in arrays beside it.

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus::IntCounter;
use rustls_pki_types::ServerName;

use super::pool::Pool;
use super::replay::ReplayBody;
use super::state::{HealthCell, MemberState};
use crate::metrics::{Metrics, RequestCounters};

/// A member, with everything indexed by service inside it.
#[derive(Debug)]
pub struct Member {
    pub name: String,
    pub fqdn: String,
    pub address: SocketAddr,
    /// `Some(tls_server_name)` for a member with `tls = true`: connections
    /// to it are HTTPS, with this name in SNI and checked against its
    /// certificate. `None`: plain HTTP.
    pub tls: Option<ServerName<'static>>,
    pub weight: u32,
    /// The opaque name of this member in affinity cookies.
    pub token: String,
    /// Drain flag, in-flight count, health cells: kept across reloads.
    pub state: Arc<MemberState>,
    /// This member's side of each service, indexed like `Config::services`.
    pub(super) services: Box<[MemberService]>,
    /// Idle keep-alive connections; carried over a reload for a member
    /// whose name, address and TLS target stay.
    pub(super) pool: Arc<Pool<ReplayBody>>,
}

/// A member's side of one service: where it serves it, its health and its
/// counters, resolved once per config.
#[derive(Debug)]
pub struct MemberService {
    /// Where the member serves the service: its address for HTTP services,
    /// its `smtp` address for SMTP; `None`: it does not take the service.
    pub target: Option<SocketAddr>,
    pub health: Arc<HealthCell>,
    /// `casarray_requests_total{service,member,code}`.
    pub requests: RequestCounters,
    /// `casarray_passive_ejections_total{member,service}`.
    pub(super) ejections: IntCounter,
    /// `casarray_health_checks_total{member,service,result}`: success,
    /// failure.
    pub(super) checks: [IntCounter; 2],
}

impl MemberService {
    /// The side of `service` of the member `member` whose live state is
    /// `state`, reached at `target`; every series of the pair exists from
    /// here on (at 0) when the member takes the service.
    pub(super) fn new(
        metrics: &Metrics,
        state: &MemberState,
        member: &str,
        service: &str,
        target: Option<SocketAddr>,
    ) -> Self {
        let (ejections, checks) = match target {
            Some(_) => (
                metrics
                    .passive_ejections
                    .with_label_values(&[member, service]),
                ["success", "failure"].map(|result| {
                    metrics
                        .health_checks
                        .with_label_values(&[member, service, result])
                }),
            ),
            // Never counted: no series for a service the member lacks.
            None => (detached(), [detached(), detached()]),
        };
        MemberService {
            target,
            health: state.cell(service),
            requests: RequestCounters::new(&metrics.requests, service, member),
            ejections,
            checks,
        }
    }
}

impl Member {
    /// This member's side of service `s`.
    ///
    /// # Panics
    /// When `s` is not a service of the config (an index from another
    /// config).
    #[inline]
    pub fn service(&self, s: usize) -> &MemberService {
        &self.services[s]
    }

    /// The health of service `s`.
    #[inline]
    pub fn cell(&self, s: usize) -> &HealthCell {
        &self.services[s].health
    }

    /// Takes service `s`, is healthy for it and not draining; false for
    /// an unknown `s`.
    #[inline]
    pub fn eligible(&self, s: usize) -> bool {
        !self.state.is_draining()
            && self
                .services
                .get(s)
                .is_some_and(|c| c.target.is_some() && c.health.is_up())
    }

    /// Idle connections held now.
    pub fn idle_connections(&self) -> usize {
        self.pool.idle_count()
    }
}

/// A counter no registry exports.
fn detached() -> IntCounter {
    IntCounter::new("casarray_detached", "never exported").expect("a constant, valid metric name")
}
