//! Best copy selection, as Active Manager does it after losing the server
//! with a database's active copy: among the copies that can be activated
//! (their server is up, the copy is healthy, not suspended), sort by copy
//! queue length (fewest missing logs first), then by activation
//! preference; with `Lossless` by activation preference only. The first
//! copy whose loss is within `AutoDatabaseMountDial` is mounted; if none
//! is, the database stays dismounted (and that is logged).

use super::definition::MountDial;

/// A copy that might be activated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub server: String,
    pub activation_preference: u32,
    /// Generations copied (on disk, replayed or not).
    pub copied: u64,
    /// Generations replayed.
    pub replayed: u64,
}

/// What the selection found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    /// The copy to mount and the generations it would lose.
    pub chosen: Option<(Candidate, u64)>,
    /// Copies passed over, with why, in the order they were tried.
    pub passed: Vec<(String, String)>,
    /// The order the copies were considered in.
    pub order: Vec<String>,
}

/// Picks the copy to mount when the last known generation of the lost
/// active copy is `last_generation`.
pub fn choose(mut candidates: Vec<Candidate>, last_generation: u64, dial: MountDial) -> Choice {
    let lost = |c: &Candidate| last_generation.saturating_sub(c.copied);
    match dial {
        MountDial::Lossless => candidates.sort_by_key(|c| c.activation_preference),
        _ => candidates.sort_by_key(|c| (lost(c), c.activation_preference)),
    }
    let order = candidates.iter().map(|c| c.server.clone()).collect();
    let mut passed = Vec::new();
    for c in candidates {
        let n = lost(&c);
        if n <= dial.max_lost() {
            return Choice {
                chosen: Some((c, n)),
                passed,
                order,
            };
        }
        passed.push((
            c.server.clone(),
            format!(
                "would lose {n} logs, more than {} allows ({})",
                dial.as_str(),
                dial.max_lost()
            ),
        ));
    }
    Choice {
        chosen: None,
        passed,
        order,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(server: &str, pref: u32, copied: u64) -> Candidate {
        Candidate {
            server: server.into(),
            activation_preference: pref,
            copied,
            replayed: copied,
        }
    }

    #[test]
    fn fewest_lost_then_preference() {
        let choice = choose(
            vec![c("EX2", 2, 95), c("EX3", 3, 100), c("EX4", 4, 100)],
            100,
            MountDial::GoodAvailability,
        );
        assert_eq!(choice.order, ["EX3", "EX4", "EX2"]);
        let (chosen, lost) = choice.chosen.unwrap();
        assert_eq!((chosen.server.as_str(), lost), ("EX3", 0));
    }

    #[test]
    fn lossless_goes_by_preference_and_refuses_any_loss() {
        let choice = choose(
            vec![c("EX3", 3, 100), c("EX2", 2, 99)],
            100,
            MountDial::Lossless,
        );
        assert_eq!(choice.order, ["EX2", "EX3"]);
        assert_eq!(choice.chosen.unwrap().0.server, "EX3");
        assert_eq!(choice.passed.len(), 1);
    }

    #[test]
    fn the_dial_bounds_the_loss() {
        let behind = vec![c("EX2", 2, 93)];
        assert!(choose(behind.clone(), 100, MountDial::GoodAvailability)
            .chosen
            .is_none());
        let choice = choose(behind, 100, MountDial::BestAvailability);
        assert_eq!(choice.chosen.unwrap().1, 7);
        let none = choose(vec![], 100, MountDial::BestAvailability);
        assert!(none.chosen.is_none() && none.passed.is_empty());
        let refused = choose(vec![c("EX2", 2, 90)], 100, MountDial::GoodAvailability);
        assert!(
            refused.passed[0].1.contains("would lose 10 logs"),
            "{refused:?}"
        );
    }
}
