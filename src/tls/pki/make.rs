//! Making certificates: a CA, a request, issuing from a request, self-signed.

use std::net::IpAddr;

use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, DnValue, ExtendedKeyUsagePurpose, IsCa, KeyUsagePurpose, SanType, SerialNumber,
};

use super::super::cert_info::CertInfo;
use super::super::time_fmt::{now_unix, set_validity};
use super::error::PkiError;
pub use super::error::MAX_DAYS;
use super::keys::{self, KeyType};
use super::pem_text;

/// Validity of a new CA (3 650 days).
pub const CA_DAYS: u32 = 3_650;
/// Certificates start this long before they are made (1 h), for clocks
/// running behind.
const BACKDATE_SECS: i64 = 3_600;

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct CertAndKey {
    pub cert_pem: String,
    /// PKCS#8 PEM.
    pub key_pem: String,
}

/// A certificate request (PKCS#10) and the private key it was made with.
#[derive(Clone, PartialEq, Eq)]
pub struct CertRequest {
    /// PKCS#8 PEM.
    pub key_pem: String,
    pub csr_pem: String,
}

// Keep private keys out of logs.
impl std::fmt::Debug for CertAndKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertAndKey")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CertRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertRequest")
            .field("csr_pem", &self.csr_pem)
            .finish_non_exhaustive()
    }
}

/// A new root CA named `name` (subject CN), ECDSA P-256, valid 3 650 days,
/// allowed to issue end-entity certificates only (path length 0).
pub fn new_ca(name: &str) -> Result<CertAndKey, PkiError> {
    new_ca_with(name, KeyType::default())
}

/// [`new_ca`] with a chosen key type.
pub fn new_ca_with(name: &str, key_type: KeyType) -> Result<CertAndKey, PkiError> {
    check_ca_name(name)?;
    let key = keys::generate(key_type)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.serial_number = Some(random_serial()?);
    set_days(&mut params, CA_DAYS)?;
    let cert = params
        .self_signed(&key)
        .map_err(rcgen_error("CA certificate"))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// A new key (ECDSA P-256) and a certificate request for `fqdn`: subject
/// `CN=fqdn`, SANs `fqdn` then `sans` (duplicates dropped; IP addresses
/// become IP SANs).
pub fn request(fqdn: &str, sans: &[String]) -> Result<CertRequest, PkiError> {
    request_with(fqdn, sans, KeyType::default())
}

/// [`request`] with a chosen key type.
pub fn request_with(
    fqdn: &str,
    sans: &[String],
    key_type: KeyType,
) -> Result<CertRequest, PkiError> {
    let params = server_params(fqdn, sans)?;
    let key = keys::generate(key_type)?;
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(rcgen_error("certificate request"))?;
    Ok(CertRequest {
        key_pem: key.serialize_pem(),
        csr_pem: csr,
    })
}

/// Issues a server certificate for the request `csr_pem`, signed by the CA,
/// valid from 1 h ago for `days` days (1 to 36 500).
///
/// Keeps the subject and SANs of the request (a request without SANs gets
/// its common name as DNS SAN) and nothing else it asks for: the
/// certificate is never a CA, has a random 128-bit serial, extended key
/// usage serverAuth, key usage digitalSignature (plus keyEncipherment for
/// RSA keys). Returns the certificate alone, PEM.
pub fn issue(
    ca_cert_pem: &str,
    ca_key_pem: &str,
    csr_pem: &str,
    days: u32,
) -> Result<String, PkiError> {
    let ca_cert = pem_text::certs("CA certificate", ca_cert_pem)?
        .into_iter()
        .next()
        .ok_or(PkiError::Missing {
            what: "CA certificate",
            item: "certificate",
        })?;
    let ca_info = CertInfo::from_der(&ca_cert).map_err(|reason| PkiError::BadCertificate {
        what: "CA certificate",
        reason,
    })?;
    if !ca_info.is_ca {
        return Err(PkiError::NotACa {
            subject: ca_info.subject,
        });
    }
    let ca_key_der = pem_text::private_key("CA key", ca_key_pem)?;
    if !keys::matches("CA key", &ca_key_der, &ca_cert)? {
        return Err(PkiError::CaKeyMismatch {
            subject: ca_info.subject,
        });
    }
    let ca_key = keys::parse("CA key", ca_key_pem)?;
    let issuer = rcgen::Issuer::from_ca_cert_der(&ca_cert, &ca_key)
        .map_err(rcgen_error("CA certificate"))?;

    let request =
        CertificateSigningRequestParams::from_pem(csr_pem).map_err(|e| PkiError::BadRequest {
            reason: e.to_string(),
        })?;
    let is_rsa = request.public_key.algorithm() == &rcgen::PKCS_RSA_SHA256
        || request.public_key.algorithm() == &rcgen::PKCS_RSA_SHA384
        || request.public_key.algorithm() == &rcgen::PKCS_RSA_SHA512;
    let mut params = CertificateParams::default();
    params.distinguished_name = request.params.distinguished_name.clone();
    params.subject_alt_names = request.params.subject_alt_names.clone();
    if params.subject_alt_names.is_empty() {
        params.subject_alt_names = san_from_common_name(&params.distinguished_name)?;
    }
    server_usages(&mut params, is_rsa);
    params.use_authority_key_identifier_extension = true;
    params.serial_number = Some(random_serial()?);
    set_days(&mut params, days)?;
    let cert = params
        .signed_by(&request.public_key, &issuer)
        .map_err(rcgen_error("certificate"))?;
    Ok(cert.pem())
}

/// A self-signed server certificate for `fqdn` (and `sans`), valid from
/// 1 h ago for `days` days, with a new ECDSA P-256 key.
pub fn self_signed(fqdn: &str, sans: &[String], days: u32) -> Result<CertAndKey, PkiError> {
    self_signed_with(fqdn, sans, days, KeyType::default())
}

/// [`self_signed`] with a chosen key type.
pub fn self_signed_with(
    fqdn: &str,
    sans: &[String],
    days: u32,
    key_type: KeyType,
) -> Result<CertAndKey, PkiError> {
    let mut params = server_params(fqdn, sans)?;
    server_usages(&mut params, key_type == KeyType::Rsa2048);
    params.serial_number = Some(random_serial()?);
    set_days(&mut params, days)?;
    let key = keys::generate(key_type)?;
    let cert = params
        .self_signed(&key)
        .map_err(rcgen_error("certificate"))?;
    Ok(CertAndKey {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

/// Subject `CN=fqdn` and SANs `fqdn` then `sans`, each checked, without
/// duplicates (case-insensitive).
fn server_params(fqdn: &str, sans: &[String]) -> Result<CertificateParams, PkiError> {
    let mut names: Vec<String> = Vec::with_capacity(1 + sans.len());
    for name in std::iter::once(fqdn).chain(sans.iter().map(String::as_str)) {
        check_host_name(name)?;
        if !names.iter().any(|known| known.eq_ignore_ascii_case(name)) {
            names.push(name.to_owned());
        }
    }
    let mut params =
        CertificateParams::new(names).map_err(rcgen_error("subject alternative names"))?;
    params.distinguished_name = common_name(fqdn);
    Ok(params)
}

fn server_usages(params: &mut CertificateParams, rsa: bool) {
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    if rsa {
        params.key_usages.push(KeyUsagePurpose::KeyEncipherment);
    }
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
}

fn common_name(name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, name);
    dn
}

/// The DNS SAN of a request that carries none: its common name.
fn san_from_common_name(dn: &DistinguishedName) -> Result<Vec<SanType>, PkiError> {
    let cn = match dn.get(&DnType::CommonName) {
        Some(DnValue::Utf8String(s)) => s.clone(),
        Some(DnValue::PrintableString(s)) => s.as_str().to_owned(),
        Some(DnValue::Ia5String(s)) => s.as_str().to_owned(),
        _ => {
            return Err(PkiError::BadRequest {
                reason: "no subject alternative name and no common name to use as one".into(),
            })
        }
    };
    check_host_name(&cn)?;
    CertificateParams::new(vec![cn])
        .map(|p| p.subject_alt_names)
        .map_err(rcgen_error("subject alternative names"))
}

fn set_days(params: &mut CertificateParams, days: u32) -> Result<(), PkiError> {
    if days == 0 || days > MAX_DAYS {
        return Err(PkiError::InvalidDays { days });
    }
    let now = now_unix();
    set_validity(params, now - BACKDATE_SECS, now + i64::from(days) * 86_400);
    Ok(())
}

/// 16 random bytes, positive (top bit clear) and without a leading zero byte.
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes).map_err(|_| PkiError::Random)?;
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

fn rcgen_error(what: &'static str) -> impl Fn(rcgen::Error) -> PkiError {
    move |source| PkiError::Rcgen { what, source }
}

/// A DNS name (labels of letters, digits, `-` and `_`, the first label may
/// be `*`) or an IP address.
pub(crate) fn check_host_name(name: &str) -> Result<(), PkiError> {
    let invalid = |reason| {
        Err(PkiError::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    if name.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    if name.is_empty() || name.len() > 253 {
        return invalid("a host name has 1 to 253 characters");
    }
    for (index, label) in name.split('.').enumerate() {
        if index == 0 && label == "*" {
            continue;
        }
        if label.is_empty() || label.len() > 63 {
            return invalid("each label has 1 to 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return invalid(
                "a host name has only letters, digits, '-', '_' and '.' (and a leading '*.')",
            );
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid("a label neither starts nor ends with '-'");
        }
    }
    Ok(())
}

fn check_ca_name(name: &str) -> Result<(), PkiError> {
    if name.trim().is_empty() || name.chars().count() > 64 {
        return Err(PkiError::InvalidName {
            name: name.to_owned(),
            reason: "a CA name has 1 to 64 characters",
        });
    }
    if name.chars().any(char::is_control) {
        return Err(PkiError::InvalidName {
            name: name.to_owned(),
            reason: "a CA name has no control characters",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pem: &str) -> CertInfo {
        CertInfo::from_der(&pem_text::certs("test", pem).unwrap()[0]).unwrap()
    }

    fn verify(cert_pem: &str, issuer_pem: &str) {
        use x509_parser::prelude::FromDer;
        let cert_der = &pem_text::certs("cert", cert_pem).unwrap()[0];
        let issuer_der = &pem_text::certs("issuer", issuer_pem).unwrap()[0];
        let (_, cert) = x509_parser::certificate::X509Certificate::from_der(cert_der).unwrap();
        let (_, issuer) = x509_parser::certificate::X509Certificate::from_der(issuer_der).unwrap();
        cert.verify_signature(Some(issuer.public_key())).unwrap();
        assert_eq!(cert.issuer().as_raw(), issuer.subject().as_raw());
    }

    #[test]
    fn ca_request_issue() {
        let ca = new_ca("Lab Root CA").unwrap();
        let ca_info = info(&ca.cert_pem);
        assert!(ca_info.is_ca);
        assert_eq!(ca_info.subject, "CN=Lab Root CA");

        let req = request(
            "mail.lab.com",
            &[
                "autodiscover.lab.com".into(),
                "MAIL.lab.com".into(),
                "10.0.0.1".into(),
            ],
        )
        .unwrap();
        assert!(req
            .csr_pem
            .starts_with("-----BEGIN CERTIFICATE REQUEST-----"));
        let cert = issue(&ca.cert_pem, &ca.key_pem, &req.csr_pem, 825).unwrap();
        let leaf = info(&cert);
        assert_eq!(leaf.subject, "CN=mail.lab.com");
        assert_eq!(leaf.issuer, "CN=Lab Root CA");
        assert_eq!(leaf.dns_names, vec!["mail.lab.com", "autodiscover.lab.com"]);
        assert_eq!(leaf.ip_addresses, vec!["10.0.0.1"]);
        assert!(!leaf.is_ca);
        assert_eq!(leaf.serial_hex.len(), 32);
        let now = now_unix();
        assert!((leaf.not_before_unix - (now - 3600)).abs() < 60);
        assert!((leaf.not_after_unix - (now + 825 * 86_400)).abs() < 60);
        verify(&cert, &ca.cert_pem);

        let again = issue(&ca.cert_pem, &ca.key_pem, &req.csr_pem, 825).unwrap();
        assert_ne!(
            info(&again).serial_hex,
            leaf.serial_hex,
            "serials are random"
        );
    }

    #[test]
    fn rsa_keys_work_end_to_end() {
        let ca = new_ca_with("RSA CA", KeyType::Rsa2048).unwrap();
        let req = request_with("old.lab.com", &[], KeyType::Rsa2048).unwrap();
        let cert = issue(&ca.cert_pem, &ca.key_pem, &req.csr_pem, 30).unwrap();
        verify(&cert, &ca.cert_pem);
        assert!(keys::matches(
            "key",
            &pem_text::private_key("key", &req.key_pem).unwrap(),
            &pem_text::certs("cert", &cert).unwrap()[0]
        )
        .unwrap());
    }

    #[test]
    fn a_request_asking_to_be_a_ca_is_not_made_one() {
        let ca = new_ca("Lab Root CA").unwrap();
        let key = keys::generate(KeyType::EcdsaP256).unwrap();
        let mut params = CertificateParams::new(vec!["evil.lab.com".to_string()]).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let cert = issue(&ca.cert_pem, &ca.key_pem, &csr, 30).unwrap();
        assert!(!info(&cert).is_ca);
    }

    #[test]
    fn a_request_without_sans_gets_its_common_name() {
        let ca = new_ca("Lab Root CA").unwrap();
        let key = keys::generate(KeyType::EcdsaP256).unwrap();
        let mut params = CertificateParams::default();
        params.distinguished_name = common_name("legacy.lab.com");
        let csr = params.serialize_request(&key).unwrap().pem().unwrap();
        let cert = issue(&ca.cert_pem, &ca.key_pem, &csr, 30).unwrap();
        assert_eq!(info(&cert).dns_names, vec!["legacy.lab.com"]);
    }

    #[test]
    fn issue_refuses_bad_inputs() {
        let ca = new_ca("Lab Root CA").unwrap();
        let other = new_ca("Other CA").unwrap();
        let req = request("mail.lab.com", &[]).unwrap();
        let err = issue(&ca.cert_pem, &other.key_pem, &req.csr_pem, 30).unwrap_err();
        assert!(matches!(err, PkiError::CaKeyMismatch { .. }), "{err}");

        let leaf = self_signed("mail.lab.com", &[], 30).unwrap();
        let err = issue(&leaf.cert_pem, &leaf.key_pem, &req.csr_pem, 30).unwrap_err();
        assert!(matches!(err, PkiError::NotACa { .. }), "{err}");

        let err = issue(&ca.cert_pem, &ca.key_pem, &req.csr_pem, 0).unwrap_err();
        assert!(matches!(err, PkiError::InvalidDays { days: 0 }), "{err}");

        // Change the requested name after signing: the signature breaks.
        use rustls_pki_types::pem::PemObject;
        let mut der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(req.csr_pem.as_bytes())
                .unwrap()
                .as_ref()
                .to_vec();
        let at = der.windows(4).position(|w| w == b"mail").unwrap();
        der[at] = b'g';
        let tampered = pem_text::encode("CERTIFICATE REQUEST", &der);
        let err = issue(&ca.cert_pem, &ca.key_pem, &tampered, 30).unwrap_err();
        assert!(err.to_string().contains("signature"), "{err}");
        let err = issue(&ca.cert_pem, &ca.key_pem, "junk", 30).unwrap_err();
        assert!(matches!(err, PkiError::BadRequest { .. }), "{err}");
    }

    #[test]
    fn self_signed_is_its_own_issuer() {
        let made = self_signed("mail.lab.com", &["*.lab.com".into()], 365).unwrap();
        let leaf = info(&made.cert_pem);
        assert_eq!(leaf.subject, leaf.issuer);
        assert_eq!(leaf.dns_names, vec!["mail.lab.com", "*.lab.com"]);
        verify(&made.cert_pem, &made.cert_pem);
    }

    #[test]
    fn host_names_are_checked() {
        for good in [
            "mail.lab.com",
            "*.lab.com",
            "localhost",
            "::1",
            "10.1.2.3",
            "ex_1.lab",
        ] {
            assert!(check_host_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a..b",
            "-a.com",
            "a.*.com",
            "mail lab",
            "../etc/passwd",
            "a/b",
            "é.com",
        ] {
            assert!(check_host_name(bad).is_err(), "{bad}");
        }
        assert!(request("bad name", &[]).is_err());
        assert!(new_ca("").is_err());
    }
}
