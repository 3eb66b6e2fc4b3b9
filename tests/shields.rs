//! The Exchange shields, black-box (issue 18): a real `casarray serve`
//! process on 127.0.0.1.
//!
//! - A corpus of the published exploit request shapes of ProxyLogon,
//!   ProxyShell, ProxyNotShell and OWASSRF (written from the advisories,
//!   Microsoft's mitigations and public write-ups; tokens and hosts are
//!   made up), each path shape in every encoding the normalizer knows
//!   (percent, double percent, mixed case, `;` parameters, backslashes,
//!   `//`, the absolute form, HTTP/2) and each header or cookie shape in
//!   every spelling (upper, lower, split over Cookie fields, HTTP/2): all
//!   get 403 and the member (an echo backend that counts what it gets)
//!   sees none of them; each is counted under its rule and named in the
//!   access log.
//! - A corpus of what real clients send (OWA, ECP, EWS, Autodiscover POX,
//!   SOAP and JSON, ActiveSync, MAPI, Outlook Anywhere, OAB, PowerShell
//!   from loopback), over HTTP/1.1 and HTTP/2: every one reaches the
//!   member unchanged.
//! - Lockout against a real mock mailbox server: a spray of 200 wrong
//!   passwords from 127.0.0.1 is cut at the threshold (20) while alice,
//!   who logged on from 127.0.0.2 before, goes on logging on from there;
//!   OWA's form and NTLM count too; a lock ends after lockout_time.
//! - allow_from: a client outside a service's ranges gets 403.
//! - The inputs kept for the `shields_normalize` fuzz target (fuzz/seeds,
//!   fuzz/regressions) pass its check (fuzz/src/checks.rs).

mod support;

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod fuzz_checks;

use std::net::IpAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use support::backend::EchoBackend;
use support::shields::{connect_from, raw_status, spawn_array_with_access_log, H2};
use support::*;

const RULES: [&str; 8] = [
    "internal-routing-headers",
    "proxylogon-anonresource",
    "proxylogon-beresource",
    "proxylogon-backendcookie",
    "proxyshell-explicit-logon",
    "proxyshell-rps-cat",
    "proxynotshell-autodiscover-powershell",
    "owassrf-powershell",
];

const SERVICES: [&str; 9] = [
    "owa",
    "ecp",
    "ews",
    "eas",
    "autodiscover",
    "rpc",
    "mapi",
    "oab",
    "powershell",
];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The array in front of one echo member, logging JSON to `log`.
struct EchoLab {
    dir: tempfile::TempDir,
    _array: Proc,
    addrs: ArrayAddrs,
    client: Client,
    h2: Client,
    member: EchoBackend,
}

async fn echo_lab(extra: &str) -> EchoLab {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let member = EchoBackend::start("EX1").await;
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &[("EX1", member.addr)], extra)).unwrap();
    let log = dir.path().join("array.log");
    let (array, addrs) = spawn_array_with_access_log(&config, &log);
    wait_until(
        "EX1 up for every service",
        Duration::from_secs(30),
        || async {
            for s in SERVICES {
                if !member_up(addrs.admin, "EX1", s).await {
                    return false;
                }
            }
            true
        },
    )
    .await;
    EchoLab {
        client: Client::h1(addrs.https, &certs.ca_pem),
        h2: Client::new(addrs.https, &certs.ca_pem, &[b"h2"]),
        dir,
        _array: array,
        addrs,
        member,
    }
}

impl EchoLab {
    fn member_requests(&self) -> u64 {
        self.member.state.requests.load(Ordering::SeqCst)
    }

    /// The access log's JSON lines.
    fn access_lines(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.path().join("array.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["target"] == "access")
            .collect()
    }
}

/// How a case is sent.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Via {
    H1,
    H2,
    /// HTTP/1.1 with the absolute form in the request line.
    Absolute,
}

#[derive(Debug, Clone)]
struct Case {
    what: String,
    method: &'static str,
    target: String,
    headers: Vec<(String, String)>,
    via: Via,
}

fn request(case: &Case) -> Request<Full<Bytes>> {
    let uri = match case.via {
        Via::H2 => format!("https://{FQDN}{}", case.target),
        _ => case.target.clone(),
    };
    let mut b = Request::builder().method(case.method).uri(uri);
    if case.via != Via::H2 {
        b = b.header("host", FQDN);
    }
    for (k, v) in &case.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    b.body(Full::new(Bytes::new())).expect(&case.what)
}

/// Sends `case`; the answer's status and body (empty for the absolute form).
async fn send(lab: &EchoLab, h2: &mut H2, case: &Case) -> (u16, String) {
    match case.via {
        Via::H1 => {
            let r = lab.client.send(request(case)).await.expect(&case.what);
            (r.status().as_u16(), text(&r))
        }
        Via::H2 => {
            let r = h2.send(request(case)).await.expect(&case.what);
            (r.status().as_u16(), text(&r))
        }
        Via::Absolute => {
            let mut head = format!(
                "{} https://{FQDN}{} HTTP/1.1\r\nHost: {FQDN}\r\n",
                case.method, case.target
            );
            for (k, v) in &case.headers {
                head.push_str(&format!("{k}: {v}\r\n"));
            }
            head.push_str("Content-Length: 0\r\nConnection: close\r\n\r\n");
            let status = raw_status(&lab.client, &head).await.expect(&case.what);
            (status, String::new())
        }
    }
}

// ---------------------------------------------------------------------------
// The exploit corpus.

/// A made-up CommonAccessToken (base64 of a fake header): the shape, no
/// identity.
const FAKE_CAT: &str = "VgEAVAdXaW5kb3dzQwBBCEtlcmJlcm9z";

/// Path shapes: (rule that must refuse it, method, target).
fn path_shapes() -> Vec<(&'static str, &'static str, String)> {
    let email = "Email=autodiscover/autodiscover.json%3F@evil.example";
    vec![
        // ProxyShell (CVE-2021-34473): explicit logon into MAPI/NSPI, EWS.
        (
            "proxyshell-explicit-logon",
            "POST",
            format!("/autodiscover/autodiscover.json?@evil.example/mapi/nspi/?&{email}"),
        ),
        (
            "proxyshell-explicit-logon",
            "POST",
            format!("/autodiscover/autodiscover.json?@evil.example/EWS/exchange.asmx?&{email}"),
        ),
        (
            "proxyshell-explicit-logon",
            "POST",
            format!("/autodiscover/autodiscover.json?@evil.example/mapi/emsmdb?&{email}"),
        ),
        // ProxyShell into PowerShell with X-Rps-CAT (CVE-2021-34523).
        (
            "proxyshell-explicit-logon",
            "POST",
            format!("/autodiscover/autodiscover.json?a=x@evil.example/powershell/?X-Rps-CAT={FAKE_CAT}&{email}"),
        ),
        (
            "proxyshell-rps-cat",
            "POST",
            format!("/powershell/?X-Rps-CAT={FAKE_CAT}"),
        ),
        // ProxyNotShell (CVE-2022-41040).
        (
            "proxyshell-explicit-logon",
            "POST",
            "/autodiscover/autodiscover.json?@evil.example/owa/&Email=autodiscover/autodiscover.json?@evil.example&Protocol=XYZ&FooProtocol=Powershell".to_string(),
        ),
        (
            "proxynotshell-autodiscover-powershell",
            "POST",
            "/autodiscover/autodiscover.json?x=1/PowerShell?serializationLevel=Full;clientApplication=ManagementShell".to_string(),
        ),
        // OWASSRF (CVE-2022-41080).
        (
            "owassrf-powershell",
            "POST",
            "/owa/mastermailbox%40outlook.com/powershell".to_string(),
        ),
        (
            "owassrf-powershell",
            "POST",
            "/owa/alice@lab.com/PowerShell?serializationLevel=Full;ExchClientVer=15.2.922.7;clientApplication=ManagementShell".to_string(),
        ),
        (
            "owassrf-powershell",
            "POST",
            "/ecp/alice@lab.com/powershell".to_string(),
        ),
    ]
}

/// `target` as ("/<first segment>/", rest): the route stays as it is.
fn split_route(target: &str) -> (&str, &str) {
    let end = target[1..].find('/').map_or(target.len(), |i| i + 2);
    target.split_at(end)
}

/// Percent-encodes the letters, `@` and `/` of `tail` (`double`: twice),
/// leaving existing escapes as they are (`double`: escaping their `%`).
fn encode(tail: &str, double: bool) -> String {
    let b = tail.as_bytes();
    let mut out = String::new();
    let pct = if double { "%25" } else { "%" };
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c == b'%'
            && b.get(i + 1).is_some_and(u8::is_ascii_hexdigit)
            && b.get(i + 2).is_some_and(u8::is_ascii_hexdigit)
        {
            out.push_str(pct);
            out.push_str(&tail[i + 1..i + 3]);
            i += 3;
            continue;
        }
        if c.is_ascii_alphabetic() || c == b'@' || c == b'/' {
            out.push_str(&format!("{pct}{c:02X}"));
        } else {
            out.push(c as char);
        }
        i += 1;
    }
    out
}

fn mixed_case(t: &str) -> String {
    t.chars()
        .enumerate()
        .map(|(i, c)| {
            if i % 2 == 0 {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            }
        })
        .collect()
}

/// `;v=1` after every segment of the path's tail, `;` between query
/// parameters.
fn params(t: &str) -> String {
    let (route, tail) = split_route(t);
    let (path, query) = match tail.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (tail, None),
    };
    let mut out = format!("{route}{};v=1", path.replace('/', ";v=1/"));
    if let Some(q) = query {
        out.push('?');
        out.push_str(&q.replace('&', ";"));
    }
    out
}

/// Every encoding of a path shape.
fn encodings(target: &str) -> Vec<(&'static str, String, Via)> {
    let (route, tail) = split_route(target);
    vec![
        ("plain", target.to_string(), Via::H1),
        (
            "percent",
            format!("{route}{}", encode(tail, false)),
            Via::H1,
        ),
        (
            "double percent",
            format!("{route}{}", encode(tail, true)),
            Via::H1,
        ),
        ("mixed case", mixed_case(target), Via::H1),
        ("; parameters", params(target), Via::H1),
        (
            "backslashes",
            format!("{route}{}", tail.replace('/', "\\")),
            Via::H1,
        ),
        (
            "repeated slashes",
            format!("{route}/{}", tail.replace('/', "//")),
            Via::H1,
        ),
        ("absolute form", target.to_string(), Via::Absolute),
        ("HTTP/2", target.to_string(), Via::H2),
    ]
}

/// An X-BackEndCookie value as Exchange writes one: anchor, then base64 of
/// the entry with every byte inverted.
fn backend_cookie(anchor: &str, entry: &str) -> String {
    let inverted: Vec<u8> = entry.bytes().map(|b| b ^ 0xff).collect();
    format!(
        "{anchor}={}",
        base64::engine::general_purpose::STANDARD.encode(inverted)
    )
}

/// Header lines, as (name, value).
type Headers = Vec<(String, String)>;

/// A header or cookie shape: (rule, method, target, headers).
type HeaderShape = (&'static str, &'static str, &'static str, Headers);

/// Header and cookie shapes.
fn header_shapes() -> Vec<HeaderShape> {
    let h = |k: &str, v: &str| vec![(k.to_string(), v.to_string())];
    let forged = backend_cookie(
        "alice@lab.com",
        "Server~localhost/ecp/x.js?~1942062522~2026-01-01T00:00:00",
    );
    vec![
        // ProxyLogon (CVE-2021-26855): the SSRF's cookies.
        (
            "proxylogon-anonresource",
            "GET",
            "/ecp/x.js",
            h("Cookie", "X-AnonResource=true; X-AnonResource-Backend=localhost/ecp/default.flt?~3; X-BEResource=localhost/owa/auth/logon.aspx?~3;"),
        ),
        (
            "proxylogon-beresource",
            "POST",
            "/ecp/x.js",
            h("Cookie", "X-BEResource=Administrator@localhost:444/ecp/proxyLogon.ecp?~1942062522"),
        ),
        (
            "proxylogon-anonresource",
            "GET",
            "/owa/auth/x.js",
            h("Cookie", "X-AnonResource=true; X-AnonResource-Backend=127.0.0.1/ecp/default.flt?~3"),
        ),
        (
            "proxylogon-anonresource",
            "GET",
            "/ecp/y.js",
            h("X-AnonResource-Backend", "localhost/ecp/default.flt?~3"),
        ),
        (
            "proxylogon-beresource",
            "GET",
            "/ecp/x.js",
            h("Cookie", "X-BEResource=localhost%2Fowa%2Fauth%2Flogon.aspx%3F~3"),
        ),
        (
            "proxylogon-backendcookie",
            "POST",
            "/EWS/Exchange.asmx",
            h("Cookie", &format!("X-BackEndCookie={forged}")),
        ),
        (
            "proxylogon-backendcookie",
            "GET",
            "/owa/",
            h("Cookie", "X-BackEndCookie=S-1-5-21-1-2-3-500=localhost/ecp/x~1"),
        ),
        // Internal identity and routing headers.
        (
            "internal-routing-headers",
            "GET",
            "/owa/",
            h("X-CommonAccessToken", FAKE_CAT),
        ),
        ("internal-routing-headers", "GET", "/ecp/", h("X-IsFromCafe", "1")),
        (
            "internal-routing-headers",
            "GET",
            "/owa/",
            h("X-CalculatedBETarget", "localhost"),
        ),
        (
            "internal-routing-headers",
            "GET",
            "/ecp/",
            h("msExchProxyUri", "https://localhost/ecp/"),
        ),
    ]
}

/// Every spelling of a header shape.
fn spellings(headers: &[(String, String)]) -> Vec<(&'static str, Headers, Via)> {
    let map = |f: &dyn Fn(&str) -> String, g: &dyn Fn(&str) -> String| {
        headers
            .iter()
            .map(|(k, v)| (f(k), g(v)))
            .collect::<Vec<_>>()
    };
    let same = |s: &str| s.to_string();
    let upper = |s: &str| s.to_ascii_uppercase();
    let lower = |s: &str| s.to_ascii_lowercase();
    // Cookies one per Cookie field, after a harmless one and a `,`.
    let mut split = vec![("Cookie".to_string(), "ClientId=ABC".to_string())];
    for (k, v) in headers {
        if k.eq_ignore_ascii_case("cookie") {
            for pair in v.split(';').map(str::trim).filter(|p| !p.is_empty()) {
                split.push(("cookie".to_string(), format!("a=1, {pair}")));
            }
        } else {
            split.push((k.clone(), v.clone()));
        }
    }
    vec![
        ("as written", map(&same, &same), Via::H1),
        ("upper case", map(&upper, &upper), Via::H1),
        ("lower case", map(&lower, &lower), Via::H1),
        ("split over Cookie fields", split, Via::H1),
        ("HTTP/2", map(&lower, &same), Via::H2),
    ]
}

fn exploit_corpus() -> Vec<(&'static str, Case)> {
    let mut cases = Vec::new();
    for (rule, method, target) in path_shapes() {
        for (how, t, via) in encodings(&target) {
            cases.push((
                rule,
                Case {
                    what: format!("{rule}: {method} {target} ({how}: {t})"),
                    method,
                    target: t,
                    headers: vec![],
                    via,
                },
            ));
        }
    }
    for (rule, method, target, headers) in header_shapes() {
        for (how, h, via) in spellings(&headers) {
            cases.push((
                rule,
                Case {
                    what: format!("{rule}: {method} {target} {headers:?} ({how})"),
                    method,
                    target: target.to_string(),
                    headers: h,
                    via,
                },
            ));
        }
    }
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_exploit_shapes_are_refused_in_every_encoding_and_reach_no_member() {
    let lab = echo_lab("").await;
    // One series per rule from the first scrape, at 0.
    let (_, text) = http_get(lab.addrs.admin, "/metrics").await.unwrap();
    for rule in RULES.iter().chain(&["allow-from"]) {
        let series = format!("casarray_blocked_requests_total{{rule=\"{rule}\"}} 0");
        assert!(text.contains(&series), "{series} missing");
    }

    let corpus = exploit_corpus();
    let mut h2 = H2::connect(&lab.h2).await.unwrap();
    let before = lab.member_requests();
    let mut wrong = Vec::new();
    // Every failing case at once, not only the first.
    for (_, case) in &corpus {
        let (status, body) = send(&lab, &mut h2, case).await;
        if status != 403 {
            wrong.push(format!("{status} {body:?} for {}", case.what));
        }
    }
    assert!(wrong.is_empty(), "not refused:\n{}", wrong.join("\n"));
    assert_eq!(
        lab.member_requests(),
        before,
        "a refused request reached the member"
    );

    // Counted per rule: the rule the case was written for, or an earlier
    // one that also matches (a ProxyShell URL naming PowerShell).
    let mut total = 0.0;
    for rule in RULES {
        total += metric(
            lab.addrs.admin,
            "casarray_blocked_requests_total",
            &[("rule", rule)],
        )
        .await;
    }
    assert_eq!(total as usize, corpus.len());
    for rule in RULES {
        let n = metric(
            lab.addrs.admin,
            "casarray_blocked_requests_total",
            &[("rule", rule)],
        )
        .await;
        assert!(n > 0.0, "no case for {rule}");
    }
    println!(
        "exploit corpus: {} requests, all 403, 0 reached the member",
        corpus.len()
    );

    // The access log names the rule on each refused request.
    let want = corpus.len();
    wait_until(
        "an access line per refused request",
        Duration::from_secs(20),
        || {
            let n = lab
                .access_lines()
                .iter()
                .filter(|l| l["fields"]["rule"].is_string())
                .count();
            async move { n >= want }
        },
    )
    .await;
    let lines = lab.access_lines();
    let owassrf = lines
        .iter()
        .find(|l| l["fields"]["path"] == "/owa/mastermailbox%40outlook.com/powershell")
        .expect("the OWASSRF line");
    assert_eq!(owassrf["fields"]["rule"], "owassrf-powershell");
    assert_eq!(owassrf["fields"]["status"], 403);
    assert_eq!(owassrf["fields"]["service"], "owa");
    assert_eq!(owassrf["fields"]["member"], "none");
}

// ---------------------------------------------------------------------------
// The legitimate corpus.

fn legit_corpus() -> Vec<Case> {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice@lab.com:Alice!lab1")
    );
    let backend = backend_cookie(
        "S-1-5-21-46962994-2066588249-799565096-1105",
        "Database~e6f4cf03-a2d3-456b-9140-3ba771f0aca8~~2026-10-08T09:14:09",
    );
    let ecp_cookies = format!(
        "X-BEResource=ex1.lab.local~1942062522; X-BackEndCookie={backend}; msExchEcpCanary=abc"
    );
    let mailbox = "8f0e2a1b-1111-2222-3333-444455556666@lab.com";
    let c = |method: &'static str, target: &str, headers: &[(&str, &str)]| Case {
        what: format!("{method} {target}"),
        method,
        target: target.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        via: Via::H1,
    };
    let ews_cookie =
        format!("X-BackEndCookie={backend}; exchangecookie=ddb8c383aef34c7694132aa679744feb");
    vec![
        // OWA: logon page, form post, inbox, an item, a shared mailbox.
        c("GET", "/owa/", &[]),
        c("GET", "/owa/auth/logon.aspx?url=https%3a%2f%2fmail.lab.com%2fowa%2f&reason=0", &[]),
        c(
            "POST",
            "/owa/auth.owa",
            &[("content-type", "application/x-www-form-urlencoded")],
        ),
        c("GET", "/owa/?ae=Item&id=RgAAAAAhh%2bXzAAAA%2fwAAAA%3d%3d&t=IPM.Note", &[("cookie", "cadata=sealed; X-BEResource=ex1.lab.local~1942062522")]),
        c("GET", "/owa/alice@lab.com/", &[]),
        c("GET", "/owa/auth/15.2.1118/themes/resources/favicon.ico", &[]),
        c("POST", "/owa/service.svc?action=GetAttachmentPreviews&app=Mail&n=107", &[("x-owa-canary", "abc"), ("action", "GetAttachmentPreviews")]),
        // ECP.
        c("GET", "/ecp/", &[("cookie", &ecp_cookies)]),
        c("GET", "/ecp/PersonalSettings/HomePage.aspx?showhelp=false&", &[("cookie", &ecp_cookies)]),
        // EWS.
        c(
            "POST",
            "/EWS/Exchange.asmx",
            &[
                ("authorization", &basic),
                ("content-type", "text/xml; charset=utf-8"),
                ("x-anchormailbox", "alice@lab.com"),
                ("x-preferserveraffinity", "true"),
                ("cookie", &ews_cookie),
            ],
        ),
        c("GET", "/EWS/Services.wsdl", &[]),
        // Autodiscover: POX, SOAP, JSON (Outlook mobile, v2).
        c("POST", "/Autodiscover/Autodiscover.xml", &[("content-type", "text/xml"), ("authorization", &basic)]),
        c("POST", "/autodiscover/autodiscover.svc", &[("content-type", "text/xml; charset=utf-8"), ("soapaction", "\"http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings\"")]),
        c("GET", "/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=EWS", &[]),
        c("GET", "/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=ActiveSync&RedirectCount=1", &[]),
        c("GET", "/autodiscover/autodiscover.json?Email=alice@lab.com&Protocol=EWS&RedirectCount=1", &[]),
        c("GET", "/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=AutodiscoverV1", &[("user-agent", "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.16827; Pro)")]),
        // ActiveSync.
        c("OPTIONS", "/Microsoft-Server-ActiveSync?User=alice&DeviceId=ABCDEF0123456789&DeviceType=iPhone", &[("authorization", &basic)]),
        c(
            "POST",
            "/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice%40lab.com&DeviceId=ABCDEF0123456789&DeviceType=iPhone",
            &[("authorization", &basic), ("content-type", "application/vnd.ms-sync.wbxml"), ("ms-asprotocolversion", "16.1")],
        ),
        // MAPI/HTTP.
        c(
            "POST",
            &format!("/mapi/emsmdb/?MailboxId={mailbox}"),
            &[("content-type", "application/mapi-http"), ("x-requesttype", "Connect"), ("x-clientapplication", "Outlook/16.0.16827.20166")],
        ),
        c("POST", &format!("/mapi/nspi/?MailboxId={mailbox}"), &[("content-type", "application/mapi-http"), ("x-requesttype", "Bind")]),
        // Outlook Anywhere.
        c("RPC_IN_DATA", "/rpc/rpcproxy.dll?ex1.lab.local:6001", &[("content-type", "application/rpc")]),
        c("RPC_OUT_DATA", "/rpc/rpcproxy.dll?8f0e2a1b-1111-2222-3333-444455556666@lab.com:6001", &[("content-type", "application/rpc")]),
        // OAB.
        c("GET", "/OAB/9f0e2a1b-1111-2222-3333-444455556666/oab.xml", &[]),
        // Remote PowerShell from loopback.
        c(
            "POST",
            "/PowerShell?serializationLevel=Full;ExchClientVer=15.2.1118.7;clientApplication=ManagementShell;TargetServer=;PSVersion=5.1.17763.1007",
            &[("content-type", "application/soap+xml;charset=UTF-8"), ("authorization", "Kerberos YIIKerberosTicket")],
        ),
        c("GET", "/PowerShell/", &[]),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_real_clients_send_passes_untouched() {
    let lab = echo_lab("").await;
    let mut h2 = H2::connect(&lab.h2).await.unwrap();
    let mut corpus = legit_corpus();
    let h2_cases: Vec<Case> = corpus
        .iter()
        .filter(|c| !c.method.starts_with("RPC_"))
        .map(|c| Case {
            what: format!("{} (HTTP/2)", c.what),
            via: Via::H2,
            ..c.clone()
        })
        .collect();
    corpus.extend(h2_cases);
    let before = lab.member_requests();
    let mut wrong = Vec::new();
    for case in &corpus {
        let (status, body) = send(&lab, &mut h2, case).await;
        let echoed: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        if status != 200 || echoed["uri"] != case.target.as_str() {
            wrong.push(format!("{status} {body} for {}", case.what));
        }
    }
    assert!(wrong.is_empty(), "false positives:\n{}", wrong.join("\n"));
    assert_eq!(lab.member_requests() - before, corpus.len() as u64);
    let mut blocked = 0.0;
    for rule in RULES.iter().chain(&["allow-from"]) {
        blocked += metric(
            lab.addrs.admin,
            "casarray_blocked_requests_total",
            &[("rule", rule)],
        )
        .await;
    }
    assert_eq!(blocked, 0.0);
    println!(
        "legitimate corpus: {} requests, 0 false positives",
        corpus.len()
    );

    // Server names a client echoes are removed, and the request goes on.
    let r = lab
        .client
        .send(build(
            "GET",
            "/owa/",
            &[
                ("X-FEServer", "EX9"),
                ("X-BEServer", "EX9"),
                ("X-AnchorMailbox", "alice@lab.com"),
            ],
            "",
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let echoed: serde_json::Value = serde_json::from_slice(r.body()).unwrap();
    assert!(echoed["headers"]["x-feserver"].is_null() && echoed["headers"]["x-beserver"].is_null());
    assert_eq!(echoed["headers"]["x-anchormailbox"], "alice@lab.com");
    // A normal access line carries no rule.
    let lines = lab.access_lines();
    assert!(!lines.is_empty() && lines.iter().all(|l| l["fields"]["rule"].is_null()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_turned_off_lets_its_shape_through_and_shields_off_lets_all() {
    let lab = echo_lab("[security]\ndisabled_rules = [\"owassrf-powershell\"]\n").await;
    let r = lab.client.get("/owa/x@y.example/powershell").await.unwrap();
    assert_eq!(r.status(), 200);
    let r = lab
        .client
        .send(build(
            "GET",
            "/ecp/x.js",
            &[("Cookie", "X-AnonResource=true")],
            "",
        ))
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    let lab = echo_lab("[security]\nexchange_shields = false\n").await;
    for case in exploit_corpus()
        .into_iter()
        .filter(|(_, c)| c.via == Via::H1)
        .take(20)
    {
        let r = lab.client.send(request(&case.1)).await.unwrap();
        assert_eq!(r.status(), 200, "{}", case.1.what);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allow_from_refuses_addresses_outside_the_ranges() {
    let services = "[[service]]\nname = \"owa\"\n\n[[service]]\nname = \"powershell\"\nallow_from = [\"127.0.0.1/32\", \"::1\"]\n";
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let member = EchoBackend::start("EX1").await;
    let config = dir.path().join("casarray.toml");
    std::fs::write(
        &config,
        config_toml(&certs, &[("EX1", member.addr)], services),
    )
    .unwrap();
    let (_array, addrs) = spawn_array(&config);
    wait_until("EX1 up", Duration::from_secs(30), || async {
        member_up(addrs.admin, "EX1", "powershell").await
            && member_up(addrs.admin, "EX1", "owa").await
    })
    .await;
    let client = Client::h1(addrs.https, &certs.ca_pem);
    let inside = connect_from(&client, ip("127.0.0.1"))
        .await
        .unwrap()
        .send(get("/PowerShell/"))
        .await
        .unwrap();
    assert_eq!(inside.status(), 200);
    let before = member.state.requests.load(Ordering::SeqCst);
    let mut outside = connect_from(&client, ip("127.0.0.2")).await.unwrap();
    let r = outside.send(get("/PowerShell/")).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(text(&r).contains("not open to your address"));
    assert_eq!(member.state.requests.load(Ordering::SeqCst), before);
    // Other services stay open to it.
    assert_eq!(outside.send(get("/owa/")).await.unwrap().status(), 200);
    assert_eq!(
        metric(
            addrs.admin,
            "casarray_blocked_requests_total",
            &[("rule", "allow-from")]
        )
        .await,
        1.0
    );
}

// ---------------------------------------------------------------------------
// Lockout against a real mock mailbox server.

struct MockLab {
    _dir: tempfile::TempDir,
    _mock: Proc,
    array: Proc,
    config: std::path::PathBuf,
    addrs: ArrayAddrs,
    client: Client,
}

async fn mock_lab(security: &str) -> MockLab {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let key = certs.key.to_str().unwrap().to_string();
    let (mock, addr) = spawn_mock("EX1", &store, &["--shared-key", &key]);
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &[("EX1", addr)], security)).unwrap();
    let (array, addrs) = spawn_array(&config);
    wait_until("EX1 up", Duration::from_secs(30), || async {
        member_up(addrs.admin, "EX1", "ews").await && member_up(addrs.admin, "EX1", "owa").await
    })
    .await;
    MockLab {
        client: Client::h1(addrs.https, &certs.ca_pem),
        _dir: dir,
        _mock: mock,
        array,
        config,
        addrs,
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

fn ews_get(authorization: &str) -> Request<Full<Bytes>> {
    build(
        "GET",
        "/EWS/Exchange.asmx",
        &[("authorization", authorization)],
        "",
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spray_of_200_wrong_passwords_is_cut_at_20_while_alice_logs_on_from_her_address() {
    let lab = mock_lab("").await;
    let alice = basic("alice@lab.com", "Alice!lab1");
    let mut home = connect_from(&lab.client, ip("127.0.0.2")).await.unwrap();
    assert_eq!(home.send(ews_get(&alice)).await.unwrap().status(), 200);

    let mut attacker = connect_from(&lab.client, ip("127.0.0.1")).await.unwrap();
    let mut statuses = Vec::new();
    for i in 0..200 {
        let r = attacker
            .send(ews_get(&basic("LAB\\alice", &format!("guess-{i}"))))
            .await
            .unwrap();
        if r.status() == 429 {
            let retry: u64 = header(&r, "retry-after").parse().unwrap();
            assert!((1..=900).contains(&retry), "Retry-After {retry}");
        }
        statuses.push(r.status().as_u16());
        if i % 50 == 49 {
            // Alice, from where she logged on before, is not locked out.
            let r = home.send(ews_get(&alice)).await.unwrap();
            assert_eq!(
                r.status(),
                200,
                "alice from 127.0.0.2 after {} guesses",
                i + 1
            );
        }
    }
    let refused = statuses.iter().filter(|&&s| s == 401).count();
    let locked = statuses.iter().filter(|&&s| s == 429).count();
    assert_eq!((refused, locked), (20, 180), "{statuses:?}");
    assert!(statuses[..20].iter().all(|&s| s == 401) && statuses[20..].iter().all(|&s| s == 429));
    // Only the 20 reached the member.
    let admin = lab.addrs.admin;
    let m = |name: &'static str, labels: &'static [(&'static str, &'static str)]| {
        metric(admin, name, labels)
    };
    assert_eq!(
        m(
            "casarray_requests_total",
            &[("service", "ews"), ("member", "EX1"), ("code", "401")]
        )
        .await,
        20.0
    );
    assert_eq!(
        m("casarray_failed_logons_total", &[("kind", "basic")]).await,
        20.0
    );
    assert_eq!(
        m("casarray_lockouts_total", &[("scope", "address")]).await,
        1.0
    );
    assert_eq!(
        m(
            "casarray_locked_out_requests_total",
            &[("scope", "address")]
        )
        .await,
        180.0
    );
    // Alice herself is now locked for addresses that never logged her on
    // (smart lockout); other users are not.
    assert_eq!(
        m("casarray_lockouts_total", &[("scope", "user")]).await,
        1.0
    );
    let mut elsewhere = connect_from(&lab.client, ip("127.0.0.3")).await.unwrap();
    assert_eq!(elsewhere.send(ews_get(&alice)).await.unwrap().status(), 429);
    let bob = basic("bob@lab.com", "Bob!lab1");
    assert_eq!(elsewhere.send(ews_get(&bob)).await.unwrap().status(), 200);
    assert_eq!(home.send(ews_get(&alice)).await.unwrap().status(), 200);
    assert!(m("casarray_lockout_entries", &[("table", "known_good")]).await >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lockout_survives_a_reload_and_hsts_is_sent() {
    let lab = mock_lab("[security]\nlockout_failures = 2\nhsts_max_age = \"1d\"\n").await;
    let mut attacker = connect_from(&lab.client, ip("127.0.0.1")).await.unwrap();
    let wrong = basic("bob@lab.com", "wrong");
    assert_eq!(attacker.send(ews_get(&wrong)).await.unwrap().status(), 401);
    assert_eq!(attacker.send(ews_get(&wrong)).await.unwrap().status(), 401);
    assert_eq!(attacker.send(ews_get(&wrong)).await.unwrap().status(), 429);

    // A reload (the config rewritten, then SIGHUP) keeps the lockout.
    let text = std::fs::read_to_string(&lab.config).unwrap();
    std::fs::write(&lab.config, format!("{text}\n# reloaded\n")).unwrap();
    lab.array.signal(libc::SIGHUP);
    let admin = lab.addrs.admin;
    wait_until(
        "a successful reload",
        Duration::from_secs(20),
        || async move {
            metric(
                admin,
                "casarray_config_reloads_total",
                &[("result", "success")],
            )
            .await
                >= 1.0
        },
    )
    .await;
    let mut again = connect_from(&lab.client, ip("127.0.0.1")).await.unwrap();
    assert_eq!(again.send(ews_get(&wrong)).await.unwrap().status(), 429);

    // HSTS on the members' answers.
    let mut alice = connect_from(&lab.client, ip("127.0.0.2")).await.unwrap();
    let r = alice
        .send(ews_get(&basic("alice@lab.com", "Alice!lab1")))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "strict-transport-security"), "max-age=86400");
}

fn owa_form(user: &str, password: &str) -> Request<Full<Bytes>> {
    let form = format!(
        "destination=https%3A%2F%2Fmail.lab.com%2Fowa%2F&flags=4&forcedownlevel=0&username={}&password={}&isUtf8=1",
        user.replace('@', "%40").replace('\\', "%5C"),
        password.replace('!', "%21")
    );
    build(
        "POST",
        "/owa/auth.owa",
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owa_form_spraying_across_users_is_cut_and_the_form_reaches_the_member_whole() {
    let lab = mock_lab("[security]\nlockout_failures = 5\n").await;
    let mut attacker = connect_from(&lab.client, ip("127.0.0.1")).await.unwrap();
    let mut statuses = Vec::new();
    for i in 0..12 {
        let r = attacker
            .send(owa_form(&format!("user{i}@lab.com"), "Spring2026!"))
            .await
            .unwrap();
        if r.status() == 302 {
            assert!(header(&r, "location").contains("reason=2"), "{r:?}");
        }
        statuses.push(r.status().as_u16());
    }
    assert_eq!(
        statuses,
        [302, 302, 302, 302, 302, 429, 429, 429, 429, 429, 429, 429]
    );
    assert_eq!(
        metric(
            lab.addrs.admin,
            "casarray_failed_logons_total",
            &[("kind", "owa-form")]
        )
        .await,
        5.0
    );
    // From another address alice's form logon works: the form went through
    // whole (the mock read user and password from it).
    let mut alice = connect_from(&lab.client, ip("127.0.0.2")).await.unwrap();
    let r = alice
        .send(owa_form("alice@lab.com", "Alice!lab1"))
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    assert!(!header(&r, "location").contains("reason=2"), "{r:?}");
    assert!(header(&r, "set-cookie").starts_with("cadata="));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_failures_count_and_a_lockout_ends_after_lockout_time() {
    use casarray::mock::ntlm::{self, Scheme};
    let lab = mock_lab("[security]\nlockout_failures = 3\nlockout_time = \"2s\"\n").await;
    // A failed NTLM login: NEGOTIATE, CHALLENGE, AUTHENTICATE with a wrong
    // password, on one connection.
    async fn failed_ntlm(lab: &MockLab) -> u16 {
        let mut conn = connect_from(&lab.client, ip("127.0.0.1")).await.unwrap();
        let leg1 = ntlm::header_value(Scheme::Ntlm, &ntlm::negotiate_message());
        let r = conn.send(ews_get(&leg1)).await.unwrap();
        if r.status() != 401 {
            return r.status().as_u16();
        }
        let offer = r
            .headers()
            .get_all("www-authenticate")
            .iter()
            .filter_map(|v| ntlm::parse_header(v.to_str().ok()?))
            .find(|(s, _)| *s == Scheme::Ntlm)
            .expect("a CHALLENGE");
        let challenge = ntlm::parse_challenge(&offer.1).expect("a Type 2 message");
        let leg3 = ntlm::header_value(
            Scheme::Ntlm,
            &ntlm::authenticate_message("alice", "LAB", "wrong", challenge),
        );
        conn.send(ews_get(&leg3)).await.unwrap().status().as_u16()
    }
    for i in 0..3 {
        assert_eq!(failed_ntlm(&lab).await, 401, "failure {i}");
    }
    assert_eq!(
        metric(
            lab.addrs.admin,
            "casarray_failed_logons_total",
            &[("kind", "ntlm")]
        )
        .await,
        3.0
    );
    assert_eq!(failed_ntlm(&lab).await, 429);
    // The lock ends after lockout_time (2 s).
    tokio::time::sleep(Duration::from_millis(3100)).await;
    assert_eq!(failed_ntlm(&lab).await, 401);
}

// ---------------------------------------------------------------------------
// Fuzz inputs kept for the shields_normalize target.

#[test]
fn kept_fuzz_inputs_pass_the_shields_check() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut ran = 0;
    for kind in ["seeds", "regressions"] {
        let dir = root.join(kind).join("shields_normalize");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                !p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            })
            .collect();
        files.sort();
        for f in files {
            let data = std::fs::read(&f).unwrap();
            let result = std::panic::catch_unwind(|| fuzz_checks::shields_normalize(&data));
            assert!(result.is_ok(), "{} fails its check", f.display());
            ran += 1;
        }
    }
    assert!(ran > 0, "no inputs under fuzz/*/shields_normalize");
}
