//! The streaming rewriter (member names to the array's name) in MB/s:
//! an Autodiscover-like XML answer where member names are frequent, and an
//! HTML page that names no member (the common case: only scanning), fed in
//! 16 KiB chunks as the proxy receives them.
//!
//! Run: `cargo bench --bench rewrite -- --warm-up-time 1 --measurement-time 3`

use bytes::BytesMut;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

use casarray::rewrite::{MemberIdentity, RewritePlan};

/// Size of each text: 1 MiB.
const TEXT: usize = 1 << 20;
/// Chunk size the body arrives in.
const CHUNK: usize = 16 * 1024;

fn plan() -> RewritePlan {
    let members: Vec<MemberIdentity> = (1..=4)
        .map(|i| MemberIdentity {
            name: format!("EX{i}"),
            fqdn: format!("ex{i}.lab.local"),
            address: format!("10.0.0.{i}:443").parse().expect("address"),
        })
        .collect();
    let databases = vec![("DB01".to_owned(), Some("mail.lab.com".to_owned()))];
    RewritePlan::new(&members, "mail.lab.com", "mail.lab.com", &databases)
}

/// Repeats `unit` up to `TEXT` bytes.
fn repeat(unit: &str) -> Vec<u8> {
    unit.as_bytes().iter().copied().cycle().take(TEXT).collect()
}

fn xml_with_names() -> Vec<u8> {
    repeat(
        "<Protocol><Type>EXPR</Type><Server>ex2.lab.local</Server>\
         <ASUrl>https://ex1.lab.local/EWS/Exchange.asmx</ASUrl>\
         <OOFUrl>https://EX3.lab.local/EWS/Exchange.asmx</OOFUrl>\
         <ServerDN>/o=Lab/ou=Exchange/cn=Configuration/cn=Servers/cn=EX4</ServerDN>\
         <Internal>10.0.0.2:443</Internal></Protocol>\n",
    )
}

fn html_without_names() -> Vec<u8> {
    repeat(
        "<tr><td class=\"subject\">Quarterly report, draft 3</td>\
         <td class=\"from\">alice@lab.com</td><td>2024-05-01 10:12</td></tr>\n",
    )
}

fn stream(c: &mut Criterion) {
    let plan = plan();
    let mut g = c.benchmark_group("rewrite_stream");
    g.throughput(Throughput::Bytes(TEXT as u64));
    for (name, text) in [
        ("xml_with_names", xml_with_names()),
        ("html_without_names", html_without_names()),
    ] {
        let mut out = BytesMut::with_capacity(TEXT + TEXT / 4);
        let mut rewriter = plan.stream_rewriter();
        g.bench_with_input(BenchmarkId::new(name, "16KiB_chunks"), &text, |b, text| {
            b.iter(|| {
                out.clear();
                let mut replaced = 0;
                for chunk in text.chunks(CHUNK) {
                    replaced += rewriter.feed(chunk, &mut out);
                }
                replaced += rewriter.finish(&mut out);
                std::hint::black_box((replaced, out.len()))
            });
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(3));
    targets = stream
}
criterion_main!(benches);
