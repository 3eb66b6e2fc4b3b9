//! Requests through the whole array, in process, over real loopback
//! sockets: HTTPS through the array against plain HTTP straight to a
//! backend (the baseline), 1 KiB and 1 MiB bodies, keep-alive and a new
//! connection per request (resumed and full TLS handshakes, P-256 and
//! RSA-2048 certificates).
//!
//! Everything (clients, array, two backends) shares one 2-thread tokio
//! runtime, so the figures are for comparing runs and cases with each
//! other; `benches/load.sh` compares with HAProxy and nginx.
//!
//! Run: `cargo bench --bench proxy -- --warm-up-time 1 --measurement-time 3`
//! (add a filter such as `keep_alive` to run one group).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, Throughput};
use tokio::runtime::Runtime;
use tokio::sync::Mutex;

use support::array;
use support::backend::{Backend, BIG, SMALL};
use support::certs::{self, KeyType};
use support::client::{tls_config, Conn, Target};

/// Keep-alive connections the 1 KiB case spreads its requests over.
const SMALL_CONNS: usize = 32;
/// Keep-alive connections of the 1 MiB case.
const BIG_CONNS: usize = 4;
/// Clients opening connections at once in the new-connection cases.
const NEW_CONN_CLIENTS: usize = 8;

/// The backends and arrays every case uses.
struct Env {
    _dir: tempfile::TempDir,
    _backends: [Backend; 2],
    arrays: Vec<casarray::serve::Server>,
    /// The array with a P-256 certificate, resuming client sessions.
    tls_p256: Target,
    /// The same array, every handshake a full one.
    tls_p256_full: Target,
    /// An array with an RSA-2048 certificate, every handshake a full one.
    tls_rsa_full: Target,
    /// Plain HTTP straight to the first backend.
    direct: Target,
}

impl Env {
    async fn start() -> Env {
        let dir = tempfile::tempdir().expect("temp dir");
        let backends = [Backend::start().await, Backend::start().await];
        let members = [backends[0].addr, backends[1].addr];
        let mut arrays = Vec::new();
        let mut targets = Vec::new();
        for key_type in [KeyType::P256, KeyType::Rsa2048] {
            let sub = dir.path().join(key_type.label());
            std::fs::create_dir_all(&sub).expect("mkdir");
            let c = certs::make(&sub, "mail.lab.com", key_type);
            let text = array::config_text(&c, &members, "");
            let server = array::start(&sub, &text, &c.ca_pem).await;
            targets.push((server.bound.https, c.ca_pem));
            arrays.push(server);
        }
        let (p256, p256_ca) = &targets[0];
        let (rsa, rsa_ca) = &targets[1];
        Env {
            tls_p256: Target::Tls {
                addr: *p256,
                config: tls_config(p256_ca, true),
            },
            tls_p256_full: Target::Tls {
                addr: *p256,
                config: tls_config(p256_ca, false),
            },
            tls_rsa_full: Target::Tls {
                addr: *rsa,
                config: tls_config(rsa_ca, false),
            },
            direct: Target::Plain { addr: members[0] },
            _dir: dir,
            _backends: backends,
            arrays,
        }
    }

    async fn stop(self) {
        for server in self.arrays {
            let _ = server.shutdown().await;
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = rt.block_on(Env::start());
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let mut g = c.benchmark_group("keep_alive_1KiB");
    g.throughput(Throughput::Elements(1));
    for (name, target) in [("array_tls", &env.tls_p256), ("direct_plain", &env.direct)] {
        keep_alive(&mut g, &rt, name, target, "/EWS/small", SMALL, SMALL_CONNS);
    }
    g.finish();

    let mut g = c.benchmark_group("keep_alive_1MiB");
    g.throughput(Throughput::Bytes(BIG as u64)).sample_size(20);
    for (name, target) in [("array_tls", &env.tls_p256), ("direct_plain", &env.direct)] {
        keep_alive(&mut g, &rt, name, target, "/EWS/1m", BIG, BIG_CONNS);
    }
    g.finish();

    let mut g = c.benchmark_group("new_connection_1KiB");
    g.throughput(Throughput::Elements(1)).sample_size(20);
    for (name, target) in [
        ("array_tls_resumed_p256", &env.tls_p256),
        ("array_tls_full_p256", &env.tls_p256_full),
        ("array_tls_full_rsa2048", &env.tls_rsa_full),
        ("direct_plain", &env.direct),
    ] {
        new_connection(&mut g, &rt, name, target);
    }
    g.finish();

    c.final_summary();
    rt.block_on(env.stop());
}

/// `iters` GETs of `path` spread over `conns` keep-alive connections,
/// opened once before the measurement.
fn keep_alive(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    name: &str,
    target: &Target,
    path: &'static str,
    expect: usize,
    conns: usize,
) {
    let pool: Vec<Arc<Mutex<Conn>>> = rt.block_on(async {
        let mut pool = Vec::with_capacity(conns);
        for _ in 0..conns {
            pool.push(Arc::new(Mutex::new(target.connect().await)));
        }
        pool
    });
    g.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let pool = pool.clone();
            let target = target.clone();
            async move {
                let started = Instant::now();
                let mut tasks = Vec::with_capacity(pool.len());
                for (i, conn) in pool.iter().enumerate() {
                    let n = share(iters, pool.len(), i);
                    let conn = Arc::clone(conn);
                    let target = target.clone();
                    tasks.push(tokio::spawn(async move {
                        let mut conn = conn.lock().await;
                        for _ in 0..n {
                            get_checked(&mut conn, &target, path, expect).await;
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("client task");
                }
                started.elapsed()
            }
        });
    });
}

/// `iters` requests, each on a new connection closed by the server after
/// the answer (`Connection: close`), from a few clients at once.
fn new_connection(
    g: &mut BenchmarkGroup<'_, criterion::measurement::WallTime>,
    rt: &Runtime,
    name: &str,
    target: &Target,
) {
    g.bench_function(name, |b| {
        b.to_async(rt).iter_custom(|iters| {
            let target = target.clone();
            async move {
                let started = Instant::now();
                let mut tasks = Vec::with_capacity(NEW_CONN_CLIENTS);
                for i in 0..NEW_CONN_CLIENTS {
                    let n = share(iters, NEW_CONN_CLIENTS, i);
                    let target = target.clone();
                    tasks.push(tokio::spawn(async move {
                        for _ in 0..n {
                            let mut conn = target.connect().await;
                            let got = conn.get_close("/EWS/small").await;
                            assert_eq!(got, Some(SMALL), "bad answer on a new connection");
                        }
                    }));
                }
                for t in tasks {
                    t.await.expect("client task");
                }
                started.elapsed()
            }
        });
    });
}

/// One GET that must return `expect` bytes; a connection the server closed
/// meanwhile is opened again once.
async fn get_checked(conn: &mut Conn, target: &Target, path: &str, expect: usize) {
    if conn.get(path).await == Some(expect) {
        return;
    }
    *conn = target.connect().await;
    assert_eq!(conn.get(path).await, Some(expect), "bad answer for {path}");
}

/// Client `i`'s share of `iters` requests among `clients`.
fn share(iters: u64, clients: usize, i: usize) -> u64 {
    let clients = clients as u64;
    iters / clients + u64::from((i as u64) < iters % clients)
}
