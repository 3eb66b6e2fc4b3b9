//! The certificate store: a default certificate plus SNI certificates, chosen
//! per handshake and swapped whole on reload.

use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::cert_info::CertInfo;
use super::error::TlsError;
use super::load::load_with_info;
use super::sni::NameIndex;
use super::time_fmt::{now_unix, rfc3339};
use crate::config::{CertKeyPaths, TlsConfig};

/// Certificates expiring within this many seconds are warned about (30 days).
const EXPIRY_WARNING_SECS: i64 = 30 * 86_400;

/// One certificate the store serves, as the admin API and metrics show it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServedCert {
    /// The first DNS SAN, else the subject CN.
    pub name: String,
    /// The subject as `CN=..., O=...`.
    pub subject: String,
    /// Lowercase hex, no separators.
    pub serial_hex: String,
    /// Seconds since the UNIX epoch.
    pub not_after_unix: i64,
    /// SHA-256 of the DER leaf certificate, lowercase hex.
    pub sha256_hex: String,
}

/// The certificates in use: a default one for clients without SNI or with
/// an unknown name, and more chosen by the DNS names of their SANs (exact,
/// case-insensitive, or a `*.` wildcard matching one label).
///
/// A reload builds a whole new set and swaps it in at once; handshakes in
/// flight keep the set they started with.
pub struct CertStore {
    current: ArcSwap<CertSet>,
}

/// One loaded, immutable set of certificates.
struct CertSet {
    default: Arc<CertifiedKey>,
    /// The `[[tls.sni]]` certificates; name index `i` (from 1) is `sni[i - 1]`,
    /// index 0 is the default.
    sni: Vec<Arc<CertifiedKey>>,
    names: NameIndex,
    served: Vec<ServedCert>,
}

impl CertStore {
    /// Loads the default certificate and every `[[tls.sni]]` one; any bad
    /// file fails the whole load.
    pub fn load(tls: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        Ok(Arc::new(Self {
            current: ArcSwap::from_pointee(CertSet::load(tls, now_unix())?),
        }))
    }

    /// Loads the certificates of `tls` anew and swaps them in. All or
    /// nothing: on error the previous set keeps serving.
    pub fn reload(&self, tls: &TlsConfig) -> Result<(), TlsError> {
        let set = CertSet::load(tls, now_unix())?;
        self.current.store(Arc::new(set));
        Ok(())
    }

    /// The certificates served now, the default first.
    pub fn served(&self) -> Vec<ServedCert> {
        self.current.load().served.clone()
    }

    /// Whether some served certificate carries `name` (exactly or by a
    /// wildcard): clients that use a name no certificate carries get a
    /// certificate error.
    pub fn covers(&self, name: &str) -> bool {
        self.current.load().names.lookup(name).is_some()
    }

    /// The certificate for a client that asked for `server_name` (SNI):
    /// the one carrying that name, else the default.
    pub fn select(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        self.current.load().select(server_name)
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.select(client_hello.server_name()))
    }
}

impl fmt::Debug for CertStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = self.current.load();
        f.debug_struct("CertStore")
            .field(
                "served",
                &set.served
                    .iter()
                    .map(|c| c.name.as_str())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CertSet {
    fn load(tls: &TlsConfig, now: i64) -> Result<Self, TlsError> {
        let mut names = NameIndex::default();
        let mut served = Vec::with_capacity(1 + tls.sni.len());
        let mut load_one = |index: usize, paths: &CertKeyPaths| {
            let (key, info) = load_with_info(paths, now)?;
            for name in &info.dns_names {
                names.insert(name, index);
            }
            warn_if_expiring(paths, &info, now);
            served.push(ServedCert {
                name: info.display_name(),
                subject: info.subject,
                serial_hex: info.serial_hex,
                not_after_unix: info.not_after_unix,
                sha256_hex: info.sha256_hex,
            });
            Ok::<_, TlsError>(Arc::new(key))
        };
        let default = load_one(0, &tls.default)?;
        let sni = tls
            .sni
            .iter()
            .enumerate()
            .map(|(i, paths)| load_one(i + 1, paths))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            default,
            sni,
            names,
            served,
        })
    }

    fn select(&self, server_name: Option<&str>) -> Arc<CertifiedKey> {
        let chosen = server_name
            .and_then(|name| self.names.lookup(name))
            .and_then(|index| index.checked_sub(1))
            .and_then(|index| self.sni.get(index));
        Arc::clone(chosen.unwrap_or(&self.default))
    }
}

fn warn_if_expiring(paths: &CertKeyPaths, info: &CertInfo, now: i64) {
    if info.not_after_unix - now < EXPIRY_WARNING_SECS {
        tracing::warn!(
            certificate = %info.display_name(),
            file = %paths.cert.display(),
            not_after = %rfc3339(info.not_after_unix),
            "certificate expires within 30 days"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::cert_info::sha256_hex;
    use super::super::test_certs::{tls_config, Pki, DAY};
    use super::*;

    fn leaf_hash(store: &CertStore, name: Option<&str>) -> String {
        sha256_hex(&store.select(name).cert[0])
    }

    #[test]
    fn picks_by_sni_exact_wildcard_or_default() {
        let pki = Pki::new();
        let tls = tls_config(
            pki.leaf("mail", &["mail.lab.com"], 0, 90 * DAY),
            vec![
                pki.leaf("wild", &["*.lab.com"], 0, 90 * DAY),
                pki.leaf(
                    "legacy",
                    &["Legacy.Lab.Com", "old.example.org"],
                    0,
                    90 * DAY,
                ),
            ],
        );
        let store = CertStore::load(&tls).unwrap();
        let served = store.served();
        assert_eq!(served.len(), 3);
        let [mail, wild, legacy] = [0, 1, 2].map(|i| served[i].sha256_hex.clone());

        assert_eq!(leaf_hash(&store, Some("mail.lab.com")), mail);
        assert_eq!(leaf_hash(&store, Some("MAIL.LAB.COM")), mail);
        assert_eq!(leaf_hash(&store, Some("owa.lab.com")), wild);
        assert_eq!(
            leaf_hash(&store, Some("legacy.lab.com")),
            legacy,
            "exact beats wildcard"
        );
        assert_eq!(leaf_hash(&store, Some("old.example.org")), legacy);
        assert_eq!(
            leaf_hash(&store, Some("a.b.lab.com")),
            mail,
            "wildcard is one label"
        );
        assert_eq!(leaf_hash(&store, Some("unknown.test")), mail);
        assert_eq!(leaf_hash(&store, None), mail);
    }

    #[test]
    fn served_describes_the_certificates() {
        let pki = Pki::new();
        let store = CertStore::load(&tls_config(
            pki.leaf(
                "mail",
                &["mail.lab.com", "autodiscover.lab.com"],
                0,
                90 * DAY,
            ),
            vec![],
        ))
        .unwrap();
        let served = store.served();
        assert_eq!(served.len(), 1);
        assert_eq!(served[0].name, "mail.lab.com");
        assert_eq!(served[0].subject, "CN=mail.lab.com");
        assert!(!served[0].serial_hex.is_empty());
        assert!((served[0].not_after_unix - now_unix() - 90 * DAY).abs() < 60);
        assert_eq!(served[0].sha256_hex.len(), 64);
        assert!(format!("{store:?}").contains("mail.lab.com"));
    }

    #[test]
    fn a_bad_reload_keeps_the_old_set() {
        let pki = Pki::new();
        let old = tls_config(pki.leaf("old", &["mail.lab.com"], 0, 90 * DAY), vec![]);
        let store = CertStore::load(&old).unwrap();
        let before = store.served();

        let good = pki.leaf("new", &["mail.lab.com"], 0, 90 * DAY);
        let other = pki.leaf("other", &["other.lab.com"], 0, 90 * DAY);
        let mismatched = CertKeyPaths {
            cert: other.cert.clone(),
            key: good.key.clone(),
        };
        let err = store
            .reload(&tls_config(good.clone(), vec![mismatched]))
            .unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert_eq!(store.served(), before);
        assert_eq!(leaf_hash(&store, None), before[0].sha256_hex);

        let expired = pki.leaf("expired", &["mail.lab.com"], -10 * DAY, -DAY);
        assert!(store.reload(&tls_config(expired, vec![])).is_err());
        assert_eq!(store.served(), before);

        store.reload(&tls_config(good, vec![other])).unwrap();
        let after = store.served();
        assert_eq!(after.len(), 2);
        assert_ne!(after[0].sha256_hex, before[0].sha256_hex);
        assert_eq!(
            leaf_hash(&store, Some("other.lab.com")),
            after[1].sha256_hex
        );
    }

    #[test]
    fn a_certificate_expiring_soon_still_loads() {
        let pki = Pki::new();
        let store = CertStore::load(&tls_config(
            pki.leaf("soon", &["mail.lab.com"], 0, 5 * DAY),
            vec![],
        ))
        .unwrap();
        assert_eq!(store.served().len(), 1);
    }
}
