//! Memory per idle keep-alive TLS connection: starts the array binary
//! (`casarray serve`) in front of an in-process backend, opens
//! `IDLE_CONNS` (default 10 000) TLS connections to it, sends one request
//! on each and keeps them open and idle, then reads the array's RSS from
//! `/proc/<pid>/status`.
//!
//! Reported: RSS after 100 warm-up connections, RSS with all of them, and
//! the difference divided by the connections added (KiB per connection).
//!
//! Run: `cargo bench --bench idle_conns` (`cargo test --benches` makes a
//! 300-connection smoke run). Environment: `IDLE_CONNS=N`
//! (default 10 000), `IDLE_WORKERS=N` for `[runtime] workers` (default 1),
//! `IDLE_REQUEST=0` to only handshake (no request on the connections),
//! `CASARRAY_BIN=path` to measure another binary or a wrapper (a heap
//! profiler) instead of the one cargo built. The open-file limit is raised
//! to its hard limit; it must allow `IDLE_CONNS` + 100 sockets in each
//! process.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::backend::{Backend, SMALL};
use support::certs::{self, KeyType};
use support::client::{tls_config, Conn, Target};

/// The binary cargo built with this bench.
const BIN: &str = env!("CARGO_BIN_EXE_casarray");
/// Connections opened before the baseline is read.
const WARM: usize = 100;
/// Handshakes in flight at once.
const CONCURRENT: usize = 64;

/// The array's process: stopped with SIGTERM when dropped (so that a heap
/// profiler wrapped around it can write its report), SIGKILL after 30 s.
struct Array {
    child: Child,
}

impl Drop for Array {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn main() {
    // `cargo bench -- FILTER` runs every bench binary: skip unless asked.
    let filters = filters(std::env::args().skip(1));
    if !filters.is_empty() && !filters.iter().any(|f| "idle_conns".contains(f.as_str())) {
        return;
    }
    // `cargo bench` passes `--bench`; under `cargo test --benches` this
    // is a quick smoke run.
    let bench = std::env::args().any(|a| a == "--bench");
    let n: usize = env_number("IDLE_CONNS", if bench { 10_000 } else { 300 }).max(WARM + 1);
    let workers = env_number("IDLE_WORKERS", 1);
    let request = env_number("IDLE_REQUEST", 1) != 0;
    let limit = raise_nofile();
    assert!(
        limit >= (n + 200) as u64,
        "open-file limit {limit} is too low for {n} connections"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(n, workers, request));
}

async fn run(n: usize, workers: usize, request: bool) {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = Backend::start().await;
    let c = certs::make(dir.path(), "mail.lab.com", KeyType::P256);
    let extra = format!(
        "[proxy]\nmax_connections = {}\n\n[runtime]\nworkers = {workers}\n",
        n + 1000
    );
    let text = support::array::config_text(&c, &[backend.addr], &extra);
    let path = dir.path().join("casarray.toml");
    std::fs::write(&path, text).expect("write config");
    let (array, addr) = spawn_array(&path);
    let pid = array.child.id();
    let target = Target::Tls {
        addr,
        config: tls_config(&c.ca_pem, true),
    };
    support::array::wait_ready(&target, Duration::from_secs(30)).await;

    let mut conns = open(&target, WARM, request).await;
    settle().await;
    let before = rss_kib(pid);
    conns.extend(open(&target, n - WARM, request).await);
    settle().await;
    let after = rss_kib(pid);
    let added = (n - WARM) as f64;
    let per = (after.saturating_sub(before)) as f64 / added;
    let what = if request {
        "one request each"
    } else {
        "no request"
    };
    println!("idle_conns: {n} idle keep-alive TLS connections (P-256, TLS 1.3, {what}), array workers = {workers}");
    println!("idle_conns: RSS with {WARM}: {before} KiB; with {n}: {after} KiB");
    println!(
        "idle_conns: {per:.1} KiB per idle connection (target: at most 20 KiB) [{}]",
        if per <= 20.0 { "met" } else { "missed" }
    );
    drop(array);
    drop(conns);
}

/// Opens `n` connections, `CONCURRENT` handshakes at a time, each with one
/// answered request when `request`, and returns them open.
async fn open(target: &Target, n: usize, request: bool) -> Vec<Conn> {
    let gate = Arc::new(tokio::sync::Semaphore::new(CONCURRENT));
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let gate = Arc::clone(&gate);
        let target = target.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.expect("semaphore");
            let mut conn = target.connect().await;
            if request {
                assert_eq!(conn.get("/EWS/small").await, Some(SMALL), "bad answer");
            }
            conn
        }));
    }
    let mut conns = Vec::with_capacity(n);
    for t in tasks {
        conns.push(t.await.expect("client task"));
    }
    conns
}

/// Gives the array a moment to finish what the last requests started.
async fn settle() {
    tokio::time::sleep(Duration::from_secs(2)).await;
}

/// Starts `casarray serve` and waits (at most 60 s) for its readiness line.
fn spawn_array(config: &std::path::Path) -> (Array, SocketAddr) {
    let bin = std::env::var("CASARRAY_BIN").unwrap_or_else(|_| BIN.to_owned());
    let mut child = Command::new(bin)
        .arg("serve")
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start casarray");
    let stdout = child.stdout.take().expect("stdout");
    let array = Array { child };
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let addr = line
                .strip_prefix("casarray serving https://")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|a| a.parse::<SocketAddr>().ok());
            if let Some(addr) = addr {
                let _ = tx.send(addr);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .expect("casarray did not report its address within 60 s");
    (array, addr)
}

/// VmRSS of `pid`, KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// Raises the soft open-file limit to the hard one; returns it.
fn raise_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write `lim`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        lim.rlim_cur = lim.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
    }
    lim.rlim_cur
}

/// The name filters among the arguments criterion benches take: what is
/// neither an option nor the value of one.
fn filters(args: impl Iterator<Item = String>) -> Vec<String> {
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--save-baseline",
        "--baseline",
        "--baseline-lenient",
        "--load-baseline",
        "--profile-time",
        "--output-format",
        "--plotting-backend",
        "--color",
        "--format",
        "--logfile",
    ];
    let mut out = Vec::new();
    let mut skip_value = false;
    for a in args {
        if skip_value {
            skip_value = false;
        } else if a.starts_with('-') {
            skip_value = WITH_VALUE.contains(&a.as_str());
        } else {
            out.push(a);
        }
    }
    out
}

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
