//! Bad input and abuse, black-box (issue 8): a real `casarray serve`
//! process on 127.0.0.1 in front of an in-process echo member, driven by
//! raw clients (bytes on a TCP socket, raw HTTP/1.1 and hand-made HTTP/2
//! frames over TLS). Each case checks what the abuser gets, that nothing
//! bad reached the member, and that the array goes on serving everyone
//! else. Every wait is bounded; measured values are printed.
//!
//! The last test runs the inputs kept by the fuzz targets (fuzz/seeds and
//! fuzz/regressions) through the same checks the fuzzers use.

mod support;

#[path = "../fuzz/src/checks.rs"]
#[allow(dead_code)]
mod fuzz_checks;

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use support::backend::EchoBackend;
use support::*;

/// What a busy CI machine may add to any bound.
const SLACK: Duration = Duration::from_secs(4);

struct Lab {
    _dir: tempfile::TempDir,
    array: Proc,
    addrs: ArrayAddrs,
    client: Client,
    certs: TestCerts,
    member: EchoBackend,
}

/// An array in front of one echo member. `tls` lines go into the `[tls]`
/// table; `extra` is appended (a `[proxy]` table, say).
async fn lab(tls: &str, extra: &str) -> Lab {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let member = EchoBackend::start("EX1").await;
    let text = config_toml(&certs, &[("EX1", member.addr)], extra).replacen(
        "\n[health]",
        &format!("{tls}\n\n[health]"),
        1,
    );
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, text).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    Lab {
        _dir: dir,
        array,
        addrs,
        client,
        certs,
        member,
    }
}

impl Lab {
    fn member_requests(&self) -> u64 {
        self.member.state.requests.load(Ordering::SeqCst)
    }

    /// The array still answers an ordinary client.
    async fn assert_serving(&self) {
        let r = tokio::time::timeout(Duration::from_secs(20), self.client.get("/owa/"))
            .await
            .expect("an ordinary request got no answer within 20 s")
            .expect("an ordinary request failed");
        assert_eq!(r.status(), 200, "an ordinary request");
    }
}

/// What a raw exchange gave.
#[derive(Debug)]
struct Answer {
    status: Option<u16>,
    text: String,
    /// The array closed the connection (EOF or reset).
    closed: bool,
    elapsed: Duration,
}

/// Reads one answer (head and Content-Length body), or up to the close of
/// the connection, at most `limit`.
async fn read_answer(io: &mut (impl AsyncRead + Unpin), limit: Duration) -> Answer {
    let started = Instant::now();
    let deadline = started + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let mut closed = false;
    // Bounded by the deadline; each round reads or ends.
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| buf.len() >= end + 4 + n) {
                break;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, io.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|s| s.parse().ok());
    Answer {
        status,
        text,
        closed,
        elapsed: started.elapsed(),
    }
}

/// Sends `bytes` on a new TLS connection and reads the answer.
async fn raw_h1(client: &Client, bytes: &[u8]) -> Answer {
    let mut tls = tokio::time::timeout(Duration::from_secs(20), client.tls())
        .await
        .expect("TLS handshake within 20 s")
        .expect("TLS handshake");
    // The array may refuse before reading it all: a failed write is fine.
    let _ = tls.write_all(bytes).await;
    let _ = tls.flush().await;
    read_answer(&mut tls, Duration::from_secs(15)).await
}

/// The array refused `bytes` with one of `codes`, or closed the connection
/// without an answer; the member saw nothing.
async fn assert_refused(lab: &Lab, what: &str, bytes: &[u8], codes: &[u16]) {
    let before = lab.member_requests();
    let a = raw_h1(&lab.client, bytes).await;
    println!(
        "{what}: {:?} closed={} in {:?}",
        a.status, a.closed, a.elapsed
    );
    match a.status {
        Some(s) => assert!(
            codes.contains(&s),
            "{what}: answered {s}, expected one of {codes:?}: {:?}",
            a.text
        ),
        None => assert!(a.closed, "{what}: no answer and not closed: {:?}", a.text),
    }
    assert_eq!(
        lab.member_requests(),
        before,
        "{what}: the member saw a request"
    );
}

// ---------------------------------------------------------------------------
// TLS and slow clients

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_instead_of_a_client_hello_is_closed() {
    let lab = lab("", "").await;
    let before = metric(lab.addrs.admin, "casarray_tls_handshake_errors_total", &[]).await;
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n"[..],
        &[0u8; 512][..],
        &b"\x16\x03\x01\xff\xff garbage record"[..],
    ] {
        let mut tcp = TcpStream::connect(lab.addrs.https).await.unwrap();
        tcp.write_all(garbage).await.unwrap();
        let a = read_answer(&mut tcp, Duration::from_secs(10)).await;
        println!(
            "garbage {:?}: closed={} in {:?}",
            &garbage[..4],
            a.closed,
            a.elapsed
        );
        assert!(a.closed, "still open after garbage: {:?}", a.text);
        assert!(
            a.status.is_none(),
            "an HTTP answer to garbage: {:?}",
            a.text
        );
        assert!(a.elapsed < SLACK, "{:?}", a.elapsed);
    }
    wait_until("handshake errors counted", SLACK, || async {
        metric(lab.addrs.admin, "casarray_tls_handshake_errors_total", &[]).await >= before + 3.0
    })
    .await;
    lab.assert_serving().await;
}

/// Slowloris at the TLS layer: a client that connects and sends nothing,
/// and one that stops in the middle of its ClientHello, are closed after
/// `tls.handshake_timeout`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_handshakes_are_closed_after_the_handshake_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let lab = lab("handshake_timeout = \"1s\"", "").await;
    let mut silent = TcpStream::connect(lab.addrs.https).await.unwrap();
    let mut partial = TcpStream::connect(lab.addrs.https).await.unwrap();
    // A handshake record announcing 512 bytes, of which 9 come.
    partial
        .write_all(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc")
        .await
        .unwrap();
    let (s, p) = tokio::join!(
        read_answer(&mut silent, Duration::from_secs(30)),
        read_answer(&mut partial, Duration::from_secs(30)),
    );
    for (what, a) in [("silent", s), ("partial ClientHello", p)] {
        println!("{what}: closed after {:?}", a.elapsed);
        assert!(a.closed, "{what}: not closed within 30 s");
        assert!(
            a.elapsed >= TIMEOUT - Duration::from_millis(100) && a.elapsed <= TIMEOUT + SLACK,
            "{what}: closed after {:?}, handshake timeout {TIMEOUT:?}",
            a.elapsed
        );
    }
    lab.assert_serving().await;
}

/// Slowloris in the headers: a client that stops in the middle of its
/// request head, and one that drips it a byte at a time, are closed after
/// `proxy.header_read_timeout`, whatever they send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_heads_are_closed_after_the_header_read_timeout() {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let lab = lab("", "\n[proxy]\nheader_read_timeout = \"1s\"\n").await;

    let mut stalled = lab.client.tls().await.unwrap();
    stalled
        .write_all(b"GET /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\nX-Slow: ")
        .await
        .unwrap();
    let a = read_answer(&mut stalled, Duration::from_secs(30)).await;
    println!("stalled head: {:?} closed after {:?}", a.status, a.elapsed);
    assert!(a.closed, "stalled head: not closed within 30 s");
    assert!(a.elapsed <= TIMEOUT + SLACK, "{:?}", a.elapsed);
    assert!(a.status.is_none() || a.status == Some(408), "{:?}", a.text);

    let mut drip = lab.client.tls().await.unwrap();
    let started = Instant::now();
    let line = b"GET /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\nX-Drip: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed_at = None;
    for b in line.iter() {
        if drip.write_all(&[*b]).await.is_err() || drip.flush().await.is_err() {
            closed_at = Some(started.elapsed());
            break;
        }
        let mut probe = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), drip.read(&mut probe)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed_at = Some(started.elapsed());
                break;
            }
            Ok(Ok(_)) => {
                // An answer (408): the connection closes next.
                let a = read_answer(&mut drip, Duration::from_secs(10)).await;
                assert!(a.closed);
                closed_at = Some(started.elapsed());
                break;
            }
            Err(_) => {}
        }
    }
    let closed_at = closed_at.expect("a dripping client was never closed");
    println!("dripping head: closed after {closed_at:?}");
    assert!(closed_at <= TIMEOUT + SLACK, "{closed_at:?}");
    assert_eq!(lab.member_requests(), 0);
    lab.assert_serving().await;
}

// ---------------------------------------------------------------------------
// Malformed HTTP/1.1

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_request_lines_and_header_sections_get_431() {
    let lab = lab("", "\n[proxy]\nmax_header_bytes = 16384\n").await;
    let long_path = format!(
        "GET /owa/{} HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n",
        "a".repeat(20 * 1024)
    );
    assert_refused(
        &lab,
        "20 KiB request line",
        long_path.as_bytes(),
        &[431, 414],
    )
    .await;
    let mut big = String::from("GET /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n");
    for i in 0..20 {
        big.push_str(&format!("X-Big-{i}: {}\r\n", "b".repeat(1024)));
    }
    big.push_str("\r\n");
    assert_refused(&lab, "20 KiB header section", big.as_bytes(), &[431]).await;
    let mut one = String::from("GET /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n");
    one.push_str(&format!("X-Huge: {}\r\n\r\n", "h".repeat(20 * 1024)));
    assert_refused(&lab, "one 20 KiB header", one.as_bytes(), &[431]).await;
    lab.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_headers_get_431() {
    let lab = lab("", "").await;
    let mut many = String::from("GET /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-H{i}: v\r\n"));
    }
    many.push_str("\r\n");
    assert_refused(&lab, "200 headers", many.as_bytes(), &[431]).await;
    lab.assert_serving().await;
}

/// Request smuggling's raw material: a request with both Content-Length
/// and Transfer-Encoding (RFC 9112 section 6.3: refuse it, or read the body
/// by Transfer-Encoding and close the connection after answering), or with
/// differing Content-Lengths (refused).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_body_lengths_are_refused_or_framed_safely() {
    let lab = lab("", "").await;
    let before = lab.member_requests();
    let mut tls = lab.client.tls().await.unwrap();
    tls.write_all(
        b"POST /ews/x HTTP/1.1\r\nHost: mail.lab.com\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /owa/smuggled HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n",
    )
    .await
    .unwrap();
    let a = read_answer(&mut tls, Duration::from_secs(15)).await;
    println!("Content-Length and Transfer-Encoding: {:?}", a.status);
    match a.status {
        Some(400) => assert_eq!(lab.member_requests(), before),
        Some(200) => {
            assert!(
                a.text.contains("\"body_len\":0"),
                "the body was not read by Transfer-Encoding: {}",
                a.text
            );
            assert!(
                a.text.to_ascii_lowercase().contains("connection: close"),
                "the connection is kept after an ambiguous request: {}",
                a.text
            );
            let rest = read_answer(&mut tls, Duration::from_secs(10)).await;
            assert!(rest.closed, "the connection stayed open");
            assert!(
                rest.status.is_none(),
                "the smuggled request was answered: {}",
                rest.text
            );
            assert_eq!(lab.member_requests(), before + 1, "the smuggled request");
        }
        other => panic!("answered {other:?}: {}", a.text),
    }
    assert_refused(
        &lab,
        "two Content-Lengths",
        b"POST /ews/x HTTP/1.1\r\nHost: mail.lab.com\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        &[400],
    )
    .await;
    assert_refused(
        &lab,
        "Transfer-Encoding other than chunked last",
        b"POST /ews/x HTTP/1.1\r\nHost: mail.lab.com\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        &[400, 501],
    )
    .await;
    lab.assert_serving().await;
}

/// Bad chunk sizes: the request fails (400, or the connection is closed)
/// and no complete body reaches the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chunk_sizes_are_refused() {
    let lab = lab("", "").await;
    for (what, body) in [
        ("non-hex size", &b"zz\r\nhello\r\n0\r\n\r\n"[..]),
        (
            "overflowing size",
            &b"fffffffffffffffffffff\r\nx\r\n0\r\n\r\n"[..],
        ),
        ("negative size", &b"-5\r\nhello\r\n0\r\n\r\n"[..]),
        ("chunk without its CRLF", &b"2\r\nhiXX0\r\n\r\n"[..]),
    ] {
        let mut req =
            b"POST /ews/x HTTP/1.1\r\nHost: mail.lab.com\r\nTransfer-Encoding: chunked\r\n\r\n"
                .to_vec();
        req.extend_from_slice(body);
        let a = raw_h1(&lab.client, &req).await;
        println!(
            "{what}: {:?} closed={} in {:?}",
            a.status, a.closed, a.elapsed
        );
        assert!(
            a.status.is_none_or(|s| s == 400),
            "{what}: answered {:?}: {}",
            a.status,
            a.text
        );
        assert!(a.status.is_some() || a.closed, "{what}: hung");
        assert!(
            !a.text.contains("\"body_len\""),
            "{what}: the member answered"
        );
    }
    lab.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_methods_are_refused() {
    let lab = lab("", "").await;
    for (what, req) in [
        (
            "method with @",
            &b"G@T /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n"[..],
        ),
        (
            "method with a control byte",
            &b"GE\x01T /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n"[..],
        ),
        (
            "empty method",
            &b" /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n"[..],
        ),
        (
            "no version",
            &b"GET /owa/\r\nHost: mail.lab.com\r\n\r\n"[..],
        ),
        (
            "HTTP/2 version on HTTP/1.1",
            &b"GET /owa/ HTTP/2.0\r\nHost: mail.lab.com\r\n\r\n"[..],
        ),
    ] {
        assert_refused(&lab, what, req, &[400, 405, 505]).await;
    }
    lab.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_requests_are_refused() {
    let lab = lab("", "").await;
    assert_refused(
        &lab,
        "CONNECT elsewhere",
        b"CONNECT evil.example.com:443 HTTP/1.1\r\nHost: evil.example.com:443\r\n\r\n",
        &[400, 405, 421],
    )
    .await;
    assert_refused(
        &lab,
        "CONNECT to a member",
        format!(
            "CONNECT {} HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n",
            lab.member.addr
        )
        .as_bytes(),
        &[400, 405, 421],
    )
    .await;
    lab.assert_serving().await;
}

/// An absolute-form target names the host (RFC 9112 section 3.2.2: the
/// Host header is then ignored): naming another host is refused, however
/// the Host header reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_naming_another_host_is_refused() {
    let lab = lab("", "").await;
    assert_refused(
        &lab,
        "absolute-form to another host",
        b"GET https://evil.example.com/owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n",
        &[400, 421],
    )
    .await;
    assert_refused(
        &lab,
        "absolute-form to a member",
        format!(
            "GET http://{}/owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n",
            lab.member.addr
        )
        .as_bytes(),
        &[400, 421],
    )
    .await;
    lab.assert_serving().await;
}

/// An absolute-form target naming the array is served, or refused, but
/// never sent anywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_naming_the_array_stays_on_the_array() {
    let lab = lab("", "").await;
    let a = raw_h1(
        &lab.client,
        b"GET https://mail.lab.com/owa/x HTTP/1.1\r\nHost: mail.lab.com\r\nConnection: close\r\n\r\n",
    )
    .await;
    println!("absolute-form to the array: {:?}", a.status);
    match a.status {
        Some(200) => {
            assert!(a.text.contains("\"uri\":\"/owa/x\""), "{}", a.text);
            assert!(a.text.contains("\"host\":\"mail.lab.com\""), "{}", a.text);
        }
        Some(s) => assert!(s == 400 || s == 421, "{}", a.text),
        None => panic!("no answer: {a:?}"),
    }
    lab.assert_serving().await;
}

/// Paths a member could resolve to somewhere the array did not route:
/// `..` segments, raw or percent-encoded, and encoded slashes around them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dot_dot_segments_are_refused() {
    let lab = lab("", "").await;
    for path in [
        "/owa/../ecp/",
        "/owa/..",
        "/owa/./../PowerShell/",
        "/owa/%2e%2e/ecp/",
        "/owa/%2E%2E/ecp/",
        "/owa/.%2e/ecp/",
        "/owa/..%2fecp/",
        "/owa/..%5cecp/",
        "/owa/..\\ecp/",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n");
        assert_refused(&lab, path, req.as_bytes(), &[400]).await;
    }
    lab.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_nul_and_control_bytes_in_the_request_line_are_refused() {
    let lab = lab("", "").await;
    for (what, req) in [
        (
            "raw NUL",
            &b"GET /owa/\x00x HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n"[..],
        ),
        (
            "raw DEL",
            &b"GET /owa/\x7fx HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n"[..],
        ),
        (
            "raw tab",
            &b"GET /owa/\tx HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n"[..],
        ),
        (
            "NUL in a header",
            &b"GET /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\nX-A: a\x00b\r\n\r\n"[..],
        ),
        (
            "bare CR in a header value",
            &b"GET /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\nX-A: a\rb\r\n\r\n"[..],
        ),
    ] {
        assert_refused(&lab, what, req, &[400]).await;
    }
    lab.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_nul_and_bad_percent_encoding_are_refused() {
    let lab = lab("", "").await;
    for path in [
        "/owa/%00",
        "/owa/a%00.aspx",
        "/owa/%zz",
        "/owa/%4",
        "/owa/%",
        "/owa/%%30",
    ] {
        let req = format!("GET {path} HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n");
        assert_refused(&lab, path, req.as_bytes(), &[400]).await;
    }
    lab.assert_serving().await;
}

/// A Host that is not one of the array's names: 421 (well-formed, foreign)
/// or 400 (malformed, missing, repeated); never forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_and_malformed_hosts_are_refused() {
    let lab = lab("", "").await;
    for (what, head) in [
        ("foreign name", "Host: evil.example.com\r\n"),
        ("foreign name with port", "Host: evil.example.com:443\r\n"),
        ("array name as a suffix", "Host: mail.lab.com.evil.com\r\n"),
        ("array name as a prefix", "Host: evilmail.lab.com\r\n"),
        ("member name", "Host: ex1.lab.local\r\n"),
        ("userinfo", "Host: mail.lab.com@evil.com\r\n"),
        ("empty", "Host: \r\n"),
        ("missing", ""),
        ("bad port", "Host: mail.lab.com:https\r\n"),
    ] {
        let req = format!("GET /owa/ HTTP/1.1\r\n{head}\r\n");
        assert_refused(&lab, what, req.as_bytes(), &[400, 421]).await;
    }
    lab.assert_serving().await;
}

/// RFC 9112 section 3.2: more than one Host line is a 400.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_host_headers_get_400() {
    let lab = lab("", "").await;
    for (what, head) in [
        (
            "foreign second",
            "Host: mail.lab.com\r\nHost: evil.example.com\r\n",
        ),
        (
            "foreign first",
            "Host: evil.example.com\r\nHost: mail.lab.com\r\n",
        ),
        (
            "the same twice",
            "Host: mail.lab.com\r\nHost: mail.lab.com\r\n",
        ),
    ] {
        let req = format!("GET /owa/ HTTP/1.1\r\n{head}\r\n");
        assert_refused(&lab, what, req.as_bytes(), &[400]).await;
    }
    lab.assert_serving().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bracketed_ipv6_host_with_trailing_junk_is_refused() {
    let lab = lab("", "").await;
    assert_refused(
        &lab,
        "[::1] followed by a name",
        b"GET /owa/ HTTP/1.1\r\nHost: [::1]evil.example.com\r\n\r\n",
        &[400, 421],
    )
    .await;
    lab.assert_serving().await;
}

// ---------------------------------------------------------------------------
// Connection floods and resource limits

/// Idle connections up to `proxy.max_connections` are held; past it a new
/// connection is closed at once, before any TLS work, and counted; when
/// some go away, new clients are served again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connection_flood_is_refused_early_past_the_limit() {
    const LIMIT: usize = 32;
    let lab = lab("", &format!("\n[proxy]\nmax_connections = {LIMIT}\n")).await;
    let mut idle = Vec::new();
    for _ in 0..LIMIT {
        idle.push(lab.client.tls().await.unwrap());
    }
    // The permits are taken by the accepting task: wait until it saw all.
    wait_until("all idle connections accepted", SLACK * 2, || async {
        metric(lab.addrs.admin, "casarray_connections_active", &[]).await >= LIMIT as f64
    })
    .await;
    let refused_before = metric(lab.addrs.admin, "casarray_connections_refused_total", &[]).await;
    for _ in 0..5 {
        let started = Instant::now();
        let r = tokio::time::timeout(Duration::from_secs(20), lab.client.tls()).await;
        let took = started.elapsed();
        println!(
            "connection past the limit: {:?} in {took:?}",
            r.as_ref().map(|r| r.is_ok())
        );
        assert!(
            matches!(r, Ok(Err(_))),
            "a connection past the limit was not refused"
        );
        assert!(took < SLACK, "refused only after {took:?}");
    }
    let refused = metric(lab.addrs.admin, "casarray_connections_refused_total", &[]).await;
    assert!(
        refused >= refused_before + 5.0,
        "{refused_before} -> {refused}"
    );
    idle.truncate(LIMIT - 4);
    wait_until("served again", Duration::from_secs(20), || async {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), lab.client.get("/owa/")).await,
            Ok(Ok(r)) if r.status() == 200
        )
    })
    .await;
    drop(idle);
}

/// Memory of idle TLS connections: bounded, and measured (printed in KiB
/// per connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_per_idle_connection_is_bounded() {
    const N: usize = 400;
    /// Generous: rustls' buffers and hyper's read buffer are a few dozen KiB.
    const MAX_KIB_PER_CONNECTION: u64 = 160;
    let lab = lab("", "\n[proxy]\nmax_connections = 1000\n").await;
    lab.assert_serving().await;
    let pid = lab.array.pid();
    let before = rss_kib(pid);
    let mut idle = Vec::new();
    for i in 0..N {
        let mut c = lab.client.tls().await.unwrap();
        // Half of them also sent a request, so their buffers were used.
        if i % 2 == 0 {
            c.write_all(b"GET /owa/ HTTP/1.1\r\nHost: mail.lab.com\r\n\r\n")
                .await
                .unwrap();
            let a = read_answer(&mut c, Duration::from_secs(20)).await;
            assert_eq!(a.status, Some(200));
        }
        idle.push(c);
    }
    wait_until("all idle connections accepted", SLACK * 2, || async {
        metric(lab.addrs.admin, "casarray_connections_active", &[]).await >= N as f64
    })
    .await;
    let after = rss_kib(pid);
    let per = after.saturating_sub(before) / N as u64;
    println!("RSS {before} KiB -> {after} KiB with {N} idle TLS connections: {per} KiB each");
    assert!(
        per <= MAX_KIB_PER_CONNECTION,
        "{per} KiB per idle connection"
    );
    drop(idle);
    lab.assert_serving().await;
}

/// CPU time of a process so far (user + system), from /proc.
fn cpu_time(pid: i32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    // utime and stime are fields 14 and 15 of the whole line: 12 and 13
    // after the command.
    let ticks: u64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<u64>().ok()))
        .sum();
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn open_fds(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Out of file descriptors (EMFILE): the accept loop backs off instead of
/// spinning, the process survives, and serves again once descriptors are
/// free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accept_errors_back_off_instead_of_spinning() {
    let mut lab = lab("handshake_timeout = \"60s\"", "").await;
    lab.assert_serving().await;
    let pid = lab.array.pid();
    let base = open_fds(pid);
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: prlimit writes the current limits into `old`, valid for the call.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, std::ptr::null(), &mut old) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let low_cur = (base + 8) as libc::rlim_t;
    let low = libc::rlimit {
        rlim_cur: low_cur,
        rlim_max: old.rlim_max,
    };
    // SAFETY: prlimit reads `low`, valid for the call.
    let rc = unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &low, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());

    // Connections that never start TLS hold a descriptor each.
    let mut flood = Vec::new();
    for _ in 0..40 {
        if let Ok(Ok(s)) =
            tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(lab.addrs.https)).await
        {
            flood.push(s);
        }
    }
    wait_until("descriptors exhausted", SLACK * 2, || async {
        open_fds(pid) as u64 >= low_cur - 2
    })
    .await;
    let cpu_before = cpu_time(pid);
    let wall = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let cpu = cpu_time(pid).saturating_sub(cpu_before);
    let wall = wall.elapsed();
    println!(
        "at EMFILE ({} fds, limit {low_cur}): {cpu:?} CPU in {wall:?}",
        open_fds(pid)
    );
    assert!(
        cpu < wall / 4,
        "the array burnt {cpu:?} of CPU in {wall:?} at EMFILE: spinning"
    );
    assert!(
        lab.array.child.try_wait().unwrap().is_none(),
        "the array died at EMFILE"
    );
    drop(flood);
    // SAFETY: as above; restore the original limits.
    unsafe { libc::prlimit(pid, libc::RLIMIT_NOFILE, &old, std::ptr::null_mut()) };
    wait_until("served again", Duration::from_secs(30), || async {
        matches!(
            tokio::time::timeout(Duration::from_secs(5), lab.client.get("/owa/")).await,
            Ok(Ok(r)) if r.status() == 200
        )
    })
    .await;
}

// ---------------------------------------------------------------------------
// HTTP/2 abuse, with hand-made frames

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const CONTINUATION: u8 = 0x9;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const CANCEL: u32 = 0x8;
const REFUSED_STREAM: u32 = 0x7;

fn frame(ty: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = Vec::with_capacity(9 + payload.len());
    f.extend_from_slice(&len.to_be_bytes()[1..]);
    f.push(ty);
    f.push(flags);
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK integer with an `n`-bit prefix, its first byte or-ed with
/// `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, v: usize) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(first | v as u8);
        return;
    }
    out.push(first | max as u8);
    let mut v = v - max;
    while v >= 128 {
        out.push((v % 128) as u8 | 0x80);
        v /= 128;
    }
    out.push(v as u8);
}

/// A literal header field without indexing, new name (RFC 7541 6.2.2).
fn hpack_literal(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.push(0x00);
    hpack_int(out, 0, 7, name.len());
    out.extend_from_slice(name.as_bytes());
    hpack_int(out, 0, 7, value.len());
    out.extend_from_slice(value);
}

fn request_block(method: &str, path: &str, authority: &str, extra: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = Vec::new();
    hpack_literal(&mut b, ":method", method.as_bytes());
    hpack_literal(&mut b, ":scheme", b"https");
    hpack_literal(&mut b, ":path", path.as_bytes());
    hpack_literal(&mut b, ":authority", authority.as_bytes());
    for (n, v) in extra {
        hpack_literal(&mut b, n, v);
    }
    b
}

#[derive(Debug)]
enum Event {
    Frame { ty: u8, flags: u8, payload: Vec<u8> },
    Closed,
    Timeout,
}

/// An HTTP/2 connection spoken by hand.
struct H2 {
    tls: tokio_rustls::client::TlsStream<TcpStream>,
    buf: Vec<u8>,
}

impl H2 {
    async fn open(lab: &Lab) -> H2 {
        let client = Client::new(lab.addrs.https, &lab.certs.ca_pem, &[b"h2"]);
        let mut tls = client.tls().await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        tls.write_all(PREFACE).await.unwrap();
        tls.write_all(&frame(SETTINGS, 0, 0, &[])).await.unwrap();
        tls.flush().await.unwrap();
        H2 {
            tls,
            buf: Vec::new(),
        }
    }

    /// Reads until the server's SETTINGS, acknowledges them, and returns
    /// their (id, value) pairs.
    async fn handshake(&mut self) -> Vec<(u16, u32)> {
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..100 {
            match self.next(deadline).await {
                Event::Frame {
                    ty: SETTINGS,
                    flags,
                    payload,
                    ..
                } if flags & ACK == 0 => {
                    return payload
                        .chunks(6)
                        .filter(|c| c.len() == 6)
                        .map(|c| {
                            (
                                u16::from_be_bytes([c[0], c[1]]),
                                u32::from_be_bytes([c[2], c[3], c[4], c[5]]),
                            )
                        })
                        .collect();
                }
                Event::Frame { .. } => {}
                other => panic!("no SETTINGS from the array: {other:?}"),
            }
        }
        panic!("no SETTINGS in 100 frames");
    }

    async fn send(&mut self, bytes: &[u8]) -> bool {
        self.tls.write_all(bytes).await.is_ok() && self.tls.flush().await.is_ok()
    }

    /// The next frame; SETTINGS and PING are acknowledged on the way.
    async fn next(&mut self, deadline: Instant) -> Event {
        // Bounded by the deadline: each round reads or returns.
        loop {
            if self.buf.len() >= 9 {
                let len = u32::from_be_bytes([0, self.buf[0], self.buf[1], self.buf[2]]) as usize;
                if self.buf.len() >= 9 + len {
                    let ty = self.buf[3];
                    let flags = self.buf[4];
                    let payload = self.buf[9..9 + len].to_vec();
                    self.buf.drain(..9 + len);
                    if ty == SETTINGS && flags & ACK == 0 {
                        let _ = self.send(&frame(SETTINGS, ACK, 0, &[])).await;
                    } else if ty == PING && flags & ACK == 0 {
                        let _ = self.send(&frame(PING, ACK, 0, &payload)).await;
                    }
                    return Event::Frame { ty, flags, payload };
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Event::Timeout;
            }
            let mut chunk = [0u8; 16384];
            match tokio::time::timeout(left, self.tls.read(&mut chunk)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Event::Closed,
                Ok(Ok(n)) => self.buf.extend_from_slice(&chunk[..n]),
                Err(_) => return Event::Timeout,
            }
        }
    }
}

/// What came back for the streams of a test.
#[derive(Debug, Default)]
struct Seen {
    /// Streams answered 200 (first header byte: static `:status 200`).
    ok: usize,
    /// Streams answered with another status.
    other_status: usize,
    resets: Vec<u32>,
    goaway: Option<u32>,
    closed: bool,
}

async fn collect(h2: &mut H2, limit: Duration, stop_after_resets: usize) -> Seen {
    let deadline = Instant::now() + limit;
    let mut seen = Seen::default();
    for _ in 0..1_000_000 {
        match h2.next(deadline).await {
            Event::Frame {
                ty: HEADERS,
                payload,
                ..
            } => {
                // Skip dynamic table size updates (001xxxxx).
                let first = payload.iter().find(|b| *b & 0xe0 != 0x20).copied();
                if first == Some(0x88) {
                    seen.ok += 1;
                } else {
                    seen.other_status += 1;
                }
            }
            Event::Frame {
                ty: RST_STREAM,
                payload,
                ..
            } => {
                if payload.len() >= 4 {
                    seen.resets.push(u32::from_be_bytes([
                        payload[0], payload[1], payload[2], payload[3],
                    ]));
                }
                if seen.resets.len() >= stop_after_resets {
                    break;
                }
            }
            Event::Frame {
                ty: GOAWAY,
                payload,
                ..
            } => {
                if payload.len() >= 8 {
                    seen.goaway = Some(u32::from_be_bytes([
                        payload[4], payload[5], payload[6], payload[7],
                    ]));
                }
            }
            Event::Frame { .. } => {}
            Event::Closed => {
                seen.closed = true;
                break;
            }
            Event::Timeout => break,
        }
    }
    seen
}

/// Rapid reset (CVE-2023-44487): streams opened and cancelled at once, in
/// thousands. The array must not keep doing work for them: the connection
/// is told to go away, and few of them reach the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_rapid_reset_is_cut_off() {
    const STREAMS: u32 = 5000;
    let lab = lab("", "").await;
    let mut h2 = H2::open(&lab).await;
    h2.handshake().await;
    let block = request_block("GET", "/ews/x", "mail.lab.com", &[]);
    let mut batch = Vec::new();
    let mut sent = 0;
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        batch.extend(frame(HEADERS, END_HEADERS | END_STREAM, id, &block));
        batch.extend(frame(RST_STREAM, 0, id, &CANCEL.to_be_bytes()));
        if batch.len() > 64 * 1024 || i + 1 == STREAMS {
            if !h2.send(&batch).await {
                break;
            }
            sent = i + 1;
            batch.clear();
        }
    }
    let seen = collect(&mut h2, Duration::from_secs(15), usize::MAX).await;
    let reached = lab.member_requests();
    println!(
        "rapid reset: {sent} streams sent, {reached} reached the member, goaway {:?}, closed {}",
        seen.goaway, seen.closed
    );
    assert!(
        seen.goaway.is_some() || seen.closed,
        "the connection survived {sent} rapid resets"
    );
    assert!(
        reached < u64::from(STREAMS) / 4,
        "{reached} of {sent} cancelled streams reached the member"
    );
    lab.assert_serving().await;
}

/// Streams past `proxy.h2_max_concurrent_streams` are refused (the limit is
/// advertised in SETTINGS), and never reach the member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_past_the_limit_are_refused() {
    const LIMIT: u32 = 8;
    const OPENED: u32 = 30;
    let lab = lab(
        "",
        &format!("\n[proxy]\nh2_max_concurrent_streams = {LIMIT}\n"),
    )
    .await;
    let mut h2 = H2::open(&lab).await;
    let settings = h2.handshake().await;
    println!("server SETTINGS: {settings:?}");
    assert!(
        settings.contains(&(0x3, LIMIT)),
        "SETTINGS_MAX_CONCURRENT_STREAMS {LIMIT} not advertised: {settings:?}"
    );
    // Let the SETTINGS ACK land before the flood, as a real client would.
    let _ = collect(&mut h2, Duration::from_millis(300), usize::MAX).await;
    // POSTs whose bodies never come: each stream stays open.
    let block = request_block("POST", "/ews/x", "mail.lab.com", &[]);
    let mut batch = Vec::new();
    for i in 0..OPENED {
        batch.extend(frame(HEADERS, END_HEADERS, 2 * i + 1, &block));
    }
    assert!(h2.send(&batch).await);
    let seen = collect(&mut h2, Duration::from_secs(10), (OPENED - LIMIT) as usize).await;
    let reached = lab.member_requests();
    println!(
        "{OPENED} streams at a limit of {LIMIT}: resets {:?}, goaway {:?}, {reached} reached the member",
        seen.resets, seen.goaway
    );
    let refused = seen.resets.iter().filter(|&&c| c == REFUSED_STREAM).count() as u32;
    assert!(
        refused >= OPENED - LIMIT || seen.goaway.is_some(),
        "streams past the limit not refused: {seen:?}"
    );
    assert!(
        reached <= u64::from(LIMIT),
        "{reached} streams reached the member, limit {LIMIT}"
    );
    lab.assert_serving().await;
}

/// A header list larger than `proxy.max_header_bytes` is refused (431, a
/// reset or GOAWAY), and not forwarded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_huge_header_list_is_refused() {
    let lab = lab("", "\n[proxy]\nmax_header_bytes = 8192\n").await;
    let mut h2 = H2::open(&lab).await;
    h2.handshake().await;
    let big = vec![b'h'; 12 * 1024];
    let block = request_block("GET", "/ews/x", "mail.lab.com", &[("x-big", &big)]);
    assert!(
        h2.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
    );
    let seen = collect(&mut h2, Duration::from_secs(10), 1).await;
    println!("12 KiB header list at 8 KiB: {seen:?}");
    assert_eq!(seen.ok, 0, "a huge header list was served");
    assert!(
        seen.other_status > 0 || !seen.resets.is_empty() || seen.goaway.is_some() || seen.closed,
        "no refusal: {seen:?}"
    );
    assert_eq!(lab.member_requests(), 0);
    lab.assert_serving().await;
}

/// CONTINUATION flood: a header block that never ends. The array must cut
/// the connection without buffering it all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_continuation_flood_is_cut_off() {
    let lab = lab("", "\n[proxy]\nmax_header_bytes = 16384\n").await;
    let pid = lab.array.pid();
    let rss_before = rss_kib(pid);
    let mut h2 = H2::open(&lab).await;
    h2.handshake().await;
    let block = request_block("GET", "/ews/x", "mail.lab.com", &[]);
    let mut sent = 0usize;
    let mut cut = h2.send(&frame(HEADERS, 0, 1, &block)).await;
    let mut piece = Vec::new();
    for i in 0..200 {
        hpack_literal(&mut piece, &format!("x-flood-{i}"), &[b'f'; 60]);
    }
    let cont = frame(CONTINUATION, 0, 1, &piece);
    let started = Instant::now();
    // Up to 64 MiB, or until the array stops us.
    if cut {
        for _ in 0..(64 * 1024 * 1024 / cont.len()) {
            let write = tokio::time::timeout(Duration::from_secs(5), h2.tls.write_all(&cont)).await;
            if !matches!(write, Ok(Ok(()))) {
                break;
            }
            sent += cont.len();
            if started.elapsed() > Duration::from_secs(20) {
                break;
            }
        }
        cut = false;
    }
    let _ = cut;
    let seen = collect(&mut h2, Duration::from_secs(10), usize::MAX).await;
    let rss_after = rss_kib(pid);
    println!(
        "CONTINUATION flood: {} KiB sent before the cut, goaway {:?}, closed {}, RSS {rss_before} -> {rss_after} KiB",
        sent / 1024,
        seen.goaway,
        seen.closed
    );
    assert!(
        seen.goaway.is_some() || seen.closed,
        "the connection survived {} KiB of CONTINUATION",
        sent / 1024
    );
    assert!(
        sent < 16 * 1024 * 1024,
        "the array read {} KiB of an endless header block",
        sent / 1024
    );
    assert!(
        rss_after.saturating_sub(rss_before) < 32 * 1024,
        "RSS grew {} KiB",
        rss_after - rss_before
    );
    assert_eq!(lab.member_requests(), 0);
    lab.assert_serving().await;
}

/// On HTTP/2 the request's authority is `:authority`; a `host` header
/// that disagrees must not launder a foreign authority.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_authority_naming_another_host_is_refused() {
    let lab = lab("", "").await;
    let mut h2 = H2::open(&lab).await;
    h2.handshake().await;
    let block = request_block(
        "GET",
        "/ews/x",
        "evil.example.com",
        &[("host", b"mail.lab.com")],
    );
    assert!(
        h2.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
    );
    let seen = collect(&mut h2, Duration::from_secs(5), 1).await;
    println!(":authority evil, host mail: {seen:?}");
    assert_eq!(seen.ok, 0, "served");
    assert_eq!(lab.member_requests(), 0, "forwarded");
    lab.assert_serving().await;
}

/// The same request with a plain, matching `:authority` is served: the
/// frames above are a fair HTTP/2 client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_hand_made_request_is_served() {
    let lab = lab("", "").await;
    let mut h2 = H2::open(&lab).await;
    h2.handshake().await;
    let block = request_block("GET", "/ews/x", "mail.lab.com", &[]);
    assert!(
        h2.send(&frame(HEADERS, END_HEADERS | END_STREAM, 1, &block))
            .await
    );
    let mut body = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut status_ok = false;
    for _ in 0..1000 {
        match h2.next(deadline).await {
            Event::Frame {
                ty: HEADERS,
                payload,
                ..
            } => status_ok = payload.iter().find(|b| *b & 0xe0 != 0x20) == Some(&0x88),
            Event::Frame {
                ty: DATA,
                flags,
                payload,
                ..
            } => {
                body.extend_from_slice(&payload);
                if flags & END_STREAM != 0 {
                    break;
                }
            }
            Event::Frame { .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(status_ok, "not a 200");
    assert!(String::from_utf8_lossy(&body).contains("\"uri\":\"/ews/x\""));
    assert_eq!(lab.member_requests(), 1);
}

// ---------------------------------------------------------------------------
// Fuzz inputs kept as regression tests

/// A fuzz target's name and its check.
type FuzzTarget = (&'static str, fn(&[u8]));

/// The inputs of `fuzz/<kind>/<target>/` through the fuzz checks; how
/// many ran.
fn run_fuzz_inputs(kinds: &[&str]) -> usize {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let targets: [FuzzTarget; 3] = [
        ("config_parse", fuzz_checks::config_parse),
        ("rewrite_chunks", fuzz_checks::rewrite_chunks),
        ("request_head", fuzz_checks::request_head),
    ];
    let mut ran = 0;
    for (target, check) in targets {
        for kind in kinds {
            let dir = root.join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut files: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            files.sort();
            for f in files {
                if f.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with('.'))
                {
                    continue;
                }
                let data = std::fs::read(&f).unwrap();
                let result = std::panic::catch_unwind(|| check(&data));
                assert!(result.is_ok(), "{} fails its check", f.display());
                ran += 1;
            }
        }
    }
    ran
}

/// Every input under fuzz/seeds/<target>/ and fuzz/regressions/<target>/
/// (crashes the fuzzers found, kept once fixed) through the same checks
/// the fuzz targets run.
#[test]
fn fuzz_inputs_pass_the_fuzz_checks() {
    let ran = run_fuzz_inputs(&["seeds", "regressions"]);
    println!("{ran} fuzz inputs checked");
    assert!(ran > 0, "no fuzz inputs found under fuzz/");
}
