//! The Autodiscover rewriter: a streaming rewrite that holds back each
//! POX `<Protocol>` element and each SOAP `<UserResponse>` element whole,
//! so that the EXCH `<Server>` (POX) or the `InternalRpcClientServer`
//! setting (SOAP) can follow the database named after it (`<MdbDN>`, the
//! `MailboxDN` setting). JSON answers hold neither and get the generic
//! rewrite.

use std::sync::Arc;

use bytes::BytesMut;
use memchr::memmem;

use super::plan::RewritePlan;
use super::protocol::rewrite_protocol;
use super::stream::StreamRewriter;
use super::user_settings::rewrite_user_response;

/// The largest `<Protocol>` element held back whole by default: 64 KiB.
pub const DEFAULT_MAX_ELEMENT: usize = 64 * 1024;

/// The elements held back: (start tag, end tag, how one is rewritten).
type Rewrite = fn(&[u8], &RewritePlan, &mut BytesMut) -> usize;
const ELEMENTS: [(&[u8], &[u8], Rewrite); 2] = [
    (b"<Protocol", b"</Protocol>", rewrite_protocol),
    (b"<UserResponse", b"</UserResponse>", rewrite_user_response),
];

/// Rewrites an Autodiscover answer fed in chunks.
///
/// Outside those elements text streams through the generic rewrite.
/// Each `<Protocol>` or `<UserResponse>` element (up to the element limit, default
/// [`DEFAULT_MAX_ELEMENT`]) is kept until its end and rewritten by the
/// Autodiscover rules; a longer or unfinished element gets the generic
/// rewrite only. Memory stays below the element limit plus one chunk, and
/// the output does not depend on how the body is chunked.
#[derive(Debug)]
pub struct AutodiscoverRewriter {
    plan: Arc<RewritePlan>,
    generic: StreamRewriter,
    /// Bytes not yet handed on: a partial start tag outside elements, or
    /// the element so far inside one.
    buf: Vec<u8>,
    /// Inside an element: which one (index into `ELEMENTS`).
    inside: Option<usize>,
    /// Inside: how much of `buf` was already searched for the end tag.
    searched: usize,
    max_element: usize,
}

/// Where an element starts, or how much text is surely outside one.
enum Open {
    /// Element `.1` of `ELEMENTS` starts at `.0`.
    At(usize, usize),
    None {
        safe: usize,
    },
}

impl AutodiscoverRewriter {
    /// A rewriter holding back elements up to [`DEFAULT_MAX_ELEMENT`].
    pub fn new(plan: Arc<RewritePlan>) -> Self {
        Self::with_max_element(plan, DEFAULT_MAX_ELEMENT)
    }

    /// A rewriter holding back elements up to `max_element` bytes (at least
    /// 64).
    pub fn with_max_element(plan: Arc<RewritePlan>, max_element: usize) -> Self {
        Self {
            generic: plan.stream_rewriter(),
            plan,
            buf: Vec::new(),
            inside: None,
            searched: 0,
            max_element: max_element.max(64),
        }
    }

    /// Rewrites the next chunk into `out`; returns the replacements made.
    pub fn feed(&mut self, chunk: &[u8], out: &mut BytesMut) -> usize {
        self.buf.extend_from_slice(chunk);
        self.process(false, out)
    }

    /// Ends the answer: writes what was held back; returns the replacements
    /// made. The rewriter is then ready for a new answer.
    pub fn finish(&mut self, out: &mut BytesMut) -> usize {
        let replaced = self.process(true, out) + self.generic.finish(out);
        self.buf.clear();
        self.inside = None;
        self.searched = 0;
        replaced
    }

    /// Bytes held back right now (not counting the generic rewriter's few).
    pub fn held_back(&self) -> usize {
        self.buf.len()
    }

    fn process(&mut self, at_end: bool, out: &mut BytesMut) -> usize {
        let mut replaced = 0;
        let mut consumed = 0;
        // Each round consumes bytes or stops; bounded by the buffer length.
        while consumed < self.buf.len() {
            let rest = &self.buf[consumed..];
            if let Some(kind) = self.inside {
                let (open, close, rewrite) = ELEMENTS[kind];
                let window = &rest[..rest.len().min(self.max_element)];
                let from = self.searched.saturating_sub(close.len() - 1);
                match memmem::find(&window[from..], close) {
                    Some(i) => {
                        let end = from + i + close.len();
                        replaced += rewrite(&rest[..end], &self.plan, out);
                        consumed += end;
                        self.inside = None;
                    }
                    None if at_end || window.len() >= self.max_element => {
                        // Too long or unfinished: the generic rewrite only,
                        // looking for elements again right after this tag.
                        replaced += self.generic.feed(&rest[..open.len()], out);
                        consumed += open.len();
                        self.inside = None;
                    }
                    None => {
                        self.searched = window.len();
                        break;
                    }
                }
            } else {
                match find_open(rest, at_end) {
                    Open::At(i, kind) => {
                        replaced += self.generic.feed(&rest[..i], out);
                        replaced += self.generic.finish(out);
                        consumed += i;
                        self.inside = Some(kind);
                        self.searched = 0;
                    }
                    Open::None { safe } => {
                        replaced += self.generic.feed(&rest[..safe], out);
                        consumed += safe;
                        break;
                    }
                }
            }
        }
        self.buf.drain(..consumed);
        replaced
    }
}

/// Finds the first start tag of an element of `ELEMENTS` (`<Protocol>`,
/// `<Protocol `, ...). Without one, `safe` is how much of `text` surely
/// holds none: all of it, or up to a `<` that may begin one in the bytes
/// still to come.
fn find_open(text: &[u8], at_end: bool) -> Open {
    for i in memchr::memchr_iter(b'<', text) {
        let tail = &text[i..];
        for (kind, (open, _, _)) in ELEMENTS.iter().enumerate() {
            match tail.get(open.len()) {
                Some(&next) => {
                    if tail.starts_with(open) && matches!(next, b'>' | b' ' | b'\t' | b'\r' | b'\n')
                    {
                        return Open::At(i, kind);
                    }
                }
                None => {
                    if !at_end && open.starts_with(tail) {
                        return Open::None { safe: i };
                    }
                }
            }
        }
    }
    Open::None { safe: text.len() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::plan::names_member;
    use crate::rewrite::plan::tests::{lab_plan, lab_plan_on};

    const ANSWER: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
<Autodiscover><Response><User><DisplayName>alice</DisplayName></User>\
<Account><AccountType>email</AccountType><Action>settings</Action>\
<Protocol><Type>EXCH</Type><Server>ex1.lab.local</Server>\
<ServerDN>/o=casarray lab/cn=Configuration/cn=Servers/cn=EX1</ServerDN>\
<ServerVersion>738180DA</ServerVersion>\
<MdbDN>/o=casarray lab/cn=Configuration/cn=Databases/cn=DB01</MdbDN>\
<ASUrl>https://ex1.lab.local/EWS/Exchange.asmx</ASUrl></Protocol>\
<Protocol><Type>EXPR</Type><Server>ex1.lab.local</Server>\
<ASUrl>https://EX1.lab.local/EWS/Exchange.asmx</ASUrl></Protocol>\
<Protocol><Type>WEB</Type><Internal><OWAUrl AuthenticationMethod=\"Basic\">https://127.0.0.1:9001/owa/</OWAUrl></Internal></Protocol>\
</Account></Response></Autodiscover>";

    fn run(r: &mut AutodiscoverRewriter, chunks: &[&[u8]]) -> (String, usize) {
        let mut out = BytesMut::new();
        let mut n = 0;
        for c in chunks {
            n += r.feed(c, &mut out);
        }
        n += r.finish(&mut out);
        (String::from_utf8(out.to_vec()).unwrap(), n)
    }

    #[test]
    fn answer_is_rewritten_whatever_the_chunking() {
        let plan = Arc::new(lab_plan());
        let (whole, n) = run(
            &mut AutodiscoverRewriter::new(Arc::clone(&plan)),
            &[ANSWER.as_bytes()],
        );
        assert!(
            whole.contains("<Server>outlook.lab.com</Server>"),
            "{whole}"
        );
        assert!(whole.contains("cn=Servers/cn=CASARRAY01<"), "{whole}");
        assert!(
            whole.contains("<Type>EXPR</Type><Server>mail.lab.com</Server>"),
            "{whole}"
        );
        assert!(whole.contains("https://mail.lab.com/owa/"), "{whole}");
        assert!(!names_member(&plan, whole.as_bytes()), "{whole}");
        assert_eq!(n, 6);
        for size in [1, 2, 3, 7, 10, 64] {
            let chunks: Vec<&[u8]> = ANSWER.as_bytes().chunks(size).collect();
            let mut r = AutodiscoverRewriter::new(Arc::clone(&plan));
            assert_eq!(run(&mut r, &chunks), (whole.clone(), n), "chunks of {size}");
        }
    }

    #[test]
    fn urls_carry_the_public_port_whatever_the_chunking() {
        let plan = Arc::new(lab_plan_on(8443));
        let (whole, n) = run(
            &mut AutodiscoverRewriter::new(Arc::clone(&plan)),
            &[ANSWER.as_bytes()],
        );
        let want = ANSWER
            .replace(
                "<Type>EXCH</Type><Server>ex1.lab.local</Server>",
                "<Type>EXCH</Type><Server>outlook.lab.com</Server>",
            )
            .replace(
                "<Type>EXPR</Type><Server>ex1.lab.local</Server>",
                "<Type>EXPR</Type><Server>mail.lab.com</Server>",
            )
            .replace("cn=Servers/cn=EX1", "cn=Servers/cn=CASARRAY01")
            .replace("https://ex1.lab.local/", "https://mail.lab.com:8443/")
            .replace("https://EX1.lab.local/", "https://mail.lab.com:8443/")
            .replace("https://127.0.0.1:9001/", "https://mail.lab.com:8443/");
        assert_eq!(whole, want);
        assert_eq!(n, 6);
        for size in [1, 2, 3, 7, 10, 64] {
            let chunks: Vec<&[u8]> = ANSWER.as_bytes().chunks(size).collect();
            let mut r = AutodiscoverRewriter::new(Arc::clone(&plan));
            assert_eq!(run(&mut r, &chunks), (whole.clone(), n), "chunks of {size}");
        }
        // The unset database keeps its server, with no port added.
        let answer = ANSWER.replace("cn=DB01", "cn=DB02");
        let (out, _) = run(&mut AutodiscoverRewriter::new(plan), &[answer.as_bytes()]);
        assert!(
            out.contains("<Type>EXCH</Type><Server>ex1.lab.local</Server>"),
            "{out}"
        );
    }

    #[test]
    fn database_unset_keeps_the_server() {
        let plan = Arc::new(lab_plan());
        let answer = ANSWER.replace("cn=DB01", "cn=DB02");
        let (out, _) = run(&mut AutodiscoverRewriter::new(plan), &[answer.as_bytes()]);
        assert!(
            out.contains("<Type>EXCH</Type><Server>ex1.lab.local</Server>"),
            "{out}"
        );
    }

    #[test]
    fn a_too_long_element_gets_the_generic_rewrite() {
        let plan = Arc::new(lab_plan());
        let filler = "x".repeat(200);
        let answer = ANSWER.replace(
            "<ServerVersion>",
            &format!("<Pad>{filler}</Pad><ServerVersion>"),
        );
        let mut r = AutodiscoverRewriter::with_max_element(Arc::clone(&plan), 100);
        let (whole, _) = run(&mut r, &[answer.as_bytes()]);
        assert!(
            whole.contains("<Type>EXCH</Type><Server>mail.lab.com</Server>"),
            "{whole}"
        );
        assert!(!names_member(&plan, whole.as_bytes()), "{whole}");
        for size in [1, 5, 99, 100, 101] {
            let chunks: Vec<&[u8]> = answer.as_bytes().chunks(size).collect();
            let mut r = AutodiscoverRewriter::with_max_element(Arc::clone(&plan), 100);
            let mut out = BytesMut::new();
            for c in &chunks {
                r.feed(c, &mut out);
                assert!(r.held_back() < 100 + size, "held {}", r.held_back());
            }
            r.finish(&mut out);
            assert_eq!(
                String::from_utf8(out.to_vec()).unwrap(),
                whole,
                "chunks of {size}"
            );
        }
    }

    #[test]
    fn an_unfinished_element_is_flushed_at_the_end() {
        let plan = Arc::new(lab_plan());
        let (out, n) = run(
            &mut AutodiscoverRewriter::new(plan),
            &[b"<Protocol><Type>EXCH</Type><Server>EX1</Server"],
        );
        assert_eq!(
            out,
            "<Protocol><Type>EXCH</Type><Server>mail.lab.com</Server"
        );
        assert_eq!(n, 1);
    }

    #[test]
    fn open_tags_are_told_apart() {
        assert!(matches!(find_open(b"a<Protocol>", false), Open::At(1, 0)));
        assert!(matches!(
            find_open(b"<Protocol Type=\"x\">", false),
            Open::At(0, 0)
        ));
        assert!(matches!(
            find_open(b"x<UserResponse>", false),
            Open::At(1, 1)
        ));
        assert!(matches!(
            find_open(b"x<UserResponses>", false),
            Open::None { safe: 16 }
        ));
        assert!(matches!(
            find_open(b"ab<UserRes", false),
            Open::None { safe: 2 }
        ));
        assert!(matches!(
            find_open(b"<Protocols>", false),
            Open::None { safe: 11 }
        ));
        assert!(matches!(
            find_open(b"ab<Prot", false),
            Open::None { safe: 2 }
        ));
        assert!(matches!(
            find_open(b"ab<Protocol", false),
            Open::None { safe: 2 }
        ));
        assert!(matches!(
            find_open(b"ab<Prot", true),
            Open::None { safe: 7 }
        ));
        assert!(matches!(find_open(b"ab<x", false), Open::None { safe: 4 }));
    }
}
