//! Least connections, for L4 sessions (SMTP): the eligible member with the
//! fewest sessions open now; ties take turns (round robin among them), so
//! an idle array spreads new sessions evenly. Sessions are long and uneven,
//! which is why turns alone would pile them on one hub.

use super::{Candidates, Keys, Pick, Selector};

#[derive(Debug)]
pub struct LeastConnections;

impl Selector for LeastConnections {
    fn select(&self, c: &Candidates<'_>, _keys: &Keys<'_>, tried: &[usize]) -> Option<Pick> {
        let fewest = (0..c.members().len())
            .filter(|&m| c.eligible(m) && !tried.contains(&m))
            .map(|m| c.members()[m].state.sessions())
            .min()?;
        c.round_robin_where(|m| c.members()[m].state.sessions() == fewest, tried)
            .map(Pick::stay)
    }
}

#[cfg(test)]
mod tests {
    use crate::upstream::selection::Keys;
    use crate::upstream::tests::config;
    use crate::upstream::Upstreams;
    use http::HeaderMap;

    #[test]
    fn the_member_with_fewest_sessions_wins_and_ties_take_turns() {
        let (_dir, mut cfg) = config(3, "");
        cfg.listen.smtp = Some("127.0.0.1:0".parse().unwrap());
        for (i, m) in cfg.members.iter_mut().enumerate() {
            m.smtp = Some(format!("127.0.0.1:{}", 2500 + i).parse().unwrap());
        }
        let up = Upstreams::for_tests(&cfg);
        let s = up.smtp_service().unwrap();
        let h = HeaderMap::new();
        let keys = Keys {
            headers: &h,
            client: "192.0.2.1".parse().unwrap(),
            preferred: None,
        };
        // Ties: every member in turn.
        let mut seen: Vec<usize> = (0..3).filter_map(|_| up.select(s, keys).next()).collect();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2]);
        // EX1 and EX3 busy: EX2 until it is as busy.
        let _a = up.members()[0].state.begin_session();
        let _b = up.members()[2].state.begin_session();
        for _ in 0..3 {
            assert_eq!(up.select(s, keys).next(), Some(1));
        }
        let _c = up.members()[1].state.begin_session();
        let _d = up.members()[1].state.begin_session();
        let first = up.select(s, keys).next().unwrap();
        assert_ne!(first, 1);
        // A member without an smtp address never takes SMTP.
        cfg.members[0].smtp = None;
        let up = Upstreams::for_tests(&cfg);
        assert!((0..6).all(|_| up.select(s, keys).next() != Some(0)));
    }
}
