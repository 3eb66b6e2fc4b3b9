//! The members behind the array: their live state, balancing, health checks,
//! connections (TLS for members that serve HTTPS) and the connection pool.
//!
//! [`Upstreams`] is built from one config and swapped whole on reload; the
//! per-member state it points to ([`member::MemberState`]) lives in a
//! [`member::Registry`] that outlives reloads.

pub mod affinity;
pub mod balance;
pub mod connect;
pub mod health;
pub mod member;
pub mod pool;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;

use rustls_pki_types::ServerName;

use crate::admin::Metrics;
use crate::config::Config;
use balance::RoundRobin;
use member::{HealthCell, MemberState, Registry};

/// One member as the forwarding path sees it.
#[derive(Debug)]
pub struct Backend {
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
    pub state: Arc<MemberState>,
    /// Health per service, indexed like `Config::services`.
    cells: Box<[Arc<HealthCell>]>,
}

impl Backend {
    /// The health of service `s`.
    pub fn cell(&self, s: usize) -> &HealthCell {
        &self.cells[s]
    }

    /// Healthy for service `s` and not draining.
    #[inline]
    pub fn eligible(&self, s: usize) -> bool {
        !self.state.is_draining() && self.cells[s].is_up()
    }
}

/// The members of one config and a turn order per service.
pub struct Upstreams {
    backends: Box<[Backend]>,
    service_names: Box<[String]>,
    turns: Box<[RoundRobin]>,
    /// Where ejections are counted (`casarray_member_up`,
    /// `casarray_passive_ejections_total`); none in unit tests.
    metrics: Option<Metrics>,
    /// The first passive ejection window (the health interval).
    health_interval: std::time::Duration,
}

/// Why building the upstreams failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("member {name}: tls_server_name {server_name:?} is not a TLS server name")]
    BadServerName { name: String, server_name: String },
    #[error(transparent)]
    Tls(#[from] tls::MemberTlsError),
}

impl std::fmt::Debug for Upstreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstreams")
            .field("backends", &self.backends)
            .field("services", &self.service_names)
            .finish_non_exhaustive()
    }
}

impl Upstreams {
    /// Builds the upstreams of `cfg`, reusing member state from `registry`.
    pub fn build(cfg: &Config, registry: &Registry) -> Result<Self, UpstreamError> {
        let mut backends = Vec::with_capacity(cfg.members.len());
        for m in &cfg.members {
            let tls = m
                .tls
                .then(|| {
                    ServerName::try_from(m.tls_server_name.clone()).map_err(|_| {
                        UpstreamError::BadServerName {
                            name: m.name.clone(),
                            server_name: m.tls_server_name.clone(),
                        }
                    })
                })
                .transpose()?;
            let state = registry.member(&m.name, m.address);
            let cells = cfg.services.iter().map(|s| state.cell(&s.name)).collect();
            backends.push(Backend {
                weight: m.weight,
                token: affinity::cookie_token(&cfg.array.name, &m.name, &m.address_text),
                name: m.name.clone(),
                fqdn: m.fqdn.clone(),
                address: m.address,
                tls,
                state,
                cells,
            });
        }
        let keep: Vec<_> = cfg
            .members
            .iter()
            .map(|m| (m.name.clone(), m.address))
            .collect();
        registry.retain(&keep);
        let weights: Vec<u32> = cfg.members.iter().map(|m| m.weight).collect();
        let turns = cfg
            .services
            .iter()
            .map(|_| RoundRobin::new(&weights))
            .collect();
        Ok(Upstreams {
            backends: backends.into_boxed_slice(),
            service_names: cfg.services.iter().map(|s| s.name.clone()).collect(),
            turns,
            metrics: None,
            health_interval: cfg.health.interval,
        })
    }

    /// Counts ejections in `metrics` from now on.
    pub fn with_metrics(mut self, metrics: &Metrics) -> Self {
        self.metrics = Some(metrics.clone());
        self
    }

    pub fn backends(&self) -> &[Backend] {
        &self.backends
    }

    /// Index of the member named `name` (case-insensitive).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.backends
            .iter()
            .position(|b| b.name.eq_ignore_ascii_case(name))
    }

    /// The next member for service `s`, skipping those in `tried`.
    #[inline]
    pub fn pick(&self, s: usize, tried: &[usize]) -> Option<usize> {
        self.turns
            .get(s)?
            .pick(|m| self.backends[m].eligible(s), tried)
    }

    /// The sticky member of `key` for service `s` by rendezvous hashing,
    /// skipping `tried`; `moved` is true when the member the key belongs to
    /// was passed over because it is unhealthy or draining.
    pub fn pick_hashed(&self, s: usize, key: &[u8], tried: &[usize]) -> Option<(usize, bool)> {
        let mut best: Option<(usize, f64)> = None;
        let mut top: Option<(usize, f64)> = None;
        for (i, b) in self.backends.iter().enumerate() {
            let score = affinity::score(key, &b.name, b.weight);
            if top.is_none_or(|(_, t)| score > t) {
                top = Some((i, score));
            }
            if b.eligible(s) && !tried.contains(&i) && best.is_none_or(|(_, t)| score > t) {
                best = Some((i, score));
            }
        }
        let (chosen, _) = best?;
        let moved = top.is_some_and(|(t, _)| t != chosen && !self.backends[t].eligible(s));
        Some((chosen, moved))
    }

    /// The member whose affinity cookie token is `token`.
    pub fn by_token(&self, token: &str) -> Option<usize> {
        self.backends.iter().position(|b| b.token == token)
    }

    /// Any member healthy for service `s` and not draining?
    pub fn any_eligible(&self, s: usize) -> bool {
        self.backends.iter().any(|b| b.eligible(s))
    }

    /// Takes member `m` out of service `s` after a failure on the forwarding
    /// path; the next good probe after its ejection window (one health
    /// interval, doubling for repeated ejections) brings it back.
    pub fn eject(&self, m: usize, s: usize, reason: &str) {
        let (Some(b), Some(service)) = (self.backends.get(m), self.service_names.get(s)) else {
            return;
        };
        if b.cells[s].mark_down_passive(self.health_interval) {
            tracing::warn!(member = %b.name, service = %service, "member down for service (passive): {reason}");
            if let Some(metrics) = &self.metrics {
                metrics
                    .member_up
                    .with_label_values(&[&b.name, service])
                    .set(0);
                metrics
                    .passive_ejections
                    .with_label_values(&[&b.name, service])
                    .inc();
            }
        }
    }

    /// Takes member `m` out of every service: its address refused a
    /// connection, which no service on it can survive.
    pub fn eject_all(&self, m: usize, reason: &str) {
        for s in 0..self.service_names.len() {
            self.eject(m, s, reason);
        }
    }
}
