//! `casarray cert ...` as a user runs it: the whole Exchange-style workflow
//! through the real binary, checked against itself and, where installed,
//! against `openssl`.

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_casarray");

fn casarray(args: &[&str]) -> Output {
    Command::new(BIN)
        .arg("cert")
        .args(args)
        .output()
        .expect("run casarray")
}

fn ok(args: &[&str]) -> String {
    let out = casarray(args);
    assert!(
        out.status.success(),
        "casarray cert {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn s(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

/// `Key: value` lines of `cert show`.
fn parse_show(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// RFC 3339 `YYYY-MM-DDTHH:MM:SSZ` to UNIX seconds.
fn unix_of(rfc3339: &str) -> i64 {
    let num = |range: std::ops::Range<usize>| rfc3339[range].parse::<i64>().unwrap();
    let (y, m, d) = (num(0..4), num(5..7), num(8..10));
    let (hh, mm, ss) = (num(11..13), num(14..16), num(17..19));
    // Days from civil (proleptic Gregorian), March-based years.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + hh * 3600 + mm * 60 + ss
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn have_openssl() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("note: openssl not found; skipping the openssl cross-checks");
    }
    found
}

fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_whole_workflow() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (ca_dir, req_dir, other_server) = (d.join("ca"), d.join("req"), d.join("ex2"));

    // New-ExchangeCertificate on the first server, signed by the lab CA.
    ok(&["new-ca", "--name", "Lab Root CA", "--out", s(&ca_dir)]);
    ok(&[
        "request",
        "--fqdn",
        "mail.lab.com",
        "--san",
        "autodiscover.lab.com",
        "--san",
        "legacy.lab.com",
        "--out",
        s(&req_dir),
    ]);
    let csr = req_dir.join("mail.lab.com.csr");
    let key = req_dir.join("mail.lab.com.key");
    let issued = d.join("issued.crt");
    ok(&[
        "issue",
        "--ca",
        s(&ca_dir),
        "--csr",
        s(&csr),
        "--out",
        s(&issued),
        "--days",
        "90",
    ]);
    let served = d.join("mail.lab.com.crt");
    ok(&[
        "complete",
        "--key",
        s(&key),
        "--cert",
        s(&issued),
        "--chain",
        s(&ca_dir.join("ca.crt")),
        "--out",
        s(&served),
    ]);
    // Export with the key, import on the second server.
    let bundle = d.join("mail.lab.com.pem");
    ok(&[
        "export",
        "--cert",
        s(&served),
        "--key",
        s(&key),
        "--out",
        s(&bundle),
    ]);
    let imported = ok(&["import", "--bundle", s(&bundle), "--out", s(&other_server)]);
    assert!(imported.contains("mail.lab.com.crt"), "{imported}");
    let imported_cert = other_server.join("mail.lab.com.crt");
    let imported_key = other_server.join("mail.lab.com.key");
    assert_eq!(
        std::fs::read_to_string(&imported_cert).unwrap(),
        std::fs::read_to_string(&served).unwrap()
    );

    let shown = parse_show(&ok(&["show", s(&imported_cert)]));
    assert_eq!(shown["Subject"], "CN=mail.lab.com");
    assert_eq!(
        shown["SANs"],
        "mail.lab.com, autodiscover.lab.com, legacy.lab.com"
    );
    assert_eq!(shown["Issuer"], "CN=Lab Root CA");
    assert_eq!(shown["Status"], "valid");
    assert_eq!(shown["CA"], "no");
    assert_eq!(shown["Chain"], "2");
    assert!(shown["Serial"].len() >= 16, "{shown:?}");
    assert_eq!(shown["SHA-256"].len(), 64);
    let not_after = unix_of(&shown["Not after"]);
    assert!((not_after - (now() + 90 * 86_400)).abs() < 600, "{shown:?}");
    let not_before = unix_of(&shown["Not before"]);
    assert!((not_before - (now() - 3600)).abs() < 600, "{shown:?}");

    let ca_shown = parse_show(&ok(&["show", s(&ca_dir.join("ca.crt"))]));
    assert_eq!(ca_shown["CA"], "yes");
    assert_eq!(ca_shown["SANs"], "(none)");

    #[cfg(unix)]
    for private in [&ca_dir.join("ca.key"), &key, &bundle, &imported_key] {
        assert_eq!(mode(private), 0o600, "{}", private.display());
    }

    if have_openssl() {
        let ca_cert = ca_dir.join("ca.crt");
        assert!(openssl(&["req", "-verify", "-noout", "-in", s(&csr)]).is_empty());
        let verified = openssl(&["verify", "-CAfile", s(&ca_cert), s(&issued)]);
        assert!(verified.trim_end().ends_with("OK"), "{verified}");
        let text = openssl(&["x509", "-text", "-noout", "-in", s(&issued)]);
        for expected in [
            "DNS:mail.lab.com, DNS:autodiscover.lab.com, DNS:legacy.lab.com",
            "TLS Web Server Authentication",
            "CA:FALSE",
            "Digital Signature",
            "Issuer: CN = Lab Root CA",
            "Subject: CN = mail.lab.com",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let fingerprint = openssl(&[
            "x509",
            "-noout",
            "-fingerprint",
            "-sha256",
            "-in",
            s(&imported_cert),
        ]);
        let hex: String = fingerprint
            .split_once('=')
            .unwrap()
            .1
            .trim()
            .replace(':', "")
            .to_ascii_lowercase();
        assert_eq!(hex, shown["SHA-256"]);
        // The key import wrote is the key of the certificate.
        let from_key = openssl(&["pkey", "-in", s(&imported_key), "-pubout"]);
        let from_cert = openssl(&["x509", "-in", s(&imported_cert), "-noout", "-pubkey"]);
        assert_eq!(from_key, from_cert);
    }
}

#[test]
fn never_overwrites_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let ca_dir = dir.path().join("ca");
    ok(&["new-ca", "--name", "Lab Root CA", "--out", s(&ca_dir)]);
    let before = std::fs::read(ca_dir.join("ca.key")).unwrap();

    let again = casarray(&["new-ca", "--name", "Other CA", "--out", s(&ca_dir)]);
    assert!(!again.status.success());
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("ca.crt: already exists"), "{stderr}");
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(ca_dir.join("ca.key")).unwrap(), before);

    ok(&[
        "new-ca",
        "--name",
        "Other CA",
        "--out",
        s(&ca_dir),
        "--force",
    ]);
    assert_ne!(std::fs::read(ca_dir.join("ca.key")).unwrap(), before);
    #[cfg(unix)]
    assert_eq!(mode(&ca_dir.join("ca.key")), 0o600);
    let shown = parse_show(&ok(&["show", s(&ca_dir.join("ca.crt"))]));
    assert_eq!(shown["Subject"], "CN=Other CA");

    let out = dir.path().join("x.crt");
    std::fs::write(&out, "keep me").unwrap();
    let req = dir.path().join("req");
    ok(&["request", "--fqdn", "x.lab.com", "--out", s(&req)]);
    let refused = casarray(&[
        "issue",
        "--ca",
        s(&ca_dir),
        "--csr",
        s(&req.join("x.lab.com.csr")),
        "--out",
        s(&out),
    ]);
    assert!(!refused.status.success());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
}

#[test]
fn self_signed_and_rsa_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    ok(&[
        "self-signed",
        "--fqdn",
        "mail.lab.com",
        "--san",
        "127.0.0.1",
        "--days",
        "10",
        "--key-type",
        "rsa2048",
        "--out",
        s(d),
    ]);
    let shown = parse_show(&ok(&["show", s(&d.join("mail.lab.com.crt"))]));
    assert_eq!(shown["SANs"], "mail.lab.com, 127.0.0.1");
    assert_eq!(shown["Status"], "expires within 30 days");
    assert_eq!(shown["Subject"], shown["Issuer"]);
    if have_openssl() {
        let text = openssl(&[
            "x509",
            "-text",
            "-noout",
            "-in",
            s(&d.join("mail.lab.com.crt")),
        ]);
        assert!(
            text.contains("rsaEncryption") && text.contains("(2048 bit)"),
            "{text}"
        );
        assert!(text.contains("IP Address:127.0.0.1"), "{text}");
    }
}

#[test]
fn issues_requests_made_by_openssl() {
    if !have_openssl() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca_dir = d.join("ca");
    ok(&["new-ca", "--name", "Lab Root CA", "--out", s(&ca_dir)]);
    for (stem, newkey) in [("ec", "ec"), ("rsa", "rsa:2048")] {
        let (key, csr, crt) = (
            d.join(format!("{stem}.key")),
            d.join(format!("{stem}.csr")),
            d.join(format!("{stem}.crt")),
        );
        let mut args = vec!["req", "-new", "-nodes", "-newkey", newkey];
        if newkey == "ec" {
            args.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        let subject = format!("/CN={stem}.lab.com");
        let san = format!("subjectAltName=DNS:{stem}.lab.com");
        args.extend([
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
            "-subj",
            &subject,
            "-addext",
            &san,
        ]);
        openssl(&args);
        ok(&[
            "issue",
            "--ca",
            s(&ca_dir),
            "--csr",
            s(&csr),
            "--out",
            s(&crt),
        ]);
        let verified = openssl(&["verify", "-CAfile", s(&ca_dir.join("ca.crt")), s(&crt)]);
        assert!(verified.trim_end().ends_with("OK"), "{verified}");
        // openssl's key completes the certificate casarray issued.
        let done = d.join(format!("{stem}.chain.crt"));
        ok(&[
            "complete",
            "--key",
            s(&key),
            "--cert",
            s(&crt),
            "--chain",
            s(&ca_dir.join("ca.crt")),
            "--out",
            s(&done),
        ]);
        let shown = parse_show(&ok(&["show", s(&done)]));
        assert_eq!(shown["SANs"], format!("{stem}.lab.com"));
        assert_eq!(shown["Chain"], "2");
    }
}

#[test]
fn errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let missing = casarray(&["show", s(&d.join("absent.crt"))]);
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert!(stderr.contains("absent.crt: cannot read"), "{stderr}");

    ok(&["self-signed", "--fqdn", "a.lab.com", "--out", s(d)]);
    ok(&["self-signed", "--fqdn", "b.lab.com", "--out", s(d)]);
    let mismatch = casarray(&[
        "complete",
        "--key",
        s(&d.join("b.lab.com.key")),
        "--cert",
        s(&d.join("a.lab.com.crt")),
        "--out",
        s(&d.join("x.crt")),
    ]);
    assert!(!mismatch.status.success());
    let stderr = String::from_utf8_lossy(&mismatch.stderr);
    assert!(stderr.contains("does not match"), "{stderr}");
    assert!(stderr.contains("a.lab.com.crt"), "{stderr}");

    let bad_name = casarray(&["request", "--fqdn", "../evil", "--out", s(d)]);
    assert!(!bad_name.status.success());
    assert!(String::from_utf8_lossy(&bad_name.stderr).contains("invalid name"));
}
