//! The status page's time series, kept in memory: requests per second and
//! errors (5xx) per second for the whole array, and requests per second per
//! member, one sample per [`INTERVAL`], the last [`CAPACITY`] samples.
//!
//! Bounded: at most `CAPACITY` samples of `2 + members` numbers and a time,
//! 8 bytes each (600 x 40 bytes = 24 KB for two members); members are those
//! of the current config, so a member removed by a reload leaves the series
//! with it. Nothing is kept across a restart.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;

/// Time between two samples: 1 s.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Samples kept: 600, that is 10 minutes at one per second.
pub const CAPACITY: usize = 600;

/// One sample: rates over the time since the previous one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Point {
    /// When it was taken, Unix time in milliseconds.
    pub at_unix_ms: i64,
    /// Requests answered per second, every member and the array's own
    /// answers (`member="none"`) together.
    pub requests_per_s: f64,
    /// Answers with a 5xx status per second.
    pub errors_per_s: f64,
    /// Requests answered per second by each member of the config.
    pub members: BTreeMap<String, f64>,
}

/// The last [`CAPACITY`] (or fewer) points, oldest first, by column.
#[derive(Debug, Clone)]
pub struct Series {
    capacity: usize,
    at_unix_ms: VecDeque<i64>,
    requests: VecDeque<f64>,
    errors: VecDeque<f64>,
    members: BTreeMap<String, VecDeque<f64>>,
}

/// `GET /api/series`: the columns, oldest first, all of the same length.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeriesView {
    /// Time between samples, in milliseconds.
    pub interval_ms: u64,
    /// How many samples are kept at most.
    pub capacity: usize,
    /// When each sample was taken, Unix time in milliseconds.
    pub at_unix_ms: Vec<i64>,
    /// Requests per second, every member and the array's own answers.
    pub requests_per_s: Vec<f64>,
    /// 5xx answers per second.
    pub errors_per_s: Vec<f64>,
    /// Requests per second by member; 0 before a member was configured.
    pub members: BTreeMap<String, Vec<f64>>,
}

impl Default for Series {
    fn default() -> Self {
        Series::new(CAPACITY)
    }
}

impl Series {
    /// An empty series keeping at most `capacity` points (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Series {
            capacity,
            at_unix_ms: VecDeque::with_capacity(capacity),
            requests: VecDeque::with_capacity(capacity),
            errors: VecDeque::with_capacity(capacity),
            members: BTreeMap::new(),
        }
    }

    /// How many points are kept now.
    fn len(&self) -> usize {
        self.at_unix_ms.len()
    }

    /// Adds `p`, dropping the oldest point when full. The members of `p`
    /// are the members from now on: one not in `p` is dropped, a new one
    /// gets zeros for the points before it.
    pub fn push(&mut self, p: &Point) {
        if self.len() == self.capacity {
            self.at_unix_ms.pop_front();
            self.requests.pop_front();
            self.errors.pop_front();
            for column in self.members.values_mut() {
                column.pop_front();
            }
        }
        let before = self.len();
        self.members.retain(|name, _| p.members.contains_key(name));
        for (name, rate) in &p.members {
            let column = self.members.entry(name.clone()).or_insert_with(|| {
                let mut c = VecDeque::with_capacity(self.capacity);
                c.resize(before, 0.0);
                c
            });
            column.push_back(round(*rate));
        }
        self.at_unix_ms.push_back(p.at_unix_ms);
        self.requests.push_back(round(p.requests_per_s));
        self.errors.push_back(round(p.errors_per_s));
    }

    /// The newest point, if any.
    pub fn last(&self) -> Option<Point> {
        Some(Point {
            at_unix_ms: *self.at_unix_ms.back()?,
            requests_per_s: *self.requests.back()?,
            errors_per_s: *self.errors.back()?,
            members: self
                .members
                .iter()
                .filter_map(|(name, c)| Some((name.clone(), *c.back()?)))
                .collect(),
        })
    }

    /// The JSON answer.
    pub fn view(&self) -> SeriesView {
        SeriesView {
            interval_ms: u64::try_from(INTERVAL.as_millis()).unwrap_or(u64::MAX),
            capacity: self.capacity,
            at_unix_ms: self.at_unix_ms.iter().copied().collect(),
            requests_per_s: self.requests.iter().copied().collect(),
            errors_per_s: self.errors.iter().copied().collect(),
            members: self
                .members
                .iter()
                .map(|(name, c)| (name.clone(), c.iter().copied().collect()))
                .collect(),
        }
    }
}

/// A rate to two decimals: enough for a sparkline, short in JSON.
fn round(rate: f64) -> f64 {
    if rate.is_finite() {
        (rate * 100.0).round() / 100.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(at: i64, requests: f64, members: &[(&str, f64)]) -> Point {
        Point {
            at_unix_ms: at,
            requests_per_s: requests,
            errors_per_s: requests / 10.0,
            members: members.iter().map(|(n, r)| (n.to_string(), *r)).collect(),
        }
    }

    #[test]
    fn keeps_the_last_capacity_points_oldest_first() {
        let mut s = Series::new(3);
        assert_eq!(s.len(), 0);
        assert_eq!(s.last(), None);
        for i in 0..5 {
            s.push(&point(i, i as f64, &[("EX1", 1.0)]));
        }
        assert_eq!(s.len(), 3);
        let v = s.view();
        assert_eq!(v.at_unix_ms, [2, 3, 4]);
        assert_eq!(v.requests_per_s, [2.0, 3.0, 4.0]);
        assert_eq!(v.errors_per_s, [0.2, 0.3, 0.4]);
        assert_eq!(v.members["EX1"], [1.0, 1.0, 1.0]);
        assert_eq!(v.capacity, 3);
        assert_eq!(v.interval_ms, 1000);
        assert_eq!(s.last().unwrap().requests_per_s, 4.0);
    }

    #[test]
    fn the_default_bound_is_ten_minutes_at_one_per_second() {
        let mut s = Series::default();
        for i in 0..(CAPACITY as i64 + 50) {
            s.push(&point(i, 1.0, &[("EX1", 1.0), ("EX2", 0.0)]));
        }
        assert_eq!(s.len(), 600);
        let v = s.view();
        assert_eq!(v.members["EX2"].len(), 600);
        assert_eq!(v.at_unix_ms[0], 50);
    }

    #[test]
    fn members_follow_the_config() {
        let mut s = Series::new(4);
        s.push(&point(1, 1.0, &[("EX1", 1.0)]));
        s.push(&point(2, 1.0, &[("EX1", 2.0), ("EX3", 3.0)]));
        let v = s.view();
        assert_eq!(v.members["EX3"], [0.0, 3.0], "zeros before it existed");
        s.push(&point(3, 1.0, &[("EX3", 4.0)]));
        let v = s.view();
        assert!(!v.members.contains_key("EX1"), "gone with the config");
        assert_eq!(v.members["EX3"], [0.0, 3.0, 4.0]);
        for c in v.members.values() {
            assert_eq!(c.len(), v.at_unix_ms.len());
        }
    }

    #[test]
    fn rates_are_rounded_and_never_nan() {
        let mut s = Series::new(2);
        s.push(&point(1, 1.0 / 3.0, &[("EX1", f64::NAN)]));
        let v = s.view();
        assert_eq!(v.requests_per_s, [0.33]);
        assert_eq!(v.members["EX1"], [0.0]);
        let json = serde_json::to_string(&v).unwrap();
        assert!(json.contains("\"requests_per_s\":[0.33]"), "{json}");
    }
}
