//! Where a pattern may start: the search that proposes positions for the
//! edge rules of `patterns` to decide.
//!
//! Normally an Aho-Corasick automaton (ASCII case-insensitive,
//! leftmost-longest) finds the first position where some pattern occurs and
//! names the longest pattern found there. It is built twice over the same
//! patterns: with the crate's prefilter for bodies (it skips long runs
//! with no pattern), and without for short texts such as header values,
//! where the prefilter's candidates cost more than the automaton's walk
//! (a `Server: nginx/1.22.1` value took about 2000 instructions with it,
//! a tenth of that without: callgrind, `benches/instructions.sh`). Should the automaton not build,
//! a scan for the patterns' first bytes takes its place: slower, and it
//! names no pattern, but it proposes every position the automaton would.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};

/// Texts up to this many bytes (from the search's start) are searched
/// without the prefilter: 256.
const SHORT: usize = 256;

/// A position where a pattern may start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub(crate) at: usize,
    /// The index of the longest pattern found whole at `at`, when the
    /// search knows it. `None`: any pattern, or none, may be there.
    pub(crate) pattern: Option<usize>,
}

/// The search for candidates over one set of patterns.
#[derive(Debug)]
pub(crate) enum Candidates {
    /// Finds pattern occurrences; pattern indices are those given to
    /// [`Candidates::new`].
    Automaton(Automata),
    /// Finds the patterns' first bytes.
    FirstBytes(FirstBytes),
}

impl Candidates {
    /// The search for `patterns` (ASCII-lowercased, none empty).
    pub(crate) fn new(patterns: &[&[u8]]) -> Self {
        // The builder picks a DFA for few patterns and falls back to NFAs
        // by itself; it fails only past the limits of all of them.
        let builder = || {
            let mut b = AhoCorasickBuilder::new();
            b.ascii_case_insensitive(true)
                .match_kind(MatchKind::LeftmostLongest);
            b
        };
        let built = builder().build(patterns).and_then(|long| {
            let short = builder().prefilter(false).build(patterns)?;
            Ok(Automata { long, short })
        });
        match built {
            Ok(ac) => Self::Automaton(ac),
            Err(e) => {
                tracing::warn!(
                    patterns = patterns.len(),
                    "rewrite: no automaton for the member names ({e}); \
                     using the slower first-byte search"
                );
                Self::first_bytes(patterns)
            }
        }
    }

    /// The first-byte search for `patterns` (ASCII-lowercased, none empty).
    pub(crate) fn first_bytes(patterns: &[&[u8]]) -> Self {
        let mut firsts = Vec::new();
        for p in patterns {
            if let Some(&f) = p.first() {
                for b in [f, f.to_ascii_uppercase()] {
                    if !firsts.contains(&b) {
                        firsts.push(b);
                    }
                }
            }
        }
        Self::FirstBytes(FirstBytes::new(&firsts))
    }

    /// The first candidate at or after `from` and before `limit`. A pattern
    /// starting before `limit` may end anywhere in `data`; bytes past the
    /// end of `data` are not looked at.
    pub(crate) fn find(&self, data: &[u8], from: usize, limit: usize) -> Option<Candidate> {
        let limit = limit.min(data.len());
        if from >= limit {
            return None;
        }
        match self {
            Self::Automaton(ac) => match ac.for_len(data.len() - from).try_find(&data[from..]) {
                Ok(found) => found
                    .map(|m| Candidate {
                        at: from + m.start(),
                        pattern: Some(m.pattern().as_usize()),
                    })
                    .filter(|c| c.at < limit),
                // Not reached (the automaton is built for unanchored
                // searches); every position is then a candidate.
                Err(_) => Some(Candidate {
                    at: from,
                    pattern: None,
                }),
            },
            Self::FirstBytes(first) => first.find(&data[from..limit]).map(|i| Candidate {
                at: from + i,
                pattern: None,
            }),
        }
    }
}

/// One automaton over the patterns, built with and without a prefilter.
#[derive(Debug)]
pub(crate) struct Automata {
    long: AhoCorasick,
    short: AhoCorasick,
}

impl Automata {
    /// The automaton for a text of `len` bytes.
    fn for_len(&self, len: usize) -> &AhoCorasick {
        if len <= SHORT {
            &self.short
        } else {
            &self.long
        }
    }
}

/// The distinct first bytes of the patterns, in both cases.
#[derive(Debug)]
pub(crate) enum FirstBytes {
    Nothing,
    One(u8),
    Two(u8, u8),
    Three(u8, u8, u8),
    Table(Box<[bool; 256]>),
}

impl FirstBytes {
    fn new(bytes: &[u8]) -> Self {
        match *bytes {
            [] => Self::Nothing,
            [a] => Self::One(a),
            [a, b] => Self::Two(a, b),
            [a, b, c] => Self::Three(a, b, c),
            _ => {
                let mut table = Box::new([false; 256]);
                for &b in bytes {
                    table[usize::from(b)] = true;
                }
                Self::Table(table)
            }
        }
    }

    fn find(&self, hay: &[u8]) -> Option<usize> {
        match self {
            Self::Nothing => None,
            Self::One(a) => memchr::memchr(*a, hay),
            Self::Two(a, b) => memchr::memchr2(*a, *b, hay),
            Self::Three(a, b, c) => memchr::memchr3(*a, *b, *c, hay),
            Self::Table(table) => hay.iter().position(|&b| table[usize::from(b)]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAB: &[&[u8]] = &[b"ex1.lab.local", b"127.0.0.1", b"ex1"];

    fn all(c: &Candidates, data: &[u8], limit: usize) -> Vec<Candidate> {
        let mut found = Vec::new();
        let mut from = 0;
        while let Some(cand) = c.find(data, from, limit) {
            found.push(cand);
            from = cand.at + 1;
        }
        found
    }

    #[test]
    fn the_automaton_names_the_longest_pattern() {
        let c = Candidates::new(LAB);
        assert!(matches!(c, Candidates::Automaton(_)));
        let data = b"x EX1.Lab.Local ex1 127.0.0.1";
        let at = |at, pattern| Candidate {
            at,
            pattern: Some(pattern),
        };
        assert_eq!(all(&c, data, data.len()), [at(2, 0), at(16, 2), at(20, 1)]);
        // Candidates stop at the limit; a pattern may run past it.
        assert_eq!(all(&c, data, 17), [at(2, 0), at(16, 2)]);
        assert_eq!(all(&c, data, 16), [at(2, 0)]);
        assert_eq!(c.find(data, 3, data.len()), Some(at(16, 2)));
        assert_eq!(c.find(data, 5, 5), None);
        assert_eq!(c.find(data, 99, 120), None);
    }

    #[test]
    fn long_and_short_texts_find_the_same_candidates() {
        let c = Candidates::new(LAB);
        let Candidates::Automaton(ac) = &c else {
            panic!("no automaton");
        };
        let mut data = b"x EX1.Lab.Local ex1 127.0.0.1 ".repeat(20);
        data.extend_from_slice(b"ex1.lab.localhost 127.0.0.10");
        assert!(data.len() > SHORT);
        for from in [0, 3, SHORT - 20, SHORT + 1, data.len() - 30] {
            let hay = &data[from..];
            let long = ac.long.find(hay).map(|m| (m.start(), m.pattern()));
            let short = ac.short.find(hay).map(|m| (m.start(), m.pattern()));
            assert_eq!(long, short, "from {from}");
        }
        // Every candidate of a long text, found through both paths.
        let found = all(&c, &data, data.len());
        assert_eq!(found.len(), 20 * 3 + 2);
    }

    #[test]
    fn the_first_bytes_find_every_start_the_automaton_finds() {
        let fallback = Candidates::first_bytes(LAB);
        assert!(matches!(
            fallback,
            Candidates::FirstBytes(FirstBytes::Three(b'e', b'E', b'1'))
        ));
        let data = b"x EX1.Lab.Local ex1 127.0.0.1 e";
        let starts: Vec<usize> = all(&fallback, data, data.len())
            .iter()
            .map(|c| c.at)
            .collect();
        assert_eq!(starts, [2, 4, 16, 18, 20, 28, 30]);
        assert!(all(&fallback, data, data.len())
            .iter()
            .all(|c| c.pattern.is_none()));
    }

    #[test]
    fn many_first_bytes_use_the_table() {
        let c = Candidates::first_bytes(&[b"a1", b"b2", b"c3", b"d4"]);
        assert!(matches!(c, Candidates::FirstBytes(FirstBytes::Table(_))));
        let starts: Vec<usize> = all(&c, b"a1 B2 x", 7).iter().map(|c| c.at).collect();
        assert_eq!(starts, [0, 3]);
    }

    #[test]
    fn no_patterns_find_nothing() {
        assert_eq!(Candidates::new(&[]).find(b"anything", 0, 8), None);
        assert_eq!(Candidates::first_bytes(&[]).find(b"anything", 0, 8), None);
    }
}
