//! The rustls server configuration around a [`CertStore`].

use std::sync::Arc;

use rustls::server::{NoServerSessionStorage, ProducesTickets, ServerSessionMemoryCache};
use rustls::ServerConfig;

use super::store::CertStore;
use crate::config::TlsConfig;

/// Server-side TLS session cache size when resumption is on (entries).
const SESSION_CACHE_ENTRIES: usize = 20_000;

/// The rustls `ServerConfig` the HTTPS listener uses: aws-lc-rs only,
/// TLS 1.3 and 1.2, no client certificates, ALPN `h2` then `http/1.1`,
/// certificates from `store` (live: a store reload needs no new config).
///
/// With `tls.session_resumption` (default true): a server session cache of
/// 20 000 entries and stateless tickets sealed by `shared_tickets` (the
/// cluster's keys, shared by every instance) or, without it, by this
/// process's own keys (rotated every 6 h); without resumption, neither and
/// no TLS 1.3 tickets sent. No 0-RTT early data.
pub fn server_config(
    store: Arc<CertStore>,
    tls: &TlsConfig,
    shared_tickets: Option<Arc<dyn ProducesTickets>>,
) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        // The built-in aws-lc-rs provider always has suites for both versions.
        .expect("aws-lc-rs provider supports TLS 1.3 and 1.2")
        .with_no_client_auth()
        .with_cert_resolver(store);
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config.max_early_data_size = 0;
    if tls.session_resumption {
        config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        let ticketer = match shared_tickets {
            Some(t) => Ok(t),
            None => rustls::crypto::aws_lc_rs::Ticketer::new(),
        };
        match ticketer {
            Ok(ticketer) => {
                config.ticketer = ticketer;
                // rustls sends two by default. One is enough: every
                // connection, resumed ones too, hands its client a fresh
                // ticket for the next, and sealing half as many saves
                // CPU on every handshake.
                config.send_tls13_tickets = 1;
            }
            Err(error) => tracing::warn!(%error, "TLS session tickets disabled"),
        }
    } else {
        config.session_storage = Arc::new(NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Arc::new(config)
}

#[cfg(test)]
mod tests {
    use super::super::test_certs::{handshake, tls_config, Pki, DAY};
    use super::*;

    #[test]
    fn handshakes_with_sni_alpn_and_tls13() {
        let pki = Pki::new();
        let tls = tls_config(
            pki.leaf("mail", &["mail.lab.com", "127.0.0.1"], 0, 90 * DAY),
            vec![pki.leaf("wild", &["*.lab.com"], 0, 90 * DAY)],
        );
        let store = CertStore::load(&tls).unwrap();
        let served = store.served();
        let config = server_config(store, &tls, None);

        let seen = handshake(Arc::clone(&config), pki.ca_pem(), "owa.lab.com").unwrap();
        assert_eq!(seen.leaf_sha256, served[1].sha256_hex);
        assert_eq!(seen.alpn.as_deref(), Some(&b"h2"[..]));
        assert_eq!(seen.version, Some(rustls::ProtocolVersion::TLSv1_3));

        let seen = handshake(Arc::clone(&config), pki.ca_pem(), "mail.lab.com").unwrap();
        assert_eq!(seen.leaf_sha256, served[0].sha256_hex);

        // An IP address: the client sends no SNI and gets the default.
        let seen = handshake(config, pki.ca_pem(), "127.0.0.1").unwrap();
        assert_eq!(seen.leaf_sha256, served[0].sha256_hex);
    }

    #[test]
    fn reload_is_seen_by_an_existing_config() {
        let pki = Pki::new();
        let tls = tls_config(pki.leaf("a", &["mail.lab.com"], 0, 90 * DAY), vec![]);
        let store = CertStore::load(&tls).unwrap();
        let config = server_config(Arc::clone(&store), &tls, None);
        let renewed = tls_config(pki.leaf("b", &["mail.lab.com"], 0, 90 * DAY), vec![]);
        store.reload(&renewed).unwrap();
        let seen = handshake(config, pki.ca_pem(), "mail.lab.com").unwrap();
        assert_eq!(seen.leaf_sha256, store.served()[0].sha256_hex);
    }

    #[test]
    fn resumption_switches() {
        let pki = Pki::new();
        let mut tls = tls_config(pki.leaf("a", &["mail.lab.com"], 0, 90 * DAY), vec![]);
        let store = CertStore::load(&tls).unwrap();

        let on = server_config(Arc::clone(&store), &tls, None);
        assert!(on.ticketer.enabled());
        assert!(on.session_storage.can_cache());
        assert_eq!(on.max_early_data_size, 0);
        assert_eq!(
            on.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );

        tls.session_resumption = false;
        let off = server_config(store, &tls, None);
        assert!(!off.ticketer.enabled());
        assert!(!off.session_storage.can_cache());
        assert_eq!(off.send_tls13_tickets, 0);
        assert!(handshake(off, pki.ca_pem(), "mail.lab.com").is_ok());
    }
}
