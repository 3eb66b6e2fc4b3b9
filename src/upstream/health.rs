//! Active health checks: one task per (member, service).
//!
//! Each task GETs the service's health path every `interval` (first probe
//! at a random point of the first interval, so a large array does not probe
//! in lockstep). Healthy means status 200 and "200 OK" in the body, as
//! Exchange's `healthcheck.htm` answers. `rise` successes bring a pair in,
//! `fall` failures take it out, and every change is logged once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Empty, Limited};
use tokio::task::JoinHandle;

use super::connect::Connector;
use super::member::Transition;
use super::Upstreams;
use crate::admin::Metrics;
use crate::config::Config;
use hyper::client::conn::http1::SendRequest;

/// Largest health body read; Exchange's is a few dozen bytes.
const MAX_HEALTH_BODY: usize = 16 * 1024;

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
    /// Starts a checker for every (member, service) of `upstreams`; probes
    /// connect with `connector` (the snapshot's, so that they use the same
    /// TLS configuration as requests).
    pub fn start(
        cfg: &Config,
        upstreams: &Arc<Upstreams>,
        connector: &Connector,
        metrics: &Metrics,
    ) -> Self {
        let mut tasks = Vec::new();
        for (m, backend) in upstreams.backends().iter().enumerate() {
            for (s, service) in cfg.services.iter().enumerate() {
                let probe = Probe {
                    connector: connector.clone(),
                    conn: None,
                    upstreams: Arc::clone(upstreams),
                    metrics: metrics.clone(),
                    member: m,
                    service: s,
                    service_name: service.name.clone(),
                    address: backend.address,
                    tls: backend.tls.clone(),
                    path: service.health.clone(),
                    host: backend.fqdn.clone(),
                    interval: cfg.health.interval,
                    timeout: cfg.health.timeout,
                    rise: cfg.health.rise,
                    fall: cfg.health.fall,
                };
                metrics
                    .member_up
                    .with_label_values(&[&backend.name, &service.name])
                    .set(i64::from(backend.cell(s).is_up()));
                tasks.push(tokio::spawn(probe.run()));
            }
        }
        HealthChecks { tasks }
    }
}

struct Probe {
    connector: Connector,
    /// The probe's own keep-alive connection, made again when it closes.
    conn: Option<SendRequest<Empty<Bytes>>>,
    upstreams: Arc<Upstreams>,
    metrics: Metrics,
    member: usize,
    service: usize,
    service_name: String,
    address: std::net::SocketAddr,
    /// The member's TLS server name; `None`: plain HTTP.
    tls: Option<rustls_pki_types::ServerName<'static>>,
    path: String,
    host: String,
    interval: Duration,
    timeout: Duration,
    rise: u32,
    fall: u32,
}

impl Probe {
    async fn run(mut self) {
        let jitter = self
            .interval
            .mul_f64(jitter_fraction(self.member, self.service));
        let mut ticker =
            tokio::time::interval_at(tokio::time::Instant::now() + jitter, self.interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let started = Instant::now();
            let result = tokio::time::timeout(self.timeout, self.check()).await;
            let (ok, detail) = match result {
                Ok(Ok(())) => (true, format!("200 OK in {:?}", started.elapsed())),
                Ok(Err(why)) => (false, why),
                Err(_) => (false, format!("no answer within {:?}", self.timeout)),
            };
            self.record(ok, detail);
        }
    }

    fn record(&self, ok: bool, detail: String) {
        let backend = &self.upstreams.backends()[self.member];
        self.metrics
            .health_checks
            .with_label_values(&[
                backend.name.as_str(),
                self.service_name.as_str(),
                if ok { "success" } else { "failure" },
            ])
            .inc();
        let cell = backend.cell(self.service);
        match cell.record_probe(ok, detail.clone(), self.rise, self.fall) {
            Some(Transition::WentUp) => {
                tracing::info!(member = %backend.name, service = %self.service_name, "member up for service: {detail}");
                self.metrics
                    .member_up
                    .with_label_values(&[&backend.name, &self.service_name])
                    .set(1);
            }
            Some(Transition::WentDown) => {
                tracing::warn!(member = %backend.name, service = %self.service_name, "member down for service: {detail}");
                self.metrics
                    .member_up
                    .with_label_values(&[&backend.name, &self.service_name])
                    .set(0);
            }
            None => {}
        }
    }

    async fn check(&mut self) -> Result<(), String> {
        let req = Request::builder()
            .method(Method::GET)
            .uri(&self.path)
            .header(header::HOST, &self.host)
            .header(header::USER_AGENT, "casarray-health/1")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad health request: {e}"))?;
        let mut conn = match self.conn.take().filter(SendRequest::is_ready) {
            Some(conn) => conn,
            None => self
                .connector
                .connect(self.address, self.tls.as_ref())
                .await
                .map_err(|e| error_chain(&e))?,
        };
        let resp = conn.send_request(req).await.map_err(|e| {
            let hint = if self.tls.is_none() && e.is_parse() {
                " (the answer is not HTTP: if the member serves HTTPS on this port, set tls = true)"
            } else {
                ""
            };
            format!("request failed: {}{hint}", error_chain(&e))
        })?;
        let status = resp.status();
        let body = Limited::new(resp.into_body(), MAX_HEALTH_BODY)
            .collect()
            .await
            .map_err(|e| format!("body failed: {e}"))?
            .to_bytes();
        // Kept for the next probe; a connection the member closes in the
        // meantime is not ready then, and a new one is made.
        self.conn = Some(conn);
        if status != http::StatusCode::OK {
            return Err(format!("status {}", status.as_u16()));
        }
        if memchr::memmem::find(&body, b"200 OK").is_none() {
            return Err("body lacks \"200 OK\"".to_owned());
        }
        Ok(())
    }
}

/// A spread of first-probe offsets in [0, 1), stable per pair.
fn jitter_fraction(member: usize, service: usize) -> f64 {
    let x = (member as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((service as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9));
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// An error and its sources, on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_is_a_fraction() {
        for m in 0..10 {
            for s in 0..10 {
                let j = jitter_fraction(m, s);
                assert!((0.0..1.0).contains(&j));
            }
        }
    }
}
