//! Active health checks: one task per (member, service).
//!
//! Each task runs the service's [`Check`] every `interval` (first probe at
//! a random point of the first interval, so a large array does not probe in
//! lockstep), bounded by `timeout`. `rise` successes bring a pair in,
//! `fall` failures take it out, and every change is logged once. What a
//! probe does is the check kind's: [`http`] (Exchange's `healthcheck.htm`,
//! the default), [`tcp`] (a connect, and the TLS handshake for TLS
//! members) or [`ehlo`] (an SMTP hub's greeting and EHLO). A member that
//! does not take a service (no `smtp` address) is not checked for it.
//!
//! Adding a kind: a file here with a type that implements [`Check`], a
//! variant in `config::HealthKind`, and its arm in [`HealthChecks::start`].

pub mod ehlo;
pub mod http;
pub mod tcp;

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::state::Transition;
use super::Upstreams;
use crate::config::{Config, HealthKind};

/// One kind of health probe against one (member, service).
pub trait Check: Send + 'static {
    /// Probes once: `Ok(detail)` when healthy ("200 OK", "connected"),
    /// `Err(why)` when not. The caller bounds it with the health timeout
    /// and adds the time taken to the detail.
    fn probe(&mut self) -> impl Future<Output = Result<String, String>> + Send;
}

/// The running checkers of one config; dropping this stops them.
#[derive(Debug, Default)]
pub struct HealthChecks {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for HealthChecks {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl HealthChecks {
    /// Starts a checker for every (member, service) of `upstreams` that the
    /// member takes, with `cfg`'s timing; probes connect with the
    /// upstreams' connector (the same TLS configuration as requests).
    pub fn start(cfg: &Config, upstreams: &Arc<Upstreams>) -> Self {
        let mut tasks = Vec::new();
        for (m, member) in upstreams.members().iter().enumerate() {
            for (s, service) in upstreams.services().iter().enumerate() {
                let Some(target) = member.service(s).target else {
                    continue;
                };
                let runner = Runner {
                    upstreams: Arc::clone(upstreams),
                    member: m,
                    service: s,
                    service_name: service.name.clone(),
                    interval: cfg.health.interval,
                    timeout: cfg.health.timeout,
                    rise: cfg.health.rise,
                    fall: cfg.health.fall,
                };
                let dialer = upstreams.connector().dialer().clone();
                // SMTP is plain at connect (STARTTLS is the session's own).
                let tls = if target == member.address {
                    member.tls.clone()
                } else {
                    None
                };
                let task = match service.health_kind {
                    HealthKind::Http => tokio::spawn(runner.run(http::HttpCheck::new(
                        upstreams.connector().clone(),
                        member,
                        &service.health_path,
                    ))),
                    HealthKind::Tcp => {
                        tokio::spawn(runner.run(tcp::TcpCheck::new(dialer, target, tls)))
                    }
                    HealthKind::Ehlo => tokio::spawn(runner.run(ehlo::EhloCheck::new(
                        dialer,
                        target,
                        &cfg.array.fqdn,
                        cfg.smtp.proxy_protocol,
                    ))),
                };
                tasks.push(task);
            }
        }
        HealthChecks { tasks }
    }
}

/// What every check kind's task shares: the schedule and the bookkeeping.
struct Runner {
    upstreams: Arc<Upstreams>,
    member: usize,
    service: usize,
    service_name: String,
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
}

impl Runner {
    async fn run(self, mut check: impl Check) {
        let jitter = self
            .interval
            .mul_f64(jitter_fraction(self.member, self.service));
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + jitter, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let started = Instant::now();
            let result = tokio::time::timeout(self.timeout, check.probe()).await;
            let (ok, detail) = match result {
                Ok(Ok(what)) => (true, format!("{what} in {:?}", started.elapsed())),
                Ok(Err(why)) => (false, why),
                Err(_) => (false, format!("no answer within {:?}", self.timeout)),
            };
            self.record(ok, detail);
        }
    }

    fn record(&self, ok: bool, detail: String) {
        let Some(member) = self.upstreams.members().get(self.member) else {
            return;
        };
        let side = member.service(self.service);
        side.checks[usize::from(!ok)].inc();
        match side
            .health
            .record_probe(ok, detail.clone(), self.rise, self.fall)
        {
            Some(Transition::WentUp) => {
                tracing::info!(member = %member.name, service = %self.service_name, "member up for service: {detail}");
            }
            Some(Transition::WentDown) => {
                tracing::warn!(member = %member.name, service = %self.service_name, "member down for service: {detail}");
            }
            None => {}
        }
    }
}

/// A spread of first-probe offsets in [0, 1), stable per pair.
fn jitter_fraction(member: usize, service: usize) -> f64 {
    let x = (member as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((service as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::Metrics;
    use crate::upstream::state::Registry;

    #[test]
    fn jitter_is_a_fraction() {
        for m in 0..10 {
            for s in 0..10 {
                let j = jitter_fraction(m, s);
                assert!((0.0..1.0).contains(&j));
            }
        }
    }

    /// A TCP check on a port nobody listens on takes the member out; one
    /// on a listening port keeps it (and brings it back).
    #[tokio::test]
    async fn tcp_kind_follows_the_port() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let open = listener.local_addr().unwrap();
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap()
        };
        let (_dir, mut cfg) =
            crate::upstream::tests::config(2, "health_kind = \"tcp\"\nhealth = \"/\"");
        cfg.members[0].address = open;
        cfg.members[1].address = closed;
        cfg.health.interval = Duration::from_millis(50);
        cfg.health.timeout = Duration::from_millis(40);
        cfg.health.rise = 1;
        cfg.health.fall = 1;
        let metrics = Metrics::new().unwrap();
        let up = Arc::new(Upstreams::build(&cfg, &Registry::new(), &metrics, None).unwrap());
        let checks = HealthChecks::start(&cfg, &up);
        let deadline = Instant::now() + Duration::from_secs(20);
        while (up.members()[1].eligible(0) || up.members()[0].cell(0).last_check().is_none())
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(up.members()[0].eligible(0));
        assert!(!up.members()[1].eligible(0));
        let (_, ok, detail) = up.members()[0].cell(0).last_check().unwrap();
        assert!(ok && detail.starts_with("connected in"), "{detail}");
        let (_, ok, detail) = up.members()[1].cell(0).last_check().unwrap();
        assert!(!ok && detail.contains("connect to"), "{detail}");
        drop(checks);
        drop(listener);
    }
}
