//! The members behind the array, and everything the array does with them:
//! choosing one for a request ([`selection`]), checking their health
//! ([`health`]), reaching them ([`dial`], [`connect`], [`tls`]) and keeping
//! their connections ([`pool`]).
//!
//! [`Upstreams`] is built from one config and swapped whole on reload, as
//! part of the snapshot; the per-member state it points to
//! ([`state::MemberState`]) lives in a [`state::Registry`] that outlives
//! reloads. The forwarding path asks it for a member ([`Upstreams::select`])
//! and for a connection ([`Upstreams::idle_connection`],
//! [`Upstreams::connect`]), and hands connections back
//! ([`pool::MemberConn::put_back`]).

pub mod connect;
pub mod dial;
pub mod driven;
pub mod health;
pub mod member;
pub mod pool;
pub mod proxy_protocol;
pub mod replay;
pub mod selection;
pub mod smtp;
pub mod state;
pub mod tls;

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use rustls_pki_types::ServerName;

use crate::config::{Config, HealthKind};
use crate::metrics::{MemberGauges, Metrics};
use connect::{ConnectError, Connector};
use driven::Driven;
use member::{Member, MemberService};
use pool::{MemberConn, Pool};
use replay::ReplayBody;
use selection::round_robin::RoundRobin;
use selection::{Candidates, Keys, Selection, Selector};
use state::Registry;

/// The name of the SMTP service (`listen.smtp`), after the HTTP services.
pub const SMTP: &str = "smtp";

/// The results of `casarray_smtp_connections_total` for a member.
pub const SMTP_RESULTS: [&str; 4] = ["ok", "refused", "timeout", "rejected"];

/// A service as the upstreams see it: how members are chosen for it and
/// how their health is checked. The HTTP services come first, in config
/// order (so a router's index is a service index), then `smtp` when
/// `listen.smtp` is set.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    /// What a probe does.
    pub health_kind: HealthKind,
    /// The HTTP health path (`health_kind = "http"` only).
    pub health_path: String,
    selector: Box<dyn Selector>,
    /// The service's round-robin turns (every rule falls back to them).
    turns: RoundRobin,
}

/// The members of one config, the selection rule of each service, and how
/// members are reached.
#[derive(Debug)]
pub struct Upstreams {
    members: Box<[Member]>,
    services: Box<[Service]>,
    /// Makes new member connections (and health probes' connections): one
    /// TLS client configuration per config, so sessions resume.
    connector: Connector,
    /// The first passive ejection window (the health interval).
    health_interval: Duration,
    /// `proxy.pool_idle_timeout`.
    pool_idle_timeout: Duration,
    /// `proxy.pool_max_idle_per_member`.
    pool_max_idle: usize,
}

/// Why building the upstreams failed.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("member {name}: tls_server_name {server_name:?} is not a TLS server name")]
    BadServerName { name: String, server_name: String },
    #[error(transparent)]
    Tls(#[from] tls::MemberTlsError),
}

impl Upstreams {
    /// Builds the upstreams of `cfg`: member state comes from `registry`,
    /// metric handles from `metrics` (every (member, service) series exists
    /// from here on, at 0), and idle connections from `previous` (the
    /// upstreams these replace) for members reached the same way: same
    /// name, address and TLS target, and for TLS members the same
    /// `[member_tls]` (a connection verified against an old CA is not kept).
    pub fn build(
        cfg: &Config,
        registry: &Registry,
        metrics: &Metrics,
        previous: Option<(&Upstreams, &Config)>,
    ) -> Result<Self, UpstreamError> {
        let mut members = Vec::with_capacity(cfg.members.len());
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
            let http = cfg
                .services
                .iter()
                .map(|s| (s.name.as_str(), Some(m.address)));
            let smtp = cfg.listen.smtp.map(|_| (SMTP, m.smtp));
            let services = http
                .chain(smtp)
                .map(|(service, target)| {
                    MemberService::new(metrics, &state, &m.name, service, target)
                })
                .collect();
            let pool = previous
                .filter(|(_, old)| !m.tls || old.member_tls == cfg.member_tls)
                .and_then(|(p, _)| p.pool_of(&m.name, m.address, tls.as_ref()))
                .unwrap_or_default();
            members.push(Member {
                weight: m.weight,
                token: selection::cookie::cookie_token(&cfg.array.name, &m.name, &m.address_text),
                name: m.name.clone(),
                fqdn: m.fqdn.clone(),
                address: m.address,
                tls,
                state,
                services,
                pool,
            });
        }
        let keep: Vec<_> = cfg
            .members
            .iter()
            .map(|m| (m.name.clone(), m.address))
            .collect();
        registry.retain(&keep);
        let weights: Vec<u32> = cfg.members.iter().map(|m| m.weight).collect();
        let http = cfg.services.iter().map(|s| Service {
            name: s.name.clone(),
            health_kind: s.health_kind,
            health_path: s.health.clone(),
            selector: selection::for_affinity(&s.affinity, &s.name),
            turns: RoundRobin::new(&weights),
        });
        let smtp = cfg.listen.smtp.map(|_| Service {
            name: SMTP.to_owned(),
            health_kind: cfg.smtp.health,
            health_path: String::new(),
            selector: Box::new(selection::least_connections::LeastConnections),
            turns: RoundRobin::new(&weights),
        });
        let services = http.chain(smtp).collect();
        if cfg.listen.smtp.is_some() {
            // SMTP connection outcomes exist from the first scrape.
            for m in cfg.members.iter().filter(|m| m.smtp.is_some()) {
                for result in SMTP_RESULTS {
                    metrics
                        .smtp_connections
                        .with_label_values(&[&m.name, result]);
                }
            }
            metrics
                .smtp_connections
                .with_label_values(&["none", "no_member"]);
        }
        Ok(Upstreams {
            members: members.into_boxed_slice(),
            services,
            connector: Connector::new(cfg)?,
            health_interval: cfg.health.interval,
            pool_idle_timeout: cfg.proxy.pool_idle_timeout,
            pool_max_idle: cfg.proxy.pool_max_idle_per_member,
        })
    }

    /// Every member, in config order.
    pub fn members(&self) -> &[Member] {
        &self.members
    }

    /// Index of the member named `name` (case-insensitive).
    pub fn find(&self, name: &str) -> Option<usize> {
        self.members
            .iter()
            .position(|b| b.name.eq_ignore_ascii_case(name))
    }

    /// The members a request for service `s` tries, in order (see
    /// [`selection`]). An unknown `s` yields nobody.
    pub fn select<'a>(&'a self, s: usize, keys: Keys<'a>) -> Selection<'a> {
        static NOBODY: std::sync::OnceLock<RoundRobin> = std::sync::OnceLock::new();
        match self.services.get(s) {
            Some(svc) => Selection::new(
                Candidates::new(&self.members, s, &svc.turns),
                svc.selector.as_ref(),
                keys,
            ),
            None => Selection::new(
                Candidates::new(&[], s, NOBODY.get_or_init(|| RoundRobin::new(&[]))),
                &selection::round_robin::NoAffinity,
                keys,
            ),
        }
    }

    /// Every service, HTTP ones first (indexed like `Config::services`),
    /// then `smtp` when `listen.smtp` is set.
    pub fn services(&self) -> &[Service] {
        &self.services
    }

    /// The index of the SMTP service, when `listen.smtp` is set.
    pub fn smtp_service(&self) -> Option<usize> {
        self.services.iter().position(|s| s.name == SMTP)
    }

    /// Any member healthy for service `s` and not draining?
    pub fn any_eligible(&self, s: usize) -> bool {
        self.members.iter().any(|b| b.eligible(s))
    }

    /// Takes member `m` out of service `s` after a failure on the forwarding
    /// path; the next good probe after its ejection window (one health
    /// interval, doubling for repeated ejections) brings it back.
    pub fn eject(&self, m: usize, s: usize, reason: &str) {
        let (Some(b), Some(service)) = (self.members.get(m), self.services.get(s)) else {
            return;
        };
        let side = b.service(s);
        if side.health.mark_down_passive(self.health_interval) {
            tracing::warn!(member = %b.name, service = %service.name, "member down for service (passive): {reason}");
            side.ejections.inc();
        }
    }

    /// Takes member `m` out of every service: its address refused a
    /// connection, which no service on it can survive.
    pub fn eject_all(&self, m: usize, reason: &str) {
        for s in 0..self.services.len() {
            self.eject(m, s, reason);
        }
    }

    /// The connector new connections are made with (one TLS client
    /// configuration per config).
    pub fn connector(&self) -> &Connector {
        &self.connector
    }

    /// The most recently used idle connection to member `m` that is ready,
    /// if any (never one idle for `proxy.pool_idle_timeout` or longer).
    pub fn idle_connection(&self, m: usize) -> Option<Driven<ReplayBody>> {
        self.members.get(m)?.pool.checkout(self.pool_idle_timeout)
    }

    /// A new HTTP/1.1 connection to `member` (one of these upstreams'),
    /// driven by a task of its own (see [`connect::Connector::connect`]).
    pub async fn connect(&self, member: &Member) -> Result<SendRequest<ReplayBody>, ConnectError> {
        self.connector
            .connect(member.address, member.tls.as_ref())
            .await
    }

    /// A new HTTP/1.1 connection to `member`, driven by its user (for the
    /// pool).
    pub async fn connect_driven(
        &self,
        member: &Member,
    ) -> Result<Driven<ReplayBody>, ConnectError> {
        self.connector
            .connect_driven(member.address, member.tls.as_ref())
            .await
    }

    /// `conn`, a connection to member `m`, as one that goes back to `m`'s
    /// pool when its answer has ended; `None` for an unknown member.
    pub fn returnable(&self, m: usize, conn: Driven<ReplayBody>) -> Option<MemberConn<ReplayBody>> {
        let b = self.members.get(m)?;
        Some(MemberConn::new(
            conn,
            Arc::clone(&b.pool),
            self.pool_max_idle,
        ))
    }

    /// Drops idle member connections past `proxy.pool_idle_timeout`.
    pub fn sweep_pools(&self) {
        for b in &*self.members {
            b.pool.sweep(self.pool_idle_timeout);
        }
    }

    /// Sets the per-member gauges of a scrape from the members' live state.
    pub fn export(&self, gauges: &MemberGauges<'_>) {
        let smtp = self.smtp_service();
        for b in &*self.members {
            gauges.member(&b.name, b.state.in_flight(), b.state.is_draining());
            for (s, svc) in self.services.iter().enumerate() {
                if b.service(s).target.is_some() {
                    gauges.up(&b.name, &svc.name, b.cell(s).is_up());
                }
            }
            if smtp.is_some_and(|s| b.service(s).target.is_some()) {
                gauges.smtp_sessions(&b.name, b.state.sessions());
            }
        }
    }

    /// The name of service `s`.
    pub fn service_name(&self, s: usize) -> Option<&str> {
        self.services.get(s).map(|svc| svc.name.as_str())
    }

    /// The pool of the member named `name` at `address`, reached the same
    /// way (`tls`: plain, or TLS to the same server name), if it has one.
    fn pool_of(
        &self,
        name: &str,
        address: std::net::SocketAddr,
        tls: Option<&ServerName<'static>>,
    ) -> Option<Arc<Pool<ReplayBody>>> {
        let b = &self.members[self.find(name)?];
        (b.address == address && b.tls.as_ref() == tls).then(|| Arc::clone(&b.pool))
    }
}

#[cfg(test)]
impl Upstreams {
    /// The upstreams of `cfg` with fresh member state and metrics.
    pub(crate) fn for_tests(cfg: &Config) -> Self {
        let metrics = Metrics::new().expect("metrics register");
        Upstreams::build(cfg, &Registry::new(), &metrics, None).expect("upstreams build")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A config of `n` members (EX1..EXn on unused loopback ports) and the
    /// default services, every service with `service_keys` added (for
    /// example an affinity), built into upstreams.
    pub(crate) fn upstreams(n: usize, service_keys: &str) -> (tempfile::TempDir, Upstreams) {
        let (dir, cfg) = config(n, service_keys);
        (dir, Upstreams::for_tests(&cfg))
    }

    pub(crate) fn config(n: usize, service_keys: &str) -> (tempfile::TempDir, Config) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
        let mut text = String::from(
            "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
             [listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"bundle.pem\"\n",
        );
        for i in 1..=n {
            text.push_str(&format!(
                "[[member]]\nname = \"EX{i}\"\naddress = \"127.0.0.1:{}\"\n",
                9000 + i
            ));
        }
        if !service_keys.is_empty() {
            text.push_str(&format!(
                "[[service]]\nname = \"owa\"\nprefix = \"/owa\"\n{service_keys}\n"
            ));
        }
        let cfg = crate::config::parse(&text, &dir.path().join("casarray.toml")).unwrap();
        (dir, cfg)
    }

    #[test]
    fn member_series_follow_the_live_members() {
        let (_dir, cfg) = config(2, "");
        let registry = Registry::new();
        let metrics = Metrics::new().unwrap();
        let up = Upstreams::build(&cfg, &registry, &metrics, None).unwrap();
        up.members()[1].state.set_draining(true);
        let _guard = up.members()[0].state.begin_request();
        let text = metrics.render_with(|g| up.export(g));
        for line in [
            "casarray_member_in_flight{member=\"EX1\"} 1",
            "casarray_member_draining{member=\"EX2\"} 1",
            "casarray_member_up{member=\"EX2\",service=\"owa\"} 1",
            // Present before anything happened, at 0.
            "casarray_passive_ejections_total{member=\"EX1\",service=\"ews\"} 0",
            "casarray_health_checks_total{member=\"EX2\",result=\"failure\",service=\"oab\"} 0",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
        up.eject(0, 0, "test");
        let text = metrics.render_with(|g| up.export(g));
        assert!(
            text.contains("casarray_member_up{member=\"EX1\",service=\"owa\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("casarray_passive_ejections_total{member=\"EX1\",service=\"owa\"} 1"),
            "{text}"
        );
    }

    #[test]
    fn pools_are_kept_for_members_reached_the_same_way() {
        let (_dir, cfg) = config(2, "");
        let registry = Registry::new();
        let metrics = Metrics::new().unwrap();
        let a = Upstreams::build(&cfg, &registry, &metrics, None).unwrap();
        let b = Upstreams::build(&cfg, &registry, &metrics, Some((&a, &cfg))).unwrap();
        assert!(Arc::ptr_eq(&a.members()[0].pool, &b.members()[0].pool));
        let mut moved = cfg.clone();
        moved.members[0].address = "127.0.0.1:9999".parse().unwrap();
        let c = Upstreams::build(&moved, &registry, &metrics, Some((&b, &cfg))).unwrap();
        assert!(!Arc::ptr_eq(&b.members()[0].pool, &c.members()[0].pool));
        assert!(Arc::ptr_eq(&b.members()[1].pool, &c.members()[1].pool));
    }
}
