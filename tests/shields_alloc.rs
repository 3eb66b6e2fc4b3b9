//! The shields cost no allocation on the request path of an ordinary
//! request (issue 18): this test binary counts every allocation of the
//! thread that runs [`Shields::inspect`] and [`Shields::observe`] on
//! requests real clients send (cookies, Basic credentials, query strings,
//! Autodiscover JSON, PowerShell from loopback) and asserts there are
//! none, with and without a lockout running for another address.
//!
//! A global allocator of its own is why this is a test binary apart.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::IpAddr;

use base64::Engine as _;
use casarray::metrics::Metrics;
use casarray::security::{Shields, Verdict};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

/// The system allocator, counting allocations per thread.
struct Counting;

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(Cell::get)
}

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

/// Ordinary requests: (service, method, target, headers).
fn ordinary() -> Vec<(&'static str, Method, String, HeaderMap)> {
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice@lab.com:Alice!lab1")
    );
    let inverted: Vec<u8> = "Database~e6f4cf03-a2d3-456b-9140-3ba771f0aca8~~2026-10-08T09:14:09"
        .bytes()
        .map(|b| b ^ 0xff)
        .collect();
    let backend = format!(
        "X-BackEndCookie=S-1-5-21-4-5-6-1105={}; X-BEResource=ex1.lab.local~1942062522; cadata=abcdef",
        base64::engine::general_purpose::STANDARD.encode(inverted)
    );
    vec![
        (
            "owa",
            Method::GET,
            "/owa/?ae=Item&id=RgAAAAAhh%2bXzAAAA%2fwAAAA%3d%3d&t=IPM.Note".into(),
            headers(&[
                ("cookie", &backend),
                ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
                ("accept", "text/html"),
            ]),
        ),
        (
            "ews",
            Method::POST,
            "/EWS/Exchange.asmx".into(),
            headers(&[
                ("authorization", &basic),
                ("content-type", "text/xml; charset=utf-8"),
                ("x-anchormailbox", "alice@lab.com"),
                ("cookie", &backend),
            ]),
        ),
        (
            "eas",
            Method::POST,
            "/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice%40lab.com&DeviceId=ABCDEF0123456789&DeviceType=iPhone".into(),
            headers(&[
                ("authorization", &basic),
                ("ms-asprotocolversion", "16.1"),
            ]),
        ),
        (
            "autodiscover",
            Method::GET,
            "/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=EWS".into(),
            headers(&[]),
        ),
        (
            "mapi",
            Method::POST,
            "/mapi/emsmdb/?MailboxId=8f0e2a1b-1111-2222-3333-444455556666@lab.com".into(),
            headers(&[("x-requesttype", "Execute"), ("content-type", "application/mapi-http")]),
        ),
        (
            "powershell",
            Method::POST,
            "/PowerShell?serializationLevel=Full;ExchClientVer=15.2.1118.7;clientApplication=ManagementShell".into(),
            headers(&[("content-type", "application/soap+xml;charset=UTF-8")]),
        ),
        (
            "owa",
            Method::POST,
            "/owa/auth.owa".into(),
            headers(&[("content-type", "application/x-www-form-urlencoded")]),
        ),
    ]
}

#[test]
fn an_ordinary_request_allocates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
    let text = "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
                [listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"bundle.pem\"\n\
                [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n";
    let cfg = casarray::config::parse(text, &dir.path().join("casarray.toml")).unwrap();
    let metrics = Metrics::new().unwrap();
    let shields = Shields::build(&cfg, &metrics, None);
    let service = |name: &str| cfg.services.iter().position(|s| s.name == name).unwrap();
    let peer: IpAddr = "127.0.0.1".parse().unwrap();
    let mut requests: Vec<(usize, Method, String, HeaderMap)> = ordinary()
        .into_iter()
        .map(|(s, m, t, h)| (service(s), m, t, h))
        .collect();
    let ok = HeaderMap::new();

    let mut run = |rounds: usize| {
        for _ in 0..rounds {
            for (s, method, target, headers) in requests.iter_mut() {
                let i = shields.inspect(*s, peer, method, target.as_bytes(), headers);
                assert_eq!(i.verdict, Verdict::Pass, "{target}");
                shields.observe(peer, headers, None, StatusCode::OK, &ok);
            }
        }
    };
    // The counter counts.
    let before = allocations();
    drop(std::hint::black_box(Vec::<u8>::with_capacity(64)));
    assert_eq!(allocations() - before, 1);
    // Warm up (lazy statics, thread-locals), then count.
    run(1);
    let before = allocations();
    run(1000);
    let during = allocations() - before;
    assert_eq!(during, 0, "allocations for 7000 ordinary requests");

    // With a lockout running (another address), requests are looked up in
    // the tables: still no allocation.
    let attacker: IpAddr = "203.0.113.9".parse().unwrap();
    let wrong = {
        let token = base64::engine::general_purpose::STANDARD.encode("mallory:guess");
        headers(&[("authorization", &format!("Basic {token}"))])
    };
    for _ in 0..cfg.security.lockout_failures {
        shields.observe(attacker, &wrong, None, StatusCode::UNAUTHORIZED, &ok);
    }
    let mut wrong = wrong;
    let locked = shields.inspect(service("ews"), attacker, &Method::GET, b"/EWS/", &mut wrong);
    assert!(matches!(locked.verdict, Verdict::Locked { .. }));
    let before = allocations();
    run(1000);
    assert_eq!(allocations() - before, 0, "allocations while a lock runs");
    println!("0 allocations for 14000 ordinary requests (inspect + observe)");
}
