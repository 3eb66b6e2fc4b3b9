//! Rendezvous (highest random weight) hashing, the tool of the hashed
//! rules (`source-ip`, `header:<name>`, and any rule with a key).
//!
//! Every member gets a score from the key and its own name; the best
//! eligible score wins. Adding or removing a member moves only the clients
//! whose best score was that member's, and when the sticky member is out
//! (unhealthy or draining) its clients spread over the others by their
//! next-best scores.

use std::hash::{Hash, Hasher};

use super::{Candidates, Pick};

/// The member `key` sticks to for the candidates' service, skipping
/// `tried`; `moved` is true when the member the key belongs to was passed
/// over because it is unhealthy or draining.
pub fn pick(c: &Candidates<'_>, key: &[u8], tried: &[usize]) -> Option<Pick> {
    let mut best: Option<(usize, f64)> = None;
    let mut top: Option<(usize, f64)> = None;
    for (i, m) in c.members().iter().enumerate() {
        let score = score(key, &m.name, m.weight);
        if top.is_none_or(|(_, t)| score > t) {
            top = Some((i, score));
        }
        if c.eligible(i) && !tried.contains(&i) && best.is_none_or(|(_, t)| score > t) {
            best = Some((i, score));
        }
    }
    let (chosen, _) = best?;
    let moved = top.is_some_and(|(t, _)| t != chosen && !c.eligible(t));
    Some(Pick {
        member: chosen,
        moved,
    })
}

/// The score of `member` for `key`: higher wins. Weighted rendezvous:
/// `weight / -ln(u)` with `u` uniform in (0, 1) from a hash of both.
pub fn score(key: &[u8], member: &str, weight: u32) -> f64 {
    // SipHash with fixed keys: stable across processes and restarts.
    #[allow(deprecated)]
    let mut h = std::hash::SipHasher::new_with_keys(0x6361_7361_7272_6179, 0x6166_6669_6e69_7479);
    key.hash(&mut h);
    member.to_ascii_lowercase().hash(&mut h);
    let bits = h.finish() >> 11; // 53 bits
    let u = (bits as f64 + 0.5) / (1u64 << 53) as f64;
    f64::from(weight.max(1)) / -u.ln()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pick(key: &[u8], members: &[&str]) -> usize {
        let mut best = (0, f64::MIN);
        for (i, m) in members.iter().enumerate() {
            let s = score(key, m, 1);
            if s > best.1 {
                best = (i, s);
            }
        }
        best.0
    }

    #[test]
    fn removing_a_member_moves_only_its_share() {
        let three = ["EX1", "EX2", "EX3"];
        let two = ["EX1", "EX3"];
        let mut moved = 0;
        let mut on_ex2 = 0;
        for k in 0..3000u32 {
            let key = k.to_be_bytes();
            let before = three[pick(&key, &three)];
            let after = two[pick(&key, &two)];
            if before == "EX2" {
                on_ex2 += 1;
            } else if before != after {
                moved += 1;
            }
        }
        assert_eq!(moved, 0, "clients of the remaining members must stay");
        assert!((800..1200).contains(&on_ex2), "{on_ex2}");
    }

    #[test]
    fn weights_shift_shares() {
        let mut heavy = 0;
        for k in 0..4000u32 {
            let key = k.to_be_bytes();
            if score(&key, "EX1", 3) > score(&key, "EX2", 1) {
                heavy += 1;
            }
        }
        assert!((2800..3200).contains(&heavy), "{heavy}");
    }
}
