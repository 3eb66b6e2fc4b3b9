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

/// `VALID` with EX1 over TLS and `table` added.
fn with_tls_member(table: &str) -> String {
    format!(
        "{}{table}",
        VALID.replace(
            "fqdn = \"ex1.lab.local\"\n",
            "fqdn = \"ex1.lab.local\"\ntls = true\n"
        )
    )
}

#[test]
fn members_over_https_are_shown_and_their_ca_checked() {
    let dir = lab();
    let ca = rcgen::generate_simple_self_signed(vec!["ex1.lab.local".to_string()]).unwrap();
    std::fs::write(dir.path().join("certs/members-ca.crt"), ca.cert.pem()).unwrap();
    let config = write(
        dir.path(),
        &with_tls_member("\n[member_tls]\nca = \"certs/members-ca.crt\"\n"),
    );
    let out = check(&config);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let want = format!(
        "(2 members, 1 over HTTPS verified against {}, ",
        dir.path().join("certs/members-ca.crt").display()
    );
    assert!(stdout.contains(&want), "stdout: {stdout}");

    // No CA and verification on: what to add.
    let config = write(dir.path(), &with_tls_member(""));
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "{}:18:1: member.tls: member \"EX1\" uses TLS and its certificate is verified, but no CA is set: add [member_tls] with ca = ",
        config.display()
    );
    assert!(stderr(&out).contains(&want), "stderr: {}", stderr(&out));

    // A CA file without a certificate: the file and the reason.
    let config = write(
        dir.path(),
        &with_tls_member("\n[member_tls]\nca = \"certs/mail.lab.com.key\"\n"),
    );
    let out = check(&config);
    assert_eq!(out.status.code(), Some(1));
    let want = format!(
        "member_tls.ca: file \"{}\" holds no certificate",
        dir.path().join("certs/mail.lab.com.key").display()
    );
    assert!(stderr(&out).contains(&want), "stderr: {}", stderr(&out));

    // verify = false: accepted, and said so.
    let config = write(
        dir.path(),
        &with_tls_member("\n[member_tls]\nverify = false\n"),
    );
    let out = check(&config);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 over HTTPS NOT verified (member_tls.verify = false)"),
        "stdout: {stdout}"
    );
    assert!(
        stderr(&out).contains("member_tls.verify = false: the certificates of EX1 are not checked"),
        "stderr: {}",
        stderr(&out)
    );
}
