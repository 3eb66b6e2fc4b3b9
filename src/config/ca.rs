//! The `[member_tls] ca` file: a PEM bundle of CA certificates, read and
//! checked when the config is loaded, so that a bad file is a config error.

use std::path::Path;

use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::CertificateDer;

/// Every `CERTIFICATE` section of the file at `path` (other sections are
/// skipped); each must be usable as a trust anchor. The error says what is
/// wrong with the file, as the end of a sentence naming it.
pub(crate) fn read_bundle(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot be read: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| match e {
            pem::Error::Io(e) => format!("cannot be read: {e}"),
            other => format!("is not valid PEM: {other}"),
        })?;
    if certs.is_empty() {
        return Err(
            "holds no certificate (expected PEM \"-----BEGIN CERTIFICATE-----\" sections)".into(),
        );
    }
    let mut roots = rustls::RootCertStore::empty();
    for (i, cert) in certs.iter().enumerate() {
        roots.add(cert.clone()).map_err(|e| {
            format!(
                "certificate {} of {} cannot be used as a CA: {e}",
                i + 1,
                certs.len()
            )
        })?;
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ca_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.self_signed(&key).unwrap().pem()
    }

    #[test]
    fn reads_every_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        std::fs::write(&path, format!("{}{}", ca_pem(), ca_pem())).unwrap();
        assert_eq!(read_bundle(&path).unwrap().len(), 2);
    }

    #[test]
    fn says_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ca.crt");
        assert!(read_bundle(&path)
            .unwrap_err()
            .starts_with("cannot be read: "));
        std::fs::write(&path, "not a certificate\n").unwrap();
        assert!(read_bundle(&path)
            .unwrap_err()
            .starts_with("holds no certificate"));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(read_bundle(&path)
            .unwrap_err()
            .starts_with("is not valid PEM: "));
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = read_bundle(&path).unwrap_err();
        assert!(
            e.starts_with("certificate 1 of 1 cannot be used as a CA: "),
            "{e}"
        );
    }
}
