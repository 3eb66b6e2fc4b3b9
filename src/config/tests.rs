//! Whole-file tests: the DESIGN.md example, defaults, and every error kind
//! with its exact message and position.

use super::*;
use std::path::PathBuf;
use std::time::Duration;

/// The example of DESIGN.md.
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
        }
    );
    assert_eq!(
        c.rewrite,
        RewriteConfig {
            expose_server_headers: false,
            content_types: vec![
                "text/xml".into(),
                "application/xml".into(),
                "text/html".into()
            ],
        }
    );
    assert_eq!(c.runtime, RuntimeConfig { workers: None });
    assert_eq!(c.members[0].fqdn, "ex1");
    assert_eq!(c.members[0].weight, 1);
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
            idle_timeout: Duration::from_secs(3600),
            response_timeout: Duration::from_secs(300),
            affinity: Affinity::Header("x-user".into()),
            rewrite: true,
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

#[test]
fn syntax_errors() {
    let d = dir();
    assert_eq!(
        d.error(&example_with("rise = 2", "rise = ")),
        "F:21:8: string values must be quoted, expected literal string"
    );
}
