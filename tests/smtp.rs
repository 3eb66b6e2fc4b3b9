//! `listen.smtp`, black-box: a real `casarray serve` balancing SMTP over
//! hubs that are small SMTP servers of this test (so that each can be made
//! to greet 421, stay silent or vanish), with real sockets on 127.0.0.1.
//! The mock servers' own hubs are tested with the mock.

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::*;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How a test hub greets new connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Greet {
    Ok,
    /// `421 4.3.2` (a hub shutting down).
    Busy,
    /// Accepts and says nothing.
    Silent,
}

/// A small SMTP server: greets, answers EHLO 250, anything else 250,
/// QUIT 221; remembers the PROXY header and the lines it got.
#[derive(Clone)]
struct Hub {
    name: &'static str,
    addr: SocketAddr,
    greet: Arc<Mutex<Greet>>,
    /// Every PROXY v2 header received, raw.
    proxies: Arc<Mutex<Vec<Vec<u8>>>>,
    /// Sessions that got past the greeting (EHLO or HELO seen).
    sessions: Arc<Mutex<usize>>,
    task: Arc<tokio::task::JoinHandle<()>>,
}

impl Hub {
    async fn start(name: &'static str) -> Hub {
        Self::start_with(name, false).await
    }

    /// With `expect_proxy`, the hub waits for a PROXY v2 header before it
    /// greets (as Postfix's `smtpd_upstream_proxy_protocol` does).
    async fn start_with(name: &'static str, expect_proxy: bool) -> Hub {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let greet = Arc::new(Mutex::new(Greet::Ok));
        let proxies = Arc::new(Mutex::new(Vec::new()));
        let sessions = Arc::new(Mutex::new(0));
        let (g, p, s) = (greet.clone(), proxies.clone(), sessions.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (g, p, s) = (g.clone(), p.clone(), s.clone());
                tokio::spawn(async move {
                    let _ = serve_hub(name, stream, expect_proxy, g, p, s).await;
                });
            }
        });
        Hub {
            name,
            addr,
            greet,
            proxies,
            sessions,
            task: Arc::new(task),
        }
    }

    fn set(&self, greet: Greet) {
        *self.greet.lock().unwrap() = greet;
    }

    fn sessions(&self) -> usize {
        *self.sessions.lock().unwrap()
    }

    fn stop(&self) {
        self.task.abort();
    }
}

async fn serve_hub(
    name: &str,
    mut stream: TcpStream,
    expect_proxy: bool,
    greet: Arc<Mutex<Greet>>,
    proxies: Arc<Mutex<Vec<Vec<u8>>>>,
    sessions: Arc<Mutex<usize>>,
) -> std::io::Result<()> {
    let mode = *greet.lock().unwrap();
    if expect_proxy {
        let mut head = [0u8; 16];
        stream.read_exact(&mut head).await?;
        assert_eq!(&head[..12], b"\r\n\r\n\0\r\nQUIT\n", "a PROXY v2 signature");
        let len = u16::from_be_bytes([head[14], head[15]]) as usize;
        let mut rest = vec![0u8; len];
        stream.read_exact(&mut rest).await?;
        proxies.lock().unwrap().push([head.to_vec(), rest].concat());
    }
    match mode {
        Greet::Silent => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            return Ok(());
        }
        Greet::Busy => {
            stream
                .write_all(b"421 4.3.2 Service shutting down\r\n")
                .await?;
            return Ok(());
        }
        Greet::Ok => {
            stream
                .write_all(format!("220 {name} ESMTP test hub\r\n").as_bytes())
                .await?
        }
    }
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r).lines();
    while let Some(line) = lines.next_line().await? {
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "HELO" => {
                *sessions.lock().unwrap() += 1;
                w.write_all(format!("250-{name}\r\n250 PIPELINING\r\n").as_bytes())
                    .await?;
            }
            "QUIT" => {
                w.write_all(b"221 2.0.0 bye\r\n").await?;
                return Ok(());
            }
            _ => {
                w.write_all(format!("250 2.0.0 {name} ok\r\n").as_bytes())
                    .await?
            }
        }
    }
    Ok(())
}

/// The admin token of the test arrays.
const TOKEN: &str = "t0ken-for-smtp-tests";

/// An array with `listen.smtp` in front of `hubs` (members EX1..), fast
/// health checks, an admin token, and `smtp_table` as its `[smtp]` keys.
async fn array(dir: &std::path::Path, hubs: &[&Hub], smtp_table: &str) -> (Proc, ArrayAddrs) {
    let certs = make_certs(dir);
    // The members' HTTP side is a closed port: only SMTP matters here.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut text = config_toml(&certs, &[], "");
    text = text.replace(
        "admin = \"127.0.0.1:0\"\n",
        "admin = \"127.0.0.1:0\"\nsmtp = \"127.0.0.1:0\"\n",
    );
    text.push_str(&format!(
        "[smtp]\nbanner_timeout = \"1s\"\n{smtp_table}\n\n"
    ));
    let token = dir.join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&token, private).unwrap();
    text.push_str("[admin]\ntoken_file = \"admin.token\"\n\n");
    for (i, hub) in hubs.iter().enumerate() {
        text.push_str(&format!(
            "[[member]]\nname = \"EX{}\"\naddress = \"{closed}\"\nsmtp = \"{}\"\n\n",
            i + 1,
            hub.addr
        ));
    }
    let config = dir.join("casarray.toml");
    std::fs::write(&config, text).unwrap();
    spawn_array(&config)
}

/// An SMTP client session through the array: its greeting line, then
/// EHLO's last line; the stream stays open for more.
async fn open(addr: SocketAddr) -> (String, BufReader<TcpStream>) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let mut io = BufReader::new(stream);
    let greeting = reply(&mut io).await;
    (greeting, io)
}

/// Reads one whole reply (its last line).
async fn reply(io: &mut BufReader<TcpStream>) -> String {
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(30), io.read_line(&mut line))
            .await
            .expect("a reply in time")
            .unwrap();
        assert!(n > 0, "closed before a reply");
        if line.as_bytes().get(3) != Some(&b'-') {
            return line.trim_end().to_owned();
        }
    }
}

async fn say(io: &mut BufReader<TcpStream>, line: &str) -> String {
    io.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
    reply(io).await
}

/// Member `name` is in SMTP and its last SMTP probe passed (a member starts
/// up before its first probe).
async fn hub_up(admin: SocketAddr, name: &str) -> bool {
    let v = members(admin).await;
    v.as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
        .is_some_and(|m| m["services"]["smtp"] == true && m["last_checks"]["smtp"]["ok"] == true)
}

/// Which hub a greeting came from.
fn hub_of(greeting: &str) -> &str {
    greeting
        .strip_prefix("220 ")
        .and_then(|g| g.split(' ').next())
        .unwrap_or("?")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_reach_a_hub_and_spread_by_least_connections() {
    let dir = tempdir();
    let (a, b) = (Hub::start("hub1").await, Hub::start("hub2").await);
    let (_array, addrs) = array(dir.path(), &[&a, &b], "").await;
    let smtp = addrs
        .smtp
        .expect("the readiness line names the SMTP listener");
    wait_until(
        "both hubs healthy for SMTP",
        Duration::from_secs(30),
        || async { hub_up(addrs.admin, "EX1").await && hub_up(addrs.admin, "EX2").await },
    )
    .await;

    // Two sessions held open land on different hubs.
    let (g1, mut s1) = open(smtp).await;
    assert_eq!(say(&mut s1, "EHLO client.test.com").await, "250 PIPELINING");
    let (g2, mut s2) = open(smtp).await;
    assert_eq!(say(&mut s2, "EHLO client.test.com").await, "250 PIPELINING");
    let mut hubs = [hub_of(&g1).to_owned(), hub_of(&g2).to_owned()];
    hubs.sort();
    assert_eq!(hubs, ["hub1", "hub2"], "{g1} / {g2}");
    assert!(say(&mut s1, "MAIL FROM:<carol@test.com>")
        .await
        .starts_with("250"));
    assert_eq!(say(&mut s1, "QUIT").await, "221 2.0.0 bye");
    assert_eq!(say(&mut s2, "QUIT").await, "221 2.0.0 bye");

    let members = members(addrs.admin).await;
    assert_eq!(members[0]["services"]["smtp"], true, "{members}");
    let ok = metric(
        addrs.admin,
        "casarray_smtp_connections_total",
        &[("result", "ok")],
    )
    .await;
    assert!(ok >= 2.0, "{ok}");
    // The health check said EHLO and QUIT: no broken sessions on the hubs.
    assert!(a.sessions() >= 1 && b.sessions() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_that_greets_421_or_not_at_all_is_skipped_for_the_next() {
    let dir = tempdir();
    let (a, b) = (Hub::start("hub1").await, Hub::start("hub2").await);
    let (_array, addrs) = array(dir.path(), &[&a, &b], "").await;
    let smtp = addrs.smtp.unwrap();
    wait_until("both hubs healthy", Duration::from_secs(30), || async {
        hub_up(addrs.admin, "EX1").await && hub_up(addrs.admin, "EX2").await
    })
    .await;

    // hub1 busy: every new session greets from hub2, none fails.
    a.set(Greet::Busy);
    for _ in 0..6 {
        let (greeting, mut s) = open(smtp).await;
        assert_eq!(hub_of(&greeting), "hub2", "{greeting}");
        assert_eq!(say(&mut s, "QUIT").await, "221 2.0.0 bye");
    }
    // Out of SMTP only (its services map says so), by probe or by the
    // skipped connection.
    wait_until("hub1 out of SMTP", Duration::from_secs(30), || async {
        !hub_up(addrs.admin, "EX1").await
    })
    .await;

    // hub1 silent, hub2 busy: nobody can greet: the array says 421.
    a.set(Greet::Silent);
    b.set(Greet::Busy);
    wait_until("no hub healthy", Duration::from_secs(30), || async {
        !hub_up(addrs.admin, "EX2").await
    })
    .await;
    let (greeting, _) = open(smtp).await;
    assert!(greeting.starts_with("421 4.3.2"), "{greeting}");
    let none = metric(
        addrs.admin,
        "casarray_smtp_connections_total",
        &[("member", "none"), ("result", "no_member")],
    )
    .await;
    assert!(none >= 1.0);

    // Both back: both come back into SMTP.
    a.set(Greet::Ok);
    b.set(Greet::Ok);
    wait_until("both hubs back", Duration::from_secs(30), || async {
        hub_up(addrs.admin, "EX1").await && hub_up(addrs.admin, "EX2").await
    })
    .await;
    let rejected = metric(
        addrs.admin,
        "casarray_smtp_connections_total",
        &[("member", "EX1"), ("result", "rejected")],
    )
    .await;
    assert!(rejected >= 1.0, "{rejected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_hub_is_never_met_by_a_new_session() {
    let dir = tempdir();
    let (a, b) = (Hub::start("hub1").await, Hub::start("hub2").await);
    let (_array, addrs) = array(dir.path(), &[&a, &b], "").await;
    let smtp = addrs.smtp.unwrap();
    wait_until("both hubs healthy", Duration::from_secs(30), || async {
        hub_up(addrs.admin, "EX1").await && hub_up(addrs.admin, "EX2").await
    })
    .await;
    a.stop();
    // Right after the kill, before any probe noticed: still no failure.
    for _ in 0..10 {
        let (greeting, mut s) = open(smtp).await;
        assert_eq!(hub_of(&greeting), "hub2", "{greeting}");
        assert_eq!(say(&mut s, "QUIT").await, "221 2.0.0 bye");
    }
    let refused = metric(
        addrs.admin,
        "casarray_smtp_connections_total",
        &[("member", "EX1"), ("result", "refused")],
    )
    .await;
    assert!(refused >= 1.0 || !hub_up(addrs.admin, "EX1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_tells_the_hub_the_client_address() {
    let dir = tempdir();
    let a = Hub::start_with("hub1", true).await;
    let (_array, addrs) = array(dir.path(), &[&a], "proxy_protocol = true").await;
    let smtp = addrs.smtp.unwrap();
    wait_until("hub healthy", Duration::from_secs(30), || async {
        hub_up(addrs.admin, "EX1").await
    })
    .await;
    let (greeting, mut s) = open(smtp).await;
    assert_eq!(hub_of(&greeting), "hub1");
    let client_port = s.get_ref().local_addr().unwrap().port();
    assert_eq!(say(&mut s, "QUIT").await, "221 2.0.0 bye");
    let headers = a.proxies.lock().unwrap().clone();
    // Health checks send LOCAL headers; the session sent a PROXY one.
    assert!(
        headers.iter().any(|h| h[12] == 0x20),
        "a LOCAL header from the check"
    );
    let proxied = headers
        .iter()
        .find(|h| h[12] == 0x21)
        .expect("a PROXY header for the session");
    assert_eq!(proxied[13], 0x11, "TCP over IPv4");
    assert_eq!(&proxied[16..20], &[127, 0, 0, 1], "the client's address");
    assert_eq!(u16::from_be_bytes([proxied[24], proxied[25]]), client_port);
    assert_eq!(u16::from_be_bytes([proxied[26], proxied[27]]), smtp.port());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_hub_keeps_its_running_session_and_gets_no_new_one() {
    let dir = tempdir();
    let (a, b) = (Hub::start("hub1").await, Hub::start("hub2").await);
    let (_array, addrs) = array(dir.path(), &[&a, &b], "").await;
    let smtp = addrs.smtp.unwrap();
    wait_until("both hubs healthy", Duration::from_secs(30), || async {
        hub_up(addrs.admin, "EX1").await && hub_up(addrs.admin, "EX2").await
    })
    .await;
    // A session on some hub; drain that hub.
    let (greeting, mut running) = open(smtp).await;
    assert_eq!(
        say(&mut running, "EHLO client.test.com").await,
        "250 PIPELINING"
    );
    let hub = hub_of(&greeting).to_owned();
    let (drained, other) = if hub == a.name {
        ("EX1", b.name)
    } else {
        ("EX2", a.name)
    };
    let bearer = format!("Bearer {TOKEN}");
    let (status, body) = http_send(
        addrs.admin,
        "POST",
        &format!("/api/members/{drained}/drain"),
        "",
        &[("authorization", bearer.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(status, 200, "{body}");
    // New sessions go to the other hub only.
    for _ in 0..4 {
        let (greeting, mut s) = open(smtp).await;
        assert_eq!(hub_of(&greeting), other, "{greeting}");
        assert_eq!(say(&mut s, "QUIT").await, "221 2.0.0 bye");
    }
    // The running session goes on, on its hub, to its end.
    for _ in 0..3 {
        let answer = say(&mut running, "NOOP").await;
        assert_eq!(answer, format!("250 2.0.0 {hub} ok"));
    }
    let open_sessions = metric(
        addrs.admin,
        "casarray_smtp_connections_active",
        &[("member", drained)],
    )
    .await;
    assert_eq!(open_sessions, 1.0);
    assert_eq!(say(&mut running, "QUIT").await, "221 2.0.0 bye");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_that_removes_a_hub_keeps_its_running_session() {
    let dir = tempdir();
    let (a, b) = (Hub::start("hub1").await, Hub::start("hub2").await);
    let (_array, addrs) = array(dir.path(), &[&a, &b], "").await;
    let smtp = addrs.smtp.unwrap();
    wait_until("both hubs healthy", Duration::from_secs(30), || async {
        hub_up(addrs.admin, "EX1").await && hub_up(addrs.admin, "EX2").await
    })
    .await;
    // Open sessions until one is on hub1.
    let mut running = None;
    for _ in 0..10 {
        let (greeting, s) = open(smtp).await;
        if hub_of(&greeting) == "hub1" {
            running = Some(s);
            break;
        }
    }
    let mut running = running.expect("a session on hub1");
    assert_eq!(
        say(&mut running, "EHLO client.test.com").await,
        "250 PIPELINING"
    );

    // EX1 leaves the config; the array reloads (it watches the file).
    let config = dir.path().join("casarray.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    let ex1 = format!(
        "[[member]]\nname = \"EX1\"\naddress = \"{}\"\nsmtp = \"{}\"\n\n",
        text.split("address = \"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap(),
        a.addr
    );
    assert!(text.contains(&ex1), "{text}");
    std::fs::write(&config, text.replace(&ex1, "")).unwrap();
    wait_until("the reload", Duration::from_secs(30), || async {
        metric(
            addrs.admin,
            "casarray_config_reloads_total",
            &[("result", "success")],
        )
        .await
            >= 1.0
    })
    .await;
    for _ in 0..4 {
        let (greeting, mut s) = open(smtp).await;
        assert_eq!(hub_of(&greeting), "hub2", "{greeting}");
        assert_eq!(say(&mut s, "QUIT").await, "221 2.0.0 bye");
    }
    // The session on the removed hub is still there.
    assert_eq!(say(&mut running, "NOOP").await, "250 2.0.0 hub1 ok");
    assert_eq!(say(&mut running, "QUIT").await, "221 2.0.0 bye");
}
