//! `casarray check --config FILE`: exit 0 on a valid file, exit 1 with
//! `FILE:LINE:COL: what is wrong` on stderr otherwise.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_casarray");

/// A directory with a self-signed certificate and key under `certs/`.
fn lab() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    std::fs::create_dir(&certs).unwrap();
    let ck = rcgen::generate_simple_self_signed(vec!["mail.lab.com".to_string()]).unwrap();
    std::fs::write(certs.join("mail.lab.com.crt"), ck.cert.pem()).unwrap();
    std::fs::write(
        certs.join("mail.lab.com.key"),
        ck.signing_key.serialize_pem(),
    )
    .unwrap();
    dir
}

const VALID: &str = r#"[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"
site = "Default-First-Site-Name"

[listen]
https = "127.0.0.1:0"
admin = "127.0.0.1:0"

[tls]
cert = "certs/mail.lab.com.crt"
key = "certs/mail.lab.com.key"

[[member]]
name = "EX1"
address = "127.0.0.1:9001"
fqdn = "ex1.lab.local"

[[member]]
name = "EX2"
address = "127.0.0.1:9002"
fqdn = "ex2.lab.local"

[[database]]
name = "DB01"
rpc_client_access_server = "mail.lab.com"
"#;

fn write(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("casarray.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn check(config: &Path) -> Output {
    Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .output()
        .unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn valid_file_exits_0() {
    let dir = lab();
    let config = write(dir.path(), VALID);
    let out = check(&config);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
}

#[test]
fn duplicate_member_exits_1_with_its_position() {
    let dir = lab();
    let config = write(
        dir.path(),
        &VALID.replace("name = \"EX2\"", "name = \"ex1\""),
    );
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "{}:20:8: member.name: duplicate member \"ex1\" (first at line 15; names are case-insensitive)",
        config.display()
    );
    assert!(stderr(&out).contains(&want), "stderr: {}", stderr(&out));
}

#[test]
fn unknown_key_exits_1_with_its_position() {
    let dir = lab();
    let config = write(
        dir.path(),
        &VALID.replace("[tls]\n", "[tls]\nwatch_me = true\n"),
    );
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1));
    let want = format!("{}:11:1: unknown key `watch_me`", config.display());
    assert!(stderr(&out).contains(&want), "stderr: {}", stderr(&out));
}

#[test]
fn missing_certificate_exits_1_at_its_key() {
    let dir = lab();
    std::fs::remove_file(dir.path().join("certs/mail.lab.com.key")).unwrap();
    let config = write(dir.path(), VALID);
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "{}:12:1: tls.key: file \"{}\" not found",
        config.display(),
        dir.path().join("certs/mail.lab.com.key").display()
    );
    assert!(stderr(&out).contains(&want), "stderr: {}", stderr(&out));
}

#[test]
fn missing_config_file_exits_1_naming_it() {
    let dir = lab();
    let config = dir.path().join("nope.toml");
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1));
    let want = format!("{}: cannot read config file", config.display());
    assert!(stderr(&out).contains(&want), "stderr: {}", stderr(&out));
}

#[test]
fn unusable_certificate_exits_1() {
    let dir = lab();
    std::fs::write(
        dir.path().join("certs/mail.lab.com.crt"),
        "not a certificate\n",
    )
    .unwrap();
    let config = write(dir.path(), VALID);
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", stderr(&out));
    assert!(!stderr(&out).is_empty());
}
