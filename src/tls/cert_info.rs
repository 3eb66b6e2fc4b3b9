//! What a certificate says about itself: names, serial, validity, fingerprint.

use x509_parser::extensions::GeneralName;

/// The facts casarray reads from one X.509 certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertInfo {
    /// The subject as `CN=..., O=...`.
    pub subject: String,
    /// The subject's first common name, if any.
    pub common_name: Option<String>,
    /// The issuer as `CN=..., O=...`.
    pub issuer: String,
    /// The DNS names of the subjectAltName extension, as written.
    pub dns_names: Vec<String>,
    /// The IP addresses of the subjectAltName extension, as text.
    pub ip_addresses: Vec<String>,
    /// Lowercase hex, no separators, leading zero bytes removed.
    pub serial_hex: String,
    /// Seconds since the UNIX epoch.
    pub not_before_unix: i64,
    /// Seconds since the UNIX epoch.
    pub not_after_unix: i64,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256_hex: String,
    /// basicConstraints CA flag.
    pub is_ca: bool,
}

impl CertInfo {
    /// Parses a DER certificate; the error is a human-readable reason.
    pub(crate) fn from_der(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
        if !rest.is_empty() {
            return Err("trailing bytes after the certificate".into());
        }
        let mut dns_names = Vec::new();
        let mut ip_addresses = Vec::new();
        let san = cert.subject_alternative_name().map_err(|e| e.to_string())?;
        for name in san.iter().flat_map(|ext| ext.value.general_names.iter()) {
            match name {
                GeneralName::DNSName(dns) => dns_names.push((*dns).to_owned()),
                GeneralName::IPAddress(bytes) => {
                    if let Some(ip) = ip_from_bytes(bytes) {
                        ip_addresses.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
        let common_name = cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .map(str::to_owned);
        Ok(Self {
            subject: cert.subject().to_string(),
            common_name,
            issuer: cert.issuer().to_string(),
            dns_names,
            ip_addresses,
            serial_hex: serial_hex(cert.raw_serial()),
            not_before_unix: cert.validity().not_before.timestamp(),
            not_after_unix: cert.validity().not_after.timestamp(),
            sha256_hex: sha256_hex(der),
            is_ca: cert.is_ca(),
        })
    }

    /// The name a certificate is known by: its first DNS SAN, else its
    /// subject common name, else its subject.
    pub(crate) fn display_name(&self) -> String {
        self.dns_names
            .first()
            .or(self.common_name.as_ref())
            .cloned()
            .unwrap_or_else(|| self.subject.clone())
    }
}

fn ip_from_bytes(bytes: &[u8]) -> Option<std::net::IpAddr> {
    match bytes.len() {
        4 => <[u8; 4]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        16 => <[u8; 16]>::try_from(bytes).ok().map(std::net::IpAddr::from),
        _ => None,
    }
}

/// Lowercase hex of a serial number, without its leading zero bytes.
fn serial_hex(raw: &[u8]) -> String {
    let start = raw
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(raw.len().saturating_sub(1));
    hex(raw.get(start..).unwrap_or(raw))
}

/// SHA-256 of `data`, lowercase hex.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    hex(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
}

/// Lowercase hex, no separators.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_drops_leading_zeros() {
        assert_eq!(serial_hex(&[0, 0x8f, 0x01]), "8f01");
        assert_eq!(serial_hex(&[0]), "00");
        assert_eq!(serial_hex(&[]), "");
    }

    #[test]
    fn sha256_of_empty() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn reads_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["mail.lab.com".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "mail.lab.com");
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&[0x00, 0xab, 0xcd]));
        let cert = params.self_signed(&key).unwrap();
        let info = CertInfo::from_der(cert.der()).unwrap();
        assert_eq!(info.dns_names, vec!["mail.lab.com"]);
        assert_eq!(info.ip_addresses, vec!["127.0.0.1"]);
        assert_eq!(info.common_name.as_deref(), Some("mail.lab.com"));
        assert_eq!(info.subject, "CN=mail.lab.com");
        assert_eq!(info.serial_hex, "abcd");
        assert_eq!(info.display_name(), "mail.lab.com");
        assert!(!info.is_ca);
        assert!(info.not_after_unix > info.not_before_unix);
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(CertInfo::from_der(b"not a certificate").is_err());
    }
}
