//! Mailbox-aware routing and the DAG through the array, black-box: real
//! `casarray mock-server --dag` processes (EX1, EX2), a real `casarray
//! serve` in front with `[dag] enabled` and `[rewrite]
//! expose_server_headers`, real TLS.
//!
//! - each client form (EWS with X-AnchorMailbox, ActiveSync User=, MAPI
//!   MailboxId, Outlook Anywhere's GUID endpoint, Autodiscover's body) is
//!   answered by the server holding the mailbox's active copy
//!   (X-FEServer = X-BEServer);
//! - `database move-active` moves Alice's requests with her database;
//! - kill -9 of the server holding DB02 while Bob loops through the array:
//!   no client error, the requests during the failover are held;
//! - `/api/databases`, `copy-status` and the metrics show it all.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::dag::{wait_settled, TestDag};
use support::*;

const ALICE: (&str, &str) = ("alice@lab.com", "Alice!lab1");
const BOB: (&str, &str) = ("bob@lab.com", "Bob!lab1");
const TOKEN: &str = "t0ken-for-routing-tests";
/// Bound on a failover or a move: 60 s.
const MOVE: Duration = Duration::from_secs(60);

/// The tests of this file run one at a time (their DAGs' heartbeats).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Setup {
    dag: TestDag,
    _certs_dir: tempfile::TempDir,
    config: std::path::PathBuf,
    array: Proc,
    addrs: ArrayAddrs,
    client: Client,
}

/// EX1 and EX2 in a DAG (DB01 on EX1, DB02 on EX2), settled, and an array
/// in front that has learned the DAG.
async fn setup() -> Setup {
    let mut dag = TestDag::two();
    dag.start("EX1");
    dag.start("EX2");
    wait_settled(&dag).await;
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let token = dir.path().join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&token, private).unwrap();
    let extra = "[admin]\ntoken_file = \"admin.token\"\n\n[dag]\nenabled = true\n\n\
                 [rewrite]\nexpose_server_headers = true\n\n\
                 [[database]]\nname = \"DB01\"\n\n[[database]]\nname = \"DB02\"\n";
    let members = [("EX1", dag.addr("EX1")), ("EX2", dag.addr("EX2"))];
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &members, extra)).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    wait_until("the array learned the DAG", MOVE, || async {
        active(addrs.admin, "DB01").await.as_deref() == Some("EX1")
            && active(addrs.admin, "DB02").await.as_deref() == Some("EX2")
    })
    .await;
    Setup {
        dag,
        _certs_dir: dir,
        config,
        array,
        addrs,
        client,
    }
}

/// The active member of `db` per the array's admin API.
async fn active(admin: SocketAddr, db: &str) -> Option<String> {
    let (status, body) = http_get(admin, "/api/databases").await.ok()?;
    if status != 200 {
        return None;
    }
    let v: Value = serde_json::from_str(&body).ok()?;
    v.as_array()?.iter().find(|d| d["name"] == db)?["active"]
        .as_str()
        .map(str::to_owned)
}

fn basic(user: (&str, &str)) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", user.0, user.1))
    )
}

const FIND_INBOX: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
    <soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" \
    xmlns:m=\"http://schemas.microsoft.com/exchange/services/2006/messages\" \
    xmlns:t=\"http://schemas.microsoft.com/exchange/services/2006/types\"><soap:Body>\
    <m:FindItem Traversal=\"Shallow\"><m:ItemShape><t:BaseShape>IdOnly</t:BaseShape></m:ItemShape>\
    <m:ParentFolderIds><t:DistinguishedFolderId Id=\"inbox\"/></m:ParentFolderIds></m:FindItem>\
    </soap:Body></soap:Envelope>";

/// An EWS FindItem for `user` through the array, with X-AnchorMailbox.
async fn ews(client: &Client, user: (&str, &str)) -> Resp {
    let auth = basic(user);
    let req = build(
        "POST",
        "/EWS/Exchange.asmx",
        &[
            ("authorization", auth.as_str()),
            ("x-anchormailbox", user.0),
            ("content-type", "text/xml; charset=utf-8"),
        ],
        FIND_INBOX,
    );
    client.send(req).await.expect("an answer")
}

/// The member that answered and the one holding the mailbox.
fn fe_be(r: &Resp) -> (String, String) {
    (header(r, "x-feserver"), header(r, "x-beserver"))
}

fn guid_of(directory: &Value, address: &str) -> String {
    directory["mailboxes"]
        .as_array()
        .and_then(|m| m.iter().find(|e| e["address"] == address))
        .and_then(|e| e["guid"].as_str())
        .expect("a GUID")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_form_reaches_the_server_with_the_active_copy() {
    let _serial = SERIAL.lock().await;
    let s = setup().await;
    let (_, dir) = http_get(s.dag.addr("EX1"), "/mock/directory")
        .await
        .unwrap();
    let directory: Value = serde_json::from_str(&dir).unwrap();
    let (alice_guid, bob_guid) = (guid_of(&directory, ALICE.0), guid_of(&directory, BOB.0));

    for _ in 0..4 {
        let r = ews(&s.client, ALICE).await;
        assert_eq!(r.status(), 200, "{}", text(&r));
        assert_eq!(fe_be(&r), ("EX1".into(), "EX1".into()), "alice");
        let r = ews(&s.client, BOB).await;
        assert_eq!(fe_be(&r), ("EX2".into(), "EX2".into()), "bob");
    }
    // ActiveSync names the user in the query.
    let bob_auth = basic(BOB);
    for _ in 0..4 {
        let req = build(
            "OPTIONS",
            "/Microsoft-Server-ActiveSync?User=bob&DeviceId=ROUTE1&DeviceType=iPhone",
            &[("authorization", bob_auth.as_str())],
            "",
        );
        let r = s.client.send(req).await.unwrap();
        assert_eq!(header(&r, "x-feserver"), "EX2", "ActiveSync");
    }
    // MAPI/HTTP and Outlook Anywhere name the mailbox by GUID.
    for _ in 0..4 {
        let req = build(
            "POST",
            &format!("/mapi/emsmdb/?MailboxId={bob_guid}@lab.com"),
            &[
                ("authorization", bob_auth.as_str()),
                ("x-requesttype", "Connect"),
            ],
            "",
        );
        let r = s.client.send(req).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(fe_be(&r), ("EX2".into(), "EX2".into()), "MAPI");
    }
    let alice_auth = basic(ALICE);
    for _ in 0..4 {
        let req = build(
            "RPC_OUT_DATA",
            &format!("/rpc/rpcproxy.dll?{alice_guid}@lab.com:6001&bytes=1000"),
            &[
                ("authorization", alice_auth.as_str()),
                ("content-type", "application/rpc"),
            ],
            "\0".repeat(76),
        );
        let r = s.client.send(req).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(fe_be(&r), ("EX1".into(), "EX1".into()), "Outlook Anywhere");
    }
    // Autodiscover names the mailbox in its body only.
    for (user, server) in [(ALICE, "EX1"), (BOB, "EX2")] {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover \
             xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\
             <Request><EMailAddress>{}</EMailAddress><AcceptableResponseSchema>\
             http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a\
             </AcceptableResponseSchema></Request></Autodiscover>",
            user.0
        );
        let auth = basic(user);
        let req = build(
            "POST",
            "/Autodiscover/Autodiscover.xml",
            &[
                ("authorization", auth.as_str()),
                ("content-type", "text/xml"),
            ],
            body,
        );
        let r = s.client.send(req).await.unwrap();
        assert_eq!(r.status(), 200, "{}", text(&r));
        assert_eq!(
            header(&r, "x-feserver"),
            server,
            "Autodiscover for {}",
            user.0
        );
    }
    let active = metric(
        s.addrs.admin,
        "casarray_mailbox_routing_total",
        &[("result", "active")],
    )
    .await;
    // 8 EWS, 4 ActiveSync, 4 MAPI, 4 Outlook Anywhere, 2 Autodiscover.
    assert!(active >= 22.0, "{active}");
    let db_active = metric(
        s.addrs.admin,
        "casarray_database_active",
        &[("database", "DB02"), ("member", "EX2")],
    )
    .await;
    assert_eq!(db_active, 1.0);
    // Without a mailbox: the ordinary rule, counted as unknown.
    let r = s.client.get("/owa/healthcheck.htm").await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        metric(
            s.addrs.admin,
            "casarray_mailbox_routing_total",
            &[("result", "unknown")]
        )
        .await
            >= 1.0
    );
    drop(s.array);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn move_active_moves_the_mailboxs_requests_and_copy_status_shows_it() {
    let _serial = SERIAL.lock().await;
    let s = setup().await;
    let r = ews(&s.client, ALICE).await;
    assert_eq!(fe_be(&r).0, "EX1");

    let admin = s.addrs.admin.to_string();
    let status = casarray(
        &["database", "copy-status", "--config"],
        &s.config,
        &["--admin", &admin],
    );
    assert!(status.status.success(), "{status:?}");
    let table = String::from_utf8_lossy(&status.stdout).into_owned();
    assert!(table.contains("DB01\\EX1 Mounted"), "{table}");
    assert!(table.contains("DB01\\EX2 Healthy"), "{table}");
    let json = casarray(
        &["database", "copy-status", "--config"],
        &s.config,
        &["DB02", "--json", "--admin", &admin],
    );
    assert!(json.status.success(), "{json:?}");
    let v: Value = serde_json::from_slice(&json.stdout).expect("JSON");
    assert_eq!(v[0]["name"], "DB02");
    assert_eq!(v[0]["active"], "EX2");
    assert_eq!(v[0]["copies"].as_array().unwrap().len(), 2);

    let moved = casarray(
        &["database", "move-active", "--config"],
        &s.config,
        &["DB01", "--server", "EX2", "--admin", &admin],
    );
    let said = String::from_utf8_lossy(&moved.stdout).into_owned();
    assert!(moved.status.success(), "{moved:?}");
    assert!(said.starts_with("DB01: active copy now on EX2"), "{said}");
    // The command returns once the array's map shows it: the next request
    // follows.
    let r = ews(&s.client, ALICE).await;
    assert_eq!(fe_be(&r), ("EX2".into(), "EX2".into()));
    assert_eq!(active(s.addrs.admin, "DB01").await.as_deref(), Some("EX2"));
    // A refused move says why and exits non-zero.
    let refused = casarray(
        &["database", "move-active", "--config"],
        &s.config,
        &["DB09", "--server", "EX1", "--admin", &admin],
    );
    assert!(!refused.status.success());
    let why = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(why.contains("no database named \"DB09\""), "{why}");
    drop(s.array);
}

/// kill -9 of the server holding DB02's active copy while Bob's client
/// loops through the array (EWS with X-AnchorMailbox, and OWA): no client
/// error; the requests during the failover are held until DB02 mounts on
/// EX1, then answered there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_holds_bobs_requests_and_fails_none() {
    let _serial = SERIAL.lock().await;
    let mut s = setup().await;
    // Bob's OWA session, through the array.
    let logon = build(
        "POST",
        "/owa/auth.owa",
        &[("content-type", "application/x-www-form-urlencoded")],
        "username=bob%40lab.com&password=Bob%21lab1&destination=%2Fowa%2F",
    );
    let r = s.client.send(logon).await.unwrap();
    let cookies: Vec<String> = r
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
        .collect();
    let cookie = cookies.join("; ");
    assert!(
        cookie.contains("casarray_mailbox="),
        "the array's routing cookie: {cookie}"
    );

    let stop = Arc::new(AtomicBool::new(false));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let answered = Arc::new(AtomicU64::new(0));
    let slowest = Arc::new(Mutex::new(Duration::ZERO));
    let worker = {
        let (client, stop, errors, answered, slowest, cookie) = (
            s.client.clone(),
            Arc::clone(&stop),
            Arc::clone(&errors),
            Arc::clone(&answered),
            Arc::clone(&slowest),
            cookie.clone(),
        );
        tokio::spawn(async move {
            let mut owa = false;
            while !stop.load(Ordering::Relaxed) {
                owa = !owa;
                let started = Instant::now();
                let r = if owa {
                    let req = build("GET", "/owa/", &[("cookie", cookie.as_str())], "");
                    client.send(req).await
                } else {
                    Ok(ews(&client, BOB).await)
                };
                let took = started.elapsed();
                match r {
                    Ok(r) if r.status() == 200 => {
                        answered.fetch_add(1, Ordering::Relaxed);
                        let mut s = slowest.lock().unwrap();
                        *s = (*s).max(took);
                    }
                    Ok(r) => errors
                        .lock()
                        .unwrap()
                        .push(format!("{} {}", r.status(), text(&r))),
                    Err(e) => errors.lock().unwrap().push(e.to_string()),
                }
            }
        })
    };
    wait_until("Bob's requests flowing", MOVE, || async {
        answered.load(Ordering::Relaxed) >= 20
    })
    .await;
    let killed = Instant::now();
    s.dag.kill9("EX2");
    wait_until("DB02 active on EX1 per the array", MOVE, || async {
        active(s.addrs.admin, "DB02").await.as_deref() == Some("EX1")
    })
    .await;
    let moved_after = killed.elapsed();
    let before = answered.load(Ordering::Relaxed);
    wait_until("Bob's requests flowing on EX1", MOVE, || async {
        answered.load(Ordering::Relaxed) >= before + 20
    })
    .await;
    stop.store(true, Ordering::Relaxed);
    worker.await.unwrap();
    let errors = errors.lock().unwrap().clone();
    let held = *slowest.lock().unwrap();
    println!(
        "routing, kill -9 of EX2: DB02 active on EX1 per the array {} ms after the kill; \
         {} of Bob's requests answered, {} client errors; the longest held {} ms",
        moved_after.as_millis(),
        answered.load(Ordering::Relaxed),
        errors.len(),
        held.as_millis()
    );
    assert!(errors.is_empty(), "client errors: {errors:?}");
    assert!(
        held >= Duration::from_millis(500),
        "requests were held: {held:?}"
    );
    let r = ews(&s.client, BOB).await;
    assert_eq!(fe_be(&r), ("EX1".into(), "EX1".into()));
    assert!(
        metric(
            s.addrs.admin,
            "casarray_database_failovers_total",
            &[("database", "DB02")]
        )
        .await
            >= 1.0
    );
    drop(s.array);
}

/// `casarray ARGS.. CONFIG REST..`, its output.
fn casarray(args: &[&str], config: &Path, rest: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .arg(config)
        .args(rest)
        .output()
        .expect("run casarray")
}
