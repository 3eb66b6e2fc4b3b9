//! Real clients log on with NTLMv2 and Negotiate (issue 19), black-box:
//! two mock mailbox servers and `casarray serve` on 127.0.0.1, real TLS,
//! and real client programs.
//!
//! - curl `--ntlm` over HTTP/1.1, with the user typed `alice`,
//!   `alice@lab.com` and `LAB\alice`; every request on the logged-on
//!   connection is served as that user (`X-Mock-User`).
//! - curl `--ntlm --http2`: the array refuses NTLM on HTTP/2 with a
//!   stream reset HTTP_1_1_REQUIRED and curl logs on over HTTP/1.1.
//! - A wrong password gets `401`.
//! - Two users logging on at the same time, on two connections, each only
//!   ever see their own identity.
//! - curl `--negotiate` through GSS-API with gss-ntlmssp (SPNEGO wrapping
//!   NTLM). Without gss-ntlmssp the test is skipped, unless
//!   `CASARRAY_REQUIRE_GSS_NTLMSSP=1` (CI) makes it fail.
//! - Python: requests-ntlm (NTLM) and pyspnego (Negotiate) from PyPI, run
//!   by `tests/clients/ntlm_client.py` with the interpreter in
//!   `CASARRAY_PYTHON` (default `/opt/casarray-venv/bin/python3`, the venv
//!   `.ci/run` makes, else `python3`). Without the libraries the test is
//!   skipped, unless `CASARRAY_REQUIRE_PYTHON_NTLM=1` (CI) makes it fail.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use support::*;

const ALICE: (&str, &str) = ("alice@lab.com", "Alice!lab1");
const BOB: (&str, &str) = ("bob@lab.com", "Bob!lab1");
/// The page an authenticated client asks for.
const EWS: &str = "/EWS/Exchange.asmx";
/// Every wait on the array or a member: 30 s.
const WAIT: Duration = Duration::from_secs(30);
/// What curl prints after each transfer.
const WRITE_OUT: &str = "%{http_code} %header{x-mock-user} %{http_version} %{num_connects}\\n";

/// Two mock servers and the array in front of them, both members up for
/// EWS.
struct Lab {
    dir: tempfile::TempDir,
    _mocks: Vec<(Proc, SocketAddr)>,
    _array: Proc,
    https: SocketAddr,
    ca_file: PathBuf,
}

async fn lab() -> Lab {
    let dir = tempdir();
    let certs = make_certs(dir.path());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &certs.ca_pem).unwrap();
    let store = dir.path().join("store");
    std::fs::create_dir_all(&store).unwrap();
    let mocks: Vec<_> = ["EX1", "EX2"]
        .iter()
        .map(|n| spawn_mock(n, &store, &[]))
        .collect();
    let list = [("EX1", mocks[0].1), ("EX2", mocks[1].1)];
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, config_toml(&certs, &list, "")).unwrap();
    let (array, addrs) = spawn_array(&config);
    wait_until("both members up for EWS", WAIT, || async {
        member_up(addrs.admin, "EX1", "ews").await && member_up(addrs.admin, "EX2", "ews").await
    })
    .await;
    Lab {
        dir,
        _mocks: mocks,
        _array: array,
        https: addrs.https,
        ca_file,
    }
}

impl Lab {
    fn url(&self, path: &str) -> String {
        format!("https://{FQDN}:{}{path}", self.https.port())
    }

    /// curl against the array (TLS checked against the lab CA, the name
    /// resolved to 127.0.0.1), fetching `count` times `path` on one
    /// command line (one connection, reused), bounded by 60 s.
    fn curl(&self, args: &[&str], env: &[(&str, &Path)], path: &str, count: usize) -> Output {
        let mut cmd = Command::new("curl");
        cmd.args(["-sS", "--max-time", "60", "--cacert"])
            .arg(&self.ca_file)
            .arg("--resolve")
            .arg(format!("{FQDN}:{}:127.0.0.1", self.https.port()))
            .args(["-w", WRITE_OUT])
            .args(args);
        for (k, v) in env {
            cmd.env(k, v);
        }
        for _ in 0..count {
            cmd.args(["-o", "/dev/null"]).arg(self.url(path));
        }
        cmd.output().expect("run curl")
    }
}

/// One line of curl's write-out.
#[derive(Debug, PartialEq, Eq)]
struct Transfer {
    code: String,
    user: String,
    version: String,
    connects: u32,
}

fn transfers(out: &Output) -> Vec<Transfer> {
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .map(|l| {
            let parts: Vec<&str> = l.split(' ').collect();
            assert_eq!(parts.len(), 4, "write-out line {l:?}");
            Transfer {
                code: parts[0].to_string(),
                user: parts[1].to_string(),
                version: parts[2].to_string(),
                connects: parts[3].parse().unwrap_or(0),
            }
        })
        .collect()
}

/// Asserts every transfer of `out` was `200` served to `address`.
fn assert_all_served_as(out: &Output, address: &str, count: usize, what: &str) -> Vec<Transfer> {
    let t = transfers(out);
    assert_eq!(
        t.len(),
        count,
        "{what}: {t:?}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for x in &t {
        assert_eq!(x.code, "200", "{what}: {t:?}");
        assert_eq!(x.user, address, "{what}: {t:?}");
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_ntlm_logs_on_over_http1_as_each_user_form() {
    let lab = lab().await;
    for user in ["alice", "alice@lab.com", "LAB\\alice", "ALICE@LAB.COM"] {
        let creds = format!("{user}:{}", ALICE.1);
        let out = lab.curl(&["--http1.1", "--ntlm", "-u", &creds], &[], EWS, 3);
        let t = assert_all_served_as(&out, ALICE.0, 3, user);
        let connects: u32 = t.iter().map(|x| x.connects).sum();
        assert_eq!(connects, 1, "{user}: one connection, logged on once: {t:?}");
        assert!(t.iter().all(|x| x.version == "1.1"), "{t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_ntlm_over_http2_falls_back_to_http1() {
    let lab = lab().await;
    let creds = format!("{}:{}", BOB.0, BOB.1);
    let out = lab.curl(&["--http2", "--ntlm", "-v", "-u", &creds], &[], EWS, 2);
    let t = assert_all_served_as(&out, BOB.0, 2, "--http2");
    assert!(
        t.iter().all(|x| x.version == "1.1"),
        "the login ends on HTTP/1.1: {t:?}"
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("HTTP_1_1_REQUIRED") || log.contains("Downgrades to HTTP/1.1"),
        "curl saw the refusal on HTTP/2: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_refused() {
    let lab = lab().await;
    for (user, password) in [
        ("alice", "Alice!lab2"),
        ("LAB\\bob", ALICE.1),
        ("nobody", "x"),
    ] {
        let creds = format!("{user}:{password}");
        let out = lab.curl(&["--http1.1", "--ntlm", "-u", &creds], &[], EWS, 1);
        let t = transfers(&out);
        assert_eq!(t.len(), 1, "{user}: {out:?}");
        assert_eq!(t[0].code, "401", "{user}: {t:?}");
        assert_eq!(t[0].user, "", "{user}: no identity: {t:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_at_once_never_see_each_other() {
    let lab = lab().await;
    const N: usize = 25;
    for round in 0..3 {
        let (alice, bob) = std::thread::scope(|s| {
            let a = s.spawn(|| {
                let creds = format!("LAB\\alice:{}", ALICE.1);
                lab.curl(&["--http1.1", "--ntlm", "-u", &creds], &[], EWS, N)
            });
            let b = s.spawn(|| {
                let creds = format!("bob:{}", BOB.1);
                lab.curl(&["--http1.1", "--ntlm", "-u", &creds], &[], EWS, N)
            });
            (a.join().unwrap(), b.join().unwrap())
        });
        assert_all_served_as(&alice, ALICE.0, N, &format!("alice, round {round}"));
        assert_all_served_as(&bob, BOB.0, N, &format!("bob, round {round}"));
    }
}

/// Whether gss-ntlmssp is installed as a GSS-API mechanism.
fn gss_ntlmssp_installed() -> bool {
    std::fs::read_dir("/etc/gss/mech.d")
        .map(|d| {
            d.flatten().any(|e| {
                std::fs::read_to_string(e.path()).is_ok_and(|t| {
                    t.lines()
                        .any(|l| !l.trim_start().starts_with('#') && l.contains("gssntlmssp"))
                })
            })
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiate_logs_on_through_gss_ntlmssp() {
    if !gss_ntlmssp_installed() {
        assert!(
            std::env::var_os("CASARRAY_REQUIRE_GSS_NTLMSSP").is_none(),
            "CASARRAY_REQUIRE_GSS_NTLMSSP is set but gss-ntlmssp is not installed"
        );
        eprintln!("skipped: gss-ntlmssp is not installed (Debian package gss-ntlmssp)");
        return;
    }
    let lab = lab().await;
    // gss-ntlmssp takes the credentials from this file: DOMAIN:USER:PASSWORD.
    let creds = lab.dir.path().join("ntlm_user_file");
    std::fs::write(&creds, format!("LAB:alice:{}\n", ALICE.1)).unwrap();
    let krb5 = lab.dir.path().join("no-krb5.conf");
    std::fs::write(&krb5, "").unwrap();
    let env: [(&str, &Path); 2] = [("NTLM_USER_FILE", &creds), ("KRB5_CONFIG", &krb5)];
    let out = lab.curl(&["--http1.1", "--negotiate", "-u", ":", "-v"], &env, EWS, 3);
    assert_all_served_as(&out, ALICE.0, 3, "curl --negotiate");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("Authorization: Negotiate"), "{log}");

    // A wrong password in the file: refused.
    std::fs::write(&creds, "LAB:alice:wrong\n").unwrap();
    let out = lab.curl(&["--http1.1", "--negotiate", "-u", ":"], &env, EWS, 1);
    let t = transfers(&out);
    assert_eq!(t.len(), 1, "{out:?}");
    assert_eq!(t[0].code, "401", "{t:?}");
}

/// The Python interpreter with the NTLM libraries.
fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("CASARRAY_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = PathBuf::from("/opt/casarray-venv/bin/python3");
    if venv.exists() {
        venv
    } else {
        PathBuf::from("python3")
    }
}

/// Runs the Python client; `None` when its library is missing (and CI
/// does not require it).
fn python_client(
    lab: &Lab,
    mode: &str,
    (user, password): (&str, &str),
    count: usize,
) -> Option<serde_json::Value> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/ntlm_client.py");
    let out = Command::new(python())
        .arg(script)
        .args([mode, &lab.https.to_string()])
        .arg(&lab.ca_file)
        .args([user, password, EWS, &count.to_string()])
        .output()
        .expect("run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) {
        assert!(
            std::env::var_os("CASARRAY_REQUIRE_PYTHON_NTLM").is_none(),
            "CASARRAY_REQUIRE_PYTHON_NTLM is set but the library is missing: {stdout}"
        );
        eprintln!("skipped {mode}: {stdout}");
        return None;
    }
    assert!(out.status.success(), "{mode}: {stdout}\n{stderr}");
    Some(serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}")))
}

fn assert_results(v: &serde_json::Value, status: u64, user: Option<&str>, count: usize) {
    let results = v["results"].as_array().expect("results");
    assert_eq!(results.len(), count, "{v}");
    for r in results {
        assert_eq!(r["status"], status, "{v}");
        assert_eq!(r["user"].as_str(), user, "{v}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_requests_ntlm_logs_on() {
    let lab = lab().await;
    for user in ["LAB\\alice", "alice@lab.com"] {
        let Some(v) = python_client(&lab, "requests-ntlm", (user, ALICE.1), 3) else {
            return;
        };
        assert_results(&v, 200, Some(ALICE.0), 3);
    }
    let v = python_client(&lab, "requests-ntlm", ("bob", "nope"), 1).unwrap();
    assert_results(&v, 401, None, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_pyspnego_negotiate_logs_on() {
    let lab = lab().await;
    let Some(v) = python_client(&lab, "pyspnego", ("LAB\\bob", BOB.1), 3) else {
        return;
    };
    assert_results(&v, 200, Some(BOB.0), 3);
    assert_eq!(v["complete"], true, "{v}");
    assert_eq!(v["protocol"], "ntlm", "{v}");
    let v = python_client(&lab, "pyspnego", ("LAB\\bob", "nope"), 1).unwrap();
    assert_results(&v, 401, None, 1);
}
