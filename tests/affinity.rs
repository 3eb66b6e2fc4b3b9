//! Affinity and connection-bound logins (issue 7), black-box: real mock
//! mailbox servers and a real `casarray serve` on 127.0.0.1.
//!
//! - The mock's NTLM login itself, straight to one mock server: the three
//!   legs bind to the TCP connection, as on IIS.
//! - Cookie and source-IP affinity hold across many requests, and move at
//!   once, with no client error, when the sticky member dies.
//! - NTLM through the array: two clients logging in at the same time, with
//!   interleaved requests, each only ever see their own identity, and no
//!   backend connection serves both (HAProxy's known regression); a client
//!   that never logged in is refused; over HTTP/2 the login is refused with
//!   HTTP_1_1_REQUIRED and succeeds over HTTP/1.1; when the pinned member
//!   dies, the client connection is closed and a new one logs in through
//!   the other member.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use casarray::mock::ntlm::{self, Scheme};
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use support::*;

const ALICE: (&str, &str) = ("alice", "Alice!lab1");
const BOB: (&str, &str) = ("bob", "Bob!lab1");
/// The page an authenticated NTLM client probes.
const EWS: &str = "/EWS/Exchange.asmx";
/// Every wait on the array or a member: 30 s.
const WAIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Helpers.

/// A request with the array's Host and extra headers.
fn req(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", FQDN);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(Bytes::new())).unwrap()
}

fn header<'a>(resp: &'a Resp, name: &str) -> Option<&'a str> {
    resp.headers().get(name).and_then(|v| v.to_str().ok())
}

/// `X-FEServer` (the member), with expose_server_headers on.
fn member_of(resp: &Resp) -> String {
    header(resp, "x-feserver")
        .unwrap_or_else(|| panic!("no X-FEServer: {resp:?}"))
        .to_owned()
}

/// (member, `X-Mock-Connection`): one backend TCP connection.
fn backend_conn(resp: &Resp) -> (String, String) {
    let conn = header(resp, "x-mock-connection")
        .unwrap_or_else(|| panic!("no X-Mock-Connection: {resp:?}"))
        .to_owned();
    (member_of(resp), conn)
}

/// The challenge of a leg-2 answer for `scheme`.
fn challenge_of(resp: &Resp, scheme: Scheme) -> [u8; 8] {
    assert_eq!(resp.status(), 401, "leg 2 is a 401: {resp:?}");
    let value = resp
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(ntlm::parse_header)
        .unwrap_or_else(|| panic!("no NTLMSSP challenge in {resp:?}"));
    assert_eq!(value.0, scheme, "the scheme is mirrored");
    ntlm::parse_challenge(&value.1).expect("a Type 2 message")
}

/// Something that sends one request on one HTTP/1.1 connection.
trait Conn {
    async fn roundtrip(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Resp>;
}

impl Conn for H1 {
    async fn roundtrip(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Resp> {
        tokio::time::timeout(WAIT, self.send(req)).await?
    }
}

/// Leg 1 then leg 3 on `conn`: the leg-2 and leg-3 answers.
async fn login(
    conn: &mut impl Conn,
    scheme: Scheme,
    (user, password): (&str, &str),
) -> (Resp, Resp) {
    let leg1 = ntlm::header_value(scheme, &ntlm::negotiate_message());
    let leg2 = conn
        .roundtrip(req("GET", EWS, &[("authorization", &leg1)]))
        .await
        .unwrap();
    let challenge = challenge_of(&leg2, scheme);
    let leg3 = ntlm::header_value(
        scheme,
        &ntlm::authenticate_message(user, "LAB", password, challenge),
    );
    let done = conn
        .roundtrip(req("GET", EWS, &[("authorization", &leg3)]))
        .await
        .unwrap();
    (leg2, done)
}

/// Asserts `resp` is the EWS page served to `address` over NTLM.
fn assert_served_as(resp: &Resp, address: &str, what: &str) {
    assert_eq!(resp.status(), 200, "{what}: {resp:?}");
    assert_eq!(header(resp, "x-mock-user"), Some(address), "{what}");
    let body = String::from_utf8_lossy(resp.body());
    assert!(
        body.contains(&format!("Logged on as {address}.")),
        "{what}: {body}"
    );
}

/// Mock servers (sharing one store) and the array in front of them, every
/// member up for `service`.
struct Lab {
    _dir: tempfile::TempDir,
    mocks: Vec<(Proc, SocketAddr)>,
    _array: Proc,
    addrs: ArrayAddrs,
    certs: TestCerts,
    client: Client,
}

const NAMES: [&str; 2] = ["EX1", "EX2"];

async fn lab(members: usize, extra: &str, service: &str) -> Lab {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mocks: Vec<_> = NAMES
        .iter()
        .take(members)
        .map(|n| spawn_mock(n, &store, &[]))
        .collect();
    let list: Vec<(&str, SocketAddr)> = NAMES
        .iter()
        .copied()
        .zip(mocks.iter().map(|m| m.1))
        .collect();
    let config = dir.path().join("casarray.toml");
    let extra = format!("[rewrite]\nexpose_server_headers = true\n\n{extra}");
    std::fs::write(&config, config_toml(&certs, &list, &extra)).unwrap();
    let (array, addrs) = spawn_array(&config);
    let client = Client::h1(addrs.https, &certs.ca_pem);
    wait_until("every member up", WAIT, || async {
        for (name, _) in &list {
            if !member_up(addrs.admin, name, service).await {
                return false;
            }
        }
        true
    })
    .await;
    Lab {
        _dir: dir,
        mocks,
        _array: array,
        addrs,
        certs,
        client,
    }
}

impl Lab {
    /// kill -9 the member named `name`, and its address.
    fn kill(&mut self, name: &str) -> SocketAddr {
        let (proc, addr) = self
            .mocks
            .iter_mut()
            .find(|(p, _)| p.name == name)
            .unwrap_or_else(|| panic!("no member {name}"));
        proc.kill9();
        *addr
    }
}

fn other(name: &str) -> &'static str {
    if name == NAMES[0] {
        NAMES[1]
    } else {
        NAMES[0]
    }
}

// ---------------------------------------------------------------------------
// The mock's login, straight to one mock server over plain HTTP.

/// A keep-alive plain HTTP/1.1 connection to a mock server.
struct Plain {
    sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl Plain {
    async fn open(addr: SocketAddr) -> Plain {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
                .await
                .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Plain { sender }
    }
}

impl Conn for Plain {
    async fn roundtrip(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Resp> {
        let fut = async {
            self.sender.ready().await?;
            let resp = self.sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok(Response::from_parts(parts, body))
        };
        tokio::time::timeout(WAIT, fut).await?
    }
}

fn mock_alone(dir: &Path) -> (Proc, SocketAddr) {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).unwrap();
    spawn_mock("EX1", &store, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_ntlm_login_binds_to_the_tcp_connection() {
    let dir = tempdir();
    let (_ex1, addr) = mock_alone(dir.path());

    // Unauthenticated: every scheme offered, Basic first (kept working).
    let mut anon = Plain::open(addr).await;
    let r = anon.roundtrip(req("GET", EWS, &[])).await.unwrap();
    assert_eq!(r.status(), 401);
    let offers: Vec<_> = r
        .headers()
        .get_all("www-authenticate")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        offers,
        ["Basic realm=\"ex1.lab.local\"", "Negotiate", "NTLM"]
    );
    assert!(header(&r, "x-mock-user").is_none());
    let anon_conn = header(&r, "x-mock-connection").unwrap().to_owned();

    // Three legs on one connection, then requests without Authorization.
    let mut conn = Plain::open(addr).await;
    let (leg2, done) = login(&mut conn, Scheme::Ntlm, ALICE).await;
    assert!(header(&leg2, "x-mock-user").is_none());
    assert_served_as(&done, "alice@lab.com", "leg 3");
    let number = header(&done, "x-mock-connection").unwrap().to_owned();
    assert_eq!(header(&leg2, "x-mock-connection"), Some(number.as_str()));
    assert_ne!(number, anon_conn);
    for i in 0..5 {
        let r = conn.roundtrip(req("GET", EWS, &[])).await.unwrap();
        assert_served_as(&r, "alice@lab.com", &format!("request {i}"));
        assert_eq!(header(&r, "x-mock-connection"), Some(number.as_str()));
    }
    // Health pages and services without a login still carry the headers.
    let r = conn
        .roundtrip(req("GET", "/owa/healthcheck.htm", &[]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "x-mock-user"), Some("alice@lab.com"));
    // Another connection is still anonymous.
    let r = anon.roundtrip(req("GET", EWS, &[])).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(header(&r, "x-mock-user").is_none());
    // Basic keeps working, even on an NTLM connection (explicit wins).
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            "bob@lab.com:Bob!lab1"
        )
    );
    let r = anon
        .roundtrip(req("GET", EWS, &[("authorization", &basic)]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(String::from_utf8_lossy(r.body()).contains("Logged on as bob@lab.com."));

    // Negotiate: the scheme is mirrored in the challenge.
    let mut neg = Plain::open(addr).await;
    let (_, done) = login(&mut neg, Scheme::Negotiate, BOB).await;
    assert_served_as(&done, "bob@lab.com", "Negotiate leg 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_refuses_a_leg_3_from_another_connection_or_a_wrong_password() {
    let dir = tempdir();
    let (_ex1, addr) = mock_alone(dir.path());
    let leg1 = ntlm::header_value(Scheme::Ntlm, &ntlm::negotiate_message());

    // Leg 1 on one connection, leg 3 on another: no challenge there.
    let mut first = Plain::open(addr).await;
    let leg2 = first
        .roundtrip(req("GET", EWS, &[("authorization", &leg1)]))
        .await
        .unwrap();
    let challenge = challenge_of(&leg2, Scheme::Ntlm);
    let leg3 = ntlm::header_value(
        Scheme::Ntlm,
        &ntlm::authenticate_message("alice", "LAB", "Alice!lab1", challenge),
    );
    let mut second = Plain::open(addr).await;
    let r = second
        .roundtrip(req("GET", EWS, &[("authorization", &leg3)]))
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a challenge belongs to its connection");
    assert!(header(&r, "x-mock-user").is_none());
    let r = second.roundtrip(req("GET", EWS, &[])).await.unwrap();
    assert_eq!(r.status(), 401);

    // The same leg 3 on the right connection works, once.
    let r = first
        .roundtrip(req("GET", EWS, &[("authorization", &leg3)]))
        .await
        .unwrap();
    assert_served_as(&r, "alice@lab.com", "leg 3 on its own connection");
    let mut replay = Plain::open(addr).await;
    let r = replay
        .roundtrip(req("GET", EWS, &[("authorization", &leg3)]))
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "a replayed leg 3 is refused");

    // A wrong password: refused, and the connection stays anonymous.
    let mut wrong = Plain::open(addr).await;
    let (_, r) = login(&mut wrong, Scheme::Ntlm, ("alice", "wrong")).await;
    assert_eq!(r.status(), 401);
    assert!(header(&r, "x-mock-user").is_none());
    let r = wrong.roundtrip(req("GET", EWS, &[])).await.unwrap();
    assert_eq!(r.status(), 401);
    // An unknown user, and garbage.
    let mut unknown = Plain::open(addr).await;
    let (_, r) = login(&mut unknown, Scheme::Ntlm, ("carol", "x")).await;
    assert_eq!(r.status(), 401);
    let r = unknown
        .roundtrip(req("GET", EWS, &[("authorization", "NTLM AAAA")]))
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

// ---------------------------------------------------------------------------
// Cookie and source-IP affinity through the array.

/// The `casarray_owa` cookie's value in a `Set-Cookie`, checked for its
/// attributes.
fn affinity_cookie(resp: &Resp, name: &str) -> Option<String> {
    let value = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))?;
    let attrs: Vec<String> = value
        .split(';')
        .map(|a| a.trim().to_ascii_lowercase())
        .collect();
    for wanted in ["secure", "httponly", "path=/"] {
        assert!(attrs.iter().any(|a| a == wanted), "{wanted} in {value}");
    }
    let token = value[name.len() + 1..]
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_owned();
    assert!(!token.is_empty(), "{value}");
    Some(token)
}

/// The token names no member: no name, fqdn or address in clear.
fn assert_opaque(token: &str, lab: &Lab) {
    let lower = token.to_ascii_lowercase();
    for (proc, addr) in &lab.mocks {
        let name = proc.name.to_ascii_lowercase();
        for needle in [
            name.clone(),
            format!("{name}.lab.local"),
            addr.to_string(),
            addr.ip().to_string(),
        ] {
            assert!(!lower.contains(&needle), "{token} names {needle}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cookie_affinity_sticks_and_moves_when_the_member_dies() {
    let extra = "[[service]]\nname = \"owa\"\naffinity = \"cookie\"\n";
    let mut lab = lab(2, extra, "owa").await;
    let page = "/owa/auth/logon.aspx";

    // Without the cookie, requests spread (and each answer offers one).
    let mut seen = std::collections::BTreeSet::new();
    let mut conn = lab.client.connect().await.unwrap();
    let mut cookie = None;
    for _ in 0..10 {
        let r = conn.roundtrip(req("GET", page, &[])).await.unwrap();
        assert_eq!(r.status(), 200);
        seen.insert(member_of(&r));
        let token = affinity_cookie(&r, "casarray_owa").expect("the array sets its cookie");
        assert_opaque(&token, &lab);
        cookie.get_or_insert((token, member_of(&r)));
    }
    assert_eq!(seen.len(), 2, "without the cookie both members serve");

    // With it: one member, on this connection and on fresh ones.
    let (token, sticky) = cookie.unwrap();
    let jar = format!("casarray_owa={token}; other=1");
    for i in 0..50 {
        let r = if i % 5 == 0 {
            lab.client
                .connect()
                .await
                .unwrap()
                .roundtrip(req("GET", page, &[("cookie", &jar)]))
                .await
        } else {
            conn.roundtrip(req("GET", page, &[("cookie", &jar)])).await
        }
        .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(member_of(&r), sticky, "request {i} stuck");
    }

    // The sticky member dies: no error, the other member, a new cookie.
    let admin = lab.addrs.admin;
    let moves = |admin| async move {
        metric(
            admin,
            "casarray_affinity_moves_total",
            &[("service", "owa")],
        )
        .await
    };
    let before = moves(admin).await;
    lab.kill(&sticky);
    let survivor = other(&sticky);
    let mut fresh = None;
    for i in 0..10 {
        let r = lab
            .client
            .connect()
            .await
            .unwrap()
            .roundtrip(req("GET", page, &[("cookie", &jar)]))
            .await
            .unwrap_or_else(|e| panic!("request {i} after the kill: {e}"));
        assert_eq!(r.status(), 200, "request {i} after the kill");
        assert_eq!(member_of(&r), survivor);
        if let Some(t) = affinity_cookie(&r, "casarray_owa") {
            fresh = Some(t);
        }
    }
    // Once the array knows the member is down, the move is plain.
    wait_until("the dead member is down", WAIT, || async {
        !member_up(admin, &sticky, "owa").await
    })
    .await;
    let r = lab
        .client
        .connect()
        .await
        .unwrap()
        .roundtrip(req("GET", page, &[("cookie", &jar)]))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(member_of(&r), survivor);
    if let Some(t) = affinity_cookie(&r, "casarray_owa") {
        fresh = Some(t);
    }
    let fresh = fresh.expect("the cookie is re-issued after the move");
    assert_ne!(fresh, token, "the new cookie names the new member");
    assert_opaque(&fresh, &lab);
    assert!(
        moves(admin).await > before,
        "casarray_affinity_moves_total{{service=\"owa\"}} counts the move"
    );
    // The new cookie sticks to the survivor.
    let jar = format!("casarray_owa={fresh}");
    for _ in 0..10 {
        let r = conn.roundtrip(req("GET", page, &[("cookie", &jar)])).await;
        let r = match r {
            Ok(r) => r,
            // The old connection may have been closed meanwhile.
            Err(_) => {
                conn = lab.client.connect().await.unwrap();
                conn.roundtrip(req("GET", page, &[("cookie", &jar)]))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(r.status(), 200);
        assert_eq!(member_of(&r), survivor);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ip_affinity_sticks_and_moves_when_the_member_dies() {
    let extra = "[[service]]\nname = \"eas\"\naffinity = \"source-ip\"\n";
    let mut lab = lab(2, extra, "eas").await;
    let page = "/Microsoft-Server-ActiveSync";

    // Every client is 127.0.0.1: one member, on any connection.
    let mut sticky = None;
    let mut conn = lab.client.connect().await.unwrap();
    for i in 0..50 {
        let r = if i % 5 == 0 {
            lab.client.get(page).await
        } else {
            conn.roundtrip(req("GET", page, &[])).await
        }
        .unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            affinity_cookie(&r, "casarray_eas").is_none(),
            "no cookie for source-ip"
        );
        let m = member_of(&r);
        assert_eq!(sticky.get_or_insert(m.clone()), &m, "request {i} stuck");
    }
    let sticky = sticky.unwrap();
    let survivor = other(&sticky);

    let admin = lab.addrs.admin;
    let before = metric(
        admin,
        "casarray_affinity_moves_total",
        &[("service", "eas")],
    )
    .await;
    lab.kill(&sticky);
    for i in 0..10 {
        let r = lab
            .client
            .get(page)
            .await
            .unwrap_or_else(|e| panic!("request {i} after the kill: {e}"));
        assert_eq!(r.status(), 200, "request {i} after the kill");
        assert_eq!(member_of(&r), survivor);
    }
    wait_until("the dead member is down", WAIT, || async {
        !member_up(admin, &sticky, "eas").await
    })
    .await;
    for _ in 0..10 {
        let r = lab.client.get(page).await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(member_of(&r), survivor);
    }
    let after = metric(
        admin,
        "casarray_affinity_moves_total",
        &[("service", "eas")],
    )
    .await;
    assert!(after > before, "moves counted: {before} -> {after}");
}

// ---------------------------------------------------------------------------
// NTLM through the array.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interleaved_ntlm_logins_each_keep_their_own_identity_and_backend() {
    // One member: every client connection lands on the same server, so any
    // reuse of a backend connection across clients would show.
    let lab = lab(1, "", "ews").await;
    let mut alice = lab.client.connect().await.unwrap();
    let mut bob = lab.client.connect().await.unwrap();
    let leg1 = ntlm::header_value(Scheme::Ntlm, &ntlm::negotiate_message());

    // alice leg 1, bob leg 1, alice leg 3, bob leg 3.
    let a2 = alice
        .roundtrip(req("GET", EWS, &[("authorization", &leg1)]))
        .await
        .unwrap();
    let b2 = bob
        .roundtrip(req("GET", EWS, &[("authorization", &leg1)]))
        .await
        .unwrap();
    let a_conn = backend_conn(&a2);
    let b_conn = backend_conn(&b2);
    assert_ne!(a_conn, b_conn, "one backend connection per client");
    let a3 = ntlm::header_value(
        Scheme::Ntlm,
        &ntlm::authenticate_message(ALICE.0, "LAB", ALICE.1, challenge_of(&a2, Scheme::Ntlm)),
    );
    let b3 = ntlm::header_value(
        Scheme::Ntlm,
        &ntlm::authenticate_message(BOB.0, "LAB", BOB.1, challenge_of(&b2, Scheme::Ntlm)),
    );
    let r = alice
        .roundtrip(req("GET", EWS, &[("authorization", &a3)]))
        .await
        .unwrap();
    assert_served_as(&r, "alice@lab.com", "alice leg 3");
    assert_eq!(backend_conn(&r), a_conn);
    let r = bob
        .roundtrip(req("GET", EWS, &[("authorization", &b3)]))
        .await
        .unwrap();
    assert_served_as(&r, "bob@lab.com", "bob leg 3");
    assert_eq!(backend_conn(&r), b_conn);

    // A third client, never logged in, on its own connection.
    let mut carol = lab.client.connect().await.unwrap();
    let mut carol_conns = std::collections::BTreeSet::new();

    // 20 interleaved requests each, without Authorization.
    for i in 0..20 {
        let r = alice.roundtrip(req("GET", EWS, &[])).await.unwrap();
        assert_served_as(&r, "alice@lab.com", &format!("alice {i}"));
        assert_eq!(backend_conn(&r), a_conn, "alice {i}");
        let r = bob.roundtrip(req("GET", EWS, &[])).await.unwrap();
        assert_served_as(&r, "bob@lab.com", &format!("bob {i}"));
        assert_eq!(backend_conn(&r), b_conn, "bob {i}");
        if i % 4 == 0 {
            let r = carol.roundtrip(req("GET", EWS, &[])).await.unwrap();
            assert_eq!(r.status(), 401, "carol {i}: {r:?}");
            assert!(header(&r, "x-mock-user").is_none(), "carol {i}");
            carol_conns.insert(backend_conn(&r));
            // And on a fresh connection each time.
            let r = lab.client.get(EWS).await.unwrap();
            assert_eq!(r.status(), 401, "fresh {i}: {r:?}");
            assert!(header(&r, "x-mock-user").is_none(), "fresh {i}");
            carol_conns.insert(backend_conn(&r));
        }
    }
    assert!(!carol_conns.contains(&a_conn) && !carol_conns.contains(&b_conn));

    // Both at once: still each their own.
    let (ra, rb) = tokio::join!(
        async {
            let mut out = Vec::new();
            for _ in 0..20 {
                out.push(alice.roundtrip(req("GET", EWS, &[])).await.unwrap());
            }
            out
        },
        async {
            let mut out = Vec::new();
            for _ in 0..20 {
                out.push(bob.roundtrip(req("GET", EWS, &[])).await.unwrap());
            }
            out
        }
    );
    for r in &ra {
        assert_served_as(r, "alice@lab.com", "alice, concurrent");
        assert_eq!(backend_conn(r), a_conn);
    }
    for r in &rb {
        assert_served_as(r, "bob@lab.com", "bob, concurrent");
        assert_eq!(backend_conn(r), b_conn);
    }
}

/// The HTTP/2 reset reason somewhere in `err`'s source chain.
fn h2_reason(err: &(dyn std::error::Error + 'static)) -> Option<h2::Reason> {
    let mut cur = Some(err);
    for _ in 0..16 {
        let e = cur?;
        if let Some(h2) = e.downcast_ref::<h2::Error>() {
            return h2.reason();
        }
        cur = e.source();
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntlm_over_http2_is_refused_with_http_1_1_required_then_works_over_http1() {
    let lab = lab(2, "", "ews").await;
    let h2_client = Client::new(lab.addrs.https, &lab.certs.ca_pem, &[b"h2"]);
    let tls = h2_client.tls().await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for scheme in [Scheme::Ntlm, Scheme::Negotiate] {
        let leg1 = ntlm::header_value(scheme, &ntlm::negotiate_message());
        let r = Request::builder()
            .uri(format!("https://{FQDN}{EWS}"))
            .header("authorization", leg1)
            .body(Full::new(Bytes::new()))
            .unwrap();
        let err = match tokio::time::timeout(WAIT, sender.send_request(r))
            .await
            .unwrap()
        {
            Ok(resp) => panic!("{scheme:?} over h2 answered {}", resp.status()),
            Err(e) => e,
        };
        assert_eq!(
            h2_reason(&err),
            Some(h2::Reason::HTTP_1_1_REQUIRED),
            "{scheme:?}: {err:?}"
        );
    }
    // The h2 connection itself stays usable for other requests.
    let r = Request::builder()
        .uri(format!("https://{FQDN}/EWS/healthcheck.htm"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(WAIT, sender.send_request(r))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(resp.status(), 200);

    // The client falls back to HTTP/1.1, and the login works.
    let mut h1 = lab.client.connect().await.unwrap();
    let (_, done) = login(&mut h1, Scheme::Ntlm, ALICE).await;
    assert_served_as(&done, "alice@lab.com", "over HTTP/1.1");
    let r = h1.roundtrip(req("GET", EWS, &[])).await.unwrap();
    assert_served_as(&r, "alice@lab.com", "after the login");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_the_pinned_member_dies_the_client_connection_closes() {
    let mut lab = lab(2, "", "ews").await;
    let mut alice = lab.client.connect().await.unwrap();
    let (_, done) = login(&mut alice, Scheme::Ntlm, ALICE).await;
    assert_served_as(&done, "alice@lab.com", "first login");
    let pinned = member_of(&done);
    let r = alice.roundtrip(req("GET", EWS, &[])).await.unwrap();
    assert_served_as(&r, "alice@lab.com", "before the kill");
    assert_eq!(member_of(&r), pinned);

    lab.kill(&pinned);
    // The next request on that connection fails: the array closed it
    // (never served by another member under alice's login).
    match alice.roundtrip(req("GET", EWS, &[])).await {
        Err(_) => {}
        Ok(r) => panic!("the client connection outlived its pinned member: {r:?}"),
    }

    // A new connection logs in again (with Negotiate this time), through
    // the other member.
    let mut again = lab.client.connect().await.unwrap();
    let (_, done) = login(&mut again, Scheme::Negotiate, ALICE).await;
    assert_served_as(&done, "alice@lab.com", "second login");
    assert_eq!(member_of(&done), other(&pinned));
    let r = again.roundtrip(req("GET", EWS, &[])).await.unwrap();
    assert_served_as(&r, "alice@lab.com", "after the second login");
}
