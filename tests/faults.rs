//! Faults of members, black-box (issue 8): a real `casarray serve` process
//! over real TLS on 127.0.0.1, in front of fake members run in-process on
//! raw tokio sockets, so each test decides exactly how a member fails:
//! accepts and never answers, answers slowly, closes in the middle of an
//! answer, answers garbage, goes away and comes back.
//!
//! Every wait is bounded and every loop counted; time bounds are generous
//! (CI has two busy cores) and the measured values are printed.
//!
//! The lead's kill -9 test (tests/proxy.rs,
//! `concurrent_clients_see_no_error_when_a_member_dies`) is not repeated
//! here; `kill9_with_posts_at_the_replay_limit` extends it to request bodies
//! right at the 64 KiB replay limit.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use support::*;

/// How a fake member answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// `200 OK<br/>NAME`, keep-alive.
    Normal = 0,
    /// Reads the request, then never answers (the connection stays open).
    Hang,
    /// Answers normally after the fake's delay.
    Slow,
    /// Sends half a status line and header, then closes.
    CloseMidHead,
    /// Sends the head (Content-Length 1000) and 100 bytes, then closes.
    CloseMidBody,
    /// Sends the head and 100 bytes, then goes quiet with the connection open.
    StallBody,
    /// Answers bytes that are not HTTP, then closes.
    Garbage,
    /// Reads the whole request, then closes without a byte of answer.
    ReadBodyThenClose,
    /// Answers the first request of a connection; closes the connection
    /// without answering at the second (its keep-alive ran out just then).
    AnswerOncePerConnection,
    /// The same, resetting the connection (RST) instead of closing it.
    AnswerOnceThenReset,
}

impl Mode {
    fn from_u8(v: u8) -> Mode {
        match v {
            1 => Mode::Hang,
            2 => Mode::Slow,
            3 => Mode::CloseMidHead,
            4 => Mode::CloseMidBody,
            5 => Mode::StallBody,
            6 => Mode::Garbage,
            7 => Mode::ReadBodyThenClose,
            8 => Mode::AnswerOncePerConnection,
            9 => Mode::AnswerOnceThenReset,
            _ => Mode::Normal,
        }
    }
}

struct FakeState {
    name: &'static str,
    mode: AtomicU8,
    /// Health checks get the same treatment as other requests (the whole
    /// server is broken), instead of always passing.
    health_follows: AtomicBool,
    /// Delay of [`Mode::Slow`], in ms.
    delay_ms: AtomicU64,
    /// Requests other than health checks, counted once their head is read.
    requests: AtomicU64,
    /// Their paths, in arrival order.
    seen: Mutex<Vec<String>>,
}

/// A member run in-process on a raw TCP listener.
struct FakeMember {
    addr: SocketAddr,
    state: Arc<FakeState>,
    task: Option<JoinHandle<()>>,
}

impl Drop for FakeMember {
    fn drop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
        }
    }
}

impl FakeMember {
    async fn start(name: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(FakeState {
            name,
            mode: AtomicU8::new(Mode::Normal as u8),
            health_follows: AtomicBool::new(false),
            delay_ms: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });
        let task = Some(tokio::spawn(accept_loop(listener, Arc::clone(&state))));
        FakeMember { addr, state, task }
    }

    fn set_mode(&self, mode: Mode, health_follows: bool) {
        self.state
            .health_follows
            .store(health_follows, Ordering::SeqCst);
        self.state.mode.store(mode as u8, Ordering::SeqCst);
    }

    fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::SeqCst)
    }

    /// Gone at once, as after kill -9: the listener and every connection
    /// are closed.
    async fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    /// Back on the same port.
    async fn restart(&mut self) {
        assert!(self.task.is_none(), "restart of a running fake");
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    eprintln!("rebinding {}: {e}; retrying", self.addr);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        };
        self.task = Some(tokio::spawn(accept_loop(listener, Arc::clone(&self.state))));
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<FakeState>) {
    // Dropping the set (when this task is aborted) aborts every connection.
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { return };
                conns.spawn(serve_fake(stream, Arc::clone(&state)));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
}

/// A request as the fake read it.
struct FakeRequest {
    path: String,
}

/// Largest request head the fake reads.
const FAKE_MAX_HEAD: usize = 64 * 1024;

async fn read_request(io: &mut BufReader<TcpStream>) -> Option<FakeRequest> {
    let mut line = Vec::new();
    let mut head_len = 0;
    let mut path = None;
    let mut content_length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        let n = io.read_until(b'\n', &mut line).await.ok()?;
        if n == 0 {
            return None;
        }
        head_len += n;
        if head_len > FAKE_MAX_HEAD {
            return None;
        }
        let text = String::from_utf8_lossy(&line);
        let text = text.trim_end();
        if path.is_none() {
            path = Some(text.split(' ').nth(1)?.to_owned());
            continue;
        }
        if text.is_empty() {
            break;
        }
        let (name, value) = text.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            content_length = value.parse().ok()?;
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    if chunked {
        // Bounded: each round consumes a chunk line; at most 1 M chunks.
        for _ in 0..1_000_000 {
            line.clear();
            io.read_until(b'\n', &mut line).await.ok()?;
            let size_text = String::from_utf8_lossy(&line);
            let size_text = size_text.trim().split(';').next()?.to_owned();
            let size = usize::from_str_radix(&size_text, 16).ok()?;
            if size == 0 {
                // Trailers, up to the empty line.
                for _ in 0..1000 {
                    line.clear();
                    io.read_until(b'\n', &mut line).await.ok()?;
                    if line == b"\r\n" || line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0u8; size + 2];
            io.read_exact(&mut chunk).await.ok()?;
        }
    } else if content_length > 0 {
        let mut left = content_length;
        let mut buf = vec![0u8; 16 * 1024];
        while left > 0 {
            let want = left.min(buf.len());
            let n = io.read(&mut buf[..want]).await.ok()?;
            if n == 0 {
                return None;
            }
            left -= n;
        }
    }
    Some(FakeRequest { path: path? })
}

async fn serve_fake(stream: TcpStream, st: Arc<FakeState>) {
    let _ = stream.set_nodelay(true);
    let mut io = BufReader::new(stream);
    // One request per round; a keep-alive client sends at most a few
    // thousand in a test.
    for round in 0..100_000 {
        let Some(req) = read_request(&mut io).await else {
            return;
        };
        let health = req.path.to_ascii_lowercase().ends_with("/healthcheck.htm");
        let mode = if health && !st.health_follows.load(Ordering::SeqCst) {
            Mode::Normal
        } else {
            Mode::from_u8(st.mode.load(Ordering::SeqCst))
        };
        if !health {
            st.seen.lock().unwrap().push(req.path.clone());
            st.requests.fetch_add(1, Ordering::SeqCst);
        }
        let out = io.get_mut();
        // The second line names the fake in a way no rewrite touches.
        let body = format!("200 OK<br/>{}\nfake_{}_answer", st.name, st.name);
        let normal = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let partial = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 1000\r\n\r\n{}",
            "x".repeat(100)
        );
        match mode {
            Mode::Normal => {
                if out.write_all(normal.as_bytes()).await.is_err() {
                    return;
                }
            }
            Mode::Slow => {
                let delay = st.delay_ms.load(Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                if out.write_all(normal.as_bytes()).await.is_err() {
                    return;
                }
            }
            Mode::Hang => std::future::pending::<()>().await,
            Mode::CloseMidHead => {
                let _ = out
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/ht")
                    .await;
                return;
            }
            Mode::CloseMidBody => {
                let _ = out.write_all(partial.as_bytes()).await;
                let _ = out.flush().await;
                return;
            }
            Mode::StallBody => {
                let _ = out.write_all(partial.as_bytes()).await;
                let _ = out.flush().await;
                std::future::pending::<()>().await;
            }
            Mode::Garbage => {
                let _ = out
                    .write_all(b"\x00\x01\x02 this is not HTTP at all \xff\xfe\r\n\r\n")
                    .await;
                return;
            }
            Mode::ReadBodyThenClose => return,
            Mode::AnswerOncePerConnection => {
                if round > 0 || out.write_all(normal.as_bytes()).await.is_err() {
                    return;
                }
            }
            Mode::AnswerOnceThenReset => {
                if round > 0 {
                    // Linger 0: the close sends RST, not FIN.
                    let _ = socket2::SockRef::from(&*out).set_linger(Some(Duration::ZERO));
                    return;
                }
                if out.write_all(normal.as_bytes()).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Services with short timeouts: a fault shows within seconds.
const SERVICES: &str = r#"
[[service]]
name = "ews"
prefix = "/ews"
response_timeout = "1s"
idle_timeout = "2s"

[[service]]
name = "owa"
prefix = "/owa"
response_timeout = "1s"
idle_timeout = "2s"
"#;

/// The service response timeout of [`SERVICES`].
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);
/// The idle timeout of [`SERVICES`].
const IDLE_TIMEOUT: Duration = Duration::from_secs(2);
/// What a busy CI machine may add to any bound.
const SLACK: Duration = Duration::from_secs(4);

struct Lab {
    dir: tempfile::TempDir,
    certs: TestCerts,
    config: std::path::PathBuf,
    array: Proc,
    addrs: ArrayAddrs,
    client: Client,
}

/// An array in front of `members` (name, address, weight), with
/// [`SERVICES`] and `extra` config.
fn lab(members: &[(&str, SocketAddr, u32)], extra: &str) -> Lab {
    lab_with(members, SERVICES, extra)
}

/// [`lab`] with other `[[service]]` tables.
fn lab_with(members: &[(&str, SocketAddr, u32)], services: &str, extra: &str) -> Lab {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let mut text = config_toml(&certs, &[], "");
    for (name, addr, weight) in members {
        text.push_str(&member_toml(name, *addr));
        text.push_str(&format!("weight = {weight}\n\n"));
    }
    text.push_str(services);
    text.push_str(extra);
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, text).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    Lab {
        dir,
        certs,
        config,
        array,
        addrs,
        client,
    }
}

async fn wait_up(admin: SocketAddr, names: &[&str], service: &str) {
    for name in names {
        wait_until(
            &format!("{name} up for {service}"),
            Duration::from_secs(30),
            || async { member_up(admin, name, service).await },
        )
        .await;
    }
}

/// What one request gave, and how long it took.
#[derive(Debug)]
struct Outcome {
    path: String,
    elapsed: Duration,
    result: Result<(u16, Bytes), String>,
}

impl Outcome {
    fn status(&self) -> Option<u16> {
        self.result.as_ref().ok().map(|r| r.0)
    }

    fn body(&self) -> String {
        match &self.result {
            Ok((_, b)) => String::from_utf8_lossy(b).into_owned(),
            Err(e) => e.clone(),
        }
    }
}

/// Sends `req` on `conn`, reconnecting once on a dead connection; bounded
/// by `limit`.
async fn timed(
    client: &Client,
    conn: &mut Option<H1>,
    path: &str,
    req: http::Request<http_body_util::Full<Bytes>>,
    limit: Duration,
) -> Outcome {
    let started = Instant::now();
    let result = tokio::time::timeout(limit, async {
        if conn.is_none() {
            *conn = Some(
                client
                    .connect()
                    .await
                    .map_err(|e| format!("connect: {e}"))?,
            );
        }
        let Some(c) = conn.as_mut() else {
            return Err("no connection".to_owned());
        };
        match c.send(req).await {
            Ok(r) => Ok((r.status().as_u16(), r.into_body())),
            Err(e) => {
                *conn = None;
                Err(format!("{e:#}"))
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        *conn = None;
        Err(format!("no answer within {limit:?}"))
    });
    Outcome {
        path: path.to_owned(),
        elapsed: started.elapsed(),
        result,
    }
}

/// `clients` concurrent keep-alive clients, each sending `per_client`
/// requests made by `make(client, i)`; every outcome, in no order.
async fn load<F>(client: &Client, clients: usize, per_client: usize, make: F) -> Vec<Outcome>
where
    F: Fn(usize, usize) -> (String, http::Request<http_body_util::Full<Bytes>>)
        + Send
        + Sync
        + 'static,
{
    let make = Arc::new(make);
    let mut tasks = Vec::new();
    for c in 0..clients {
        let client = client.clone();
        let make = Arc::clone(&make);
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            let mut out = Vec::with_capacity(per_client);
            for i in 0..per_client {
                let (path, req) = make(c, i);
                out.push(timed(&client, &mut conn, &path, req, Duration::from_secs(30)).await);
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    all
}

/// One broken member (BAD, in `mode` for everything, health checks too)
/// next to a good one, under concurrent GETs and POSTs larger than the
/// replay limit on a service without body rewriting (ews) and one with it
/// (owa). Returns the outcomes after checking what holds for every fault:
/// no request outlives its bound, the failed ones are few, only 200, 502
/// and 504 are answered, the good member serves everything else, and BAD is
/// out at the end.
async fn broken_member(mode: Mode, bound: Duration) -> Vec<Outcome> {
    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 24;
    let bad = FakeMember::start("BAD").await;
    let good = FakeMember::start("GOOD").await;
    bad.state.delay_ms.store(
        (RESPONSE_TIMEOUT + Duration::from_secs(2)).as_millis() as u64,
        Ordering::SeqCst,
    );
    let lab = lab(&[("BAD", bad.addr, 1), ("GOOD", good.addr, 1)], "");
    wait_up(lab.addrs.admin, &["BAD", "GOOD"], "ews").await;
    wait_up(lab.addrs.admin, &["BAD", "GOOD"], "owa").await;
    bad.set_mode(mode, true);
    let started = Instant::now();
    let outcomes = load(&lab.client, CLIENTS, PER_CLIENT, |c, i| {
        let path = format!("/{}/x?c={c}&i={i}", if i % 2 == 0 { "ews" } else { "owa" });
        // Every third request has a body past the replay limit: if it meets
        // BAD it cannot be replayed, and its client sees the failure.
        let req = if i % 3 == 1 {
            request("POST", &path, vec![b'p'; 100 * 1024])
        } else {
            get(&path)
        };
        (path, req)
    })
    .await;
    let took = started.elapsed();

    let failed: Vec<&Outcome> = outcomes
        .iter()
        .filter(|o| o.status() != Some(200))
        .collect();
    println!(
        "{mode:?}: {} requests in {took:?}, {} failed: {:?}",
        outcomes.len(),
        failed.len(),
        failed
            .iter()
            .map(|o| (o.path.as_str(), o.status(), o.elapsed, o.body()))
            .collect::<Vec<_>>()
    );
    for o in &outcomes {
        assert!(
            o.elapsed <= bound,
            "{mode:?}: {} took {:?} (bound {bound:?}): {:?}",
            o.path,
            o.elapsed,
            o.result
        );
        if o.status() == Some(200) {
            assert!(
                o.body().contains("fake_GOOD_answer"),
                "{mode:?}: {} answered by {:?}",
                o.path,
                o.body()
            );
        }
    }
    // Each client has at most one request at BAD before BAD is out; a few
    // more may meet it while its removal is under way.
    assert!(
        failed.len() <= 2 * CLIENTS,
        "{mode:?}: {} failed requests: BAD was not taken out",
        failed.len()
    );
    // The last requests of every client were served.
    let tail_failed = outcomes
        .chunks(PER_CLIENT)
        .flat_map(|c| &c[PER_CLIENT - 6..])
        .filter(|o| o.status() != Some(200))
        .count();
    assert_eq!(tail_failed, 0, "{mode:?}: failures after BAD was taken out");
    for service in ["ews", "owa"] {
        assert!(
            !member_up(lab.addrs.admin, "BAD", service).await,
            "{mode:?}: BAD still in for {service}"
        );
    }
    drop(lab);
    outcomes
}

fn statuses(outcomes: &[Outcome]) -> Vec<Option<u16>> {
    outcomes
        .iter()
        .filter(|o| o.status() != Some(200))
        .map(Outcome::status)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_that_never_answers_gives_504_within_the_response_timeout() {
    let outcomes = broken_member(Mode::Hang, RESPONSE_TIMEOUT + SLACK).await;
    let failed = statuses(&outcomes);
    assert!(
        failed.iter().all(|s| *s == Some(504)),
        "a hanging member gives 504: {failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_member_gives_504_within_the_response_timeout() {
    let outcomes = broken_member(Mode::Slow, RESPONSE_TIMEOUT + SLACK).await;
    let failed = statuses(&outcomes);
    assert!(
        failed.iter().all(|s| *s == Some(504)),
        "a slow member gives 504: {failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_closing_in_the_middle_of_the_head_gives_502_or_a_replay() {
    let outcomes = broken_member(Mode::CloseMidHead, SLACK).await;
    let failed = statuses(&outcomes);
    assert!(
        failed.iter().all(|s| *s == Some(502)),
        "a member closing mid-head gives 502 (or its request is replayed): {failed:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_answering_garbage_gives_502_or_a_replay() {
    let outcomes = broken_member(Mode::Garbage, SLACK).await;
    let failed = statuses(&outcomes);
    assert!(
        failed.iter().all(|s| *s == Some(502)),
        "a member answering garbage gives 502 (or its request is replayed): {failed:?}"
    );
}

/// A kept connection the member closes as a request goes out (its
/// keep-alive timeout hit at that moment) is not the member failing: the
/// request goes again on a new connection, nobody is ejected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connection_closed_under_a_request_is_not_a_failure() {
    kept_connection_ends_under_a_request(Mode::AnswerOncePerConnection).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kept_connection_reset_under_a_request_is_not_a_failure() {
    kept_connection_ends_under_a_request(Mode::AnswerOnceThenReset).await;
}

async fn kept_connection_ends_under_a_request(mode: Mode) {
    let fake = FakeMember::start("EX1").await;
    fake.set_mode(mode, false);
    let lab = lab(&[("EX1", fake.addr, 1)], "");
    wait_up(lab.addrs.admin, &["EX1"], "ews").await;
    let mut conn = lab.client.connect().await.unwrap();
    for i in 0..20 {
        let req = if i % 2 == 0 {
            get("/ews/Exchange.asmx")
        } else {
            request("POST", "/owa/auth.owa", vec![b'x'; 1000])
        };
        let r = conn.send(req).await.unwrap();
        assert_eq!(r.status(), 200, "request {i}: {:?}", r.body());
    }
    // Every request after the first met a closed kept connection once.
    assert!(
        fake.requests() >= 39,
        "{} requests reached EX1",
        fake.requests()
    );
    let ejections = metric(lab.addrs.admin, "casarray_passive_ejections_total", &[]).await;
    assert_eq!(ejections, 0.0);
}

/// Once the head went out, the array cannot turn the answer into a 502:
/// it must abort the client's connection so the client sees a truncated
/// body as an error, never as a complete answer; on ews the body passes
/// through as is, on owa through the rewriter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_closing_in_the_middle_of_the_body_aborts_that_answer() {
    let outcomes = broken_member(Mode::CloseMidBody, SLACK).await;
    for o in outcomes.iter().filter(|o| o.status() != Some(200)) {
        assert!(
            o.result.is_err() || o.status() == Some(502),
            "a truncated answer must fail at the client: {o:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_stalling_in_the_body_is_cut_after_the_idle_timeout() {
    let outcomes = broken_member(Mode::StallBody, IDLE_TIMEOUT + SLACK).await;
    for o in outcomes.iter().filter(|o| o.status() != Some(200)) {
        assert!(
            o.result.is_err() || o.status() == Some(504) || o.status() == Some(502),
            "a stalled answer must fail at the client: {o:?}"
        );
        assert!(
            o.elapsed >= IDLE_TIMEOUT - Duration::from_millis(100),
            "cut before the idle timeout: {o:?}"
        );
    }
}

/// A member whose health check passes while its service hangs (Exchange's
/// healthcheck.htm is served by IIS even when the application pool behind
/// it is stuck) must not come back with every good probe and catch clients
/// every probe interval: its re-admissions back off (or it stays out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_hanging_behind_a_passing_health_check_is_readmitted_ever_more_rarely() {
    const CLIENTS: usize = 4;
    const RUN: Duration = Duration::from_secs(8);
    // A short response timeout makes each round short: without back-off,
    // a round every ~0.5 s (timeout plus one 200 ms probe interval).
    const TIMEOUT: Duration = Duration::from_millis(300);
    let bad = FakeMember::start("BAD").await;
    let good = FakeMember::start("GOOD").await;
    let services =
        "\n[[service]]\nname = \"ews\"\nprefix = \"/ews\"\nresponse_timeout = \"300ms\"\n";
    let lab = lab_with(
        &[("BAD", bad.addr, 1), ("GOOD", good.addr, 1)],
        services,
        "",
    );
    wait_up(lab.addrs.admin, &["BAD", "GOOD"], "ews").await;
    bad.set_mode(Mode::Hang, false);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = lab.client.clone();
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            // (completion time, status) of every failed request.
            let mut failed = Vec::new();
            let mut n = 0;
            for i in 0..100_000 {
                if start.elapsed() > RUN {
                    break;
                }
                let path = format!("/ews/x?c={c}&i={i}");
                let req = get(&path);
                let o = timed(&client, &mut conn, &path, req, Duration::from_secs(30)).await;
                n += 1;
                if o.status() != Some(200) {
                    failed.push((start.elapsed(), o.status()));
                }
                // An ordinary client's pace, so every re-admission shows.
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (n, failed)
        }));
    }
    let mut total = 0;
    let mut failed = Vec::new();
    for t in tasks {
        let (n, f) = t.await.unwrap();
        total += n;
        failed.extend(f);
    }
    failed.sort();
    assert!(
        failed.iter().all(|(_, s)| *s == Some(504)),
        "only 504s: {failed:?}"
    );
    // Rounds: failures closer than the response timeout belong together
    // (clients that met BAD during one stay of it).
    let mut rounds: Vec<Duration> = Vec::new();
    let mut last: Option<Duration> = None;
    for (at, _) in &failed {
        if last.is_none_or(|l| *at > l + TIMEOUT) {
            rounds.push(*at);
        }
        last = Some(*at);
    }
    let gaps: Vec<Duration> = rounds.windows(2).map(|w| w[1] - w[0]).collect();
    println!(
        "{total} requests, {} failed in {} rounds at {rounds:?} (gaps {gaps:?})",
        failed.len(),
        rounds.len()
    );
    if let (Some(first), Some(last)) = (gaps.first(), gaps.last()) {
        if gaps.len() >= 2 {
            assert!(
                *last >= *first * 5 / 2,
                "BAD keeps coming back at the same pace: rounds at {rounds:?}"
            );
        }
    }
}

/// A body up to the replay limit that met a member closing the connection
/// is replayed on another member; one byte more and it is not: the client
/// gets 502 and no other member sees the request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_up_to_the_replay_limit_are_replayed_and_larger_ones_are_not() {
    const LIMIT: usize = 8 * 1024;
    let bad = FakeMember::start("BAD").await;
    let good = FakeMember::start("GOOD").await;
    bad.set_mode(Mode::ReadBodyThenClose, false);
    // BAD takes nearly every first attempt.
    let lab = lab(
        &[("BAD", bad.addr, 100), ("GOOD", good.addr, 1)],
        &format!("\n[proxy]\nreplay_body_limit = {LIMIT}\n"),
    );
    let admin = lab.addrs.admin;
    let mut met_bad = [0usize; 2];
    // Each round ejects BAD again, and its ejection window doubles (200 ms,
    // 400 ms, ... 6.4 s): six rounds keep the wait short.
    for round in 0..6 {
        let (size, replayable) = if round % 2 == 0 {
            (LIMIT, true)
        } else {
            (LIMIT + 1, false)
        };
        // BAD is back once its ejection window is over and a probe passes
        // (its health check answers).
        wait_up(admin, &["BAD", "GOOD"], "ews").await;
        let (bad_before, good_before) = (bad.requests(), good.requests());
        let path = format!("/ews/post?round={round}");
        let mut conn = None;
        let o = timed(
            &lab.client,
            &mut conn,
            &path,
            request("POST", &path, vec![b'b'; size]),
            Duration::from_secs(20),
        )
        .await;
        if bad.requests() == bad_before {
            // Went to GOOD first: nothing to learn.
            assert_eq!(o.status(), Some(200), "{o:?}");
            continue;
        }
        met_bad[usize::from(replayable)] += 1;
        if replayable {
            assert_eq!(o.status(), Some(200), "{size} bytes replayed: {o:?}");
            assert!(o.body().contains("fake_GOOD_answer"), "{o:?}");
            assert_eq!(good.requests(), good_before + 1);
        } else {
            assert_eq!(o.status(), Some(502), "{size} bytes not replayed: {o:?}");
            assert_eq!(good.requests(), good_before, "replayed past the limit");
        }
    }
    println!("requests that met BAD: over the limit {met_bad:?} (over, within)");
    assert!(
        met_bad[0] >= 2 && met_bad[1] >= 2,
        "BAD took too few first attempts: {met_bad:?}"
    );
}

/// The lead's kill -9 test with request bodies right at the default 64 KiB
/// replay limit (and just under, and small): a kill -9 of a real member
/// process under concurrent POSTs costs clients nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_with_posts_at_the_replay_limit() {
    const CLIENTS: usize = 6;
    const PER_CLIENT: usize = 120;
    const SIZES: [usize; 4] = [65536, 65535, 4096, 1];
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let (mut ex1, a1) = spawn_mock("EX1", &store, &[]);
    let (_ex2, a2) = spawn_mock("EX2", &store, &[]);
    let config = dir.path().join("casarray.toml");
    std::fs::write(
        &config,
        config_toml(&certs, &[("EX1", a1), ("EX2", a2)], ""),
    )
    .unwrap();
    let (_array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    wait_up(addrs.admin, &["EX1", "EX2"], "ecp").await;

    let done = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let done = Arc::clone(&done);
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            let mut out = Vec::new();
            for i in 0..PER_CLIENT {
                let size = SIZES[(i + c) % SIZES.len()];
                let path = format!("/ecp/post?c={c}&i={i}&size={size}");
                let req = request("POST", &path, vec![b'k'; size]);
                out.push(timed(&client, &mut conn, &path, req, Duration::from_secs(30)).await);
                done.fetch_add(1, Ordering::Relaxed);
            }
            out
        }));
    }
    wait_until("traffic flowing", Duration::from_secs(60), || async {
        done.load(Ordering::Relaxed) >= (CLIENTS * PER_CLIENT / 4) as u64
    })
    .await;
    ex1.kill9();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.unwrap());
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status() != Some(200))
        .map(|o| (o.path.clone(), o.status(), o.body()))
        .collect();
    let retries = metric(addrs.admin, "casarray_upstream_retries_total", &[]).await;
    println!(
        "kill -9 with POSTs up to 64 KiB: {} requests, {} failed, {retries} retries",
        outcomes.len(),
        failed.len()
    );
    assert!(failed.is_empty(), "client errors: {failed:?}");
}

/// One member down and out, many concurrent clients: every request goes to
/// the member left, none is told 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_member_out_never_gives_503_to_concurrent_clients() {
    let mut a = FakeMember::start("A").await;
    let b = FakeMember::start("B").await;
    let lab = lab(&[("A", a.addr, 1), ("B", b.addr, 1)], "");
    wait_up(lab.addrs.admin, &["A", "B"], "ews").await;
    a.stop().await;
    wait_until("A out", Duration::from_secs(30), || async {
        !member_up(lab.addrs.admin, "A", "ews").await
    })
    .await;
    let outcomes = load(&lab.client, 8, 400, |c, i| {
        let path = format!("/ews/x?c={c}&i={i}");
        (path.clone(), get(&path))
    })
    .await;
    let failed = statuses(&outcomes);
    println!("{} requests with A out, failed: {failed:?}", outcomes.len());
    assert!(failed.is_empty(), "{} requests failed", failed.len());
}

/// Members going away and coming back in turn (never both at once): the
/// clients never notice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flapping_members_cost_clients_nothing() {
    let mut a = FakeMember::start("A").await;
    let mut b = FakeMember::start("B").await;
    let lab = lab(&[("A", a.addr, 1), ("B", b.addr, 1)], "");
    wait_up(lab.addrs.admin, &["A", "B"], "ews").await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..4 {
        let client = lab.client.clone();
        let stop = Arc::clone(&stop);
        tasks.push(tokio::spawn(async move {
            let mut conn = None;
            let mut out = Vec::new();
            // Bounded: the flapper ends within ~15 s; 100 000 requests is
            // far more than fit in that.
            for i in 0..100_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let path = format!("/ews/x?c={c}&i={i}");
                let req = get(&path);
                out.push(timed(&client, &mut conn, &path, req, Duration::from_secs(30)).await);
            }
            out
        }));
    }
    // Each member down 300 ms then up 1.5 s, in turn: by the time one
    // goes, the other is back (rise 2 x 200 ms) with room to spare.
    for _ in 0..3 {
        for m in [&mut a, &mut b] {
            m.stop().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            m.restart().await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
        }
    }
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.unwrap());
    }
    let failed: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status() != Some(200))
        .map(|o| (o.path.clone(), o.status(), o.body()))
        .collect();
    let retries = metric(lab.addrs.admin, "casarray_upstream_retries_total", &[]).await;
    println!(
        "flapping: {} requests, {} failed, {retries} retries, A {} B {}",
        outcomes.len(),
        failed.len(),
        a.requests(),
        b.requests()
    );
    assert!(
        outcomes.len() >= 40,
        "too little traffic: {}",
        outcomes.len()
    );
    assert!(failed.is_empty(), "client errors: {failed:?}");
}

/// Every member down: 503 at once (with Retry-After), never a 502 or a
/// hang; one member back: traffic again within rise x interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_members_down_gives_503_then_traffic_within_rise_times_interval() {
    // The test config probes every 200 ms with rise 2.
    const RISE_TIMES_INTERVAL: Duration = Duration::from_millis(400);
    let mut a = FakeMember::start("A").await;
    let mut b = FakeMember::start("B").await;
    let lab = lab(&[("A", a.addr, 1), ("B", b.addr, 1)], "");
    wait_up(lab.addrs.admin, &["A", "B"], "ews").await;
    a.stop().await;
    b.stop().await;
    let mut conn = None;
    // Until both are out by their probes too (fall 2 x 200 ms), then more.
    let until = Instant::now() + Duration::from_secs(2);
    let mut n = 0;
    while Instant::now() < until && n < 10_000 {
        n += 1;
        let o = timed(&lab.client, &mut conn, "/ews/x", get("/ews/x"), SLACK).await;
        assert_eq!(o.status(), Some(503), "with every member down: {o:?}");
        assert!(o.elapsed < SLACK, "{o:?}");
    }
    let r = lab.client.get("/ews/x").await.unwrap();
    assert_eq!(r.status(), 503);
    assert!(r.headers().contains_key("retry-after"));
    for m in ["A", "B"] {
        assert!(!member_up(lab.addrs.admin, m, "ews").await, "{m} still up");
    }

    a.restart().await;
    let back = Instant::now();
    let limit = RISE_TIMES_INTERVAL + Duration::from_secs(3);
    let mut first_ok = None;
    for _ in 0..100_000 {
        let o = timed(&lab.client, &mut conn, "/ews/x", get("/ews/x"), SLACK).await;
        match o.status() {
            Some(200) => {
                first_ok = Some(back.elapsed());
                break;
            }
            Some(503) => {}
            _ => panic!("while A comes back: {o:?}"),
        }
        if back.elapsed() > limit {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let first_ok = first_ok.unwrap_or_else(|| panic!("no traffic {limit:?} after A returned"));
    println!(
        "A served again {first_ok:?} after it returned (rise x interval = {RISE_TIMES_INTERVAL:?})"
    );
    assert!(first_ok <= limit, "{first_ok:?}");
}

/// Restarting the array under load with SIGTERM: every request that
/// reached a member completes (200), the array exits 0, and a new array on
/// the same port takes the traffic again. Requests that arrived while no
/// array listened fail to connect, which clients retry.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_restart_under_load_completes_in_flight_requests() {
    const CLIENTS: usize = 6;
    let member = FakeMember::start("EX1").await;
    // Slow, but well within the 1 s response timeout.
    member.state.delay_ms.store(400, Ordering::SeqCst);
    member.set_mode(Mode::Slow, false);
    let mut lab = lab(
        &[("EX1", member.addr, 1)],
        "\n[proxy]\ndrain_timeout = \"15s\"\n",
    );
    wait_up(lab.addrs.admin, &["EX1"], "ews").await;
    let stop = Arc::new(AtomicBool::new(false));
    let served_after_restart = Arc::new(AtomicU64::new(0));
    let restarted = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = lab.client.clone();
        let stop = Arc::clone(&stop);
        let restarted = Arc::clone(&restarted);
        let served = Arc::clone(&served_after_restart);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..10_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                // One connection per request: every request starts fresh.
                let mut conn = None;
                let path = format!("/ews/x?id={c}-{i}");
                let after = restarted.load(Ordering::SeqCst);
                let o = timed(
                    &client,
                    &mut conn,
                    &path,
                    get(&path),
                    Duration::from_secs(30),
                )
                .await;
                if o.status() == Some(200) && after {
                    served.fetch_add(1, Ordering::SeqCst);
                }
                if o.result.is_err() {
                    // No array right now: do not spin.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                out.push(o);
            }
            out
        }));
    }
    wait_until("requests in flight", Duration::from_secs(30), || async {
        member.requests() >= CLIENTS as u64
    })
    .await;
    let port = lab.addrs.https.port();
    let term = Instant::now();
    lab.array.signal(libc::SIGTERM);
    let status = lab
        .array
        .wait_exit(Duration::from_secs(30))
        .expect("the array did not exit within 30 s of SIGTERM");
    println!("array exited {:?} after SIGTERM: {status}", term.elapsed());
    assert!(status.success(), "exit status {status}");

    // The same config on the same port.
    let text = std::fs::read_to_string(&lab.config).unwrap().replacen(
        "https = \"127.0.0.1:0\"",
        &format!("https = \"127.0.0.1:{port}\""),
        1,
    );
    std::fs::write(&lab.config, text).unwrap();
    let (array2, addrs2) = spawn_array(&lab.config);
    assert_eq!(addrs2.https.port(), port);
    restarted.store(true, Ordering::SeqCst);
    wait_until(
        "traffic through the restarted array",
        Duration::from_secs(30),
        || async { served_after_restart.load(Ordering::SeqCst) >= CLIENTS as u64 },
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.extend(t.await.unwrap());
    }
    drop(array2);

    let seen: Vec<String> = member.state.seen.lock().unwrap().clone();
    let mut lost = Vec::new();
    for o in &outcomes {
        if seen.contains(&o.path) && o.status() != Some(200) {
            lost.push((o.path.clone(), o.status(), o.body()));
        }
    }
    let not_connected = outcomes.iter().filter(|o| o.result.is_err()).count();
    println!(
        "restart: {} requests, {} reached the member, {} failed before reaching it",
        outcomes.len(),
        seen.len(),
        not_connected
    );
    assert!(
        lost.is_empty(),
        "requests that reached the member did not complete: {lost:?}"
    );
    let refused: Vec<_> = outcomes
        .iter()
        .filter(|o| o.status().is_some_and(|s| s != 200))
        .map(|o| (o.path.clone(), o.status()))
        .collect();
    assert!(refused.is_empty(), "the array answered errors: {refused:?}");
    let _ = (&lab.dir, &lab.certs);
}
