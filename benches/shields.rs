//! The shields' cost per request (issue 18): `Shields::inspect` (allow_from,
//! every rule on the normalized target, headers and cookies, the lockout
//! check) and `Shields::observe` on ordinary requests, in ns per request,
//! next to the normalizer alone and a refused exploit shape.
//!
//! Run: `cargo bench --bench shields -- --warm-up-time 1 --measurement-time 3`

use std::net::IpAddr;
use std::time::Duration;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use http::{Method, StatusCode};

use casarray::metrics::Metrics;
use casarray::security::{normalize, Shields, Verdict};

fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    h
}

fn shields(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("bundle.pem"), "x").expect("write");
    let text = "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
                [listen]\nhttps = \"127.0.0.1:0\"\n[tls]\ncert = \"bundle.pem\"\n\
                [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n";
    let cfg = casarray::config::parse(text, &dir.path().join("casarray.toml")).expect("config");
    let metrics = Metrics::new().expect("metrics");
    let sh = Shields::build(&cfg, &metrics, None);
    let svc = |name: &str| {
        cfg.services
            .iter()
            .position(|s| s.name == name)
            .expect("service")
    };
    let peer: IpAddr = "192.0.2.10".parse().expect("ip");
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("alice@lab.com:Alice!lab1")
    );
    let cookies = "cadata=0123456789abcdef0123456789abcdef; X-BEResource=ex1.lab.local~1942062522; UC=abc; AppcacheVer=15.2.1118.7";
    let mut owa = headers(&[
        ("cookie", cookies),
        ("user-agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"),
        ("accept", "text/html,application/xhtml+xml"),
        ("accept-language", "en-US,en;q=0.9"),
    ]);
    let mut ews = headers(&[
        ("authorization", &basic),
        ("content-type", "text/xml; charset=utf-8"),
        ("x-anchormailbox", "alice@lab.com"),
    ]);
    let mut eas = headers(&[("authorization", &basic), ("ms-asprotocolversion", "16.1")]);
    let mut exploit = headers(&[]);
    let ok = HeaderMap::new();

    let mut g = c.benchmark_group("shields");
    g.throughput(Throughput::Elements(1));
    let owa_target = "/owa/?ae=Item&id=RgAAAAAhh%2bXzAAAA%2fwAAAA%3d%3d&t=IPM.Note";
    g.bench_function("normalize_owa_target", |b| {
        b.iter(|| {
            normalize::normalize(std::hint::black_box(owa_target.as_bytes()))
                .as_bytes()
                .len()
        })
    });
    g.bench_function("inspect_owa_get_with_cookies", |b| {
        b.iter(|| {
            let i = sh.inspect(
                svc("owa"),
                peer,
                &Method::GET,
                owa_target.as_bytes(),
                &mut owa,
            );
            assert_eq!(i.verdict, Verdict::Pass);
        })
    });
    g.bench_function("inspect_ews_post_basic", |b| {
        b.iter(|| {
            sh.inspect(
                svc("ews"),
                peer,
                &Method::POST,
                b"/EWS/Exchange.asmx",
                &mut ews,
            )
            .verdict
        })
    });
    let eas_target = "/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice%40lab.com&DeviceId=ABCDEF0123456789&DeviceType=iPhone";
    g.bench_function("inspect_activesync_post_basic", |b| {
        b.iter(|| {
            sh.inspect(
                svc("eas"),
                peer,
                &Method::POST,
                eas_target.as_bytes(),
                &mut eas,
            )
            .verdict
        })
    });
    g.bench_function("inspect_autodiscover_json", |b| {
        b.iter(|| {
            sh.inspect(
                svc("autodiscover"),
                peer,
                &Method::GET,
                b"/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=EWS",
                &mut exploit,
            )
            .verdict
        })
    });
    g.bench_function("observe_ews_success_basic", |b| {
        b.iter(|| sh.observe(peer, &ews, None, StatusCode::OK, &ok))
    });
    let proxyshell = "/autodiscover/autodiscover.json?@evil.example/mapi/nspi/?&Email=autodiscover/autodiscover.json%3F@evil.example";
    g.bench_function("inspect_proxyshell_refused", |b| {
        b.iter(|| {
            let i = sh.inspect(
                svc("autodiscover"),
                peer,
                &Method::POST,
                proxyshell.as_bytes(),
                &mut exploit,
            );
            assert!(matches!(i.verdict, Verdict::Blocked(_)));
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = shields
}
criterion_main!(benches);
