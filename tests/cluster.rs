//! `[cluster]`, black-box: real etcd processes (Debian's `etcd-server`) on
//! loopback ports and real `casarray serve` processes sharing them.
//!
//! - a drain on one instance holds on the others within 1 s (the time is
//!   printed), a new instance starts drained, activate on another instance
//!   undoes it everywhere; `/api/array` lists the instances;
//! - a client's TLS session from instance A resumes on instance B
//!   (abbreviated handshake, `handshake_kind() == Resumed`), and does not
//!   between two instances without `[cluster]`;
//! - a three-node etcd loses a node and the state still works;
//! - etcd stopped: every instance keeps serving, mutations answer 503 and
//!   change nothing; etcd back: a drain made then reaches every instance;
//! - the database directory: `PUT /api/databases/{name}` on one instance
//!   is served by the others within 1 s (the time is printed), a new
//!   instance starts with it, and etcd stopped makes it 503;
//! - the DAG's active copies: a move-active through one instance routes on
//!   another that does not poll the members meanwhile, within 1 s (the time
//!   is printed);
//! - etcd over TLS (its own CA, a client certificate required) with
//!   authentication on (user root and a password): two instances with the
//!   CA, the client certificate and the password share a drain within 1 s;
//!   one with a wrong password starts after its sync timeout, says it is
//!   not connected, serves, and answers 503 to a drain.
//!
//! Without etcd installed the tests skip, unless CASARRAY_REQUIRE_ETCD=1.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::backend::EchoBackend;
use support::etcd::{self, Etcd};
use support::*;

const TOKEN: &str = "t0ken-for-cluster-tests";
/// The bound of the contract: a drain holds everywhere within 1 s.
const PROPAGATION: Duration = Duration::from_secs(1);

/// One `casarray serve` of the cluster.
struct Instance {
    name: String,
    proc: Proc,
    addrs: ArrayAddrs,
}

/// What every instance of a test shares: the directory (certificates,
/// token), the members.
struct Setup {
    dir: tempfile::TempDir,
    certs: TestCerts,
    backends: Vec<EchoBackend>,
    /// Mock mailbox servers as the members instead of the echo backends
    /// ([`Setup::with_mocks`]).
    mocks: Vec<(Proc, SocketAddr)>,
}

impl Setup {
    async fn new() -> Setup {
        let dir = tempdir();
        let certs = make_certs(dir.path());
        std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
        let backends = vec![
            EchoBackend::start("EX1").await,
            EchoBackend::start("EX2").await,
        ];
        Setup {
            dir,
            certs,
            backends,
            mocks: Vec::new(),
        }
    }

    /// [`Setup::new`] with EX1 and EX2 mock mailbox servers as the members
    /// (Alice's mailbox in DB01, Bob's in DB02).
    async fn with_mocks() -> Setup {
        let mut setup = Setup::new().await;
        let store = setup.dir.path().join("store");
        std::fs::create_dir_all(&store).unwrap();
        let key = setup.certs.key.to_str().unwrap().to_owned();
        for name in ["EX1", "EX2"] {
            setup
                .mocks
                .push(spawn_mock(name, &store, &["--shared-key", &key]));
        }
        setup
    }

    fn members(&self) -> Vec<(&'static str, SocketAddr)> {
        if let [(_, ex1), (_, ex2)] = self.mocks.as_slice() {
            return vec![("EX1", *ex1), ("EX2", *ex2)];
        }
        vec![
            ("EX1", self.backends[0].addr),
            ("EX2", self.backends[1].addr),
        ]
    }

    /// Starts instance `name`; `cluster` is the `[cluster]` table's body
    /// (none: no cluster). Returns once it serves (its readiness line).
    fn instance(&self, name: &str, cluster: Option<&str>) -> Instance {
        self.instance_with(name, cluster, "")
    }

    /// [`Setup::instance`] with `more` at the end of the config.
    fn instance_with(&self, name: &str, cluster: Option<&str>, more: &str) -> Instance {
        let mut extra = format!(
            "[admin]\ntoken_file = \"{}\"\n\n",
            self.dir.path().join("admin.token").display()
        );
        if let Some(body) = cluster {
            extra.push_str(&format!("[cluster]\ninstance = \"{name}\"\n{body}\n"));
        }
        extra.push_str(more);
        let text = config_toml(&self.certs, &self.members(), &extra);
        let config = self.dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, text).unwrap();
        let log = self.dir.path().join(format!("{name}.log"));
        let (proc, addrs) = spawn_array_with(&config, &[], Some(&log));
        Instance {
            name: name.to_owned(),
            proc,
            addrs,
        }
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("{name}.log"))).unwrap_or_default()
    }
}

fn cluster_toml(etcd: &Etcd) -> String {
    format!("etcd = {}\n", etcd.toml_endpoints())
}

/// `POST /api/members/{member}/{verb}` with the token: the status.
async fn admin_post(i: &Instance, member: &str, verb: &str) -> (u16, String) {
    let auth = format!("Bearer {TOKEN}");
    let r = http_call(
        i.addrs.admin,
        "POST",
        &format!("/api/members/{member}/{verb}"),
        &[("authorization", &auth)],
        "",
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: {verb} {member}: {e}", i.name));
    (r.status, r.body)
}

/// [`admin_post`] again (every 100 ms, for at most 30 s) until it answers
/// 200: while an etcd node is lost, a call may go to it first and time out.
async fn admin_post_until_ok(i: &Instance, member: &str, verb: &str) -> (u16, String) {
    let start = Instant::now();
    loop {
        let answer = admin_post(i, member, verb).await;
        if answer.0 == 200 || start.elapsed() > Duration::from_secs(30) {
            return answer;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Member `member`'s state on `i` ("active" or "draining").
async fn state(i: &Instance, member: &str) -> String {
    let v = members(i.addrs.admin).await;
    v.as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == member)
        .map(|m| m["state"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

/// How long until `member` is in `want` state on `i`, polled every 5 ms,
/// at most `limit`; panics past it.
async fn time_until(i: &Instance, member: &str, want: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        if state(i, member).await == want {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!(
                "{}: {member} not {want} after {limit:?} (still {})",
                i.name,
                state(i, member).await
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// What `casarray status` prints for instance `i` (which must succeed).
async fn status_text(i: &Instance) -> String {
    let admin = i.addrs.admin.to_string();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(["status", "--admin", &admin])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    stdout
}

/// `GET /api/array`'s `cluster`.
async fn cluster_view(i: &Instance) -> serde_json::Value {
    let (status, body) = http_get(i.addrs.admin, "/api/array").await.unwrap();
    assert_eq!(status, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["cluster"].clone()
}

async fn connected(i: &Instance) -> bool {
    cluster_view(i).await["connected"] == true
}

/// Waits until every instance of `all` has `member` in `want` state;
/// returns the time each took, in order.
async fn propagation(
    all: &[&Instance],
    member: &str,
    want: &str,
    limit: Duration,
) -> Vec<Duration> {
    let waits = all.iter().map(|i| time_until(i, member, want, limit));
    futures_util::future::join_all(waits).await
}

fn ms(times: &[Duration]) -> String {
    times
        .iter()
        .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_holds_on_every_instance_and_on_new_ones() {
    if !etcd::available() {
        return;
    }
    let setup = Setup::new().await;
    let etcd = Etcd::start(setup.dir.path(), 1).await;
    let body = cluster_toml(&etcd);
    let a = setup.instance("a", Some(&body));
    let b = setup.instance("b", Some(&body));
    let c = setup.instance("c", Some(&body));

    // Every instance registers and sees the others.
    wait_until(
        "three instances listed",
        Duration::from_secs(30),
        || async {
            cluster_view(&a).await["instances"]
                .as_array()
                .map_or(0, Vec::len)
                == 3
        },
    )
    .await;
    let view = cluster_view(&b).await;
    assert_eq!(view["connected"], true, "{view}");
    assert_eq!(view["instance"], "b", "{view}");
    assert_eq!(
        view["endpoints"][0],
        format!("http://{}", etcd.nodes[0].client)
    );
    assert_eq!(
        metric(c.addrs.admin, "casarray_cluster_connected", &[]).await,
        1.0
    );

    // Drain through A: B and C follow within 1 s.
    let (status, answer) = admin_post(&a, "EX1", "drain").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(state(&a, "EX1").await, "draining");
    let times = propagation(&[&b, &c], "EX1", "draining", Duration::from_secs(10)).await;
    println!("drain on a seen on b, c after: {}", ms(&times));
    for t in &times {
        assert!(
            *t < PROPAGATION,
            "drain propagation {t:?} is over {PROPAGATION:?}"
        );
    }
    assert_eq!(state(&b, "EX2").await, "active");

    // A fourth instance starts with the cluster's view: drained at once.
    let d = setup.instance("d", Some(&body));
    assert_eq!(
        state(&d, "EX1").await,
        "draining",
        "d serves with the drain already"
    );
    assert_eq!(state(&d, "EX2").await, "active");
    // Requests through D avoid the drained member.
    let client = Client::h1(d.addrs.https, &setup.certs.ca_pem);
    let before = setup.backends[0]
        .state
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    for _ in 0..4 {
        let r = client.get("/owa/").await.unwrap();
        assert_eq!(r.status(), 200);
    }
    let after = setup.backends[0]
        .state
        .requests
        .load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(before, after, "the drained EX1 got requests through d");

    wait_until("d registered", Duration::from_secs(30), || async {
        cluster_view(&d).await["instances"]
            .as_array()
            .map_or(0, Vec::len)
            == 4
    })
    .await;
    // `casarray status` on d shows the cluster and the four instances.
    let stdout = status_text(&d).await;
    assert!(stdout.contains(": connected (revision "), "{stdout}");
    assert!(stdout.contains("d (this one)"), "{stdout}");
    for name in ["a", "b", "c"] {
        assert!(
            stdout.lines().any(|l| l.starts_with(name)),
            "{name} missing: {stdout}"
        );
    }

    // Activate through B: every instance, A and D included, follows.
    let (status, answer) = admin_post(&b, "EX1", "activate").await;
    assert_eq!(status, 200, "{answer}");
    let times = propagation(&[&a, &c, &d], "EX1", "active", Duration::from_secs(10)).await;
    println!("activate on b seen on a, c, d after: {}", ms(&times));
    for t in &times {
        assert!(
            *t < PROPAGATION,
            "activate propagation {t:?} is over {PROPAGATION:?}"
        );
    }
    // Nothing went to the state files: the cluster holds the state.
    for i in [&a, &b, &c, &d] {
        let file = setup.dir.path().join(format!("{}.toml.state.json", i.name));
        assert!(!file.exists(), "{} wrote a state file", i.name);
    }
    // A stopped instance leaves the list (it revokes its lease).
    let mut d = d;
    d.proc.signal(libc::SIGTERM);
    assert!(
        d.proc.wait_exit(Duration::from_secs(30)).is_some(),
        "d did not stop"
    );
    wait_until("d leaves the list", Duration::from_secs(5), || async {
        cluster_view(&a).await["instances"]
            .as_array()
            .map_or(0, Vec::len)
            == 3
    })
    .await;
}

/// A TLS connection to `addr` with `client`'s session store: whether its
/// handshake was an abbreviated (resumed) one.
async fn resumed(client: &Client, addr: SocketAddr) -> bool {
    let mut to = client.clone();
    to.addr = addr;
    let tls = to.tls().await.unwrap();
    tls.get_ref().1.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
}

/// One request through `addr` with `client`'s session store, so that the
/// server's session ticket (sent after the handshake in TLS 1.3) is read.
async fn request(client: &Client, addr: SocketAddr) {
    let mut to = client.clone();
    to.addr = addr;
    let r = to.get("/owa/").await.unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_session_from_one_instance_resumes_on_another() {
    if !etcd::available() {
        return;
    }
    let setup = Setup::new().await;
    let etcd = Etcd::start(setup.dir.path(), 1).await;
    let body = cluster_toml(&etcd);
    let a = setup.instance("a", Some(&body));
    let b = setup.instance("b", Some(&body));

    let client = Client::h1(a.addrs.https, &setup.certs.ca_pem);
    request(&client, a.addrs.https).await;
    assert!(
        resumed(&client, b.addrs.https).await,
        "a's session did not resume on b"
    );
    // And back: b's ticket resumes on a.
    request(&client, b.addrs.https).await;
    assert!(
        resumed(&client, a.addrs.https).await,
        "b's session did not resume on a"
    );
    println!("TLS session of a resumed on b, of b on a: handshake_kind() == Resumed");

    // The control: two instances without [cluster] each have their own keys.
    let x = setup.instance("x", None);
    let y = setup.instance("y", None);
    let client = Client::h1(x.addrs.https, &setup.certs.ca_pem);
    request(&client, x.addrs.https).await;
    assert!(
        resumed(&client, x.addrs.https).await,
        "x does not resume its own sessions"
    );
    request(&client, x.addrs.https).await;
    assert!(
        !resumed(&client, y.addrs.https).await,
        "without [cluster], y resumed x's session"
    );
    // The key never reaches a log.
    for name in ["a", "b"] {
        let log = setup.log(name);
        assert!(log.contains("cluster: synced"), "{name}: {log}");
        assert!(!log.contains("\"key\""), "{name} logged a ticket key");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_three_node_etcd_loses_a_node_and_the_state_still_works() {
    if !etcd::available() {
        return;
    }
    let setup = Setup::new().await;
    let mut etcd = Etcd::start(setup.dir.path(), 3).await;
    let body = cluster_toml(&etcd);
    let a = setup.instance("a", Some(&body));
    let b = setup.instance("b", Some(&body));
    let (status, answer) = admin_post(&a, "EX2", "drain").await;
    assert_eq!(status, 200, "{answer}");
    propagation(&[&b], "EX2", "draining", Duration::from_secs(10)).await;

    // The first node (every instance's first endpoint) dies.
    etcd.kill(0);
    let lost = Instant::now();
    // Changes still go through and still reach the other instance, once
    // the clients have moved to the live nodes.
    let answer = admin_post_until_ok(&b, "EX2", "activate").await;
    assert_eq!(answer.0, 200, "activate with a node down: {}", answer.1);
    let times = propagation(&[&a], "EX2", "active", Duration::from_secs(30)).await;
    println!(
        "etcd node lost: activate answered after {:.0} ms, seen on a after {}",
        lost.elapsed().as_secs_f64() * 1000.0,
        ms(&times)
    );
    // A's client may still try the dead node first, as B's did.
    let (status, answer) = admin_post_until_ok(&a, "EX1", "drain").await;
    assert_eq!(status, 200, "{answer}");
    let times = propagation(&[&b], "EX1", "draining", Duration::from_secs(10)).await;
    println!(
        "with two etcd nodes of three: drain seen on b after {}",
        ms(&times)
    );
    for t in &times {
        assert!(
            *t < PROPAGATION,
            "propagation {t:?} is over {PROPAGATION:?}"
        );
    }
    // A new instance still starts with the state.
    let c = setup.instance("c", Some(&body));
    assert_eq!(state(&c, "EX1").await, "draining");
    assert_eq!(state(&c, "EX2").await, "active");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_etcd_instances_serve_and_refuse_changes_then_resync() {
    if !etcd::available() {
        return;
    }
    let setup = Setup::new().await;
    let mut etcd = Etcd::start(setup.dir.path(), 1).await;
    let body = format!("{}request_timeout = \"2s\"\n", cluster_toml(&etcd));
    let a = setup.instance("a", Some(&body));
    let b = setup.instance("b", Some(&body));
    let (status, answer) = admin_post(&a, "EX2", "drain").await;
    assert_eq!(status, 200, "{answer}");
    propagation(&[&b], "EX2", "draining", Duration::from_secs(10)).await;

    etcd.kill(0);
    for i in [&a, &b] {
        wait_until(
            "the instance sees etcd gone",
            Duration::from_secs(30),
            || async { !connected(i).await },
        )
        .await;
        assert_eq!(
            metric(i.addrs.admin, "casarray_cluster_connected", &[]).await,
            0.0
        );
        // Still serving, with what it knew.
        assert_eq!(http_get(i.addrs.admin, "/healthz").await.unwrap().0, 200);
        let client = Client::h1(i.addrs.https, &setup.certs.ca_pem);
        assert_eq!(client.get("/owa/").await.unwrap().status(), 200);
        assert_eq!(state(i, "EX2").await, "draining");
        // A change is refused within 5 s and applied nowhere.
        let asked = Instant::now();
        let (status, answer) = admin_post(i, "EX1", "drain").await;
        assert_eq!(status, 503, "{}: {answer}", i.name);
        assert!(
            asked.elapsed() < Duration::from_secs(5),
            "{:?}",
            asked.elapsed()
        );
        assert!(answer.contains("etcd"), "{answer}");
        assert_eq!(
            state(i, "EX1").await,
            "active",
            "{}: applied locally",
            i.name
        );
    }
    assert!(
        setup.log("a").contains("etcd unreachable"),
        "{}",
        setup.log("a")
    );

    // etcd back: both resync, and a drain made now reaches both.
    etcd.restart(0).await;
    for i in [&a, &b] {
        wait_until(
            "the instance follows etcd again",
            Duration::from_secs(30),
            || async { connected(i).await },
        )
        .await;
    }
    let (status, answer) = admin_post(&b, "EX1", "drain").await;
    assert_eq!(status, 200, "{answer}");
    let times = propagation(&[&a], "EX1", "draining", Duration::from_secs(10)).await;
    println!(
        "after etcd came back: drain on b seen on a after {}",
        ms(&times)
    );
    for t in &times {
        assert!(
            *t < PROPAGATION,
            "propagation {t:?} is over {PROPAGATION:?}"
        );
    }
    assert_eq!(
        state(&a, "EX2").await,
        "draining",
        "the old drain is still there"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_starts_without_etcd_after_its_sync_timeout_and_says_so() {
    // No etcd needed: an endpoint where nothing listens.
    let setup = Setup::new().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = closed.local_addr().unwrap();
    drop(closed);
    let body = format!(
        "etcd = [\"http://{endpoint}\"]\nsync_timeout = \"1s\"\nrequest_timeout = \"1s\"\n"
    );
    let started = Instant::now();
    let a = setup.instance("a", Some(&body));
    println!("started without etcd after {:?}", started.elapsed());
    assert!(
        setup.log("a").contains("not synced with etcd within 1s"),
        "{}",
        setup.log("a")
    );
    assert!(!connected(&a).await);
    assert_eq!(
        metric(a.addrs.admin, "casarray_cluster_connected", &[]).await,
        0.0
    );
    let client = Client::h1(a.addrs.https, &setup.certs.ca_pem);
    assert_eq!(client.get("/owa/").await.unwrap().status(), 200);
    let (status, answer) = admin_post(&a, "EX1", "drain").await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(state(&a, "EX1").await, "active");
}

// ---- the database directory ----------------------------------------------

/// The databases of the instances of the directory test.
const DATABASES: &str =
    "[[database]]\nname = \"DB01\"\nrpc_client_access_server = \"ex1.lab.com\"\n\n\
    [[database]]\nname = \"DB02\"\n";

/// `PUT /api/databases/{db}` with the token: status and body.
async fn put_rpc(i: &Instance, db: &str, fqdn: &str) -> (u16, String) {
    let auth = format!("Bearer {TOKEN}");
    let r = http_call(
        i.addrs.admin,
        "PUT",
        &format!("/api/databases/{db}"),
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        &format!("{{\"rpc_client_access_server\":\"{fqdn}\"}}"),
        Duration::from_secs(30),
    )
    .await
    .unwrap_or_else(|e| panic!("{}: PUT {db}: {e}", i.name));
    (r.status, r.body)
}

/// The EXCH `<Server>` of Alice's (DB01) Autodiscover answer through
/// `i`: what the rewrite plan of `i`'s snapshot says; `None` when the
/// answer is not a 200 with one.
async fn alice_exch_server(client: &Client, i: &Instance) -> Option<String> {
    let mut to = client.clone();
    to.addr = i.addrs.https;
    let body = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\
         <Autodiscover xmlns=\"http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006\">\
         <Request><EMailAddress>alice@lab.com</EMailAddress>\
         <AcceptableResponseSchema>http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a</AcceptableResponseSchema>\
         </Request></Autodiscover>";
    let req = build(
        "POST",
        "/Autodiscover/Autodiscover.xml",
        &[("content-type", "text/xml")],
        body,
    );
    let r = to.send(req).await.ok()?;
    if r.status() != 200 {
        return None;
    }
    let text = text(&r);
    // The EXCH protocol that names a server (the WEB section nests one
    // without).
    text.split("<Protocol>")
        .find(|p| p.contains("<Type>EXCH</Type>") && p.contains("<Server>"))
        .and_then(|p| p.split("<Server>").nth(1))
        .and_then(|s| s.split("</Server>").next())
        .map(str::to_owned)
}

/// `GET /api/databases/{db}` on `i`.
async fn database(i: &Instance, db: &str) -> serde_json::Value {
    let (status, body) = http_get(i.addrs.admin, &format!("/api/databases/{db}"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{}: {body}", i.name);
    serde_json::from_str(&body).unwrap()
}

async fn rpc_server(i: &Instance, db: &str) -> Option<String> {
    database(i, db).await["rpc_client_access_server"]
        .as_str()
        .map(str::to_owned)
}

/// How long until `db`'s `field` on `i` is `want`, polled every 5 ms, at
/// most `limit`; panics past it.
async fn time_until_database(
    i: &Instance,
    db: &str,
    field: &str,
    want: &str,
    limit: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let v = database(i, db).await;
        if v[field] == want {
            return start.elapsed();
        }
        if start.elapsed() > limit {
            panic!("{}: {db} {field} not {want} after {limit:?}: {v}", i.name);
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_client_access_server_set_on_one_instance_is_served_by_all() {
    if !etcd::available() {
        return;
    }
    let setup = Setup::with_mocks().await;
    let mut etcd = Etcd::start(setup.dir.path(), 1).await;
    let body = format!("{}request_timeout = \"2s\"\n", cluster_toml(&etcd));
    let a = setup.instance_with("a", Some(&body), DATABASES);
    let b = setup.instance_with("b", Some(&body), DATABASES);
    let c = setup.instance_with("c", Some(&body), DATABASES);
    assert_eq!(rpc_server(&b, "DB01").await.as_deref(), Some("ex1.lab.com"));
    let client = Client::h1(a.addrs.https, &setup.certs.ca_pem);
    for i in [&b, &c] {
        wait_until(
            "Autodiscover answers through the instance",
            Duration::from_secs(60),
            || async { alice_exch_server(&client, i).await.as_deref() == Some("ex1.lab.com") },
        )
        .await;
    }

    // Set through A: A serves it when the answer comes, B and C within 1 s.
    let sent = Instant::now();
    let (status, answer) = put_rpc(&a, "db01", "outlook.lab.com").await;
    let answered = sent.elapsed();
    assert_eq!(status, 200, "{answer}");
    let v: serde_json::Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(v["name"], "DB01", "{v}");
    assert_eq!(v["changed"], true, "{v}");
    assert_eq!(
        rpc_server(&a, "DB01").await.as_deref(),
        Some("outlook.lab.com")
    );
    let waits = [&b, &c].map(|i| {
        time_until_database(
            i,
            "DB01",
            "rpc_client_access_server",
            "outlook.lab.com",
            Duration::from_secs(10),
        )
    });
    let times = futures_util::future::join_all(waits).await;
    eprintln!(
        "rpc_client_access_server: PUT on a answered after {}; then served by b, c after: {}",
        ms(&[answered]),
        ms(&times)
    );
    for t in &times {
        assert!(
            *t < PROPAGATION,
            "directory propagation {t:?} is over {PROPAGATION:?}"
        );
    }
    // And Alice's Autodiscover answer through B and C names it (the
    // rewrite plan of their snapshots).
    for i in [&b, &c] {
        assert_eq!(
            alice_exch_server(&client, i).await.as_deref(),
            Some("outlook.lab.com"),
            "{}",
            i.name
        );
    }
    // The config files are untouched: the cluster holds the value.
    for i in [&a, &b, &c] {
        let text =
            std::fs::read_to_string(setup.dir.path().join(format!("{}.toml", i.name))).unwrap();
        assert!(!text.contains("outlook.lab.com"), "{}: {text}", i.name);
    }
    // `casarray status` shows the effective value.
    let stdout = status_text(&c).await;
    assert!(stdout.contains("outlook.lab.com"), "{stdout}");

    // Refusals: an unknown database, a bad name; nothing changes.
    let (status, answer) = put_rpc(&b, "DB09", "outlook.lab.com").await;
    assert_eq!(status, 404, "{answer}");
    let (status, answer) = put_rpc(&b, "DB02", "not_a_name").await;
    assert_eq!(status, 422, "{answer}");
    assert_eq!(rpc_server(&c, "DB02").await, None);

    // A fourth instance starts with the cluster's value.
    let d = setup.instance_with("d", Some(&body), DATABASES);
    assert_eq!(
        rpc_server(&d, "DB01").await.as_deref(),
        Some("outlook.lab.com"),
        "d serves with the cluster's directory"
    );

    // etcd stopped: 503, and nothing changes on any instance.
    etcd.kill(0);
    wait_until("b sees etcd gone", Duration::from_secs(30), || async {
        !connected(&b).await
    })
    .await;
    let (status, answer) = put_rpc(&b, "DB01", "other.lab.com").await;
    assert_eq!(status, 503, "{answer}");
    assert!(answer.contains("etcd"), "{answer}");
    for i in [&a, &b, &c, &d] {
        assert_eq!(
            rpc_server(i, "DB01").await.as_deref(),
            Some("outlook.lab.com"),
            "{}: changed while etcd was away",
            i.name
        );
    }
}

// ---- the DAG's active copies ---------------------------------------------

/// The member `db` is mounted on per `admin`'s `GET /api/databases`.
async fn active(admin: SocketAddr, db: &str) -> Option<String> {
    let (status, body) = http_get(admin, "/api/databases").await.ok()?;
    if status != 200 {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    v.as_array()?.iter().find(|d| d["name"] == db)?["active"]
        .as_str()
        .map(str::to_owned)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_move_learned_by_one_instance_routes_on_the_others_at_once() {
    use support::dag::{wait_settled, TestDag};
    if !etcd::available() {
        return;
    }
    let mut dag = TestDag::two();
    dag.start("EX1");
    dag.start("EX2");
    wait_settled(&dag).await;
    let dir = tempdir();
    let certs = make_certs(dir.path());
    std::fs::write(dir.path().join("admin.token"), format!("{TOKEN}\n")).unwrap();
    let etcd = Etcd::start(dir.path(), 1).await;
    let members = [("EX1", dag.addr("EX1")), ("EX2", dag.addr("EX2"))];
    // `poll`: the [health] interval, which is also the DAG poll's.
    let instance = |name: &str, poll: &str| {
        let extra = format!(
            "[admin]\ntoken_file = \"{}\"\n\n[dag]\nenabled = true\n\n\
             [cluster]\ninstance = \"{name}\"\n{}\n\
             [[database]]\nname = \"DB01\"\n\n[[database]]\nname = \"DB02\"\n",
            dir.path().join("admin.token").display(),
            cluster_toml(&etcd)
        );
        let text = config_toml(&certs, &members, &extra)
            .replace("interval = \"200ms\"", &format!("interval = \"{poll}\""));
        let config = dir.path().join(format!("{name}.toml"));
        std::fs::write(&config, text).unwrap();
        let log = dir.path().join(format!("{name}.log"));
        let (proc, addrs) = spawn_array_with(&config, &[], Some(&log));
        Instance {
            name: name.to_owned(),
            proc,
            addrs,
        }
    };
    let a = instance("a", "200ms");
    // B polls the members once at its start, then not for a minute: what
    // it learns meanwhile comes through etcd.
    let b = instance("b", "60s");
    for i in [&a, &b] {
        wait_until(
            "the instance learned the DAG",
            Duration::from_secs(60),
            || async {
                active(i.addrs.admin, "DB01").await.as_deref() == Some("EX1")
                    && active(i.addrs.admin, "DB02").await.as_deref() == Some("EX2")
            },
        )
        .await;
    }
    let failovers = |i: &Instance| {
        let admin = i.addrs.admin;
        async move {
            metric(
                admin,
                "casarray_database_failovers_total",
                &[("database", "DB01")],
            )
            .await
        }
    };
    let before = failovers(&b).await;

    // Move DB01 to EX2 through A: A answers once its map shows it.
    let auth = format!("Bearer {TOKEN}");
    let r = http_call(
        a.addrs.admin,
        "POST",
        "/api/databases/DB01/move-active",
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        r#"{"server":"EX2"}"#,
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let moved = Instant::now();
    assert_eq!(active(a.addrs.admin, "DB01").await.as_deref(), Some("EX2"));
    let mut seen = None;
    while moved.elapsed() < Duration::from_secs(10) {
        if active(b.addrs.admin, "DB01").await.as_deref() == Some("EX2") {
            seen = Some(moved.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let Some(took) = seen else {
        panic!(
            "b does not route DB01 to EX2 10 s after the move; its log:\n{}",
            std::fs::read_to_string(dir.path().join("b.log")).unwrap_or_default()
        );
    };
    eprintln!(
        "move-active through a: b routes DB01 to EX2 after {:.1} ms",
        took.as_secs_f64() * 1000.0
    );
    assert!(
        took < PROPAGATION,
        "DAG propagation {took:?} is over {PROPAGATION:?}"
    );
    assert_eq!(
        active(b.addrs.admin, "DB02").await.as_deref(),
        Some("EX2"),
        "the other database stays"
    );
    // Counted on b as an activation, as its own poll would have.
    assert_eq!(failovers(&b).await, before + 1.0);
    let log = std::fs::read_to_string(dir.path().join("a.log")).unwrap_or_default();
    assert!(log.contains("cluster: DAG active copy written"), "{log}");
}

// ---- etcd over TLS with a client certificate and a password --------------

/// An etcd client of the test's own for `endpoint` over TLS (`ca`, the
/// client certificate `cert`/`key`), logged in as `user` when given.
/// Connecting needs no answer, logging in does.
async fn etcd_tls_client(
    endpoint: &str,
    (ca, cert, key): (&std::path::Path, &std::path::Path, &std::path::Path),
    user: Option<(&str, &str)>,
) -> Result<etcd_client::Client, etcd_client::Error> {
    let read = |p: &std::path::Path| std::fs::read(p).unwrap();
    let tls = etcd_client::TlsOptions::new()
        .ca_certificate(etcd_client::Certificate::from_pem(read(ca)))
        .identity(etcd_client::Identity::from_pem(read(cert), read(key)));
    let mut opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_timeout(Duration::from_secs(10))
        .with_tls(tls);
    if let Some((user, password)) = user {
        opts = opts.with_user(user, password);
    }
    etcd_client::Client::connect([endpoint], Some(opts)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_over_tls_with_a_password_shares_a_drain_and_a_wrong_password_is_refused() {
    if !etcd::available() {
        return;
    }
    let setup = Setup::new().await;
    let dir = setup.dir.path();
    // etcd's CA, its server certificate (for 127.0.0.1) and a client
    // certificate whose name is no etcd user: only the password grants.
    let ca = TestCa::new(dir, "etcd-ca", "etcd test CA");
    let (server_crt, server_key) = ca.issue("etcd-server", &["127.0.0.1", "localhost"]);
    let (client_crt, client_key) = ca.issue("etcd-client", &["casarray-client"]);
    let held: Vec<std::net::TcpListener> = (0..2)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let client_addr = held[0].local_addr().unwrap();
    let peer_addr = held[1].local_addr().unwrap();
    drop(held);
    let endpoint = format!("https://{client_addr}");
    let log_path = dir.join("etcd-tls.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = std::process::Command::new("etcd")
        .arg("--name")
        .arg("etcdtls")
        .arg("--data-dir")
        .arg(dir.join("etcd-tls.data"))
        .arg("--listen-client-urls")
        .arg(&endpoint)
        .arg("--advertise-client-urls")
        .arg(&endpoint)
        .arg("--listen-peer-urls")
        .arg(format!("http://{peer_addr}"))
        .arg("--initial-advertise-peer-urls")
        .arg(format!("http://{peer_addr}"))
        .arg("--initial-cluster")
        .arg(format!("etcdtls=http://{peer_addr}"))
        .arg("--initial-cluster-state")
        .arg("new")
        .arg("--cert-file")
        .arg(&server_crt)
        .arg("--key-file")
        .arg(&server_key)
        .arg("--trusted-ca-file")
        .arg(&ca.path)
        .arg("--client-cert-auth")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(log))
        .spawn()
        .expect("spawn etcd");
    let _etcd = Proc {
        child,
        name: "etcd-tls".into(),
    };
    let files = (
        ca.path.as_path(),
        client_crt.as_path(),
        client_key.as_path(),
    );
    // Ready: a status over TLS, with the CA and the client certificate,
    // answers (at most 60 s).
    let mut admin = etcd_tls_client(&endpoint, files, None).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let answer = admin.status().await;
        if answer.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            panic!(
                "etcd over TLS not ready within 60 s: {answer:?}\netcd log:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // User root (role root) with a password, then authentication on.
    const PASSWORD: &str = "r00t-pa55word";
    admin.user_add("root", PASSWORD, None).await.unwrap();
    admin.role_add("root").await.unwrap();
    admin.user_grant_role("root", "root").await.unwrap();
    admin.auth_enable().await.unwrap();
    // Authentication is on: the client certificate alone is refused.
    assert!(
        admin.get("x", None).await.is_err(),
        "a get without the password worked"
    );

    std::fs::write(dir.join("etcd.password"), format!("{PASSWORD}\n")).unwrap();
    std::fs::write(dir.join("etcd.wrong"), "not-the-password\n").unwrap();
    let body = |password: &str| {
        format!(
            "etcd = [\"{endpoint}\"]\nca = \"{}\"\ncert = \"{}\"\nkey = \"{}\"\n\
             user = \"root\"\npassword_file = \"{}\"\n\
             sync_timeout = \"2s\"\nrequest_timeout = \"2s\"\n",
            ca.path.display(),
            client_crt.display(),
            client_key.display(),
            dir.join(password).display()
        )
    };
    let a = setup.instance("a", Some(&body("etcd.password")));
    let b = setup.instance("b", Some(&body("etcd.password")));
    for i in [&a, &b] {
        wait_until(
            "the instance follows etcd over TLS",
            Duration::from_secs(30),
            || async { connected(i).await },
        )
        .await;
    }
    wait_until("two instances listed", Duration::from_secs(30), || async {
        cluster_view(&a).await["instances"]
            .as_array()
            .map_or(0, Vec::len)
            == 2
    })
    .await;
    let view = cluster_view(&b).await;
    assert_eq!(view["endpoints"][0], endpoint, "{view}");

    // A drain through A holds on B.
    let (status, answer) = admin_post(&a, "EX1", "drain").await;
    assert_eq!(status, 200, "{answer}");
    let times = propagation(&[&b], "EX1", "draining", Duration::from_secs(10)).await;
    println!(
        "over TLS with a password: drain on a seen on b after {}",
        ms(&times)
    );
    for t in &times {
        assert!(
            *t < PROPAGATION,
            "drain propagation {t:?} is over {PROPAGATION:?}"
        );
    }
    assert_eq!(state(&b, "EX2").await, "active");
    // And the key is in etcd, read with the password.
    let mut root = etcd_tls_client(&endpoint, files, Some(("root", PASSWORD)))
        .await
        .unwrap();
    let keys = root
        .get(
            "/",
            Some(
                etcd_client::GetOptions::new()
                    .with_prefix()
                    .with_keys_only(),
            ),
        )
        .await
        .unwrap();
    let keys: Vec<String> = keys
        .kvs()
        .iter()
        .map(|kv| String::from_utf8_lossy(kv.key()).into_owned())
        .collect();
    assert!(
        keys.iter().any(|k| k.ends_with("/drain/ex1")),
        "no drain key in etcd: {keys:?}"
    );

    // The same but a wrong password: it starts after its sync timeout,
    // is not connected, serves, and refuses changes.
    let c = setup.instance("c", Some(&body("etcd.wrong")));
    let view = cluster_view(&c).await;
    assert_eq!(view["connected"], false, "{view}");
    assert_eq!(
        metric(c.addrs.admin, "casarray_cluster_connected", &[]).await,
        0.0
    );
    assert_eq!(http_get(c.addrs.admin, "/healthz").await.unwrap().0, 200);
    let client = Client::h1(c.addrs.https, &setup.certs.ca_pem);
    assert_eq!(client.get("/owa/").await.unwrap().status(), 200);
    let (status, answer) = admin_post(&c, "EX2", "drain").await;
    assert_eq!(status, 503, "{answer}");
    assert_eq!(state(&c, "EX2").await, "active", "applied locally");
    assert_eq!(state(&a, "EX2").await, "active", "reached the cluster");
    assert!(
        setup.log("c").contains("authentication failed"),
        "{}",
        setup.log("c")
    );
    // Still not connected a while later: retrying does not get it in.
    assert!(!connected(&c).await);
    let view = cluster_view(&a).await;
    assert_eq!(
        view["instances"].as_array().map_or(0, Vec::len),
        2,
        "c registered with a wrong password: {view}"
    );
}
