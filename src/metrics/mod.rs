//! The Prometheus metrics of the contract (README "Metrics"; the list in
//! docs/ARCHITECTURE.md says who writes each one).
//!
//! One [`Metrics`] lives for the whole process and survives reloads. The
//! data path (proxy, upstream, serve) writes it; the admin listener only
//! renders it. Label sets are bounded by the config (services, members,
//! status codes); paths and client addresses are never labels. Every
//! labelled series whose labels the config determines exists from the
//! first scrape, at 0: the snapshot resolves its handles when it is built,
//! and the per-member gauges are filled at each scrape.

use std::sync::{Arc, Mutex, PoisonError};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

mod process;
mod requests;

use process::ProcessCollector;
pub use requests::RequestCounters;

/// Latency buckets in seconds: 100 µs to 5 min, so sub-millisecond proxy
/// overhead and hours-long streams both resolve.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Every metric the array exports.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `casarray_requests_total{service,member,code}`; member is "none" when
    /// the array answered itself (404, 503...).
    pub requests: IntCounterVec,
    /// `casarray_request_duration_seconds{service}`: time to the response head.
    pub request_duration: HistogramVec,
    /// `casarray_member_up{member,service}`: 1 healthy, 0 not; set from the
    /// members' live state at each scrape ([`Metrics::render_with`]), and
    /// nowhere else.
    member_up: IntGaugeVec,
    /// `casarray_health_checks_total{member,service,result}`; result is
    /// "success" or "failure".
    pub health_checks: IntCounterVec,
    /// `casarray_upstream_retries_total{service}`.
    pub upstream_retries: IntCounterVec,
    /// `casarray_passive_ejections_total{member,service}`.
    pub passive_ejections: IntCounterVec,
    /// `casarray_connections_active`: client connections open now.
    pub connections_active: IntGauge,
    /// `casarray_connections_total`: client connections accepted.
    pub connections_total: IntCounter,
    /// `casarray_connections_refused_total`: refused past `max_connections`.
    pub connections_refused: IntCounter,
    /// `casarray_tls_handshake_errors_total`.
    pub tls_handshake_errors: IntCounter,
    /// `casarray_tls_handshake_duration_seconds`.
    pub tls_handshake_duration: Histogram,
    /// `casarray_config_reloads_total{result}`; result "success" or "failure".
    pub config_reloads: IntCounterVec,
    /// `casarray_certificate_expiry_timestamp_seconds{name}`.
    pub certificate_expiry: IntGaugeVec,
    /// `casarray_rewrites_total{service}`: member names replaced.
    pub rewrites: IntCounterVec,
    /// `casarray_member_in_flight{member}`: requests and streams in flight;
    /// set from the members' live state at each scrape.
    member_in_flight: IntGaugeVec,
    /// `casarray_affinity_moves_total{service}`: clients moved off their
    /// sticky member because it was unhealthy or draining.
    pub affinity_moves: IntCounterVec,
    /// `casarray_member_draining{member}`: 1 while drained (admin API); set
    /// at each scrape.
    member_draining: IntGaugeVec,
    /// `casarray_smtp_connections_total{member,result}`: SMTP connections
    /// on `listen.smtp` by the member tried and what happened (`ok`: handed
    /// over after its 220; `refused`, `timeout`, `rejected`: skipped);
    /// member `none`, result `no_member` when no hub could take it.
    pub smtp_connections: IntCounterVec,
    /// `casarray_smtp_connections_active{member}`: SMTP sessions open to
    /// each member; set at each scrape.
    smtp_connections_active: IntGaugeVec,
    /// `casarray_database_active{database,member}`: 1 on the member whose
    /// copy is mounted, 0 on the other copies' members.
    pub database_active: IntGaugeVec,
    /// `casarray_database_failovers_total{database}`: the active copy seen
    /// moving to another member.
    pub database_failovers: IntCounterVec,
    /// `casarray_mailbox_routing_total{service,result}`: `active` (sent to
    /// the member with the mailbox's active copy), `fallback` (that member
    /// could not take it), `unknown` (no mailbox found, or no DAG map).
    pub mailbox_routing: IntCounterVec,
    // --- security (issue 18): the shields, allow_from, lockout ---
    /// `casarray_blocked_requests_total{rule}`: requests refused (403) by a
    /// shield rule, or by `allow_from` (rule "allow-from"); one series per
    /// rule from the first scrape.
    pub blocked_requests: IntCounterVec,
    /// `casarray_failed_logons_total{kind}`: failed logons seen (kind
    /// "basic", "ntlm" or "owa-form").
    pub failed_logons: IntCounterVec,
    /// `casarray_lockouts_total{scope}`: lockouts started (scope "address"
    /// or "user").
    pub lockouts: IntCounterVec,
    /// `casarray_locked_out_requests_total{scope}`: requests answered 429
    /// because of a lockout.
    pub locked_out_requests: IntCounterVec,
    /// `casarray_lockout_entries{table}`: entries in the lockout tables
    /// ("addresses", "users", "known_good").
    pub lockout_entries: IntGaugeVec,
    /// Serialises scrapes: each resets and refills the member series.
    scrape: Arc<Mutex<()>>,
}

impl Metrics {
    /// Registers every metric in a fresh registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "casarray_requests_total",
                "Requests answered, by service, member and status code.",
            ),
            &["service", "member", "code"],
        )?;
        let request_duration = HistogramVec::new(
            HistogramOpts::new(
                "casarray_request_duration_seconds",
                "Time from the request head to the response head, by service.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["service"],
        )?;
        let member_up = IntGaugeVec::new(
            Opts::new(
                "casarray_member_up",
                "1 when the member is healthy for the service.",
            ),
            &["member", "service"],
        )?;
        let health_checks = IntCounterVec::new(
            Opts::new(
                "casarray_health_checks_total",
                "Active health checks, by result.",
            ),
            &["member", "service", "result"],
        )?;
        let upstream_retries = IntCounterVec::new(
            Opts::new(
                "casarray_upstream_retries_total",
                "Requests sent again to another member after a failure.",
            ),
            &["service"],
        )?;
        let passive_ejections = IntCounterVec::new(
            Opts::new(
                "casarray_passive_ejections_total",
                "Members taken out of a service by a failure on the forwarding path.",
            ),
            &["member", "service"],
        )?;
        let connections_active = IntGauge::new(
            "casarray_connections_active",
            "Client connections open now.",
        )?;
        let connections_total =
            IntCounter::new("casarray_connections_total", "Client connections accepted.")?;
        let connections_refused = IntCounter::new(
            "casarray_connections_refused_total",
            "Client connections refused because the connection limit was reached.",
        )?;
        let tls_handshake_errors = IntCounter::new(
            "casarray_tls_handshake_errors_total",
            "TLS handshakes that failed or timed out.",
        )?;
        let tls_handshake_duration = Histogram::with_opts(
            HistogramOpts::new(
                "casarray_tls_handshake_duration_seconds",
                "Time to complete a TLS handshake.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
        )?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "casarray_config_reloads_total",
                "Config and certificate reloads, by result.",
            ),
            &["result"],
        )?;
        let certificate_expiry = IntGaugeVec::new(
            Opts::new(
                "casarray_certificate_expiry_timestamp_seconds",
                "Expiry (notAfter) of each served certificate, Unix time.",
            ),
            &["name"],
        )?;
        let rewrites = IntCounterVec::new(
            Opts::new(
                "casarray_rewrites_total",
                "Member names rewritten to array names in responses, by service.",
            ),
            &["service"],
        )?;
        let member_in_flight = IntGaugeVec::new(
            Opts::new(
                "casarray_member_in_flight",
                "Requests and streams in flight to each member.",
            ),
            &["member"],
        )?;
        let member_draining = IntGaugeVec::new(
            Opts::new(
                "casarray_member_draining",
                "1 while the member is drained: it gets no new request.",
            ),
            &["member"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(member_up.clone()))?;
        registry.register(Box::new(health_checks.clone()))?;
        registry.register(Box::new(upstream_retries.clone()))?;
        registry.register(Box::new(passive_ejections.clone()))?;
        registry.register(Box::new(connections_active.clone()))?;
        registry.register(Box::new(connections_total.clone()))?;
        registry.register(Box::new(connections_refused.clone()))?;
        registry.register(Box::new(tls_handshake_errors.clone()))?;
        registry.register(Box::new(tls_handshake_duration.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        registry.register(Box::new(certificate_expiry.clone()))?;
        registry.register(Box::new(rewrites.clone()))?;
        registry.register(Box::new(member_in_flight.clone()))?;
        let affinity_moves = IntCounterVec::new(
            Opts::new(
                "casarray_affinity_moves_total",
                "Clients moved off their sticky member because it was unhealthy or draining.",
            ),
            &["service"],
        )?;
        registry.register(Box::new(affinity_moves.clone()))?;
        registry.register(Box::new(member_draining.clone()))?;
        let smtp_connections = IntCounterVec::new(
            Opts::new(
                "casarray_smtp_connections_total",
                "SMTP connections on listen.smtp, by the member tried and the result.",
            ),
            &["member", "result"],
        )?;
        let smtp_connections_active = IntGaugeVec::new(
            Opts::new(
                "casarray_smtp_connections_active",
                "SMTP sessions open to each member.",
            ),
            &["member"],
        )?;
        registry.register(Box::new(smtp_connections.clone()))?;
        registry.register(Box::new(smtp_connections_active.clone()))?;
        let database_active = IntGaugeVec::new(
            Opts::new(
                "casarray_database_active",
                "1 on the member whose copy of the database is mounted.",
            ),
            &["database", "member"],
        )?;
        let database_failovers = IntCounterVec::new(
            Opts::new(
                "casarray_database_failovers_total",
                "Times the database's active copy moved to another member.",
            ),
            &["database"],
        )?;
        let mailbox_routing = IntCounterVec::new(
            Opts::new(
                "casarray_mailbox_routing_total",
                "Requests by how their mailbox chose the member: active, fallback, unknown.",
            ),
            &["service", "result"],
        )?;
        registry.register(Box::new(database_active.clone()))?;
        registry.register(Box::new(database_failovers.clone()))?;
        registry.register(Box::new(mailbox_routing.clone()))?;
        registry.register(Box::new(ProcessCollector::new()?))?;
        // --- security (issue 18) ---
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
        };
        let blocked_requests = counter(
            "casarray_blocked_requests_total",
            "Requests refused with 403 by a shield rule or by allow_from, by rule.",
            "rule",
        )?;
        let failed_logons = counter(
            "casarray_failed_logons_total",
            "Failed logons seen in members' answers, by kind (basic, ntlm, owa-form).",
            "kind",
        )?;
        let lockouts = counter(
            "casarray_lockouts_total",
            "Lockouts started after too many failed logons, by scope (address, user).",
            "scope",
        )?;
        let locked_out_requests = counter(
            "casarray_locked_out_requests_total",
            "Requests answered 429 because of a lockout, by scope.",
            "scope",
        )?;
        let lockout_entries = IntGaugeVec::new(
            Opts::new(
                "casarray_lockout_entries",
                "Entries in the lockout tables (addresses, users, known_good).",
            ),
            &["table"],
        )?;
        // Their series are made at 0 by the shields (`security::Shields::
        // build`), which know the rules, with the first snapshot.
        registry.register(Box::new(blocked_requests.clone()))?;
        registry.register(Box::new(failed_logons.clone()))?;
        registry.register(Box::new(lockouts.clone()))?;
        registry.register(Box::new(locked_out_requests.clone()))?;
        registry.register(Box::new(lockout_entries.clone()))?;
        // Known without a config: present from the first scrape.
        for result in ["success", "failure"] {
            config_reloads.with_label_values(&[result]);
        }
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            member_up,
            health_checks,
            upstream_retries,
            passive_ejections,
            connections_active,
            connections_total,
            connections_refused,
            tls_handshake_errors,
            tls_handshake_duration,
            config_reloads,
            certificate_expiry,
            rewrites,
            member_in_flight,
            affinity_moves,
            member_draining,
            smtp_connections,
            smtp_connections_active,
            database_active,
            database_failovers,
            mailbox_routing,
            blocked_requests,
            failed_logons,
            lockouts,
            locked_out_requests,
            lockout_entries,
            scrape: Arc::new(Mutex::new(())),
        })
    }

    /// The registry, for collectors added elsewhere (process metrics).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Everything in the Prometheus text format.
    pub fn render(&self) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.encode()
    }

    /// Everything in the Prometheus text format, with the per-member series
    /// (`member_up`, `member_in_flight`, `member_draining`) first set by
    /// `fill` from the members' live state (the upstreams of the current
    /// snapshot). Members no longer configured disappear from those series.
    pub fn render_with(&self, fill: impl FnOnce(&MemberGauges<'_>)) -> String {
        let _scrape = self.scrape.lock().unwrap_or_else(PoisonError::into_inner);
        self.member_up.reset();
        self.member_in_flight.reset();
        self.member_draining.reset();
        self.smtp_connections_active.reset();
        fill(&MemberGauges(self));
        self.encode()
    }

    fn encode(&self) -> String {
        let mut out = Vec::with_capacity(16 * 1024);
        let encoder = TextEncoder::new();
        if let Err(e) = encoder.encode(&self.registry.gather(), &mut out) {
            tracing::warn!(error = %e, "metrics encoding failed");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// The per-member gauges, set once per scrape by the members' owner.
pub struct MemberGauges<'a>(&'a Metrics);

impl MemberGauges<'_> {
    /// `casarray_member_in_flight` and `casarray_member_draining` of `member`.
    pub fn member(&self, member: &str, in_flight: usize, draining: bool) {
        let in_flight = i64::try_from(in_flight).unwrap_or(i64::MAX);
        self.0
            .member_in_flight
            .with_label_values(&[member])
            .set(in_flight);
        self.0
            .member_draining
            .with_label_values(&[member])
            .set(i64::from(draining));
    }

    /// `casarray_smtp_connections_active` of `member`.
    pub fn smtp_sessions(&self, member: &str, sessions: usize) {
        self.0
            .smtp_connections_active
            .with_label_values(&[member])
            .set(i64::try_from(sessions).unwrap_or(i64::MAX));
    }

    /// `casarray_member_up` of (`member`, `service`).
    pub fn up(&self, member: &str, service: &str, up: bool) {
        self.0
            .member_up
            .with_label_values(&[member, service])
            .set(i64::from(up));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_contract_names() {
        let m = Metrics::new().unwrap();
        m.requests.with_label_values(&["owa", "EX1", "200"]).inc();
        m.request_duration.with_label_values(&["owa"]).observe(0.01);
        m.member_up.with_label_values(&["EX1", "owa"]).set(1);
        m.health_checks
            .with_label_values(&["EX1", "owa", "success"])
            .inc();
        m.upstream_retries.with_label_values(&["owa"]).inc();
        m.config_reloads.with_label_values(&["success"]).inc();
        m.certificate_expiry
            .with_label_values(&["mail.lab.com"])
            .set(1);
        m.rewrites.with_label_values(&["owa"]).inc();
        let text = m.render();
        for name in [
            "casarray_requests_total",
            "casarray_request_duration_seconds_bucket",
            "casarray_member_up",
            "casarray_health_checks_total",
            "casarray_upstream_retries_total",
            "casarray_connections_active",
            "casarray_tls_handshake_errors_total",
            "casarray_config_reloads_total",
            "casarray_certificate_expiry_timestamp_seconds",
            "casarray_rewrites_total",
        ] {
            assert!(text.contains(name), "{name} missing from\n{text}");
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn process_metrics_are_registered() {
        let text = Metrics::new().unwrap().render();
        for line in [
            "# TYPE casarray_process_resident_memory_bytes gauge",
            "# TYPE casarray_process_open_fds gauge",
            "# TYPE casarray_process_cpu_seconds_total counter",
            "# TYPE casarray_process_start_time_seconds gauge",
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn member_series_are_what_the_last_scrape_set() {
        let m = Metrics::new().unwrap();
        let text = m.render_with(|g| {
            g.member("EX1", 1, false);
            g.member("EX2", 0, true);
            g.up("EX2", "owa", true);
        });
        assert!(
            text.contains("casarray_member_in_flight{member=\"EX1\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("casarray_member_draining{member=\"EX2\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("casarray_member_up{member=\"EX2\",service=\"owa\"} 1"),
            "{text}"
        );
        // EX2 left the config: its series go with it.
        let text = m.render_with(|g| g.member("EX1", 1, false));
        assert!(!text.contains("member=\"EX2\""), "{text}");
    }

    #[test]
    fn reload_results_are_there_before_any_reload() {
        let text = Metrics::new().unwrap().render();
        for result in ["success", "failure"] {
            let line = format!("casarray_config_reloads_total{{result=\"{result}\"}} 0");
            assert!(text.contains(&line), "{line} missing from\n{text}");
        }
    }
}
