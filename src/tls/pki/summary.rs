//! `casarray cert show`: what a certificate file holds, for people and scripts.

use std::fmt;

use super::super::cert_info::CertInfo;
use super::super::time_fmt::{now_unix, rfc3339};
use super::error::PkiError;
use super::pem_text;

/// A certificate expiring within this many seconds is flagged (30 days).
const EXPIRES_SOON_SECS: i64 = 30 * 86_400;

/// Where a certificate stands in its validity period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertStatus {
    Valid,
    /// Valid, but `notAfter` is within 30 days.
    ExpiresSoon,
    Expired,
    NotYetValid,
}

impl CertStatus {
    /// The status at `now` (UNIX seconds) of a certificate valid from
    /// `not_before` to `not_after` (inclusive).
    pub fn at(not_before: i64, not_after: i64, now: i64) -> Self {
        if now > not_after {
            Self::Expired
        } else if now < not_before {
            Self::NotYetValid
        } else if not_after - now < EXPIRES_SOON_SECS {
            Self::ExpiresSoon
        } else {
            Self::Valid
        }
    }
}

impl fmt::Display for CertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Valid => "valid",
            Self::ExpiresSoon => "expires within 30 days",
            Self::Expired => "expired",
            Self::NotYetValid => "not yet valid",
        })
    }
}

/// The leaf certificate of a PEM file, summarised.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertSummary {
    /// `CN=..., O=...`.
    pub subject: String,
    /// DNS names, then IP addresses.
    pub sans: Vec<String>,
    pub issuer: String,
    /// Lowercase hex, no separators.
    pub serial_hex: String,
    /// UNIX seconds.
    pub not_before_unix: i64,
    /// UNIX seconds.
    pub not_after_unix: i64,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256_hex: String,
    pub is_ca: bool,
    /// Certificates in the file (the leaf and its chain).
    pub chain_len: usize,
    /// At the time `show` ran.
    pub status: CertStatus,
}

/// Summarises the first certificate of `pem` (other sections, such as a
/// key in a bundle, are skipped).
pub fn show(pem: &str) -> Result<CertSummary, PkiError> {
    let certs = pem_text::certs("certificate", pem)?;
    let leaf = certs.first().ok_or(PkiError::Missing {
        what: "certificate",
        item: "certificate",
    })?;
    let info = CertInfo::from_der(leaf).map_err(|reason| PkiError::BadCertificate {
        what: "certificate",
        reason,
    })?;
    Ok(CertSummary {
        status: CertStatus::at(info.not_before_unix, info.not_after_unix, now_unix()),
        sans: info
            .dns_names
            .into_iter()
            .chain(info.ip_addresses)
            .collect(),
        subject: info.subject,
        issuer: info.issuer,
        serial_hex: info.serial_hex,
        not_before_unix: info.not_before_unix,
        not_after_unix: info.not_after_unix,
        sha256_hex: info.sha256_hex,
        is_ca: info.is_ca,
        chain_len: certs.len(),
    })
}

/// One `Key: value` line each; `SANs` is comma-separated (`(none)` when
/// empty), times are RFC 3339 UTC.
impl fmt::Display for CertSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sans = if self.sans.is_empty() {
            "(none)".to_owned()
        } else {
            self.sans.join(", ")
        };
        writeln!(f, "Subject: {}", self.subject)?;
        writeln!(f, "SANs: {sans}")?;
        writeln!(f, "Issuer: {}", self.issuer)?;
        writeln!(f, "Serial: {}", self.serial_hex)?;
        writeln!(f, "Not before: {}", rfc3339(self.not_before_unix))?;
        writeln!(f, "Not after: {}", rfc3339(self.not_after_unix))?;
        writeln!(f, "SHA-256: {}", self.sha256_hex)?;
        writeln!(f, "CA: {}", if self.is_ca { "yes" } else { "no" })?;
        writeln!(f, "Chain: {}", self.chain_len)?;
        writeln!(f, "Status: {}", self.status)
    }
}

#[cfg(test)]
mod tests {
    use super::super::make::{new_ca, self_signed};
    use super::*;

    #[test]
    fn statuses() {
        let day = 86_400;
        assert_eq!(CertStatus::at(0, 100 * day, 50 * day), CertStatus::Valid);
        assert_eq!(
            CertStatus::at(0, 100 * day, 80 * day),
            CertStatus::ExpiresSoon
        );
        assert_eq!(CertStatus::at(0, 100 * day, 101 * day), CertStatus::Expired);
        assert_eq!(CertStatus::at(10, 100 * day, 0), CertStatus::NotYetValid);
        assert_eq!(
            CertStatus::ExpiresSoon.to_string(),
            "expires within 30 days"
        );
    }

    #[test]
    fn shows_a_self_signed_certificate() {
        let made = self_signed(
            "mail.lab.com",
            &["10.0.0.1".into(), "owa.lab.com".into()],
            10,
        )
        .unwrap();
        let summary = show(&format!("{}{}", made.key_pem, made.cert_pem)).unwrap();
        assert_eq!(summary.subject, "CN=mail.lab.com");
        assert_eq!(
            summary.sans,
            vec!["mail.lab.com", "owa.lab.com", "10.0.0.1"]
        );
        assert_eq!(summary.status, CertStatus::ExpiresSoon);
        assert_eq!(summary.chain_len, 1);
        let text = summary.to_string();
        assert!(
            text.contains("\nSANs: mail.lab.com, owa.lab.com, 10.0.0.1\n"),
            "{text}"
        );
        assert!(text.contains(&format!("\nSHA-256: {}\n", summary.sha256_hex)));
        assert!(text.ends_with("Status: expires within 30 days\n"));
    }

    #[test]
    fn shows_a_ca() {
        let ca = new_ca("Lab Root CA").unwrap();
        let summary = show(&ca.cert_pem).unwrap();
        assert!(summary.is_ca);
        assert_eq!(summary.status, CertStatus::Valid);
        assert!(summary.to_string().contains("SANs: (none)\n"));
    }
}
