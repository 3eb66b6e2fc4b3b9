//! Test support: certificates made with rcgen, mock mailbox servers and the
//! array as real child processes on 127.0.0.1, and a TLS client.
//!
//! Every process is started with port 0 and reports its bound address on
//! stdout; tests wait for that line (never on a sleep, never on a guessed
//! port), and every wait is bounded.

#![allow(dead_code)]

pub mod backend;
pub mod dag;
pub mod etcd;
pub mod shields;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;

pub const BIN: &str = env!("CARGO_BIN_EXE_casarray");
pub const FQDN: &str = "mail.lab.com";

/// A CA and a leaf for `mail.lab.com` and `autodiscover.lab.com`, as PEM
/// files in `dir`.
pub struct TestCerts {
    pub ca_pem: String,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs(dir: &Path) -> TestCerts {
    make_certs_named(
        dir,
        "mail.lab.com",
        &["mail.lab.com", "autodiscover.lab.com"],
    )
}

pub fn make_certs_named(dir: &Path, stem: &str, names: &[&str]) -> TestCerts {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "casarray test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params =
        CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, names[0]);
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    let cert = dir.join(format!("{stem}.crt"));
    let key = dir.join(format!("{stem}.key"));
    std::fs::write(&cert, format!("{}{}", leaf.pem(), ca_cert.pem())).unwrap();
    std::fs::write(&key, leaf_key.serialize_pem()).unwrap();
    TestCerts {
        ca_pem: ca_cert.pem(),
        cert,
        key,
    }
}

/// A CA of its own (named `name`), whose certificate is `DIR/<stem>.crt`,
/// issuing leaf certificates: for members that serve HTTPS.
pub struct TestCa {
    /// The CA certificate file.
    pub path: PathBuf,
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    dir: PathBuf,
}

impl TestCa {
    pub fn new(dir: &Path, stem: &str, name: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let cert = params.self_signed(&key).unwrap();
        let path = dir.join(format!("{stem}.crt"));
        std::fs::write(&path, cert.pem()).unwrap();
        TestCa {
            path,
            issuer: Issuer::new(params, key),
            dir: dir.to_path_buf(),
        }
    }

    /// A leaf for `names` signed by this CA, written to `<stem>.crt` (leaf
    /// then CA) and `<stem>.key`; returns (certificate, key).
    pub fn issue(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, names[0]);
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        let ca = std::fs::read_to_string(&self.path).unwrap();
        let cert = self.dir.join(format!("{stem}.crt"));
        let key_path = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert, format!("{}{ca}", leaf.pem())).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert, key_path)
    }
}

/// A child process killed when dropped.
pub struct Proc {
    pub child: Child,
    pub name: String,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// kill -9: the server is lost, as when its host dies.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends a signal (SIGHUP, SIGTERM...).
    pub fn signal(&self, sig: i32) {
        unsafe {
            libc::kill(self.pid(), sig);
        }
    }

    /// Waits for the process to exit, at most `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads stdout lines until `pred` returns Some, within 60 s; the rest of
/// stdout is drained in the background so the child never blocks.
fn wait_line<T>(name: &str, stdout: ChildStdout, pred: impl Fn(&str) -> Option<T>) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    let name = name.to_owned();
    std::thread::spawn(move || {
        // Send every line; once the waiter is gone, keep draining.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(v) = pred(&line) {
                    return v;
                }
            }
            Err(_) => panic!("{name}: no readiness line within 60 s"),
        }
    }
}

/// Starts `casarray mock-server` on an ephemeral port.
pub fn spawn_mock(name: &str, store: &Path, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut child = Command::new(BIN)
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
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn mock-server");
    let stdout = child.stdout.take().unwrap();
    let addr = wait_line(name, stdout, |l| {
        l.split("listening on ")
            .nth(1)
            .and_then(|a| a.trim().parse().ok())
    });
    (
        Proc {
            child,
            name: name.to_owned(),
        },
        addr,
    )
}

/// The addresses a running array reported.
#[derive(Debug, Clone, Copy)]
pub struct ArrayAddrs {
    pub https: SocketAddr,
    pub admin: SocketAddr,
    /// `listen.http_redirect`, when the config sets it.
    pub redirect: Option<SocketAddr>,
    /// `listen.smtp`, when the config sets it.
    pub smtp: Option<SocketAddr>,
}

/// Starts `casarray serve --config FILE`.
pub fn spawn_array(config: &Path) -> (Proc, ArrayAddrs) {
    spawn_array_with(config, &[], None)
}

/// Starts `casarray [ARGS] serve --config FILE`, its stderr (the logs) in
/// `log` when given.
pub fn spawn_array_with(config: &Path, args: &[&str], log: Option<&Path>) -> (Proc, ArrayAddrs) {
    let stderr = match log {
        Some(path) => Stdio::from(std::fs::File::create(path).unwrap()),
        None => Stdio::inherit(),
    };
    let mut child = Command::new(BIN)
        .args(args)
        .args(["serve", "--config"])
        .arg(config)
        .env(
            "RUST_LOG",
            std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(stderr)
        .spawn()
        .expect("spawn casarray serve");
    let stdout = child.stdout.take().unwrap();
    let addrs = wait_line("casarray", stdout, ready_line);
    (
        Proc {
            child,
            name: "casarray".into(),
        },
        addrs,
    )
}

/// The addresses of `casarray serving https://A (admin http://B[, redirect
/// http://C][, smtp D])`, the readiness line.
pub fn ready_line(l: &str) -> Option<ArrayAddrs> {
    let rest = l.strip_prefix("casarray serving https://")?;
    let (https, rest) = rest.split_once(' ')?;
    let inside = rest.strip_prefix("(admin http://")?.strip_suffix(')')?;
    let mut parts = inside.split(", ");
    let admin = parts.next()?;
    let (mut redirect, mut smtp) = (None, None);
    for part in parts {
        match part.split_once(' ')? {
            ("redirect", a) => redirect = Some(a.strip_prefix("http://")?.parse().ok()?),
            ("smtp", a) => smtp = Some(a.parse().ok()?),
            _ => return None,
        }
    }
    Some(ArrayAddrs {
        https: https.parse().ok()?,
        admin: admin.parse().ok()?,
        redirect,
        smtp,
    })
}

/// A member line for a config.
pub fn member_toml(name: &str, addr: SocketAddr) -> String {
    format!(
        "[[member]]\nname = \"{name}\"\naddress = \"{addr}\"\nfqdn = \"{}.lab.local\"\n\n",
        name.to_ascii_lowercase()
    )
}

/// A config with fast health checks for tests.
pub fn config_toml(certs: &TestCerts, members: &[(&str, SocketAddr)], extra: &str) -> String {
    let mut s = format!(
        r#"[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"
site = "Default-First-Site-Name"
public_names = ["mail.lab.com", "autodiscover.lab.com"]

[listen]
https = "127.0.0.1:0"
admin = "127.0.0.1:0"

[tls]
cert = "{}"
key = "{}"

[health]
interval = "200ms"
timeout = "150ms"
rise = 2
fall = 2

"#,
        certs.cert.display(),
        certs.key.display()
    );
    for (name, addr) in members {
        s.push_str(&member_toml(name, *addr));
    }
    s.push_str(extra);
    s
}

/// A TLS client trusting the test CA.
#[derive(Clone)]
pub struct Client {
    pub addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    pub sni: String,
}

pub type Resp = Response<Bytes>;

impl Client {
    pub fn new(addr: SocketAddr, ca_pem: &str, alpn: &[&[u8]]) -> Self {
        use rustls::pki_types::{pem::PemObject, CertificateDer};
        let mut roots = rustls::RootCertStore::empty();
        for c in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(c.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Client {
            addr,
            tls: Arc::new(cfg),
            sni: FQDN.to_owned(),
        }
    }

    /// Without TLS session resumption: every handshake is full and shows
    /// the certificate served now.
    pub fn without_resumption(mut self) -> Self {
        let mut cfg = (*self.tls).clone();
        cfg.resumption = rustls::client::Resumption::disabled();
        self.tls = Arc::new(cfg);
        self
    }

    pub fn h1(addr: SocketAddr, ca_pem: &str) -> Self {
        Self::new(addr, ca_pem, &[b"http/1.1"])
    }

    /// A TLS stream to the array.
    pub async fn tls(&self) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.tls));
        let name = ServerName::try_from(self.sni.clone()).unwrap();
        connector.connect(name, tcp).await
    }

    /// An HTTP/1.1 connection (keep-alive) to the array.
    pub async fn connect(&self) -> anyhow::Result<H1> {
        let io = hyper_util::rt::TokioIo::new(self.tls().await?);
        let (sender, conn) = hyper::client::conn::http1::handshake(io).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Ok(H1 { sender })
    }

    /// One request on a new connection.
    pub async fn send(&self, req: Request<Full<Bytes>>) -> anyhow::Result<Resp> {
        self.connect().await?.send(req).await
    }

    pub async fn get(&self, path: &str) -> anyhow::Result<Resp> {
        self.send(get(path)).await
    }
}

/// A keep-alive HTTP/1.1 connection.
pub struct H1 {
    pub sender: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl H1 {
    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> anyhow::Result<Resp> {
        self.sender.ready().await?;
        let resp = self.sender.send_request(req).await?;
        let (parts, body) = resp.into_parts();
        let body = tokio::time::timeout(Duration::from_secs(60), body.collect())
            .await??
            .to_bytes();
        Ok(Response::from_parts(parts, body))
    }
}

/// A GET with the array's Host.
pub fn get(path: &str) -> Request<Full<Bytes>> {
    Request::builder()
        .uri(path)
        .header("host", FQDN)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

/// A request with a body.
pub fn request(method: &str, path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("host", FQDN)
        .body(Full::new(body.into()))
        .unwrap()
}

/// A request with the array's Host, extra headers and a body.
pub fn build(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Request<Full<Bytes>> {
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", FQDN);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(Full::new(body.into())).expect("request")
}

/// A response body as text.
pub fn text(resp: &Resp) -> String {
    String::from_utf8_lossy(resp.body()).into_owned()
}

/// A response header as text ("" when absent).
pub fn header(resp: &Resp, name: &str) -> String {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

/// Plain HTTP/1.1 GET to a plain-HTTP address (admin API, mock servers).
pub async fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    http_send(addr, "GET", path, "", &[]).await
}

pub async fn http_send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<(u16, String)> {
    let tcp = TcpStream::connect(addr).await?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut b = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = sender
        .send_request(b.body(Full::new(Bytes::from(body.to_owned())))?)
        .await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// The admin API's `/api/members`.
pub async fn members(admin: SocketAddr) -> serde_json::Value {
    let (_, body) = http_get(admin, "/api/members").await.unwrap();
    serde_json::from_str(&body).unwrap()
}

/// Polls until `pred` holds, at most `limit`; panics with `what` otherwise.
pub async fn wait_until<F, Fut>(what: &str, limit: Duration, mut pred: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if pred().await {
            return;
        }
        if Instant::now() > deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Whether member `name` is healthy for `service` per the admin API.
pub async fn member_up(admin: SocketAddr, name: &str, service: &str) -> bool {
    let v = members(admin).await;
    v.as_array()
        .into_iter()
        .flatten()
        .find(|m| m["name"] == name)
        .map(|m| m["services"][service] == true)
        .unwrap_or(false)
}

/// A metric's value from `/metrics` (sum over series whose labels contain
/// every `labels` pair).
pub async fn metric(admin: SocketAddr, name: &str, labels: &[(&str, &str)]) -> f64 {
    let (_, text) = http_get(admin, "/metrics").await.unwrap();
    let mut total = 0.0;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, l) = match series.split_once('{') {
            Some((n, l)) => (n, l),
            None => (series, ""),
        };
        if n != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        {
            total += value.parse::<f64>().unwrap_or(0.0);
        }
    }
    total
}

/// Resident memory of a process, in KiB (Linux).
pub fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A temporary directory kept when the test fails (its path is printed).
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("casarray-test-")
        .tempdir()
        .unwrap()
}

/// Starts `casarray mock-server` on an ephemeral port, its log (stderr) in
/// `log`, at level `TEST_RUST_LOG` (default `info`).
pub fn spawn_mock_logged(
    name: &str,
    store: &Path,
    extra: &[&str],
    log: &Path,
) -> (Proc, SocketAddr) {
    let (proc, addr, _) = spawn_mock_hub(name, store, extra, log);
    (proc, addr)
}

/// [`spawn_mock_logged`], and the hub transport's SMTP address when
/// `extra` has `--smtp` (the `mock-server NAME smtp on ADDR` line comes
/// before the readiness line).
pub fn spawn_mock_hub(
    name: &str,
    store: &Path,
    extra: &[&str],
    log: &Path,
) -> (Proc, SocketAddr, Option<SocketAddr>) {
    let stderr = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .unwrap();
    let mut child = Command::new(BIN)
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
        .env(
            "RUST_LOG",
            std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("spawn mock-server");
    let stdout = child.stdout.take().unwrap();
    let smtp = std::sync::Mutex::new(None);
    let addr = wait_line(name, stdout, |l| {
        if let Some(a) = l.split(" smtp on ").nth(1) {
            *smtp.lock().unwrap() = a.trim().parse::<SocketAddr>().ok();
        }
        l.split("listening on ")
            .nth(1)
            .and_then(|a| a.trim().parse().ok())
    });
    let smtp = smtp.into_inner().unwrap();
    (
        Proc {
            child,
            name: name.to_owned(),
        },
        addr,
        smtp,
    )
}

/// A plain HTTP/1.1 answer with its headers.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    /// A header as text ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }
}

/// One plain HTTP/1.1 request on a new connection, bounded by `limit`.
pub async fn http_call(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
    limit: Duration,
) -> anyhow::Result<Reply> {
    let exchange = async {
        let tcp = TcpStream::connect(addr).await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut b = Request::builder()
            .method(method)
            .uri(path)
            .header("host", addr.to_string());
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let resp = sender
            .send_request(b.body(Full::new(Bytes::from(body.to_owned())))?)
            .await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, anyhow::Error>(Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        })
    };
    tokio::time::timeout(limit, exchange)
        .await
        .map_err(|_| anyhow::anyhow!("no answer from {addr} within {limit:?}"))?
}
