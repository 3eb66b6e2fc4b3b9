//! A member's live state: health per service, drain flag, in-flight count.
//!
//! This state outlives config reloads: a reload that keeps a member (same
//! name, same address) keeps its health and drain state, so a reload never
//! sends traffic to a member that was just found dead, nor un-drains one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What a state change of a (member, service) pair was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    WentUp,
    WentDown,
}

/// Health of one (member, service) pair.
///
/// One writer (the pair's active checker) moves the counters; the forwarding
/// path reads `is_up` on every request (one relaxed load) and may mark the
/// pair down passively.
#[derive(Debug)]
pub struct HealthCell {
    up: AtomicBool,
    /// Consecutive results: > 0 successes, < 0 failures.
    streak: AtomicI64,
    /// Set by a passive mark-down: the next good probe after the ejection
    /// window brings the pair back at once, without waiting for `rise`
    /// successes.
    passive_down: AtomicBool,
    /// Passive ejections in a row (see [`HealthCell::mark_down_passive`]).
    ejections: AtomicU32,
    /// Unix ms before which a passively ejected pair stays out.
    ejected_until_ms: AtomicI64,
    /// Unix ms of the last passive ejection.
    last_ejection_ms: AtomicI64,
    last_check_unix_ms: AtomicI64,
    last_ok: AtomicBool,
    last_detail: Mutex<String>,
    checks: AtomicU32,
}

impl Default for HealthCell {
    fn default() -> Self {
        Self::new()
    }
}

impl HealthCell {
    /// A new pair starts up (as HAProxy's servers do): passive ejection and
    /// retries cover a member that is in fact down at start.
    pub fn new() -> Self {
        HealthCell {
            up: AtomicBool::new(true),
            streak: AtomicI64::new(0),
            passive_down: AtomicBool::new(false),
            ejections: AtomicU32::new(0),
            ejected_until_ms: AtomicI64::new(0),
            last_ejection_ms: AtomicI64::new(0),
            last_check_unix_ms: AtomicI64::new(0),
            last_ok: AtomicBool::new(false),
            last_detail: Mutex::new(String::from("not checked yet")),
            checks: AtomicU32::new(0),
        }
    }

    #[inline]
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Records an active probe result and applies the rise/fall thresholds.
    pub fn record_probe(
        &self,
        ok: bool,
        detail: String,
        rise: u32,
        fall: u32,
    ) -> Option<Transition> {
        self.last_check_unix_ms.store(unix_ms(), Ordering::Relaxed);
        self.last_ok.store(ok, Ordering::Relaxed);
        self.checks.fetch_add(1, Ordering::Relaxed);
        *self
            .last_detail
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = detail;
        let streak = self.streak.load(Ordering::Relaxed);
        let streak = if ok {
            if streak > 0 {
                streak.saturating_add(1)
            } else {
                1
            }
        } else if streak < 0 {
            streak.saturating_sub(1)
        } else {
            -1
        };
        self.streak.store(streak, Ordering::Relaxed);
        let was_up = self.is_up();
        if ok && !was_up {
            let passive = self.passive_down.load(Ordering::Relaxed);
            if passive && unix_ms() < self.ejected_until_ms.load(Ordering::Relaxed) {
                // Still inside its ejection window: a member that fails
                // requests behind a passing health check stays out.
                return None;
            }
            if passive || streak >= i64::from(rise) {
                self.passive_down.store(false, Ordering::Relaxed);
                self.up.store(true, Ordering::Relaxed);
                return Some(Transition::WentUp);
            }
        } else if !ok && was_up && -streak >= i64::from(fall) {
            self.up.store(false, Ordering::Relaxed);
            return Some(Transition::WentDown);
        }
        None
    }

    /// Marks the pair down at once after a failure on the forwarding path.
    /// It stays out for an ejection window, then the next good probe brings
    /// it back. The window is `base` (the health interval) for a first
    /// ejection and doubles with each ejection that follows within twice the
    /// previous window (up to 5 min), so a member that fails requests behind
    /// a passing health check is tried less and less often, while a member
    /// that failed once comes back after one probe. Returns true when this
    /// call took the pair down.
    pub fn mark_down_passive(&self, base: Duration) -> bool {
        let now = unix_ms();
        let base_ms = i64::try_from(base.as_millis()).unwrap_or(i64::MAX);
        let last = self.last_ejection_ms.swap(now, Ordering::Relaxed);
        let previous = self.ejections.load(Ordering::Relaxed);
        let previous_window = window_ms(base_ms, previous);
        let count = if previous > 0 && now - last <= previous_window.saturating_mul(2) {
            previous.saturating_add(1)
        } else {
            1
        };
        self.ejections.store(count, Ordering::Relaxed);
        self.ejected_until_ms.store(
            now.saturating_add(window_ms(base_ms, count)),
            Ordering::Relaxed,
        );
        self.passive_down.store(true, Ordering::Relaxed);
        self.streak.store(0, Ordering::Relaxed);
        self.up.swap(false, Ordering::Relaxed)
    }

    /// The last probe: (unix ms, ok, detail); `None` before the first probe.
    pub fn last_check(&self) -> Option<(i64, bool, String)> {
        let at = self.last_check_unix_ms.load(Ordering::Relaxed);
        if at == 0 {
            return None;
        }
        let detail = self
            .last_detail
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Some((at, self.last_ok.load(Ordering::Relaxed), detail))
    }
}

/// The ejection window after `count` ejections in a row: `base`, doubled
/// for each one after the first, at most 5 min.
fn window_ms(base_ms: i64, count: u32) -> i64 {
    const MAX_MS: i64 = 5 * 60 * 1000;
    let doublings = count.saturating_sub(1).min(20);
    base_ms
        .saturating_mul(1 << doublings)
        .min(MAX_MS.max(base_ms))
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// A member's state across reloads.
#[derive(Debug, Default)]
pub struct MemberState {
    draining: AtomicBool,
    in_flight: AtomicUsize,
    /// L4 sessions (SMTP) open to this member.
    sessions: AtomicUsize,
    cells: Mutex<HashMap<String, Arc<HealthCell>>>,
}

impl MemberState {
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    pub fn set_draining(&self, draining: bool) {
        self.draining.store(draining, Ordering::Relaxed);
    }

    /// Requests (and streams) to this member not yet finished.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Counts a request in flight until the guard drops.
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(self))
    }

    /// L4 sessions (SMTP) to this member still open.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::Relaxed)
    }

    /// Counts an L4 session until the guard drops.
    pub fn begin_session(self: &Arc<Self>) -> Session {
        self.sessions.fetch_add(1, Ordering::Relaxed);
        Session(Arc::clone(self))
    }

    /// The health cell of a service, made on first use.
    pub fn cell(&self, service: &str) -> Arc<HealthCell> {
        let mut cells = self.cells.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(cells.entry(service.to_owned()).or_default())
    }
}

/// Decrements the member's in-flight count when dropped.
#[derive(Debug)]
pub struct InFlight(Arc<MemberState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Decrements the member's session count when dropped.
#[derive(Debug)]
pub struct Session(Arc<MemberState>);

impl Drop for Session {
    fn drop(&mut self) {
        self.0.sessions.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Member states by (name, address), kept across reloads.
#[derive(Debug, Default)]
pub struct Registry {
    members: Mutex<HashMap<(String, SocketAddr), Arc<MemberState>>>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The state of a member, made on first use. A member whose address
    /// changed is a new member with fresh health.
    pub fn member(&self, name: &str, address: SocketAddr) -> Arc<MemberState> {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(
            members
                .entry((name.to_ascii_lowercase(), address))
                .or_default(),
        )
    }

    /// Forgets members that are no longer configured.
    pub fn retain(&self, keep: &[(String, SocketAddr)]) {
        let mut members = self.members.lock().unwrap_or_else(PoisonError::into_inner);
        members.retain(|(name, addr), _| {
            keep.iter()
                .any(|(n, a)| n.eq_ignore_ascii_case(name) && a == addr)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fall_then_rise() {
        let cell = HealthCell::new();
        assert!(cell.is_up());
        assert_eq!(cell.record_probe(false, "x".into(), 2, 3), None);
        assert_eq!(cell.record_probe(false, "x".into(), 2, 3), None);
        assert_eq!(
            cell.record_probe(false, "x".into(), 2, 3),
            Some(Transition::WentDown)
        );
        assert!(!cell.is_up());
        assert_eq!(cell.record_probe(true, "ok".into(), 2, 3), None);
        assert_eq!(
            cell.record_probe(true, "ok".into(), 2, 3),
            Some(Transition::WentUp)
        );
        assert!(cell.is_up());
    }

    #[test]
    fn a_success_resets_the_failure_streak() {
        let cell = HealthCell::new();
        cell.record_probe(false, String::new(), 1, 2);
        cell.record_probe(true, String::new(), 1, 2);
        assert_eq!(cell.record_probe(false, String::new(), 1, 2), None);
        assert!(cell.is_up());
    }

    #[test]
    fn passive_down_comes_back_on_the_next_good_probe() {
        let cell = HealthCell::new();
        assert!(cell.mark_down_passive(Duration::ZERO));
        assert!(!cell.mark_down_passive(Duration::ZERO));
        assert!(!cell.is_up());
        assert_eq!(
            cell.record_probe(true, String::new(), 5, 2),
            Some(Transition::WentUp)
        );
    }

    #[test]
    fn repeated_ejections_keep_the_pair_out_longer() {
        let cell = HealthCell::new();
        assert!(cell.mark_down_passive(Duration::from_secs(60)));
        // Inside the window a good probe does not bring it back.
        assert_eq!(cell.record_probe(true, String::new(), 1, 1), None);
        assert!(!cell.is_up());
        assert_eq!(window_ms(1000, 1), 1000);
        assert_eq!(window_ms(1000, 2), 2000);
        assert_eq!(window_ms(1000, 4), 8000);
        assert_eq!(window_ms(1000, 30), 300_000);
        assert_eq!(window_ms(600_000, 1), 600_000);
    }

    #[test]
    fn registry_keeps_state_for_the_same_member() {
        let reg = Registry::new();
        let addr: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let a = reg.member("EX1", addr);
        a.set_draining(true);
        assert!(reg.member("ex1", addr).is_draining());
        let other: SocketAddr = "127.0.0.1:2".parse().unwrap();
        assert!(!reg.member("EX1", other).is_draining());
        reg.retain(&[("EX1".into(), other)]);
        assert!(!reg.member("EX1", addr).is_draining());
    }

    #[test]
    fn in_flight_guard_counts() {
        let m = Arc::new(MemberState::default());
        let g1 = m.begin_request();
        let g2 = m.begin_request();
        assert_eq!(m.in_flight(), 2);
        drop(g1);
        drop(g2);
        assert_eq!(m.in_flight(), 0);
        let s = m.begin_session();
        assert_eq!((m.sessions(), m.in_flight()), (1, 0));
        drop(s);
        assert_eq!(m.sessions(), 0);
    }
}
