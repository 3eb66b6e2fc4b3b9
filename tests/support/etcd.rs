//! A real etcd (Debian's `etcd-server`) for the cluster tests: one node or
//! a cluster of three, on loopback ports, data in a temporary directory.
//! Readiness is etcd's own `/health` answering `"health":"true"`.
//!
//! Without the `etcd` binary the tests skip, unless
//! `CASARRAY_REQUIRE_ETCD=1` (CI sets it), when they fail.

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{http_get, Proc};

/// Whether etcd can be run here; panics when it cannot and
/// `CASARRAY_REQUIRE_ETCD=1`.
pub fn available() -> bool {
    let found = Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        if std::env::var("CASARRAY_REQUIRE_ETCD").is_ok_and(|v| v == "1") {
            panic!("etcd is not installed and CASARRAY_REQUIRE_ETCD=1 (Debian: apt-get install etcd-server)");
        }
        eprintln!("SKIPPED: etcd is not installed (Debian: apt-get install etcd-server)");
    }
    found
}

/// One node of the etcd cluster.
pub struct Node {
    pub name: String,
    pub client: SocketAddr,
    pub peer: SocketAddr,
    data: PathBuf,
    log: PathBuf,
    proc: Option<Proc>,
}

/// An etcd cluster of one or more nodes.
pub struct Etcd {
    pub nodes: Vec<Node>,
    initial_cluster: String,
}

/// `n` free loopback addresses, all held until every one is chosen so
/// none is handed out twice.
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let held: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    held.iter().map(|l| l.local_addr().unwrap()).collect()
}

impl Etcd {
    /// Starts `n` nodes with data under `dir` and waits until each is
    /// healthy (a leader elected).
    pub async fn start(dir: &Path, n: usize) -> Etcd {
        let addrs = free_addrs(2 * n);
        let nodes: Vec<Node> = (0..n)
            .map(|i| Node {
                name: format!("etcd{i}"),
                client: addrs[2 * i],
                peer: addrs[2 * i + 1],
                data: dir.join(format!("etcd{i}.data")),
                log: dir.join(format!("etcd{i}.log")),
                proc: None,
            })
            .collect();
        let initial_cluster = nodes
            .iter()
            .map(|n| format!("{}=http://{}", n.name, n.peer))
            .collect::<Vec<_>>()
            .join(",");
        let mut etcd = Etcd {
            nodes,
            initial_cluster,
        };
        for i in 0..n {
            etcd.spawn(i);
        }
        for i in 0..n {
            etcd.wait_healthy(i).await;
        }
        etcd
    }

    fn spawn(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap();
        let child = Command::new("etcd")
            .arg("--name")
            .arg(&node.name)
            .arg("--data-dir")
            .arg(&node.data)
            .arg("--listen-client-urls")
            .arg(format!("http://{}", node.client))
            .arg("--advertise-client-urls")
            .arg(format!("http://{}", node.client))
            .arg("--listen-peer-urls")
            .arg(format!("http://{}", node.peer))
            .arg("--initial-advertise-peer-urls")
            .arg(format!("http://{}", node.peer))
            .arg("--initial-cluster")
            .arg(&self.initial_cluster)
            .arg("--initial-cluster-token")
            .arg("casarray-test")
            .arg("--initial-cluster-state")
            .arg("new")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn etcd");
        node.proc = Some(Proc {
            child,
            name: node.name.clone(),
        });
    }

    /// Waits (at most 60 s) until node `i` says it is healthy.
    pub async fn wait_healthy(&self, i: usize) {
        let node = &self.nodes[i];
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok((200, body)) = http_get(node.client, "/health").await {
                if body.contains("\"health\":\"true\"") {
                    return;
                }
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(&node.log).unwrap_or_default();
                panic!(
                    "{}: not healthy within 60 s; its log ends:\n{}",
                    node.name,
                    tail(&log, 30)
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The client endpoints as a TOML array: `["http://A", "http://B"]`.
    pub fn toml_endpoints(&self) -> String {
        let list: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("\"http://{}\"", n.client))
            .collect();
        format!("[{}]", list.join(", "))
    }

    /// kill -9 node `i`.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.nodes[i].proc.take() {
            p.kill9();
        }
    }

    /// Starts node `i` again (same ports, same data) and waits until it is
    /// healthy.
    pub async fn restart(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(i).await;
    }
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
