//! The admin side, black-box: `/metrics` scraped and parsed back, admin
//! calls with and without the token, draining under load, drain state across
//! a restart, startup errors, and the status report, through a real
//! `casarray serve` process on 127.0.0.1.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use support::backend::EchoBackend;
use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Services of the built-in Exchange profile.
const SERVICES: usize = 9;
const TOKEN: &str = "t0ken-for-tests";
const WITH_TOKEN: &str = "[admin]\ntoken_file = \"admin.token\"\n\n[[database]]\nname = \"DB01\"\n";

struct EchoArray {
    dir: tempfile::TempDir,
    array: Proc,
    addrs: ArrayAddrs,
    client: Client,
    backends: Vec<EchoBackend>,
    config: PathBuf,
}

/// Two echo members (EX1, EX2) behind an array whose admin token is TOKEN.
async fn echo_array(extra: &str) -> EchoArray {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let backends = vec![
        EchoBackend::start("EX1").await,
        EchoBackend::start("EX2").await,
    ];
    let members = [("EX1", backends[0].addr), ("EX2", backends[1].addr)];
    let token = dir.path().join("admin.token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let private = <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600);
    std::fs::set_permissions(&token, private).unwrap();
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &members, extra)).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    EchoArray {
        dir,
        array,
        addrs,
        client,
        backends,
        config,
    }
}

impl EchoArray {
    fn requests(&self, m: usize) -> u64 {
        self.backends[m].state.requests.load(Ordering::Relaxed)
    }

    /// Stops the array (SIGTERM) and starts it again on the same files.
    fn restart(&mut self) {
        // Its exit status is not checked: graceful stop is tested in
        // tests/proxy.rs, and a SIGTERM may land before serve installs its
        // handler. The drain state was persisted when the call returned.
        self.array.signal(libc::SIGTERM);
        self.array
            .wait_exit(Duration::from_secs(60))
            .expect("array exits on SIGTERM");
        let (array, addrs) = spawn_array(&self.config);
        self.array = array;
        self.addrs = addrs;
        self.client.addr = addrs.https;
    }
}

/// An admin call: (status, headers, body).
async fn admin_call(
    admin: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &str,
) -> (u16, http::HeaderMap, String) {
    let tcp = tokio::net::TcpStream::connect(admin).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(conn);
    let mut req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", admin.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    let req = req.body(Full::new(Bytes::from(body.to_owned()))).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("admin answers within 30 s")
        .unwrap();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    (
        parts.status.as_u16(),
        parts.headers,
        String::from_utf8_lossy(&body).into_owned(),
    )
}

async fn member_json(admin: SocketAddr, name: &str) -> serde_json::Value {
    members(admin)
        .await
        .as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not in /api/members"))
}

// ---------------------------------------------------------------- metrics

/// `/metrics` parsed back: family types, and every sample as
/// (name, labels, value).
struct Scrape {
    types: BTreeMap<String, String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

fn parse_exposition(text: &str) -> Scrape {
    let mut types = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                types.insert(name.to_owned(), kind.to_owned()).is_none(),
                "{name} declared twice"
            );
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("sample: series value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.strip_suffix('}').expect("labels end with }")),
            None => (series, ""),
        };
        let mut map = BTreeMap::new();
        for pair in labels.split("\",").filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once("=\"").expect("label=\"value\"");
            map.insert(k.to_owned(), v.trim_end_matches('"').to_owned());
        }
        samples.push((name.to_owned(), map, value));
    }
    // Every sample belongs to a declared family.
    for (name, _, _) in &samples {
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| types.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no # TYPE");
    }
    Scrape { types, samples }
}

impl Scrape {
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|(_, _, v)| v)
            .sum()
    }
}

async fn scrape(admin: SocketAddr) -> Scrape {
    let (status, headers, text) = admin_call(admin, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200);
    assert!(headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    parse_exposition(&text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_back_with_every_contract_metric_and_move_with_traffic() {
    let a = echo_array(WITH_TOKEN).await;
    let admin = a.addrs.admin;
    // A reload (the file watch sees the config change), so that
    // config_reloads_total has a series. Touched again each second until
    // counted: serve starts its file watch just after the readiness line.
    let text = std::fs::read_to_string(&a.config).unwrap();
    let touched = std::sync::Mutex::new(None::<std::time::Instant>);
    wait_until("reload counted", Duration::from_secs(30), || async {
        let due = match *touched.lock().unwrap() {
            None => true,
            Some(t) => t.elapsed() >= Duration::from_secs(1),
        };
        if due {
            std::fs::write(&a.config, format!("{text}\n# touched\n")).unwrap();
            *touched.lock().unwrap() = Some(std::time::Instant::now());
        }
        metric(
            admin,
            "casarray_config_reloads_total",
            &[("result", "success")],
        )
        .await
            >= 1.0
    })
    .await;
    wait_until("health checks ran", Duration::from_secs(30), || async {
        metric(admin, "casarray_health_checks_total", &[("member", "EX2")]).await >= 1.0
    })
    .await;
    assert_eq!(a.client.get("/owa/").await.unwrap().status(), 200);

    let before = scrape(admin).await;
    for (name, kind) in [
        ("casarray_requests_total", "counter"),
        ("casarray_request_duration_seconds", "histogram"),
        ("casarray_member_up", "gauge"),
        ("casarray_health_checks_total", "counter"),
        ("casarray_upstream_retries_total", "counter"),
        ("casarray_connections_active", "gauge"),
        ("casarray_tls_handshake_errors_total", "counter"),
        ("casarray_config_reloads_total", "counter"),
        ("casarray_certificate_expiry_timestamp_seconds", "gauge"),
        ("casarray_rewrites_total", "counter"),
        ("casarray_member_in_flight", "gauge"),
        ("casarray_member_draining", "gauge"),
        ("casarray_process_resident_memory_bytes", "gauge"),
        ("casarray_process_open_fds", "gauge"),
        ("casarray_process_cpu_seconds_total", "counter"),
        ("casarray_process_start_time_seconds", "gauge"),
    ] {
        assert_eq!(
            before.types.get(name).map(String::as_str),
            Some(kind),
            "# TYPE of {name}"
        );
    }
    // Bounded cardinality: no path or client address is a label.
    let labels: BTreeSet<&str> = before
        .samples
        .iter()
        .flat_map(|(_, l, _)| l.keys().map(String::as_str))
        .collect();
    // rule, kind, scope, table: the security metrics' fixed label values
    // (issue 18).
    let allowed: BTreeSet<&str> = [
        "service", "member", "code", "result", "name", "le", "rule", "kind", "scope", "table",
    ]
    .into();
    assert!(labels.is_subset(&allowed), "labels: {labels:?}");
    // Latency buckets resolve 100 µs to 5 min.
    for le in ["0.0001", "0.001", "60", "300"] {
        assert_eq!(
            before
                .samples
                .iter()
                .filter(|(n, l, _)| n == "casarray_request_duration_seconds_bucket"
                    && l.get("le").map(String::as_str) == Some(le))
                .count(),
            SERVICES,
            "a bucket le={le} per service"
        );
    }
    assert!(before.sum("casarray_process_resident_memory_bytes", &[]) > 1e6);
    assert!(before.sum("casarray_process_open_fds", &[]) >= 3.0);
    assert!(before.sum("casarray_process_start_time_seconds", &[]) > 1.6e9);
    assert!(
        before.sum(
            "casarray_certificate_expiry_timestamp_seconds",
            &[("name", "mail.lab.com")]
        ) > 1.6e9
    );
    assert_eq!(
        before.sum(
            "casarray_member_up",
            &[("member", "EX1"), ("service", "ews")]
        ),
        1.0
    );

    // Traffic moves the counters by exactly what was sent.
    const N: usize = 25;
    let mut conn = a.client.connect().await.unwrap();
    for _ in 0..N {
        assert_eq!(
            conn.send(get("/ews/Exchange.asmx")).await.unwrap().status(),
            200
        );
    }
    assert_eq!(a.client.get("/nothing").await.unwrap().status(), 404);
    let after = scrape(admin).await;
    let moved =
        |name: &str, labels: &[(&str, &str)]| after.sum(name, labels) - before.sum(name, labels);
    assert_eq!(
        moved(
            "casarray_requests_total",
            &[("service", "ews"), ("code", "200")]
        ),
        N as f64
    );
    assert_eq!(
        moved(
            "casarray_request_duration_seconds_count",
            &[("service", "ews")]
        ),
        N as f64
    );
    assert!(
        moved(
            "casarray_request_duration_seconds_sum",
            &[("service", "ews")]
        ) > 0.0
    );
    assert_eq!(
        moved(
            "casarray_requests_total",
            &[("member", "none"), ("code", "404")]
        ),
        1.0
    );
    assert!(moved("casarray_health_checks_total", &[("result", "success")]) >= 0.0);
    assert!(
        after.sum("casarray_connections_total", &[])
            >= before.sum("casarray_connections_total", &[]) + 2.0
    );
    assert!(
        after.sum("casarray_connections_active", &[]) >= 1.0,
        "the keep-alive connection is open"
    );
    drop(conn);
}

// ------------------------------------------------------------- token

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_calls_without_the_token_are_401_and_change_nothing() {
    let a = echo_array(WITH_TOKEN).await;
    let admin = a.addrs.admin;
    let state_file = a.dir.path().join("casarray.toml.state.json");
    for token in [None, Some("wrong"), Some("t0ken-for-test")] {
        for (method, path, body) in [
            ("POST", "/api/members/EX1/drain", ""),
            ("POST", "/api/members/EX1/activate", ""),
            (
                "PUT",
                "/api/databases/DB01",
                r#"{"rpc_client_access_server":"mail.lab.com"}"#,
            ),
        ] {
            let (status, headers, _) = admin_call(admin, method, path, token, body).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}");
            assert!(
                headers["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .starts_with("Bearer"),
                "{method} {path}"
            );
        }
    }
    assert_eq!(member_json(admin, "EX1").await["state"], "active");
    assert!(!state_file.exists(), "nothing persisted");
    assert!(!std::fs::read_to_string(&a.config)
        .unwrap()
        .contains("rpc_client_access_server"));
    // Reads are open on loopback.
    for path in [
        "/metrics",
        "/api/array",
        "/api/members",
        "/api/databases",
        "/healthz",
    ] {
        assert_eq!(
            admin_call(admin, "GET", path, None, "").await.0,
            200,
            "{path}"
        );
    }

    // With the token.
    let (status, _, body) =
        admin_call(admin, "POST", "/api/members/ex1/drain", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["name"], "EX1");
    assert_eq!(v["state"], "draining");
    assert_eq!(member_json(admin, "EX1").await["state"], "draining");
    let persisted = std::fs::read_to_string(&state_file).unwrap();
    assert!(persisted.contains("\"EX1\""), "{persisted}");
    let (status, _, body) =
        admin_call(admin, "POST", "/api/members/EX1/activate", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(member_json(admin, "EX1").await["state"], "active");
    let (status, _, _) = admin_call(admin, "POST", "/api/members/EX9/drain", Some(TOKEN), "").await;
    assert_eq!(status, 404);

    // PUT /api/databases: written to the config, then reloaded by the array.
    let (status, _, body) = admin_call(
        admin,
        "PUT",
        "/api/databases/db01",
        Some(TOKEN),
        r#"{"rpc_client_access_server":"mail.lab.com"}"#,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["name"], "DB01");
    assert_eq!(v["rpc_client_access_server"], "mail.lab.com");
    assert!(std::fs::read_to_string(&a.config)
        .unwrap()
        .contains("rpc_client_access_server = \"mail.lab.com\""));
    wait_until(
        "the array reloads the database",
        Duration::from_secs(30),
        || async {
            let (_, _, body) = admin_call(admin, "GET", "/api/databases", None, "").await;
            body.contains("\"rpc_client_access_server\":\"mail.lab.com\"")
        },
    )
    .await;
    let (status, _, _) = admin_call(
        admin,
        "PUT",
        "/api/databases/DB01",
        Some(TOKEN),
        r#"{"rpc_client_access_server":"not a name"}"#,
    )
    .await;
    assert_eq!(status, 422, "an invalid name is refused");
}

// ------------------------------------------------------------- drain

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_under_load_sends_nothing_new_to_the_member_and_fails_nothing() {
    let a = echo_array(WITH_TOKEN).await;
    let admin = a.addrs.admin;
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let mut loops = Vec::new();
    for _ in 0..4 {
        let client = a.client.clone();
        let stop = Arc::clone(&stop);
        let done = Arc::clone(&done);
        loops.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut conn = client.connect().await.unwrap();
            // Bounded: at most 100 000 requests per loop.
            for _ in 0..100_000 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                match conn.send(get("/ews/Exchange.asmx")).await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => failures.push(format!("status {}", r.status())),
                    Err(e) => {
                        failures.push(format!("error {e:#}"));
                        conn = client.connect().await.unwrap();
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            failures
        }));
    }
    wait_until(
        "both members take requests",
        Duration::from_secs(30),
        || async { a.requests(0) >= 20 && a.requests(1) >= 20 },
    )
    .await;

    let (status, _, body) =
        admin_call(admin, "POST", "/api/members/EX1/drain", Some(TOKEN), "").await;
    assert_eq!(status, 200, "{body}");
    wait_until(
        "EX1's in-flight requests end",
        Duration::from_secs(30),
        || async { member_json(admin, "EX1").await["in_flight"] == 0 },
    )
    .await;
    let ex1 = a.requests(0);
    let ex2 = a.requests(1);
    let target = done.load(Ordering::Relaxed) + 300;
    wait_until("300 more requests", Duration::from_secs(60), || async {
        done.load(Ordering::Relaxed) >= target
    })
    .await;
    assert_eq!(
        a.requests(0),
        ex1,
        "no new request reached the drained member"
    );
    assert!(a.requests(1) >= ex2 + 300);

    // Back in: EX1 takes requests again.
    let (status, _, _) =
        admin_call(admin, "POST", "/api/members/EX1/activate", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    wait_until(
        "EX1 takes requests again",
        Duration::from_secs(30),
        || async { a.requests(0) > ex1 },
    )
    .await;
    stop.store(true, Ordering::Relaxed);
    for l in loops {
        let failures = l.await.unwrap();
        assert!(failures.is_empty(), "failed requests: {failures:?}");
    }
}

/// A request whose body arrives in two halves stays in flight on its member
/// in between.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drained_members_in_flight_request_finishes_and_is_shown() {
    let a = echo_array(WITH_TOKEN).await;
    let admin = a.addrs.admin;
    let mut tls = a.client.tls().await.unwrap();
    tls.write_all(
        b"POST /ews/Exchange.asmx HTTP/1.1\r\nhost: mail.lab.com\r\ncontent-length: 8\r\n\r\nhalf",
    )
    .await
    .unwrap();
    tls.flush().await.unwrap();
    wait_until(
        "the request reaches a member",
        Duration::from_secs(30),
        || async { a.requests(0) + a.requests(1) == 1 },
    )
    .await;
    let (m, name) = if a.requests(0) == 1 {
        (0, "EX1")
    } else {
        (1, "EX2")
    };
    let (status, _, _) = admin_call(
        admin,
        "POST",
        &format!("/api/members/{name}/drain"),
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 200);
    let v = member_json(admin, name).await;
    assert_eq!(v["state"], "draining");
    assert_eq!(v["in_flight"], 1, "{v}");

    tls.write_all(b"done").await.unwrap();
    tls.flush().await.unwrap();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    // Bounded: the answer is small; stop at its end or after 64 reads.
    for _ in 0..64 {
        let n = tokio::time::timeout(Duration::from_secs(30), tls.read(&mut buf))
            .await
            .expect("answer within 30 s")
            .unwrap();
        answer.extend_from_slice(&buf[..n]);
        if n == 0 || answer.ends_with(b"}") {
            break;
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        answer.contains(&format!("\"server\":\"{name}\"")),
        "{answer}"
    );
    assert!(answer.contains("\"body_len\":8"), "{answer}");
    wait_until("in flight back to 0", Duration::from_secs(30), || async {
        member_json(admin, name).await["in_flight"] == 0
    })
    .await;
    assert_eq!(a.requests(m), 1);
}

// ------------------------------------------------------------- restart

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_the_drain() {
    let mut a = echo_array(WITH_TOKEN).await;
    let (status, _, _) = admin_call(
        a.addrs.admin,
        "POST",
        "/api/members/EX2/drain",
        Some(TOKEN),
        "",
    )
    .await;
    assert_eq!(status, 200);
    a.restart();
    let admin = a.addrs.admin;
    assert_eq!(member_json(admin, "EX2").await["state"], "draining");
    assert_eq!(member_json(admin, "EX1").await["state"], "active");
    let ex2 = a.requests(1);
    let mut conn = a.client.connect().await.unwrap();
    for _ in 0..20 {
        assert_eq!(conn.send(get("/owa/")).await.unwrap().status(), 200);
    }
    assert_eq!(
        a.requests(1),
        ex2,
        "the drained member got nothing after the restart"
    );
    assert_eq!(
        metric(admin, "casarray_member_draining", &[("member", "EX2")]).await,
        1.0
    );

    // Activate, restart again: active it stays.
    let (status, _, _) =
        admin_call(admin, "POST", "/api/members/EX2/activate", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    drop(conn);
    a.restart();
    assert_eq!(member_json(a.addrs.admin, "EX2").await["state"], "active");
}

// ------------------------------------------------------------- startup errors

/// Runs `casarray serve` expecting it to fail at startup; returns stderr.
fn serve_fails(config: &std::path::Path) -> String {
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn casarray serve");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut { stderr }, &mut s);
        s
    });
    let mut proc = Proc {
        child,
        name: "casarray".into(),
    };
    let status = proc
        .wait_exit(Duration::from_secs(60))
        .expect("casarray serve stops at startup");
    assert!(!status.success(), "{status:?}");
    reader.join().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_state_file_is_a_clear_startup_error() {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let backend = EchoBackend::start("EX1").await;
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &[("EX1", backend.addr)], "")).unwrap();
    let state = dir.path().join("casarray.toml.state.json");
    std::fs::write(&state, "{\"version\": 1, \"drained\": [\"EX1\"").unwrap();
    let stderr = serve_fails(&config);
    assert!(stderr.contains("casarray.toml.state.json"), "{stderr}");
    assert!(stderr.contains("corrupt"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&state).unwrap(),
        "{\"version\": 1, \"drained\": [\"EX1\"",
        "never silently reset"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exposed_admin_listener_without_a_token_is_a_startup_error() {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let backend = EchoBackend::start("EX1").await;
    let config = dir.path().join("casarray.toml");
    // Admin::open refuses this before anything binds.
    let text = config_toml(&certs, &[("EX1", backend.addr)], "")
        .replace("admin = \"127.0.0.1:0\"", "admin = \"0.0.0.0:0\"");
    std::fs::write(&config, text).unwrap();
    let stderr = serve_fails(&config);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(stderr.contains("token_file"), "{stderr}");

    std::fs::write(dir.path().join("admin.token"), "").unwrap();
    let text =
        std::fs::read_to_string(&config).unwrap() + "[admin]\ntoken_file = \"admin.token\"\n";
    std::fs::write(&config, text).unwrap();
    let stderr = serve_fails(&config);
    assert!(stderr.contains("admin token file is empty"), "{stderr}");
}

// ------------------------------------------------------------- status

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_prints_the_members_by_services_table() {
    let a = echo_array(WITH_TOKEN).await;
    let admin = a.addrs.admin;
    let (status, _, _) = admin_call(admin, "POST", "/api/members/EX2/drain", Some(TOKEN), "").await;
    assert_eq!(status, 200);
    let text =
        casarray::admin::status::status_text(&format!("http://{admin}/"), Duration::from_secs(30))
            .await
            .unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0], "Array mail.lab.com (fqdn mail.lab.com, site Default-First-Site-Name)",
        "{text}"
    );
    let header: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "Member",
            "State",
            "Health",
            "In",
            "flight",
            "owa",
            "ecp",
            "ews",
            "eas",
            "autodiscover",
            "rpc",
            "mapi",
            "oab",
            "powershell"
        ],
        "{text}"
    );
    let ex1: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(ex1[..4], ["EX1", "active", "healthy", "0"], "{text}");
    let ex2: Vec<&str> = lines[5].split_whitespace().collect();
    assert_eq!(ex2[..2], ["EX2", "draining"], "{text}");
    assert!(
        text.contains("EX2 is draining: it gets no new request"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_command_prints_the_table() {
    let a = echo_array(WITH_TOKEN).await;
    let admin = a.addrs.admin;
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["status", "--admin", &admin.to_string()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("Array mail.lab.com "), "{stdout}");
    assert!(stdout.contains("EX1 "), "{stdout}");
    assert!(stdout.contains("powershell"), "{stdout}");

    // Nothing listening: exit 1 with a clear message.
    drop(a);
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["status", "--admin", &admin.to_string()])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach the admin API"));
}
