//! The array started in process (`casarray::serve::start`) in front of the
//! bench backends, with one `[[service]]` (`ews`, prefix `/EWS`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use casarray::serve::Server;

use super::certs::Certs;
use super::client::Target;

/// The config text for an array on 127.0.0.1:0 in front of `members`.
/// `extra` is appended (for example `[proxy]` limits).
pub fn config_text(certs: &Certs, members: &[SocketAddr], extra: &str) -> String {
    let mut s = format!(
        r#"[array]
name = "mail.lab.com"
fqdn = "mail.lab.com"

[listen]
https = "127.0.0.1:0"
admin = "127.0.0.1:0"

[tls]
cert = "{}"
key = "{}"

[health]
interval = "1s"
timeout = "500ms"
rise = 1
fall = 2

[[service]]
name = "ews"

"#,
        certs.cert.display(),
        certs.key.display()
    );
    for (i, addr) in members.iter().enumerate() {
        s.push_str(&format!(
            "[[member]]\nname = \"EX{}\"\naddress = \"{addr}\"\nfqdn = \"ex{}.lab.local\"\n\n",
            i + 1,
            i + 1
        ));
    }
    s.push_str(extra);
    s
}

/// Starts the array with `config` (written to `dir/casarray.toml`) and
/// waits, at most 30 s, until a request through it is answered 200.
pub async fn start(dir: &Path, config: &str, ca_pem: &str) -> Server {
    let path = dir.join("casarray.toml");
    std::fs::write(&path, config).expect("write config");
    let cfg = casarray::config::parse(config, &path).expect("valid config");
    let server = casarray::serve::start(cfg, false)
        .await
        .expect("array started");
    let target = Target::Tls {
        addr: server.bound.https,
        config: super::client::tls_config(ca_pem, true),
    };
    wait_ready(&target, Duration::from_secs(30)).await;
    server
}

/// Waits until `GET /EWS/small` through `target` answers 200.
pub async fn wait_ready(target: &Target, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let mut conn = target.connect().await;
        if conn.get("/EWS/small").await.is_some() {
            return;
        }
        assert!(Instant::now() < deadline, "the array did not become ready");
        // Health checks run every second: poll a few times per interval.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
