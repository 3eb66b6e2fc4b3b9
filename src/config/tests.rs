//! Whole-file tests: the README example, defaults, and every error kind
//! with its exact message and position.

use super::*;
use std::path::PathBuf;
use std::time::Duration;

/// The config example of README (the public contract).
const EXAMPLE: &str = r#"[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"
site = "Default-First-Site-Name"

[listen]
https = "0.0.0.0:443"
admin = "127.0.0.1:9090"
# http_redirect = "0.0.0.0:80"

[tls]
cert = "certs/mail.lab.com.crt"
key = "certs/mail.lab.com.key"

[admin]
token_file = "admin.token"

[health]
interval = "1s"
timeout = "500ms"
rise = 2
fall = 2

[[member]]
name = "EX1"
address = "127.0.0.1:9001"
fqdn = "ex1.lab.local"

[[database]]
name = "DB01"
rpc_client_access_server = "mail.lab.com"
"#;

/// The smallest valid file.
const MINIMAL: &str = r#"[array]
name = "casarray"
fqdn = "mail.lab.com"

[listen]
https = "127.0.0.1:8443"

[tls]
cert = "bundle.pem"

[[member]]
name = "EX1"
address = "127.0.0.1:9001"
"#;

/// A directory holding the files the examples name.
struct Dir {
    _tmp: tempfile::TempDir,
    config: PathBuf,
}

fn dir() -> Dir {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("certs")).unwrap();
    for f in [
        "certs/mail.lab.com.crt",
        "certs/mail.lab.com.key",
        "admin.token",
        "bundle.pem",
    ] {
        std::fs::write(tmp.path().join(f), "x").unwrap();
    }
    let config = tmp.path().join("casarray.toml");
    Dir { _tmp: tmp, config }
}

impl Dir {
    fn parse(&self, text: &str) -> Result<Config, ConfigError> {
        parse(text, &self.config)
    }

    /// The error of `text`, with the file name replaced by `F`.
    fn error(&self, text: &str) -> String {
        let e = self.parse(text).expect_err("config was accepted");
        let s = e.to_string();
        let prefix = format!("{}:", self.config.display());
        s.strip_prefix(&prefix)
            .map(|rest| format!("F:{rest}"))
            .unwrap_or(s)
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.config.parent().unwrap().join(rel)
    }
}

/// `EXAMPLE` with `from` replaced by `to` (which must occur).
fn example_with(from: &str, to: &str) -> String {
    assert!(EXAMPLE.contains(from), "{from:?}");
    EXAMPLE.replacen(from, to, 1)
}

#[test]
fn design_example_parses() {
    let d = dir();
    let c = d.parse(EXAMPLE).unwrap();
    assert_eq!(c.path, d.config);
    assert_eq!(
        c.array,
        ArrayConfig {
            name: "mail.lab.com".into(),
            fqdn: "mail.lab.com".into(),
            site: "Default-First-Site-Name".into(),
            public_names: vec!["mail.lab.com".into()],
            public_port: 443,
        }
    );
    assert_eq!(c.listen.https, "0.0.0.0:443".parse().unwrap());
    assert_eq!(c.listen.admin, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(c.listen.http_redirect, None);
    assert_eq!(
        c.tls.default,
        CertKeyPaths {
            cert: d.path("certs/mail.lab.com.crt"),
            key: Some(d.path("certs/mail.lab.com.key")),
        }
    );
    assert_eq!(c.admin.token_file, Some(d.path("admin.token")));
    assert_eq!(
        c.health,
        HealthConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2,
        }
    );
    assert_eq!(
        c.members,
        vec![MemberConfig {
            name: "EX1".into(),
            address_text: "127.0.0.1:9001".into(),
            address: "127.0.0.1:9001".parse().unwrap(),
            fqdn: "ex1.lab.local".into(),
            weight: 1,
            tls: false,
            tls_server_name: "ex1.lab.local".into(),
            smtp: None,
        }]
    );
    assert_eq!(
        c.databases,
        vec![DatabaseConfig {
            name: "DB01".into(),
            rpc_client_access_server: Some("mail.lab.com".into()),
        }]
    );
    assert_eq!(c.services, exchange_profile(Profile::Exchange2013));
}

#[test]
fn defaults() {
    let d = dir();
    let c = d.parse(MINIMAL).unwrap();
    assert_eq!(c.array.site, "Default-First-Site-Name");
    assert_eq!(c.array.public_names, ["mail.lab.com"]);
    // The port clients reach the public names on is HTTPS's own, whatever
    // `listen.https` says (8443 here).
    assert_eq!(c.array.public_port, 443);
    assert_eq!(c.listen.admin, "127.0.0.1:9090".parse().unwrap());
    assert_eq!(
        c.tls,
        TlsConfig {
            default: CertKeyPaths {
                cert: d.path("bundle.pem"),
                key: None,
            },
            sni: vec![],
            handshake_timeout: Duration::from_secs(10),
            session_resumption: true,
            watch: true,
        }
    );
    assert_eq!(
        c.admin,
        AdminConfig {
            token_file: None,
            state_file: d.path("casarray.toml.state.json"),
        }
    );
    assert_eq!(
        c.health,
        HealthConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            rise: 2,
            fall: 2,
        }
    );
    assert_eq!(
        c.proxy,
        ProxyConfig {
            connect_timeout: Duration::from_secs(2),
            header_read_timeout: Duration::from_secs(30),
            pool_idle_timeout: Duration::from_secs(50),
            pool_max_idle_per_member: 256,
            drain_timeout: Duration::from_secs(30),
            max_connections: 10_000,
            replay_body_limit: 64 * 1024,
            max_header_bytes: 64 * 1024,
            h2_max_concurrent_streams: 128,
            mailbox_routing: true,
            failover_wait: Duration::from_secs(15),
        }
    );
    assert_eq!(
        c.rewrite,
        RewriteConfig {
            expose_server_headers: false,
            content_types: vec![
                "text/xml".into(),
                "application/xml".into(),
                "text/html".into(),
                "application/soap+xml".into()
            ],
        }
    );
    assert_eq!(c.runtime, RuntimeConfig { workers: None });
    assert_eq!(c.members[0].fqdn, "ex1");
    assert_eq!(c.members[0].weight, 1);
    assert!(!c.members[0].tls);
    assert_eq!(c.members[0].tls_server_name, "ex1");
    assert_eq!(c.member_tls, MemberTlsConfig::default());
    assert!(c.member_tls.verify);
    assert!(c.databases.is_empty());
    assert_eq!(c.services, exchange_profile(Profile::Exchange2013));
}

#[test]
fn every_key_set() {
    let d = dir();
    let text = r#"
[array]
name = "CAS Array 1"
fqdn = "outlook.lab.com"
site = "Lab"
public_names = ["mail.lab.com", "autodiscover.lab.com"]
public_port = 4443
profile = "exchange2010"

[listen]
https = "[::1]:8443"
admin = "127.0.0.1:9191"
http_redirect = "127.0.0.1:8080"

[tls]
cert = "certs/mail.lab.com.crt"
key = "certs/mail.lab.com.key"
handshake_timeout = "5s"
session_resumption = false
watch = false
[[tls.sni]]
cert = "bundle.pem"

[admin]
state_file = "state/drain.json"

[proxy]
connect_timeout = "1s500ms"
header_read_timeout = "10s"
pool_idle_timeout = "1m"
pool_max_idle_per_member = 0
drain_timeout = "1m"
max_connections = 5
replay_body_limit = 1024
max_header_bytes = 8192
h2_max_concurrent_streams = 10
mailbox_routing = false
failover_wait = "30s"

[rewrite]
expose_server_headers = true
content_types = ["Text/XML"]

[runtime]
workers = 3

[[member]]
name = "EX1"
address = "localhost:9001"
weight = 100

[[database]]
name = "Mailbox Database 01"

[[service]]
name = "owa"

[[service]]
name = "custom"
prefix = "/Custom/"
health = "/custom/ping"
idle_timeout = "1h"
response_timeout = "5m"
affinity = "header:X-User"
rewrite = true
"#;
    let c = d.parse(text).unwrap();
    assert_eq!(
        c.array.public_names,
        ["mail.lab.com", "autodiscover.lab.com"]
    );
    assert_eq!(c.array.public_port, 4443);
    assert_eq!(
        c.listen.http_redirect,
        Some("127.0.0.1:8080".parse().unwrap())
    );
    assert_eq!(c.tls.sni.len(), 1);
    assert_eq!(c.tls.sni[0].key, None);
    assert_eq!(c.tls.handshake_timeout, Duration::from_secs(5));
    assert!(!c.tls.session_resumption && !c.tls.watch);
    assert_eq!(c.admin.state_file, d.path("state/drain.json"));
    assert_eq!(c.proxy.connect_timeout, Duration::from_millis(1500));
    assert_eq!(c.proxy.pool_max_idle_per_member, 0);
    assert_eq!(c.proxy.max_connections, 5);
    assert_eq!(c.proxy.h2_max_concurrent_streams, 10);
    assert!(!c.proxy.mailbox_routing);
    assert_eq!(c.proxy.failover_wait, Duration::from_secs(30));
    assert!(c.rewrite.expose_server_headers);
    assert_eq!(c.rewrite.content_types, ["text/xml"]);
    assert_eq!(c.runtime.workers, Some(3));
    assert!(c.members[0].address.ip().is_loopback());
    assert_eq!(c.members[0].weight, 100);
    assert_eq!(c.databases[0].rpc_client_access_server, None);
    // A built-in name takes the profile's values (here Exchange 2010's).
    let owa = &c.services[0];
    assert_eq!(owa.prefix, "/owa");
    assert_eq!(owa.affinity, Affinity::Cookie);
    assert!(owa.rewrite);
    assert_eq!(
        c.services[1],
        ServiceConfig {
            name: "custom".into(),
            prefix: "/Custom".into(),
            health: "/custom/ping".into(),
            health_kind: HealthKind::Http,
            idle_timeout: Duration::from_secs(3600),
            response_timeout: Duration::from_secs(300),
            affinity: Affinity::Header("x-user".into()),
            rewrite: true,
            allow_from: None,
        }
    );
}

#[test]
fn profile_selects_the_builtin_services() {
    let d = dir();
    let text = MINIMAL.replacen("[listen]", "profile = \"exchange2010\"\n\n[listen]", 1);
    let c = d.parse(&text).unwrap();
    assert_eq!(c.services, exchange_profile(Profile::Exchange2010));
    let text = MINIMAL.replacen("[listen]", "profile = \"exchange2007\"\n\n[listen]", 1);
    assert_eq!(
        d.error(&text),
        "F:5:11: array.profile: unknown profile \"exchange2007\" (expected \"exchange2013\" or \"exchange2010\")"
    );
}

#[test]
fn public_port_is_a_port_number() {
    let d = dir();
    let with =
        |port: &str| MINIMAL.replacen("[listen]", &format!("public_port = {port}\n\n[listen]"), 1);
    for (port, want) in [("1", 1), ("8443", 8443), ("65535", 65535), ("443", 443)] {
        assert_eq!(
            d.parse(&with(port)).unwrap().array.public_port,
            want,
            "{port}"
        );
    }
    for (port, want) in [
        (
            "0",
            "F:5:15: array.public_port: 0 is not a port: expected 1 to 65535",
        ),
        (
            "65536",
            "F:5:15: array.public_port: 65536 is not a port: expected 1 to 65535",
        ),
        (
            "-443",
            "F:5:15: array.public_port: -443 is not a port: expected 1 to 65535",
        ),
        (
            "\"8443\"",
            "F:5:15: invalid type: string \"8443\", expected i64",
        ),
        (
            "8443.0",
            "F:5:15: invalid type: floating point `8443.0`, expected i64",
        ),
    ] {
        assert_eq!(d.error(&with(port)), want, "{port}");
    }
    // `array new`/`array get` read the [array] table alone: same rules.
    let e = parse_array(&with("70000"), &d.config).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:5:15: array.public_port: 70000 is not a port: expected 1 to 65535",
            d.config.display()
        )
    );
}

#[test]
fn load_names_a_missing_file() {
    let d = dir();
    let e = load(&d.path("nope.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert_eq!(e.position(), None);
    let s = e.to_string();
    assert!(
        s.starts_with(&format!(
            "{}: cannot read config file: ",
            d.path("nope.toml").display()
        )),
        "{s}"
    );
    std::fs::write(&d.config, EXAMPLE).unwrap();
    assert!(load(&d.config).is_ok());
}

/// `MINIMAL` with `extra` appended.
fn minimal_with(extra: &str) -> String {
    format!("{MINIMAL}{extra}")
}

#[test]
fn toml_and_shape_errors() {
    let d = dir();
    let cases = [
        (
            example_with("rise = 2", "rise = "),
            "F:21:8: string values must be quoted, expected literal string",
        ),
        (
            example_with("[health]", "[health\n"),
            "F:18:8: unclosed table, expected `]`",
        ),
        (
            example_with("[tls]", "[tls]\n[tls]"),
            "F:12:2: duplicate key",
        ),
        (
            example_with("rise = 2", "rise = 2\nrize = 3"),
            "F:22:1: unknown key `rize`, expected one of `interval`, `timeout`, `rise`, `fall`",
        ),
        (
            format!("{EXAMPLE}\n[listen2]\n"),
            "F:33:2: unknown key `listen2`, expected one of `array`, `listen`, `tls`, `admin`, `health`, `proxy`, `rewrite`, `runtime`, `smtp`, `dag`, `member_tls`, `member`, `database`, `service`, `security`, `cluster`",
        ),
        (
            example_with("rise = 2", "rise = \"2\""),
            "F:21:8: invalid type: string \"2\", expected u32",
        ),
        (
            example_with("rise = 2", "rise = -1"),
            "F:21:8: invalid value: integer `-1`, expected u32",
        ),
        (
            example_with("https = \"0.0.0.0:443\"", "https = { a = 1 }"),
            "F:7:9: invalid type: map, expected a string",
        ),
        (
            example_with("name = \"EX1\"\n", ""),
            "F:24:1: missing key `name`",
        ),
        (
            example_with("fqdn = \"mail.lab.com\"\n", ""),
            "F:1:1: missing key `fqdn`",
        ),
        (
            example_with("[tls]\ncert = \"certs/mail.lab.com.crt\"\nkey = \"certs/mail.lab.com.key\"\n", ""),
            "F:1:1: missing key `tls`",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
    let e = d.parse(&example_with("rise = 2", "rise = ")).unwrap_err();
    assert!(matches!(e, ConfigError::Syntax { .. }));
    assert_eq!(e.position(), Some(Position { line: 21, col: 8 }));
}

#[test]
fn member_errors() {
    let d = dir();
    let cases = [
        (
            example_with(
                "[[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\nfqdn = \"ex1.lab.local\"\n",
                "",
            ),
            "F:1:1: no [[member]]: the array needs at least one member".to_string(),
        ),
        (
            format!("member = []\n{}", MINIMAL.replace("[[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\n", "")),
            "F:1:10: no [[member]]: the array needs at least one member".to_string(),
        ),
        (
            minimal_with("\n[[member]]\nname = \"ex1\"\naddress = \"127.0.0.1:9002\"\n"),
            "F:16:8: member.name: duplicate member \"ex1\" (first at line 12; names are case-insensitive)".to_string(),
        ),
        (
            example_with("name = \"EX1\"", "name = \"EX 1\""),
            "F:25:8: member.name: member name \"EX 1\" may only hold letters, digits, '-', '_' and '.'".to_string(),
        ),
        (
            example_with("name = \"EX1\"\naddress = \"127.0.0.1:9001\"\nfqdn = \"ex1.lab.local\"", "name = \"EX_1\"\naddress = \"127.0.0.1:9001\""),
            "F:25:8: member.name: \"ex_1\" is not a valid DNS name: only letters, digits, '-' and '.' are allowed (the default fqdn is the name: set fqdn)".to_string(),
        ),
        (
            example_with("\"127.0.0.1:9001\"", "\"127.0.0.1\""),
            "F:26:11: member.address: \"127.0.0.1\" is not host:port (like 127.0.0.1:9001, [::1]:9001 or ex1.lab.local:443)".to_string(),
        ),
        (
            example_with("\"127.0.0.1:9001\"", "\"::1:9001\""),
            "F:26:11: member.address: \"::1:9001\" is not host:port (like 127.0.0.1:9001, [::1]:9001 or ex1.lab.local:443)".to_string(),
        ),
        (
            example_with("\"127.0.0.1:9001\"", "\"ex1.lab.local:99999\""),
            "F:26:11: member.address: \"ex1.lab.local:99999\" is not host:port (like 127.0.0.1:9001, [::1]:9001 or ex1.lab.local:443)".to_string(),
        ),
        (
            example_with("fqdn = \"ex1.lab.local\"", "fqdn = \"ex1..local\""),
            "F:27:8: member.fqdn: \"ex1..local\" is not a valid DNS name: empty label".to_string(),
        ),
        (
            example_with("fqdn = \"ex1.lab.local\"", "fqdn = \"ex1.lab.local\"\nweight = 0"),
            "F:28:10: member.weight: 0 is not within 1..=100".to_string(),
        ),
        (
            example_with("fqdn = \"ex1.lab.local\"", "fqdn = \"ex1.lab.local\"\nweight = 101"),
            "F:28:10: member.weight: 101 is not within 1..=100".to_string(),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
    let ipv6 = d
        .parse(&example_with("\"127.0.0.1:9001\"", "\"[::1]:9001\""))
        .unwrap();
    assert_eq!(ipv6.members[0].address, "[::1]:9001".parse().unwrap());
    let e = d.error(&example_with(
        "\"127.0.0.1:9001\"",
        "\"nohost.invalid:9001\"",
    ));
    assert!(
        e.starts_with("F:26:11: member.address: cannot resolve \"nohost.invalid:9001\": "),
        "{e}"
    );
}

/// A CA certificate as PEM.
fn ca_pem() -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.self_signed(&key).unwrap().pem()
}

/// `EXAMPLE` with `member` lines added to its member, and `table` before it.
fn example_member(member: &str, table: &str) -> String {
    example_with(
        "fqdn = \"ex1.lab.local\"\n",
        &format!("fqdn = \"ex1.lab.local\"\n{member}{table}"),
    )
}

#[test]
fn member_tls_keys() {
    let d = dir();
    let ca = ca_pem();
    std::fs::write(d.path("certs/ca.crt"), format!("{ca}{}", ca_pem())).unwrap();
    let c = d
        .parse(&example_member(
            "tls = true\n",
            "\n[member_tls]\nca = \"certs/ca.crt\"\n",
        ))
        .unwrap();
    let m = &c.members[0];
    assert!(m.tls);
    assert_eq!(m.tls_server_name, "ex1.lab.local", "default: the fqdn");
    let bundle = c.member_tls.ca.as_ref().expect("ca read");
    assert_eq!(bundle.path, d.path("certs/ca.crt"));
    assert_eq!(bundle.certs.len(), 2);
    assert!(c.member_tls.verify);
    assert!(format!("{bundle:?}").contains("certs: 2"), "{bundle:?}");

    let c = d
        .parse(&example_member(
            "tls = true\ntls_server_name = \"EX1.corp.example\"\n",
            "\n[member_tls]\nverify = false\n",
        ))
        .unwrap();
    assert_eq!(c.members[0].tls_server_name, "EX1.corp.example");
    assert_eq!(
        c.member_tls,
        MemberTlsConfig {
            ca: None,
            verify: false
        }
    );
    let c = d
        .parse(&example_member(
            "tls = true\ntls_server_name = \"10.0.0.5\"\n",
            "\n[member_tls]\nverify = false\n",
        ))
        .unwrap();
    assert_eq!(c.members[0].tls_server_name, "10.0.0.5");
    // tls = false needs no CA; a [member_tls] without TLS members is fine.
    let c = d.parse(&example_member("tls = false\n", "")).unwrap();
    assert!(!c.members[0].tls);
    let c = d
        .parse(&example_member(
            "",
            "\n[member_tls]\nca = \"certs/ca.crt\"\nverify = true\n",
        ))
        .unwrap();
    assert!(c.member_tls.ca.is_some());
}

#[test]
fn member_tls_errors() {
    let d = dir();
    std::fs::write(d.path("certs/ca.crt"), ca_pem()).unwrap();
    std::fs::write(d.path("certs/empty.crt"), "no PEM here\n").unwrap();
    std::fs::write(
        d.path("certs/bad.crt"),
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let p = |rel: &str| d.path(rel).display().to_string();
    let cases = [
        (
            example_member("tls = true\n", ""),
            "F:28:1: member.tls: member \"EX1\" uses TLS and its certificate is verified, but no CA is set: add [member_tls] with ca = \"<PEM file of the CA that signs the members' certificates>\" (or verify = false to accept any certificate)".to_string(),
        ),
        (
            example_member("tls = true\n", "\n[member_tls]\nverify = true\n"),
            "F:28:1: member.tls: member \"EX1\" uses TLS and its certificate is verified, but no CA is set: add [member_tls] with ca = \"<PEM file of the CA that signs the members' certificates>\" (or verify = false to accept any certificate)".to_string(),
        ),
        (
            example_member("tls_server_name = \"ex1.lab.local\"\n", ""),
            "F:28:1: member.tls_server_name: member \"EX1\" does not use TLS: add tls = true, or remove tls_server_name".to_string(),
        ),
        (
            example_member(
                "tls = true\ntls_server_name = \"ex1_lab\"\n",
                "\n[member_tls]\nverify = false\n",
            ),
            "F:29:19: member.tls_server_name: \"ex1_lab\" is not a valid DNS name: only letters, digits, '-' and '.' are allowed (nor an IP address)".to_string(),
        ),
        (
            example_member("tls = \"yes\"\n", ""),
            "F:28:7: invalid type: string \"yes\", expected a boolean".to_string(),
        ),
        (
            example_member("", "\n[member_tls]\nca = \"certs/nope.crt\"\n"),
            format!("F:30:1: member_tls.ca: file \"{}\" not found", p("certs/nope.crt")),
        ),
        (
            example_member("", "\n[member_tls]\nca = \"certs/empty.crt\"\n"),
            format!(
                "F:30:1: member_tls.ca: file \"{}\" holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" sections)",
                p("certs/empty.crt")
            ),
        ),
        (
            example_member("", "\n[member_tls]\nca = \"\"\n"),
            "F:30:6: member_tls.ca: empty path".to_string(),
        ),
        (
            example_member("", "\n[member_tls]\ncafile = \"certs/ca.crt\"\n"),
            "F:30:1: unknown key `cafile`, expected `ca` or `verify`".to_string(),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
    let e = d.error(&example_member(
        "",
        "\n[member_tls]\nca = \"certs/bad.crt\"\n",
    ));
    let want = format!(
        "F:30:1: member_tls.ca: file \"{}\" certificate 1 of 1 cannot be used as a CA: ",
        p("certs/bad.crt")
    );
    assert!(e.starts_with(&want), "{e}");
}

#[test]
fn missing_files_point_at_their_key() {
    let d = dir();
    let p = |rel: &str| d.path(rel).display().to_string();
    let cases = [
        (
            example_with(
                "cert = \"certs/mail.lab.com.crt\"",
                "cert = \"certs/nope.crt\"",
            ),
            format!(
                "F:12:1: tls.cert: file \"{}\" not found",
                p("certs/nope.crt")
            ),
        ),
        (
            example_with(
                "key = \"certs/mail.lab.com.key\"",
                "  key   =  \"nope.key\"",
            ),
            format!("F:13:3: tls.key: file \"{}\" not found", p("nope.key")),
        ),
        (
            example_with("key = \"certs/mail.lab.com.key\"", "key = \"certs\""),
            format!("F:13:1: tls.key: file \"{}\" is not a file", p("certs")),
        ),
        (
            example_with("token_file = \"admin.token\"", "token_file = \"nope\""),
            format!("F:16:1: admin.token_file: file \"{}\" not found", p("nope")),
        ),
        (
            example_with(
                "[admin]",
                "[[tls.sni]]\ncert = \"bundle.pem\"\nkey = \"sni.key\"\n\n[admin]",
            ),
            format!("F:17:1: tls.sni.key: file \"{}\" not found", p("sni.key")),
        ),
        (
            example_with("[admin]", "[[tls.sni]]\ncert = \"\"\n\n[admin]"),
            "F:16:8: tls.sni.cert: empty path".to_string(),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
}

#[test]
fn health_errors() {
    let d = dir();
    let cases = [
        (example_with("rise = 2", "rise = 0"), "F:21:8: health.rise: must be at least 1"),
        (example_with("fall = 2", "fall = 0"), "F:22:8: health.fall: must be at least 1"),
        (
            example_with("timeout = \"500ms\"", "timeout = \"1s\""),
            "F:20:11: health.timeout (1s) must be below health.interval (1s)",
        ),
        (
            example_with("timeout = \"500ms\"\n", "").replacen("\"1s\"", "\"200ms\"", 1),
            "F:19:12: health.timeout (500ms) must be below health.interval (200ms)",
        ),
        (
            example_with("interval = \"1s\"", "interval = \"1 s\""),
            "F:19:12: health.interval: invalid duration \"1 s\": unknown unit \" s\" (write a number and a unit: ms, s, m, h, d; like \"500ms\", \"1s\" or \"1h30m\")",
        ),
        (
            example_with("interval = \"1s\"", "interval = \"0s\""),
            "F:19:12: health.interval: must be above zero",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
}

#[test]
fn service_errors() {
    let d = dir();
    let svc = |body: &str| {
        minimal_with(&format!(
            "\n[[service]]\nname = \"owa\"\n\n[[service]]\n{body}\n"
        ))
    };
    let cases = [
        (
            svc("name = \"owa\""),
            "F:19:8: service.name: duplicate service \"owa\"",
        ),
        (
            svc("name = \"web\"\nprefix = \"/OWA/\""),
            "F:20:10: service.prefix: \"/OWA\" is already the prefix of service \"owa\" (prefixes are case-insensitive)",
        ),
        (
            svc("name = \"web\"\nprefix = \"web\""),
            "F:20:10: service.prefix: prefix \"web\" must start with '/'",
        ),
        (
            svc("name = \"web\"\nprefix = \"/\""),
            "F:20:10: service.prefix: prefix \"/\" must name a path, like /owa (\"/\" is the array's own)",
        ),
        (
            svc("name = \"web\""),
            "F:19:8: service \"web\": prefix is required (not a built-in service)",
        ),
        (
            svc("name = \"Web\"\nprefix = \"/web\""),
            "F:19:8: service.name: service name \"Web\" must be lowercase letters, digits, '-' or '_'",
        ),
        (
            svc("name = \"ews\"\nhealth = \"ews/ping\""),
            "F:20:10: service.health: health path \"ews/ping\" must start with '/'",
        ),
        (
            svc("name = \"ews\"\nidle_timeout = \"forever\""),
            "F:20:16: service.idle_timeout: invalid duration \"forever\": expected a number (write a number and a unit: ms, s, m, h, d; like \"500ms\", \"1s\" or \"1h30m\")",
        ),
        (
            svc("name = \"ews\"\nhealth_kind = \"smtp\""),
            "F:20:15: service.health_kind: unknown health kind \"smtp\" (expected http or tcp)",
        ),
        (
            svc("name = \"ews\"\naffinity = \"sticky\""),
            "F:20:12: service.affinity: unknown affinity \"sticky\" (expected none, cookie, source-ip or header:<name>)",
        ),
        (
            svc("name = \"ews\"\naffinity = \"header:x user\""),
            "F:20:12: service.affinity: affinity \"header:x user\": \"x user\" is not a valid header name",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
}

#[test]
fn array_listen_and_other_errors() {
    let d = dir();
    let cases = [
        (
            example_with("fqdn = \"mail.lab.com\"", "fqdn = \"mail lab\""),
            "F:3:8: array.fqdn: \"mail lab\" is not a valid DNS name: only letters, digits, '-' and '.' are allowed",
        ),
        (
            example_with("name = \"mail.lab.com\"", "name = \"\""),
            "F:2:8: array.name: array name must not be empty",
        ),
        (
            example_with("site = \"Default-First-Site-Name\"", "site = \"Lab\"\npublic_names = []"),
            "F:5:16: array.public_names: must name at least one host (or leave it out: default [fqdn])",
        ),
        (
            example_with("site = \"Default-First-Site-Name\"", "public_names = [\"a.lab.com\", \"-b.lab.com\"]"),
            "F:4:30: array.public_names: \"-b.lab.com\" is not a valid DNS name: a label starts or ends with '-'",
        ),
        (
            example_with("site = \"Default-First-Site-Name\"", "public_names = [\"a.lab.com\", \"A.lab.com\"]"),
            "F:4:30: array.public_names: \"A.lab.com\" is listed twice",
        ),
        (
            example_with("https = \"0.0.0.0:443\"", "https = \"0.0.0.0\""),
            "F:7:9: listen.https: \"0.0.0.0\" is not a listen address: expected IP:PORT, like 0.0.0.0:443 or [::]:443",
        ),
        (
            example_with("admin = \"127.0.0.1:9090\"", "admin = \"0.0.0.0:443\""),
            "F:8:9: listen.admin: 0.0.0.0:443 is also listen.https",
        ),
        (
            example_with("# http_redirect = \"0.0.0.0:80\"", "http_redirect = \"127.0.0.1:9090\""),
            "F:9:17: listen.http_redirect: 127.0.0.1:9090 is also listen.admin",
        ),
        (
            example_with("name = \"DB01\"", "name = \"DB01\"\n[[database]]\nname = \"db01\""),
            "F:32:8: database.name: duplicate database \"db01\" (names are case-insensitive)",
        ),
        (
            example_with("rpc_client_access_server = \"mail.lab.com\"", "rpc_client_access_server = \"mail_lab\""),
            "F:31:28: database.rpc_client_access_server: \"mail_lab\" is not a valid DNS name: only letters, digits, '-' and '.' are allowed",
        ),
        (
            minimal_with("\n[runtime]\nworkers = 0\n"),
            "F:16:11: runtime.workers: must be at least 1",
        ),
        (
            minimal_with("\n[proxy]\nmax_connections = 0\n"),
            "F:16:19: proxy.max_connections: must be at least 1",
        ),
        (
            minimal_with("\n[proxy]\nconnect_timeout = \"2\"\n"),
            "F:16:19: proxy.connect_timeout: invalid duration \"2\": missing unit (write a number and a unit: ms, s, m, h, d; like \"500ms\", \"1s\" or \"1h30m\")",
        ),
        (
            minimal_with("\n[rewrite]\ncontent_types = [\"xml\"]\n"),
            "F:16:18: rewrite.content_types: content type \"xml\" is not type/subtype (like text/xml)",
        ),
        (
            minimal_with("\n[tls.x]\n"),
            "F:15:6: unknown key `x`, expected one of `cert`, `key`, `sni`, `handshake_timeout`, `session_resumption`, `watch`",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
    let ephemeral = example_with("\"0.0.0.0:443\"", "\"127.0.0.1:0\"").replacen(
        "\"127.0.0.1:9090\"",
        "\"127.0.0.1:0\"",
        1,
    );
    assert!(d.parse(&ephemeral).is_ok());
}

#[test]
fn smtp_listener_hubs_and_table() {
    let d = dir();
    let with_smtp = example_with("# http_redirect = \"0.0.0.0:80\"", "smtp = \"0.0.0.0:25\"")
        .replace(
            "fqdn = \"ex1.lab.local\"",
            "fqdn = \"ex1.lab.local\"\nsmtp = \"127.0.0.1:2501\"",
        );
    let c = d.parse(&with_smtp).unwrap();
    assert_eq!(c.listen.smtp, Some("0.0.0.0:25".parse().unwrap()));
    assert_eq!(c.members[0].smtp, Some("127.0.0.1:2501".parse().unwrap()));
    assert_eq!(c.smtp, SmtpConfig::default());
    assert_eq!(c.smtp.health, HealthKind::Ehlo);
    assert_eq!(c.smtp.banner_timeout, Duration::from_secs(5));
    let tuned = format!(
        "{with_smtp}\n[smtp]\nhealth = \"tcp\"\nbanner_timeout = \"2s\"\nproxy_protocol = true\nidle_timeout = \"5m\"\n"
    );
    let c = d.parse(&tuned).unwrap();
    assert_eq!(
        c.smtp,
        SmtpConfig {
            health: HealthKind::Tcp,
            banner_timeout: Duration::from_secs(2),
            proxy_protocol: true,
            idle_timeout: Duration::from_secs(300),
        }
    );
    let cases = [
        (
            example_with("# http_redirect = \"0.0.0.0:80\"", "smtp = \"0.0.0.0:25\""),
            "F:9:8: listen.smtp: 0.0.0.0:25 is set but no [[member]] has an smtp address: add smtp = \"HOST:PORT\" (its hub transport) to the members that take SMTP",
        ),
        (
            with_smtp.replace("smtp = \"0.0.0.0:25\"", "smtp = \"127.0.0.1:9090\""),
            "F:9:8: listen.smtp: 127.0.0.1:9090 is also listen.admin",
        ),
        (
            with_smtp.replace("smtp = \"127.0.0.1:2501\"", "smtp = \"nowhere\""),
            "F:28:8: member.smtp: \"nowhere\" is not host:port (like 127.0.0.1:9001, [::1]:9001 or ex1.lab.local:443)",
        ),
        (
            format!("{with_smtp}\n[smtp]\nhealth = \"http\"\n"),
            "F:35:10: smtp.health: unknown SMTP health check \"http\" (expected ehlo or tcp)",
        ),
        (
            format!("{with_smtp}\n[smtp]\nbanner_timeout = \"0s\"\n"),
            "F:35:18: smtp.banner_timeout: must be above zero",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
}

#[test]
fn dag_is_off_unless_enabled() {
    let d = dir();
    assert!(!d.parse(EXAMPLE).unwrap().dag.enabled);
    let on = format!("{EXAMPLE}\n[dag]\nenabled = true\n");
    assert!(d.parse(&on).unwrap().dag.enabled);
    let bad = format!("{EXAMPLE}\n[dag]\nstatus = \"/x\"\n");
    assert_eq!(
        d.error(&bad),
        "F:34:1: unknown key `status`, expected `enabled`"
    );
}

#[test]
fn parse_array_checks_only_the_array() {
    let d = dir();
    let text =
        "[array]\nname = \"casarray\"\nfqdn = \"mail.lab.com\"\n\n[tls]\ncert = \"nope.crt\"\n";
    let (array, profile) = parse_array(text, &d.config).unwrap();
    assert_eq!(array.public_names, ["mail.lab.com"]);
    assert_eq!(profile, Profile::Exchange2013);
    let e = parse_array(&text.replace("mail.lab.com", "mail lab"), &d.config).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "{}:3:8: array.fqdn: \"mail lab\" is not a valid DNS name: only letters, digits, '-' and '.' are allowed",
            d.config.display()
        )
    );
    let e = parse_array("[listen]\n", &d.config).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("{}:1:1: missing key `array`", d.config.display())
    );
}

#[test]
fn security_defaults_and_every_key() {
    let d = dir();
    let c = d.parse(MINIMAL).unwrap();
    assert_eq!(
        c.security,
        SecurityConfig {
            exchange_shields: true,
            disabled_rules: vec![],
            lockout_failures: 20,
            lockout_window: Duration::from_secs(300),
            lockout_time: Duration::from_secs(900),
            hsts_max_age: None,
            hsts_include_subdomains: false,
            strip_version_headers: false,
        }
    );
    assert_eq!(c.security, SecurityConfig::default());
    let c = d
        .parse(&minimal_with(
            "\n[security]\nexchange_shields = false\n\
             disabled_rules = [\"owassrf-powershell\", \"proxyshell-rps-cat\"]\n\
             lockout_failures = 5\nlockout_window = \"1m\"\nlockout_time = \"1500ms\"\n\
             hsts_max_age = \"365d\"\nhsts_include_subdomains = true\nstrip_version_headers = true\n",
        ))
        .unwrap();
    assert_eq!(
        c.security,
        SecurityConfig {
            exchange_shields: false,
            disabled_rules: vec!["owassrf-powershell".into(), "proxyshell-rps-cat".into()],
            lockout_failures: 5,
            lockout_window: Duration::from_secs(60),
            // Rounded up to whole seconds.
            lockout_time: Duration::from_secs(2),
            hsts_max_age: Some(Duration::from_secs(365 * 86_400)),
            hsts_include_subdomains: true,
            strip_version_headers: true,
        }
    );
    // max-age=0 (tell browsers to forget) is allowed.
    let c = d
        .parse(&minimal_with("\n[security]\nhsts_max_age = \"0s\"\n"))
        .unwrap();
    assert_eq!(c.security.hsts_max_age, Some(Duration::ZERO));
}

#[test]
fn security_errors() {
    let d = dir();
    let sec = |body: &str| minimal_with(&format!("\n[security]\n{body}\n"));
    let rules = crate::security::rules::RULES
        .iter()
        .map(|r| r.id())
        .collect::<Vec<_>>()
        .join(", ");
    let cases = [
        (
            sec("disabled_rules = [\"owassrf-powershell\", \"proxy-logon\"]"),
            format!("F:16:41: security.disabled_rules: unknown rule \"proxy-logon\" (rules: {rules})"),
        ),
        (
            sec("disabled_rules = [\"owassrf-powershell\", \"owassrf-powershell\"]"),
            "F:16:41: security.disabled_rules: \"owassrf-powershell\" is listed twice".into(),
        ),
        (
            sec("lockout_failures = 0"),
            "F:16:20: security.lockout_failures: 0 is not within 1..=100".into(),
        ),
        (
            sec("lockout_failures = 101"),
            "F:16:20: security.lockout_failures: 101 is not within 1..=100".into(),
        ),
        (
            sec("lockout_window = \"0s\""),
            "F:16:18: security.lockout_window: 0s is not within 1s..=1d".into(),
        ),
        (
            sec("lockout_window = \"2d\""),
            "F:16:18: security.lockout_window: 2d is not within 1s..=1d".into(),
        ),
        (
            sec("lockout_time = \"31d\""),
            "F:16:16: security.lockout_time: 31d is not within 1s..=30d".into(),
        ),
        (
            sec("lockout_time = \"soon\""),
            "F:16:16: security.lockout_time: invalid duration \"soon\": expected a number (write a number and a unit: ms, s, m, h, d; like \"500ms\", \"1s\" or \"1h30m\")".into(),
        ),
        (
            sec("hsts_include_subdomains = true"),
            "F:16:1: security.hsts_include_subdomains: set hsts_max_age too (no header is sent without it)".into(),
        ),
        (
            sec("exchange_shields = \"yes\""),
            "F:16:20: invalid type: string \"yes\", expected a boolean".into(),
        ),
        (
            sec("lockout = 3"),
            "F:16:1: unknown key `lockout`, expected one of `exchange_shields`, `disabled_rules`, `lockout_failures`, `lockout_window`, `lockout_time`, `hsts_max_age`, `hsts_include_subdomains`, `strip_version_headers`".into(),
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
}

#[test]
fn allow_from_per_service() {
    let d = dir();
    let find = |c: &Config, name: &str| {
        c.services
            .iter()
            .find(|s| s.name == name)
            .unwrap()
            .allow_from
            .clone()
    };
    let internal = Some(crate::config::Cidr::internal());
    // The built-in profile: PowerShell internal only, the rest open.
    let c = d.parse(MINIMAL).unwrap();
    assert_eq!(find(&c, "powershell"), internal);
    assert_eq!(find(&c, "owa"), None);
    // A [[service]] named powershell keeps it; others set their own.
    let c = d
        .parse(&minimal_with(
            "\n[[service]]\nname = \"powershell\"\n\n[[service]]\nname = \"owa\"\n\
             allow_from = [\"10.0.0.0/8\", \"2001:db8::/32\", \"192.0.2.7\"]\n\n[[service]]\nname = \"ews\"\n",
        ))
        .unwrap();
    assert_eq!(find(&c, "powershell"), internal);
    let owa: Vec<String> = find(&c, "owa")
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(owa, ["10.0.0.0/8", "2001:db8::/32", "192.0.2.7/32"]);
    assert_eq!(find(&c, "ews"), None);
    // Opened to everyone.
    let c = d
        .parse(&minimal_with(
            "\n[[service]]\nname = \"powershell\"\nallow_from = [\"0.0.0.0/0\", \"::/0\"]\n",
        ))
        .unwrap();
    assert_eq!(find(&c, "powershell").map(|a| a.len()), Some(2));

    let svc = |list: &str| {
        minimal_with(&format!(
            "\n[[service]]\nname = \"owa\"\nallow_from = {list}\n"
        ))
    };
    let cases = [
        (
            svc("[]"),
            "F:17:14: service.allow_from: an empty list lets nobody in (leave it out to let everyone in, or write [\"0.0.0.0/0\", \"::/0\"])",
        ),
        (
            svc("[\"10.0.0.1/8\"]"),
            "F:17:15: service.allow_from: \"10.0.0.1/8\" has bits set after the prefix (did you mean 10.0.0.0/8?)",
        ),
        (
            svc("[\"10.0.0.0/8\", \"intranet\"]"),
            "F:17:29: service.allow_from: \"intranet\" is not an IP address or a range like 10.0.0.0/8 or fc00::/7",
        ),
        (
            svc("[\"::/129\"]"),
            "F:17:15: service.allow_from: \"::/129\": the prefix length must be 0 to 128",
        ),
        (
            svc("\"10.0.0.0/8\""),
            "F:17:14: invalid type: string \"10.0.0.0/8\", expected a sequence",
        ),
    ];
    for (text, want) in cases {
        assert_eq!(d.error(&text), want);
    }
}

#[test]
fn cluster_defaults_and_errors() {
    let d = dir();
    let cfg = d.parse(MINIMAL).unwrap();
    assert_eq!(cfg.cluster, None, "no [cluster]: the local state file");
    let text = format!("{MINIMAL}\n[cluster]\netcd = [\"http://127.0.0.1:2379\"]\n");
    let c = d.parse(&text).unwrap().cluster.unwrap();
    assert_eq!(c.endpoints, ["http://127.0.0.1:2379"]);
    assert_eq!(c.prefix, "/casarray/mail.lab.com");
    assert_eq!(c.instance, None);
    assert_eq!(c.ticket_rotation, Duration::from_secs(6 * 3600));
    assert_eq!(c.sync_timeout, Duration::from_secs(10));
    assert_eq!(c.request_timeout, Duration::from_secs(3));
    let text = format!(
        "{MINIMAL}\n[cluster]\netcd = [\"https://e1:2379\", \"https://e2:2379\"]\nprefix = \"/x\"\n\
         instance = \"a:1\"\nca = \"bundle.pem\"\ncert = \"bundle.pem\"\nkey = \"bundle.pem\"\n\
         user = \"casarray\"\npassword_file = \"admin.token\"\nticket_rotation = \"1h\"\n"
    );
    let c = d.parse(&text).unwrap().cluster.unwrap();
    assert_eq!(c.prefix, "/x");
    assert_eq!(c.instance.as_deref(), Some("a:1"));
    assert_eq!(c.ca, Some(d.path("bundle.pem")));
    assert_eq!(c.auth.as_ref().map(|a| a.0.as_str()), Some("casarray"));
    assert_eq!(c.ticket_rotation, Duration::from_secs(3600));

    let line = MINIMAL.lines().count() + 3;
    for (extra, want) in [
        (
            "etcd = []",
            format!("F:{line}:8: cluster.etcd: name at least one endpoint"),
        ),
        (
            "etcd = [\"127.0.0.1:2379\"]",
            format!("F:{line}:9: cluster.etcd: \"127.0.0.1:2379\": expected http://"),
        ),
        (
            "etcd = [\"http://a:1\", \"http://a:1\"]",
            format!("F:{line}:23: cluster.etcd: \"http://a:1\" is listed twice"),
        ),
        (
            "etcd = [\"http://a:1\"]\nprefix = \"x\"",
            format!("F:{}:10: cluster.prefix:", line + 1),
        ),
        (
            "etcd = [\"http://a:1\"]\ncert = \"bundle.pem\"",
            format!("F:{}:1: cluster.cert and cluster.key: set both", line + 1),
        ),
        (
            "etcd = [\"http://a:1\"]\nca = \"bundle.pem\"",
            format!("F:{line}:9: cluster.etcd: cluster.ca / cluster.cert are set: use https://"),
        ),
        (
            "etcd = [\"http://a:1\"]\nuser = \"u\"",
            format!(
                "F:{}:1: cluster.user and cluster.password_file: set both",
                line + 1
            ),
        ),
        (
            "etcd = [\"http://a:1\"]\nca = \"nope.pem\"",
            format!("F:{}:1: cluster.ca: file", line + 1),
        ),
        (
            "etcd = [\"http://a:1\"]\nticket_rotation = \"0s\"",
            format!(
                "F:{}:19: cluster.ticket_rotation: must be above zero",
                line + 1
            ),
        ),
        (
            "etcd = [\"http://a:1\"]\nticket_rotation = \"500ms\"",
            format!("F:{}:19: cluster.ticket_rotation: at least 1s", line + 1),
        ),
        (
            "etcd = [\"http://a:1\"]\nendpoints = []",
            format!("F:{}:1: unknown key", line + 1),
        ),
    ] {
        let text = format!("{MINIMAL}\n[cluster]\n{extra}\n");
        let e = d.error(&text);
        assert!(e.starts_with(&want), "{extra}: {e}\nwant {want}");
    }
}
