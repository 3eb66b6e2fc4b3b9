//! Weighted round robin over the members eligible for a service, and the
//! rule that uses nothing else (`affinity = "none"`).
//!
//! The order is computed once per config (nginx's smooth weighted round
//! robin, so a heavy member's turns are spread out, not bunched), and a
//! request only does one atomic increment and a few relaxed loads: no lock
//! on the request path. A request that lands on an ineligible member's turn
//! takes the next turn, so the remaining members keep their relative shares.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Candidates, Keys, Pick, Selector};

/// `affinity = "none"`: every request takes the service's next turn.
#[derive(Debug)]
pub struct NoAffinity;

impl Selector for NoAffinity {
    fn select(&self, c: &Candidates<'_>, _keys: &Keys<'_>, tried: &[usize]) -> Option<Pick> {
        c.round_robin(tried).map(Pick::stay)
    }
}

/// The turn order of one service.
#[derive(Debug)]
pub struct RoundRobin {
    slots: Box<[usize]>,
    cursor: AtomicUsize,
}

impl RoundRobin {
    /// `weights[i]` is member i's weight (0 = never chosen).
    pub fn new(weights: &[u32]) -> Self {
        RoundRobin {
            slots: smooth_order(weights).into_boxed_slice(),
            cursor: AtomicUsize::new(0),
        }
    }

    /// The next eligible member not in `tried`, or `None` when there is none.
    pub fn pick(&self, eligible: impl Fn(usize) -> bool, tried: &[usize]) -> Option<usize> {
        let n = self.slots.len();
        if n == 0 {
            return None;
        }
        // Take turns until one is eligible: at most one full cycle.
        for _ in 0..n {
            let turn = self.cursor.fetch_add(1, Ordering::Relaxed);
            let m = self.slots[turn % n];
            if !tried.contains(&m) && eligible(m) {
                return Some(m);
            }
        }
        // Concurrent requests took turns in between ours, so our turns may
        // all have landed on ineligible members: look at every slot once.
        let start = self.cursor.load(Ordering::Relaxed);
        (0..n)
            .map(|k| self.slots[start.wrapping_add(k) % n])
            .find(|&m| !tried.contains(&m) && eligible(m))
    }
}

/// One cycle of smooth weighted round robin: each member appears `weight`
/// times, spread out.
fn smooth_order(weights: &[u32]) -> Vec<usize> {
    let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for _ in 0..total {
        let mut best = 0;
        for (i, &w) in weights.iter().enumerate() {
            current[i] += i64::from(w);
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smooth_order_spreads_weights() {
        assert_eq!(smooth_order(&[1, 1]), vec![0, 1]);
        assert_eq!(smooth_order(&[5, 1, 1]), vec![0, 0, 1, 0, 2, 0, 0]);
        assert_eq!(smooth_order(&[0, 2]), vec![1, 1]);
    }

    #[test]
    fn skips_ineligible_and_keeps_shares() {
        let rr = RoundRobin::new(&[1, 1, 1]);
        let mut counts = [0; 3];
        for _ in 0..300 {
            let m = rr.pick(|m| m != 1, &[]).unwrap();
            counts[m] += 1;
        }
        assert_eq!(counts[1], 0);
        assert!((140..=160).contains(&counts[0]), "{counts:?}");
        assert!((140..=160).contains(&counts[2]), "{counts:?}");
    }

    #[test]
    fn respects_tried_and_reports_none() {
        let rr = RoundRobin::new(&[1, 1]);
        assert_eq!(rr.pick(|_| true, &[0]), Some(1));
        assert_eq!(rr.pick(|_| true, &[0, 1]), None);
        assert_eq!(rr.pick(|_| false, &[]), None);
        assert_eq!(RoundRobin::new(&[]).pick(|_| true, &[]), None);
    }

    #[test]
    fn concurrent_turns_never_hide_an_eligible_member() {
        // Half the members are out; many threads pick at once. Every pick
        // must find one of the others, however the turns interleave.
        let rr = std::sync::Arc::new(RoundRobin::new(&[1, 1]));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let rr = std::sync::Arc::clone(&rr);
                std::thread::spawn(move || (0..20_000).all(|_| rr.pick(|m| m == 1, &[]) == Some(1)))
            })
            .collect();
        for t in threads {
            assert!(t.join().unwrap());
        }
    }

    #[test]
    fn weights_give_shares() {
        let rr = RoundRobin::new(&[3, 1]);
        let mut counts = [0; 2];
        for _ in 0..400 {
            counts[rr.pick(|_| true, &[]).unwrap()] += 1;
        }
        assert_eq!(counts, [300, 100]);
    }
}
