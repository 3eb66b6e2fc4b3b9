//! Issue 5, end to end: what the array says about its servers, through a
//! real `casarray serve` in front of two real mock mailbox servers, over
//! TLS on 127.0.0.1.
//!
//! - Autodiscover names the mailbox server until `casarray database set`,
//!   then the database's RPC client access server (the running array
//!   reloads on its own when the file changes);
//! - SOAP (GetUserSettings, SOAP 1.1 and 1.2) and JSON Autodiscover name
//!   each database's RPC client access server and the array's public name
//!   and port, never a member;
//! - the OWA logon redirect names the array;
//! - a crawl over every service (headers and bodies) never names a member
//!   (EX1, EX2, their fqdns, their ip:port), but for the documented
//!   exception: the EXCH `<Server>` of a database left unset.

mod support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use support::*;

/// Bound on one reload seen through the answers (debounce 200 ms, CI
/// slow): 30 s.
const RELOAD: Duration = Duration::from_secs(30);
/// Bound on both members becoming healthy for every service: 30 s.
const HEALTHY: Duration = Duration::from_secs(30);

const ALICE: (&str, &str) = ("alice@lab.com", "Alice!lab1");
const BOB: (&str, &str) = ("bob@lab.com", "Bob!lab1");

/// The built-in services and their prefixes as clients spell them.
const SERVICES: &[(&str, &str)] = &[
    ("owa", "/owa"),
    ("ecp", "/ecp"),
    ("ews", "/EWS"),
    ("eas", "/Microsoft-Server-ActiveSync"),
    ("autodiscover", "/Autodiscover"),
    ("rpc", "/rpc"),
    ("mapi", "/mapi"),
    ("oab", "/OAB"),
    ("powershell", "/PowerShell"),
];

/// Two databases, both unset: Autodiscover names the server.
const DATABASES: &str = "[[database]]\nname = \"DB01\"\n\n[[database]]\nname = \"DB02\"\n";

/// An array in front of EX1 and EX2 (mock servers sharing a store and the
/// array's key, so an OWA session opens on either).
struct Setup {
    _dir: tempfile::TempDir,
    config: PathBuf,
    _mocks: Vec<Proc>,
    members: Vec<SocketAddr>,
    _array: Proc,
    addrs: ArrayAddrs,
    client: Client,
}

async fn setup() -> Setup {
    setup_with("").await
}

/// [`setup`] with `array_keys` (TOML lines) added to the `[array]` table.
async fn setup_with(array_keys: &str) -> Setup {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let key = certs.key.to_str().unwrap().to_string();
    let (ex1, a1) = spawn_mock("EX1", &store, &["--shared-key", &key]);
    let (ex2, a2) = spawn_mock("EX2", &store, &["--shared-key", &key]);
    let config = dir.path().join("casarray.toml");
    let text = config_toml(&certs, &[("EX1", a1), ("EX2", a2)], DATABASES);
    let text = text.replacen("\n[listen]", &format!("{array_keys}\n[listen]"), 1);
    std::fs::write(&config, text).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    let admin = addrs.admin;
    wait_until("both members up for every service", HEALTHY, || async {
        for name in ["EX1", "EX2"] {
            for (service, _) in SERVICES {
                if !member_up(admin, name, service).await {
                    return false;
                }
            }
        }
        true
    })
    .await;
    Setup {
        _dir: dir,
        config,
        _mocks: vec![ex1, ex2],
        members: vec![a1, a2],
        _array: array,
        addrs,
        client,
    }
}

/// `casarray database set --config F <selector...> --rpc-client-access-server S`.
fn database_set(config: &Path, selector: &[&str], server: &str) {
    let out = Command::new(BIN)
        .args(["database", "set", "--config"])
        .arg(config)
        .args(selector)
        .args(["--rpc-client-access-server", server])
        .output()
        .expect("run casarray database set");
    assert!(
        out.status.success(),
        "database set {selector:?} {server}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- requests ----------------------------------------------------------

fn basic(user: (&str, &str)) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", user.0, user.1);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
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

fn autodiscover(user: (&str, &str)) -> Request<Full<Bytes>> {
    build(
        "POST",
        "/Autodiscover/Autodiscover.xml",
        &[("content-type", "text/xml")],
        autodiscover_request(user.0),
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

fn ews(user: (&str, &str), operation: &str) -> Request<Full<Bytes>> {
    let auth = basic(user);
    build(
        "POST",
        "/EWS/Exchange.asmx",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "text/xml; charset=utf-8"),
        ],
        soap(operation),
    )
}

/// The OWA logon form post for Alice with `password` (form-encoded).
fn owa_logon(password: &str) -> Request<Full<Bytes>> {
    build(
        "POST",
        "/owa/auth.owa",
        &[("content-type", "application/x-www-form-urlencoded")],
        format!(
            "destination=https%3A%2F%2Fmail.lab.com%2Fowa%2F&flags=4\
             &username=alice%40lab.com&password={password}"
        ),
    )
}

const GET_FOLDER: &str =
    "<m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>\
     <m:FolderIds><t:DistinguishedFolderId Id=\"inbox\"/><t:DistinguishedFolderId Id=\"root\"/>\
     </m:FolderIds></m:GetFolder>";

const FIND_INBOX: &str = "<m:FindItem Traversal=\"Shallow\">\
     <m:ItemShape><t:BaseShape>Default</t:BaseShape></m:ItemShape>\
     <m:IndexedPageItemView MaxEntriesReturned=\"50\" Offset=\"0\" BasePoint=\"Beginning\"/>\
     <m:ParentFolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:ParentFolderIds></m:FindItem>";

/// The `<Protocol>` whose `<Type>` is EXCH and that has a `<Server>` (the
/// WEB section nests an EXCH protocol without one).
fn exch_protocol(body: &str) -> Option<&str> {
    let mut rest = body;
    while let Some(at) = rest.find("<Protocol>") {
        let after = &rest[at..];
        let end = after.find("</Protocol>")? + "</Protocol>".len();
        let element = &after[..end];
        if element.contains("<Type>EXCH</Type>") && element.contains("<Server>") {
            return Some(element);
        }
        rest = &after["<Protocol>".len()..];
    }
    None
}

fn between<'a>(text: &'a str, open: &str, close: &str) -> Option<&'a str> {
    let start = text.find(open)? + open.len();
    let len = text[start..].find(close)?;
    Some(&text[start..start + len])
}

/// The EXCH `<Server>` and the database (`cn=Databases/cn=X`) of an
/// Autodiscover answer.
fn exch_server(body: &str) -> Option<(String, String)> {
    let exch = exch_protocol(body)?;
    let server = between(exch, "<Server>", "</Server>")?.to_string();
    let mdb = between(exch, "<MdbDN>", "</MdbDN>")?;
    let db = mdb.rsplit("cn=").next()?.to_string();
    Some((server, db))
}

async fn exch_server_of(client: &Client, user: (&str, &str)) -> (String, String) {
    let r = client.send(autodiscover(user)).await.expect("Autodiscover");
    assert_eq!(r.status(), 200);
    exch_server(&text(&r)).unwrap_or_else(|| panic!("no EXCH server in {}", text(&r)))
}

// ---- finding member names ----------------------------------------------

/// What no answer may contain: member names, fqdns, and ip:port.
fn member_needles(members: &[SocketAddr]) -> Vec<String> {
    let mut needles: Vec<String> = ["EX1", "EX2", "ex1.lab.local", "ex2.lab.local"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    needles.extend(members.iter().map(|a| a.to_string()));
    needles
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// Where `needle` stands alone in `hay` (ASCII case ignored): not inside a
/// longer name or number. Returns a short context around each hit.
fn hits(hay: &[u8], needle: &str) -> Vec<String> {
    let needle = needle.as_bytes();
    let mut found = Vec::new();
    if needle.is_empty() || hay.len() < needle.len() {
        return found;
    }
    for at in 0..=hay.len() - needle.len() {
        if !hay[at..at + needle.len()].eq_ignore_ascii_case(needle) {
            continue;
        }
        let before = at.checked_sub(1).map(|i| hay[i]);
        let after = hay.get(at + needle.len()).copied();
        let edge = |b: Option<u8>| b.is_none_or(|b| !is_name_byte(b));
        // `x.EX1` and `EX1.other.example` are other hosts (`ex1.lab.local`
        // is a needle of its own); `EX1.` ending a sentence is the member.
        let longer = after == Some(b'.')
            && hay
                .get(at + needle.len() + 1)
                .is_some_and(|&b| is_name_byte(b));
        if edge(before) && edge(after) && before != Some(b'.') && !longer {
            let from = at.saturating_sub(30);
            let to = (at + needle.len() + 30).min(hay.len());
            let context = String::from_utf8_lossy(&hay[from..to]).replace(['\r', '\n'], " ");
            found.push(context);
        }
    }
    found
}

/// `%XX` decoded (what a URL parameter really says).
fn percent_decoded(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    out
}

/// A member name found: the needle and some text around it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Leak {
    needle: String,
    context: String,
}

/// Every place `text` names a member, as it is and once percent-decoded.
fn leaks_in(text: &[u8], needles: &[String]) -> Vec<Leak> {
    let decoded = percent_decoded(text);
    let mut found = Vec::new();
    for needle in needles {
        for context in hits(text, needle) {
            found.push(Leak {
                needle: needle.clone(),
                context,
            });
        }
        if decoded != text {
            for context in hits(&decoded, needle) {
                found.push(Leak {
                    needle: format!("{needle} (percent-encoded)"),
                    context,
                });
            }
        }
    }
    found.sort();
    found.dedup();
    found
}

/// Removes the documented exception from an Autodiscover answer: the EXCH
/// `<Server>` of a database in `unset` (which must then be a member fqdn).
fn without_exception(body: &str, unset: &[&str]) -> String {
    let Some((server, db)) = exch_server(body) else {
        return body.to_string();
    };
    if !unset.iter().any(|u| u.eq_ignore_ascii_case(&db)) {
        return body.to_string();
    }
    assert!(
        server == "ex1.lab.local" || server == "ex2.lab.local",
        "{db} is unset: the EXCH server should be the member's own, got {server}"
    );
    body.replacen(
        &format!("<Server>{server}</Server>"),
        "<Server>(documented exception)</Server>",
        1,
    )
}

/// Whether the array rewrites the body of the request `what` ("METHOD
/// URI"): the default profile's owa, ecp, autodiscover, oab and powershell.
fn body_rewritten(what: &str) -> bool {
    let path = what
        .split_once(' ')
        .map_or(what, |(_, uri)| uri)
        .to_ascii_lowercase();
    ["/owa", "/ecp", "/autodiscover", "/oab", "/powershell"]
        .iter()
        .any(|p| {
            path == *p || path.starts_with(&format!("{p}/")) || path.starts_with(&format!("{p}?"))
        })
}

/// The answers of a crawl, checked head and body; leaks are grouped by
/// request and part (the needles found, one example each).
struct Crawl {
    needles: Vec<String>,
    unset: Vec<&'static str>,
    leaks: BTreeMap<String, BTreeMap<String, String>>,
    seen: usize,
}

impl Crawl {
    fn new(members: &[SocketAddr], unset: Vec<&'static str>) -> Self {
        Crawl {
            needles: member_needles(members),
            unset,
            leaks: BTreeMap::new(),
            seen: 0,
        }
    }

    fn record(&mut self, key: String, found: Vec<Leak>) {
        for leak in found {
            self.leaks
                .entry(key.clone())
                .or_default()
                .entry(leak.needle)
                .or_insert(leak.context);
        }
    }

    fn check(&mut self, what: &str, resp: &Resp) {
        self.seen += 1;
        for (name, value) in resp.headers() {
            let line = format!("{name}: {}", String::from_utf8_lossy(value.as_bytes()));
            let found = leaks_in(line.as_bytes(), &self.needles);
            self.record(format!("{what} -> header {name}"), found);
        }
        // Bodies are rewritten on the services that rewrite them by default;
        // the others (EWS, ActiveSync: users' mail; rpc, mapi: binary)
        // pass byte for byte (README, "Configuration").
        if !body_rewritten(what) {
            return;
        }
        let body = String::from_utf8_lossy(resp.body());
        let body = without_exception(&body, &self.unset);
        let found = leaks_in(body.as_bytes(), &self.needles);
        self.record(format!("{what} -> {} body", resp.status().as_u16()), found);
    }

    /// One line per request and part that named a member.
    fn report(&self) -> String {
        let mut out = String::new();
        for (key, needles) in &self.leaks {
            let names: Vec<&str> = needles.keys().map(String::as_str).collect();
            let example = needles
                .values()
                .next()
                .map(String::as_str)
                .unwrap_or_default();
            out.push_str(&format!(
                "  {key}: {} (e.g. \"{example}\")\n",
                names.join(", ")
            ));
        }
        out
    }

    /// Sends `req` (several times, so both members answer) and checks
    /// every answer.
    async fn visit(
        &mut self,
        client: &Client,
        times: usize,
        req: impl Fn() -> Request<Full<Bytes>>,
    ) -> Resp {
        let mut last = None;
        for _ in 0..times {
            let r = req();
            let what = format!("{} {}", r.method(), r.uri());
            let resp = client
                .send(r)
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            self.check(&what, &resp);
            last = Some(resp);
        }
        last.expect("at least one visit")
    }
}

/// The path (and query) of an absolute URL on the array, `&amp;` undone.
fn path_of(url: &str) -> String {
    let url = url.replace("&amp;", "&");
    let rest = url
        .strip_prefix("https://mail.lab.com")
        .unwrap_or_else(|| panic!("not a URL on the array: {url}"));
    rest.to_string()
}

// ---- tests -------------------------------------------------------------

/// Before `database set` Autodiscover names the server; after `--all`
/// both users get the array's name; a database set by name to another name
/// gets that one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autodiscover_follows_database_set() {
    let s = setup().await;
    let c = &s.client;
    let members = ["ex1.lab.local", "ex2.lab.local"];
    for _ in 0..4 {
        let (server, db) = exch_server_of(c, ALICE).await;
        assert_eq!(db, "DB01");
        assert!(members.contains(&server.as_str()), "alice before: {server}");
        let (server, db) = exch_server_of(c, BOB).await;
        assert_eq!(db, "DB02");
        assert!(members.contains(&server.as_str()), "bob before: {server}");
    }

    database_set(&s.config, &["--all"], "mail.lab.com");
    wait_until("alice gets the array name", RELOAD, || async {
        exch_server_of(c, ALICE).await.0 == "mail.lab.com"
    })
    .await;
    for _ in 0..4 {
        assert_eq!(exch_server_of(c, ALICE).await.0, "mail.lab.com");
        assert_eq!(exch_server_of(c, BOB).await.0, "mail.lab.com");
    }
    let r = c.send(autodiscover(ALICE)).await.unwrap();
    let body = text(&r);
    assert!(
        body.contains("/cn=Servers/cn=mail.lab.com</ServerDN>"),
        "{body}"
    );
    let leaks = leaks_in(body.as_bytes(), &member_needles(&s.members));
    assert!(leaks.is_empty(), "{leaks:?}");

    database_set(&s.config, &["db02"], "outlook.lab.com");
    wait_until("bob gets outlook.lab.com", RELOAD, || async {
        exch_server_of(c, BOB).await.0 == "outlook.lab.com"
    })
    .await;
    for _ in 0..4 {
        assert_eq!(exch_server_of(c, ALICE).await.0, "mail.lab.com");
        assert_eq!(exch_server_of(c, BOB).await.0, "outlook.lab.com");
    }
    let (_, dbs) = http_get(s.addrs.admin, "/api/databases").await.unwrap();
    let dbs: serde_json::Value = serde_json::from_str(&dbs).unwrap();
    assert_eq!(dbs[1]["name"], "DB02");
    assert_eq!(dbs[1]["rpc_client_access_server"], "outlook.lab.com");
}

/// The OWA logon redirects send the browser to the array, never to a
/// member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owa_logon_redirects_name_the_array() {
    let s = setup().await;
    for _ in 0..4 {
        let r = s.client.get("/owa/").await.unwrap();
        assert_eq!(r.status(), 302);
        let location = header(&r, "location");
        assert!(
            location.starts_with("https://mail.lab.com/owa/auth/logon.aspx?"),
            "{location}"
        );
    }
    for _ in 0..4 {
        let r = s.client.send(owa_logon("Alice%21lab1")).await.unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(header(&r, "location"), "https://mail.lab.com/owa/");
        let r = s.client.send(owa_logon("wrong")).await.unwrap();
        assert_eq!(r.status(), 302);
        let location = header(&r, "location");
        assert!(
            location.starts_with("https://mail.lab.com/owa/auth/logon.aspx?")
                && location.ends_with("&reason=2"),
            "{location}"
        );
    }
}

/// The redirects' parameters (`url=`, percent-encoded) name no member
/// either: a browser shows them and comes back with them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owa_logon_redirect_parameters_name_no_member() {
    let s = setup().await;
    let needles = member_needles(&s.members);
    for _ in 0..4 {
        for r in [
            s.client.get("/owa/").await.unwrap(),
            s.client.send(owa_logon("wrong")).await.unwrap(),
        ] {
            assert_eq!(r.status(), 302);
            let location = header(&r, "location");
            let leaks = leaks_in(location.as_bytes(), &needles);
            assert!(leaks.is_empty(), "Location {location}: {leaks:?}");
        }
    }
}

/// A crawl over every service never names a member in a header, nor in the
/// body of a service whose bodies are rewritten, but for the EXCH
/// `<Server>` of a database left unset (DB02 here; DB01 is set).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crawl_of_every_service_never_names_a_member() {
    let s = setup().await;
    let c = &s.client;
    database_set(&s.config, &["DB01"], "mail.lab.com");
    wait_until("DB01 set", RELOAD, || async {
        exch_server_of(c, ALICE).await.0 == "mail.lab.com"
    })
    .await;

    let mut crawl = Crawl::new(&s.members, vec!["DB02"]);
    // Every request is made 4 times: round robin reaches both members.
    const TIMES: usize = 4;

    for (_, prefix) in SERVICES {
        let path = format!("{prefix}/healthcheck.htm");
        let r = crawl
            .visit(c, TIMES, || build("GET", &path, &[], Bytes::new()))
            .await;
        assert_eq!(r.status(), 200, "{path}");
    }

    for user in [ALICE, BOB] {
        let r = crawl.visit(c, TIMES, || autodiscover(user)).await;
        assert!(text(&r).contains("<EwsUrl>"), "{}", text(&r));
    }

    // OWA: redirect, logon page, failed and good logon, inbox, an item,
    // logoff.
    let r = crawl
        .visit(c, TIMES, || build("GET", "/owa/", &[], Bytes::new()))
        .await;
    assert_eq!(r.status(), 302);
    let logon_page = path_of(&header(&r, "location"));
    let r = crawl
        .visit(c, TIMES, || build("GET", &logon_page, &[], Bytes::new()))
        .await;
    assert_eq!(r.status(), 200);
    let r = crawl.visit(c, TIMES, || owa_logon("wrong")).await;
    assert_eq!(r.status(), 302);
    let r = crawl.visit(c, TIMES, || owa_logon("Alice%21lab1")).await;
    assert_eq!(r.status(), 302);
    let cookie = header(&r, "set-cookie");
    let cookie = cookie.split(';').next().unwrap_or_default().to_string();
    assert!(cookie.starts_with("cadata="), "{cookie}");
    let with_cookie = [("cookie", cookie.as_str())];
    let inbox = crawl
        .visit(c, TIMES, || {
            build("GET", "/owa/", &with_cookie, Bytes::new())
        })
        .await;
    assert_eq!(inbox.status(), 200);
    let inbox = text(&inbox);
    let item = inbox
        .split("href=\"")
        .filter_map(|h| h.split('"').next())
        .find(|h| h.contains("ae=Item"))
        .unwrap_or_else(|| panic!("no item link in the inbox: {inbox}"));
    let item = path_of(item);
    let r = crawl
        .visit(c, TIMES, || build("GET", &item, &with_cookie, Bytes::new()))
        .await;
    assert_eq!(r.status(), 200, "{item}");
    crawl
        .visit(c, TIMES, || {
            build("GET", "/owa/auth/logoff.aspx", &with_cookie, Bytes::new())
        })
        .await;

    // EWS: unauthenticated (a realm), GetFolder, FindItem.
    let r = crawl
        .visit(c, TIMES, || {
            build("POST", "/EWS/Exchange.asmx", &[], soap(GET_FOLDER))
        })
        .await;
    assert_eq!(r.status(), 401);
    for op in [GET_FOLDER, FIND_INBOX] {
        let r = crawl.visit(c, TIMES, || ews(ALICE, op)).await;
        assert_eq!(r.status(), 200, "{}", text(&r));
        assert!(
            text(&r).contains("ResponseClass=\"Success\""),
            "{}",
            text(&r)
        );
    }

    // MAPI/HTTP: Connect, and the endpoint's page.
    let auth = basic(ALICE);
    let r = crawl
        .visit(c, TIMES, || {
            build(
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
        })
        .await;
    assert_eq!(r.status(), 200);
    crawl
        .visit(c, TIMES, || {
            build(
                "GET",
                "/mapi/emsmdb/",
                &[("authorization", auth.as_str())],
                Bytes::new(),
            )
        })
        .await;

    // ActiveSync OPTIONS, and the other services' pages.
    let r = crawl
        .visit(c, TIMES, || {
            build(
                "OPTIONS",
                "/Microsoft-Server-ActiveSync",
                &[("authorization", auth.as_str())],
                Bytes::new(),
            )
        })
        .await;
    assert_eq!(r.status(), 200);
    assert!(r.headers().contains_key("ms-asprotocolversions"));
    for path in [
        "/ecp/",
        "/OAB/",
        "/PowerShell/",
        "/Microsoft-Server-ActiveSync",
    ] {
        let r = crawl
            .visit(c, TIMES, || build("GET", path, &[], Bytes::new()))
            .await;
        assert_eq!(r.status(), 200, "{path}");
    }

    // Outlook Anywhere: a bounded RPC_OUT_DATA.
    let r = crawl
        .visit(c, TIMES, || {
            build(
                "RPC_OUT_DATA",
                "/rpc/rpcproxy.dll?mail.lab.com:6001&bytes=65536",
                &[("content-type", "application/rpc")],
                vec![0u8; 76],
            )
        })
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.body().len(), 65536);

    // 404s: the array's own and the members'.
    for path in [
        "/nothing",
        "/owa/nothing",
        "/EWS/nothing",
        "/Autodiscover/nothing.xml",
        "/mapi/nothing",
        "/rpc/nothing",
    ] {
        let r = crawl
            .visit(c, TIMES, || build("GET", path, &[], Bytes::new()))
            .await;
        assert_eq!(r.status(), 404, "{path}");
    }

    println!("crawl: {} answers checked", crawl.seen);
    assert!(
        crawl.leaks.is_empty(),
        "{} kinds of answer named a member:\n{}",
        crawl.leaks.len(),
        crawl.report()
    );
}

/// `[array] public_port = 8443` (the array itself listens elsewhere, as
/// behind NAT): every URL clients are given, in Autodiscover, in OWA's
/// redirects (their percent-encoded `url=` too) and pages, names the array
/// on that port; names outside URLs (`<Server>`, cookie domains) get none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_port_is_in_every_url_clients_are_given() {
    const ORIGIN: &str = "https://mail.lab.com:8443/";
    let s = setup_with("public_port = 8443\n").await;
    let c = &s.client;
    let needles = member_needles(&s.members);
    let (_, array) = http_get(s.addrs.admin, "/api/array").await.unwrap();
    let array: serde_json::Value = serde_json::from_str(&array).unwrap();
    assert_eq!(array["public_port"], 8443);
    database_set(&s.config, &["DB01"], "mail.lab.com");
    wait_until("DB01 set", RELOAD, || async {
        exch_server_of(c, ALICE).await.0 == "mail.lab.com"
    })
    .await;

    // Autodiscover, from both members: URLs with the port, hosts without.
    for _ in 0..4 {
        let r = c.send(autodiscover(ALICE)).await.unwrap();
        assert_eq!(r.status(), 200);
        let body = text(&r);
        for want in [
            "<ASUrl>https://mail.lab.com:8443/EWS/Exchange.asmx</ASUrl>",
            "<EwsUrl>https://mail.lab.com:8443/EWS/Exchange.asmx</EwsUrl>",
            "<EcpUrl>https://mail.lab.com:8443/ecp/</EcpUrl>",
            "<OABUrl>https://mail.lab.com:8443/OAB/</OABUrl>",
            "<UMUrl>https://mail.lab.com:8443/EWS/UM2007Legacy.asmx</UMUrl>",
            "<OWAUrl AuthenticationMethod=\"Fba\">https://mail.lab.com:8443/owa/</OWAUrl>",
            "<Type>EXCH</Type><Server>mail.lab.com</Server>",
            "<Type>EXPR</Type><Server>mail.lab.com</Server>",
            "<PublicFolderServer>mail.lab.com</PublicFolderServer>",
            "<CertPrincipalName>msstd:mail.lab.com</CertPrincipalName>",
        ] {
            assert!(body.contains(want), "{want} not in {body}");
        }
        assert_eq!(
            body.matches("https://").count(),
            body.matches(ORIGIN).count(),
            "{body}"
        );
        let leaks = leaks_in(body.as_bytes(), &needles);
        assert!(leaks.is_empty(), "{leaks:?}");
    }

    // OWA: the logon redirect and its url= parameter, a failed and a good
    // logon, the inbox's links.
    for _ in 0..4 {
        let r = c.get("/owa/").await.unwrap();
        assert_eq!(r.status(), 302);
        let location = header(&r, "location");
        assert!(
            location.starts_with(
                "https://mail.lab.com:8443/owa/auth/logon.aspx?url=https%3A%2F%2Fmail.lab.com%3A8443%2Fowa%2F"
            ),
            "{location}"
        );
        let r = c
            .get(&location["https://mail.lab.com:8443".len()..])
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let page = text(&r);
        assert_eq!(
            page.matches("https://").count(),
            page.matches(ORIGIN).count(),
            "{page}"
        );
        let r = c.send(owa_logon("wrong")).await.unwrap();
        let location = header(&r, "location");
        assert!(
            location.starts_with("https://mail.lab.com:8443/owa/auth/logon.aspx?")
                && location.ends_with("&reason=2"),
            "{location}"
        );
        let r = c.send(owa_logon("Alice%21lab1")).await.unwrap();
        assert_eq!(r.status(), 302);
        assert_eq!(header(&r, "location"), ORIGIN.to_string() + "owa/");
        let cookie = header(&r, "set-cookie");
        assert!(!cookie.contains("8443"), "{cookie}");
        let cookie = cookie.split(';').next().unwrap_or_default().to_string();
        let r = c
            .send(build(
                "GET",
                "/owa/",
                &[("cookie", cookie.as_str())],
                Bytes::new(),
            ))
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let inbox = text(&r);
        assert!(
            inbox.contains("href=\"https://mail.lab.com:8443/owa/"),
            "{inbox}"
        );
        assert_eq!(
            inbox.matches("https://").count(),
            inbox.matches(ORIGIN).count(),
            "{inbox}"
        );
        let leaks = leaks_in(inbox.as_bytes(), &needles);
        assert!(leaks.is_empty(), "{leaks:?}");
    }
}

// ---- SOAP and JSON Autodiscover ------------------------------------------

/// A SOAP `GetUserSettings` request for `mailboxes`, as the EWS Managed
/// API sends it (SOAP 1.1) or as WCF clients do (SOAP 1.2).
fn get_user_settings(mailboxes: &[&str], soap12: bool) -> Request<Full<Bytes>> {
    let envelope = if soap12 {
        "http://www.w3.org/2003/05/soap-envelope"
    } else {
        "http://schemas.xmlsoap.org/soap/envelope/"
    };
    let users: String = mailboxes
        .iter()
        .map(|m| format!("<a:User><a:Mailbox>{m}</a:Mailbox></a:User>"))
        .collect();
    let settings: String = [
        "UserDisplayName",
        "UserDN",
        "InternalMailboxServer",
        "InternalRpcClientServer",
        "InternalMailboxServerDN",
        "MailboxDN",
        "ExternalMailboxServer",
        "InternalEwsUrl",
        "ExternalEwsUrl",
        "InternalWebClientUrls",
        "ExternalMapiHttpServerUrl",
        "EwsSupportedSchemas",
    ]
    .iter()
    .map(|s| format!("<a:Setting>{s}</a:Setting>"))
    .collect();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:a=\"http://schemas.microsoft.com/exchange/2010/Autodiscover\" \
         xmlns:wsa=\"http://www.w3.org/2005/08/addressing\" \
         xmlns:soap=\"{envelope}\">\
         <soap:Header><a:RequestedServerVersion>Exchange2010</a:RequestedServerVersion>\
         <wsa:Action>http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings</wsa:Action>\
         <wsa:To>https://mail.lab.com/autodiscover/autodiscover.svc</wsa:To></soap:Header>\
         <soap:Body><a:GetUserSettingsRequestMessage><a:Request>\
         <a:Users>{users}</a:Users><a:RequestedSettings>{settings}</a:RequestedSettings>\
         </a:Request></a:GetUserSettingsRequestMessage></soap:Body></soap:Envelope>"
    );
    let action =
        "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettings";
    let soap_action = format!("\"{action}\"");
    let content_type = format!("application/soap+xml; charset=utf-8; action=\"{action}\"");
    let headers: Vec<(&str, &str)> = if soap12 {
        vec![("content-type", content_type.as_str())]
    } else {
        vec![
            ("content-type", "text/xml; charset=utf-8"),
            ("soapaction", soap_action.as_str()),
        ]
    };
    build("POST", "/autodiscover/autodiscover.svc", &headers, body)
}

/// The `<UserResponse>` elements of a SOAP answer, in order.
fn user_responses(body: &str) -> Vec<&str> {
    body.split("<UserResponse>").skip(1).collect()
}

/// The value of string setting `name` in one user's response.
fn setting<'a>(user: &'a str, name: &str) -> Option<&'a str> {
    between(user, &format!("<Name>{name}</Name><Value>"), "</Value>")
}

/// `InternalRpcClientServer` of Alice, then Bob, through the array.
async fn rpc_client_servers(c: &Client) -> Vec<String> {
    let r = c
        .send(get_user_settings(&[ALICE.0, BOB.0], false))
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", text(&r));
    user_responses(&text(&r))
        .iter()
        .map(|u| {
            setting(u, "InternalRpcClientServer")
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// SOAP (1.1 and 1.2) and JSON Autodiscover through the array, with
/// `public_port = 8443`: the RPC client access server is each mailbox's
/// database's, every URL names the array on the public port, and no
/// answer names a member.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn soap_and_json_autodiscover_name_the_database_server_and_the_array() {
    const ORIGIN: &str = "https://mail.lab.com:8443/";
    let s = setup_with("public_port = 8443\n").await;
    let c = &s.client;
    let needles = member_needles(&s.members);

    // Unset databases: the member's own name, the documented exception.
    let servers = rpc_client_servers(c).await;
    assert!(
        servers
            .iter()
            .all(|s| s == "ex1.lab.local" || s == "ex2.lab.local"),
        "{servers:?}"
    );
    database_set(&s.config, &["DB01"], "outlook.lab.com");
    database_set(&s.config, &["DB02"], "mail.lab.com");
    wait_until("both databases set", RELOAD, || async {
        rpc_client_servers(c).await == ["outlook.lab.com", "mail.lab.com"]
    })
    .await;

    for round in 0..4 {
        let soap12 = round % 2 == 1;
        let r = c
            .send(get_user_settings(
                &[ALICE.0, BOB.0, "nobody@lab.com"],
                soap12,
            ))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", text(&r));
        let want_type = if soap12 {
            "application/soap+xml"
        } else {
            "text/xml"
        };
        assert!(header(&r, "content-type").starts_with(want_type), "{r:?}");
        let body = text(&r);
        let users = user_responses(&body);
        assert_eq!(users.len(), 3, "{body}");
        for (user, (display, rpc, db)) in users.iter().zip([
            ("Alice Anderson", "outlook.lab.com", "DB01"),
            ("Bob Brown", "mail.lab.com", "DB02"),
        ]) {
            assert_eq!(setting(user, "UserDisplayName"), Some(display), "{user}");
            assert_eq!(
                setting(user, "InternalRpcClientServer"),
                Some(rpc),
                "{user}"
            );
            let mdb = setting(user, "MailboxDN").unwrap_or_default();
            assert!(mdb.ends_with(&format!("/cn=Databases/cn={db}")), "{user}");
            assert_eq!(setting(user, "ExternalMailboxServer"), Some("mail.lab.com"));
            assert_eq!(setting(user, "InternalMailboxServer"), Some("mail.lab.com"));
            let server_dn = setting(user, "InternalMailboxServerDN").unwrap_or_default();
            assert!(server_dn.ends_with("/cn=Servers/cn=mail.lab.com"), "{user}");
            assert_eq!(
                setting(user, "ExternalEwsUrl"),
                Some("https://mail.lab.com:8443/EWS/Exchange.asmx")
            );
            assert!(
                user.contains("<Url>https://mail.lab.com:8443/owa/</Url>"),
                "{user}"
            );
        }
        assert!(
            users[2].contains("<ErrorCode>InvalidUser</ErrorCode>"),
            "{body}"
        );
        assert_eq!(
            body.matches("https://").count(),
            body.matches(ORIGIN).count(),
            "{body}"
        );
        let leaks = leaks_in(body.as_bytes(), &needles);
        assert!(leaks.is_empty(), "{leaks:?}");

        // JSON: EWS and ActiveSync.
        for (protocol, path) in [
            ("EWS", "EWS/Exchange.asmx"),
            ("ActiveSync", "Microsoft-Server-ActiveSync"),
        ] {
            let r = c
                .get(&format!(
                    "/autodiscover/autodiscover.json/v1.0/{}?Protocol={protocol}",
                    ALICE.0
                ))
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{}", text(&r));
            assert!(header(&r, "content-type").starts_with("application/json"));
            let json: serde_json::Value = serde_json::from_str(&text(&r)).unwrap();
            assert_eq!(json["Protocol"], protocol);
            assert_eq!(json["Url"], format!("{ORIGIN}{path}"));
            let leaks = leaks_in(r.body(), &needles);
            assert!(leaks.is_empty(), "{leaks:?}");
        }
        let r = c
            .get("/autodiscover/autodiscover.json/v1.0/alice@lab.com?Protocol=Rest")
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert!(leaks_in(r.body(), &needles).is_empty());
    }
}

#[test]
fn leak_finder_sees_names_alone_and_percent_encoded() {
    let needles = member_needles(&["127.0.0.1:9001".parse().unwrap()]);
    let found = |t: &str| leaks_in(t.as_bytes(), &needles);
    assert!(!found("200 OK<br/>EX1").is_empty());
    assert!(!found("https://ex1.lab.local/owa/").is_empty());
    assert!(!found("url=https%3A%2F%2Fex2.lab.local%2Fowa%2F").is_empty());
    assert!(!found("cn=Servers/cn=EX2</ServerDN>").is_empty());
    assert!(!found("http://127.0.0.1:9001/x").is_empty());
    assert!(found("https://mail.lab.com/owa/").is_empty());
    assert!(found("EX10 TEX1 ex1x 127.0.0.1:90012 10.127.0.0.1:9001").is_empty());
    assert!(found("cadata=AbEX1zz").is_empty());
    assert!(found("EX1.other.example www.ex1.lab.local.x").is_empty());
    assert!(!found("served by EX1.").is_empty());
}

#[test]
fn documented_exception_is_only_the_unset_database_server() {
    let body = |db: &str| {
        format!(
            "<Protocol><Type>EXCH</Type><Server>ex2.lab.local</Server>\
             <MdbDN>/o=x/cn=Databases/cn={db}</MdbDN></Protocol>\
             <Protocol><Type>EXPR</Type><Server>ex2.lab.local</Server></Protocol>"
        )
    };
    let kept = without_exception(&body("DB02"), &["DB02"]);
    assert_eq!(kept.matches("ex2.lab.local").count(), 1, "{kept}");
    let kept = without_exception(&body("DB01"), &["DB02"]);
    assert_eq!(kept.matches("ex2.lab.local").count(), 2, "{kept}");
}
