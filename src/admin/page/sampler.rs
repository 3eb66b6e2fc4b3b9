//! The sampler: every [`INTERVAL`] (1 s) it reads the metrics, turns the
//! counters into rates since the previous reading, keeps them in the
//! bounded [`Series`] and notes when the reload counters change. The admin
//! listener starts it ([`Sampler::run`]) and its calls read it.
//!
//! Every sample reads the counters `Metrics` holds as fields; every
//! [`FULL_EVERY`]th (the first included) reads the whole registry, for the
//! blocked requests and the start time (see `reading.rs`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior};

use super::overview::{self, OverviewView, ReloadWatch};
use super::reading::{self, Reading};
use super::series::{Point, Series, SeriesView, INTERVAL};
use crate::live::Live;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// One sample in this many reads the whole registry: every 10 s, so the
/// start time is read every 10 s.
pub const FULL_EVERY: u64 = 10;

/// The status page's memory of the recent past; shared by the sampling
/// task and the admin calls.
#[derive(Default)]
pub struct Sampler {
    inner: Mutex<Inner>,
    /// Samples taken.
    taken: AtomicU64,
}

#[derive(Default)]
struct Inner {
    series: Series,
    /// The previous reading and when it was taken (tokio's monotonic
    /// clock, so that a paused test clock pauses it too).
    previous: Option<(Instant, Reading)>,
    reloads: ReloadWatch,
}

/// The sampling task; it stops when this is dropped.
pub struct Sampling(JoinHandle<()>);

impl Drop for Sampling {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Sampler {
    /// Starts sampling `live` every [`INTERVAL`] on the current tokio
    /// runtime, the first sample at once.
    pub fn run(self: &Arc<Self>, live: Arc<Live>) -> Sampling {
        let sampler = Arc::clone(self);
        Sampling(tokio::spawn(async move {
            let mut tick = tokio::time::interval(INTERVAL);
            tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let snap = live.snapshot.load();
                sampler.sample(&live.metrics, &snap);
            }
        }))
    }

    /// Takes one sample of `metrics` now; `snap` names the members.
    pub fn sample(&self, metrics: &Metrics, snap: &Snapshot) {
        let members: Vec<&str> = snap
            .upstreams
            .members()
            .iter()
            .map(|b| b.name.as_str())
            .collect();
        let full = self.taken.fetch_add(1, Ordering::Relaxed) % FULL_EVERY == 0;
        let reading = if full {
            reading::read_all(metrics)
        } else {
            reading::read_fields(metrics)
        };
        self.record(Instant::now(), unix_ms(), reading, full, &members);
    }

    /// Records `reading`, taken at `at` (`at_unix_ms` on the wall clock);
    /// a point is added from the second reading on. Unless it is `full`,
    /// the start time is the previous reading's.
    fn record(
        &self,
        at: Instant,
        at_unix_ms: i64,
        mut reading: Reading,
        full: bool,
        members: &[&str],
    ) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let (false, Some((_, before))) = (full, &inner.previous) {
            reading.started_unix = before.started_unix;
        }
        inner.reloads.observe(&reading.reloads, at_unix_ms);
        if let Some((then, before)) = &inner.previous {
            let seconds = at.saturating_duration_since(*then).as_secs_f64();
            if seconds > 0.0 {
                let rate = |now: f64, before: f64| (now - before).max(0.0) / seconds;
                let point = Point {
                    at_unix_ms,
                    requests_per_s: rate(reading.requests, before.requests),
                    errors_per_s: rate(reading.errors, before.errors),
                    members: members
                        .iter()
                        .map(|&m| {
                            let get = |r: &Reading| r.by_member.get(m).copied().unwrap_or(0.0);
                            (m.to_owned(), rate(get(&reading), get(before)))
                        })
                        .collect(),
                };
                inner.series.push(&point);
            }
        }
        inner.previous = Some((at, reading));
    }

    /// `GET /api/series`.
    pub fn series(&self) -> SeriesView {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .series
            .view()
    }

    /// `GET /api/overview`, with the SMTP hubs of `snap`.
    pub fn overview(&self, snap: &Snapshot) -> OverviewView {
        let inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        overview::build(
            inner.previous.as_ref().map(|(_, r)| r),
            inner.series.last(),
            &inner.reloads,
            snap,
            unix_ms(),
        )
    }
}

/// Now, Unix time in milliseconds.
fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn reading(requests: f64, errors: f64, ex1: f64, reloads: u64) -> Reading {
        Reading {
            requests,
            errors,
            by_member: [("EX1".to_string(), ex1)].into(),
            reloads: [("success".to_string(), reloads)].into(),
            ..Reading::default()
        }
    }

    #[test]
    fn rates_are_counter_differences_over_the_elapsed_time() {
        let s = Sampler::default();
        let t0 = Instant::now();
        s.record(t0, 1_000, reading(10.0, 1.0, 4.0, 0), true, &["EX1", "EX2"]);
        assert_eq!(s.series().at_unix_ms.len(), 0, "one reading: no rate yet");
        s.record(
            t0 + Duration::from_secs(2),
            3_000,
            reading(30.0, 5.0, 10.0, 1),
            false,
            &["EX1", "EX2"],
        );
        let v = s.series();
        assert_eq!(v.at_unix_ms, [3_000]);
        assert_eq!(v.requests_per_s, [10.0]);
        assert_eq!(v.errors_per_s, [2.0]);
        assert_eq!(v.members["EX1"], [3.0]);
        assert_eq!(v.members["EX2"], [0.0], "no series yet: no requests");
        let inner = s.inner.lock().unwrap();
        assert_eq!(inner.reloads.last().unwrap().at_unix_ms, 3_000);
    }

    #[test]
    fn a_counter_that_went_back_gives_zero_not_a_negative_rate() {
        let s = Sampler::default();
        let t0 = Instant::now();
        s.record(t0, 0, reading(10.0, 0.0, 10.0, 0), true, &["EX1"]);
        s.record(
            t0 + Duration::from_secs(1),
            1_000,
            reading(5.0, 0.0, 5.0, 0),
            false,
            &["EX1"],
        );
        s.record(
            t0 + Duration::from_secs(1),
            1_000,
            reading(6.0, 0.0, 6.0, 0),
            false,
            &["EX1"],
        );
        let v = s.series();
        // The second reading went back (0, not negative); the third came
        // with no time passed (no point).
        assert_eq!(v.requests_per_s, [0.0]);
        assert_eq!(v.members["EX1"], [0.0]);
    }

    #[test]
    fn the_start_time_comes_from_the_full_reads_and_is_kept_between() {
        let s = Sampler::default();
        let t0 = Instant::now();
        let full = Reading {
            blocked: Some([("rule-a".to_string(), 3)].into()),
            started_unix: Some(1_700_000_000),
            ..reading(1.0, 0.0, 1.0, 0)
        };
        s.record(t0, 0, full, true, &["EX1"]);
        let fields_only = Reading {
            blocked: Some([("rule-a".to_string(), 4)].into()),
            ..reading(2.0, 0.0, 2.0, 0)
        };
        s.record(
            t0 + Duration::from_secs(1),
            1_000,
            fields_only,
            false,
            &["EX1"],
        );
        let f = crate::admin::page::tests::live();
        let o = s.overview(&f.live.snapshot.load());
        assert_eq!(o.blocked.unwrap()["rule-a"], 4, "read every second");
        assert_eq!(o.started_unix, Some(1_700_000_000));
    }

    #[tokio::test(start_paused = true)]
    async fn the_task_samples_every_second_and_stops_when_dropped() {
        let f = crate::admin::page::tests::live();
        let sampler = Arc::new(Sampler::default());
        let sampling = sampler.run(Arc::clone(&f.live));
        for _ in 0..3 {
            tokio::time::sleep(INTERVAL).await;
        }
        // Samples at 0, 1, 2 and 3 s: three points.
        let n = sampler.series().at_unix_ms.len();
        assert!((2..=3).contains(&n), "{n}");
        drop(sampling);
        tokio::time::sleep(INTERVAL * 5).await;
        assert_eq!(sampler.series().at_unix_ms.len(), n, "stopped");
        let o = sampler.overview(&f.live.snapshot.load());
        assert_eq!(o.reloads.success, 0);
        assert!(o.rates.is_some());
    }
}
