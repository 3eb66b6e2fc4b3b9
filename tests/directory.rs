//! `casarray array new|get` and `casarray database get|set` as a user runs
//! them: the binary against config files in a temporary directory.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_casarray");

const CONFIG: &str = r#"# Lab array: two servers, three databases.
[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"
site = "Default-First-Site-Name"

[listen]
https = "127.0.0.1:0"
admin = "ADMIN"

[tls]
cert = "certs/mail.lab.com.crt"   # exported from EX1
key = "certs/mail.lab.com.key"

[[member]]
name = "EX1"
address = "127.0.0.1:9001"
fqdn = "ex1.lab.local"

[[member]]
name = "EX2"
address = "127.0.0.1:9002"
fqdn = "ex2.lab.local"

# RpcClientAccessServer per database.
[[database]]
name = "DB01"
rpc_client_access_server = "ex1.lab.local"   # still the server itself

[[database]]
name = "DB02"

[[database]]
name    =   "DB03"        # aligned on purpose
rpc_client_access_server = "mail.lab.com"
"#;

struct Lab {
    dir: tempfile::TempDir,
    config: PathBuf,
}

/// A directory with placeholder certificate files (only their existence is
/// checked by these commands) and `CONFIG` with `admin` as admin address.
fn lab(admin: &str) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    for f in ["certs/mail.lab.com.crt", "certs/mail.lab.com.key"] {
        std::fs::write(dir.path().join(f), "placeholder\n").unwrap();
    }
    let config = dir.path().join("casarray.toml");
    std::fs::write(&config, CONFIG.replace("ADMIN", admin)).unwrap();
    Lab { dir, config }
}

impl Lab {
    fn text(&self) -> String {
        std::fs::read_to_string(&self.config).unwrap()
    }
}

fn run(args: &[&str], config: &Path) -> Output {
    let mut cmd = Command::new(BIN);
    let (first, rest) = args.split_at(2);
    cmd.args(first).arg("--config").arg(config).args(rest);
    cmd.output().unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_ok(o: &Output) {
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        stdout(o),
        stderr(o)
    );
}

/// A port nothing listens on.
fn closed_port() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().to_string()
}

#[test]
fn database_get_prints_the_table() {
    let lab = lab(&closed_port());
    let o = run(&["database", "get"], &lab.config);
    assert_ok(&o);
    assert_eq!(
        stdout(&o),
        "Name RpcClientAccessServer\n\
         ---- ---------------------\n\
         DB01 ex1.lab.local\n\
         DB02\n\
         DB03 mail.lab.com\n"
    );
}

#[test]
fn database_set_by_name_keeps_comments_and_layout() {
    let lab = lab("127.0.0.1:0");
    let before = lab.text();
    let o = run(
        &[
            "database",
            "set",
            "db01",
            "DB02",
            "--rpc-client-access-server",
            "mail.lab.com",
        ],
        &lab.config,
    );
    assert_ok(&o);
    assert_eq!(
        stdout(&o),
        "DB01: RpcClientAccessServer = mail.lab.com\nDB02: RpcClientAccessServer = mail.lab.com\n"
    );
    let want = before
        .replace(
            "rpc_client_access_server = \"ex1.lab.local\"   # still",
            "rpc_client_access_server = \"mail.lab.com\"   # still",
        )
        .replace(
            "name = \"DB02\"\n",
            "name = \"DB02\"\nrpc_client_access_server = \"mail.lab.com\"\n",
        );
    assert_eq!(lab.text(), want);
    let o = run(&["database", "get"], &lab.config);
    assert_ok(&o);
    assert!(stdout(&o).contains("DB02 mail.lab.com\n"), "{}", stdout(&o));
}

#[test]
fn database_set_all() {
    let lab = lab("127.0.0.1:0");
    let o = run(
        &[
            "database",
            "set",
            "--all",
            "--rpc-client-access-server",
            "outlook.lab.com",
        ],
        &lab.config,
    );
    assert_ok(&o);
    let o = run(&["database", "get"], &lab.config);
    assert_eq!(
        stdout(&o),
        "Name RpcClientAccessServer\n\
         ---- ---------------------\n\
         DB01 outlook.lab.com\n\
         DB02 outlook.lab.com\n\
         DB03 outlook.lab.com\n"
    );
    // Comments survive here too.
    let text = lab.text();
    assert!(
        text.contains("\"outlook.lab.com\"   # still the server itself"),
        "{text}"
    );
    assert!(
        text.contains("name    =   \"DB03\"        # aligned on purpose"),
        "{text}"
    );
    assert!(
        text.contains("# RpcClientAccessServer per database."),
        "{text}"
    );
    // Again: nothing changes, and it says so.
    let o = run(
        &[
            "database",
            "set",
            "--all",
            "--rpc-client-access-server",
            "outlook.lab.com",
        ],
        &lab.config,
    );
    assert_ok(&o);
    assert!(
        stdout(&o).contains("DB01: unchanged (already outlook.lab.com)"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn database_set_on_an_unknown_name_is_an_error() {
    let lab = lab("127.0.0.1:0");
    let before = lab.text();
    let o = run(
        &[
            "database",
            "set",
            "DB01",
            "DB09",
            "--rpc-client-access-server",
            "mail.lab.com",
        ],
        &lab.config,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("no database named \"DB09\" (databases: DB01, DB02, DB03)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(lab.text(), before);
}

#[test]
fn an_edit_that_makes_the_file_invalid_is_refused() {
    let lab = lab("127.0.0.1:0");
    let before = lab.text();
    let o = run(
        &[
            "database",
            "set",
            "DB02",
            "--rpc-client-access-server",
            "mail lab com",
        ],
        &lab.config,
    );
    assert_eq!(o.status.code(), Some(1));
    let want = format!(
        "refused (nothing written): the result would be invalid: {}:32:28: database.rpc_client_access_server: \"mail lab com\" is not a valid DNS name",
        lab.config.display()
    );
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
    assert_eq!(lab.text(), before);
    let names: Vec<_> = std::fs::read_dir(lab.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.ends_with(".tmp")), "{names:?}");
}

#[test]
fn database_set_needs_names_or_all() {
    let lab = lab("127.0.0.1:0");
    let o = run(
        &[
            "database",
            "set",
            "--rpc-client-access-server",
            "mail.lab.com",
        ],
        &lab.config,
    );
    assert_ne!(o.status.code(), Some(0));
    let o = run(
        &[
            "database",
            "set",
            "--all",
            "DB01",
            "--rpc-client-access-server",
            "mail.lab.com",
        ],
        &lab.config,
    );
    assert_ne!(o.status.code(), Some(0));
}

#[test]
fn array_new_then_get() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("casarray.toml");
    let o = run(
        &[
            "array",
            "new",
            "--fqdn",
            "outlook.lab.com",
            "--site",
            "Lab-Site",
            "--name",
            "CASArray1",
        ],
        &config,
    );
    assert_ok(&o);
    assert!(
        stdout(&o).starts_with(&format!("created {}", config.display())),
        "{}",
        stdout(&o)
    );
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(
        text.contains("name = \"CASArray1\"\nfqdn = \"outlook.lab.com\""),
        "{text}"
    );
    // Complete it: certificate files and a member.
    std::fs::create_dir(dir.path().join("certs")).unwrap();
    for f in ["certs/outlook.lab.com.crt", "certs/outlook.lab.com.key"] {
        std::fs::write(dir.path().join(f), "placeholder\n").unwrap();
    }
    let admin = closed_port();
    let text = text
        .replace(
            "admin = \"127.0.0.1:9090\"",
            &format!("admin = \"{admin}\""),
        )
        .replace(
            "# [[member]]\n# name = \"EX1\"\n# address = \"10.0.0.11:443\"\n# fqdn",
            "[[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\nfqdn",
        );
    std::fs::write(&config, text).unwrap();
    let o = run(&["array", "get"], &config);
    assert_ok(&o);
    assert_eq!(
        stdout(&o),
        "Name        : CASArray1\n\
         Fqdn        : outlook.lab.com\n\
         Site        : Lab-Site\n\
         PublicNames : outlook.lab.com\n\
         Members     : EX1\n\
         \n\
         Name Address        Fqdn          Weight\n\
         ---- -------        ----          ------\n\
         EX1  127.0.0.1:9001 ex1.lab.local 1\n\
         \n\
         array not running: health unknown\n"
    );
    // A second, different array is refused.
    let o = run(
        &[
            "array",
            "new",
            "--fqdn",
            "mail.lab.com",
            "--site",
            "Lab-Site",
            "--name",
            "Other",
        ],
        &config,
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("an array is already defined: \"CASArray1\""),
        "{}",
        stderr(&o)
    );
}

/// A stand-in admin API answering one `GET /api/members`.
fn fake_admin(body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let Ok((mut s, _)) = listener.accept() else {
            return;
        };
        let mut head = Vec::new();
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => head.extend_from_slice(&buf[..n]),
            }
        }
        let ok = head.starts_with(b"GET /api/members ");
        let (status, body) = if ok {
            ("200 OK", body)
        } else {
            ("404 Not Found", "")
        };
        let _ = write!(
            s,
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
    });
    addr
}

#[test]
fn array_get_shows_health_of_a_running_array() {
    let admin = fake_admin(
        r#"[{"name":"EX1","address":"127.0.0.1:9001","fqdn":"ex1.lab.local","state":"active","healthy":true,"services":{"owa":true,"ecp":true,"ews":true}},
            {"name":"EX2","address":"127.0.0.1:9002","fqdn":"ex2.lab.local","state":"draining","healthy":false,"services":{"owa":false,"ecp":true,"ews":false}}]"#,
    );
    let lab = lab(&admin.to_string());
    let o = run(&["array", "get"], &lab.config);
    assert_ok(&o);
    let out = stdout(&o);
    let table: Vec<&str> = out.lines().skip(6).collect();
    assert_eq!(
        table,
        [
            "Name Address        Fqdn          Weight State    Healthy Services",
            "---- -------        ----          ------ -----    ------- --------",
            "EX1  127.0.0.1:9001 ex1.lab.local 1      active   yes     all up",
            "EX2  127.0.0.1:9002 ex2.lab.local 1      draining no      down: owa, ews",
        ],
        "{out}"
    );
}

#[test]
fn commands_on_an_invalid_file_name_the_position() {
    let lab = lab("127.0.0.1:0");
    std::fs::write(
        &lab.config,
        CONFIG
            .replace("ADMIN", "127.0.0.1:0")
            .replace("\"127.0.0.1:9002\"", "\"127.0.0.1\""),
    )
    .unwrap();
    let o = run(&["database", "get"], &lab.config);
    assert_eq!(o.status.code(), Some(1));
    let want = format!("{}:22:11: member.address:", lab.config.display());
    assert!(stderr(&o).contains(&want), "{}", stderr(&o));
}
