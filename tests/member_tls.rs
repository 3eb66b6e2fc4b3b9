//! HTTPS from the array to its members, black-box: real `casarray
//! mock-server` processes serving TLS with certificates from a test CA, and
//! a real `casarray serve` in front with `tls = true` and `[member_tls]`.
//! Good members serve OWA, EWS and Autodiscover; a member with a certificate
//! from another CA or for another name goes down and says why while the
//! others serve; `verify = false` accepts a self-signed member; a member
//! spoken to in the wrong protocol fails fast, not with a hang; the CA file
//! is read again on reload, and a bad one is refused.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use support::*;

/// Bound on health changes seen through the admin API (interval 200 ms,
/// rise and fall 2): 20 s.
const HEALTH_CHANGE: Duration = Duration::from_secs(20);

const ALICE: (&str, &str) = ("alice@lab.com", "Alice!lab1");

/// A test directory: the array's certificate, the members' CA (file
/// `members-ca.crt`) and a mailbox store.
struct Lab {
    dir: tempfile::TempDir,
    certs: TestCerts,
    ca: TestCa,
    store: PathBuf,
}

fn lab() -> Lab {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let ca = TestCa::new(dir.path(), "members-ca", "casarray test members CA");
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    Lab {
        dir,
        certs,
        ca,
        store,
    }
}

impl Lab {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes the config (`members` are whole `[[member]]` tables, `extra`
    /// follows them) and starts the array, its log in `array.log`.
    fn start_array(&self, members: &[String], extra: &str) -> (Proc, ArrayAddrs, PathBuf) {
        let config = self.path("casarray.toml");
        let text = config_toml(&self.certs, &[], &format!("{}{extra}", members.concat()));
        std::fs::write(&config, text).unwrap();
        let log = self.path("array.log");
        let (array, addrs) = spawn_array_with(&config, &[], Some(&log));
        (array, addrs, config)
    }

    fn client(&self, addrs: ArrayAddrs) -> Client {
        Client::h1(addrs.https, &self.certs.ca_pem)
    }
}

/// `<name>.lab.local`.
fn fqdn(name: &str) -> String {
    format!("{}.lab.local", name.to_ascii_lowercase())
}

/// A `[[member]]` table with `lines` (like `tls = true\n`) added.
fn member(name: &str, addr: SocketAddr, lines: &str) -> String {
    format!(
        "[[member]]\nname = \"{name}\"\naddress = \"{addr}\"\nfqdn = \"{}\"\n{lines}\n",
        fqdn(name)
    )
}

/// A mock mailbox server serving HTTPS with `cert` and `key`.
fn spawn_tls_mock(
    name: &str,
    store: &Path,
    (cert, key): &(PathBuf, PathBuf),
) -> (Proc, SocketAddr) {
    let fqdn = fqdn(name);
    let (cert, key) = (cert.to_string_lossy(), key.to_string_lossy());
    spawn_mock(
        name,
        store,
        &["--fqdn", &fqdn, "--tls-cert", &cert, "--tls-key", &key],
    )
}

/// A mock mailbox server serving plain HTTP.
fn spawn_plain_mock(name: &str, store: &Path) -> (Proc, SocketAddr) {
    spawn_mock(name, store, &["--fqdn", &fqdn(name)])
}

/// The detail of `member`'s last `service` probe ("" before the first).
async fn detail(admin: SocketAddr, member: &str, service: &str) -> String {
    let v = members(admin).await;
    v.as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == member)
        .and_then(|m| m["last_checks"][service]["detail"].as_str())
        .unwrap_or_default()
        .to_owned()
}

/// Waits until `member` is down for owa with a probe detail containing
/// `why`; returns that detail.
async fn wait_down_because(admin: SocketAddr, member: &str, why: &str) -> String {
    wait_until(
        &format!("{member} down for owa because {why:?}"),
        HEALTH_CHANGE,
        || async {
            !member_up(admin, member, "owa").await
                && detail(admin, member, "owa").await.contains(why)
        },
    )
    .await;
    detail(admin, member, "owa").await
}

/// Waits until each member is up for each service by a passed probe (a
/// member starts up before its first probe, with no check to show).
async fn wait_up(admin: SocketAddr, names: &[&str], services: &[&str]) {
    wait_until(
        &format!("{names:?} up for {services:?}"),
        HEALTH_CHANGE,
        || async {
            let v = members(admin).await;
            names.iter().all(|name| {
                let Some(m) = v
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find(|m| m["name"] == *name)
                else {
                    return false;
                };
                services
                    .iter()
                    .all(|s| m["services"][*s] == true && m["last_checks"][*s]["ok"] == true)
            })
        },
    )
    .await;
}

async fn requests_to(admin: SocketAddr, member: &str) -> f64 {
    metric(admin, "casarray_requests_total", &[("member", member)]).await
}

/// The array's log so far.
fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Waits until one line of the array's log holds every one of `words`.
async fn wait_log(log: &Path, words: &[&str]) {
    wait_until(
        &format!("a log line with {words:?}"),
        HEALTH_CHANGE,
        || async {
            log_text(log)
                .lines()
                .any(|line| words.iter().all(|w| line.contains(w)))
        },
    )
    .await;
}

/// Replaces `path` atomically (the array's file watch sees one change).
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn basic(user: (&str, &str)) -> String {
    use base64::Engine as _;
    let raw = format!("{}:{}", user.0, user.1);
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(raw)
    )
}

fn autodiscover(address: &str) -> Request<Full<Bytes>> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\
         <Request><EMailAddress>{address}</EMailAddress>\
         <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\
         </Request></Autodiscover>"
    );
    build(
        "POST",
        "/Autodiscover/Autodiscover.xml",
        &[("content-type", "text/xml")],
        body,
    )
}

fn ews_get_folder(user: (&str, &str)) -> Request<Full<Bytes>> {
    let auth = basic(user);
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\" \
         xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\">\
         <soap:Body><m:GetFolder><m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>\
         <m:FolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:FolderIds></m:GetFolder>\
         </soap:Body></soap:Envelope>";
    build(
        "POST",
        "/EWS/Exchange.asmx",
        &[
            ("authorization", auth.as_str()),
            ("content-type", "text/xml; charset=utf-8"),
        ],
        body,
    )
}

/// Two members serving HTTPS with certificates from the members' CA: OWA,
/// EWS and Autodiscover work through both, and both are up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_members_serve_owa_ews_and_autodiscover() {
    let lab = lab();
    let (_ex1, a1) = spawn_tls_mock("EX1", &lab.store, &lab.ca.issue("ex1", &["ex1.lab.local"]));
    let (_ex2, a2) = spawn_tls_mock("EX2", &lab.store, &lab.ca.issue("ex2", &["ex2.lab.local"]));
    let (_array, addrs, _) = lab.start_array(
        &[
            member("EX1", a1, "tls = true\n"),
            member("EX2", a2, "tls = true\n"),
        ],
        // Relative to the config file, like every path in it.
        "[member_tls]\nca = \"members-ca.crt\"\n",
    );
    let admin = addrs.admin;
    wait_up(admin, &["EX1", "EX2"], &["owa", "ews", "autodiscover"]).await;
    let d = detail(admin, "EX1", "owa").await;
    assert!(d.starts_with("200 OK"), "{d}");
    let v = members(admin).await;
    assert!(
        v.as_array().unwrap().iter().all(|m| m["tls"] == true),
        "{v}"
    );

    let client = lab.client(addrs);
    for _ in 0..4 {
        let r = client.get("/owa/healthcheck.htm").await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(text(&r).starts_with("200 OK"), "{}", text(&r));
    }
    let r = client.send(autodiscover(ALICE.0)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", text(&r));
    let body = text(&r);
    assert!(
        body.contains("https://mail.lab.com/EWS/Exchange.asmx"),
        "{body}"
    );
    assert!(!body.contains("lab.local/"), "member names leaked: {body}");
    let r = client.send(ews_get_folder(ALICE)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert!(text(&r).contains("NoError"), "{}", text(&r));

    // Round robin: both members answered over TLS.
    assert!(requests_to(admin, "EX1").await > 0.0);
    assert!(requests_to(admin, "EX2").await > 0.0);
}

/// A member whose certificate is from another CA, and one whose
/// certificate does not carry its tls_server_name: both go down, the health
/// detail and the log say why, the good member serves everything. A reload
/// that fixes the name brings that member up; a bad CA file is refused on
/// reload (the old config keeps serving); a CA bundle with the other CA
/// added brings the other member up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_member_certificates_take_the_member_down_and_say_why() {
    let lab = lab();
    let other = TestCa::new(lab.dir.path(), "other-ca", "someone else's CA");
    let (_ex1, a1) = spawn_tls_mock("EX1", &lab.store, &lab.ca.issue("ex1", &["ex1.lab.local"]));
    let (_ex2, a2) = spawn_tls_mock("EX2", &lab.store, &other.issue("ex2", &["ex2.lab.local"]));
    let (_ex3, a3) = spawn_tls_mock(
        "EX3",
        &lab.store,
        &lab.ca.issue("ex3", &["ex3.corp.example"]),
    );
    let tls_table = "[member_tls]\nca = \"members-ca.crt\"\n";
    let (_array, addrs, config) = lab.start_array(
        &[
            member("EX1", a1, "tls = true\n"),
            member("EX2", a2, "tls = true\n"),
            member("EX3", a3, "tls = true\n"),
        ],
        tls_table,
    );
    let admin = addrs.admin;
    let client = lab.client(addrs);

    // Requests before and after the health checks notice: all answered.
    for _ in 0..9 {
        let r = client.get("/owa/healthcheck.htm").await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let d2 = wait_down_because(admin, "EX2", "certificate not trusted").await;
    assert!(
        d2.starts_with(&format!(
            "TLS handshake with {a2} as ex2.lab.local failed: "
        )),
        "{d2}"
    );
    let d3 = wait_down_because(admin, "EX3", "certificate name mismatch").await;
    assert!(d3.contains("ex3.corp.example"), "{d3}");
    println!("EX2: {d2}\nEX3: {d3}");
    wait_up(admin, &["EX1"], &["owa", "ews", "autodiscover"]).await;
    for _ in 0..6 {
        let r = client.get("/owa/healthcheck.htm").await.unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(requests_to(admin, "EX2").await, 0.0);
    assert_eq!(requests_to(admin, "EX3").await, 0.0);
    assert_eq!(requests_to(admin, "EX1").await, 15.0);
    let log = lab.path("array.log");
    wait_log(
        &log,
        &["member down for service", "certificate not trusted"],
    )
    .await;
    wait_log(
        &log,
        &["member down for service", "certificate name mismatch"],
    )
    .await;

    // The config names the certificate's name: EX3 comes up.
    let reloads = |result: &'static str| async move {
        metric(
            admin,
            "casarray_config_reloads_total",
            &[("result", result)],
        )
        .await
    };
    let members = [
        member("EX1", a1, "tls = true\n"),
        member("EX2", a2, "tls = true\n"),
        member(
            "EX3",
            a3,
            "tls = true\ntls_server_name = \"ex3.corp.example\"\n",
        ),
    ];
    let text = config_toml(&lab.certs, &[], &format!("{}{tls_table}", members.concat()));
    replace_file(&config, &text);
    wait_up(admin, &["EX3"], &["owa"]).await;
    assert!(!member_up(admin, "EX2", "owa").await);

    // A broken CA file: the reload is refused and says why; all still serve.
    let members_ca = std::fs::read_to_string(&lab.ca.path).unwrap();
    let failures = reloads("failure").await;
    replace_file(&lab.ca.path, "not a certificate\n");
    wait_until("the reload refused", HEALTH_CHANGE, || async {
        reloads("failure").await > failures
    })
    .await;
    wait_log(
        &log,
        &["reload refused", "member_tls.ca", "holds no certificate"],
    )
    .await;
    let r = client.get("/owa/healthcheck.htm").await.unwrap();
    assert_eq!(r.status(), 200);

    // Both CAs in the bundle: read again on reload, EX2 comes up.
    let other_ca = std::fs::read_to_string(&other.path).unwrap();
    replace_file(&lab.ca.path, &format!("{members_ca}{other_ca}"));
    wait_up(admin, &["EX1", "EX2", "EX3"], &["owa"]).await;
}

/// `verify = false` accepts a self-signed member certificate for another
/// name, and the log warns that certificates are not checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_false_accepts_a_self_signed_member() {
    let lab = lab();
    let ck = rcgen::generate_simple_self_signed(vec!["selfsigned.local".to_string()]).unwrap();
    let files = (lab.path("self.crt"), lab.path("self.key"));
    std::fs::write(&files.0, ck.cert.pem()).unwrap();
    std::fs::write(&files.1, ck.signing_key.serialize_pem()).unwrap();
    let (_ex1, a1) = spawn_tls_mock("EX1", &lab.store, &files);
    let (_array, addrs, _) = lab.start_array(
        &[member("EX1", a1, "tls = true\n")],
        "[member_tls]\nverify = false\n",
    );
    let admin = addrs.admin;
    wait_up(admin, &["EX1"], &["owa", "ews", "autodiscover"]).await;
    let client = lab.client(addrs);
    let r = client.get("/owa/healthcheck.htm").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(text(&r).starts_with("200 OK"));
    let r = client.send(ews_get_folder(ALICE)).await.unwrap();
    assert_eq!(r.status(), 200, "{}", text(&r));
    assert_eq!(requests_to(admin, "EX1").await, 2.0);
    wait_log(
        &lab.path("array.log"),
        &["member_tls.verify = false", "EX1"],
    )
    .await;
}

/// The wrong protocol in either direction (a member serving HTTPS
/// configured as plain HTTP, a plain-HTTP member configured with
/// tls = true) fails fast, without a hang: requests are answered by the good
/// member at once, and each bad member goes down with a detail that says
/// what to change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_mismatch_fails_fast_and_says_what_to_change() {
    let lab = lab();
    let (_ex1, a1) = spawn_plain_mock("EX1", &lab.store);
    let (_ex2, a2) = spawn_tls_mock("EX2", &lab.store, &lab.ca.issue("ex2", &["ex2.lab.local"]));
    let (_ex3, a3) = spawn_plain_mock("EX3", &lab.store);
    let (_array, addrs, _) = lab.start_array(
        &[
            member("EX1", a1, ""),
            member("EX2", a2, "tls = false\n"),
            member("EX3", a3, "tls = true\n"),
        ],
        "[member_tls]\nca = \"members-ca.crt\"\n",
    );
    let admin = addrs.admin;
    let client = lab.client(addrs);
    let started = Instant::now();
    for _ in 0..9 {
        let r = tokio::time::timeout(Duration::from_secs(10), client.get("/owa/healthcheck.htm"))
            .await
            .expect("no answer within 10 s")
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let took = started.elapsed();
    let d2 = wait_down_because(admin, "EX2", "set tls = true").await;
    assert!(d2.starts_with("request failed: "), "{d2}");
    let d3 = wait_down_because(admin, "EX3", "set tls = false").await;
    assert!(
        d3.starts_with(&format!(
            "TLS handshake with {a3} as ex3.lab.local failed: "
        )),
        "{d3}"
    );
    assert_eq!(requests_to(admin, "EX2").await, 0.0);
    assert_eq!(requests_to(admin, "EX3").await, 0.0);
    println!("9 requests with two mismatched members in {took:?}; EX2: {d2}; EX3: {d3}");
    assert!(took < Duration::from_secs(10), "{took:?}");
}
