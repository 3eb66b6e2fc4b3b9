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
        post(ex1.addr, "/mock/latency?ms=1500").await.status,
        StatusCode::OK
    );
    let started = Instant::now();
    get(ex1.addr, "/owa/healthcheck.htm").await;
    assert!(started.elapsed() >= Duration::from_millis(1500));
    let started = Instant::now();
    get(ex1.addr, "/mock/state").await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
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

fn soap(operation: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\" \
         xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\">\
         <soap:Header><t:RequestServerVersion Version=\"Exchange2013\"/></soap:Header>\
         <soap:Body>{operation}</soap:Body></soap:Envelope>"
    )
}

async fn ews(addr: SocketAddr, user: &str, password: &str, operation: &str) -> Reply {
    let auth = basic(user, password);
    send(
        addr,
        "POST",
        "/EWS/Exchange.asmx",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "text/xml; charset=utf-8"),
        ],
        soap(operation),
    )
    .await
}

fn find_inbox(max: usize, offset: usize, restriction: &str) -> String {
    format!(
        "<m:FindItem Traversal=\"Shallow\">\
         <m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>\
         <m:IndexedPageItemView MaxEntriesReturned=\"{max}\" Offset=\"{offset}\" BasePoint=\"Beginning\"/>\
         {restriction}\
         <m:ParentFolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:ParentFolderIds>\
         </m:FindItem>"
    )
}

fn subject_contains(value: &str) -> String {
    format!(
        "<m:Restriction><t:Contains ContainmentMode=\"Substring\" ContainmentComparison=\"IgnoreCase\">\
         <t:FieldURI FieldURI=\"item:Subject\"/><t:Constant Value=\"{value}\"/></t:Contains></m:Restriction>"
    )
}

fn send_message(disposition: &str, to: &str, subject: &str, body: &str) -> String {
    format!(
        "<m:CreateItem MessageDisposition=\"{disposition}\">\
         <m:SavedItemFolderId><t:DistinguishedFolderId Id=\"sentitems\"/></m:SavedItemFolderId>\
         <m:Items><t:Message><t:Subject>{subject}</t:Subject>\
         <t:Body BodyType=\"Text\">{body}</t:Body>\
         <t:ToRecipients><t:Mailbox><t:EmailAddress>{to}</t:EmailAddress></t:Mailbox></t:ToRecipients>\
         <t:CcRecipients><t:Mailbox><t:EmailAddress>bob@lab.com</t:EmailAddress></t:Mailbox></t:CcRecipients>\
         </t:Message></m:Items></m:CreateItem>"
    )
}

/// The text of the first `<t:NAME ...>...</t:NAME>` in `xml`.
fn element<'a>(xml: &'a str, name: &str) -> &'a str {
    let open = format!("<t:{name}");
    let start = xml
        .find(&open)
        .unwrap_or_else(|| panic!("no {name} in {xml}"));
    let body = &xml[start..];
    let gt = body.find('>').unwrap() + 1;
    let end = body.find(&format!("</t:{name}>")).unwrap();
    &body[gt..end]
}

fn attribute<'a>(xml: &'a str, name: &str) -> &'a str {
    let key = format!("{name}=\"");
    let start = xml
        .find(&key)
        .unwrap_or_else(|| panic!("no {name} in {xml}"))
        + key.len();
    let len = xml[start..].find('"').unwrap();
    &xml[start..start + len]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ews_send_find_get_across_servers() {
    let (_dir, store, _) = lab_dir();
    let ex1 = Mock::start("EX1", &store, &[]);
    let ex2 = Mock::start("EX2", &store, &[]);
    let bob = ("bob@lab.com", "Bob!lab1");
    let alice = ("alice@lab.com", "Alice!lab1");

    let r = ews(ex1.addr, "bob@lab.com", "wrong", "<m:GetFolder/>").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.headers["www-authenticate"],
        "Basic realm=\"ex1.lab.local\""
    );

    // Bob sends three messages to Alice through EX1.
    for i in 0..3 {
        let op = send_message(
            "SendAndSaveCopy",
            "alice@lab.com",
            &format!("Quarterly report {i}"),
            &format!("Numbers &amp; plans {i}"),
        );
        let r = ews(ex1.addr, bob.0, bob.1, &op).await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("ServerVersionInfo"));
        assert!(
            r.body
                .contains("<m:CreateItemResponseMessage ResponseClass=\"Success\">"),
            "{}",
            r.body
        );
    }

    // Alice reads them through EX2: paging, then a restriction.
    let r = ews(ex2.addr, alice.0, alice.1, &find_inbox(2, 0, "")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(
        attribute(&r.body, "TotalItemsInView"),
        "4",
        "3 sent + 1 seeded"
    );
    assert_eq!(attribute(&r.body, "IndexedPagingOffset"), "2");
    assert_eq!(attribute(&r.body, "IncludesLastItemInRange"), "false");
    assert_eq!(r.body.matches("<t:Message>").count(), 2);
    let r = ews(ex2.addr, alice.0, alice.1, &find_inbox(2, 2, "")).await;
    assert_eq!(attribute(&r.body, "IncludesLastItemInRange"), "true");
    assert!(r.body.contains("Welcome to the casarray lab"));

    let r = ews(
        ex2.addr,
        alice.0,
        alice.1,
        &find_inbox(10, 0, &subject_contains("REPORT 1")),
    )
    .await;
    assert_eq!(attribute(&r.body, "TotalItemsInView"), "1", "{}", r.body);
    assert_eq!(element(&r.body, "Subject"), "Quarterly report 1");
    let item_id = attribute(&r.body, "ItemId Id").to_string();

    let equal = "<m:Restriction><t:IsEqualTo><t:FieldURI FieldURI=\"item:Subject\"/>\
                 <t:FieldURIOrConstant><t:Constant Value=\"quarterly report 2\"/></t:FieldURIOrConstant>\
                 </t:IsEqualTo></m:Restriction>";
    let r = ews(ex2.addr, alice.0, alice.1, &find_inbox(10, 0, equal)).await;
    assert_eq!(attribute(&r.body, "TotalItemsInView"), "1");

    let get = format!(
        "<m:GetItem><m:ItemShape><t:BaseShape>AllProperties</t:BaseShape></m:ItemShape>\
         <m:ItemIds><t:ItemId Id=\"{item_id}\"/></m:ItemIds></m:GetItem>"
    );
    let r = ews(ex2.addr, alice.0, alice.1, &get).await;
    assert!(
        r.body
            .contains("<t:Body BodyType=\"Text\">Numbers &amp; plans 1</t:Body>"),
        "{}",
        r.body
    );
    let to = element(&r.body, "ToRecipients");
    assert!(to.contains("<t:EmailAddress>alice@lab.com</t:EmailAddress>"));
    assert!(element(&r.body, "CcRecipients").contains("bob@lab.com"));
    assert!(element(&r.body, "From").contains("<t:Name>Bob Brown</t:Name>"));
    assert!(r.body.contains("<t:DateTimeReceived>"));
    // Bob cannot read Alice's item.
    let r = ews(ex2.addr, bob.0, bob.1, &get).await;
    assert!(r
        .body
        .contains("<m:ResponseCode>ErrorItemNotFound</m:ResponseCode>"));

    let folder = "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>\
                  <m:FolderIds><t:DistinguishedFolderId Id=\"inbox\"/>\
                  <t:DistinguishedFolderId Id=\"sentitems\"/><t:DistinguishedFolderId Id=\"root\"/>\
                  <t:DistinguishedFolderId Id=\"msgfolderroot\"/></m:FolderIds></m:GetFolder>";
    let r = ews(ex1.addr, bob.0, bob.1, folder).await;
    let folders: Vec<&str> = r.body.split("<t:Folder>").skip(1).collect();
    assert_eq!(folders.len(), 4, "{}", r.body);
    assert_eq!(element(folders[0], "DisplayName"), "Inbox");
    assert_eq!(
        element(folders[0], "TotalCount"),
        "4",
        "seeded + three Cc copies"
    );
    assert_eq!(element(folders[0], "UnreadCount"), "4");
    assert_eq!(element(folders[1], "DisplayName"), "Sent Items");
    assert_eq!(element(folders[1], "TotalCount"), "3");
    assert_eq!(element(folders[2], "ChildFolderCount"), "1");
    assert_eq!(element(folders[3], "ChildFolderCount"), "4");

    // Errors: unknown recipient, unsupported operation, broken XML.
    let op = send_message("SendOnly", "nobody@elsewhere.example", "x", "y");
    let r = ews(ex1.addr, bob.0, bob.1, &op).await;
    assert!(r.body.contains("ResponseClass=\"Error\""));
    assert!(r
        .body
        .contains("<m:ResponseCode>ErrorInvalidRecipients</m:ResponseCode>"));
    let r = ews(
        ex1.addr,
        bob.0,
        bob.1,
        "<m:ResolveNames><m:UnresolvedEntry>a</m:UnresolvedEntry></m:ResolveNames>",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r
        .body
        .contains("<m:ResolveNamesResponseMessage ResponseClass=\"Error\">"));
    assert!(r
        .body
        .contains("<m:ResponseCode>ErrorInvalidOperation</m:ResponseCode>"));
    let auth = basic(bob.0, bob.1);
    let r = send(
        ex1.addr,
        "POST",
        "/ews/exchange.asmx",
        &[("authorization", auth.as_str())],
        "<soap:Envelope><oops",
    )
    .await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(r.body.contains("a:ErrorSchemaValidation"));

    // Drafts land in Drafts with an id.
    let draft = "<m:CreateItem MessageDisposition=\"SaveOnly\"><m:Items><t:Message>\
                 <t:Subject>Draft</t:Subject></t:Message></m:Items></m:CreateItem>";
    let r = ews(ex1.addr, bob.0, bob.1, draft).await;
    assert!(r.body.contains("<t:ItemId Id="), "{}", r.body);
}

/// Writes a raw request head with `Content-Length: length` and returns
/// the stream.
async fn raw_request(addr: SocketAddr, method: &str, path: &str, length: u64) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: mail.lab.com\r\nContent-Type: application/rpc\r\n\
         Content-Length: {length}\r\nUser-Agent: MSRPC\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

async fn read_to_end(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, stream.read_to_end(&mut out))
        .await
        .expect("read timed out")
        .unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_in_data_streams_a_huge_declared_body() {
    let (_dir, store, _) = lab_dir();
    let ex1 = Mock::start("EX1", &store, &[]);
    let chunk = vec![0x5au8; 64 * 1024];
    let sent: u64 = 8 * 1024 * 1024;

    // Declared 1 GiB, 8 MiB sent, then the client closes its side.
    let mut stream = raw_request(
        ex1.addr,
        "RPC_IN_DATA",
        "/rpc/rpcproxy.dll?ex1.lab.local:6001",
        1 << 30,
    )
    .await;
    for _ in 0..(sent / chunk.len() as u64) {
        stream.write_all(&chunk).await.unwrap();
    }
    stream.shutdown().await.unwrap();
    let _ = read_to_end(&mut stream).await;
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let s = state(ex1.addr).await;
        if s["rpc"]["in_completed"] == 1 {
            assert_eq!(s["rpc"]["in_last_bytes"], sent);
            break;
        }
        assert!(Instant::now() < deadline, "RPC_IN_DATA never finished: {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A body that ends: the answer carries the count.
    let mut stream = raw_request(ex1.addr, "RPC_IN_DATA", "/rpc/rpcproxy.dll", sent).await;
    for _ in 0..(sent / chunk.len() as u64) {
        stream.write_all(&chunk).await.unwrap();
    }
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(IO_TIMEOUT, stream.read(&mut head))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&head[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains(&format!("bytes={sent}")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_out_data_streams_pdus() {
    let (_dir, store, _) = lab_dir();
    let ex1 = Mock::start("EX1", &store, &[]);

    let n: usize = 300_000;
    let mut stream = raw_request(
        ex1.addr,
        "RPC_OUT_DATA",
        &format!("/rpc/rpcproxy.dll?ex1.lab.local:6001&bytes={n}"),
        76,
    )
    .await;
    stream.write_all(&[0u8; 76]).await.unwrap();
    let mut reader = tokio::io::BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        tokio::time::timeout(
            IO_TIMEOUT,
            tokio::io::AsyncBufReadExt::read_line(&mut reader, &mut line),
        )
        .await
        .unwrap()
        .unwrap();
        if line == "\r\n" || line.is_empty() {
            break;
        }
        head.push_str(&line.to_ascii_lowercase());
    }
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains(&format!("content-length: {n}\r\n")), "{head}");
    assert!(head.contains("content-type: application/rpc"));
    let mut body = vec![0u8; n];
    tokio::time::timeout(IO_TIMEOUT, reader.read_exact(&mut body))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&body[..4], &[5, 0, 20, 3], "an RTS PDU header");

    // Unbounded: 1 GiB declared, PDUs arrive, the client leaves.
    let mut stream = raw_request(
        ex1.addr,
        "RPC_OUT_DATA",
        "/rpc/rpcproxy.dll?ex1.lab.local:6001&pace_ms=10",
        76,
    )
    .await;
    stream.write_all(&[0u8; 76]).await.unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("\r\n\r\n") || got.len() < 400 {
        let k = tokio::time::timeout(IO_TIMEOUT, stream.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert!(k > 0, "stream ended early");
        got.extend_from_slice(&buf[..k]);
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.contains("content-length: 1073741824"), "{text}");
    assert_eq!(state(ex1.addr).await["rpc"]["out_active"], 1);
    drop(stream);
    let deadline = Instant::now() + IO_TIMEOUT;
    while state(ex1.addr).await["rpc"]["out_active"] != 0 {
        assert!(Instant::now() < deadline, "OUT channel not released");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapi_activesync_and_other_services() {
    let (_dir, store, _) = lab_dir();
    let ex1 = Mock::start("EX1", &store, &[]);
    let auth = basic("alice@lab.com", "Alice!lab1");
    let r = send(
        ex1.addr,
        "POST",
        "/mapi/emsmdb/?MailboxId=alice@lab.com",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "application/mapi-http"),
            ("x-requesttype", "Connect"),
            ("x-requestid", "{E2B7E4C5-0000-0000-0000-000000000000}:1"),
        ],
        vec![0u8; 32],
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["x-responsecode"], "0");
    assert_eq!(r.headers["x-requesttype"], "Connect");
    assert_eq!(
        r.headers["x-requestid"],
        "{E2B7E4C5-0000-0000-0000-000000000000}:1"
    );
    assert_eq!(r.headers["content-type"], "application/mapi-http");
    assert!(
        r.body.starts_with("PROCESSING\r\nDONE\r\nX-ElapsedTime: "),
        "{:?}",
        r.body
    );
    assert!(r.body.contains("X-StartTime: "));
    let r = send(
        ex1.addr,
        "POST",
        "/mapi/emsmdb/",
        &[("x-requesttype", "Connect")],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);

    let r = send(
        ex1.addr,
        "OPTIONS",
        "/Microsoft-Server-ActiveSync",
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["ms-server-activesync"], "14.3");
    assert!(r.headers.contains_key("ms-asprotocolversions"));
    assert!(r.headers.contains_key("ms-asprotocolcommands"));

    for path in [
        "/ecp/",
        "/OAB/",
        "/PowerShell/",
        "/Microsoft-Server-ActiveSync",
    ] {
        let r = get(ex1.addr, path).await;
        assert_eq!(r.status, StatusCode::OK, "{path}");
        assert!(r.body.contains("ex1.lab.local"), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_with_its_own_certificate() {
    let (dir, store, _) = lab_dir();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["ex1.lab.local".to_string()]).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.path().join("ex1.crt");
    let key_path = dir.path().join("ex1.key");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    let ex1 = Mock::start(
        "EX1",
        &store,
        &[
            "--tls-cert",
            cert_path.to_str().unwrap(),
            "--tls-key",
            key_path.to_str().unwrap(),
        ],
    );

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der().clone()).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = TcpStream::connect(ex1.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("ex1.lab.local").unwrap();
    let mut tls = tokio::time::timeout(IO_TIMEOUT, connector.connect(name, tcp))
        .await
        .unwrap()
        .unwrap();
    tls.write_all(
        b"GET /owa/healthcheck.htm HTTP/1.1\r\nHost: ex1.lab.local\r\nConnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(IO_TIMEOUT, tls.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.ends_with("200 OK<br/>EX1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_servers_write_the_store_at_once() {
    let (_dir, store, _) = lab_dir();
    let servers: Vec<Mock> = ["EX1", "EX2", "EX3"]
        .iter()
        .map(|name| Mock::start(name, &store, &[]))
        .collect();
    let per_server = 10;
    let mut tasks = Vec::new();
    for (n, server) in servers.iter().enumerate() {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            for i in 0..per_server {
                let op = send_message("SendOnly", "alice@lab.com", &format!("load {n}-{i}"), "x");
                let r = ews(addr, "bob@lab.com", "Bob!lab1", &op).await;
                assert!(r.body.contains("ResponseClass=\"Success\""), "{}", r.body);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let r = ews(
        servers[0].addr,
        "alice@lab.com",
        "Alice!lab1",
        &find_inbox(1, 0, &subject_contains("load ")),
    )
    .await;
    assert_eq!(
        attribute(&r.body, "TotalItemsInView"),
        (3 * per_server).to_string()
    );
    drop(servers);
    for db in ["DB01", "DB02"] {
        let file = store.join(db).join(format!("{db}.sqlite"));
        let conn = rusqlite::Connection::open(&file).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok", "{}", file.display());
    }
}
