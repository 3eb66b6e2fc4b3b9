//! The compiled set of member names a text is searched for, and the rules
//! that decide where a name begins and ends.
//!
//! Matching is ASCII case-insensitive. At each position the longest pattern
//! wins, and the leftmost match is taken first; the input is never re-read
//! after a replacement. A match must stand alone as a host name:
//!
//! - not preceded by a host byte (`[A-Za-z0-9-_]`) or `.`: `ex1.lab.local`
//!   inside `www.ex1.lab.local` names another host;
//! - not followed by a host byte, nor by `.` and then a host byte:
//!   `EX1.other.example` names another host, while `EX1.` ending a sentence
//!   and `ex1.lab.local.` (a rooted name) are the member;
//! - a bare IPv6 address also may not touch a `:` on either side.
//!
//! Patterns that start (end) with something other than a host byte, such as
//! `[::1]:9001`, skip the left (right) rule.
//!
//! URL patterns (`https://ex1.lab.local`, `https://ex1.lab.local:443` and
//! their percent-escaped forms, made only when the array's public port is
//! not 443) keep their scheme, put the replacement in place of the host and
//! port, and add the public port after it. Their host must also end the
//! URL's authority: not followed by `:` (another port: the plain host
//! pattern then keeps it), nor its escape `%3A`, nor by a `.` that roots
//! the name (`.` then `/`, `:`, `?`, `#`, `%` or a host byte). A `.` ending
//! a sentence after the URL is fine: the port goes before it.
//!
//! Where a pattern may start is found by `candidates`; the rules are applied
//! here. A candidate the rules reject falls back to the shorter patterns at
//! the same position, then to the next candidate.

use bytes::BytesMut;

use super::candidates::{Candidate, Candidates};

/// Bytes of look-ahead the right-edge rule needs past the end of a pattern.
pub(crate) const LOOKAHEAD: usize = 2;

/// The look-ahead when percent-escaped URL patterns are present: the three
/// bytes of a `%3A` that must not follow their host.
pub(crate) const ESCAPED_URL_LOOKAHEAD: usize = 3;

/// `https%3a`: where the escaped `:` of an escaped URL pattern starts.
const ESCAPED_COLON_AT: usize = "https".len();

/// `[A-Za-z0-9-_]`: bytes that continue a host name label.
pub(crate) fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// What kind of text a needle is, which decides its edge rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NeedleKind {
    /// A host name, an IPv4 address (with or without port) or a bracketed
    /// IPv6 address.
    Host,
    /// A bare IPv6 address (`::1`): `:` is part of the token too.
    Ipv6,
    /// A host name right after a percent-escaped separator (`%2F`, `%3A`,
    /// `%40`), as in a URL carried in a query string: the three escape
    /// bytes are kept and the host after them is replaced.
    Escaped,
    /// `https://` and a host, with or without a port
    /// (`https://ex1.lab.local`, `https://ex1.lab.local:443`): the scheme
    /// is kept, the host and port become the replacement and `:port`.
    Url {
        /// The port written after the replacement.
        port: u16,
    },
    /// The same percent-escaped, as in a query string
    /// (`https%3A%2F%2Fex1.lab.local`, `...%3A443`): `https%3A%2F%2F` is
    /// kept, the host and port become the replacement, the escaped colon
    /// (in the case the match wrote it) and the port.
    EscapedUrl {
        /// The port written after the replacement.
        port: u16,
    },
}

/// Whether a pattern is the scheme and host of a URL, and how escaped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum UrlForm {
    No,
    Plain,
    Escaped,
}

/// What a match writes after the replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Suffix {
    Nothing,
    /// Written as is (`:8443`).
    Bytes(Box<[u8]>),
    /// The match's own escaped colon (`%3A` or `%3a`), then these digits.
    EscapedPort(Box<[u8]>),
}

/// One text to find, before compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Needle {
    pub(crate) text: String,
    pub(crate) kind: NeedleKind,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// ASCII-lowercased.
    bytes: Box<[u8]>,
    left_guard: bool,
    right_guard: bool,
    colon_guard: bool,
    url: UrlForm,
    /// Leading bytes of a match written out unchanged (the escape of an
    /// [`NeedleKind::Escaped`] needle, the scheme of a URL).
    keep: usize,
    suffix: Suffix,
}

impl Pattern {
    fn new(needle: &Needle) -> Self {
        let bytes: Box<[u8]> = needle.text.to_ascii_lowercase().into_bytes().into();
        let v6 = needle.kind == NeedleKind::Ipv6;
        let escaped = needle.kind == NeedleKind::Escaped;
        let first = bytes.first().copied().unwrap_or(b' ');
        let last = bytes.last().copied().unwrap_or(b' ');
        let (url, keep, suffix) = match needle.kind {
            NeedleKind::Host | NeedleKind::Ipv6 => (UrlForm::No, 0, Suffix::Nothing),
            NeedleKind::Escaped => (UrlForm::No, 3, Suffix::Nothing),
            NeedleKind::Url { port } => (
                UrlForm::Plain,
                "https://".len(),
                Suffix::Bytes(format!(":{port}").into_bytes().into()),
            ),
            NeedleKind::EscapedUrl { port } => (
                UrlForm::Escaped,
                "https%3a%2f%2f".len(),
                Suffix::EscapedPort(port.to_string().into_bytes().into()),
            ),
        };
        Self {
            // An escape is its own boundary: `F` of `%2F` is no host byte.
            left_guard: !escaped && (v6 || is_host_byte(first)),
            right_guard: v6 || url != UrlForm::No || is_host_byte(last),
            colon_guard: v6,
            url,
            keep: keep.min(bytes.len()),
            suffix,
            bytes,
        }
    }

    /// Writes what replaces `matched` (a match of this pattern).
    fn write(&self, matched: &[u8], replacement: &[u8], out: &mut BytesMut) {
        out.extend_from_slice(matched.get(..self.keep).unwrap_or_default());
        out.extend_from_slice(replacement);
        match &self.suffix {
            Suffix::Nothing => {}
            Suffix::Bytes(b) => out.extend_from_slice(b),
            Suffix::EscapedPort(digits) => {
                let colon = matched
                    .get(ESCAPED_COLON_AT..ESCAPED_COLON_AT + 3)
                    .unwrap_or(b"%3A");
                out.extend_from_slice(colon);
                out.extend_from_slice(digits);
            }
        }
    }

    /// Whether the byte before a match allows it.
    fn left_ok(&self, before: Option<u8>) -> bool {
        match before {
            Some(b) if self.left_guard => {
                !(is_host_byte(b) || b == b'.' || (self.colon_guard && b == b':'))
            }
            _ => true,
        }
    }

    /// Whether the bytes after a match allow it; `after` starts right past
    /// the match, and what it lacks is the end of the text.
    fn right_ok(&self, after: &[u8]) -> bool {
        if !self.right_guard {
            return true;
        }
        if self.url != UrlForm::No && !url_authority_ends(after, self.url) {
            return false;
        }
        match after {
            [] => true,
            [b'.', next, ..] => !is_host_byte(*next),
            [b, ..] => !(is_host_byte(*b) || (self.colon_guard && *b == b':')),
        }
    }
}

/// Whether the bytes after a URL pattern's host end the URL's authority:
/// no port (`:`, or `%3A` in an escaped URL) and no `.` rooting the name.
fn url_authority_ends(after: &[u8], form: UrlForm) -> bool {
    match after {
        [b':', ..] => false,
        [b'.', next, ..] => !(is_host_byte(*next) || b"/:?#%".contains(next)),
        [b'%', b'3', a, ..] if form == UrlForm::Escaped => !a.eq_ignore_ascii_case(&b'a'),
        _ => true,
    }
}

/// The byte before `data[pos]`; `before` is the one before `data[0]`.
fn prev_byte(data: &[u8], pos: usize, before: Option<u8>) -> Option<u8> {
    match pos.checked_sub(1) {
        Some(i) => data.get(i).copied(),
        None => before,
    }
}

/// Where a scan stopped and how many replacements it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Scanned {
    /// The first position not yet written to the output.
    pub(crate) stop: usize,
    pub(crate) replaced: usize,
}

/// A compiled set of patterns, all replaced by one text.
#[derive(Debug)]
pub(crate) struct Matcher {
    /// Longest first.
    patterns: Vec<Pattern>,
    /// Indices into `patterns` by lowercased first byte, longest first.
    by_first: Vec<Vec<usize>>,
    /// Finds where patterns may start; its pattern indices are those of
    /// `patterns`.
    candidates: Candidates,
    replacement: Box<[u8]>,
    max_len: usize,
    /// [`LOOKAHEAD`], or [`ESCAPED_URL_LOOKAHEAD`] with escaped URL
    /// patterns.
    lookahead: usize,
}

impl Matcher {
    /// Compiles `needles`; empty ones, duplicates (ignoring ASCII case) and
    /// ones equal to `replacement` are dropped.
    pub(crate) fn new(needles: &[Needle], replacement: &str) -> Self {
        let mut patterns: Vec<Pattern> = Vec::new();
        for needle in needles {
            let p = Pattern::new(needle);
            if p.bytes.is_empty()
                || p.bytes.eq_ignore_ascii_case(replacement.as_bytes())
                || patterns.iter().any(|q| q.bytes == p.bytes)
            {
                continue;
            }
            patterns.push(p);
        }
        patterns.sort_by_key(|p| std::cmp::Reverse(p.bytes.len()));

        let mut by_first = vec![Vec::new(); 256];
        for (i, p) in patterns.iter().enumerate() {
            by_first[usize::from(p.bytes[0])].push(i);
        }
        let texts: Vec<&[u8]> = patterns.iter().map(|p| &*p.bytes).collect();
        let candidates = Candidates::new(&texts);
        let max_len = patterns.iter().map(|p| p.bytes.len()).max().unwrap_or(0);
        let lookahead = if patterns.iter().any(|p| p.url == UrlForm::Escaped) {
            ESCAPED_URL_LOOKAHEAD
        } else {
            LOOKAHEAD
        };
        Self {
            patterns,
            by_first,
            candidates,
            replacement: replacement.as_bytes().into(),
            max_len,
            lookahead,
        }
    }

    /// Bytes a stream must keep back so that every match can be decided:
    /// the longest pattern plus the look-ahead minus one (plus one without
    /// escaped URL patterns, plus two with). A position is decided once
    /// this many bytes follow it: the rest of the longest pattern and the
    /// look-ahead.
    pub(crate) fn hold_back(&self) -> usize {
        self.max_len + self.lookahead - 1
    }

    /// The pattern matching at a candidate: the one the search named if the
    /// edge rules allow it, else the longest shorter pattern at the same
    /// position they allow.
    fn decide(&self, data: &[u8], c: Candidate, before: Option<u8>) -> Option<&Pattern> {
        let Some(p) = c.pattern.and_then(|i| self.patterns.get(i)) else {
            return self.match_at(data, c.at, before, usize::MAX);
        };
        // The search found `p` whole at `c.at`, and no longer pattern there.
        let end = c.at + p.bytes.len();
        if p.left_ok(prev_byte(data, c.at, before))
            && p.right_ok(data.get(end..).unwrap_or_default())
        {
            return Some(p);
        }
        self.match_at(data, c.at, before, p.bytes.len())
    }

    /// The pattern shorter than `shorter_than` matching at `data[pos]`, if
    /// any. `before` is the byte before `data[0]` (`None`: the start of the
    /// text). Bytes missing past the end of `data` count as the end of the
    /// text.
    fn match_at(
        &self,
        data: &[u8],
        pos: usize,
        before: Option<u8>,
        shorter_than: usize,
    ) -> Option<&Pattern> {
        let prev = prev_byte(data, pos, before);
        let first = data.get(pos)?.to_ascii_lowercase();
        for &i in &self.by_first[usize::from(first)] {
            let p = &self.patterns[i];
            if p.bytes.len() >= shorter_than {
                continue;
            }
            let end = pos + p.bytes.len();
            let Some(candidate) = data.get(pos..end) else {
                continue;
            };
            if candidate.eq_ignore_ascii_case(&p.bytes)
                && p.left_ok(prev)
                && p.right_ok(data.get(end..).unwrap_or_default())
            {
                return Some(p);
            }
        }
        None
    }

    /// Rewrites `data[from..]`, deciding matches at positions below `limit`
    /// (a match may run past it), and writes everything up to where it
    /// stopped. The caller guarantees that `data` holds [`Self::hold_back`]
    /// bytes after every position below `limit`, or that the text ends with
    /// `data`.
    pub(crate) fn scan(
        &self,
        data: &[u8],
        before: Option<u8>,
        from: usize,
        limit: usize,
        out: &mut BytesMut,
    ) -> Scanned {
        let limit = limit.min(data.len());
        let mut pos = from;
        let mut copied = from;
        let mut replaced = 0;
        while pos < limit {
            let Some(c) = self.candidates.find(data, pos, limit) else {
                pos = limit;
                break;
            };
            pos = c.at;
            match self.decide(data, c, before) {
                Some(p) => {
                    let end = pos + p.bytes.len();
                    out.extend_from_slice(&data[copied..pos]);
                    p.write(&data[pos..end], &self.replacement, out);
                    pos = end;
                    copied = pos;
                    replaced += 1;
                }
                None => pos += 1,
            }
        }
        out.extend_from_slice(&data[copied..pos]);
        Scanned {
            stop: pos,
            replaced,
        }
    }

    /// Rewrites a whole text.
    pub(crate) fn rewrite_all(&self, data: &[u8], out: &mut BytesMut) -> usize {
        self.scan(data, None, 0, data.len(), out).replaced
    }

    /// Whether a whole text holds any match.
    pub(crate) fn finds_in(&self, data: &[u8]) -> bool {
        let mut pos = 0;
        while let Some(c) = self.candidates.find(data, pos, data.len()) {
            if self.decide(data, c, None).is_some() {
                return true;
            }
            pos = c.at + 1;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(s: &str) -> Needle {
        Needle {
            text: s.into(),
            kind: NeedleKind::Host,
        }
    }

    fn lab() -> Matcher {
        Matcher::new(
            &[
                host("EX1"),
                host("ex1.lab.local"),
                host("127.0.0.1:9001"),
                host("127.0.0.1"),
                host("[::1]:9002"),
                host("[::1]"),
                Needle {
                    text: "::1".into(),
                    kind: NeedleKind::Ipv6,
                },
            ],
            "mail.lab.com",
        )
    }

    fn rewrite(m: &Matcher, s: &str) -> (String, usize) {
        let mut out = BytesMut::new();
        let n = m.rewrite_all(s.as_bytes(), &mut out);
        (String::from_utf8(out.to_vec()).unwrap(), n)
    }

    fn url_lab() -> Matcher {
        let url = |text: &str| Needle {
            text: text.into(),
            kind: NeedleKind::Url { port: 8443 },
        };
        let escaped_url = |text: &str| Needle {
            text: text.into(),
            kind: NeedleKind::EscapedUrl { port: 8443 },
        };
        Matcher::new(
            &[
                host("EX1"),
                host("ex1.lab.local"),
                Needle {
                    text: "%2fex1.lab.local".into(),
                    kind: NeedleKind::Escaped,
                },
                url("https://EX1"),
                url("https://ex1.lab.local"),
                url("https://ex1.lab.local:443"),
                escaped_url("https%3a%2f%2fex1.lab.local"),
                escaped_url("https%3a%2f%2fex1.lab.local%3a443"),
            ],
            "mail.lab.com",
        )
    }

    #[test]
    fn url_patterns_keep_the_scheme_and_add_the_port() {
        let m = url_lab();
        for (s, want) in [
            ("https://EX1/", "https://mail.lab.com:8443/"),
            ("Https://ex1.lab.local:443", "Https://mail.lab.com:8443"),
            ("(https://EX1)", "(https://mail.lab.com:8443)"),
            ("https://EX1?a", "https://mail.lab.com:8443?a"),
            ("https://EX1#a", "https://mail.lab.com:8443#a"),
            ("https://EX1. x", "https://mail.lab.com:8443. x"),
            ("https://EX1.", "https://mail.lab.com:8443."),
            // Another port, a rooted name, a longer name: the host alone.
            ("https://EX1:8443/", "https://mail.lab.com:8443/"),
            ("https://ex1.lab.local:4431/", "https://mail.lab.com:4431/"),
            ("https://EX1./", "https://mail.lab.com./"),
            ("https://EX1.:443/", "https://mail.lab.com.:443/"),
            ("https://EX1.lab.localx/", "https://EX1.lab.localx/"),
            ("https://EX1.other/", "https://EX1.other/"),
            // Escaped: the match's own escaped colon, in its case.
            (
                "https%3A%2F%2Fex1.lab.local%2F",
                "https%3A%2F%2Fmail.lab.com%3A8443%2F",
            ),
            (
                "HTTPS%3a%2F%2Fex1.lab.local%3A443&",
                "HTTPS%3a%2F%2Fmail.lab.com%3a8443&",
            ),
            (
                "https%3A%2F%2Fex1.lab.local%3a444",
                "https%3A%2F%2Fmail.lab.com%3a444",
            ),
            (
                "https%3A%2F%2Fex1.lab.local:444",
                "https%3A%2F%2Fmail.lab.com:444",
            ),
            (
                "https%3A%2F%2Fex1.lab.local%3",
                "https%3A%2F%2Fmail.lab.com%3A8443%3",
            ),
        ] {
            assert_eq!(rewrite(&m, s).0, want, "{s}");
        }
    }

    #[test]
    fn escaped_url_patterns_look_three_bytes_ahead() {
        let longest = "https%3a%2f%2fex1.lab.local%3a443".len();
        assert_eq!(url_lab().hold_back(), longest + ESCAPED_URL_LOOKAHEAD - 1);
        let plain = Matcher::new(
            &[Needle {
                text: "https://ex1.lab.local:443".into(),
                kind: NeedleKind::Url { port: 8443 },
            }],
            "mail.lab.com",
        );
        assert_eq!(
            plain.hold_back(),
            "https://ex1.lab.local:443".len() + LOOKAHEAD - 1
        );
    }

    #[test]
    fn longest_match_wins_and_case_is_ignored() {
        let m = lab();
        assert_eq!(
            rewrite(&m, "https://EX1.Lab.Local/owa/ and ex1"),
            ("https://mail.lab.com/owa/ and mail.lab.com".into(), 2)
        );
        assert_eq!(
            rewrite(&m, "http://127.0.0.1:9001/x 127.0.0.1:9003"),
            ("http://mail.lab.com/x mail.lab.com:9003".into(), 2)
        );
    }

    #[test]
    fn names_inside_other_hosts_stay() {
        let m = lab();
        for s in [
            "www.ex1.lab.local",
            "ex1.lab.localhost",
            "EX1.other.example",
            "EX10",
            "xEX1",
            "my-ex1",
            "ex1_a",
            "127.0.0.10",
            "10.127.0.0.1",
            "127.0.0.1.5",
            "fe80::1",
            "::1:5",
        ] {
            assert_eq!(rewrite(&m, s), (s.to_string(), 0), "{s}");
        }
    }

    #[test]
    fn names_at_edges_are_replaced() {
        let m = lab();
        for (s, want) in [
            ("EX1", "mail.lab.com"),
            ("served by EX1.", "served by mail.lab.com."),
            ("ex1.lab.local.", "mail.lab.com."),
            ("cn=Servers/cn=EX1<", "cn=Servers/cn=mail.lab.com<"),
            ("ex1.lab.local:443", "mail.lab.com:443"),
            ("127.0.0.1:90011", "mail.lab.com:90011"),
            ("[::1]:9002/", "mail.lab.com/"),
            ("http://[::1]/", "http://mail.lab.com/"),
            ("addr ::1 up", "addr mail.lab.com up"),
        ] {
            assert_eq!(rewrite(&m, s).0, want, "{s}");
        }
    }

    #[test]
    fn duplicates_and_the_replacement_itself_are_dropped() {
        let m = Matcher::new(
            &[host("ex1"), host("EX1"), host("mail.lab.com"), host("")],
            "mail.lab.com",
        );
        assert_eq!(m.patterns.len(), 1);
        assert_eq!(m.hold_back(), 4);
        assert!(m.finds_in(b"to EX1"));
        assert!(!m.finds_in(b"to mail.lab.com"));
    }

    #[test]
    fn a_rejected_candidate_falls_back_to_shorter_then_later_ones() {
        let m = lab();
        for (s, want) in [
            ("xEX1 EX1", "xEX1 mail.lab.com"),
            ("ex1.lab.localx ex1", "ex1.lab.localx mail.lab.com"),
            ("127.0.0.1:90011", "mail.lab.com:90011"),
            ("[::1]:90021", "mail.lab.com:90021"),
        ] {
            assert_eq!(rewrite(&m, s).0, want, "{s}");
        }
    }

    #[test]
    fn the_first_byte_search_gives_the_same_rewrites() {
        let fast = lab();
        assert!(matches!(fast.candidates, Candidates::Automaton(_)));
        let mut slow = lab();
        let texts: Vec<Vec<u8>> = slow.patterns.iter().map(|p| p.bytes.to_vec()).collect();
        let texts: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
        slow.candidates = Candidates::first_bytes(&texts);
        for s in [
            "https://EX1.Lab.Local/owa/ and ex1",
            "http://127.0.0.1:9001/x 127.0.0.1:9003",
            "www.ex1.lab.local EX1.other.example EX10 xEX1 fe80::1 ::1:5",
            "served by EX1. ex1.lab.local. [::1]:9002/ http://[::1]/ addr ::1 up",
            "xEX1 EX1 ex1.lab.localx ex1 127.0.0.1:90011",
        ] {
            assert_eq!(rewrite(&slow, s), rewrite(&fast, s), "{s}");
            assert_eq!(slow.finds_in(s.as_bytes()), fast.finds_in(s.as_bytes()));
        }
    }

    #[test]
    fn the_first_byte_search_gives_the_same_url_rewrites() {
        let fast = url_lab();
        let mut slow = url_lab();
        let texts: Vec<Vec<u8>> = slow.patterns.iter().map(|p| p.bytes.to_vec()).collect();
        let texts: Vec<&[u8]> = texts.iter().map(Vec::as_slice).collect();
        slow.candidates = Candidates::first_bytes(&texts);
        for s in [
            "https://EX1/ https://ex1.lab.local:443 https://EX1:8443/ https://EX1./",
            "url=https%3A%2F%2Fex1.lab.local%3A443%2F&b=https%3a%2f%2fEX1.LAB.LOCAL%3a9",
            "hhttps://EX1 https://EX1.other https://ex1.lab.local.",
        ] {
            assert_eq!(rewrite(&slow, s), rewrite(&fast, s), "{s}");
        }
    }

    #[test]
    fn no_patterns_pass_everything() {
        let m = Matcher::new(&[], "z");
        assert_eq!(rewrite(&m, "anything"), ("anything".into(), 0));
        assert!(!m.finds_in(b"anything"));
    }
}
