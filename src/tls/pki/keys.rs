//! Key pairs: generating them, reading them, matching them to certificates.

use std::fmt;
use std::str::FromStr;

use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::PkiError;
use super::pem_text;

/// The kind of key pair to generate. Default: ECDSA P-256.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// ECDSA on P-256, signing with SHA-256.
    #[default]
    EcdsaP256,
    /// RSA 2048 bits, PKCS#1 v1.5 signatures with SHA-256 (for old clients).
    Rsa2048,
}

impl KeyType {
    /// The names `--key-type` accepts.
    pub const NAMES: [&'static str; 2] = ["ecdsa-p256", "rsa2048"];
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::EcdsaP256 => "ecdsa-p256",
            Self::Rsa2048 => "rsa2048",
        })
    }
}

impl FromStr for KeyType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "ecdsa-p256" => Ok(Self::EcdsaP256),
            "rsa2048" => Ok(Self::Rsa2048),
            other => Err(format!(
                "unknown key type {other:?}: expected one of {}",
                Self::NAMES.join(", ")
            )),
        }
    }
}

/// A new key pair of `key_type`; its PEM form is PKCS#8.
pub(crate) fn generate(key_type: KeyType) -> Result<rcgen::KeyPair, PkiError> {
    let alg = match key_type {
        KeyType::EcdsaP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        KeyType::Rsa2048 => &rcgen::PKCS_RSA_SHA256,
    };
    rcgen::KeyPair::generate_for(alg).map_err(|source| PkiError::Rcgen {
        what: "key generation",
        source,
    })
}

/// A signing key pair from PEM (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn parse(what: &'static str, pem: &str) -> Result<rcgen::KeyPair, PkiError> {
    let der = pem_text::private_key(what, pem)?;
    rcgen::KeyPair::try_from(&der).map_err(|e| PkiError::BadKey {
        what,
        reason: e.to_string(),
    })
}

/// Whether `key` is the private key of `leaf`: the public key derived from
/// it equals the certificate's subject public key info.
pub(crate) fn matches(
    what: &'static str,
    key: &PrivateKeyDer<'_>,
    leaf: &CertificateDer<'static>,
) -> Result<bool, PkiError> {
    let signing_key = rustls::crypto::aws_lc_rs::default_provider()
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| PkiError::BadKey {
            what,
            reason: e.to_string(),
        })?;
    match CertifiedKey::new(vec![leaf.clone()], signing_key).keys_match() {
        Ok(()) => Ok(true),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Ok(false),
        Err(other) => Err(PkiError::BadCertificate {
            what: "certificate",
            reason: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_type_names_round_trip() {
        for name in KeyType::NAMES {
            assert_eq!(name.parse::<KeyType>().unwrap().to_string(), name);
        }
        assert!("dsa".parse::<KeyType>().unwrap_err().contains("rsa2048"));
        assert_eq!(KeyType::default(), KeyType::EcdsaP256);
    }

    #[test]
    fn generates_both_key_types_and_reads_them_back() {
        for key_type in [KeyType::EcdsaP256, KeyType::Rsa2048] {
            let key = generate(key_type).unwrap();
            let pem = key.serialize_pem();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
            let back = parse("key", &pem).unwrap();
            assert_eq!(back.public_key_raw(), key.public_key_raw());
        }
    }
}
