//! A database availability group of real `casarray mock-server --dag`
//! processes on 127.0.0.1, for the DAG's own tests (tests/dag.rs) and the
//! array's mailbox routing (tests/routing.rs): the servers, their views.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use super::{http_call, spawn_mock_hub, wait_until, Proc};

/// Bound on a DAG coming up with every database mounted and every copy
/// caught up: 60 s.
pub const SETTLE: Duration = Duration::from_secs(60);
/// Bound on one request: 30 s.
pub const CALL: Duration = Duration::from_secs(30);

// ---- the DAG under test --------------------------------------------------

pub struct Server {
    pub proc: Option<Proc>,
    pub addr: SocketAddr,
    pub log: PathBuf,
    pub store: PathBuf,
}

pub struct TestDag {
    tmp: tempfile::TempDir,
    pub definition: PathBuf,
    pub key: PathBuf,
    servers: BTreeMap<String, Server>,
}

impl TestDag {
    /// A `dag.toml` with `members` and `databases` (each with its copies
    /// by activation preference).
    pub fn new(members: &[&str], databases: &[(&str, &[&str])]) -> TestDag {
        let tmp = super::tempdir();
        let mut text = String::from("name = \"DAGT\"\nfailure_timeout = \"3s\"\n\n");
        for m in members {
            text.push_str(&format!("[[member]]\nname = \"{m}\"\n\n"));
        }
        for (db, copies) in databases {
            text.push_str(&format!("[[database]]\nname = \"{db}\"\n"));
            for (i, server) in copies.iter().enumerate() {
                text.push_str(&format!(
                    "[[database.copy]]\nserver = \"{server}\"\nactivation_preference = {}\n",
                    i + 1
                ));
            }
            text.push('\n');
        }
        let definition = tmp.path().join("dag.toml");
        std::fs::write(&definition, text).unwrap();
        let key = tmp.path().join("shared.key");
        std::fs::write(&key, rcgen::KeyPair::generate().unwrap().serialize_pem()).unwrap();
        TestDag {
            tmp,
            definition,
            key,
            servers: BTreeMap::new(),
        }
    }

    /// The usual two: DB01 on EX1 then EX2, DB02 on EX2 then EX1.
    pub fn two() -> TestDag {
        TestDag::new(
            &["EX1", "EX2"],
            &[("DB01", &["EX1", "EX2"]), ("DB02", &["EX2", "EX1"])],
        )
    }

    pub fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// Starts (or restarts, on the same store) server `name`.
    pub fn start(&mut self, name: &str) {
        self.start_with(name, &[]);
    }

    /// [`TestDag::start`] with more `mock-server` flags; the hub's SMTP
    /// address when they have `--smtp`.
    pub fn start_with(&mut self, name: &str, extra: &[&str]) -> Option<SocketAddr> {
        let store = self.dir().join("servers").join(name);
        let log = self.dir().join(format!("{name}.log"));
        let mut args = vec![
            "--dag",
            self.definition.to_str().unwrap(),
            "--shared-key",
            self.key.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let (proc, addr, smtp) = spawn_mock_hub(name, &store, &args, &log);
        self.servers.insert(
            name.to_string(),
            Server {
                proc: Some(proc),
                addr,
                log,
                store,
            },
        );
        smtp
    }

    pub fn server(&self, name: &str) -> &Server {
        self.servers
            .get(name)
            .unwrap_or_else(|| panic!("no server {name}"))
    }

    pub fn addr(&self, name: &str) -> SocketAddr {
        self.server(name).addr
    }

    pub fn pid(&self, name: &str) -> i32 {
        self.server(name).proc.as_ref().expect("running").pid()
    }

    pub fn kill9(&mut self, name: &str) {
        if let Some(mut p) = self.servers.get_mut(name).and_then(|s| s.proc.take()) {
            p.kill9();
        }
    }

    pub fn signal(&self, name: &str, sig: i32) {
        // SAFETY: kill(2) on a process this test started.
        unsafe {
            libc::kill(self.pid(name), sig);
        }
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(&self.server(name).log).unwrap_or_default()
    }

    /// The file of `server`'s copy of `database`.
    pub fn copy_file(&self, server: &str, database: &str) -> PathBuf {
        self.server(server)
            .store
            .join(database)
            .join(format!("{database}.sqlite"))
    }

    pub fn names(&self) -> Vec<String> {
        self.servers
            .iter()
            .filter(|(_, s)| s.proc.is_some())
            .map(|(n, _)| n.clone())
            .collect()
    }
}

impl Drop for TestDag {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // What the servers said, to see why.
            for (name, s) in &self.servers {
                let log = std::fs::read_to_string(&s.log).unwrap_or_default();
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(60)..];
                eprintln!(
                    "---- {name} log (last {} lines) ----\n{}",
                    tail.len(),
                    tail.join("\n")
                );
            }
            if let Ok(state) = std::fs::read_to_string(self.dir().join("dag-state.json")) {
                eprintln!("---- dag-state.json ----\n{state}");
            }
        }
        for s in self.servers.values_mut() {
            if let Some(p) = &s.proc {
                // A stopped process must run again to die cleanly.
                p.signal(libc::SIGCONT);
            }
            s.proc.take();
        }
    }
}

// ---- views ---------------------------------------------------------------

/// A server's `/mock/dag/status`, if it answers within `limit`.
pub async fn status_within(addr: SocketAddr, limit: Duration) -> Option<Value> {
    let r = http_call(addr, "GET", "/mock/dag/status", &[], "", limit)
        .await
        .ok()?;
    (r.status == 200)
        .then(|| serde_json::from_str(&r.body).ok())
        .flatten()
}

pub async fn status(addr: SocketAddr) -> Value {
    status_within(addr, CALL)
        .await
        .unwrap_or_else(|| panic!("no status from {addr}"))
}

pub fn db<'a>(view: &'a Value, name: &str) -> &'a Value {
    view["databases"]
        .as_array()
        .and_then(|dbs| dbs.iter().find(|d| d["name"] == name))
        .unwrap_or_else(|| panic!("no {name} in {view}"))
}

pub fn copy<'a>(view: &'a Value, database: &str, server: &str) -> &'a Value {
    db(view, database)["copies"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["server"] == server))
        .unwrap_or_else(|| panic!("no {database}\\{server} in {view}"))
}

/// Whether `view` shows every database mounted and every copy caught up.
pub fn settled(view: &Value) -> bool {
    view["databases"].as_array().is_some_and(|dbs| {
        dbs.iter().all(|d| {
            !d["mounted"].is_null()
                && d["copies"].as_array().is_some_and(|cs| {
                    cs.iter().all(|c| {
                        (c["status"] == "Mounted" || c["status"] == "Healthy")
                            && c["copy_queue"] == 0
                            && c["replay_queue"] == 0
                    })
                })
        })
    })
}

/// Waits until every running server's view is settled.
pub async fn wait_settled(dag: &TestDag) {
    let addrs: Vec<SocketAddr> = dag.names().iter().map(|n| dag.addr(n)).collect();
    wait_until(
        "every database mounted, every copy caught up",
        SETTLE,
        || {
            let addrs = addrs.clone();
            async move {
                for a in addrs {
                    match status_within(a, Duration::from_secs(5)).await {
                        Some(v) if settled(&v) => {}
                        _ => return false,
                    }
                }
                true
            }
        },
    )
    .await;
}
