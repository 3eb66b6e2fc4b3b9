//! `GET /api/overview`: what the status page shows besides the members and
//! the databases (which it reads from `/api/members` and `/api/databases`):
//! the latest rates, the certificates, the config reloads, the SMTP hubs
//! and the blocked requests.

use std::collections::BTreeMap;

use serde::Serialize;

use super::reading::Reading;
use super::series::Point;
use crate::snapshot::Snapshot;

/// Seconds in a day, for `days_left`.
const DAY: i64 = 86_400;

/// The answer of `GET /api/overview`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OverviewView {
    /// When this answer was made, Unix time in milliseconds.
    pub at_unix_ms: i64,
    /// When the process started, Unix seconds; null when unknown.
    pub started_unix: Option<i64>,
    /// The rates of the newest sample (see `GET /api/series`); null until
    /// two samples were taken (about 2 s after start).
    pub rates: Option<RatesView>,
    /// Every served certificate, soonest expiry first.
    pub certificates: Vec<CertificateView>,
    pub reloads: ReloadsView,
    /// Members with an SMTP address, in config order; empty without
    /// `listen.smtp`.
    pub smtp: Vec<HubView>,
    /// Requests refused by each shield rule since start, read every second.
    pub blocked: Option<BTreeMap<String, u64>>,
}

/// Rates over the last sample interval.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RatesView {
    /// When the sample was taken, Unix time in milliseconds.
    pub at_unix_ms: i64,
    /// Requests answered per second (members and the array's own answers).
    pub requests_per_s: f64,
    /// 5xx answers per second.
    pub errors_per_s: f64,
    /// Requests answered per second by each member.
    pub members: BTreeMap<String, f64>,
}

/// A served certificate (`casarray_certificate_expiry_timestamp_seconds`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CertificateView {
    pub name: String,
    /// notAfter, Unix seconds.
    pub expires_unix: i64,
    /// Whole days until then, rounded down; negative once expired.
    pub days_left: i64,
}

/// Config and certificate reloads (`casarray_config_reloads_total`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct ReloadsView {
    /// Reloads that took effect since start.
    pub success: u64,
    /// Reloads refused (the old config kept serving) since start.
    pub failure: u64,
    /// The last reload seen by the sampler; null when none since start.
    pub last: Option<LastReload>,
}

/// The last change of the reload counters the sampler saw.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastReload {
    /// `success` or `failure` (`failure` when both changed within one
    /// sample interval).
    pub result: String,
    /// When the sampler saw the counter change, Unix time in milliseconds:
    /// at most one sample interval (1 s) after the reload.
    pub at_unix_ms: i64,
}

/// One SMTP hub (a member with an `smtp` address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubView {
    pub member: String,
    /// SMTP sessions open to it now (the value of
    /// `casarray_smtp_connections_active{member}`).
    pub sessions: u64,
    /// Connections handed over to it since start
    /// (`casarray_smtp_connections_total{member,result="ok"}`).
    pub connections: u64,
    /// Healthy for SMTP now.
    pub up: bool,
}

/// Remembers when the reload counters last changed.
#[derive(Debug, Clone, Default)]
pub struct ReloadWatch {
    counts: Option<BTreeMap<String, u64>>,
    last: Option<LastReload>,
}

impl ReloadWatch {
    /// Takes the counters read at `at_unix_ms`. The first call sets the
    /// baseline: a reload before it has no time.
    pub fn observe(&mut self, counts: &BTreeMap<String, u64>, at_unix_ms: i64) {
        if let Some(before) = &self.counts {
            let grew = |result: &str| {
                counts.get(result).copied().unwrap_or(0) > before.get(result).copied().unwrap_or(0)
            };
            let result = if grew("failure") {
                Some("failure")
            } else if grew("success") {
                Some("success")
            } else {
                None
            };
            if let Some(result) = result {
                self.last = Some(LastReload {
                    result: result.to_owned(),
                    at_unix_ms,
                });
            }
        }
        self.counts = Some(counts.clone());
    }

    /// The last change seen, if any.
    pub fn last(&self) -> Option<&LastReload> {
        self.last.as_ref()
    }
}

/// The overview from the newest `reading`, the newest series point, the
/// reload watch and the live state of `snap`'s members, at `now_unix_ms`.
pub fn build(
    reading: Option<&Reading>,
    point: Option<Point>,
    reloads: &ReloadWatch,
    snap: &Snapshot,
    now_unix_ms: i64,
) -> OverviewView {
    let empty = Reading::default();
    let r = reading.unwrap_or(&empty);
    let now = now_unix_ms.div_euclid(1000);
    let mut certificates: Vec<CertificateView> = r
        .certificates
        .iter()
        .map(|(name, &expires_unix)| CertificateView {
            name: name.clone(),
            expires_unix,
            days_left: (expires_unix - now).div_euclid(DAY),
        })
        .collect();
    certificates.sort_by(|a, b| (a.expires_unix, &a.name).cmp(&(b.expires_unix, &b.name)));
    OverviewView {
        at_unix_ms: now_unix_ms,
        started_unix: r.started_unix,
        rates: point.map(|p| RatesView {
            at_unix_ms: p.at_unix_ms,
            requests_per_s: p.requests_per_s,
            errors_per_s: p.errors_per_s,
            members: p.members,
        }),
        certificates,
        reloads: ReloadsView {
            success: r.reloads.get("success").copied().unwrap_or(0),
            failure: r.reloads.get("failure").copied().unwrap_or(0),
            last: reloads.last().cloned(),
        },
        smtp: hubs(snap, r),
        blocked: r.blocked.clone(),
    }
}

/// The SMTP hubs of `snap`, from the members' live state.
fn hubs(snap: &Snapshot, r: &Reading) -> Vec<HubView> {
    let up = &snap.upstreams;
    let Some(smtp) = up.smtp_service() else {
        return Vec::new();
    };
    up.members()
        .iter()
        .filter(|b| b.service(smtp).target.is_some())
        .map(|b| HubView {
            member: b.name.clone(),
            sessions: b.state.sessions() as u64,
            connections: r.smtp_connections.get(&b.name).copied().unwrap_or(0),
            up: b.cell(smtp).is_up(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(success: u64, failure: u64) -> BTreeMap<String, u64> {
        [("success".into(), success), ("failure".into(), failure)].into()
    }

    #[test]
    fn the_last_reload_is_when_a_counter_moved() {
        let mut w = ReloadWatch::default();
        w.observe(&counts(3, 0), 1_000);
        assert_eq!(w.last(), None, "the baseline has no time");
        w.observe(&counts(3, 0), 2_000);
        assert_eq!(w.last(), None);
        w.observe(&counts(4, 0), 3_000);
        assert_eq!(
            w.last(),
            Some(&LastReload {
                result: "success".into(),
                at_unix_ms: 3_000
            })
        );
        w.observe(&counts(4, 1), 4_000);
        assert_eq!(w.last().unwrap().result, "failure");
        w.observe(&counts(4, 1), 5_000);
        assert_eq!(w.last().unwrap().at_unix_ms, 4_000, "kept until the next");
        w.observe(&counts(5, 2), 6_000);
        assert_eq!(w.last().unwrap().result, "failure", "both: the failure");
    }

    #[test]
    fn certificates_count_whole_days_left() {
        let snap = crate::admin::page::tests::snapshot("");
        let reading = Reading {
            certificates: [
                ("late.lab.com".to_string(), 100 * DAY + 10),
                ("old.lab.com".to_string(), 10),
            ]
            .into(),
            ..Reading::default()
        };
        let v = build(
            Some(&reading),
            None,
            &ReloadWatch::default(),
            &snap,
            20 * 1000,
        );
        assert_eq!(v.certificates[0].name, "old.lab.com");
        assert_eq!(v.certificates[0].days_left, -1, "expired 10 s ago");
        assert_eq!(v.certificates[1].days_left, 99);
        assert_eq!(v.rates, None);
        assert!(v.smtp.is_empty(), "no listen.smtp");
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["blocked"], serde_json::Value::Null);
        assert_eq!(json["reloads"]["last"], serde_json::Value::Null);
    }

    #[test]
    fn smtp_hubs_are_the_members_with_an_smtp_address() {
        let snap = crate::admin::page::tests::snapshot("smtp = \"127.0.0.1:2525\"\n");
        let reading = Reading {
            smtp_connections: [("EX1".to_string(), 4)].into(),
            ..Reading::default()
        };
        let v = build(Some(&reading), None, &ReloadWatch::default(), &snap, 0);
        assert_eq!(v.smtp.len(), 1, "{:?}", v.smtp);
        assert_eq!(v.smtp[0].member, "EX1");
        assert_eq!(v.smtp[0].connections, 4);
        assert_eq!(v.smtp[0].sessions, 0);
    }
}
