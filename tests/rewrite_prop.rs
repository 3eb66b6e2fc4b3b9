//! Property tests of the rewriters: the streaming rewriter against a plain
//! whole-buffer replace written here, and the Autodiscover rewriter against
//! itself fed in one chunk, both under random chunkings.

use std::sync::Arc;

use bytes::BytesMut;
use casarray::rewrite::{names_member, AutodiscoverRewriter, MemberIdentity, RewritePlan};
use proptest::prelude::*;

const PUBLIC: &str = "mail.lab.com";

fn member(name: &str, fqdn: &str, address: &str) -> MemberIdentity {
    MemberIdentity {
        name: name.into(),
        fqdn: fqdn.into(),
        address: address.parse().expect("test address"),
    }
}

/// Members whose names overlap: `ex1` is a prefix of `ex1.lab` and
/// `ex1.lab.local`; `e` is one letter; one member is on IPv6.
fn members() -> Vec<MemberIdentity> {
    vec![
        member("EX1", "ex1.lab.local", "127.0.0.1:9001"),
        member("EX10", "ex1.lab", "[::1]:9010"),
        member("E", "e.x", "10.0.0.1:443"),
    ]
}

fn plan() -> RewritePlan {
    RewritePlan::new(
        &members(),
        PUBLIC,
        "CASARRAY01",
        &[
            ("DB01".into(), Some("outlook.lab.com".into())),
            ("DB02".into(), None),
        ],
    )
}

/// A pattern of the reference: lowercase text, and whether it is a bare
/// IPv6 address.
struct RefPattern {
    text: Vec<u8>,
    v6: bool,
}

fn reference_patterns() -> Vec<RefPattern> {
    let mut pats: Vec<RefPattern> = Vec::new();
    let mut add = |text: String, v6: bool| {
        let text = text.to_ascii_lowercase().into_bytes();
        if !pats.iter().any(|p| p.text == text) && text != PUBLIC.as_bytes() {
            pats.push(RefPattern { text, v6 });
        }
    };
    for m in members() {
        add(m.name.clone(), false);
        add(m.fqdn.clone(), false);
        add(m.address.to_string(), false);
        match m.address.ip() {
            std::net::IpAddr::V4(ip) => add(ip.to_string(), false),
            std::net::IpAddr::V6(ip) => {
                add(format!("[{ip}]"), false);
                add(ip.to_string(), true);
            }
        }
    }
    pats.sort_by_key(|p| std::cmp::Reverse(p.text.len()));
    pats
}

fn hostish(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// The plain whole-buffer replace: at each position, the longest pattern
/// that matches and stands alone as a host name.
fn reference(text: &[u8]) -> (Vec<u8>, usize) {
    let pats = reference_patterns();
    let mut out = Vec::new();
    let mut n = 0;
    let mut i = 0;
    'outer: while i < text.len() {
        for p in &pats {
            let end = i + p.text.len();
            if end > text.len() || !text[i..end].eq_ignore_ascii_case(&p.text) {
                continue;
            }
            let first = p.text[0];
            let last = p.text[p.text.len() - 1];
            if (p.v6 || hostish(first)) && i > 0 {
                let b = text[i - 1];
                if hostish(b) || b == b'.' || (p.v6 && b == b':') {
                    continue;
                }
            }
            if (p.v6 || hostish(last)) && end < text.len() {
                let b = text[end];
                if hostish(b) || (p.v6 && b == b':') {
                    continue;
                }
                if b == b'.' && end + 1 < text.len() && hostish(text[end + 1]) {
                    continue;
                }
            }
            out.extend_from_slice(PUBLIC.as_bytes());
            n += 1;
            i = end;
            continue 'outer;
        }
        out.push(text[i]);
        i += 1;
    }
    (out, n)
}

/// Pieces bodies are built from: names and addresses in changing case,
/// their prefixes, edge bytes and noise.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let names = prop::sample::select(vec![
        "EX1",
        "ex1.lab.local",
        "127.0.0.1:9001",
        "127.0.0.1",
        "EX10",
        "ex1.lab",
        "[::1]:9010",
        "[::1]",
        "::1",
        "E",
        "e.x",
        "10.0.0.1:443",
        "10.0.0.1",
        "mail.lab.com",
    ]);
    let named = (names, any::<u16>(), 0usize..=16).prop_map(|(name, case, cut)| {
        let mut b: Vec<u8> = name.as_bytes().to_vec();
        for (i, c) in b.iter_mut().enumerate() {
            if case >> (i % 16) & 1 == 1 {
                c.make_ascii_uppercase();
            }
        }
        // Sometimes a prefix only.
        if cut < b.len() && cut % 3 == 0 {
            b.truncate(cut.max(1));
        }
        b
    });
    let edge = prop::sample::select(vec![
        ".", "-", "_", ":", "/", "<", ">", " ", "a", "1", "[", "]", "www.", "https://", "\r\n",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    let noise = prop::collection::vec(any::<u8>(), 0..8);
    prop_oneof![4 => named, 3 => edge, 1 => noise]
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(fragment(), 0..60).prop_map(|parts| parts.concat())
}

/// Cuts `body` at the given fractions.
fn chunks<'a>(body: &'a [u8], cuts: &[prop::sample::Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|c| c.index(body.len() + 1)).collect();
    at.sort_unstable();
    let mut out = Vec::new();
    let mut prev = 0;
    for a in at {
        out.push(&body[prev..a]);
        prev = a;
    }
    out.push(&body[prev..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn stream_equals_whole_buffer_replace(
        body in body(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let plan = plan();
        let mut r = plan.stream_rewriter();
        let mut out = BytesMut::new();
        let mut n = 0;
        for c in chunks(&body, &cuts) {
            n += r.feed(c, &mut out);
            prop_assert!(r.held_back() <= r.max_held_back());
        }
        n += r.finish(&mut out);
        let (want, want_n) = reference(&body);
        prop_assert_eq!(&out[..], &want[..]);
        prop_assert_eq!(n, want_n);
        prop_assert_eq!(names_member(&plan, &body), want_n > 0);
    }

    #[test]
    fn stream_of_tiny_chunks_equals_whole_buffer_replace(body in body(), size in 1usize..5) {
        let plan = plan();
        let mut r = plan.stream_rewriter();
        let mut out = BytesMut::new();
        let mut n = 0;
        for c in body.chunks(size) {
            n += r.feed(c, &mut out);
        }
        n += r.finish(&mut out);
        prop_assert_eq!((out.to_vec(), n), reference(&body));
    }

    #[test]
    fn autodiscover_output_does_not_depend_on_chunking(
        body in autodiscover_body(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        max in 64usize..400,
    ) {
        let plan = Arc::new(plan());
        let mut whole = AutodiscoverRewriter::with_max_element(Arc::clone(&plan), max);
        let mut want = BytesMut::new();
        let mut want_n = whole.feed(&body, &mut want);
        want_n += whole.finish(&mut want);

        let mut r = AutodiscoverRewriter::with_max_element(Arc::clone(&plan), max);
        let mut out = BytesMut::new();
        let mut n = 0;
        for c in chunks(&body, &cuts) {
            n += r.feed(c, &mut out);
            prop_assert!(r.held_back() < max.max(64));
        }
        n += r.finish(&mut out);
        prop_assert_eq!(&out[..], &want[..]);
        prop_assert_eq!(n, want_n);
    }
}

/// Autodiscover-like bodies: element tags, EXCH parts and names mixed.
fn autodiscover_body() -> impl Strategy<Value = Vec<u8>> {
    let xml = prop::sample::select(vec![
        "<Protocol>",
        "<Protocol Type=\"mapiHttp\">",
        "</Protocol>",
        "<Prot",
        "<Type>EXCH</Type>",
        "<Type>EXPR</Type>",
        "<Server>",
        "</Server>",
        "<ServerDN>/o=lab/cn=Servers/cn=",
        "</ServerDN>",
        "<MdbDN>/o=lab/cn=Databases/cn=DB01</MdbDN>",
        "<MdbDN>/o=lab/cn=Databases/cn=DB02</MdbDN>",
        "<ASUrl>https://",
        "/EWS/Exchange.asmx</ASUrl>",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop::collection::vec(prop_oneof![2 => xml, 3 => fragment()], 0..60)
        .prop_map(|parts| parts.concat())
}

#[test]
fn autodiscover_answer_names_no_member_once_the_database_is_set() {
    let plan = Arc::new(plan());
    let answer = "<Autodiscover><Response><Account>\
        <Protocol><Type>EXCH</Type><Server>ex1.lab.local</Server>\
        <ServerDN>/o=lab/cn=Configuration/cn=Servers/cn=EX1</ServerDN>\
        <MdbDN>/o=lab/cn=Configuration/cn=Databases/cn=DB01</MdbDN>\
        <ASUrl>https://ex1.lab.local/EWS/Exchange.asmx</ASUrl></Protocol>\
        <Protocol><Type>WEB</Type><OWAUrl>https://127.0.0.1:9001/owa/</OWAUrl></Protocol>\
        </Account></Response></Autodiscover>";
    for size in 1..=answer.len() {
        let mut r = AutodiscoverRewriter::new(Arc::clone(&plan));
        let mut out = BytesMut::new();
        for c in answer.as_bytes().chunks(size) {
            r.feed(c, &mut out);
        }
        r.finish(&mut out);
        let text = String::from_utf8(out.to_vec()).expect("utf-8");
        assert!(text.contains("<Server>outlook.lab.com</Server>"), "{text}");
        assert!(!names_member(&plan, &out), "{text}");
    }
}

/// Names at the very edge of what the rewriter keeps back, cut at every
/// pair of points.
#[test]
fn every_two_and_three_way_split_of_edge_cases() {
    let plan = plan();
    let cases: &[&[u8]] = &[
        b"x 127.0.0.1:9001.5 y",
        b"127.0.0.1:9001.",
        b"127.0.0.1:9001.a",
        b"ex1.lab.local.b ex1.lab.local. EX1.lab.localE",
        b"www.ex1.lab.local/ex1.lab/EX10.e.x",
        b"[::1]:9010:[::1]::1 :::1 ::1.",
        b"E.x E.X. e.x.y",
    ];
    for text in cases {
        let want = reference(text);
        for i in 0..=text.len() {
            for j in i..=text.len() {
                let mut r = plan.stream_rewriter();
                let mut out = BytesMut::new();
                let mut n = 0;
                for c in [&text[..i], &text[i..j], &text[j..]] {
                    n += r.feed(c, &mut out);
                }
                n += r.finish(&mut out);
                assert_eq!(
                    (out.to_vec(), n),
                    want,
                    "{:?} cut at {i}, {j}",
                    String::from_utf8_lossy(text)
                );
            }
        }
    }
}
