//! The mock servers' hub transport and the external system, black-box:
//! real `casarray mock-server --smtp` processes (a DAG of two), the
//! external system (`casarray mock-external`), an array with `listen.smtp`
//! in front, and real clients: Python's smtplib and poplib (the standard
//! library), curl's `pop3://`, raw sockets for protocol edges. Mail is read
//! back by EWS through the array.

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader as StdBufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::dag::{wait_settled, TestDag};
use support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const BIN: &str = env!("CARGO_BIN_EXE_casarray");
const TOKEN: &str = "t0ken-for-hub-tests";
const ALICE: (&str, &str) = ("alice@lab.com", "Alice!lab1");
const BOB: (&str, &str) = ("bob@lab.com", "Bob!lab1");
/// Bound on mail reaching its mailbox (queue, failover, shadow takeover).
const ARRIVE: Duration = Duration::from_secs(90);
const SEND_MANY: &str = include_str!("hub_transport/send_many.py");

// ---- processes -------------------------------------------------------------

/// The external system for test.com.
struct External {
    _proc: Proc,
    smtp: SocketAddr,
    pop3: SocketAddr,
}

/// Starts `casarray mock-external` with `args`, waiting for its line.
fn spawn_external(store: &Path, args: &[&str]) -> External {
    let mut child = Command::new(BIN)
        .arg("mock-external")
        .arg("--store")
        .arg(store)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn mock-external");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in StdBufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .expect("the external system's readiness line");
    let rest = line
        .split("(external): SMTP ")
        .nth(1)
        .unwrap_or_else(|| panic!("{line}"));
    let (smtp, pop3) = rest.split_once(", POP3 ").unwrap();
    External {
        _proc: Proc {
            child,
            name: "external".into(),
        },
        smtp: smtp.trim().parse().unwrap(),
        pop3: pop3.trim().parse().unwrap(),
    }
}

/// A port nobody listens on now (bound, then released).
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Two mock servers (a DAG: DB01 on EX1, DB02 on EX2) each running a hub,
/// and an array with `listen.smtp` (PROXY v2 on) in front.
struct MailLab {
    dag: TestDag,
    _dir: tempfile::TempDir,
    certs: TestCerts,
    _array: Proc,
    addrs: ArrayAddrs,
}

impl MailLab {
    /// `route`: where the hubs' send connector sends test.com mail.
    async fn start(route: SocketAddr) -> MailLab {
        let dir = tempdir();
        let certs = make_certs(dir.path());
        let mut dag = TestDag::two();
        dag.key = certs.key.clone();
        let transport = dag.dir().join("transport");
        let mut hubs = BTreeMap::new();
        for name in ["EX1", "EX2"] {
            let smtp = dag
                .start_with(
                    name,
                    &[
                        "--smtp",
                        "127.0.0.1:0",
                        "--shared-cert",
                        certs.cert.to_str().unwrap(),
                        "--transport-dir",
                        transport.to_str().unwrap(),
                        "--smtp-route",
                        &format!("test.com={route}"),
                    ],
                )
                .expect("the hub's smtp line");
            hubs.insert(name.to_string(), smtp);
        }
        wait_settled(&dag).await;
        let mut text = config_toml(&certs, &[], "");
        text = text.replace(
            "admin = \"127.0.0.1:0\"\n",
            "admin = \"127.0.0.1:0\"\nsmtp = \"127.0.0.1:0\"\n",
        );
        let token = dir.path().join("admin.token");
        std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
        let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
        std::fs::set_permissions(&token, private).unwrap();
        text.push_str(
            "[admin]\ntoken_file = \"admin.token\"\n\n[dag]\nenabled = true\n\n\
             [smtp]\nhealth = \"ehlo\"\nproxy_protocol = true\nbanner_timeout = \"2s\"\n\n\
             [[database]]\nname = \"DB01\"\n\n[[database]]\nname = \"DB02\"\n\n",
        );
        for name in ["EX1", "EX2"] {
            text.push_str(&format!(
                "[[member]]\nname = \"{name}\"\naddress = \"{}\"\nfqdn = \"{}.lab.local\"\nsmtp = \"{}\"\n\n",
                dag.addr(name),
                name.to_ascii_lowercase(),
                hubs[name]
            ));
        }
        let config = dir.path().join("casarray.toml");
        std::fs::write(&config, text).unwrap();
        let (array, addrs) = spawn_array_with(&config, &[], Some(&dir.path().join("array.log")));
        let lab = MailLab {
            dag,
            _dir: dir,
            certs,
            _array: array,
            addrs,
        };
        for name in ["EX1", "EX2"] {
            let admin = lab.addrs.admin;
            wait_until(
                &format!("{name}'s hub up in the array"),
                Duration::from_secs(60),
                || async move { smtp_up(admin, name).await == Some(true) },
            )
            .await;
        }
        lab
    }

    fn smtp(&self) -> SocketAddr {
        self.addrs.smtp.expect("listen.smtp")
    }

    fn client(&self) -> Client {
        Client::h1(self.addrs.https, &self.certs.ca_pem)
    }
}

/// Whether member `name` is healthy for SMTP in `/api/members`.
async fn smtp_up(admin: SocketAddr, name: &str) -> Option<bool> {
    let v = members(admin).await;
    v.as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["services"]["smtp"].as_bool())
}

async fn service_up(admin: SocketAddr, name: &str, service: &str) -> Option<bool> {
    let v = members(admin).await;
    v.as_array()?
        .iter()
        .find(|m| m["name"] == name)
        .and_then(|m| m["services"][service].as_bool())
}

// ---- EWS -------------------------------------------------------------------

fn basic(user: (&str, &str)) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", user.0, user.1))
    )
}

fn soap(operation: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\" \
         xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\">\
         <soap:Body>{operation}</soap:Body></soap:Envelope>"
    )
}

/// An EWS call through the array; the body of a 200 answer.
async fn ews(client: &Client, user: (&str, &str), operation: &str) -> Option<String> {
    let auth = basic(user);
    let req = build(
        "POST",
        "/EWS/Exchange.asmx",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "text/xml; charset=utf-8"),
        ],
        soap(operation),
    );
    let r = tokio::time::timeout(Duration::from_secs(30), client.send(req))
        .await
        .ok()?
        .ok()?;
    (r.status() == 200).then(|| text(&r))
}

/// The subjects of `user`'s inbox items whose subject contains `tag`.
async fn subjects(client: &Client, user: (&str, &str), tag: &str) -> Option<Vec<String>> {
    let body = ews(
        client,
        user,
        &format!(
            "<m:FindItem Traversal=\"Shallow\">\
             <m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>\
             <m:IndexedPageItemView MaxEntriesReturned=\"1000\" Offset=\"0\" BasePoint=\"Beginning\"/>\
             <m:Restriction><t:Contains ContainmentMode=\"Substring\" ContainmentComparison=\"IgnoreCase\">\
             <t:FieldURI FieldURI=\"item:Subject\"/><t:Constant Value=\"{tag}\"/></t:Contains></m:Restriction>\
             <m:ParentFolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:ParentFolderIds>\
             </m:FindItem>"
        ),
    )
    .await?;
    if !body.contains("ResponseClass=\"Success\"") {
        return None;
    }
    Some(
        body.split("<t:Subject>")
            .skip(1)
            .filter_map(|s| s.split("</t:Subject>").next())
            .map(str::to_string)
            .collect(),
    )
}

/// The whole GetItem answer for the first inbox item of `user` whose
/// subject contains `tag`, waiting for it to arrive.
async fn get_message(client: &Client, user: (&str, &str), tag: &str) -> String {
    let deadline = Instant::now() + ARRIVE;
    loop {
        let found = ews(
            client,
            user,
            &format!(
                "<m:FindItem Traversal=\"Shallow\">\
                 <m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>\
                 <m:Restriction><t:Contains ContainmentMode=\"Substring\" ContainmentComparison=\"IgnoreCase\">\
                 <t:FieldURI FieldURI=\"item:Subject\"/><t:Constant Value=\"{tag}\"/></t:Contains></m:Restriction>\
                 <m:ParentFolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:ParentFolderIds>\
                 </m:FindItem>"
            ),
        )
        .await;
        let id = found.as_deref().and_then(|b| {
            b.split("<t:ItemId Id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .map(str::to_string)
        });
        if let Some(id) = id {
            let item = ews(
                client,
                user,
                &format!(
                    "<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>\
                     <m:ItemIds><t:ItemId Id=\"{id}\"/></m:ItemIds></m:GetItem>"
                ),
            )
            .await;
            if let Some(item) = item.filter(|i| i.contains("ResponseClass=\"Success\"")) {
                return item;
            }
        }
        assert!(Instant::now() < deadline, "{tag} never reached {}", user.0);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The `Received` header values of a GetItem answer, newest first.
fn received(item: &str) -> Vec<String> {
    item.split("<t:InternetMessageHeader HeaderName=\"Received\">")
        .skip(1)
        .filter_map(|s| s.split("</t:InternetMessageHeader>").next())
        .map(str::to_string)
        .collect()
}

// ---- clients ---------------------------------------------------------------

/// Runs a Python program (stdin) with `args`; its stdout, or a panic with
/// its stderr. Python 3 is required (the standard library is the client).
fn python(program: &str, args: &[&str], limit: Duration) -> String {
    let mut child = Command::new("python3")
        .arg("-")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is needed by these tests (Debian: apt-get install python3)");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(program.as_bytes()).unwrap();
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = rx
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("python did not finish within {limit:?}"))
        .unwrap();
    assert!(
        out.status.success(),
        "python failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A raw SMTP session: reads whole replies, says lines.
struct Raw {
    io: BufReader<TcpStream>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> (Raw, String) {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut raw = Raw {
            io: BufReader::new(tcp),
        };
        let greeting = raw.reply().await;
        (raw, greeting)
    }

    /// One whole reply, every line joined by `\n`.
    async fn reply(&mut self) -> String {
        let mut all = Vec::new();
        loop {
            let mut line = String::new();
            let n = tokio::time::timeout(Duration::from_secs(30), self.io.read_line(&mut line))
                .await
                .expect("a reply in time")
                .unwrap();
            assert!(n > 0, "closed before a reply; so far {all:?}");
            let line = line.trim_end().to_string();
            let last = line.as_bytes().get(3) != Some(&b'-');
            all.push(line);
            if last {
                return all.join("\n");
            }
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.io.get_mut().write_all(bytes).await.unwrap();
    }

    async fn say(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

/// The hub a greeting names (`... casarray mock hub EX1)`).
fn hub_of(greeting: &str) -> String {
    greeting
        .rsplit("mock hub ")
        .next()
        .map(|s| s.trim_end_matches(')').to_string())
        .unwrap_or_default()
}

// ---- the hub alone -----------------------------------------------------------

/// One mock server with a hub (shared store, no DAG) and a small size
/// limit: the protocol edges, delivery, PROXY v2 and the fail switch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_speaks_smtp_and_delivers_into_the_mailbox() {
    let dir = tempdir();
    let (_mock, http, smtp) = spawn_mock_hub(
        "EX1",
        &dir.path().join("store"),
        &["--smtp", "127.0.0.1:0", "--smtp-max-size", "4000"],
        &dir.path().join("ex1.log"),
    );
    let smtp = smtp.expect("smtp line");

    let (mut s, greeting) = Raw::connect(smtp).await;
    assert!(greeting.starts_with("220 ex1.lab.local "), "{greeting}");
    assert_eq!(hub_of(&greeting), "EX1");
    // Out of sequence, unknown, malformed, too long.
    assert!(s
        .say("MAIL FROM:<carol@test.com>")
        .await
        .starts_with("503 "));
    assert!(s.say("HELLO x").await.starts_with("500 "));
    assert!(s.say("EHLO").await.starts_with("501 "));
    let long = format!("NOOP {}", "x".repeat(1200));
    assert!(s.say(&long).await.starts_with("500 5.5.2"));
    let ehlo = s.say("EHLO client.example").await;
    for ext in ["PIPELINING", "SIZE 4000", "8BITMIME"] {
        assert!(
            ehlo.contains(&format!("250-{ext}")) || ehlo.contains(&format!("250 {ext}")),
            "{ehlo}"
        );
    }
    assert!(
        !ehlo.contains("STARTTLS"),
        "no certificate, no STARTTLS: {ehlo}"
    );
    assert!(s.say("RCPT TO:<alice@lab.com>").await.starts_with("503 "));
    assert!(s.say("DATA").await.starts_with("503 "));
    assert!(s.say("VRFY alice").await.starts_with("252 "));
    assert!(s.say("NOOP").await.starts_with("250 "));
    assert!(s
        .say("MAIL FROM:<carol@test.com> SIZE=999999")
        .await
        .starts_with("552 "));
    assert!(s
        .say("MAIL FROM:<carol@test.com> SIZE=100")
        .await
        .starts_with("250 "));
    assert!(s
        .say("MAIL FROM:<carol@test.com>")
        .await
        .starts_with("503 "));
    assert!(s
        .say("RCPT TO:<nobody@lab.com>")
        .await
        .starts_with("550 5.1.1"));
    assert!(s
        .say("RCPT TO:<someone@elsewhere.example>")
        .await
        .starts_with("550 5.7.1"));
    assert!(s.say("RCPT TO:alice@lab.com").await.starts_with("501 "));
    assert!(
        s.say("DATA").await.starts_with("503 "),
        "no valid recipient yet"
    );
    assert!(s.say("RSET").await.starts_with("250 "));
    // Pipelined: MAIL, RCPT, DATA in one write, three replies.
    s.send(b"MAIL FROM:<carol@test.com>\r\nRCPT TO:<alice@lab.com>\r\nDATA\r\n")
        .await;
    assert!(s.reply().await.starts_with("250 "));
    assert!(s.reply().await.starts_with("250 "));
    assert!(s.reply().await.starts_with("354 "));
    s.send(
        b"From: Carol <carol@test.com>\r\nTo: alice@lab.com\r\nSubject: hub-direct-1\r\n\
          Message-ID: <hub-direct-1@test.example>\r\n\r\nfirst line\r\n..dot line\r\n.\r\n",
    )
    .await;
    let done = s.reply().await;
    assert!(done.starts_with("250 2.6.0"), "{done}");
    // Too big: the data is read to its end, then 552; the session goes on.
    assert!(s
        .say("MAIL FROM:<carol@test.com>")
        .await
        .starts_with("250 "));
    assert!(s.say("RCPT TO:<bob@lab.com>").await.starts_with("250 "));
    assert!(s.say("DATA").await.starts_with("354 "));
    let line = format!("{}\r\n", "y".repeat(70));
    let big = format!("Subject: too big\r\n\r\n{}.\r\n", line.repeat(80));
    s.send(big.as_bytes()).await;
    assert!(s.reply().await.starts_with("552 "));
    assert!(s.say("QUIT").await.starts_with("221 "));

    // In Alice's mailbox, dot-stuffing undone, Received naming the hub.
    let item = mailbox_item(http, ALICE, "hub-direct-1").await;
    assert!(item.contains("first line\r\n.dot line"), "{item}");
    let rec = received(&item);
    assert_eq!(rec.len(), 1, "{item}");
    assert!(
        rec[0]
            .starts_with("from client.example ([127.0.0.1]) by ex1.lab.local (EX1 hub transport)"),
        "{rec:?}"
    );
    assert!(
        item.contains(
            "<t:InternetMessageId>&lt;hub-direct-1@test.example&gt;</t:InternetMessageId>"
        ),
        "{item}"
    );

    // The same Message-ID again (a client's resend): one copy.
    let (mut s, _) = Raw::connect(smtp).await;
    s.say("EHLO client.example").await;
    s.say("MAIL FROM:<carol@test.com>").await;
    s.say("RCPT TO:<alice@lab.com>").await;
    s.say("DATA").await;
    s.send(
        b"Subject: hub-direct-1\r\nMessage-ID: <hub-direct-1@test.example>\r\n\r\nagain\r\n.\r\n",
    )
    .await;
    assert!(s.reply().await.starts_with("250 "));
    // PROXY v2 first: the client's address goes into Received.
    let (mut p, _) = Raw::connect(smtp).await;
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.extend_from_slice(&[
        0x21, 0x11, 0, 12, 192, 0, 2, 7, 127, 0, 0, 1, 0xc3, 0x50, 0, 25,
    ]);
    p.send(&header).await;
    assert!(p.say("EHLO proxied.example").await.starts_with("250"));
    p.say("MAIL FROM:<carol@test.com>").await;
    p.say("RCPT TO:<bob@lab.com>").await;
    p.say("DATA").await;
    p.send(b"Subject: hub-proxied\r\n\r\nvia a balancer\r\n.\r\n")
        .await;
    assert!(p.reply().await.starts_with("250 "));
    let item = mailbox_item(http, BOB, "hub-proxied").await;
    assert!(
        received(&item)[0].starts_with("from proxied.example ([192.0.2.7]) by ex1.lab.local"),
        "{item}"
    );
    assert_eq!(
        count_direct(http, ALICE, "hub-direct-1").await,
        1,
        "deduplicated"
    );

    // The fail switch: 421 greetings until healed; HTTP unaffected.
    let (status, _) = http_send_post(http, "/mock/fail/smtp").await;
    assert_eq!(status, 200);
    let (_s, greeting) = Raw::connect(smtp).await;
    assert!(greeting.starts_with("421 "), "{greeting}");
    let (status, body) = http_get(http, "/owa/healthcheck.htm").await.unwrap();
    assert_eq!(status, 200, "{body}");
    http_send_post(http, "/mock/heal/smtp").await;
    let (_s, greeting) = Raw::connect(smtp).await;
    assert!(greeting.starts_with("220 "), "{greeting}");
}

async fn http_send_post(addr: SocketAddr, path: &str) -> (u16, String) {
    let r = http_call(addr, "POST", path, &[], "", Duration::from_secs(10))
        .await
        .unwrap();
    (r.status, r.body)
}

/// EWS straight to a mock server (plain HTTP).
async fn ews_direct(addr: SocketAddr, user: (&str, &str), operation: &str) -> String {
    let auth = basic(user);
    let r = http_call(
        addr,
        "POST",
        "/EWS/Exchange.asmx",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "text/xml; charset=utf-8"),
        ],
        &soap(operation),
        Duration::from_secs(30),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

async fn count_direct(addr: SocketAddr, user: (&str, &str), tag: &str) -> usize {
    let body = ews_direct(
        addr,
        user,
        &format!(
            "<m:FindItem Traversal=\"Shallow\"><m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>\
             <m:Restriction><t:Contains ContainmentMode=\"Substring\" ContainmentComparison=\"IgnoreCase\">\
             <t:FieldURI FieldURI=\"item:Subject\"/><t:Constant Value=\"{tag}\"/></t:Contains></m:Restriction>\
             <m:ParentFolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:ParentFolderIds></m:FindItem>"
        ),
    )
    .await;
    body.matches("<t:Subject>").count()
}

async fn mailbox_item(addr: SocketAddr, user: (&str, &str), tag: &str) -> String {
    let body = ews_direct(
        addr,
        user,
        &format!(
            "<m:FindItem Traversal=\"Shallow\"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>\
             <m:Restriction><t:Contains ContainmentMode=\"Substring\" ContainmentComparison=\"IgnoreCase\">\
             <t:FieldURI FieldURI=\"item:Subject\"/><t:Constant Value=\"{tag}\"/></t:Contains></m:Restriction>\
             <m:ParentFolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:ParentFolderIds></m:FindItem>"
        ),
    )
    .await;
    let id = body
        .split("<t:ItemId Id=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .unwrap_or_else(|| panic!("{tag} not in {}'s inbox: {body}", user.0))
        .to_string();
    ews_direct(
        addr,
        user,
        &format!(
            "<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>\
             <m:ItemIds><t:ItemId Id=\"{id}\"/></m:ItemIds></m:GetItem>"
        ),
    )
    .await
}

// ---- through the array -----------------------------------------------------

/// STARTTLS through the array verified against the lab CA as
/// mail.lab.com; PROXY v2 putting the client's address (127.0.0.2 here,
/// the array being 127.0.0.1) into Received:; a hub failed on purpose out
/// of SMTP only; a drained hub's running session finishing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_the_array_starttls_proxy_fail_switch_and_drain() {
    let lab = MailLab::start(free_addr()).await;
    let smtp = lab.smtp();
    let ca = lab.dag.dir().join("ca.pem");
    std::fs::write(&ca, &lab.certs.ca_pem).unwrap();
    let program = r#"
import smtplib, ssl, sys
host, port, ca = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
s = smtplib.SMTP(timeout=60, source_address=("127.0.0.2", 0))
s._host = "mail.lab.com"
code, greeting = s.connect(host, port)
s.ehlo("tls.example")
s.starttls(context=ctx)
s.ehlo("tls.example")
s.sendmail("carol@test.com", ["alice@lab.com"],
    "Subject: array-tls-1\r\nMessage-ID: <array-tls-1@test.example>\r\n\r\nover TLS\r\n")
s.quit()
print(greeting.decode())
"#;
    let greeting = python(
        program,
        &[
            &smtp.ip().to_string(),
            &smtp.port().to_string(),
            ca.to_str().unwrap(),
        ],
        Duration::from_secs(120),
    );
    let carrier = hub_of(greeting.trim());
    assert!(carrier == "EX1" || carrier == "EX2", "{greeting}");
    let client = lab.client();
    let item = get_message(&client, ALICE, "array-tls-1").await;
    let rec = received(&item);
    let by = format!(
        "by {}.lab.local ({carrier} hub transport) with ESMTPS",
        carrier.to_ascii_lowercase()
    );
    assert!(
        rec[0].starts_with("from tls.example ([127.0.0.2])") && rec[0].contains(&by),
        "the carrying hub and the client's address: {rec:?}"
    );

    // EX1's hub failed on purpose: out of SMTP, still in for HTTP.
    let admin = lab.addrs.admin;
    let ex1 = lab.dag.addr("EX1");
    http_send_post(ex1, "/mock/fail/smtp").await;
    wait_until("EX1 out of SMTP", Duration::from_secs(30), || async move {
        smtp_up(admin, "EX1").await == Some(false)
    })
    .await;
    assert_eq!(service_up(admin, "EX1", "owa").await, Some(true));
    assert_eq!(service_up(admin, "EX1", "ews").await, Some(true));
    for _ in 0..6 {
        let (mut s, greeting) = Raw::connect(smtp).await;
        assert_eq!(hub_of(&greeting), "EX2", "{greeting}");
        s.say("QUIT").await;
    }
    http_send_post(ex1, "/mock/heal/smtp").await;
    wait_until("EX1 back in SMTP", Duration::from_secs(30), || async move {
        smtp_up(admin, "EX1").await == Some(true)
    })
    .await;

    // Drain: a running session on the drained hub finishes.
    let (mut s, greeting) = Raw::connect(smtp).await;
    let hub = hub_of(&greeting);
    assert!(s.say("EHLO drain.example").await.starts_with("250"));
    let r = http_call(
        admin,
        "POST",
        &format!("/api/members/{hub}/drain"),
        &[("authorization", &format!("Bearer {TOKEN}"))],
        "",
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let other = if hub == "EX1" { "EX2" } else { "EX1" };
    let (mut n, g2) = Raw::connect(smtp).await;
    assert_eq!(hub_of(&g2), other, "new sessions avoid the drained hub");
    n.say("QUIT").await;
    assert!(s
        .say("MAIL FROM:<carol@test.com>")
        .await
        .starts_with("250 "));
    assert!(s.say("RCPT TO:<bob@lab.com>").await.starts_with("250 "));
    assert!(s.say("DATA").await.starts_with("354 "));
    s.send(b"Subject: array-drain-1\r\n\r\nfinished while draining\r\n.\r\n")
        .await;
    assert!(s.reply().await.starts_with("250 "));
    assert!(s.say("QUIT").await.starts_with("221 "));
    let item = get_message(&client, BOB, "array-drain-1").await;
    assert!(
        received(&item)[0].contains(&format!("({hub} hub transport)")),
        "{item}"
    );
}

/// 200 messages to Alice and Bob through the array over 4 parallel
/// smtplib sessions; EX1 (a hub, and DB01's active copy) is killed -9
/// after 60 are acknowledged. Every acknowledged message ends in its
/// mailbox exactly once; sessions cut are retried by the client; new
/// sessions after the kill never fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mail_keeps_flowing_when_a_hub_is_killed() {
    let mut lab = MailLab::start(free_addr()).await;
    let smtp = lab.smtp();
    let pid = lab.dag.pid("EX1");
    let out = python(
        SEND_MANY,
        &[
            &smtp.ip().to_string(),
            &smtp.port().to_string(),
            "200",
            "4",
            "60",
            &pid.to_string(),
            "kill",
        ],
        Duration::from_secs(600),
    );
    lab.dag.kill9("EX1");
    let report: Value = serde_json::from_str(out.trim()).expect("the client's report");
    let acked: Vec<u64> = report["acked"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    let cut = report["cut"].as_u64().unwrap();
    let failed_new = report["failed_new"].as_u64().unwrap();
    assert!(report["killed"] == true, "{report}");
    assert_eq!(report["gave_up"], serde_json::json!([]), "{report}");
    assert_eq!(
        failed_new, 0,
        "new sessions after the kill failed: {report}"
    );
    assert_eq!(acked.len(), 200, "every message acknowledged in the end");

    // Each in its mailbox exactly once, read by EWS through the array.
    let client = lab.client();
    let deadline = Instant::now() + ARRIVE;
    let (mut delivered, mut duplicates, mut missing);
    loop {
        let a = subjects(&client, ALICE, "kill-").await;
        let b = subjects(&client, BOB, "kill-").await;
        let (delivered_now, dup_now, missing_now) = match (a, b) {
            (Some(a), Some(b)) => tally(&acked, &a, &b),
            _ => (0, 0, acked.len()),
        };
        delivered = delivered_now;
        duplicates = dup_now;
        missing = missing_now;
        if missing == 0 || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!(
        "hub killed -9 after 60: acknowledged {}, delivered {delivered}, duplicates {duplicates}, \
         missing {missing}, sessions cut (and retried) {cut}, failed new sessions {failed_new}",
        acked.len()
    );
    assert_eq!(missing, 0, "acknowledged messages missing");
    assert_eq!(duplicates, 0, "messages delivered twice");
}

/// (messages found, extra copies, acknowledged messages missing).
fn tally(acked: &[u64], alice: &[String], bob: &[String]) -> (usize, usize, usize) {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for s in alice.iter().chain(bob) {
        *counts.entry(s.clone()).or_default() += 1;
    }
    let found = counts.len();
    let dups = counts.values().map(|n| n - 1).sum();
    let missing = acked
        .iter()
        .filter(|i| !counts.contains_key(&format!("kill-{i:04}")))
        .count();
    (found, dups, missing)
}

/// Outbound through the send connector: Alice sends to carol@test.com by
/// EWS through the array while test.com's host is down, so the message waits
/// in the carrying hub's queue (with a shadow copy on the other hub); that
/// hub is killed -9; test.com comes up; the other hub delivers; Carol
/// reads it by POP3 (poplib and curl) exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_mail_survives_the_carrying_hub() {
    let route = free_addr();
    let mut lab = MailLab::start(route).await;
    let smtp = lab.smtp();
    // Alice sends by EWS through the array: the server that takes the
    // request submits it to its own hub.
    let client = lab.client();
    let sent = ews(
        &client,
        ALICE,
        "<m:CreateItem MessageDisposition=\"SendAndSaveCopy\"><m:Items><t:Message>\
         <t:Subject>to-carol-1</t:Subject><t:Body BodyType=\"Text\">Hello Carol</t:Body>\
         <t:ToRecipients><t:Mailbox><t:EmailAddress>carol@test.com</t:EmailAddress></t:Mailbox></t:ToRecipients>\
         </t:Message></m:Items></m:CreateItem>",
    )
    .await
    .expect("EWS through the array");
    assert!(sent.contains("ResponseClass=\"Success\""), "{sent}");
    // The carrying hub holds it in its queue; find which by its files.
    let carrier = wait_for_queued(&lab).await;
    let survivor = if carrier == "EX1" { "EX2" } else { "EX1" };
    assert!(
        shadow_copies(&lab, survivor, &carrier) == 1,
        "{survivor} holds a shadow copy for {carrier}"
    );
    lab.dag.kill9(&carrier);

    let store = lab.dag.dir().join("external");
    let ext = spawn_external(
        &store,
        &["--smtp", &route.to_string(), "--relay", &smtp.to_string()],
    );
    assert_eq!(
        ext.smtp, route,
        "test.com's host is where the connector sends"
    );
    let pop3 = ext.pop3;
    let reader = r#"
import poplib, sys
p = poplib.POP3(sys.argv[1], int(sys.argv[2]), timeout=30)
p.user("carol"); p.pass_("Carol!test1")
n, _ = p.stat()
subjects = []
for i in range(1, n + 1):
    lines = p.retr(i)[1]
    subjects += [l.decode() for l in lines if l.lower().startswith(b"subject:")]
p.quit()
print("\n".join(subjects))
"#;
    let deadline = Instant::now() + ARRIVE;
    let subjects = loop {
        let out = python(
            reader,
            &[&pop3.ip().to_string(), &pop3.port().to_string()],
            Duration::from_secs(60),
        );
        if out.contains("to-carol-1") || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(subjects.matches("to-carol-1").count(), 1, "{subjects}");
    // curl's pop3:// reads it too (the first message).
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "30", "-u", "carol:Carol!test1"])
        .arg(format!("pop3://{pop3}/1"))
        .output()
        .expect("curl is needed by these tests (Debian: apt-get install curl)");
    let mail = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(mail.contains("Subject: to-carol-1"), "{mail}");
    assert!(
        mail.contains(&format!("({carrier} hub transport)")),
        "the Received: lines name the hub that took it: {mail}"
    );
}

/// The hub whose queue holds a message, waiting for it.
async fn wait_for_queued(lab: &MailLab) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for name in ["EX1", "EX2"] {
            let dir = lab
                .dag
                .server(name)
                .store
                .join("transport")
                .join(name)
                .join("queue");
            let n = std::fs::read_dir(&dir)
                .map(|d| {
                    d.flatten()
                        .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                        .count()
                })
                .unwrap_or(0);
            if n > 0 {
                return name.to_string();
            }
        }
        assert!(Instant::now() < deadline, "nothing queued");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How many shadow copies `holder` keeps for `primary`.
fn shadow_copies(lab: &MailLab, holder: &str, primary: &str) -> usize {
    let dir = lab
        .dag
        .server(holder)
        .store
        .join("transport")
        .join(holder)
        .join("shadow")
        .join(primary);
    std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .count()
        })
        .unwrap_or(0)
}
