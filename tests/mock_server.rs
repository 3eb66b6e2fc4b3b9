//! Black-box tests of `casarray mock-server`: real processes on 127.0.0.1
//! with ephemeral ports, driven over HTTP.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a server may take to say it is listening (CI is slow): 60 s.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Bound on any single exchange: 30 s.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A mock server child process, killed on drop.
struct Mock {
    child: Child,
    addr: SocketAddr,
}

impl Mock {
    fn start(name: &str, store: &Path, extra: &[&str]) -> Mock {
        let mut child = Command::new(env!("CARGO_BIN_EXE_casarray"))
            .args([
                "mock-server",
                "--name",
                name,
                "--listen",
                "127.0.0.1:0",
                "--store",
            ])
            .arg(store)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn casarray mock-server");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(READY_TIMEOUT)
            .expect("mock server readiness line");
        let prefix = format!("mock-server {name} listening on ");
        let addr = line
            .trim()
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("unexpected readiness line {line:?}"))
            .parse()
            .expect("address in readiness line");
        Mock { child, addr }
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = i32::try_from(self.child.id()).unwrap();
        // SAFETY: signalling our own child process.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "mock server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Mock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

/// One request on a fresh HTTP/1.1 connection.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Reply {
    tokio::time::timeout(IO_TIMEOUT, async {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut req = Request::builder()
            .method(Method::from_bytes(method.as_bytes()).unwrap())
            .uri(path)
            .header("host", "mock.test");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = sender
            .send_request(req.body(Full::new(body.into())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    })
    .await
    .expect("request timed out")
}

async fn get(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "GET", path, &[], Bytes::new()).await
}

async fn post(addr: SocketAddr, path: &str) -> Reply {
    send(addr, "POST", path, &[], Bytes::new()).await
}

fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

async fn state(addr: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&get(addr, "/mock/state").await.body).unwrap()
}

/// A fresh store directory (and a key file for OWA sessions).
fn lab_dir() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let key = rcgen::KeyPair::generate().unwrap();
    let key_path = dir.path().join("shared.key");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    (dir, store, key_path)
}

const SERVICE_PREFIXES: &[(&str, &str)] = &[
    ("owa", "owa"),
    ("ecp", "ecp"),
    ("ews", "EWS"),
    ("eas", "Microsoft-Server-ActiveSync"),
    ("autodiscover", "Autodiscover"),
    ("rpc", "rpc"),
    ("mapi", "mapi"),
    ("oab", "OAB"),
    ("powershell", "PowerShell"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_fail_and_heal() {
    let (_dir, store, _) = lab_dir();
    let ex1 = Mock::start("EX1", &store, &[]);
    for (_, prefix) in SERVICE_PREFIXES {
        let r = get(ex1.addr, &format!("/{prefix}/healthcheck.htm")).await;
        assert_eq!(r.status, StatusCode::OK, "{prefix}");
        assert_eq!(r.body, "200 OK<br/>EX1");
        assert!(r.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert_eq!(r.headers["x-feserver"], "EX1");
        assert_eq!(r.headers["x-beserver"], "EX1");
        assert_eq!(r.headers["x-diaginfo"], "EX1");
    }
    assert_eq!(
        get(ex1.addr, "/OWA/HealthCheck.HTM").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(ex1.addr, "/nothing").await.status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        post(ex1.addr, "/mock/fail/ews").await.status,
        StatusCode::OK
    );
    let r = get(ex1.addr, "/EWS/healthcheck.htm").await;
    assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        get(ex1.addr, "/owa/healthcheck.htm").await.status,
        StatusCode::OK
    );
    assert_eq!(state(ex1.addr).await["failed"], serde_json::json!(["ews"]));
    assert_eq!(
        post(ex1.addr, "/mock/heal/ews").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(ex1.addr, "/ews/healthcheck.htm").await.status,
        StatusCode::OK
    );
    assert_eq!(
        post(ex1.addr, "/mock/fail/nope").await.status,
        StatusCode::NOT_FOUND
    );

    assert_eq!(
        post(ex1.addr, "/mock/latency?ms=300").await.status,
        StatusCode::OK
    );
    let started = Instant::now();
    get(ex1.addr, "/owa/healthcheck.htm").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    let started = Instant::now();
    get(ex1.addr, "/mock/state").await;
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "/mock is never delayed"
    );
    post(ex1.addr, "/mock/latency?ms=0").await;

    let status = ex1.terminate();
    assert!(status.success(), "SIGTERM exits 0: {status:?}");
}

fn autodiscover_request(address: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\
         <Request><EMailAddress>{address}</EMailAddress>\
         <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\
         </Request></Autodiscover>"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autodiscover_names_server_and_database() {
    let (_dir, store, _) = lab_dir();
    let ex1 = Mock::start("EX1", &store, &[]);
    let ex2 = Mock::start("EX2", &store, &["--fqdn", "cas2.example.net"]);
    let ad = "/Autodiscover/Autodiscover.xml";
    let xml_type = [("content-type", "text/xml")];

    let r = send(
        ex1.addr,
        "POST",
        ad,
        &xml_type,
        autodiscover_request("alice@lab.com"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "text/xml; charset=utf-8");
    assert!(r.body.contains("<MdbDN>/o=casarray lab/ou=Exchange Administrative Group (FYDIBOHF23SPDLT)/cn=Configuration/cn=Databases/cn=DB01</MdbDN>"), "{}", r.body);
    assert!(r.body.contains("<Server>ex1.lab.local</Server>"));
    assert!(r
        .body
        .contains("<EwsUrl>https://ex1.lab.local/EWS/Exchange.asmx</EwsUrl>"));
    assert!(r
        .body
        .contains("<OWAUrl AuthenticationMethod=\"Fba\">https://ex1.lab.local/owa/</OWAUrl>"));
    assert!(r
        .body
        .contains("<AutoDiscoverSMTPAddress>alice@lab.com</AutoDiscoverSMTPAddress>"));
    assert!(r.body.contains("cn=Servers/cn=EX1</ServerDN>"));

    let auth = basic("bob@lab.com", "Bob!lab1");
    let r = send(
        ex2.addr,
        "POST",
        "/autodiscover/autodiscover.xml",
        &[("authorization", auth.as_str())],
        autodiscover_request("bob@lab.com"),
    )
    .await;
    assert!(r.body.contains("cn=Databases/cn=DB02</MdbDN>"));
    assert!(r.body.contains("<Server>cas2.example.net</Server>"));
    assert!(!r.body.contains("lab.local"), "{}", r.body);

    let bad = basic("bob@lab.com", "wrong");
    let r = send(
        ex2.addr,
        "POST",
        ad,
        &[("authorization", bad.as_str())],
        autodiscover_request("bob@lab.com"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = send(
        ex1.addr,
        "POST",
        ad,
        &xml_type,
        autodiscover_request("carol@lab.com"),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("<ErrorCode>500</ErrorCode>"));
    assert!(r.body.contains("The e-mail address cannot be found."));

    let r = send(ex1.addr, "POST", ad, &xml_type, "<not xml").await;
    assert!(r.body.contains("<ErrorCode>600</ErrorCode>"));
}

fn set_cookie(r: &Reply) -> String {
    let raw = r.headers["set-cookie"].to_str().unwrap();
    assert!(raw.contains("path=/") && raw.contains("secure") && raw.contains("HttpOnly"));
    raw.split(';').next().unwrap().to_string()
}

async fn owa_logon(addr: SocketAddr, user: &str, password: &str) -> Reply {
    let form = format!(
        "destination=https%3A%2F%2Fmail.lab.com%2Fowa%2F&flags=4&username={}&password={}",
        user.replace('@', "%40"),
        password.replace('!', "%21")
    );
    send(
        addr,
        "POST",
        "/owa/auth.owa",
        &[("content-type", "application/x-www-form-urlencoded")],
        form,
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owa_logon_inbox_and_logoff() {
    let (_dir, store, key) = lab_dir();
    let key = key.to_str().unwrap();
    let ex1 = Mock::start("EX1", &store, &["--shared-key", key]);

    let r = get(ex1.addr, "/owa/").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(
        r.headers["location"],
        "https://ex1.lab.local/owa/auth/logon.aspx?url=https%3A%2F%2Fex1.lab.local%2Fowa%2F&reason=0"
    );
    let r = get(
        ex1.addr,
        "/owa/auth/logon.aspx?url=https%3A%2F%2Fex1.lab.local%2Fowa%2F&reason=0",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("action=\"/owa/auth.owa\""));
    assert!(r.body.contains("name=\"username\"") && r.body.contains("name=\"password\""));

    let r = owa_logon(ex1.addr, "alice@lab.com", "nope").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert!(r.headers["location"]
        .to_str()
        .unwrap()
        .ends_with("&reason=2"));
    assert!(r.headers.get("set-cookie").is_none());

    let r = owa_logon(ex1.addr, "alice@lab.com", "Alice!lab1").await;
    assert_eq!(r.status, StatusCode::FOUND);
    assert_eq!(r.headers["location"], "https://ex1.lab.local/owa/");
    let cookie = set_cookie(&r);
    assert!(cookie.starts_with("cadata="));

    let r = send(
        ex1.addr,
        "GET",
        "/owa/",
        &[("cookie", cookie.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains("Welcome to the casarray lab"), "{}", r.body);
    assert!(r
        .body
        .contains("https://ex1.lab.local/owa/?ae=Item&amp;id="));

    let r = send(
        ex1.addr,
        "GET",
        "/owa/auth/logoff.aspx",
        &[("cookie", cookie.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.headers["set-cookie"]
        .to_str()
        .unwrap()
        .starts_with("cadata=;"));

    let r = send(
        ex1.addr,
        "GET",
        "/owa/",
        &[("cookie", "cadata=forged")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owa_session_survives_its_server() {
    let (dir, store, key) = lab_dir();
    let key = key.to_str().unwrap();
    // Two servers opening a fresh store at once.
    let (ex1, ex2) = std::thread::scope(|s| {
        let a = s.spawn(|| Mock::start("EX1", &store, &["--shared-key", key]));
        let b = s.spawn(|| Mock::start("EX2", &store, &["--shared-key", key]));
        (a.join().unwrap(), b.join().unwrap())
    });
    let other_key = dir.path().join("other.key");
    std::fs::write(
        &other_key,
        rcgen::KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let ex3 = Mock::start(
        "EX3",
        &store,
        &["--shared-key", other_key.to_str().unwrap()],
    );

    let r = owa_logon(ex1.addr, "LAB\\bob", "Bob!lab1").await;
    let cookie = set_cookie(&r);
    drop(ex1);

    let r = send(
        ex2.addr,
        "GET",
        "/owa/",
        &[("cookie", cookie.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-feserver"], "EX2");
    assert!(r.body.contains("bob@lab.com"));
    assert!(r.body.contains("https://ex2.lab.local/owa/"));

    let r = send(
        ex3.addr,
        "GET",
        "/owa/",
        &[("cookie", cookie.as_str())],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::FOUND,
        "another key does not open the cookie"
    );
}
