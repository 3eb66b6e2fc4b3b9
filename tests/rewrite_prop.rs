//! Property tests of the rewriters: the streaming rewriter against a plain
//! whole-buffer replace written here, and the Autodiscover rewriter (POX,
//! SOAP and JSON answers) against itself fed in one chunk, both under
//! random chunkings.

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

/// The public port of the plans that add one to URLs.
const PORT: u16 = 8443;

/// The plan for clients reaching the array on `port`.
fn plan_on(port: u16) -> RewritePlan {
    RewritePlan::with_public_port(
        &members(),
        PUBLIC,
        port,
        "CASARRAY01",
        &[
            ("DB01".into(), Some("outlook.lab.com".into())),
            ("DB02".into(), None),
        ],
    )
}

/// What a pattern of the reference stands for, which decides its edge
/// rules and what replaces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Form {
    /// A host name or an address.
    Host,
    /// A bare IPv6 address: `:` counts as part of the token.
    V6,
    /// A name after `%2F`, `%3A` or `%40`: the escape is kept.
    Escaped,
    /// `https://` and a host (and maybe a port): the scheme is kept and
    /// `:PORT` follows the public name.
    Url,
    /// `https%3A%2F%2F` and a name (and maybe `%3A443`): the escaped
    /// scheme is kept and the match's own `%3A` and PORT follow.
    EscapedUrl,
}

/// A pattern of the reference: lowercase text and what it stands for.
struct RefPattern {
    text: Vec<u8>,
    form: Form,
}

fn reference_patterns(port: u16) -> Vec<RefPattern> {
    let mut pats: Vec<RefPattern> = Vec::new();
    let mut add = |text: String, form: Form| {
        let text = text.to_ascii_lowercase().into_bytes();
        if !pats.iter().any(|p| p.text == text) && text != PUBLIC.as_bytes() {
            pats.push(RefPattern { text, form });
        }
    };
    for m in members() {
        for name in [&m.name, &m.fqdn] {
            add(name.clone(), Form::Host);
            for escape in ["%2f", "%3a", "%40"] {
                add(format!("{escape}{name}"), Form::Escaped);
            }
        }
        add(m.address.to_string(), Form::Host);
        let ip = match m.address.ip() {
            std::net::IpAddr::V4(ip) => {
                add(ip.to_string(), Form::Host);
                ip.to_string()
            }
            std::net::IpAddr::V6(ip) => {
                add(format!("[{ip}]"), Form::Host);
                add(ip.to_string(), Form::V6);
                format!("[{ip}]")
            }
        };
        if port != 443 {
            for name in [&m.name, &m.fqdn] {
                add(format!("https://{name}"), Form::Url);
                add(format!("https://{name}:443"), Form::Url);
                add(format!("https%3a%2f%2f{name}"), Form::EscapedUrl);
                add(format!("https%3a%2f%2f{name}%3a443"), Form::EscapedUrl);
            }
            add(format!("https://{ip}"), Form::Url);
            add(format!("https://{ip}:443"), Form::Url);
            add(format!("https://{}", m.address), Form::Url);
        }
    }
    pats.sort_by_key(|p| std::cmp::Reverse(p.text.len()));
    pats
}

fn hostish(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Whether pattern `p`, found at `text[i..end]`, stands alone.
fn stands_alone(p: &RefPattern, text: &[u8], i: usize, end: usize) -> bool {
    let v6 = p.form == Form::V6;
    let url = matches!(p.form, Form::Url | Form::EscapedUrl);
    let first = p.text[0];
    let last = p.text[p.text.len() - 1];
    if p.form != Form::Escaped && (v6 || hostish(first)) && i > 0 {
        let b = text[i - 1];
        if hostish(b) || b == b'.' || (v6 && b == b':') {
            return false;
        }
    }
    if !(v6 || url || hostish(last)) || end == text.len() {
        return true;
    }
    let b = text[end];
    let next = text.get(end + 1).copied();
    if url {
        // No other port, and no `.` rooting the host.
        if b == b':' || (b == b'.' && next.is_some_and(|n| hostish(n) || b"/:?#%".contains(&n))) {
            return false;
        }
        let escaped_colon = text
            .get(end..end + 3)
            .is_some_and(|e| e.eq_ignore_ascii_case(b"%3a"));
        if p.form == Form::EscapedUrl && escaped_colon {
            return false;
        }
    }
    !(hostish(b) || (v6 && b == b':') || (b == b'.' && next.is_some_and(hostish)))
}

/// The plain whole-buffer replace on `port` (443: no URL patterns): at
/// each position, the longest pattern that matches and stands alone.
fn reference_on(port: u16, text: &[u8]) -> (Vec<u8>, usize) {
    let pats = reference_patterns(port);
    let mut out = Vec::new();
    let mut n = 0;
    let mut i = 0;
    'outer: while i < text.len() {
        for p in &pats {
            let end = i + p.text.len();
            if end > text.len()
                || !text[i..end].eq_ignore_ascii_case(&p.text)
                || !stands_alone(p, text, i, end)
            {
                continue;
            }
            match p.form {
                Form::Host | Form::V6 => out.extend_from_slice(PUBLIC.as_bytes()),
                Form::Escaped => {
                    out.extend_from_slice(&text[i..i + 3]);
                    out.extend_from_slice(PUBLIC.as_bytes());
                }
                Form::Url => {
                    out.extend_from_slice(&text[i..i + "https://".len()]);
                    out.extend_from_slice(format!("{PUBLIC}:{port}").as_bytes());
                }
                Form::EscapedUrl => {
                    out.extend_from_slice(&text[i..i + "https%3a%2f%2f".len()]);
                    out.extend_from_slice(PUBLIC.as_bytes());
                    out.extend_from_slice(&text[i + 5..i + 8]);
                    out.extend_from_slice(port.to_string().as_bytes());
                }
            }
            n += 1;
            i = end;
            continue 'outer;
        }
        out.push(text[i]);
        i += 1;
    }
    (out, n)
}

/// The names and addresses of the members, and the public name.
fn names() -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(vec![
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
    ])
}

/// `text` with the letters picked by the bits of `case` in upper case.
fn recase(text: &str, case: u16) -> Vec<u8> {
    let mut b: Vec<u8> = text.as_bytes().to_vec();
    for (i, c) in b.iter_mut().enumerate() {
        if case >> (i % 16) & 1 == 1 {
            c.make_ascii_uppercase();
        }
    }
    b
}

/// Pieces bodies are built from: names and addresses in changing case,
/// their prefixes, URLs of them (plain and percent-escaped, with and
/// without a port), edge bytes and noise.
fn fragment() -> impl Strategy<Value = Vec<u8>> {
    let named = (names(), any::<u16>(), 0usize..=16).prop_map(|(name, case, cut)| {
        let mut b = recase(name, case);
        // Sometimes a prefix only.
        if cut < b.len() && cut % 3 == 0 {
            b.truncate(cut.max(1));
        }
        b
    });
    let scheme = prop::sample::select(vec![
        "https://",
        "https%3a%2f%2f",
        "http://",
        "%2F%2F",
        "https:/",
        "https%3a%2f",
    ]);
    let port = prop::sample::select(vec![
        "",
        "",
        ":443",
        "%3a443",
        ":4431",
        ":8443",
        "%3a8443",
        ":",
        "%3a",
        "%3",
        ".",
        ":44",
        "%3a443%3a",
        ":443:",
    ]);
    let after = prop::sample::select(vec![
        "/", "%2f", "", ".", "./", ". ", "?", "#", "\"", "<", ".x", ".%2f", "%3f",
    ]);
    let url = (scheme, any::<u16>(), names(), port, after).prop_map(
        |(scheme, case, name, port, after)| {
            let mut b = recase(scheme, case);
            b.extend_from_slice(name.as_bytes());
            b.extend(recase(port, case.rotate_left(5)));
            b.extend(recase(after, case.rotate_left(9)));
            b
        },
    );
    let edge = prop::sample::select(vec![
        ".", "-", "_", ":", "/", "<", ">", " ", "a", "1", "[", "]", "www.", "https://", "\r\n",
        "%3A", "%2F", "%40", ":443", "https",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    let noise = prop::collection::vec(any::<u8>(), 0..8);
    prop_oneof![4 => named, 3 => url, 3 => edge, 1 => noise]
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
        port in prop::sample::select(vec![443u16, PORT]),
    ) {
        let plan = plan_on(port);
        let mut r = plan.stream_rewriter();
        let mut out = BytesMut::new();
        let mut n = 0;
        for c in chunks(&body, &cuts) {
            n += r.feed(c, &mut out);
            prop_assert!(r.held_back() <= r.max_held_back());
        }
        n += r.finish(&mut out);
        let (want, want_n) = reference_on(port, &body);
        prop_assert_eq!(&out[..], &want[..]);
        prop_assert_eq!(n, want_n);
        prop_assert_eq!(names_member(&plan, &body), want_n > 0);
    }

    #[test]
    fn stream_of_tiny_chunks_equals_whole_buffer_replace(
        body in body(),
        size in 1usize..5,
        port in prop::sample::select(vec![443u16, PORT]),
    ) {
        let plan = plan_on(port);
        let mut r = plan.stream_rewriter();
        let mut out = BytesMut::new();
        let mut n = 0;
        for c in body.chunks(size) {
            n += r.feed(c, &mut out);
        }
        n += r.finish(&mut out);
        prop_assert_eq!((out.to_vec(), n), reference_on(port, &body));
    }

    #[test]
    fn autodiscover_output_does_not_depend_on_chunking(
        body in autodiscover_body(),
        cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..12),
        max in 64usize..400,
        port in prop::sample::select(vec![443u16, PORT]),
    ) {
        let plan = Arc::new(plan_on(port));
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
        "<UserResponse>",
        "</UserResponse>",
        "<UserRes",
        "<UserSetting i:type=\"StringSetting\">",
        "</UserSetting>",
        "<Name>InternalRpcClientServer</Name><Value>",
        "<Name>MailboxDN</Name><Value>/o=lab/cn=Databases/cn=DB01",
        "<Name>InternalMailboxServerDN</Name><Value>/o=lab/cn=Servers/cn=",
        "</Value>",
        "{\"Protocol\":\"EWS\",\"Url\":\"https://",
    ])
    .prop_map(|s| s.as_bytes().to_vec());
    prop::collection::vec(prop_oneof![2 => xml, 3 => fragment()], 0..60)
        .prop_map(|parts| parts.concat())
}

#[test]
fn autodiscover_answer_names_no_member_once_the_database_is_set() {
    let answer = "<Autodiscover><Response><Account>\
        <Protocol><Type>EXCH</Type><Server>ex1.lab.local</Server>\
        <ServerDN>/o=lab/cn=Configuration/cn=Servers/cn=EX1</ServerDN>\
        <MdbDN>/o=lab/cn=Configuration/cn=Databases/cn=DB01</MdbDN>\
        <ASUrl>https://ex1.lab.local/EWS/Exchange.asmx</ASUrl></Protocol>\
        <Protocol><Type>WEB</Type><OWAUrl>https://127.0.0.1:9001/owa/</OWAUrl></Protocol>\
        </Account></Response></Autodiscover>";
    for (port, origin) in [
        (443, "https://mail.lab.com/"),
        (PORT, "https://mail.lab.com:8443/"),
    ] {
        let plan = Arc::new(plan_on(port));
        for size in 1..=answer.len() {
            let mut r = AutodiscoverRewriter::new(Arc::clone(&plan));
            let mut out = BytesMut::new();
            for c in answer.as_bytes().chunks(size) {
                r.feed(c, &mut out);
            }
            r.finish(&mut out);
            let text = String::from_utf8(out.to_vec()).expect("utf-8");
            assert!(text.contains("<Server>outlook.lab.com</Server>"), "{text}");
            assert!(
                text.contains(&format!("<ASUrl>{origin}EWS/Exchange.asmx</ASUrl>")),
                "{text}"
            );
            assert!(
                text.contains(&format!("<OWAUrl>{origin}owa/</OWAUrl>")),
                "{text}"
            );
            assert!(!names_member(&plan, &out), "{text}");
        }
    }
}

/// A SOAP `GetUserSettings` answer as the mock sends it, and a JSON
/// Autodiscover answer: rewritten whole or in chunks of any size, they name
/// the database's RPC client access server and the array, never a member.
#[test]
fn soap_and_json_answers_name_no_member_once_the_database_is_set() {
    let setting = |name: &str, value: &str| {
        format!(
            "<UserSetting i:type=\"StringSetting\"><Name>{name}</Name><Value>{value}</Value></UserSetting>"
        )
    };
    let soap = format!(
        "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\"><s:Body>\
         <GetUserSettingsResponseMessage><Response><UserResponses><UserResponse>\
         <ErrorCode>NoError</ErrorCode><UserSettings>{}{}{}{}{}</UserSettings></UserResponse>\
         </UserResponses></Response></GetUserSettingsResponseMessage></s:Body></s:Envelope>",
        setting("InternalRpcClientServer", "ex1.lab.local"),
        setting(
            "InternalMailboxServerDN",
            "/o=lab/cn=Configuration/cn=Servers/cn=EX1"
        ),
        setting("MailboxDN", "/o=lab/cn=Configuration/cn=Databases/cn=DB01"),
        setting("ExternalEwsUrl", "https://EX1.lab.local/EWS/Exchange.asmx"),
        setting("ExternalMailboxServer", "ex1.lab.local"),
    );
    let json = "{\"Protocol\":\"EWS\",\"Url\":\"https://ex1.lab.local/EWS/Exchange.asmx\"}";
    for (port, origin) in [
        (443, "https://mail.lab.com/"),
        (PORT, "https://mail.lab.com:8443/"),
    ] {
        let plan = Arc::new(plan_on(port));
        for size in 1..=soap.len() {
            let mut r = AutodiscoverRewriter::new(Arc::clone(&plan));
            let mut out = BytesMut::new();
            for c in soap.as_bytes().chunks(size) {
                r.feed(c, &mut out);
            }
            r.finish(&mut out);
            let text = String::from_utf8(out.to_vec()).expect("utf-8");
            for want in [
                setting("InternalRpcClientServer", "outlook.lab.com"),
                setting("ExternalMailboxServer", "mail.lab.com"),
                setting("ExternalEwsUrl", &format!("{origin}EWS/Exchange.asmx")),
                setting(
                    "InternalMailboxServerDN",
                    "/o=lab/cn=Configuration/cn=Servers/cn=CASARRAY01",
                ),
            ] {
                assert!(text.contains(&want), "{want} not in {text}");
            }
            assert!(!names_member(&plan, &out), "{text}");
        }
        for size in 1..=json.len() {
            let mut r = AutodiscoverRewriter::new(Arc::clone(&plan));
            let mut out = BytesMut::new();
            for c in json.as_bytes().chunks(size) {
                r.feed(c, &mut out);
            }
            r.finish(&mut out);
            let text = String::from_utf8(out.to_vec()).expect("utf-8");
            let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(value["Url"], format!("{origin}EWS/Exchange.asmx"), "{text}");
            assert!(!names_member(&plan, &out), "{text}");
        }
    }
}

/// Names at the very edge of what the rewriter keeps back, cut at every
/// pair of points, with and without a public port.
#[test]
fn every_two_and_three_way_split_of_edge_cases() {
    let cases: &[&[u8]] = &[
        b"x 127.0.0.1:9001.5 y",
        b"127.0.0.1:9001.",
        b"127.0.0.1:9001.a",
        b"ex1.lab.local.b ex1.lab.local. EX1.lab.localE",
        b"www.ex1.lab.local/ex1.lab/EX10.e.x",
        b"[::1]:9010:[::1]::1 :::1 ::1.",
        b"E.x E.X. e.x.y",
        b"https://ex1.lab.local:443",
        b"https://ex1.lab.local:4431 https://EX1.",
        b"https://e.x./ https://e.x.y https://E:443.",
        b"https%3A%2F%2Fex1.lab.local%3A443",
        b"https%3A%2F%2Fex1.lab.local%3A443%3A1",
        b"https%3a%2f%2fex1.lab.local%3a4 https%3A%2F%2FE%3",
        b"https://[::1]:9010:443 https://[::1]:443",
    ];
    for port in [443, PORT] {
        let plan = plan_on(port);
        for text in cases {
            let want = reference_on(port, text);
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
                        "port {port}: {:?} cut at {i}, {j}",
                        String::from_utf8_lossy(text)
                    );
                }
            }
        }
    }
}

/// The reference itself, on URLs: what the property tests compare against.
#[test]
fn reference_adds_the_port_to_https_urls_only() {
    let cases: &[(&str, &str)] = &[
        ("https://EX1/owa", "https://mail.lab.com:8443/owa"),
        ("HTTPS://ex1.lab.local:443/", "HTTPS://mail.lab.com:8443/"),
        ("https://127.0.0.1:9001/", "https://mail.lab.com:8443/"),
        (
            "https://[::1]:9010/ https://[::1]/",
            "https://mail.lab.com:8443/ https://mail.lab.com:8443/",
        ),
        ("https://ex1.lab.local:4431/", "https://mail.lab.com:4431/"),
        ("http://ex1.lab.local/", "http://mail.lab.com/"),
        (
            "https%3A%2F%2FEX1%2F",
            "https%3A%2F%2Fmail.lab.com%3A8443%2F",
        ),
        (
            "https%3a%2f%2fEX1%3A443%2F",
            "https%3a%2f%2fmail.lab.com%3a8443%2F",
        ),
        (
            "a%40EX1 <Server>ex1.lab.local</Server>",
            "a%40mail.lab.com <Server>mail.lab.com</Server>",
        ),
    ];
    for (text, want) in cases {
        let (got, _) = reference_on(PORT, text.as_bytes());
        assert_eq!(String::from_utf8_lossy(&got), *want, "{text}");
        let mut out = BytesMut::new();
        plan_on(PORT).rewrite(text.as_bytes(), &mut out);
        assert_eq!(String::from_utf8_lossy(&out), *want, "{text}");
    }
}
