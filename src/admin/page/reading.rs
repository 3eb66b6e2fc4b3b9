//! What the status page reads from the crate's metrics at one instant (the
//! same values `/metrics` shows): request counters, config reloads,
//! certificate expiry, SMTP connections, blocked requests and the start
//! time. Metrics are found by name.
//!
//! Two ways to read: [`read_fields`] collects only the metrics `Metrics`
//! holds as fields (cheap: the sampler does it every second);
//! [`read_all`] gathers the whole registry, also the process metrics, whose
//! open-fd count lists `/proc/self/fd` (about 4 ms with 5 000 connections
//! in a debug build), so the sampler does it every 10th sample only.
//!
//! The per-member gauges (`casarray_member_*`,
//! `casarray_smtp_connections_active`) are only set while `/metrics` is
//! scraped; the page reads their values from the members' live state
//! instead (`overview.rs`), never from here.

use std::collections::BTreeMap;

use prometheus::core::Collector;
use prometheus::proto::{LabelPair, MetricFamily};

use crate::metrics::Metrics;

/// `casarray_requests_total{service,member,code}`.
const REQUESTS: &str = "casarray_requests_total";
/// `casarray_config_reloads_total{result}`.
const RELOADS: &str = "casarray_config_reloads_total";
/// `casarray_certificate_expiry_timestamp_seconds{name}`.
const CERT_EXPIRY: &str = "casarray_certificate_expiry_timestamp_seconds";
/// `casarray_smtp_connections_total{member,result}`.
const SMTP_CONNECTIONS: &str = "casarray_smtp_connections_total";
/// `casarray_blocked_requests_total{rule}` (the shields).
const BLOCKED: &str = "casarray_blocked_requests_total";
/// `casarray_process_start_time_seconds`.
const STARTED: &str = "casarray_process_start_time_seconds";

/// The `member` label of answers the array gave itself.
const NO_MEMBER: &str = "none";

/// The counters and gauges the status page shows, at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Reading {
    /// Requests answered since start, every member and `none` together.
    pub requests: f64,
    /// Of those, answers with a 5xx status.
    pub errors: f64,
    /// Requests answered by each member (the array's own answers left out).
    pub by_member: BTreeMap<String, f64>,
    /// Config reloads by result (`success`, `failure`).
    pub reloads: BTreeMap<String, u64>,
    /// Certificate expiry (notAfter) by certificate name, Unix seconds.
    pub certificates: BTreeMap<String, i64>,
    /// SMTP connections handed over to each hub (result `ok`).
    pub smtp_connections: BTreeMap<String, u64>,
    /// Blocked requests by rule; `None` when this build has no such metric.
    pub blocked: Option<BTreeMap<String, u64>>,
    /// When the process started, Unix seconds, when known.
    pub started_unix: Option<i64>,
}

/// Reads the metrics `metrics` has as fields: requests, reloads,
/// certificate expiry, SMTP connections and blocked requests;
/// `started_unix` is left unknown (`None`).
pub fn read_fields(metrics: &Metrics) -> Reading {
    let mut families = metrics.requests.collect();
    families.extend(metrics.config_reloads.collect());
    families.extend(metrics.certificate_expiry.collect());
    families.extend(metrics.smtp_connections.collect());
    families.extend(metrics.blocked_requests.collect());
    from_families(&families)
}

/// Reads everything registered in `metrics`' registry.
pub fn read_all(metrics: &Metrics) -> Reading {
    from_families(&metrics.registry().gather())
}

/// Reads gathered metric families; unknown families are ignored.
pub fn from_families(families: &[MetricFamily]) -> Reading {
    let mut r = Reading::default();
    for family in families {
        match family.name() {
            REQUESTS => {
                for m in family.get_metric() {
                    let n = m.get_counter().get_value();
                    let labels = m.get_label();
                    r.requests += n;
                    if label(labels, "code").starts_with('5') {
                        r.errors += n;
                    }
                    let member = label(labels, "member");
                    if !member.is_empty() && member != NO_MEMBER {
                        *r.by_member.entry(member.to_owned()).or_default() += n;
                    }
                }
            }
            RELOADS => {
                for m in family.get_metric() {
                    let result = label(m.get_label(), "result").to_owned();
                    *r.reloads.entry(result).or_default() += count(m.get_counter().get_value());
                }
            }
            CERT_EXPIRY => {
                for m in family.get_metric() {
                    let name = label(m.get_label(), "name").to_owned();
                    r.certificates
                        .insert(name, m.get_gauge().get_value() as i64);
                }
            }
            SMTP_CONNECTIONS => {
                for m in family.get_metric() {
                    let labels = m.get_label();
                    if label(labels, "result") == "ok" {
                        let member = label(labels, "member").to_owned();
                        *r.smtp_connections.entry(member).or_default() +=
                            count(m.get_counter().get_value());
                    }
                }
            }
            BLOCKED => {
                let blocked = r.blocked.get_or_insert_with(BTreeMap::new);
                for m in family.get_metric() {
                    let rule = label(m.get_label(), "rule").to_owned();
                    *blocked.entry(rule).or_default() += count(m.get_counter().get_value());
                }
            }
            STARTED => {
                r.started_unix = family
                    .get_metric()
                    .first()
                    .map(|m| m.get_gauge().get_value() as i64);
            }
            _ => {}
        }
    }
    r
}

/// The value of label `name`, or "".
fn label<'a>(labels: &'a [LabelPair], name: &str) -> &'a str {
    labels
        .iter()
        .find(|l| l.name() == name)
        .map_or("", |l| l.value())
}

/// A counter's value as a count (counters are whole and not negative).
fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v as u64
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_counters_it_shows() {
        let m = Metrics::new().unwrap();
        m.requests
            .with_label_values(&["owa", "EX1", "200"])
            .inc_by(5);
        m.requests
            .with_label_values(&["ews", "EX1", "502"])
            .inc_by(2);
        m.requests
            .with_label_values(&["owa", "EX2", "200"])
            .inc_by(3);
        m.requests
            .with_label_values(&["owa", "none", "503"])
            .inc_by(1);
        m.requests
            .with_label_values(&["owa", "none", "404"])
            .inc_by(4);
        m.config_reloads.with_label_values(&["failure"]).inc();
        m.certificate_expiry
            .with_label_values(&["mail.lab.com"])
            .set(1_900_000_000);
        m.smtp_connections
            .with_label_values(&["EX1", "ok"])
            .inc_by(7);
        m.smtp_connections
            .with_label_values(&["EX1", "refused"])
            .inc();
        // The shields make every rule's series at 0 (here: one, by hand).
        m.blocked_requests
            .with_label_values(&["proxylogon-anonresource"]);
        let r = read_all(&m);
        assert_eq!(
            r,
            Reading {
                started_unix: r.started_unix,
                ..read_fields(&m)
            }
        );
        assert_eq!(r.requests, 15.0);
        assert_eq!(r.errors, 3.0);
        assert_eq!(r.by_member["EX1"], 7.0);
        assert_eq!(r.by_member["EX2"], 3.0);
        assert!(!r.by_member.contains_key("none"));
        assert_eq!(r.reloads["success"], 0);
        assert_eq!(r.reloads["failure"], 1);
        assert_eq!(r.certificates["mail.lab.com"], 1_900_000_000);
        assert_eq!(r.smtp_connections["EX1"], 7);
        let blocked = r.blocked.as_ref().expect("the shields' metric");
        assert!(blocked.values().all(|&n| n == 0), "{blocked:?}");
        if cfg!(target_os = "linux") {
            assert!(r.started_unix.is_some_and(|t| t > 1_600_000_000));
        }
    }

    #[test]
    fn blocked_requests_are_read_every_time() {
        let m = Metrics::new().unwrap();
        m.blocked_requests
            .with_label_values(&["proxylogon-anonresource"])
            .inc_by(2);
        let b = read_fields(&m).blocked.unwrap();
        assert_eq!(b["proxylogon-anonresource"], 2);
    }
}
