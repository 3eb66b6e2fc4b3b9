//! Session affinity: which member a client sticks to.
//!
//! `source-ip` and `header:<name>` use rendezvous (highest random weight)
//! hashing: every member gets a score from the key and its own name, the
//! best eligible score wins. Adding or removing a member moves only the
//! clients whose best score was that member's, and when the sticky member is
//! out (unhealthy or draining) its clients spread over the others by their
//! next-best scores. `cookie` affinity names the member with an opaque token
//! the array puts in its own cookie.

use std::hash::{Hash, Hasher};

use aws_lc_rs::digest;

/// The opaque token naming a member in an affinity cookie: 16 hex digits of
/// SHA-256 over the array's and the member's names and address, the same
/// on every instance of the array and across restarts, and naming no member
/// in clear.
pub fn cookie_token(array: &str, member: &str, address: &str) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in ["casarray-affinity", array, member, address] {
        ctx.update(part.as_bytes());
        ctx.update(&[0]);
    }
    let d = ctx.finish();
    d.as_ref()[..8].iter().map(|b| format!("{b:02x}")).collect()
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
    fn tokens_are_stable_opaque_and_distinct() {
        let a = cookie_token("mail.lab.com", "EX1", "127.0.0.1:9001");
        assert_eq!(a, cookie_token("mail.lab.com", "EX1", "127.0.0.1:9001"));
        assert_ne!(a, cookie_token("mail.lab.com", "EX2", "127.0.0.1:9002"));
        assert_eq!(a.len(), 16);
        assert!(!a.to_ascii_lowercase().contains("ex1"));
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
