//! Quorum arithmetic, as Exchange's cluster does it: every member has a
//! vote; with an even number of members the witness has one too (Node and
//! File Share Majority), with an odd number it has none (Node Majority).
//! A server has quorum while more than half of the votes are its own, the
//! members it has heard from recently, and the witness if it holds the
//! lease.
//!
//! Each vote is valid until a time: a peer's until its last answered
//! heartbeat *was sent* plus the quorum lease (see
//! `Definition::quorum_lease`), the witness's until the lease expires,
//! the server's own forever. Quorum is valid until the latest time at
//! which a majority of votes are all still valid.

/// The votes of a DAG of `members` servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Votes {
    /// Members, plus 1 when the witness votes.
    pub total: usize,
    /// A majority of `total`.
    pub needed: usize,
    /// Whether the witness votes (an even number of members).
    pub witness_counts: bool,
}

/// The votes of a DAG of `members` servers.
pub fn votes(members: usize) -> Votes {
    let witness_counts = members % 2 == 0;
    let total = members + usize::from(witness_counts);
    Votes {
        total,
        needed: total / 2 + 1,
        witness_counts,
    }
}

/// Until when (Unix ms) a majority of `needed` votes holds, given each
/// vote's expiry (`u64::MAX` for the server's own); 0 when it never does.
pub fn valid_until(expiries: &[u64], needed: usize) -> u64 {
    if needed == 0 {
        return u64::MAX;
    }
    let mut sorted = expiries.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.get(needed - 1).copied().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn witness_votes_with_even_members() {
        assert_eq!(
            votes(2),
            Votes {
                total: 3,
                needed: 2,
                witness_counts: true
            }
        );
        assert_eq!(votes(3).total, 3);
        assert_eq!(votes(3).needed, 2);
        assert!(!votes(3).witness_counts);
        assert_eq!(votes(1).needed, 1);
        assert_eq!(votes(4).needed, 3);
    }

    #[test]
    fn majority_lasts_until_its_weakest_vote() {
        // Two members: self + peer (until 500) + witness (until 900).
        assert_eq!(valid_until(&[u64::MAX, 500, 900], 2), 900);
        assert_eq!(valid_until(&[u64::MAX, 500], 2), 500);
        assert_eq!(valid_until(&[u64::MAX], 2), 0, "alone");
        assert_eq!(valid_until(&[u64::MAX], 1), u64::MAX);
        // Four members, three needed.
        assert_eq!(valid_until(&[u64::MAX, 100, 300, 200, 0], 3), 200);
    }
}
