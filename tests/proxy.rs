//! The array's core, black-box: routing, headers, balancing, health,
//! failover, 503s, streaming, reload and graceful stop, through a real
//! `casarray serve` process over real TLS on 127.0.0.1.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::backend::EchoBackend;
use support::*;

fn json(resp: &Resp) -> serde_json::Value {
    serde_json::from_slice(resp.body()).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {} {:?}",
            resp.status(),
            String::from_utf8_lossy(resp.body())
        )
    })
}

struct EchoArray {
    _dir: tempfile::TempDir,
    array: Proc,
    addrs: ArrayAddrs,
    client: Client,
    backends: Vec<EchoBackend>,
    config: std::path::PathBuf,
    certs: TestCerts,
}

async fn echo_array(n: usize, extra: &str) -> EchoArray {
    const NAMES: [&str; 3] = ["EX1", "EX2", "EX3"];
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let mut backends = Vec::new();
    for name in NAMES.iter().take(n) {
        backends.push(EchoBackend::start(name).await);
    }
    let members: Vec<(&str, std::net::SocketAddr)> = backends
        .iter()
        .zip(NAMES)
        .map(|(b, n)| (n, b.addr))
        .collect();
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &members, extra)).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    EchoArray {
        _dir: dir,
        array,
        addrs,
        client,
        backends,
        config,
        certs,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_each_service_by_case_insensitive_prefix() {
    let a = echo_array(1, "").await;
    for path in [
        "/owa/",
        "/OWA/auth/logon.aspx",
        "/ecp/",
        "/ews/Exchange.asmx",
        "/EWS/exchange.asmx",
        "/Microsoft-Server-ActiveSync?Cmd=Sync&User=alice",
        "/microsoft-server-activesync",
        "/autodiscover/autodiscover.xml",
        "/rpc/rpcproxy.dll?ex1.lab.local:6001",
        "/mapi/emsmdb/?MailboxId=x",
        "/oab/guid/oab.xml",
        "/PowerShell/",
    ] {
        let resp = a.client.get(path).await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(
            json(&resp)["uri"],
            path,
            "{path} reached the member unchanged"
        );
    }
    let root = a.client.get("/").await.unwrap();
    assert_eq!(root.status(), 302);
    assert_eq!(root.headers()["location"], "/owa/");
    for path in ["/nothing", "/owafoo", "/favicon.ico"] {
        let resp = a.client.get(path).await.unwrap();
        assert_eq!(resp.status(), 404, "{path}");
    }
    assert_eq!(a.backends[0].state.requests.load(Ordering::Relaxed), 12);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strips_hop_by_hop_and_adds_forwarded_headers() {
    let a = echo_array(1, "").await;
    let req = http::Request::builder()
        .uri("/ews/Exchange.asmx")
        .header("host", "mail.lab.com:443")
        .header("connection", "keep-alive, x-named-by-connection")
        .header("x-named-by-connection", "secret")
        .header("keep-alive", "timeout=5")
        .header("te", "trailers")
        .header("trailer", "x-foo")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("proxy-connection", "keep-alive")
        .header("x-forwarded-for", "10.1.2.3")
        .header("x-end-to-end", "yes")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    let resp = a.client.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    let seen = json(&resp);
    let h = &seen["headers"];
    for gone in [
        "x-named-by-connection",
        "keep-alive",
        "te",
        "trailer",
        "proxy-authorization",
        "proxy-connection",
        "upgrade",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the member: {h}");
    }
    assert_ne!(h["connection"], "keep-alive, x-named-by-connection");
    assert_eq!(h["host"], "mail.lab.com:443", "public Host kept");
    assert_eq!(h["x-forwarded-for"], "10.1.2.3, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
    assert_eq!(h["x-forwarded-host"], "mail.lab.com:443");
    assert_eq!(h["x-end-to-end"], "yes");
    // And on the way back.
    for gone in ["x-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            resp.headers().get(gone).is_none(),
            "{gone} reached the client"
        );
    }
    assert_eq!(resp.headers()["x-end-to-end"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_foreign_hosts_and_connect() {
    let a = echo_array(1, "").await;
    let req = http::Request::builder()
        .uri("/owa/")
        .header("host", "evil.example.com")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(a.client.send(req).await.unwrap().status(), 421);
    let auto = http::Request::builder()
        .uri("/autodiscover/autodiscover.xml")
        .header("host", "AUTODISCOVER.lab.com")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(a.client.send(auto).await.unwrap().status(), 200);
    assert_eq!(a.backends[0].state.requests.load(Ordering::Relaxed), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_http2_clients() {
    let a = echo_array(2, "").await;
    let client = Client::new(a.addrs.https, &a.certs.ca_pem, &[b"h2"]);
    let tls = client.tls().await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for i in 0..10 {
        let req = http::Request::builder()
            .uri(format!("https://mail.lab.com/ews/Exchange.asmx?i={i}"))
            .body(http_body_util::Full::new(bytes::Bytes::from_static(
                b"<soap/>",
            )))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        let body = http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["headers"]["host"], "mail.lab.com");
        assert_eq!(v["body_len"], 7);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_spreads_by_weight() {
    let a = echo_array(2, "").await;
    let mut conn = a.client.connect().await.unwrap();
    for _ in 0..40 {
        let r = conn.send(get("/ews/Exchange.asmx")).await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let n1 = a.backends[0].state.requests.load(Ordering::Relaxed);
    let n2 = a.backends[1].state.requests.load(Ordering::Relaxed);
    assert_eq!(n1 + n2, 40);
    assert!((15..=25).contains(&n1), "EX1 {n1}, EX2 {n2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_connections_are_kept_and_reused() {
    let a = echo_array(1, "").await;
    // One client after another, each on its own connection: the array's
    // connection to the member outlives them all.
    for _ in 0..10 {
        let mut conn = a.client.connect().await.unwrap();
        for _ in 0..20 {
            let r = conn.send(get("/ews/Exchange.asmx")).await.unwrap();
            assert_eq!(r.status(), 200);
            let r = conn.send(get("/owa/")).await.unwrap();
            assert_eq!(r.status(), 200);
        }
    }
    let st = &a.backends[0].state;
    assert_eq!(st.requests.load(Ordering::Relaxed), 400);
    // One connection does it; a second may be made when one is not ready
    // again at the very moment the next request comes (two workers).
    let conns = st.request_conns.load(Ordering::Relaxed);
    assert!(
        (1..=2).contains(&conns),
        "{conns} member connections for 400 requests"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_closing_idle_connections_costs_no_request() {
    // The member closes connections idle for 30 ms; requests come 20-40 ms
    // apart: the kept connection is often gone when the next one comes.
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let backend = EchoBackend::start_with("EX1", Some(Duration::from_millis(30))).await;
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &[("EX1", backend.addr)], "")).unwrap();
    let (_array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    let mut conn = client.connect().await.unwrap();
    for i in 0..100u64 {
        tokio::time::sleep(Duration::from_millis(20 + (i * 7) % 21)).await;
        let req = if i % 3 == 0 {
            request("POST", "/ews/Exchange.asmx", vec![b'x'; 2048])
        } else {
            get("/owa/")
        };
        let r = conn.send(req).await.unwrap();
        assert_eq!(r.status(), 200, "request {i}");
    }
    let ejections = metric(addrs.admin, "casarray_passive_ejections_total", &[]).await;
    assert_eq!(
        ejections, 0.0,
        "a closed idle connection is not the member failing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_takes_a_member_out_after_fall_and_back_after_rise() {
    let a = echo_array(2, "").await;
    let admin = a.addrs.admin;
    wait_until("first probes", Duration::from_secs(20), || async {
        metric(
            admin,
            "casarray_health_checks_total",
            &[("member", "EX1"), ("result", "success")],
        )
        .await
            >= 9.0
    })
    .await;
    a.backends[0].state.healthy.store(false, Ordering::Relaxed);
    let t = Instant::now();
    wait_until("EX1 down for ews", Duration::from_secs(20), || async {
        !member_up(admin, "EX1", "ews").await
    })
    .await;
    let took_out = t.elapsed();
    // fall = 2 at 200 ms: two failed probes, not one.
    assert!(took_out >= Duration::from_millis(150), "{took_out:?}");
    let before = a.backends[0].state.requests.load(Ordering::Relaxed);
    let mut conn = a.client.connect().await.unwrap();
    for _ in 0..20 {
        assert_eq!(conn.send(get("/ews/x")).await.unwrap().status(), 200);
    }
    assert_eq!(a.backends[0].state.requests.load(Ordering::Relaxed), before);
    assert_eq!(
        metric(
            admin,
            "casarray_member_up",
            &[("member", "EX1"), ("service", "ews")]
        )
        .await,
        0.0
    );

    a.backends[0].state.healthy.store(true, Ordering::Relaxed);
    wait_until("EX1 back for ews", Duration::from_secs(20), || async {
        member_up(admin, "EX1", "ews").await
    })
    .await;
    for _ in 0..20 {
        assert_eq!(conn.send(get("/ews/x")).await.unwrap().status(), 200);
    }
    assert!(a.backends[0].state.requests.load(Ordering::Relaxed) > before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_healthy_member_gives_503_at_once() {
    let mut a = echo_array(2, "").await;
    a.backends.clear(); // both members gone: connections refused
                        // Passive ejection on the first requests, then 503 without waiting.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let t = Instant::now();
        let r = a.client.get("/owa/").await.unwrap();
        statuses.push(r.status().as_u16());
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        if r.status() == 503 {
            assert!(r.headers().contains_key("retry-after"));
            assert!(String::from_utf8_lossy(r.body()).contains("no healthy server"));
        }
    }
    assert!(statuses.iter().all(|&s| s == 503), "{statuses:?}");
    a.array.kill9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reload_keeps_serving_and_good_reload_applies() {
    let a = echo_array(1, "").await;
    let admin = a.addrs.admin;
    assert_eq!(a.client.get("/owa/").await.unwrap().status(), 200);
    let good = std::fs::read_to_string(&a.config).unwrap();
    std::fs::write(&a.config, good.replace("rise = 2", "rise = 0")).unwrap();
    a.array.signal(libc::SIGHUP);
    wait_until("failed reload counted", Duration::from_secs(20), || async {
        metric(
            admin,
            "casarray_config_reloads_total",
            &[("result", "failure")],
        )
        .await
            >= 1.0
    })
    .await;
    for _ in 0..5 {
        assert_eq!(a.client.get("/owa/").await.unwrap().status(), 200);
    }
    // A good change: a service with its own prefix appears.
    let extra = "\n[[service]]\nname = \"owa\"\nprefix = \"/owa\"\n\n[[service]]\nname = \"custom\"\nprefix = \"/custom\"\n";
    std::fs::write(&a.config, format!("{good}{extra}")).unwrap();
    a.array.signal(libc::SIGHUP);
    wait_until("custom service routed", Duration::from_secs(20), || async {
        a.client
            .get("/custom/x")
            .await
            .map(|r| r.status() == 200)
            .unwrap_or(false)
    })
    .await;
    assert!(
        metric(
            admin,
            "casarray_config_reloads_total",
            &[("result", "success")]
        )
        .await
            >= 1.0
    );
    // The profile is replaced by the [[service]] tables.
    assert_eq!(a.client.get("/ews/x").await.unwrap().status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_see_no_error_when_a_member_dies() {
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
    wait_until("both members up", Duration::from_secs(20), || async {
        member_up(addrs.admin, "EX1", "owa").await && member_up(addrs.admin, "EX2", "owa").await
    })
    .await;

    const CLIENTS: usize = 8;
    const PER_CLIENT: u64 = 300;
    let done = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for c in 0..CLIENTS {
        let client = client.clone();
        let done = Arc::clone(&done);
        let errors = Arc::clone(&errors);
        tasks.push(tokio::spawn(async move {
            let paths = [
                "/owa/healthcheck.htm",
                "/EWS/healthcheck.htm",
                "/Autodiscover/healthcheck.htm",
            ];
            let mut conn = client.connect().await.unwrap();
            for i in 0..PER_CLIENT {
                let path = paths[(i as usize + c) % paths.len()];
                let (path, req) = if i % 3 == 0 {
                    let pox = format!(
                        "<?xml version=\"1.0\" encoding=\"utf-8\"?><Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\"><Request><EMailAddress>alice@lab.com</EMailAddress><AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema></Request></Autodiscover><!-- {} -->",
                        "x".repeat(i as usize % 700)
                    );
                    let path = "/Autodiscover/Autodiscover.xml";
                    (path, request("POST", path, pox))
                } else {
                    (path, get(path))
                };
                match conn.send(req).await {
                    Ok(r) if r.status() == 200 => {}
                    Ok(r) => errors
                        .lock()
                        .unwrap()
                        .push(format!("{path}: status {}", r.status())),
                    Err(e) => {
                        errors.lock().unwrap().push(format!("{path}: {e}"));
                        conn = client.connect().await.unwrap();
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    // Kill EX1 while the loop runs.
    wait_until("traffic flowing", Duration::from_secs(30), || async {
        done.load(Ordering::Relaxed) >= (CLIENTS as u64 * PER_CLIENT) / 4
    })
    .await;
    let killed_at = Instant::now();
    ex1.kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    while member_up(addrs.admin, "EX1", "owa").await {
        assert!(Instant::now() < deadline, "EX1 still up 20 s after kill -9");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let taken_out = killed_at.elapsed();
    for t in tasks {
        t.await.unwrap();
    }
    let retries = metric(addrs.admin, "casarray_upstream_retries_total", &[]).await;
    let errors = errors.lock().unwrap().clone();
    println!(
        "failover: {} requests, {} client errors, EX1 taken out {:?} after kill -9, {} retries",
        CLIENTS as u64 * PER_CLIENT,
        errors.len(),
        taken_out,
        retries
    );
    assert!(
        errors.is_empty(),
        "client errors during failover: {errors:?}"
    );
}

/// Two mock servers and the array in front, all up.
async fn mock_array(
    extra: &str,
) -> (
    tempfile::TempDir,
    Vec<(Proc, std::net::SocketAddr)>,
    Proc,
    ArrayAddrs,
    Client,
) {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let m1 = spawn_mock("EX1", &store, &[]);
    let m2 = spawn_mock("EX2", &store, &[]);
    let config = dir.path().join("casarray.toml");
    std::fs::write(
        &config,
        config_toml(&certs, &[("EX1", m1.1), ("EX2", m2.1)], extra),
    )
    .unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    wait_until("both members up", Duration::from_secs(20), || async {
        member_up(addrs.admin, "EX1", "rpc").await && member_up(addrs.admin, "EX2", "rpc").await
    })
    .await;
    (dir, vec![m1, m2], array, addrs, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_in_data_of_1_gib_streams_through_with_flat_memory() {
    use futures_util::StreamExt;
    const GIB: u64 = 1 << 30;
    const CHUNK: usize = 256 * 1024;
    let (_dir, _mocks, array, _addrs, client) = mock_array("").await;
    let pid = array.pid();
    let baseline = rss_kib(pid);

    // Sample the array's memory while the body flows.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut peak = 0;
            while !stop.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(50));
            }
            peak
        })
    };
    let chunk = bytes::Bytes::from(vec![0x5a_u8; CHUNK]);
    let frames = futures_util::stream::iter(0..(GIB as usize / CHUNK))
        .map(move |_| Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk.clone())));
    let body = http_body_util::StreamBody::new(frames);
    let req = http::Request::builder()
        .method("RPC_IN_DATA")
        .uri("/rpc/rpcproxy.dll?ex1.lab.local:6001")
        .header("host", FQDN)
        .header("content-length", GIB.to_string())
        .header("content-type", "application/rpc")
        .body(body)
        .unwrap();
    let io = hyper_util::rt::TokioIo::new(client.tls().await.unwrap());
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(300), sender.send_request(req))
        .await
        .expect("1 GiB through within 300 s")
        .unwrap();
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let peak = sampler.join().unwrap();
    assert_eq!(resp.status(), 200);
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .unwrap()
        .to_bytes();
    assert_eq!(
        String::from_utf8_lossy(&body).trim(),
        format!("bytes={GIB}")
    );
    println!(
        "RPC_IN_DATA 1 GiB in {elapsed:?} ({:.0} MiB/s); array RSS {baseline} KiB before, peak {peak} KiB",
        1024.0 / elapsed.as_secs_f64()
    );
    assert!(
        peak < baseline + 64 * 1024,
        "array memory grew from {baseline} KiB to {peak} KiB while streaming"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_out_data_streams_to_the_client() {
    const N: usize = 48 * 1024 * 1024;
    let (_dir, _mocks, _array, _addrs, client) = mock_array("").await;
    let req = http::Request::builder()
        .method("RPC_OUT_DATA")
        .uri(format!("/rpc/rpcproxy.dll?ex1.lab.local:6001&bytes={N}"))
        .header("host", FQDN)
        .header("content-length", "76")
        .body(http_body_util::Full::new(bytes::Bytes::from(vec![0u8; 76])))
        .unwrap();
    let resp = client.send(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.body().len(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_in_flight_requests_finish() {
    let (_dir, mocks, mut array, addrs, client) = mock_array("").await;
    for (_, addr) in &mocks {
        let (status, _) = http_send(*addr, "POST", "/mock/latency?ms=1500", "", &[])
            .await
            .unwrap();
        assert_eq!(status, 200);
    }
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(client.connect().await.unwrap());
    }
    let in_flight: Vec<_> = conns
        .into_iter()
        .map(|mut c| tokio::spawn(async move { c.send(get("/ews/healthcheck.htm")).await }))
        .collect();
    // Once the four requests are at the members, stop the array.
    wait_until("4 requests in flight", Duration::from_secs(20), || async {
        let v = members(addrs.admin).await;
        let n: u64 = v
            .as_array()
            .into_iter()
            .flatten()
            .map(|m| m["in_flight"].as_u64().unwrap_or(0))
            .sum();
        n >= 4
    })
    .await;
    array.signal(libc::SIGTERM);
    for t in in_flight {
        let resp = t.await.unwrap().expect("in-flight request completes");
        assert_eq!(resp.status(), 200);
    }
    let status = array
        .wait_exit(Duration::from_secs(30))
        .expect("array exits after draining");
    assert!(status.success(), "{status:?}");
    assert!(
        client.connect().await.is_err(),
        "no new connections after stop"
    );
}

/// Sends a raw HTTP/1.1 request to `addr`; returns the status and the
/// Location header of the answer.
async fn raw_redirect(
    addr: std::net::SocketAddr,
    method: &str,
    host: &str,
    path: &str,
) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("answer within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let location = text
        .lines()
        .find_map(|l| l.strip_prefix("location: "))
        .unwrap_or("")
        .to_owned();
    (status, location)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_redirected_to_https_on_the_arrays_names_only() {
    for (port_line, port) in [("", ""), ("public_port = 8443\n", ":8443")] {
        let dir = tempdir();
        let certs = make_certs(dir.path());
        let backend = EchoBackend::start("EX1").await;
        let text = config_toml(&certs, &[("EX1", backend.addr)], "")
            .replace("[listen]\n", "[listen]\nhttp_redirect = \"127.0.0.1:0\"\n")
            .replace("[array]\n", &format!("[array]\n{port_line}"));
        let config = dir.path().join("casarray.toml");
        std::fs::write(&config, text).unwrap();
        let (_array, addrs) = spawn_array(&config);
        let redirect = addrs
            .redirect
            .expect("the readiness line names the redirect listener");
        assert_eq!(
            raw_redirect(redirect, "GET", FQDN, "/owa/?a=1&b=2").await,
            (301, format!("https://{FQDN}{port}/owa/?a=1&b=2"))
        );
        assert_eq!(
            raw_redirect(redirect, "GET", "AUTODISCOVER.lab.com:80", "/").await,
            (301, format!("https://AUTODISCOVER.lab.com{port}/"))
        );
        // A host that is not the array's, or the listener's own address:
        // the public name, never the client's choice.
        assert_eq!(
            raw_redirect(redirect, "GET", "evil.example.com", "/owa/").await,
            (301, format!("https://{FQDN}{port}/owa/"))
        );
        assert_eq!(
            raw_redirect(redirect, "HEAD", &redirect.to_string(), "/x").await,
            (301, format!("https://{FQDN}{port}/x"))
        );
        // Other methods keep their method and body.
        assert_eq!(
            raw_redirect(redirect, "POST", FQDN, "/EWS/Exchange.asmx").await,
            (308, format!("https://{FQDN}{port}/EWS/Exchange.asmx"))
        );
        assert_eq!(
            backend.state.requests.load(Ordering::Relaxed),
            0,
            "nothing forwarded"
        );
        let counted = metric(
            addrs.admin,
            "casarray_requests_total",
            &[("service", "http_redirect")],
        )
        .await;
        assert_eq!(counted, 5.0);
    }
}
