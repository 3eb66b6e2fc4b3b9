//! The live status page on the admin listener: the array at a glance, in a
//! browser. Served by the binary itself (the files are embedded: no CDN, no
//! build step, works offline).
//!
//! - `GET /` and `GET /status`: the page ([`assets`]); its script and style
//!   under `/status/`. Open like `/healthz` (they hold no data); every
//!   answer carries a Content-Security-Policy allowing only `'self'` for
//!   scripts, styles and connections, and the page has no inline script or
//!   style.
//! - `GET /api/series`: requests and 5xx errors per second, whole array and
//!   per member, one sample a second for the last 10 minutes ([`series`],
//!   taken by the [`sampler`]).
//! - `GET /api/overview`: the latest rates, certificates, reloads, SMTP
//!   hubs and blocked requests ([`overview`]).
//!
//! The page polls those two and `GET /api/array`, `/api/members`,
//! `/api/databases` every second; its actions are the API's
//! `POST /api/members/{name}/drain|activate` and
//! `POST /api/databases/{name}/move-active`, sent with the admin token the
//! user types (kept in a script variable only).

mod assets;
mod overview;
mod reading;
mod sampler;
mod series;

pub use assets::Asset;
pub use sampler::{Sampler, Sampling};

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arc_swap::ArcSwap;

    use crate::live::Live;
    use crate::metrics::Metrics;
    use crate::snapshot::Snapshot;
    use crate::upstream::state::Registry;

    /// A snapshot of an array of EX1 (with an SMTP address) and EX2, with
    /// `listen_extra` under `[listen]`.
    pub fn snapshot(listen_extra: &str) -> Snapshot {
        snapshot_with(&Metrics::new().unwrap(), listen_extra)
    }

    fn snapshot_with(metrics: &Metrics, listen_extra: &str) -> Snapshot {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("bundle.pem"), "x").unwrap();
        let text = format!(
            "[array]\nname = \"a\"\nfqdn = \"mail.lab.com\"\n\
             [listen]\nhttps = \"127.0.0.1:0\"\nadmin = \"127.0.0.1:0\"\n{listen_extra}\
             [tls]\ncert = \"bundle.pem\"\n\
             [[member]]\nname = \"EX1\"\naddress = \"127.0.0.1:9001\"\nsmtp = \"127.0.0.1:2501\"\n\
             [[member]]\nname = \"EX2\"\naddress = \"127.0.0.1:9002\"\n"
        );
        let path = dir.path().join("casarray.toml");
        std::fs::write(&path, &text).unwrap();
        let cfg = Arc::new(crate::config::load(&path).unwrap());
        Snapshot::build(cfg, &Registry::new(), metrics, None).unwrap()
    }

    /// A [`Live`] around [`snapshot`] (no certificate: nothing handshakes).
    pub struct LiveFixture {
        pub live: Arc<Live>,
    }

    pub fn live() -> LiveFixture {
        #[derive(Debug)]
        struct NoCert;
        impl rustls::server::ResolvesServerCert for NoCert {
            fn resolve(
                &self,
                _: rustls::server::ClientHello<'_>,
            ) -> Option<Arc<rustls::sign::CertifiedKey>> {
                None
            }
        }
        let metrics = Metrics::new().unwrap();
        let snap = snapshot_with(&metrics, "");
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(NoCert));
        LiveFixture {
            live: Arc::new(Live {
                snapshot: ArcSwap::from_pointee(snap),
                tls: ArcSwap::from_pointee(tls),
                metrics,
                limit: Arc::new(tokio::sync::Semaphore::new(10)),
                dag: crate::dag::Dag::new(),
            }),
        }
    }
}
