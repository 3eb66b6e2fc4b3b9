//! The streaming rewriter: member names to the array's name across chunk
//! boundaries, in bounded memory.

use std::sync::Arc;

use bytes::BytesMut;

use super::patterns::Matcher;

/// Rewrites a body fed in chunks of any size, giving exactly what one
/// replace over the whole body would give.
///
/// It keeps back at most the longest pattern plus one byte (the rest of a
/// name and the two bytes of look-ahead of the name-boundary rule; plus
/// two bytes when escaped URL patterns need three of look-ahead) between
/// calls, whatever the body size; apart
/// from that, output for a chunk is written as soon as it is decided. Made
/// by [`RewritePlan::stream_rewriter`](super::RewritePlan::stream_rewriter).
#[derive(Debug)]
pub struct StreamRewriter {
    matcher: Arc<Matcher>,
    /// Undecided bytes from the end of the last chunk.
    carry: Vec<u8>,
    /// Scratch: `carry` plus the head of the next chunk.
    stitch: Vec<u8>,
    /// The byte before `carry` (or before the next chunk); `None` at the
    /// start of the text.
    before: Option<u8>,
}

impl StreamRewriter {
    pub(crate) fn new(matcher: Arc<Matcher>) -> Self {
        Self {
            matcher,
            carry: Vec::new(),
            stitch: Vec::new(),
            before: None,
        }
    }

    /// Rewrites the next chunk into `out`; returns the replacements made.
    /// Some bytes may be kept back until the next call or [`Self::finish`].
    pub fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> usize {
        let hold = self.matcher.hold_back();
        let mut replaced = 0;
        let mut start = 0;
        if !self.carry.is_empty() {
            let carried = self.carry.len();
            let take = chunk.len().min(hold);
            self.stitch.clear();
            self.stitch.extend_from_slice(&self.carry);
            self.stitch.extend_from_slice(&chunk[..take]);
            let limit = carried.min(self.stitch.len().saturating_sub(hold));
            let s = self.matcher.scan(&self.stitch, self.before, 0, limit, out);
            replaced += s.replaced;
            if let Some(i) = s.stop.checked_sub(1) {
                self.before = Some(self.stitch[i]);
            }
            self.carry.clear();
            if s.stop < carried {
                // The chunk was too short to decide the carry; all of it is
                // in `stitch`, and the undecided rest becomes the carry.
                self.carry.extend_from_slice(&self.stitch[s.stop..]);
                return replaced;
            }
            start = s.stop - carried;
        }
        let limit = chunk.len().saturating_sub(hold);
        let s = self.matcher.scan(chunk, self.before, start, limit, out);
        replaced += s.replaced;
        if s.stop > start {
            self.before = Some(chunk[s.stop - 1]);
        }
        self.carry.extend_from_slice(&chunk[s.stop..]);
        replaced
    }

    /// Ends the text: writes what was kept back; returns the replacements
    /// made. The rewriter is then ready for a new text.
    pub fn finish(&mut self, out: &mut BytesMut) -> usize {
        let s = self
            .matcher
            .scan(&self.carry, self.before, 0, self.carry.len(), out);
        self.carry.clear();
        self.before = None;
        s.replaced
    }

    /// Bytes kept back right now.
    pub fn held_back(&self) -> usize {
        self.carry.len()
    }

    /// The most bytes ever kept back between calls: the longest pattern
    /// plus one (plus two with escaped URL patterns).
    pub fn max_held_back(&self) -> usize {
        self.matcher.hold_back()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::patterns::{Needle, NeedleKind};

    fn rewriter() -> StreamRewriter {
        let needles: Vec<Needle> = ["EX1", "ex1.lab.local", "127.0.0.1:9001", "127.0.0.1"]
            .iter()
            .map(|t| Needle {
                text: t.to_string(),
                kind: NeedleKind::Host,
            })
            .collect();
        StreamRewriter::new(Arc::new(Matcher::new(&needles, "mail.lab.com")))
    }

    fn run(r: &mut StreamRewriter, chunks: &[&[u8]]) -> (Vec<u8>, usize) {
        let mut out = BytesMut::new();
        let mut n = 0;
        for c in chunks {
            n += r.feed(c, &mut out);
            assert!(r.held_back() <= r.max_held_back());
        }
        n += r.finish(&mut out);
        (out.to_vec(), n)
    }

    #[test]
    fn a_name_split_byte_by_byte_is_found() {
        let text = b"go to https://ex1.lab.local/owa now";
        let chunks: Vec<&[u8]> = text.chunks(1).collect();
        let (out, n) = run(&mut rewriter(), &chunks);
        assert_eq!(out, b"go to https://mail.lab.com/owa now");
        assert_eq!(n, 1);
    }

    #[test]
    fn a_boundary_in_the_next_chunk_is_respected() {
        let (out, n) = run(&mut rewriter(), &[b"www.", b"ex1", b".lab.local", b"x"]);
        assert_eq!(out, b"www.ex1.lab.localx");
        assert_eq!(n, 0);
        let (out, n) = run(&mut rewriter(), &[b"a EX1", b".", b"", b" b"]);
        assert_eq!(out, b"a mail.lab.com. b");
        assert_eq!(n, 1);
    }

    #[test]
    fn memory_stays_bounded_on_a_long_body() {
        let mut r = rewriter();
        let mut out = BytesMut::new();
        let chunk = b"<a href=\"http://127.0.0.1:9001/x\">EX1</a> ".repeat(100);
        let mut n = 0;
        for _ in 0..1000 {
            n += r.feed(&chunk, &mut out);
            assert!(r.held_back() <= r.max_held_back());
            assert!(r.stitch.capacity() <= 4 * r.max_held_back());
            out.clear();
        }
        n += r.finish(&mut out);
        assert_eq!(n, 200_000);
    }

    #[test]
    fn finish_resets_for_a_new_text() {
        let mut r = rewriter();
        let (out, _) = run(&mut r, &[b"x.EX"]);
        assert_eq!(out, b"x.EX");
        // The `.` of the last text must not guard the start of this one.
        let (out, n) = run(&mut r, &[b"1 EX1"]);
        assert_eq!(out, b"1 mail.lab.com");
        assert_eq!(n, 1);
    }

    #[test]
    fn urls_with_the_public_port_are_found_across_every_split() {
        let plan = crate::rewrite::plan::tests::lab_plan_on(8443);
        let text = b"<a href=\"https://EX1:443/owa\">https://ex1.lab.local.</a> \
            url=https%3a%2f%2fex1.lab.local%3A443%2f https://[::1]:9002/ https://EX1:444";
        let mut want = BytesMut::new();
        let want_n = plan.rewrite(text, &mut want);
        assert_eq!(
            &want[..],
            &b"<a href=\"https://mail.lab.com:8443/owa\">https://mail.lab.com:8443.</a> \
            url=https%3a%2f%2fmail.lab.com%3a8443%2f https://mail.lab.com:8443/ https://mail.lab.com:444"[..]
        );
        for i in 0..=text.len() {
            for j in (i..=text.len()).step_by(7) {
                let mut r = plan.stream_rewriter();
                let (out, n) = run(&mut r, &[&text[..i], &text[i..j], &text[j..]]);
                assert_eq!((&out[..], n), (&want[..], want_n), "cut at {i}, {j}");
            }
        }
    }

    #[test]
    fn empty_body_gives_nothing() {
        let (out, n) = run(&mut rewriter(), &[]);
        assert!(out.is_empty());
        assert_eq!(n, 0);
    }
}
