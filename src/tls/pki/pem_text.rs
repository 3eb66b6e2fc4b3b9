//! PEM text in and out: certificates and private keys as strings.

use base64::Engine as _;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::PkiError;

/// `der` as a PEM section with `label`, 64 base64 characters a line.
pub(crate) fn encode(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(text.len() + text.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
    for line in text.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Certificates as PEM, in order.
pub(crate) fn encode_certs<'a>(certs: impl IntoIterator<Item = &'a CertificateDer<'a>>) -> String {
    certs
        .into_iter()
        .map(|cert| encode("CERTIFICATE", cert))
        .collect()
}

/// A private key as PEM, keeping its form (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn encode_key(key: &PrivateKeyDer<'_>) -> String {
    let label = match key {
        PrivateKeyDer::Pkcs1(_) => "RSA PRIVATE KEY",
        PrivateKeyDer::Sec1(_) => "EC PRIVATE KEY",
        _ => "PRIVATE KEY",
    };
    encode(label, key.secret_der())
}

/// Every `CERTIFICATE` section of `pem` (other sections skipped); at least one.
pub(crate) fn certs(
    what: &'static str,
    pem: &str,
) -> Result<Vec<CertificateDer<'static>>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(what, e))?;
    if certs.is_empty() {
        return Err(PkiError::Missing {
            what,
            item: "certificate",
        });
    }
    Ok(certs)
}

/// The first private key section of `pem`.
pub(crate) fn private_key(
    what: &'static str,
    pem: &str,
) -> Result<PrivateKeyDer<'static>, PkiError> {
    PrivateKeyDer::from_pem_slice(pem.as_bytes()).map_err(|e| match e {
        pem::Error::NoItemsFound => PkiError::Missing {
            what,
            item: "private key",
        },
        other => pem_error(what, other),
    })
}

fn pem_error(what: &'static str, error: pem::Error) -> PkiError {
    PkiError::Pem {
        what,
        reason: error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_wraps_lines() {
        let der: Vec<u8> = (0..=255).collect();
        let text = encode("CERTIFICATE", &der);
        assert!(text.starts_with("-----BEGIN CERTIFICATE-----\n"));
        assert!(text.ends_with("-----END CERTIFICATE-----\n"));
        assert!(text.lines().all(|line| line.len() <= 64));
        let back = certs("test", &text).unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(back[0].as_ref(), der.as_slice());
    }

    #[test]
    fn missing_sections_are_named() {
        let err = certs("CA certificate", "nothing here").unwrap_err();
        assert_eq!(err.to_string(), "CA certificate: no certificate found");
        let err = private_key("CA key", "nothing here").unwrap_err();
        assert_eq!(err.to_string(), "CA key: no private key found");
    }
}
