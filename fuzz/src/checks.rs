//! What must hold for any input, one function per fuzz target.
//!
//! Each function panics when a property fails; a panic is what libFuzzer
//! reports as a crash. This file is also compiled into the main crate's
//! tests (tests/abuse.rs and tests/shields.rs include it by path), so it
//! uses nothing but
//! `casarray`, `bytes`, `http` and `std`.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use bytes::BytesMut;
use casarray::config::{self, exchange_profile, Profile};
use casarray::proxy::headers::strip_hop_by_hop;
use casarray::rewrite::{AutodiscoverRewriter, MemberIdentity, RewritePlan};
use casarray::snapshot::router::{Route, Router};
use casarray::snapshot::Snapshot;
use http::header::{HeaderMap, HeaderName, HeaderValue};

/// The array's public names in the fixed config of these checks.
const NAMES: [&str; 2] = ["mail.lab.com", "autodiscover.lab.com"];

/// A directory holding the files a config may name (`mail.crt`,
/// `mail.key`, `admin.token`: only their existence is checked), shared by
/// every run so that none leaves a directory behind; its config path.
fn config_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let dir = std::env::temp_dir().join("casarray-fuzz-config");
        std::fs::create_dir_all(&dir).expect("temp dir for the fuzz config");
        for f in ["mail.crt", "mail.key", "admin.token"] {
            std::fs::write(dir.join(f), b"not read by config::parse\n").expect("fuzz config file");
        }
        dir.join("casarray.toml")
    })
}

// ---------------------------------------------------------------------------
// config_parse

/// `config::parse` and `config::parse_array` on any text: no panic; an
/// error names the file, a line and a column inside the text; a config
/// that parses satisfies the model's documented invariants, and parsing is
/// deterministic.
pub fn config_parse(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = config_path();
    let first = config::parse(&text, path);
    match &first {
        Ok(cfg) => config_invariants(cfg),
        Err(e) => error_invariants(e, &text, path),
    }
    let second = config::parse(&text, path);
    match (&first, &second) {
        (Ok(a), Ok(b)) => assert_eq!(a, b, "parse is not deterministic"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("parse is not deterministic"),
    }
    match config::parse_array(&text, path) {
        Ok((array, _)) => {
            assert!(!array.public_names.is_empty(), "no public name");
            if let Ok(cfg) = &first {
                assert_eq!(&cfg.array, &array, "parse_array disagrees with parse");
            }
        }
        Err(e) => {
            error_invariants(&e, &text, path);
            // A config whose [array] table is bad cannot parse whole.
            if let Ok(cfg) = &first {
                panic!("parse accepted what parse_array refused ({e}): {cfg:?}");
            }
        }
    }
}

fn error_invariants(e: &config::ConfigError, text: &str, path: &Path) {
    let shown = e.to_string();
    assert!(
        shown.starts_with(&path.display().to_string()),
        "error does not name the file: {shown}"
    );
    assert_eq!(e.path(), path);
    let at = e
        .position()
        .unwrap_or_else(|| panic!("a parse error without a position: {shown}"));
    let lines = text.split('\n').count();
    assert!(
        at.line >= 1 && at.col >= 1 && at.line <= lines,
        "position {}:{} outside the text ({lines} lines): {shown}",
        at.line,
        at.col
    );
    assert!(!shown.contains('\n'), "a multi-line error: {shown:?}");
}

fn config_invariants(cfg: &config::Config) {
    assert!(!cfg.members.is_empty(), "a config without members");
    assert!(!cfg.services.is_empty(), "a config without services");
    assert!(!cfg.array.public_names.is_empty(), "no public name");
    assert!(cfg.health.timeout < cfg.health.interval, "{:?}", cfg.health);
    assert!(
        cfg.health.rise >= 1 && cfg.health.fall >= 1,
        "{:?}",
        cfg.health
    );
    assert!(cfg.proxy.max_connections >= 1, "{:?}", cfg.proxy);
    assert!(cfg.proxy.max_header_bytes >= 1, "{:?}", cfg.proxy);
    assert!(cfg.proxy.h2_max_concurrent_streams >= 1, "{:?}", cfg.proxy);
    for (i, m) in cfg.members.iter().enumerate() {
        assert!((1..=100).contains(&m.weight), "{m:?}");
        assert!(
            !cfg.members[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&m.name)),
            "duplicate member {}",
            m.name
        );
    }
    for (i, s) in cfg.services.iter().enumerate() {
        assert!(s.prefix.starts_with('/'), "{s:?}");
        assert!(
            s.prefix == "/" || !s.prefix.ends_with('/'),
            "prefix with a trailing /: {s:?}"
        );
        assert!(
            !cfg.services[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&s.name)),
            "duplicate service {}",
            s.name
        );
    }
}

// ---------------------------------------------------------------------------
// rewrite_chunks

/// Members whose names overlap (`ex1` is a prefix of `ex1.lab` and
/// `ex1.lab.local`), one named by a single letter, one on IPv6.
fn plan() -> &'static Arc<RewritePlan> {
    static PLAN: OnceLock<Arc<RewritePlan>> = OnceLock::new();
    PLAN.get_or_init(|| {
        let member = |name: &str, fqdn: &str, address: &str| MemberIdentity {
            name: name.into(),
            fqdn: fqdn.into(),
            address: address.parse().expect("fixed address"),
        };
        Arc::new(RewritePlan::new(
            &[
                member("EX1", "ex1.lab.local", "127.0.0.1:9001"),
                member("EX10", "ex1.lab", "[::1]:9010"),
                member("E", "e.x", "10.0.0.1:443"),
            ],
            NAMES[0],
            "CASARRAY01",
            &[
                ("DB01".into(), Some("outlook.lab.com".into())),
                ("DB02".into(), None),
            ],
        ))
    })
}

/// The element limit of the Autodiscover rewriter under test: small, so
/// that fuzz-sized inputs reach it.
const MAX_ELEMENT: usize = 256;

/// Splits `data` into a chunking plan and a text: byte 0 is the number of
/// chunk lengths that follow (at most 16), then those lengths (0 allowed),
/// used in turn; the rest is the text.
fn chunking(data: &[u8]) -> (Vec<usize>, &[u8]) {
    let Some((&n, rest)) = data.split_first() else {
        return (vec![1], data);
    };
    let n = usize::from(n % 17).min(rest.len());
    let (lens, text) = rest.split_at(n);
    let mut lens: Vec<usize> = lens.iter().map(|&l| usize::from(l)).collect();
    if lens.iter().all(|&l| l == 0) {
        lens.push(1);
    }
    (lens, text)
}

/// `text` cut by `lens`, used in turn (zero-length chunks included).
fn chunks<'a>(text: &'a [u8], lens: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut at = 0;
    let mut i = 0;
    // Each round either advances `at` or is one of the zero-length chunks,
    // and `lens` has a non-zero entry: bounded by len x lens.len().
    while at < text.len() {
        let l = lens[i % lens.len()];
        i += 1;
        let end = (at + l).min(text.len());
        out.push(&text[at..end]);
        at = end;
    }
    out
}

/// The streaming rewriters on any bytes cut into any chunks give exactly
/// what one pass over the whole text gives, keep back no more than they
/// document, and are ready for a new text after `finish`.
pub fn rewrite_chunks(data: &[u8]) {
    let (lens, text) = chunking(data);
    let pieces = chunks(text, &lens);
    let plan = plan();

    let mut whole = BytesMut::new();
    let whole_n = plan.rewrite(text, &mut whole);

    let mut s = plan.stream_rewriter();
    for round in 0..2 {
        let mut out = BytesMut::new();
        let mut n = 0;
        for p in &pieces {
            n += s.feed(p, &mut out);
            assert!(
                s.held_back() <= s.max_held_back(),
                "held back {} > {}",
                s.held_back(),
                s.max_held_back()
            );
        }
        n += s.finish(&mut out);
        assert_eq!(s.held_back(), 0);
        assert_eq!(
            &out[..],
            &whole[..],
            "stream rewrite (round {round}) differs from the whole-text rewrite"
        );
        assert_eq!(n, whole_n, "replacement count differs (round {round})");
    }

    let mut one = AutodiscoverRewriter::with_max_element(Arc::clone(plan), MAX_ELEMENT);
    let mut reference = BytesMut::new();
    let mut ref_n = one.feed(text, &mut reference);
    ref_n += one.finish(&mut reference);
    let mut a = AutodiscoverRewriter::with_max_element(Arc::clone(plan), MAX_ELEMENT);
    for round in 0..2 {
        let mut out = BytesMut::new();
        let mut n = 0;
        for p in &pieces {
            n += a.feed(p, &mut out);
            assert!(
                a.held_back() <= MAX_ELEMENT,
                "autodiscover holds back {} > {MAX_ELEMENT}",
                a.held_back()
            );
        }
        n += a.finish(&mut out);
        assert_eq!(a.held_back(), 0);
        assert_eq!(
            &out[..],
            &reference[..],
            "autodiscover rewrite (round {round}) depends on the chunking"
        );
        assert_eq!(n, ref_n, "autodiscover count differs (round {round})");
    }
}

// ---------------------------------------------------------------------------
// request_head

/// The router of the built-in Exchange profile.
fn router() -> &'static Router {
    static ROUTER: OnceLock<Router> = OnceLock::new();
    ROUTER.get_or_init(|| Router::new(&exchange_profile(Profile::Exchange2013)))
}

/// A snapshot of a minimal config naming the array `mail.lab.com` and
/// `autodiscover.lab.com`.
fn snapshot() -> &'static Snapshot {
    static SNAP: OnceLock<Snapshot> = OnceLock::new();
    SNAP.get_or_init(|| {
        let text = format!(
            "[array]\nname = \"CASARRAY01\"\nfqdn = \"{}\"\npublic_names = [\"{}\", \"{}\"]\n\n\
             [listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n\n\
             [tls]\ncert = \"mail.crt\"\nkey = \"mail.key\"\n\n\
             [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\nfqdn = \"ex1.lab.local\"\n",
            NAMES[0], NAMES[0], NAMES[1]
        );
        let cfg = config::parse(&text, config_path()).expect("the fixed config of the checks");
        let metrics = casarray::metrics::Metrics::new().expect("metrics");
        let registry = casarray::upstream::state::Registry::new();
        Snapshot::build(Arc::new(cfg), &registry, &metrics, None).expect("snapshot")
    })
}

/// The address clients connect to in these checks.
const LOCAL: &str = "127.0.0.1:443";

/// What a Host header may be, written independently of the array: a name
/// (one trailing dot ignored), an IPv4 address or an IPv6 address in
/// brackets, then optionally `:` and a port (1 to 5 digits, at most 65535).
/// `true`: one of the array's names, or the very address the client
/// connected to (`local`, port included when given); `false`: anything
/// else, well-formed or not.
fn reference_host(host: &str, local: SocketAddr) -> bool {
    let port_ok = |p: Option<&str>| match p {
        None => true,
        Some(p) => {
            !p.is_empty()
                && p.bytes().all(|b| b.is_ascii_digit())
                && p.parse::<u16>().is_ok_and(|p| p == local.port())
        }
    };
    if let Some(rest) = host.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        let port = match after {
            "" => None,
            a => match a.strip_prefix(':') {
                Some(p) => Some(p),
                None => return false,
            },
        };
        return port_ok(port) && v6.parse::<IpAddr>().is_ok_and(|ip| ip == local.ip());
    }
    let (name, port) = match host.rsplit_once(':') {
        Some((name, port)) => (name, Some(port)),
        None => (host, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) || p.parse::<u16>().is_err() {
            return false;
        }
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip == local.ip() && port_ok(port);
    }
    let bare = name.strip_suffix('.').unwrap_or(name);
    NAMES.iter().any(|n| n.eq_ignore_ascii_case(bare))
}

/// The request head checks: line 1 of the input is a path for the router,
/// line 2 a Host for the host check, the rest `name: value` header lines
/// for the hop-by-hop rules.
pub fn request_head(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let path = lines.next().unwrap_or("");
    let host = lines.next().unwrap_or("");
    check_route(path);
    check_host(host);
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    check_hop_by_hop(headers);
}

fn check_route(path: &str) {
    let r = router();
    let route = r.route(path);
    assert_eq!(route, r.route(&path.to_ascii_uppercase()), "case: {path:?}");
    assert_eq!(route, r.route(&path.to_ascii_lowercase()), "case: {path:?}");
    let services = exchange_profile(Profile::Exchange2013);
    match route {
        Route::Root => assert!(path.is_empty() || path == "/", "root: {path:?}"),
        Route::Service(i) => {
            let prefix = services[i].prefix.trim_end_matches('/').as_bytes();
            let p = path.as_bytes();
            assert!(
                p.len() >= prefix.len()
                    && p[..prefix.len()].eq_ignore_ascii_case(prefix)
                    && (p.len() == prefix.len() || p[prefix.len()] == b'/'),
                "{path:?} routed to {}",
                services[i].prefix
            );
            // The longest matching prefix wins.
            for s in &services {
                let other = s.prefix.trim_end_matches('/').as_bytes();
                let matches = p.len() >= other.len()
                    && p[..other.len()].eq_ignore_ascii_case(other)
                    && (p.len() == other.len() || p[other.len()] == b'/');
                assert!(
                    !matches || other.len() <= prefix.len(),
                    "{path:?}: {} is longer than {}",
                    s.prefix,
                    services[i].prefix
                );
            }
        }
        Route::NotFound => {
            for s in &services {
                let prefix = s.prefix.trim_end_matches('/').as_bytes();
                let p = path.as_bytes();
                assert!(
                    !(p.len() >= prefix.len()
                        && p[..prefix.len()].eq_ignore_ascii_case(prefix)
                        && (p.len() == prefix.len() || p[prefix.len()] == b'/')),
                    "{path:?} not routed to {}",
                    s.prefix
                );
            }
        }
    }
}

fn check_host(host: &str) {
    let snap = snapshot();
    let local: SocketAddr = LOCAL.parse().expect("fixed address");
    let accepted = snap.http.accepts_host(host, local);
    assert_eq!(
        accepted,
        snap.http.accepts_host(&host.to_ascii_uppercase(), local),
        "case: {host:?}"
    );
    let expected = reference_host(host, local);
    assert_eq!(
        accepted, expected,
        "host {host:?}: the array says {accepted}, the reference {expected}"
    );
}

/// The hop-by-hop names of RFC 9110 section 7.6.1 and their relatives.
const HOP: [&str; 9] = [
    "connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "proxy-authenticate",
    "proxy-authorization",
    "keep-alive",
    "proxy-connection",
];

fn check_hop_by_hop(mut headers: HeaderMap) {
    let named: Vec<String> = headers
        .get_all(http::header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    let before = headers.clone();
    strip_hop_by_hop(&mut headers);
    for (name, _) in &headers {
        let n = name.as_str();
        assert!(!HOP.contains(&n), "{n} kept");
        assert!(!n.starts_with("proxy-"), "{n} kept");
        assert!(
            !named.iter().any(|t| t == n),
            "{n} named by Connection, kept"
        );
    }
    for name in before.keys() {
        let n = name.as_str();
        let removable = HOP.contains(&n) || n.starts_with("proxy-") || named.iter().any(|t| t == n);
        if !removable {
            assert_eq!(
                before.get_all(name).iter().collect::<Vec<_>>(),
                headers.get_all(name).iter().collect::<Vec<_>>(),
                "{n} changed"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// shields_normalize

/// The Exchange shields on any input: line 1 is a request target, the
/// other lines header values (`cookie`, `authorization`, then headers the
/// rules look at, in turn). Normalizing the target never panics and gives
/// a fixed point (normalizing the result gives it back) whose path starts
/// with `/` and holds no `?`, never more than one byte longer than the
/// input; every rule, the credential parsers and the whole inspection of
/// the fixed config's shields run on it without panicking.
pub fn shields_normalize(data: &[u8]) {
    use casarray::security::{credentials, normalize::normalize, rules, Cidr};
    let (target, rest) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let once = normalize(target);
    let twice = normalize(once.as_bytes());
    assert_eq!(
        once.as_bytes(),
        twice.as_bytes(),
        "normalizing is not a fixed point"
    );
    assert_eq!(once.query(), twice.query(), "the query moved");
    assert!(once.path().starts_with(b"/"), "path without a leading /");
    assert!(!once.path().contains(&b'?'), "a ? in the path");
    assert!(
        once.as_bytes().len() <= target.len() + 1,
        "normalizing grew the target"
    );

    const NAMES: [&str; 6] = [
        "cookie",
        "authorization",
        "x-anonresource-backend",
        "x-commonaccesstoken",
        "x-feserver",
        "x-backend-diag-1",
    ];
    let mut headers = HeaderMap::new();
    for (i, line) in rest.split(|&b| b == b'\n').enumerate() {
        if let Ok(v) = HeaderValue::from_bytes(line) {
            headers.append(HeaderName::from_static(NAMES[i % NAMES.len()]), v);
        }
    }
    let method = http::Method::POST;
    let req = rules::Request {
        method: &method,
        target: &once,
        headers: &headers,
    };
    for rule in rules::RULES {
        let _ = rule.check(&req);
    }
    let _ = credentials::from_authorization(&headers);
    let _ = credentials::owa_form_user(rest);
    let _ = credentials::ntlm_authenticate(rest);
    let _ = credentials::is_owa_logon_failure(rest);
    let _ = String::from_utf8_lossy(target).parse::<Cidr>();
    let peer: IpAddr = "127.0.0.1".parse().expect("an address");
    let shields = &snapshot().http.shields;
    for service in 0..snapshot().http.services.len() {
        let mut h = headers.clone();
        let _ = shields.inspect(service, peer, &method, target, &mut h);
        assert!(h.get("x-feserver").is_none(), "an X-FEServer went through");
    }
}
