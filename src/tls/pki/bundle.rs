//! Putting a certificate together with its key and chain: complete, export,
//! import.

use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

use super::super::cert_info::CertInfo;
use super::error::PkiError;
use super::keys;
use super::make::CertAndKey;
use super::pem_text;

/// Completes a pending request: checks that `cert_pem` (the certificate the
/// CA returned, perhaps with its chain) was issued for `key_pem`, and that
/// each certificate is signed by the next one, then returns the chain as
/// casarray serves it: leaf first, then the certificates of `cert_pem`,
/// then those of `chain_pem` (duplicates dropped).
pub fn complete(
    key_pem: &str,
    cert_pem: &str,
    chain_pem: Option<&str>,
) -> Result<String, PkiError> {
    let mut certs = pem_text::certs("certificate", cert_pem)?;
    if let Some(chain) = chain_pem {
        for cert in pem_text::certs("chain", chain)? {
            if !certs.contains(&cert) {
                certs.push(cert);
            }
        }
    }
    let key = pem_text::private_key("key", key_pem)?;
    check_key(&key, &certs)?;
    check_chain(&certs)?;
    Ok(pem_text::encode_certs(&certs))
}

/// The certificate chain of `cert_pem` and the private key of `key_pem` in
/// one PEM file (chain first, then the key), after checking they belong
/// together: what `[tls] cert` accepts without `key`.
pub fn export(cert_pem: &str, key_pem: &str) -> Result<String, PkiError> {
    let certs = pem_text::certs("certificate", cert_pem)?;
    let key = pem_text::private_key("key", key_pem)?;
    check_key(&key, &certs)?;
    Ok(format!(
        "{}{}",
        pem_text::encode_certs(&certs),
        pem_text::encode_key(&key)
    ))
}

/// A bundle taken apart.
#[derive(Clone, PartialEq, Eq)]
pub struct Imported {
    /// The leaf's first DNS SAN, else its subject CN, else its subject.
    pub name: String,
    /// The chain, leaf first.
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Imported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Imported")
            .field("name", &self.name)
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// Splits an exported bundle into its chain and key, checking they match.
pub fn import(bundle_pem: &str) -> Result<Imported, PkiError> {
    let certs = pem_text::certs("bundle", bundle_pem)?;
    let key = pem_text::private_key("bundle", bundle_pem)?;
    check_key(&key, &certs)?;
    let name = leaf_info(&certs)?.display_name();
    Ok(Imported {
        name,
        cert_pem: pem_text::encode_certs(&certs),
        key_pem: pem_text::encode_key(&key),
    })
}

impl From<Imported> for CertAndKey {
    fn from(imported: Imported) -> Self {
        Self {
            cert_pem: imported.cert_pem,
            key_pem: imported.key_pem,
        }
    }
}

fn leaf_info(certs: &[CertificateDer<'static>]) -> Result<CertInfo, PkiError> {
    let leaf = certs.first().ok_or(PkiError::Missing {
        what: "certificate",
        item: "certificate",
    })?;
    CertInfo::from_der(leaf).map_err(|reason| PkiError::BadCertificate {
        what: "certificate",
        reason,
    })
}

fn check_key(key: &PrivateKeyDer<'_>, certs: &[CertificateDer<'static>]) -> Result<(), PkiError> {
    let info = leaf_info(certs)?;
    let leaf = certs.first().ok_or(PkiError::Missing {
        what: "certificate",
        item: "certificate",
    })?;
    if keys::matches("key", key, leaf)? {
        Ok(())
    } else {
        Err(PkiError::KeyMismatch {
            subject: info.subject,
        })
    }
}

fn parse(der: &[u8]) -> Result<X509Certificate<'_>, PkiError> {
    X509Certificate::from_der(der)
        .map(|(_, cert)| cert)
        .map_err(|e| PkiError::BadCertificate {
            what: "chain",
            reason: e.to_string(),
        })
}

/// Each certificate is signed by the one after it.
fn check_chain(certs: &[CertificateDer<'static>]) -> Result<(), PkiError> {
    for pair in certs.windows(2) {
        let (child, parent) = (parse(&pair[0])?, parse(&pair[1])?);
        let broken = |reason: String| PkiError::BrokenChain {
            subject: child.subject().to_string(),
            issuer: parent.subject().to_string(),
            reason,
        };
        if child.issuer().as_raw() != parent.subject().as_raw() {
            return Err(broken("issuer name differs".into()));
        }
        child
            .verify_signature(Some(parent.public_key()))
            .map_err(|e| broken(e.to_string()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::make::{issue, new_ca, request, self_signed};
    use super::*;

    fn issued() -> (CertAndKey, String, String) {
        let ca = new_ca("Lab Root CA").unwrap();
        let req = request("mail.lab.com", &["autodiscover.lab.com".into()]).unwrap();
        let cert = issue(&ca.cert_pem, &ca.key_pem, &req.csr_pem, 365).unwrap();
        (ca, req.key_pem, cert)
    }

    #[test]
    fn complete_appends_the_chain() {
        let (ca, key, cert) = issued();
        let chain = complete(&key, &cert, Some(&ca.cert_pem)).unwrap();
        let certs = pem_text::certs("out", &chain).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0], pem_text::certs("cert", &cert).unwrap()[0]);
        // Giving the CA twice keeps it once.
        let both = format!("{cert}{}", ca.cert_pem);
        let again = complete(&key, &both, Some(&ca.cert_pem)).unwrap();
        assert_eq!(again, chain);
        assert_eq!(
            complete(&key, &cert, None)
                .unwrap()
                .matches("BEGIN")
                .count(),
            1
        );
    }

    #[test]
    fn complete_refuses_a_foreign_key_or_a_wrong_chain() {
        let (ca, key, cert) = issued();
        let (_, other_key, _) = issued();
        let err = complete(&other_key, &cert, Some(&ca.cert_pem)).unwrap_err();
        assert!(matches!(err, PkiError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("does not match the certificate"));

        let other_ca = new_ca("Lab Root CA").unwrap();
        let err = complete(&key, &cert, Some(&other_ca.cert_pem)).unwrap_err();
        assert!(matches!(err, PkiError::BrokenChain { .. }), "{err}");
    }

    #[test]
    fn export_then_import_round_trips() {
        let (ca, key, cert) = issued();
        let chain = complete(&key, &cert, Some(&ca.cert_pem)).unwrap();
        let bundle = export(&chain, &key).unwrap();
        assert!(bundle.contains("-----BEGIN PRIVATE KEY-----"));
        let imported = import(&bundle).unwrap();
        assert_eq!(imported.name, "mail.lab.com");
        assert_eq!(imported.cert_pem, chain);
        assert_eq!(
            pem_text::private_key("a", &imported.key_pem).unwrap(),
            pem_text::private_key("b", &key).unwrap()
        );
        assert!(!format!("{imported:?}").contains("PRIVATE KEY"));
    }

    #[test]
    fn export_and_import_refuse_mismatches() {
        let made = self_signed("mail.lab.com", &[], 30).unwrap();
        let other = self_signed("mail.lab.com", &[], 30).unwrap();
        assert!(export(&made.cert_pem, &other.key_pem).is_err());
        let bad_bundle = format!("{}{}", made.cert_pem, other.key_pem);
        assert!(matches!(
            import(&bad_bundle),
            Err(PkiError::KeyMismatch { .. })
        ));
        assert!(matches!(
            import(&made.cert_pem),
            Err(PkiError::Missing {
                item: "private key",
                ..
            })
        ));
    }
}
