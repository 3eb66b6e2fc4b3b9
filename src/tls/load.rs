//! Loading a certificate chain and its private key from base64 PEM files.

use std::path::Path;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::cert_info::CertInfo;
use super::error::TlsError;
use super::time_fmt::{now_unix, rfc3339};
use crate::config::CertKeyPaths;

/// Loads `paths.cert` (leaf first, then the chain) and its private key
/// (from `paths.key`, or from the certificate file itself when `key` is
/// `None`: an exported bundle).
///
/// Refuses a key that does not match the leaf and a leaf outside its
/// validity period. Keys: RSA, ECDSA P-256/P-384 and Ed25519, in PKCS#8,
/// PKCS#1 or SEC1 form, as the aws-lc-rs provider loads them.
pub fn load_certified_key(paths: &CertKeyPaths) -> Result<CertifiedKey, TlsError> {
    load_with_info(paths, now_unix()).map(|(key, _)| key)
}

/// [`load_certified_key`] at time `now` (UNIX seconds), also returning what
/// the leaf says about itself.
pub(crate) fn load_with_info(
    paths: &CertKeyPaths,
    now: i64,
) -> Result<(CertifiedKey, CertInfo), TlsError> {
    let cert_pem = read(&paths.cert)?;
    let certs = read_certs(&paths.cert, &cert_pem)?;
    let (key_path, key_der) = match &paths.key {
        Some(key_path) => (key_path.as_path(), read_key(key_path, &read(key_path)?)?),
        None => (paths.cert.as_path(), read_key(&paths.cert, &cert_pem)?),
    };

    let bad_cert = |reason: String| TlsError::BadCertificate {
        path: paths.cert.clone(),
        reason,
    };
    let info = certs
        .first()
        .ok_or_else(|| TlsError::NoCertificate {
            path: paths.cert.clone(),
        })
        .and_then(|leaf| CertInfo::from_der(leaf).map_err(bad_cert))?;
    for (index, chain_cert) in certs.iter().enumerate().skip(1) {
        CertInfo::from_der(chain_cert)
            .map_err(|reason| bad_cert(format!("chain certificate {index}: {reason}")))?;
    }

    let signing_key = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| TlsError::UnsupportedKey {
            path: key_path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch {
                key: key_path.to_path_buf(),
                cert: paths.cert.clone(),
            })
        }
        Err(other) => return Err(bad_cert(other.to_string())),
    }

    if now > info.not_after_unix {
        return Err(TlsError::Expired {
            path: paths.cert.clone(),
            not_after: rfc3339(info.not_after_unix),
        });
    }
    if now < info.not_before_unix {
        return Err(TlsError::NotYetValid {
            path: paths.cert.clone(),
            not_before: rfc3339(info.not_before_unix),
        });
    }
    Ok((certified, info))
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Every `CERTIFICATE` section of `pem`, in order; other sections are skipped.
fn read_certs(path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

/// The first private key section of `pem`.
fn read_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_path_buf(),
        },
        other => pem_error(path, other),
    })
}

fn pem_error(path: &Path, error: pem::Error) -> TlsError {
    match error {
        pem::Error::Io(source) => TlsError::Read {
            path: path.to_path_buf(),
            source,
        },
        other => TlsError::Pem {
            path: path.to_path_buf(),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_certs::{Pki, DAY};
    use super::*;

    #[test]
    fn loads_leaf_and_chain() {
        let pki = Pki::new();
        let paths = pki.leaf("mail", &["mail.lab.com"], 0, 90 * DAY);
        let key = load_certified_key(&paths).unwrap();
        assert_eq!(key.cert.len(), 2, "leaf then the CA");
    }

    #[test]
    fn loads_a_bundle_with_the_key_inside() {
        let pki = Pki::new();
        let paths = pki.leaf("mail", &["mail.lab.com"], 0, 90 * DAY);
        let bundle = pki.bundle(&paths);
        let key = load_certified_key(&CertKeyPaths {
            cert: bundle,
            key: None,
        })
        .unwrap();
        assert_eq!(key.cert.len(), 2);
    }

    #[test]
    fn refuses_a_key_of_another_certificate() {
        let pki = Pki::new();
        let a = pki.leaf("a", &["a.lab.com"], 0, 90 * DAY);
        let b = pki.leaf("b", &["b.lab.com"], 0, 90 * DAY);
        let err = load_certified_key(&CertKeyPaths {
            cert: a.cert.clone(),
            key: b.key.clone(),
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        let text = err.to_string();
        assert!(text.contains("b.key: private key does not match the certificate"));
        assert!(text.contains("a.crt"), "{text}");
    }

    #[test]
    fn refuses_an_expired_certificate() {
        let pki = Pki::new();
        let paths = pki.leaf("old", &["old.lab.com"], -100 * DAY, -DAY);
        let err = load_certified_key(&paths).unwrap_err();
        assert!(matches!(err, TlsError::Expired { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("old.crt: certificate expired on 20"),
            "{text}"
        );
        assert!(text.ends_with('Z'), "{text}");
    }

    #[test]
    fn refuses_a_certificate_not_yet_valid() {
        let pki = Pki::new();
        let paths = pki.leaf("new", &["new.lab.com"], 10 * DAY, 100 * DAY);
        let err = load_certified_key(&paths).unwrap_err();
        assert!(matches!(err, TlsError::NotYetValid { .. }), "{err}");
    }

    #[test]
    fn names_the_file_when_there_is_no_certificate() {
        let pki = Pki::new();
        let paths = pki.leaf("mail", &["mail.lab.com"], 0, 90 * DAY);
        let err = load_certified_key(&CertKeyPaths {
            cert: paths.key.clone().unwrap(),
            key: paths.key.clone(),
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().ends_with("mail.key: no certificate found"));
    }

    #[test]
    fn names_the_file_when_there_is_no_key() {
        let pki = Pki::new();
        let paths = pki.leaf("mail", &["mail.lab.com"], 0, 90 * DAY);
        let err = load_certified_key(&CertKeyPaths {
            cert: paths.cert.clone(),
            key: None,
        })
        .unwrap_err();
        assert!(err.to_string().ends_with("mail.crt: no private key found"));
    }

    #[test]
    fn reports_a_missing_file() {
        let pki = Pki::new();
        let err = load_certified_key(&CertKeyPaths {
            cert: pki.dir().join("absent.crt"),
            key: None,
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains("absent.crt: cannot read"));
    }

    #[test]
    fn reports_broken_base64() {
        let pki = Pki::new();
        let path = pki.dir().join("broken.crt");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = load_certified_key(&CertKeyPaths {
            cert: path,
            key: None,
        })
        .unwrap_err();
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
    }
}
